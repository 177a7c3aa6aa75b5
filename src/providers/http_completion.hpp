// What the HTTP providers (openai:, ollama:, anthropic:) share: configuration helpers, the
// errors for malformed bodies and streams, and how an HTTP exchange becomes a completion.
// Plain functions, so a provider's waiting coroutine frame has no slots for their temporaries.
#pragma once

#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/json.hpp"
#include "core/result.hpp"
#include "core/strings.hpp"
#include "providers/http/http_client.hpp"
#include "providers/provider.hpp"

namespace strowger::providers {

// $name if set and non-empty, else `fallback`.
std::string EnvOr(const char* name, std::string_view fallback);
std::string WithoutTrailingSlash(std::string url);
// Text a server sent (a body, an error's message) quoted in an error message: secrets redacted
// first (a value cut by the cap would no longer be found), then at most `max_bytes` of it with
// the full size stated (CapForMessage).
std::string ServerText(std::string_view text, size_t max_bytes = kMessageQuoteBytes);
// A body for an error message: ServerText's first 300 bytes, "(empty body)" if empty.
std::string BodyPreview(std::string_view body);

// Registers the values of a provider's extra headers (the providers file's `headers:`) as
// secrets, so a server echoing one in an error body is redacted in the ledger and the logs.
// Headers known to carry no credential (Referer, HTTP-Referer, X-Title, User-Agent, Accept,
// Accept-Language, Content-Type, anthropic-version, anthropic-beta, OpenAI-Beta) are left
// out: a secret is also refused in tool-call arguments, and those values (a site's URL) are
// ordinary text.
void RegisterHeaderSecrets(const http::Headers& headers);

// kInternal "<provider>: malformed response body: <what>" / "<provider>: malformed stream: ...".
std::unexpected<Error> Malformed(std::string_view provider, std::string_view what);
Error MalformedStream(std::string_view provider, std::string_view what);

// Whether an answer came as one body or as an event stream (which error names it).
enum class Delivery { kBody, kStream };

// A token count of an API's `usage` object: absent or null is 0; an integer from 0 to
// kMaxTokensPerCall (a number without a fractional part counts) is itself. Anything else — a
// negative, fractional or absurd number, a string — is a malformed answer naming the field and
// quoting the value: "<provider>: malformed response body: usage.<key> is <value> (expected an
// integer from 0 to 1000000000)".
Result<int64_t> UsageCount(const json::object& usage, std::string_view key,
                           std::string_view provider, Delivery delivery);
// The `usage` member of `object`: null if absent or null, the malformed-answer error if it is
// not an object.
Result<const json::object*> UsageObject(const json::object& object, std::string_view provider,
                                        Delivery delivery);

// An awaitable that completes at once, for failures found before any I/O.
Awaitable<Result<Completion>> Ready(Result<Completion> result);

// The error an API's non-2xx response stands for (e.g. ErrorFromHttpResponse).
using ErrorFromResponse = Error (*)(const http::HttpResponse& response, std::string_view provider);

// A transport failure as the provider reports it: a truncated body is a malformed body (or
// stream), anything else keeps its code and gets the provider's name in front.
Error TransportError(const Error& error, const std::string& provider, bool streamed);

// `completion` with `model` where the server named none.
Result<Completion> WithModel(Result<Completion> completion, std::string model);

// The completion of a plain call: the transport's error, the API's error for a non-2xx status,
// else `parse` of the body.
Result<Completion> CompletionFromExchange(Result<http::HttpResponse> response, std::string model,
                                          const std::string& provider,
                                          ErrorFromResponse error_from_response,
                                          Result<Completion> (*parse)(std::string_view body,
                                                                      std::string_view provider));

// The same for a streamed call whose body went to `parser` (Feed/failed/Finish): the parser's
// own errors come back through the client unchanged (already prefixed).
template <typename Parser>
Result<Completion> StreamedCompletionFromExchange(Result<http::HttpResponse> response,
                                                  Parser& parser, std::string model,
                                                  const std::string& provider,
                                                  ErrorFromResponse error_from_response) {
    if (!response) {
        if (parser.failed()) return std::unexpected(response.error());
        return std::unexpected(TransportError(response.error(), provider, /*streamed=*/true));
    }
    if (response->status / 100 != 2) {
        return std::unexpected(error_from_response(*response, provider));
    }
    return WithModel(parser.Finish(), std::move(model));
}

}  // namespace strowger::providers
