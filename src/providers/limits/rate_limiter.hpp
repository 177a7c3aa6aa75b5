// Per-provider admission control: a concurrency cap plus requests-per-minute and
// tokens-per-minute token buckets (SPEC §6: "calls wait, runs do not fail").
//
// A call asks for a Permit with an estimate of the tokens it will use. It starts at once if the
// queue is empty and every limit allows it; otherwise it waits in one FIFO queue (strict order:
// a large request at the head is not overtaken by small ones). The head is admitted when
//   * fewer than max_concurrency permits are held,
//   * the request bucket holds at least 1 request,
//   * the token bucket holds min(estimate, tokens_per_minute) tokens (so an estimate larger
//     than the whole minute's budget still runs, when the bucket is full),
//   * and no Pause() is in force.
// Buckets start full (capacity = the per-minute limit) and refill continuously (limit per
// `window`). Admission takes one request and the full estimate (the token bucket may go
// negative); Permit::Finish(actual) corrects the estimate with the tokens the call really used,
// so later calls see the true rate. A permit releases its concurrency slot when destroyed.
//
// Waiting is asynchronous (no thread blocks), FIFO, and ends early with
//   kCancelled         the waiting coroutine's cancellation slot fired (terminal or partial),
//   kDeadlineExceeded  the call's deadline passed while it waited.
// Nothing else fails: rate limits only delay.
//
// Thread-safety: all methods are thread-safe; waiters may run on any executor. Bucket refills
// and deadlines are timed on a strand of the executor given to Create, whose io_context must
// outlive the limiter (as for HttpClient); waiters resume on their own executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>

#include "core/asio.hpp"
#include "core/deadline.hpp"
#include "core/result.hpp"

namespace strowger::providers {

struct RateLimits {
    int64_t max_concurrency = 0;      // 0 = unlimited
    int64_t requests_per_minute = 0;  // 0 = unlimited
    int64_t tokens_per_minute = 0;    // 0 = unlimited
    // The bucket period; one minute except in tests.
    std::chrono::milliseconds window{std::chrono::minutes(1)};

    bool enabled() const {
        return max_concurrency > 0 || requests_per_minute > 0 || tokens_per_minute > 0;
    }
};

// Counters since creation (tests, metrics).
struct RateLimiterStats {
    int64_t admitted = 0;         // permits granted
    int64_t waited = 0;           // of which had to queue
    int64_t cancelled = 0;        // waits ended by cancellation
    int64_t expired = 0;          // waits ended by the deadline
    int64_t in_flight = 0;        // permits held now
    int64_t max_in_flight = 0;    // most permits held at once
    int64_t queued = 0;           // calls waiting now
    int64_t wait_ms_total = 0;    // time admitted calls spent queued
    double tokens_available = 0;  // token bucket level now (may be negative)
};

class RateLimiter : public std::enable_shared_from_this<RateLimiter> {
  public:
    using Clock = std::chrono::steady_clock;

    static std::shared_ptr<RateLimiter> Create(Executor executor, RateLimits limits);
    ~RateLimiter();

    // The right to run one call. Move-only; destroying it releases the concurrency slot.
    class Permit {
      public:
        Permit() = default;
        Permit(Permit&& other) noexcept;
        Permit& operator=(Permit&& other) noexcept;
        ~Permit();

        // Replaces the call's token estimate by what it used (input + output tokens; 0 for a
        // call that failed before the model ran) and releases the slot.
        void Finish(int64_t actual_tokens);
        explicit operator bool() const { return limiter_ != nullptr; }

      private:
        friend class RateLimiter;
        Permit(std::shared_ptr<RateLimiter> limiter, int64_t tokens)
            : limiter_(std::move(limiter)), tokens_(tokens) {}
        void Release(int64_t actual_tokens);

        std::shared_ptr<RateLimiter> limiter_;
        int64_t tokens_ = 0;
    };

    // Waits until a call estimated at `estimated_tokens` may start (see the top of the file).
    Awaitable<Result<Permit>> Acquire(int64_t estimated_tokens, Deadline deadline);

    // No call starts before `until` (e.g. a 429's Retry-After). Later pauses extend it.
    void PauseUntil(Clock::time_point until);

    // Called (on the waiting caller's thread, outside the limiter's lock) each time a call
    // starts waiting in the queue. Set before use.
    void SetOnQueued(std::function<void()> on_queued);

    RateLimiterStats stats() const;
    const RateLimits& limits() const { return limits_; }

  private:
    struct Waiter;

    RateLimiter(Executor executor, RateLimits limits);

    // All *Locked functions need mutex_.
    void RefillLocked(Clock::time_point now);
    // Whether `tokens` may start now; if not and only time will tell, sets `*ready_at`.
    bool AdmissibleLocked(int64_t tokens, Clock::time_point now, Clock::time_point* ready_at);
    void AdmitLocked(int64_t tokens);
    // Admits queued waiters from the head while possible, expires waiters past their
    // deadline, arms the timer for the next moment anything can change. Returns the waiters to
    // wake (after the lock is released).
    std::vector<std::shared_ptr<Waiter>> PumpLocked(Clock::time_point now);
    void ArmTimerLocked(Clock::time_point when);
    void OnTimer();
    void Wake(const std::vector<std::shared_ptr<Waiter>>& waiters);
    void Released(int64_t estimate, int64_t actual_tokens);
    void RemoveLocked(Waiter& waiter);

    const RateLimits limits_;
    Executor strand_;
    std::unique_ptr<asio::steady_timer> timer_;  // touched only on strand_
    std::function<void()> on_queued_;

    mutable std::mutex mutex_;
    int64_t in_flight_ = 0;                                  // GUARDED_BY(mutex_)
    double requests_ = 0;                                    // GUARDED_BY(mutex_)
    double tokens_ = 0;                                      // GUARDED_BY(mutex_)
    Clock::time_point refilled_at_;                          // GUARDED_BY(mutex_)
    Clock::time_point paused_until_;                         // GUARDED_BY(mutex_)
    Clock::time_point timer_at_ = Clock::time_point::max();  // GUARDED_BY(mutex_)
    std::list<std::shared_ptr<Waiter>> queue_;               // GUARDED_BY(mutex_)
    std::multimap<Clock::time_point, Waiter*> deadlines_;    // GUARDED_BY(mutex_)
    RateLimiterStats stats_;                                 // GUARDED_BY(mutex_)
};

}  // namespace strowger::providers
