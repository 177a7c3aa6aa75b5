// The CONNECT workload: what the kernel charges for the connections of W3 over HTTP, without
// the engine, HTTP or JSON. The parent opens `connections` non-blocking loopback TCP
// connections one after another, each with TCP_NODELAY and registered with epoll (as Asio
// does), and writes one request-sized message on each; a forked child accepts them with
// epoll and reads every message. It reports the wall time until the child has read them all
// and each side's CPU time per connection: the floor under W3's first wave, where every run
// opens its connection.
#include "connect_floor.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace strowger::bench {
namespace {

constexpr size_t kMessageSize = 700;  // about one W3 chat completion request

double Seconds(const timeval& t) {
    return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6;
}

// The child: accepts and reads until `total` bytes have arrived, then writes one byte to
// `done_fd` and exits.
[[noreturn]] void Serve(int listener, size_t total, int done_fd) {
    int epoll = epoll_create1(0);
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = listener;
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    std::vector<epoll_event> ready(256);
    std::vector<char> buffer(16384);
    size_t received = 0;
    const int one = 1;
    while (received < total) {
        int n = epoll_wait(epoll, ready.data(), static_cast<int>(ready.size()), -1);
        for (int i = 0; i < n; ++i) {
            int fd = ready[static_cast<size_t>(i)].data.fd;
            if (fd == listener) {
                for (;;) {
                    int accepted = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
                    if (accepted < 0) break;
                    setsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event e{};
                    e.events = EPOLLIN | EPOLLET;
                    e.data.fd = accepted;
                    epoll_ctl(epoll, EPOLL_CTL_ADD, accepted, &e);
                }
                continue;
            }
            for (;;) {
                ssize_t got = read(fd, buffer.data(), buffer.size());
                if (got <= 0) break;
                received += static_cast<size_t>(got);
            }
        }
    }
    char byte = 1;
    (void)!write(done_fd, &byte, 1);
    _exit(0);
}

}  // namespace

int ConnectFloor(int64_t connections) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        listen(listener, 65535) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        std::cerr << "CONNECT: cannot listen on loopback: " << std::strerror(errno) << "\n";
        return 1;
    }
    int done[2];
    if (pipe(done) != 0) return 1;
    const size_t total = static_cast<size_t>(connections) * kMessageSize;
    pid_t child = fork();
    if (child == 0) Serve(listener, total, done[1]);
    close(listener);

    const std::string message(kMessageSize, 'x');
    const int one = 1;
    int epoll = epoll_create1(0);
    std::vector<int> sockets;
    sockets.reserve(static_cast<size_t>(connections));
    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < connections; ++i) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            std::cerr << "CONNECT: socket: " << std::strerror(errno) << "\n";
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event event{};
        event.events = EPOLLIN | EPOLLOUT | EPOLLET;
        event.data.fd = fd;
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
        if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 &&
            errno != EINPROGRESS) {
            std::cerr << "CONNECT: connect: " << std::strerror(errno) << "\n";
            return 1;
        }
        // On loopback the handshake completes inside connect(): the write goes out at once.
        if (send(fd, message.data(), message.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(message.size())) {
            std::cerr << "CONNECT: send: " << std::strerror(errno) << "\n";
            return 1;
        }
        sockets.push_back(fd);
    }
    rusage after{};
    getrusage(RUSAGE_SELF, &after);
    char byte = 0;
    (void)!read(done[0], &byte, 1);
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rusage server{};
    wait4(child, nullptr, 0, &server);
    for (int fd : sockets) close(fd);

    const auto n = static_cast<double>(connections);
    boost::json::object out;
    out["workload"] = "CONNECT";
    out["connections"] = connections;
    out["message_bytes"] = kMessageSize;
    out["wall_s"] = wall;
    out["client_user_us_per_connection"] =
        (Seconds(after.ru_utime) - Seconds(before.ru_utime)) * 1e6 / n;
    out["client_system_us_per_connection"] =
        (Seconds(after.ru_stime) - Seconds(before.ru_stime)) * 1e6 / n;
    out["server_cpu_us_per_connection"] =
        (Seconds(server.ru_utime) + Seconds(server.ru_stime)) * 1e6 / n;
    std::cout << boost::json::serialize(out) << std::endl;
    return 0;
}

}  // namespace strowger::bench
