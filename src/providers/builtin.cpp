#include "providers/builtin.hpp"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

#include "core/log.hpp"
#include "providers/anthropic/anthropic_provider.hpp"
#include "providers/http/http_client.hpp"
#include "providers/limits/resilient_provider.hpp"
#include "providers/openai/openai_provider.hpp"
#include "providers/scripted/scripted_provider.hpp"

namespace strowger::providers {
namespace {

// Providers are built on first use and shared per base URL (agents on one endpoint share its
// connections, retries budget and rate limits).
struct Instances {
    std::mutex mutex;
    std::map<std::string, std::shared_ptr<ResilientProvider>> by_base_url;  // GUARDED_BY(mutex)
};

ResilienceOptions OptionsFrom(const ProviderSettings& settings) {
    ResilienceOptions options;
    options.retry = settings.retry;
    options.limits = settings.limits;
    return options;
}

// openai: and ollama: share the OpenAI-compatible implementation.
void RegisterOpenAiCompatible(ProviderRegistry& registry, std::string name,
                              OpenAiConfig (*defaults)(), const ProviderSettings& settings,
                              std::shared_ptr<http::HttpClient> client) {
    auto instances = std::make_shared<Instances>();
    Executor executor = registry.executor();
    registry.Register(name,
                      [name, defaults, settings, client, instances, executor](
                          std::string_view model, std::string_view) -> Result<ResolvedModel> {
                          if (model.empty())
                              return InvalidArgumentError(name + ": the model name is empty");
                          OpenAiConfig config = defaults();
                          if (settings.base_url) config.base_url = *settings.base_url;
                          if (settings.api_key_env) config.api_key_env = *settings.api_key_env;
                          if (settings.timeout) config.timeout = *settings.timeout;
                          config.extra_headers = settings.headers;
                          while (!config.base_url.empty() && config.base_url.back() == '/')
                              config.base_url.pop_back();
                          STROWGER_TRY(http::ParseUrl(config.base_url + "/chat/completions"));
                          std::shared_ptr<ResilientProvider> provider;
                          {
                              std::lock_guard lock(instances->mutex);
                              auto& instance = instances->by_base_url[config.base_url];
                              if (!instance) {
                                  auto inner =
                                      std::make_shared<OpenAiProvider>(std::move(config), client);
                                  instance = std::make_shared<ResilientProvider>(
                                      std::move(inner), OptionsFrom(settings), executor);
                              }
                              provider = instance;
                          }
                          ResolvedModel resolved;
                          resolved.provider = std::move(provider);
                          resolved.model = std::string(model);
                          resolved.pricing = settings.PricingFor(name, model);
                          return resolved;
                      });
}

void RegisterAnthropic(ProviderRegistry& registry, const ProviderSettings& settings,
                       std::shared_ptr<http::HttpClient> client) {
    auto instances = std::make_shared<Instances>();
    Executor executor = registry.executor();
    registry.Register("anthropic",
                      [settings, client, instances, executor](
                          std::string_view model, std::string_view) -> Result<ResolvedModel> {
                          if (model.empty())
                              return InvalidArgumentError("anthropic: the model name is empty");
                          AnthropicConfig config = DefaultAnthropicConfig();
                          if (settings.base_url) config.base_url = *settings.base_url;
                          if (settings.api_key_env) config.api_key_env = *settings.api_key_env;
                          if (settings.timeout) config.timeout = *settings.timeout;
                          config.extra_headers = settings.headers;
                          while (!config.base_url.empty() && config.base_url.back() == '/')
                              config.base_url.pop_back();
                          STROWGER_TRY(http::ParseUrl(config.base_url + "/v1/messages"));
                          std::shared_ptr<ResilientProvider> provider;
                          {
                              std::lock_guard lock(instances->mutex);
                              auto& instance = instances->by_base_url[config.base_url];
                              if (!instance) {
                                  auto inner = std::make_shared<AnthropicProvider>(
                                      std::move(config), client);
                                  instance = std::make_shared<ResilientProvider>(
                                      std::move(inner), OptionsFrom(settings), executor);
                              }
                              provider = instance;
                          }
                          ResolvedModel resolved;
                          resolved.provider = std::move(provider);
                          resolved.model = std::string(model);
                          resolved.pricing = settings.PricingFor("anthropic", model);
                          return resolved;
                      });
}

}  // namespace

void RegisterBuiltinProviders(ProviderRegistry& registry, const ProvidersConfig& config) {
    // ---- command: ---------------------------------------------------------------------------
    // Not registered here: RegisterCommandProvider(registry, sandbox, options)
    // (src/providers/command/) is compiled into strowger_tools, as it needs the sandbox, and
    // providers must not depend on tools. The binary's wiring calls it after this function.

    auto client = http::HttpClient::Create(registry.executor());
    if (!client) {
        // A bad $SSL_CERT_FILE or proxy setting: HTTP providers cannot work; say why once.
        spdlog::error("HTTP providers disabled: {}", client.error().message());
        RegisterScriptedProvider(registry);
        return;
    }
    RegisterBuiltinProviders(registry, config, *client);
}

void RegisterBuiltinProviders(ProviderRegistry& registry, const ProvidersConfig& config,
                              std::shared_ptr<http::HttpClient> client) {
    RegisterScriptedProvider(registry);
    RegisterOpenAiCompatible(registry, "openai", &DefaultOpenAiConfig, config.For("openai"),
                             client);
    RegisterOpenAiCompatible(registry, "ollama", &DefaultOllamaConfig, config.For("ollama"),
                             client);
    RegisterAnthropic(registry, config.For("anthropic"), client);
}

void RegisterBuiltinProviders(ProviderRegistry& registry) {
    RegisterBuiltinProviders(registry, DefaultProvidersConfig());
}

}  // namespace strowger::providers
