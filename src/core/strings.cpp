#include "core/strings.hpp"

#include <algorithm>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace strowger {

void HexEncode(const unsigned char* bytes, size_t n, char* out) {
    size_t i = 0;
#if defined(__SSE2__)
    // Each byte's two nibbles side by side, then '0' + v, plus 'a' - '0' - 10 where v > 9.
    const __m128i low_nibble = _mm_set1_epi8(0x0F);
    const __m128i nine = _mm_set1_epi8(9);
    const __m128i zero = _mm_set1_epi8('0');
    const __m128i letters = _mm_set1_epi8('a' - '0' - 10);
    auto digits = [&](__m128i v) {
        return _mm_add_epi8(_mm_add_epi8(v, zero), _mm_and_si128(_mm_cmpgt_epi8(v, nine), letters));
    };
    for (; i + 16 <= n; i += 16) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + i));
        const __m128i high = _mm_and_si128(_mm_srli_epi16(b, 4), low_nibble);
        const __m128i low = _mm_and_si128(b, low_nibble);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i),
                         digits(_mm_unpacklo_epi8(high, low)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * i + 16),
                         digits(_mm_unpackhi_epi8(high, low)));
    }
#endif
    static constexpr char kHex[] = "0123456789abcdef";
    for (; i < n; ++i) {
        out[2 * i] = kHex[bytes[i] >> 4];
        out[2 * i + 1] = kHex[bytes[i] & 15];
    }
}

std::string AsciiLower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
    if (needle.empty()) return true;
    auto lower = [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                          [&](char a, char b) { return lower(a) == lower(b); });
    return it != haystack.end();
}

std::string_view Trim(std::string_view text) {
    size_t begin = 0;
    while (begin < text.size() && (text[begin] == ' ' || text[begin] == '\t' ||
                                   text[begin] == '\n' || text[begin] == '\r')) {
        ++begin;
    }
    size_t end = text.size();
    while (end > begin && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\n' ||
                           text[end - 1] == '\r')) {
        --end;
    }
    return text.substr(begin, end - begin);
}

bool StartsWith(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

bool EndsWith(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::vector<std::string> Split(std::string_view text, char separator) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        size_t pos = text.find(separator, start);
        if (pos == std::string_view::npos) {
            parts.emplace_back(text.substr(start));
            return parts;
        }
        parts.emplace_back(text.substr(start, pos - start));
        start = pos + 1;
    }
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i > 0) out += separator;
        out += parts[i];
    }
    return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t above = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string ClosestMatch(std::string_view word, const std::vector<std::string_view>& candidates) {
    std::string best;
    size_t best_distance = SIZE_MAX;
    for (auto candidate : candidates) {
        size_t d = EditDistance(AsciiLower(word), AsciiLower(candidate));
        if (d < best_distance) {
            best_distance = d;
            best = std::string(candidate);
        }
    }
    size_t limit = std::max<size_t>(2, word.size() / 3);
    return best_distance <= limit ? best : std::string();
}

std::string Preview(std::string_view text, size_t max_bytes) {
    std::string out;
    size_t i = 0;
    while (i < text.size() && out.size() < max_bytes) {
        auto c = static_cast<unsigned char>(text[i]);
        size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (c == '\n') {
            out += "\xE2\x8F\x8E";  // ⏎
            ++i;
            continue;
        }
        if (c == '\r' || c == '\t') {
            out += ' ';
            ++i;
            continue;
        }
        out.append(text.substr(i, n));
        i += n;
    }
    if (i < text.size()) out += "\xE2\x80\xA6";  // …
    return out;
}

size_t Utf8SequenceLength(std::string_view text, size_t i) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    unsigned char c = byte(i);
    if (c < 0x80) return 1;
    size_t n = 0;
    uint32_t code = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        code = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        code = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        code = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > text.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80) return 0;
        code = (code << 6) | (byte(i + k) & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 3 && code < 0x800) || (n == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF)) {
        return 0;
    }
    return n;
}

namespace {

void AppendHexByte(std::string& out, unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
}

// Appends text[i, end) escaped; returns where it stopped (at `end` or before a sequence that
// would pass `max_out` bytes of output).
size_t AppendEscaped(std::string& out, std::string_view text, size_t i, size_t end,
                     Newlines newlines, size_t max_out) {
    while (i < end && out.size() < max_out) {
        auto c = static_cast<unsigned char>(text[i]);
        size_t n = Utf8SequenceLength(text, i);
        if (n == 0) {
            AppendHexByte(out, c);
            ++i;
            continue;
        }
        if (n == 1) {
            if (c == '\n' || c == '\t') {
                if (newlines == Newlines::kKeep) {
                    out += static_cast<char>(c);
                } else {
                    out += c == '\n' ? "\\n" : "\\t";
                }
            } else if (c < 0x20 || c == 0x7F) {
                AppendHexByte(out, c);
            } else {
                out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        if (n == 2 && c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
            // C1 control (U+0080..U+009F): CSI and OSC on some terminals.
            AppendHexByte(out, c);
            AppendHexByte(out, static_cast<unsigned char>(text[i + 1]));
            i += 2;
            continue;
        }
        out.append(text.substr(i, n));
        i += n;
    }
    return i;
}

}  // namespace

std::string EscapeControl(std::string_view text, Newlines newlines) {
    std::string out;
    out.reserve(text.size());
    AppendEscaped(out, text, 0, text.size(), newlines, SIZE_MAX);
    return out;
}

std::string CapForMessage(std::string_view text, size_t max_bytes) {
    std::string out;
    out.reserve(std::min(text.size(), max_bytes) + 32);
    size_t stopped = AppendEscaped(out, text, 0, text.size(), Newlines::kKeep, max_bytes);
    if (stopped < text.size()) {
        out += "\xE2\x80\xA6 (" + std::to_string(text.size()) + " bytes in all)";
    }
    return out;
}

}  // namespace strowger
