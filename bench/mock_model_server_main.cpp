// strowger_mock_model_server: the loopback OpenAI-compatible mock model server as a process, for
// benchmarks. Serves until SIGTERM or SIGINT, then prints its counters to stderr.
//
//   strowger_mock_model_server [--port N] [--latency-ms N] [--port-file PATH] [--reply TEXT]
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>

#include "testing/mock_model_server.hpp"

namespace {

int Usage(const char* why) {
    std::cerr << "strowger_mock_model_server: " << why << "\n"
              << "usage: strowger_mock_model_server [--port N] [--latency-ms N] "
                 "[--port-file PATH] [--reply TEXT]\n";
    return 2;
}

bool ParseNumber(std::string_view text, int64_t max, int64_t& out) {
    if (text.empty()) return false;
    int64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + (c - '0');
        if (value > max) return false;
    }
    out = value;
    return true;
}

// Many benchmark connections need many descriptors: raise the soft limit to the hard one.
void RaiseFileLimit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

}  // namespace

int main(int argc, char** argv) {
    strowger::testing::MockModelServer::Options options;
    options.max_recorded_requests = 0;
    std::string port_file;
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            Usage("an OpenAI-compatible mock model server on 127.0.0.1");
            return 0;
        }
        if (i + 1 >= argc) return Usage("missing value after a flag");
        std::string_view value = argv[++i];
        int64_t number = 0;
        if (flag == "--port") {
            if (!ParseNumber(value, 65535, number)) return Usage("bad --port");
            options.port = static_cast<uint16_t>(number);
        } else if (flag == "--latency-ms") {
            if (!ParseNumber(value, int64_t{1} << 40, number)) return Usage("bad --latency-ms");
            options.latency_ms = number;
        } else if (flag == "--port-file") {
            port_file = std::string(value);
        } else if (flag == "--reply") {
            options.reply = std::string(value);
        } else {
            return Usage("unknown flag");
        }
    }
    RaiseFileLimit();

    // Block the signals before the server thread starts so only sigwait below sees them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto server = strowger::testing::MockModelServer::Start(options);
    if (!server) {
        std::cerr << "strowger_mock_model_server: " << server.error().message() << "\n";
        return 1;
    }
    uint16_t port = (*server)->port();
    if (!port_file.empty()) {
        // Write then rename, so a reader polling for the file never sees it half-written.
        std::string temp = port_file + ".tmp";
        {
            std::ofstream out(temp);
            out << port << "\n";
            if (!out) {
                std::cerr << "strowger_mock_model_server: cannot write " << temp << "\n";
                return 1;
            }
        }
        std::error_code ec;
        std::filesystem::rename(temp, port_file, ec);
        if (ec) {
            std::cerr << "strowger_mock_model_server: cannot write " << port_file << "\n";
            return 1;
        }
    }
    std::cout << "listening on " << (*server)->base_url() << std::endl;

    int signal_number = 0;
    sigwait(&signals, &signal_number);
    (*server)->Stop();
    std::cerr << "strowger_mock_model_server: stopped; requests=" << (*server)->requests()
              << " connections=" << (*server)->connections_accepted() << "\n";
    return 0;
}
