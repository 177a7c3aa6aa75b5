#include "providers/anthropic/anthropic_provider.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdlib>

#include "core/json.hpp"
#include "core/log.hpp"
#include "testing/mock_model_server.hpp"
#include "testing/provider_test_util.hpp"
#include "testing/test_util.hpp"

namespace strowger::providers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using strowger::testing::BodyOf;
using strowger::testing::IoThread;
using strowger::testing::kWait;
using strowger::testing::MockBehavior;
using strowger::testing::MockModelServer;
using strowger::testing::MockRule;
using strowger::testing::MockToolCall;
using strowger::testing::RecordingSink;
using strowger::testing::RunSync;

constexpr const char* kAnthropicKeyEnv = "STROWGER_TEST_ANTHROPIC_KEY";
constexpr const char* kAnthropicKey = "sk-ant-test-0123456789";

CompletionRequest AnthropicRequest(std::string prompt, std::string node = "ask") {
    return strowger::testing::BriefRequest("claude-test", std::move(prompt), "run-a",
                                           std::move(node));
}

class AnthropicProviderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ::setenv(kAnthropicKeyEnv, kAnthropicKey, 1);
        auto server = MockModelServer::Start({});
        ASSERT_TRUE(server) << server.error().ToString();
        server_ = std::move(*server);
        http::HttpClientOptions options;
        options.proxy = http::ProxyConfig{};
        auto client = http::HttpClient::Create(io_.executor(), options);
        ASSERT_TRUE(client) << client.error().ToString();
        client_ = *client;
        provider_ = MakeProvider();
    }

    std::shared_ptr<AnthropicProvider> MakeProvider(milliseconds timeout = seconds(30)) {
        AnthropicConfig config;
        config.base_url = server_->anthropic_base_url() + "/";
        config.api_key_env = kAnthropicKeyEnv;
        config.timeout = timeout;
        return std::make_shared<AnthropicProvider>(config, client_);
    }

    Result<Completion> Call(CompletionRequest request, Deadline deadline = Deadline::After(kWait)) {
        return RunSync(provider_->Complete(std::move(request), deadline));
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
    std::shared_ptr<AnthropicProvider> provider_;
};

TEST_F(AnthropicProviderTest, CompletesWithHeadersSystemAndDefaultMaxTokens) {
    MockBehavior behavior;
    behavior.reply = "Short.";
    behavior.prompt_tokens = 21;
    behavior.completion_tokens = 2;
    AddRule("ask", behavior);
    auto result = Call(AnthropicRequest("Summarise."));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "Short.");
    EXPECT_TRUE(result->tool_calls.empty());
    EXPECT_EQ(result->finish_reason, "stop");
    EXPECT_EQ(result->usage.input_tokens, 21);
    EXPECT_EQ(result->usage.output_tokens, 2);
    EXPECT_EQ(result->model, "claude-test");

    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].target, "/v1/messages");
    EXPECT_EQ(recorded[0].Header("x-api-key"), kAnthropicKey);
    EXPECT_EQ(recorded[0].Header("anthropic-version"), "2023-06-01");
    EXPECT_EQ(recorded[0].Header("authorization"), "");
    EXPECT_EQ(recorded[0].Header("x-strowger-node"), "ask");
    json::object body = BodyOf(recorded[0]);
    EXPECT_EQ(JsonString(body, "model"), "claude-test");
    EXPECT_EQ(JsonInt(body, "max_tokens"), 4096);
    EXPECT_EQ(JsonString(body, "system"), "Be brief.");
    EXPECT_FALSE(body.contains("stream"));
    const json::array* messages = JsonArray(body, "messages");
    ASSERT_NE(messages, nullptr);
    ASSERT_EQ(messages->size(), 1u);
    EXPECT_EQ(JsonString(messages->at(0).as_object(), "role"), "user");
    EXPECT_EQ(JsonString(messages->at(0).as_object(), "content"), "Summarise.");
    EXPECT_EQ(Redact(std::string("k=") + kAnthropicKey), "k=[REDACTED]");
}

TEST_F(AnthropicProviderTest, ToolUseRoundTrip) {
    MockBehavior behavior;
    behavior.reply = "Let me look.";
    behavior.tool_calls.push_back(MockToolCall{"toolu_01", "read_file", R"({"path":"README.md"})"});
    AddRule("agent", behavior);

    CompletionRequest request = AnthropicRequest("What is in the README?", "agent");
    request.max_output_tokens = 300;
    request.temperature = 0.2;
    ToolSpec tool;
    tool.name = "read_file";
    tool.description = "Reads a file.";
    tool.parameters_schema = R"({"type":"object","properties":{"path":{"type":"string"}}})";
    request.tools.push_back(tool);
    ToolSpec bare;
    bare.name = "list_dir";
    request.tools.push_back(bare);
    // An earlier turn with two tool calls and their results, then a user follow-up.
    Message asked;
    asked.role = Role::kAssistant;
    asked.content = "Listing.";
    asked.tool_calls.push_back(ToolCall{"toolu_a", "list_dir", "{}"});
    asked.tool_calls.push_back(ToolCall{"toolu_b", "list_dir", R"({"dir":"src"})"});
    Message first;
    first.role = Role::kTool;
    first.tool_call_id = "toolu_a";
    first.content = "README.md";
    Message second;
    second.role = Role::kTool;
    second.tool_call_id = "toolu_b";
    second.content = "";
    Message follow_up;
    follow_up.content = "Now read it.";
    request.messages.push_back(asked);
    request.messages.push_back(first);
    request.messages.push_back(second);
    request.messages.push_back(follow_up);

    auto result = Call(request);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "Let me look.");
    ASSERT_EQ(result->tool_calls.size(), 1u);
    EXPECT_EQ(result->tool_calls[0].id, "toolu_01");
    EXPECT_EQ(result->tool_calls[0].name, "read_file");
    EXPECT_EQ(result->tool_calls[0].arguments, R"({"path":"README.md"})");
    EXPECT_EQ(result->finish_reason, "tool_calls");

    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    json::object body = BodyOf(recorded[0]);
    EXPECT_EQ(JsonInt(body, "max_tokens"), 300);
    EXPECT_DOUBLE_EQ(body.at("temperature").to_number<double>(), 0.2);
    const json::array* tools = JsonArray(body, "tools");
    ASSERT_NE(tools, nullptr);
    ASSERT_EQ(tools->size(), 2u);
    EXPECT_EQ(JsonString(tools->at(0).as_object(), "name"), "read_file");
    EXPECT_EQ(JsonString(tools->at(0).as_object(), "description"), "Reads a file.");
    ASSERT_NE(JsonObject(tools->at(0).as_object(), "input_schema"), nullptr);
    EXPECT_EQ(CompactJson(tools->at(1).as_object().at("input_schema")),
              R"({"type":"object","properties":{}})");

    const json::array* messages = JsonArray(body, "messages");
    ASSERT_NE(messages, nullptr);
    // user, assistant (text + 2 tool_use), user (2 tool_result + text)
    ASSERT_EQ(messages->size(), 3u);
    const json::object& assistant = messages->at(1).as_object();
    EXPECT_EQ(JsonString(assistant, "role"), "assistant");
    EXPECT_EQ(CompactJson(assistant.at("content")),
              R"([{"type":"text","text":"Listing."},)"
              R"({"type":"tool_use","id":"toolu_a","name":"list_dir","input":{}},)"
              R"({"type":"tool_use","id":"toolu_b","name":"list_dir","input":{"dir":"src"}}])");
    const json::object& results = messages->at(2).as_object();
    EXPECT_EQ(JsonString(results, "role"), "user");
    EXPECT_EQ(CompactJson(results.at("content")),
              R"([{"type":"tool_result","tool_use_id":"toolu_a","content":"README.md"},)"
              R"({"type":"tool_result","tool_use_id":"toolu_b"},)"
              R"({"type":"text","text":"Now read it."}])");
}

TEST_F(AnthropicProviderTest, StreamsTextAndToolUse) {
    MockBehavior behavior;
    behavior.reply = "Reading now";
    behavior.stream_deltas = {"Read", "ing ", "n\xC3\xB6w"};
    behavior.tool_calls.push_back(MockToolCall{"toolu_s", "grep", R"({"pattern":"TODO","n":3})"});
    behavior.prompt_tokens = 30;
    behavior.completion_tokens = 12;
    behavior.stream_chunk_bytes = 3;
    AddRule("stream", behavior);
    RecordingSink sink;
    CompletionRequest request = AnthropicRequest("go", "stream");
    request.stream = &sink;
    auto result = Call(request);
    ASSERT_TRUE(result) << result.error().ToString();
    std::vector<std::string> expected = {"Read", "ing ", "n\xC3\xB6w"};
    EXPECT_EQ(sink.deltas, expected);
    EXPECT_EQ(result->content, "Reading n\xC3\xB6w");
    ASSERT_EQ(result->tool_calls.size(), 1u);
    EXPECT_EQ(result->tool_calls[0].id, "toolu_s");
    EXPECT_EQ(result->tool_calls[0].name, "grep");
    EXPECT_EQ(result->tool_calls[0].arguments, R"({"pattern":"TODO","n":3})");
    EXPECT_EQ(result->finish_reason, "tool_calls");
    EXPECT_EQ(result->usage.input_tokens, 30);
    EXPECT_EQ(result->usage.output_tokens, 12);
    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_TRUE(JsonBool(BodyOf(recorded[0]), "stream"));
    EXPECT_EQ(recorded[0].Header("accept"), "text/event-stream");
}

TEST_F(AnthropicProviderTest, HttpErrorsMapToCodes) {
    struct Case {
        int status;
        ErrorCode code;
        std::string reason;
    };
    for (const Case& c :
         {Case{400, ErrorCode::kInvalidArgument, ""}, Case{401, ErrorCode::kUnauthenticated, ""},
          Case{403, ErrorCode::kPermissionDenied, ""}, Case{404, ErrorCode::kNotFound, ""},
          Case{429, ErrorCode::kUnavailable, ""}, Case{500, ErrorCode::kUnavailable, ""},
          Case{529, ErrorCode::kUnavailable, "overloaded"}}) {
        MockBehavior behavior;
        behavior.status = c.status;
        behavior.error_message = "status " + std::to_string(c.status);
        if (c.status == 429) behavior.retry_after = "3";
        std::string node = "status-" + std::to_string(c.status);
        AddRule(node, behavior);
        auto result = Call(AnthropicRequest("x", node));
        ASSERT_FALSE(result) << c.status;
        EXPECT_EQ(result.error().code(), c.code) << c.status << ": " << result.error().ToString();
        EXPECT_EQ(result.error().details().http_status, c.status);
        EXPECT_EQ(result.error().details().reason, c.reason);
        EXPECT_EQ(result.error().details().retry_after_ms, c.status == 429 ? 3000 : -1);
        EXPECT_EQ(result.error().message(), "anthropic: HTTP " + std::to_string(c.status) +
                                                ": status " + std::to_string(c.status));
    }
}

TEST_F(AnthropicProviderTest, StreamErrorEventIsMapped) {
    MockBehavior behavior;
    behavior.stream_body =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\","
        "\"usage\":{\"input_tokens\":1}}}\n\n"
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
        "\"message\":\"Overloaded\"}}\n\n";
    AddRule("overloaded", behavior);
    RecordingSink sink;
    CompletionRequest request = AnthropicRequest("x", "overloaded");
    request.stream = &sink;
    auto result = Call(request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().details().http_status, 529);
    EXPECT_EQ(result.error().details().reason, "overloaded");
    EXPECT_EQ(result.error().message(), "anthropic: stream error: overloaded_error: Overloaded");
}

TEST_F(AnthropicProviderTest, TruncatedAndMalformedStreamsAreInternal) {
    MockBehavior cut;
    cut.stream_cut_after_chunks = 4;
    AddRule("cut", cut);
    MockBehavior no_stop;
    no_stop.stream_body =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n";
    AddRule("no-stop", no_stop);
    MockBehavior bad;
    bad.stream_body =
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
        "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n";
    AddRule("bad", bad);
    for (std::string node : {"cut", "no-stop", "bad"}) {
        RecordingSink sink;
        CompletionRequest request = AnthropicRequest("x", node);
        request.stream = &sink;
        auto result = Call(request);
        ASSERT_FALSE(result) << node;
        EXPECT_EQ(result.error().code(), ErrorCode::kInternal) << result.error().ToString();
        EXPECT_TRUE(result.error().message().starts_with("anthropic: malformed stream: "))
            << result.error().message();
    }
    MockBehavior truncated;
    truncated.truncate = true;
    AddRule("truncated-body", truncated);
    auto result = Call(AnthropicRequest("x", "truncated-body"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
    EXPECT_TRUE(result.error().message().starts_with("anthropic: malformed response body: "))
        << result.error().message();
}

TEST_F(AnthropicProviderTest, MissingKeyAndBadArgumentsFailBeforeSending) {
    CompletionRequest request = AnthropicRequest("x");
    Message asked;
    asked.role = Role::kAssistant;
    asked.tool_calls.push_back(ToolCall{"toolu_x", "f", "[1]"});
    request.messages.push_back(asked);
    auto result = Call(request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(result.error().message(),
              "anthropic: tool call 'toolu_x' has arguments that are not a JSON object");

    ::unsetenv(kAnthropicKeyEnv);
    result = Call(AnthropicRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnauthenticated);
    EXPECT_EQ(result.error().message(), std::string(kAnthropicKeyEnv) + " is not set");
    EXPECT_EQ(server_->requests(), 0);
}

TEST_F(AnthropicProviderTest, TimeoutIsDeadlineExceeded) {
    server_->SetLatency(seconds(20));
    provider_ = MakeProvider(milliseconds(200));
    auto start = std::chrono::steady_clock::now();
    auto result = Call(AnthropicRequest("x"), Deadline::Never());
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kDeadlineExceeded) << result.error().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
}

// ---- The stream parser alone --------------------------------------------------------------------

const std::string kMessageStream =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\","
    "\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\r\n\r\n"
    "event: content_block_start\r\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\r\n\r\n"
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Gr\xC3\xBC\xC3\x9F\"}}\r\n\r\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\" Gott\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
    "\"id\":\"toolu_9\",\"name\":\"get_weather\",\"input\":{}}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"{\\\"city\\\": \\\"Wi\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
    "\"partial_json\":\"en\\\"}\"}}\n\n"
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
    "\"usage\":{\"output_tokens\":17}}\n\n"
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

void ExpectMessageResult(const Result<Completion>& completion) {
    ASSERT_TRUE(completion) << completion.error().ToString();
    EXPECT_EQ(completion->content, "Gr\xC3\xBC\xC3\x9F Gott");
    ASSERT_EQ(completion->tool_calls.size(), 1u);
    EXPECT_EQ(completion->tool_calls[0].id, "toolu_9");
    EXPECT_EQ(completion->tool_calls[0].name, "get_weather");
    EXPECT_EQ(completion->tool_calls[0].arguments, R"({"city": "Wien"})");
    EXPECT_EQ(completion->finish_reason, "tool_calls");
    EXPECT_EQ(completion->usage.input_tokens, 15);
    EXPECT_EQ(completion->usage.output_tokens, 17);
    EXPECT_EQ(completion->model, "claude-x");
}

TEST(MessagesStreamParserTest, EverySplitGivesTheSameResult) {
    for (size_t split = 0; split <= kMessageStream.size(); ++split) {
        RecordingSink sink;
        MessagesStreamParser parser("anthropic", &sink);
        ASSERT_TRUE(parser.Feed(std::string_view(kMessageStream).substr(0, split)));
        ASSERT_TRUE(parser.Feed(std::string_view(kMessageStream).substr(split)));
        ExpectMessageResult(parser.Finish());
        std::vector<std::string> expected = {"Gr\xC3\xBC\xC3\x9F", " Gott"};
        EXPECT_EQ(sink.deltas, expected) << "split at " << split;
        if (::testing::Test::HasFailure()) return;
    }
    MessagesStreamParser bytewise;
    for (char c : kMessageStream) ASSERT_TRUE(bytewise.Feed(std::string_view(&c, 1)));
    ExpectMessageResult(bytewise.Finish());
}

TEST(MessagesStreamParserTest, EveryTruncationIsInternal) {
    size_t stop = kMessageStream.find("event: message_stop");
    for (size_t cut = 0; cut <= stop; cut += 4) {
        MessagesStreamParser parser;
        ASSERT_TRUE(parser.Feed(std::string_view(kMessageStream).substr(0, cut)));
        auto completion = parser.Finish();
        ASSERT_FALSE(completion) << cut;
        EXPECT_EQ(completion.error().code(), ErrorCode::kInternal);
        EXPECT_TRUE(completion.error().message().starts_with(
            "anthropic: malformed stream: truncated (the body ended before message_stop"))
            << completion.error().message();
    }
}

TEST(MessagesStreamParserTest, BadToolInputIsInternal) {
    MessagesStreamParser parser;
    ASSERT_TRUE(
        parser.Feed("data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
                    "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n"
                    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                    "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n"
                    "data: {\"type\":\"message_stop\"}\n\n"));
    auto completion = parser.Finish();
    ASSERT_FALSE(completion);
    EXPECT_EQ(completion.error().code(), ErrorCode::kInternal);
    EXPECT_TRUE(completion.error().message().starts_with(
        "anthropic: malformed stream: the input of tool_use t is not a JSON object"))
        << completion.error().message();
}

TEST(MessagesBodyTest, ParsesResponsesAndMapsStopReasons) {
    auto completion = ParseMessagesBody(
        R"({"model":"claude-y","content":[{"type":"thinking","thinking":"hmm"},
            {"type":"text","text":"a"},{"type":"text","text":"b"}],
            "stop_reason":"max_tokens","usage":{"input_tokens":3,"output_tokens":4,
            "cache_creation_input_tokens":2}})");
    ASSERT_TRUE(completion) << completion.error().ToString();
    EXPECT_EQ(completion->content, "ab");
    EXPECT_EQ(completion->finish_reason, "length");
    EXPECT_EQ(completion->usage.input_tokens, 5);
    EXPECT_EQ(completion->usage.output_tokens, 4);

    auto malformed = ParseMessagesBody(R"({"id":"x"})");
    ASSERT_FALSE(malformed);
    EXPECT_EQ(malformed.error().code(), ErrorCode::kInternal);
    EXPECT_EQ(malformed.error().message(), "anthropic: malformed response body: no content");
}

TEST(AnthropicRegistryTest, RegistersWithEnvironmentBaseUrl) {
    IoThread io;
    auto client = http::HttpClient::Create(io.executor());
    ASSERT_TRUE(client);
    ::setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/", 1);
    ProviderRegistry registry(io.executor());
    RegisterAnthropicProvider(registry, *client);
    auto resolved = registry.Resolve("anthropic:claude-3-5-haiku-latest", "");
    ASSERT_TRUE(resolved) << resolved.error().ToString();
    EXPECT_EQ(resolved->provider->name(), "anthropic");
    EXPECT_EQ(resolved->model, "claude-3-5-haiku-latest");
    auto* anthropic = dynamic_cast<AnthropicProvider*>(resolved->provider.get());
    ASSERT_NE(anthropic, nullptr);
    EXPECT_EQ(anthropic->config().base_url, "http://127.0.0.1:9");
    ::unsetenv("ANTHROPIC_BASE_URL");
    auto empty = registry.Resolve("anthropic:", "");
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace strowger::providers

namespace strowger::providers {
namespace {

std::string MessageWithUsage(const std::string& usage) {
    return R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-test",)"
           R"("content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":)" +
           usage + "}";
}

TEST_F(AnthropicProviderTest, UsageCountsThatAreNotSaneAreAProtocolError) {
    struct Case {
        std::string usage;
        std::string message;
    };
    const std::string range = " (expected an integer from 0 to 1000000000)";
    const std::vector<Case> cases = {
        {R"({"input_tokens":-4,"output_tokens":1})", "usage.input_tokens is -4" + range},
        {R"({"input_tokens":9223372036854775807,"output_tokens":1})",
         "usage.input_tokens is 9223372036854775807" + range},
        {R"({"input_tokens":1,"output_tokens":0.5})", "usage.output_tokens is 5E-1" + range},
        {R"({"input_tokens":1,"output_tokens":"7"})", R"(usage.output_tokens is "7")" + range},
        {R"({"input_tokens":1,"cache_read_input_tokens":-100,"output_tokens":1})",
         "usage.cache_read_input_tokens is -100" + range},
        // Each part in range, their sum not.
        {R"({"input_tokens":600000000,"cache_creation_input_tokens":600000000,)"
         R"("output_tokens":1})",
         "usage reports 1200000000 input tokens in all (input_tokens + "
         "cache_creation_input_tokens + cache_read_input_tokens; expected at most 1000000000)"},
    };
    int n = 0;
    for (const Case& c : cases) {
        MockBehavior behavior;
        behavior.body = MessageWithUsage(c.usage);
        std::string node = "usage-" + std::to_string(++n);
        AddRule(node, behavior);
        auto result = Call(AnthropicRequest("x", node));
        ASSERT_FALSE(result) << c.usage;
        EXPECT_EQ(result.error().code(), ErrorCode::kInternal) << c.usage;
        EXPECT_EQ(result.error().message(), "anthropic: malformed response body: " + c.message);
    }
    // Streamed: in message_start and in message_delta.
    const std::string start_ok =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\","
        "\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n";
    const std::string rest =
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    auto delta = [](const std::string& usage) {
        return "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
               "\"end_turn\"},\"usage\":" +
               usage + "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    };
    struct StreamCase {
        std::string body;
        std::string message;
    };
    const std::vector<StreamCase> streams = {
        {"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\","
         "\"usage\":{\"input_tokens\":-9,\"output_tokens\":1}}}\n\n" +
             rest + delta(R"({"output_tokens":2})"),
         "usage.input_tokens is -9" + range},
        {start_ok + rest + delta(R"({"output_tokens":1e12})"),
         "usage.output_tokens is 1E12" + range},
        {start_ok + rest + delta(R"({"output_tokens":"many"})"),
         R"(usage.output_tokens is "many")" + range},
    };
    for (const StreamCase& c : streams) {
        MockBehavior behavior;
        behavior.stream_body = c.body;
        std::string node = "stream-usage-" + std::to_string(++n);
        AddRule(node, behavior);
        RecordingSink sink;
        CompletionRequest request = AnthropicRequest("x", node);
        request.stream = &sink;
        auto result = Call(request);
        ASSERT_FALSE(result) << c.body;
        EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
        EXPECT_EQ(result.error().message(), "anthropic: malformed stream: " + c.message);
    }
    // The same stream with sane counts completes.
    MockBehavior good;
    good.stream_body = start_ok + rest + delta(R"({"output_tokens":2})");
    AddRule("stream-good", good);
    RecordingSink sink;
    CompletionRequest request = AnthropicRequest("x", "stream-good");
    request.stream = &sink;
    auto result = Call(request);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->usage.input_tokens, 3);
    EXPECT_EQ(result->usage.output_tokens, 2);
}

TEST_F(AnthropicProviderTest, HugeErrorBodiesAndStreamErrorsAreCapped) {
    MockBehavior body;
    body.status = 500;
    body.error_message = std::string(5'000'000, 'e');
    AddRule("huge", body);
    auto result = Call(AnthropicRequest("x", "huge"));
    ASSERT_FALSE(result);
    EXPECT_LT(result.error().message().size(), 2200u);
    EXPECT_TRUE(result.error().message().ends_with("… (5000000 bytes in all)"));

    MockBehavior stream;
    stream.stream_body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"" +
                         std::string(100'000, 't') + "\",\"message\":\"" +
                         std::string(1'000'000, 'm') + "\"}}\n\n";
    AddRule("huge-stream", stream);
    RecordingSink sink;
    CompletionRequest request = AnthropicRequest("x", "huge-stream");
    request.stream = &sink;
    result = Call(request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_LT(result.error().message().size(), 2400u);
    EXPECT_TRUE(result.error().message().ends_with("… (1000000 bytes in all)"));
}

}  // namespace
}  // namespace strowger::providers
