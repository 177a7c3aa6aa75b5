// The HTTP/1.1 server of `strowger serve` (Boost.Beast): keep-alive connections, each a
// coroutine on the server's executor, handing every request to one handler.
//
// Limits against bad clients (each answered with a 4xx, then the connection is closed; the
// server carries on):
//   * header bigger than max_header_bytes: 431; body bigger than max_body_bytes: 413 (refused
//     from its Content-Length, before it is read);
//   * a request whose header (or body) has not fully arrived within header_timeout
//     (body_timeout) of its first byte: 408 (slowloris); an idle keep-alive connection is
//     closed after idle_timeout without a word;
//   * more than max_connections open: the new connection gets 429 and is closed;
//   * a response a client does not read within write_timeout: the connection is closed.
//
// Thread-safety: all methods must be called on the server's executor (one thread runs it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/http.hpp"
#include "core/asio.hpp"
#include "core/result.hpp"

namespace strowger::api {

struct ServerLimits {
    size_t max_header_bytes = 16 * 1024;
    size_t max_body_bytes = 4 * 1024 * 1024;
    std::chrono::milliseconds header_timeout{10'000};
    std::chrono::milliseconds body_timeout{30'000};
    std::chrono::milliseconds idle_timeout{60'000};
    std::chrono::milliseconds write_timeout{30'000};
    size_t max_connections = 4096;
};

struct ServerStats {
    int64_t connections_accepted = 0;
    int64_t connections_open = 0;
    int64_t connections_refused = 0;  // over max_connections
    int64_t requests = 0;
    int64_t requests_refused = 0;  // over a limit (408, 413, 431, 400 unparsable)
    int64_t streams_open = 0;      // streamed responses in progress
};

class HttpServer {
  public:
    using Handler = std::function<Awaitable<Response>(Request)>;

    // Binds host:port (port 0: any free port) and starts accepting on `executor`.
    // kUnavailable if the address cannot be bound, kInvalidArgument if it is not an address.
    static Result<std::unique_ptr<HttpServer>> Listen(Executor executor, const std::string& host,
                                                      uint16_t port, Handler handler,
                                                      ServerLimits limits = {});
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    uint16_t port() const;
    // Stops accepting; connections finish the request they are serving and close; idle ones
    // and streamed responses are closed now.
    void StopAccepting();
    // Closes every connection now.
    void CloseAll();
    ServerStats stats() const;
    // Connections whose handler has not returned yet.
    int64_t requests_in_flight() const;

    class Impl;

  private:
    explicit HttpServer(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

}  // namespace strowger::api
