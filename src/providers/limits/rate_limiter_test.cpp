#include "providers/limits/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <thread>

#include "testing/mock_model_server.hpp"
#include "testing/test_util.hpp"

namespace strowger::providers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using strowger::testing::IoThread;
using Permit = RateLimiter::Permit;
using SteadyClock = std::chrono::steady_clock;

using strowger::testing::kWait;

// Runs `awaitable` on `executor`; the future gets its result. `slot` may cancel it.
template <typename T>
std::future<T> Spawn(Executor executor, Awaitable<T> awaitable, asio::cancellation_slot slot = {}) {
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    asio::co_spawn(executor, std::move(awaitable),
                   asio::bind_cancellation_slot(slot, [promise](std::exception_ptr error, T value) {
                       if (error) {
                           promise->set_exception(error);
                       } else {
                           promise->set_value(std::move(value));
                       }
                   }));
    return future;
}

template <typename T>
bool Ready(const std::future<T>& future) {
    return future.wait_for(milliseconds(0)) == std::future_status::ready;
}

template <typename T>
T Get(std::future<T>& future) {
    EXPECT_EQ(future.wait_for(kWait), std::future_status::ready);
    return future.get();
}

// Counts calls that started waiting, so a test can wait for "queued" without sleeping.
class QueueWatch {
  public:
    explicit QueueWatch(RateLimiter& limiter) {
        limiter.SetOnQueued([this] {
            std::lock_guard lock(mutex_);
            ++queued_;
            changed_.notify_all();
        });
    }
    bool WaitFor(int count) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, kWait, [&] { return queued_ >= count; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int queued_ = 0;
};

class RateLimiterTest : public ::testing::Test {
  protected:
    std::shared_ptr<RateLimiter> Make(RateLimits limits) {
        return RateLimiter::Create(io_.executor(), limits);
    }
    std::future<Result<Permit>> Acquire(const std::shared_ptr<RateLimiter>& limiter, int64_t tokens,
                                        Deadline deadline = Deadline::Never(),
                                        asio::cancellation_slot slot = {}) {
        return Spawn(io_.executor(), limiter->Acquire(tokens, deadline), slot);
    }
    void Cancel(asio::cancellation_signal& signal) {
        asio::post(io_.executor(), [&signal] { signal.emit(asio::cancellation_type::terminal); });
    }

    IoThread io_;
};

TEST_F(RateLimiterTest, ConcurrencyCapAdmitsInFifoOrder) {
    RateLimits limits;
    limits.max_concurrency = 2;
    auto limiter = Make(limits);
    QueueWatch watch(*limiter);
    auto first = Acquire(limiter, 1);
    auto second = Acquire(limiter, 1);
    Result<Permit> p1 = Get(first);
    Result<Permit> p2 = Get(second);
    ASSERT_TRUE(p1 && p2);

    auto third = Acquire(limiter, 1);
    ASSERT_TRUE(watch.WaitFor(1));
    auto fourth = Acquire(limiter, 1);
    ASSERT_TRUE(watch.WaitFor(2));
    auto fifth = Acquire(limiter, 1);
    ASSERT_TRUE(watch.WaitFor(3));
    EXPECT_FALSE(Ready(third));
    EXPECT_EQ(limiter->stats().queued, 3);

    p1->Finish(1);
    Result<Permit> p3 = Get(third);
    ASSERT_TRUE(p3);
    EXPECT_FALSE(Ready(fourth));
    EXPECT_FALSE(Ready(fifth));
    *p2 = Permit();  // released without Finish
    Result<Permit> p4 = Get(fourth);
    ASSERT_TRUE(p4);
    EXPECT_FALSE(Ready(fifth));
    *p3 = Permit();
    ASSERT_TRUE(Get(fifth));

    RateLimiterStats stats = limiter->stats();
    EXPECT_EQ(stats.admitted, 5);
    EXPECT_EQ(stats.waited, 3);
    EXPECT_EQ(stats.max_in_flight, 2);
    EXPECT_EQ(stats.queued, 0);
}

TEST_F(RateLimiterTest, RequestBucketMakesTheNextCallWait) {
    RateLimits limits;
    limits.requests_per_minute = 3;
    limits.window = milliseconds(600);  // one request back every 200 ms
    auto created = SteadyClock::now();
    auto limiter = Make(limits);
    for (int i = 0; i < 3; ++i) {
        auto call = Acquire(limiter, 1);
        Result<Permit> permit = Get(call);
        ASSERT_TRUE(permit);
        permit->Finish(1);
    }
    EXPECT_EQ(limiter->stats().waited, 0);
    auto fourth = Acquire(limiter, 1);
    ASSERT_TRUE(Get(fourth));
    auto waited = SteadyClock::now() - created;
    EXPECT_GE(waited, milliseconds(200));
    EXPECT_LT(waited, seconds(5));
    EXPECT_EQ(limiter->stats().waited, 1);
}

TEST_F(RateLimiterTest, TokenBucketIsReconciledWithActualUsage) {
    RateLimits limits;
    limits.tokens_per_minute = 1000;
    limits.window = std::chrono::hours(1);  // refills are negligible during the test
    auto limiter = Make(limits);
    QueueWatch watch(*limiter);
    auto first = Acquire(limiter, 800);
    Result<Permit> p1 = Get(first);
    ASSERT_TRUE(p1);
    EXPECT_NEAR(limiter->stats().tokens_available, 200, 1);
    p1->Finish(100);  // used far less than estimated: 700 come back
    EXPECT_NEAR(limiter->stats().tokens_available, 900, 1);

    auto second = Acquire(limiter, 900);
    Result<Permit> p2 = Get(second);
    ASSERT_TRUE(p2);
    EXPECT_EQ(limiter->stats().waited, 0);
    p2->Finish(1500);  // used more than estimated: the bucket goes into debt
    EXPECT_NEAR(limiter->stats().tokens_available, -600, 1);

    asio::cancellation_signal signal;
    auto third = Acquire(limiter, 10, Deadline::Never(), signal.slot());
    ASSERT_TRUE(watch.WaitFor(1));
    EXPECT_FALSE(Ready(third));
    Cancel(signal);
    Result<Permit> p3 = Get(third);
    ASSERT_FALSE(p3);
    EXPECT_EQ(p3.error().code(), ErrorCode::kCancelled);
}

TEST_F(RateLimiterTest, EstimateAboveTheBudgetRunsWhenTheBucketIsFull) {
    RateLimits limits;
    limits.tokens_per_minute = 100;
    limits.window = std::chrono::hours(1);
    auto limiter = Make(limits);
    auto call = Acquire(limiter, 500);
    ASSERT_TRUE(Get(call));
    EXPECT_NEAR(limiter->stats().tokens_available, -400, 1);
}

TEST_F(RateLimiterTest, CancelledWaiterLeavesTheQueueWorking) {
    RateLimits limits;
    limits.max_concurrency = 1;
    auto limiter = Make(limits);
    QueueWatch watch(*limiter);
    auto first = Acquire(limiter, 1);
    Result<Permit> p1 = Get(first);
    ASSERT_TRUE(p1);
    asio::cancellation_signal signal;
    auto second = Acquire(limiter, 1, Deadline::Never(), signal.slot());
    ASSERT_TRUE(watch.WaitFor(1));
    auto third = Acquire(limiter, 1);
    ASSERT_TRUE(watch.WaitFor(2));
    Cancel(signal);  // the head of the queue goes away
    Result<Permit> p2 = Get(second);
    ASSERT_FALSE(p2);
    EXPECT_EQ(p2.error().code(), ErrorCode::kCancelled);
    EXPECT_EQ(p2.error().message(), "rate limiter: cancelled while waiting");
    EXPECT_FALSE(Ready(third));
    p1->Finish(1);
    Result<Permit> p3 = Get(third);
    ASSERT_TRUE(p3);
    RateLimiterStats stats = limiter->stats();
    EXPECT_EQ(stats.cancelled, 1);
    EXPECT_EQ(stats.queued, 0);
    EXPECT_EQ(stats.in_flight, 1);
}

TEST_F(RateLimiterTest, DeadlinePassingWhileQueuedIsDeadlineExceeded) {
    RateLimits limits;
    limits.max_concurrency = 1;
    auto limiter = Make(limits);
    auto first = Acquire(limiter, 1);
    Result<Permit> p1 = Get(first);
    ASSERT_TRUE(p1);
    auto start = SteadyClock::now();
    auto second = Acquire(limiter, 1, Deadline::After(milliseconds(100)));
    Result<Permit> p2 = Get(second);
    ASSERT_FALSE(p2);
    EXPECT_EQ(p2.error().code(), ErrorCode::kDeadlineExceeded);
    EXPECT_GE(SteadyClock::now() - start, milliseconds(100));
    EXPECT_EQ(limiter->stats().expired, 1);
    p1->Finish(1);
    auto third = Acquire(limiter, 1);
    ASSERT_TRUE(Get(third));
}

TEST_F(RateLimiterTest, PauseDelaysEveryCall) {
    RateLimits limits;
    limits.max_concurrency = 10;
    auto limiter = Make(limits);
    auto start = SteadyClock::now();
    limiter->PauseUntil(start + milliseconds(150));
    auto call = Acquire(limiter, 1);
    ASSERT_TRUE(Get(call));
    EXPECT_GE(SteadyClock::now() - start, milliseconds(150));
}

struct Shared {
    std::shared_ptr<RateLimiter> limiter;
    std::atomic<int> in_flight{0};
    std::atomic<int> max_seen{0};
    std::atomic<int> done{0};
    int total = 0;
    std::promise<void> all_done;
};

Awaitable<void> Worker(Shared* shared) {
    auto permit = co_await shared->limiter->Acquire(10, Deadline::Never());
    if (permit) {
        int now = ++shared->in_flight;
        int seen = shared->max_seen.load();
        while (now > seen && !shared->max_seen.compare_exchange_weak(seen, now)) {
        }
        asio::steady_timer timer(co_await asio::this_coro::executor,
                                 std::chrono::microseconds(200));
        co_await timer.async_wait(asio::use_awaitable);
        --shared->in_flight;
        permit->Finish(5);
    }
    if (++shared->done == shared->total) shared->all_done.set_value();
}

TEST(RateLimiterThreadsTest, ManyThreadsNeverExceedTheCap) {
    asio::io_context io(4);
    auto work = asio::make_work_guard(io);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back([&io] { io.run(); });
    RateLimits limits;
    limits.max_concurrency = 3;
    limits.tokens_per_minute = 1'000'000;
    Shared shared;
    shared.limiter = RateLimiter::Create(io.get_executor(), limits);
    shared.total = 300;
    auto all_done = shared.all_done.get_future();
    for (int i = 0; i < shared.total; ++i) asio::co_spawn(io, Worker(&shared), asio::detached);
    EXPECT_EQ(all_done.wait_for(seconds(30)), std::future_status::ready);
    work.reset();
    for (auto& thread : threads) thread.join();
    EXPECT_LE(shared.max_seen.load(), 3);
    EXPECT_EQ(shared.limiter->stats().admitted, shared.total);
    EXPECT_EQ(shared.limiter->stats().in_flight, 0);
}

}  // namespace
}  // namespace strowger::providers
