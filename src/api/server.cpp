// The one translation unit of the API that includes Beast (it is compiled once, in core's
// asio_impl.cpp; its headers still cost ~15 s here).
#include "api/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <charconv>
#include <list>

#include <spdlog/spdlog.h>

namespace strowger::api {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

void AppendNumber(std::string& out, uint64_t value) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    out.append(digits, static_cast<size_t>(end - digits));
}

// The status line and headers of a response (without the terminating empty line).
std::string Head(const Response& response, bool keep_alive, bool chunked) {
    std::string head;
    head.reserve(160 + response.body.size() / 64);
    head += "HTTP/1.1 ";
    AppendNumber(head, static_cast<uint64_t>(response.status));
    head += ' ';
    head += ReasonPhrase(response.status);
    head += "\r\nServer: strowger\r\n";
    if (!response.content_type.empty()) {
        head += "Content-Type: ";
        head += response.content_type;
        head += "\r\n";
    }
    if (chunked) {
        head += "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n";
    } else {
        head += "Content-Length: ";
        AppendNumber(head, response.body.size());
        head += "\r\n";
    }
    if (!keep_alive) head += "Connection: close\r\n";
    for (const auto& [name, value] : response.headers) {
        head += name;
        head += ": ";
        head += value;
        head += "\r\n";
    }
    return head;
}

Response LimitResponse(int status, std::string_view title, std::string_view detail) {
    Response response;
    response.status = status;
    response.content_type = "application/problem+json";
    // Built by hand: the server does not depend on the problem helpers of the routes.
    response.body = "{\"type\":\"urn:strowger:problem:limit\",\"title\":\"";
    response.body += title;
    response.body += "\",\"status\":";
    AppendNumber(response.body, static_cast<uint64_t>(status));
    response.body += ",\"detail\":\"";
    response.body += detail;
    response.body += "\"}";
    return response;
}

}  // namespace

class HttpServer::Impl : public std::enable_shared_from_this<HttpServer::Impl> {
  public:
    Impl(Executor executor, Handler handler, ServerLimits limits)
        : executor_(executor), acceptor_(executor), handler_(std::move(handler)), limits_(limits) {}

    // One client connection.
    struct Connection : std::enable_shared_from_this<Connection> {
        explicit Connection(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
        tcp::socket socket;
        // The deadline of the operation in progress: when it passes, the socket's operations
        // are cancelled and `expired` says why (the socket stays open for a 408).
        asio::steady_timer timer;
        bool expired = false;
        asio::cancellation_signal cancel;  // ends a streamed response
        enum class State { kIdle, kReading, kHandling, kStreaming } state = State::kIdle;
        bool stream_done = false;

        void Arm(std::chrono::milliseconds timeout) {
            expired = false;
            timer.expires_after(timeout);
            timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
                auto self = weak.lock();
                if (ec || !self) return;
                self->expired = true;
                self->socket.cancel(ec);
            });
        }
        void Disarm() { timer.cancel(); }
    };

    Status Listen(const std::string& host, uint16_t port);
    Awaitable<void> AcceptLoop();
    Awaitable<void> Session(std::shared_ptr<Connection> connection);
    Awaitable<bool> Send(Connection& connection, const Response& response, bool keep_alive);
    Awaitable<void> Stream(std::shared_ptr<Connection> connection, Response response);
    Awaitable<void> Refuse(tcp::socket socket);
    void StopAccepting();
    void CloseAll();

    Executor executor_;
    tcp::acceptor acceptor_;
    Handler handler_;
    ServerLimits limits_;
    ServerStats stats_;
    int64_t in_flight_ = 0;
    bool stopping_ = false;
    std::list<std::weak_ptr<Connection>> connections_;
};

class ChunkWriter final : public StreamWriter {
  public:
    ChunkWriter(HttpServer::Impl& server, HttpServer::Impl::Connection& connection)
        : server_(server), connection_(connection) {}

    Awaitable<bool> Write(std::string data) override {
        if (failed_ || data.empty()) co_return !failed_;
        char size[24];
        int length = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
        std::array<asio::const_buffer, 3> buffers = {
            asio::buffer(size, static_cast<size_t>(length)), asio::buffer(data),
            asio::buffer("\r\n", 2)};
        // A client that does not read its stream is cut off rather than buffered for.
        connection_.Arm(server_.limits_.write_timeout);
        auto [ec, written] = co_await asio::async_write(connection_.socket, buffers, kUseTuple);
        connection_.Disarm();
        if (ec) failed_ = true;
        co_return !failed_;
    }

    bool failed() const { return failed_; }

  private:
    HttpServer::Impl& server_;
    HttpServer::Impl::Connection& connection_;
    bool failed_ = false;
};

Status HttpServer::Impl::Listen(const std::string& host, uint16_t port) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec) return InvalidArgumentError("--listen: \"" + host + "\" is not an IP address");
    tcp::endpoint endpoint(address, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        return UnavailableError("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                                ec.message());
    }
    return OkStatus();
}

Awaitable<void> HttpServer::Impl::AcceptLoop() {
    auto self = shared_from_this();
    asio::steady_timer backoff(executor_);
    while (!stopping_) {
        auto [ec, socket] = co_await acceptor_.async_accept(kUseTuple);
        if (stopping_ || ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
        if (ec) {
            // Typically EMFILE: let connections finish instead of spinning.
            backoff.expires_after(std::chrono::milliseconds(20));
            co_await backoff.async_wait(kUseTuple);
            continue;
        }
        ++stats_.connections_accepted;
        if (stats_.connections_open >= static_cast<int64_t>(limits_.max_connections)) {
            ++stats_.connections_refused;
            asio::co_spawn(executor_, Refuse(std::move(socket)), asio::detached);
            continue;
        }
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto connection = std::make_shared<Connection>(std::move(socket));
        if (connections_.size() > 64 &&
            connections_.size() > 2 * static_cast<size_t>(stats_.connections_open)) {
            connections_.remove_if([](const auto& weak) { return weak.expired(); });
        }
        connections_.push_back(connection);
        ++stats_.connections_open;
        asio::co_spawn(executor_, Session(connection),
                       asio::bind_cancellation_slot(connection->cancel.slot(), asio::detached));
    }
}

Awaitable<void> HttpServer::Impl::Refuse(tcp::socket socket) {
    auto self = shared_from_this();
    Response response = LimitResponse(429, "Too Many Connections",
                                      "the server has as many connections as it takes");
    response.headers.emplace_back("Retry-After", "1");
    std::string head = Head(response, false, false) + "\r\n";
    std::array<asio::const_buffer, 2> buffers = {asio::buffer(head), asio::buffer(response.body)};
    asio::steady_timer deadline(executor_);
    deadline.expires_after(std::chrono::seconds(1));
    deadline.async_wait([&socket](boost::system::error_code ec) {
        if (!ec) socket.close(ec);
    });
    co_await asio::async_write(socket, buffers, kUseTuple);
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    deadline.cancel();
    socket.close(ignored);
}

Awaitable<bool> HttpServer::Impl::Send(Connection& connection, const Response& response,
                                       bool keep_alive) {
    std::string head = Head(response, keep_alive, false);
    head += "\r\n";
    std::array<asio::const_buffer, 2> buffers = {asio::buffer(head), asio::buffer(response.body)};
    connection.Arm(limits_.write_timeout);
    auto [ec, written] = co_await asio::async_write(connection.socket, buffers, kUseTuple);
    connection.Disarm();
    co_return !ec;
}

Awaitable<void> HttpServer::Impl::Stream(std::shared_ptr<Connection> connection,
                                         Response response) {
    ++stats_.streams_open;
    connection->state = Connection::State::kStreaming;
    connection->stream_done = false;
    ChunkWriter writer(*this, *connection);
    std::string head = Head(response, false, true) + "\r\n";
    connection->Arm(limits_.write_timeout);
    auto [ec, written] =
        co_await asio::async_write(connection->socket, asio::buffer(head), kUseTuple);
    connection->Disarm();
    if (!ec) {
        // A client that goes away (or sends anything) ends the stream: a read watches for it.
        auto watch = std::make_shared<std::array<char, 256>>();
        connection->socket.async_read_some(
            asio::buffer(*watch), [connection, watch](boost::system::error_code, size_t) {
                if (!connection->stream_done) {
                    connection->cancel.emit(asio::cancellation_type::terminal);
                }
            });
        co_await response.stream(writer);
        connection->stream_done = true;
        if (!writer.failed()) {
            connection->Arm(std::chrono::milliseconds(1000));
            co_await asio::async_write(connection->socket, asio::buffer("0\r\n\r\n", 5), kUseTuple);
            connection->Disarm();
        }
    }
    --stats_.streams_open;
}

Awaitable<void> HttpServer::Impl::Session(std::shared_ptr<Connection> connection) {
    auto self = shared_from_this();
    co_await asio::this_coro::throw_if_cancelled(false);
    struct Closed {
        Impl* impl;
        ~Closed() { --impl->stats_.connections_open; }
    } closed{this};
    std::string remote;
    {
        boost::system::error_code ec;
        auto endpoint = connection->socket.remote_endpoint(ec);
        if (!ec) remote = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    }
    beast::flat_buffer buffer;
    bool first = true;
    while (!stopping_) {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(static_cast<uint32_t>(limits_.max_header_bytes));
        parser.body_limit(limits_.max_body_bytes);
        // Waiting for a request: the idle timeout until its first byte, then the header
        // timeout for all of it (a header trickled in byte by byte is cut off).
        connection->state = Connection::State::kIdle;
        if (buffer.size() == 0) {
            connection->Arm(first ? limits_.header_timeout : limits_.idle_timeout);
            auto [ec, n] =
                co_await connection->socket.async_read_some(buffer.prepare(4096), kUseTuple);
            connection->Disarm();
            if (ec) break;  // closed, idle too long, or the server is draining
            buffer.commit(n);
        }
        first = false;
        connection->state = Connection::State::kReading;
        connection->Arm(limits_.header_timeout);
        auto [head_ec, head_read] =
            co_await bhttp::async_read_header(connection->socket, buffer, parser, kUseTuple);
        connection->Disarm();
        Response refusal;
        if (head_ec == bhttp::error::header_limit) {
            refusal = LimitResponse(431, "Request Header Fields Too Large",
                                    "the request header exceeds the server's limit");
        } else if (head_ec == bhttp::error::body_limit) {
            refusal = LimitResponse(413, "Content Too Large",
                                    "the request body exceeds the server's limit");
        } else if (head_ec && connection->expired) {
            refusal =
                LimitResponse(408, "Request Timeout", "the request header did not arrive in time");
        } else if (head_ec == bhttp::error::end_of_stream || head_ec == asio::error::eof ||
                   head_ec == asio::error::operation_aborted ||
                   head_ec == asio::error::connection_reset) {
            break;
        } else if (head_ec) {
            spdlog::debug("bad request from {}: {}", remote, head_ec.message());
            refusal = LimitResponse(400, "Bad Request", "the request is not valid HTTP/1.1");
        } else if (parser.content_length() && *parser.content_length() > limits_.max_body_bytes) {
            refusal = LimitResponse(413, "Content Too Large",
                                    "the request body exceeds the server's limit");
        }
        if (refusal.status == 200) {
            if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
                static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
                co_await asio::async_write(connection->socket, asio::buffer(kContinue), kUseTuple);
            }
            connection->Arm(limits_.body_timeout);
            auto [body_ec, body_read] =
                co_await bhttp::async_read(connection->socket, buffer, parser, kUseTuple);
            connection->Disarm();
            if (body_ec == bhttp::error::body_limit) {
                refusal = LimitResponse(413, "Content Too Large",
                                        "the request body exceeds the server's limit");
            } else if (body_ec && connection->expired) {
                refusal = LimitResponse(408, "Request Timeout",
                                        "the request body did not arrive in time");
            } else if (body_ec) {
                break;
            }
        }
        if (refusal.status != 200) {
            ++stats_.requests_refused;
            (void)co_await Send(*connection, refusal, false);
            break;
        }
        auto& message = parser.get();
        Request request;
        request.method = std::string(message.method_string());
        request.target = std::string(message.target());
        request.remote = remote;
        if (!SplitTarget(request.target, request.path, request.query)) {
            ++stats_.requests_refused;
            (void)co_await Send(
                *connection,
                LimitResponse(400, "Bad Request", "the request target has a bad percent-escape"),
                false);
            break;
        }
        for (const auto& field : message) {
            std::string name(field.name_string());
            for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            request.headers.emplace_back(std::move(name), std::string(field.value()));
        }
        const bool keep_alive = message.keep_alive();
        request.body = std::move(message.body());
        ++stats_.requests;
        connection->state = Connection::State::kHandling;
        ++in_flight_;
        Response response = co_await handler_(std::move(request));
        --in_flight_;
        if (response.stream) {
            if (!stopping_) co_await Stream(connection, std::move(response));
            break;
        }
        bool again = keep_alive && !stopping_;
        if (!co_await Send(*connection, response, again) || !again) break;
    }
    boost::system::error_code ignored;
    connection->socket.shutdown(tcp::socket::shutdown_send, ignored);
    connection->socket.close(ignored);
    connection->timer.cancel();
}

void HttpServer::Impl::StopAccepting() {
    if (stopping_) return;
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto it = connections_.begin(); it != connections_.end();) {
        auto connection = it->lock();
        if (!connection) {
            it = connections_.erase(it);
            continue;
        }
        switch (connection->state) {
            case Connection::State::kIdle:
                connection->socket.cancel(ignored);
                break;
            case Connection::State::kStreaming:
                connection->cancel.emit(asio::cancellation_type::terminal);
                break;
            default:
                break;  // finishes this request, then closes (stopping_)
        }
        ++it;
    }
}

void HttpServer::Impl::CloseAll() {
    StopAccepting();
    for (auto& weak : connections_) {
        if (auto connection = weak.lock()) {
            boost::system::error_code ignored;
            connection->socket.close(ignored);
        }
    }
    connections_.clear();
}

Result<std::unique_ptr<HttpServer>> HttpServer::Listen(Executor executor, const std::string& host,
                                                       uint16_t port, Handler handler,
                                                       ServerLimits limits) {
    auto impl = std::make_shared<Impl>(executor, std::move(handler), limits);
    STROWGER_TRY(impl->Listen(host, port));
    asio::co_spawn(executor, impl->AcceptLoop(), asio::detached);
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
    impl_->CloseAll();
}

uint16_t HttpServer::port() const {
    boost::system::error_code ec;
    auto endpoint = impl_->acceptor_.local_endpoint(ec);
    return ec ? 0 : endpoint.port();
}

void HttpServer::StopAccepting() {
    impl_->StopAccepting();
}

void HttpServer::CloseAll() {
    impl_->CloseAll();
}

ServerStats HttpServer::stats() const {
    return impl_->stats_;
}

int64_t HttpServer::requests_in_flight() const {
    return impl_->in_flight_;
}

}  // namespace strowger::api
