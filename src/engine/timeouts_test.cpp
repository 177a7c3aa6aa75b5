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

class TimeoutsTest : public ::testing::Test {
  protected:
    // An owner whose expiries append its name to fired_.
    std::shared_ptr<Owner> MakeOwner(std::string name) {
        auto owner = std::make_shared<Owner>(io_.get_executor(), std::move(name));
        owner->fired = &fired_;
        return owner;
    }

    asio::io_context io_;
    Timeouts timeouts_{io_.get_executor()};
    std::vector<std::string> fired_;
};

TEST_F(TimeoutsTest, ExpiriesFireInDueOrderAcrossLengths) {
    auto now = Clock::now();
    std::vector<std::shared_ptr<Owner>> owners;
    // Two lengths; the shorter one's entry is due first although armed last.
    for (auto [name, offset, length] :
         {std::tuple{"b", 60, 60}, std::tuple{"c", 61, 60}, std::tuple{"a", 30, 5}}) {
        auto owner = MakeOwner(name);
        timeouts_.Arm(owner->entry, now + milliseconds(offset), milliseconds(length), owner, &Fire);
        owners.push_back(owner);
    }
    EXPECT_EQ(timeouts_.ArmedForTest(), 3u);
    io_.run();  // returns once all have fired: nothing is left to wait for
    EXPECT_EQ(fired_, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_GE(Clock::now(), now + milliseconds(61));
    EXPECT_EQ(timeouts_.ArmedForTest(), 0u);
    EXPECT_FALSE(timeouts_.TimerWaitingForTest());
}

TEST_F(TimeoutsTest, ADisarmedEntryNeverFiresAndDoesNotKeepTheExecutorBusy) {
    auto owner = MakeOwner("x");
    // Due in an hour: if the timer kept waiting after the disarm, run() would not return.
    timeouts_.Arm(owner->entry, Clock::now() + std::chrono::hours(1), milliseconds(3'600'000),
                  owner, &Fire);
    EXPECT_TRUE(timeouts_.TimerWaitingForTest());
    asio::post(io_, [&] { Timeouts::Disarm(owner->entry); });
    io_.run();
    EXPECT_TRUE(fired_.empty());
    EXPECT_FALSE(owner->entry.armed());
    EXPECT_FALSE(timeouts_.TimerWaitingForTest());
}

TEST_F(TimeoutsTest, RearmingWithinAHandlerKeepsTheTimerAndALaterArmDoesNotMoveIt) {
    auto owner = MakeOwner("x");
    auto now = Clock::now();
    timeouts_.Arm(owner->entry, now + milliseconds(40), milliseconds(40), owner, &Fire);
    // Disarm and arm again in one handler (a step ends, the next begins): no idle check cancels
    // the wait in between, and the entry fires once, for its second arm.
    asio::post(io_, [&] {
        Timeouts::Disarm(owner->entry);
        timeouts_.Arm(owner->entry, now + milliseconds(50), milliseconds(40), owner, &Fire);
    });
    io_.run();
    EXPECT_EQ(fired_, std::vector<std::string>{"x"});
    EXPECT_EQ(owner->fired_arm, 2u);
    EXPECT_GE(Clock::now(), now + milliseconds(50));
}

TEST_F(TimeoutsTest, AnExpiryOfAnEarlierArmIsStale) {
    auto owner = MakeOwner("x");
    auto now = Clock::now();
    timeouts_.Arm(owner->entry, now, milliseconds(1), owner, &Fire);
    // The expiry is taken and posted; the owner arms again before it runs.
    while (timeouts_.ArmedForTest() != 0) io_.run_one();
    timeouts_.Arm(owner->entry, now + std::chrono::hours(1), milliseconds(1), owner, &Fire);
    io_.poll();  // the posted expiry of arm 1 runs, sees arm 2, does nothing
    EXPECT_TRUE(fired_.empty());
    EXPECT_TRUE(owner->entry.armed());
    Timeouts::Disarm(owner->entry);
    io_.run();
    EXPECT_TRUE(fired_.empty());
}

TEST_F(TimeoutsTest, AnOwnerThatIsGoneIsNotFiredAndItsEntryIsUnlinked) {
    auto gone = MakeOwner("gone");
    auto kept = MakeOwner("kept");
    auto now = Clock::now();
    timeouts_.Arm(gone->entry, now + milliseconds(10), milliseconds(10), gone, &Fire);
    timeouts_.Arm(kept->entry, now + milliseconds(20), milliseconds(10), kept, &Fire);
    gone.reset();  // its entry's destructor disarms it
    EXPECT_EQ(timeouts_.ArmedForTest(), 1u);
    io_.run();
    EXPECT_EQ(fired_, std::vector<std::string>{"kept"});
}

}  // namespace
}  // namespace strowger::engine::internal
