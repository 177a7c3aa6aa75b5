// The providers every strowger binary knows.
#pragma once

#include "providers/provider.hpp"

namespace strowger::providers {

// Registers scripted:, openai:, ollama: (and later anthropic:, command:) in `registry`.
void RegisterBuiltinProviders(ProviderRegistry& registry);

}  // namespace strowger::providers
