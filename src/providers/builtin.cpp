#include "providers/builtin.hpp"

#include "providers/scripted/scripted_provider.hpp"

namespace strowger::providers {

void RegisterBuiltinProviders(ProviderRegistry& registry) {
    RegisterScriptedProvider(registry);
}

}  // namespace strowger::providers
