// `openai:` and `ollama:` — any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM,
// llama.cpp server, OpenRouter, Ollama...).
//
// One call = one POST {base_url}/chat/completions. When the request has a StreamSink the call
// asks for `stream: true` (with `stream_options: {include_usage: true}`), hands every content
// delta to the sink as it arrives and assembles tool calls from their deltas (by index); the
// Completion is the same as without streaming. A server that answers a streaming request with a
// plain JSON completion is accepted (the sink then gets the whole text at once).
//
// The provider does not retry (providers/limits does, and the engine's step retry), using the
// error code and details set here:
//   400/413/422 -> kInvalidArgument     401 -> kUnauthenticated     403 -> kPermissionDenied
//   404 -> kNotFound                    408 -> kDeadlineExceeded    409 -> kAborted
//   429 -> kUnavailable (kResourceExhausted "insufficient_quota" when the quota is spent)
//   5xx -> kUnavailable                 other -> kFailedPrecondition
// with details.http_status and, from Retry-After (delta-seconds or HTTP-date) or
// retry-after-ms, details.retry_after_ms. A 2xx whose body is not a chat completion (malformed,
// truncated, no choices) -> kInternal "openai: malformed response body: ..."; a stream that is
// malformed or ends before `data: [DONE]` (or a finish_reason) -> kInternal
// "openai: malformed stream: ..."; an `{"error": ...}` chunk inside a stream -> kUnavailable
// (details.reason "stream_error"). Transport failures keep the HttpClient's codes
// (kUnavailable, kDeadlineExceeded, kCancelled).
//
// Every request carries X-Strowger-Run, X-Strowger-Node and X-Strowger-Attempt so that servers
// (and the mock in tests) can tell calls apart. The API key is read from the environment at
// call time and registered with the log redactor; it never appears in errors. The request is
// turned into HTTP before the call suspends: the CompletionRequest is not kept while waiting.
//
// Thread-safety: Complete() may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.hpp"
#include "core/result.hpp"
#include "providers/http/http_client.hpp"
#include "providers/http/sse.hpp"
#include "providers/provider.hpp"

namespace strowger::providers {

struct OpenAiConfig {
    std::string name = "openai";  // reported by Provider::name() and used in messages
    // Up to and including the version, without a trailing slash: "https://api.openai.com/v1".
    std::string base_url;
    // Environment variable holding the API key; "" = keyless endpoint (no Authorization header).
    std::string api_key_env = "OPENAI_API_KEY";
    // Per call; the call's own deadline applies too, whichever is earlier.
    std::chrono::milliseconds timeout{std::chrono::minutes(10)};
    // Added to every request; their values are registered as secrets (RegisterHeaderSecrets).
    http::Headers extra_headers;
};

// base_url from $OPENAI_BASE_URL, else https://api.openai.com/v1; key from $OPENAI_API_KEY.
OpenAiConfig DefaultOpenAiConfig();
// name "ollama", base_url from $OLLAMA_BASE_URL, else http://localhost:11434/v1; no key.
OpenAiConfig DefaultOllamaConfig();

// Reads an API key from the environment at call time (so a changed variable takes effect) and
// registers each distinct value with the log redactor once. Thread-safe.
class ApiKeySource {
  public:
    explicit ApiKeySource(std::string env_name) : env_name_(std::move(env_name)) {}

    // "" means "no key": Read() then returns "".
    const std::string& env_name() const { return env_name_; }
    // The key; kUnauthenticated "<ENV> is not set" if the variable is unset or empty.
    Result<std::string> Read() const;

  private:
    std::string env_name_;
    mutable std::mutex mutex_;
    mutable std::string registered_;  // GUARDED_BY(mutex_)
};

class OpenAiProvider final : public Provider {
  public:
    OpenAiProvider(OpenAiConfig config, std::shared_ptr<http::HttpClient> client);

    std::string_view name() const override { return config_.name; }
    Status CheckEnvironment() const override {
        auto key = key_.Read();
        if (!key) return std::unexpected(std::move(key).error());
        return OkStatus();
    }
    Awaitable<Result<Completion>> Complete(CompletionRequest request, Deadline deadline) override;

    const OpenAiConfig& config() const { return config_; }

  private:
    Awaitable<Result<Completion>> Send(http::HttpRequest request, std::string model,
                                       Deadline deadline);
    Awaitable<Result<Completion>> SendStreaming(http::HttpRequest request, std::string model,
                                                StreamSink* sink, Deadline deadline);

    OpenAiConfig config_;
    std::shared_ptr<http::HttpClient> client_;
    ApiKeySource key_;
    std::string url_;
};

// The JSON body of a chat completions request (streaming iff request.stream is set).
// kInvalidArgument if a tool's parameters schema is not a JSON object.
Result<std::string> BuildChatCompletionsBody(const CompletionRequest& request);

// Assembles a streamed chat completion from the response body, fed in pieces split anywhere.
// Content deltas go to `sink` (may be null) as they complete. Not copyable or movable (the SSE
// parser calls back into it).
class ChatCompletionStreamParser {
  public:
    explicit ChatCompletionStreamParser(std::string_view provider = "openai",
                                        StreamSink* sink = nullptr);
    ChatCompletionStreamParser(const ChatCompletionStreamParser&) = delete;
    ChatCompletionStreamParser& operator=(const ChatCompletionStreamParser&) = delete;

    // Consumes body bytes. After an error (malformed data, an error chunk) the stream is over:
    // the error is returned again by every later call and by Finish().
    Status Feed(std::string_view bytes);
    // At the end of the body: the completion, or kInternal "<provider>: malformed stream: ..."
    // if the stream was empty or cut short.
    Result<Completion> Finish();

    bool failed() const { return error_.has_value(); }

  private:
    struct PartialToolCall {
        int64_t index = 0;
        std::string id;
        std::string name;
        std::string arguments;
    };
    enum class Format { kUnknown, kSse, kJson };

    Status Fail(Error error);
    Status OnEvent(const http::SseEvent& event);
    Status OnChunk(const json::object& chunk);
    Status OnToolCallDelta(const json::value& delta);

    std::string provider_;
    StreamSink* sink_;
    http::SseParser sse_;
    Format format_ = Format::kUnknown;
    std::string json_body_;  // the whole body, when the server answered with plain JSON
    std::string content_;
    std::vector<PartialToolCall> tool_calls_;  // in order of first appearance
    Usage usage_;
    std::string finish_reason_;
    std::string model_;
    bool done_ = false;  // `data: [DONE]` seen
    int64_t chunks_ = 0;
    std::optional<Error> error_;
};

// Parses a 2xx chat completions body; kInternal "<provider>: malformed response body: ...".
Result<Completion> ParseChatCompletionsBody(std::string_view body,
                                            std::string_view provider = "openai");

// The error for a non-2xx response, as described at the top of this file.
Error ErrorFromHttpResponse(const http::HttpResponse& response,
                            std::string_view provider = "openai");

// Milliseconds to wait from a Retry-After value (delta-seconds or HTTP-date, relative to `now`);
// -1 if it cannot be parsed.
int64_t ParseRetryAfter(std::string_view value, std::chrono::system_clock::time_point now);

// Registers "openai" and "ollama" in `registry`. Providers are created when first resolved, with
// the environment at that time, and shared per base URL.
void RegisterOpenAiProviders(ProviderRegistry& registry, std::shared_ptr<http::HttpClient> client);

}  // namespace strowger::providers
