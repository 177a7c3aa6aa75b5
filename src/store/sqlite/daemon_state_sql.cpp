#include "store/sqlite/daemon_state_sql.hpp"

#include "ledger/run_state.hpp"

namespace strowger::store::sqlite {

const char* const kDaemonStateMigration = R"sql(
CREATE TABLE workflows (
    workflow_id TEXT PRIMARY KEY NOT NULL,
    origin      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE workflow_versions (
    workflow_id       TEXT NOT NULL,
    version           INTEGER NOT NULL,
    name              TEXT NOT NULL,
    description       TEXT NOT NULL,
    definition_sha256 TEXT NOT NULL,
    source            TEXT NOT NULL,
    source_format     TEXT NOT NULL,
    actor             TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (workflow_id, version)
) WITHOUT ROWID;
CREATE TABLE api_tokens (
    name         TEXT PRIMARY KEY NOT NULL,
    role         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE retention_policies (
    workflow   TEXT PRIMARY KEY NOT NULL,
    keep_days  INTEGER NOT NULL,
    keep_count INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE run_annotations (
    run_id           TEXT PRIMARY KEY NOT NULL,
    workflow_id      TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    trigger_source   TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    request_sha256   TEXT NOT NULL,
    actor            TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX run_annotations_by_trigger ON run_annotations (trigger_source, run_id);
)sql";

namespace {

constexpr std::string_view kVersionColumns =
    "v.workflow_id, v.version, v.name, v.description, v.definition_sha256, v.source, "
    "v.source_format, w.origin, v.actor, v.created_at";

WorkflowVersion ReadVersion(const Statement& row) {
    WorkflowVersion v;
    v.workflow_id = row.Text(0);
    v.version = row.Int(1);
    v.name = row.Text(2);
    v.description = row.Text(3);
    v.definition_sha256 = row.Text(4);
    v.source = row.Text(5);
    v.source_format = row.Text(6);
    v.origin = row.Text(7);
    v.actor = row.Text(8);
    v.created_at = FromUnixMicros(row.Int(9));
    return v;
}

}  // namespace

Result<WorkflowVersion> ApplyPutWorkflowVersion(Connection& db, const WorkflowVersion& version) {
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto find, db.Prepare("SELECT deleted_at FROM workflows WHERE workflow_id = ?"));
        find.Bind(1, version.workflow_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found && find.Int(0) != 0) {
            return NotFoundError("workflow " + version.workflow_id + " was deleted");
        }
        if (!found) {
            STROWGER_ASSIGN_OR_RETURN(
                auto insert, db.Prepare("INSERT INTO workflows (workflow_id, origin, created_at) "
                                        "VALUES (?, ?, ?)"));
            insert.Bind(1, version.workflow_id);
            insert.Bind(2, version.origin);
            insert.Bind(3, ToUnixMicros(version.created_at));
            STROWGER_TRY(insert.Run());
        }
    }
    int64_t latest = 0;
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto last, db.Prepare("SELECT " + std::string(kVersionColumns) +
                                  " FROM workflow_versions v JOIN workflows w USING (workflow_id) "
                                  "WHERE v.workflow_id = ? ORDER BY v.version DESC LIMIT 1"));
        last.Bind(1, version.workflow_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, last.Step());
        if (found) {
            WorkflowVersion existing = ReadVersion(last);
            if (existing.definition_sha256 == version.definition_sha256) return existing;
            latest = existing.version;
        }
    }
    WorkflowVersion stored = version;
    stored.version = latest + 1;
    STROWGER_ASSIGN_OR_RETURN(
        auto insert,
        db.Prepare("INSERT INTO workflow_versions (workflow_id, version, name, description, "
                   "definition_sha256, source, source_format, actor, created_at) VALUES (?, ?, "
                   "?, ?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, stored.workflow_id);
    insert.Bind(2, stored.version);
    insert.Bind(3, stored.name);
    insert.Bind(4, stored.description);
    insert.Bind(5, stored.definition_sha256);
    insert.Bind(6, stored.source);
    insert.Bind(7, stored.source_format);
    insert.Bind(8, stored.actor);
    insert.Bind(9, ToUnixMicros(stored.created_at));
    STROWGER_TRY(insert.Run());
    // The origin is the workflow's: report the stored one.
    STROWGER_ASSIGN_OR_RETURN(auto origin,
                              db.Prepare("SELECT origin FROM workflows WHERE workflow_id = ?"));
    origin.Bind(1, stored.workflow_id);
    STROWGER_ASSIGN_OR_RETURN(bool found, origin.Step());
    if (found) stored.origin = origin.Text(0);
    return stored;
}

Result<std::vector<WorkflowVersion>> QueryWorkflowVersions(Connection& db,
                                                           const std::string& workflow_id) {
    std::string sql = "SELECT " + std::string(kVersionColumns) +
                      " FROM workflow_versions v JOIN workflows w USING (workflow_id) WHERE "
                      "w.deleted_at = 0";
    if (!workflow_id.empty()) sql += " AND v.workflow_id = ?";
    sql += " ORDER BY v.workflow_id, v.version";
    STROWGER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
    if (!workflow_id.empty()) select.Bind(1, workflow_id);
    std::vector<WorkflowVersion> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(ReadVersion(select));
    }
    return out;
}

Result<void> ApplyDeleteWorkflow(Connection& db, const std::string& workflow_id, SystemTime at) {
    STROWGER_ASSIGN_OR_RETURN(
        auto find, db.Prepare("SELECT 1 FROM workflows WHERE workflow_id = ? AND deleted_at = 0"));
    find.Bind(1, workflow_id);
    STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) return NotFoundError("no workflow " + workflow_id);
    STROWGER_ASSIGN_OR_RETURN(
        auto update, db.Prepare("UPDATE workflows SET deleted_at = ? WHERE workflow_id = ?"));
    update.Bind(1, std::max<int64_t>(ToUnixMicros(at), 1));
    update.Bind(2, workflow_id);
    return update.Run();
}

Result<void> ApplyPutToken(Connection& db, const ApiToken& token) {
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto find,
            db.Prepare("SELECT name FROM api_tokens WHERE name = ? OR token_sha256 = ?"));
        find.Bind(1, token.name);
        find.Bind(2, token.token_sha256);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found) {
            return AlreadyExistsError(find.Text(0) == token.name
                                          ? "a token named " + token.name + " exists"
                                          : "a token with that hash exists");
        }
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT INTO api_tokens (name, role, token_sha256, created_by, "
                                "created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, token.name);
    insert.Bind(2, token.role);
    insert.Bind(3, token.token_sha256);
    insert.Bind(4, token.created_by);
    insert.Bind(5, ToUnixMicros(token.created_at));
    insert.Bind(6, token.live() ? int64_t{0} : ToUnixMicros(token.revoked_at));
    return insert.Run();
}

Result<std::vector<ApiToken>> QueryTokens(Connection& db) {
    STROWGER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT name, role, token_sha256, created_by, created_at, "
                                "revoked_at FROM api_tokens ORDER BY name"));
    std::vector<ApiToken> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        ApiToken token;
        token.name = select.Text(0);
        token.role = select.Text(1);
        token.token_sha256 = select.Text(2);
        token.created_by = select.Text(3);
        token.created_at = FromUnixMicros(select.Int(4));
        if (select.Int(5) != 0) token.revoked_at = FromUnixMicros(select.Int(5));
        out.push_back(std::move(token));
    }
    return out;
}

Result<void> ApplyRevokeToken(Connection& db, const std::string& name, SystemTime at) {
    STROWGER_ASSIGN_OR_RETURN(auto find, db.Prepare("SELECT 1 FROM api_tokens WHERE name = ?"));
    find.Bind(1, name);
    STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) return NotFoundError("no token named " + name);
    STROWGER_ASSIGN_OR_RETURN(
        auto update,
        db.Prepare("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at = 0"));
    update.Bind(1, std::max<int64_t>(ToUnixMicros(at), 1));
    update.Bind(2, name);
    return update.Run();
}

Result<void> ApplyPutRetentionPolicy(Connection& db, const RetentionPolicy& policy) {
    STROWGER_ASSIGN_OR_RETURN(
        auto upsert,
        db.Prepare("INSERT OR REPLACE INTO retention_policies (workflow, keep_days, keep_count) "
                   "VALUES (?, ?, ?)"));
    upsert.Bind(1, policy.workflow);
    upsert.Bind(2, policy.keep_days);
    upsert.Bind(3, policy.keep_count);
    return upsert.Run();
}

Result<std::vector<RetentionPolicy>> QueryRetentionPolicies(Connection& db) {
    STROWGER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT workflow, keep_days, keep_count FROM retention_policies "
                                "ORDER BY workflow"));
    std::vector<RetentionPolicy> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(RetentionPolicy{select.Text(0), select.Int(1), select.Int(2)});
    }
    return out;
}

Result<void> ApplyDeleteRetentionPolicy(Connection& db, const std::string& workflow) {
    STROWGER_ASSIGN_OR_RETURN(auto find,
                              db.Prepare("SELECT 1 FROM retention_policies WHERE workflow = ?"));
    find.Bind(1, workflow);
    STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) return NotFoundError("no retention policy for \"" + workflow + "\"");
    STROWGER_ASSIGN_OR_RETURN(auto remove,
                              db.Prepare("DELETE FROM retention_policies WHERE workflow = ?"));
    remove.Bind(1, workflow);
    return remove.Run();
}

Result<std::vector<std::string>> QueryRunsToPrune(Connection& db, const PruneRequest& request) {
    std::string where = "status IN ('completed', 'failed', 'cancelled')";
    if (!request.workflow.empty()) {
        where += " AND workflow = ?";
    } else if (!request.except.empty()) {
        where += " AND workflow NOT IN (";
        for (size_t i = 0; i < request.except.size(); ++i) where += i == 0 ? "?" : ", ?";
        where += ")";
    }
    // The newest finished runs of each workflow rank first.
    STROWGER_ASSIGN_OR_RETURN(
        auto select,
        db.Prepare("SELECT run_id FROM (SELECT run_id, updated_at, ROW_NUMBER() OVER "
                   "(PARTITION BY workflow ORDER BY run_id DESC) AS rank FROM runs WHERE " +
                   where +
                   ") WHERE (? > 0 AND rank > ?) OR (? > 0 AND updated_at < ?) ORDER BY run_id "
                   "LIMIT ?"));
    int index = 1;
    if (!request.workflow.empty()) {
        select.Bind(index++, request.workflow);
    } else {
        for (const auto& name : request.except) select.Bind(index++, name);
    }
    const bool aged = request.finished_before != SystemTime{};
    select.Bind(index++, request.keep_count);
    select.Bind(index++, request.keep_count);
    select.Bind(index++, int64_t{aged ? 1 : 0});
    select.Bind(index++, aged ? ToUnixMicros(request.finished_before) : int64_t{0});
    select.Bind(index, request.max_runs > 0 ? request.max_runs : int64_t{-1});
    std::vector<std::string> out;
    for (;;) {
        STROWGER_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        out.push_back(select.Text(0));
    }
    return out;
}

Result<void> ApplyPutRunAnnotation(Connection& db, const RunAnnotation& a) {
    {
        STROWGER_ASSIGN_OR_RETURN(auto find, db.Prepare("SELECT 1 FROM runs WHERE run_id = ?"));
        find.Bind(1, a.run_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (!found) return NotFoundError("no run " + a.run_id);
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto upsert,
        db.Prepare("INSERT OR REPLACE INTO run_annotations (run_id, workflow_id, "
                   "workflow_version, trigger_source, metadata, request_sha256, actor) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?)"));
    upsert.Bind(1, a.run_id);
    upsert.Bind(2, a.workflow_id);
    upsert.Bind(3, a.workflow_version);
    upsert.Bind(4, a.trigger_source);
    upsert.Bind(5, a.metadata);
    upsert.Bind(6, a.request_sha256);
    upsert.Bind(7, a.actor);
    return upsert.Run();
}

Result<RunAnnotation> QueryRunAnnotation(Connection& db, const std::string& run_id) {
    STROWGER_ASSIGN_OR_RETURN(
        auto select,
        db.Prepare("SELECT workflow_id, workflow_version, trigger_source, metadata, "
                   "request_sha256, actor FROM run_annotations WHERE run_id = ?"));
    select.Bind(1, run_id);
    STROWGER_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) return NotFoundError("run " + run_id + " has no annotation");
    RunAnnotation a;
    a.run_id = run_id;
    a.workflow_id = select.Text(0);
    a.workflow_version = select.Int(1);
    a.trigger_source = select.Text(2);
    a.metadata = select.Text(3);
    a.request_sha256 = select.Text(4);
    a.actor = select.Text(5);
    return a;
}

}  // namespace strowger::store::sqlite
