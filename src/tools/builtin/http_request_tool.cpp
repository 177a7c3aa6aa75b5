#include "tools/builtin/http_request_tool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <algorithm>
#include <array>
#include <memory>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "tools/builtin/arguments.hpp"
#include "tools/builtin/builtin_tools.hpp"

namespace strowger::tools::builtin {
namespace {

using tcp = asio::ip::tcp;

bool IsPublicV4(const asio::ip::address_v4& address) {
    uint32_t a = address.to_uint();
    auto in = [a](uint32_t network, int prefix) {
        uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
        return (a & mask) == network;
    };
    return !(in(0x00000000, 8) ||   // 0.0.0.0/8 "this network", incl. unspecified
             in(0x0A000000, 8) ||   // 10/8
             in(0x64400000, 10) ||  // 100.64/10 carrier-grade NAT
             in(0x7F000000, 8) ||   // 127/8 loopback
             in(0xA9FE0000, 16) ||  // 169.254/16 link-local (cloud metadata)
             in(0xAC100000, 12) ||  // 172.16/12
             in(0xC0000000, 24) ||  // 192.0.0/24 IETF protocol assignments
             in(0xC0A80000, 16) ||  // 192.168/16
             in(0xC6120000, 15) ||  // 198.18/15 benchmarking
             in(0xE0000000, 4) ||   // 224/4 multicast
             in(0xF0000000, 4));    // 240/4 reserved, incl. broadcast
}

std::string Lower(std::string_view text) {
    std::string host = AsciiLower(text);
    while (!host.empty() && host.back() == '.') host.pop_back();
    return host;
}

struct HttpCall {
    http::HttpRequest request;  // url still names the host
    http::Url url;
    std::string authority;  // for the Host header when pinned
};

Result<HttpCall> PrepareCall(const std::string& arguments, const ToolContext& context,
                             const HttpRequestToolOptions& options) {
    STROWGER_ASSIGN_OR_RETURN(auto args, Arguments::Parse("http_request", arguments,
                                                          {"method", "url", "headers", "body"}));
    STROWGER_ASSIGN_OR_RETURN(auto method, args.OptionalString("method"));
    STROWGER_ASSIGN_OR_RETURN(std::string url_text, args.RequiredString("url"));
    STROWGER_ASSIGN_OR_RETURN(auto headers, args.OptionalStringMap("headers"));
    STROWGER_ASSIGN_OR_RETURN(auto body, args.OptionalString("body"));
    HttpCall call;
    call.request.method = method.value_or("GET");
    for (char& c : call.request.method) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    static const std::array<std::string_view, 7> kMethods = {"GET",   "HEAD",   "POST",   "PUT",
                                                             "PATCH", "DELETE", "OPTIONS"};
    if (std::find(kMethods.begin(), kMethods.end(), call.request.method) == kMethods.end()) {
        return InvalidArgumentError(
            "http_request: \"method\" must be one of GET, HEAD, POST, PUT, PATCH, DELETE, "
            "OPTIONS");
    }
    auto url = http::ParseUrl(url_text);
    if (!url) {
        return InvalidArgumentError(
            "http_request: \"url\" is not an absolute http:// or "
            "https:// URL (" +
            url.error().message() + ")");
    }
    call.url = *url;
    if (!url->userinfo.empty()) {
        return InvalidArgumentError("http_request: \"url\" must not contain credentials");
    }
    if (body && body->size() > options.max_request_body_bytes) {
        return InvalidArgumentError("http_request: \"body\" is longer than " +
                                    std::to_string(options.max_request_body_bytes) + " bytes");
    }
    if (!HostAllowed(url->host, context.grants.http_hosts)) {
        return PermissionDeniedError("http_request: host \"" + url->host +
                                     "\" is not in this agent's http_hosts allowlist");
    }
    call.authority = url->Authority();
    if ((url->tls() && url->port == 443) || (!url->tls() && url->port == 80)) {
        call.authority =
            url->host.find(':') != std::string::npos ? "[" + url->host + "]" : url->host;
    }
    call.request.url = std::move(url_text);
    if (headers) {
        for (const auto& entry : *headers) {
            std::string name(entry.key());
            // Framing and routing headers are ours to set.
            std::string lower = AsciiLower(name);
            if (lower == "host" || lower == "content-length" || lower == "transfer-encoding" ||
                lower == "connection" || lower == "idempotency-key") {
                continue;
            }
            call.request.headers.emplace_back(std::move(name),
                                              std::string(entry.value().get_string()));
        }
    }
    call.request.headers.emplace_back("Idempotency-Key", context.idempotency_key);
    if (body) call.request.body = std::move(*body);
    return call;
}

// Resolves `host`; getaddrinfo cannot be interrupted, so on timeout or cancellation we stop
// waiting and leave it to finish in the background.
Awaitable<Result<std::vector<asio::ip::address>>> Resolve(std::string host, uint16_t port,
                                                          Deadline deadline) {
    boost::system::error_code parse_error;
    auto literal = asio::ip::make_address(host, parse_error);
    if (!parse_error) co_return std::vector<asio::ip::address>{literal};
    struct State {
        explicit State(const Executor& ex) : resolver(ex), timer(ex) {}
        tcp::resolver resolver;
        asio::steady_timer timer;
        bool done = false;
        boost::system::error_code ec;
        std::vector<asio::ip::address> addresses;
    };
    auto state = std::make_shared<State>(co_await asio::this_coro::executor);
    state->timer.expires_at(deadline.IsNever() ? asio::steady_timer::time_point::max()
                                               : deadline.time());
    state->resolver.async_resolve(
        host, std::to_string(port),
        [state](boost::system::error_code ec, tcp::resolver::results_type results) {
            state->done = true;
            state->ec = ec;
            for (const auto& entry : results)
                state->addresses.push_back(entry.endpoint().address());
            state->timer.cancel();
        });
    auto [wait_ec] = co_await state->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (state->done) {
        if (state->ec || state->addresses.empty()) {
            co_return UnavailableError("http_request: cannot resolve \"" + host +
                                       "\": " + (state->ec ? state->ec.message() : "no addresses"));
        }
        co_return std::move(state->addresses);
    }
    state->resolver.cancel();
    if (wait_ec == asio::error::operation_aborted) {
        co_return CancelledError("http_request: cancelled while resolving \"" + host + "\"");
    }
    co_return DeadlineExceededError("http_request: deadline exceeded while resolving \"" + host +
                                    "\"");
}

// Refuses non-public addresses (unless granted) and, for http://, pins the request to the
// checked address.
Status CheckAndPin(HttpCall& call, const std::vector<asio::ip::address>& addresses,
                   bool private_allowed) {
    if (private_allowed) return OkStatus();
    for (const auto& address : addresses) {
        if (!IsPublicAddress(address)) {
            return PermissionDeniedError(
                "http_request: \"" + call.url.host + "\" resolves to " + address.to_string() +
                ", a loopback, private, link-local or reserved address; this agent may only "
                "reach public addresses");
        }
    }
    if (!call.url.tls()) {
        const auto& address = addresses.front();
        std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
        call.request.url = "http://" + host + ":" + std::to_string(call.url.port) + call.url.target;
        call.request.headers.emplace_back("Host", call.authority);
    }
    return OkStatus();
}

ToolResult FormatResponse(const http::HttpResponse& response, size_t max_body_bytes) {
    ToolResult result;
    std::string& out = result.content;
    out = "HTTP " + std::to_string(response.status) + "\n";
    for (const auto& [name, value] : response.headers) out += name + ": " + value + "\n";
    out += "\n";
    if (response.body.size() > max_body_bytes) {
        out += ToValidUtf8(std::string_view(response.body).substr(0, max_body_bytes));
        out += "\n[http_request: body truncated; showing the first " +
               std::to_string(max_body_bytes) + " of " + std::to_string(response.body.size()) +
               " bytes]";
    } else {
        out += ToValidUtf8(response.body);
    }
    result.is_error = response.status >= 400;
    return result;
}

class HttpRequestTool final : public Tool {
  public:
    HttpRequestTool(std::shared_ptr<http::HttpClient> client, HttpRequestToolOptions options)
        : client_(std::move(client)), options_(options) {
        spec_.name = "http_request";
        spec_.description =
            "Send one HTTP or HTTPS request and return the status, headers and body. Only "
            "hosts on this agent's allowlist can be reached; private and loopback addresses "
            "are refused unless granted; redirects are not followed; long bodies are cut.";
        spec_.parameters_schema =
            R"({"type":"object","properties":{)"
            R"("method":{"type":"string","enum":["GET","HEAD","POST","PUT","PATCH","DELETE",)"
            R"("OPTIONS"],"description":"HTTP method, default GET"},)"
            R"("url":{"type":"string","description":"Absolute http:// or https:// URL"},)"
            R"("headers":{"type":"object","additionalProperties":{"type":"string"},)"
            R"("description":"Request headers"},)"
            R"("body":{"type":"string","description":"Request body"}},)"
            R"("required":["url"],"additionalProperties":false})";
    }

    const providers::ToolSpec& spec() const override { return spec_; }
    SafetyClass safety() const override { return SafetyClass::kDestructive; }

    Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) override {
        auto call = PrepareCall(arguments, context, options_);
        if (!call) co_return std::unexpected(std::move(call).error());
        Deadline deadline = context.deadline.Min(Deadline::After(options_.timeout));
        auto addresses = co_await Resolve(call->url.host, call->url.port, deadline);
        if (!addresses) co_return std::unexpected(std::move(addresses).error());
        auto pinned = CheckAndPin(*call, *addresses, context.grants.private_addresses);
        if (!pinned) co_return std::unexpected(std::move(pinned).error());
        auto response = co_await client_->Send(std::move(call->request), deadline);
        if (!response) co_return std::unexpected(std::move(response).error());
        co_return FormatResponse(*response, options_.max_body_bytes);
    }

  private:
    std::shared_ptr<http::HttpClient> client_;
    HttpRequestToolOptions options_;
    providers::ToolSpec spec_;
};

}  // namespace

bool IsPublicAddress(const asio::ip::address& address) {
    if (address.is_v4()) return IsPublicV4(address.to_v4());
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) return IsPublicV4(asio::ip::make_address_v4(asio::ip::v4_mapped, v6));
    auto bytes = v6.to_bytes();
    auto embedded_v4 = [&bytes](size_t offset) {
        return asio::ip::address_v4(asio::ip::address_v4::bytes_type{
            bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]});
    };
    bool zero_prefix =
        std::all_of(bytes.begin(), bytes.begin() + 12, [](auto b) { return b == 0; });
    if (zero_prefix) return false;  // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
    if (bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xff && bytes[3] == 0x9b &&
        std::all_of(bytes.begin() + 4, bytes.begin() + 12, [](auto b) { return b == 0; })) {
        return IsPublicV4(embedded_v4(12));  // NAT64 64:ff9b::/96
    }
    if (bytes[0] == 0x20 && bytes[1] == 0x02) return IsPublicV4(embedded_v4(2));  // 6to4
    if ((bytes[0] & 0xfe) == 0xfc) return false;                      // fc00::/7 unique local
    if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80) return false;  // fe80::/10 link-local
    if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0xc0) return false;  // fec0::/10 site-local
    if (bytes[0] == 0xff) return false;                               // multicast
    return true;
}

bool HostAllowed(std::string_view host, const std::vector<std::string>& allowlist) {
    std::string name = Lower(host);
    if (name.empty()) return false;
    for (const auto& entry : allowlist) {
        std::string pattern = Lower(entry);
        if (pattern == "*") return true;
        if (pattern.size() > 2 && pattern.compare(0, 2, "*.") == 0) {
            std::string_view suffix(pattern.data() + 1, pattern.size() - 1);  // ".example.com"
            if (name.size() > suffix.size() && EndsWith(name, suffix)) return true;
        } else if (pattern == name) {
            return true;
        }
    }
    return false;
}

std::shared_ptr<Tool> MakeHttpRequestTool(std::shared_ptr<http::HttpClient> client,
                                          HttpRequestToolOptions options) {
    return std::make_shared<HttpRequestTool>(std::move(client), options);
}

}  // namespace strowger::tools::builtin
