// Saturating arithmetic for numbers that come from outside: token counts a provider reports,
// prices, costs. A sum or product past int64_t's range sticks at the bound it crossed instead
// of overflowing (undefined behaviour, and in practice a huge count wrapping to a negative one
// that a budget check lets through), so a budget compared against it still holds.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <limits>

namespace strowger {

constexpr int64_t SaturatingAdd(int64_t a, int64_t b) {
    int64_t sum = 0;
    if (__builtin_add_overflow(a, b, &sum)) {
        return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
    }
    return sum;
}

constexpr int64_t SaturatingMul(int64_t a, int64_t b) {
    int64_t product = 0;
    if (__builtin_mul_overflow(a, b, &product)) {
        return (a < 0) != (b < 0) ? std::numeric_limits<int64_t>::min()
                                  : std::numeric_limits<int64_t>::max();
    }
    return product;
}

// `value` truncated toward zero, clamped to int64_t's range; NaN is 0. (A plain cast of a
// double outside the range is undefined behaviour.)
constexpr int64_t SaturatingFromDouble(double value) {
    if (value != value) return 0;
    // 2^63 is exact as a double; every double below it (and above -2^63) fits.
    if (value >= 9223372036854775808.0) return std::numeric_limits<int64_t>::max();
    if (value <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(value);
}

}  // namespace strowger
