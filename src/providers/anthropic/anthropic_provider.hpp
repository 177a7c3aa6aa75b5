// `anthropic:` — the Anthropic Messages API (POST {base_url}/v1/messages).
//
// Mapping to our types:
//  * system messages -> the top-level `system` field (several are joined by a blank line);
//  * user text -> a user message; tool results (Role::kTool) -> `tool_result` blocks
//    (`tool_use_id` = Message::tool_call_id) in a user message; consecutive messages of one
//    role are merged, as the API wants roles to alternate;
//  * assistant text and tool calls -> `text` and `tool_use` blocks (`id` = ToolCall::id,
//    `input` = the parsed ToolCall::arguments, which must be a JSON object);
//  * tools -> {name, description, input_schema};
//  * `max_tokens` is required by the API: CompletionRequest::max_output_tokens, else
//    AnthropicConfig::default_max_tokens (4096);
//  * the answer's text blocks are joined into Completion::content, its `tool_use` blocks become
//    ToolCalls (id = the tool_use id, arguments = `input` as JSON text); stop_reason end_turn and
//    stop_sequence -> finish_reason "stop", tool_use -> "tool_calls", max_tokens -> "length",
//    others as given; usage input_tokens (+ cache creation/read tokens) / output_tokens.
//
// With a StreamSink the call sets `stream: true` and follows the event stream (message_start,
// content_block_start/delta/stop with text_delta and input_json_delta, message_delta,
// message_stop, ping, error): text deltas go to the sink as they arrive, tool inputs are
// assembled per block. A stream that ends before message_stop, or carries malformed data ->
// kInternal "anthropic: malformed stream: ..."; an `error` event -> the code of its error type
// (overloaded_error -> kUnavailable with http_status 529 and reason "overloaded").
//
// HTTP errors map as for openai (ErrorFromHttpResponse): 400 -> kInvalidArgument,
// 401 -> kUnauthenticated, 403 -> kPermissionDenied, 404 -> kNotFound, 429 -> kUnavailable,
// 5xx and 529 (overloaded; details.reason "overloaded") -> kUnavailable, with http_status and
// retry_after_ms from Retry-After.
//
// Headers: x-api-key (from $ANTHROPIC_API_KEY at call time, registered as a secret),
// anthropic-version: 2023-06-01, and X-Strowger-Run/Node/Attempt as for openai.
//
// Thread-safety: Complete() may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"
#include "core/result.hpp"
#include "providers/http/http_client.hpp"
#include "providers/http/sse.hpp"
#include "providers/openai/openai_provider.hpp"
#include "providers/provider.hpp"

namespace strowger::providers {

struct AnthropicConfig {
    std::string name = "anthropic";
    // Without the API version path: "https://api.anthropic.com" (a trailing "/v1" is tolerated).
    std::string base_url;
    std::string api_key_env = "ANTHROPIC_API_KEY";
    std::string api_version = "2023-06-01";
    // Sent as max_tokens when the request does not set max_output_tokens.
    int64_t default_max_tokens = 4096;
    // Per call; the call's own deadline applies too, whichever is earlier.
    std::chrono::milliseconds timeout{std::chrono::minutes(10)};
    // Added to every request; their values are registered as secrets (RegisterHeaderSecrets).
    http::Headers extra_headers;
};

// base_url from $ANTHROPIC_BASE_URL, else https://api.anthropic.com; key from $ANTHROPIC_API_KEY.
AnthropicConfig DefaultAnthropicConfig();

class AnthropicProvider final : public Provider {
  public:
    AnthropicProvider(AnthropicConfig config, std::shared_ptr<http::HttpClient> client);

    std::string_view name() const override { return config_.name; }
    Status CheckEnvironment() const override {
        auto key = key_.Read();
        if (!key) return std::unexpected(std::move(key).error());
        return OkStatus();
    }
    Awaitable<Result<Completion>> Complete(CompletionRequest request, Deadline deadline) override;

    const AnthropicConfig& config() const { return config_; }

  private:
    Awaitable<Result<Completion>> Send(http::HttpRequest request, std::string model,
                                       Deadline deadline);
    Awaitable<Result<Completion>> SendStreaming(http::HttpRequest request, std::string model,
                                                StreamSink* sink, Deadline deadline);

    AnthropicConfig config_;
    std::shared_ptr<http::HttpClient> client_;
    ApiKeySource key_;
    std::string url_;
};

// The JSON body of a Messages API request (streaming iff request.stream is set).
// kInvalidArgument if a tool schema or a tool call's arguments are not a JSON object.
Result<std::string> BuildMessagesBody(const CompletionRequest& request,
                                      int64_t default_max_tokens = 4096);

// Parses a 2xx Messages API body; kInternal "<provider>: malformed response body: ...".
Result<Completion> ParseMessagesBody(std::string_view body,
                                     std::string_view provider = "anthropic");

// The error for an HTTP error response of the Messages API (ErrorFromHttpResponse plus the
// "overloaded" reason for 529).
Error AnthropicErrorFromHttpResponse(const http::HttpResponse& response,
                                     std::string_view provider = "anthropic");

// Assembles a streamed message from the response body, fed in pieces split anywhere. Text
// deltas go to `sink` (may be null). Not copyable or movable.
class MessagesStreamParser {
  public:
    explicit MessagesStreamParser(std::string_view provider = "anthropic",
                                  StreamSink* sink = nullptr);
    MessagesStreamParser(const MessagesStreamParser&) = delete;
    MessagesStreamParser& operator=(const MessagesStreamParser&) = delete;

    // Consumes body bytes. After an error the stream is over: every later call and Finish()
    // return it.
    Status Feed(std::string_view bytes);
    // At the end of the body: the completion, or kInternal "<provider>: malformed stream: ..."
    // if it ended before message_stop.
    Result<Completion> Finish();

    bool failed() const { return error_.has_value(); }

  private:
    struct Block {
        int64_t index = 0;
        bool tool_use = false;
        std::string text;  // text blocks
        std::string id;    // tool_use blocks
        std::string name;
        std::string input_json;   // accumulated input_json_delta fragments
        std::string start_input;  // the `input` of content_block_start, as JSON
        bool stopped = false;
    };

    Status Fail(Error error);
    Status OnEvent(const http::SseEvent& event);
    Block* FindBlock(int64_t index);

    std::string provider_;
    StreamSink* sink_;
    http::SseParser sse_;
    std::vector<Block> blocks_;
    Usage usage_;
    std::string stop_reason_;
    std::string model_;
    bool started_ = false;  // message_start seen
    bool done_ = false;     // message_stop seen
    std::optional<Error> error_;
};

// Registers "anthropic" in `registry` (no retries or limits: see builtin.hpp for those).
// Providers are created when first resolved, with the environment at that time, and shared per
// base URL.
void RegisterAnthropicProvider(ProviderRegistry& registry,
                               std::shared_ptr<http::HttpClient> client);

}  // namespace strowger::providers
