// The provider config file (docs/formats/providers.md): per provider base URL, key variable,
// timeout, limits, retries and prices.
//
//   providers:
//     openai:
//       base_url: https://api.openai.com/v1
//       api_key_env: OPENAI_API_KEY
//       timeout_secs: 120
//       max_concurrency: 8
//       requests_per_minute: 500
//       tokens_per_minute: 200000
//       max_retries: 3
//       prices:
//         gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.60}
//         "*": {input_per_mtok: 1.0, output_per_mtok: 2.0}
//     anthropic: {...}
//     ollama: {...}
//
// Where it is read from (LoadProvidersConfig): the `--providers FILE` flag, else
// $STROWGER_PROVIDERS, else $XDG_CONFIG_HOME/strowger/providers.yaml (~/.config/... when
// XDG_CONFIG_HOME is unset) if that file exists, else built-in defaults. A file named by the flag
// or the variable must exist.
//
// Every problem is reported, each as "<file>:<line>:<col>: <field path>: <message>" (as the
// workflow loader does), joined by newlines into one kInvalidArgument error.
//
// Thread-safety: plain values; functions are reentrant.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "providers/http/http_client.hpp"
#include "providers/limits/rate_limiter.hpp"
#include "providers/limits/resilient_provider.hpp"
#include "providers/provider.hpp"

namespace strowger::providers {

// USD per million tokens.
struct ModelPrice {
    double input_per_mtok = 0;
    double output_per_mtok = 0;

    Pricing ToPricing() const;
};

// Prices by model name: exact names, prefixes ending in '*' ("claude-3-5-sonnet*", the longest
// matching prefix wins) and "*" for any other model.
using PriceTable = std::map<std::string, ModelPrice, std::less<>>;

// The price of `model` in `table`, or nullopt.
std::optional<ModelPrice> FindPrice(const PriceTable& table, std::string_view model);

// The built-in prices of common OpenAI and Anthropic models (list prices, USD per million tokens,
// as published when this table was written; override them in the config file).
const PriceTable& BuiltinPrices(std::string_view provider);

struct ProviderSettings {
    // Unset: the provider's environment variable (OPENAI_BASE_URL, ANTHROPIC_BASE_URL,
    // OLLAMA_BASE_URL), else its built-in default.
    std::optional<std::string> base_url;
    // Unset: the provider's default variable; "" = send no key.
    std::optional<std::string> api_key_env;
    // Unset: 10 minutes. Per attempt; the call's deadline applies too.
    std::optional<std::chrono::milliseconds> timeout;
    RateLimits limits;  // none by default
    RetryPolicy retry;  // 3 retries by default
    // Merged over BuiltinPrices(provider): an entry here replaces the built-in one.
    PriceTable prices;
    http::Headers headers;  // extra request headers

    // The pricing for `model`: this provider's prices, then the built-in ones; zero if none.
    Pricing PricingFor(std::string_view provider, std::string_view model) const;
};

struct ProvidersConfig {
    // The file it was read from; "" for the built-in defaults.
    std::string source;
    // Configured providers ("openai", "anthropic", "ollama"); others use defaults.
    std::map<std::string, ProviderSettings, std::less<>> providers;

    // The settings for `provider` (defaults if the file does not mention it).
    const ProviderSettings& For(std::string_view provider) const;
};

// The providers a config file may configure.
const std::vector<std::string_view>& ConfigurableProviders();

// Defaults only (no file).
ProvidersConfig DefaultProvidersConfig();

// Parses `text` as if read from `file_name`.
Result<ProvidersConfig> ParseProvidersConfig(std::string_view text, const std::string& file_name);

// Reads and parses `path`; kNotFound if it does not exist.
Result<ProvidersConfig> LoadProvidersConfigFile(const std::string& path);

// $XDG_CONFIG_HOME/strowger/providers.yaml, or ~/.config/strowger/providers.yaml; "" if neither
// variable is set.
std::string DefaultProvidersConfigPath();

// The configuration in effect: see the top of the file. `flag_path` is the --providers value
// ("" if not given).
Result<ProvidersConfig> LoadProvidersConfig(std::string_view flag_path = {});

}  // namespace strowger::providers
