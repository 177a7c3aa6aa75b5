// A counting limit with a FIFO queue: the engine's caps on concurrently executing runs and
// nodes (SPEC §6). Acquire waits (asynchronously, on the caller's executor) until a slot is
// free; Release hands the slot straight to the longest waiter, so a burst cannot overtake it.
//
// A waiter costs a timer and a queue entry; what waits is durable already (a queued run has
// its run.created committed and is `pending` in the store; a queued node has not started).
//
// Cancellation: a waiting Acquire is cancelled through the awaiting coroutine's cancellation
// slot (the run's cancel/pause, a sibling's failure) and returns false, holding nothing.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include <boost/asio/steady_timer.hpp>

#include "core/asio.hpp"

namespace strowger::engine::internal {

class Slots {
  public:
    explicit Slots(int64_t limit) : limit_(limit) {}  // limit <= 0: unlimited
    Slots(const Slots&) = delete;
    Slots& operator=(const Slots&) = delete;

    bool limited() const { return limit_ > 0; }
    // True once a slot is held (the caller must Release it); false if cancelled while waiting.
    Awaitable<bool> Acquire();
    void Release();

    int64_t InUse() const;
    int64_t Waiting() const;

  private:
    struct Waiter {
        explicit Waiter(const Executor& executor) : timer(executor) {}
        asio::steady_timer timer;
        bool granted = false;  // GUARDED_BY(Slots::mutex_)
    };

    const int64_t limit_;
    mutable std::mutex mutex_;
    int64_t in_use_ = 0;                           // GUARDED_BY(mutex_)
    std::deque<std::shared_ptr<Waiter>> waiters_;  // GUARDED_BY(mutex_)
};

}  // namespace strowger::engine::internal
