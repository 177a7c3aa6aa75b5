// What automation (triggers, cron jobs, webhooks) starts, behind one small interface the daemon
// implements over its workflow registry, its engine and its standing agents. Triggers, cron and
// webhooks only ever call this; they never reach into the API module.
//
// Thread-safety: called on the daemon's one executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/asio.hpp"
#include "core/json.hpp"
#include "core/result.hpp"

namespace strowger::automation {

// Why a run or an agent turn was started; recorded with the run (trigger_source and metadata)
// so that events it causes carry `depth` (a trigger-fired run's events are at depth + 1; past
// the recursion limit, triggers do not fire on them).
struct Origin {
    std::string kind;     // "trigger" | "cron" | "webhook" | "api"
    std::string id;       // the trigger's, job's or hook's id
    std::string fire_id;  // the durable fire record this start belongs to ("" = none)
    int depth = 0;
};

// One message to a standing agent: one durable agent turn (a run of the agent, recorded in a
// hash-chained ledger like any run).
struct AgentMessage {
    std::string agent;           // name or id
    std::string text;            // may start with "[SILENT]" (the reply is kept out of the session)
    std::string session_mode;    // "persistent" | "new" | "" (the manifest's, else persistent)
    std::string channel;         // persistent sessions are per agent and channel ("" = default)
    std::string model_override;  // "" = the agent's model
    std::chrono::seconds timeout{0};  // 0 = the agent's limits
    Origin origin;
};

class Launcher {
  public:
    virtual ~Launcher() = default;
    // Starts a run of `workflow` (id or name; the newest version) with `input`. Returns the run
    // id once run.created is committed; the run then executes like any other (no wall-clock cap
    // behind the engine's back). `idempotency_key` ("" = none) makes a repeated start (a fire
    // replayed after a crash) return the same run.
    virtual Awaitable<Result<std::string>> StartWorkflow(std::string workflow, json::value input,
                                                         Origin origin,
                                                         std::string idempotency_key) = 0;
    // Starts one agent turn; returns its run id once it is created (same idempotency rule).
    virtual Awaitable<Result<std::string>> SendToAgent(AgentMessage message,
                                                       std::string idempotency_key) = 0;
};

}  // namespace strowger::automation
