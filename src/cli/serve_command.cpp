// strowger serve [--listen 127.0.0.1:7780] [--workflows DIR] [--store URL]
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "api/auth.hpp"
#include "api/daemon.hpp"
#include "audit/key.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "core/strings.hpp"

namespace strowger::cli {
namespace {

struct ServeFlags {
    std::string listen = "127.0.0.1:7780";
    std::string workflows;
    std::string agents;
    std::string store;
    bool metrics_public = false;
    bool no_stream_deltas = false;
    int64_t drain_timeout_ms = 30'000;
    int64_t max_connections = 4096;
    int64_t max_body_bytes = 4 << 20;
    int64_t max_header_bytes = 16 << 10;
    int64_t header_timeout_ms = 10'000;
    int64_t idle_timeout_ms = 60'000;
    int64_t retention_interval_ms = 60'000;
    int64_t max_restarts = 3;
    bool inject_faults = false;
};

// "host:port", "[v6]:port" or ":port".
Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& text) {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return InvalidArgumentError("--listen: expected HOST:PORT");
    std::string host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty()) host = "127.0.0.1";
    std::string_view port_text = std::string_view(text).substr(colon + 1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
        return InvalidArgumentError("--listen: \"" + std::string(port_text) + "\" is not a port");
    }
    return std::pair<std::string, uint16_t>(host, static_cast<uint16_t>(port));
}

Result<int64_t> CapFromEnv(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return 0;
    int64_t parsed = 0;
    std::string_view text(value);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec != std::errc() || end != text.data() + text.size() || parsed < 0) {
        return InvalidArgumentError(std::string(name) + ": expected a whole number >= 0");
    }
    return parsed;
}

int DoServe(const ServeFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level.empty() ? "info" : global.log_level);
    auto listen = ParseListen(flags.listen);
    if (!listen) {
        PrintError(listen.error().message());
        return ToInt(ExitCode::kUsage);
    }
    if (!flags.agents.empty() && !std::filesystem::is_directory(flags.agents)) {
        PrintError("--agents: " + flags.agents + " is not a directory");
        return ToInt(ExitCode::kUsage);
    }
    if (!flags.workflows.empty() && !std::filesystem::is_directory(flags.workflows)) {
        PrintError("--workflows: " + flags.workflows + " is not a directory");
        return ToInt(ExitCode::kUsage);
    }
    asio::io_context io(1);
    providers::ProviderRegistry registry(io.get_executor());
    engine::EngineOptions engine_options;
    engine_options.single_threaded_executor = true;  // io is run by this thread only
    for (auto [name, cap] :
         {std::pair{"STROWGER_MAX_CONCURRENT_RUNS", &engine_options.max_concurrent_runs},
          std::pair{"STROWGER_MAX_CONCURRENT_NODES", &engine_options.max_concurrent_nodes}}) {
        auto value = CapFromEnv(name);
        if (!value) {
            PrintError(value.error().message());
            return ToInt(ExitCode::kUsage);
        }
        *cap = *value;
    }
    std::shared_ptr<automation::MemoryService> memory;
    if (auto set_up = SetUpProvidersAndTools(io.get_executor(), global.providers_file, registry,
                                             engine_options, &memory);
        !set_up) {
        PrintError(set_up.error().message());
        return ToInt(ExitCode::kUsage);
    }
    const std::string url = StoreUrl(flags.store);
    auto store = store::OpenStoreBlocking(url);
    if (!store) {
        PrintError("cannot open store " + url + ": " + store.error().message());
        return ToInt(ExitCode::kInternal);
    }
    auto key = audit::LoadLedgerKeyBlocking(url);
    if (!key) {
        PrintError(key.error().message());
        return ToInt(ExitCode::kInternal);
    }
    engine_options.signer = audit::CheckpointSigner::Create(io.get_executor(), *store, *key);
    if (StartsWith(url, "sqlite:")) {
        engine_options.workspace_root =
            std::filesystem::absolute(std::filesystem::path(url.substr(7)).parent_path()) /
            "workspaces";
    }
    api::DaemonOptions options;
    options.host = listen->first;
    options.port = listen->second;
    options.workflows_dir = flags.workflows;
    options.agents_dir = flags.agents;
    options.metrics_public = flags.metrics_public;
    options.stream_deltas = !flags.no_stream_deltas;
    options.drain_timeout = std::chrono::milliseconds(flags.drain_timeout_ms);
    options.limits.max_connections = static_cast<size_t>(flags.max_connections);
    options.limits.max_body_bytes = static_cast<size_t>(flags.max_body_bytes);
    options.limits.max_header_bytes = static_cast<size_t>(flags.max_header_bytes);
    options.limits.header_timeout = std::chrono::milliseconds(flags.header_timeout_ms);
    options.limits.body_timeout = std::chrono::milliseconds(flags.header_timeout_ms * 3);
    options.limits.idle_timeout = std::chrono::milliseconds(flags.idle_timeout_ms);
    options.retention_interval = std::chrono::milliseconds(flags.retention_interval_ms);
    options.max_restarts = static_cast<int>(flags.max_restarts);
    options.inject_faults = flags.inject_faults;
    options.memory = memory;
    api::Daemon daemon(io.get_executor(), *store, registry, std::move(engine_options), options);

    int exit_code = 0;
    asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
    bool draining = false;
    std::function<void()> arm = [&] {
        signals.async_wait([&](boost::system::error_code ec, int number) {
            if (ec) return;
            if (number == SIGHUP) {
                asio::co_spawn(io, daemon.Reload(), asio::detached);
                arm();
                return;
            }
            if (draining) std::_Exit(0);  // a second signal: now
            draining = true;
            std::cerr << "strowger: draining (" << (number == SIGTERM ? "SIGTERM" : "SIGINT")
                      << ")\n";
            asio::co_spawn(io, daemon.Drain(), [&](std::exception_ptr) {
                signals.cancel();
                io.stop();
            });
            arm();
        });
    };
    arm();
    // A named coroutine object: it must outlive io.run().
    auto start = [&]() -> Awaitable<void> {
        auto started = co_await daemon.Start();
        if (!started) {
            PrintError(started.error().message());
            exit_code = ToInt(started.error().code() == ErrorCode::kInvalidArgument ||
                                      started.error().code() == ErrorCode::kUnavailable
                                  ? ExitCode::kUsage
                                  : ExitCode::kInternal);
            signals.cancel();
            io.stop();
            co_return;
        }
        if (!started->admin_token.empty()) {
            std::string file = api::DefaultTokenFile();
            auto written = api::WriteTokenFileBlocking(file, started->admin_token);
            // Printed once, here; never logged.
            std::cout << started->admin_token << std::endl;
            std::cerr << "strowger: created the admin token (printed above, once"
                      << (written ? "; also in " + file + ", mode 0600" : "") << ")\n";
            if (!written) PrintError(written.error().message());
        }
        for (const auto& line : started->invalid_files) {
            std::cerr << "strowger: not loaded: " << line << "\n";
        }
        if (!flags.agents.empty()) {
            std::cerr << "strowger: " << started->agents << " standing agents, "
                      << started->cron_jobs << " cron jobs\n";
        }
        std::cerr << "strowger: serving on " << started->url << " (" << started->workflows
                  << " workflows, " << started->resumed << " runs resumed)" << std::endl;
    };
    asio::co_spawn(io, start(), asio::detached);
    io.run();
    return exit_code;
}

}  // namespace

void AddServeCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto flags = std::make_shared<ServeFlags>();
    auto* cmd = app.add_subcommand(
        "serve", "Run the daemon: the HTTP API, live event streams, unfinished runs resumed");
    cmd->add_option("--listen", flags->listen, "Address to listen on (port 0: any free port)")
        ->type_name("HOST:PORT")
        ->capture_default_str();
    cmd->add_option("--workflows", flags->workflows,
                    "Directory of workflow files, registered and reloaded on change (or SIGHUP)")
        ->type_name("DIR");
    cmd->add_option("--agents", flags->agents,
                    "Directory of standing agents' manifests (NAME.toml, or agent YAML/JSON "
                    "files, with session_mode, max_history_tokens and cron entries): messages, "
                    "sessions and cron jobs; reloaded on SIGHUP")
        ->type_name("DIR");
    cmd->add_option("--store", flags->store,
                    "Run store URL (default: $STROWGER_STORE or the default sqlite file)")
        ->type_name("URL");
    cmd->add_flag("--metrics-public", flags->metrics_public, "Serve /metrics without a token");
    cmd->add_flag("--no-stream-deltas", flags->no_stream_deltas,
                  "Do not stream model calls (no token deltas on event streams)");
    cmd->add_option("--drain-timeout-ms", flags->drain_timeout_ms,
                    "On SIGTERM, how long in-flight model calls may finish")
        ->capture_default_str();
    cmd->add_option("--max-connections", flags->max_connections, "Open connections at most")
        ->capture_default_str();
    cmd->add_option("--max-body-bytes", flags->max_body_bytes, "Request body size cap")
        ->capture_default_str();
    cmd->add_option("--max-header-bytes", flags->max_header_bytes, "Request header size cap")
        ->capture_default_str();
    cmd->add_option("--header-timeout-ms", flags->header_timeout_ms,
                    "A request's header must arrive within this (its body within 3x)")
        ->capture_default_str();
    cmd->add_option("--idle-timeout-ms", flags->idle_timeout_ms,
                    "Idle keep-alive connections are closed after this")
        ->capture_default_str();
    cmd->add_option("--retention-interval-ms", flags->retention_interval_ms,
                    "How often finished runs are pruned by the retention policies")
        ->capture_default_str();
    cmd->add_option("--max-restarts", flags->max_restarts,
                    "Restarts of a run failing unexpectedly, within a minute, before it is failed")
        ->capture_default_str();
    cmd->add_flag("--inject-faults", flags->inject_faults,
                  "Testing only: runs whose input says strowger-inject-fault crash")
        ->group("");
    cmd->footer(
        "Tokens: at first start an admin token is printed once and written (0600) to "
        "$STROWGER_TOKEN_FILE or ~/.config/strowger/token.\n"
        "Signals: SIGTERM drains (exit 0), SIGHUP reloads --workflows and --agents.\n\n"
        "Examples:\n"
        "  strowger serve --workflows ./workflows\n"
        "  strowger serve --listen 0.0.0.0:7780 --store sqlite:/var/lib/strowger/runs.db");
    cmd->callback([flags, &global, &exit_code] { exit_code = DoServe(*flags, global); });
}

}  // namespace strowger::cli
