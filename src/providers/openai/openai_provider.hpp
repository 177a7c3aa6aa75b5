// `openai:` and `ollama:` — any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM,
// llama.cpp server, OpenRouter, Ollama...).
//
// One call = one POST {base_url}/chat/completions, non-streaming. The provider does not retry:
// the engine's step retry does, using the error code and details set here:
//   400/413/422 -> kInvalidArgument     401 -> kUnauthenticated     403 -> kPermissionDenied
//   404 -> kNotFound                    408 -> kDeadlineExceeded    409 -> kAborted
//   429 -> kUnavailable (kResourceExhausted "insufficient_quota" when the quota is spent)
//   5xx -> kUnavailable                 other -> kFailedPrecondition
// with details.http_status and, from Retry-After (delta-seconds or HTTP-date) or
// retry-after-ms, details.retry_after_ms. A 2xx whose body is not a chat completion (malformed,
// truncated, no choices) -> kInternal "openai: malformed response body: ...". Transport failures
// keep the HttpClient's codes (kUnavailable, kDeadlineExceeded, kCancelled).
//
// Every request carries X-Strowger-Run, X-Strowger-Node and X-Strowger-Attempt so that servers
// (and the mock in tests) can tell calls apart. The API key is read from the environment at
// call time and registered with the log redactor; it never appears in errors.
//
// Thread-safety: Complete() may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "providers/http/http_client.hpp"
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
    http::Headers extra_headers;
};

// base_url from $OPENAI_BASE_URL, else https://api.openai.com/v1; key from $OPENAI_API_KEY.
OpenAiConfig DefaultOpenAiConfig();
// name "ollama", base_url from $OLLAMA_BASE_URL, else http://localhost:11434/v1; no key.
OpenAiConfig DefaultOllamaConfig();

class OpenAiProvider final : public Provider {
  public:
    OpenAiProvider(OpenAiConfig config, std::shared_ptr<http::HttpClient> client);

    std::string_view name() const override { return config_.name; }
    Awaitable<Result<Completion>> Complete(CompletionRequest request, Deadline deadline) override;

    const OpenAiConfig& config() const { return config_; }

  private:
    OpenAiConfig config_;
    std::shared_ptr<http::HttpClient> client_;
};

// The JSON body of a chat completions request. kInvalidArgument if a tool's parameters schema
// is not a JSON object.
Result<std::string> BuildChatCompletionsBody(const CompletionRequest& request);

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
