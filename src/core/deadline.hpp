// A point in monotonic time by which an operation must finish. Passed down to every model
// call, tool run and store call (userver's deadline propagation).
#pragma once

#include <algorithm>
#include <chrono>

namespace strowger {

class Deadline {
  public:
    using Clock = std::chrono::steady_clock;

    static Deadline Never() { return Deadline(Clock::time_point::max()); }
    static Deadline After(Clock::duration d) { return Deadline(Clock::now() + d); }
    static Deadline At(Clock::time_point t) { return Deadline(t); }

    bool IsNever() const { return at_ == Clock::time_point::max(); }
    bool Expired() const { return !IsNever() && Clock::now() >= at_; }
    Clock::time_point time() const { return at_; }
    // Time left, never negative; a large value for Never().
    Clock::duration Remaining() const {
        if (IsNever()) return std::chrono::hours(24 * 365);
        return std::max(Clock::duration::zero(), at_ - Clock::now());
    }
    // The earlier of two deadlines.
    Deadline Min(Deadline other) const { return Deadline(std::min(at_, other.at_)); }

  private:
    explicit Deadline(Clock::time_point at) : at_(at) {}
    Clock::time_point at_;
};

}  // namespace strowger
