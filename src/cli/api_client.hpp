// The client side of the daemon's API for the CLI's `--server` commands: requests with the
// token, problem details turned into errors, and event streams followed with reconnects.
//
// Where the server and token come from: --server URL, else $STROWGER_SERVER; the token from
// $STROWGER_TOKEN, else the local token file (api::DefaultTokenFile).
//
// Thread-safety: one thread; each call runs the client's own io_context until it completes.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <memory>
#include <string>

#include "core/json.hpp"
#include "core/result.hpp"
#include "providers/http/http_client.hpp"
#include "providers/http/sse.hpp"

namespace strowger::cli {

class ApiClient {
  public:
    // kInvalidArgument for a bad URL; kUnauthenticated if no token can be found.
    static Result<std::unique_ptr<ApiClient>> Connect(const std::string& server_url);
    ~ApiClient();

    struct Reply {
        int status = 0;
        std::string body;
        json::value json;  // the body parsed (null if it is not JSON)
    };
    // Sends a request and reads the reply. A transport failure is an error; any HTTP status
    // is a reply (see Check).
    Result<Reply> Call(const std::string& method, const std::string& path,
                       const std::string& body = "", const http::Headers& headers = {});
    // Call, then an error for a status >= 400 (the problem's detail as the message, the code
    // from the status: 404 kNotFound, 409 kFailedPrecondition, 401 kUnauthenticated, ...).
    Result<Reply> Checked(const std::string& method, const std::string& path,
                          const std::string& body = "", const http::Headers& headers = {});

    // Follows an event stream (GET `path`, text/event-stream), reconnecting with
    // Last-Event-ID when the connection drops, until `on_event` returns false or the server
    // ends the stream with an `end` event. `on_event` gets every event (deltas too).
    Status Follow(const std::string& path,
                  const std::function<bool(const http::SseEvent&)>& on_event);

    const std::string& server() const { return server_; }
    // The loop calls run on (a live display redraws on it while a stream is read).
    Executor executor() { return io_.get_executor(); }

  private:
    ApiClient() : io_(1) {}
    template <typename T>
    T Await(Awaitable<T> awaitable);

    asio::io_context io_;
    std::shared_ptr<http::HttpClient> http_;
    std::string server_;  // without a trailing '/'
    std::string token_;
};

// Maps an HTTP status to the error code the CLI reports (exit codes follow the code).
ErrorCode CodeForStatus(int status);
// The server URL from --server or $STROWGER_SERVER ("" if neither is set).
std::string ServerUrl(const std::string& flag);

}  // namespace strowger::cli
