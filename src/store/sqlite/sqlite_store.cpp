// Over 1,000 lines on purpose: the SQLite store's run and ledger statements, its migrations and
// its single writer thread (group commits) share one private connection and statement cache.
// The writer queue and Impl are in sqlite_store_impl.hpp; the daemon's, automation's and cron's
// records are sqlite_store_records.cpp (their SQL in *_sql.cpp). The next split is the
// checkpoint tables.
#include "store/sqlite/sqlite_store.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "core/log.hpp"
#include "core/strings.hpp"
#include "store/sqlite/agents_cron_sql.hpp"
#include "store/sqlite/automation_sql.hpp"
#include "store/sqlite/daemon_state_sql.hpp"
#include "store/sqlite/sqlite_connection.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"

namespace strowger::store {

using sqlite::Connection;
using sqlite::Statement;

namespace {

// Bumped by each migration; a file with a higher version was written by a newer Strowger.
constexpr int kSchemaVersion = 6;
// PRAGMA application_id of a Strowger store ("STRW").
constexpr int64_t kApplicationId = 0x53545257;

// kMigrations[i] takes the schema from version i to version i + 1. Never edit a released
// migration; append a new one.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY NOT NULL,
    workflow          TEXT NOT NULL,
    status            TEXT NOT NULL,               -- RunStatusName
    definition_sha256 TEXT NOT NULL,
    idempotency_key   TEXT,                        -- NULL = none
    created_at        INTEGER NOT NULL,            -- unix microseconds
    updated_at        INTEGER NOT NULL,
    head_seq          INTEGER NOT NULL,
    head_hash         TEXT NOT NULL,
    owner             TEXT,                        -- lease holder, NULL = none
    lease_until       INTEGER NOT NULL DEFAULT 0   -- unix microseconds
) WITHOUT ROWID;
CREATE UNIQUE INDEX runs_by_idempotency_key ON runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_status ON runs (status, run_id);
CREATE INDEX runs_by_workflow ON runs (workflow, run_id);
CREATE INDEX runs_by_owner ON runs (owner) WHERE owner IS NOT NULL;

-- Rows are stored in append order (the rowid), so a group commit of many runs' events
-- writes a few pages at the right edge of the table instead of one page per run; the
-- (run_id, seq) index is small.
CREATE TABLE events (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    type   TEXT NOT NULL,
    node   TEXT NOT NULL,
    line   TEXT NOT NULL                           -- the canonical encoded event
);
CREATE UNIQUE INDEX events_by_run ON events (run_id, seq);

CREATE TABLE definitions (
    sha256 TEXT PRIMARY KEY NOT NULL,
    json   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE control_requests (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    action INTEGER NOT NULL,                       -- ControlAction
    reason TEXT NOT NULL,
    actor  TEXT NOT NULL
);
CREATE INDEX control_requests_by_run ON control_requests (run_id, id);

-- Token usage per agent, for rolling hourly quotas (rows older than a day are discarded).
CREATE TABLE usage (
    key    TEXT NOT NULL,
    time   INTEGER NOT NULL,                       -- unix microseconds
    tokens INTEGER NOT NULL
);
CREATE INDEX usage_by_key ON usage (key, time);
)sql",
    // Version 2: signed checkpoints (docs/formats/checkpoint_v1.md).
    R"sql(
CREATE TABLE checkpoint_batches (
    batch_seq  INTEGER PRIMARY KEY NOT NULL,
    prev_hash  TEXT NOT NULL,
    root       TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    signed_at  INTEGER NOT NULL,                   -- unix microseconds
    recovered  INTEGER NOT NULL,
    signature  TEXT NOT NULL,
    leaves     TEXT NOT NULL                       -- "run_id seq head\n" per leaf, in order
);
CREATE TABLE checkpoints (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    head       TEXT NOT NULL,
    batch_seq  INTEGER NOT NULL,
    leaf_index INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq, batch_seq)
) WITHOUT ROWID;
ALTER TABLE runs ADD COLUMN checkpoint_seq INTEGER NOT NULL DEFAULT 0;
-- Runs whose head no signature covers yet: few (those executing, and stops a crash left
-- unsigned), found without scanning every run.
CREATE INDEX runs_unsigned ON runs (run_id) WHERE checkpoint_seq < head_seq;
)sql",
    // Version 3: durable timers (a human task's timeout; docs/design/dag.md).
    R"sql(
ALTER TABLE runs ADD COLUMN wake_at INTEGER NOT NULL DEFAULT 0;  -- unix microseconds, 0 = none
CREATE INDEX runs_by_wake_at ON runs (wake_at) WHERE wake_at > 0;
)sql",
    // Version 4, "daemon state": the daemon's workflow registry, API tokens, retention policies
    // and run annotations (docs/formats/daemon_state_v1.md).
    sqlite::kDaemonStateMigration,
    // Version 5, "automation": triggers and their fires, agent memory, webhooks
    // (docs/formats/automation_state_v1.md).
    sqlite::kAutomationMigration,
    // Version 6: standing agents' sessions and cron jobs (docs/formats/agents_cron_state_v1.md).
    sqlite::kAgentsCronMigration,
};
static_assert(std::size(kMigrations) == kSchemaVersion);

constexpr std::string_view kRunColumns =
    "run_id, workflow, status, definition_sha256, idempotency_key, created_at, updated_at, "
    "head_seq, head_hash, owner, lease_until, checkpoint_seq, wake_at";

// SQLite's default limit on host parameters is 32766; stay far below it.
constexpr size_t kMaxInList = 500;

std::string Placeholders(size_t count) {
    std::string text;
    for (size_t i = 0; i < count; ++i) text += i == 0 ? "?" : ",?";
    return text;
}

Result<RunRecord> ReadRunRecord(const Statement& row) {
    RunRecord record;
    record.run_id = row.Text(0);
    record.workflow = row.Text(1);
    std::string status = row.Text(2);
    bool known = false;
    record.status = ledger::RunStatusFromName(status, &known);
    if (!known) {
        return DataLossError("run " + record.run_id + " has unknown status \"" + status + "\"");
    }
    record.definition_sha256 = row.Text(3);
    record.idempotency_key = row.Text(4);
    record.created_at = FromUnixMicros(row.Int(5));
    record.updated_at = FromUnixMicros(row.Int(6));
    record.head.seq = row.Int(7);
    record.head.hash = row.Text(8);
    record.owner = row.Text(9);
    record.lease_until = FromUnixMicros(row.Int(10));
    record.checkpoint_seq = row.Int(11);
    if (row.Int(12) > 0) record.wake_at = FromUnixMicros(row.Int(12));
    return record;
}

bool TypeMatches(const std::vector<std::string>& types, const std::string& type) {
    if (types.empty()) return true;
    for (const auto& t : types) {
        if (t == type || (EndsWith(t, ".") && StartsWith(type, t))) return true;
    }
    return false;
}

// Events handed to the store must continue each other; the chain itself is the ledger's.
Status CheckContiguous(const std::string& run_id, const std::vector<ledger::Event>& events) {
    for (size_t i = 1; i < events.size(); ++i) {
        if (events[i].seq != events[i - 1].seq + 1) {
            return InvalidArgumentError("run " + run_id + ": events to append are not " +
                                        "consecutive (seq " + std::to_string(events[i - 1].seq) +
                                        " then " + std::to_string(events[i].seq) + ")");
        }
    }
    return OkStatus();
}

Status InsertEvents(Connection& db, const std::string& run_id,
                    const std::vector<ledger::Event>& events) {
    STROWGER_ASSIGN_OR_RETURN(
        auto insert,
        db.Prepare("INSERT INTO events (run_id, seq, type, node, line) VALUES (?, ?, ?, ?, ?)"));
    for (const auto& event : events) {
        insert.Bind(1, run_id);
        insert.Bind(2, event.seq);
        insert.Bind(3, event.type_name);
        insert.Bind(4, event.node);
        insert.Bind(5, event.encoded);
        STROWGER_TRY(insert.Run());
    }
    return OkStatus();
}

Result<bool> RunExists(Connection& db, const std::string& run_id) {
    STROWGER_ASSIGN_OR_RETURN(auto exists, db.Prepare("SELECT 1 FROM runs WHERE run_id = ?"));
    exists.Bind(1, run_id);
    return exists.Step();
}

// ---- Writes: each runs on the writer thread, inside the batch transaction. ----

Result<CreateRunResult> ApplyCreateRun(Connection& db, const NewRun& run) {
    if (!run.idempotency_key.empty()) {
        STROWGER_ASSIGN_OR_RETURN(auto find,
                                  db.Prepare("SELECT run_id FROM runs WHERE idempotency_key = ?"));
        find.Bind(1, run.idempotency_key);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found) return CreateRunResult{find.Text(0), false};
    }
    STROWGER_ASSIGN_OR_RETURN(bool exists, RunExists(db, run.run_id));
    if (exists) return AlreadyExistsError("run " + run.run_id + " exists");
    if (run.events.empty() || run.events.front().seq != 1) {
        return InvalidArgumentError("a new run's events must start at seq 1");
    }
    STROWGER_TRY(CheckContiguous(run.run_id, run.events));
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto define,
            db.Prepare("INSERT OR IGNORE INTO definitions (sha256, json) VALUES (?, ?)"));
        define.Bind(1, run.definition_sha256);
        define.Bind(
            2, run.definition_json ? std::string_view(*run.definition_json) : std::string_view(""));
        STROWGER_TRY(define.Run());
    }
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto insert,
            db.Prepare("INSERT INTO runs (run_id, workflow, status, definition_sha256, "
                       "idempotency_key, created_at, updated_at, head_seq, head_hash, owner, "
                       "lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
        const ledger::Event& last = run.events.back();
        insert.Bind(1, run.run_id);
        insert.Bind(2, run.workflow);
        insert.Bind(3, ledger::RunStatusName(run.status));
        insert.Bind(4, run.definition_sha256);
        insert.BindTextOrNull(5, run.idempotency_key);
        insert.Bind(6, ToUnixMicros(run.events.front().time));
        insert.Bind(7, ToUnixMicros(last.time));
        insert.Bind(8, last.seq);
        insert.Bind(9, last.hash);
        insert.BindTextOrNull(10, run.owner);
        insert.Bind(11, ToUnixMicros(run.lease_until));
        STROWGER_TRY(insert.Run());
    }
    STROWGER_TRY(InsertEvents(db, run.run_id, run.events));
    return CreateRunResult{run.run_id, true};
}

Result<void> ApplyAppendEvents(Connection& db, const std::string& run_id,
                               const std::vector<ledger::Event>& events, RunStatus status_after) {
    int64_t head_seq = 0;
    {
        STROWGER_ASSIGN_OR_RETURN(auto head,
                                  db.Prepare("SELECT head_seq FROM runs WHERE run_id = ?"));
        head.Bind(1, run_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, head.Step());
        if (!found) return NotFoundError("no run " + run_id);
        head_seq = head.Int(0);
    }
    if (events.empty()) return OkStatus();
    if (events.front().seq != head_seq + 1) {
        return MakeError(ErrorCode::kAborted, "run " + run_id + " head moved: expected seq " +
                                                  std::to_string(head_seq + 1) + ", got " +
                                                  std::to_string(events.front().seq));
    }
    STROWGER_TRY(CheckContiguous(run_id, events));
    STROWGER_TRY(InsertEvents(db, run_id, events));
    STROWGER_ASSIGN_OR_RETURN(auto update,
                              db.Prepare("UPDATE runs SET status = ?, head_seq = ?, head_hash = ?, "
                                         "updated_at = ? WHERE run_id = ?"));
    update.Bind(1, ledger::RunStatusName(status_after));
    update.Bind(2, events.back().seq);
    update.Bind(3, events.back().hash);
    update.Bind(4, ToUnixMicros(events.back().time));
    update.Bind(5, run_id);
    return update.Run();
}

Result<bool> ApplyTryLease(Connection& db, const std::string& run_id, const std::string& owner,
                           SystemTime until, const std::string& host) {
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto current, db.Prepare("SELECT owner, lease_until FROM runs WHERE run_id = ?"));
        current.Bind(1, run_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, current.Step());
        if (!found) return NotFoundError("no run " + run_id);
        std::string holder = current.Text(0);
        int64_t now = ToUnixMicros(std::chrono::system_clock::now());
        if (!holder.empty() && holder != owner && current.Int(1) > now &&
            !IsDeadLocalOwner(holder, host)) {
            return false;
        }
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto take, db.Prepare("UPDATE runs SET owner = ?, lease_until = ? WHERE run_id = ?"));
    take.BindTextOrNull(1, owner);
    take.Bind(2, ToUnixMicros(until));
    take.Bind(3, run_id);
    STROWGER_TRY(take.Run());
    return true;
}

Result<void> ApplyRenewLeases(Connection& db, const std::string& owner, SystemTime until) {
    STROWGER_ASSIGN_OR_RETURN(auto renew,
                              db.Prepare("UPDATE runs SET lease_until = ? WHERE owner = ?"));
    renew.Bind(1, ToUnixMicros(until));
    renew.Bind(2, owner);
    return renew.Run();
}

Result<void> ApplyReleaseLease(Connection& db, const std::string& run_id,
                               const std::string& owner) {
    STROWGER_ASSIGN_OR_RETURN(auto release,
                              db.Prepare("UPDATE runs SET owner = NULL, lease_until = 0 "
                                         "WHERE run_id = ? AND owner = ?"));
    release.Bind(1, run_id);
    release.Bind(2, owner);
    return release.Run();
}

Result<void> ApplyRequestControl(Connection& db, const ControlRequest& request) {
    STROWGER_ASSIGN_OR_RETURN(bool exists, RunExists(db, request.run_id));
    if (!exists) return NotFoundError("no run " + request.run_id);
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT INTO control_requests (run_id, action, reason, actor) "
                                "VALUES (?, ?, ?, ?)"));
    insert.Bind(1, request.run_id);
    insert.Bind(2, static_cast<int64_t>(request.action));
    insert.Bind(3, request.reason);
    insert.Bind(4, request.actor);
    return insert.Run();
}

Result<std::vector<ControlRequest>> ApplyTakeControlRequests(
    Connection& db, const std::vector<std::string>& run_ids) {
    std::vector<std::pair<int64_t, ControlRequest>> taken;
    for (size_t begin = 0; begin < run_ids.size(); begin += kMaxInList) {
        size_t count = std::min(kMaxInList, run_ids.size() - begin);
        std::string in = "(" + Placeholders(count) + ")";
        {
            STROWGER_ASSIGN_OR_RETURN(auto select,
                                      db.Prepare("SELECT id, run_id, action, reason, actor FROM "
                                                 "control_requests WHERE run_id IN " +
                                                 in));
            for (size_t i = 0; i < count; ++i)
                select.Bind(static_cast<int>(i + 1), run_ids[begin + i]);
            for (;;) {
                STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
                if (!row) break;
                int64_t action = select.Int(2);
                if (action != static_cast<int64_t>(ControlAction::kPause) &&
                    action != static_cast<int64_t>(ControlAction::kCancel)) {
                    return DataLossError("control request " + std::to_string(select.Int(0)) +
                                         " has unknown action " + std::to_string(action));
                }
                ControlRequest request;
                request.run_id = select.Text(1);
                request.action = static_cast<ControlAction>(action);
                request.reason = select.Text(3);
                request.actor = select.Text(4);
                taken.emplace_back(select.Int(0), std::move(request));
            }
        }
        STROWGER_ASSIGN_OR_RETURN(auto remove,
                                  db.Prepare("DELETE FROM control_requests WHERE run_id IN " + in));
        for (size_t i = 0; i < count; ++i) remove.Bind(static_cast<int>(i + 1), run_ids[begin + i]);
        STROWGER_TRY(remove.Run());
    }
    std::sort(taken.begin(), taken.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<ControlRequest> out;
    out.reserve(taken.size());
    for (auto& [id, request] : taken) out.push_back(std::move(request));
    return out;
}

constexpr RunStatus kAllStatuses[] = {
    RunStatus::kPending,   RunStatus::kRunning,
    RunStatus::kPaused,    RunStatus::kWaiting,
    RunStatus::kCompleted, RunStatus::kFailed,
    RunStatus::kCancelled, RunStatus::kNeedsReconciliation,
};

// Deletes runs with everything that belongs to them. The batch log keeps the leaves of deleted
// runs: it is signed, and it is what lets `audit verify` tell a pruned run from a forged one
// (docs/design/audit.md).
Result<int64_t> DeleteRuns(Connection& db, const std::vector<std::string>& doomed) {
    for (const char* sql :
         {"DELETE FROM events WHERE run_id = ?", "DELETE FROM control_requests WHERE run_id = ?",
          "DELETE FROM checkpoints WHERE run_id = ?",
          "DELETE FROM run_annotations WHERE run_id = ?", "DELETE FROM runs WHERE run_id = ?"}) {
        STROWGER_ASSIGN_OR_RETURN(auto remove, db.Prepare(sql));
        for (const auto& run_id : doomed) {
            remove.Bind(1, run_id);
            STROWGER_TRY(remove.Run());
        }
    }
    return static_cast<int64_t>(doomed.size());
}

Result<int64_t> ApplyPruneTerminalRuns(Connection& db, int64_t keep) {
    std::vector<std::string_view> terminal;
    for (RunStatus status : kAllStatuses) {
        if (ledger::IsTerminal(status)) terminal.push_back(ledger::RunStatusName(status));
    }
    std::vector<std::string> doomed;
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto select,
            db.Prepare("SELECT run_id FROM runs WHERE status IN (" + Placeholders(terminal.size()) +
                       ") ORDER BY run_id DESC LIMIT -1 OFFSET ?"));
        int index = 1;
        for (auto name : terminal) select.Bind(index++, name);
        select.Bind(index, std::max<int64_t>(keep, 0));
        for (;;) {
            STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
            if (!row) break;
            doomed.push_back(select.Text(0));
        }
    }
    return DeleteRuns(db, doomed);
}

Result<void> ApplyAppendCheckpointBatch(Connection& db, const ledger::CheckpointBatch& batch) {
    int64_t last = 0;
    {
        STROWGER_ASSIGN_OR_RETURN(auto select,
                                  db.Prepare("SELECT MAX(batch_seq) FROM checkpoint_batches"));
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (row && !select.IsNull(0)) last = select.Int(0);
    }
    if (batch.batch_seq != last + 1) {
        return MakeError(ErrorCode::kAborted, "checkpoint batch log moved: expected batch " +
                                                  std::to_string(last + 1) + ", got " +
                                                  std::to_string(batch.batch_seq));
    }
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto insert,
            db.Prepare("INSERT INTO checkpoint_batches (batch_seq, prev_hash, root, key_id, "
                       "signed_at, recovered, signature, leaves) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
        insert.Bind(1, batch.batch_seq);
        insert.Bind(2, batch.prev_hash);
        insert.Bind(3, batch.root);
        insert.Bind(4, batch.key_id);
        insert.Bind(5, ToUnixMicros(batch.signed_at));
        insert.Bind(6, int64_t{batch.recovered ? 1 : 0});
        insert.Bind(7, batch.signature);
        insert.Bind(8, ledger::EncodeLeaves(batch.leaves));
        STROWGER_TRY(insert.Run());
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto row, db.Prepare("INSERT OR IGNORE INTO checkpoints (run_id, seq, head, batch_seq, "
                             "leaf_index) SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs "
                             "WHERE run_id = ?)"));
    STROWGER_ASSIGN_OR_RETURN(auto raise,
                              db.Prepare("UPDATE runs SET checkpoint_seq = ? WHERE run_id = ? AND "
                                         "checkpoint_seq < ?"));
    for (size_t i = 0; i < batch.leaves.size(); ++i) {
        const auto& leaf = batch.leaves[i];
        row.Bind(1, leaf.run_id);
        row.Bind(2, leaf.seq);
        row.Bind(3, leaf.head);
        row.Bind(4, batch.batch_seq);
        row.Bind(5, static_cast<int64_t>(i));
        row.Bind(6, leaf.run_id);
        STROWGER_TRY(row.Run());
        raise.Bind(1, leaf.seq);
        raise.Bind(2, leaf.run_id);
        raise.Bind(3, leaf.seq);
        STROWGER_TRY(raise.Run());
    }
    return OkStatus();
}

// ---- Reads: each runs on a read-pool thread, inside a read transaction (one snapshot). ----

Result<std::vector<ledger::CheckpointBatch>> QueryCheckpointBatches(Connection& db, int64_t first,
                                                                    int64_t limit, bool last_only) {
    STROWGER_ASSIGN_OR_RETURN(
        auto select,
        db.Prepare(last_only ? "SELECT batch_seq, prev_hash, root, key_id, signed_at, recovered, "
                               "signature, leaves FROM checkpoint_batches ORDER BY batch_seq "
                               "DESC LIMIT 1"
                             : "SELECT batch_seq, prev_hash, root, key_id, signed_at, recovered, "
                               "signature, leaves FROM checkpoint_batches WHERE batch_seq >= ? "
                               "ORDER BY batch_seq LIMIT ?"));
    if (!last_only) {
        select.Bind(1, first);
        select.Bind(2, limit > 0 ? limit : int64_t{-1});
    }
    std::vector<ledger::CheckpointBatch> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        ledger::CheckpointBatch batch;
        batch.batch_seq = select.Int(0);
        batch.prev_hash = select.Text(1);
        batch.root = select.Text(2);
        batch.key_id = select.Text(3);
        batch.signed_at = FromUnixMicros(select.Int(4));
        batch.recovered = select.Int(5) != 0;
        batch.signature = select.Text(6);
        auto leaves = ledger::DecodeLeaves(select.Text(7));
        if (!leaves) {
            return std::unexpected(leaves.error().WithPrefix(
                "checkpoint batch " + std::to_string(batch.batch_seq) + ": "));
        }
        batch.leaves = std::move(*leaves);
        out.push_back(std::move(batch));
    }
    return out;
}

Result<std::vector<StoredCheckpoint>> QueryCheckpoints(Connection& db, const std::string& run_id) {
    STROWGER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT seq, head, batch_seq, leaf_index FROM checkpoints WHERE "
                                "run_id = ? ORDER BY seq, batch_seq"));
    select.Bind(1, run_id);
    std::vector<StoredCheckpoint> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(
            StoredCheckpoint{run_id, select.Int(0), select.Text(1), select.Int(2), select.Int(3)});
    }
    return out;
}

Result<std::vector<RunRecord>> QueryUnsignedStops(Connection& db, const std::string& after,
                                                  int64_t limit) {
    STROWGER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT " + std::string(kRunColumns) +
                                " FROM runs WHERE checkpoint_seq < head_seq AND run_id > ? AND "
                                "status NOT IN ('running', 'pending') ORDER BY run_id LIMIT ?"));
    select.Bind(1, after);
    select.Bind(2, limit > 0 ? limit : int64_t{-1});
    std::vector<RunRecord> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        STROWGER_ASSIGN_OR_RETURN(auto record, ReadRunRecord(select));
        out.push_back(std::move(record));
    }
    return out;
}

Result<std::vector<StoredEvent>> QueryEvents(Connection& db, const std::string& run_id,
                                             const EventQuery& query) {
    STROWGER_ASSIGN_OR_RETURN(bool exists, RunExists(db, run_id));
    if (!exists) return NotFoundError("no run " + run_id);
    // A type filter is applied here rather than in SQL (prefix entries), so the limit is too.
    bool filtered = !query.types.empty();
    STROWGER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT seq, type, node, line FROM events WHERE run_id = ? "
                                "AND seq > ? ORDER BY seq LIMIT ?"));
    select.Bind(1, run_id);
    select.Bind(2, query.after_seq);
    select.Bind(3, !filtered && query.limit > 0 ? query.limit : int64_t{-1});
    std::vector<StoredEvent> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        std::string type = select.Text(1);
        if (!TypeMatches(query.types, type)) continue;
        out.push_back(StoredEvent{select.Int(0), std::move(type), select.Text(2), select.Text(3)});
        if (query.limit > 0 && static_cast<int64_t>(out.size()) >= query.limit) break;
    }
    return out;
}

Result<RunRecord> QueryRun(Connection& db, const std::string& run_id) {
    STROWGER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT " + std::string(kRunColumns) +
                                                      " FROM runs WHERE run_id = ?"));
    select.Bind(1, run_id);
    STROWGER_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return NotFoundError("no run " + run_id);
    return ReadRunRecord(select);
}

Result<RunPage> QueryRuns(Connection& db, const RunFilter& filter) {
    std::string sql = "SELECT " + std::string(kRunColumns) + " FROM runs WHERE 1";
    if (!filter.before_run_id.empty()) sql += " AND run_id < ?";
    if (!filter.workflow.empty()) sql += " AND workflow = ?";
    if (!filter.statuses.empty()) {
        sql += " AND status IN (" + Placeholders(filter.statuses.size()) + ")";
    }
    sql += " ORDER BY run_id DESC LIMIT ?";
    STROWGER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
    int index = 1;
    if (!filter.before_run_id.empty()) select.Bind(index++, filter.before_run_id);
    if (!filter.workflow.empty()) select.Bind(index++, filter.workflow);
    for (RunStatus status : filter.statuses) select.Bind(index++, ledger::RunStatusName(status));
    // One row more than asked tells whether there is a next page.
    select.Bind(index, filter.limit > 0 ? filter.limit + 1 : int64_t{-1});
    RunPage page;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        if (filter.limit > 0 && static_cast<int64_t>(page.runs.size()) >= filter.limit) {
            page.next_cursor = page.runs.back().run_id;
            break;
        }
        STROWGER_ASSIGN_OR_RETURN(auto record, ReadRunRecord(select));
        page.runs.push_back(std::move(record));
    }
    return page;
}

Result<std::string> QueryDefinition(Connection& db, const std::string& sha256) {
    STROWGER_ASSIGN_OR_RETURN(auto select,
                              db.Prepare("SELECT json FROM definitions WHERE sha256 = ?"));
    select.Bind(1, sha256);
    STROWGER_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return NotFoundError("no definition " + sha256);
    return select.Text(0);
}

Result<std::string> QueryIdempotencyKey(Connection& db, const std::string& key) {
    STROWGER_ASSIGN_OR_RETURN(auto select,
                              db.Prepare("SELECT run_id FROM runs WHERE idempotency_key = ?"));
    select.Bind(1, key);
    STROWGER_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return NotFoundError("no run with idempotency key " + key);
    return select.Text(0);
}

// What a query for free runs adds to its WHERE clause (binding `now`, then the two values of
// BindLocalOwnerPrefix): no owner, an expired lease, or an owner on this host (it may be dead:
// LeaseIsFree decides).
constexpr std::string_view kLeaseMayBeFree =
    "(owner IS NULL OR lease_until <= ? OR substr(owner, 1, ?) = ?)";

void BindLocalOwnerPrefix(Statement& select, int index, const std::string& host) {
    select.Bind(index, static_cast<int64_t>(host.size() + 1));
    select.Bind(index + 1, host + ":");
}

// A run's lease is free: no owner, expired, or held by a dead process on this host.
bool LeaseIsFree(const RunRecord& record, int64_t now_micros, const std::string& host) {
    return record.owner.empty() || ToUnixMicros(record.lease_until) <= now_micros ||
           IsDeadLocalOwner(record.owner, host);
}

Result<std::vector<RunRecord>> QueryClaimable(Connection& db,
                                              const std::vector<RunStatus>& statuses,
                                              SystemTime now, int64_t limit,
                                              const std::string& host) {
    std::vector<RunRecord> out;
    if (statuses.empty()) return out;
    // Runs leased by an owner on this host are candidates too: that owner may be dead.
    STROWGER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT " + std::string(kRunColumns) +
                                " FROM runs WHERE status IN (" + Placeholders(statuses.size()) +
                                ") AND " + std::string(kLeaseMayBeFree) + " ORDER BY run_id"));
    int index = 1;
    for (RunStatus status : statuses) select.Bind(index++, ledger::RunStatusName(status));
    int64_t now_micros = ToUnixMicros(now);
    select.Bind(index++, now_micros);
    BindLocalOwnerPrefix(select, index, host);
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        STROWGER_ASSIGN_OR_RETURN(auto record, ReadRunRecord(select));
        if (!LeaseIsFree(record, now_micros, host)) continue;
        out.push_back(std::move(record));
        if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    }
    return out;
}

Result<bool> QueryAnyControlRequests(Connection& db, const std::vector<std::string>& run_ids) {
    for (size_t begin = 0; begin < run_ids.size(); begin += kMaxInList) {
        size_t count = std::min(kMaxInList, run_ids.size() - begin);
        STROWGER_ASSIGN_OR_RETURN(auto select,
                                  db.Prepare("SELECT 1 FROM control_requests WHERE run_id IN (" +
                                             Placeholders(count) + ") LIMIT 1"));
        for (size_t i = 0; i < count; ++i) select.Bind(static_cast<int>(i + 1), run_ids[begin + i]);
        STROWGER_ASSIGN_OR_RETURN(bool found, select.Step());
        if (found) return true;
    }
    return false;
}

Result<int64_t> PragmaInt(Connection& db, const char* sql) {
    STROWGER_ASSIGN_OR_RETURN(auto pragma, db.Prepare(sql));
    STROWGER_ASSIGN_OR_RETURN(bool row, pragma.Step());
    return row ? pragma.Int(0) : 0;
}

}  // namespace

int SqliteStore::Impl::WalHook(void* arg, sqlite3* /*db*/, const char* /*database*/, int frames) {
    static_cast<Impl*>(arg)->wal_frames = frames;
    return SQLITE_OK;
}

Status SqliteStore::Impl::Setup() {
    STROWGER_ASSIGN_OR_RETURN(
        writer, Connection::Open(path, Connection::Role::kWriter, options.busy_timeout));
    {
        STROWGER_ASSIGN_OR_RETURN(auto mode, writer->Prepare("PRAGMA journal_mode=WAL"));
        STROWGER_ASSIGN_OR_RETURN(bool row, mode.Step());
        std::string name = row ? AsciiLower(mode.Text(0)) : "";
        if (name != "wal") {
            return FailedPreconditionError("store " + path + " cannot use WAL mode (journal_mode " +
                                           "is \"" + name + "\")");
        }
    }
    STROWGER_TRY(writer->Exec(options.synchronous == SqliteSync::kFull
                                  ? "PRAGMA synchronous=FULL"
                                  : "PRAGMA synchronous=NORMAL"));
    // After a checkpoint, shrink a WAL that a burst made large.
    STROWGER_TRY(writer->Exec("PRAGMA journal_size_limit=67108864"));
    STROWGER_TRY(Migrate());
    // Our hook replaces SQLite's auto-checkpoint, so the writer runs checkpoints itself and
    // sees their errors (a failed fsync there poisons the store like a failed commit).
    sqlite3_wal_hook(writer->handle(), &WalHook, this);
    for (int i = 0; i < options.read_threads; ++i) {
        STROWGER_ASSIGN_OR_RETURN(
            auto reader, Connection::Open(path, Connection::Role::kReader, options.busy_timeout));
        idle_readers.push_back(std::move(reader));
    }
    return OkStatus();
}

Status SqliteStore::Impl::Migrate() {
    // IMMEDIATE: two processes opening a new file at once migrate one after the other.
    STROWGER_TRY(writer->Exec("BEGIN IMMEDIATE"));
    Status migrated = MigrateInTransaction();
    if (!migrated) {
        (void)writer->Exec("ROLLBACK");
        return migrated;
    }
    return writer->Exec("COMMIT");
}

Status SqliteStore::Impl::MigrateInTransaction() {
    STROWGER_ASSIGN_OR_RETURN(int64_t application_id, PragmaInt(*writer, "PRAGMA application_id"));
    STROWGER_ASSIGN_OR_RETURN(int64_t version, PragmaInt(*writer, "PRAGMA user_version"));
    STROWGER_ASSIGN_OR_RETURN(int64_t objects,
                              PragmaInt(*writer, "SELECT count(*) FROM sqlite_schema"));
    if (application_id != kApplicationId && (application_id != 0 || objects != 0)) {
        return FailedPreconditionError(path + " is an SQLite database but not a Strowger store");
    }
    if (version > kSchemaVersion) {
        return FailedPreconditionError("store " + path + " has schema version " +
                                       std::to_string(version) + ", newer than this Strowger " +
                                       "understands (" + std::to_string(kSchemaVersion) +
                                       "); use a newer strowger");
    }
    if (version == kSchemaVersion) return OkStatus();
    for (int64_t v = version; v < kSchemaVersion; ++v) {
        auto applied = writer->Exec(kMigrations[v]);
        if (!applied)
            return std::unexpected(applied.error().WithPrefix("migrating store to schema version " +
                                                              std::to_string(v + 1) + ": "));
    }
    std::string stamp = "PRAGMA user_version=" + std::to_string(kSchemaVersion) +
                        "; PRAGMA application_id=" + std::to_string(kApplicationId);
    return writer->Exec(stamp.c_str());
}

void SqliteStore::Impl::Start() {
    read_pool.emplace(static_cast<size_t>(options.read_threads));
    writer_thread = std::thread([this] { WriterLoop(); });
}

void SqliteStore::Impl::Close() {
    std::call_once(close_once, [this] {
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        wake.notify_all();
        if (writer_thread.joinable()) writer_thread.join();
        {
            std::lock_guard lock(readers_mutex);
            reads_closed = true;
        }
        // join() lets reads already posted finish.
        if (read_pool) read_pool->join();
        {
            std::lock_guard lock(readers_mutex);
            idle_readers.clear();
        }
        // The writer closes last, so SQLite checkpoints and removes the WAL.
        writer.reset();
    });
}

void sqlite_internal::CompleteAll(std::vector<std::unique_ptr<WriteOp>>& ops) {
    size_t begin = 0;
    while (begin < ops.size()) {
        Executor executor = ops[begin]->executor();
        size_t end = begin + 1;
        while (end < ops.size() && ops[end]->executor() == executor) ++end;
        if (end - begin == 1) {
            ops[begin]->Complete();
        } else {
            std::vector<std::unique_ptr<WriteOp>> group(
                std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(begin)),
                std::make_move_iterator(ops.begin() + static_cast<std::ptrdiff_t>(end)));
            // The ops' work guards keep the executor's context running until they deliver;
            // this one until post has returned here (else the context may finish the group,
            // run out of work and be destroyed while post still signals it: TSan).
            auto posting = asio::make_work_guard(executor);
            asio::post(executor, [group = std::move(group)]() mutable {
                for (auto& op : group) op->Deliver();
            });
        }
        begin = end;
    }
    ops.clear();
}

void SqliteStore::Impl::Enqueue(std::unique_ptr<WriteOp> op) {
    {
        std::lock_guard lock(mutex);
        if (!stopping && !poisoned) {
            queue.push_back(std::move(op));
            queued.store(static_cast<int64_t>(queue.size()));
            wake.notify_one();
            return;
        }
        op->Fail(stopping ? ClosedError() : *poisoned);
    }
    op->Complete();
}

void SqliteStore::Impl::WriterLoop() {
    const size_t max_batch = static_cast<size_t>(std::max(options.max_batch, 1));
    for (;;) {
        std::vector<std::unique_ptr<WriteOp>> batch;
        std::optional<Error> poison_error;
        {
            std::unique_lock lock(mutex);
            wake.wait(lock, [&] { return stopping || (!held && !queue.empty()); });
            if (queue.empty()) return;  // stopping, and everything queued is done
            size_t take = std::min(queue.size(), max_batch);
            for (size_t i = 0; i < take; ++i) {
                batch.push_back(std::move(queue.front()));
                queue.pop_front();
            }
            queued.store(static_cast<int64_t>(queue.size()));
            poison_error = poisoned;
        }
        write_requests += static_cast<int64_t>(batch.size());
        int64_t size = static_cast<int64_t>(batch.size());
        int64_t largest = largest_batch.load();
        while (size > largest && !largest_batch.compare_exchange_weak(largest, size)) {
        }
        if (poison_error) {
            for (auto& op : batch) {
                op->Fail(*poison_error);
                op->Complete();
            }
            continue;
        }
        RunBatch(batch);
    }
}

namespace {

// Runs a statement through the connection's prepared-statement cache: per-request savepoints
// would otherwise re-parse their SQL for every request of every batch.
Status RunCached(Connection& db, std::string_view sql) {
    auto statement = db.Prepare(sql);
    if (!statement) return std::unexpected(statement.error());
    return statement->Run();
}

}  // namespace

void SqliteStore::Impl::RunBatch(std::vector<std::unique_ptr<WriteOp>>& batch) {
    Connection& db = *writer;
    db.ClearStorageFailure();
    if (auto begun = db.Exec("BEGIN IMMEDIATE"); !begun) {
        // Nothing was written. Another process holding the write lock past busy_timeout is a
        // retryable kUnavailable; broken storage poisons the store.
        Error error = begun.error();
        if (db.storage_failure() != SQLITE_OK) error = Poison(error);
        for (auto& op : batch) {
            op->Fail(error);
            op->Complete();
        }
        return;
    }
    ++transactions;

    // Each request gets a savepoint, so one that fails (kAborted, kNotFound...) is undone
    // alone. `fatal` is set when the transaction as a whole can no longer be trusted.
    std::optional<Error> fatal;
    std::vector<bool> keep_own_error(batch.size(), false);
    size_t index = 0;
    for (; index < batch.size(); ++index) {
        Status step = RunCached(db, "SAVEPOINT request");
        bool applied = false;
        if (step) {
            applied = batch[index]->Apply(db).has_value();
            if (!applied) step = RunCached(db, "ROLLBACK TO request");
            if (step) step = RunCached(db, "RELEASE request");
        }
        if (!step) {
            fatal = step.error();
        } else if (db.storage_failure() != SQLITE_OK || !db.InTransaction()) {
            fatal = sqlite::SqliteError(
                db.storage_failure() != SQLITE_OK ? db.storage_failure() : SQLITE_ABORT,
                "a write to " + path + " failed mid-transaction", "");
        }
        if (fatal) break;
        keep_own_error[index] = !applied;
    }

    if (!fatal) {
        Status committed;
        if (inject_commit_failure.exchange(false)) {
            (void)db.Exec("ROLLBACK");
            committed = std::unexpected(sqlite::SqliteError(SQLITE_IOERR_FSYNC, "COMMIT on " + path,
                                                            "injected commit failure"));
        } else {
            committed = db.Exec("COMMIT");
        }
        if (!committed) {
            fatal = committed.error().WithPrefix("outcome of a commit of " +
                                                 std::to_string(batch.size()) +
                                                 " write requests is unknown: ");
        }
    }
    if (fatal) {
        if (db.InTransaction()) (void)db.Exec("ROLLBACK");
        Error error = Poison(*fatal);
        for (size_t i = 0; i < batch.size(); ++i) {
            // A request that failed on its own wrote nothing whatever became of the batch.
            if (!keep_own_error[i]) batch[i]->Fail(error);
        }
        sqlite_internal::CompleteAll(batch);
        return;
    }
    sqlite_internal::CompleteAll(batch);
    MaybeCheckpoint();
}

Error SqliteStore::Impl::Poison(const Error& cause) {
    std::lock_guard lock(mutex);
    if (!poisoned) {
        poisoned = Error(ErrorCode::kDataLoss, "store must be reopened: " + cause.message());
        spdlog::error("store {} refuses writes until reopened: {}", path, cause.ToString());
    }
    return *poisoned;
}

void SqliteStore::Impl::MaybeCheckpoint() {
    if (wal_frames < options.checkpoint_frames) return;
    wal_frames = 0;
    ++checkpoints;
    int rc = sqlite3_wal_checkpoint_v2(writer->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    Error error = writer->Fail(rc, "checkpoint");
    if (sqlite::IsStorageFailure(rc)) {
        Poison(error);
    } else {
        spdlog::warn("{}", error.ToString());
    }
}

// ---- SqliteStore ----

Result<std::shared_ptr<SqliteStore>> SqliteStore::OpenBlocking(std::string path,
                                                               SqliteOptions options) {
    if (path.empty()) return InvalidArgumentError("the sqlite store needs a file path");
    if (path == ":memory:" || StartsWith(path, "file:")) {
        return InvalidArgumentError("sqlite store path \"" + path +
                                    "\" is not a plain file path (use memory: for a throwaway "
                                    "store)");
    }
    std::error_code ec;
    auto absolute = std::filesystem::absolute(path, ec);
    if (ec) return InvalidArgumentError("store path " + path + ": " + ec.message());
    if (sqlite3_threadsafe() == 0) {
        return FailedPreconditionError("libsqlite3 was built without thread support");
    }
    options.read_threads = std::max(options.read_threads, 1);
    options.max_batch = std::max(options.max_batch, 1);
    auto impl = std::make_unique<Impl>(absolute.lexically_normal().string(), options);
    STROWGER_TRY(impl->Setup());
    impl->Start();
    return std::shared_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SqliteStore::~SqliteStore() {
    CloseBlocking();
}

void SqliteStore::CloseBlocking() {
    impl_->Close();
}

const std::string& SqliteStore::path() const {
    return impl_->path;
}

SqliteStats SqliteStore::stats() const {
    SqliteStats stats;
    stats.write_requests = impl_->write_requests.load();
    stats.transactions = impl_->transactions.load();
    stats.largest_batch = impl_->largest_batch.load();
    stats.queued = impl_->queued.load();
    stats.checkpoints = impl_->checkpoints.load();
    return stats;
}

void SqliteStore::InjectCommitFailureForTest() {
    impl_->inject_commit_failure = true;
}

void SqliteStore::HoldWriterForTest() {
    std::lock_guard lock(impl_->mutex);
    impl_->held = true;
}

void SqliteStore::ReleaseWriterForTest() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->held = false;
    }
    impl_->wake.notify_all();
}

Awaitable<Result<CreateRunResult>> SqliteStore::CreateRun(NewRun run) {
    return impl_->Write<CreateRunResult>(
        [run = std::move(run)](Connection& db) { return ApplyCreateRun(db, run); });
}

Awaitable<Result<void>> SqliteStore::AppendEvents(std::string run_id,
                                                  std::vector<ledger::Event> events,
                                                  RunStatus status_after) {
    return impl_->Write<void>(
        [run_id = std::move(run_id), events = std::move(events), status_after](Connection& db) {
            return ApplyAppendEvents(db, run_id, events, status_after);
        });
}

Awaitable<Result<std::vector<StoredEvent>>> SqliteStore::ReadEvents(std::string run_id,
                                                                    EventQuery query) {
    return impl_->Read<std::vector<StoredEvent>>(
        [run_id = std::move(run_id), query = std::move(query)](Connection& db) {
            return QueryEvents(db, run_id, query);
        });
}

Awaitable<Result<RunRecord>> SqliteStore::GetRun(std::string run_id) {
    return impl_->Read<RunRecord>(
        [run_id = std::move(run_id)](Connection& db) { return QueryRun(db, run_id); });
}

Awaitable<Result<RunPage>> SqliteStore::ListRuns(RunFilter filter) {
    return impl_->Read<RunPage>(
        [filter = std::move(filter)](Connection& db) { return QueryRuns(db, filter); });
}

Awaitable<Result<std::string>> SqliteStore::GetDefinition(std::string sha256) {
    return impl_->Read<std::string>(
        [sha256 = std::move(sha256)](Connection& db) { return QueryDefinition(db, sha256); });
}

Awaitable<Result<std::string>> SqliteStore::FindByIdempotencyKey(std::string key) {
    return impl_->Read<std::string>(
        [key = std::move(key)](Connection& db) { return QueryIdempotencyKey(db, key); });
}

Awaitable<Result<bool>> SqliteStore::TryLease(std::string run_id, std::string owner,
                                              SystemTime until) {
    return impl_->Write<bool>([run_id = std::move(run_id), owner = std::move(owner), until,
                               host = impl_->host](Connection& db) {
        return ApplyTryLease(db, run_id, owner, until, host);
    });
}

Awaitable<Result<void>> SqliteStore::RenewLeases(std::string owner, SystemTime until) {
    return impl_->Write<void>([owner = std::move(owner), until](Connection& db) {
        return ApplyRenewLeases(db, owner, until);
    });
}

Awaitable<Result<void>> SqliteStore::ReleaseLease(std::string run_id, std::string owner) {
    return impl_->Write<void>([run_id = std::move(run_id), owner = std::move(owner)](
                                  Connection& db) { return ApplyReleaseLease(db, run_id, owner); });
}

Awaitable<Result<std::vector<RunRecord>>> SqliteStore::FindClaimable(
    std::vector<RunStatus> statuses, SystemTime now, int64_t limit) {
    return impl_->Read<std::vector<RunRecord>>(
        [statuses = std::move(statuses), now, limit, host = impl_->host](Connection& db) {
            return QueryClaimable(db, statuses, now, limit, host);
        });
}

Awaitable<Result<void>> SqliteStore::RequestControl(ControlRequest request) {
    return impl_->Write<void>([request = std::move(request)](Connection& db) {
        return ApplyRequestControl(db, request);
    });
}

Awaitable<Result<std::vector<ControlRequest>>> SqliteStore::TakeControlRequests(
    std::vector<std::string> run_ids) {
    if (run_ids.empty()) co_return std::vector<ControlRequest>();
    // Callers poll this for every run they execute; checking on a reader first keeps the
    // common "nothing pending" answer from costing a write transaction.
    auto check = impl_->Read<bool>(
        [run_ids](Connection& db) { return QueryAnyControlRequests(db, run_ids); });
    STROWGER_CO_ASSIGN_OR_RETURN(bool pending, co_await std::move(check));
    if (!pending) co_return std::vector<ControlRequest>();
    auto take =
        impl_->Write<std::vector<ControlRequest>>([run_ids = std::move(run_ids)](Connection& db) {
            return ApplyTakeControlRequests(db, run_ids);
        });
    co_return co_await std::move(take);
}

Awaitable<Result<int64_t>> SqliteStore::PruneTerminalRuns(int64_t keep) {
    return impl_->Write<int64_t>(
        [keep](Connection& db) { return ApplyPruneTerminalRuns(db, keep); });
}

Awaitable<Result<void>> SqliteStore::RecordUsage(std::string key, SystemTime time, int64_t tokens) {
    return impl_->Write<void>([key = std::move(key), time, tokens](Connection& db) -> Status {
        STROWGER_ASSIGN_OR_RETURN(
            auto insert, db.Prepare("INSERT INTO usage (key, time, tokens) VALUES (?, ?, ?)"));
        insert.Bind(1, key);
        insert.Bind(2, ToUnixMicros(time));
        insert.Bind(3, tokens);
        STROWGER_TRY(insert.Run());
        STROWGER_ASSIGN_OR_RETURN(auto prune,
                                  db.Prepare("DELETE FROM usage WHERE key = ? AND time < ?"));
        prune.Bind(1, key);
        prune.Bind(2, ToUnixMicros(time - std::chrono::hours(24)));
        return prune.Run();
    });
}

Awaitable<Result<int64_t>> SqliteStore::UsageSince(std::string key, SystemTime since) {
    return impl_->Read<int64_t>([key = std::move(key), since](Connection& db) -> Result<int64_t> {
        STROWGER_ASSIGN_OR_RETURN(
            auto select,
            db.Prepare("SELECT COALESCE(SUM(tokens), 0) FROM usage WHERE key = ? AND time >= ?"));
        select.Bind(1, key);
        select.Bind(2, ToUnixMicros(since));
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        return row ? select.Int(0) : 0;
    });
}

// ---- URL, owners ----

Awaitable<Result<void>> SqliteStore::SetWakeAt(std::string run_id, SystemTime due) {
    return impl_->Write<void>([run_id = std::move(run_id), due](Connection& db) -> Status {
        STROWGER_ASSIGN_OR_RETURN(auto set,
                                  db.Prepare("UPDATE runs SET wake_at = ? WHERE run_id = ?"));
        set.Bind(1, due == SystemTime{} ? int64_t{0} : ToUnixMicros(due));
        set.Bind(2, run_id);
        STROWGER_TRY(set.Run());
        if (sqlite3_changes(db.handle()) == 0) return NotFoundError("no run " + run_id);
        return OkStatus();
    });
}

Awaitable<Result<std::vector<RunRecord>>> SqliteStore::FindDueRuns(SystemTime now, int64_t limit) {
    return impl_->Read<std::vector<RunRecord>>(
        [now, limit, host = impl_->host](Connection& db) -> Result<std::vector<RunRecord>> {
            // As for FindClaimable, a lease of a dead process on this host is free: a process
            // killed between a run's waiting stop and its lease release left it behind.
            STROWGER_ASSIGN_OR_RETURN(
                auto select,
                db.Prepare("SELECT " + std::string(kRunColumns) +
                           " FROM runs WHERE wake_at > 0 AND wake_at <= ? AND status = 'waiting' "
                           "AND " +
                           std::string(kLeaseMayBeFree) + " ORDER BY wake_at, run_id"));
            const int64_t micros = ToUnixMicros(now);
            select.Bind(1, micros);
            select.Bind(2, micros);
            BindLocalOwnerPrefix(select, 3, host);
            std::vector<RunRecord> out;
            for (;;) {
                STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
                if (!row) break;
                STROWGER_ASSIGN_OR_RETURN(auto record, ReadRunRecord(select));
                if (!LeaseIsFree(record, micros, host)) continue;
                out.push_back(std::move(record));
                if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
            }
            return out;
        });
}

Awaitable<Result<void>> SqliteStore::AppendCheckpointBatch(ledger::CheckpointBatch batch) {
    return impl_->Write<void>([batch = std::move(batch)](Connection& db) {
        return ApplyAppendCheckpointBatch(db, batch);
    });
}

Awaitable<Result<std::optional<ledger::CheckpointBatch>>> SqliteStore::LastCheckpointBatch() {
    return impl_->Read<std::optional<ledger::CheckpointBatch>>(
        [](Connection& db) -> Result<std::optional<ledger::CheckpointBatch>> {
            STROWGER_ASSIGN_OR_RETURN(auto batches, QueryCheckpointBatches(db, 0, 1, true));
            if (batches.empty()) return std::nullopt;
            return std::move(batches.front());
        });
}

Awaitable<Result<std::vector<ledger::CheckpointBatch>>> SqliteStore::ReadCheckpointBatches(
    int64_t first, int64_t limit) {
    return impl_->Read<std::vector<ledger::CheckpointBatch>>(
        [first, limit](Connection& db) { return QueryCheckpointBatches(db, first, limit, false); });
}

Awaitable<Result<std::vector<StoredCheckpoint>>> SqliteStore::ReadCheckpoints(std::string run_id) {
    return impl_->Read<std::vector<StoredCheckpoint>>(
        [run_id = std::move(run_id)](Connection& db) { return QueryCheckpoints(db, run_id); });
}

Awaitable<Result<std::vector<RunRecord>>> SqliteStore::FindUnsignedStops(std::string after_run_id,
                                                                         int64_t limit) {
    return impl_->Read<std::vector<RunRecord>>(
        [after = std::move(after_run_id), limit](Connection& db) {
            return QueryUnsignedStops(db, after, limit);
        });
}

// The daemon's retention (its other records are in sqlite_store_records.cpp): runs go as
// PruneTerminalRuns removes them.
Awaitable<Result<int64_t>> SqliteStore::PruneRuns(PruneRequest request) {
    return impl_->Write<int64_t>([request = std::move(request)](Connection& db) -> Result<int64_t> {
        STROWGER_ASSIGN_OR_RETURN(auto doomed, sqlite::QueryRunsToPrune(db, request));
        return DeleteRuns(db, doomed);
    });
}

Result<SqliteUrl> ParseSqliteUrl(std::string_view url) {
    constexpr std::string_view kScheme = "sqlite:";
    if (!StartsWith(url, kScheme)) {
        return InvalidArgumentError("\"" + std::string(url) + "\" is not an sqlite: store URL");
    }
    std::string_view rest = url.substr(kScheme.size());
    size_t question = rest.find('?');
    SqliteUrl parsed;
    parsed.path = std::string(rest.substr(0, question));
    if (parsed.path.empty()) {
        return InvalidArgumentError("store URL \"" + std::string(url) +
                                    "\" has no path (expected sqlite:PATH)");
    }
    if (question == std::string_view::npos) return parsed;
    for (const auto& parameter : Split(rest.substr(question + 1), '&')) {
        if (parameter.empty()) continue;
        size_t equals = parameter.find('=');
        std::string key = parameter.substr(0, equals);
        std::string value = equals == std::string::npos ? "" : parameter.substr(equals + 1);
        if (key != "synchronous") {
            return InvalidArgumentError("unknown parameter \"" + key + "\" in store URL \"" +
                                        std::string(url) + "\" (known: synchronous)");
        }
        std::string lower = AsciiLower(value);
        if (lower == "normal") {
            parsed.options.synchronous = SqliteSync::kNormal;
        } else if (lower == "full") {
            parsed.options.synchronous = SqliteSync::kFull;
        } else {
            return InvalidArgumentError("synchronous must be normal or full, not \"" + value +
                                        "\", in store URL \"" + std::string(url) + "\"");
        }
    }
    return parsed;
}

std::string LocalHostName() {
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0) return {};
    return host;
}

bool IsDeadLocalOwner(std::string_view owner, std::string_view this_host) {
    if (this_host.empty()) return false;
    size_t last = owner.rfind(':');
    if (last == std::string_view::npos || last == 0 || last + 1 == owner.size()) return false;
    size_t middle = owner.rfind(':', last - 1);
    if (middle == std::string_view::npos) return false;
    if (owner.substr(0, middle) != this_host) return false;
    std::string_view pid_text = owner.substr(middle + 1, last - middle - 1);
    int64_t pid = 0;
    auto [end, error] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
    if (error != std::errc() || end != pid_text.data() + pid_text.size() || pid <= 0 ||
        pid > std::numeric_limits<pid_t>::max()) {
        return false;
    }
    if (pid == getpid()) return false;
    // EPERM means the process exists but belongs to someone else: alive.
    return kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

}  // namespace strowger::store
