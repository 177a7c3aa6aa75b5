// Event-stream benchmarks against a running `strowger serve` (docs/performance.md, "Daemon"):
//
//   strowger_serve_bench sse --port P --token T --workflow W [--runs 10000] [--subscribers 1000]
//     starts --runs runs of W (POST /api/runs, pipelined on one keep-alive connection, from a
//     thread of its own) and follows the first --subscribers of them, each on its own event
//     stream, until they end; reports the
//     delivery delay of every event committed after its stream was open (receipt time minus the
//     event's `time`), p50/p99/max.
//   strowger_serve_bench idle --port P --token T --pid PID [--subscribers 1000]
//     opens --subscribers streams of GET /api/events and reports the daemon's RSS before and
//     after: memory per open stream.
//
// The streams are read by one thread, poll(2) over all of them: the client is not what is
// measured.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Args {
    std::string mode;
    int port = 0;
    std::string token;
    std::string workflow;
    int runs = 10000;
    int subscribers = 1000;
    int pid = 0;
};

int Connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        std::perror("connect");
        std::exit(1);
    }
    return fd;
}

void SendAll(int fd, const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            std::perror("send");
            std::exit(1);
        }
        sent += static_cast<size_t>(n);
    }
}

// One response on a blocking keep-alive connection (Content-Length bodies).
std::string ReadResponse(int fd, std::string& buffer) {
    while (true) {
        size_t end = buffer.find("\r\n\r\n");
        if (end != std::string::npos) {
            size_t at = buffer.find("Content-Length: ");
            size_t length = at < end ? std::stoul(buffer.substr(at + 16)) : 0;
            if (buffer.size() >= end + 4 + length) {
                std::string body = buffer.substr(end + 4, length);
                buffer.erase(0, end + 4 + length);
                return body;
            }
        }
        char chunk[65536];
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            std::fprintf(stderr, "connection closed\n");
            std::exit(1);
        }
        buffer.append(chunk, static_cast<size_t>(n));
    }
}

// Microseconds since the epoch of "2026-12-07T03:06:16.110332Z".
int64_t ParseTime(const char* text) {
    std::tm tm{};
    int micros = 0;
    if (std::sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros) != 7) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<int64_t>(timegm(&tm)) * 1'000'000 + micros;
}

int64_t NowMicros() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct Stream {
    int fd = -1;
    int64_t opened_us = 0;
    bool head_done = false;
    bool ended = false;
    std::string raw;   // bytes not yet de-chunked
    std::string body;  // de-chunked, not yet split into events
};

// Consumes what `stream` received; appends delays (µs) of events committed after it opened.
void Consume(Stream& stream, std::vector<int64_t>& delays, int64_t received_us) {
    if (!stream.head_done) {
        size_t end = stream.raw.find("\r\n\r\n");
        if (end == std::string::npos) return;
        stream.raw.erase(0, end + 4);
        stream.head_done = true;
    }
    while (true) {
        size_t line = stream.raw.find("\r\n");
        if (line == std::string::npos) break;
        size_t size = std::strtoul(stream.raw.c_str(), nullptr, 16);
        if (size == 0) {
            stream.ended = true;
            stream.raw.clear();
            break;
        }
        if (stream.raw.size() < line + 2 + size + 2) break;
        stream.body.append(stream.raw, line + 2, size);
        stream.raw.erase(0, line + 2 + size + 2);
    }
    size_t end;
    while ((end = stream.body.find("\n\n")) != std::string::npos) {
        std::string block = stream.body.substr(0, end);
        stream.body.erase(0, end + 2);
        if (block.find("event: end") != std::string::npos) {
            stream.ended = true;
            continue;
        }
        if (block.find("event: delta") != std::string::npos) continue;
        size_t time = block.find("\"time\":\"");
        if (time == std::string::npos) continue;
        int64_t at = ParseTime(block.c_str() + time + 8);
        if (at >= stream.opened_us) delays.push_back(received_us - at);
    }
}

int64_t RssKb(int pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
    }
    return 0;
}

std::string Get(const Args& args, const std::string& target) {
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + args.token +
           "\r\nAccept: text/event-stream\r\n\r\n";
}

int Sse(const Args& args) {
    // The runs are started from a thread of their own, 64 requests in flight on one keep-alive
    // connection (pipelined), so that this thread only reads the streams: what is timed is the
    // daemon's delivery, not the client's turn between two blocking requests.
    std::mutex mutex;
    std::vector<std::string> to_follow;  // run ids not yet followed
    std::atomic<bool> creating{true};
    std::atomic<int> failed{0};
    auto started = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point created;
    std::thread creator([&] {
        int control = Connect(args.port);
        std::string buffer;
        constexpr int kWindow = 64;
        int sent = 0, answered = 0;
        while (answered < args.runs) {
            std::string batch;
            while (sent < args.runs && sent - answered < kWindow) {
                std::string body = "{\"workflow\":\"" + args.workflow + "\",\"input\":\"bench " +
                                   std::to_string(sent) + "\"}";
                batch += "POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                         args.token + "\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n\r\n" + body;
                ++sent;
            }
            if (!batch.empty()) SendAll(control, batch);
            std::string reply = ReadResponse(control, buffer);
            size_t at = reply.find("\"run_id\":\"");
            if (at == std::string::npos) {
                std::fprintf(stderr, "start failed: %s\n", reply.c_str());
                failed = 1;
                break;
            }
            if (answered < args.subscribers) {
                std::lock_guard lock(mutex);
                to_follow.push_back(reply.substr(at + 10, 26));
            }
            ++answered;
        }
        created = std::chrono::steady_clock::now();
        close(control);
        creating = false;
    });
    std::vector<Stream> streams;
    std::vector<int64_t> delays;
    std::vector<pollfd> fds;
    while (true) {
        std::vector<std::string> fresh;
        {
            std::lock_guard lock(mutex);
            fresh.swap(to_follow);
        }
        for (const auto& run_id : fresh) {
            Stream stream;
            stream.fd = Connect(args.port);
            stream.opened_us = NowMicros();
            SendAll(stream.fd, Get(args, "/api/runs/" + run_id + "/events"));
            streams.push_back(std::move(stream));
        }
        const bool still_creating = creating.load();
        bool all = true;
        for (const auto& s : streams) all = all && s.ended;
        if (!still_creating && all &&
            static_cast<int>(streams.size()) >= std::min(args.subscribers, args.runs)) {
            break;
        }
        if (failed || (!still_creating &&
                       std::chrono::steady_clock::now() - created > std::chrono::seconds(120))) {
            std::fprintf(stderr, "timed out waiting for the streams to end\n");
            break;
        }
        fds.clear();
        for (auto& s : streams) fds.push_back({s.ended ? -1 : s.fd, POLLIN, 0});
        if (fds.empty() || poll(fds.data(), fds.size(), 2) <= 0) continue;
        int64_t now = NowMicros();
        for (size_t i = 0; i < fds.size(); ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char chunk[65536];
            ssize_t n;
            while ((n = recv(streams[i].fd, chunk, sizeof chunk, MSG_DONTWAIT)) > 0) {
                streams[i].raw.append(chunk, static_cast<size_t>(n));
            }
            if (n == 0) streams[i].ended = true;
            Consume(streams[i], delays, now);
        }
    }
    creator.join();
    std::sort(delays.begin(), delays.end());
    auto pct = [&](double p) {
        if (delays.empty()) return 0.0;
        return delays[std::min(delays.size() - 1, static_cast<size_t>(p * delays.size()))] / 1000.0;
    };
    std::printf("runs %d, streams %zu, created in %.2f s, events timed %zu\n", args.runs,
                streams.size(), std::chrono::duration<double>(created - started).count(),
                delays.size());
    std::printf("delivery delay ms: p50 %.2f  p99 %.2f  max %.2f\n", pct(0.50), pct(0.99),
                delays.empty() ? 0.0 : delays.back() / 1000.0);
    return failed ? 1 : 0;
}

int Idle(const Args& args) {
    int64_t before = RssKb(args.pid);
    std::vector<int> fds;
    for (int i = 0; i < args.subscribers; ++i) {
        int fd = Connect(args.port);
        SendAll(fd, Get(args, "/api/events"));
        fds.push_back(fd);
    }
    // Every stream's head has arrived: the daemon holds them all.
    for (int fd : fds) {
        std::string head;
        char chunk[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
            ssize_t n = recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) break;
            head.append(chunk, static_cast<size_t>(n));
        }
    }
    int64_t after = RssKb(args.pid);
    std::printf("RSS %lld KB before, %lld KB with %d open streams: %.2f KB per stream\n",
                static_cast<long long>(before), static_cast<long long>(after), args.subscribers,
                static_cast<double>(after - before) / args.subscribers);
    for (int fd : fds) close(fd);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    if (argc < 2) {
        std::fprintf(stderr, "usage: strowger_serve_bench sse|idle --port P --token T ...\n");
        return 2;
    }
    args.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--port") args.port = std::stoi(value);
        if (flag == "--token") args.token = value;
        if (flag == "--workflow") args.workflow = value;
        if (flag == "--runs") args.runs = std::stoi(value);
        if (flag == "--subscribers") args.subscribers = std::stoi(value);
        if (flag == "--pid") args.pid = std::stoi(value);
    }
    if (args.mode == "sse") return Sse(args);
    if (args.mode == "idle") return Idle(args);
    std::fprintf(stderr, "unknown mode %s\n", args.mode.c_str());
    return 2;
}
