// `strowger serve`: one process hosting the engine behind the HTTP API (docs/formats/api.md).
//
// Life of the daemon:
//   * Start: loads the API tokens (making the first admin token if there are none), the
//     workflow registry and `--workflows DIR`, signs the stops a crash left unsigned, resumes
//     every unfinished run (running and pending; waiting and paused runs wait for a human),
//     and listens. /readyz says ready once the runs were resumed.
//   * Reload (SIGHUP, or a change in --workflows DIR seen through inotify): a new or changed
//     valid file becomes a new version; running runs keep their pinned definition; an invalid
//     file is reported with its diagnostics and never replaces a good version.
//   * Drain (SIGTERM): stops accepting, ends event streams, lets executing runs finish their
//     in-flight model calls up to the drain deadline (pausing them at the next step boundary
//     is not done: their ledgers say where they are, and the next start resumes them), signs
//     checkpoints, and returns.
//   * Supervision: a run whose execution fails unexpectedly (an exception, a broken invariant)
//     is restarted from its ledger with backoff, at most max_restarts times within
//     restart_window, then failed with the reason; other runs never notice.
//   * Retention: finished runs beyond the retention policies are deleted in the background.
//
// Thread-safety: all on one executor, run by one thread (the engine, the store's completions,
// the HTTP server and every handler).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/server.hpp"
#include "automation/memory.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/random.hpp"
#include "core/result.hpp"
#include "engine/engine.hpp"
#include "providers/provider.hpp"
#include "store/store.hpp"

namespace strowger::api {

struct DaemonOptions {
    std::string host = "127.0.0.1";
    uint16_t port = 7780;
    std::string workflows_dir;  // "" = none
    std::string agents_dir;     // standing agents' manifests (and their [[cron]]); "" = none
    ServerLimits limits;
    bool metrics_public = false;  // /metrics without a token
    bool stream_deltas = true;    // model calls stream; deltas go to event streams
    std::chrono::milliseconds drain_timeout{30'000};
    std::chrono::milliseconds token_refresh{2'000};
    std::chrono::milliseconds retention_interval{60'000};
    int64_t retention_slice = 1000;  // runs deleted per store call
    // How often waiting runs whose durable timer (a human task's timeout) is due are resumed.
    std::chrono::milliseconds timer_interval{1'000};
    int max_restarts = 3;
    std::chrono::milliseconds restart_window{60'000};
    std::chrono::milliseconds restart_backoff{200};  // doubled at each restart
    // Test only: a run whose input contains "strowger-inject-fault" throws from inside its
    // execution at its first node.started, as a library bug would ("...:once" only the first
    // time). Off in production.
    bool inject_faults = false;
    // The agent memory behind the memory_* tools registered with the engine's tools (the
    // daemon attaches it to its store and puts its changes on the event bus). Null: the daemon
    // makes one (then agents have no memory tools, only the API).
    std::shared_ptr<automation::MemoryService> memory;
};

class Daemon {
  public:
    // Makes the engine (with `engine_options`) over `store` and `providers`, and the API.
    Daemon(Executor executor, std::shared_ptr<store::Store> store,
           providers::ProviderRegistry& providers, engine::EngineOptions engine_options,
           DaemonOptions options, Clock& clock = Clock::Real(), Random& random = Random::Real());
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    struct StartReport {
        std::string admin_token;  // the first admin token, made now ("" if tokens existed)
        int64_t resumed = 0;      // runs resumed
        int64_t signed_stops = 0;
        int64_t workflows = 0;
        std::vector<std::string> invalid_files;  // --workflows files that did not load
        int64_t agents = 0;                      // standing agents loaded from --agents
        int64_t cron_jobs = 0;
        std::string url;  // "http://host:port"
    };
    // Everything "Start" says above; kUnavailable if the address cannot be bound.
    Awaitable<Result<StartReport>> Start();
    // Reloads --workflows DIR; returns a one-line summary per file that changed or failed.
    Awaitable<std::vector<std::string>> Reload();
    // Everything "Drain" says above. Idempotent.
    Awaitable<void> Drain();

    uint16_t port() const;
    engine::Engine& engine();

    class Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace strowger::api
