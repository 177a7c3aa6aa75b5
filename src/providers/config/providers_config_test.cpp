#include "providers/config/providers_config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include "core/log.hpp"
#include "providers/builtin.hpp"
#include "providers/limits/resilient_provider.hpp"
#include "providers/openai/openai_provider.hpp"
#include "testing/mock_model_server.hpp"
#include "testing/test_util.hpp"

namespace strowger::providers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using strowger::testing::IoThread;
using strowger::testing::MockModelServer;
using strowger::testing::RunSync;
using strowger::testing::TempDir;

constexpr char kFull[] = R"(# Providers for the team.
providers:
  openai:
    base_url: https://llm.example.com/v1
    api_key_env: TEAM_OPENAI_KEY
    timeout_secs: 45.5
    max_concurrency: 8
    requests_per_minute: 500
    tokens_per_minute: 200000
    max_retries: 5
    retry_initial_delay_ms: 250
    retry_max_delay_ms: 8000
    max_retry_after_secs: 90
    headers: {HTTP-Referer: "https://strowger.dev"}
    prices:
      "gpt-4o-mini": {input_per_mtok: 0.15, output_per_mtok: 0.60}
      "my-model*": {input_per_mtok: 1, output_per_mtok: 3}
      "*": {input_per_mtok: 9, output_per_mtok: 9}
  anthropic:
    max_retries: 0
  ollama:
    api_key_env: ""
)";

TEST(ProvidersConfigTest, ParsesEveryField) {
    auto config = ParseProvidersConfig(kFull, "providers.yaml");
    ASSERT_TRUE(config) << config.error().message();
    EXPECT_EQ(config->source, "providers.yaml");
    const ProviderSettings& openai = config->For("openai");
    EXPECT_EQ(openai.base_url, "https://llm.example.com/v1");
    EXPECT_EQ(openai.api_key_env, "TEAM_OPENAI_KEY");
    EXPECT_EQ(openai.timeout, milliseconds(45500));
    EXPECT_EQ(openai.limits.max_concurrency, 8);
    EXPECT_EQ(openai.limits.requests_per_minute, 500);
    EXPECT_EQ(openai.limits.tokens_per_minute, 200000);
    EXPECT_EQ(openai.limits.window, std::chrono::minutes(1));
    EXPECT_EQ(openai.retry.max_retries, 5);
    EXPECT_EQ(openai.retry.initial_backoff, milliseconds(250));
    EXPECT_EQ(openai.retry.max_backoff, milliseconds(8000));
    EXPECT_EQ(openai.retry.max_retry_after, seconds(90));
    ASSERT_EQ(openai.headers.size(), 1u);
    EXPECT_EQ(openai.headers[0].first, "HTTP-Referer");
    EXPECT_EQ(openai.headers[0].second, "https://strowger.dev");
    EXPECT_EQ(openai.prices.size(), 3u);

    const ProviderSettings& anthropic = config->For("anthropic");
    EXPECT_EQ(anthropic.retry.max_retries, 0);
    EXPECT_FALSE(anthropic.base_url);
    EXPECT_FALSE(anthropic.limits.enabled());
    EXPECT_EQ(config->For("ollama").api_key_env, "");
}

TEST(ProvidersConfigTest, DefaultsWithoutAFile) {
    ProvidersConfig config = DefaultProvidersConfig();
    EXPECT_EQ(config.source, "");
    const ProviderSettings& openai = config.For("openai");
    EXPECT_FALSE(openai.base_url);
    EXPECT_FALSE(openai.api_key_env);
    EXPECT_FALSE(openai.timeout);
    EXPECT_FALSE(openai.limits.enabled());
    EXPECT_EQ(openai.retry.max_retries, 3);
    auto empty = ParseProvidersConfig("", "empty.yaml");
    ASSERT_TRUE(empty) << empty.error().message();
    EXPECT_TRUE(empty->providers.empty());
    auto null_providers = ParseProvidersConfig("providers:\n", "null.yaml");
    ASSERT_TRUE(null_providers) << null_providers.error().message();
}

TEST(ProvidersConfigTest, PricesResolveExactThenLongestPrefixThenBuiltinThenStar) {
    auto config = ParseProvidersConfig(kFull, "providers.yaml");
    ASSERT_TRUE(config) << config.error().message();
    const ProviderSettings& openai = config->For("openai");
    Pricing mini = openai.PricingFor("openai", "gpt-4o-mini");
    EXPECT_EQ(mini.input_nano_usd_per_token, 150);
    EXPECT_EQ(mini.output_nano_usd_per_token, 600);
    Pricing own = openai.PricingFor("openai", "my-model-7b");
    EXPECT_EQ(own.input_nano_usd_per_token, 1000);
    EXPECT_EQ(own.output_nano_usd_per_token, 3000);
    // Not in the file: the built-in table (longest prefix: gpt-4o-mini* over gpt-4o*)...
    Pricing dated = openai.PricingFor("openai", "gpt-4o-mini-2024-07-18");
    EXPECT_EQ(dated.input_nano_usd_per_token, 150);
    Pricing big = openai.PricingFor("openai", "gpt-4o-2024-08-06");
    EXPECT_EQ(big.input_nano_usd_per_token, 2500);
    EXPECT_EQ(big.output_nano_usd_per_token, 10000);
    // ...and the file's "*" for models nobody knows.
    Pricing unknown = openai.PricingFor("openai", "mystery");
    EXPECT_EQ(unknown.input_nano_usd_per_token, 9000);

    ProviderSettings defaults;
    Pricing sonnet = defaults.PricingFor("anthropic", "claude-3-5-sonnet-20241022");
    EXPECT_EQ(sonnet.input_nano_usd_per_token, 3000);
    EXPECT_EQ(sonnet.output_nano_usd_per_token, 15000);
    EXPECT_EQ(defaults.PricingFor("ollama", "llama3").input_nano_usd_per_token, 0);
    EXPECT_EQ(defaults.PricingFor("openai", "mystery").CostNanoUsd(Usage{1000, 1000}), 0);
    EXPECT_EQ(mini.CostNanoUsd(Usage{1'000'000, 0}), 150'000'000);  // $0.15
}

void ExpectErrors(std::string_view text, const std::vector<std::string>& lines) {
    auto config = ParseProvidersConfig(text, "p.yaml");
    ASSERT_FALSE(config) << text;
    EXPECT_EQ(config.error().code(), ErrorCode::kInvalidArgument);
    std::string expected;
    for (const auto& line : lines) expected += (expected.empty() ? "" : "\n") + line;
    EXPECT_EQ(config.error().message(), expected);
}

TEST(ProvidersConfigTest, ReportsEveryProblemWithPositionAndPath) {
    ExpectErrors(R"(providers:
  openia:
    base_url: x
  openai:
    max_retries: -1
    max_concurrency: two
    timeout_secs: 0
    tokens_per_minut: 5
    base_url: ftp://host
    prices:
      gpt-4o: {input_per_mtok: -1}
      "": {input_per_mtok: 1, output_per_mtok: 1}
)",
                 {"p.yaml:2:3: providers.openia: unknown field \"openia\" (did you mean "
                  "\"openai\"?)",
                  "p.yaml:5:18: providers.openai.max_retries: expected an integer >= 0 and <= "
                  "100, got \"-1\"",
                  "p.yaml:6:22: providers.openai.max_concurrency: expected an integer >= 0, got "
                  "\"two\"",
                  "p.yaml:7:19: providers.openai.timeout_secs: expected a number > 0, got \"0\"",
                  "p.yaml:8:5: providers.openai.tokens_per_minut: unknown field "
                  "\"tokens_per_minut\" (did you mean \"tokens_per_minute\"?)",
                  "p.yaml:9:15: providers.openai.base_url: expected an http:// or https:// URL, "
                  "got \"ftp://host\"",
                  "p.yaml:11:32: providers.openai.prices[\"gpt-4o\"].input_per_mtok: expected a "
                  "number >= 0 and <= 1000000, got \"-1\"",
                  "p.yaml:11:15: providers.openai.prices[\"gpt-4o\"]: missing field "
                  "\"input_per_mtok\"",
                  "p.yaml:11:15: providers.openai.prices[\"gpt-4o\"]: missing field "
                  "\"output_per_mtok\"",
                  "p.yaml:12:11: providers.openai.prices[\"\"]: the model name is empty"});
    ExpectErrors("provider: {}\n",
                 {"p.yaml:1:1: provider: unknown field \"provider\" (did you mean "
                  "\"providers\"?)"});
    ExpectErrors("providers: [openai]\n",
                 {"p.yaml:1:12: providers: expected a mapping, got a list"});
    ExpectErrors("providers:\n  openai: {max_retries: 1, max_retries: 2}\n",
                 {"p.yaml:2:28: providers.openai.max_retries: duplicate field \"max_retries\""});
    ExpectErrors("providers:\n  openai: {retry_initial_delay_ms: 500, retry_max_delay_ms: 100}\n",
                 {"p.yaml:2:11: providers.openai.retry_max_delay_ms: must not be less than "
                  "retry_initial_delay_ms"});
    auto syntax = ParseProvidersConfig("providers: {openai: [}\n", "bad.yaml");
    ASSERT_FALSE(syntax);
    EXPECT_EQ(syntax.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(syntax.error().message().starts_with("bad.yaml:1:")) << syntax.error().message();
}

class ProvidersConfigFileTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ::unsetenv("STROWGER_PROVIDERS");
        ::setenv("XDG_CONFIG_HOME", dir_.path().c_str(), 1);
    }
    void TearDown() override {
        ::unsetenv("STROWGER_PROVIDERS");
        ::unsetenv("XDG_CONFIG_HOME");
    }
    TempDir dir_;
};

TEST_F(ProvidersConfigFileTest, FlagThenEnvironmentThenXdgThenDefaults) {
    auto defaults = LoadProvidersConfig();
    ASSERT_TRUE(defaults) << defaults.error().message();
    EXPECT_EQ(defaults->source, "");

    std::string xdg =
        dir_.Write("strowger/providers.yaml", "providers: {openai: {max_retries: 1}}\n");
    EXPECT_EQ(DefaultProvidersConfigPath(), xdg);
    auto from_xdg = LoadProvidersConfig();
    ASSERT_TRUE(from_xdg) << from_xdg.error().message();
    EXPECT_EQ(from_xdg->source, xdg);
    EXPECT_EQ(from_xdg->For("openai").retry.max_retries, 1);

    std::string env = dir_.Write("env.yaml", "providers: {openai: {max_retries: 2}}\n");
    ::setenv("STROWGER_PROVIDERS", env.c_str(), 1);
    auto from_env = LoadProvidersConfig();
    ASSERT_TRUE(from_env) << from_env.error().message();
    EXPECT_EQ(from_env->For("openai").retry.max_retries, 2);

    std::string flag = dir_.Write("flag.yaml", "providers: {openai: {max_retries: 4}}\n");
    auto from_flag = LoadProvidersConfig(flag);
    ASSERT_TRUE(from_flag) << from_flag.error().message();
    EXPECT_EQ(from_flag->For("openai").retry.max_retries, 4);

    auto missing = LoadProvidersConfig((dir_.path() / "nope.yaml").string());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
    ::setenv("STROWGER_PROVIDERS", (dir_.path() / "gone.yaml").c_str(), 1);
    missing = LoadProvidersConfig();
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);

    std::string broken = dir_.Write("broken.yaml", "providers:\n  openai:\n    max_retries: x\n");
    auto bad = LoadProvidersConfig(broken);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(bad.error().message(), broken +
                                         ":3:18: providers.openai.max_retries: expected an integer "
                                         ">= 0 and <= 100, got \"x\"");
}

TEST(BuiltinProvidersTest, ConfigIsAppliedToRegisteredProviders) {
    IoThread io;
    auto server = MockModelServer::Start({});
    ASSERT_TRUE(server) << server.error().ToString();
    auto text = std::string(
                    "providers:\n  openai:\n    api_key_env: \"\"\n    max_concurrency: 3\n"
                    "    max_retries: 1\n    timeout_secs: 7\n    base_url: ") +
                (*server)->base_url() +
                "\n    prices: {\"local-*\": {input_per_mtok: 2, output_per_mtok: 4}}\n"
                "  anthropic:\n    base_url: " +
                (*server)->anthropic_base_url() + "\n    api_key_env: \"\"\n";
    auto config = ParseProvidersConfig(text, "test.yaml");
    ASSERT_TRUE(config) << config.error().message();
    ProviderRegistry registry(io.executor());
    RegisterBuiltinProviders(registry, *config);
    auto names = registry.Names();
    for (const char* name : {"anthropic", "ollama", "openai", "scripted"}) {
        EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    }

    auto first = registry.Resolve("openai:local-model", "");
    ASSERT_TRUE(first) << first.error().ToString();
    auto second = registry.Resolve("openai:gpt-4o-mini", "");
    ASSERT_TRUE(second) << second.error().ToString();
    EXPECT_EQ(first->provider, second->provider);  // one instance per base URL: shared limits
    EXPECT_EQ(first->pricing.input_nano_usd_per_token, 2000);
    EXPECT_EQ(first->pricing.output_nano_usd_per_token, 4000);
    EXPECT_EQ(second->pricing.input_nano_usd_per_token, 150);  // built-in
    auto* resilient = dynamic_cast<ResilientProvider*>(first->provider.get());
    ASSERT_NE(resilient, nullptr);
    EXPECT_EQ(resilient->name(), "openai");
    EXPECT_EQ(resilient->options().retry.max_retries, 1);
    ASSERT_NE(resilient->limiter(), nullptr);
    EXPECT_EQ(resilient->limiter()->limits().max_concurrency, 3);
    auto* inner = dynamic_cast<OpenAiProvider*>(resilient->inner().get());
    ASSERT_NE(inner, nullptr);
    EXPECT_EQ(inner->config().base_url, (*server)->base_url());
    EXPECT_EQ(inner->config().timeout, seconds(7));
    EXPECT_EQ(inner->config().api_key_env, "");

    CompletionRequest request;
    request.model = first->model;
    Message user;
    user.content = "configured";
    request.messages.push_back(user);
    auto result = RunSync(first->provider->Complete(request, Deadline::After(seconds(10))));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "echo: configured");

    auto claude = registry.Resolve("anthropic:claude-3-5-haiku-20241022", "");
    ASSERT_TRUE(claude) << claude.error().ToString();
    EXPECT_EQ(claude->provider->name(), "anthropic");
    EXPECT_EQ(claude->pricing.input_nano_usd_per_token, 800);
    request.model = claude->model;
    result = RunSync(claude->provider->Complete(request, Deadline::After(seconds(10))));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "echo: configured");
    EXPECT_EQ((*server)->requests(), 2);
}

TEST(BuiltinProvidersTest, NoConfigOverloadUsesDefaults) {
    IoThread io;
    ProviderRegistry registry(io.executor());
    RegisterBuiltinProviders(registry);
    auto resolved = registry.Resolve("openai:gpt-4o", "");
    ASSERT_TRUE(resolved) << resolved.error().ToString();
    EXPECT_EQ(resolved->pricing.input_nano_usd_per_token, 2500);
    auto* resilient = dynamic_cast<ResilientProvider*>(resolved->provider.get());
    ASSERT_NE(resilient, nullptr);
    EXPECT_EQ(resilient->options().retry.max_retries, 3);
    EXPECT_EQ(resilient->limiter(), nullptr);
}

TEST(ProvidersConfigTest, ExpandingAliasesAndAbsurdPricesAreRefusedWithAPosition) {
    std::string text = "x:\n  l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
    for (int level = 1; level <= 7; ++level) {
        text += "  l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
        for (int i = 0; i < 10; ++i) text += (i ? ", *l" : "*l") + std::to_string(level - 1);
        text += "]\n";
    }
    auto bomb = ParseProvidersConfig(text + "providers: {openai: {headers: *l7}}\n", "p.yaml");
    ASSERT_FALSE(bomb);
    EXPECT_EQ(bomb.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_TRUE(bomb.error().message().starts_with("p.yaml:"));
    EXPECT_NE(bomb.error().message().find("too many nodes once aliases are expanded"),
              std::string::npos)
        << bomb.error().message();
    ExpectErrors(
        "providers:\n  openai:\n    prices: {m: {input_per_mtok: 1e300, "
        "output_per_mtok: 1}}\n",
        {"p.yaml:3:34: providers.openai.prices[\"m\"].input_per_mtok: expected a "
         "number >= 0 and <= 1000000, got \"1e300\"",
         "p.yaml:3:17: providers.openai.prices[\"m\"]: missing field "
         "\"input_per_mtok\""});
}

TEST(BuiltinProvidersTest, HeaderValuesOfTheFileAreSecretsRedactedWhenEchoed) {
    IoThread io;
    auto server = MockModelServer::Start({});
    ASSERT_TRUE(server) << server.error().ToString();
    const std::string credential = "team-credential-7c1f9e20d4";
    testing::MockRule echo;
    echo.behavior.status = 403;
    echo.behavior.error_message = "forbidden for X-Custom-Auth " + credential;
    (*server)->AddRule(echo);
    auto config = ParseProvidersConfig(
        "providers:\n  openai:\n    api_key_env: \"\"\n"
        "    max_retries: 0\n    base_url: " +
            (*server)->base_url() + "\n    headers: {X-Custom-Auth: \"" + credential + "\"}\n",
        "test.yaml");
    ASSERT_TRUE(config) << config.error().message();
    ProviderRegistry registry(io.executor());
    RegisterBuiltinProviders(registry, *config);
    auto model = registry.Resolve("openai:m", "");
    ASSERT_TRUE(model) << model.error().ToString();
    CompletionRequest request;
    request.model = model->model;
    request.messages.push_back(Message{Role::kUser, "hi", {}, {}, {}});
    auto result = RunSync(model->provider->Complete(request, Deadline::After(seconds(10))));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_EQ(result.error().message(), "openai: HTTP 403: forbidden for X-Custom-Auth [REDACTED]");
    ASSERT_EQ((*server)->recorded_requests().size(), 1u);
    EXPECT_EQ((*server)->recorded_requests()[0].Header("x-custom-auth"), credential);
}

}  // namespace
}  // namespace strowger::providers
