#include "providers/http_completion.hpp"

#include <cstdlib>

#include "core/json.hpp"
#include "core/strings.hpp"

namespace strowger::providers {

std::string EnvOr(const char* name, std::string_view fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::string(value) : std::string(fallback);
}

std::string WithoutTrailingSlash(std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
}

std::string BodyPreview(std::string_view body) {
    constexpr size_t kPreviewBytes = 300;
    if (body.empty()) return "(empty body)";
    return Preview(ToValidUtf8(body), kPreviewBytes);
}

std::unexpected<Error> Malformed(std::string_view provider, std::string_view what) {
    return InternalError(std::string(provider) + ": malformed response body: " + std::string(what));
}

Error MalformedStream(std::string_view provider, std::string_view what) {
    return Error(ErrorCode::kInternal,
                 std::string(provider) + ": malformed stream: " + std::string(what));
}

Awaitable<Result<Completion>> Ready(Result<Completion> result) {
    co_return result;
}

Error TransportError(const Error& error, const std::string& provider, bool streamed) {
    if (error.details().reason == "truncated_response") {
        std::string what = "truncated (" + error.message() + ")";
        return streamed ? MalformedStream(provider, what) : Malformed(provider, what).error();
    }
    return error.WithPrefix(provider + ": ");
}

Result<Completion> WithModel(Result<Completion> completion, std::string model) {
    if (completion && completion->model.empty()) completion->model = std::move(model);
    return completion;
}

Result<Completion> CompletionFromExchange(Result<http::HttpResponse> response, std::string model,
                                          const std::string& provider,
                                          ErrorFromResponse error_from_response,
                                          Result<Completion> (*parse)(std::string_view body,
                                                                      std::string_view provider)) {
    if (!response) return std::unexpected(TransportError(response.error(), provider, false));
    if (response->status / 100 != 2) {
        return std::unexpected(error_from_response(*response, provider));
    }
    return WithModel(parse(response->body, provider), std::move(model));
}

}  // namespace strowger::providers
