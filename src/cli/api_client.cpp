#include "cli/api_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <optional>

#include "api/auth.hpp"
#include "core/strings.hpp"

namespace strowger::cli {
namespace {

constexpr auto kCallTimeout = std::chrono::minutes(10);

}  // namespace

ErrorCode CodeForStatus(int status) {
    switch (status) {
        case 400:
        case 422:
            return ErrorCode::kInvalidArgument;
        case 401:
            return ErrorCode::kUnauthenticated;
        case 403:
            return ErrorCode::kPermissionDenied;
        case 404:
            return ErrorCode::kNotFound;
        case 409:
            return ErrorCode::kFailedPrecondition;
        case 429:
            return ErrorCode::kResourceExhausted;
        case 503:
            return ErrorCode::kUnavailable;
        case 504:
            return ErrorCode::kDeadlineExceeded;
        default:
            return status >= 500 ? ErrorCode::kInternal : ErrorCode::kUnknown;
    }
}

std::string ServerUrl(const std::string& flag) {
    if (!flag.empty()) return flag;
    const char* env = std::getenv("STROWGER_SERVER");
    return env && *env ? env : "";
}

Result<std::unique_ptr<ApiClient>> ApiClient::Connect(const std::string& server_url) {
    std::unique_ptr<ApiClient> client(new ApiClient());
    client->server_ = server_url;
    while (!client->server_.empty() && client->server_.back() == '/') client->server_.pop_back();
    STROWGER_TRY(http::ParseUrl(client->server_ + "/"));
    if (const char* token = std::getenv("STROWGER_TOKEN"); token && *token) {
        client->token_ = token;
    } else {
        auto file = api::ReadTokenFileBlocking(api::DefaultTokenFile());
        if (!file || file->empty()) {
            return MakeError(ErrorCode::kUnauthenticated,
                             "no API token: set STROWGER_TOKEN or write one to " +
                                 api::DefaultTokenFile() +
                                 " (`strowger serve` does at first start)");
        }
        client->token_ = *file;
    }
    http::HttpClientOptions options;
    options.single_threaded_executor = true;
    options.max_response_body_bytes = size_t{256} << 20;
    STROWGER_ASSIGN_OR_RETURN(client->http_,
                              http::HttpClient::Create(client->io_.get_executor(), options));
    return client;
}

ApiClient::~ApiClient() {
    http_.reset();
}

template <typename T>
T ApiClient::Await(Awaitable<T> awaitable) {
    std::optional<T> result;
    asio::co_spawn(io_, std::move(awaitable), [&](std::exception_ptr, T value) {
        result.emplace(std::move(value));
        io_.stop();
    });
    io_.restart();
    io_.run();
    return std::move(*result);
}

Result<ApiClient::Reply> ApiClient::Call(const std::string& method, const std::string& path,
                                         const std::string& body, const http::Headers& headers) {
    http::HttpRequest request;
    request.method = method;
    request.url = server_ + path;
    request.headers = headers;
    request.headers.emplace_back("Authorization", "Bearer " + token_);
    if (!body.empty()) request.headers.emplace_back("Content-Type", "application/json");
    request.body = body;
    auto response = Await(http_->Send(std::move(request), Deadline::After(kCallTimeout)));
    if (!response) {
        return std::unexpected(response.error().WithPrefix("cannot reach " + server_ + ": "));
    }
    Reply reply;
    reply.status = response->status;
    reply.body = std::move(response->body);
    if (auto parsed = ParseJson(reply.body)) reply.json = std::move(*parsed);
    return reply;
}

Result<ApiClient::Reply> ApiClient::Checked(const std::string& method, const std::string& path,
                                            const std::string& body, const http::Headers& headers) {
    STROWGER_ASSIGN_OR_RETURN(auto reply, Call(method, path, body, headers));
    if (reply.status < 400) return reply;
    std::string detail;
    if (reply.json.is_object()) detail = std::string(JsonString(reply.json.as_object(), "detail"));
    if (detail.empty()) detail = "HTTP " + std::to_string(reply.status);
    if (reply.json.is_object()) {
        if (const auto* errors = JsonArray(reply.json.as_object(), "errors")) {
            for (const auto& e : *errors) {
                if (!e.is_object()) continue;
                const auto& o = e.as_object();
                detail += "\n  " + std::string(JsonString(o, "field"));
                if (JsonInt(o, "line") > 0) {
                    detail += " (line " + std::to_string(JsonInt(o, "line")) + ":" +
                              std::to_string(JsonInt(o, "column")) + ")";
                }
                detail += ": " + std::string(JsonString(o, "message"));
            }
        }
    }
    return MakeError(CodeForStatus(reply.status), detail, ErrorDetails{reply.status, -1, -1, ""});
}

Status ApiClient::Follow(const std::string& path,
                         const std::function<bool(const http::SseEvent&)>& on_event) {
    std::string last_id;
    bool finished = false;
    int failures = 0;
    while (!finished) {
        http::HttpRequest request;
        request.method = "GET";
        request.url = server_ + path;
        request.headers.emplace_back("Authorization", "Bearer " + token_);
        request.headers.emplace_back("Accept", "text/event-stream");
        if (!last_id.empty()) request.headers.emplace_back("Last-Event-ID", last_id);
        bool stop = false;
        http::SseParser parser([&](const http::SseEvent& event) -> Status {
            if (!event.id.empty()) last_id = std::string(event.id);
            if (event.event == "end") finished = true;
            if (!on_event(event)) {
                stop = true;
                return CancelledError("stop");
            }
            return OkStatus();
        });
        auto response = Await(http_->SendStreaming(
            std::move(request), Deadline::Never(),
            [&](std::string_view chunk) -> Status { return parser.Feed(chunk); }));
        if (stop) return OkStatus();
        if (response && response->status >= 400) {
            std::string detail = response->body;
            if (auto parsed = ParseJson(response->body); parsed && parsed->is_object()) {
                detail = std::string(JsonString(parsed->as_object(), "detail"));
            }
            return MakeError(CodeForStatus(response->status), detail);
        }
        if (finished) break;
        // Cut off (the daemon restarted, a proxy timed out): reconnect where we were.
        if (!response && ++failures > 50) return std::unexpected(response.error());
        if (response) failures = 0;
        asio::steady_timer pause(io_);
        pause.expires_after(std::chrono::milliseconds(200));
        auto wait = [&]() -> Awaitable<int> {
            co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
            co_return 0;
        };
        Await(wait());
    }
    return OkStatus();
}

}  // namespace strowger::cli
