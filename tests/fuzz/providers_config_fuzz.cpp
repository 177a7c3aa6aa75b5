// Fuzzes the providers file (docs/formats/providers.md): any bytes through
// providers::ParseProvidersConfig, then the settings and prices of every provider it may
// configure.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "providers/config/providers_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace strowger::providers;
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto config = ParseProvidersConfig(text, "providers.yaml");
    if (!config) return 0;
    for (std::string_view provider : ConfigurableProviders()) {
        const ProviderSettings& settings = config->For(provider);
        for (std::string_view model : {"gpt-4o-mini", "claude-3-5-sonnet-20241022", "llama3", ""}) {
            (void)settings.PricingFor(provider, model);
        }
    }
    return 0;
}
