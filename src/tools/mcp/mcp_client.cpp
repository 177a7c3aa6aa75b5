// Just over 1,000 lines: the MCP client's process supervision, JSON-RPC framing and tool
// calls share one private session type; split it when it grows further.
#include "tools/mcp/mcp_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "core/json.hpp"
#include "core/log.hpp"

namespace strowger::tools::mcp {
namespace {

using ErrorCodeValue = boost::system::error_code;

// A bigger JSON-RPC message in either direction fails the request it belongs to.
constexpr size_t kMaxMessageBytes = size_t{8} << 20;
// We ask for the newest revision we speak and accept the older ones a server may answer with.
constexpr std::string_view kProtocolVersion = "2025-06-18";
constexpr std::array<std::string_view, 3> kSupportedVersions = {"2025-06-18", "2025-03-26",
                                                                "2024-11-05"};
constexpr int kMethodNotFound = -32601;
// ListTools gives up on a server whose cursors never end.
constexpr int kMaxToolPages = 1000;
// How much of the server's stderr an error message quotes.
constexpr size_t kStderrTailBytes = 2000;

asio::steady_timer::time_point TimerExpiry(Deadline deadline) {
    return deadline.IsNever() ? asio::steady_timer::time_point::max() : deadline.time();
}

std::string Quoted(std::string_view server) {
    return "MCP server '" + std::string(server) + "'";
}

// JSON-RPC and MCP error codes to canonical codes.
ErrorCode CodeForJsonRpcError(int64_t code) {
    switch (code) {
        case -32700:  // parse error: our message was garbled on the way
        case -32600:  // invalid request
        case -32603:  // internal error
            return ErrorCode::kInternal;
        case -32601:
            return ErrorCode::kUnimplemented;
        case -32602:
            return ErrorCode::kInvalidArgument;
        case -32002:
            return ErrorCode::kNotFound;  // MCP: resource not found
        default:
            return ErrorCode::kUnknown;
    }
}

std::optional<int64_t> ParseRequestId(const json::value& id) {
    if (id.is_int64()) return id.get_int64();
    if (id.is_uint64()) return static_cast<int64_t>(id.get_uint64());
    if (id.is_string()) {
        // Some servers echo ids as strings; ours are always integers.
        const json::string& text = id.get_string();
        int64_t value = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc() && end == text.data() + text.size()) return value;
    }
    return std::nullopt;
}

// Finds the top-level "id" of a JSON-RPC message too large to keep, and whether it has a
// top-level "method" (then it is the server's request, not a response), from its bytes as they
// stream past. Only structure is tracked, not validity: a garbled message may yield no id.
class OversizeScanner {
  public:
    void Feed(std::string_view bytes) {
        for (char c : bytes) Step(c);
    }
    // Call at the end of the message.
    void Finish() {
        if (depth_ == 1) EndValue();
    }
    std::optional<int64_t> id() const { return id_; }
    bool has_method() const { return has_method_; }

  private:
    enum class State { kExpectKey, kInKey, kAfterKey, kInValue };

    void Step(char c) {
        if (in_string_) {
            if (escape_) {
                escape_ = false;
            } else if (c == '\\') {
                escape_ = true;
            } else if (c == '"') {
                in_string_ = false;
                if (depth_ == 1 && state_ == State::kInKey) state_ = State::kAfterKey;
                return;
            }
            Capture(c);
            return;
        }
        switch (c) {
            case '"':
                in_string_ = true;
                if (depth_ == 1 && state_ == State::kExpectKey) {
                    state_ = State::kInKey;
                    key_.clear();
                }
                return;
            case '{':
            case '[':
                ++depth_;
                if (depth_ == 1) state_ = State::kExpectKey;
                return;
            case '}':
            case ']':
                if (depth_ == 1) EndValue();
                --depth_;
                return;
            case ':':
                if (depth_ == 1 && state_ == State::kAfterKey) {
                    state_ = State::kInValue;
                    value_.clear();
                    if (key_ == "method") has_method_ = true;
                }
                return;
            case ',':
                if (depth_ == 1) {
                    EndValue();
                    state_ = State::kExpectKey;
                }
                return;
            default:
                Capture(c);
        }
    }

    void Capture(char c) {
        if (depth_ != 1) return;
        if (state_ == State::kInKey && key_.size() < 16) key_.push_back(c);
        if (state_ == State::kInValue && key_ == "id" && value_.size() < 32) value_.push_back(c);
    }

    void EndValue() {
        if (state_ != State::kInValue || key_ != "id") return;
        size_t begin = value_.find_first_not_of(" \t\r");
        size_t end = value_.find_last_not_of(" \t\r");
        if (begin == std::string::npos) return;
        std::string_view text = std::string_view(value_).substr(begin, end - begin + 1);
        int64_t value = 0;
        auto [stop, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc() && stop == text.data() + text.size()) id_ = value;
        state_ = State::kExpectKey;
    }

    int depth_ = 0;
    bool in_string_ = false;
    bool escape_ = false;
    State state_ = State::kExpectKey;
    std::string key_;
    std::string value_;
    std::optional<int64_t> id_;
    bool has_method_ = false;
};

// The scrubbed environment a server starts from: locale, time zone, home and PATH (servers
// are often scripts that find their interpreter through it), nothing else of ours.
std::map<std::string, std::string> ServerEnvironment(const McpServerSpec& spec) {
    std::map<std::string, std::string> env;
    for (const char* name :
         {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME"}) {
        if (const char* value = std::getenv(name)) env[name] = value;
    }
    if (!env.contains("PATH")) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
    for (const auto& [name, value] : spec.env) env[name] = value;
    return env;
}

sandbox::ProcessSpec MakeProcessSpec(const McpServerSpec& spec) {
    sandbox::ProcessSpec process;
    process.argv.push_back(spec.command);
    process.argv.insert(process.argv.end(), spec.args.begin(), spec.args.end());
    process.env = ServerEnvironment(spec);
    process.working_dir = spec.working_dir;
    process.sandboxed = spec.sandboxed;
    process.network = spec.network;
    // A server lives as long as the run: CPU time only grows, and JavaScript, JVM and Go
    // runtimes reserve far more address space than they use (node's heap cannot grow under the
    // default 1 GiB RLIMIT_AS). Process count, open files and file size stay limited.
    process.limits.cpu_seconds = 0;
    process.limits.memory_bytes = 0;
    process.writable_dir = spec.working_dir;
    // The sandbox shows only the system directories. A server installed elsewhere (an npm
    // package in node_modules, a script given as an argument) needs its files visible: the
    // directory of every absolute path to a file among command and arguments, where a symlink
    // points, and the whole node_modules tree a file is in (its dependencies).
    auto add = [&process](const std::filesystem::path& dir) {
        auto& paths = process.read_only_paths;
        if (std::find(paths.begin(), paths.end(), dir) == paths.end()) paths.push_back(dir);
    };
    std::vector<std::string> words = {spec.command};
    words.insert(words.end(), spec.args.begin(), spec.args.end());
    for (const std::string& word : words) {
        std::filesystem::path path(word);
        std::error_code ec;
        if (!path.is_absolute() || !std::filesystem::is_regular_file(path, ec)) continue;
        add(path.parent_path());
        std::filesystem::path resolved = std::filesystem::canonical(path, ec);
        if (ec) continue;
        add(resolved.parent_path());
        std::filesystem::path outermost_modules;
        for (std::filesystem::path dir = resolved.parent_path();
             dir.has_relative_path() && dir != dir.parent_path(); dir = dir.parent_path()) {
            if (dir.filename() == "node_modules") outermost_modules = dir;
        }
        if (!outermost_modules.empty()) add(outermost_modules);
    }
    return process;
}

// Runs `work` on `strand` and turns the exceptions Asio uses for cancellation into errors.
template <typename T>
Awaitable<Result<T>> OnStrand(Executor strand, Awaitable<Result<T>> work, std::string what) {
    try {
        co_return co_await asio::co_spawn(strand, std::move(work), asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted)
            co_return CancelledError(what + " cancelled");
        co_return InternalError(what + " failed: " + e.what());
    } catch (const std::exception& e) {
        co_return InternalError(what + " failed: " + e.what());
    }
}

// One running server and its JSON-RPC session. Everything but construction happens on
// `strand_`: the reader and writer coroutines, requests waiting for their responses, Close.
class McpConnection : public std::enable_shared_from_this<McpConnection> {
  public:
    McpConnection(Executor strand, std::string server, std::unique_ptr<sandbox::Process> process)
        : strand_(std::move(strand)),
          server_(std::move(server)),
          process_(std::move(process)),
          writer_wake_(strand_),
          closed_signal_(strand_, asio::steady_timer::time_point::max()) {}

    const Executor& strand() const { return strand_; }
    const std::string& server() const { return server_; }
    // Neither closed nor seeing its server gone (which closes it shortly).
    bool alive() const { return !closed_ && !gone_; }
    // The tail of the server's stderr, trimmed, capped and redacted, for messages.
    std::string StderrTail() const;

    // Starts the reader and writer coroutines.
    void Start() {
        asio::co_spawn(strand_, ReadLoop(shared_from_this()), asio::detached);
        asio::co_spawn(strand_, WriteLoop(shared_from_this()), asio::detached);
    }

    // Sends a request and waits for its response's result (or error) until `deadline`.
    static Awaitable<Result<json::value>> Request(std::shared_ptr<McpConnection> self,
                                                  std::string method, json::object params,
                                                  Deadline deadline);

    // initialize, then notifications/initialized.
    static Awaitable<Result<json::value>> Initialize(std::shared_ptr<McpConnection> self,
                                                     Deadline deadline);

    // Fails every pending request with `pending_error` and later ones with `later_error`, and
    // kills the server. Idempotent.
    void Close(const Error& pending_error, const Error& later_error);

    // Returns once Close has run (at once if it has).
    static Awaitable<void> WaitClosed(std::shared_ptr<McpConnection> self);

    // Close, from any thread.
    void Shutdown() {
        asio::dispatch(strand_, [self = shared_from_this()] {
            Error error(ErrorCode::kUnavailable, Quoted(self->server_) + " was shut down");
            self->Close(error, error);
        });
    }

  private:
    struct Pending {
        explicit Pending(const Executor& executor, std::string request_method)
            : timer(executor), method(std::move(request_method)) {}
        asio::steady_timer timer;  // expires at the deadline; cancelled when the outcome is set
        std::optional<Result<json::value>> outcome;
        std::string method;
    };

    void Send(std::string text) {
        text.push_back('\n');
        outbox_.push_back(std::move(text));
        writer_wake_.cancel();
    }
    void Notify(std::string_view method, json::object params);

    static Awaitable<void> ReadLoop(std::shared_ptr<McpConnection> self);
    static Awaitable<void> WriteLoop(std::shared_ptr<McpConnection> self);
    // The server's stdout or stdin closed: report its exit with what it said on stderr.
    static Awaitable<void> ServerGone(std::shared_ptr<McpConnection> self);

    void Consume(std::string_view data);
    void HandleLine(std::string_view line);
    void HandleMessage(const json::object& message);
    void HandleServerRequest(const json::value& id, std::string_view method);
    void FinishOversize();

    const Executor strand_;
    const std::string server_;
    const std::unique_ptr<sandbox::Process> process_;

    int64_t next_id_ = 1;
    std::unordered_map<int64_t, std::shared_ptr<Pending>> pending_;
    std::deque<std::string> outbox_;
    asio::steady_timer writer_wake_;           // the writer waits on it while the outbox is empty
    std::string line_;                         // the incomplete line read so far
    std::optional<OversizeScanner> oversize_;  // set while skipping a message over the limit
    bool closed_ = false;
    bool gone_ = false;
    std::optional<Error> close_error_;
    asio::steady_timer closed_signal_;  // cancelled by Close, for WaitClosed
};

Awaitable<Result<json::value>> McpConnection::Request(std::shared_ptr<McpConnection> self,
                                                      std::string method, json::object params,
                                                      Deadline deadline) {
    if (self->closed_) co_return std::unexpected(*self->close_error_);
    if (deadline.Expired()) {
        co_return DeadlineExceededError(Quoted(self->server_) + ": deadline exceeded before " +
                                        method);
    }
    int64_t id = self->next_id_++;
    json::object message;
    message["jsonrpc"] = "2.0";
    message["id"] = id;
    message["method"] = method;
    if (!params.empty()) message["params"] = std::move(params);
    std::string text = json::serialize(message);
    if (text.size() > kMaxMessageBytes) {
        co_return ResourceExhaustedError(Quoted(self->server_) + ": " + method + " request of " +
                                             std::to_string(text.size()) +
                                             " bytes is over the 8 MiB message limit",
                                         "mcp_message_too_large");
    }
    auto pending = std::make_shared<Pending>(self->strand_, method);
    self->pending_.emplace(id, pending);
    self->Send(std::move(text));

    pending->timer.expires_at(TimerExpiry(deadline));
    auto [ec] = co_await pending->timer.async_wait(kUseTuple);
    if (pending->outcome) co_return std::move(*pending->outcome);
    // No answer in time: forget the request (a late response is dropped) and tell the server.
    self->pending_.erase(id);
    json::object cancel;
    cancel["requestId"] = id;
    bool cancelled = ec == asio::error::operation_aborted;
    cancel["reason"] = cancelled ? "cancelled" : "deadline exceeded";
    self->Notify("notifications/cancelled", std::move(cancel));
    if (cancelled) co_return CancelledError(Quoted(self->server_) + ": " + method + " cancelled");
    co_return DeadlineExceededError(Quoted(self->server_) + ": no answer to " + method +
                                    " before the deadline");
}

Awaitable<Result<json::value>> McpConnection::Initialize(std::shared_ptr<McpConnection> self,
                                                         Deadline deadline) {
    json::object client_info;
    client_info["name"] = "strowger";
    client_info["version"] = "0.1.0";
    json::object params;
    params["protocolVersion"] = kProtocolVersion;
    params["capabilities"] = json::object();
    params["clientInfo"] = std::move(client_info);
    STROWGER_CO_ASSIGN_OR_RETURN(json::value result,
                                 co_await Request(self, "initialize", std::move(params), deadline));
    if (!result.is_object()) {
        co_return InternalError(Quoted(self->server_) + ": initialize result is not an object");
    }
    std::string_view version = JsonString(result.get_object(), "protocolVersion");
    if (std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) ==
        kSupportedVersions.end()) {
        co_return FailedPreconditionError(Quoted(self->server_) + " speaks MCP protocol version '" +
                                          std::string(version) + "'; supported: 2025-06-18, " +
                                          "2025-03-26, 2024-11-05");
    }
    self->Notify("notifications/initialized", json::object());
    co_return result;
}

void McpConnection::Notify(std::string_view method, json::object params) {
    if (closed_) return;
    json::object message;
    message["jsonrpc"] = "2.0";
    message["method"] = method;
    if (!params.empty()) message["params"] = std::move(params);
    Send(json::serialize(message));
}

void McpConnection::Close(const Error& pending_error, const Error& later_error) {
    if (closed_) return;
    closed_ = true;
    close_error_ = later_error;
    for (auto& [id, pending] : pending_) {
        pending->outcome = std::unexpected(pending_error);
        pending->timer.cancel();
    }
    pending_.clear();
    outbox_.clear();
    writer_wake_.cancel();
    closed_signal_.cancel();
    process_->Kill();
}

Awaitable<void> McpConnection::WaitClosed(std::shared_ptr<McpConnection> self) {
    if (self->closed_) co_return;
    co_await self->closed_signal_.async_wait(kUseTuple);
}

Awaitable<void> McpConnection::ReadLoop(std::shared_ptr<McpConnection> self) {
    try {
        while (!self->closed_) {
            Result<std::string> chunk = co_await self->process_->Read();
            if (self->closed_) break;
            if (!chunk) {
                co_await ServerGone(self);
                break;
            }
            self->Consume(*chunk);
        }
    } catch (const std::exception& e) {
        Error error(ErrorCode::kInternal,
                    Quoted(self->server_) + ": reading its output failed: " + e.what());
        self->Close(error, error);
    }
}

Awaitable<void> McpConnection::WriteLoop(std::shared_ptr<McpConnection> self) {
    try {
        while (!self->closed_) {
            if (self->outbox_.empty()) {
                self->writer_wake_.expires_at(asio::steady_timer::time_point::max());
                co_await self->writer_wake_.async_wait(kUseTuple);
                continue;
            }
            // Everything queued goes out in one write.
            std::string batch;
            while (!self->outbox_.empty()) {
                batch += self->outbox_.front();
                self->outbox_.pop_front();
            }
            Status written = co_await self->process_->Write(std::move(batch));
            if (!written) {
                co_await ServerGone(self);
                break;
            }
        }
    } catch (const std::exception& e) {
        Error error(ErrorCode::kInternal,
                    Quoted(self->server_) + ": writing its input failed: " + e.what());
        self->Close(error, error);
    }
}

Awaitable<void> McpConnection::ServerGone(std::shared_ptr<McpConnection> self) {
    if (self->closed_ || self->gone_) co_return;
    self->gone_ = true;
    // The process's last words on stderr may still be on their way; give it a moment to be
    // reaped so the message can quote them.
    asio::steady_timer timer(self->strand_);
    for (int i = 0; i < 50 && !self->process_->Exited() && !self->closed_; ++i) {
        timer.expires_after(std::chrono::milliseconds(10));
        co_await timer.async_wait(kUseTuple);
    }
    Error error(ErrorCode::kUnavailable, Quoted(self->server_) + " exited: " + self->StderrTail());
    self->Close(error, error);
}

std::string McpConnection::StderrTail() const {
    std::string tail = process_->StderrTail();
    size_t end = tail.find_last_not_of(" \t\r\n");
    tail.erase(end == std::string::npos ? 0 : end + 1);
    if (tail.size() > kStderrTailBytes) tail = "..." + tail.substr(tail.size() - kStderrTailBytes);
    if (tail.empty()) return "(nothing on stderr)";
    tail = ToValidUtf8(tail);
    return HaveSecrets() ? Redact(tail) : tail;
}

void McpConnection::Consume(std::string_view data) {
    while (!data.empty() && !closed_) {
        size_t newline = data.find('\n');
        std::string_view part = data.substr(0, newline);
        if (oversize_) {
            oversize_->Feed(part);
        } else if (line_.size() + part.size() > kMaxMessageBytes) {
            // Too big to keep: skip to the end of the message, looking only for its id.
            oversize_.emplace();
            oversize_->Feed(line_);
            oversize_->Feed(part);
            line_.clear();
            line_.shrink_to_fit();
        } else {
            line_.append(part);
        }
        if (newline == std::string_view::npos) return;
        data.remove_prefix(newline + 1);
        if (oversize_) {
            FinishOversize();
        } else {
            std::string line = std::move(line_);
            line_.clear();
            HandleLine(line);
        }
    }
}

void McpConnection::FinishOversize() {
    OversizeScanner scanner = std::move(*oversize_);
    oversize_.reset();
    scanner.Finish();
    auto it = scanner.id() && !scanner.has_method() ? pending_.find(*scanner.id()) : pending_.end();
    if (it == pending_.end()) {
        spdlog::warn("{}: dropped a message over the 8 MiB limit", Quoted(server_));
        return;
    }
    std::shared_ptr<Pending> pending = it->second;
    pending_.erase(it);
    pending->outcome = ResourceExhaustedError(
        Quoted(server_) + ": the response to " + pending->method + " is over the 8 MiB limit",
        "mcp_message_too_large");
    pending->timer.cancel();
}

void McpConnection::HandleLine(std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
        line.remove_suffix(1);
    }
    if (line.empty()) return;
    Result<json::value> parsed = ParseJson(line);
    if (!parsed || !(parsed->is_object() || parsed->is_array())) {
        // Stray output (a banner, a debug print) must not break the session.
        spdlog::warn("{}: ignoring a line that is not JSON-RPC: {}", Quoted(server_),
                     ToValidUtf8(line.substr(0, 200)));
        return;
    }
    if (parsed->is_object()) {
        HandleMessage(parsed->get_object());
        return;
    }
    for (const json::value& element : parsed->get_array()) {  // a batch (2025-03-26)
        if (element.is_object()) HandleMessage(element.get_object());
    }
}

void McpConnection::HandleMessage(const json::object& message) {
    const json::value* id = message.if_contains("id");
    bool has_id = id != nullptr && !id->is_null();
    if (const json::value* method = message.if_contains("method")) {
        std::string_view name = method->is_string() ? std::string_view(method->get_string()) : "";
        if (has_id) {
            HandleServerRequest(*id, name);
        } else {
            // Progress, log messages, list_changed: nothing a tool call needs.
            spdlog::debug("{}: notification {}", Quoted(server_), name);
        }
        return;
    }
    std::optional<int64_t> request_id = has_id ? ParseRequestId(*id) : std::nullopt;
    auto it = request_id ? pending_.find(*request_id) : pending_.end();
    if (it == pending_.end()) {
        spdlog::debug("{}: dropping a response to no waiting request (late or unknown id)",
                      Quoted(server_));
        return;
    }
    std::shared_ptr<Pending> pending = it->second;
    pending_.erase(it);
    if (const json::value* error = message.if_contains("error")) {
        int64_t code = 0;
        std::string text = "(no message)";
        if (error->is_object()) {
            code = JsonInt(error->get_object(), "code");
            text = std::string(JsonString(error->get_object(), "message", text));
        }
        ErrorDetails details;
        details.reason = "mcp_error_" + std::to_string(code);
        pending->outcome = MakeError(CodeForJsonRpcError(code),
                                     Quoted(server_) + ": " + pending->method + " failed: " + text +
                                         " (JSON-RPC error " + std::to_string(code) + ")",
                                     std::move(details));
    } else if (const json::value* result = message.if_contains("result")) {
        pending->outcome = *result;
    } else {
        pending->outcome = InternalError(Quoted(server_) + ": the response to " + pending->method +
                                         " has neither result nor error");
    }
    pending->timer.cancel();
}

void McpConnection::HandleServerRequest(const json::value& id, std::string_view method) {
    json::object reply;
    reply["jsonrpc"] = "2.0";
    reply["id"] = id;
    if (method == "ping") {
        reply["result"] = json::object();
    } else {
        // We declare no client capabilities (sampling, roots, elicitation).
        json::object error;
        error["code"] = kMethodNotFound;
        error["message"] = "Method not found: " + std::string(method);
        reply["error"] = std::move(error);
    }
    if (!closed_) Send(json::serialize(reply));
}

// Text for the model from a tools/call result's content blocks.
std::string RenderContent(const json::object& result) {
    std::string text;
    const json::array* content = JsonArray(result, "content");
    if (content != nullptr) {
        for (const json::value& block : *content) {
            if (!block.is_object()) continue;
            const json::object& item = block.get_object();
            std::string_view type = JsonString(item, "type");
            std::string rendered;
            if (type == "text") {
                rendered = JsonString(item, "text");
            } else if (type == "image" || type == "audio") {
                rendered = "[" + std::string(type) + ": " +
                           std::string(JsonString(item, "mimeType", "unknown type")) + "]";
            } else if (type == "resource") {
                const json::object* resource = JsonObject(item, "resource");
                std::string_view uri = resource ? JsonString(*resource, "uri") : "";
                rendered = "[resource: " + std::string(uri) + "]";
            } else if (type == "resource_link") {
                rendered = "[resource: " + std::string(JsonString(item, "uri")) + "]";
            } else {
                rendered = "[" + std::string(type) + " content]";
            }
            if (!text.empty()) text.push_back('\n');
            text += rendered;
        }
    }
    if (content == nullptr || content->empty()) {
        if (const json::value* structured = result.if_contains("structuredContent")) {
            text = CompactJson(*structured);
        }
    }
    return text;
}

Awaitable<Result<std::vector<McpToolInfo>>> ListToolsOnStrand(
    std::shared_ptr<McpConnection> connection, Deadline deadline) {
    std::vector<McpToolInfo> tools;
    std::string cursor;
    for (int page = 0; page < kMaxToolPages; ++page) {
        json::object params;
        if (!cursor.empty()) params["cursor"] = cursor;
        STROWGER_CO_ASSIGN_OR_RETURN(
            json::value result,
            co_await McpConnection::Request(connection, "tools/list", std::move(params), deadline));
        if (!result.is_object()) {
            co_return InternalError(Quoted(connection->server()) +
                                    ": tools/list result is not an object");
        }
        const json::object& object = result.get_object();
        if (const json::array* list = JsonArray(object, "tools")) {
            for (const json::value& entry : *list) {
                if (!entry.is_object()) continue;
                const json::object& tool = entry.get_object();
                McpToolInfo info;
                info.name = JsonString(tool, "name");
                if (info.name.empty()) continue;
                info.description = JsonString(tool, "description");
                const json::value* schema = tool.if_contains("inputSchema");
                info.input_schema = schema != nullptr && schema->is_object()
                                        ? CompactJson(*schema)
                                        : std::string(R"({"type":"object"})");
                tools.push_back(std::move(info));
            }
        }
        std::string next(JsonString(object, "nextCursor"));
        if (next.empty()) co_return tools;
        if (next == cursor) {
            co_return InternalError(Quoted(connection->server()) +
                                    ": tools/list returned the same nextCursor twice");
        }
        cursor = std::move(next);
    }
    co_return InternalError(Quoted(connection->server()) + ": tools/list has over " +
                            std::to_string(kMaxToolPages) + " pages");
}

Awaitable<Result<ToolResult>> CallToolOnStrand(std::shared_ptr<McpConnection> connection,
                                               std::string tool, json::object arguments,
                                               std::string idempotency_key, Deadline deadline) {
    json::object params;
    params["name"] = tool;
    params["arguments"] = std::move(arguments);
    if (!idempotency_key.empty()) {
        json::object meta;
        meta["strowger/idempotency_key"] = idempotency_key;
        meta["idempotencyKey"] = idempotency_key;
        params["_meta"] = std::move(meta);
    }
    STROWGER_CO_ASSIGN_OR_RETURN(
        json::value result,
        co_await McpConnection::Request(connection, "tools/call", std::move(params), deadline));
    if (!result.is_object()) {
        co_return InternalError(Quoted(connection->server()) + ": tools/call result for '" + tool +
                                "' is not an object");
    }
    ToolResult tool_result;
    tool_result.content = RenderContent(result.get_object());
    tool_result.is_error = JsonBool(result.get_object(), "isError");
    co_return tool_result;
}

// Starts the server's process and its session's reader and writer (not the handshake).
Result<std::shared_ptr<McpConnection>> Launch(const Executor& strand, const McpServerSpec& spec) {
    Result<std::unique_ptr<sandbox::Process>> process =
        spec.start_process ? spec.start_process(strand, MakeProcessSpec(spec))
                           : sandbox::StartProcess(strand, MakeProcessSpec(spec));
    if (!process) return std::unexpected(process.error().WithPrefix(Quoted(spec.name) + ": "));
    auto connection = std::make_shared<McpConnection>(strand, spec.name, std::move(*process));
    connection->Start();
    return connection;
}

// "60s", or "1500ms" when not whole seconds.
std::string FormatWindow(std::chrono::milliseconds window) {
    if (window.count() % 1000 == 0) return std::to_string(window.count() / 1000) + "s";
    return std::to_string(window.count()) + "ms";
}

// One server across its processes: the session of the newest one, the restart in progress and
// when the recent restarts were. Everything but construction, Shutdown and the tool list
// happens on strand_, which all the server's sessions share.
class McpServer : public std::enable_shared_from_this<McpServer> {
  public:
    McpServer(Executor strand, McpServerSpec spec, std::shared_ptr<McpConnection> session)
        : strand_(std::move(strand)), spec_(std::move(spec)), session_(std::move(session)) {}

    const Executor& strand() const { return strand_; }
    const McpServerSpec& spec() const { return spec_; }

    // A live session: the current one or, when its server has exited, that of the restarted
    // server (joining the restart in progress or starting one), waiting until `deadline`.
    static Awaitable<Result<std::shared_ptr<McpConnection>>> Session(
        std::shared_ptr<McpServer> self, Deadline deadline);

    void SetTools(std::vector<McpToolInfo> tools) {
        std::lock_guard lock(tools_mutex_);
        tools_ = std::move(tools);
    }
    std::vector<McpToolInfo> Tools() const {
        std::lock_guard lock(tools_mutex_);
        return tools_;
    }

    // From any thread: no restart from now on; the server (or the one starting) is killed.
    void Shutdown() {
        shut_down_ = true;
        asio::dispatch(strand_, [self = shared_from_this()] {
            if (self->session_) self->session_->Shutdown();
            if (self->restart_ && self->restart_->connection) {
                self->restart_->connection->Shutdown();
            }
        });
    }

  private:
    struct Restart {
        std::shared_ptr<McpConnection> connection;  // set once the new process runs
        std::optional<Result<std::shared_ptr<McpConnection>>> outcome;
        std::vector<std::shared_ptr<asio::steady_timer>> waiters;  // cancelled at the outcome
    };

    // Runs DoRestart and hands its outcome to every call waiting for it.
    static Awaitable<void> RunRestart(std::shared_ptr<McpServer> self,
                                      std::shared_ptr<Restart> restart);
    // Applies the restart limit, starts the server, shakes hands and lists its tools.
    static Awaitable<Result<std::shared_ptr<McpConnection>>> DoRestart(
        std::shared_ptr<McpServer> self, std::shared_ptr<Restart> restart);

    Error ShutDownError() const {
        return Error(ErrorCode::kUnavailable, Quoted(spec_.name) + " was shut down");
    }
    const Clock& clock() const { return spec_.clock != nullptr ? *spec_.clock : Clock::Real(); }

    const Executor strand_;
    const McpServerSpec spec_;
    std::atomic<bool> shut_down_ = false;
    std::shared_ptr<McpConnection> session_;  // the newest process's, alive or not
    std::string start_failure_;               // why the last restart started no process
    std::shared_ptr<Restart> restart_;        // the restart in progress
    std::deque<SteadyTime> restart_times_;    // the restarts within the window, oldest first
    mutable std::mutex tools_mutex_;
    std::vector<McpToolInfo> tools_;  // GUARDED_BY(tools_mutex_)
};

Awaitable<Result<std::shared_ptr<McpConnection>>> McpServer::Session(
    std::shared_ptr<McpServer> self, Deadline deadline) {
    if (self->shut_down_) co_return std::unexpected(self->ShutDownError());
    if (self->session_ && self->session_->alive()) co_return self->session_;
    std::shared_ptr<Restart> restart = self->restart_;
    if (!restart) {
        restart = std::make_shared<Restart>();
        self->restart_ = restart;
        asio::co_spawn(self->strand_, RunRestart(self, restart), asio::detached);
    }
    // (A refused restart may have finished already if co_spawn ran it inline.)
    if (restart->outcome) co_return *restart->outcome;
    auto waiter = std::make_shared<asio::steady_timer>(self->strand_, TimerExpiry(deadline));
    restart->waiters.push_back(waiter);
    auto [ec] = co_await waiter->async_wait(kUseTuple);
    if (restart->outcome) co_return *restart->outcome;
    std::erase(restart->waiters, waiter);
    if (ec == asio::error::operation_aborted) {
        co_return CancelledError(Quoted(self->spec_.name) +
                                 ": cancelled while waiting for the server to restart");
    }
    co_return DeadlineExceededError(Quoted(self->spec_.name) +
                                    ": the server did not restart before the deadline");
}

Awaitable<void> McpServer::RunRestart(std::shared_ptr<McpServer> self,
                                      std::shared_ptr<Restart> restart) {
    Result<std::shared_ptr<McpConnection>> outcome;
    try {
        auto restarted = co_await DoRestart(self, restart);
        outcome = std::move(restarted);
    } catch (const std::exception& e) {
        outcome = InternalError(Quoted(self->spec_.name) + ": restarting failed: " + e.what());
        if (restart->connection) {
            restart->connection->Shutdown();
            self->session_ = restart->connection;
        }
    }
    restart->outcome = std::move(outcome);
    if (self->restart_ == restart) self->restart_.reset();
    for (const auto& waiter : restart->waiters) waiter->cancel();
    restart->waiters.clear();
}

Awaitable<Result<std::shared_ptr<McpConnection>>> McpServer::DoRestart(
    std::shared_ptr<McpServer> self, std::shared_ptr<Restart> restart) {
    const std::string server = Quoted(self->spec_.name);
    std::shared_ptr<McpConnection> old = self->session_;
    // A session closes shortly after it sees its server gone; its stderr is complete then.
    if (old) co_await McpConnection::WaitClosed(old);
    if (self->shut_down_) co_return std::unexpected(self->ShutDownError());

    const std::chrono::milliseconds window = self->spec_.restart_window;
    const SteadyTime now = self->clock().SteadyNow();
    auto& times = self->restart_times_;
    while (!times.empty() && now - times.front() >= window) times.pop_front();
    if (times.size() >= static_cast<size_t>(kMcpMaxRestarts)) {
        std::string why = old ? old->StderrTail() : self->start_failure_;
        co_return UnavailableError(server + " exited " + std::to_string(times.size() + 1) +
                                   " times in " + FormatWindow(window) +
                                   "; not restarting: " + why);
    }
    times.push_back(now);
    spdlog::warn("{} exited; restarting (restart {} of {} in {})", server, times.size(),
                 kMcpMaxRestarts, FormatWindow(window));

    const Deadline deadline = Deadline::After(kMcpRestartTimeout);
    Result<std::shared_ptr<McpConnection>> launched = Launch(self->strand_, self->spec_);
    if (!launched) {
        self->session_.reset();
        self->start_failure_ = launched.error().message();
        co_return std::unexpected(std::move(launched).error());
    }
    std::shared_ptr<McpConnection> connection = *launched;
    restart->connection = connection;
    Result<json::value> initialized = co_await McpConnection::Initialize(connection, deadline);
    Result<std::vector<McpToolInfo>> tools;
    if (initialized) {
        auto listed = co_await ListToolsOnStrand(connection, deadline);
        tools = std::move(listed);
    }
    // Current from now on, even if dead: its stderr explains a refusal to restart it again.
    self->session_ = connection;
    if (!initialized || !tools) {
        Error error = initialized ? tools.error() : initialized.error();
        connection->Shutdown();
        co_return std::unexpected(std::move(error));
    }
    if (self->shut_down_) {
        connection->Shutdown();
        co_return std::unexpected(self->ShutDownError());
    }
    self->SetTools(std::move(*tools));
    co_return connection;
}

Awaitable<Result<std::vector<McpToolInfo>>> ListToolsOnServer(std::shared_ptr<McpServer> server,
                                                              Deadline deadline) {
    STROWGER_CO_ASSIGN_OR_RETURN(std::shared_ptr<McpConnection> session,
                                 co_await McpServer::Session(server, deadline));
    STROWGER_CO_ASSIGN_OR_RETURN(std::vector<McpToolInfo> tools,
                                 co_await ListToolsOnStrand(session, deadline));
    server->SetTools(tools);
    co_return tools;
}

Awaitable<Result<ToolResult>> CallToolOnServer(std::shared_ptr<McpServer> server, std::string tool,
                                               json::object arguments, std::string idempotency_key,
                                               Deadline deadline) {
    STROWGER_CO_ASSIGN_OR_RETURN(std::shared_ptr<McpConnection> session,
                                 co_await McpServer::Session(server, deadline));
    co_return co_await CallToolOnStrand(session, std::move(tool), std::move(arguments),
                                        std::move(idempotency_key), deadline);
}

class StdioMcpClient : public McpClient {
  public:
    explicit StdioMcpClient(std::shared_ptr<McpServer> server) : server_(std::move(server)) {}
    ~StdioMcpClient() override { server_->Shutdown(); }

    const McpServerSpec& spec() const override { return server_->spec(); }

    Awaitable<Result<std::vector<McpToolInfo>>> ListTools(Deadline deadline) override {
        auto work = ListToolsOnServer(server_, deadline);
        return OnStrand(server_->strand(), std::move(work),
                        Quoted(server_->spec().name) + ": tools/list");
    }

    Awaitable<Result<ToolResult>> CallTool(std::string tool, std::string arguments,
                                           std::string idempotency_key,
                                           Deadline deadline) override {
        return CallToolImpl(server_, std::move(tool), std::move(arguments),
                            std::move(idempotency_key), deadline);
    }

    std::vector<McpToolInfo> LastToolList() const override { return server_->Tools(); }

    void Shutdown() override { server_->Shutdown(); }

  private:
    static Awaitable<Result<ToolResult>> CallToolImpl(std::shared_ptr<McpServer> server,
                                                      std::string tool, std::string arguments,
                                                      std::string idempotency_key,
                                                      Deadline deadline) {
        std::string what = Quoted(server->spec().name) + ": tool '" + tool + "'";
        json::object object;
        if (arguments.find_first_not_of(" \t\r\n") != std::string::npos) {
            // Models send "" for a tool without parameters; anything else must be an object.
            Result<json::value> parsed = ParseJson(arguments);
            if (!parsed)
                co_return std::unexpected(parsed.error().WithPrefix(what + ": arguments: "));
            if (!parsed->is_object()) {
                co_return InvalidArgumentError(what + ": arguments must be a JSON object");
            }
            object = std::move(parsed->get_object());
        }
        auto work = CallToolOnServer(server, std::move(tool), std::move(object),
                                     std::move(idempotency_key), deadline);
        co_return co_await OnStrand(server->strand(), std::move(work), std::move(what));
    }

    const std::shared_ptr<McpServer> server_;
};

class McpTool : public Tool {
  public:
    McpTool(std::shared_ptr<McpClient> client, McpToolInfo info)
        : client_(std::move(client)), tool_name_(std::move(info.name)) {
        const McpServerSpec& server = client_->spec();
        spec_.name = server.name + "/" + tool_name_;
        spec_.description = std::move(info.description);
        spec_.parameters_schema = std::move(info.input_schema);
        safety_ = server.default_safety;
        // Overrides may name the tool as the server does or as the model sees it.
        if (auto it = server.tool_safety.find(tool_name_); it != server.tool_safety.end()) {
            safety_ = it->second;
        } else if (auto full = server.tool_safety.find(spec_.name);
                   full != server.tool_safety.end()) {
            safety_ = full->second;
        }
    }

    const providers::ToolSpec& spec() const override { return spec_; }
    SafetyClass safety() const override { return safety_; }

    Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) override {
        return client_->CallTool(tool_name_, std::move(arguments),
                                 std::move(context.idempotency_key), context.deadline);
    }

  private:
    const std::shared_ptr<McpClient> client_;
    const std::string tool_name_;
    providers::ToolSpec spec_;
    SafetyClass safety_ = SafetyClass::kDestructive;
};

}  // namespace

Awaitable<Result<std::shared_ptr<McpClient>>> StartMcpClient(Executor executor, McpServerSpec spec,
                                                             Deadline deadline) {
    if (spec.command.empty()) co_return InvalidArgumentError(Quoted(spec.name) + ": no command");
    Executor strand = asio::make_strand(executor);
    Result<std::shared_ptr<McpConnection>> launched = Launch(strand, spec);
    if (!launched) co_return std::unexpected(std::move(launched).error());
    std::shared_ptr<McpConnection> connection = *launched;
    auto work = McpConnection::Initialize(connection, deadline);
    Result<json::value> initialized =
        co_await OnStrand(strand, std::move(work), Quoted(spec.name) + ": initialize");
    if (!initialized) {
        connection->Shutdown();
        co_return std::unexpected(std::move(initialized).error());
    }
    auto server = std::make_shared<McpServer>(strand, std::move(spec), std::move(connection));
    co_return std::make_shared<StdioMcpClient>(std::move(server));
}

std::shared_ptr<Tool> MakeMcpTool(std::shared_ptr<McpClient> client, McpToolInfo info) {
    return std::make_shared<McpTool>(std::move(client), std::move(info));
}

}  // namespace strowger::tools::mcp
