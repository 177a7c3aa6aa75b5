#include "core/json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/checked_math.hpp"
#include "core/strings.hpp"

namespace strowger {
namespace {

constexpr char kHex[] = "0123456789abcdef";

Status AppendCanonical(std::string& out, const json::value& value) {
    switch (value.kind()) {
        case json::kind::null:
            out += "null";
            return OkStatus();
        case json::kind::bool_:
            out += value.get_bool() ? "true" : "false";
            return OkStatus();
        case json::kind::int64: {
            char buf[32];
            auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value.get_int64());
            out.append(buf, end);
            return OkStatus();
        }
        case json::kind::uint64: {
            char buf[32];
            auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value.get_uint64());
            out.append(buf, end);
            return OkStatus();
        }
        case json::kind::double_:
            return InvalidArgumentError(
                "canonical JSON holds integers only; encode non-integers as strings");
        case json::kind::string:
            AppendJsonString(out, value.get_string());
            return OkStatus();
        case json::kind::array: {
            out += '[';
            bool first = true;
            for (const auto& element : value.get_array()) {
                if (!first) out += ',';
                first = false;
                STROWGER_TRY(AppendCanonical(out, element));
            }
            out += ']';
            return OkStatus();
        }
        case json::kind::object: {
            const auto& object = value.get_object();
            std::vector<const json::key_value_pair*> members;
            members.reserve(object.size());
            for (const auto& member : object) members.push_back(&member);
            std::sort(members.begin(), members.end(),
                      [](auto* a, auto* b) { return a->key() < b->key(); });
            out += '{';
            bool first = true;
            for (const auto* member : members) {
                if (!first) out += ',';
                first = false;
                AppendJsonString(out, member->key());
                out += ':';
                STROWGER_TRY(AppendCanonical(out, member->value()));
            }
            out += '}';
            return OkStatus();
        }
    }
    return InternalError("unreachable json kind");
}

#if defined(__SSE2__)
// The first byte of the 16 at `p` that needs escaping (16 if none). As signed bytes, control
// characters and bytes >= 0x80 are both below 0x20.
inline size_t FirstSpecial16(const char* p) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i special = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                                         _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                                      _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(special));
    return mask == 0 ? 16 : static_cast<size_t>(std::countr_zero(mask));
}
#endif

// The first byte of the 8 at `p` that needs escaping (8 if none).
inline size_t FirstSpecial8(const char* p) {
    constexpr uint64_t kHigh = 0x8080808080808080ULL;
    constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL;
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    uint64_t x;
    std::memcpy(&x, p, 8);
    // Per byte, on its low 7 bits y (no sum below carries into the next byte): the high bit of
    // y + 0x60 is set iff y >= 0x20, of (y ^ c) + 0x7F iff y != c.
    const uint64_t y = x & kLow7;
    const uint64_t printable = y + kOnes * 0x60;
    const uint64_t not_quote = (y ^ (kOnes * '"')) + kLow7;
    const uint64_t not_backslash = (y ^ (kOnes * '\\')) + kLow7;
    const uint64_t special = ~(printable & not_quote & not_backslash & ~x) & kHigh;
    if (special == 0) return 8;
    const int first = std::endian::native == std::endian::little ? std::countr_zero(special)
                                                                 : std::countl_zero(special);
    return static_cast<size_t>(first / 8);
}

// Where the first byte of p[i..n) that needs escaping is (n if none), `kWidth` bytes at a time
// (n - i >= kWidth), the last block overlapping the one before it rather than going byte by
// byte. (In an overlapping block the bytes before `i` are known plain, so the first special
// byte found is at `i` or after.)
template <size_t kWidth, size_t (*kFirstSpecial)(const char*)>
size_t FirstSpecialInBlocks(const char* p, size_t i, size_t n) {
    for (; i + kWidth <= n; i += kWidth) {
        if (size_t at = kFirstSpecial(p + i); at < kWidth) return i + at;
    }
    if (i < n) {
        if (size_t at = kFirstSpecial(p + n - kWidth); at < kWidth) return n - kWidth + at;
    }
    return n;
}

// How many leading bytes of text[from..] need no escaping: printable ASCII other than '"'
// and '\\'. Sixteen (or eight) bytes at a time: this runs over every string of every ledger
// event, most of them short.
size_t PlainPrefix(std::string_view text, size_t from) {
    const char* p = text.data();
    const size_t n = text.size();
#if defined(__SSE2__)
    if (n - from >= 16) return FirstSpecialInBlocks<16, FirstSpecial16>(p, from, n) - from;
#endif
    if (n - from >= 8) return FirstSpecialInBlocks<8, FirstSpecial8>(p, from, n) - from;
    size_t i = from;
    for (; i < n; ++i) {
        auto c = static_cast<unsigned char>(p[i]);
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
    }
    return i - from;
}

}  // namespace

bool IsPlainJsonString(std::string_view text) {
    return PlainPrefix(text, 0) == text.size();
}

void AppendJsonString(std::string& out, std::string_view text) {
    size_t plain = PlainPrefix(text, 0);
    if (plain == text.size()) {  // the common case: nothing to escape
        size_t at = out.size();
        out.resize(at + text.size() + 2);
        char* p = out.data() + at;
        *p = '"';
        std::memcpy(p + 1, text.data(), text.size());
        p[text.size() + 1] = '"';
        return;
    }
    out.reserve(out.size() + text.size() + 2);
    out += '"';
    size_t i = 0;
    while (i < text.size()) {
        if (size_t run = PlainPrefix(text, i); run > 0) {
            out.append(text.data() + i, run);
            i += run;
            continue;
        }
        auto c = static_cast<unsigned char>(text[i]);
        switch (c) {
            case '"':
                out += "\\\"";
                ++i;
                continue;
            case '\\':
                out += "\\\\";
                ++i;
                continue;
            case '\b':
                out += "\\b";
                ++i;
                continue;
            case '\f':
                out += "\\f";
                ++i;
                continue;
            case '\n':
                out += "\\n";
                ++i;
                continue;
            case '\r':
                out += "\\r";
                ++i;
                continue;
            case '\t':
                out += "\\t";
                ++i;
                continue;
            default:
                break;
        }
        if (c < 0x20) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
            ++i;
            continue;
        }
        size_t n = Utf8SequenceLength(text, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD
            ++i;
        } else {
            out.append(text.data() + i, n);
            i += n;
        }
    }
    out += '"';
}

Result<std::string> CanonicalJson(const json::value& value) {
    std::string out;
    STROWGER_TRY(AppendCanonical(out, value));
    return out;
}

Status AppendCanonicalJson(std::string& out, const json::value& value) {
    return AppendCanonical(out, value);
}

std::string CompactJson(const json::value& value) {
    return json::serialize(value);
}

bool IsValidUtf8(std::string_view text) {
    size_t i = 0;
    while (i < text.size()) {
        size_t n = Utf8SequenceLength(text, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string ToValidUtf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        size_t n = Utf8SequenceLength(text, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(text.data() + i, n);
            i += n;
        }
    }
    return out;
}

Result<json::value> ParseJson(std::string_view text) {
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = 64;
    json::value value = json::parse(text, ec, {}, options);
    if (ec) {
        return InvalidArgumentError("invalid JSON: " + ec.message());
    }
    return value;
}

std::string_view JsonString(const json::object& object, std::string_view key,
                            std::string_view fallback) {
    auto it = object.find(key);
    if (it == object.end() || !it->value().is_string()) return fallback;
    const auto& s = it->value().get_string();
    return {s.data(), s.size()};
}

int64_t JsonInt(const json::object& object, std::string_view key, int64_t fallback) {
    auto it = object.find(key);
    if (it == object.end()) return fallback;
    if (it->value().is_int64()) return it->value().get_int64();
    // A number outside int64_t's range is the fallback (converting it is undefined: ledger_fuzz
    // found 1e58), as is any other wrong value.
    if (it->value().is_uint64()) {
        uint64_t value = it->value().get_uint64();
        if (value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            return static_cast<int64_t>(value);
        }
    }
    if (it->value().is_double()) {
        double value = it->value().get_double();
        constexpr double kTwoTo63 = 9223372036854775808.0;
        if (value >= -kTwoTo63 && value < kTwoTo63) return static_cast<int64_t>(value);
    }
    return fallback;
}

bool JsonBool(const json::object& object, std::string_view key, bool fallback) {
    auto it = object.find(key);
    if (it == object.end() || !it->value().is_bool()) return fallback;
    return it->value().get_bool();
}

const json::object* JsonObject(const json::object& object, std::string_view key) {
    auto it = object.find(key);
    if (it == object.end() || !it->value().is_object()) return nullptr;
    return &it->value().get_object();
}

const json::array* JsonArray(const json::object& object, std::string_view key) {
    auto it = object.find(key);
    if (it == object.end() || !it->value().is_array()) return nullptr;
    return &it->value().get_array();
}

JsonWriter& JsonWriter::Key(std::string_view key) {
    Separate();
    AppendJsonString(out_, key);
    out_ += ':';
    after_key_ = true;
    return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
    Separate();
    out_ += value ? "true" : "false";
    return *this;
}

JsonWriter& JsonWriter::Null() {
    Separate();
    out_ += "null";
    return *this;
}

std::string JsonText(const json::value& value) {
    if (value.is_string()) return std::string(value.get_string());
    if (value.is_double()) {
        char buffer[64];
        auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value.get_double());
        if (ec == std::errc()) return std::string(buffer, end);
    }
    if (value.is_array() || value.is_object()) {
        // Nested doubles are written the same way.
        std::string out;
        if (value.is_array()) {
            out += '[';
            bool first = true;
            for (const auto& item : value.get_array()) {
                if (!first) out += ',';
                first = false;
                if (item.is_string()) {
                    AppendJsonString(out, item.get_string());
                } else {
                    out += JsonText(item);
                }
            }
            out += ']';
        } else {
            out += '{';
            bool first = true;
            for (const auto& member : value.get_object()) {
                if (!first) out += ',';
                first = false;
                AppendJsonString(out, member.key());
                out += ':';
                if (member.value().is_string()) {
                    AppendJsonString(out, member.value().get_string());
                } else {
                    out += JsonText(member.value());
                }
            }
            out += '}';
        }
        return out;
    }
    return json::serialize(value);
}

}  // namespace strowger
