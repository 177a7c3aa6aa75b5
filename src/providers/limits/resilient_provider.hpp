// A Provider decorator that retries transient failures and applies per-provider rate limits
// (SPEC §4: "429/5xx/timeouts are retried honouring Retry-After"; §6: calls wait, runs do not
// fail).
//
// Retries. A failed attempt is tried again, up to RetryPolicy::max_retries more times, if
//   * its code is kUnavailable (connection failures, 429 rate limits, 5xx, 529 overloaded,
//     error events inside a stream), or
//   * its code is kDeadlineExceeded while the caller's deadline has not passed (the provider's
//     own per-call timeout, or HTTP 408).
// Nothing else is retried: other 4xx (kInvalidArgument, kUnauthenticated, kPermissionDenied,
// kNotFound...), a spent quota (kResourceExhausted), malformed answers (kInternal) and
// cancellation are returned at once. The wait before a retry is
//   * exactly details.retry_after_ms when the error carries one (Retry-After / retry-after-ms);
//     if that exceeds RetryPolicy::max_retry_after the error is returned instead (a long pause
//     is for the engine's durable step retry, not a coroutine asleep in memory);
//   * otherwise exponential: initial_backoff * multiplier^(retry-1), at most max_backoff, minus
//     a random jitter fraction (the delay is drawn from [d * (1 - jitter), d]).
// A retry whose wait would end at or after the caller's deadline is not attempted: the last
// error is returned. The final error after retries keeps its code and details; its message
// gains " (after N attempts)". Cancellation (the awaiting coroutine's cancellation slot) ends a
// wait or a queued call promptly with kCancelled. A streamed call that is retried first calls
// StreamSink::OnReset().
//
// Limits. With any RateLimits set, each attempt first takes a RateLimiter permit (shared by
// every call through this instance) estimated at prompt bytes / 4 + max_output_tokens (or
// ResilienceOptions::default_output_tokens), and reconciles it with the reported usage after.
// A 429 with Retry-After also pauses the limiter, so other calls do not run into the same wall.
//
// With no limits and max_retries 0 a call goes straight to the inner provider (no extra frame).
// Between attempts the decorator keeps the CompletionRequest (each attempt gets a copy, the
// last one the original).
//
// Thread-safety: Complete() may be called concurrently from any executor; hooks are called on
// the calling coroutine's thread and must be set before use.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "core/asio.hpp"
#include "core/deadline.hpp"
#include "core/random.hpp"
#include "core/result.hpp"
#include "providers/limits/rate_limiter.hpp"
#include "providers/provider.hpp"

namespace strowger::providers {

struct RetryPolicy {
    int64_t max_retries = 3;  // attempts = max_retries + 1
    std::chrono::milliseconds initial_backoff{500};
    std::chrono::milliseconds max_backoff{std::chrono::seconds(30)};
    double multiplier = 2.0;
    double jitter = 0.5;  // fraction of the delay that is random, in [0, 1]
    std::chrono::milliseconds max_retry_after{std::chrono::minutes(2)};
};

struct ResilienceOptions {
    RetryPolicy retry;
    RateLimits limits;
    // Output tokens assumed for the token-bucket estimate when a request sets no maximum.
    int64_t default_output_tokens = 1024;
    // Jitter source; null = Random::Real(). Must outlive the provider, and be thread-safe if
    // calls run on several threads (a Random::Seeded one is not).
    Random* random = nullptr;
};

// Whether a provider error from a call made with `deadline` may succeed if tried again.
bool IsRetryableProviderError(const Error& error, Deadline deadline);

// Tokens a request is expected to use: its text bytes / 4, plus max_output_tokens or
// `default_output_tokens`.
int64_t EstimateTokens(const CompletionRequest& request, int64_t default_output_tokens);

// The wait before retry number `retry` (1-based) without Retry-After, for `random_unit` in
// [0, 1).
std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int64_t retry,
                                       double random_unit);

class ResilientProvider final : public Provider {
  public:
    struct Stats {
        int64_t calls = 0;     // Complete() calls
        int64_t attempts = 0;  // calls made to the inner provider
        int64_t retries = 0;   // attempts after a failure
        int64_t gave_up = 0;   // calls that failed after at least one retry
        RateLimiterStats limiter;
    };
    using RetryHook =
        std::function<void(const Error& error, int64_t attempt, std::chrono::milliseconds delay)>;

    // `executor` times the rate limiter's bucket refills (the registry's executor).
    ResilientProvider(std::shared_ptr<Provider> inner, ResilienceOptions options,
                      Executor executor);

    std::string_view name() const override { return inner_->name(); }
    Status CheckEnvironment() const override { return inner_->CheckEnvironment(); }
    Awaitable<Result<Completion>> Complete(CompletionRequest request, Deadline deadline) override;

    // Called before each retry wait: the error, the attempt that failed (1-based), the delay.
    void SetOnRetry(RetryHook hook) { on_retry_ = std::move(hook); }
    // Called when a call starts waiting for a rate-limit permit.
    void SetOnQueued(std::function<void()> hook);

    Stats stats() const;
    const std::shared_ptr<Provider>& inner() const { return inner_; }
    // Null when no rate limit is configured.
    RateLimiter* limiter() const { return limiter_.get(); }
    const ResilienceOptions& options() const { return options_; }

  private:
    Awaitable<Result<Completion>> Run(CompletionRequest request, Deadline deadline);

    std::shared_ptr<Provider> inner_;
    ResilienceOptions options_;
    std::shared_ptr<RateLimiter> limiter_;
    RetryHook on_retry_;
    std::atomic<int64_t> calls_{0};
    std::atomic<int64_t> attempts_{0};
    std::atomic<int64_t> retries_{0};
    std::atomic<int64_t> gave_up_{0};
};

}  // namespace strowger::providers
