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

// What a request gets, decided under the server's lock; sent without it.
struct Plan {
    std::string bytes;  // the complete response, head and body
    int64_t latency_ms = 0;
    bool hang = false;
    bool drop = false;
    bool close = false;
};

struct Conversation {
    std::string model = "mock-model";
    std::string last_user;
    size_t content_bytes = 0;
};

Conversation ReadConversation(std::string_view body) {
    Conversation conversation;
    auto parsed = ParseJson(body);
    if (!parsed || !parsed->is_object()) return conversation;
    const json::object& object = parsed->as_object();
    if (auto model = JsonString(object, "model"); !model.empty()) conversation.model = model;
    if (const json::array* messages = JsonArray(object, "messages")) {
        for (const auto& message : *messages) {
            if (!message.is_object()) continue;
            auto content = JsonString(message.as_object(), "content");
            conversation.content_bytes += content.size();
            if (JsonString(message.as_object(), "role") == "user") {
                conversation.last_user = std::string(content);
            }
        }
    }
    return conversation;
}

std::string Head(int status, size_t content_length, const MockBehavior* behavior, bool close) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " ";
    head += std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(status)));
    head += "\r\nContent-Type: application/json\r\nContent-Length: ";
    head += std::to_string(content_length);
    head += "\r\n";
    if (behavior) {
        if (!behavior->retry_after.empty())
            head += "Retry-After: " + behavior->retry_after + "\r\n";
        for (const auto& [name, value] : behavior->headers) head += name + ": " + value + "\r\n";
    }
    if (close) head += "Connection: close\r\n";
    head += "\r\n";
    return head;
}

std::string ErrorBody(int status, std::string_view message) {
    json::object error;
    error["message"] =
        message.empty() ? "mock error " + std::to_string(status) : std::string(message);
    error["type"] = status == 429 ? "rate_limit_error" : "mock_error";
    error["code"] = nullptr;
    json::object body;
    body["error"] = std::move(error);
    return json::serialize(body);
}

std::string CompletionBody(int64_t number, const Conversation& conversation,
                           const std::string& reply, const MockBehavior* behavior) {
    json::object message;
    message["role"] = "assistant";
    json::array tool_calls;
    if (behavior) {
        for (size_t i = 0; i < behavior->tool_calls.size(); ++i) {
            const MockToolCall& call = behavior->tool_calls[i];
            json::object function;
            function["name"] = call.name;
            function["arguments"] = call.arguments;
            json::object item;
            item["id"] = call.id.empty()
                             ? "call_" + std::to_string(number) + "_" + std::to_string(i + 1)
                             : call.id;
            item["type"] = "function";
            item["function"] = std::move(function);
            tool_calls.push_back(std::move(item));
        }
    }
    std::string content = tool_calls.empty() ? reply : (behavior ? behavior->reply : "");
    if (tool_calls.empty() || !content.empty()) {
        message["content"] = content;
    } else {
        message["content"] = nullptr;
    }
    std::string finish_reason = behavior && !behavior->finish_reason.empty()
                                    ? behavior->finish_reason
                                    : (tool_calls.empty() ? "stop" : "tool_calls");
    if (!tool_calls.empty()) message["tool_calls"] = std::move(tool_calls);

    json::object choice;
    choice["index"] = 0;
    choice["message"] = std::move(message);
    choice["finish_reason"] = finish_reason;
    json::array choices;
    choices.push_back(std::move(choice));

    int64_t prompt_tokens = behavior && behavior->prompt_tokens
                                ? *behavior->prompt_tokens
                                : EstimateTokens(conversation.content_bytes);
    int64_t completion_tokens = behavior && behavior->completion_tokens
                                    ? *behavior->completion_tokens
                                    : EstimateTokens(content.size());
    json::object usage;
    usage["prompt_tokens"] = prompt_tokens;
    usage["completion_tokens"] = completion_tokens;
    usage["total_tokens"] = prompt_tokens + completion_tokens;

    json::object body;
    body["id"] = "chatcmpl-mock-" + std::to_string(number);
    body["object"] = "chat.completion";
    body["created"] = static_cast<int64_t>(std::time(nullptr));
    body["model"] = conversation.model;
    body["choices"] = std::move(choices);
    body["usage"] = std::move(usage);
    return json::serialize(body);
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
        if (write_ec || plan.close || !request.keep_alive()) co_return;
    }
}

Plan MockModelServer::Impl::Decide(const bhttp::request<bhttp::string_body>& request) {
    Plan plan;
    plan.latency_ms = latency_ms_.load(std::memory_order_relaxed);
    std::string node(request["X-Strowger-Node"]);
    std::string_view path = PathOf(request.target());
    bool chat = request.method() == bhttp::verb::post &&
                (path == "/v1/chat/completions" || path == "/chat/completions");
    Conversation conversation;
    if (chat) conversation = ReadConversation(request.body());

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
        if (chat) {
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
    if (!chat) {
        std::string body =
            ErrorBody(404, "mock server: no route for " + std::string(request.method_string()) +
                               " " + std::string(path));
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
    std::string body;
    if (rule && !rule->body.empty()) {
        body = rule->body;
    } else if (status / 100 != 2) {
        body = ErrorBody(status, rule ? rule->error_message : "");
    } else {
        std::string reply = rule ? rule->reply : "";
        if (reply.empty()) {
            reply =
                options_.reply ? *options_.reply : "echo: " + conversation.last_user.substr(0, 64);
        }
        body = CompletionBody(number, conversation, reply, rule);
    }
    bool truncate = rule && rule->truncate;
    plan.close = truncate || (rule && rule->close_after);
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
    std::string scheme = impl_->tls_ ? "https" : "http";
    return scheme + "://" + impl_->options_.host + ":" + std::to_string(impl_->port_) + "/v1";
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
