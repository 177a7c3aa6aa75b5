#include "core/ids.hpp"

namespace strowger {
namespace {
constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
}

std::string NewRunId(const Clock& clock, Random& random) {
    uint64_t millis = static_cast<uint64_t>(ToUnixMicros(clock.Now()) / 1000);
    uint64_t hi = random.Next();
    uint64_t lo = random.Next();
    std::string id(26, '0');
    // 10 characters of time (50 bits, top 2 zero), 16 of randomness (80 bits).
    for (int i = 9; i >= 0; --i) {
        id[i] = kCrockford[millis & 31];
        millis >>= 5;
    }
    for (int i = 25; i >= 10; --i) {
        id[i] = kCrockford[lo & 31];
        lo = (lo >> 5) | ((hi & 31) << 59);
        hi >>= 5;
    }
    return id;
}

bool LooksLikeRunId(const std::string& text) {
    if (text.size() != 26) return false;
    for (char c : text) {
        bool ok = false;
        for (const char* p = kCrockford; *p; ++p) ok = ok || *p == c;
        if (!ok) return false;
    }
    return true;
}

}  // namespace strowger
