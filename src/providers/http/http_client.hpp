// The one async HTTP/1.1 client (http:// and https://) shared by HTTP model providers and tools.
//
// Contract:
//  * Every call is bounded by its Deadline: resolve, connect, proxy CONNECT, TLS handshake,
//    write and read all stop at it with kDeadlineExceeded.
//  * Terminal cancellation emitted on the awaiting coroutine's cancellation slot aborts the
//    request promptly with kCancelled and closes its connection.
//  * Failures are values, never exceptions:
//      kInvalidArgument   bad URL or method
//      kUnavailable       cannot resolve/connect/handshake, connection reset or closed early
//                         (details.reason "truncated_response" when the body was cut short);
//                         the message names host:port
//      kDeadlineExceeded  the deadline passed
//      kCancelled         the awaiting coroutine was cancelled
//      kResourceExhausted the body exceeds Options::max_response_body_bytes
//                         (details.reason "response_too_large")
//      kInternal          the peer broke HTTP framing
//    Any HTTP status, including 4xx and 5xx, is a successful exchange: callers map statuses.
//  * Keep-alive: idle connections are pooled per scheme + host + port (+ proxy) and reused; a
//    request that fails on a reused connection before any response byte arrived is retried once
//    on a fresh connection (the server may have closed the idle connection under us).
//  * TLS verifies the peer against the system CA store plus Options::extra_ca_file (default
//    $SSL_CERT_FILE), checks the host name, and sends SNI. The stores are loaded at the first
//    https:// connection (an explicit extra_ca_file at Create, so that a bad one fails there).
//  * Proxies: $HTTP_PROXY / $HTTPS_PROXY / $ALL_PROXY (lower-case names first) and $NO_PROXY.
//    http:// goes through the proxy in absolute form, https:// through a CONNECT tunnel.
//    Loopback targets (localhost, 127.0.0.0/8, ::1) are never proxied.
//
// Plain http:// requests that do not go through a proxy (local model servers) are driven by
// completion callbacks instead of coroutines: a waiting request holds one small object, its
// connection's socket and two waits (the socket, the deadline timer) and no read buffer. HTTPS
// and proxied requests take the coroutine path over Beast streams. Both keep the contract above.
//
// Thread-safety: an HttpClient may be used concurrently from any thread and any executor. Its
// sockets live on the executor given to Create (which must be running); each request runs on a
// strand of it and completes on the caller's executor. Destroying the HttpClient while requests
// are in flight is safe: they hold the shared state they need. The last reference must go before
// the executor's io_context is destroyed (pooled sockets belong to it).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/asio.hpp"
#include "core/deadline.hpp"
#include "core/result.hpp"

namespace strowger::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
    std::string method = "POST";
    std::string url;  // http://host[:port]/path?query or https://...
    // Sent as given, after Host and User-Agent (a header named here replaces those two).
    // Content-Length is always computed from `body`.
    Headers headers;
    std::string body;
};

struct HttpResponse {
    int status = 0;
    Headers headers;
    std::string body;

    // Value of the first header named `name` (ASCII case-insensitive), or "" if absent.
    std::string Header(std::string_view name) const;
};

// A parsed absolute http(s) URL.
struct Url {
    std::string scheme;    // "http" or "https", lower-cased
    std::string host;      // without IPv6 brackets
    uint16_t port = 0;     // explicit or the scheme's default
    std::string target;    // path and query, at least "/"; the fragment is dropped
    std::string userinfo;  // "user:password" if the URL had one (used for proxy auth)

    bool tls() const { return scheme == "https"; }
    // "host:port", with brackets around IPv6 hosts.
    std::string Authority() const;
};

// kInvalidArgument unless `text` is an absolute http:// or https:// URL.
Result<Url> ParseUrl(std::string_view text);

// Which proxy, if any, a request goes through.
struct ProxyConfig {
    std::string http_proxy;   // for http:// targets; "" = direct
    std::string https_proxy;  // for https:// targets; "" = direct
    // Comma-separated hosts, ".domain" / "domain" suffixes, IP addresses, CIDR ranges, or "*".
    std::string no_proxy;

    // From http_proxy/HTTP_PROXY, https_proxy/HTTPS_PROXY, all_proxy/ALL_PROXY and
    // no_proxy/NO_PROXY.
    static ProxyConfig FromEnvironment();

    // The proxy URL to use for `target`, or nullopt to connect directly. A proxy URL without a
    // scheme is taken as http://. kInvalidArgument if the configured proxy URL is malformed.
    Result<std::optional<Url>> ProxyFor(const Url& target) const;
};

struct HttpClientOptions {
    // Idle keep-alive connections kept per scheme + host + port; more are closed.
    size_t max_idle_connections_per_host = 256;
    // Idle connections older than this are closed instead of reused.
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(50)};
    // Larger bodies fail with kResourceExhausted (streamed 2xx bodies are not limited).
    size_t max_response_body_bytes = size_t{32} << 20;
    std::string user_agent = "strowger/0.1";
    // A PEM bundle of extra CAs trusted besides the system store; nullopt = $SSL_CERT_FILE.
    std::optional<std::string> extra_ca_file;
    // nullopt = ProxyConfig::FromEnvironment() when the client is created.
    std::optional<ProxyConfig> proxy;
    // True if the executor given to Create is run by one thread only (an io_context run by one
    // thread, as the CLI's): plain-http requests then run on it without a strand (no extra
    // queue hop per operation). Requests may still be made from any thread.
    bool single_threaded_executor = false;
};

// Counters since creation, for tests and metrics.
struct HttpClientStats {
    int64_t connections_opened = 0;  // TCP connections established (to the target or a proxy)
    int64_t requests_sent = 0;       // requests started, including stale-connection retries
    int64_t reuses = 0;              // requests sent on a pooled keep-alive connection
    int64_t stale_retries = 0;       // requests retried after a reused connection failed
};

class HttpClient {
  public:
    // kInvalidArgument if the CA file or proxy configuration cannot be used.
    static Result<std::shared_ptr<HttpClient>> Create(Executor executor,
                                                      HttpClientOptions options = {});

    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Sends `request` and reads the whole response.
    Awaitable<Result<HttpResponse>> Send(HttpRequest request, Deadline deadline);

    // As Send, but a 2xx body is handed to `on_body_chunk` piece by piece as it arrives (decoded
    // from chunked transfer encoding; pieces split anywhere) and the returned response has an
    // empty body. Non-2xx bodies are not streamed: they come back in HttpResponse::body, as from
    // Send. `on_body_chunk` runs on the client's executor, one call at a time, before the
    // returned awaitable completes; it must not block. If it returns an error, reading stops,
    // the connection is closed (not pooled) and SendStreaming returns that error.
    using BodyChunkHandler = std::function<Status(std::string_view)>;
    Awaitable<Result<HttpResponse>> SendStreaming(HttpRequest request, Deadline deadline,
                                                  BodyChunkHandler on_body_chunk);

    HttpClientStats stats() const;
    // Idle pooled connections, over all hosts.
    size_t idle_connections() const;
    // Closes every idle pooled connection (in-flight requests are not affected).
    void CloseIdleConnections();

    const Executor& executor() const;

    class Impl;

  private:
    explicit HttpClient(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

}  // namespace strowger::http
