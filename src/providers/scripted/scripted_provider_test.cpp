// The scripted provider's callback form (Provider::Start): what a parked step relies on.
#include "providers/scripted/scripted_provider.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <optional>

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

}  // namespace
}  // namespace strowger::providers
