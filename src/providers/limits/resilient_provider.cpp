#include "providers/limits/resilient_provider.hpp"

#include <boost/asio/as_tuple.hpp>

#include <algorithm>
#include <cmath>
#include <string>

namespace strowger::providers {

namespace {

using Clock = std::chrono::steady_clock;

// A cancellable sleep in its own frame, so callers do not carry a timer while they are not
// sleeping. kCancelled if the awaiting coroutine is cancelled.
Awaitable<Status> Sleep(std::chrono::milliseconds delay) {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return CancelledError("cancelled while waiting to retry");
    co_return OkStatus();
}

Error AfterAttempts(Error error, int64_t attempts) {
    if (attempts <= 1) return error;
    return Error(error.code(),
                 error.message() + " (after " + std::to_string(attempts) + " attempts)",
                 error.details());
}

}  // namespace

bool IsRetryableProviderError(const Error& error, Deadline deadline) {
    switch (error.code()) {
        case ErrorCode::kUnavailable:
            return true;
        case ErrorCode::kDeadlineExceeded:
            // The provider's own timeout (or a 408) fired; the caller still has time.
            return error.details().http_status == 408 || !deadline.Expired();
        default:
            return false;
    }
}

int64_t EstimateTokens(const CompletionRequest& request, int64_t default_output_tokens) {
    size_t bytes = 0;
    for (const Message& message : request.messages) {
        bytes += message.content.size();
        for (const ToolCall& call : message.tool_calls) {
            bytes += call.name.size() + call.arguments.size();
        }
    }
    for (const ToolSpec& tool : request.tools) {
        bytes += tool.name.size() + tool.description.size() + tool.parameters_schema.size();
    }
    int64_t output = request.max_output_tokens.value_or(default_output_tokens);
    // max_output_tokens is the workflow's, any int64.
    return SaturatingAdd(static_cast<int64_t>((bytes + 3) / 4), std::max<int64_t>(0, output));
}

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int64_t retry,
                                       double random_unit) {
    double delay = static_cast<double>(policy.initial_backoff.count()) *
                   std::pow(std::max(1.0, policy.multiplier),
                            static_cast<double>(std::max<int64_t>(0, retry - 1)));
    delay = std::min(delay, static_cast<double>(policy.max_backoff.count()));
    double jitter = std::clamp(policy.jitter, 0.0, 1.0);
    delay *= 1.0 - jitter * std::clamp(random_unit, 0.0, 1.0);
    return std::chrono::milliseconds(static_cast<int64_t>(std::llround(delay)));
}

ResilientProvider::ResilientProvider(std::shared_ptr<Provider> inner, ResilienceOptions options,
                                     Executor executor)
    : inner_(std::move(inner)), options_(options) {
    if (options_.limits.enabled()) {
        limiter_ = RateLimiter::Create(std::move(executor), options_.limits);
    }
}

void ResilientProvider::SetOnQueued(std::function<void()> hook) {
    if (limiter_) limiter_->SetOnQueued(std::move(hook));
}

ResilientProvider::Stats ResilientProvider::stats() const {
    Stats stats;
    stats.calls = calls_.load(std::memory_order_relaxed);
    stats.attempts = attempts_.load(std::memory_order_relaxed);
    stats.retries = retries_.load(std::memory_order_relaxed);
    stats.gave_up = gave_up_.load(std::memory_order_relaxed);
    if (limiter_) stats.limiter = limiter_->stats();
    return stats;
}

Awaitable<Result<Completion>> ResilientProvider::Complete(CompletionRequest request,
                                                          Deadline deadline) {
    calls_.fetch_add(1, std::memory_order_relaxed);
    if (!limiter_ && options_.retry.max_retries <= 0) {
        attempts_.fetch_add(1, std::memory_order_relaxed);
        return inner_->Complete(std::move(request), deadline);
    }
    return Run(std::move(request), deadline);
}

Awaitable<Result<Completion>> ResilientProvider::Run(CompletionRequest request, Deadline deadline) {
    const int64_t estimate = limiter_ ? EstimateTokens(request, options_.default_output_tokens) : 0;
    const int64_t max_attempts = 1 + std::max<int64_t>(0, options_.retry.max_retries);
    StreamSink* const stream = request.stream;
    RetryListener* const listener = request.retries;
    try {
        for (int64_t attempt = 1;; ++attempt) {
            RateLimiter::Permit permit;
            if (limiter_) {
                auto acquired = co_await limiter_->Acquire(estimate, deadline);
                if (!acquired) {
                    co_return std::unexpected(
                        acquired.error().WithPrefix(std::string(inner_->name()) + ": "));
                }
                permit = std::move(*acquired);
            }
            attempts_.fetch_add(1, std::memory_order_relaxed);
            const bool last = attempt >= max_attempts;
            // Made in its own statement: the copy for this attempt is moved into the inner
            // provider's call rather than kept in this frame.
            auto call = last ? inner_->Complete(std::move(request), deadline)
                             : inner_->Complete(request, deadline);
            Result<Completion> result = co_await std::move(call);
            if (permit) {
                permit.Finish(
                    result ? SaturatingAdd(result->usage.input_tokens, result->usage.output_tokens)
                           : 0);
            }
            if (result) co_return result;

            const Error& error = result.error();
            auto give_up = [&]() -> Result<Completion> {
                if (attempt > 1) gave_up_.fetch_add(1, std::memory_order_relaxed);
                return std::unexpected(AfterAttempts(std::move(result).error(), attempt));
            };
            if (last || !IsRetryableProviderError(error, deadline)) co_return give_up();
            std::chrono::milliseconds delay{0};
            const int64_t retry_after_ms = error.details().retry_after_ms;
            if (retry_after_ms >= 0) {
                delay = std::chrono::milliseconds(retry_after_ms);
                if (delay > options_.retry.max_retry_after) co_return give_up();
                if (limiter_ && error.details().http_status == 429) {
                    limiter_->PauseUntil(Clock::now() + delay);
                }
            } else {
                Random& random = options_.random ? *options_.random : Random::Real();
                delay = BackoffDelay(options_.retry, attempt, random.NextDouble());
            }
            if (!deadline.IsNever() && Clock::now() + delay >= deadline.time()) {
                co_return give_up();
            }
            auto cancellation = co_await asio::this_coro::cancellation_state;
            if (cancellation.cancelled() != asio::cancellation_type::none) {
                co_return CancelledError(std::string(inner_->name()) +
                                         ": cancelled before a retry");
            }
            if (on_retry_) on_retry_(error, attempt, delay);
            if (listener) listener->OnRetry(error, attempt, delay);
            retries_.fetch_add(1, std::memory_order_relaxed);
            if (delay.count() > 0) {
                Status slept = co_await Sleep(delay);
                if (!slept) {
                    co_return std::unexpected(
                        slept.error().WithPrefix(std::string(inner_->name()) + ": "));
                }
            }
            if (stream) stream->OnReset();
        }
    } catch (const boost::system::system_error& e) {
        // Asio throws operation_aborted from a co_await begun after a cancellation.
        if (e.code() == asio::error::operation_aborted) {
            co_return CancelledError(std::string(inner_->name()) + ": cancelled");
        }
        co_return InternalError(std::string(inner_->name()) + ": " + e.what());
    }
}

}  // namespace strowger::providers
