#include "engine/internal/slots.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace strowger::engine::internal {

Awaitable<bool> Slots::Acquire() {
    if (limit_ <= 0) co_return true;
    // A cancelled wait is a result here, not an exception.
    co_await asio::this_coro::throw_if_cancelled(false);
    auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
    {
        std::lock_guard lock(mutex_);
        if (in_use_ < limit_ && waiters_.empty()) {
            ++in_use_;
            co_return true;
        }
        waiter->timer.expires_at(asio::steady_timer::time_point::max());
        waiters_.push_back(waiter);
    }
    // Woken by Release (granted) or by cancellation.
    co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    std::lock_guard lock(mutex_);
    if (waiter->granted) co_return true;  // granted as it was cancelled: the caller holds it
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), waiter));
    co_return false;
}

void Slots::Release() {
    if (limit_ <= 0) return;
    std::shared_ptr<Waiter> next;
    {
        std::lock_guard lock(mutex_);
        if (waiters_.empty()) {
            --in_use_;
            return;
        }
        // The slot passes to the longest waiter; in_use_ stays.
        next = std::move(waiters_.front());
        waiters_.pop_front();
        next->granted = true;
    }
    // The timer belongs to the waiter's executor (its run's strand).
    asio::post(next->timer.get_executor(), [next] { next->timer.cancel(); });
}

int64_t Slots::InUse() const {
    std::lock_guard lock(mutex_);
    return in_use_;
}

int64_t Slots::Waiting() const {
    std::lock_guard lock(mutex_);
    return static_cast<int64_t>(waiters_.size());
}

}  // namespace strowger::engine::internal
