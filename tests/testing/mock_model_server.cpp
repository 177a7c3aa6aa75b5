#include "testing/mock_model_server.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "core/asio.hpp"
#include "core/json.hpp"

namespace strowger::testing {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

int64_t EstimateTokens(size_t bytes) {
    return static_cast<int64_t>((bytes + 3) / 4);
}

enum class Api { kOpenAi, kAnthropic };

// What a request gets, decided under the server's lock; sent without it.
struct Plan {
    std::string bytes;  // the complete response (head and body), or the head of a stream
    // A streamed body: each entry is sent as one HTTP chunk (chunked transfer encoding).
    std::vector<std::string> chunks;
    bool streamed = false;
    int64_t chunk_delay_ms = 0;
    int64_t cut_after_chunks = -1;
    int64_t latency_ms = 0;
    bool hang = false;
    bool drop = false;
    bool close = false;
};

struct Conversation {
    std::string model = "mock-model";
    std::string last_user;
    size_t content_bytes = 0;
    bool stream = false;
    bool include_usage = false;
};

// Text of an Anthropic `content` (a string or blocks; tool results count with their content).
std::string AnthropicText(const json::value& content) {
    if (content.is_string()) return std::string(content.as_string());
    std::string text;
    if (!content.is_array()) return text;
    for (const auto& block : content.as_array()) {
        if (!block.is_object()) continue;
        const json::object& fields = block.as_object();
        text += JsonString(fields, "text");
        if (const json::value* inner = fields.if_contains("content")) text += AnthropicText(*inner);
    }
    return text;
}

Conversation ReadConversation(std::string_view body, Api api) {
    Conversation conversation;
    auto parsed = ParseJson(body);
    if (!parsed || !parsed->is_object()) return conversation;
    const json::object& object = parsed->as_object();
    if (auto model = JsonString(object, "model"); !model.empty()) conversation.model = model;
    conversation.stream = JsonBool(object, "stream");
    if (const json::object* options = JsonObject(object, "stream_options")) {
        conversation.include_usage = JsonBool(*options, "include_usage");
    }
    if (api == Api::kAnthropic) {
        if (const json::value* system = object.if_contains("system")) {
            conversation.content_bytes += AnthropicText(*system).size();
        }
    }
    if (const json::array* messages = JsonArray(object, "messages")) {
        for (const auto& message : *messages) {
            if (!message.is_object()) continue;
            const json::object& fields = message.as_object();
            std::string content;
            if (api == Api::kAnthropic) {
                if (const json::value* value = fields.if_contains("content")) {
                    content = AnthropicText(*value);
                }
            } else {
                content = std::string(JsonString(fields, "content"));
            }
            conversation.content_bytes += content.size();
            if (JsonString(fields, "role") == "user") conversation.last_user = std::move(content);
        }
    }
    return conversation;
}

std::string Head(int status, size_t content_length, const MockBehavior* behavior, bool close,
                 bool streamed = false) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " ";
    head += status == 529 ? std::string("Overloaded")
                          : std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(status)));
    if (streamed) {
        head +=
            "\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n";
    } else {
        head += "\r\nContent-Type: application/json\r\nContent-Length: ";
        head += std::to_string(content_length);
        head += "\r\n";
    }
    if (behavior) {
        if (!behavior->retry_after.empty())
            head += "Retry-After: " + behavior->retry_after + "\r\n";
        for (const auto& [name, value] : behavior->headers) head += name + ": " + value + "\r\n";
    }
    if (close) head += "Connection: close\r\n";
    head += "\r\n";
    return head;
}

std::string ErrorBody(int status, std::string_view message, Api api) {
    std::string text =
        message.empty() ? "mock error " + std::to_string(status) : std::string(message);
    json::object error;
    if (api == Api::kAnthropic) {
        std::string_view type = "api_error";
        switch (status) {
            case 400:
                type = "invalid_request_error";
                break;
            case 401:
                type = "authentication_error";
                break;
            case 403:
                type = "permission_error";
                break;
            case 404:
                type = "not_found_error";
                break;
            case 413:
                type = "request_too_large";
                break;
            case 429:
                type = "rate_limit_error";
                break;
            case 529:
                type = "overloaded_error";
                break;
            default:
                break;
        }
        error["type"] = type;
        error["message"] = text;
        json::object body;
        body["type"] = "error";
        body["error"] = std::move(error);
        return json::serialize(body);
    }
    error["message"] = text;
    error["type"] = status == 429 ? "rate_limit_error" : "mock_error";
    error["code"] = nullptr;
    json::object body;
    body["error"] = std::move(error);
    return json::serialize(body);
}

// Everything a generated answer says, whichever API carries it.
struct Answer {
    int64_t number = 0;
    std::string model;
    std::string content;
    std::vector<MockToolCall> tool_calls;  // ids filled in
    std::string finish_reason;             // as given by the rule, "" = natural
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    std::vector<std::string> deltas;  // content in streamed pieces
};

Answer MakeAnswer(int64_t number, const Conversation& conversation, const std::string& reply,
                  const MockBehavior* behavior, Api api) {
    Answer answer;
    answer.number = number;
    answer.model = conversation.model;
    if (behavior) {
        for (size_t i = 0; i < behavior->tool_calls.size(); ++i) {
            MockToolCall call = behavior->tool_calls[i];
            if (call.id.empty()) {
                call.id = (api == Api::kAnthropic ? "toolu_" : "call_") + std::to_string(number) +
                          "_" + std::to_string(i + 1);
            }
            answer.tool_calls.push_back(std::move(call));
        }
        answer.finish_reason = behavior->finish_reason;
    }
    answer.content = answer.tool_calls.empty() ? reply : (behavior ? behavior->reply : "");
    answer.prompt_tokens = behavior && behavior->prompt_tokens
                               ? *behavior->prompt_tokens
                               : EstimateTokens(conversation.content_bytes);
    answer.completion_tokens = behavior && behavior->completion_tokens
                                   ? *behavior->completion_tokens
                                   : EstimateTokens(answer.content.size());
    if (behavior && !behavior->stream_deltas.empty()) {
        answer.deltas = behavior->stream_deltas;
    } else {
        // Word by word, spaces kept with the word before them.
        size_t start = 0;
        while (start < answer.content.size()) {
            size_t space = answer.content.find(' ', start);
            size_t end = space == std::string::npos ? answer.content.size() : space + 1;
            answer.deltas.push_back(answer.content.substr(start, end - start));
            start = end;
        }
    }
    return answer;
}

std::string OpenAiFinishReason(const Answer& answer) {
    if (!answer.finish_reason.empty()) return answer.finish_reason;
    return answer.tool_calls.empty() ? "stop" : "tool_calls";
}

std::string AnthropicStopReason(const Answer& answer) {
    if (!answer.finish_reason.empty()) return answer.finish_reason;
    return answer.tool_calls.empty() ? "end_turn" : "tool_use";
}

json::value JsonOrString(const std::string& text) {
    auto parsed = ParseJson(text.empty() ? std::string_view("{}") : std::string_view(text));
    if (parsed) return std::move(*parsed);
    return json::string(text);
}

std::string CompletionBody(const Answer& answer) {
    json::object message;
    message["role"] = "assistant";
    json::array tool_calls;
    for (const MockToolCall& call : answer.tool_calls) {
        json::object function;
        function["name"] = call.name;
        function["arguments"] = call.arguments;
        json::object item;
        item["id"] = call.id;
        item["type"] = "function";
        item["function"] = std::move(function);
        tool_calls.push_back(std::move(item));
    }
    if (tool_calls.empty() || !answer.content.empty()) {
        message["content"] = answer.content;
    } else {
        message["content"] = nullptr;
    }
    if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);

    json::object choice;
    choice["index"] = 0;
    choice["message"] = std::move(message);
    choice["finish_reason"] = OpenAiFinishReason(answer);
    json::array choices;
    choices.push_back(std::move(choice));

    json::object usage;
    usage["prompt_tokens"] = answer.prompt_tokens;
    usage["completion_tokens"] = answer.completion_tokens;
    usage["total_tokens"] = answer.prompt_tokens + answer.completion_tokens;

    json::object body;
    body["id"] = "chatcmpl-mock-" + std::to_string(answer.number);
    body["object"] = "chat.completion";
    body["created"] = static_cast<int64_t>(std::time(nullptr));
    body["model"] = answer.model;
    body["choices"] = std::move(choices);
    body["usage"] = std::move(usage);
    return json::serialize(body);
}

std::string MessageBody(const Answer& answer) {
    json::array content;
    if (!answer.content.empty() || answer.tool_calls.empty()) {
        json::object text;
        text["type"] = "text";
        text["text"] = answer.content;
        content.push_back(std::move(text));
    }
    for (const MockToolCall& call : answer.tool_calls) {
        json::object block;
        block["type"] = "tool_use";
        block["id"] = call.id;
        block["name"] = call.name;
        block["input"] = JsonOrString(call.arguments);
        content.push_back(std::move(block));
    }
    json::object usage;
    usage["input_tokens"] = answer.prompt_tokens;
    usage["output_tokens"] = answer.completion_tokens;
    json::object body;
    body["id"] = "msg_mock_" + std::to_string(answer.number);
    body["type"] = "message";
    body["role"] = "assistant";
    body["model"] = answer.model;
    body["content"] = std::move(content);
    body["stop_reason"] = AnthropicStopReason(answer);
    body["stop_sequence"] = nullptr;
    body["usage"] = std::move(usage);
    return json::serialize(body);
}

// Splits `text` into pieces of about three, for streamed tool arguments.
std::vector<std::string> Thirds(const std::string& text) {
    std::vector<std::string> pieces;
    size_t size = std::max<size_t>(1, (text.size() + 2) / 3);
    for (size_t at = 0; at < text.size(); at += size) pieces.push_back(text.substr(at, size));
    return pieces;
}

// One SSE event per entry.
std::vector<std::string> OpenAiEvents(const Answer& answer, bool include_usage) {
    std::vector<std::string> events;
    auto chunk = [&](json::value delta, json::value finish_reason) {
        json::object choice;
        choice["index"] = 0;
        choice["delta"] = std::move(delta);
        choice["finish_reason"] = std::move(finish_reason);
        json::array choices;
        choices.push_back(std::move(choice));
        json::object body;
        body["id"] = "chatcmpl-mock-" + std::to_string(answer.number);
        body["object"] = "chat.completion.chunk";
        body["created"] = static_cast<int64_t>(std::time(nullptr));
        body["model"] = answer.model;
        body["choices"] = std::move(choices);
        if (include_usage) body["usage"] = nullptr;
        events.push_back("data: " + json::serialize(body) + "\n\n");
    };
    json::object first;
    first["role"] = "assistant";
    first["content"] = "";
    chunk(std::move(first), nullptr);
    for (const std::string& text : answer.deltas) {
        json::object delta;
        delta["content"] = text;
        chunk(std::move(delta), nullptr);
    }
    for (size_t i = 0; i < answer.tool_calls.size(); ++i) {
        const MockToolCall& call = answer.tool_calls[i];
        json::object function;
        function["name"] = call.name;
        function["arguments"] = "";
        json::object start;
        start["index"] = static_cast<int64_t>(i);
        start["id"] = call.id;
        start["type"] = "function";
        start["function"] = std::move(function);
        json::array starts;
        starts.push_back(std::move(start));
        json::object delta;
        delta["tool_calls"] = std::move(starts);
        chunk(std::move(delta), nullptr);
        for (const std::string& piece : Thirds(call.arguments)) {
            json::object more_function;
            more_function["arguments"] = piece;
            json::object more;
            more["index"] = static_cast<int64_t>(i);
            more["function"] = std::move(more_function);
            json::array mores;
            mores.push_back(std::move(more));
            json::object more_delta;
            more_delta["tool_calls"] = std::move(mores);
            chunk(std::move(more_delta), nullptr);
        }
    }
    chunk(json::object(), json::string(OpenAiFinishReason(answer)));
    if (include_usage) {
        json::object usage;
        usage["prompt_tokens"] = answer.prompt_tokens;
        usage["completion_tokens"] = answer.completion_tokens;
        usage["total_tokens"] = answer.prompt_tokens + answer.completion_tokens;
        json::object body;
        body["id"] = "chatcmpl-mock-" + std::to_string(answer.number);
        body["object"] = "chat.completion.chunk";
        body["model"] = answer.model;
        body["choices"] = json::array();
        body["usage"] = std::move(usage);
        events.push_back("data: " + json::serialize(body) + "\n\n");
    }
    events.push_back("data: [DONE]\n\n");
    return events;
}

std::vector<std::string> AnthropicEvents(const Answer& answer) {
    std::vector<std::string> events;
    auto event = [&](std::string_view type, json::object data) {
        data["type"] = type;
        events.push_back("event: " + std::string(type) + "\ndata: " + json::serialize(data) +
                         "\n\n");
    };
    json::object usage;
    usage["input_tokens"] = answer.prompt_tokens;
    usage["output_tokens"] = 1;
    json::object message;
    message["id"] = "msg_mock_" + std::to_string(answer.number);
    message["type"] = "message";
    message["role"] = "assistant";
    message["content"] = json::array();
    message["model"] = answer.model;
    message["stop_reason"] = nullptr;
    message["stop_sequence"] = nullptr;
    message["usage"] = std::move(usage);
    json::object start;
    start["message"] = std::move(message);
    event("message_start", std::move(start));
    int64_t index = 0;
    if (!answer.content.empty() || answer.tool_calls.empty()) {
        json::object block;
        block["type"] = "text";
        block["text"] = "";
        json::object block_start;
        block_start["index"] = index;
        block_start["content_block"] = std::move(block);
        event("content_block_start", std::move(block_start));
        event("ping", json::object());
        for (const std::string& text : answer.deltas) {
            json::object delta;
            delta["type"] = "text_delta";
            delta["text"] = text;
            json::object data;
            data["index"] = index;
            data["delta"] = std::move(delta);
            event("content_block_delta", std::move(data));
        }
        json::object stop;
        stop["index"] = index;
        event("content_block_stop", std::move(stop));
        ++index;
    }
    for (const MockToolCall& call : answer.tool_calls) {
        json::object block;
        block["type"] = "tool_use";
        block["id"] = call.id;
        block["name"] = call.name;
        block["input"] = json::object();
        json::object block_start;
        block_start["index"] = index;
        block_start["content_block"] = std::move(block);
        event("content_block_start", std::move(block_start));
        for (const std::string& piece : Thirds(call.arguments)) {
            json::object delta;
            delta["type"] = "input_json_delta";
            delta["partial_json"] = piece;
            json::object data;
            data["index"] = index;
            data["delta"] = std::move(delta);
            event("content_block_delta", std::move(data));
        }
        json::object stop;
        stop["index"] = index;
        event("content_block_stop", std::move(stop));
        ++index;
    }
    json::object delta;
    delta["stop_reason"] = AnthropicStopReason(answer);
    delta["stop_sequence"] = nullptr;
    json::object final_usage;
    final_usage["output_tokens"] = answer.completion_tokens;
    json::object message_delta;
    message_delta["delta"] = std::move(delta);
    message_delta["usage"] = std::move(final_usage);
    event("message_delta", std::move(message_delta));
    event("message_stop", json::object());
    return events;
}

// The stream cut into HTTP chunks: one per event, or every `size` bytes.
std::vector<std::string> Chunk(const std::vector<std::string>& events, size_t size) {
    if (size == 0) return events;
    std::string all;
    for (const auto& event : events) all += event;
    std::vector<std::string> chunks;
    for (size_t at = 0; at < all.size(); at += size) chunks.push_back(all.substr(at, size));
    return chunks;
}

// The origin-form path of `target`, which may be in absolute form (proxy requests).
std::string_view PathOf(std::string_view target) {
    if (auto scheme = target.find("://"); scheme != std::string_view::npos) {
        auto slash = target.find('/', scheme + 3);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    return target.substr(0, target.find('?'));
}

}  // namespace

std::string RecordedRequest::Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (beast::iequals(key, name)) return value;
    }
    return {};
}

class MockModelServer::Impl {
  public:
    explicit Impl(Options options)
        : options_(std::move(options)), latency_ms_(options_.latency_ms) {}

    Status Open();
    void Stop();

    Awaitable<void> AcceptLoop();
    Awaitable<void> Session(tcp::socket socket);
    template <typename Stream>
    Awaitable<void> Serve(Stream& stream);
    Plan Decide(const bhttp::request<bhttp::string_body>& request);
    void ConnectionClosed();

    Options options_;
    std::atomic<int64_t> latency_ms_;
    std::optional<asio::ssl::context> tls_;
    std::unique_ptr<asio::io_context> io_;
    std::unique_ptr<tcp::acceptor> acceptor_;
    std::thread thread_;
    uint16_t port_ = 0;

    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    struct RuleState {
        MockRule rule;
        int64_t used = 0;
    };
    std::vector<RuleState> rules_;                          // GUARDED_BY(mutex_)
    std::map<std::string, int64_t, std::less<>> per_node_;  // GUARDED_BY(mutex_)
    std::vector<RecordedRequest> recorded_;                 // GUARDED_BY(mutex_)
    int64_t requests_ = 0;                                  // GUARDED_BY(mutex_)
    int64_t open_ = 0;                                      // GUARDED_BY(mutex_)
    int64_t active_ = 0;                                    // GUARDED_BY(mutex_)
    int64_t max_active_ = 0;                                // GUARDED_BY(mutex_)
    std::atomic<int64_t> accepted_{0};
};

Status MockModelServer::Impl::Open() {
    if (!options_.tls_cert_file.empty() || !options_.tls_key_file.empty()) {
        boost::system::error_code ec;
        tls_.emplace(asio::ssl::context::tls_server);
        tls_->use_certificate_chain_file(options_.tls_cert_file, ec);
        if (!ec) tls_->use_private_key_file(options_.tls_key_file, asio::ssl::context::pem, ec);
        if (ec) return InvalidArgumentError("mock server: cannot load TLS files: " + ec.message());
    }
    io_ = std::make_unique<asio::io_context>(1);
    acceptor_ = std::make_unique<tcp::acceptor>(*io_);
    boost::system::error_code ec;
    auto address = asio::ip::make_address(options_.host, ec);
    if (ec) return InvalidArgumentError("mock server: bad host " + options_.host);
    tcp::endpoint endpoint(address, options_.port);
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        return UnavailableError("mock server: cannot listen on " + options_.host + ":" +
                                std::to_string(options_.port) + ": " + ec.message());
    }
    port_ = acceptor_->local_endpoint().port();
    asio::co_spawn(*io_, AcceptLoop(), asio::detached);
    thread_ = std::thread([this] { io_->run(); });
    return OkStatus();
}

void MockModelServer::Impl::Stop() {
    if (!io_) return;
    io_->stop();
    if (thread_.joinable()) thread_.join();
    acceptor_.reset();
    // Destroying the io_context destroys every suspended session, closing its socket.
    io_.reset();
    std::lock_guard lock(mutex_);
    open_ = 0;
    changed_.notify_all();
}

Awaitable<void> MockModelServer::Impl::AcceptLoop() {
    asio::steady_timer backoff(*io_);
    for (;;) {
        auto [ec, socket] = co_await acceptor_->async_accept(kUseTuple);
        if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
        if (ec) {
            // Typically EMFILE: give sessions a moment to finish instead of spinning.
            backoff.expires_after(std::chrono::milliseconds(20));
            co_await backoff.async_wait(kUseTuple);
            continue;
        }
        accepted_.fetch_add(1, std::memory_order_relaxed);
        {
            std::lock_guard lock(mutex_);
            ++open_;
        }
        asio::co_spawn(*io_, Session(std::move(socket)), asio::detached);
    }
}

void MockModelServer::Impl::ConnectionClosed() {
    std::lock_guard lock(mutex_);
    --open_;
    changed_.notify_all();
}

Awaitable<void> MockModelServer::Impl::Session(tcp::socket socket) {
    struct Closed {
        Impl* impl;
        ~Closed() {
            if (impl->io_) impl->ConnectionClosed();
        }
    } closed{this};
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    if (tls_) {
        asio::ssl::stream<tcp::socket> stream(std::move(socket), *tls_);
        auto [handshake_ec] =
            co_await stream.async_handshake(asio::ssl::stream_base::server, kUseTuple);
        if (handshake_ec) co_return;
        co_await Serve(stream);
    } else {
        co_await Serve(socket);
    }
}

template <typename Stream>
Awaitable<void> MockModelServer::Impl::Serve(Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
        bhttp::request_parser<bhttp::string_body> parser;
        parser.body_limit(64 << 20);
        auto [head_ec, head_read] =
            co_await bhttp::async_read_header(stream, buffer, parser, kUseTuple);
        if (head_ec) co_return;
        // curl and others wait (up to a second) for this before sending a large body.
        if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            auto [continue_ec, continue_written] =
                co_await asio::async_write(stream, asio::buffer(kContinue), kUseTuple);
            if (continue_ec) co_return;
        }
        auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kUseTuple);
        if (read_ec) co_return;
        const auto& request = parser.get();
        Plan plan = Decide(request);
        // Counts the request as active until its answer is written or the session ends.
        struct Active {
            Impl* impl;
            explicit Active(Impl* owner) : impl(owner) {
                std::lock_guard lock(impl->mutex_);
                impl->max_active_ = std::max(impl->max_active_, ++impl->active_);
            }
            ~Active() {
                if (!impl->io_) return;
                std::lock_guard lock(impl->mutex_);
                --impl->active_;
                impl->changed_.notify_all();
            }
        } active(this);
        if (plan.drop) co_return;
        if (plan.hang) {
            // Wait for the client to go away (or the server to stop).
            for (;;) {
                auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), kUseTuple);
                if (ec) co_return;
                buffer.commit(n);
                buffer.consume(buffer.size());
            }
        }
        if (plan.latency_ms > 0) {
            asio::steady_timer timer(*io_);
            timer.expires_after(std::chrono::milliseconds(plan.latency_ms));
            co_await timer.async_wait(kUseTuple);
        }
        auto [write_ec, written] =
            co_await asio::async_write(stream, asio::buffer(plan.bytes), kUseTuple);
        if (write_ec) co_return;
        if (plan.streamed) {
            for (size_t i = 0; i < plan.chunks.size(); ++i) {
                if (plan.cut_after_chunks >= 0 &&
                    static_cast<int64_t>(i) >= plan.cut_after_chunks) {
                    co_return;  // cut mid-stream: no terminating chunk
                }
                if (i > 0 && plan.chunk_delay_ms > 0) {
                    asio::steady_timer timer(*io_);
                    timer.expires_after(std::chrono::milliseconds(plan.chunk_delay_ms));
                    co_await timer.async_wait(kUseTuple);
                }
                const std::string& piece = plan.chunks[i];
                char size[32];
                int length = std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
                std::array<asio::const_buffer, 3> buffers = {
                    asio::buffer(size, static_cast<size_t>(length)), asio::buffer(piece),
                    asio::buffer("\r\n", 2)};
                auto [chunk_ec, chunk_written] =
                    co_await asio::async_write(stream, buffers, kUseTuple);
                if (chunk_ec) co_return;
            }
            if (plan.cut_after_chunks >= 0 &&
                static_cast<int64_t>(plan.chunks.size()) <= plan.cut_after_chunks) {
                co_return;
            }
            static constexpr std::string_view kLastChunk = "0\r\n\r\n";
            auto [end_ec, end_written] =
                co_await asio::async_write(stream, asio::buffer(kLastChunk), kUseTuple);
            if (end_ec) co_return;
        }
        if (plan.close || !request.keep_alive()) co_return;
    }
}

Plan MockModelServer::Impl::Decide(const bhttp::request<bhttp::string_body>& request) {
    Plan plan;
    plan.latency_ms = latency_ms_.load(std::memory_order_relaxed);
    std::string node(request["X-Strowger-Node"]);
    std::string_view path = PathOf(request.target());
    bool post = request.method() == bhttp::verb::post;
    bool chat = post && (path == "/v1/chat/completions" || path == "/chat/completions");
    bool messages = post && (path == "/v1/messages" || path == "/messages");
    Api api = messages ? Api::kAnthropic : Api::kOpenAi;
    Conversation conversation;
    if (chat || messages) conversation = ReadConversation(request.body(), api);

    std::optional<MockBehavior> behavior;
    int64_t number = 0;
    {
        std::lock_guard lock(mutex_);
        number = ++requests_;
        ++per_node_[node];
        if (recorded_.size() < options_.max_recorded_requests) {
            RecordedRequest& record = recorded_.emplace_back();
            record.method = std::string(request.method_string());
            record.target = std::string(request.target());
            for (const auto& field : request) {
                record.headers.emplace_back(std::string(field.name_string()),
                                            std::string(field.value()));
            }
            record.body = request.body();
        }
        if (chat || messages) {
            for (auto& state : rules_) {
                const MockRule& rule = state.rule;
                if (rule.times >= 0 && state.used >= rule.times) continue;
                if (!rule.node.empty() && rule.node != node) continue;
                if (!rule.prompt_contains.empty() &&
                    conversation.last_user.find(rule.prompt_contains) == std::string::npos) {
                    continue;
                }
                ++state.used;
                behavior = rule.behavior;
                break;
            }
        }
        changed_.notify_all();
    }

    if (request.method() == bhttp::verb::get && (path == "/v1/models" || path == "/models")) {
        std::string body =
            R"({"object":"list","data":[{"id":"mock-model","object":"model","owned_by":"strowger"}]})";
        plan.bytes = Head(200, body.size(), nullptr, false) + body;
        plan.latency_ms = 0;
        return plan;
    }
    if (!chat && !messages) {
        std::string body =
            ErrorBody(404,
                      "mock server: no route for " + std::string(request.method_string()) + " " +
                          std::string(path),
                      Api::kOpenAi);
        plan.bytes = Head(404, body.size(), nullptr, false) + body;
        plan.latency_ms = 0;
        return plan;
    }
    const MockBehavior* rule = behavior ? &*behavior : nullptr;
    if (rule && rule->latency_ms) plan.latency_ms = *rule->latency_ms;
    if (rule && (rule->hang || rule->drop)) {
        plan.hang = rule->hang;
        plan.drop = rule->drop;
        return plan;
    }
    int status = rule ? rule->status : 200;
    bool truncate = rule && rule->truncate;
    plan.close = truncate || (rule && rule->close_after);
    if (status / 100 == 2 && conversation.stream && !truncate && !(rule && !rule->body.empty())) {
        std::vector<std::string> events;
        if (rule && !rule->stream_body.empty()) {
            events.push_back(rule->stream_body);
        } else {
            std::string reply = rule ? rule->reply : "";
            if (reply.empty()) {
                reply = options_.reply ? *options_.reply
                                       : "echo: " + conversation.last_user.substr(0, 64);
            }
            Answer answer = MakeAnswer(number, conversation, reply, rule, api);
            events = api == Api::kAnthropic ? AnthropicEvents(answer)
                                            : OpenAiEvents(answer, conversation.include_usage);
        }
        plan.streamed = true;
        plan.chunks = Chunk(events, rule ? rule->stream_chunk_bytes : 0);
        if (rule) {
            plan.chunk_delay_ms = rule->stream_chunk_delay_ms;
            plan.cut_after_chunks = rule->stream_cut_after_chunks;
            if (plan.cut_after_chunks >= 0) plan.close = true;
        }
        plan.bytes = Head(status, 0, rule, !request.keep_alive(), true);
        return plan;
    }
    std::string body;
    if (rule && !rule->body.empty()) {
        body = rule->body;
    } else if (status / 100 != 2) {
        body = ErrorBody(status, rule ? rule->error_message : "", api);
    } else {
        std::string reply = rule ? rule->reply : "";
        if (reply.empty()) {
            reply =
                options_.reply ? *options_.reply : "echo: " + conversation.last_user.substr(0, 64);
        }
        Answer answer = MakeAnswer(number, conversation, reply, rule, api);
        body = api == Api::kAnthropic ? MessageBody(answer) : CompletionBody(answer);
    }
    size_t declared = truncate ? body.size() + 64 : body.size();
    plan.bytes = Head(status, declared, rule, !request.keep_alive()) + body;
    return plan;
}

MockModelServer::MockModelServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

MockModelServer::~MockModelServer() {
    Stop();
}

Result<std::unique_ptr<MockModelServer>> MockModelServer::Start(Options options) {
    auto impl = std::make_shared<Impl>(std::move(options));
    STROWGER_TRY(impl->Open());
    return std::unique_ptr<MockModelServer>(new MockModelServer(std::move(impl)));
}

void MockModelServer::Stop() {
    impl_->Stop();
}

uint16_t MockModelServer::port() const {
    return impl_->port_;
}

std::string MockModelServer::base_url() const {
    return anthropic_base_url() + "/v1";
}

std::string MockModelServer::anthropic_base_url() const {
    std::string scheme = impl_->tls_ ? "https" : "http";
    return scheme + "://" + impl_->options_.host + ":" + std::to_string(impl_->port_);
}

void MockModelServer::AddRule(MockRule rule) {
    std::lock_guard lock(impl_->mutex_);
    impl_->rules_.push_back(Impl::RuleState{std::move(rule), 0});
}

void MockModelServer::ClearRules() {
    std::lock_guard lock(impl_->mutex_);
    impl_->rules_.clear();
}

void MockModelServer::SetLatency(std::chrono::milliseconds latency) {
    impl_->latency_ms_.store(latency.count(), std::memory_order_relaxed);
}

int64_t MockModelServer::requests() const {
    std::lock_guard lock(impl_->mutex_);
    return impl_->requests_;
}

int64_t MockModelServer::requests_for_node(std::string_view node) const {
    std::lock_guard lock(impl_->mutex_);
    auto it = impl_->per_node_.find(node);
    return it == impl_->per_node_.end() ? 0 : it->second;
}

int64_t MockModelServer::connections_accepted() const {
    return impl_->accepted_.load(std::memory_order_relaxed);
}

int64_t MockModelServer::open_connections() const {
    std::lock_guard lock(impl_->mutex_);
    return impl_->open_;
}

int64_t MockModelServer::active_requests() const {
    std::lock_guard lock(impl_->mutex_);
    return impl_->active_;
}

int64_t MockModelServer::max_active_requests() const {
    std::lock_guard lock(impl_->mutex_);
    return impl_->max_active_;
}

std::vector<RecordedRequest> MockModelServer::recorded_requests() const {
    std::lock_guard lock(impl_->mutex_);
    return impl_->recorded_;
}

bool MockModelServer::WaitForRequests(int64_t count, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mutex_);
    return impl_->changed_.wait_for(lock, timeout, [&] { return impl_->requests_ >= count; });
}

bool MockModelServer::WaitForOpenConnectionsAtMost(int64_t count,
                                                   std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mutex_);
    return impl_->changed_.wait_for(lock, timeout, [&] { return impl_->open_ <= count; });
}

IoThread::IoThread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}

IoThread::~IoThread() {
    work_.reset();
    io_.stop();
    thread_.join();
}

Result<TestCertificate> WriteSelfSignedCertificate(const std::string& directory,
                                                   const std::vector<std::string>& dns_names) {
    auto fail = [](std::string what) { return InternalError("test certificate: " + what); };
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
    if (!key) return fail("EVP_EC_gen failed");
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(std::time(nullptr)));
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 30L * 24 * 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("strowger test"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);

    std::string alt_names = "IP:127.0.0.1,IP:::1";
    for (const auto& dns : dns_names) alt_names += ",DNS:" + dns;
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, cert.get(), cert.get(), nullptr, nullptr, 0);
    for (auto [nid, value] :
         {std::pair<int, std::string>{NID_subject_alt_name, alt_names},
          std::pair<int, std::string>{NID_basic_constraints, "critical,CA:TRUE"}}) {
        X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
        if (!extension) return fail("bad extension " + value);
        X509_add_ext(cert.get(), extension, -1);
        X509_EXTENSION_free(extension);
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return fail("X509_sign failed");

    TestCertificate out;
    out.cert_file = (std::filesystem::path(directory) / "cert.pem").string();
    out.key_file = (std::filesystem::path(directory) / "key.pem").string();
    FILE* cert_out = std::fopen(out.cert_file.c_str(), "w");
    if (!cert_out) return fail("cannot write " + out.cert_file);
    bool ok = PEM_write_X509(cert_out, cert.get()) == 1;
    std::fclose(cert_out);
    FILE* key_out = std::fopen(out.key_file.c_str(), "w");
    if (!key_out) return fail("cannot write " + out.key_file);
    ok = ok && PEM_write_PrivateKey(key_out, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
    std::fclose(key_out);
    if (!ok) return fail("PEM write failed");
    return out;
}

}  // namespace strowger::testing
