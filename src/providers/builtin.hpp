// The providers every strowger binary knows.
#pragma once

#include <memory>

#include "providers/config/providers_config.hpp"
#include "providers/provider.hpp"

namespace strowger::http {
class HttpClient;
}  // namespace strowger::http

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

// As the first overload, with the HTTP providers sending through `client` (e.g. one whose
// sockets live on an I/O thread of their own) instead of a client on the registry's executor.
void RegisterBuiltinProviders(ProviderRegistry& registry, const ProvidersConfig& config,
                              std::shared_ptr<http::HttpClient> client);

}  // namespace strowger::providers
