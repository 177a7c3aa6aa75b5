#include "core/clock.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>

namespace strowger {
namespace {

class RealClock final : public Clock {
public:
    SystemTime Now() const override { return std::chrono::system_clock::now(); }
    SteadyTime SteadyNow() const override { return std::chrono::steady_clock::now(); }
};

bool ParseDigits(std::string_view text, size_t pos, size_t count, int& value) {
    if (pos + count > text.size()) return false;
    auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + pos + count, value);
    return ec == std::errc() && ptr == text.data() + pos + count;
}

}  // namespace

Clock& Clock::Real() {
    static RealClock clock;
    return clock;
}

int64_t ToUnixMicros(SystemTime time) {
    return std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()).count();
}

SystemTime FromUnixMicros(int64_t micros) {
    return SystemTime(std::chrono::duration_cast<SystemTime::duration>(
        std::chrono::microseconds(micros)));
}

std::string FormatRfc3339(SystemTime time) {
    int64_t micros = ToUnixMicros(time);
    int64_t seconds = micros >= 0 ? micros / 1000000 : (micros - 999999) / 1000000;
    int64_t fraction = micros - seconds * 1000000;
    std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long long>(fraction));
    return buf;
}

Result<SystemTime> ParseRfc3339(std::string_view text) {
    int year, month, day, hour, minute, second;
    if (text.size() < 20 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') ||
        text[13] != ':' || text[16] != ':' || !ParseDigits(text, 0, 4, year) ||
        !ParseDigits(text, 5, 2, month) || !ParseDigits(text, 8, 2, day) ||
        !ParseDigits(text, 11, 2, hour) || !ParseDigits(text, 14, 2, minute) ||
        !ParseDigits(text, 17, 2, second)) {
        return InvalidArgumentError("not an RFC 3339 time: \"" + std::string(text) + "\"");
    }
    size_t pos = 19;
    int64_t micros = 0;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            if (digits < 6) {
                micros = micros * 10 + (text[pos] - '0');
                ++digits;
            }
            ++pos;
        }
        while (digits < 6) {
            micros *= 10;
            ++digits;
        }
    }
    std::string_view zone = text.substr(pos);
    if (zone != "Z" && zone != "z" && zone != "+00:00") {
        return InvalidArgumentError("RFC 3339 time must be UTC: \"" + std::string(text) + "\"");
    }
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    int64_t seconds = timegm(&tm);
    return FromUnixMicros(seconds * 1000000 + micros);
}

}  // namespace strowger
