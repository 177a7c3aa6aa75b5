#include "providers/http/http_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdlib>
#include <future>
#include <mutex>

#include "testing/mock_model_server.hpp"
#include "testing/test_util.hpp"

namespace strowger::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using strowger::testing::IoThread;
using strowger::testing::MockBehavior;
using strowger::testing::MockModelServer;
using strowger::testing::MockRule;
using strowger::testing::RunSync;
using tcp = asio::ip::tcp;

using strowger::testing::kWait;

std::string ChatBody(std::string_view prompt) {
    return R"({"model":"m","messages":[{"role":"user","content":")" + std::string(prompt) +
           R"("}]})";
}

HttpRequest ChatRequest(const std::string& base_url, std::string_view prompt,
                        std::string node = "") {
    HttpRequest request;
    request.url = base_url + "/chat/completions";
    request.headers.emplace_back("Content-Type", "application/json");
    if (!node.empty()) request.headers.emplace_back("X-Strowger-Node", std::move(node));
    request.body = ChatBody(prompt);
    return request;
}

MockRule NodeRule(std::string node, MockBehavior behavior, int64_t times = -1) {
    MockRule rule;
    rule.node = std::move(node);
    rule.times = times;
    rule.behavior = std::move(behavior);
    return rule;
}

std::unique_ptr<MockModelServer> StartServer(MockModelServer::Options options = {}) {
    auto server = MockModelServer::Start(std::move(options));
    EXPECT_TRUE(server) << server.error().ToString();
    return server ? std::move(*server) : nullptr;
}

std::shared_ptr<HttpClient> MakeClient(Executor executor, HttpClientOptions options = {}) {
    if (!options.proxy) options.proxy = ProxyConfig{};  // ignore the environment's proxies
    auto client = HttpClient::Create(std::move(executor), std::move(options));
    EXPECT_TRUE(client) << client.error().ToString();
    return client ? *client : nullptr;
}

// A port nobody listens on.
uint16_t UnusedPort() {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return acceptor.local_endpoint().port();
}

Awaitable<std::vector<Result<HttpResponse>>> SendInSequence(std::shared_ptr<HttpClient> client,
                                                            std::vector<HttpRequest> requests) {
    std::vector<Result<HttpResponse>> results;
    for (auto& request : requests) {
        results.push_back(co_await client->Send(std::move(request), Deadline::After(kWait)));
    }
    co_return results;
}

// Starts every request at once on `executor` and blocks until all have finished.
std::vector<Result<HttpResponse>> SendConcurrently(Executor executor,
                                                   std::shared_ptr<HttpClient> client,
                                                   std::vector<HttpRequest> requests) {
    struct Shared {
        std::mutex mutex;
        std::vector<Result<HttpResponse>> results;
        size_t left = 0;
        std::promise<void> done;
    };
    auto shared = std::make_shared<Shared>();
    shared->results.resize(requests.size());
    shared->left = requests.size();
    for (size_t i = 0; i < requests.size(); ++i) {
        asio::co_spawn(executor, client->Send(std::move(requests[i]), Deadline::After(kWait)),
                       [shared, i](std::exception_ptr, Result<HttpResponse> result) {
                           std::lock_guard lock(shared->mutex);
                           shared->results[i] = std::move(result);
                           if (--shared->left == 0) shared->done.set_value();
                       });
    }
    auto done = shared->done.get_future();
    EXPECT_EQ(done.wait_for(seconds(30)), std::future_status::ready);
    std::lock_guard lock(shared->mutex);
    return shared->results;
}

class HttpClientTest : public ::testing::Test {
  protected:
    void SetUp() override {
        server_ = StartServer();
        ASSERT_NE(server_, nullptr);
        client_ = MakeClient(io_.executor());
        ASSERT_NE(client_, nullptr);
    }

    IoThread io_;  // first: destroyed last, after everything that has sockets on it
    std::unique_ptr<MockModelServer> server_;
    std::shared_ptr<HttpClient> client_;
};

TEST(UrlTest, ParsesSchemesHostsPortsAndTargets) {
    auto url = ParseUrl("https://API.example.com/v1/chat?x=1#frag");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->scheme, "https");
    EXPECT_EQ(url->host, "api.example.com");
    EXPECT_EQ(url->port, 443);
    EXPECT_EQ(url->target, "/v1/chat?x=1");
    EXPECT_EQ(url->Authority(), "api.example.com:443");

    url = ParseUrl("http://user:pw@[::1]:8080");
    ASSERT_TRUE(url);
    EXPECT_EQ(url->host, "::1");
    EXPECT_EQ(url->port, 8080);
    EXPECT_EQ(url->target, "/");
    EXPECT_EQ(url->userinfo, "user:pw");
    EXPECT_EQ(url->Authority(), "[::1]:8080");

    for (const char* bad : {"ftp://x/", "example.com/v1", "http://:80/", "http://h:99999/",
                            "http://h:12x/", "http://a b/", "http://[::1/"}) {
        auto parsed = ParseUrl(bad);
        ASSERT_FALSE(parsed) << bad;
        EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument) << bad;
    }
}

TEST(ProxyConfigTest, ChoosesProxyBySchemeAndHonoursNoProxy) {
    ProxyConfig config;
    config.http_proxy = "proxy.corp:3128";
    config.https_proxy = "http://user:secret@secure-proxy.corp:8080";
    config.no_proxy = " internal.corp, .svc.local ,10.0.0.0/8, 192.168.1.7";

    auto proxy_for = [&](const char* url) -> std::string {
        auto target = ParseUrl(url);
        EXPECT_TRUE(target);
        auto proxy = config.ProxyFor(*target);
        EXPECT_TRUE(proxy);
        return proxy && *proxy ? (*proxy)->Authority() + " " + (*proxy)->userinfo : "direct";
    };
    EXPECT_EQ(proxy_for("http://api.example.com/"), "proxy.corp:3128 ");
    EXPECT_EQ(proxy_for("https://api.example.com/"), "secure-proxy.corp:8080 user:secret");
    EXPECT_EQ(proxy_for("https://internal.corp/"), "direct");
    EXPECT_EQ(proxy_for("https://db.internal.corp/"), "direct");
    EXPECT_EQ(proxy_for("https://notinternal.corp/"), "secure-proxy.corp:8080 user:secret");
    EXPECT_EQ(proxy_for("http://a.svc.local/"), "direct");
    EXPECT_EQ(proxy_for("http://10.1.2.3/"), "direct");
    EXPECT_EQ(proxy_for("http://11.1.2.3/"), "proxy.corp:3128 ");
    EXPECT_EQ(proxy_for("http://192.168.1.7/"), "direct");
    // Loopback is never proxied.
    EXPECT_EQ(proxy_for("http://localhost:11434/"), "direct");
    EXPECT_EQ(proxy_for("http://127.0.0.1:8080/"), "direct");
    EXPECT_EQ(proxy_for("http://[::1]:8080/"), "direct");

    config.no_proxy = "*";
    EXPECT_EQ(proxy_for("https://api.example.com/"), "direct");

    config.no_proxy = "";
    config.https_proxy = "https://tls-proxy.corp";
    auto target = ParseUrl("https://api.example.com/");
    auto proxy = config.ProxyFor(*target);
    ASSERT_FALSE(proxy);
    EXPECT_EQ(proxy.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(HttpClientTest, PostReturnsStatusHeadersAndBody) {
    auto result =
        RunSync(client_->Send(ChatRequest(server_->base_url(), "hello"), Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->Header("CONTENT-type"), "application/json");
    EXPECT_EQ(result->Header("x-absent"), "");
    EXPECT_NE(result->body.find("echo: hello"), std::string::npos) << result->body;

    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].method, "POST");
    EXPECT_EQ(recorded[0].target, "/v1/chat/completions");
    EXPECT_EQ(recorded[0].Header("host"), "127.0.0.1:" + std::to_string(server_->port()));
    EXPECT_EQ(recorded[0].Header("user-agent"), "strowger/0.1");
    EXPECT_EQ(recorded[0].Header("content-length"), std::to_string(ChatBody("hello").size()));
    EXPECT_EQ(recorded[0].body, ChatBody("hello"));
}

TEST_F(HttpClientTest, NonSuccessStatusIsAResponseNotAnError) {
    MockBehavior behavior;
    behavior.status = 503;
    server_->AddRule(NodeRule("busy", behavior));
    auto result = RunSync(
        client_->Send(ChatRequest(server_->base_url(), "x", "busy"), Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 503);
    EXPECT_NE(result->body.find("mock error 503"), std::string::npos);
}

TEST_F(HttpClientTest, HostNamesAreResolvedAndHostHeadersReplaceable) {
    std::string base = "http://localhost:" + std::to_string(server_->port()) + "/v1";
    HttpRequest request = ChatRequest(base, "by name");
    request.headers.emplace_back("Host", "models.internal");
    request.headers.emplace_back("User-Agent", "bench/1");
    auto result = RunSync(client_->Send(std::move(request), Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 200);
    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].Header("host"), "models.internal");
    EXPECT_EQ(recorded[0].Header("user-agent"), "bench/1");
}

TEST_F(HttpClientTest, LargeRequestAndResponseBodiesArriveWhole) {
    // Larger than the socket buffers: the request is written in several steps and the response
    // read in several.
    std::string prompt(3 << 20, 'p');
    MockBehavior big;
    big.body = std::string(5 << 20, 'b');
    server_->AddRule(NodeRule("big", big));
    auto result = RunSync(
        client_->Send(ChatRequest(server_->base_url(), prompt, "big"), Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body.size(), big.body.size());
    EXPECT_EQ(result->body, big.body);
    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].body, ChatBody(prompt));
}

TEST_F(HttpClientTest, GetWithoutBodySendsNoContentLength) {
    HttpRequest request;
    request.method = "GET";
    request.url = server_->base_url() + "/models";
    auto result = RunSync(client_->Send(std::move(request), Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 200);
    EXPECT_NE(result->body.find("mock-model"), std::string::npos) << result->body;
    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].method, "GET");
    EXPECT_EQ(recorded[0].Header("content-length"), "");
}

TEST_F(HttpClientTest, SequentialCallsReuseOneConnection) {
    std::vector<HttpRequest> requests;
    for (int i = 0; i < 5; ++i) requests.push_back(ChatRequest(server_->base_url(), "call"));
    auto results = RunSync(SendInSequence(client_, std::move(requests)));
    ASSERT_EQ(results.size(), 5u);
    for (const auto& result : results) {
        ASSERT_TRUE(result) << result.error().ToString();
        EXPECT_EQ(result->status, 200);
    }
    EXPECT_EQ(server_->connections_accepted(), 1);
    EXPECT_EQ(server_->requests(), 5);
    auto stats = client_->stats();
    EXPECT_EQ(stats.connections_opened, 1);
    EXPECT_EQ(stats.requests_sent, 5);
    EXPECT_EQ(stats.reuses, 4);
    EXPECT_EQ(client_->idle_connections(), 1u);

    client_->CloseIdleConnections();
    EXPECT_EQ(client_->idle_connections(), 0u);
    EXPECT_TRUE(server_->WaitForOpenConnectionsAtMost(0, kWait));
}

TEST_F(HttpClientTest, ReusedConnectionDroppedByServerIsRetriedOnceOnAFreshOne) {
    MockBehavior drop;
    drop.drop = true;
    server_->AddRule(NodeRule("dropped-once", drop, 1));
    std::vector<HttpRequest> requests;
    requests.push_back(ChatRequest(server_->base_url(), "first"));
    requests.push_back(ChatRequest(server_->base_url(), "second", "dropped-once"));
    auto results = RunSync(SendInSequence(client_, std::move(requests)));
    ASSERT_EQ(results.size(), 2u);
    ASSERT_TRUE(results[0]) << results[0].error().ToString();
    ASSERT_TRUE(results[1]) << results[1].error().ToString();
    EXPECT_EQ(results[1]->status, 200);
    EXPECT_EQ(server_->requests(), 3);
    EXPECT_EQ(server_->connections_accepted(), 2);
    EXPECT_EQ(client_->stats().stale_retries, 1);
    EXPECT_EQ(client_->stats().connections_opened, 2);
}

TEST_F(HttpClientTest, FreshConnectionDroppedByServerIsNotRetried) {
    MockBehavior drop;
    drop.drop = true;
    server_->AddRule(NodeRule("dropped", drop));
    auto result = RunSync(
        client_->Send(ChatRequest(server_->base_url(), "x", "dropped"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(server_->requests(), 1);
    EXPECT_EQ(client_->stats().stale_retries, 0);
}

TEST_F(HttpClientTest, SlowResponsePastDeadlineFailsPromptly) {
    server_->SetLatency(seconds(20));
    auto start = std::chrono::steady_clock::now();
    auto result = RunSync(client_->Send(ChatRequest(server_->base_url(), "slow"),
                                        Deadline::After(milliseconds(200))));
    auto elapsed = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kDeadlineExceeded) << result.error().ToString();
    EXPECT_LT(elapsed, seconds(5));
    // The timed-out connection is closed, not pooled. (The mock only notices when it answers.)
    EXPECT_EQ(client_->idle_connections(), 0u);
    EXPECT_EQ(client_->stats().connections_opened, 1);
}

TEST_F(HttpClientTest, ExpiredDeadlineFailsBeforeConnecting) {
    auto result = RunSync(client_->Send(ChatRequest(server_->base_url(), "late"),
                                        Deadline::At(std::chrono::steady_clock::now())));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kDeadlineExceeded);
    EXPECT_EQ(server_->connections_accepted(), 0);
}

TEST_F(HttpClientTest, CancellationAbortsInFlightRequestAndClosesItsConnection) {
    MockBehavior hang;
    hang.hang = true;
    server_->AddRule(NodeRule("hang", hang));

    asio::cancellation_signal signal;
    std::promise<Result<HttpResponse>> promise;
    asio::co_spawn(
        io_.executor(),
        client_->Send(ChatRequest(server_->base_url(), "x", "hang"), Deadline::After(seconds(60))),
        asio::bind_cancellation_slot(signal.slot(),
                                     [&promise](std::exception_ptr, Result<HttpResponse> result) {
                                         promise.set_value(std::move(result));
                                     }));
    ASSERT_TRUE(server_->WaitForRequests(1, kWait));
    auto start = std::chrono::steady_clock::now();
    // Emit on the thread that owns the coroutine, as asio requires.
    asio::post(io_.executor(), [&signal] { signal.emit(asio::cancellation_type::terminal); });
    auto future = promise.get_future();
    ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
    auto result = future.get();
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kCancelled) << result.error().ToString();
    EXPECT_TRUE(server_->WaitForOpenConnectionsAtMost(0, kWait));
    EXPECT_EQ(client_->idle_connections(), 0u);
}

TEST_F(HttpClientTest, ConnectionRefusedIsUnavailableAndNamesHostAndPort) {
    uint16_t port = UnusedPort();
    HttpRequest request = ChatRequest("http://127.0.0.1:" + std::to_string(port) + "/v1", "x");
    auto result = RunSync(client_->Send(std::move(request), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(result.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
        << result.error().message();
}

TEST_F(HttpClientTest, InvalidUrlIsInvalidArgument) {
    HttpRequest request;
    request.url = "localhost:8080/v1";
    auto result = RunSync(client_->Send(std::move(request), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(HttpClientTest, TruncatedBodyIsUnavailableWithReason) {
    MockBehavior truncated;
    truncated.truncate = true;
    server_->AddRule(NodeRule("cut", truncated));
    auto result = RunSync(
        client_->Send(ChatRequest(server_->base_url(), "x", "cut"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable) << result.error().ToString();
    EXPECT_EQ(result.error().details().reason, "truncated_response");
}

TEST_F(HttpClientTest, OversizedBodyIsResourceExhausted) {
    HttpClientOptions options;
    options.max_response_body_bytes = 1000;
    auto client = MakeClient(io_.executor(), options);
    MockBehavior big;
    big.body = std::string(5000, 'x');
    server_->AddRule(NodeRule("big", big));
    auto result =
        RunSync(client->Send(ChatRequest(server_->base_url(), "x", "big"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kResourceExhausted);
    EXPECT_EQ(result.error().details().reason, "response_too_large");
}

TEST_F(HttpClientTest, StreamingDeliversTheBodyAsItArrives) {
    MockBehavior large;
    for (int i = 0; i < 20000; ++i) large.body += std::to_string(i) + ",";
    server_->AddRule(NodeRule("large", large));
    std::string streamed;
    int chunks = 0;
    auto result = RunSync(client_->SendStreaming(ChatRequest(server_->base_url(), "x", "large"),
                                                 Deadline::After(kWait),
                                                 [&streamed, &chunks](std::string_view chunk) {
                                                     streamed += chunk;
                                                     ++chunks;
                                                     return OkStatus();
                                                 }));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 200);
    EXPECT_TRUE(result->body.empty());
    EXPECT_EQ(streamed, large.body);
    EXPECT_GT(chunks, 1);
}

TEST_F(HttpClientTest, StreamingHandlerErrorStopsReadingAndDropsTheConnection) {
    MockBehavior large;
    for (int i = 0; i < 20000; ++i) large.body += std::to_string(i) + ",";
    server_->AddRule(NodeRule("large", large));
    int chunks = 0;
    auto result = RunSync(client_->SendStreaming(ChatRequest(server_->base_url(), "x", "large"),
                                                 Deadline::After(kWait),
                                                 [&chunks](std::string_view) -> Status {
                                                     ++chunks;
                                                     return InternalError("enough");
                                                 }));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kInternal);
    EXPECT_EQ(result.error().message(), "enough");
    EXPECT_EQ(chunks, 1);
    EXPECT_EQ(client_->idle_connections(), 0u);
    EXPECT_TRUE(server_->WaitForOpenConnectionsAtMost(0, kWait));
}

TEST_F(HttpClientTest, StreamingReturnsErrorBodiesWhole) {
    MockBehavior failing;
    failing.status = 500;
    server_->AddRule(NodeRule("fail", failing));
    int chunks = 0;
    auto result =
        RunSync(client_->SendStreaming(ChatRequest(server_->base_url(), "x", "fail"),
                                       Deadline::After(kWait), [&chunks](std::string_view) {
                                           ++chunks;
                                           return OkStatus();
                                       }));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 500);
    EXPECT_NE(result->body.find("mock error 500"), std::string::npos);
    EXPECT_EQ(chunks, 0);
}

TEST_F(HttpClientTest, ConcurrentRequestsAllSucceed) {
    server_->SetLatency(milliseconds(50));
    std::vector<HttpRequest> requests;
    for (int i = 0; i < 200; ++i) {
        requests.push_back(ChatRequest(server_->base_url(), "n" + std::to_string(i)));
    }
    auto results = SendConcurrently(io_.executor(), client_, std::move(requests));
    ASSERT_EQ(results.size(), 200u);
    for (size_t i = 0; i < results.size(); ++i) {
        ASSERT_TRUE(results[i]) << results[i].error().ToString();
        EXPECT_EQ(results[i]->status, 200);
        EXPECT_NE(results[i]->body.find("echo: n" + std::to_string(i) + "\""), std::string::npos);
    }
    EXPECT_EQ(server_->requests(), 200);
    EXPECT_LE(server_->connections_accepted(), 200);
    EXPECT_EQ(client_->stats().connections_opened, server_->connections_accepted());
}

TEST_F(HttpClientTest, HttpProxyGetsAbsoluteFormRequests) {
    // The mock serves absolute-form requests as a proxy would forward them.
    HttpClientOptions options;
    options.proxy = ProxyConfig{};
    options.proxy->http_proxy =
        "http://proxy-user:proxy-pass@127.0.0.1:" + std::to_string(server_->port());
    auto client = MakeClient(io_.executor(), options);
    auto result = RunSync(client->Send(ChatRequest("http://model.invalid:8000/v1", "via proxy"),
                                       Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 200);
    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].target, "http://model.invalid:8000/v1/chat/completions");
    EXPECT_EQ(recorded[0].Header("host"), "model.invalid:8000");
    EXPECT_EQ(recorded[0].Header("proxy-authorization"), "Basic cHJveHktdXNlcjpwcm94eS1wYXNz");
}

// A minimal CONNECT proxy that tunnels every CONNECT to `upstream_port` on 127.0.0.1, or
// answers each with `refusal` (a status line and headers) when it is given.
class TunnelProxy {
  public:
    explicit TunnelProxy(uint16_t upstream_port, std::string refusal = {})
        : upstream_port_(upstream_port),
          refusal_(std::move(refusal)),
          acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        asio::co_spawn(io_, Accept(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~TunnelProxy() {
        io_.stop();
        thread_.join();
    }
    uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string first_request_line() {
        std::lock_guard lock(mutex_);
        return first_line_;
    }

  private:
    Awaitable<void> Accept() {
        for (;;) {
            auto [ec, socket] =
                co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            asio::co_spawn(io_, Tunnel(std::move(socket)), asio::detached);
        }
    }
    Awaitable<void> Tunnel(tcp::socket client) {
        constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
        std::string head;
        auto [read_ec, n] =
            co_await asio::async_read_until(client, asio::dynamic_buffer(head), "\r\n\r\n", kTuple);
        if (read_ec) co_return;
        {
            std::lock_guard lock(mutex_);
            first_line_ = head.substr(0, head.find("\r\n"));
        }
        if (!refusal_.empty()) {
            co_await asio::async_write(client, asio::buffer(refusal_), kTuple);
            co_return;
        }
        tcp::socket upstream(io_);
        tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), upstream_port_);
        auto [connect_ec] = co_await upstream.async_connect(endpoint, kTuple);
        if (connect_ec) co_return;
        std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
        auto [write_ec, written] = co_await asio::async_write(client, asio::buffer(ok), kTuple);
        if (write_ec) co_return;
        auto shared_client = std::make_shared<tcp::socket>(std::move(client));
        auto shared_upstream = std::make_shared<tcp::socket>(std::move(upstream));
        asio::co_spawn(io_, Pipe(shared_client, shared_upstream), asio::detached);
        co_await Pipe(shared_upstream, shared_client);
    }
    static Awaitable<void> Pipe(std::shared_ptr<tcp::socket> from,
                                std::shared_ptr<tcp::socket> to) {
        constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
        std::array<char, 8192> data;
        for (;;) {
            auto [read_ec, n] = co_await from->async_read_some(asio::buffer(data), kTuple);
            if (read_ec) break;
            auto [write_ec, written] =
                co_await asio::async_write(*to, asio::buffer(data.data(), n), kTuple);
            if (write_ec) break;
        }
        boost::system::error_code ignored;
        to->shutdown(tcp::socket::shutdown_send, ignored);
    }

    uint16_t upstream_port_;
    std::string refusal_;
    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::thread thread_;
    std::mutex mutex_;
    std::string first_line_;  // GUARDED_BY(mutex_)
};

class HttpClientTlsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto cert = strowger::testing::WriteSelfSignedCertificate(dir_.path().string(),
                                                                  {"localhost", "model.invalid"});
        ASSERT_TRUE(cert) << cert.error().ToString();
        cert_ = *cert;
        MockModelServer::Options options;
        options.tls_cert_file = cert_.cert_file;
        options.tls_key_file = cert_.key_file;
        server_ = StartServer(options);
        ASSERT_NE(server_, nullptr);
    }

    std::shared_ptr<HttpClient> TrustingClient(std::optional<ProxyConfig> proxy = std::nullopt) {
        HttpClientOptions options;
        options.extra_ca_file = cert_.cert_file;
        options.proxy = proxy;
        return MakeClient(io_.executor(), options);
    }

    IoThread io_;
    strowger::testing::TempDir dir_;
    strowger::testing::TestCertificate cert_;
    std::unique_ptr<MockModelServer> server_;
};

TEST_F(HttpClientTlsTest, TrustedSelfSignedCertificateWorksByIpAndName) {
    auto client = TrustingClient();
    for (std::string host : {"127.0.0.1", "localhost"}) {
        std::string base = "https://" + host + ":" + std::to_string(server_->port()) + "/v1";
        auto result = RunSync(client->Send(ChatRequest(base, "secure"), Deadline::After(kWait)));
        ASSERT_TRUE(result) << host << ": " << result.error().ToString();
        EXPECT_EQ(result->status, 200);
        EXPECT_NE(result->body.find("echo: secure"), std::string::npos);
    }
    auto second =
        RunSync(client->Send(ChatRequest(server_->base_url(), "again"), Deadline::After(kWait)));
    ASSERT_TRUE(second) << second.error().ToString();
    EXPECT_EQ(client->stats().reuses, 1);
}

TEST_F(HttpClientTlsTest, UntrustedCertificateIsUnavailable) {
    HttpClientOptions options;
    options.extra_ca_file = "";  // the system store only
    auto client = MakeClient(io_.executor(), options);
    auto result =
        RunSync(client->Send(ChatRequest(server_->base_url(), "x"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(result.error().message().find("TLS handshake"), std::string::npos)
        << result.error().message();
    EXPECT_EQ(server_->requests(), 0);
}

// Without Options::extra_ca_file the CA store and $SSL_CERT_FILE (as it was when the client
// was made) are loaded at the first https:// connection, not at Create.
TEST_F(HttpClientTlsTest, SslCertFileIsLoadedAtTheFirstHttpsConnection) {
    const char* before = std::getenv("SSL_CERT_FILE");
    const std::string saved = before != nullptr ? before : "";
    ::setenv("SSL_CERT_FILE", cert_.cert_file.c_str(), 1);
    auto client = MakeClient(io_.executor(), HttpClientOptions{});
    if (before != nullptr) {
        ::setenv("SSL_CERT_FILE", saved.c_str(), 1);
    } else {
        ::unsetenv("SSL_CERT_FILE");
    }
    auto first =
        RunSync(client->Send(ChatRequest(server_->base_url(), "lazy"), Deadline::After(kWait)));
    ASSERT_TRUE(first) << first.error().ToString();
    EXPECT_EQ(first->status, 200);
    auto second = RunSync(client->Send(
        ChatRequest("https://localhost:" + std::to_string(server_->port()) + "/v1", "again"),
        Deadline::After(kWait)));
    ASSERT_TRUE(second) << second.error().ToString();
    EXPECT_NE(second->body.find("echo: again"), std::string::npos);
}

TEST_F(HttpClientTlsTest, MissingCaFileIsInvalidArgument) {
    HttpClientOptions options;
    options.extra_ca_file = (dir_.path() / "absent.pem").string();
    auto client = HttpClient::Create(io_.executor(), options);
    ASSERT_FALSE(client);
    EXPECT_EQ(client.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(HttpClientTlsTest, HttpsGoesThroughConnectTunnel) {
    TunnelProxy proxy(server_->port());
    ProxyConfig config;
    config.https_proxy = "127.0.0.1:" + std::to_string(proxy.port());
    auto client = TrustingClient(config);
    auto result = RunSync(
        client->Send(ChatRequest("https://model.invalid/v1", "tunnelled"), Deadline::After(kWait)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(proxy.first_request_line(), "CONNECT model.invalid:443 HTTP/1.1");
    auto recorded = server_->recorded_requests();
    ASSERT_EQ(recorded.size(), 1u);
    EXPECT_EQ(recorded[0].target, "/v1/chat/completions");
    EXPECT_EQ(recorded[0].Header("host"), "model.invalid");
}

TEST_F(HttpClientTlsTest, AProxysRefusalIsQuotedCapped) {
    TunnelProxy proxy(server_->port(),
                      "HTTP/1.1 403 " + std::string(6000, 'r') + "\r\nContent-Length: 0\r\n\r\n");
    ProxyConfig config;
    config.https_proxy = "127.0.0.1:" + std::to_string(proxy.port());
    auto client = TrustingClient(config);
    auto result = RunSync(
        client->Send(ChatRequest("https://model.invalid/v1", "refused"), Deadline::After(kWait)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(result.error().message().find("refused CONNECT to model.invalid:443: 403 rrr"),
              std::string::npos)
        << result.error().message().substr(0, 200);
    EXPECT_TRUE(result.error().message().ends_with("… (6000 bytes in all)"));
    EXPECT_LT(result.error().message().size(), 400u);
}

}  // namespace
}  // namespace strowger::http
