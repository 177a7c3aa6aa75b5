// The engine's shared timeout list: expiries in order on the owner's executor, disarm, stale
// expiries, owners that are gone, and that an idle list never keeps the executor busy.
#include "engine/internal/timeouts.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace strowger::engine::internal {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct Owner {
    explicit Owner(const Executor& executor, std::string owner_name)
        : entry(executor), name(std::move(owner_name)) {}
    Timeouts::Entry entry;
    std::string name;
    std::vector<std::string>* fired = nullptr;
    uint64_t fired_arm = 0;
};

void Fire(void* owner, uint64_t arm) {
    auto* o = static_cast<Owner*>(owner);
    if (o->entry.arms() != arm) return;  // stale
    o->fired_arm = arm;
    o->fired->push_back(o->name);
}

TEST(TimeoutsTest, ExpiriesFireInDueOrderAcrossLengths) {
    asio::io_context io;
    Timeouts timeouts(io.get_executor());
    std::vector<std::string> fired;
    auto now = Clock::now();
    std::vector<std::shared_ptr<Owner>> owners;
    // Two lengths; the shorter one's entry is due first although armed last.
    for (auto [name, offset, length] :
         {std::tuple{"b", 60, 60}, std::tuple{"c", 61, 60}, std::tuple{"a", 30, 5}}) {
        auto owner = std::make_shared<Owner>(io.get_executor(), name);
        owner->fired = &fired;
        timeouts.Arm(owner->entry, now + milliseconds(offset), milliseconds(length), owner, &Fire);
        owners.push_back(owner);
    }
    EXPECT_EQ(timeouts.ArmedForTest(), 3u);
    io.run();  // returns once all have fired: nothing is left to wait for
    EXPECT_EQ(fired, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_GE(Clock::now(), now + milliseconds(61));
    EXPECT_EQ(timeouts.ArmedForTest(), 0u);
    EXPECT_FALSE(timeouts.TimerWaitingForTest());
}

TEST(TimeoutsTest, ADisarmedEntryNeverFiresAndDoesNotKeepTheExecutorBusy) {
    asio::io_context io;
    Timeouts timeouts(io.get_executor());
    std::vector<std::string> fired;
    auto owner = std::make_shared<Owner>(io.get_executor(), "x");
    owner->fired = &fired;
    // Due in an hour: if the timer kept waiting after the disarm, run() would not return.
    timeouts.Arm(owner->entry, Clock::now() + std::chrono::hours(1), milliseconds(3'600'000), owner,
                 &Fire);
    EXPECT_TRUE(timeouts.TimerWaitingForTest());
    asio::post(io, [&] { Timeouts::Disarm(owner->entry); });
    io.run();
    EXPECT_TRUE(fired.empty());
    EXPECT_FALSE(owner->entry.armed());
    EXPECT_FALSE(timeouts.TimerWaitingForTest());
}

TEST(TimeoutsTest, RearmingWithinAHandlerKeepsTheTimerAndALaterArmDoesNotMoveIt) {
    asio::io_context io;
    Timeouts timeouts(io.get_executor());
    std::vector<std::string> fired;
    auto owner = std::make_shared<Owner>(io.get_executor(), "x");
    owner->fired = &fired;
    auto now = Clock::now();
    timeouts.Arm(owner->entry, now + milliseconds(40), milliseconds(40), owner, &Fire);
    // Disarm and arm again in one handler (a step ends, the next begins): no idle check cancels
    // the wait in between, and the entry fires once, for its second arm.
    asio::post(io, [&] {
        Timeouts::Disarm(owner->entry);
        timeouts.Arm(owner->entry, now + milliseconds(50), milliseconds(40), owner, &Fire);
    });
    io.run();
    EXPECT_EQ(fired, std::vector<std::string>{"x"});
    EXPECT_EQ(owner->fired_arm, 2u);
    EXPECT_GE(Clock::now(), now + milliseconds(50));
}

TEST(TimeoutsTest, AnExpiryOfAnEarlierArmIsStale) {
    asio::io_context io;
    Timeouts timeouts(io.get_executor());
    std::vector<std::string> fired;
    auto owner = std::make_shared<Owner>(io.get_executor(), "x");
    owner->fired = &fired;
    auto now = Clock::now();
    timeouts.Arm(owner->entry, now, milliseconds(1), owner, &Fire);
    // The expiry is taken and posted; the owner arms again before it runs.
    while (timeouts.ArmedForTest() != 0) io.run_one();
    timeouts.Arm(owner->entry, now + std::chrono::hours(1), milliseconds(1), owner, &Fire);
    io.poll();  // the posted expiry of arm 1 runs, sees arm 2, does nothing
    EXPECT_TRUE(fired.empty());
    EXPECT_TRUE(owner->entry.armed());
    Timeouts::Disarm(owner->entry);
    io.run();
    EXPECT_TRUE(fired.empty());
}

TEST(TimeoutsTest, AnOwnerThatIsGoneIsNotFiredAndItsEntryIsUnlinked) {
    asio::io_context io;
    Timeouts timeouts(io.get_executor());
    std::vector<std::string> fired;
    auto gone = std::make_shared<Owner>(io.get_executor(), "gone");
    auto kept = std::make_shared<Owner>(io.get_executor(), "kept");
    gone->fired = kept->fired = &fired;
    auto now = Clock::now();
    timeouts.Arm(gone->entry, now + milliseconds(10), milliseconds(10), gone, &Fire);
    timeouts.Arm(kept->entry, now + milliseconds(20), milliseconds(10), kept, &Fire);
    gone.reset();  // its entry's destructor disarms it
    EXPECT_EQ(timeouts.ArmedForTest(), 1u);
    io.run();
    EXPECT_EQ(fired, std::vector<std::string>{"kept"});
}

}  // namespace
}  // namespace strowger::engine::internal
