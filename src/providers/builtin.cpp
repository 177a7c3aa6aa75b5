#include "providers/builtin.hpp"

#include "core/log.hpp"
#include "providers/http/http_client.hpp"
#include "providers/openai/openai_provider.hpp"
#include "providers/scripted/scripted_provider.hpp"

namespace strowger::providers {

void RegisterBuiltinProviders(ProviderRegistry& registry) {
    RegisterScriptedProvider(registry);
    auto client = http::HttpClient::Create(registry.executor());
    if (!client) {
        // A bad $SSL_CERT_FILE or proxy setting: HTTP providers cannot work; say why once.
        spdlog::error("HTTP providers disabled: {}", client.error().message());
        return;
    }
    RegisterOpenAiProviders(registry, *client);
}

}  // namespace strowger::providers
