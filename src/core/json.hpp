// JSON helpers on top of Boost.JSON, and Strowger's canonical JSON.
//
// Canonical JSON (docs/formats/ledger_event_v1.md): object keys sorted by byte value, no
// insignificant whitespace, UTF-8, strings escaped exactly as Python's
// json.dumps(ensure_ascii=False) does (", \, \b \f \n \r \t, other controls as \u00xx), and
// integers only: a double makes the encoder fail, so any JSON library can re-derive the same
// bytes. This is what the ledger hashes.
//
// Thread-safety: free functions are reentrant; JsonWriter is a plain value.
#pragma once

#include <boost/json/fwd.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace strowger {

namespace json = boost::json;

// Appends `text` as a canonical JSON string literal (with quotes). Invalid UTF-8 sequences are
// replaced by U+FFFD so the output is always valid UTF-8.
void AppendJsonString(std::string& out, std::string_view text);
// Whether AppendJsonString writes `text` as it is (between quotes): printable ASCII other than
// '"' and '\\'.
bool IsPlainJsonString(std::string_view text);

// Canonical encoding of `value`; kInvalidArgument if it contains a non-integer number.
Result<std::string> CanonicalJson(const json::value& value);
Status AppendCanonicalJson(std::string& out, const json::value& value);

// Compact (not canonical: key order preserved, doubles allowed) encoding.
std::string CompactJson(const json::value& value);

bool IsValidUtf8(std::string_view text);
// Copy of `text` with invalid UTF-8 sequences replaced by U+FFFD.
std::string ToValidUtf8(std::string_view text);

// A JSON value as text for a prompt or a message: a string as it is, a number in shortest
// round-trip decimal form ("0.82", not Boost.JSON's "8.2E-1"), anything else as compact JSON.
std::string JsonText(const json::value& value);

// Parses `text`; the error message says where parsing stopped.
Result<json::value> ParseJson(std::string_view text);

// Lookups that do not throw. Missing key or wrong type yields the fallback (for JsonInt, also a
// number outside int64_t's range; a fraction is truncated).
std::string_view JsonString(const json::object& object, std::string_view key,
                            std::string_view fallback = {});
int64_t JsonInt(const json::object& object, std::string_view key, int64_t fallback = 0);
bool JsonBool(const json::object& object, std::string_view key, bool fallback = false);
const json::object* JsonObject(const json::object& object, std::string_view key);
const json::array* JsonArray(const json::object& object, std::string_view key);

// Streaming writer of compact JSON for hot paths (ledger events). For canonical output the
// caller adds object keys in sorted order; debug builds check it.
class JsonWriter {
  public:
    explicit JsonWriter(std::string& out) : out_(out) {}

    // The small ones inline: the ledger writes a few dozen tokens per event.
    JsonWriter& BeginObject() { return Open('{'); }
    JsonWriter& EndObject() { return Close('}'); }
    JsonWriter& BeginArray() { return Open('['); }
    JsonWriter& EndArray() { return Close(']'); }
    JsonWriter& Key(std::string_view key);
    // A string literal key is written as it is: the literal keys of our own formats need no
    // escaping, and skipping the scan matters on the ledger's hot path.
    template <size_t N>
    JsonWriter& Key(const char (&key)[N]) {
        Separate();
        const size_t at = out_.size();
        out_.resize(at + N + 2);  // '"', the N - 1 characters, '"', ':'
        char* p = out_.data() + at;
        p[0] = '"';
        std::memcpy(p + 1, key, N - 1);
        p[N] = '"';
        p[N + 1] = ':';
        after_key_ = true;
        return *this;
    }
    JsonWriter& String(std::string_view value) {
        Separate();
        AppendJsonString(out_, value);
        return *this;
    }
    JsonWriter& Int(int64_t value) {
        Separate();
        char digits[24];
        const char* end = std::to_chars(digits, digits + sizeof digits, value).ptr;
        out_.append(digits, static_cast<size_t>(end - digits));
        return *this;
    }
    JsonWriter& Bool(bool value);
    JsonWriter& Null();
    // Inserts already-encoded JSON (must itself be canonical for canonical output).
    JsonWriter& Raw(std::string_view encoded) {
        Separate();
        out_ += encoded;
        return *this;
    }

    // Convenience: Key(k).String(v) etc.
    JsonWriter& Field(std::string_view key, std::string_view value) {
        return Key(key).String(value);
    }
    JsonWriter& Field(std::string_view key, const char* value) { return Key(key).String(value); }
    JsonWriter& Field(std::string_view key, int64_t value) { return Key(key).Int(value); }
    JsonWriter& Field(std::string_view key, int value) { return Key(key).Int(value); }
    JsonWriter& Field(std::string_view key, bool value) { return Key(key).Bool(value); }
    template <size_t N>
    JsonWriter& Field(const char (&key)[N], std::string_view value) {
        return Key(key).String(value);
    }
    template <size_t N>
    JsonWriter& Field(const char (&key)[N], const char* value) {
        return Key(key).String(value);
    }
    template <size_t N>
    JsonWriter& Field(const char (&key)[N], int64_t value) {
        return Key(key).Int(value);
    }
    template <size_t N>
    JsonWriter& Field(const char (&key)[N], int value) {
        return Key(key).Int(value);
    }
    template <size_t N>
    JsonWriter& Field(const char (&key)[N], bool value) {
        return Key(key).Bool(value);
    }

  private:
    JsonWriter& Open(char bracket) {
        Separate();
        out_ += bracket;
        ++depth_;
        need_comma_ &= ~(uint64_t{1} << (depth_ - 1));
        return *this;
    }
    JsonWriter& Close(char bracket) {
        out_ += bracket;
        --depth_;
        return *this;
    }
    void Separate() {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (depth_ > 0) {
            const uint64_t bit = uint64_t{1} << (depth_ - 1);
            if (need_comma_ & bit) out_ += ',';
            need_comma_ |= bit;
        }
    }

    std::string& out_;
    // One bit per nesting level: whether the next element needs a comma. 64 levels is far
    // more than any document we write.
    uint64_t need_comma_ = 0;
    int depth_ = 0;
    bool after_key_ = false;
};

}  // namespace strowger
