#include "providers/openai/openai_provider.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <future>
#include <mutex>

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
using strowger::testing::RunSync;

constexpr const char* kOpenAiKeyEnv = "STROWGER_TEST_OPENAI_KEY";
constexpr const char* kOpenAiKey = "sk-test-0123456789abcdef";

CompletionRequest OpenAiRequest(std::string prompt, std::string node = "summarise") {
    CompletionRequest request =
        strowger::testing::BriefRequest("gpt-test", std::move(prompt), "run-1", std::move(node));
    request.attempt = 2;
    return request;
}

MockRule NodeRule(std::string node, MockBehavior behavior) {
    MockRule rule;
    rule.node = std::move(node);
    rule.behavior = std::move(behavior);
    return rule;
}

class OpenAiProviderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ::setenv(kOpenAiKeyEnv, kOpenAiKey, 1);
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

    std::shared_ptr<OpenAiProvider> MakeProvider(std::chrono::milliseconds timeout = seconds(30)) {
        OpenAiConfig config;
        config.base_url = server_->base_url() + "/";
        config.api_key_env = kOpenAiKeyEnv;
        config.timeout = timeout;
        config.extra_headers.emplace_back("X-Extra", "yes");
        return std::make_shared<OpenAiProvider>(config, client_);
    }

    Result<Completion> Call(CompletionRequest request, Deadline deadline = Deadline::After(kWait)) {
        return RunSync(provider_->Complete(std::move(request), deadline));
    }

    void ExpectStatusMaps(int status, ErrorCode code) {
        MockBehavior behavior;
        behavior.status = status;
        behavior.error_message = "status " + std::to_string(status);
        std::string node = "status-" + std::to_string(status);
        server_->AddRule(NodeRule(node, behavior));
        auto result = Call(OpenAiRequest("x", node));
        ASSERT_FALSE(result) << status;
        EXPECT_EQ(result.error().code(), code) << status << ": " << result.error().ToString();
        EXPECT_EQ(result.error().details().http_status, status);
        EXPECT_EQ(result.error().message(),
                  "openai: HTTP " + std::to_string(status) + ": status " + std::to_string(status));
    }

    IoThread io_;  // first: destroyed last
    std::unique_ptr<MockModelServer> server_;
    std::shared_ptr<http::HttpClient> client_;
    std::shared_ptr<OpenAiProvider> provider_;
};

TEST_F(OpenAiProviderTest, CompletesWithUsageFinishReasonAndModel) {
    MockBehavior behavior;
    behavior.reply = "Short answer.";
    behavior.prompt_tokens = 11;
    behavior.completion_tokens = 3;
    server_->AddRule(NodeRule("summarise", behavior));
    CompletionRequest request = OpenAiRequest("Summarise this.");
    request.temperature = 0.5;
    request.max_output_tokens = 64;

    auto result = Call(request);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "Short answer.");
    EXPECT_TRUE(result->tool_calls.empty());
    EXPECT_EQ(result->finish_reason, "stop");
    EXPECT_EQ(result->usage.input_tokens, 11);
    EXPECT_EQ(result->usage.output_tokens, 3);
    EXPECT_EQ(result->model, "gpt-test");

    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].method, "POST");
    EXPECT_EQ(recorded[0].target, "/v1/chat/completions");
    EXPECT_EQ(recorded[0].Header("authorization"), std::string("Bearer ") + kOpenAiKey);
    EXPECT_EQ(recorded[0].Header("content-type"), "application/json");
    EXPECT_EQ(recorded[0].Header("x-strowger-run"), "run-1");
    EXPECT_EQ(recorded[0].Header("x-strowger-node"), "summarise");
    EXPECT_EQ(recorded[0].Header("x-strowger-attempt"), "2");
    EXPECT_EQ(recorded[0].Header("x-extra"), "yes");
    json::object body = BodyOf(recorded[0]);
    EXPECT_EQ(JsonString(body, "model"), "gpt-test");
    EXPECT_EQ(JsonInt(body, "max_tokens"), 64);
    ASSERT_TRUE(body.contains("temperature"));
    EXPECT_DOUBLE_EQ(body.at("temperature").to_number<double>(), 0.5);
    EXPECT_FALSE(body.contains("tools"));
    const json::array* messages = JsonArray(body, "messages");
    ASSERT_NE(messages, nullptr);
    ASSERT_EQ(messages->size(), 2u);
    EXPECT_EQ(JsonString(messages->at(0).as_object(), "role"), "system");
    EXPECT_EQ(JsonString(messages->at(0).as_object(), "content"), "Be brief.");
    EXPECT_EQ(JsonString(messages->at(1).as_object(), "role"), "user");
    EXPECT_EQ(JsonString(messages->at(1).as_object(), "content"), "Summarise this.");

    EXPECT_EQ(Redact(std::string("key=") + kOpenAiKey), "key=[REDACTED]");
    EXPECT_EQ(server_->requests_for_node("summarise"), 1);
}

TEST_F(OpenAiProviderTest, StreamSinkGetsTheFinalText) {
    struct Sink : StreamSink {
        void OnDelta(std::string_view text) override { received += text; }
        std::string received;
    } sink;
    CompletionRequest request = OpenAiRequest("stream me");
    request.stream = &sink;
    auto result = Call(request);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "echo: stream me");
    EXPECT_EQ(sink.received, "echo: stream me");
}

TEST_F(OpenAiProviderTest, MissingKeyIsUnauthenticatedAndSendsNothing) {
    ::unsetenv(kOpenAiKeyEnv);
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnauthenticated);
    EXPECT_EQ(result.error().message(), std::string(kOpenAiKeyEnv) + " is not set");
    EXPECT_EQ(server_->requests(), 0);

    ::unsetenv("OPENAI_API_KEY");
    OpenAiConfig config = DefaultOpenAiConfig();
    config.base_url = server_->base_url();
    OpenAiProvider provider(config, client_);
    result = RunSync(provider.Complete(OpenAiRequest("x"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnauthenticated);
    EXPECT_EQ(result.error().message(), "OPENAI_API_KEY is not set");
}

TEST_F(OpenAiProviderTest, Http401IsUnauthenticatedWithTheServersMessage) {
    MockBehavior behavior;
    behavior.status = 401;
    behavior.error_message = "Incorrect API key provided";
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnauthenticated);
    EXPECT_EQ(result.error().message(), "openai: HTTP 401: Incorrect API key provided");
    EXPECT_EQ(result.error().details().http_status, 401);
}

TEST_F(OpenAiProviderTest, Http429IsUnavailableWithRetryAfter) {
    MockBehavior behavior;
    behavior.status = 429;
    behavior.retry_after = "7";
    behavior.error_message = "Rate limit reached";
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_TRUE(IsRetryable(result.error()));
    EXPECT_EQ(result.error().details().http_status, 429);
    EXPECT_EQ(result.error().details().retry_after_ms, 7000);
    EXPECT_EQ(result.error().message(), "openai: HTTP 429: Rate limit reached");
}

TEST_F(OpenAiProviderTest, Http429WithRetryAfterMsPrefersIt) {
    MockBehavior behavior;
    behavior.status = 429;
    behavior.retry_after = "7";
    behavior.headers.emplace_back("retry-after-ms", "1250");
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().details().retry_after_ms, 1250);
}

TEST_F(OpenAiProviderTest, Http429InsufficientQuotaIsResourceExhausted) {
    MockBehavior behavior;
    behavior.status = 429;
    behavior.body =
        R"({"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}})";
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kResourceExhausted);
    EXPECT_EQ(result.error().details().reason, "insufficient_quota");
    EXPECT_EQ(result.error().details().http_status, 429);
}

TEST_F(OpenAiProviderTest, Http500IsUnavailable) {
    MockBehavior behavior;
    behavior.status = 500;
    behavior.body = "<html>Internal Server Error</html>";
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().details().http_status, 500);
    EXPECT_EQ(result.error().details().retry_after_ms, -1);
    EXPECT_EQ(result.error().message(), "openai: HTTP 500: <html>Internal Server Error</html>");
}

TEST_F(OpenAiProviderTest, OtherStatusesMapToCanonicalCodes) {
    ExpectStatusMaps(400, ErrorCode::kInvalidArgument);
    ExpectStatusMaps(403, ErrorCode::kPermissionDenied);
    ExpectStatusMaps(404, ErrorCode::kNotFound);
    ExpectStatusMaps(422, ErrorCode::kInvalidArgument);
    ExpectStatusMaps(503, ErrorCode::kUnavailable);
    ExpectStatusMaps(418, ErrorCode::kFailedPrecondition);
}

TEST(RetryAfterTest, ParsesDeltaSecondsAndHttpDates) {
    auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
    EXPECT_EQ(ParseRetryAfter("120", now), 120000);
    EXPECT_EQ(ParseRetryAfter(" 0 ", now), 0);
    EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", now), 30000);
    EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:47 GMT", now), 10000);
    EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:39 1994", now), 2000);
    EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now), 0);  // in the past
    EXPECT_EQ(ParseRetryAfter("soon", now), -1);
    EXPECT_EQ(ParseRetryAfter("", now), -1);
    EXPECT_EQ(ParseRetryAfter("-5", now), -1);
    // Dates centuries ahead (http_response_fuzz: from_time_t overflowed): whole milliseconds.
    EXPECT_EQ(ParseRetryAfter("Fri, 01 Jan 6626 00:00:00 GMT", now),
              (int64_t{146929161600} - 784111777) * 1000);
    EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", now),
              (int64_t{253402300799} - 784111777) * 1000);
    // A "now" between seconds: the wait is counted from it, to the millisecond.
    EXPECT_EQ(
        ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", now + std::chrono::milliseconds(250)),
        29750);
    // An absurd delta is clamped (2^40 s), never overflowed.
    EXPECT_EQ(ParseRetryAfter("1099511627777", now), (int64_t{1} << 40) * 1000);
}

TEST_F(OpenAiProviderTest, SlowResponsePastDeadlineFailsPromptly) {
    server_->SetLatency(seconds(20));
    auto start = std::chrono::steady_clock::now();
    auto result = Call(OpenAiRequest("x"), Deadline::After(milliseconds(300)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kDeadlineExceeded) << result.error().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
}

TEST_F(OpenAiProviderTest, ConfiguredTimeoutBoundsTheCall) {
    server_->SetLatency(seconds(20));
    provider_ = MakeProvider(milliseconds(300));
    auto start = std::chrono::steady_clock::now();
    auto result = Call(OpenAiRequest("x"), Deadline::Never());
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kDeadlineExceeded) << result.error().ToString();
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
}

TEST_F(OpenAiProviderTest, TruncatedBodyIsInternal) {
    MockBehavior behavior;
    behavior.truncate = true;
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal) << result.error().ToString();
    EXPECT_TRUE(result.error().message().starts_with("openai: malformed response body: truncated"))
        << result.error().message();
}

TEST_F(OpenAiProviderTest, MalformedJsonIsInternal) {
    MockBehavior behavior;
    behavior.body = R"({"choices":[{"message":{"content":"cut sh)";
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
    EXPECT_TRUE(result.error().message().starts_with("openai: malformed response body: "))
        << result.error().message();
}

TEST_F(OpenAiProviderTest, NoChoicesIsInternal) {
    MockBehavior behavior;
    behavior.body = R"({"id":"x","choices":[]})";
    server_->AddRule(NodeRule("summarise", behavior));
    auto result = Call(OpenAiRequest("x"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
    EXPECT_EQ(result.error().message(), "openai: malformed response body: no choices");
}

TEST_F(OpenAiProviderTest, ToolCallRoundTrip) {
    MockBehavior behavior;
    MockToolCall call;
    call.id = "call_abc";
    call.name = "read_file";
    call.arguments = R"({"path":"README.md"})";
    behavior.tool_calls.push_back(call);
    behavior.prompt_tokens = 40;
    behavior.completion_tokens = 9;
    server_->AddRule(NodeRule("agent", behavior));

    CompletionRequest request = OpenAiRequest("What is in the README?", "agent");
    ToolSpec tool;
    tool.name = "read_file";
    tool.description = "Reads a file in the workspace.";
    tool.parameters_schema =
        R"({"type":"object","properties":{"path":{"type":"string"}},"required":["path"]})";
    request.tools.push_back(tool);
    ToolSpec bare;
    bare.name = "list_dir";
    request.tools.push_back(bare);
    // An earlier turn: the assistant asked for a tool and got its result.
    Message asked;
    asked.role = Role::kAssistant;
    asked.tool_calls.push_back(ToolCall{"call_0", "list_dir", "{}"});
    Message answered;
    answered.role = Role::kTool;
    answered.tool_call_id = "call_0";
    answered.name = "list_dir";
    answered.content = "README.md";
    request.messages.push_back(asked);
    request.messages.push_back(answered);

    auto result = Call(request);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "");
    ASSERT_EQ(result->tool_calls.size(), 1u);
    EXPECT_EQ(result->tool_calls[0].id, "call_abc");
    EXPECT_EQ(result->tool_calls[0].name, "read_file");
    EXPECT_EQ(result->tool_calls[0].arguments, R"({"path":"README.md"})");
    EXPECT_EQ(result->finish_reason, "tool_calls");
    EXPECT_EQ(result->usage.input_tokens, 40);
    EXPECT_EQ(result->usage.output_tokens, 9);

    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    json::object body = BodyOf(recorded[0]);
    const json::array* tools = JsonArray(body, "tools");
    ASSERT_NE(tools, nullptr);
    ASSERT_EQ(tools->size(), 2u);
    const json::object& first = tools->at(0).as_object();
    EXPECT_EQ(JsonString(first, "type"), "function");
    const json::object* function = JsonObject(first, "function");
    ASSERT_NE(function, nullptr);
    EXPECT_EQ(JsonString(*function, "name"), "read_file");
    EXPECT_EQ(JsonString(*function, "description"), "Reads a file in the workspace.");
    const json::object* parameters = JsonObject(*function, "parameters");
    ASSERT_NE(parameters, nullptr);  // sent as JSON, not as a string
    EXPECT_EQ(JsonString(*parameters, "type"), "object");
    const json::object* bare_function = JsonObject(tools->at(1).as_object(), "function");
    ASSERT_NE(bare_function, nullptr);
    EXPECT_EQ(CompactJson(bare_function->at("parameters")), R"({"type":"object","properties":{}})");

    const json::array* messages = JsonArray(body, "messages");
    ASSERT_NE(messages, nullptr);
    ASSERT_EQ(messages->size(), 4u);
    const json::object& assistant = messages->at(2).as_object();
    EXPECT_EQ(JsonString(assistant, "role"), "assistant");
    EXPECT_TRUE(assistant.at("content").is_null());
    const json::array* calls = JsonArray(assistant, "tool_calls");
    ASSERT_NE(calls, nullptr);
    ASSERT_EQ(calls->size(), 1u);
    EXPECT_EQ(JsonString(calls->at(0).as_object(), "id"), "call_0");
    EXPECT_EQ(JsonString(calls->at(0).as_object(), "type"), "function");
    EXPECT_EQ(JsonString(*JsonObject(calls->at(0).as_object(), "function"), "name"), "list_dir");
    EXPECT_EQ(JsonString(*JsonObject(calls->at(0).as_object(), "function"), "arguments"), "{}");
    const json::object& tool_message = messages->at(3).as_object();
    EXPECT_EQ(JsonString(tool_message, "role"), "tool");
    EXPECT_EQ(JsonString(tool_message, "tool_call_id"), "call_0");
    EXPECT_EQ(JsonString(tool_message, "content"), "README.md");
}

TEST(ChatCompletionsBodyTest, InvalidToolSchemaIsInvalidArgument) {
    CompletionRequest request;
    request.model = "m";
    ToolSpec tool;
    tool.name = "broken";
    tool.parameters_schema = "{not json";
    request.tools.push_back(tool);
    auto body = BuildChatCompletionsBody(request);
    ASSERT_FALSE(body);
    EXPECT_EQ(body.error().code(), ErrorCode::kInvalidArgument);

    tool.parameters_schema = "[1,2]";
    request.tools = {tool};
    body = BuildChatCompletionsBody(request);
    ASSERT_FALSE(body);
    EXPECT_EQ(body.error().code(), ErrorCode::kInvalidArgument);
}

TEST(ChatCompletionsBodyTest, AcceptsServerVariants) {
    // Arguments as an object, content as text parts, null finish_reason, no usage.
    auto completion = ParseChatCompletionsBody(
        R"({"model":"llama3","choices":[{"message":{"role":"assistant",
            "content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],
            "tool_calls":[{"id":"1","function":{"name":"f","arguments":{"x":1}}}]},
            "finish_reason":null}]})");
    ASSERT_TRUE(completion) << completion.error().ToString();
    EXPECT_EQ(completion->content, "ab");
    ASSERT_EQ(completion->tool_calls.size(), 1u);
    EXPECT_EQ(completion->tool_calls[0].arguments, R"({"x":1})");
    EXPECT_EQ(completion->finish_reason, "tool_calls");
    EXPECT_EQ(completion->usage.input_tokens, 0);
    EXPECT_EQ(completion->model, "llama3");

    auto missing_name = ParseChatCompletionsBody(
        R"({"choices":[{"message":{"tool_calls":[{"id":"1","function":{}}]}}]})");
    ASSERT_FALSE(missing_name);
    EXPECT_EQ(missing_name.error().code(), ErrorCode::kInternal);

    auto with_error = ParseChatCompletionsBody(R"({"error":{"message":"upstream failed"}})");
    ASSERT_FALSE(with_error);
    EXPECT_EQ(with_error.error().code(), ErrorCode::kInternal);
    EXPECT_EQ(with_error.error().message(),
              "openai: malformed response body: no choices (error: upstream failed)");
}

TEST_F(OpenAiProviderTest, CancelledCallReturnsCancelled) {
    MockBehavior behavior;
    behavior.hang = true;
    server_->AddRule(NodeRule("stuck", behavior));
    asio::cancellation_signal signal;
    std::promise<Result<Completion>> promise;
    asio::co_spawn(io_.executor(),
                   provider_->Complete(OpenAiRequest("x", "stuck"), Deadline::After(seconds(60))),
                   asio::bind_cancellation_slot(
                       signal.slot(), [&promise](std::exception_ptr, Result<Completion> result) {
                           promise.set_value(std::move(result));
                       }));
    ASSERT_TRUE(server_->WaitForRequests(1, kWait));
    asio::post(io_.executor(), [&signal] { signal.emit(asio::cancellation_type::terminal); });
    auto future = promise.get_future();
    ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
    auto result = future.get();
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kCancelled) << result.error().ToString();
    EXPECT_TRUE(server_->WaitForOpenConnectionsAtMost(0, kWait));
}

TEST_F(OpenAiProviderTest, ConcurrentCallsAllSucceed) {
    server_->SetLatency(milliseconds(20));
    constexpr int kCalls = 200;
    struct Shared {
        std::mutex mutex;
        std::vector<Result<Completion>> results;
        std::promise<void> done;
    };
    auto shared = std::make_shared<Shared>();
    for (int i = 0; i < kCalls; ++i) {
        asio::co_spawn(io_.executor(),
                       provider_->Complete(OpenAiRequest("n" + std::to_string(i), "fan-out"),
                                           Deadline::After(seconds(30))),
                       [shared](std::exception_ptr, Result<Completion> result) {
                           std::lock_guard lock(shared->mutex);
                           shared->results.push_back(std::move(result));
                           if (shared->results.size() == kCalls) shared->done.set_value();
                       });
    }
    ASSERT_EQ(shared->done.get_future().wait_for(seconds(30)), std::future_status::ready);
    std::lock_guard lock(shared->mutex);
    for (const auto& result : shared->results) {
        ASSERT_TRUE(result) << result.error().ToString();
        EXPECT_TRUE(result->content.starts_with("echo: n"));
    }
    EXPECT_EQ(server_->requests_for_node("fan-out"), kCalls);
}

TEST_F(OpenAiProviderTest, ConnectionRefusedIsUnavailable) {
    uint16_t port = 0;
    {
        asio::io_context io;
        asio::ip::tcp::acceptor acceptor(
            io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        port = acceptor.local_endpoint().port();
    }
    OpenAiConfig config;
    config.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
    config.api_key_env = "";
    OpenAiProvider provider(config, client_);
    auto result = RunSync(provider.Complete(OpenAiRequest("x"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(result.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
        << result.error().message();
}

TEST_F(OpenAiProviderTest, RegistryServesKeylessOllamaAndSharesInstances) {
    ::setenv("OLLAMA_BASE_URL", server_->base_url().c_str(), 1);
    ProviderRegistry registry(io_.executor());
    RegisterOpenAiProviders(registry, client_);
    auto first = registry.Resolve("ollama:llama3", "");
    ASSERT_TRUE(first) << first.error().ToString();
    auto second = registry.Resolve("ollama:qwen2", "");
    ASSERT_TRUE(second) << second.error().ToString();
    EXPECT_EQ(first->provider, second->provider);
    EXPECT_EQ(first->provider->name(), "ollama");
    EXPECT_EQ(first->model, "llama3");
    EXPECT_EQ(second->model, "qwen2");

    CompletionRequest request = OpenAiRequest("local");
    request.model = first->model;
    auto result = RunSync(first->provider->Complete(request, Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "echo: local");
    EXPECT_EQ(result->model, "llama3");
    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].Header("authorization"), "");

    auto empty = registry.Resolve("openai:", "");
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
    ::unsetenv("OLLAMA_BASE_URL");
}

}  // namespace
}  // namespace strowger::providers

namespace strowger::providers {
namespace {

// A chat.completion body with `usage` as given (JSON text).
std::string BodyWithUsage(const std::string& usage) {
    return R"({"id":"c","object":"chat.completion","model":"gpt-test","choices":[{"index":0,)"
           R"("message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":)" +
           usage + "}";
}

TEST_F(OpenAiProviderTest, UsageCountsThatAreNotSaneAreAProtocolError) {
    const std::string expected = " (expected an integer from 0 to 1000000000)";
    struct Case {
        std::string value;   // as sent
        std::string quoted;  // as the message quotes it
    };
    const std::vector<Case> cases = {
        {"-4", "-4"},
        {"9223372036854775807", "9223372036854775807"},
        {"18446744073709551615", "18446744073709551615"},
        {"1000000001", "1000000001"},
        {"12.5", "1.25E1"},
        {"1e300", "1E300"},
        {R"("12")", R"("12")"},
        {"[1]", "[1]"},
    };
    int n = 0;
    for (const Case& c : cases) {
        MockBehavior behavior;
        behavior.body =
            BodyWithUsage(R"({"prompt_tokens":)" + c.value + R"(,"completion_tokens":3})");
        std::string node = "usage-" + std::to_string(++n);
        server_->AddRule(NodeRule(node, behavior));
        auto result = Call(OpenAiRequest("x", node));
        ASSERT_FALSE(result) << c.value;
        EXPECT_EQ(result.error().code(), ErrorCode::kInternal) << c.value;
        EXPECT_EQ(result.error().message(),
                  "openai: malformed response body: usage.prompt_tokens is " + c.quoted + expected);
    }
    // The output side too, and a huge string is quoted capped, with its size.
    MockBehavior huge;
    huge.body = BodyWithUsage(R"({"prompt_tokens":1,"completion_tokens":")" +
                              std::string(100'000, '9') + R"("})");
    server_->AddRule(NodeRule("usage-huge", huge));
    auto result = Call(OpenAiRequest("x", "usage-huge"));
    ASSERT_FALSE(result);
    EXPECT_TRUE(result.error().message().starts_with(
        "openai: malformed response body: usage.completion_tokens is \"999"))
        << result.error().message();
    EXPECT_NE(result.error().message().find("(100002 bytes in all)"), std::string::npos);
    EXPECT_LT(result.error().message().size(), 300u);
    // A usage that is not an object, and the limits themselves.
    MockBehavior not_object;
    not_object.body = BodyWithUsage(R"("lots")");
    server_->AddRule(NodeRule("usage-string", not_object));
    result = Call(OpenAiRequest("x", "usage-string"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message(),
              "openai: malformed response body: usage is \"lots\" (expected an object)");
    MockBehavior edge;
    edge.body = BodyWithUsage(R"({"prompt_tokens":1000000000,"completion_tokens":7.0})");
    server_->AddRule(NodeRule("usage-edge", edge));
    result = Call(OpenAiRequest("x", "usage-edge"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->usage.input_tokens, 1'000'000'000);
    EXPECT_EQ(result->usage.output_tokens, 7);
}

TEST_F(OpenAiProviderTest, OllamaSharesTheUsageCheckAndStreamsAreCheckedToo) {
    OpenAiConfig config = DefaultOllamaConfig();
    config.base_url = server_->base_url();
    auto ollama = std::make_shared<OpenAiProvider>(config, client_);
    MockBehavior behavior;
    behavior.body = BodyWithUsage(R"({"prompt_tokens":5,"completion_tokens":-1})");
    server_->AddRule(NodeRule("ollama-negative", behavior));
    auto result =
        RunSync(ollama->Complete(OpenAiRequest("x", "ollama-negative"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
    EXPECT_EQ(result.error().message(),
              "ollama: malformed response body: usage.completion_tokens is -1 (expected an "
              "integer from 0 to 1000000000)");

    struct Sink : StreamSink {
        void OnDelta(std::string_view) override {}
    } sink;
    for (const std::string& value : {std::string("-4"), std::string("2.5"), std::string("\"9\""),
                                     std::string("9223372036854775807")}) {
        MockBehavior streamed;
        streamed.stream_body =
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
            "\"finish_reason\":\"stop\"}]}\n\n"
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":" +
            value + ",\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        std::string node = "stream-usage-" + std::to_string(value.size());
        server_->AddRule(NodeRule(node, streamed));
        CompletionRequest request = OpenAiRequest("x", node);
        request.stream = &sink;
        result = Call(request);
        ASSERT_FALSE(result) << value;
        EXPECT_EQ(result.error().code(), ErrorCode::kInternal) << value;
        EXPECT_TRUE(result.error().message().starts_with(
            "openai: malformed stream: usage.prompt_tokens is "))
            << result.error().message();
    }
}

TEST_F(OpenAiProviderTest, AHugeErrorBodyBecomesACappedMessageWithItsSize) {
    MockBehavior json_message;
    json_message.status = 500;
    json_message.error_message = std::string(5'000'000, 'e');
    server_->AddRule(NodeRule("huge-json", json_message));
    auto result = Call(OpenAiRequest("x", "huge-json"));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_LT(result.error().message().size(), 2200u);
    EXPECT_TRUE(result.error().message().ends_with("… (5000000 bytes in all)"))
        << result.error().message().substr(result.error().message().size() - 60);

    MockBehavior plain;
    plain.status = 500;
    plain.body = std::string(5'000'000, 'p');
    server_->AddRule(NodeRule("huge-plain", plain));
    result = Call(OpenAiRequest("x", "huge-plain"));
    ASSERT_FALSE(result);
    EXPECT_LT(result.error().message().size(), 400u);
    EXPECT_TRUE(result.error().message().ends_with("… (5000000 bytes in all)"));

    struct Sink : StreamSink {
        void OnDelta(std::string_view) override {}
    } sink;
    MockBehavior stream_error;
    stream_error.stream_body =
        "data: {\"error\":{\"message\":\"" + std::string(1'000'000, 's') + "\"}}\n\n";
    server_->AddRule(NodeRule("huge-stream-error", stream_error));
    CompletionRequest request = OpenAiRequest("x", "huge-stream-error");
    request.stream = &sink;
    result = Call(request);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_LT(result.error().message().size(), 2200u);
    EXPECT_TRUE(result.error().message().ends_with("… (1000000 bytes in all)"));
}

TEST_F(OpenAiProviderTest, ExtraHeaderValuesAreSecretsAndEchoesOfThemAreRedacted) {
    OpenAiConfig config;
    config.base_url = server_->base_url();
    config.api_key_env = "";
    config.extra_headers = {{"X-Custom-Auth", "custom-credential-0123456789"},
                            {"HTTP-Referer", "https://example.com/strowger"}};
    auto provider = std::make_shared<OpenAiProvider>(config, client_);
    // A server echoing the header in its error body; the value sits across the 2 KB cap, so
    // redacting after capping would leave its first half.
    MockBehavior echo;
    echo.status = 401;
    echo.error_message =
        std::string(2020, '.') + " bad X-Custom-Auth: custom-credential-0123456789";
    server_->AddRule(NodeRule("echo", echo));
    auto result = RunSync(provider->Complete(OpenAiRequest("x", "echo"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message().find("custom-c"), std::string::npos)
        << result.error().message();
    EXPECT_EQ(Redact("auth custom-credential-0123456789"), "auth [REDACTED]");
    EXPECT_TRUE(ContainsSecret("x custom-credential-0123456789 y"));
    // A header known to carry no credential (a site's URL) stays ordinary text.
    EXPECT_FALSE(ContainsSecret("see https://example.com/strowger"));
}

}  // namespace
}  // namespace strowger::providers
