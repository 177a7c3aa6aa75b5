// The run store: where runs, their ledgers and their definition snapshots live.
//
// The interface speaks the domain (create a run, append events, claim work), never SQL; each
// backend owns its schema and migrations (memory/, sqlite/, and postgres/ later). The engine
// sees only this header. Every implementation passes tests/store/store_conformance_test.cpp.
//
// Durability contract: when AppendEvents/CreateRun complete successfully, the events are
// committed (for SQLite: survive a process crash; see docs/design/store.md for power loss).
// When a commit's outcome is unknown (I/O error mid-commit), the store refuses every later
// write with kDataLoss until it is reopened (leveldb's RecordBackgroundError).
//
// Thread-safety: all methods may be called concurrently from any executor; each completes on
// the caller's executor.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "ledger/chain.hpp"
#include "ledger/checkpoint.hpp"
#include "ledger/event.hpp"
#include "ledger/run_state.hpp"

namespace strowger::store {

using ledger::RunStatus;

// The summary row of a run: derived from its ledger, kept for listing and claiming.
struct RunRecord {
    std::string run_id;
    std::string workflow;
    RunStatus status = RunStatus::kPending;
    std::string definition_sha256;
    std::string idempotency_key;
    SystemTime created_at{};
    SystemTime updated_at{};
    ledger::ChainHead head;  // last appended event
    std::string owner;       // lease holder ("" = none)
    SystemTime lease_until{};
    int64_t checkpoint_seq = 0;  // the highest seq a signed checkpoint covers (0: none)
    SystemTime wake_at{};        // a durable timer: resume the run then ({}: none)
};

struct NewRun {
    std::string run_id;
    std::string workflow;
    std::string definition_sha256;
    // Stored once per sha256; shared with the plan (not copied for each run). Null: "".
    std::shared_ptr<const std::string> definition_json;
    std::string idempotency_key;        // "" = none
    std::vector<ledger::Event> events;  // sealed, from seq 1
    RunStatus status = RunStatus::kPending;
    // If set, the new run is leased to this owner until lease_until.
    std::string owner;
    SystemTime lease_until{};
};

struct CreateRunResult {
    std::string run_id;
    bool created = true;  // false: the idempotency key was used before; run_id is that run
};

// An event as stored: its canonical line plus the columns that index it.
struct StoredEvent {
    int64_t seq = 0;
    std::string type;
    std::string node;
    std::string encoded;
};

struct EventQuery {
    int64_t after_seq = 0;
    int64_t limit = 0;               // 0 = no limit
    std::vector<std::string> types;  // empty = all; an entry ending in '.' matches a prefix
};

struct RunFilter {
    std::vector<RunStatus> statuses;  // empty = any
    std::string workflow;             // "" = any
    int64_t limit = 50;
    std::string before_run_id;  // cursor: only runs older than this one (ids sort by time)
};

struct RunPage {
    std::vector<RunRecord> runs;  // newest first
    std::string next_cursor;      // pass as before_run_id; "" = no more
};

// A signed checkpoint of a run (docs/formats/checkpoint_v1.md): its head at `seq` is leaf
// `leaf_index` of batch `batch_seq` of the store's batch log.
struct StoredCheckpoint {
    std::string run_id;
    int64_t seq = 0;
    std::string head;
    int64_t batch_seq = 0;
    int64_t leaf_index = 0;
};

// A request from another process to pause or cancel a run it does not execute.
enum class ControlAction { kPause = 1, kCancel = 2 };  // persisted: do not renumber
struct ControlRequest {
    std::string run_id;
    ControlAction action = ControlAction::kCancel;
    std::string reason;
    std::string actor;
};

// ---- The daemon's records (docs/formats/daemon_state_v1.md) ----

// One immutable version of a workflow in the daemon's registry.
struct WorkflowVersion {
    std::string workflow_id;
    int64_t version = 0;  // assigned by PutWorkflowVersion
    std::string name;
    std::string description;
    std::string definition_sha256;
    std::string source;         // as submitted
    std::string source_format;  // "json" | "yaml"
    std::string origin;         // "api" | "file:<path>"
    std::string actor;
    SystemTime created_at{};
};

// An API token as stored: never the token itself, only its SHA-256.
struct ApiToken {
    std::string name;
    std::string role;  // "viewer" | "operator" | "approver" | "admin"
    std::string token_sha256;
    std::string created_by;
    SystemTime created_at{};
    SystemTime revoked_at{};  // {} = live
    bool live() const { return revoked_at == SystemTime{}; }
};

// Which finished runs to delete: `workflow` "" is the default for workflows without their own.
struct RetentionPolicy {
    std::string workflow;
    int64_t keep_days = 0;   // 0 = no age limit
    int64_t keep_count = 0;  // per workflow; 0 = no count limit
};

// One slice of retention: deletes finished (terminal) runs of the workflows it names that are
// beyond the newest `keep_count` of their workflow or were last updated before
// `finished_before`, at most `max_runs` of them (oldest first). Never touches other runs.
struct PruneRequest {
    std::string workflow;             // a workflow name; "" = every workflow not in `except`
    std::vector<std::string> except;  // workflow names left alone when `workflow` is ""
    int64_t keep_count = 0;           // 0 = no count limit
    SystemTime finished_before{};     // {} = no age limit
    int64_t max_runs = 1000;
};

// What the API knows of a run that its ledger does not say.
struct RunAnnotation {
    std::string run_id;
    std::string workflow_id;
    int64_t workflow_version = 0;
    std::string trigger_source;
    std::string metadata = "{}";  // a compact JSON object
    std::string request_sha256;
    std::string actor;
};

// ---- Automation (docs/formats/automation_state_v1.md) ----

struct TriggerRecord {
    std::string trigger_id;
    std::string agent_id;     // "" if the target is a workflow
    std::string workflow_id;  // "" if the target is an agent
    std::string pattern;      // canonical JSON
    std::string prompt_template;
    bool enabled = true;
    int64_t fire_count = 0;
    int64_t max_fires = 0;  // 0 = unlimited
    int64_t cooldown_secs = 5;
    SystemTime created_at{};
};

struct TriggerFire {
    std::string fire_id;
    std::string trigger_id;
    std::string event_id;
    std::string target;  // JSON {"agent": ...} or {"workflow": ...}
    std::string prompt;
    int64_t depth = 0;
    std::string idempotency_key;
    std::string status = "pending";  // pending | started | failed
    std::string run_id;
    std::string error;
    SystemTime created_at{};
    SystemTime updated_at{};
};

struct MemoryEntry {
    std::string name_space;  // "global" | "agent:<name>" | "run:<id>"
    std::string key;
    std::string value;  // canonical JSON
    SystemTime updated_at{};
};

// What a memory write changed (for the bus): kind "created" | "updated" | "deleted" |
// "unchanged".
struct MemoryChange {
    std::string kind;
    std::string old_value;  // "" if none
};

struct WebhookRecord {
    std::string name;
    std::string secret;
    std::string workflow_id;  // "" = post an event on the bus
    bool require_timestamp = true;
    std::string created_by;
    SystemTime created_at{};
};

// ---- Standing agents and cron jobs (docs/formats/agents_cron_state_v1.md) ----

// One conversation of a standing agent.
struct AgentSession {
    std::string session_id;
    std::string agent;
    std::string channel;
    std::string mode = "persistent";  // "persistent" | "new"
    std::string summary;              // digest of the turns compaction dropped
    SystemTime created_at{};
    SystemTime updated_at{};
};

struct SessionMessage {
    int64_t seq = 0;   // from 1, assigned by the store
    std::string role;  // "user" | "assistant"
    std::string content;
    int64_t tokens = 0;
    std::string run_id;
};

// A turn started and not yet folded into its session.
struct AgentTurn {
    std::string run_id;
    std::string session_id;
    std::string agent;
    std::string message;
    bool silent = false;
    SystemTime created_at{};
};

// What finishing a turn (or compacting a session) changes, in one transaction: the turn row
// `run_id` ("" = none) is deleted, messages with seq <= drop_through are deleted, `append` is
// added after the last message, and the summary is set (if `set_summary`).
struct SessionUpdate {
    std::string session_id;
    std::string finish_run_id;
    int64_t drop_through = 0;
    std::vector<SessionMessage> append;
    bool set_summary = false;
    std::string summary;
    SystemTime at{};
};

struct CronJob {
    std::string job_id;
    std::string name;
    std::string agent;
    std::string schedule = "{}";  // compact JSON (automation::Schedule::ToJson)
    std::string action = "{}";    // compact JSON
    bool enabled = true;
    std::string misfire = "coalesce";  // "coalesce" | "skip" | "all"
    std::string overlap = "skip";      // "skip" | "allow"
    std::string origin = "api";
    SystemTime created_at{};
    SystemTime updated_at{};
    SystemTime next_fire_at{};  // {} = none
    SystemTime last_fire_at{};
    std::string last_run_id;
    std::string last_status;
    int64_t fire_count = 0;
    int64_t consecutive_failures = 0;
    std::string disabled_reason;
};

struct CronFire {
    std::string job_id;
    SystemTime scheduled_at{};
    SystemTime recorded_at{};
    std::string status = "recorded";  // recorded | started | completed | failed | skipped
    std::string run_id;
    std::string reason;
    bool catch_up = false;
    int64_t missed = 1;
};

class Store {
  public:
    virtual ~Store() = default;

    // Creates a run, its first events and (if new) its definition snapshot, atomically.
    // With an idempotency key that is already used, creates nothing and returns that run.
    virtual Awaitable<Result<CreateRunResult>> CreateRun(NewRun run) = 0;

    // Appends sealed events to a run's ledger and sets the run's status. Fails with kAborted
    // if the run's head is not events.front().seq - 1 (someone else appended), kNotFound if
    // the run does not exist.
    virtual Awaitable<Result<void>> AppendEvents(std::string run_id,
                                                 std::vector<ledger::Event> events,
                                                 RunStatus status_after) = 0;
    // Whether AppendEventsAtOnce works: the store commits an append without waiting (the
    // in-memory store). The engine then appends without suspending the run.
    virtual bool AppendsAtOnce() const { return false; }
    // AppendEvents, done before returning; only where AppendsAtOnce() (otherwise kInternal).
    virtual Result<void> AppendEventsAtOnce(std::string_view run_id,
                                            std::span<const ledger::Event> events,
                                            RunStatus status_after);

    virtual Awaitable<Result<std::vector<StoredEvent>>> ReadEvents(std::string run_id,
                                                                   EventQuery query) = 0;
    virtual Awaitable<Result<RunRecord>> GetRun(std::string run_id) = 0;
    virtual Awaitable<Result<RunPage>> ListRuns(RunFilter filter) = 0;
    virtual Awaitable<Result<std::string>> GetDefinition(std::string sha256) = 0;
    // Looks up a run by idempotency key; kNotFound if none.
    virtual Awaitable<Result<std::string>> FindByIdempotencyKey(std::string key) = 0;

    // Leases: a run is executed by one owner at a time. TryLease takes the run if it has no
    // owner, its lease expired, or `owner` already holds it. Returns false if someone else
    // holds a live lease.
    virtual Awaitable<Result<bool>> TryLease(std::string run_id, std::string owner,
                                             SystemTime until) = 0;
    // Extends every lease `owner` holds to `until`.
    virtual Awaitable<Result<void>> RenewLeases(std::string owner, SystemTime until) = 0;
    virtual Awaitable<Result<void>> ReleaseLease(std::string run_id, std::string owner) = 0;
    // Runs whose status is one of `statuses` and whose lease is free or expired at `now`,
    // oldest first, up to `limit`. Does not lease them (callers TryLease each).
    virtual Awaitable<Result<std::vector<RunRecord>>> FindClaimable(std::vector<RunStatus> statuses,
                                                                    SystemTime now,
                                                                    int64_t limit) = 0;

    // Control requests for runs executing elsewhere.
    virtual Awaitable<Result<void>> RequestControl(ControlRequest request) = 0;
    // Removes and returns the pending requests for any of `run_ids`.
    virtual Awaitable<Result<std::vector<ControlRequest>>> TakeControlRequests(
        std::vector<std::string> run_ids) = 0;

    // Deletes the oldest terminal runs (completed/failed/cancelled) beyond the newest `keep`,
    // never touching other runs. Returns how many were deleted.
    virtual Awaitable<Result<int64_t>> PruneTerminalRuns(int64_t keep) = 0;

    // Token usage by key (an agent), for rolling quotas that survive restarts: RecordUsage
    // adds `tokens` at `time`; UsageSince sums what was recorded at or after `since`. Records
    // older than a day may be discarded.
    virtual Awaitable<Result<void>> RecordUsage(std::string key, SystemTime time,
                                                int64_t tokens) = 0;
    virtual Awaitable<Result<int64_t>> UsageSince(std::string key, SystemTime since) = 0;

    // Durable timers (a human task's timeout, docs/design/dag.md): the run is to be resumed
    // at `due` ({} clears it). Set before the run stops waiting, so a crash in between leaves a
    // timer that finds a run still executing (harmless), never a waiting run without one.
    virtual Awaitable<Result<void>> SetWakeAt(std::string run_id, SystemTime due) = 0;
    // Waiting runs whose timer is due at `now` and whose lease is free, soonest first (in
    // the SQLite store a lease held by a dead process on this host is free, as in
    // FindClaimable).
    virtual Awaitable<Result<std::vector<RunRecord>>> FindDueRuns(SystemTime now,
                                                                  int64_t limit) = 0;

    // Signed checkpoints (docs/design/audit.md). The store keeps them; it neither signs nor
    // verifies. AppendCheckpointBatch appends `batch` (with its leaves) to the store's batch
    // log, a checkpoint row per leaf whose run exists, and raises those runs' checkpoint_seq.
    // kAborted if batch.batch_seq is not the last batch's + 1 (another process appended
    // first: sign again on top of it).
    virtual Awaitable<Result<void>> AppendCheckpointBatch(ledger::CheckpointBatch batch) = 0;
    // The last batch of the log (with its leaves), or nullopt if there is none.
    virtual Awaitable<Result<std::optional<ledger::CheckpointBatch>>> LastCheckpointBatch() = 0;
    // Batches with batch_seq >= `first`, in order, up to `limit` (with their leaves).
    virtual Awaitable<Result<std::vector<ledger::CheckpointBatch>>> ReadCheckpointBatches(
        int64_t first, int64_t limit) = 0;
    // A run's checkpoint rows, by seq.
    virtual Awaitable<Result<std::vector<StoredCheckpoint>>> ReadCheckpoints(
        std::string run_id) = 0;
    // Runs at a stop (ledger::IsStop) whose head no checkpoint covers (checkpoint_seq <
    // head.seq), oldest first from after `after_run_id` ("" = the start), up to `limit`: what a
    // crash between a stop and its signature
    // leaves (and runs made before signing existed).
    virtual Awaitable<Result<std::vector<RunRecord>>> FindUnsignedStops(std::string after_run_id,
                                                                        int64_t limit) = 0;

    // ---- The daemon's records (docs/formats/daemon_state_v1.md) ----

    // Stores `version` as the next version of its workflow (creating the workflow, with its
    // origin, if it is new) and returns it as stored (version and created_at set). If the
    // latest version has the same definition_sha256, stores nothing and returns that one.
    // kNotFound if the workflow was deleted.
    virtual Awaitable<Result<WorkflowVersion>> PutWorkflowVersion(WorkflowVersion version) = 0;
    // Every version of the live workflow `workflow_id` ("" = of every live workflow), by
    // workflow id, then version.
    virtual Awaitable<Result<std::vector<WorkflowVersion>>> ListWorkflowVersions(
        std::string workflow_id) = 0;
    // Marks a workflow deleted (its versions stay). kNotFound if there is no live one.
    virtual Awaitable<Result<void>> DeleteWorkflow(std::string workflow_id, SystemTime at) = 0;

    // kAlreadyExists if a token of that name (live or revoked) or that hash exists.
    virtual Awaitable<Result<void>> PutToken(ApiToken token) = 0;
    // Every token, live and revoked, by name.
    virtual Awaitable<Result<std::vector<ApiToken>>> ListTokens() = 0;
    // kNotFound if there is no such token; revoking a revoked one changes nothing.
    virtual Awaitable<Result<void>> RevokeToken(std::string name, SystemTime at) = 0;

    // Adds or replaces the policy for policy.workflow.
    virtual Awaitable<Result<void>> PutRetentionPolicy(RetentionPolicy policy) = 0;
    virtual Awaitable<Result<std::vector<RetentionPolicy>>> ListRetentionPolicies() = 0;
    // kNotFound if there is none for `workflow`.
    virtual Awaitable<Result<void>> DeleteRetentionPolicy(std::string workflow) = 0;
    // Returns how many runs were deleted (with their events, checkpoints and annotations).
    virtual Awaitable<Result<int64_t>> PruneRuns(PruneRequest request) = 0;

    // Adds or replaces the annotation of annotation.run_id (which must exist: kNotFound).
    virtual Awaitable<Result<void>> PutRunAnnotation(RunAnnotation annotation) = 0;
    // kNotFound if the run has none.
    virtual Awaitable<Result<RunAnnotation>> GetRunAnnotation(std::string run_id) = 0;

    // ---- Automation (docs/formats/automation_state_v1.md) ----

    // Adds or replaces a trigger (all fields as given).
    virtual Awaitable<Result<void>> PutTrigger(TriggerRecord trigger) = 0;
    virtual Awaitable<Result<std::vector<TriggerRecord>>> ListTriggers() = 0;
    // Deletes a trigger and its fire records; kNotFound if there is none.
    virtual Awaitable<Result<void>> DeleteTrigger(std::string trigger_id) = 0;
    // Records a pending fire; kAlreadyExists if (trigger_id, event_id) fired before,
    // kNotFound if the trigger does not exist.
    virtual Awaitable<Result<void>> RecordTriggerFire(TriggerFire fire) = 0;
    // Ends a pending fire: `run_id` set = started (the trigger's fire_count + 1, and enabled =
    // false if max_fires is reached, in the same transaction); else failed with `error`.
    // Returns the trigger as it is after. kNotFound if the fire is not pending.
    virtual Awaitable<Result<TriggerRecord>> CompleteTriggerFire(std::string fire_id,
                                                                 std::string run_id,
                                                                 std::string error,
                                                                 SystemTime at) = 0;
    // Pending fires (a crash between record and start), oldest first.
    virtual Awaitable<Result<std::vector<TriggerFire>>> PendingTriggerFires() = 0;
    // A trigger's fires, newest first, up to `limit`.
    virtual Awaitable<Result<std::vector<TriggerFire>>> ListTriggerFires(std::string trigger_id,
                                                                         int64_t limit) = 0;

    // Sets a key; returns what changed ("unchanged" if it had that value).
    virtual Awaitable<Result<MemoryChange>> PutMemory(MemoryEntry entry) = 0;
    // kNotFound if there is no such key.
    virtual Awaitable<Result<MemoryEntry>> GetMemory(std::string name_space, std::string key) = 0;
    // The keys of a namespace starting with `prefix`, by key, up to `limit` (0 = all).
    virtual Awaitable<Result<std::vector<MemoryEntry>>> ListMemory(std::string name_space,
                                                                   std::string prefix,
                                                                   int64_t limit) = 0;
    // Returns the deleted value's change ("deleted"); kNotFound if there is no such key.
    virtual Awaitable<Result<MemoryChange>> DeleteMemory(std::string name_space,
                                                         std::string key) = 0;

    // kAlreadyExists if a hook of that name exists.
    virtual Awaitable<Result<void>> PutWebhook(WebhookRecord hook) = 0;
    virtual Awaitable<Result<std::vector<WebhookRecord>>> ListWebhooks() = 0;
    // Deletes a hook and its deliveries; kNotFound if there is none.
    virtual Awaitable<Result<void>> DeleteWebhook(std::string name) = 0;
    // Records a delivery id of a hook once; kAlreadyExists if it was recorded before.
    virtual Awaitable<Result<void>> RecordWebhookDelivery(std::string hook, std::string delivery_id,
                                                          SystemTime at) = 0;
    // Sets the run a recorded delivery started.
    virtual Awaitable<Result<void>> SetWebhookDeliveryRun(std::string hook, std::string delivery_id,
                                                          std::string run_id) = 0;

    // ---- Standing agents and cron jobs (docs/formats/agents_cron_state_v1.md) ----

    // A persistent session (mode "persistent") is one per (agent, channel): returns the
    // existing one if there is one, else stores `session`. A "new" session is always stored.
    virtual Awaitable<Result<AgentSession>> OpenSession(AgentSession session) = 0;
    // kNotFound if there is none.
    virtual Awaitable<Result<AgentSession>> GetSession(std::string session_id) = 0;
    // The sessions of `agent` ("" = every agent), by session id.
    virtual Awaitable<Result<std::vector<AgentSession>>> ListSessions(std::string agent) = 0;
    virtual Awaitable<Result<std::vector<SessionMessage>>> ReadSessionMessages(
        std::string session_id) = 0;
    // kNotFound if the session does not exist.
    virtual Awaitable<Result<void>> UpdateSession(SessionUpdate update) = 0;
    // Turns in flight: recorded before a turn's run starts, deleted by UpdateSession.
    virtual Awaitable<Result<void>> PutAgentTurn(AgentTurn turn) = 0;
    virtual Awaitable<Result<std::vector<AgentTurn>>> ListAgentTurns() = 0;

    // Adds or replaces the job `job.job_id`.
    virtual Awaitable<Result<void>> PutCronJob(CronJob job) = 0;
    // Every job, by job id.
    virtual Awaitable<Result<std::vector<CronJob>>> ListCronJobs() = 0;
    // kNotFound if there is none.
    virtual Awaitable<Result<CronJob>> GetCronJob(std::string job_id) = 0;
    // Deletes the job and its fires; kNotFound if there is none.
    virtual Awaitable<Result<void>> DeleteCronJob(std::string job_id) = 0;
    // Records `fire` and stores `job` (its next_fire_at moved on), atomically. kAlreadyExists
    // (and nothing changes) if (job, scheduled_at) was recorded before; kNotFound if the job
    // was deleted.
    virtual Awaitable<Result<void>> RecordCronFire(CronFire fire, CronJob job) = 0;
    // Updates a recorded fire (status, run id, reason) and stores `job`, atomically.
    // kNotFound if the fire or the job does not exist.
    virtual Awaitable<Result<void>> UpdateCronFire(CronFire fire, CronJob job) = 0;
    // The fires of `job_id`, newest scheduled first, up to `limit` (0 = all).
    virtual Awaitable<Result<std::vector<CronFire>>> ListCronFires(std::string job_id,
                                                                   int64_t limit) = 0;
    // Fires recorded or started and not finished (what a crash leaves), oldest first.
    virtual Awaitable<Result<std::vector<CronFire>>> ListOpenCronFires() = 0;
};

// Opens a store from a URL: "memory:", "sqlite:PATH" (PATH may be relative), and later
// "postgres://...". Blocking (opens files, runs migrations): call before serving.
Result<std::shared_ptr<Store>> OpenStoreBlocking(const std::string& url);

// The default store URL of SPEC §2: $STROWGER_STORE, else sqlite: under $XDG_STATE_HOME/strowger
// (else ~/.local/state/strowger/strowger.db).
std::string DefaultStoreUrl();

}  // namespace strowger::store
