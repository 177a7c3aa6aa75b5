// Standing agents (issue 16, item 3; docs/formats/agents_cron_state_v1.md): the manifests of
// `serve --agents DIR` and AgentTurns, which makes a message to an agent one durable agent turn.
//
// A manifest is an agent file of the existing format (`NAME.yaml|yml|json`, read by the
// workflow loader: the agent fields of docs/formats/workflow.md) or LibreFang's TOML manifest
// (`NAME.toml`: `name`, `description`, `[model]` `provider`/`model`/`system_prompt`/
// `temperature`/`max_tokens`, `[capabilities] tools`); both with the standing-agent fields
// `session_mode`, `max_history_tokens` and cron entries (`[[cron]]` tables in TOML, a `cron:`
// list in YAML/JSON), read by one reader (manifest_fields.cpp).
//
// A turn is a run of the one-node workflow `agent:<name>` (Workflow::session): compiled from
// the manifest, it gets the agent's tools, budgets and sandbox and a hash-chained ledger like any
// run. Its input carries the session's history (compacted under max_history_tokens); when the
// run stops, the message and the reply are appended to the session (not for `[SILENT]`).
//
// Thread-safety: everything runs on the daemon's one executor.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "automation/cron_spec.hpp"
#include "automation/launcher.hpp"
#include "core/clock.hpp"
#include "core/random.hpp"
#include "engine/engine.hpp"
#include "model/diagnostic.hpp"
#include "model/workflow.hpp"
#include "store/store.hpp"

namespace strowger::automation {

inline constexpr int64_t kDefaultMaxHistoryTokens = 8'000;
inline constexpr std::string_view kSilentMarker = "[SILENT]";

// A cron entry of a manifest (TOML `[[cron]]`, YAML/JSON `cron:`): the job it makes, checked
// as the API checks one (cron_spec.hpp), and where it was written.
struct ManifestCron {
    CronJobSpec spec;
    model::SourcePos pos;
};

struct AgentManifest {
    std::string name;
    std::string file;
    model::AgentSpec spec;
    std::string session_mode;  // "" = persistent
    int64_t max_history_tokens = kDefaultMaxHistoryTokens;
    std::vector<ManifestCron> cron;
};

struct ManifestSet {
    std::vector<AgentManifest> agents;
    std::vector<model::Diagnostic> diagnostics;  // file:line:col field: message
    bool ok() const { return !model::HasErrors(diagnostics); }
};

// Reads every manifest in `dir` (*.toml, *.yaml, *.yml, *.json), compiling each agent's turn
// workflow once to check it against `compile` (providers, tools). Every format takes the
// standing-agent fields (kStandingAgentFields: session_mode, max_history_tokens, cron entries
// with the fields of kCronJobFields, checked at `now`; {} = the system clock's).
ManifestSet LoadManifests(const std::string& dir, const model::CompileOptions& compile,
                          SystemTime now = {});
// One TOML manifest from text (tests; LoadManifests reads files through it).
ManifestSet ParseTomlManifest(std::string_view text, const std::string& file, SystemTime now = {});

// The token estimate of docs/formats/agents_cron_state_v1.md: ceil(bytes / 4).
int64_t EstimateTokens(std::string_view text);

// How a run stopped, as a turn or a cron fire needs it.
struct RunEnd {
    ledger::RunStatus status = ledger::RunStatus::kPending;
    std::string output;  // run.completed's
    std::string error;   // run.failed's
};
// Reads the stopped run's status and output or error from the store.
Awaitable<Result<RunEnd>> ReadRunEnd(store::Store& store, std::string run_id);

// What turns need from the daemon: starting a run (returning once run.created is committed)
// and waiting for one to stop (not pending nor running).
struct RunHooks {
    std::function<Awaitable<Result<std::string>>(engine::StartRequest)> start;
    std::function<Awaitable<Result<RunEnd>>(std::string run_id)> wait;
};

class AgentTurns {
  public:
    AgentTurns(Executor executor, std::shared_ptr<store::Store> store,
               model::CompileOptions compile, RunHooks hooks, Clock& clock, Random& random);

    void SetManifests(std::vector<AgentManifest> manifests);
    const AgentManifest* Find(std::string_view name_or_id) const;
    const std::map<std::string, AgentManifest, std::less<>>& manifests() const {
        return manifests_;
    }

    struct Started {
        std::string run_id;
        std::string session_id;
        bool silent = false;
        bool existing = false;  // the idempotency key named a turn started before
    };
    // Starts one turn (what Launcher::SendToAgent does); returns once its run is created.
    // kNotFound for an unknown agent, kInvalidArgument for a bad session_mode.
    Awaitable<Result<Started>> Send(AgentMessage message, std::string idempotency_key);
    // Waits for a turn's run to stop and its session to be updated; its end.
    Awaitable<Result<RunEnd>> Wait(std::string run_id);
    // Finishes the turns a previous process left (their runs resumed by the daemon): call
    // once at start.
    Awaitable<Status> Recover();
    // Deletes the history (messages and summary) of `agent`'s sessions: the one `session_id`
    // ("" = all), only those of `channel` ("" = any). The sessions stay (a persistent one
    // continues, empty); a turn already in flight still adds its exchange when it ends.
    // kNotFound for an unknown agent or a session that is not the agent's.
    struct Reset {
        store::AgentSession session;
        int64_t messages = 0;  // deleted
        bool had_summary = false;
    };
    Awaitable<Result<std::vector<Reset>>> ResetSessions(std::string agent, std::string session_id,
                                                        std::string channel);
    // Turns whose session update is still to come (tests wait for 0).
    size_t InFlight() const { return in_flight_; }

  private:
    Result<std::shared_ptr<const model::Plan>> PlanFor(const AgentManifest& manifest,
                                                       const std::string& model_override,
                                                       std::chrono::seconds timeout);
    Awaitable<void> Finish(store::AgentTurn turn);

    Executor executor_;
    std::shared_ptr<store::Store> store_;
    model::CompileOptions compile_;
    RunHooks hooks_;
    Clock& clock_;
    Random& random_;
    std::map<std::string, AgentManifest, std::less<>> manifests_;
    std::map<std::string, std::shared_ptr<const model::Plan>> plans_;  // by variant
    size_t in_flight_ = 0;
    // Turns whose session update is to come: a timer cancelled once it is done.
    std::map<std::string, std::shared_ptr<asio::steady_timer>> finishing_;
};

// The workflow of a turn of `spec` (exposed for tests and `strowger validate`).
model::Workflow TurnWorkflow(const model::AgentSpec& spec, const std::string& model_override,
                             std::chrono::seconds timeout);

// Compaction (docs/formats/agents_cron_state_v1.md): which messages to drop and the summary.
struct Compaction {
    int64_t drop_through = 0;  // seq; 0 = nothing dropped
    int64_t dropped_messages = 0;
    int64_t dropped_tokens = 0;
    std::string summary;
    std::vector<store::SessionMessage> kept;
    int64_t kept_tokens = 0;
};
Compaction Compact(const std::vector<store::SessionMessage>& messages, std::string summary,
                   std::string_view message, int64_t max_history_tokens);

}  // namespace strowger::automation
