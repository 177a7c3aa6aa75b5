#include "automation/schedule.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <charconv>

#include "core/strings.hpp"

namespace strowger::automation {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

constexpr int64_t kMinEverySecs = 60;
constexpr int64_t kMaxEverySecs = 86'400;
constexpr auto kMaxAtAhead = std::chrono::hours(24 * 366);

struct FieldInfo {
    const char* name;
    int min;
    int max;
    const char* const* names;  // names for min.. (months: jan = 1), or null
    int names_from;
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr FieldInfo kFields[] = {
    {"minute", 0, 59, nullptr, 0},       {"hour", 0, 23, nullptr, 0},
    {"day of month", 1, 31, nullptr, 0}, {"month", 1, 12, kMonthNames, 1},
    {"day of week", 0, 7, kDayNames, 0},
};

std::string FieldPrefix(size_t index) {
    return "field " + std::to_string(index + 1) + " (" + kFields[index].name + "): ";
}

Result<int> ParseValue(std::string_view text, size_t index) {
    const FieldInfo& f = kFields[index];
    if (f.names != nullptr && text.size() == 3) {
        std::string lower = AsciiLower(text);
        const int count = f.names == kMonthNames ? 12 : 7;
        for (int i = 0; i < count; ++i) {
            if (lower == f.names[i]) return i + f.names_from;
        }
    }
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return InvalidArgumentError(FieldPrefix(index) + "\"" + std::string(text) +
                                    "\" is not a number" +
                                    (f.names != nullptr ? " or a name" : std::string()));
    }
    if (value < f.min || value > f.max) {
        return InvalidArgumentError(FieldPrefix(index) + std::to_string(value) +
                                    " is out of range " + std::to_string(f.min) + "-" +
                                    std::to_string(f.max));
    }
    return value;
}

// One field ("*/15", "1-5", "mon,wed,fri", "0-30/10") into `bits` (bit i = value i); `star` says
// whether it was "*" (or "*/1").
template <size_t N>
Status ParseField(std::string_view text, size_t index, std::bitset<N>& bits, bool& star) {
    const FieldInfo& f = kFields[index];
    star = false;
    for (const auto& item : Split(text, ',')) {
        if (item.empty()) return InvalidArgumentError(FieldPrefix(index) + "empty list item");
        std::string_view range = item;
        int step = 1;
        if (auto slash = item.find('/'); slash != std::string::npos) {
            range = std::string_view(item).substr(0, slash);
            std::string_view step_text = std::string_view(item).substr(slash + 1);
            auto [end, ec] =
                std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
            if (step_text.empty() || ec != std::errc() ||
                end != step_text.data() + step_text.size() || step < 1 || step > f.max) {
                return InvalidArgumentError(FieldPrefix(index) + "step \"" +
                                            std::string(step_text) + "\" must be 1-" +
                                            std::to_string(f.max));
            }
        }
        int low = f.min;
        int high = f.max == 7 ? 6 : f.max;  // "*" of day of week is 0-6
        if (range == "*") {
            // The whole range.
        } else if (auto dash = range.find('-'); dash != std::string_view::npos) {
            STROWGER_ASSIGN_OR_RETURN(low, ParseValue(range.substr(0, dash), index));
            STROWGER_ASSIGN_OR_RETURN(high, ParseValue(range.substr(dash + 1), index));
            if (high < low) {
                return InvalidArgumentError(FieldPrefix(index) + "range \"" + std::string(range) +
                                            "\" ends before it starts");
            }
        } else {
            STROWGER_ASSIGN_OR_RETURN(low, ParseValue(range, index));
            if (item.find('/') == std::string::npos) high = low;
        }
        for (int v = low; v <= high; v += step) {
            bits.set(static_cast<size_t>(f.max == 7 && v == 7 ? 0 : v));
        }
    }
    star = text == "*";
    return OkStatus();
}

std::string Expand(std::string_view expr) {
    std::string lower = AsciiLower(Trim(expr));
    if (lower == "@yearly" || lower == "@annually") return "0 0 1 1 *";
    if (lower == "@monthly") return "0 0 1 * *";
    if (lower == "@weekly") return "0 0 * * 0";
    if (lower == "@daily" || lower == "@midnight") return "0 0 * * *";
    if (lower == "@hourly") return "0 * * * *";
    return std::string(Trim(expr));
}

Result<int64_t> ParseDurationSecs(std::string_view text) {
    text = Trim(text);
    int64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (text.empty() || ec != std::errc() || end == text.data()) {
        return InvalidArgumentError("\"" + std::string(text) +
                                    "\" is not a duration (e.g. 90s, 30m, 2h, 1d)");
    }
    std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
    int64_t scale = 0;
    if (unit.empty() || unit == "s") scale = 1;
    if (unit == "m") scale = 60;
    if (unit == "h") scale = 3600;
    if (unit == "d") scale = 86'400;
    if (scale == 0 || number > kMaxEverySecs) {
        return InvalidArgumentError("\"" + std::string(text) +
                                    "\" is not a duration (e.g. 90s, 30m, 2h, 1d)");
    }
    return number * scale;
}

}  // namespace

Result<Schedule> Schedule::Cron(std::string_view expr, std::string_view tz) {
    Schedule s;
    s.kind_ = Kind::kCron;
    s.expr_ = std::string(Trim(expr));
    if (StartsWith(s.expr_, "@") && Expand(s.expr_) == s.expr_) {
        return InvalidArgumentError("unknown alias \"" + s.expr_ +
                                    "\" (known: @yearly, @annually, @monthly, @weekly, @daily, "
                                    "@midnight, @hourly)");
    }
    std::string expanded = Expand(s.expr_);
    std::vector<std::string> fields;
    for (auto& part : Split(expanded, ' ')) {
        if (!part.empty()) fields.push_back(part);
    }
    if (fields.size() != 5) {
        return InvalidArgumentError(
            "\"" + s.expr_ + "\" has " + std::to_string(fields.size()) +
            " fields; a cron expression has 5 (minute hour day-of-month month day-of-week)");
    }
    bool star = false;
    STROWGER_TRY(ParseField(fields[0], 0, s.minutes_, star));
    STROWGER_TRY(ParseField(fields[1], 1, s.hours_, star));
    STROWGER_TRY(ParseField(fields[2], 2, s.days_, s.any_day_));
    STROWGER_TRY(ParseField(fields[3], 3, s.months_, star));
    STROWGER_TRY(ParseField(fields[4], 4, s.weekdays_, s.any_weekday_));
    if (!tz.empty() && tz != "UTC") {
        try {
            s.zone_ = date::locate_zone(tz);
        } catch (const std::exception&) {
            return InvalidArgumentError("unknown time zone \"" + std::string(tz) +
                                        "\" (an IANA name such as Europe/Berlin)");
        }
        s.tz_ = std::string(tz);
    }
    // An expression that can never match (30 February) is refused now, not at the first fire.
    if (!s.NextCron(SystemTime{} + std::chrono::hours(24 * 365 * 56))) {
        return InvalidArgumentError("\"" + s.expr_ + "\" never matches a date");
    }
    return s;
}

Result<Schedule> Schedule::Every(int64_t seconds) {
    if (seconds < kMinEverySecs || seconds > kMaxEverySecs) {
        return InvalidArgumentError("every_secs must be 60 to 86400 (a minute to a day), not " +
                                    std::to_string(seconds));
    }
    Schedule s;
    s.kind_ = Kind::kEvery;
    s.every_secs_ = seconds;
    return s;
}

Result<Schedule> Schedule::At(SystemTime at, SystemTime now) {
    if (at <= now) {
        return InvalidArgumentError("at " + FormatRfc3339(at) + " is in the past");
    }
    if (at > now + kMaxAtAhead) {
        return InvalidArgumentError("at " + FormatRfc3339(at) + " is more than a year ahead");
    }
    Schedule s;
    s.kind_ = Kind::kAt;
    s.at_ = at;
    return s;
}

Result<Schedule> Schedule::FromJson(const json::value& value, SystemTime now) {
    if (value.is_string()) return FromSpec(value.as_string(), "", now);
    const auto* o = value.if_object();
    if (o == nullptr) {
        return InvalidArgumentError("schedule: expected an object with \"kind\" or a string");
    }
    std::string kind(JsonString(*o, "kind"));
    auto prefixed = [](Result<Schedule> r, std::string_view field) -> Result<Schedule> {
        if (!r)
            return std::unexpected(r.error().WithPrefix("schedule." + std::string(field) + ": "));
        return r;
    };
    if (kind == "cron") {
        const auto* expr = o->if_contains("expr");
        if (expr == nullptr || !expr->is_string()) {
            return InvalidArgumentError("schedule.expr: a cron schedule needs an expr string");
        }
        const auto* tz = o->if_contains("tz");
        std::string zone;
        if (tz != nullptr && tz->is_string()) zone = std::string(tz->as_string());
        if (tz != nullptr && !tz->is_string() && !tz->is_null()) {
            return InvalidArgumentError("schedule.tz: expected a string");
        }
        auto s = Cron(expr->as_string(), zone);
        if (!s && StartsWith(s.error().message(), "unknown time zone"))
            return prefixed(std::move(s), "tz");
        return prefixed(std::move(s), "expr");
    }
    if (kind == "every") {
        const auto* secs = o->if_contains("every_secs");
        if (secs == nullptr || !secs->is_int64()) {
            return InvalidArgumentError("schedule.every_secs: expected a whole number of seconds");
        }
        return prefixed(Every(secs->as_int64()), "every_secs");
    }
    if (kind == "at") {
        const auto* at = o->if_contains("at");
        if (at == nullptr || !at->is_string()) {
            return InvalidArgumentError("schedule.at: expected an RFC 3339 time");
        }
        auto parsed = ParseRfc3339(at->as_string());
        if (!parsed) return std::unexpected(parsed.error().WithPrefix("schedule.at: "));
        return prefixed(At(*parsed, now), "at");
    }
    return InvalidArgumentError("schedule.kind: expected \"cron\", \"every\" or \"at\", not \"" +
                                kind + "\"");
}

Result<Schedule> Schedule::FromSpec(std::string_view spec, std::string_view tz, SystemTime now) {
    spec = Trim(spec);
    if (StartsWith(spec, "every ")) {
        STROWGER_ASSIGN_OR_RETURN(int64_t secs, ParseDurationSecs(spec.substr(6)));
        return Every(secs);
    }
    if (StartsWith(spec, "at ")) {
        auto parsed = ParseRfc3339(Trim(spec.substr(3)));
        if (!parsed) return std::unexpected(parsed.error().WithPrefix("at: "));
        return At(*parsed, now);
    }
    return Cron(spec, tz);
}

std::optional<SystemTime> Schedule::NextAfter(SystemTime after, SystemTime anchor) const {
    switch (kind_) {
        case Kind::kAt:
            if (at_ > after) return at_;
            return std::nullopt;
        case Kind::kEvery: {
            const auto period =
                std::chrono::duration_cast<SystemTime::duration>(seconds(every_secs_));
            if (after < anchor) return anchor + period;
            auto n = (after - anchor) / period + 1;
            return anchor + n * period;
        }
        case Kind::kCron:
            return NextCron(after);
    }
    return std::nullopt;
}

std::optional<SystemTime> Schedule::NextCron(SystemTime after) const {
    using date::local_days;
    using date::local_seconds;
    using LocalMinutes = date::local_time<minutes>;
    const auto after_s = std::chrono::floor<seconds>(after);
    LocalMinutes t;
    if (zone_ != nullptr) {
        t = std::chrono::floor<minutes>(zone_->to_local(after_s)) + minutes(1);
    } else {
        t = LocalMinutes(std::chrono::floor<minutes>(after_s).time_since_epoch()) + minutes(1);
    }
    const auto limit = t + std::chrono::hours(24 * 366 * 5);
    while (t < limit) {
        const auto day = std::chrono::floor<date::days>(t);
        const date::year_month_day ymd(day);
        const unsigned month = static_cast<unsigned>(ymd.month());
        if (!months_[month]) {
            const auto next = (ymd.year() / ymd.month() / 1) + date::months(1);
            t = LocalMinutes(local_days(date::year_month_day(next)));
            continue;
        }
        const unsigned dom = static_cast<unsigned>(ymd.day());
        const unsigned dow = date::weekday(day).c_encoding();
        const bool dom_ok = days_[dom];
        const bool dow_ok = weekdays_[dow];
        bool day_ok;
        if (any_day_ && any_weekday_) {
            day_ok = true;
        } else if (any_day_) {
            day_ok = dow_ok;
        } else if (any_weekday_) {
            day_ok = dom_ok;
        } else {
            day_ok = dom_ok || dow_ok;  // both restricted: either (cron(8))
        }
        if (!day_ok) {
            t = LocalMinutes(day + date::days(1));
            continue;
        }
        const auto in_day = t - LocalMinutes(day);
        const auto hour = static_cast<size_t>(in_day.count() / 60);
        const auto minute = static_cast<size_t>(in_day.count() % 60);
        if (!hours_[hour]) {
            t = LocalMinutes(day) + std::chrono::hours(hour + 1);
            continue;
        }
        size_t m = minute;
        while (m < 60 && !minutes_[m]) ++m;
        if (m == 60) {
            t = LocalMinutes(day) + std::chrono::hours(hour + 1);
            continue;
        }
        t = LocalMinutes(day) + std::chrono::hours(hour) + minutes(m);
        SystemTime candidate;
        if (zone_ != nullptr) {
            // Nonexistent (spring forward): the end of the gap; ambiguous: the first one.
            candidate = SystemTime(zone_->to_sys(t, date::choose::earliest).time_since_epoch());
        } else {
            candidate = SystemTime(t.time_since_epoch());
        }
        if (candidate > after) return candidate;
        t += minutes(1);
    }
    return std::nullopt;
}

json::object Schedule::ToJson() const {
    json::object o;
    switch (kind_) {
        case Kind::kCron:
            o["kind"] = "cron";
            o["expr"] = expr_;
            if (!tz_.empty()) o["tz"] = tz_;
            break;
        case Kind::kEvery:
            o["kind"] = "every";
            o["every_secs"] = every_secs_;
            break;
        case Kind::kAt:
            o["kind"] = "at";
            o["at"] = FormatRfc3339(at_);
            break;
    }
    return o;
}

std::string Schedule::Describe() const {
    switch (kind_) {
        case Kind::kCron:
            return "cron " + expr_ + " (" + (tz_.empty() ? "UTC" : tz_) + ")";
        case Kind::kEvery:
            return "every " + std::to_string(every_secs_) + "s";
        case Kind::kAt:
            return "at " + FormatRfc3339(at_);
    }
    return "";
}

}  // namespace strowger::automation
