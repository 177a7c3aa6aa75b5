#include "core/clock.hpp"

#include <charconv>
#include <climits>
#include <cstring>
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
    return SystemTime(
        std::chrono::duration_cast<SystemTime::duration>(std::chrono::microseconds(micros)));
}

namespace {

// Howard Hinnant's days_from_civil inverse: (year, month, day) of a count of days since
// 1970-01-01. Used instead of gmtime_r, which takes a lock and is slow on this hot path
// (every ledger event has a timestamp).
void CivilFromDays(int64_t z, int64_t& year, unsigned& month, unsigned& day) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t y = static_cast<int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    day = doy - (153 * mp + 2) / 5 + 1;
    month = mp < 10 ? mp + 3 : mp - 9;
    year = y + (month <= 2);
}

void PutDigits(char* out, int64_t value, int width) {
    for (int i = width - 1; i >= 0; --i) {
        out[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
}

}  // namespace

std::string FormatRfc3339(SystemTime time) {
    std::string out(kRfc3339Size, '0');
    FormatRfc3339To(out.data(), time);
    return out;
}

void FormatRfc3339To(char* out, SystemTime time) {
    int64_t micros = ToUnixMicros(time);
    int64_t seconds = micros >= 0 ? micros / 1000000 : (micros - 999999) / 1000000;
    int64_t fraction = micros - seconds * 1000000;
    // Times come in runs of the same second (every ledger event is stamped, and the store
    // checks each line's): the date and time of day are kept from the last call.
    thread_local int64_t cached_seconds = INT64_MIN;
    thread_local char cached[19];
    if (seconds == cached_seconds) {
        std::memcpy(out, cached, 19);
        out[19] = '.';
        PutDigits(&out[20], fraction, 6);
        out[26] = 'Z';
        return;
    }
    int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
    int64_t second_of_day = seconds - days * 86400;
    int64_t year;
    unsigned month, day;
    CivilFromDays(days, year, month, day);
    // "YYYY-MM-DDTHH:MM:SS.ffffffZ"
    PutDigits(&out[0], year, 4);
    out[4] = '-';
    PutDigits(&out[5], month, 2);
    out[7] = '-';
    PutDigits(&out[8], day, 2);
    out[10] = 'T';
    PutDigits(&out[11], second_of_day / 3600, 2);
    out[13] = ':';
    PutDigits(&out[14], second_of_day / 60 % 60, 2);
    out[16] = ':';
    PutDigits(&out[17], second_of_day % 60, 2);
    out[19] = '.';
    PutDigits(&out[20], fraction, 6);
    out[26] = 'Z';
    std::memcpy(cached, out, 19);
    cached_seconds = seconds;
}

Result<SystemTime> ParseRfc3339(std::string_view text) {
    int year, month, day, hour, minute, second;
    if (text.size() < 20 || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':' ||
        !ParseDigits(text, 0, 4, year) || !ParseDigits(text, 5, 2, month) ||
        !ParseDigits(text, 8, 2, day) || !ParseDigits(text, 11, 2, hour) ||
        !ParseDigits(text, 14, 2, minute) || !ParseDigits(text, 17, 2, second)) {
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
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        return InvalidArgumentError("not an RFC 3339 time: \"" + std::string(text) + "\"");
    }
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    int64_t seconds = timegm(&tm);
    // SystemTime counts nanoseconds in 64 bits: 1677-09-21 to 2262-04-11 (converting a time
    // outside is undefined; ledger_fuzz found year 4052).
    constexpr int64_t kLimit =
        std::chrono::duration_cast<std::chrono::seconds>(SystemTime::duration::max()).count();
    if (seconds <= -kLimit || seconds >= kLimit) {
        return InvalidArgumentError("time out of range: \"" + std::string(text) + "\"");
    }
    return FromUnixMicros(seconds * 1000000 + micros);
}

}  // namespace strowger
