// The scripted provider's callback form (Provider::Start): what a parked step relies on.
#include "providers/scripted/scripted_provider.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace strowger::providers {
namespace {

class ScriptedStartTest : public ::testing::Test {
  protected:
    std::shared_ptr<ScriptedProvider> Load(std::string_view script) {
        auto loaded = ScriptedProvider::LoadText(script, "script.yaml", io_.get_executor());
        EXPECT_TRUE(loaded.has_value()) << loaded.error().ToString();
        return loaded ? *loaded : nullptr;
    }
    static CompletionRequest Request(std::string prompt) {
        CompletionRequest request;
        request.model = "script.yaml";
        request.messages.push_back({Role::kUser, std::move(prompt), {}, {}, {}});
        return request;
    }
    // Starts a call whose answer goes to `answer`; returns what Start returned.
    std::optional<Result<Completion>> Start(ScriptedProvider& provider, std::string prompt,
                                            const Executor& executor,
                                            std::optional<Result<Completion>>& answer,
                                            Deadline deadline = Deadline::Never()) {
        return provider.Start(Request(std::move(prompt)), deadline, executor, signal_.slot(),
                              [&answer](Result<Completion> r) { answer = std::move(r); });
    }

    asio::io_context io_;
    asio::cancellation_signal signal_;
};

TEST_F(ScriptedStartTest, AnAnswerWithoutLatencyIsReturnedAtOnce) {
    auto provider = Load("default: hello\n");
    std::optional<Result<Completion>> later;
    auto now = Start(*provider, "hi", io_.get_executor(), later);
    ASSERT_TRUE(now.has_value());
    ASSERT_TRUE(now->has_value()) << now->error().ToString();
    EXPECT_EQ((*now)->content, "hello");
    EXPECT_EQ(io_.run(), 0u);  // nothing was left to run
    EXPECT_FALSE(later.has_value());
}

TEST_F(ScriptedStartTest, ALaterAnswerComesToDoneOnTheExecutorAfterItsLatency) {
    auto provider = Load("latency_ms: 30\ndefault: hello\n");
    // Both timer forms: the io_context's own executor, and a type-erased strand.
    for (Executor executor : {Executor(io_.get_executor()), Executor(asio::make_strand(io_))}) {
        std::optional<Result<Completion>> answer;
        auto started = std::chrono::steady_clock::now();
        EXPECT_FALSE(Start(*provider, "hi", executor, answer).has_value());
        EXPECT_FALSE(answer.has_value());  // never inside Start
        io_.restart();
        io_.run_for(std::chrono::seconds(10));
        ASSERT_TRUE(answer.has_value());
        ASSERT_TRUE(answer->has_value()) << answer->error().ToString();
        EXPECT_EQ((*answer)->content, "hello");
        EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(30));
        EXPECT_FALSE(signal_.slot().has_handler());  // the call let go of the slot
    }
}

TEST_F(ScriptedStartTest, EmittingOnTheSlotCancelsTheCall) {
    auto provider = Load("latency_ms: 60000\ndefault: hello\n");
    std::optional<Result<Completion>> answer;
    EXPECT_FALSE(Start(*provider, "hi", io_.get_executor(), answer).has_value());
    asio::post(io_, [this] { signal_.emit(asio::cancellation_type::terminal); });
    io_.run_for(std::chrono::seconds(10));
    ASSERT_TRUE(answer.has_value());
    ASSERT_FALSE(answer->has_value());
    EXPECT_EQ(answer->error().code(), ErrorCode::kCancelled);
    EXPECT_FALSE(signal_.slot().has_handler());
}

TEST_F(ScriptedStartTest, AHangingCallEndsAtItsDeadline) {
    auto provider = Load("rules:\n  - {when: {prompt_contains: stuck}, hang: true}\n");
    std::optional<Result<Completion>> answer;
    auto deadline = Deadline::After(std::chrono::milliseconds(30));
    EXPECT_FALSE(Start(*provider, "stuck", io_.get_executor(), answer, deadline).has_value());
    io_.run_for(std::chrono::seconds(10));
    ASSERT_TRUE(answer.has_value());
    ASSERT_FALSE(answer->has_value());
    EXPECT_EQ(answer->error().code(), ErrorCode::kDeadlineExceeded);
    EXPECT_TRUE(deadline.Expired());
}

// Loading a scripted file: what it may say, and how a bad one is reported.
class ScriptedFileTest : public ::testing::Test {
  protected:
    Result<std::shared_ptr<ScriptedProvider>> LoadText(const std::string& text) {
        return ScriptedProvider::LoadText(text, "script.yaml", io_.get_executor());
    }
    std::string LoadError(const std::string& text) {
        auto loaded = LoadText(text);
        EXPECT_FALSE(loaded.has_value()) << text;
        if (loaded) return "";
        EXPECT_EQ(loaded.error().code(), ErrorCode::kInvalidArgument);
        return loaded.error().message();
    }
    Result<Completion> Ask(ScriptedProvider& provider, std::string prompt) {
        CompletionRequest request;
        request.model = "script.yaml";
        request.messages.push_back({Role::kUser, std::move(prompt), {}, {}, {}});
        auto answer = provider.Start(std::move(request), Deadline::Never(), io_.get_executor(), {},
                                     [](Result<Completion>) {});
        EXPECT_TRUE(answer.has_value());  // no latency: answered at once
        if (!answer) return InternalError("no answer");
        return std::move(*answer);
    }

    asio::io_context io_;
};

// Found by scripted_provider_fuzz: a latency of 5.5e16 ms overflowed converting to a timer.
TEST_F(ScriptedFileTest, LatencyIsAtMostADay) {
    EXPECT_EQ(LoadError("latency_ms: 55555555555580000\n"),
              "script.yaml:1:13: latency_ms: expected an integer from 0 to 86400000, got "
              "55555555555580000");
    EXPECT_EQ(LoadError("rules:\n  - {reply: ok, latency_ms: 86400001}\n"),
              "script.yaml:2:29: rules[0].latency_ms: expected an integer from 0 to 86400000, "
              "got 86400001");
    EXPECT_TRUE(LoadText("latency_ms: 86400000\n").has_value());
}

TEST_F(ScriptedFileTest, UsageCountsMustBeIntegersFromZeroToABillion) {
    const std::string head = "rules:\n  - reply: ok\n    usage: {input_tokens: ";
    EXPECT_EQ(LoadError(head + "9223372036854775807}\n"),
              "script.yaml:3:27: rules[0].usage.input_tokens: expected an integer from 0 to "
              "1000000000, got 9223372036854775807");
    EXPECT_EQ(LoadError(head + "1000000001}\n"),
              "script.yaml:3:27: rules[0].usage.input_tokens: expected an integer from 0 to "
              "1000000000, got 1000000001");
    for (const char* bad : {"-4", "1.5", "twelve", "0x10"}) {
        EXPECT_NE(LoadError(head + bad + "}\n")
                      .find("rules[0].usage.input_tokens: expected an "
                            "integer from 0 to 1000000000, got"),
                  std::string::npos)
            << bad << ": " << LoadError(head + bad + "}\n");
    }
    EXPECT_NE(LoadError("rules:\n  - {reply: ok, usage: {output_tokens: -1}}\n")
                  .find("rules[0].usage.output_tokens: expected an integer from 0 to 1000000000"),
              std::string::npos);
    // A usage of the wrong shape is an error too, not an exception.
    EXPECT_NE(LoadError("rules:\n  - {reply: ok, usage: 5}\n").find("script.yaml:2:"),
              std::string::npos);
    auto loaded = LoadText(head + "1000000000, output_tokens: 0}\n");
    ASSERT_TRUE(loaded) << loaded.error().ToString();
    auto answer = Ask(**loaded, "hi");
    ASSERT_TRUE(answer) << answer.error().ToString();
    EXPECT_EQ(answer->usage.input_tokens, 1'000'000'000);
    EXPECT_EQ(answer->usage.output_tokens, 0);
}

TEST_F(ScriptedFileTest, PricesMustBeSaneNumbers) {
    for (const char* bad : {"-1", "1e300", ".nan", ".inf", "cheap"}) {
        std::string message = LoadError(std::string("prices: {input_per_mtok: ") + bad + "}\n");
        EXPECT_NE(message.find(std::string("script.yaml:1:26: prices.input_per_mtok: expected a "
                                           "number from 0 to 1000000, got ") +
                               bad),
                  std::string::npos)
            << message;
    }
    auto loaded = LoadText("prices: {input_per_mtok: 1000000, output_per_mtok: 0.6}\n");
    ASSERT_TRUE(loaded) << loaded.error().ToString();
    EXPECT_EQ((*loaded)->pricing().input_nano_usd_per_token, 1'000'000'000);
    EXPECT_EQ((*loaded)->pricing().output_nano_usd_per_token, 600);
    // The dearest price times the most tokens still fits; a cost never overflows.
    Usage most{kMaxTokensPerCall, kMaxTokensPerCall};
    Pricing dearest{1'000'000'000, 1'000'000'000};
    EXPECT_EQ(dearest.CostNanoUsd(most), 2'000'000'000'000'000'000);
    Pricing absurd{INT64_MAX, INT64_MAX};
    EXPECT_EQ(absurd.CostNanoUsd(most), INT64_MAX);
}

TEST_F(ScriptedFileTest, PromptRegexIsRe2AndTakesTimeLinearInThePrompt) {
    auto loaded = LoadText(
        "default: none\n"
        "rules:\n"
        "  - {when: {prompt_regex: \"^x.*y$\"}, reply: anchored}\n"
        "  - {when: {prompt_regex: \"(a+)+b\"}, reply: nested}\n");
    ASSERT_TRUE(loaded) << loaded.error().ToString();
    // std::regex recursed once per character here (SIGSEGV at 100,000)...
    auto long_prompt = Ask(**loaded, "x" + std::string(100'000, '.') + "y");
    ASSERT_TRUE(long_prompt) << long_prompt.error().ToString();
    EXPECT_EQ(long_prompt->content, "anchored");
    // ...and backtracked exponentially here (28 a's blocked the event loop for minutes).
    auto backtracking = Ask(**loaded, std::string(28, 'a'));
    ASSERT_TRUE(backtracking) << backtracking.error().ToString();
    EXPECT_EQ(backtracking->content, "none");
    auto nested = Ask(**loaded, std::string(28, 'a') + "b");
    ASSERT_TRUE(nested) << nested.error().ToString();
    EXPECT_EQ(nested->content, "nested");
}

TEST_F(ScriptedFileTest, AnInvalidPromptRegexIsALoadErrorAtItsPosition) {
    EXPECT_EQ(LoadError("rules:\n  - when: {prompt_regex: \"(unclosed\"}\n    reply: x\n"),
              "script.yaml:2:26: rules[0].when.prompt_regex: bad regular expression (RE2 "
              "syntax): missing ): (unclosed");
    // ECMAScript syntax RE2 does not have (a lookahead) is refused, not misread.
    EXPECT_NE(LoadError("rules:\n  - when: {prompt_regex: \"a(?=b)\"}\n    reply: x\n")
                  .find("script.yaml:2:26: rules[0].when.prompt_regex: bad regular expression"),
              std::string::npos);
}

TEST_F(ScriptedFileTest, ToolCallArgumentsFromExpandingAliasesAreRefused) {
    // Ten aliases wide, seven deep: ten million nodes once walked (the eight deep grew
    // to 4 GB and aborted).
    std::string text = "x-anchors:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level <= 7; ++level) {
        std::string previous = "*l" + std::to_string(level - 1);
        text += "  l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
        for (int i = 0; i < 10; ++i) text += (i ? ", " : "") + previous;
        text += "]\n";
    }
    text += "rules:\n  - tool_calls: [{name: probe, arguments: {a: *l7}}]\n";
    std::string message = LoadError(text);
    EXPECT_TRUE(message.starts_with("script.yaml:")) << message;
    EXPECT_NE(message.find("too many nodes once aliases are expanded"), std::string::npos)
        << message;
    // A syntax error is reported with its line and column too.
    EXPECT_TRUE(LoadError("rules: [unclosed\n").starts_with("script.yaml:2:1: syntax error"));
}

}  // namespace
}  // namespace strowger::providers
