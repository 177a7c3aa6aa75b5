#include "integration/serve_harness.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include "integration/process.hpp"

namespace strowger::testing {
namespace {

int Connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool SendAll(int fd, const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<size_t>(n);
    }
    return true;
}

// Reads what is there within `timeout`; false at the end of the stream or on timeout.
bool ReadSome(int fd, std::string& out, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char chunk[16384];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    out.append(chunk, static_cast<size_t>(n));
    return true;
}

std::string Lower(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

std::string Request(const std::string& method, const std::string& target, const std::string& body,
                    const std::vector<std::pair<std::string, std::string>>& headers,
                    bool keep_alive) {
    std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
    if (!body.empty() || method == "POST" || method == "PUT") {
        request +=
            "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n";
    }
    if (!keep_alive) request += "Connection: close\r\n";
    return request + "\r\n" + body;
}

// Parses the status line and headers of `head` (up to the blank line) into `reply`.
void ParseHead(const std::string& head, HttpReply& reply) {
    std::istringstream lines(head);
    std::string line;
    std::getline(lines, line);
    if (line.size() >= 12) reply.status = std::stoi(line.substr(9, 3));
    while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        reply.headers.emplace_back(Lower(line.substr(0, colon)), value);
    }
}

// Decodes chunked transfer encoding from `raw` into `body`, consuming whole chunks; true once
// the last chunk was seen.
bool Dechunk(std::string& raw, std::string& body) {
    while (true) {
        size_t line_end = raw.find("\r\n");
        if (line_end == std::string::npos) return false;
        size_t size = std::stoul(raw.substr(0, line_end), nullptr, 16);
        if (size == 0) {
            raw.clear();
            return true;
        }
        if (raw.size() < line_end + 2 + size + 2) return false;
        body.append(raw, line_end + 2, size);
        raw.erase(0, line_end + 2 + size + 2);
    }
}

}  // namespace

std::string HttpReply::Header(const std::string& name) const {
    std::string lower = Lower(name);
    for (const auto& [key, value] : headers) {
        if (key == lower) return value;
    }
    return {};
}

const json::object& HttpReply::object() const {
    static const json::object kEmpty;
    return json.is_object() ? json.as_object() : kEmpty;
}

std::string HttpReply::Describe() const {
    return std::to_string(status) + " " + body.substr(0, 2000);
}

HttpReply HttpCall(uint16_t port, const std::string& method, const std::string& target,
                   const std::string& body,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   std::chrono::milliseconds timeout) {
    HttpReply reply;
    int fd = Connect(port);
    if (fd < 0) return reply;
    SendAll(fd, Request(method, target, body, headers, false));
    std::string raw;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (!ReadSome(fd, raw, left)) break;
    }
    close(fd);
    size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) return reply;
    ParseHead(raw.substr(0, end + 2), reply);
    std::string rest = raw.substr(end + 4);
    if (Lower(reply.Header("transfer-encoding")) == "chunked") {
        Dechunk(rest, reply.body);
    } else {
        reply.body = rest;
    }
    if (auto parsed = ParseJson(reply.body)) reply.json = std::move(*parsed);
    return reply;
}

EventStream::EventStream(uint16_t port, const std::string& target,
                         const std::vector<std::pair<std::string, std::string>>& headers) {
    fd_ = Connect(port);
    if (fd_ < 0) return;
    auto all = headers;
    all.emplace_back("Accept", "text/event-stream");
    SendAll(fd_, Request("GET", target, "", all, true));
    // The head.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (raw_.find("\r\n\r\n") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
        if (!ReadSome(fd_, raw_, std::chrono::milliseconds(500))) {
            if (raw_.empty()) continue;
        }
    }
    size_t end = raw_.find("\r\n\r\n");
    if (end == std::string::npos) return;
    HttpReply head;
    ParseHead(raw_.substr(0, end + 2), head);
    status_ = head.status;
    chunked_ = Lower(head.Header("transfer-encoding")) == "chunked";
    raw_.erase(0, end + 4);
    if (!chunked_) {
        body_ = raw_;
        raw_.clear();
    } else {
        ended_ = Dechunk(raw_, body_);
    }
}

EventStream::~EventStream() {
    Close();
}

void EventStream::Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
}

bool EventStream::Fill(std::chrono::milliseconds timeout) {
    if (fd_ < 0 || ended_) return false;
    if (!ReadSome(fd_, raw_, timeout)) return false;
    if (chunked_) {
        ended_ = Dechunk(raw_, body_);
    } else {
        body_ += raw_;
        raw_.clear();
    }
    return true;
}

std::optional<StreamEvent> EventStream::Next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        size_t end = body_.find("\n\n");
        if (end != std::string::npos) {
            std::string block = body_.substr(0, end);
            body_.erase(0, end + 2);
            StreamEvent event;
            bool any = false;
            std::istringstream lines(block);
            std::string line;
            while (std::getline(lines, line)) {
                if (line.empty() || line[0] == ':') continue;
                size_t colon = line.find(':');
                std::string field = line.substr(0, colon);
                std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
                if (!value.empty() && value[0] == ' ') value.erase(0, 1);
                if (field == "id") event.id = value;
                if (field == "event") event.event = value;
                if (field == "data") {
                    event.data += (event.data.empty() ? "" : "\n") + value;
                    any = true;
                }
            }
            if (any) return event;
            continue;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !Fill(left)) return std::nullopt;
    }
}

ServeProcess::ServeProcess(CliEnvironment& env, std::vector<std::string> args) {
    std::vector<std::string> all = {"serve", "--listen", "127.0.0.1:0"};
    all.insert(all.end(), args.begin(), args.end());
    process_ = env.Start(all);
    std::smatch match;
    static const std::regex kServing("serving on http://127\\.0\\.0\\.1:([0-9]+)");
    bool serving = WaitFor(
        [&] {
            std::string err = process_->Stderr();
            if (std::regex_search(err, match, kServing)) {
                port_ = static_cast<uint16_t>(std::stoi(match[1].str()));
                return true;
            }
            return !process_->running();
        },
        std::chrono::seconds(20));
    if (!serving || port_ == 0) {
        ADD_FAILURE() << "strowger serve did not start; stderr:\n" << process_->Stderr();
        return;
    }
    std::string out = process_->Stdout();
    if (out.rfind("stg_", 0) == 0) {
        admin_token_ = out.substr(0, out.find('\n'));
    } else {
        std::ifstream in(env.dir() / ".config" / "strowger" / "token");
        std::getline(in, admin_token_);
    }
}

HttpReply ServeProcess::Call(const std::string& method, const std::string& target,
                             const std::string& body, const std::string& token,
                             std::vector<std::pair<std::string, std::string>> headers) {
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    return HttpCall(port_, method, target, body, headers);
}

HttpReply ServeProcess::Admin(const std::string& method, const std::string& target,
                              const std::string& body) {
    return Call(method, target, body, admin_token_);
}

std::string ServeProcess::MakeToken(const std::string& name, const std::string& role) {
    auto reply =
        Admin("POST", "/api/tokens", R"({"name":")" + name + R"(","role":")" + role + R"("})");
    EXPECT_EQ(reply.status, 201) << reply.Describe();
    return std::string(JsonString(reply.object(), "token"));
}

}  // namespace strowger::testing
