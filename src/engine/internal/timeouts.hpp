// Attempt deadlines of an engine's runs, on one timer.
//
// Every model call and tool batch arms its attempt's timeout and disarms it when it returns,
// usually long before the deadline. With a timer per attempt, each arm that became the
// earliest pending timer reprogrammed the kernel's timerfd: a system call per step when calls
// return at once. Here arming and disarming link and unlink an entry in a list kept in
// deadline order; the one timer moves only when an entry is due before all others, and when it
// fires it takes what is due and waits for the next.
//
// Entries of one timeout length are armed in deadline order (now + length), so each length
// has its own list and an insert lands at its tail; a plan has a handful of lengths.
//
// Thread-safety: Arm and Disarm may be called from any thread, but for one entry only from
// its owner's executor (a run's strand), where `fire` also runs. `fire` is posted, never called
// inside Arm or Disarm; it gets the arm number it was armed by, to tell a stale expiry (the
// entry was disarmed or armed again meanwhile) from a current one.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "core/asio.hpp"

namespace strowger::engine::internal {

class Timeouts {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;
    using FireFn = void (*)(void* owner, uint64_t arm);
    struct State;

    // A timeout slot, embedded in its owner (a node task). Destroying it disarms it.
    class Entry {
      public:
        explicit Entry(Executor executor) : executor_(std::move(executor)) {}
        ~Entry();
        Entry(const Entry&) = delete;
        Entry& operator=(const Entry&) = delete;

        bool armed() const { return list_ != nullptr; }
        // How many times it was armed: the current arm's number.
        uint64_t arms() const { return arms_; }

      private:
        friend class Timeouts;
        friend struct State;
        Executor executor_;
        std::shared_ptr<State> state_;  // from the first Arm on
        std::weak_ptr<void> owner_;
        FireFn fire_ = nullptr;
        void* list_ = nullptr;  // the length's list while armed
        Entry* prev_ = nullptr;
        Entry* next_ = nullptr;
        TimePoint due_{};
        uint64_t arms_ = 0;
    };

    explicit Timeouts(Executor executor);
    ~Timeouts();
    Timeouts(const Timeouts&) = delete;
    Timeouts& operator=(const Timeouts&) = delete;

    // Arms `entry` (re-arming it if armed): at `due`, fire(owner.get(), entry.arms()) is posted
    // to the entry's executor while `owner` is alive. `length` groups entries (see above).
    void Arm(Entry& entry, TimePoint due, std::chrono::milliseconds length,
             const std::shared_ptr<void>& owner, FireFn fire);
    // Unlinks `entry`. An expiry already posted still runs: `fire` checks the arm number.
    static void Disarm(Entry& entry);

    // Entries armed now, and whether the timer waits (tests).
    size_t ArmedForTest() const;
    bool TimerWaitingForTest() const;

  private:
    std::shared_ptr<State> state_;
};

}  // namespace strowger::engine::internal
