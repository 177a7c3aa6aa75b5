// Fuzzes how a model server's HTTP response becomes a completion or an error: the bytes after the
// first are what a loopback server answers, through the real HttpClient (its response parsing
// around Beast's parser: interim responses, the body limit, streamed 2xx bodies, the end of the
// stream) into the OpenAI or Anthropic provider (http_completion.hpp, the body and stream
// decoders, the error and Retry-After mapping).
//
// The first byte picks: bit 0 streamed or not, bit 1 OpenAI or Anthropic, bit 2 through an HTTP
// proxy (the client's coroutine path over Beast streams) or direct (its callback path), bits 4-7
// how the server cuts its answer into writes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "core/asio.hpp"
#include "providers/anthropic/anthropic_provider.hpp"
#include "providers/http/http_client.hpp"
#include "providers/openai/openai_provider.hpp"

namespace {

using namespace strowger;
using tcp = asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

class Sink : public providers::StreamSink {
  public:
    void OnDelta(std::string_view text) override { streamed_ += text.size(); }

  private:
    size_t streamed_ = 0;
};

// Made once: a client loads the CA store when created.
struct World {
    World()
        : acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
          port(acceptor.local_endpoint().port()) {
        http::HttpClientOptions options;
        options.proxy = http::ProxyConfig{};
        options.max_response_body_bytes = 4096;  // small, so the fuzzer meets the limit
        direct = *http::HttpClient::Create(io.get_executor(), options);
        options.proxy->http_proxy = "http://127.0.0.1:" + std::to_string(port);
        proxied = *http::HttpClient::Create(io.get_executor(), options);
    }

    asio::io_context io;
    tcp::acceptor acceptor;
    uint16_t port;
    std::shared_ptr<http::HttpClient> direct;
    std::shared_ptr<http::HttpClient> proxied;
};

World& TheWorld() {
    static World* world = new World;
    return *world;
}

// Answers every connection with `response` (in writes of `piece` bytes), then drains what the
// client sends until it closes. Stops accepting once `done` is set.
struct Server {
    std::string response;
    size_t piece = 0;
    bool done = false;
    std::vector<std::shared_ptr<tcp::socket>> sockets;
};

Awaitable<void> Serve(std::shared_ptr<Server> server, std::shared_ptr<tcp::socket> socket) {
    std::string_view rest = server->response;
    while (!rest.empty()) {
        size_t n = std::min(server->piece, rest.size());
        auto [ec, written] =
            co_await asio::async_write(*socket, asio::buffer(rest.data(), n), kUseTuple);
        if (ec) co_return;
        rest.remove_prefix(n);
    }
    boost::system::error_code ignored;
    socket->shutdown(tcp::socket::shutdown_send, ignored);
    char drain[4096];
    for (;;) {
        auto [ec, n] = co_await socket->async_read_some(asio::buffer(drain), kUseTuple);
        if (ec) co_return;
    }
}

Awaitable<void> Accept(std::shared_ptr<Server> server, tcp::acceptor& acceptor) {
    while (!server->done) {
        auto socket = std::make_shared<tcp::socket>(acceptor.get_executor());
        auto [ec] = co_await acceptor.async_accept(*socket, kUseTuple);
        if (ec || server->done) co_return;
        server->sockets.push_back(socket);
        asio::co_spawn(acceptor.get_executor(), Serve(server, socket), asio::detached);
    }
}

Awaitable<void> Call(std::shared_ptr<Server> server, uint8_t mode) {
    World& world = TheWorld();
    bool streamed = mode & 1;
    bool anthropic = mode & 2;
    bool proxy = mode & 4;
    auto client = proxy ? world.proxied : world.direct;
    // Loopback targets are never proxied: through the proxy, the target is a name.
    std::string base =
        proxy ? "http://model.invalid" : "http://127.0.0.1:" + std::to_string(world.port);
    std::unique_ptr<providers::Provider> provider;
    if (anthropic) {
        providers::AnthropicConfig config;
        config.base_url = base;
        config.api_key_env = "";
        provider = std::make_unique<providers::AnthropicProvider>(config, client);
    } else {
        providers::OpenAiConfig config;
        config.base_url = base + "/v1";
        config.api_key_env = "";
        provider = std::make_unique<providers::OpenAiProvider>(config, client);
    }
    providers::CompletionRequest request;
    request.model = "m";
    request.messages.push_back({providers::Role::kUser, "hello", {}, "", ""});
    Sink sink;
    if (streamed) request.stream = &sink;
    Result<providers::Completion> completion =
        co_await provider->Complete(std::move(request), Deadline::After(std::chrono::seconds(10)));
    (void)completion;
    // Ends the exchange on the server side too: pooled connections close, the accept stops.
    server->done = true;
    client->CloseIdleConnections();
    world.acceptor.cancel();
    for (auto& socket : server->sockets) {
        boost::system::error_code ignored;
        socket->close(ignored);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    World& world = TheWorld();
    auto server = std::make_shared<Server>();
    server->response.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
    server->piece = data[0] >> 4 == 0 ? server->response.size() + 1 : size_t{1} << (data[0] >> 4);
    asio::co_spawn(world.io, Accept(server, world.acceptor), asio::detached);
    asio::co_spawn(world.io, Call(server, data[0]), asio::detached);
    world.io.restart();
    world.io.run();
    return 0;
}
