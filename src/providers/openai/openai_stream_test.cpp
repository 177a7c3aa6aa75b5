// Streaming chat completions: the stream parser alone (every split of a short stream, malformed
// and truncated streams) and end to end against the mock server's SSE responses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/json.hpp"
#include "providers/openai/openai_provider.hpp"
#include "testing/mock_model_server.hpp"
#include "testing/provider_test_util.hpp"
#include "testing/test_util.hpp"

namespace strowger::providers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using strowger::testing::IoThread;
using strowger::testing::kWait;
using strowger::testing::MockBehavior;
using strowger::testing::MockModelServer;
using strowger::testing::MockRule;
using strowger::testing::MockToolCall;
using strowger::testing::RecordingSink;
using strowger::testing::RunSync;

// A short stream with everything a parser must handle: a role chunk, content split inside a
// multi-byte character's neighbourhood, a comment, CRLF line ends, two tool calls whose
// arguments arrive in pieces (and out of index order), a finish chunk, a usage chunk, [DONE].
const std::string kStream =
    ": OPENROUTER PROCESSING\r\n\r\n"
    "data: {\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"H\xC3\xA9llo\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\", w\xF0\x9F\x98\x80rld\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\","
    "\"type\":\"function\",\"function\":{\"name\":\"grep\",\"arguments\":\"\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\","
    "\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":\"{\\\"pa\"}}]}}]}"
    "\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
    "{\"arguments\":\"th\\\":\\\"a\\\"}\"}},{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]}}]}"
    "\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5}}\n\n"
    "data: [DONE]\n\n";

void ExpectStreamResult(const Result<Completion>& completion) {
    ASSERT_TRUE(completion) << completion.error().ToString();
    EXPECT_EQ(completion->content, "H\xC3\xA9llo, w\xF0\x9F\x98\x80rld");
    ASSERT_EQ(completion->tool_calls.size(), 2u);
    EXPECT_EQ(completion->tool_calls[0].id, "call_a");
    EXPECT_EQ(completion->tool_calls[0].name, "read_file");
    EXPECT_EQ(completion->tool_calls[0].arguments, R"({"path":"a"})");
    EXPECT_EQ(completion->tool_calls[1].id, "call_b");
    EXPECT_EQ(completion->tool_calls[1].name, "grep");
    EXPECT_EQ(completion->tool_calls[1].arguments, "{}");
    EXPECT_EQ(completion->finish_reason, "tool_calls");
    EXPECT_EQ(completion->usage.input_tokens, 12);
    EXPECT_EQ(completion->usage.output_tokens, 5);
    EXPECT_EQ(completion->model, "gpt-x");
}

TEST(ChatCompletionStreamParserTest, EveryTwoWaySplitGivesTheSameResult) {
    for (size_t split = 0; split <= kStream.size(); ++split) {
        RecordingSink sink;
        ChatCompletionStreamParser parser("openai", &sink);
        ASSERT_TRUE(parser.Feed(std::string_view(kStream).substr(0, split)));
        ASSERT_TRUE(parser.Feed(std::string_view(kStream).substr(split)));
        auto completion = parser.Finish();
        ExpectStreamResult(completion);
        std::vector<std::string> expected = {"H\xC3\xA9llo", ", w\xF0\x9F\x98\x80rld"};
        EXPECT_EQ(sink.deltas, expected) << "split at " << split;
        if (::testing::Test::HasFailure()) return;
    }
}

TEST(ChatCompletionStreamParserTest, ByteByByteAndThreeWaySplits) {
    RecordingSink sink;
    ChatCompletionStreamParser parser("openai", &sink);
    for (char c : kStream) ASSERT_TRUE(parser.Feed(std::string_view(&c, 1)));
    ExpectStreamResult(parser.Finish());
    for (size_t first = 0; first < kStream.size(); first += 5) {
        for (size_t second = first; second <= kStream.size(); second += 11) {
            ChatCompletionStreamParser split("openai", nullptr);
            std::string_view all(kStream);
            ASSERT_TRUE(split.Feed(all.substr(0, first)));
            ASSERT_TRUE(split.Feed(all.substr(first, second - first)));
            ASSERT_TRUE(split.Feed(all.substr(second)));
            ExpectStreamResult(split.Finish());
            if (::testing::Test::HasFailure()) return;
        }
    }
}

TEST(ChatCompletionStreamParserTest, TruncatedStreamIsInternal) {
    // Every proper prefix that stops before the finish chunk is truncated.
    size_t finish = kStream.find("\"finish_reason\":\"tool_calls\"");
    for (size_t cut = 0; cut < finish; cut += 3) {
        ChatCompletionStreamParser parser;
        ASSERT_TRUE(parser.Feed(std::string_view(kStream).substr(0, cut)));
        auto completion = parser.Finish();
        ASSERT_FALSE(completion) << "cut at " << cut;
        EXPECT_EQ(completion.error().code(), ErrorCode::kInternal);
        EXPECT_TRUE(completion.error().message().starts_with("openai: malformed stream: "))
            << completion.error().message();
    }
    ChatCompletionStreamParser parser;
    ASSERT_TRUE(parser.Feed("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"));
    auto completion = parser.Finish();
    ASSERT_FALSE(completion);
    EXPECT_EQ(completion.error().message(),
              "openai: malformed stream: truncated (the body ended before data: [DONE], after 1 "
              "chunks)");
}

TEST(ChatCompletionStreamParserTest, FinishReasonWithoutDoneIsAccepted) {
    ChatCompletionStreamParser parser;
    ASSERT_TRUE(parser.Feed(
        "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n"));
    auto completion = parser.Finish();
    ASSERT_TRUE(completion) << completion.error().ToString();
    EXPECT_EQ(completion->content, "ok");
    EXPECT_EQ(completion->finish_reason, "stop");
}

TEST(ChatCompletionStreamParserTest, MalformedChunksAreInternal) {
    for (std::string_view body : {
             std::string_view("data: {\"choices\":[{\"delta\":{\"content\":\"a\"\n\n"),
             std::string_view("data: [1,2]\n\n"),
             std::string_view("data: {\"choices\":{}}\n\n"),
             std::string_view("data: {\"choices\":[{\"delta\":\"x\"}]}\n\n"),
             std::string_view("data: {\"choices\":[{\"delta\":{\"tool_calls\":{}}}]}\n\n"),
         }) {
        ChatCompletionStreamParser parser;
        auto status = parser.Feed(body);
        ASSERT_FALSE(status) << body;
        EXPECT_EQ(status.error().code(), ErrorCode::kInternal) << body;
        EXPECT_TRUE(status.error().message().starts_with("openai: malformed stream: "))
            << status.error().message();
        // The failure sticks.
        EXPECT_FALSE(parser.Feed("data: [DONE]\n\n"));
        EXPECT_FALSE(parser.Finish());
    }
    ChatCompletionStreamParser nameless;
    ASSERT_TRUE(
        nameless.Feed("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
                      "{\"arguments\":\"{}\"}}]}}]}\n\ndata: [DONE]\n\n"));
    auto completion = nameless.Finish();
    ASSERT_FALSE(completion);
    EXPECT_EQ(completion.error().message(),
              "openai: malformed stream: a tool call has no function name");

    ChatCompletionStreamParser empty;
    completion = empty.Finish();
    ASSERT_FALSE(completion);
    EXPECT_EQ(completion.error().message(), "openai: malformed stream: empty body");
}

TEST(ChatCompletionStreamParserTest, ErrorChunkIsUnavailable) {
    ChatCompletionStreamParser parser("ollama");
    ASSERT_TRUE(parser.Feed("data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n"));
    auto status = parser.Feed("data: {\"error\":{\"message\":\"upstream overloaded\"}}\n\n");
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(status.error().message(), "ollama: stream error: upstream overloaded");
    EXPECT_EQ(status.error().details().reason, "stream_error");
}

TEST(ChatCompletionStreamParserTest, PlainJsonBodyIsAccepted) {
    RecordingSink sink;
    ChatCompletionStreamParser parser("openai", &sink);
    ASSERT_TRUE(parser.Feed("  \n{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":"));
    ASSERT_TRUE(parser.Feed("\"whole\"},\"finish_reason\":\"stop\"}]}"));
    auto completion = parser.Finish();
    ASSERT_TRUE(completion) << completion.error().ToString();
    EXPECT_EQ(completion->content, "whole");
    EXPECT_EQ(sink.Joined(), "whole");
}

TEST(ChatCompletionStreamParserTest, ToolCallsWithoutIndexOrId) {
    ChatCompletionStreamParser parser;
    ASSERT_TRUE(parser.Feed(
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"f\","
        "\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\":1}\"}}]"
        "}}]}\n\ndata: [DONE]\n\n"));
    auto completion = parser.Finish();
    ASSERT_TRUE(completion) << completion.error().ToString();
    ASSERT_EQ(completion->tool_calls.size(), 1u);
    EXPECT_EQ(completion->tool_calls[0].id, "call_1");
    EXPECT_EQ(completion->tool_calls[0].arguments, R"({"a":1})");
    EXPECT_EQ(completion->finish_reason, "tool_calls");
}

// ---- End to end against the mock's SSE responses -----------------------------------------------

class OpenAiStreamingTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto server = MockModelServer::Start({});
        ASSERT_TRUE(server) << server.error().ToString();
        server_ = std::move(*server);
        http::HttpClientOptions options;
        options.proxy = http::ProxyConfig{};
        auto client = http::HttpClient::Create(io_.executor(), options);
        ASSERT_TRUE(client) << client.error().ToString();
        client_ = *client;
        OpenAiConfig config;
        config.base_url = server_->base_url();
        config.api_key_env = "";
        provider_ = std::make_shared<OpenAiProvider>(config, client_);
    }

    CompletionRequest Request(std::string node, StreamSink* sink, std::string prompt = "hi") {
        CompletionRequest request;
        request.model = "gpt-test";
        Message user;
        user.content = std::move(prompt);
        request.messages.push_back(user);
        request.node = std::move(node);
        request.stream = sink;
        return request;
    }

    Result<Completion> Call(CompletionRequest request) {
        return RunSync(provider_->Complete(std::move(request), Deadline::After(kWait)));
    }

    void AddRule(std::string node, MockBehavior behavior) {
        MockRule rule;
        rule.node = std::move(node);
        rule.behavior = std::move(behavior);
        server_->AddRule(std::move(rule));
    }

    IoThread io_;
    std::unique_ptr<MockModelServer> server_;
    std::shared_ptr<http::HttpClient> client_;
    std::shared_ptr<OpenAiProvider> provider_;
};

TEST_F(OpenAiStreamingTest, DeltasArriveInOrderWhateverTheChunking) {
    const std::vector<std::string> deltas = {"Stre", "am\xC3\xA9", "d ", "t\xF0\x9F\x98\x80xt",
                                             "."};
    for (size_t chunk_bytes : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{64}}) {
        MockBehavior behavior;
        behavior.reply = "unused";
        behavior.stream_deltas = deltas;
        behavior.stream_chunk_bytes = chunk_bytes;
        behavior.prompt_tokens = 9;
        behavior.completion_tokens = 4;
        std::string node = "chunk-" + std::to_string(chunk_bytes);
        AddRule(node, behavior);
        RecordingSink sink;
        auto result = Call(Request(node, &sink));
        ASSERT_TRUE(result) << chunk_bytes << ": " << result.error().ToString();
        EXPECT_EQ(sink.deltas, deltas) << chunk_bytes;
        EXPECT_EQ(result->content,
                  "Stream\xC3\xA9"
                  "d t\xF0\x9F\x98\x80xt.");
        EXPECT_EQ(result->finish_reason, "stop");
        EXPECT_EQ(result->usage.input_tokens, 9);
        EXPECT_EQ(result->usage.output_tokens, 4);
        EXPECT_EQ(result->model, "gpt-test");
    }
    auto recorded = server_->recorded_requests();
    ASSERT_FALSE(recorded.empty());
    EXPECT_EQ(recorded[0].Header("accept"), "text/event-stream");
    auto body = ParseJson(recorded[0].body);
    ASSERT_TRUE(body && body->is_object());
    EXPECT_TRUE(JsonBool(body->as_object(), "stream"));
    const json::object* options = JsonObject(body->as_object(), "stream_options");
    ASSERT_NE(options, nullptr);
    EXPECT_TRUE(JsonBool(*options, "include_usage"));
    // One connection for all the streamed calls: a finished stream leaves it reusable.
    EXPECT_EQ(server_->connections_accepted(), 1);
}

TEST_F(OpenAiStreamingTest, SlowChunksAreDeliveredAsTheyArrive) {
    MockBehavior behavior;
    behavior.stream_deltas = {"one ", "two ", "three"};
    behavior.stream_chunk_delay_ms = 30;
    AddRule("slow", behavior);
    struct TimedSink : StreamSink {
        void OnDelta(std::string_view text) override {
            deltas.emplace_back(text);
            times.push_back(std::chrono::steady_clock::now());
        }
        std::vector<std::string> deltas;
        std::vector<std::chrono::steady_clock::time_point> times;
    } sink;
    auto result = Call(Request("slow", &sink));
    auto done = std::chrono::steady_clock::now();
    ASSERT_TRUE(result) << result.error().ToString();
    ASSERT_EQ(sink.deltas.size(), 3u);
    EXPECT_EQ(result->content, "one two three");
    // The first delta came well before the end of the stream (several 30 ms pauses later).
    EXPECT_GE(done - sink.times.front(), milliseconds(60));
}

TEST_F(OpenAiStreamingTest, StreamedToolCallRoundTrip) {
    MockBehavior behavior;
    behavior.tool_calls.push_back(MockToolCall{"call_1", "read_file", R"({"path":"README.md"})"});
    behavior.tool_calls.push_back(MockToolCall{"", "list_dir", R"({"dir":"src","depth":2})"});
    behavior.stream_chunk_bytes = 5;
    AddRule("tools", behavior);
    RecordingSink sink;
    auto result = Call(Request("tools", &sink));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "");
    EXPECT_TRUE(sink.deltas.empty());
    ASSERT_EQ(result->tool_calls.size(), 2u);
    EXPECT_EQ(result->tool_calls[0].id, "call_1");
    EXPECT_EQ(result->tool_calls[0].name, "read_file");
    EXPECT_EQ(result->tool_calls[0].arguments, R"({"path":"README.md"})");
    EXPECT_EQ(result->tool_calls[1].id, "call_1_2");
    EXPECT_EQ(result->tool_calls[1].name, "list_dir");
    EXPECT_EQ(result->tool_calls[1].arguments, R"({"dir":"src","depth":2})");
    EXPECT_EQ(result->finish_reason, "tool_calls");
}

TEST_F(OpenAiStreamingTest, ConnectionCutMidStreamIsInternal) {
    MockBehavior behavior;
    behavior.stream_deltas = {"a", "b", "c", "d"};
    behavior.stream_cut_after_chunks = 3;
    AddRule("cut", behavior);
    RecordingSink sink;
    auto result = Call(Request("cut", &sink));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal) << result.error().ToString();
    EXPECT_TRUE(result.error().message().starts_with("openai: malformed stream: truncated"))
        << result.error().message();
    EXPECT_EQ(sink.Joined(), "ab");
}

TEST_F(OpenAiStreamingTest, StreamEndingWithoutDoneIsInternal) {
    MockBehavior behavior;
    behavior.stream_body = "data: {\"choices\":[{\"delta\":{\"content\":\"half\"}}]}\n\n";
    AddRule("no-done", behavior);
    auto result = Call(Request("no-done", nullptr));
    // Without a sink the call does not stream: the rule's stream_body is not used.
    ASSERT_TRUE(result) << result.error().ToString();
    RecordingSink sink;
    result = Call(Request("no-done", &sink));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
    EXPECT_EQ(result.error().message(),
              "openai: malformed stream: truncated (the body ended before data: [DONE], after 1 "
              "chunks)");
}

TEST_F(OpenAiStreamingTest, MalformedStreamStopsReadingAndIsInternal) {
    MockBehavior behavior;
    behavior.stream_body =
        "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {oops\n\n";
    AddRule("bad", behavior);
    RecordingSink sink;
    auto result = Call(Request("bad", &sink));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
    EXPECT_TRUE(result.error().message().starts_with("openai: malformed stream: "))
        << result.error().message();
    EXPECT_EQ(sink.Joined(), "x");
}

TEST_F(OpenAiStreamingTest, ErrorChunkIsUnavailableAndHttpErrorsAreNotStreamed) {
    MockBehavior behavior;
    behavior.stream_body = "data: {\"error\":{\"message\":\"model overloaded\"}}\n\n";
    AddRule("error-chunk", behavior);
    RecordingSink sink;
    auto result = Call(Request("error-chunk", &sink));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().message(), "openai: stream error: model overloaded");

    MockBehavior limited;
    limited.status = 429;
    limited.retry_after = "2";
    AddRule("limited", limited);
    result = Call(Request("limited", &sink));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().details().http_status, 429);
    EXPECT_EQ(result.error().details().retry_after_ms, 2000);
}

TEST_F(OpenAiStreamingTest, StreamedAndPlainCallsShareConnections) {
    for (int i = 0; i < 5; ++i) {
        RecordingSink sink;
        auto streamed = Call(Request("reuse", &sink, "s" + std::to_string(i)));
        ASSERT_TRUE(streamed) << streamed.error().ToString();
        EXPECT_EQ(streamed->content, "echo: s" + std::to_string(i));
        EXPECT_EQ(sink.Joined(), streamed->content);
        auto plain = Call(Request("reuse", nullptr, "p" + std::to_string(i)));
        ASSERT_TRUE(plain) << plain.error().ToString();
        EXPECT_EQ(plain->content, "echo: p" + std::to_string(i));
    }
    EXPECT_EQ(server_->connections_accepted(), 1);
    EXPECT_EQ(client_->stats().reuses, 9);
}

}  // namespace
}  // namespace strowger::providers
