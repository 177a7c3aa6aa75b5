// When a cron job fires (docs/formats/agents_cron_state_v1.md): a 5-field cron expression (or an
// @hourly-style alias) in an IANA time zone, `every` N seconds (60 s .. 1 day), or `at` one
// instant (at most a year ahead).
//
// Time zones come from the system's tzdata through Howard Hinnant's date library (GCC 12 has
// no std::chrono tzdb). DST, for cron expressions:
//   * a local time that does not exist (the hour skipped in spring) fires at the instant the
//     gap ends (02:30 on a New York spring-forward day fires at 03:00 EDT), once;
//   * a local time that happens twice (the hour repeated in autumn) fires once, at its first
//     occurrence.
// `every` and `at` are instants: DST does not move them.
//
// Thread-safety: Schedule is immutable after Parse; NextAfter is const and safe anywhere.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/result.hpp"

namespace date {
class time_zone;
}

namespace strowger::automation {

class Schedule {
  public:
    enum class Kind { kCron, kEvery, kAt };

    // {"kind":"cron","expr":"0 8 * * *","tz":"Europe/Berlin"} | {"kind":"every","every_secs":N}
    // | {"kind":"at","at":"RFC 3339"}. `now` bounds `at` (after it, at most a year ahead).
    // Errors name the field ("schedule.expr: field 3 (day of month): 32 is out of range
    // 1-31").
    static Result<Schedule> FromJson(const json::value& value, SystemTime now);
    // A CLI spec: "0 8 * * *" / "@daily" (cron, in `tz`, "" = UTC), "every 30m" / "every 3600s"
    // / "every 2h", "at 2026-12-24T18:00:00Z".
    static Result<Schedule> FromSpec(std::string_view spec, std::string_view tz, SystemTime now);
    // The pieces, checked: what FromJson and FromSpec build on.
    static Result<Schedule> Cron(std::string_view expr, std::string_view tz);
    static Result<Schedule> Every(int64_t seconds);
    static Result<Schedule> At(SystemTime at, SystemTime now);

    // The first fire time strictly after `after`; nullopt if there is none (a past `at`).
    // `anchor` is where `every` counts from (the job's creation).
    std::optional<SystemTime> NextAfter(SystemTime after, SystemTime anchor = {}) const;

    Kind kind() const { return kind_; }
    const std::string& expr() const { return expr_; }
    const std::string& tz() const { return tz_; }
    int64_t every_secs() const { return every_secs_; }
    SystemTime at() const { return at_; }
    json::object ToJson() const;
    // One line for the CLI: "cron 0 8 * * * (Europe/Berlin)", "every 3600s", "at …".
    std::string Describe() const;

  private:
    std::optional<SystemTime> NextCron(SystemTime after) const;

    Kind kind_ = Kind::kCron;
    std::string expr_;
    std::string tz_;  // "" = UTC
    const date::time_zone* zone_ = nullptr;
    int64_t every_secs_ = 0;
    SystemTime at_{};
    // The expression's fields as sets: minute 0-59, hour 0-23, day of month 1-31, month
    // 1-12, day of week 0-6 (Sunday 0; 7 is read as 0).
    std::bitset<60> minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_;
    std::bitset<13> months_;
    std::bitset<7> weekdays_;
    bool any_day_ = true;      // day of month was "*"
    bool any_weekday_ = true;  // day of week was "*"
};

}  // namespace strowger::automation
