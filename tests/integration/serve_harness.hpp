// A real `strowger serve` for the integration tests: started in a CliEnvironment on port 0
// with its own store, and a small blocking HTTP/1.1 client (one connection per request, raw
// sockets) plus an event-stream reader, so a test sees exactly what a client would.
//
// Thread-safety: none; one test thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/json.hpp"
#include "integration/harness.hpp"

namespace strowger::testing {

struct HttpReply {
    int status = 0;  // 0: no answer (connection failed or closed early)
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    json::value json;  // the body parsed, null if it is not JSON

    std::string Header(const std::string& name) const;
    // `json` as an object (empty if it is not one).
    const json::object& object() const;
    std::string Describe() const;  // "404 {...}" for failure messages
};

// Sends one request to 127.0.0.1:`port` (Connection: close) and reads the whole reply.
HttpReply HttpCall(uint16_t port, const std::string& method, const std::string& target,
                   const std::string& body = "",
                   const std::vector<std::pair<std::string, std::string>>& headers = {},
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

// One Server-Sent Event.
struct StreamEvent {
    std::string id;
    std::string event;
    std::string data;
};

// A GET with Accept: text/event-stream, read event by event.
class EventStream {
  public:
    EventStream(uint16_t port, const std::string& target,
                const std::vector<std::pair<std::string, std::string>>& headers);
    ~EventStream();
    EventStream(const EventStream&) = delete;
    EventStream& operator=(const EventStream&) = delete;

    int status() const { return status_; }
    // The next event (comments skipped); nullopt if the stream ended or nothing came in time.
    std::optional<StreamEvent> Next(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Closes the connection (as a client that goes away).
    void Close();

  private:
    bool Fill(std::chrono::milliseconds timeout);  // reads more body; false at the end
    int fd_ = -1;
    int status_ = 0;
    bool chunked_ = false;
    std::string raw_;   // bytes read, not yet decoded
    std::string body_;  // decoded body, not yet parsed into events
    bool ended_ = false;
};

// `strowger serve --listen 127.0.0.1:0 ...` in `env`, with the mock model for openai: models.
class ServeProcess {
  public:
    // Starts the daemon with `args` after `serve --listen 127.0.0.1:0`, and waits until it
    // serves (a test failure if it does not within 20 s).
    ServeProcess(CliEnvironment& env, std::vector<std::string> args = {});
    // SIGKILL if still running.
    ~ServeProcess() = default;

    bool ok() const { return port_ != 0; }
    uint16_t port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    // The admin token: printed at the first start; else read from the token file.
    const std::string& admin_token() const { return admin_token_; }
    ChildProcess& process() { return *process_; }

    // A request with `token` ("" = none).
    HttpReply Call(const std::string& method, const std::string& target,
                   const std::string& body = "", const std::string& token = "",
                   std::vector<std::pair<std::string, std::string>> headers = {});
    // With the admin token.
    HttpReply Admin(const std::string& method, const std::string& target,
                    const std::string& body = "");
    // Makes a token of `role` named `name` through the API; its text.
    std::string MakeToken(const std::string& name, const std::string& role);

  private:
    std::unique_ptr<ChildProcess> process_;
    uint16_t port_ = 0;
    std::string admin_token_;
};

}  // namespace strowger::testing
