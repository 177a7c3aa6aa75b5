// The SQLite Store: one database file in WAL mode, for the runs of one host (`strowger run`,
// `serve` and `worker` on the same machine). docs/design/store.md is the long form.
//
// Writes (CreateRun, AppendEvents, leases, control requests, pruning) are queued to ONE
// writer thread with its own connection. It takes everything queued, applies each request
// under its own SAVEPOINT inside one BEGIN IMMEDIATE … COMMIT (group commit), and only then
// completes each waiting coroutine on that coroutine's executor. A request that fails (wrong
// expected seq, unknown run, duplicate id) is rolled back to its savepoint alone; the others in
// the batch commit. Requests are applied in the order they were made, so appends to one run
// from one caller keep their order. Many concurrent runs therefore share one commit (and, with
// synchronous=full, one fsync); stats() counts transactions against requests.
//
// Reads run on a small blocking thread pool, each on its own read connection (WAL lets
// readers proceed while the writer commits); never on the caller's thread.
//
// Durability: a completed write survives a crash of the process (kill -9) in both settings;
// it survives an OS crash or power loss only with synchronous=full (see store.md).
//
// Poisoning: if a COMMIT, or a checkpoint's fsync, fails so that its outcome is unknown (I/O
// error, disk full, corruption), every later write fails with kDataLoss "store must be
// reopened" until a new SqliteStore is opened on the file; reads keep working.
//
// Leases: as Store. In addition, an owner of the form "<host>:<pid>:<nonce>" whose host is
// this host and whose pid no longer exists counts as expired at once, so a run whose process
// was killed on this machine can be resumed immediately.
//
// Thread-safety: every method may be called concurrently from any thread; each completes on
// the caller's executor. CloseBlocking and the destructor must not race other calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "store/store.hpp"

namespace strowger::store {

// PRAGMA synchronous in WAL mode. Persisted in URLs by name ("normal", "full").
enum class SqliteSync {
    kNormal,  // commits are not fsynced; they survive process crashes, not power loss
    kFull,    // every commit fsyncs the WAL; survives power loss on honest disks
};

struct SqliteOptions {
    // Power-loss safe by default (docs/design/store.md, "Durability"): on this project's
    // machine W1 on SQLite costs ~7 % more with it than with kNormal (docs/performance.md).
    SqliteSync synchronous = SqliteSync::kFull;
    int read_threads = 2;          // read connections and pool threads
    int max_batch = 1024;          // write requests per transaction, at most
    Millis busy_timeout{5000};     // waiting for another process's write lock
    int checkpoint_frames = 1000;  // checkpoint the WAL once it holds this many pages
};

// "sqlite:PATH" or "sqlite:PATH?synchronous=normal|full". PATH is returned as written
// (relative paths are the caller's to resolve) and may not contain '?'.
struct SqliteUrl {
    std::string path;
    SqliteOptions options;
};
Result<SqliteUrl> ParseSqliteUrl(std::string_view url);

// Counters for tests and diagnostics; a snapshot.
struct SqliteStats {
    int64_t write_requests = 0;  // write requests the writer has taken from its queue
    int64_t transactions = 0;    // write transactions it began for them
    int64_t largest_batch = 0;   // most requests in one transaction
    int64_t queued = 0;          // requests waiting for the writer now
    int64_t checkpoints = 0;     // WAL checkpoints run by the writer
};

class SqliteStore final : public Store {
  public:
    // Opens (creating if needed) the database at `path`, which must be a file path whose
    // directory exists; switches it to WAL mode and migrates its schema. Fails with
    // kFailedPrecondition if the file was written by a newer Strowger or is not a Strowger
    // store, kUnavailable if it cannot be opened. Error messages name the path.
    static Result<std::shared_ptr<SqliteStore>> OpenBlocking(std::string path,
                                                             SqliteOptions options = {});

    // CloseBlocking().
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    Awaitable<Result<CreateRunResult>> CreateRun(NewRun run) override;
    Awaitable<Result<void>> AppendEvents(std::string run_id, std::vector<ledger::Event> events,
                                         RunStatus status_after) override;
    Awaitable<Result<std::vector<StoredEvent>>> ReadEvents(std::string run_id,
                                                           EventQuery query) override;
    Awaitable<Result<RunRecord>> GetRun(std::string run_id) override;
    Awaitable<Result<RunPage>> ListRuns(RunFilter filter) override;
    Awaitable<Result<std::string>> GetDefinition(std::string sha256) override;
    Awaitable<Result<std::string>> FindByIdempotencyKey(std::string key) override;
    Awaitable<Result<bool>> TryLease(std::string run_id, std::string owner,
                                     SystemTime until) override;
    Awaitable<Result<void>> RenewLeases(std::string owner, SystemTime until) override;
    Awaitable<Result<void>> ReleaseLease(std::string run_id, std::string owner) override;
    Awaitable<Result<std::vector<RunRecord>>> FindClaimable(std::vector<RunStatus> statuses,
                                                            SystemTime now, int64_t limit) override;
    Awaitable<Result<void>> RequestControl(ControlRequest request) override;
    Awaitable<Result<std::vector<ControlRequest>>> TakeControlRequests(
        std::vector<std::string> run_ids) override;
    Awaitable<Result<int64_t>> PruneTerminalRuns(int64_t keep) override;
    Awaitable<Result<void>> RecordUsage(std::string key, SystemTime time, int64_t tokens) override;
    Awaitable<Result<int64_t>> UsageSince(std::string key, SystemTime since) override;
    Awaitable<Result<void>> SetWakeAt(std::string run_id, SystemTime due) override;
    Awaitable<Result<std::vector<RunRecord>>> FindDueRuns(SystemTime now, int64_t limit) override;
    Awaitable<Result<void>> AppendCheckpointBatch(ledger::CheckpointBatch batch) override;
    Awaitable<Result<std::optional<ledger::CheckpointBatch>>> LastCheckpointBatch() override;
    Awaitable<Result<std::vector<ledger::CheckpointBatch>>> ReadCheckpointBatches(
        int64_t first, int64_t limit) override;
    Awaitable<Result<std::vector<StoredCheckpoint>>> ReadCheckpoints(std::string run_id) override;
    Awaitable<Result<std::vector<RunRecord>>> FindUnsignedStops(std::string after_run_id,
                                                                int64_t limit) override;
    Awaitable<Result<WorkflowVersion>> PutWorkflowVersion(WorkflowVersion version) override;
    Awaitable<Result<std::vector<WorkflowVersion>>> ListWorkflowVersions(
        std::string workflow_id) override;
    Awaitable<Result<void>> DeleteWorkflow(std::string workflow_id, SystemTime at) override;
    Awaitable<Result<void>> PutToken(ApiToken token) override;
    Awaitable<Result<std::vector<ApiToken>>> ListTokens() override;
    Awaitable<Result<void>> RevokeToken(std::string name, SystemTime at) override;
    Awaitable<Result<void>> PutRetentionPolicy(RetentionPolicy policy) override;
    Awaitable<Result<std::vector<RetentionPolicy>>> ListRetentionPolicies() override;
    Awaitable<Result<void>> DeleteRetentionPolicy(std::string workflow) override;
    Awaitable<Result<int64_t>> PruneRuns(PruneRequest request) override;
    Awaitable<Result<void>> PutRunAnnotation(RunAnnotation annotation) override;
    Awaitable<Result<RunAnnotation>> GetRunAnnotation(std::string run_id) override;
    // Automation (automation_sql.cpp).
    Awaitable<Result<void>> PutTrigger(TriggerRecord trigger) override;
    Awaitable<Result<std::vector<TriggerRecord>>> ListTriggers() override;
    Awaitable<Result<void>> DeleteTrigger(std::string trigger_id) override;
    Awaitable<Result<void>> RecordTriggerFire(TriggerFire fire) override;
    Awaitable<Result<TriggerRecord>> CompleteTriggerFire(std::string fire_id, std::string run_id,
                                                         std::string error, SystemTime at) override;
    Awaitable<Result<std::vector<TriggerFire>>> PendingTriggerFires() override;
    Awaitable<Result<std::vector<TriggerFire>>> ListTriggerFires(std::string trigger_id,
                                                                 int64_t limit) override;
    Awaitable<Result<MemoryChange>> PutMemory(MemoryEntry entry) override;
    Awaitable<Result<MemoryEntry>> GetMemory(std::string name_space, std::string key) override;
    Awaitable<Result<std::vector<MemoryEntry>>> ListMemory(std::string name_space,
                                                           std::string prefix,
                                                           int64_t limit) override;
    Awaitable<Result<MemoryChange>> DeleteMemory(std::string name_space, std::string key) override;
    Awaitable<Result<void>> PutWebhook(WebhookRecord hook) override;
    Awaitable<Result<std::vector<WebhookRecord>>> ListWebhooks() override;
    Awaitable<Result<void>> DeleteWebhook(std::string name) override;
    Awaitable<Result<void>> RecordWebhookDelivery(std::string hook, std::string delivery_id,
                                                  SystemTime at) override;
    Awaitable<Result<void>> SetWebhookDeliveryRun(std::string hook, std::string delivery_id,
                                                  std::string run_id) override;

    // Standing agents and cron jobs (agents_cron_sql.cpp).
    Awaitable<Result<AgentSession>> OpenSession(AgentSession session) override;
    Awaitable<Result<AgentSession>> GetSession(std::string session_id) override;
    Awaitable<Result<std::vector<AgentSession>>> ListSessions(std::string agent) override;
    Awaitable<Result<std::vector<SessionMessage>>> ReadSessionMessages(
        std::string session_id) override;
    Awaitable<Result<void>> UpdateSession(SessionUpdate update) override;
    Awaitable<Result<void>> PutAgentTurn(AgentTurn turn) override;
    Awaitable<Result<std::vector<AgentTurn>>> ListAgentTurns() override;
    Awaitable<Result<void>> PutCronJob(CronJob job) override;
    Awaitable<Result<std::vector<CronJob>>> ListCronJobs() override;
    Awaitable<Result<CronJob>> GetCronJob(std::string job_id) override;
    Awaitable<Result<void>> DeleteCronJob(std::string job_id) override;
    Awaitable<Result<void>> RecordCronFire(CronFire fire, CronJob job) override;
    Awaitable<Result<void>> UpdateCronFire(CronFire fire, CronJob job) override;
    Awaitable<Result<std::vector<CronFire>>> ListCronFires(std::string job_id,
                                                           int64_t limit) override;
    Awaitable<Result<std::vector<CronFire>>> ListOpenCronFires() override;

    // Lets the writer finish every queued request (their waiters complete), waits for running
    // reads, then closes the connections. Later calls fail with kFailedPrecondition. Idempotent.
    void CloseBlocking();

    SqliteStats stats() const;
    // The absolute path of the database file.
    const std::string& path() const;

    // Test hooks. The next transaction's COMMIT is replaced by a ROLLBACK reported as
    // SQLITE_IOERR_FSYNC, as if the disk failed mid-commit: the store becomes poisoned.
    void InjectCommitFailureForTest();
    // While held, the writer takes nothing from its queue (so tests can line up a batch);
    // CloseBlocking overrides a hold.
    void HoldWriterForTest();
    void ReleaseWriterForTest();

  private:
    struct Impl;
    explicit SqliteStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// True if `owner` has the form "<host>:<pid>:<nonce>", `host` is `this_host`, and no process
// `pid` exists (kill(pid, 0) fails with ESRCH). Our own pid is always alive.
bool IsDeadLocalOwner(std::string_view owner, std::string_view this_host);

// This machine's host name, as engine owners spell it (gethostname).
std::string LocalHostName();

}  // namespace strowger::store
