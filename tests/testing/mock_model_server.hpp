// A loopback model server for tests and benchmarks: OpenAI-compatible and Anthropic-compatible.
//
// Serves POST /v1/chat/completions (OpenAI), POST /v1/messages (Anthropic Messages API) and
// GET /v1/models (HTTP/1.1 keep-alive, optionally TLS) on its own thread and io_context, so a
// test can drive a client on another. Every connection is a coroutine and latency is a timer, so
// one thread holds tens of thousands of waiting connections.
//
// A request is answered by the first rule that matches it (X-Strowger-Node header and/or a
// substring of the last user message; a rule may be limited to `times` uses), else by the
// default reply: Options::reply, or "echo: " + the first 64 bytes of the last user message.
// Rules can return any status and body, a Retry-After header, tool calls, a truncated body
// (Content-Length larger than what is sent, then close) or hang until the client goes away.
// Error bodies follow the API that was called (OpenAI {"error": {...}}; Anthropic
// {"type": "error", "error": {"type": "overloaded_error", ...}}).
//
// Requests with `"stream": true` get a Server-Sent Events stream in chunked transfer encoding:
// OpenAI chat.completion.chunk events (content deltas, tool-call deltas by index, a usage chunk
// when stream_options.include_usage is set, then `data: [DONE]`) or Anthropic events
// (message_start, content_block_start/delta/stop with text_delta and input_json_delta, ping,
// message_delta, message_stop). MockBehavior controls how the stream is cut into HTTP chunks
// (any byte size, with a pause between them), can replace it verbatim, or cut the connection
// mid-stream.
//
// A client that goes away while its reply is delayed by latency is noticed when the reply is
// written; one that goes away from a hanging request is noticed at once.
//
// Requests in absolute form (as sent to an HTTP proxy) are served as if sent directly, so the
// server can stand in for a proxy in tests.
//
// Thread-safety: all public methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <thread>

#include "core/asio.hpp"
#include "core/result.hpp"

namespace strowger::testing {

struct MockToolCall {
    std::string id;  // "" = "call_<request number>_<index>"
    std::string name;
    std::string arguments;  // JSON text, sent as a string as OpenAI does
};

// What to answer.
struct MockBehavior {
    int status = 200;
    // Sent verbatim when non-empty. Otherwise a 2xx gets a generated chat.completion and any
    // other status a generated {"error": {...}} object.
    std::string body;
    std::string reply;                         // content of a generated reply; "" = default reply
    std::vector<MockToolCall> tool_calls;      // generated reply carries these (content null)
    std::string finish_reason;                 // "" = "stop", or "tool_calls" with tool calls
    std::optional<int64_t> prompt_tokens;      // default: ceil(message bytes / 4)
    std::optional<int64_t> completion_tokens;  // default: ceil(reply bytes / 4)
    std::string error_message;                 // generated error body's message ("" = a default)
    std::string retry_after;                   // Retry-After header value, if non-empty
    std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
    std::optional<int64_t> latency_ms;                         // overrides Options::latency_ms
    bool truncate = false;     // declare a Content-Length 64 bytes over the body sent, close
    bool hang = false;         // never answer; close when the client goes away
    bool close_after = false;  // close the connection after answering, without saying so
    bool drop = false;         // close the connection at once, without answering

    // Streaming requests ("stream": true) with a 2xx status:
    std::vector<std::string> stream_deltas;  // content deltas; default: the reply, word by word
    std::string stream_body;                 // the event stream, verbatim (replaces the generated)
    size_t stream_chunk_bytes = 0;           // HTTP chunk size; 0 = one chunk per event
    int64_t stream_chunk_delay_ms = 0;       // pause before each chunk after the first
    // Close the connection after this many chunks, without the terminating chunk (-1 = never).
    int64_t stream_cut_after_chunks = -1;
};

struct MockRule {
    std::string node;             // X-Strowger-Node must equal this, if non-empty
    std::string prompt_contains;  // the last user message must contain this, if non-empty
    int64_t times = -1;           // match at most this many requests; -1 = unlimited
    MockBehavior behavior;
};

struct RecordedRequest {
    std::string method;
    std::string target;  // as received (absolute form when sent to a proxy)
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    // First header named `name` (ASCII case-insensitive), or "".
    std::string Header(std::string_view name) const;
};

class MockModelServer {
  public:
    struct Options {
        std::string host = "127.0.0.1";
        uint16_t port = 0;  // 0 = ephemeral
        int64_t latency_ms = 0;
        std::optional<std::string> reply;  // fixed default reply text
        // PEM files; when both are set the server speaks HTTPS only.
        std::string tls_cert_file;
        std::string tls_key_file;
        // Requests kept for recorded_requests() (the first N); 0 for benchmarks.
        size_t max_recorded_requests = 1000;
    };

    // Binds, listens and starts the server thread. kUnavailable if the address cannot be bound,
    // kInvalidArgument if the TLS files cannot be loaded.
    static Result<std::unique_ptr<MockModelServer>> Start(Options options);

    // Stops accepting, drops every connection and joins the thread. Idempotent.
    void Stop();
    ~MockModelServer();

    MockModelServer(const MockModelServer&) = delete;
    MockModelServer& operator=(const MockModelServer&) = delete;

    uint16_t port() const;
    // "http://127.0.0.1:<port>/v1" (https:// when serving TLS): an OpenAI base URL.
    std::string base_url() const;
    // "http://127.0.0.1:<port>": an Anthropic base URL.
    std::string anthropic_base_url() const;

    void AddRule(MockRule rule);
    void ClearRules();
    // Replaces Options::latency_ms for later requests.
    void SetLatency(std::chrono::milliseconds latency);

    int64_t requests() const;
    int64_t requests_for_node(std::string_view node) const;
    int64_t connections_accepted() const;
    int64_t open_connections() const;
    // Requests read and not yet fully answered, now and at most so far (a hanging or delayed
    // request counts until its answer is written or its client goes away).
    int64_t active_requests() const;
    int64_t max_active_requests() const;
    std::vector<RecordedRequest> recorded_requests() const;

    // Block the calling thread (never the server's) until the condition holds; false on timeout.
    bool WaitForRequests(int64_t count, std::chrono::milliseconds timeout) const;
    bool WaitForOpenConnectionsAtMost(int64_t count, std::chrono::milliseconds timeout) const;

    class Impl;

  private:
    explicit MockModelServer(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;
};

// An io_context running on its own thread, for the client side of a test. The destructor stops
// it and joins the thread.
class IoThread {
  public:
    IoThread();
    ~IoThread();
    IoThread(const IoThread&) = delete;
    IoThread& operator=(const IoThread&) = delete;

    Executor executor() { return io_.get_executor(); }

  private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
};

// A self-signed certificate and key for TLS tests.
struct TestCertificate {
    std::string cert_file;  // PEM; trust it as a CA
    std::string key_file;   // PEM
};

// Writes an EC P-256 self-signed certificate valid for `dns_names` and 127.0.0.1 / ::1 into
// `directory`. kInternal if OpenSSL fails.
Result<TestCertificate> WriteSelfSignedCertificate(const std::string& directory,
                                                   const std::vector<std::string>& dns_names);

}  // namespace strowger::testing
