#include "providers/config/providers_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/strings.hpp"
#include "core/yaml.hpp"

namespace strowger::providers {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kProviderFields[] = {"base_url",
                                                "api_key_env",
                                                "timeout_secs",
                                                "max_concurrency",
                                                "requests_per_minute",
                                                "tokens_per_minute",
                                                "max_retries",
                                                "retry_initial_delay_ms",
                                                "retry_max_delay_ms",
                                                "max_retry_after_secs",
                                                "prices",
                                                "headers"};
constexpr std::string_view kPriceFields[] = {"input_per_mtok", "output_per_mtok"};
constexpr int64_t kMaxRetriesLimit = 100;

// Collects problems while walking one file's YAML tree.
class Reader {
  public:
    explicit Reader(std::string file) : file_(std::move(file)) {}

    void Problem(const YAML::Node& node, const std::string& path, const std::string& message) {
        std::string where = file_;
        if (auto mark = node.Mark(); mark.line >= 0) {
            where += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
        }
        problems_.push_back(where + ": " + (path.empty() ? "" : path + ": ") + message);
    }

    static std::string KindName(const YAML::Node& node) {
        switch (node.Type()) {
            case YAML::NodeType::Null:
                return "null";
            case YAML::NodeType::Sequence:
                return "a list";
            case YAML::NodeType::Map:
                return "a mapping";
            case YAML::NodeType::Scalar:
                return "\"" + CapForMessage(node.Scalar(), 200) + "\"";
            default:
                return "nothing";
        }
    }

    bool ExpectMap(const YAML::Node& node, const std::string& path) {
        if (node.IsMap()) return true;
        Problem(node, path, "expected a mapping, got " + KindName(node));
        return false;
    }

    // Calls visit(key, key_node, value, path) for each key of `map`, reporting non-string and
    // duplicate keys, and keys outside `known` (unless `known` is empty) with a suggestion.
    template <typename Visit>
    void ForEachField(const YAML::Node& map, const std::string& path,
                      const std::vector<std::string_view>& known, const std::string& path_style,
                      Visit visit) {
        std::set<std::string> seen;
        for (auto it = map.begin(); it != map.end(); ++it) {
            // Copies: the iterator's pair is a proxy that dies with the full expression.
            const YAML::Node key_node = it->first;
            const YAML::Node value = it->second;
            if (!key_node.IsScalar()) {
                Problem(key_node, path, "field names must be strings");
                continue;
            }
            const std::string& key = key_node.Scalar();
            std::string field_path = path_style == "index" ? path + "[\"" + key + "\"]"
                                     : path.empty()        ? key
                                                           : path + "." + key;
            if (!seen.insert(key).second) {
                Problem(key_node, field_path, "duplicate field \"" + key + "\"");
                continue;
            }
            if (!known.empty() && std::find(known.begin(), known.end(), key) == known.end()) {
                std::string message = "unknown field \"" + key + "\"";
                std::string suggestion = ClosestMatch(key, known);
                if (!suggestion.empty()) message += " (did you mean \"" + suggestion + "\"?)";
                Problem(key_node, field_path, message);
                continue;
            }
            visit(key, value, field_path);
        }
    }

    std::optional<std::string> String(const YAML::Node& node, const std::string& path) {
        if (node.IsNull()) return std::string();
        if (!node.IsScalar()) {
            Problem(node, path, "expected a string, got " + KindName(node));
            return std::nullopt;
        }
        return node.Scalar();
    }

    std::optional<int64_t> Integer(const YAML::Node& node, const std::string& path, int64_t min,
                                   int64_t max) {
        std::string expected = "an integer >= " + std::to_string(min);
        if (max != INT64_MAX) expected += " and <= " + std::to_string(max);
        if (!node.IsScalar() || node.Tag() == "!") {
            Problem(node, path, "expected " + expected + ", got " + KindName(node));
            return std::nullopt;
        }
        const std::string& text = node.Scalar();
        int64_t value = 0;
        const char* begin = text.data();
        if (!text.empty() && text[0] == '+') ++begin;
        auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
            Problem(node, path, "expected " + expected + ", got " + KindName(node));
            return std::nullopt;
        }
        return value;
    }

    // A finite number >= min (and > min if `exclusive`), and <= max.
    std::optional<double> Number(const YAML::Node& node, const std::string& path, double min,
                                 bool exclusive, double max = HUGE_VAL) {
        std::string expected = std::string("a number ") + (exclusive ? "> " : ">= ") +
                               (min == 0 ? std::string("0") : std::to_string(min));
        if (max != HUGE_VAL) expected += " and <= " + std::to_string(static_cast<int64_t>(max));
        if (!node.IsScalar() || node.Tag() == "!") {
            Problem(node, path, "expected " + expected + ", got " + KindName(node));
            return std::nullopt;
        }
        const std::string& text = node.Scalar();
        double value = 0;
        const char* begin = text.data();
        if (!text.empty() && text[0] == '+') ++begin;
        auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
        bool ok = ec == std::errc() && end == text.data() + text.size() && std::isfinite(value) &&
                  (exclusive ? value > min : value >= min) && value <= max;
        if (!ok) {
            Problem(node, path, "expected " + expected + ", got " + KindName(node));
            return std::nullopt;
        }
        return value;
    }

    void ReadProvider(const YAML::Node& node, const std::string& path, ProviderSettings& settings) {
        if (node.IsNull()) return;
        if (!ExpectMap(node, path)) return;
        std::vector<std::string_view> fields(std::begin(kProviderFields),
                                             std::end(kProviderFields));
        ForEachField(
            node, path, fields, "dot",
            [&](const std::string& key, const YAML::Node& value, const std::string& field_path) {
                if (key == "base_url") {
                    if (auto url = String(value, field_path)) {
                        std::string trimmed(Trim(*url));
                        if (auto parsed = http::ParseUrl(trimmed); !parsed) {
                            Problem(value, field_path,
                                    "expected an http:// or https:// URL, got \"" +
                                        CapForMessage(*url, 200) + "\"");
                        } else {
                            settings.base_url = trimmed;
                        }
                    }
                } else if (key == "api_key_env") {
                    if (auto name = String(value, field_path)) settings.api_key_env = *name;
                } else if (key == "timeout_secs") {
                    if (auto seconds = Number(value, field_path, 0, true)) {
                        settings.timeout = std::chrono::milliseconds(
                            std::max<int64_t>(1, std::llround(*seconds * 1000.0)));
                    }
                } else if (key == "max_concurrency") {
                    if (auto n = Integer(value, field_path, 0, INT64_MAX)) {
                        settings.limits.max_concurrency = *n;
                    }
                } else if (key == "requests_per_minute") {
                    if (auto n = Integer(value, field_path, 0, INT64_MAX)) {
                        settings.limits.requests_per_minute = *n;
                    }
                } else if (key == "tokens_per_minute") {
                    if (auto n = Integer(value, field_path, 0, INT64_MAX)) {
                        settings.limits.tokens_per_minute = *n;
                    }
                } else if (key == "max_retries") {
                    if (auto n = Integer(value, field_path, 0, kMaxRetriesLimit)) {
                        settings.retry.max_retries = *n;
                    }
                } else if (key == "retry_initial_delay_ms") {
                    if (auto n = Integer(value, field_path, 0, INT64_MAX)) {
                        settings.retry.initial_backoff = std::chrono::milliseconds(*n);
                    }
                } else if (key == "retry_max_delay_ms") {
                    if (auto n = Integer(value, field_path, 0, INT64_MAX)) {
                        settings.retry.max_backoff = std::chrono::milliseconds(*n);
                    }
                } else if (key == "max_retry_after_secs") {
                    if (auto seconds = Number(value, field_path, 0, false)) {
                        settings.retry.max_retry_after =
                            std::chrono::milliseconds(std::llround(*seconds * 1000.0));
                    }
                } else if (key == "prices") {
                    ReadPrices(value, field_path, settings.prices);
                } else if (key == "headers") {
                    ReadHeaders(value, field_path, settings.headers);
                }
            });
        if (settings.retry.max_backoff < settings.retry.initial_backoff) {
            Problem(node, path + ".retry_max_delay_ms",
                    "must not be less than retry_initial_delay_ms");
        }
    }

    void ReadPrices(const YAML::Node& node, const std::string& path, PriceTable& prices) {
        if (node.IsNull()) return;
        if (!ExpectMap(node, path)) return;
        ForEachField(
            node, path, {}, "index",
            [&](const std::string& model, const YAML::Node& value, const std::string& model_path) {
                if (Trim(model).empty()) {
                    Problem(value, model_path, "the model name is empty");
                    return;
                }
                if (!ExpectMap(value, model_path)) return;
                ModelPrice price;
                std::set<std::string> given;
                std::vector<std::string_view> fields(std::begin(kPriceFields),
                                                     std::end(kPriceFields));
                ForEachField(
                    value, model_path, fields, "dot",
                    [&](const std::string& key, const YAML::Node& number,
                        const std::string& field_path) {
                        auto parsed = Number(number, field_path, 0, false, kMaxUsdPerMillionTokens);
                        if (!parsed) return;
                        given.insert(key);
                        (key == "input_per_mtok" ? price.input_per_mtok : price.output_per_mtok) =
                            *parsed;
                    });
                for (std::string_view field : kPriceFields) {
                    if (!given.contains(std::string(field))) {
                        Problem(value, model_path, "missing field \"" + std::string(field) + "\"");
                    }
                }
                prices[model] = price;
            });
    }

    void ReadHeaders(const YAML::Node& node, const std::string& path, http::Headers& headers) {
        if (node.IsNull()) return;
        if (!ExpectMap(node, path)) return;
        ForEachField(
            node, path, {}, "index",
            [&](const std::string& name, const YAML::Node& value, const std::string& field_path) {
                auto text = String(value, field_path);
                if (!text) return;
                if (text->find_first_of("\r\n") != std::string::npos) {
                    Problem(value, field_path, "header values must be one line");
                    return;
                }
                headers.emplace_back(name, *text);
            });
    }

    void ReadRoot(const YAML::Node& root, ProvidersConfig& config) {
        if (root.IsNull() || !root.IsDefined()) return;
        if (!ExpectMap(root, "")) return;
        ForEachField(root, "", {"providers"}, "dot",
                     [&](const std::string&, const YAML::Node& providers, const std::string& path) {
                         if (providers.IsNull()) return;
                         if (!ExpectMap(providers, path)) return;
                         ForEachField(providers, path, ConfigurableProviders(), "dot",
                                      [&](const std::string& name, const YAML::Node& value,
                                          const std::string& provider_path) {
                                          ReadProvider(value, provider_path,
                                                       config.providers[name]);
                                      });
                     });
    }

    const std::vector<std::string>& problems() const { return problems_; }

  private:
    std::string file_;
    std::vector<std::string> problems_;
};

PriceTable MakeTable(std::initializer_list<std::pair<const char*, ModelPrice>> entries) {
    PriceTable table;
    for (const auto& [model, price] : entries) table.emplace(model, price);
    return table;
}

}  // namespace

Pricing ModelPrice::ToPricing() const {
    // USD per million tokens = 1000 nano-USD per token.
    Pricing pricing;
    pricing.input_nano_usd_per_token = std::llround(input_per_mtok * 1000.0);
    pricing.output_nano_usd_per_token = std::llround(output_per_mtok * 1000.0);
    return pricing;
}

std::optional<ModelPrice> FindPrice(const PriceTable& table, std::string_view model) {
    if (auto exact = table.find(model); exact != table.end()) return exact->second;
    const ModelPrice* best = nullptr;
    size_t best_length = 0;
    for (const auto& [pattern, price] : table) {
        if (pattern.size() < 2 || pattern.back() != '*') continue;
        std::string_view prefix(pattern.data(), pattern.size() - 1);
        if (model.starts_with(prefix) && prefix.size() >= best_length) {
            best = &price;
            best_length = prefix.size();
        }
    }
    if (best) return *best;
    if (auto any = table.find("*"); any != table.end()) return any->second;
    return std::nullopt;
}

const PriceTable& BuiltinPrices(std::string_view provider) {
    static const PriceTable kOpenAi = MakeTable({
        {"gpt-5*", {1.25, 10.00}},
        {"gpt-5-mini*", {0.25, 2.00}},
        {"gpt-5-nano*", {0.05, 0.40}},
        {"gpt-4.1*", {2.00, 8.00}},
        {"gpt-4.1-mini*", {0.40, 1.60}},
        {"gpt-4.1-nano*", {0.10, 0.40}},
        {"gpt-4o*", {2.50, 10.00}},
        {"gpt-4o-mini*", {0.15, 0.60}},
        {"gpt-4-turbo*", {10.00, 30.00}},
        {"gpt-4", {30.00, 60.00}},
        {"gpt-3.5-turbo*", {0.50, 1.50}},
        {"o1*", {15.00, 60.00}},
        {"o1-mini*", {1.10, 4.40}},
        {"o3*", {2.00, 8.00}},
        {"o3-mini*", {1.10, 4.40}},
        {"o4-mini*", {1.10, 4.40}},
    });
    static const PriceTable kAnthropic = MakeTable({
        {"claude-3-haiku*", {0.25, 1.25}},
        {"claude-3-5-haiku*", {0.80, 4.00}},
        {"claude-haiku-4*", {1.00, 5.00}},
        {"claude-3-sonnet*", {3.00, 15.00}},
        {"claude-3-5-sonnet*", {3.00, 15.00}},
        {"claude-3-7-sonnet*", {3.00, 15.00}},
        {"claude-sonnet-4*", {3.00, 15.00}},
        {"claude-3-opus*", {15.00, 75.00}},
        {"claude-opus-4-0*", {15.00, 75.00}},
        {"claude-opus-4-1*", {15.00, 75.00}},
        {"claude-opus-4-2*", {15.00, 75.00}},
    });
    static const PriceTable kNone;
    if (provider == "openai") return kOpenAi;
    if (provider == "anthropic") return kAnthropic;
    return kNone;
}

Pricing ProviderSettings::PricingFor(std::string_view provider, std::string_view model) const {
    // The user's exact names and prefixes beat the built-in ones; the user's "*" only catches
    // models that neither table knows.
    PriceTable own = prices;
    std::optional<ModelPrice> fallback;
    if (auto any = own.find("*"); any != own.end()) {
        fallback = any->second;
        own.erase(any);
    }
    if (auto price = FindPrice(own, model)) return price->ToPricing();
    if (auto price = FindPrice(BuiltinPrices(provider), model)) return price->ToPricing();
    if (fallback) return fallback->ToPricing();
    return Pricing{};
}

const ProviderSettings& ProvidersConfig::For(std::string_view provider) const {
    static const ProviderSettings kDefaults;
    auto it = providers.find(provider);
    return it == providers.end() ? kDefaults : it->second;
}

const std::vector<std::string_view>& ConfigurableProviders() {
    static const std::vector<std::string_view> kNames = {"openai", "anthropic", "ollama"};
    return kNames;
}

ProvidersConfig DefaultProvidersConfig() {
    return ProvidersConfig{};
}

Result<ProvidersConfig> ParseProvidersConfig(std::string_view text, const std::string& file_name) {
    auto parsed = ParseYaml(text);
    if (!parsed) {
        std::string where = file_name;
        if (parsed.error().line > 0) {
            where += ":" + std::to_string(parsed.error().line) + ":" +
                     std::to_string(parsed.error().column);
        }
        return InvalidArgumentError(where + ": " + parsed.error().message);
    }
    const YAML::Node root = std::move(*parsed);
    ProvidersConfig config;
    config.source = file_name;
    Reader reader(file_name);
    try {
        reader.ReadRoot(root, config);
    } catch (const YAML::Exception& e) {
        std::string where = file_name;
        if (e.mark.line >= 0) {
            where +=
                ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
        }
        return InvalidArgumentError(where + ": " + e.msg);
    }
    if (!reader.problems().empty()) return InvalidArgumentError(Join(reader.problems(), "\n"));
    return config;
}

Result<ProvidersConfig> LoadProvidersConfigFile(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) return NotFoundError(path + ": no such providers config file");
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError(path + ": cannot open the providers config file");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return UnavailableError(path + ": cannot read the providers config file");
    return ParseProvidersConfig(text.str(), path);
}

std::string DefaultProvidersConfigPath() {
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg) return (fs::path(xdg) / "strowger" / "providers.yaml").string();
    const char* home = std::getenv("HOME");
    if (home && *home) return (fs::path(home) / ".config" / "strowger" / "providers.yaml").string();
    return {};
}

Result<ProvidersConfig> LoadProvidersConfig(std::string_view flag_path) {
    if (!flag_path.empty()) return LoadProvidersConfigFile(std::string(flag_path));
    if (const char* env = std::getenv("STROWGER_PROVIDERS"); env && *env) {
        return LoadProvidersConfigFile(env);
    }
    std::string path = DefaultProvidersConfigPath();
    std::error_code ec;
    if (path.empty() || !fs::exists(path, ec)) return DefaultProvidersConfig();
    return LoadProvidersConfigFile(path);
}

}  // namespace strowger::providers
