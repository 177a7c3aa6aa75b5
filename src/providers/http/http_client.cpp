// Over 1,000 lines on purpose: this is the project's one Beast client translation unit (a TU
// that includes Beast costs ~15 s to compile, ARCHITECTURE.md); the connection pool, the
// proxy CONNECT path, TLS and the streamed body reader share its private connection type.
// Splitting it would mean a second Beast TU or exposing that type in a header.
#include "providers/http/http_client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <tuple>

#include "core/log.hpp"
#include "core/strings.hpp"

namespace strowger::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using ErrorCodeValue = boost::system::error_code;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr size_t kHeaderLimit = 64 * 1024;
constexpr size_t kStreamChunkBytes = 16 * 1024;

std::string_view Getenv(const char* name) {
    const char* value = std::getenv(name);
    return value ? std::string_view(value) : std::string_view();
}

std::string FirstEnv(std::initializer_list<const char*> names) {
    for (const char* name : names) {
        if (auto value = Getenv(name); !value.empty()) return std::string(value);
    }
    return {};
}

bool IsIpLiteral(std::string_view host) {
    ErrorCodeValue ec;
    asio::ip::make_address(std::string(host), ec);
    return !ec;
}

bool IsLoopbackHost(std::string_view host) {
    std::string lower = AsciiLower(host);
    if (lower == "localhost" || EndsWith(lower, ".localhost")) return true;
    ErrorCodeValue ec;
    auto address = asio::ip::make_address(lower, ec);
    return !ec && address.is_loopback();
}

// Does `host` fall in "address/prefix"?
bool InCidr(const asio::ip::address& host, std::string_view cidr) {
    auto slash = cidr.find('/');
    ErrorCodeValue ec;
    auto network = asio::ip::make_address(std::string(cidr.substr(0, slash)), ec);
    if (ec) return false;
    int prefix = 0;
    auto bits = cidr.substr(slash + 1);
    auto [end, parse_ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (parse_ec != std::errc() || end != bits.data() + bits.size() || prefix < 0) return false;
    if (host.is_v4() != network.is_v4()) return false;
    auto match = [prefix](const auto& a, const auto& b) {
        int full_bytes = prefix / 8;
        int rest_bits = prefix % 8;
        if (static_cast<size_t>(full_bytes) > a.size()) return false;
        for (int i = 0; i < full_bytes; ++i) {
            if (a[i] != b[i]) return false;
        }
        if (rest_bits == 0) return true;
        if (static_cast<size_t>(full_bytes) >= a.size()) return false;
        auto mask = static_cast<unsigned char>(0xff << (8 - rest_bits));
        return (a[full_bytes] & mask) == (b[full_bytes] & mask);
    };
    if (host.is_v4()) return match(host.to_v4().to_bytes(), network.to_v4().to_bytes());
    return match(host.to_v6().to_bytes(), network.to_v6().to_bytes());
}

bool NoProxyMatches(std::string_view no_proxy, std::string_view host_in) {
    std::string host = AsciiLower(host_in);
    ErrorCodeValue ec;
    auto host_address = asio::ip::make_address(host, ec);
    bool host_is_ip = !ec;
    for (const std::string& raw : Split(no_proxy, ',')) {
        std::string entry = AsciiLower(Trim(raw));
        if (entry.empty()) continue;
        if (entry == "*") return true;
        if (entry.front() == '[') {
            auto close = entry.find(']');
            entry = entry.substr(1, close == std::string::npos ? std::string::npos : close - 1);
        }
        if (entry.find('/') != std::string::npos) {
            if (host_is_ip && InCidr(host_address, entry)) return true;
            continue;
        }
        if (host_is_ip) {
            auto entry_address = asio::ip::make_address(entry, ec);
            if (!ec && entry_address == host_address) return true;
            continue;
        }
        // "host:port" entries: the port is not checked.
        if (auto colon = entry.find(':'); colon != std::string::npos) entry.resize(colon);
        if (StartsWith(entry, "*.")) entry.erase(0, 2);
        if (StartsWith(entry, ".")) entry.erase(0, 1);
        if (host == entry || EndsWith(host, "." + entry)) return true;
    }
    return false;
}

std::string Base64(std::string_view in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += kAlphabet[n & 63];
    }
    if (i + 1 == in.size()) {
        uint32_t n = uint8_t(in[i]) << 16;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += "==";
    } else if (i + 2 == in.size()) {
        uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
        out += '=';
    }
    return out;
}

bool IsToken(std::string_view text) {
    if (text.empty()) return false;
    for (char c : text) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

bool HasCrLf(std::string_view text) {
    return text.find_first_of("\r\n") != std::string_view::npos;
}

// Host header value: the authority without the scheme's default port.
std::string HostHeader(const Url& url) {
    bool default_port = url.port == (url.tls() ? 443 : 80);
    if (!default_port) return url.Authority();
    return url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
}

void SetExpiry(beast::tcp_stream& stream, Deadline deadline) {
    if (deadline.IsNever()) {
        stream.expires_never();
    } else {
        stream.expires_at(deadline.time());
    }
}

const boost::system::error_category& HttpCategory() {
    static const boost::system::error_category& category =
        bhttp::make_error_code(bhttp::error::end_of_stream).category();
    return category;
}

// Converts an I/O failure while `doing` (e.g. "connecting to") `peer` into our error space.
Error TransportError(const ErrorCodeValue& ec, std::string_view doing, std::string_view peer) {
    std::string where = std::string(doing) + " " + std::string(peer);
    if (ec == beast::error::timeout) {
        return Error(ErrorCode::kDeadlineExceeded, "http: deadline exceeded while " + where);
    }
    if (ec == asio::error::operation_aborted) {
        return Error(ErrorCode::kCancelled, "http: cancelled while " + where);
    }
    if (ec == bhttp::error::partial_message) {
        ErrorDetails details;
        details.reason = "truncated_response";
        return Error(ErrorCode::kUnavailable,
                     "http: " + std::string(peer) + " closed the connection mid-response",
                     std::move(details));
    }
    if (ec == bhttp::error::body_limit) {
        ErrorDetails details;
        details.reason = "response_too_large";
        return Error(ErrorCode::kResourceExhausted,
                     "http: response from " + std::string(peer) + " is too large",
                     std::move(details));
    }
    if (&ec.category() == &HttpCategory() && ec != bhttp::error::end_of_stream) {
        return Error(ErrorCode::kInternal, "http: malformed HTTP response from " +
                                               std::string(peer) + ": " + ec.message());
    }
    return Error(ErrorCode::kUnavailable, "http: error " + where + ": " + ec.message());
}

bool IsTransientFailure(const Error& error) {
    return error.code() == ErrorCode::kUnavailable;
}

// One keep-alive connection. Used by one request at a time, on `executor` (a strand).
struct Connection {
    explicit Connection(Executor strand) : executor(std::move(strand)) {}

    bool connected() const { return tcp.has_value() || tls.has_value(); }
    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *tcp; }

    // False if the peer has closed the connection or sent something unasked while it was idle.
    bool LooksAlive() {
        if (!connected() || buffer.size() != 0) return false;
        auto& socket = lowest().socket();
        if (!socket.is_open()) return false;
        char byte;
        ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }

    Executor executor;
    std::optional<beast::tcp_stream> tcp;  // plain connections (and TLS before the handshake)
    std::optional<TlsStream> tls;
    beast::flat_buffer buffer;
    SteadyClock::time_point idle_since;
};

// Everything one request needs, moved into the coroutine that runs it on the connection's strand.
struct Call {
    Url url;
    std::optional<Url> proxy;
    std::string pool_key;
    std::string peer;  // "host:port" of the target, for messages
    bhttp::request<bhttp::string_body> request;
    bool head = false;
    Deadline deadline = Deadline::Never();
    HttpClient::BodyChunkHandler on_body_chunk;  // empty for Send
};

struct PlainCall;

// A keep-alive connection of the plain-http fast path: a bare socket (no beast stream, no
// read buffer while idle or waiting) and the strand its exchanges run on.
struct PlainConnection {
    PlainConnection(Executor on, const Executor& io) : strand(std::move(on)), socket(io) {}

    bool LooksAlive() {
        if (!socket.is_open()) return false;
        char byte;
        ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }

    Executor strand;
    tcp::socket socket;
    SteadyClock::time_point idle_since;
};

// Result of one exchange on one connection.
struct Outcome {
    Result<HttpResponse> result = HttpResponse{};
    // The failure happened before any response byte arrived: safe to retry on a fresh
    // connection if this one came from the pool.
    bool before_response = false;
    bool keep_alive = false;
};

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (beast::iequals(key, name)) return value;
    }
    return {};
}

std::string Url::Authority() const {
    std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return out + ":" + std::to_string(port);
}

Result<Url> ParseUrl(std::string_view text) {
    auto invalid = [&](std::string_view why) {
        return InvalidArgumentError("http: invalid URL \"" + std::string(text) +
                                    "\": " + std::string(why));
    };
    if (HasCrLf(text) || text.find(' ') != std::string_view::npos) return invalid("bad character");
    Url url;
    auto scheme_end = text.find("://");
    if (scheme_end == std::string_view::npos) return invalid("no scheme");
    url.scheme = AsciiLower(text.substr(0, scheme_end));
    if (url.scheme != "http" && url.scheme != "https") return invalid("scheme is not http(s)");
    std::string_view rest = text.substr(scheme_end + 3);
    auto authority_end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, authority_end);
    std::string_view tail =
        authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        url.userinfo = std::string(authority.substr(0, at));
        authority = authority.substr(at + 1);
    }
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string_view::npos) return invalid("unclosed '['");
        url.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return invalid("junk after ']'");
            port_text = after.substr(1);
        }
    } else {
        auto colon = authority.rfind(':');
        url.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (url.host.empty()) return invalid("no host");
    url.host = AsciiLower(url.host);
    url.port = url.tls() ? 443 : 80;
    if (!port_text.empty()) {
        unsigned port = 0;
        auto [end, ec] =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
            port > 65535) {
            return invalid("bad port");
        }
        url.port = static_cast<uint16_t>(port);
    }
    if (auto hash = tail.find('#'); hash != std::string_view::npos) tail = tail.substr(0, hash);
    url.target = tail.empty() || tail.front() != '/' ? "/" + std::string(tail) : std::string(tail);
    return url;
}

ProxyConfig ProxyConfig::FromEnvironment() {
    ProxyConfig config;
    config.http_proxy = FirstEnv({"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"});
    config.https_proxy = FirstEnv({"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"});
    config.no_proxy = FirstEnv({"no_proxy", "NO_PROXY"});
    return config;
}

Result<std::optional<Url>> ProxyConfig::ProxyFor(const Url& target) const {
    const std::string& proxy = target.tls() ? https_proxy : http_proxy;
    if (proxy.empty() || IsLoopbackHost(target.host) || NoProxyMatches(no_proxy, target.host)) {
        return std::optional<Url>();
    }
    std::string text = proxy.find("://") == std::string::npos ? "http://" + proxy : proxy;
    auto url = ParseUrl(text);
    if (!url) return std::unexpected(url.error().WithPrefix("proxy: "));
    if (url->tls()) {
        return InvalidArgumentError("http: proxy " + url->Authority() +
                                    ": only http:// proxies are supported");
    }
    return std::optional<Url>(std::move(*url));
}

class HttpClient::Impl {
  public:
    Impl(Executor executor, HttpClientOptions options, ProxyConfig proxy)
        : executor_(std::move(executor)),
          options_(std::move(options)),
          proxy_(std::move(proxy)),
          tls_context_(asio::ssl::context::tls_client) {}

    Status SetUpTls(const std::string& extra_ca_file, bool explicit_file);
    // The CA store is loaded at the first TLS connection, not when the client is made: a
    // bundle is ~1.7 MB of heap and ~25 ms, which a process talking only to http:// model
    // servers (or not yet to any) should not pay; the first https:// connection pays it once,
    // on its thread. An explicit extra_ca_file is loaded at once (Create), so that a bad one is
    // an error there.
    void DeferTls(std::string ca_file) { deferred_ca_file_ = std::move(ca_file); }
    void EnsureTls() {
        std::call_once(tls_once_, [this] { (void)SetUpTls(deferred_ca_file_, false); });
    }
    void MarkTlsReady() {
        std::call_once(tls_once_, [] {});
    }

    static Awaitable<Result<HttpResponse>> Run(std::shared_ptr<Impl> self, HttpRequest request,
                                               Deadline deadline,
                                               HttpClient::BodyChunkHandler on_chunk);

    Result<std::unique_ptr<PlainCall>> PreparePlain(const HttpRequest& request,
                                                    Deadline deadline) const;

    // Keep-alive pools, by "scheme://host[ via proxy]": idle connections, newest last.
    template <typename C>
    using Pool = std::map<std::string, std::deque<std::unique_ptr<C>>>;
    // The newest idle connection of `key` that looks alive and has not idled too long.
    template <typename C>
    std::unique_ptr<C> AcquireIdle(Pool<C>& pool, const std::string& key) {
        std::lock_guard lock(mutex_);
        auto it = pool.find(key);
        if (it == pool.end()) return nullptr;
        auto& list = it->second;
        auto now = SteadyClock::now();
        while (!list.empty()) {
            std::unique_ptr<C> connection = std::move(list.back());
            list.pop_back();
            if (now - connection->idle_since > options_.idle_timeout) {
                list.clear();  // the rest are older still
                break;
            }
            if (connection->LooksAlive()) return connection;
        }
        return nullptr;
    }
    // Keeps `connection` for reuse; the oldest beyond the per-host cap is closed (after the
    // lock is released).
    template <typename C>
    void Release(Pool<C>& pool, const std::string& key, std::unique_ptr<C> connection) {
        if (options_.max_idle_connections_per_host == 0) return;
        connection->idle_since = SteadyClock::now();
        std::unique_ptr<C> evicted;
        std::lock_guard lock(mutex_);
        auto& list = pool[key];
        list.push_back(std::move(connection));
        if (list.size() > options_.max_idle_connections_per_host) {
            evicted = std::move(list.front());
            list.pop_front();
        }
    }

    Executor executor_;
    HttpClientOptions options_;
    ProxyConfig proxy_;
    asio::ssl::context tls_context_;
    std::once_flag tls_once_;
    std::string deferred_ca_file_;  // $SSL_CERT_FILE, for EnsureTls

    mutable std::mutex mutex_;
    Pool<Connection> idle_;  // GUARDED_BY(mutex_)
    // Connections of the plain-http fast path (PlainExchange), apart: they have no beast stream.
    Pool<PlainConnection> plain_idle_;  // GUARDED_BY(mutex_)

    std::atomic<int64_t> connections_opened_{0};
    std::atomic<int64_t> requests_sent_{0};
    std::atomic<int64_t> reuses_{0};
    std::atomic<int64_t> stale_retries_{0};

  private:
    static Awaitable<Result<HttpResponse>> Exchange(std::shared_ptr<Impl> self,
                                                    std::unique_ptr<Connection> connection,
                                                    bool reused, Call call);
    Awaitable<Status> Connect(Connection& connection, const Call& call);
    Awaitable<Status> OpenTunnel(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                 const Call& call);
    template <typename Stream>
    Awaitable<Outcome> RoundTrip(Stream& stream, beast::flat_buffer& buffer, const Call& call);
};

Status HttpClient::Impl::SetUpTls(const std::string& extra_ca_file, bool explicit_file) {
    ErrorCodeValue ec;
    tls_context_.set_options(asio::ssl::context::default_workarounds |
                                 asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                                 asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1,
                             ec);
    tls_context_.set_verify_mode(asio::ssl::verify_peer, ec);
    SSL_CTX* context = tls_context_.native_handle();
    SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS);
    // The system store, loaded explicitly: OpenSSL's "default verify paths" follow
    // $SSL_CERT_FILE *instead of* the system bundle, and we want that variable to add CAs.
    // Loading a bundle costs ~25 ms, so each file is loaded once (directories are lazy).
    auto canonical = [](const std::string& path) {
        std::error_code fs_ec;
        auto resolved = std::filesystem::canonical(path, fs_ec);
        return fs_ec ? path : resolved.string();
    };
    std::string system_file = X509_get_default_cert_file();
    std::error_code exists_ec;
    if (std::filesystem::exists(system_file, exists_ec)) {
        SSL_CTX_load_verify_locations(context, system_file.c_str(), nullptr);
    }
    std::string system_dir = X509_get_default_cert_dir();
    SSL_CTX_load_verify_locations(context, nullptr, system_dir.c_str());
    if (auto env_dir = Getenv("SSL_CERT_DIR"); !env_dir.empty() && env_dir != system_dir) {
        SSL_CTX_load_verify_locations(context, nullptr, std::string(env_dir).c_str());
    }
    ERR_clear_error();
    if (!extra_ca_file.empty() && canonical(extra_ca_file) != canonical(system_file)) {
        tls_context_.load_verify_file(extra_ca_file, ec);
        if (ec) {
            std::string message =
                "http: cannot load CA bundle " + extra_ca_file + ": " + ec.message();
            if (explicit_file) return InvalidArgumentError(std::move(message));
            spdlog::warn("{} (from $SSL_CERT_FILE); using the system CA store only", message);
        }
    }
    return OkStatus();
}

Awaitable<Result<HttpResponse>> HttpClient::Impl::Run(std::shared_ptr<Impl> self,
                                                      HttpRequest request, Deadline deadline,
                                                      HttpClient::BodyChunkHandler on_chunk) {
    STROWGER_CO_ASSIGN_OR_RETURN(Url url, ParseUrl(request.url));
    if (!IsToken(request.method)) {
        co_return InvalidArgumentError("http: invalid method \"" + request.method + "\"");
    }
    STROWGER_CO_ASSIGN_OR_RETURN(std::optional<Url> proxy, self->proxy_.ProxyFor(url));

    Call call;
    call.peer = url.Authority();
    call.pool_key = url.scheme + "://" + call.peer;
    if (proxy) call.pool_key += " via " + proxy->Authority();
    call.deadline = deadline;
    call.on_body_chunk = std::move(on_chunk);
    call.head = request.method == "HEAD";

    auto& message = call.request;
    message.version(11);
    if (auto verb = bhttp::string_to_verb(request.method); verb != bhttp::verb::unknown) {
        message.method(verb);
    } else {
        message.method_string(request.method);
    }
    // Plain http through a proxy uses the absolute form; CONNECT tunnels carry the origin form.
    bool absolute_form = proxy && !url.tls();
    message.target(absolute_form ? url.scheme + "://" + HostHeader(url) + url.target : url.target);
    message.set(bhttp::field::host, HostHeader(url));
    message.set(bhttp::field::user_agent, self->options_.user_agent);
    if (absolute_form && !proxy->userinfo.empty()) {
        message.set(bhttp::field::proxy_authorization, "Basic " + Base64(proxy->userinfo));
    }
    for (auto& [name, value] : request.headers) {
        if (!IsToken(name) || HasCrLf(value)) {
            co_return InvalidArgumentError("http: invalid header \"" + name + "\"");
        }
        if (beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding")) {
            continue;
        }
        if (beast::iequals(name, "host") || beast::iequals(name, "user-agent")) {
            message.set(name, value);
        } else {
            message.insert(name, value);
        }
    }
    message.body() = std::move(request.body);
    message.prepare_payload();
    call.url = std::move(url);
    call.proxy = std::move(proxy);

    if (deadline.Expired()) {
        co_return DeadlineExceededError("http: deadline exceeded before sending to " + call.peer);
    }
    std::unique_ptr<Connection> connection = self->AcquireIdle(self->idle_, call.pool_key);
    bool reused = connection != nullptr;
    if (!connection) connection = std::make_unique<Connection>(asio::make_strand(self->executor_));
    Executor strand = connection->executor;
    std::string peer = call.peer;
    try {
        // The exchange runs on the connection's strand; co_spawn forwards our cancellation to it.
        auto exchange = Exchange(std::move(self), std::move(connection), reused, std::move(call));
        co_return co_await asio::co_spawn(strand, std::move(exchange), asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) {
            co_return CancelledError("http: request to " + peer + " cancelled");
        }
        co_return InternalError("http: request to " + peer + " failed: " + e.what());
    } catch (const std::exception& e) {
        co_return InternalError("http: request to " + peer + " failed: " + e.what());
    }
}

Awaitable<Result<HttpResponse>> HttpClient::Impl::Exchange(std::shared_ptr<Impl> self,
                                                           std::unique_ptr<Connection> connection,
                                                           bool reused, Call call) {
    std::optional<Error> failure;
    try {
        for (int attempt = 0;; ++attempt) {
            if (!connection->connected()) {
                Status connected = co_await self->Connect(*connection, call);
                if (!connected) co_return std::unexpected(connected.error());
            }
            if (reused) self->reuses_.fetch_add(1, std::memory_order_relaxed);
            Outcome outcome;
            if (connection->tls) {
                outcome = co_await self->RoundTrip(*connection->tls, connection->buffer, call);
            } else {
                outcome = co_await self->RoundTrip(*connection->tcp, connection->buffer, call);
            }
            if (outcome.result) {
                if (outcome.keep_alive)
                    self->Release(self->idle_, call.pool_key, std::move(connection));
                co_return std::move(outcome.result);
            }
            if (reused && attempt == 0 && outcome.before_response &&
                IsTransientFailure(outcome.result.error())) {
                // The server most likely closed the idle connection as we reused it.
                self->stale_retries_.fetch_add(1, std::memory_order_relaxed);
                connection = std::make_unique<Connection>(connection->executor);
                reused = false;
                continue;
            }
            co_return std::move(outcome.result);
        }
    } catch (const boost::system::system_error& e) {
        // Asio throws operation_aborted from a co_await started after we were cancelled.
        failure = e.code() == asio::error::operation_aborted
                      ? Error(ErrorCode::kCancelled, "http: request to " + call.peer + " cancelled")
                      : Error(ErrorCode::kInternal,
                              "http: request to " + call.peer + " failed: " + e.what());
    } catch (const std::exception& e) {
        failure =
            Error(ErrorCode::kInternal, "http: request to " + call.peer + " failed: " + e.what());
    }
    co_return std::unexpected(std::move(*failure));
}

namespace {

// Resolves `host` within `deadline`. getaddrinfo cannot be interrupted, so rather than waiting
// for it after a cancellation or timeout we stop waiting and let it finish in the background.
Awaitable<Result<std::vector<tcp::endpoint>>> Resolve(Executor executor, std::string host,
                                                      uint16_t port, Deadline deadline) {
    std::vector<tcp::endpoint> endpoints;
    ErrorCodeValue ec;
    auto address = asio::ip::make_address(host, ec);
    if (!ec) {
        endpoints.emplace_back(address, port);
        co_return endpoints;
    }
    struct State {
        explicit State(const Executor& ex) : resolver(ex), timer(ex) {}
        tcp::resolver resolver;
        asio::steady_timer timer;
        bool done = false;
        ErrorCodeValue ec;
        std::vector<tcp::endpoint> endpoints;
    };
    auto state = std::make_shared<State>(executor);
    state->timer.expires_at(deadline.IsNever() ? asio::steady_timer::time_point::max()
                                               : deadline.time());
    // The handler runs on `executor` (the connection's strand), as does this coroutine.
    state->resolver.async_resolve(
        host, std::to_string(port),
        [state](ErrorCodeValue resolve_ec, tcp::resolver::results_type results) {
            state->done = true;
            state->ec = resolve_ec;
            for (const auto& entry : results) {
                state->endpoints.push_back(entry.endpoint());
            }
            state->timer.cancel();
        });
    auto [wait_ec] = co_await state->timer.async_wait(kUseTuple);
    if (state->done) {
        if (state->ec || state->endpoints.empty()) {
            co_return UnavailableError("http: cannot resolve " + host + ": " +
                                       (state->ec ? state->ec.message() : "no addresses"));
        }
        co_return std::move(state->endpoints);
    }
    state->resolver.cancel();
    if (wait_ec == asio::error::operation_aborted) {
        co_return CancelledError("http: cancelled while resolving " + host);
    }
    co_return DeadlineExceededError("http: deadline exceeded while resolving " + host);
}

}  // namespace

Awaitable<Status> HttpClient::Impl::Connect(Connection& connection, const Call& call) {
    const Url& hop = call.proxy ? *call.proxy : call.url;
    std::string hop_name = (call.proxy ? "proxy " : "") + hop.Authority();
    STROWGER_CO_ASSIGN_OR_RETURN(
        std::vector<tcp::endpoint> endpoints,
        co_await Resolve(connection.executor, hop.host, hop.port, call.deadline));

    connection.tcp.emplace(connection.executor);
    connection.buffer.clear();
    SetExpiry(*connection.tcp, call.deadline);
    auto [connect_ec, endpoint] = co_await connection.tcp->async_connect(endpoints, kUseTuple);
    if (connect_ec) {
        connection.tcp.reset();
        Error error = TransportError(connect_ec, "connecting to", hop_name);
        if (error.code() == ErrorCode::kUnavailable) {
            error = Error(ErrorCode::kUnavailable,
                          "http: cannot connect to " + hop_name + ": " + connect_ec.message());
        }
        co_return std::unexpected(std::move(error));
    }
    connections_opened_.fetch_add(1, std::memory_order_relaxed);
    ErrorCodeValue ignored;
    connection.tcp->socket().set_option(tcp::no_delay(true), ignored);
    if (!call.url.tls()) co_return OkStatus();

    if (call.proxy) {
        Status tunnel = co_await OpenTunnel(*connection.tcp, connection.buffer, call);
        if (!tunnel) co_return tunnel;
    }
    EnsureTls();
    connection.tls.emplace(std::move(*connection.tcp), tls_context_);
    connection.tcp.reset();
    SSL* ssl = connection.tls->native_handle();
    if (!IsIpLiteral(call.url.host)) SSL_set_tlsext_host_name(ssl, call.url.host.c_str());
    connection.tls->set_verify_mode(asio::ssl::verify_peer);
    connection.tls->set_verify_callback(asio::ssl::host_name_verification(call.url.host));
    SetExpiry(beast::get_lowest_layer(*connection.tls), call.deadline);
    auto [handshake_ec] =
        co_await connection.tls->async_handshake(asio::ssl::stream_base::client, kUseTuple);
    if (handshake_ec) {
        connection.tls.reset();
        Error error = TransportError(handshake_ec, "in the TLS handshake with", call.peer);
        if (error.code() == ErrorCode::kUnavailable) {
            std::string why = handshake_ec.message();
            if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
                why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
            }
            error = Error(ErrorCode::kUnavailable,
                          "http: TLS handshake with " + call.peer + " failed: " + why);
        }
        co_return std::unexpected(std::move(error));
    }
    co_return OkStatus();
}

Awaitable<Status> HttpClient::Impl::OpenTunnel(beast::tcp_stream& stream,
                                               beast::flat_buffer& buffer, const Call& call) {
    std::string proxy_name = "proxy " + call.proxy->Authority();
    bhttp::request<bhttp::empty_body> connect;
    connect.version(11);
    connect.method(bhttp::verb::connect);
    connect.target(call.url.Authority());
    connect.set(bhttp::field::host, call.url.Authority());
    connect.set(bhttp::field::user_agent, options_.user_agent);
    if (!call.proxy->userinfo.empty()) {
        connect.set(bhttp::field::proxy_authorization, "Basic " + Base64(call.proxy->userinfo));
    }
    SetExpiry(stream, call.deadline);
    auto [write_ec, written] = co_await bhttp::async_write(stream, connect, kUseTuple);
    if (write_ec)
        co_return std::unexpected(TransportError(write_ec, "sending CONNECT to", proxy_name));
    bhttp::response_parser<bhttp::empty_body> parser;
    parser.skip(true);  // a successful CONNECT response has no body: the tunnel follows
    auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kUseTuple);
    if (read_ec)
        co_return std::unexpected(
            TransportError(read_ec, "reading CONNECT reply from", proxy_name));
    int status = parser.get().result_int();
    if (status / 100 != 2) {
        co_return UnavailableError("http: " + proxy_name + " refused CONNECT to " + call.peer +
                                   ": " + std::to_string(status) + " " +
                                   CapForMessage(parser.get().reason(), 200));
    }
    co_return OkStatus();
}

template <typename Stream>
Awaitable<Outcome> HttpClient::Impl::RoundTrip(Stream& stream, beast::flat_buffer& buffer,
                                               const Call& call) {
    Outcome outcome;
    beast::tcp_stream& lowest = beast::get_lowest_layer(stream);
    SetExpiry(lowest, call.deadline);
    requests_sent_.fetch_add(1, std::memory_order_relaxed);
    auto [write_ec, written] = co_await bhttp::async_write(stream, call.request, kUseTuple);
    if (write_ec) {
        outcome.result = std::unexpected(TransportError(write_ec, "sending to", call.peer));
        outcome.before_response = true;
        co_return outcome;
    }

    // Interim 1xx responses (103 Early Hints...) are skipped.
    std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
    for (;;) {
        parser.emplace();
        parser->header_limit(kHeaderLimit);
        parser->body_limit(boost::none);  // enforced below, where we know whether we stream
        if (call.head) parser->skip(true);
        auto [read_ec, read] =
            co_await bhttp::async_read_header(stream, buffer, *parser, kUseTuple);
        if (read_ec) {
            outcome.result = std::unexpected(TransportError(read_ec, "waiting for", call.peer));
            outcome.before_response = !parser->got_some();
            co_return outcome;
        }
        int status = parser->get().result_int();
        if (status / 100 != 1 || status == 101) break;
    }

    HttpResponse& response = *outcome.result;
    response.status = parser->get().result_int();
    for (const auto& field : parser->get()) {
        response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    bool streaming = call.on_body_chunk && response.status / 100 == 2;
    const size_t limit = options_.max_response_body_bytes;
    auto too_large = [&] {
        ErrorDetails details;
        details.reason = "response_too_large";
        details.http_status = response.status;
        return Error(ErrorCode::kResourceExhausted,
                     "http: response body from " + call.peer + " exceeds " + std::to_string(limit) +
                         " bytes",
                     std::move(details));
    };
    std::string& body = response.body;
    std::string chunk;
    if (streaming) {
        chunk.resize(kStreamChunkBytes);
    } else if (auto length = parser->content_length()) {
        if (*length > limit) {
            outcome.result = std::unexpected(too_large());
            co_return outcome;
        }
        body.resize(static_cast<size_t>(*length));
    }
    size_t used = 0;
    while (!parser->is_done()) {
        char* data = nullptr;
        size_t size = 0;
        if (streaming) {
            data = chunk.data();
            size = chunk.size();
        } else {
            if (used == body.size()) {
                if (body.size() >= limit) {
                    outcome.result = std::unexpected(too_large());
                    co_return outcome;
                }
                body.resize(std::min(limit, std::max(body.size() * 2, kStreamChunkBytes)));
            }
            data = body.data() + used;
            size = body.size() - used;
        }
        parser->get().body().data = data;
        parser->get().body().size = size;
        // A streamed body is handed on as soon as any of it arrives (async_read would wait for
        // the buffer to fill); a whole body is read in as few steps as possible.
        ErrorCodeValue read_ec;
        if (streaming) {
            std::tie(read_ec, std::ignore) =
                co_await bhttp::async_read_some(stream, buffer, *parser, kUseTuple);
        } else {
            std::tie(read_ec, std::ignore) =
                co_await bhttp::async_read(stream, buffer, *parser, kUseTuple);
        }
        size_t got = size - parser->get().body().size;
        if (streaming) {
            if (got > 0) {
                Status accepted = call.on_body_chunk(std::string_view(data, got));
                if (!accepted) {
                    // The connection is mid-body: it is closed rather than pooled.
                    outcome.result = std::unexpected(std::move(accepted).error());
                    co_return outcome;
                }
            }
        } else {
            used += got;
        }
        if (read_ec && read_ec != bhttp::error::need_buffer) {
            outcome.result = std::unexpected(TransportError(read_ec, "reading from", call.peer));
            co_return outcome;
        }
    }
    body.resize(used);
    outcome.keep_alive = parser->get().keep_alive();
    co_return outcome;
}

// ---- The plain-http fast path ----------------------------------------------------------------
//
// http:// without a proxy (model servers on loopback or a LAN, and the bench) is served without
// coroutine frames: one PlainExchange object is driven by completion callbacks on its
// connection's strand. While a request waits for its response it holds that object, its
// connection (a bare socket), one socket wait and one timer wait: no read buffer (a buffer is
// taken when the response is readable and given back when the exchange ends), no parser (made
// when the first response byte arrives) and, on a fresh connection, not even the request bytes.
// The behaviour is the contract in http_client.hpp, as for the coroutine path.
namespace {

using PlainHandler = asio::any_completion_handler<void(Result<HttpResponse>)>;

constexpr size_t kPlainReadBytes = 8 * 1024;

// What a plain request needs, built before anything is awaited.
struct PlainCall {
    std::string host;  // an IP literal or a name to resolve
    uint16_t port = 0;
    std::string pool_key;
    std::string peer;  // "host:port", for messages
    std::string text;  // the whole request: head and body
    Deadline deadline = Deadline::Never();
    bool head = false;
    HttpClient::BodyChunkHandler on_body_chunk;  // empty for Send
};

// The request head and body as sent. Same headers as the beast path: Host and User-Agent first
// (a header of that name in `request` replaces them), then the caller's headers,
// Content-Length computed from the body.
Result<std::string> PlainRequestText(const HttpRequest& request, const Url& url,
                                     const std::string& user_agent) {
    if (!IsToken(request.method)) {
        return InvalidArgumentError("http: invalid method \"" + request.method + "\"");
    }
    std::string_view host = {};
    std::string_view agent = user_agent;
    size_t size = request.method.size() + url.target.size() + request.body.size() + 96;
    for (const auto& [name, value] : request.headers) {
        if (!IsToken(name) || HasCrLf(value)) {
            return InvalidArgumentError("http: invalid header \"" + name + "\"");
        }
        if (beast::iequals(name, "host")) host = value;
        if (beast::iequals(name, "user-agent")) agent = value;
        size += name.size() + value.size() + 4;
    }
    std::string default_host;
    if (host.empty()) {
        default_host = HostHeader(url);
        host = default_host;
    }
    std::string text;
    text.reserve(size + host.size() + agent.size());
    text.append(request.method).append(" ").append(url.target).append(" HTTP/1.1\r\nHost: ");
    text.append(host).append("\r\nUser-Agent: ").append(agent).append("\r\n");
    for (const auto& [name, value] : request.headers) {
        if (beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding") ||
            beast::iequals(name, "host") || beast::iequals(name, "user-agent")) {
            continue;
        }
        text.append(name).append(": ").append(value).append("\r\n");
    }
    bool body_method =
        request.method == "POST" || request.method == "PUT" || request.method == "PATCH";
    if (!request.body.empty() || body_method) {
        text.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
    }
    text.append("\r\n").append(request.body);
    return text;
}

class PlainExchange : public std::enable_shared_from_this<PlainExchange> {
  public:
    PlainExchange(std::shared_ptr<HttpClient::Impl> impl, std::unique_ptr<PlainCall> call,
                  std::unique_ptr<PlainConnection> connection, PlainHandler handler,
                  Executor handler_executor)
        : impl_(std::move(impl)),
          call_(std::move(call)),
          connection_(std::move(connection)),
          strand_(connection_->strand),
          timer_(impl_->executor_),
          handler_(std::move(handler)),
          handler_executor_(std::move(handler_executor)) {
        reused_ = connection_->socket.is_open();
    }

    // On the caller's thread, before Begin: the awaiting coroutine's cancellation reaches us
    // (a slot is only ever touched on its owner's thread: cleared in Finish's completion).
    void ConnectCancellation() {
        auto slot = asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.emplace<CancelHandler>(weak_from_this(), strand_);
    }

    // On the strand.
    void Begin() {
        if (!call_->deadline.IsNever()) {
            timer_.expires_at(call_->deadline.time());
            timer_.async_wait(OnStrand([self = shared_from_this()](ErrorCodeValue ec) {
                if (!ec) self->OnDeadline();
            }));
        }
        if (reused_) {
            impl_->reuses_.fetch_add(1, std::memory_order_relaxed);
            Write();
        } else {
            Connect();
        }
    }

  private:
    struct CancelHandler {
        CancelHandler(std::weak_ptr<PlainExchange> e, Executor s)
            : exchange(std::move(e)), strand(std::move(s)) {}
        void operator()(asio::cancellation_type type) {
            if (type == asio::cancellation_type::none) return;
            if (auto self = exchange.lock()) {
                asio::post(strand, [self] { self->OnCancel(); });
            }
        }
        std::weak_ptr<PlainExchange> exchange;
        Executor strand;
    };

    template <typename F>
    asio::executor_binder<std::decay_t<F>, Executor> OnStrand(F&& f) {
        return asio::bind_executor(strand_, std::forward<F>(f));
    }

    void Connect() {
        doing_ = "connecting to";
        ErrorCodeValue ec;
        auto address = asio::ip::make_address(call_->host, ec);
        if (!ec) {
            ConnectTo(tcp::endpoint(address, call_->port));
            return;
        }
        doing_ = "resolving";
        resolver_ = std::make_unique<tcp::resolver>(impl_->executor_);
        resolver_->async_resolve(
            call_->host, std::to_string(call_->port),
            OnStrand([self = shared_from_this()](ErrorCodeValue resolve_ec,
                                                 tcp::resolver::results_type results) {
                if (self->finished_) return;
                self->resolver_.reset();
                if (resolve_ec || results.empty()) {
                    self->Finish(
                        UnavailableError("http: cannot resolve " + self->call_->host + ": " +
                                         (resolve_ec ? resolve_ec.message() : "no addresses")),
                        false);
                    return;
                }
                self->doing_ = "connecting to";
                self->ConnectTo(results.begin()->endpoint());
            }));
    }

    // Connects without waiting for the connection before writing: on loopback and fast links the
    // handshake is done by the time connect() returns, and the request goes out in the same
    // handler (no reactor round trip per new connection). If not, the write waits for it.
    void ConnectTo(tcp::endpoint endpoint) {
        ErrorCodeValue ec;
        connection_->socket.open(endpoint.protocol(), ec);
        if (!ec) connection_->socket.non_blocking(true, ec);
        if (ec) {
            FailConnect(ec);
            return;
        }
        connection_->socket.set_option(tcp::no_delay(true), ec);
        if (::connect(connection_->socket.native_handle(), endpoint.data(),
                      static_cast<socklen_t>(endpoint.size())) != 0 &&
            errno != EINPROGRESS) {
            FailConnect(ErrorCodeValue(errno, boost::system::system_category()));
            return;
        }
        connecting_ = true;
        Write();
    }

    void FailConnect(ErrorCodeValue ec) {
        Error error = TransportError(ec, "connecting to", call_->peer);
        if (error.code() == ErrorCode::kUnavailable) {
            error = Error(ErrorCode::kUnavailable,
                          "http: cannot connect to " + call_->peer + ": " + ec.message());
        }
        Finish(std::unexpected(std::move(error)), false);
    }

    void Established() {
        connecting_ = false;
        doing_ = "sending to";
        impl_->connections_opened_.fetch_add(1, std::memory_order_relaxed);
    }

    void Write() {
        if (!connecting_) doing_ = "sending to";
        impl_->requests_sent_.fetch_add(1, std::memory_order_relaxed);
        written_ = 0;
        WriteSome();
    }

    void WriteSome() {
        ErrorCodeValue ec;
        // Usually the whole request fits the socket buffer at once: no write operation.
        while (!ec && written_ < call_->text.size()) {
            size_t n = connection_->socket.write_some(
                asio::buffer(call_->text.data() + written_, call_->text.size() - written_), ec);
            if (!ec && connecting_) Established();
            written_ += n;
        }
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            if (connecting_) {
                // Still connecting: wait until the socket is writable, then see how it went.
                connection_->socket.async_wait(
                    tcp::socket::wait_write,
                    OnStrand([self = shared_from_this()](ErrorCodeValue wait_ec) {
                        if (self->finished_) return;
                        if (!wait_ec) {
                            int error = 0;
                            socklen_t length = sizeof(error);
                            ::getsockopt(self->connection_->socket.native_handle(), SOL_SOCKET,
                                         SO_ERROR, &error, &length);
                            if (error != 0) {
                                wait_ec = ErrorCodeValue(error, boost::system::system_category());
                            }
                        }
                        if (wait_ec) {
                            self->FailConnect(wait_ec);
                            return;
                        }
                        self->Established();
                        self->WriteSome();
                    }));
                return;
            }
            asio::async_write(
                connection_->socket,
                asio::buffer(call_->text.data() + written_, call_->text.size() - written_),
                OnStrand([self = shared_from_this()](ErrorCodeValue write_ec, size_t) {
                    if (self->finished_) return;
                    if (write_ec) {
                        self->Finish(std::unexpected(
                                         TransportError(write_ec, "sending to", self->call_->peer)),
                                     true);
                        return;
                    }
                    self->Sent();
                }));
            return;
        }
        if (ec) {
            if (connecting_) {
                FailConnect(ec);
            } else {
                Finish(std::unexpected(TransportError(ec, "sending to", call_->peer)), true);
            }
            return;
        }
        Sent();
    }

    void Sent() {
        // The bytes are kept only while a stale-connection retry may need them again.
        if (!reused_ || attempt_ > 0) std::string().swap(call_->text);
        doing_ = "waiting for";
        WaitReadable();
    }

    void WaitReadable() {
        connection_->socket.async_wait(
            tcp::socket::wait_read, OnStrand([self = shared_from_this()](ErrorCodeValue ec) {
                if (self->finished_) return;
                if (ec) {
                    self->Finish(
                        std::unexpected(TransportError(ec, self->doing_, self->call_->peer)),
                        !self->got_bytes_);
                    return;
                }
                self->OnReadable();
            }));
    }

    void OnReadable() {
        for (;;) {
            ErrorCodeValue ec;
            size_t n = connection_->socket.read_some(buffer_.prepare(kPlainReadBytes), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) break;
            if (ec == asio::error::eof) {
                OnEof();
                return;
            }
            if (ec) {
                Finish(std::unexpected(TransportError(ec, doing_, call_->peer)), !got_bytes_);
                return;
            }
            buffer_.commit(n);
            if (n > 0 && !got_bytes_) {
                got_bytes_ = true;
                doing_ = "reading from";
            }
            if (Parse()) return;
        }
        WaitReadable();
    }

    // Feeds the buffered bytes to the parser; true once the exchange has finished.
    bool Parse() {
        while (buffer_.size() > 0) {
            if (!parser_) {
                parser_.emplace();
                parser_->eager(true);
                parser_->header_limit(kHeaderLimit);
                // A streamed 2xx body is not limited; others are (set once the status is known).
                if (!call_->on_body_chunk) {
                    parser_->body_limit(impl_->options_.max_response_body_bytes);
                } else {
                    parser_->body_limit(boost::none);
                }
                if (call_->head) parser_->skip(true);
                header_checked_ = false;
            }
            ErrorCodeValue ec;
            size_t used = parser_->put(buffer_.data(), ec);
            buffer_.consume(used);
            if (ec && ec != bhttp::error::need_more) {
                FailParse(ec);
                return true;
            }
            if (parser_->is_header_done()) {
                int status = parser_->get().result_int();
                if (status / 100 == 1 && status != 101) {
                    parser_.reset();  // an interim response (103 Early Hints...): skipped
                    continue;
                }
                if (!header_checked_ && !CheckHeader(status)) return true;
                if (streaming_ && !Deliver()) return true;
            }
            if (parser_->is_done()) {
                Succeed(buffer_.size() == 0);
                return true;
            }
            if (ec || used == 0) return false;
        }
        return false;
    }

    // Once per response, when its head has been parsed: is the body streamed, is it too large?
    bool CheckHeader(int status) {
        header_checked_ = true;
        if (!call_->on_body_chunk) return true;
        streaming_ = status / 100 == 2;
        if (streaming_) return true;
        const size_t limit = impl_->options_.max_response_body_bytes;
        if (auto length = parser_->content_length(); length && *length > limit) {
            Finish(std::unexpected(TooLarge()), false);
            return false;
        }
        parser_->body_limit(limit);
        return true;
    }

    // Hands the body bytes parsed so far to the stream handler.
    bool Deliver() {
        std::string& body = parser_->get().body();
        if (body.empty()) return true;
        Status accepted = call_->on_body_chunk(body);
        body.clear();
        if (!accepted) {
            // The connection is mid-body: it is closed rather than pooled.
            Finish(std::unexpected(std::move(accepted).error()), false);
            return false;
        }
        return true;
    }

    void OnEof() {
        if (!parser_) {
            // Closed before any response byte: most likely an idle connection the server shut.
            Finish(
                std::unexpected(TransportError(bhttp::error::end_of_stream, doing_, call_->peer)),
                !got_bytes_);
            return;
        }
        ErrorCodeValue ec;
        parser_->put_eof(ec);
        if (ec) {
            FailParse(ec);
            return;
        }
        Succeed(false);
    }

    Error TooLarge() const {
        ErrorDetails details;
        details.reason = "response_too_large";
        details.http_status = parser_ ? parser_->get().result_int() : 0;
        return Error(ErrorCode::kResourceExhausted,
                     "http: response body from " + call_->peer + " exceeds " +
                         std::to_string(impl_->options_.max_response_body_bytes) + " bytes",
                     std::move(details));
    }

    void FailParse(ErrorCodeValue ec) {
        if (ec == bhttp::error::body_limit) {
            Finish(std::unexpected(TooLarge()), false);
            return;
        }
        Finish(std::unexpected(TransportError(ec, doing_, call_->peer)), false);
    }

    void Succeed(bool reusable) {
        auto& message = parser_->get();
        HttpResponse response;
        response.status = message.result_int();
        for (const auto& field : message) {
            response.headers.emplace_back(std::string(field.name_string()),
                                          std::string(field.value()));
        }
        response.body = std::move(message.body());
        bool keep_alive = reusable && message.keep_alive();
        parser_.reset();
        if (keep_alive) {
            timer_.cancel();
            impl_->Release(impl_->plain_idle_, call_->pool_key, std::move(connection_));
        }
        Finish(std::move(response), false);
    }

    void OnDeadline() {
        if (finished_) return;
        Finish(DeadlineExceededError("http: deadline exceeded while " + std::string(doing_) + " " +
                                     call_->peer),
               false);
    }

    void OnCancel() {
        if (finished_) return;
        Finish(CancelledError("http: cancelled while " + std::string(doing_) + " " + call_->peer),
               false);
    }

    // Ends the exchange with `result` (or retries a reused connection that failed before any
    // response byte arrived). `before_response`: nothing of a response was received.
    void Finish(Result<HttpResponse> result, bool before_response) {
        if (!result && reused_ && attempt_ == 0 && before_response &&
            IsTransientFailure(result.error()) && !call_->text.empty()) {
            // The server most likely closed the idle connection as we reused it.
            impl_->stale_retries_.fetch_add(1, std::memory_order_relaxed);
            ErrorCodeValue ignored;
            connection_->socket.close(ignored);
            connection_ = std::make_unique<PlainConnection>(strand_, impl_->executor_);
            attempt_ = 1;
            got_bytes_ = false;
            buffer_.clear();
            Connect();
            return;
        }
        finished_ = true;
        ErrorCodeValue ignored;
        timer_.cancel();
        if (resolver_) resolver_->cancel();
        if (connection_) {
            connection_->socket.close(ignored);  // not reusable: closed, never pooled
            connection_.reset();
        }
        buffer_ = beast::flat_buffer();
        std::string().swap(call_->text);
        asio::post(handler_executor_,
                   [handler = std::move(handler_), result = std::move(result)]() mutable {
                       auto slot = asio::get_associated_cancellation_slot(handler);
                       if (slot.is_connected()) slot.clear();
                       std::move(handler)(std::move(result));
                   });
    }

    std::shared_ptr<HttpClient::Impl> impl_;
    std::unique_ptr<PlainCall> call_;
    std::unique_ptr<PlainConnection> connection_;
    Executor strand_;
    asio::steady_timer timer_;
    std::unique_ptr<tcp::resolver> resolver_;
    beast::flat_buffer buffer_;
    std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
    PlainHandler handler_;
    Executor handler_executor_;
    const char* doing_ = "sending to";
    size_t written_ = 0;
    int attempt_ = 0;
    bool reused_ = false;
    bool got_bytes_ = false;
    bool connecting_ = false;
    bool header_checked_ = false;
    bool streaming_ = false;
    bool finished_ = false;
};

struct PlainInitiation {
    std::shared_ptr<HttpClient::Impl> impl;

    template <typename Handler>
    void operator()(Handler&& handler, std::unique_ptr<PlainCall> call) {
        Executor handler_executor = asio::get_associated_executor(handler, impl->executor_);
        std::unique_ptr<PlainConnection> connection =
            impl->AcquireIdle(impl->plain_idle_, call->pool_key);
        if (!connection) {
            // One thread runs the executor: its handlers never run concurrently, no strand needed.
            Executor on = impl->options_.single_threaded_executor
                              ? impl->executor_
                              : Executor(asio::make_strand(impl->executor_));
            connection = std::make_unique<PlainConnection>(std::move(on), impl->executor_);
        }
        Executor strand = connection->strand;
        auto exchange = std::make_shared<PlainExchange>(
            std::move(impl), std::move(call), std::move(connection),
            PlainHandler(std::forward<Handler>(handler)), std::move(handler_executor));
        exchange->ConnectCancellation();
        asio::dispatch(strand, [exchange = std::move(exchange)] { exchange->Begin(); });
    }
};

Awaitable<Result<HttpResponse>> ReadyResponse(Result<HttpResponse> result) {
    co_return result;
}

// Awaits a PlainExchange. Failures are values: Asio's throw for an operation begun after the
// awaiting coroutine was cancelled becomes kCancelled here.
Awaitable<Result<HttpResponse>> SendPlain(std::shared_ptr<HttpClient::Impl> impl,
                                          std::unique_ptr<PlainCall> call) {
    std::string peer = call->peer;
    try {
        PlainInitiation initiation{std::move(impl)};
        auto operation =
            asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<HttpResponse>)>(
                std::move(initiation), asio::use_awaitable, std::move(call));
        co_return co_await std::move(operation);
    } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) {
            co_return CancelledError("http: request to " + peer + " cancelled");
        }
        co_return InternalError("http: request to " + peer + " failed: " + e.what());
    }
}

}  // namespace

// The fast path's request, or nullptr when `request` needs the general path (https, a proxy).
Result<std::unique_ptr<PlainCall>> HttpClient::Impl::PreparePlain(const HttpRequest& request,
                                                                  Deadline deadline) const {
    auto url = ParseUrl(request.url);
    if (!url || url->tls()) return nullptr;
    auto proxy = proxy_.ProxyFor(*url);
    if (!proxy || *proxy) return nullptr;
    auto call = std::make_unique<PlainCall>();
    STROWGER_ASSIGN_OR_RETURN(call->text, PlainRequestText(request, *url, options_.user_agent));
    call->peer = url->Authority();
    call->pool_key = "http://" + call->peer;
    call->host = std::move(url->host);
    call->port = url->port;
    call->deadline = deadline;
    call->head = request.method == "HEAD";
    if (deadline.Expired()) {
        return DeadlineExceededError("http: deadline exceeded before sending to " + call->peer);
    }
    return call;
}

HttpClient::HttpClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() = default;

Result<std::shared_ptr<HttpClient>> HttpClient::Create(Executor executor,
                                                       HttpClientOptions options) {
    ProxyConfig proxy = options.proxy ? *options.proxy : ProxyConfig::FromEnvironment();
    bool explicit_ca = options.extra_ca_file.has_value();
    std::string ca_file =
        explicit_ca ? *options.extra_ca_file : std::string(Getenv("SSL_CERT_FILE"));
    std::shared_ptr<Impl> impl;
    try {
        impl = std::make_shared<Impl>(std::move(executor), std::move(options), std::move(proxy));
    } catch (const std::exception& e) {
        return InternalError(std::string("http: cannot create TLS context: ") + e.what());
    }
    if (explicit_ca) {
        STROWGER_TRY(impl->SetUpTls(ca_file, true));
        impl->MarkTlsReady();
    } else {
        impl->DeferTls(std::move(ca_file));
    }
    return std::shared_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

namespace {

// --log-level debug: each exchange's request line and outcome (never a body or a header: the
// log's redaction covers keys it knows, and a body may hold anything). Only when debug is on,
// so the usual path keeps no extra coroutine frame.
Awaitable<Result<HttpResponse>> Logged(Awaitable<Result<HttpResponse>> exchange, std::string method,
                                       std::string url, size_t body_bytes, bool streaming) {
    auto started = std::chrono::steady_clock::now();
    spdlog::debug("http: {} {} ({} bytes{})", method, url, body_bytes,
                  streaming ? ", streamed answer" : "");
    auto response = co_await std::move(exchange);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    if (response) {
        spdlog::debug("http: {} {} -> {} ({} bytes, {} ms)", method, url, response->status,
                      response->body.size(), ms);
    } else {
        spdlog::debug("http: {} {} -> error after {} ms: {}", method, url, ms,
                      response.error().message());
    }
    co_return response;
}

}  // namespace

Awaitable<Result<HttpResponse>> HttpClient::Send(HttpRequest request, Deadline deadline) {
    const bool debug = spdlog::should_log(spdlog::level::debug);
    std::string method = debug ? request.method : std::string();
    std::string url = debug ? request.url : std::string();
    const size_t bytes = request.body.size();
    auto exchange = [&]() -> Awaitable<Result<HttpResponse>> {
        auto plain = impl_->PreparePlain(request, deadline);
        if (!plain) return ReadyResponse(std::unexpected(std::move(plain).error()));
        if (*plain) return SendPlain(impl_, std::move(*plain));
        return Impl::Run(impl_, std::move(request), deadline, nullptr);
    }();
    if (!debug) return exchange;
    return Logged(std::move(exchange), std::move(method), std::move(url), bytes, false);
}

Awaitable<Result<HttpResponse>> HttpClient::SendStreaming(HttpRequest request, Deadline deadline,
                                                          BodyChunkHandler on_body_chunk) {
    const bool debug = spdlog::should_log(spdlog::level::debug);
    std::string method = debug ? request.method : std::string();
    std::string url = debug ? request.url : std::string();
    const size_t bytes = request.body.size();
    auto exchange = [&]() -> Awaitable<Result<HttpResponse>> {
        auto plain = impl_->PreparePlain(request, deadline);
        if (!plain) return ReadyResponse(std::unexpected(std::move(plain).error()));
        if (*plain) {
            (*plain)->on_body_chunk = std::move(on_body_chunk);
            return SendPlain(impl_, std::move(*plain));
        }
        return Impl::Run(impl_, std::move(request), deadline, std::move(on_body_chunk));
    }();
    if (!debug) return exchange;
    return Logged(std::move(exchange), std::move(method), std::move(url), bytes, true);
}

HttpClientStats HttpClient::stats() const {
    HttpClientStats stats;
    stats.connections_opened = impl_->connections_opened_.load(std::memory_order_relaxed);
    stats.requests_sent = impl_->requests_sent_.load(std::memory_order_relaxed);
    stats.reuses = impl_->reuses_.load(std::memory_order_relaxed);
    stats.stale_retries = impl_->stale_retries_.load(std::memory_order_relaxed);
    return stats;
}

size_t HttpClient::idle_connections() const {
    std::lock_guard lock(impl_->mutex_);
    size_t total = 0;
    for (const auto& [key, list] : impl_->idle_) total += list.size();
    for (const auto& [key, list] : impl_->plain_idle_) total += list.size();
    return total;
}

void HttpClient::CloseIdleConnections() {
    std::map<std::string, std::deque<std::unique_ptr<Connection>>> closing;
    std::map<std::string, std::deque<std::unique_ptr<PlainConnection>>> closing_plain;
    std::lock_guard lock(impl_->mutex_);
    closing.swap(impl_->idle_);
    closing_plain.swap(impl_->plain_idle_);
}

const Executor& HttpClient::executor() const {
    return impl_->executor_;
}

}  // namespace strowger::http
