#include "store/sqlite/automation_sql.hpp"

namespace strowger::store::sqlite {

const char* const kAutomationMigration = R"sql(
CREATE TABLE triggers (
    trigger_id      TEXT PRIMARY KEY NOT NULL,
    agent_id        TEXT NOT NULL,
    workflow_id     TEXT NOT NULL,
    pattern         TEXT NOT NULL,
    prompt_template TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    fire_count      INTEGER NOT NULL,
    max_fires       INTEGER NOT NULL,
    cooldown_secs   INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE trigger_fires (
    fire_id         TEXT PRIMARY KEY NOT NULL,
    trigger_id      TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    target          TEXT NOT NULL,
    prompt          TEXT NOT NULL,
    depth           INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    status          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    error           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (trigger_id, event_id)
) WITHOUT ROWID;
CREATE INDEX trigger_fires_pending ON trigger_fires (fire_id) WHERE status = 'pending';
CREATE TABLE memory (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE webhooks (
    name              TEXT PRIMARY KEY NOT NULL,
    secret            TEXT NOT NULL,
    workflow_id       TEXT NOT NULL,
    require_timestamp INTEGER NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE webhook_deliveries (
    hook        TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (hook, delivery_id)
) WITHOUT ROWID;
)sql";

namespace {

constexpr std::string_view kTriggerColumns =
    "trigger_id, agent_id, workflow_id, pattern, prompt_template, enabled, fire_count, "
    "max_fires, cooldown_secs, created_at";

TriggerRecord ReadTrigger(const Statement& row) {
    TriggerRecord t;
    t.trigger_id = row.Text(0);
    t.agent_id = row.Text(1);
    t.workflow_id = row.Text(2);
    t.pattern = row.Text(3);
    t.prompt_template = row.Text(4);
    t.enabled = row.Int(5) != 0;
    t.fire_count = row.Int(6);
    t.max_fires = row.Int(7);
    t.cooldown_secs = row.Int(8);
    t.created_at = FromUnixMicros(row.Int(9));
    return t;
}

constexpr std::string_view kTriggerFireColumns =
    "fire_id, trigger_id, event_id, target, prompt, depth, idempotency_key, status, run_id, "
    "error, created_at, updated_at";

TriggerFire ReadTriggerFire(const Statement& row) {
    TriggerFire f;
    f.fire_id = row.Text(0);
    f.trigger_id = row.Text(1);
    f.event_id = row.Text(2);
    f.target = row.Text(3);
    f.prompt = row.Text(4);
    f.depth = row.Int(5);
    f.idempotency_key = row.Text(6);
    f.status = row.Text(7);
    f.run_id = row.Text(8);
    f.error = row.Text(9);
    f.created_at = FromUnixMicros(row.Int(10));
    f.updated_at = FromUnixMicros(row.Int(11));
    return f;
}

Result<std::optional<TriggerRecord>> FindTrigger(Connection& db, const std::string& id) {
    STROWGER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT " + std::string(kTriggerColumns) +
                                                      " FROM triggers WHERE trigger_id = ?"));
    select.Bind(1, id);
    STROWGER_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return std::optional<TriggerRecord>();
    return std::optional<TriggerRecord>(ReadTrigger(select));
}

}  // namespace

Result<void> ApplyPutTrigger(Connection& db, const TriggerRecord& t) {
    STROWGER_ASSIGN_OR_RETURN(
        auto upsert, db.Prepare("INSERT OR REPLACE INTO triggers (" + std::string(kTriggerColumns) +
                                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    upsert.Bind(1, t.trigger_id);
    upsert.Bind(2, t.agent_id);
    upsert.Bind(3, t.workflow_id);
    upsert.Bind(4, t.pattern);
    upsert.Bind(5, t.prompt_template);
    upsert.Bind(6, int64_t{t.enabled ? 1 : 0});
    upsert.Bind(7, t.fire_count);
    upsert.Bind(8, t.max_fires);
    upsert.Bind(9, t.cooldown_secs);
    upsert.Bind(10, ToUnixMicros(t.created_at));
    return upsert.Run();
}

Result<std::vector<TriggerRecord>> QueryTriggers(Connection& db) {
    STROWGER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT " + std::string(kTriggerColumns) +
                                                      " FROM triggers ORDER BY trigger_id"));
    std::vector<TriggerRecord> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(ReadTrigger(select));
    }
    return out;
}

Result<void> ApplyDeleteTrigger(Connection& db, const std::string& trigger_id) {
    STROWGER_ASSIGN_OR_RETURN(auto found, FindTrigger(db, trigger_id));
    if (!found) return NotFoundError("Trigger not found: " + trigger_id);
    for (const char* sql : {"DELETE FROM trigger_fires WHERE trigger_id = ?",
                            "DELETE FROM triggers WHERE trigger_id = ?"}) {
        STROWGER_ASSIGN_OR_RETURN(auto remove, db.Prepare(sql));
        remove.Bind(1, trigger_id);
        STROWGER_TRY(remove.Run());
    }
    return OkStatus();
}

Result<void> ApplyRecordTriggerFire(Connection& db, const TriggerFire& f) {
    STROWGER_ASSIGN_OR_RETURN(auto trigger, FindTrigger(db, f.trigger_id));
    if (!trigger) return NotFoundError("Trigger not found: " + f.trigger_id);
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto find,
            db.Prepare("SELECT fire_id FROM trigger_fires WHERE trigger_id = ? AND event_id = ?"));
        find.Bind(1, f.trigger_id);
        find.Bind(2, f.event_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found) {
            return AlreadyExistsError("trigger " + f.trigger_id + " fired for event " + f.event_id +
                                      " already (" + find.Text(0) + ")");
        }
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT INTO trigger_fires (" + std::string(kTriggerFireColumns) +
                                ") VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', '', '', ?, ?)"));
    insert.Bind(1, f.fire_id);
    insert.Bind(2, f.trigger_id);
    insert.Bind(3, f.event_id);
    insert.Bind(4, f.target);
    insert.Bind(5, f.prompt);
    insert.Bind(6, f.depth);
    insert.Bind(7, f.idempotency_key);
    insert.Bind(8, ToUnixMicros(f.created_at));
    insert.Bind(9, ToUnixMicros(f.created_at));
    return insert.Run();
}

Result<TriggerRecord> ApplyCompleteTriggerFire(Connection& db, const std::string& fire_id,
                                               const std::string& run_id, const std::string& error,
                                               SystemTime at) {
    std::string trigger_id;
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto find, db.Prepare("SELECT trigger_id FROM trigger_fires WHERE fire_id = ? AND "
                                  "status = 'pending'"));
        find.Bind(1, fire_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (!found) return NotFoundError("no pending fire " + fire_id);
        trigger_id = find.Text(0);
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto update, db.Prepare("UPDATE trigger_fires SET status = ?, run_id = ?, error = ?, "
                                "updated_at = ? WHERE fire_id = ?"));
    update.Bind(1, run_id.empty() ? std::string_view("failed") : std::string_view("started"));
    update.Bind(2, run_id);
    update.Bind(3, error);
    update.Bind(4, ToUnixMicros(at));
    update.Bind(5, fire_id);
    STROWGER_TRY(update.Run());
    if (!run_id.empty()) {
        STROWGER_ASSIGN_OR_RETURN(
            auto count,
            db.Prepare("UPDATE triggers SET fire_count = fire_count + 1, enabled = CASE WHEN "
                       "max_fires > 0 AND fire_count + 1 >= max_fires THEN 0 ELSE enabled END "
                       "WHERE trigger_id = ?"));
        count.Bind(1, trigger_id);
        STROWGER_TRY(count.Run());
    }
    STROWGER_ASSIGN_OR_RETURN(auto trigger, FindTrigger(db, trigger_id));
    if (!trigger) return NotFoundError("Trigger not found: " + trigger_id);
    return *trigger;
}

Result<std::vector<TriggerFire>> QueryPendingTriggerFires(Connection& db) {
    STROWGER_ASSIGN_OR_RETURN(auto select,
                              db.Prepare("SELECT " + std::string(kTriggerFireColumns) +
                                         " FROM trigger_fires WHERE status = 'pending' ORDER BY "
                                         "fire_id"));
    std::vector<TriggerFire> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(ReadTriggerFire(select));
    }
    return out;
}

Result<std::vector<TriggerFire>> QueryTriggerFires(Connection& db, const std::string& trigger_id,
                                                   int64_t limit) {
    STROWGER_ASSIGN_OR_RETURN(auto select,
                              db.Prepare("SELECT " + std::string(kTriggerFireColumns) +
                                         " FROM trigger_fires WHERE trigger_id = ? ORDER BY "
                                         "fire_id DESC LIMIT ?"));
    select.Bind(1, trigger_id);
    select.Bind(2, limit > 0 ? limit : int64_t{-1});
    std::vector<TriggerFire> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(ReadTriggerFire(select));
    }
    return out;
}

Result<MemoryChange> ApplyPutMemory(Connection& db, const MemoryEntry& entry) {
    MemoryChange change;
    change.kind = "created";
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto find, db.Prepare("SELECT value FROM memory WHERE namespace = ? AND key = ?"));
        find.Bind(1, entry.name_space);
        find.Bind(2, entry.key);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found) {
            change.old_value = find.Text(0);
            if (change.old_value == entry.value) {
                change.kind = "unchanged";
                return change;
            }
            change.kind = "updated";
        }
    }
    STROWGER_ASSIGN_OR_RETURN(auto upsert,
                              db.Prepare("INSERT OR REPLACE INTO memory (namespace, key, value, "
                                         "updated_at) VALUES (?, ?, ?, ?)"));
    upsert.Bind(1, entry.name_space);
    upsert.Bind(2, entry.key);
    upsert.Bind(3, entry.value);
    upsert.Bind(4, ToUnixMicros(entry.updated_at));
    STROWGER_TRY(upsert.Run());
    return change;
}

Result<MemoryEntry> QueryMemory(Connection& db, const std::string& name_space,
                                const std::string& key) {
    STROWGER_ASSIGN_OR_RETURN(
        auto find,
        db.Prepare("SELECT value, updated_at FROM memory WHERE namespace = ? AND key = ?"));
    find.Bind(1, name_space);
    find.Bind(2, key);
    STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) return NotFoundError("no key \"" + key + "\" in memory " + name_space);
    return MemoryEntry{name_space, key, find.Text(0), FromUnixMicros(find.Int(1))};
}

Result<std::vector<MemoryEntry>> QueryMemoryList(Connection& db, const std::string& name_space,
                                                 const std::string& prefix, int64_t limit) {
    STROWGER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT key, value, updated_at FROM memory WHERE namespace = ? "
                                "AND key >= ? ORDER BY key LIMIT ?"));
    select.Bind(1, name_space);
    select.Bind(2, prefix);
    select.Bind(3, int64_t{-1});
    std::vector<MemoryEntry> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        std::string key = select.Text(0);
        if (key.compare(0, prefix.size(), prefix) != 0) break;
        out.push_back(
            MemoryEntry{name_space, std::move(key), select.Text(1), FromUnixMicros(select.Int(2))});
        if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    }
    return out;
}

Result<MemoryChange> ApplyDeleteMemory(Connection& db, const std::string& name_space,
                                       const std::string& key) {
    STROWGER_ASSIGN_OR_RETURN(auto existing, QueryMemory(db, name_space, key));
    STROWGER_ASSIGN_OR_RETURN(auto remove,
                              db.Prepare("DELETE FROM memory WHERE namespace = ? AND key = ?"));
    remove.Bind(1, name_space);
    remove.Bind(2, key);
    STROWGER_TRY(remove.Run());
    return MemoryChange{"deleted", existing.value};
}

Result<void> ApplyPutWebhook(Connection& db, const WebhookRecord& hook) {
    {
        STROWGER_ASSIGN_OR_RETURN(auto find, db.Prepare("SELECT 1 FROM webhooks WHERE name = ?"));
        find.Bind(1, hook.name);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found) return AlreadyExistsError("a hook named " + hook.name + " exists");
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT INTO webhooks (name, secret, workflow_id, "
                                "require_timestamp, created_by, created_at) VALUES (?, ?, ?, ?, "
                                "?, ?)"));
    insert.Bind(1, hook.name);
    insert.Bind(2, hook.secret);
    insert.Bind(3, hook.workflow_id);
    insert.Bind(4, int64_t{hook.require_timestamp ? 1 : 0});
    insert.Bind(5, hook.created_by);
    insert.Bind(6, ToUnixMicros(hook.created_at));
    return insert.Run();
}

Result<std::vector<WebhookRecord>> QueryWebhooks(Connection& db) {
    STROWGER_ASSIGN_OR_RETURN(auto select,
                              db.Prepare("SELECT name, secret, workflow_id, require_timestamp, "
                                         "created_by, created_at FROM webhooks ORDER BY name"));
    std::vector<WebhookRecord> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(WebhookRecord{select.Text(0), select.Text(1), select.Text(2),
                                    select.Int(3) != 0, select.Text(4),
                                    FromUnixMicros(select.Int(5))});
    }
    return out;
}

Result<void> ApplyDeleteWebhook(Connection& db, const std::string& name) {
    {
        STROWGER_ASSIGN_OR_RETURN(auto find, db.Prepare("SELECT 1 FROM webhooks WHERE name = ?"));
        find.Bind(1, name);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (!found) return NotFoundError("no hook named " + name);
    }
    for (const char* sql :
         {"DELETE FROM webhook_deliveries WHERE hook = ?", "DELETE FROM webhooks WHERE name = ?"}) {
        STROWGER_ASSIGN_OR_RETURN(auto remove, db.Prepare(sql));
        remove.Bind(1, name);
        STROWGER_TRY(remove.Run());
    }
    return OkStatus();
}

Result<void> ApplyRecordWebhookDelivery(Connection& db, const std::string& hook,
                                        const std::string& delivery_id, SystemTime at) {
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto find,
            db.Prepare("SELECT 1 FROM webhook_deliveries WHERE hook = ? AND delivery_id = ?"));
        find.Bind(1, hook);
        find.Bind(2, delivery_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found) return AlreadyExistsError("delivery " + delivery_id + " was received before");
    }
    // Deliveries older than 7 days are forgotten.
    {
        STROWGER_ASSIGN_OR_RETURN(auto prune,
                                  db.Prepare("DELETE FROM webhook_deliveries WHERE hook = ? AND "
                                             "received_at < ?"));
        prune.Bind(1, hook);
        prune.Bind(2, ToUnixMicros(at - std::chrono::hours(24 * 7)));
        STROWGER_TRY(prune.Run());
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT INTO webhook_deliveries (hook, delivery_id, run_id, "
                                "received_at) VALUES (?, ?, '', ?)"));
    insert.Bind(1, hook);
    insert.Bind(2, delivery_id);
    insert.Bind(3, ToUnixMicros(at));
    return insert.Run();
}

Result<void> ApplySetWebhookDeliveryRun(Connection& db, const std::string& hook,
                                        const std::string& delivery_id, const std::string& run_id) {
    STROWGER_ASSIGN_OR_RETURN(
        auto update,
        db.Prepare("UPDATE webhook_deliveries SET run_id = ? WHERE hook = ? AND delivery_id = ?"));
    update.Bind(1, run_id);
    update.Bind(2, hook);
    update.Bind(3, delivery_id);
    return update.Run();
}

}  // namespace strowger::store::sqlite
