#include "providers/http_completion.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <optional>

#include "core/json.hpp"
#include "core/log.hpp"
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

void RegisterHeaderSecrets(const http::Headers& headers) {
    static constexpr std::string_view kNotSecret[] = {
        "referer",         "http-referer", "x-title",           "user-agent",     "accept",
        "accept-language", "content-type", "anthropic-version", "anthropic-beta", "openai-beta"};
    for (const auto& [name, value] : headers) {
        const std::string lower = AsciiLower(name);
        if (std::find(std::begin(kNotSecret), std::end(kNotSecret), lower) !=
            std::end(kNotSecret)) {
            continue;
        }
        RegisterSecret(value);
    }
}

std::string ServerText(std::string_view text, size_t max_bytes) {
    if (HaveSecrets() && ContainsSecret(text)) return CapForMessage(Redact(text), max_bytes);
    return CapForMessage(text, max_bytes);
}

std::string BodyPreview(std::string_view body) {
    constexpr size_t kPreviewBytes = 300;
    if (body.empty()) return "(empty body)";
    return ServerText(body, kPreviewBytes);
}

std::unexpected<Error> Malformed(std::string_view provider, std::string_view what) {
    return InternalError(std::string(provider) + ": malformed response body: " + std::string(what));
}

Error MalformedStream(std::string_view provider, std::string_view what) {
    return Error(ErrorCode::kInternal,
                 std::string(provider) + ": malformed stream: " + std::string(what));
}

namespace {

Error MalformedAnswer(std::string_view provider, std::string_view what, Delivery delivery) {
    return delivery == Delivery::kStream ? MalformedStream(provider, what)
                                         : Malformed(provider, what).error();
}

}  // namespace

Result<int64_t> UsageCount(const json::object& usage, std::string_view key,
                           std::string_view provider, Delivery delivery) {
    const json::value* value = usage.if_contains(key);
    if (value == nullptr || value->is_null()) return 0;
    std::optional<int64_t> count;
    if (value->is_int64()) {
        count = value->get_int64();
    } else if (value->is_uint64()) {
        if (value->get_uint64() <= static_cast<uint64_t>(kMaxTokensPerCall)) {
            count = static_cast<int64_t>(value->get_uint64());
        }
    } else if (value->is_double()) {
        // 12.0 is a count; 12.5, 1e300, NaN are not.
        double number = value->get_double();
        if (number >= 0 && number <= static_cast<double>(kMaxTokensPerCall) &&
            number == static_cast<double>(static_cast<int64_t>(number))) {
            count = static_cast<int64_t>(number);
        }
    }
    if (count && *count >= 0 && *count <= kMaxTokensPerCall) return *count;
    constexpr size_t kQuoteBytes = 64;
    return std::unexpected(MalformedAnswer(
        provider,
        "usage." + std::string(key) + " is " + ServerText(json::serialize(*value), kQuoteBytes) +
            " (expected an integer from 0 to " + std::to_string(kMaxTokensPerCall) + ")",
        delivery));
}

Result<const json::object*> UsageObject(const json::object& object, std::string_view provider,
                                        Delivery delivery) {
    const json::value* usage = object.if_contains("usage");
    if (usage == nullptr || usage->is_null()) return nullptr;
    if (!usage->is_object()) {
        constexpr size_t kQuoteBytes = 64;
        return std::unexpected(
            MalformedAnswer(provider,
                            "usage is " + ServerText(json::serialize(*usage), kQuoteBytes) +
                                " (expected an object)",
                            delivery));
    }
    return &usage->get_object();
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
