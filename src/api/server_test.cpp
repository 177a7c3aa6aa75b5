// The HTTP server and router in-process: keep-alive, limits against bad clients (each a 4xx,
// and the server carries on), routing errors, authentication and roles, streamed responses.
// The client side is raw blocking sockets, so a test can send exactly the bytes a bad client
// would.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include "api/auth.hpp"
#include "api/problem.hpp"
#include "api/router.hpp"
#include "api/server.hpp"
#include "store/memory/memory_store.hpp"
#include "testing/test_util.hpp"

namespace strowger::api {
namespace {

using namespace std::chrono_literals;

// A connected blocking socket; every read gives up after 5 s.
class Client {
  public:
    explicit Client(uint16_t port) {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        timeval timeout{5, 0};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    }
    ~Client() { close(fd_); }

    bool connected() const { return connected_; }
    void Send(const std::string& bytes) {
        size_t sent = 0;
        while (sent < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return;
            sent += static_cast<size_t>(n);
        }
    }
    // Reads one response (headers, then Content-Length bytes or chunks up to the last one).
    // "" if the connection closed (or timed out) first.
    std::string ReadResponse() {
        while (true) {
            size_t end = buffer_.find("\r\n\r\n");
            if (end != std::string::npos) {
                std::string head = buffer_.substr(0, end + 4);
                std::string lower = head;
                for (auto& c : lower) c = static_cast<char>(std::tolower(c));
                if (lower.find("transfer-encoding: chunked") != std::string::npos) {
                    size_t last = buffer_.find("\r\n0\r\n\r\n", end);
                    if (last != std::string::npos) {
                        std::string response = buffer_.substr(0, last + 7);
                        buffer_.erase(0, last + 7);
                        return response;
                    }
                } else {
                    size_t length = 0;
                    size_t at = lower.find("content-length: ");
                    if (at != std::string::npos) length = std::stoul(lower.substr(at + 16));
                    if (buffer_.size() >= end + 4 + length) {
                        std::string response = buffer_.substr(0, end + 4 + length);
                        buffer_.erase(0, end + 4 + length);
                        return response;
                    }
                }
            }
            if (!ReadMore()) return {};
        }
    }
    // Reads until the peer closes; true if it did (false on timeout).
    bool ReadUntilClosed() {
        while (true) {
            char chunk[4096];
            ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
            if (n == 0) return true;
            if (n < 0) return errno == ECONNRESET;
            buffer_.append(chunk, static_cast<size_t>(n));
        }
    }
    // Reads until `text` has arrived.
    bool ReadUntil(const std::string& text) {
        while (buffer_.find(text) == std::string::npos) {
            if (!ReadMore()) return false;
        }
        return true;
    }
    const std::string& received() const { return buffer_; }

  private:
    bool ReadMore() {
        char chunk[4096];
        ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) return false;
        buffer_.append(chunk, static_cast<size_t>(n));
        return true;
    }

    int fd_ = -1;
    bool connected_ = false;
    std::string buffer_;
};

// Polls `condition` every 10 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return condition();
}

int StatusOf(const std::string& response) {
    if (response.size() < 12) return 0;
    return std::stoi(response.substr(9, 3));
}

std::string BodyOf(const std::string& response) {
    size_t end = response.find("\r\n\r\n");
    return end == std::string::npos ? "" : response.substr(end + 4);
}

std::string Get(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n";
}

// A server and router on their own I/O thread.
class ServerTest : public ::testing::Test {
  protected:
    void Start(ServerLimits limits = {}) {
        router_ = std::make_unique<Router>(
            [this](std::string_view token) { return tokens_.Authenticate(token); });
        Route hello;
        hello.method = "GET";
        hello.pattern = "/hello/{name}";
        hello.role = Role::kPublic;
        hello.handler = [](Request request) -> Awaitable<Response> {
            co_return RawJsonResponse(200, "{\"hello\":\"" + request.Param("name") + "\"}");
        };
        router_->Add(hello);
        Route echo;
        echo.method = "POST";
        echo.pattern = "/echo";
        echo.role = Role::kOperator;
        echo.handler = [](Request request) -> Awaitable<Response> {
            co_return RawJsonResponse(200, "{\"actor\":\"" + request.actor + "\",\"bytes\":" +
                                               std::to_string(request.body.size()) + "}");
        };
        router_->Add(echo);
        Route stream;
        stream.method = "GET";
        stream.pattern = "/stream";
        stream.role = Role::kPublic;
        stream.handler = [this](Request) -> Awaitable<Response> {
            Response response;
            response.content_type = "text/event-stream";
            response.stream = [this](StreamWriter& writer) -> Awaitable<void> {
                for (int i = 1; i <= 3; ++i) {
                    co_await writer.Write("data: " + std::to_string(i) + "\n\n");
                }
                // Then wait for the client to go away: the wait is cancelled.
                asio::steady_timer forever(co_await asio::this_coro::executor);
                forever.expires_after(std::chrono::hours(1));
                auto [ec] = co_await forever.async_wait(asio::as_tuple(asio::use_awaitable));
                stream_ended_.set_value(ec == asio::error::operation_aborted);
            };
            co_return response;
        };
        router_->Add(stream);
        Route finite;
        finite.method = "GET";
        finite.pattern = "/finite";
        finite.role = Role::kPublic;
        finite.handler = [](Request) -> Awaitable<Response> {
            Response response;
            response.content_type = "text/event-stream";
            response.stream = [](StreamWriter& writer) -> Awaitable<void> {
                co_await writer.Write("data: only\n\n");
            };
            co_return response;
        };
        router_->Add(finite);

        auto listened = HttpServer::Listen(
            io_.get_executor(), "127.0.0.1", 0,
            [this](Request request) { return router_->Dispatch(std::move(request)); }, limits);
        ASSERT_TRUE(listened.has_value()) << listened.error().ToString();
        server_ = std::move(*listened);
        port_ = server_->port();
        thread_ = std::thread([this] { io_.run(); });
    }

    // Runs `f` on the server's thread and waits for it.
    template <typename F>
    auto OnServer(F f) {
        std::promise<decltype(f())> done;
        asio::post(io_, [&] { done.set_value(f()); });
        return done.get_future().get();
    }

    void TearDown() override {
        if (thread_.joinable()) {
            asio::post(io_, [this] { server_.reset(); });
            io_.stop();
            thread_.join();
        }
    }

    asio::io_context io_;
    std::shared_ptr<store::MemoryStore> store_ = std::make_shared<store::MemoryStore>();
    TokenRegistry tokens_{store_};
    std::unique_ptr<Router> router_;
    std::unique_ptr<HttpServer> server_;
    uint16_t port_ = 0;
    std::thread thread_;
    std::promise<bool> stream_ended_;
};

TEST_F(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
    Start();
    Client client(port_);
    ASSERT_TRUE(client.connected());
    for (int i = 0; i < 3; ++i) {
        client.Send(Get("/hello/w%20" + std::to_string(i)));
        std::string response = client.ReadResponse();
        EXPECT_EQ(StatusOf(response), 200) << response;
        EXPECT_EQ(BodyOf(response), "{\"hello\":\"w " + std::to_string(i) + "\"}");
    }
    // Two pipelined requests, the second asking to close.
    client.Send(Get("/hello/a") + Get("/hello/b", "Connection: close\r\n"));
    EXPECT_EQ(BodyOf(client.ReadResponse()), "{\"hello\":\"a\"}");
    std::string last = client.ReadResponse();
    EXPECT_NE(last.find("Connection: close"), std::string::npos) << last;
    EXPECT_TRUE(client.ReadUntilClosed());
    EXPECT_EQ(OnServer([&] { return server_->stats().requests; }), 5);
}

TEST_F(ServerTest, UnknownPathsAndMethodsAreProblems) {
    Start();
    Client client(port_);
    client.Send(Get("/nothing/here"));
    std::string missing = client.ReadResponse();
    EXPECT_EQ(StatusOf(missing), 404);
    EXPECT_NE(missing.find("Content-Type: application/problem+json"), std::string::npos);
    EXPECT_NE(BodyOf(missing).find("\"status\":404"), std::string::npos);
    client.Send("DELETE /hello/x HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string wrong = client.ReadResponse();
    EXPECT_EQ(StatusOf(wrong), 405);
    EXPECT_NE(wrong.find("Allow: GET"), std::string::npos) << wrong;
    client.Send(Get("/hello/%zz"));
    EXPECT_EQ(StatusOf(client.ReadResponse()), 400);
}

TEST_F(ServerTest, OversizedHeaderAndBodyGet4xxAndTheServerCarriesOn) {
    ServerLimits limits;
    limits.max_header_bytes = 1024;
    limits.max_body_bytes = 100;
    Start(limits);
    {
        Client client(port_);
        client.Send(Get("/hello/x", "X-Big: " + std::string(4000, 'a') + "\r\n"));
        EXPECT_EQ(StatusOf(client.ReadResponse()), 431);
        EXPECT_TRUE(client.ReadUntilClosed());
    }
    {
        Client client(port_);
        client.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
        EXPECT_EQ(StatusOf(client.ReadResponse()), 413);
        EXPECT_TRUE(client.ReadUntilClosed());
    }
    {
        // Chunked: no Content-Length to refuse it by; the parser's limit stops it.
        Client client(port_);
        client.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n" +
                    std::string(128, 'b') + "\r\n0\r\n\r\n");
        EXPECT_EQ(StatusOf(client.ReadResponse()), 413);
    }
    Client after(port_);
    after.Send(Get("/hello/still"));
    EXPECT_EQ(StatusOf(after.ReadResponse()), 200);
    EXPECT_EQ(OnServer([&] { return server_->stats().requests_refused; }), 3);
}

TEST_F(ServerTest, SlowHeadersAreCutOffWith408AndIdleConnectionsClosed) {
    ServerLimits limits;
    limits.header_timeout = 300ms;
    limits.idle_timeout = 300ms;
    Start(limits);
    Client slow(port_);
    slow.Send("GET /hello/x HTTP/1.1\r\nHost:");  // and never the rest
    std::string response = slow.ReadResponse();
    EXPECT_EQ(StatusOf(response), 408) << response;
    EXPECT_TRUE(slow.ReadUntilClosed());

    Client idle(port_);
    idle.Send(Get("/hello/y"));
    EXPECT_EQ(StatusOf(idle.ReadResponse()), 200);
    EXPECT_TRUE(idle.ReadUntilClosed());  // after idle_timeout, without a response

    Client fine(port_);
    fine.Send(Get("/hello/z"));
    EXPECT_EQ(StatusOf(fine.ReadResponse()), 200);
}

TEST_F(ServerTest, ConnectionsOverTheCapAreRefusedWith429) {
    ServerLimits limits;
    limits.max_connections = 2;
    Start(limits);
    Client first(port_), second(port_);
    first.Send(Get("/hello/1"));
    second.Send(Get("/hello/2"));
    ASSERT_EQ(StatusOf(first.ReadResponse()), 200);
    ASSERT_EQ(StatusOf(second.ReadResponse()), 200);
    Client third(port_);
    std::string refused = third.ReadResponse();
    EXPECT_EQ(StatusOf(refused), 429) << refused;
    EXPECT_NE(refused.find("Retry-After: 1"), std::string::npos);
    // The first two still work.
    first.Send(Get("/hello/again"));
    EXPECT_EQ(StatusOf(first.ReadResponse()), 200);
    EXPECT_EQ(OnServer([&] { return server_->stats().connections_refused; }), 1);
}

TEST_F(ServerTest, MutationsNeedAValidTokenOfTheRightRoleNeverInTheUrl) {
    // Tokens are made before the server thread starts (the registry has one executor).
    auto make = [&](std::string name, std::string role) {
        auto created = testing::RunSync(tokens_.Create(name, role, "test"));
        EXPECT_TRUE(created.has_value()) << created.error().ToString();
        return created ? created->token : std::string();
    };
    std::string viewer = make("watcher", "viewer");
    std::string op = make("deployer", "operator");
    std::string revoked = make("old", "admin");
    ASSERT_TRUE(testing::RunSync(tokens_.Revoke("old")).has_value());
    EXPECT_EQ(viewer.substr(0, 4), "stg_");
    EXPECT_EQ(viewer.size(), 4u + 43u);
    EXPECT_EQ(tokens_.live(), 2u);
    Start();

    auto post = [&](const std::string& extra, const std::string& target = "/echo") {
        Client client(port_);
        client.Send("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" + extra +
                    "\r\n{}");
        return client.ReadResponse();
    };
    std::string none = post("");
    EXPECT_EQ(StatusOf(none), 401);
    EXPECT_NE(none.find("WWW-Authenticate: Bearer"), std::string::npos);
    EXPECT_EQ(StatusOf(post("Authorization: Bearer stg_wrong\r\n")), 401);
    EXPECT_EQ(StatusOf(post("Authorization: Bearer " + revoked + "\r\n")), 401);
    // A token whose first or last character is wrong is refused alike.
    std::string first_wrong = op, last_wrong = op;
    first_wrong[4] = first_wrong[4] == 'A' ? 'B' : 'A';
    last_wrong.back() = last_wrong.back() == 'A' ? 'B' : 'A';
    EXPECT_EQ(StatusOf(post("Authorization: Bearer " + first_wrong + "\r\n")), 401);
    EXPECT_EQ(StatusOf(post("Authorization: Bearer " + last_wrong + "\r\n")), 401);
    std::string forbidden = post("Authorization: Bearer " + viewer + "\r\n");
    EXPECT_EQ(StatusOf(forbidden), 403);
    EXPECT_NE(BodyOf(forbidden).find("needs operator"), std::string::npos) << forbidden;
    std::string in_url = post("", "/echo?access_token=" + op);
    EXPECT_EQ(StatusOf(in_url), 400);
    EXPECT_NE(BodyOf(in_url).find("token-in-url"), std::string::npos);
    std::string ok = post("Authorization: Bearer " + op + "\r\n");
    EXPECT_EQ(StatusOf(ok), 200) << ok;
    EXPECT_EQ(BodyOf(ok), "{\"actor\":\"deployer\",\"bytes\":2}");
}

TEST_F(ServerTest, StreamsAreChunkedAndEndWhenTheClientGoesAway) {
    Start();
    {
        Client client(port_);
        client.Send(Get("/finite"));
        std::string response = client.ReadResponse();
        EXPECT_EQ(StatusOf(response), 200);
        EXPECT_NE(response.find("Transfer-Encoding: chunked"), std::string::npos);
        EXPECT_NE(response.find("data: only\n\n"), std::string::npos);
    }
    auto ended = stream_ended_.get_future();
    {
        Client client(port_);
        client.Send(Get("/stream"));
        ASSERT_TRUE(client.ReadUntil("data: 3\n\n"));
        EXPECT_EQ(OnServer([&] { return server_->stats().streams_open; }), 1);
    }  // closed
    ASSERT_EQ(ended.wait_for(5s), std::future_status::ready);
    EXPECT_TRUE(ended.get());
    EXPECT_TRUE(
        WaitFor([&] { return OnServer([&] { return server_->stats().streams_open; }) == 0; }, 5s));
}

TEST_F(ServerTest, StopAcceptingClosesIdleConnectionsAndRefusesNewOnes) {
    Start();
    Client idle(port_);
    idle.Send(Get("/hello/1"));
    ASSERT_EQ(StatusOf(idle.ReadResponse()), 200);
    OnServer([&] {
        server_->StopAccepting();
        return 0;
    });
    EXPECT_TRUE(idle.ReadUntilClosed());
    Client late(port_);
    EXPECT_FALSE(late.connected() && StatusOf(late.ReadResponse()) == 200);
}

TEST(AuthTest, TokensHashesAndConstantTimeComparison) {
    std::set<std::string> seen;
    for (int i = 0; i < 100; ++i) {
        std::string token = NewTokenText();
        ASSERT_EQ(token.size(), 47u);
        EXPECT_EQ(token.find_first_not_of(
                      "stg_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"),
                  std::string::npos);
        EXPECT_TRUE(seen.insert(token).second);
    }
    EXPECT_EQ(TokenHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_TRUE(ConstantTimeEquals("same", "same"));
    EXPECT_FALSE(ConstantTimeEquals("same", "sane"));
    EXPECT_FALSE(ConstantTimeEquals("same", "same!"));
    EXPECT_TRUE(CheckTokenName("ci-bot.prod_1").has_value());
    EXPECT_FALSE(CheckTokenName("").has_value());
    EXPECT_FALSE(CheckTokenName("has space").has_value());
    EXPECT_FALSE(CheckTokenName(std::string(65, 'a')).has_value());
}

TEST(AuthTest, TokenFileIsPrivate) {
    testing::TempDir dir;
    std::string path = (dir.path() / "cfg" / "token").string();
    ASSERT_TRUE(WriteTokenFileBlocking(path, "stg_secret").has_value());
    struct stat info {};
    ASSERT_EQ(stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    auto read = ReadTokenFileBlocking(path);
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(*read, "stg_secret");
    EXPECT_EQ(ReadTokenFileBlocking(path + ".none").error().code(), ErrorCode::kNotFound);
}

TEST(HttpTest, TargetsSplitAndDecode) {
    std::string path;
    Fields query;
    ASSERT_TRUE(SplitTarget("/api/runs/a%2Fb?status=running&x=1+2&empty=&flag", path, query));
    EXPECT_EQ(path, "/api/runs/a%2Fb");  // the router decodes segment by segment
    ASSERT_EQ(query.size(), 4u);
    EXPECT_EQ(query[0], (std::pair<std::string, std::string>("status", "running")));
    EXPECT_EQ(query[1].second, "1 2");
    EXPECT_EQ(query[2].second, "");
    EXPECT_EQ(query[3].first, "flag");
    EXPECT_FALSE(SplitTarget("/a?x=%2", path, query));
    EXPECT_FALSE(SplitTarget("/a?%g1=1", path, query));
    EXPECT_EQ(PercentDecode("a%2Fb", false), std::optional<std::string>("a/b"));
    EXPECT_EQ(PercentDecode("a%2", false), std::nullopt);
}

}  // namespace
}  // namespace strowger::api
