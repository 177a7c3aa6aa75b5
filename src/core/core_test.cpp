#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <boost/json.hpp>

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <vector>

#include "core/checked_math.hpp"
#include "core/clock.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/random.hpp"
#include "core/result.hpp"
#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "core/yaml.hpp"

namespace strowger {
namespace {

TEST(CanonicalJsonTest, SortsKeysAndDropsWhitespace) {
    auto value = json::parse(R"({"b": 1, "a": {"d": [true, null], "c": "x"}})");
    auto encoded = CanonicalJson(value);
    ASSERT_TRUE(encoded.has_value());
    EXPECT_EQ(*encoded, R"({"a":{"c":"x","d":[true,null]},"b":1})");
}

TEST(CanonicalJsonTest, EscapesExactlyLikePythonJsonDumpsWithoutAsciiEscaping) {
    // json.dumps("q\"b\\n\n\r\t\b\f\x01\x1f/é€😀\x7f", ensure_ascii=False)
    std::string out;
    AppendJsonString(out, "q\"b\\n\n\r\t\b\f\x01\x1f/\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F");
    EXPECT_EQ(
        out,
        "\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u0001\\u001f/\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F\"");
}

TEST(CanonicalJsonTest, EscapesEveryByteAtEveryPositionOfAWord) {
    // The scan for bytes to escape goes sixteen or eight bytes at a time, the last block
    // overlapping the one before, and one at a time below eight: check each byte value at
    // each offset of texts of every kind of length against a plain byte-by-byte escaping.
    auto expected_for = [](unsigned char c) -> std::string {
        switch (c) {
            case '"':
                return "\\\"";
            case '\\':
                return "\\\\";
            case '\b':
                return "\\b";
            case '\f':
                return "\\f";
            case '\n':
                return "\\n";
            case '\r':
                return "\\r";
            case '\t':
                return "\\t";
            default:
                break;
        }
        if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            return buf;
        }
        if (c >= 0x80) return "\xEF\xBF\xBD";  // a lone byte is never valid UTF-8
        return std::string(1, static_cast<char>(c));
    };
    for (size_t size : std::initializer_list<size_t>{1, 7, 8, 13, 16, 19, 32, 43}) {
        for (int value = 0; value < 256; ++value) {
            for (size_t at = 0; at < size; ++at) {
                std::string text(size, 'a');
                text[at] = static_cast<char>(value);
                std::string out;
                AppendJsonString(out, text);
                std::string expected = "\"" + std::string(at, 'a') +
                                       expected_for(static_cast<unsigned char>(value)) +
                                       std::string(size - 1 - at, 'a') + "\"";
                ASSERT_EQ(out, expected) << "byte " << value << " at " << at;
                const bool plain = value >= 0x20 && value < 0x80 && value != '"' && value != '\\';
                ASSERT_EQ(IsPlainJsonString(text), plain) << "byte " << value << " at " << at;
            }
        }
    }
}

TEST(CanonicalJsonTest, ReplacesInvalidUtf8) {
    std::string out;
    AppendJsonString(out,
                     "a\xFF"
                     "b\xC3");
    EXPECT_EQ(out,
              "\"a\xEF\xBF\xBD"
              "b\xEF\xBF\xBD\"");
    EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));  // a surrogate
    EXPECT_EQ(ToValidUtf8("ok\xC0\xAF"), "ok\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(CanonicalJsonTest, RefusesNonIntegerNumbers) {
    auto encoded = CanonicalJson(json::parse(R"({"cost": 0.5})"));
    ASSERT_FALSE(encoded.has_value());
    EXPECT_EQ(encoded.error().code(), ErrorCode::kInvalidArgument);
}

TEST(JsonLookupTest, IntegersOutsideTheRangeOfInt64AreTheFallback) {
    auto parsed = ParseJson(R"({"big":1.44444e58,"small":-1e19,"edge":9223372036854775808.0,)"
                            R"("fraction":-2.75,"int":-7,"text":"3"})");
    ASSERT_TRUE(parsed);
    const json::object& o = parsed->get_object();
    EXPECT_EQ(JsonInt(o, "big", -1), -1);
    EXPECT_EQ(JsonInt(o, "small", -1), -1);
    EXPECT_EQ(JsonInt(o, "edge", -1), -1);
    EXPECT_EQ(JsonInt(o, "fraction", -1), -2);
    EXPECT_EQ(JsonInt(o, "int", -1), -7);
    EXPECT_EQ(JsonInt(o, "text", -1), -1);
    EXPECT_EQ(JsonInt(o, "missing", -1), -1);
}

TEST(JsonWriterTest, WritesCompactJson) {
    std::string out;
    JsonWriter w(out);
    w.BeginObject()
        .Field("a", int64_t{1})
        .Key("b")
        .BeginArray()
        .String("x")
        .Bool(false)
        .Null()
        .EndArray();
    w.Key("c").BeginObject().EndObject().EndObject();
    EXPECT_EQ(out, R"({"a":1,"b":["x",false,null],"c":{}})");
}

TEST(HexTest, EncodesEveryByteAtEveryPosition) {
    // Sixteen bytes at a time, then one at a time: lengths on both sides of a block.
    auto reference = [](const std::vector<unsigned char>& bytes) {
        std::string hex;
        for (unsigned char b : bytes) {
            char digits[3];
            std::snprintf(digits, sizeof digits, "%02x", b);
            hex += digits;
        }
        return hex;
    };
    for (size_t size : std::initializer_list<size_t>{0, 1, 15, 16, 17, 32, 33}) {
        for (int value = 0; value < 256; ++value) {
            std::vector<unsigned char> bytes(size);
            for (size_t i = 0; i < size; ++i) {
                bytes[i] = static_cast<unsigned char>((value + 37 * i) & 0xFF);
            }
            std::string hex(2 * size, '?');
            HexEncode(bytes.data(), size, hex.data());
            ASSERT_EQ(hex, reference(bytes)) << "size " << size << " first byte " << value;
        }
    }
}

TEST(Sha256Test, KnownVector) {
    EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(Sha256Hex("ab", "c"), Sha256Hex("abc"));
}

TEST(ClockTest, Rfc3339RoundTripsWithMicroseconds) {
    SystemTime t = FromUnixMicros(1795000000123456);
    std::string text = FormatRfc3339(t);
    EXPECT_EQ(text, "2026-11-18T11:06:40.123456Z");
    auto parsed = ParseRfc3339(text);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(ToUnixMicros(*parsed), 1795000000123456);
    EXPECT_EQ(ParseRfc3339("2026-11-18T11:06:40+02:00").error().code(),
              ErrorCode::kInvalidArgument);
}

TEST(ClockTest, Rfc3339TimesOutOfRangeAreInvalid) {
    EXPECT_TRUE(ParseRfc3339("2262-04-10T23:59:59.999999Z"));
    EXPECT_TRUE(ParseRfc3339("1677-09-22T00:00:00Z"));
    EXPECT_TRUE(ParseRfc3339("2016-12-31T23:59:60Z"));  // a leap second
    for (const char* text :
         {"4052-07-07T01:09:28.182594Z", "9999-12-31T23:59:59Z", "2262-04-12T00:00:00Z",
          "1600-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
          "2026-01-00T00:00:00Z", "2026-01-32T00:00:00Z", "2026-01-01T24:00:00Z",
          "2026-01-01T00:60:00Z", "2026-01-01T00:00:61Z"}) {
        auto parsed = ParseRfc3339(text);
        ASSERT_FALSE(parsed) << text;
        EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument) << text;
    }
}

TEST(IdsTest, RunIdsSortByCreationTime) {
    auto random = Random::Seeded(7);
    std::string first = NewRunId(Clock::Real(), *random);
    std::string second;
    do {
        second = NewRunId(Clock::Real(), *random);
    } while (second.substr(0, 10) == first.substr(0, 10));  // next millisecond
    EXPECT_TRUE(LooksLikeRunId(first));
    EXPECT_LT(first, second);
    EXPECT_FALSE(LooksLikeRunId("not-a-run-id"));
}

TEST(StringsTest, CaseInsensitiveContainsMatchesLibreFang) {
    EXPECT_TRUE(ContainsIgnoreCase("Found an ERROR", "error"));
    EXPECT_TRUE(ContainsIgnoreCase("anything", ""));  // "".contains("") is true in Rust too
    EXPECT_FALSE(ContainsIgnoreCase("all good", "ERROR"));
}

TEST(StringsTest, ClosestMatchSuggestsOnlyLikelyTypos) {
    EXPECT_EQ(ClosestMatch("promt", {"prompt", "mode", "name"}), "prompt");
    EXPECT_EQ(ClosestMatch("zzz", {"prompt", "mode", "name"}), "");
    EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(ResultTest, RetryabilityIsAFunctionOfTheCode) {
    EXPECT_TRUE(IsRetryable(Error(ErrorCode::kUnavailable, "x")));
    EXPECT_TRUE(IsRetryable(Error(ErrorCode::kDeadlineExceeded, "x")));
    EXPECT_FALSE(IsRetryable(Error(ErrorCode::kResourceExhausted, "budget")));
    EXPECT_FALSE(IsRetryable(Error(ErrorCode::kInvalidArgument, "x")));
    EXPECT_EQ(ErrorCodeFromName(ErrorCodeName(ErrorCode::kDataLoss)), ErrorCode::kDataLoss);
}

TEST(RedactTest, RegisteredSecretsAndPatternsAreReplaced) {
    RegisterSecret("sk-test-1234567890");
    ASSERT_TRUE(RegisterSecretPattern("tok_[a-z]{8}"));
    EXPECT_EQ(Redact("key sk-test-1234567890 and tok_abcdefgh."), "key [REDACTED] and [REDACTED].");
    EXPECT_FALSE(RegisterSecretPattern("("));
}

TEST(RedactTest, PatternsAreRe2AndTakeTimeLinearInTheText) {
    // Nested quantifiers backtrack exponentially in an ECMAScript engine (std::regex took
    // minutes on 28 'a's, and overflowed the stack on a long text); RE2 does not backtrack.
    ASSERT_TRUE(RegisterSecretPattern("x(a+)+y"));
    const std::string no_match = "x" + std::string(28, 'a') + "!";
    EXPECT_EQ(Redact(no_match), no_match);
    EXPECT_FALSE(ContainsSecret(no_match));
    const std::string long_match = "<x" + std::string(100'000, 'a') + "y>";
    EXPECT_EQ(Redact(long_match), "<[REDACTED]>");
    EXPECT_TRUE(ContainsSecret(long_match));
    // ECMAScript-only syntax (a lookahead) is refused rather than read some other way.
    EXPECT_FALSE(RegisterSecretPattern("sk-(?=live)\\w+"));
}

TEST(RedactTest, ContainsSecretFindsRegisteredValues) {
    RegisterSecret("hunter2-registered-value");
    EXPECT_TRUE(ContainsSecret("{\"content\": \"pw=hunter2-registered-value\"}"));
    EXPECT_FALSE(ContainsSecret("{\"content\": \"pw=hunter2-registered\"}"));
    RegisterSecret("short");  // under 6 bytes: ignored, too likely a false match
    EXPECT_FALSE(ContainsSecret("a short text"));
}

TEST(RedactTest, LogMessagesAreRedactedWhoeverFormattedThem) {
    RegisterSecret("log-secret-8d7c6b5a");
    std::ostringstream out;
    auto sink = RedactingSink(std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    spdlog::logger logger("redact-test", sink);
    logger.set_pattern("%v");
    logger.warn("server said: {}", "bad key log-secret-8d7c6b5a");
    logger.warn("nothing to hide");
    EXPECT_EQ(out.str(), "server said: bad key [REDACTED]\nnothing to hide\n");
}

TEST(CheckedMathTest, SumsAndProductsSaturateInsteadOfOverflowing) {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    EXPECT_EQ(SaturatingAdd(kMax, 1), kMax);
    EXPECT_EQ(SaturatingAdd(kMin, -1), kMin);
    EXPECT_EQ(SaturatingAdd(40, 2), 42);
    EXPECT_EQ(SaturatingMul(int64_t{1} << 40, int64_t{1} << 40), kMax);
    EXPECT_EQ(SaturatingMul(-(int64_t{1} << 40), int64_t{1} << 40), kMin);
    EXPECT_EQ(SaturatingMul(6, 7), 42);
    EXPECT_EQ(SaturatingFromDouble(1e300), kMax);
    EXPECT_EQ(SaturatingFromDouble(-1e300), kMin);
    EXPECT_EQ(SaturatingFromDouble(std::nan("")), 0);
    EXPECT_EQ(SaturatingFromDouble(42.9), 42);
}

}  // namespace
}  // namespace strowger

namespace strowger {
namespace {

TEST(EscapeControlTest, TerminalSequencesCannotReachTheTerminal) {
    EXPECT_EQ(EscapeControl("\x1b[2J\x1b]0;pwned\x07"), "\\x1b[2J\\x1b]0;pwned\\x07");
    EXPECT_EQ(EscapeControl(std::string("a\0b", 3)), "a\\x00b");
    EXPECT_EQ(EscapeControl("line 1\nline 2\tend"), "line 1\nline 2\tend");
    EXPECT_EQ(EscapeControl("line 1\nx\t", Newlines::kEscape), "line 1\\nx\\t");
    EXPECT_EQ(EscapeControl("del\x7f"), "del\\x7f");
    // C1 CSI (U+009B) is a control on some terminals; U+00A0 and beyond are text.
    EXPECT_EQ(EscapeControl("\xc2\x9b"
                            "2J \xc2\xa0 é 日本 😀"),
              "\\xc2\\x9b2J \xc2\xa0 é 日本 😀");
    // Not UTF-8: a lone continuation byte, a truncated sequence, an overlong form.
    EXPECT_EQ(EscapeControl("\x80 \xe6\x97 \xc0\xaf"), "\\x80 \\xe6\\x97 \\xc0\\xaf");
}

TEST(CapForMessageTest, LongTextIsCutWithItsSizeStated) {
    std::string body(5'000'000, 'x');
    std::string capped = CapForMessage(body);
    EXPECT_LE(capped.size(), kMessageQuoteBytes + 40);
    EXPECT_NE(capped.find("(5000000 bytes in all)"), std::string::npos);
    EXPECT_EQ(CapForMessage("short"), "short");
    // Cut on a character boundary, never inside one.
    std::string wide;
    for (int i = 0; i < 1000; ++i) wide += "日";
    std::string cut = CapForMessage(wide, 10);
    EXPECT_EQ(cut.substr(0, 12), "日日日日");
    // Binary input is escaped, so the message is printable.
    std::string binary;
    for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
    for (char c : CapForMessage(binary, 4096)) {
        auto u = static_cast<unsigned char>(c);
        EXPECT_TRUE(u >= 0x20 || u == '\n' || u == '\t') << static_cast<int>(u);
    }
}

TEST(YamlTest, ParsesOrdinaryDocuments) {
    auto root = ParseYaml("a: [1, 2, {b: c}]\nd: &x {e: 1}\nf: *x\n");
    ASSERT_TRUE(root.has_value()) << root.error().message;
    EXPECT_EQ((*root)["f"]["e"].as<int>(), 1);
}

TEST(YamlTest, RefusesNestedAliasesThatExpandTooFar) {
    // Ten aliases wide, eight deep: 10^8 nodes once expanded.
    std::string text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level <= 8; ++level) {
        std::string prev = "*l" + std::to_string(level - 1);
        text += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
        for (int i = 0; i < 10; ++i) text += (i ? ", " : "") + prev;
        text += "]\n";
    }
    auto root = ParseYaml(text);
    ASSERT_FALSE(root.has_value());
    EXPECT_NE(root.error().message.find("too many nodes once aliases are expanded"),
              std::string::npos);
    EXPECT_GT(root.error().line, 0);
}

TEST(YamlTest, RefusesAliasesOfALongStringThatExpandTooFar) {
    // Few nodes, but each alias is the whole megabyte again: 100 MiB once walked.
    std::string text = "big: &big \"" + std::string(1 << 20, 'x') + "\"\nmany: [";
    for (int i = 0; i < 100; ++i) text += (i ? ", " : "") + std::string("*big");
    text += "]\n";
    auto root = ParseYaml(text);
    ASSERT_FALSE(root.has_value());
    EXPECT_NE(root.error().message.find("too much text once aliases are expanded"),
              std::string::npos)
        << root.error().message;
    YamlLimits roomy;
    roomy.max_scalar_bytes = int64_t{200} << 20;
    EXPECT_TRUE(ParseYaml(text, roomy).has_value());
}

TEST(YamlTest, RefusesDeepNestingWithAClearMessage) {
    for (int depth : {100, 100'000}) {
        std::string text(static_cast<size_t>(depth), '[');
        text += std::string(static_cast<size_t>(depth), ']');
        auto root = ParseYaml(text);
        ASSERT_FALSE(root.has_value()) << depth;
        EXPECT_NE(root.error().message.find("nested deeper than 64 levels"), std::string::npos)
            << root.error().message;
    }
    std::string ok(60, '[');
    ok += std::string(60, ']');
    EXPECT_TRUE(ParseYaml(ok).has_value());
}

TEST(YamlTest, SyntaxErrorsHaveAPosition) {
    auto root = ParseYaml("a: 1\nb: [unclosed\n");
    ASSERT_FALSE(root.has_value());
    EXPECT_NE(root.error().message.find("syntax error"), std::string::npos);
    EXPECT_GT(root.error().line, 0);
}

// ParseYamlTree is ParseYaml's compact twin: the same tree, the same limits, the same errors.
TEST(YamlTreeTest, HoldsWhatYamlCppReads) {
    auto tree = ParseYamlTree(
        "a: [1, 'two', {b: c}]\nd: &x {e: 1}\nf: *x\ng:\nh: null\n\"i\": |\n  block\n");
    ASSERT_TRUE(tree.has_value()) << tree.error().message;
    YamlNode root = tree->root();
    ASSERT_TRUE(root.IsMap());
    ASSERT_EQ(root.size(), 6u);
    EXPECT_EQ(root.Key(0).Scalar(), "a");
    EXPECT_EQ(root.Key(0).line(), 1);
    EXPECT_EQ(root.Key(0).column(), 1);
    YamlNode a = root.Find("a");
    ASSERT_TRUE(a.IsSequence());
    ASSERT_EQ(a.size(), 3u);
    EXPECT_EQ(a[0].Scalar(), "1");
    EXPECT_EQ(a[0].Tag(), "?");  // plain
    EXPECT_EQ(a[1].Scalar(), "two");
    EXPECT_EQ(a[1].Tag(), "!");  // quoted
    EXPECT_EQ(a[2].Find("b").Scalar(), "c");
    EXPECT_EQ(a[2].line(), 1);
    EXPECT_EQ(a[2].column(), 15);
    // An alias is the node it refers to, position included (as in yaml-cpp).
    YamlNode f = root.Find("f");
    ASSERT_TRUE(f.IsMap());
    EXPECT_EQ(f.Find("e").Scalar(), "1");
    EXPECT_EQ(f.line(), 2);
    EXPECT_TRUE(root.Find("g").IsNull());
    EXPECT_TRUE(root.Find("g").IsDefined());
    EXPECT_TRUE(root.Find("h").IsNull());
    EXPECT_EQ(root.Find("i").Scalar(), "block\n");
    EXPECT_FALSE(root.Find("missing").IsDefined());
    EXPECT_EQ(root.Find("missing").line(), 0);

    auto empty = ParseYamlTree("");
    ASSERT_TRUE(empty.has_value());
    EXPECT_TRUE(empty->root().IsNull());
    EXPECT_EQ(empty->root().line(), 0);
}

TEST(YamlTreeTest, RefusesWhatParseYamlRefusesWithTheSameErrors) {
    std::string bomb = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level <= 8; ++level) {
        std::string prev = "*l" + std::to_string(level - 1);
        bomb += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
        for (int i = 0; i < 10; ++i) bomb += (i ? ", " : "") + prev;
        bomb += "]\n";
    }
    std::string deep(100'000, '[');
    deep += std::string(100'000, ']');
    std::string shallow_deep(100, '[');
    shallow_deep += std::string(100, ']');
    for (const std::string& text : {bomb, deep, shallow_deep, std::string("a: 1\nb: [unclosed\n"),
                                    std::string("a: *undefined\n"), std::string("- &a [*a]\n")}) {
        SCOPED_TRACE(text.substr(0, 40));
        auto nodes = ParseYaml(text);
        auto tree = ParseYamlTree(text);
        ASSERT_FALSE(nodes.has_value());
        ASSERT_FALSE(tree.has_value());
        EXPECT_EQ(tree.error().message, nodes.error().message);
        EXPECT_EQ(tree.error().line, nodes.error().line);
        EXPECT_EQ(tree.error().column, nodes.error().column);
    }
    auto bombed = ParseYamlTree(bomb);
    ASSERT_FALSE(bombed.has_value());
    EXPECT_EQ(bombed.error().message,
              "too many nodes once aliases are expanded (more than 1000000)");
    auto deepened = ParseYamlTree(deep);
    ASSERT_FALSE(deepened.has_value());
    EXPECT_EQ(deepened.error().message, "nested deeper than 64 levels");
    EXPECT_EQ(deepened.error().line, 1);
}

}  // namespace
}  // namespace strowger
