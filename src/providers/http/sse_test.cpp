#include "providers/http/sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strowger::http {
namespace {

struct Event {
    std::string event;
    std::string data;
    std::string id;
    bool operator==(const Event&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Event& event) {
    return out << "{" << event.event << ", \"" << event.data << "\", " << event.id << "}";
}

class Collector {
  public:
    Collector()
        : parser_([this](const SseEvent& event) {
              events_.push_back(
                  {std::string(event.event), std::string(event.data), std::string(event.id)});
              return OkStatus();
          }) {}

    SseParser& parser() { return parser_; }
    const std::vector<Event>& events() const { return events_; }

  private:
    std::vector<Event> events_;
    SseParser parser_;
};

std::vector<Event> ParseWhole(std::string_view stream) {
    Collector collector;
    EXPECT_TRUE(collector.parser().Feed(stream));
    return collector.events();
}

TEST(SseParserTest, ParsesFieldsCommentsAndMultiLineData) {
    auto events = ParseWhole(
        ": keep-alive\n"
        "data: first\n\n"
        "event: update\n"
        "id: 7\n"
        "data: line one\n"
        "data:line two\n"
        "retry: 1000\n"
        "unknown: ignored\n\n"
        "data\n\n"
        "event: empty\n\n"  // no data: dropped
        "data: after id\n\n");
    std::vector<Event> expected = {{"message", "first", ""},
                                   {"update", "line one\nline two", "7"},
                                   {"message", "", "7"},
                                   {"message", "after id", "7"}};
    EXPECT_EQ(events, expected);
}

TEST(SseParserTest, AcceptsCrLfLoneCrAndByteOrderMark) {
    auto events = ParseWhole(
        "\xEF\xBB\xBF"
        "data: a\r\n\r\ndata: b\r\rdata: c\n\r\n");
    std::vector<Event> expected = {
        {"message", "a", ""}, {"message", "b", ""}, {"message", "c", ""}};
    EXPECT_EQ(events, expected);
}

TEST(SseParserTest, SameEventsWhateverTheSplit) {
    // CRLF line ends, a comment, a multi-byte UTF-8 payload and a two-line event.
    const std::string stream =
        "\xEF\xBB\xBF: hi\r\ndata: {\"text\":\"h\xC3\xA9llo \xF0\x9F\x98\x80\"}\r\n\r\n"
        "event: x\r\ndata: 1\r\ndata: 2\r\n\r\ndata: [DONE]\r\n\r\n";
    const std::vector<Event> expected = ParseWhole(stream);
    ASSERT_EQ(expected.size(), 3u);
    EXPECT_EQ(expected[0].data, "{\"text\":\"h\xC3\xA9llo \xF0\x9F\x98\x80\"}");
    for (size_t first = 0; first <= stream.size(); ++first) {
        for (size_t second = first; second <= stream.size(); second += 7) {
            Collector collector;
            ASSERT_TRUE(collector.parser().Feed(std::string_view(stream).substr(0, first)));
            ASSERT_TRUE(
                collector.parser().Feed(std::string_view(stream).substr(first, second - first)));
            ASSERT_TRUE(collector.parser().Feed(std::string_view(stream).substr(second)));
            EXPECT_EQ(collector.events(), expected) << "split at " << first << ", " << second;
            EXPECT_FALSE(collector.parser().HasPartialEvent());
        }
    }
    Collector bytewise;
    for (char c : stream) ASSERT_TRUE(bytewise.parser().Feed(std::string_view(&c, 1)));
    EXPECT_EQ(bytewise.events(), expected);
}

TEST(SseParserTest, ReportsAPartialEventAtTheEnd) {
    Collector collector;
    ASSERT_TRUE(collector.parser().Feed("data: whole\n\ndata: cut"));
    EXPECT_TRUE(collector.parser().HasPartialEvent());
    ASSERT_TRUE(collector.parser().Feed(" off\n"));
    EXPECT_TRUE(collector.parser().HasPartialEvent());  // no blank line yet
    EXPECT_EQ(collector.events().size(), 1u);
    ASSERT_TRUE(collector.parser().Feed("\n"));
    EXPECT_FALSE(collector.parser().HasPartialEvent());
    ASSERT_EQ(collector.events().size(), 2u);
    EXPECT_EQ(collector.events()[1].data, "cut off");
}

TEST(SseParserTest, OversizedEventFails) {
    SseParser parser([](const SseEvent&) { return OkStatus(); }, 16);
    auto status = parser.Feed("data: 0123456789");
    EXPECT_TRUE(status);
    status = parser.Feed("abcdef");
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code(), ErrorCode::kInternal);
    EXPECT_EQ(status.error().message(), "an event exceeds 16 bytes");

    SseParser lines([](const SseEvent&) { return OkStatus(); }, 16);
    ASSERT_TRUE(lines.Feed("data: 0123456789\n"));
    status = lines.Feed("data: 0123456789\n");
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code(), ErrorCode::kInternal);
}

TEST(SseParserTest, HandlerErrorStopsTheParseForGood) {
    int calls = 0;
    SseParser parser([&calls](const SseEvent& event) -> Status {
        ++calls;
        if (event.data == "bad") return InvalidArgumentError("bad event");
        return OkStatus();
    });
    auto status = parser.Feed("data: ok\n\ndata: bad\n\ndata: never\n\n");
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(calls, 2);
    status = parser.Feed("data: more\n\n");
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().message(), "bad event");
    EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace strowger::http
