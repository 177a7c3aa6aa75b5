#include "providers/limits/resilient_provider.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>

#include <condition_variable>
#include <future>
#include <mutex>

#include "providers/anthropic/anthropic_provider.hpp"
#include "providers/openai/openai_provider.hpp"
#include "testing/mock_model_server.hpp"
#include "testing/test_util.hpp"

namespace strowger::providers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using strowger::testing::IoThread;
using strowger::testing::MockBehavior;
using strowger::testing::MockModelServer;
using strowger::testing::MockRule;
using strowger::testing::RunSync;
using SteadyClock = std::chrono::steady_clock;

using strowger::testing::kWait;

CompletionRequest Request(std::string node, std::string prompt = "hello") {
    CompletionRequest request;
    request.model = "m";
    Message user;
    user.content = std::move(prompt);
    request.messages.push_back(user);
    request.node = std::move(node);
    return request;
}

// Records what the decorator reports, and lets a test wait for it.
struct Events {
    void Retry(const Error& error, int64_t attempt, milliseconds delay) {
        std::lock_guard lock(mutex);
        retries.push_back({error.code(), attempt, delay});
        changed.notify_all();
    }
    void Queued() {
        std::lock_guard lock(mutex);
        ++queued;
        changed.notify_all();
    }
    bool WaitForRetries(size_t count) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, kWait, [&] { return retries.size() >= count; });
    }
    bool WaitForQueued(int count) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, kWait, [&] { return queued >= count; });
    }

    struct Retried {
        ErrorCode code;
        int64_t attempt;
        milliseconds delay;
    };
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<Retried> retries;
    int queued = 0;
};

class ResilientProviderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto server = MockModelServer::Start({});
        ASSERT_TRUE(server) << server.error().ToString();
        server_ = std::move(*server);
        http::HttpClientOptions options;
        options.proxy = http::ProxyConfig{};
        auto client = http::HttpClient::Create(io_.executor(), options);
        ASSERT_TRUE(client) << client.error().ToString();
        client_ = *client;
        random_ = Random::Seeded(7);
    }

    std::shared_ptr<Provider> OpenAi(milliseconds timeout = seconds(30)) {
        OpenAiConfig config;
        config.base_url = server_->base_url();
        config.api_key_env = "";
        config.timeout = timeout;
        return std::make_shared<OpenAiProvider>(config, client_);
    }

    std::shared_ptr<ResilientProvider> Make(ResilienceOptions options,
                                            std::shared_ptr<Provider> inner = nullptr) {
        if (!inner) inner = OpenAi();
        options.random = random_.get();
        auto provider = std::make_shared<ResilientProvider>(inner, options, io_.executor());
        provider->SetOnRetry([this](const Error& error, int64_t attempt, milliseconds delay) {
            events_.Retry(error, attempt, delay);
        });
        provider->SetOnQueued([this] { events_.Queued(); });
        return provider;
    }

    static ResilienceOptions FastRetries(int64_t max_retries = 3) {
        ResilienceOptions options;
        options.retry.max_retries = max_retries;
        options.retry.initial_backoff = milliseconds(20);
        options.retry.max_backoff = milliseconds(100);
        return options;
    }

    void AddRule(std::string node, MockBehavior behavior, int64_t times = -1) {
        MockRule rule;
        rule.node = std::move(node);
        rule.times = times;
        rule.behavior = std::move(behavior);
        server_->AddRule(std::move(rule));
    }

    Result<Completion> Call(const std::shared_ptr<ResilientProvider>& provider,
                            CompletionRequest request,
                            Deadline deadline = Deadline::After(seconds(20))) {
        return RunSync(provider->Complete(std::move(request), deadline));
    }

    // Starts a call on the I/O thread; `slot` may cancel it.
    std::future<Result<Completion>> Start(const std::shared_ptr<ResilientProvider>& provider,
                                          CompletionRequest request,
                                          asio::cancellation_slot slot = {}) {
        auto promise = std::make_shared<std::promise<Result<Completion>>>();
        auto future = promise->get_future();
        asio::co_spawn(io_.executor(),
                       provider->Complete(std::move(request), Deadline::After(seconds(30))),
                       asio::bind_cancellation_slot(
                           slot, [promise](std::exception_ptr, Result<Completion> result) {
                               promise->set_value(std::move(result));
                           }));
        return future;
    }

    void Cancel(asio::cancellation_signal& signal) {
        asio::post(io_.executor(), [&signal] { signal.emit(asio::cancellation_type::terminal); });
    }

    IoThread io_;
    std::unique_ptr<MockModelServer> server_;
    std::shared_ptr<http::HttpClient> client_;
    std::unique_ptr<Random> random_;
    Events events_;
};

TEST_F(ResilientProviderTest, RetryAfterSecondsIsHonouredExactly) {
    MockBehavior limited;
    limited.status = 429;
    limited.retry_after = "1";
    AddRule("limited", limited, 1);
    auto provider = Make(FastRetries());
    auto start = SteadyClock::now();
    auto result = Call(provider, Request("limited"));
    auto elapsed = SteadyClock::now() - start;
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "echo: hello");
    ASSERT_EQ(events_.retries.size(), 1u);
    EXPECT_EQ(events_.retries[0].code, ErrorCode::kUnavailable);
    EXPECT_EQ(events_.retries[0].attempt, 1);
    EXPECT_EQ(events_.retries[0].delay, milliseconds(1000));  // not the 20 ms backoff
    EXPECT_GE(elapsed, milliseconds(1000));
    EXPECT_LT(elapsed, seconds(8));
    EXPECT_EQ(server_->requests_for_node("limited"), 2);
    EXPECT_EQ(provider->stats().retries, 1);
    EXPECT_EQ(provider->stats().attempts, 2);
}

TEST_F(ResilientProviderTest, RetryAfterMsIsHonouredExactly) {
    MockBehavior limited;
    limited.status = 429;
    limited.headers.emplace_back("retry-after-ms", "250");
    AddRule("limited", limited, 2);
    auto provider = Make(FastRetries());
    auto start = SteadyClock::now();
    auto result = Call(provider, Request("limited"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_GE(SteadyClock::now() - start, milliseconds(500));
    ASSERT_EQ(events_.retries.size(), 2u);
    EXPECT_EQ(events_.retries[0].delay, milliseconds(250));
    EXPECT_EQ(events_.retries[1].delay, milliseconds(250));
    EXPECT_EQ(server_->requests_for_node("limited"), 3);
}

TEST_F(ResilientProviderTest, ServerErrorIsRetriedWithBackoffThenSucceeds) {
    MockBehavior failing;
    failing.status = 500;
    AddRule("flaky", failing, 2);
    auto provider = Make(FastRetries());
    auto result = Call(provider, Request("flaky"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(server_->requests_for_node("flaky"), 3);
    ASSERT_EQ(events_.retries.size(), 2u);
    // Exponential with jitter: 20 ms then 40 ms, each minus up to half.
    EXPECT_GE(events_.retries[0].delay, milliseconds(10));
    EXPECT_LE(events_.retries[0].delay, milliseconds(20));
    EXPECT_GE(events_.retries[1].delay, milliseconds(20));
    EXPECT_LE(events_.retries[1].delay, milliseconds(40));
    EXPECT_EQ(provider->stats().gave_up, 0);
}

TEST_F(ResilientProviderTest, TheRequestsRetryListenerHearsEveryFailedTry) {
    // The engine's per-call listener (for llm.retried) gets what the provider's hook gets, and
    // nothing for the try that succeeded.
    struct Listener final : RetryListener {
        struct Try {
            int64_t failed_try;
            int http_status;
            milliseconds delay;
        };
        std::vector<Try> tries;
        void OnRetry(const Error& error, int64_t failed_try, milliseconds delay) override {
            tries.push_back({failed_try, error.details().http_status, delay});
        }
    } listener;
    MockBehavior limited;
    limited.status = 429;
    limited.retry_after = "0";
    AddRule("listened", limited, 1);
    MockBehavior failing;
    failing.status = 502;
    AddRule("listened", failing, 1);
    auto provider = Make(FastRetries());
    CompletionRequest request = Request("listened");
    request.retries = &listener;
    auto result = Call(provider, std::move(request));
    ASSERT_TRUE(result) << result.error().ToString();
    ASSERT_EQ(listener.tries.size(), 2u);
    EXPECT_EQ(listener.tries[0].failed_try, 1);
    EXPECT_EQ(listener.tries[0].http_status, 429);
    EXPECT_EQ(listener.tries[0].delay, milliseconds(0));
    EXPECT_EQ(listener.tries[1].failed_try, 2);
    EXPECT_EQ(listener.tries[1].http_status, 502);
    ASSERT_EQ(events_.retries.size(), 2u);
    EXPECT_EQ(events_.retries[1].delay, listener.tries[1].delay);
}

TEST_F(ResilientProviderTest, ClientErrorsAreNotRetried) {
    struct Case {
        int status;
        ErrorCode code;
        std::string body;
    };
    for (const Case& c :
         {Case{400, ErrorCode::kInvalidArgument, ""}, Case{401, ErrorCode::kUnauthenticated, ""},
          Case{403, ErrorCode::kPermissionDenied, ""}, Case{404, ErrorCode::kNotFound, ""},
          Case{422, ErrorCode::kInvalidArgument, ""},
          Case{429, ErrorCode::kResourceExhausted,
               R"({"error":{"message":"quota","code":"insufficient_quota"}})"}}) {
        MockBehavior behavior;
        behavior.status = c.status;
        behavior.body = c.body;
        std::string node = "status-" + std::to_string(c.status);
        AddRule(node, behavior);
        auto provider = Make(FastRetries());
        auto result = Call(provider, Request(node));
        ASSERT_FALSE(result) << c.status;
        EXPECT_EQ(result.error().code(), c.code) << result.error().ToString();
        EXPECT_EQ(result.error().details().http_status, c.status);
        EXPECT_EQ(server_->requests_for_node(node), 1) << c.status;
        EXPECT_EQ(provider->stats().retries, 0);
        EXPECT_EQ(result.error().message().find("attempts"), std::string::npos);
    }
    EXPECT_TRUE(events_.retries.empty());
}

TEST_F(ResilientProviderTest, GivesUpAfterMaxRetriesKeepingCodeAndDetails) {
    MockBehavior failing;
    failing.status = 503;
    AddRule("down", failing);
    auto provider = Make(FastRetries(2));
    auto result = Call(provider, Request("down"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().details().http_status, 503);
    EXPECT_EQ(result.error().message(), "openai: HTTP 503: mock error 503 (after 3 attempts)");
    EXPECT_EQ(server_->requests_for_node("down"), 3);
    EXPECT_EQ(provider->stats().gave_up, 1);
}

TEST_F(ResilientProviderTest, ProviderTimeoutIsRetriedButNotTheCallersDeadline) {
    MockBehavior slow;
    slow.latency_ms = 20'000;
    AddRule("slow-once", slow, 1);
    auto provider = Make(FastRetries(), OpenAi(milliseconds(200)));
    auto result = Call(provider, Request("slow-once"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(server_->requests_for_node("slow-once"), 2);
    ASSERT_EQ(events_.retries.size(), 1u);
    EXPECT_EQ(events_.retries[0].code, ErrorCode::kDeadlineExceeded);

    MockBehavior stuck;
    stuck.hang = true;
    AddRule("stuck", stuck);
    auto patient = Make(FastRetries());
    auto start = SteadyClock::now();
    result = Call(patient, Request("stuck"), Deadline::After(milliseconds(300)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kDeadlineExceeded) << result.error().ToString();
    EXPECT_LT(SteadyClock::now() - start, seconds(5));
    EXPECT_EQ(server_->requests_for_node("stuck"), 1);
}

TEST_F(ResilientProviderTest, NoRetryThatWouldEndPastTheDeadlineOrTheRetryAfterCap) {
    MockBehavior limited;
    limited.status = 429;
    limited.retry_after = "30";
    AddRule("limited", limited);
    auto provider = Make(FastRetries());
    auto start = SteadyClock::now();
    auto result = Call(provider, Request("limited"), Deadline::After(seconds(5)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().details().retry_after_ms, 30'000);
    EXPECT_LT(SteadyClock::now() - start, seconds(4));
    EXPECT_EQ(server_->requests_for_node("limited"), 1);

    ResilienceOptions options = FastRetries();
    options.retry.max_retry_after = seconds(10);
    auto capped = Make(options);
    result = Call(capped, Request("limited"), Deadline::Never());
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(server_->requests_for_node("limited"), 2);
    EXPECT_TRUE(events_.retries.empty());
}

TEST_F(ResilientProviderTest, CancellationDuringTheRetryWaitIsPrompt) {
    MockBehavior limited;
    limited.status = 429;
    limited.retry_after = "20";  // within the call's 30 s deadline
    AddRule("limited", limited);
    auto provider = Make(FastRetries());
    asio::cancellation_signal signal;
    auto future = Start(provider, Request("limited"), signal.slot());
    ASSERT_TRUE(events_.WaitForRetries(1));
    auto start = SteadyClock::now();
    Cancel(signal);
    ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
    EXPECT_LT(SteadyClock::now() - start, seconds(5));
    auto result = future.get();
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kCancelled) << result.error().ToString();
    EXPECT_EQ(server_->requests_for_node("limited"), 1);
}

TEST_F(ResilientProviderTest, ConcurrencyCapHoldsAtTheServer) {
    server_->SetLatency(milliseconds(100));
    ResilienceOptions options = FastRetries();
    options.limits.max_concurrency = 2;
    auto provider = Make(options);
    std::vector<std::future<Result<Completion>>> calls;
    for (int i = 0; i < 6; ++i) {
        calls.push_back(Start(provider, Request("capped", "n" + std::to_string(i))));
    }
    for (auto& call : calls) {
        ASSERT_EQ(call.wait_for(kWait), std::future_status::ready);
        auto result = call.get();
        ASSERT_TRUE(result) << result.error().ToString();
    }
    EXPECT_EQ(server_->requests_for_node("capped"), 6);
    EXPECT_EQ(server_->max_active_requests(), 2);
    auto stats = provider->stats();
    EXPECT_EQ(stats.limiter.max_in_flight, 2);
    EXPECT_EQ(stats.limiter.waited, 4);
    EXPECT_EQ(stats.limiter.in_flight, 0);
}

TEST_F(ResilientProviderTest, RequestsPerMinuteDelaysTheExtraCall) {
    ResilienceOptions options = FastRetries();
    options.limits.requests_per_minute = 2;
    options.limits.window = milliseconds(400);  // one request back every 200 ms
    auto created = SteadyClock::now();
    auto provider = Make(options);
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(Call(provider, Request("rpm")));
    EXPECT_EQ(provider->stats().limiter.waited, 0);
    ASSERT_TRUE(Call(provider, Request("rpm")));
    EXPECT_GE(SteadyClock::now() - created, milliseconds(200));
    EXPECT_EQ(provider->stats().limiter.waited, 1);
    EXPECT_EQ(events_.queued, 1);
}

TEST_F(ResilientProviderTest, TokenBucketIsReconciledWithReportedUsage) {
    MockBehavior behavior;
    behavior.prompt_tokens = 10;
    behavior.completion_tokens = 5;
    AddRule("tpm", behavior);
    ResilienceOptions options = FastRetries();
    options.limits.tokens_per_minute = 1000;
    options.limits.window = std::chrono::hours(1);
    auto provider = Make(options);
    CompletionRequest request = Request("tpm", "12345678");  // 2 tokens + 500 output
    request.max_output_tokens = 500;
    EXPECT_EQ(EstimateTokens(request, 1024), 502);
    ASSERT_TRUE(Call(provider, request));
    EXPECT_NEAR(provider->stats().limiter.tokens_available, 1000 - 15, 1);
    // A failed call gives its estimate back.
    MockBehavior bad;
    bad.status = 400;
    AddRule("tpm-bad", bad);
    request.node = "tpm-bad";
    ASSERT_FALSE(Call(provider, request));
    EXPECT_NEAR(provider->stats().limiter.tokens_available, 1000 - 15, 1);
}

TEST_F(ResilientProviderTest, CallWaitingForASlotCanBeCancelled) {
    MockBehavior stuck;
    stuck.hang = true;
    AddRule("stuck", stuck);
    ResilienceOptions options = FastRetries();
    options.limits.max_concurrency = 1;
    auto provider = Make(options);
    asio::cancellation_signal first_signal;
    auto first = Start(provider, Request("stuck"), first_signal.slot());
    ASSERT_TRUE(server_->WaitForRequests(1, kWait));
    asio::cancellation_signal second_signal;
    auto second = Start(provider, Request("stuck"), second_signal.slot());
    ASSERT_TRUE(events_.WaitForQueued(1));
    Cancel(second_signal);
    ASSERT_EQ(second.wait_for(kWait), std::future_status::ready);
    auto result = second.get();
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kCancelled);
    EXPECT_EQ(result.error().message(), "openai: rate limiter: cancelled while waiting");
    EXPECT_EQ(server_->requests(), 1);
    Cancel(first_signal);
    ASSERT_EQ(first.wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(first.get().error().code(), ErrorCode::kCancelled);
    EXPECT_EQ(provider->stats().limiter.in_flight, 0);
}

TEST_F(ResilientProviderTest, RetriedStreamResetsTheSink) {
    MockBehavior broken;
    broken.stream_body =
        "data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n"
        "data: {\"error\":{\"message\":\"dropped\"}}\n\n";
    AddRule("stream", broken, 1);
    struct Sink : StreamSink {
        void OnDelta(std::string_view text) override { text_ += text; }
        void OnReset() override {
            ++resets;
            text_.clear();
        }
        std::string text_;
        int resets = 0;
    } sink;
    auto provider = Make(FastRetries());
    CompletionRequest request = Request("stream");
    request.stream = &sink;
    auto result = Call(provider, request);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(sink.resets, 1);
    EXPECT_EQ(sink.text_, "echo: hello");
    EXPECT_EQ(result->content, "echo: hello");
}

TEST_F(ResilientProviderTest, AnthropicOverloadedIsRetried) {
    MockBehavior overloaded;
    overloaded.status = 529;
    AddRule("busy", overloaded, 1);
    AnthropicConfig config;
    config.base_url = server_->anthropic_base_url();
    config.api_key_env = "";
    auto provider = Make(FastRetries(), std::make_shared<AnthropicProvider>(config, client_));
    auto result = Call(provider, Request("busy"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "echo: hello");
    ASSERT_EQ(events_.retries.size(), 1u);
    EXPECT_EQ(server_->requests_for_node("busy"), 2);
    EXPECT_EQ(provider->name(), "anthropic");
}

TEST_F(ResilientProviderTest, WithoutRetriesOrLimitsCallsGoStraightThrough) {
    MockBehavior failing;
    failing.status = 500;
    AddRule("once", failing);
    auto provider = Make(FastRetries(0));
    EXPECT_EQ(provider->limiter(), nullptr);
    auto result = Call(provider, Request("once"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message(), "openai: HTTP 500: mock error 500");
    EXPECT_EQ(provider->stats().attempts, 1);
    EXPECT_EQ(server_->requests_for_node("once"), 1);
}

TEST(RetryPolicyTest, RetryableErrorsAndBackoff) {
    Deadline later = Deadline::After(seconds(60));
    Deadline past = Deadline::At(SteadyClock::now() - milliseconds(1));
    EXPECT_TRUE(IsRetryableProviderError(Error(ErrorCode::kUnavailable, "x"), past));
    EXPECT_TRUE(IsRetryableProviderError(Error(ErrorCode::kDeadlineExceeded, "x"), later));
    EXPECT_FALSE(IsRetryableProviderError(Error(ErrorCode::kDeadlineExceeded, "x"), past));
    ErrorDetails timeout_status;
    timeout_status.http_status = 408;
    EXPECT_TRUE(
        IsRetryableProviderError(Error(ErrorCode::kDeadlineExceeded, "x", timeout_status), past));
    for (ErrorCode code :
         {ErrorCode::kCancelled, ErrorCode::kInvalidArgument, ErrorCode::kResourceExhausted,
          ErrorCode::kInternal, ErrorCode::kUnauthenticated, ErrorCode::kNotFound}) {
        EXPECT_FALSE(IsRetryableProviderError(Error(code, "x"), later)) << ErrorCodeName(code);
    }

    RetryPolicy policy;
    policy.initial_backoff = milliseconds(100);
    policy.max_backoff = milliseconds(1000);
    policy.multiplier = 3;
    policy.jitter = 0.5;
    EXPECT_EQ(BackoffDelay(policy, 1, 0.0), milliseconds(100));
    EXPECT_EQ(BackoffDelay(policy, 2, 0.0), milliseconds(300));
    EXPECT_EQ(BackoffDelay(policy, 3, 0.0), milliseconds(900));
    EXPECT_EQ(BackoffDelay(policy, 4, 0.0), milliseconds(1000));
    EXPECT_EQ(BackoffDelay(policy, 2, 0.999999), milliseconds(150));
    policy.jitter = 0;
    EXPECT_EQ(BackoffDelay(policy, 2, 0.7), milliseconds(300));
}

}  // namespace
}  // namespace strowger::providers
