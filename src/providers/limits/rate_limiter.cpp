#include "providers/limits/rate_limiter.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <cmath>
#include <tuple>

namespace strowger::providers {

namespace {

using DoubleMillis = std::chrono::duration<double, std::milli>;

}  // namespace

struct RateLimiter::Waiter {
    enum class State { kWaiting, kGranted, kExpired };
    using Channel = asio::experimental::concurrent_channel<void(boost::system::error_code)>;

    Waiter(const Executor& executor, int64_t tokens_in) : channel(executor, 1), tokens(tokens_in) {}

    Channel channel;  // receives one message: granted or expired
    int64_t tokens;
    State state = State::kWaiting;                                 // GUARDED_BY(mutex_)
    Clock::time_point queued_at;                                   // GUARDED_BY(mutex_)
    std::list<std::shared_ptr<Waiter>>::iterator position;         // GUARDED_BY(mutex_)
    std::multimap<Clock::time_point, Waiter*>::iterator deadline;  // GUARDED_BY(mutex_)
    bool has_deadline = false;                                     // GUARDED_BY(mutex_)
};

std::shared_ptr<RateLimiter> RateLimiter::Create(Executor executor, RateLimits limits) {
    return std::shared_ptr<RateLimiter>(new RateLimiter(std::move(executor), limits));
}

RateLimiter::RateLimiter(Executor executor, RateLimits limits)
    : limits_(limits), strand_(asio::make_strand(std::move(executor))) {
    requests_ = static_cast<double>(limits_.requests_per_minute);
    tokens_ = static_cast<double>(limits_.tokens_per_minute);
    refilled_at_ = Clock::now();
    stats_.tokens_available = tokens_;
}

RateLimiter::~RateLimiter() = default;

void RateLimiter::SetOnQueued(std::function<void()> on_queued) {
    on_queued_ = std::move(on_queued);
}

void RateLimiter::RefillLocked(Clock::time_point now) {
    if (now <= refilled_at_) return;
    double fraction = DoubleMillis(now - refilled_at_).count() /
                      static_cast<double>(std::max<int64_t>(1, limits_.window.count()));
    if (limits_.requests_per_minute > 0) {
        double capacity = static_cast<double>(limits_.requests_per_minute);
        requests_ = std::min(capacity, requests_ + capacity * fraction);
    }
    if (limits_.tokens_per_minute > 0) {
        double capacity = static_cast<double>(limits_.tokens_per_minute);
        tokens_ = std::min(capacity, tokens_ + capacity * fraction);
    }
    refilled_at_ = now;
}

bool RateLimiter::AdmissibleLocked(int64_t tokens, Clock::time_point now,
                                   Clock::time_point* ready_at) {
    // A full concurrency cap has no time to wait for: a release pumps the queue.
    if (limits_.max_concurrency > 0 && in_flight_ >= limits_.max_concurrency) return false;
    Clock::time_point at = std::max(now, paused_until_);
    const double window_ms = static_cast<double>(std::max<int64_t>(1, limits_.window.count()));
    // Time until a bucket holds `need`, rounded up so a wake-up never comes a hair early.
    auto when = [&](double level, double need, int64_t per_window) {
        double ms = (need - level) * window_ms / static_cast<double>(per_window);
        return now + std::chrono::microseconds(static_cast<int64_t>(std::ceil(ms * 1000.0)) + 1);
    };
    if (limits_.requests_per_minute > 0 && requests_ < 1.0) {
        at = std::max(at, when(requests_, 1.0, limits_.requests_per_minute));
    }
    if (limits_.tokens_per_minute > 0) {
        double need = static_cast<double>(std::min(tokens, limits_.tokens_per_minute));
        if (tokens_ < need) at = std::max(at, when(tokens_, need, limits_.tokens_per_minute));
    }
    if (at > now) {
        *ready_at = at;
        return false;
    }
    return true;
}

void RateLimiter::AdmitLocked(int64_t tokens) {
    ++in_flight_;
    stats_.max_in_flight = std::max(stats_.max_in_flight, in_flight_);
    ++stats_.admitted;
    if (limits_.requests_per_minute > 0) requests_ -= 1.0;
    if (limits_.tokens_per_minute > 0) tokens_ -= static_cast<double>(tokens);
}

void RateLimiter::RemoveLocked(Waiter& waiter) {
    if (waiter.has_deadline) {
        deadlines_.erase(waiter.deadline);
        waiter.has_deadline = false;
    }
    --stats_.queued;
    queue_.erase(waiter.position);  // may drop a reference to `waiter`: last
}

std::vector<std::shared_ptr<RateLimiter::Waiter>> RateLimiter::PumpLocked(Clock::time_point now) {
    std::vector<std::shared_ptr<Waiter>> wake;
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        Waiter& waiter = *deadlines_.begin()->second;
        waiter.state = Waiter::State::kExpired;
        ++stats_.expired;
        wake.push_back(*waiter.position);
        RemoveLocked(waiter);
    }
    Clock::time_point next = Clock::time_point::max();
    while (!queue_.empty()) {
        std::shared_ptr<Waiter> head = queue_.front();
        if (!AdmissibleLocked(head->tokens, now, &next)) break;
        AdmitLocked(head->tokens);
        head->state = Waiter::State::kGranted;
        stats_.wait_ms_total +=
            std::chrono::duration_cast<std::chrono::milliseconds>(now - head->queued_at).count();
        RemoveLocked(*head);
        wake.push_back(std::move(head));
    }
    if (!deadlines_.empty()) next = std::min(next, deadlines_.begin()->first);
    if (next != Clock::time_point::max()) ArmTimerLocked(next);
    return wake;
}

void RateLimiter::ArmTimerLocked(Clock::time_point when) {
    if (when == timer_at_) return;
    timer_at_ = when;
    // Posted under the lock, so the strand applies re-arms in the order they were decided; the
    // latest decision is always the right one (it saw the latest state).
    asio::post(strand_, [weak = weak_from_this(), when] {
        auto self = weak.lock();
        if (!self) return;
        if (!self->timer_) self->timer_ = std::make_unique<asio::steady_timer>(self->strand_);
        self->timer_->expires_at(when);
        self->timer_->async_wait([weak](boost::system::error_code ec) {
            if (ec) return;  // re-armed or destroyed
            if (auto limiter = weak.lock()) limiter->OnTimer();
        });
    });
}

void RateLimiter::OnTimer() {
    std::vector<std::shared_ptr<Waiter>> wake;
    {
        std::lock_guard lock(mutex_);
        timer_at_ = Clock::time_point::max();
        auto now = Clock::now();
        RefillLocked(now);
        wake = PumpLocked(now);
    }
    Wake(wake);
}

void RateLimiter::Wake(const std::vector<std::shared_ptr<Waiter>>& waiters) {
    for (const auto& waiter : waiters) waiter->channel.try_send(boost::system::error_code());
}

void RateLimiter::PauseUntil(Clock::time_point until) {
    std::vector<std::shared_ptr<Waiter>> wake;
    {
        std::lock_guard lock(mutex_);
        if (until <= paused_until_) return;
        paused_until_ = until;
        if (!queue_.empty()) wake = PumpLocked(Clock::now());
    }
    Wake(wake);
}

void RateLimiter::Released(int64_t estimate, int64_t actual_tokens) {
    std::vector<std::shared_ptr<Waiter>> wake;
    {
        std::lock_guard lock(mutex_);
        auto now = Clock::now();
        RefillLocked(now);
        --in_flight_;
        if (limits_.tokens_per_minute > 0 && actual_tokens != estimate) {
            tokens_ = std::min(static_cast<double>(limits_.tokens_per_minute),
                               tokens_ + static_cast<double>(estimate - actual_tokens));
        }
        if (!queue_.empty()) wake = PumpLocked(now);
    }
    Wake(wake);
}

Awaitable<Result<RateLimiter::Permit>> RateLimiter::Acquire(int64_t estimated_tokens,
                                                            Deadline deadline) {
    const int64_t tokens = std::max<int64_t>(0, estimated_tokens);
    Executor executor = co_await asio::this_coro::executor;
    std::shared_ptr<Waiter> waiter;
    std::vector<std::shared_ptr<Waiter>> wake;
    {
        std::lock_guard lock(mutex_);
        auto now = Clock::now();
        RefillLocked(now);
        Clock::time_point ready_at = Clock::time_point::max();
        if (queue_.empty() && AdmissibleLocked(tokens, now, &ready_at)) {
            AdmitLocked(tokens);
            co_return Permit(shared_from_this(), tokens);
        }
        if (deadline.Expired()) {
            ++stats_.expired;
            co_return DeadlineExceededError(
                "rate limiter: the deadline passed before the call "
                "could start");
        }
        waiter = std::make_shared<Waiter>(executor, tokens);
        waiter->queued_at = now;
        waiter->position = queue_.insert(queue_.end(), waiter);
        if (!deadline.IsNever()) {
            waiter->deadline = deadlines_.emplace(deadline.time(), waiter.get());
            waiter->has_deadline = true;
        }
        ++stats_.waited;
        ++stats_.queued;
        wake = PumpLocked(now);
    }
    Wake(wake);
    if (on_queued_) on_queued_();

    boost::system::error_code ec;
    try {
        std::tie(ec) = co_await waiter->channel.async_receive(asio::as_tuple(asio::use_awaitable));
    } catch (const boost::system::system_error& e) {
        // Thrown instead of waiting when the coroutine was cancelled before it got here.
        ec = e.code();
    }
    wake.clear();
    Result<Permit> result = std::unexpected(Error());
    {
        std::lock_guard lock(mutex_);
        switch (waiter->state) {
            case Waiter::State::kGranted:
                if (!ec) {
                    result = Permit(shared_from_this(), tokens);
                    break;
                }
                // Cancelled as it was granted: hand the slot and budget back.
                --in_flight_;
                if (limits_.requests_per_minute > 0) requests_ += 1.0;
                if (limits_.tokens_per_minute > 0) tokens_ += static_cast<double>(tokens);
                ++stats_.cancelled;
                result = CancelledError("rate limiter: cancelled while waiting");
                wake = PumpLocked(Clock::now());
                break;
            case Waiter::State::kExpired:
                result = DeadlineExceededError(
                    "rate limiter: the deadline passed while the call "
                    "waited to start");
                break;
            case Waiter::State::kWaiting: {
                bool was_head = queue_.front() == waiter;
                RemoveLocked(*waiter);
                ++stats_.cancelled;
                result = CancelledError("rate limiter: cancelled while waiting");
                if (was_head && !queue_.empty()) wake = PumpLocked(Clock::now());
                break;
            }
        }
    }
    Wake(wake);
    co_return result;
}

RateLimiterStats RateLimiter::stats() const {
    std::lock_guard lock(mutex_);
    RateLimiterStats stats = stats_;
    stats.in_flight = in_flight_;
    stats.tokens_available = tokens_;
    return stats;
}

RateLimiter::Permit::Permit(Permit&& other) noexcept
    : limiter_(std::move(other.limiter_)), tokens_(other.tokens_) {}

RateLimiter::Permit& RateLimiter::Permit::operator=(Permit&& other) noexcept {
    if (this != &other) {
        Release(tokens_);
        limiter_ = std::move(other.limiter_);
        tokens_ = other.tokens_;
    }
    return *this;
}

RateLimiter::Permit::~Permit() {
    Release(tokens_);
}

void RateLimiter::Permit::Finish(int64_t actual_tokens) {
    Release(std::max<int64_t>(0, actual_tokens));
}

void RateLimiter::Permit::Release(int64_t actual_tokens) {
    if (!limiter_) return;
    std::shared_ptr<RateLimiter> limiter = std::move(limiter_);
    limiter_.reset();
    limiter->Released(tokens_, actual_tokens);
}

}  // namespace strowger::providers
