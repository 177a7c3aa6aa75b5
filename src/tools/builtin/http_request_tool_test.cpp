// http_request against a loopback server the test runs: the allowlist, the private-address
// refusal (and its grant), the Idempotency-Key header, and the address classification.
#include "tools/builtin/http_request_tool.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "testing/test_util.hpp"
#include "tools/builtin/builtin_tools.hpp"

namespace strowger::tools::builtin {
namespace {

using testing::RunSync;

// Answers every request on 127.0.0.1 with `status` and `body` on its own thread, and records
// the raw requests. Blocking sockets, one connection at a time, Connection: close.
class LoopbackHttpServer {
  public:
    LoopbackHttpServer(int status, std::string body) : status_(status), body_(std::move(body)) {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        listen(fd_, 16);
        socklen_t length = sizeof address;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] { Serve(); });
    }
    ~LoopbackHttpServer() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    int port() const { return port_; }
    std::vector<std::string> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }

  private:
    void Serve() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 20) <= 0) continue;
            int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (client < 0) continue;
            std::string request;
            char buffer[4096];
            size_t header_end = std::string::npos;
            size_t wanted = 0;
            while (true) {
                ssize_t n = read(client, buffer, sizeof buffer);
                if (n <= 0) break;
                request.append(buffer, static_cast<size_t>(n));
                if (header_end == std::string::npos) {
                    header_end = request.find("\r\n\r\n");
                    if (header_end != std::string::npos) {
                        auto lower = AsciiLower(request.substr(0, header_end));
                        auto at = lower.find("content-length:");
                        wanted = at == std::string::npos ? 0 : std::stoul(lower.substr(at + 15));
                    }
                }
                if (header_end != std::string::npos && request.size() >= header_end + 4 + wanted)
                    break;
            }
            {
                std::lock_guard lock(mutex_);
                requests_.push_back(request);
            }
            std::string response = "HTTP/1.1 " + std::to_string(status_) +
                                   " Whatever\r\nContent-Type: text/plain\r\nContent-Length: " +
                                   std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n" +
                                   body_;
            ssize_t ignored = write(client, response.data(), response.size());
            (void)ignored;
            close(client);
        }
    }

    int status_;
    std::string body_;
    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<std::string> requests_;
};

// Creates the client and tool on the coroutine's own executor, so both live and die with it.
Awaitable<Result<ToolResult>> CallTool(std::string arguments, ToolContext context,
                                       HttpRequestToolOptions options) {
    http::HttpClientOptions client_options;
    client_options.proxy = http::ProxyConfig{};  // the environment's proxies do not apply
    auto client = http::HttpClient::Create(co_await asio::this_coro::executor, client_options);
    if (!client) co_return std::unexpected(client.error());
    auto tool = MakeHttpRequestTool(*client, options);
    co_return co_await tool->Call(std::move(arguments), std::move(context));
}

class HttpRequestToolTest : public ::testing::Test {
  protected:
    void SetUp() override { context_.idempotency_key = "run-9/fetch/1/2"; }

    Result<ToolResult> Call(json::object args) {
        return RunSync(CallTool(json::serialize(args), context_, options_),
                       std::chrono::seconds(30));
    }
    std::string Url(const LoopbackHttpServer& server, std::string_view host = "127.0.0.1") {
        return "http://" + std::string(host) + ":" + std::to_string(server.port()) + "/path?q=1";
    }

    ToolContext context_;
    HttpRequestToolOptions options_;
};

TEST_F(HttpRequestToolTest, HostOutsideTheAllowlistIsRefused) {
    LoopbackHttpServer server(200, "hello");
    context_.grants.private_addresses = true;
    context_.grants.http_hosts = {"example.com"};
    json::object args;
    args["url"] = Url(server);
    auto result = Call(args);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_EQ(result.error().message(),
              "http_request: host \"127.0.0.1\" is not in this agent's http_hosts allowlist");
    EXPECT_TRUE(server.requests().empty());
}

TEST_F(HttpRequestToolTest, LoopbackIsRefusedByDefault) {
    LoopbackHttpServer server(200, "hello");
    context_.grants.http_hosts = {"127.0.0.1", "localhost"};
    json::object args;
    args["url"] = Url(server);
    auto by_address = Call(args);
    ASSERT_FALSE(by_address);
    EXPECT_EQ(by_address.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_NE(by_address.error().message().find("resolves to 127.0.0.1"), std::string::npos);
    args["url"] = Url(server, "localhost");
    auto by_name = Call(args);
    ASSERT_FALSE(by_name);
    EXPECT_EQ(by_name.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_TRUE(server.requests().empty());
}

TEST_F(HttpRequestToolTest, MetadataAddressIsRefused) {
    context_.grants.http_hosts = {"*"};
    json::object args;
    args["url"] = "http://169.254.169.254/latest/meta-data/";
    auto result = Call(args);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kPermissionDenied);
}

TEST_F(HttpRequestToolTest, GrantedPrivateAddressesReachTheServer) {
    LoopbackHttpServer server(200, "hello from server");
    context_.grants.http_hosts = {"127.0.0.1"};
    context_.grants.private_addresses = true;
    json::object args;
    args["method"] = "post";
    args["url"] = Url(server);
    args["headers"] = json::object{{"X-Test", "yes"}, {"Idempotency-Key", "model-chosen"}};
    args["body"] = "payload";
    auto result = Call(args);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_FALSE(result->is_error);
    EXPECT_EQ(result->content.rfind("HTTP 200\n", 0), 0u) << result->content;
    EXPECT_NE(result->content.find("\n\nhello from server"), std::string::npos);
    auto requests = server.requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].rfind("POST /path?q=1 HTTP/1.1\r\n", 0), 0u) << requests[0];
    EXPECT_NE(requests[0].find("Idempotency-Key: run-9/fetch/1/2\r\n"), std::string::npos);
    EXPECT_EQ(requests[0].find("model-chosen"), std::string::npos);
    EXPECT_NE(requests[0].find("X-Test: yes\r\n"), std::string::npos);
    EXPECT_NE(requests[0].find("\r\n\r\npayload"), std::string::npos);
}

TEST_F(HttpRequestToolTest, ErrorStatusAndLongBodies) {
    LoopbackHttpServer server(404, "not here, not anywhere");
    context_.grants.http_hosts = {"127.0.0.1"};
    context_.grants.private_addresses = true;
    options_.max_body_bytes = 8;
    json::object args;
    args["url"] = Url(server);
    auto result = Call(args);
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_TRUE(result->is_error);
    EXPECT_EQ(result->content.rfind("HTTP 404\n", 0), 0u);
    EXPECT_NE(result->content.find("\n\nnot here\n[http_request: body truncated; showing the "
                                   "first 8 of 22 bytes]"),
              std::string::npos)
        << result->content;
}

TEST_F(HttpRequestToolTest, ArgumentErrors) {
    context_.grants.http_hosts = {"*"};
    json::object bad_method;
    bad_method["url"] = "http://example.com/";
    bad_method["method"] = "BREW";
    auto r1 = Call(bad_method);
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r1.error().message().find("\"method\""), std::string::npos);
    json::object bad_url;
    bad_url["url"] = "ftp://example.com/";
    auto r2 = Call(bad_url);
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r2.error().message().find("\"url\""), std::string::npos);
    json::object bad_headers;
    bad_headers["url"] = "http://example.com/";
    bad_headers["headers"] = json::object{{"X", 1}};
    auto r3 = Call(bad_headers);
    ASSERT_FALSE(r3);
    EXPECT_EQ(r3.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r3.error().message().find("\"headers\""), std::string::npos);
    auto r4 = Call(json::object{});
    ASSERT_FALSE(r4);
    EXPECT_EQ(r4.error().message(), "http_request: \"url\" is required");
}

TEST(HttpAllowlistTest, ExactAndWildcardHosts) {
    std::vector<std::string> allow = {"api.example.com", "*.trusted.org"};
    EXPECT_TRUE(HostAllowed("api.example.com", allow));
    EXPECT_TRUE(HostAllowed("API.Example.COM.", allow));
    EXPECT_FALSE(HostAllowed("example.com", allow));
    EXPECT_FALSE(HostAllowed("evil-api.example.com", allow));
    EXPECT_TRUE(HostAllowed("a.trusted.org", allow));
    EXPECT_TRUE(HostAllowed("a.b.trusted.org", allow));
    EXPECT_FALSE(HostAllowed("trusted.org", allow));
    EXPECT_FALSE(HostAllowed("nottrusted.org", allow));
    EXPECT_FALSE(HostAllowed("anything", {}));
    EXPECT_TRUE(HostAllowed("anything", {"*"}));
}

TEST(HttpAddressTest, PrivateAndSpecialAddressesAreNotPublic) {
    auto is_public = [](const char* text) {
        return IsPublicAddress(boost::asio::ip::make_address(text));
    };
    for (const char* address : {"127.0.0.1",
                                "127.255.0.3",
                                "10.1.2.3",
                                "172.16.0.1",
                                "172.31.255.255",
                                "192.168.1.1",
                                "169.254.169.254",
                                "0.0.0.0",
                                "100.64.0.1",
                                "224.0.0.1",
                                "255.255.255.255",
                                "::1",
                                "::",
                                "fe80::1",
                                "fc00::1",
                                "fd12:3456::1",
                                "ff02::1",
                                "::ffff:127.0.0.1",
                                "::ffff:10.0.0.1",
                                "64:ff9b::a9fe:a9fe",
                                "2002:7f00:1::1",
                                "::127.0.0.1"}) {
        EXPECT_FALSE(is_public(address)) << address;
    }
    for (const char* address : {"8.8.8.8", "1.1.1.1", "172.32.0.1", "192.169.0.1",
                                "2001:4860:4860::8888", "::ffff:8.8.8.8", "2002:808:808::1"}) {
        EXPECT_TRUE(is_public(address)) << address;
    }
}

}  // namespace
}  // namespace strowger::tools::builtin
