// Time sources. Code that reads time takes a Clock& so tests can use a fake.
//
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace strowger {

using SystemTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
  public:
    virtual ~Clock() = default;
    // Wall-clock time, for timestamps that leave the process (ledger, API).
    virtual SystemTime Now() const = 0;
    // Monotonic time, for durations and deadlines inside the process.
    virtual SteadyTime SteadyNow() const = 0;

    // The process-wide real clock.
    static Clock& Real();
};

// Microseconds since the Unix epoch.
int64_t ToUnixMicros(SystemTime time);
SystemTime FromUnixMicros(int64_t micros);

// RFC 3339 in UTC with microseconds: "2026-11-21T10:00:00.123456Z".
std::string FormatRfc3339(SystemTime time);
// The same into out[0..kRfc3339Size) (no allocation; ledger events carry one each).
inline constexpr size_t kRfc3339Size = 27;
void FormatRfc3339To(char* out, SystemTime time);
// Parses the format above (fraction optional, 'Z' or +00:00 required). kInvalidArgument also for
// a field out of range and for a time SystemTime cannot hold (before 1677 or after 2262).
Result<SystemTime> ParseRfc3339(std::string_view text);

}  // namespace strowger
