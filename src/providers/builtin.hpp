// The providers every strowger binary knows.
#pragma once

#include "providers/config/providers_config.hpp"
#include "providers/provider.hpp"

namespace strowger::providers {

// Registers scripted:, openai:, ollama: and anthropic: in `registry` (command: needs the sandbox:
// the caller registers it with RegisterCommandProvider, src/providers/command/). The HTTP providers
// are configured from `config` (base URL, key variable, timeout, headers, prices) and wrapped in a
// ResilientProvider with its retries and rate limits; one instance per provider and base URL, so
// every agent using it shares its connections and limits. Environment variables
// (OPENAI_BASE_URL...) are read when a model is first resolved.
void RegisterBuiltinProviders(ProviderRegistry& registry, const ProvidersConfig& config);

// As above with DefaultProvidersConfig(): built-in prices, 3 retries, no rate limits. Reads no
// file: a binary that honours --providers / $STROWGER_PROVIDERS calls LoadProvidersConfig() and
// the overload above.
void RegisterBuiltinProviders(ProviderRegistry& registry);

}  // namespace strowger::providers
