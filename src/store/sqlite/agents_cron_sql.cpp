#include "store/sqlite/agents_cron_sql.hpp"

namespace strowger::store::sqlite {

const char* const kAgentsCronMigration = R"sql(
CREATE TABLE agent_sessions (
    session_id TEXT PRIMARY KEY NOT NULL,
    agent      TEXT NOT NULL,
    channel    TEXT NOT NULL,
    mode       TEXT NOT NULL,
    summary    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX agent_sessions_persistent ON agent_sessions (agent, channel)
    WHERE mode = 'persistent';
CREATE TABLE agent_session_messages (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    role       TEXT NOT NULL,
    content    TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    run_id     TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE agent_turns (
    run_id     TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL,
    agent      TEXT NOT NULL,
    message    TEXT NOT NULL,
    silent     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE cron_jobs (
    job_id               TEXT PRIMARY KEY NOT NULL,
    name                 TEXT NOT NULL,
    agent                TEXT NOT NULL,
    schedule             TEXT NOT NULL,
    action               TEXT NOT NULL,
    enabled              INTEGER NOT NULL,
    misfire              TEXT NOT NULL,
    overlap              TEXT NOT NULL,
    origin               TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    next_fire_at         INTEGER NOT NULL,
    last_fire_at         INTEGER NOT NULL,
    last_run_id          TEXT NOT NULL,
    last_status          TEXT NOT NULL,
    fire_count           INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    disabled_reason      TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE cron_fires (
    job_id       TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    status       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    catch_up     INTEGER NOT NULL,
    missed       INTEGER NOT NULL,
    PRIMARY KEY (job_id, scheduled_at)
) WITHOUT ROWID;
CREATE INDEX cron_fires_open ON cron_fires (status) WHERE status IN ('recorded', 'started');
)sql";

namespace {

constexpr std::string_view kSessionColumns =
    "session_id, agent, channel, mode, summary, created_at, updated_at";

AgentSession ReadSession(const Statement& row) {
    AgentSession s;
    s.session_id = row.Text(0);
    s.agent = row.Text(1);
    s.channel = row.Text(2);
    s.mode = row.Text(3);
    s.summary = row.Text(4);
    s.created_at = FromUnixMicros(row.Int(5));
    s.updated_at = FromUnixMicros(row.Int(6));
    return s;
}

constexpr std::string_view kJobColumns =
    "job_id, name, agent, schedule, action, enabled, misfire, overlap, origin, created_at, "
    "updated_at, next_fire_at, last_fire_at, last_run_id, last_status, fire_count, "
    "consecutive_failures, disabled_reason";

int64_t MicrosOrZero(SystemTime time) {
    return time == SystemTime{} ? 0 : ToUnixMicros(time);
}
SystemTime TimeOrNone(int64_t micros) {
    return micros == 0 ? SystemTime{} : FromUnixMicros(micros);
}

CronJob ReadJob(const Statement& row) {
    CronJob j;
    j.job_id = row.Text(0);
    j.name = row.Text(1);
    j.agent = row.Text(2);
    j.schedule = row.Text(3);
    j.action = row.Text(4);
    j.enabled = row.Int(5) != 0;
    j.misfire = row.Text(6);
    j.overlap = row.Text(7);
    j.origin = row.Text(8);
    j.created_at = TimeOrNone(row.Int(9));
    j.updated_at = TimeOrNone(row.Int(10));
    j.next_fire_at = TimeOrNone(row.Int(11));
    j.last_fire_at = TimeOrNone(row.Int(12));
    j.last_run_id = row.Text(13);
    j.last_status = row.Text(14);
    j.fire_count = row.Int(15);
    j.consecutive_failures = row.Int(16);
    j.disabled_reason = row.Text(17);
    return j;
}

constexpr std::string_view kCronFireColumns =
    "job_id, scheduled_at, recorded_at, status, run_id, reason, catch_up, missed";

CronFire ReadCronFire(const Statement& row) {
    CronFire f;
    f.job_id = row.Text(0);
    f.scheduled_at = FromUnixMicros(row.Int(1));
    f.recorded_at = FromUnixMicros(row.Int(2));
    f.status = row.Text(3);
    f.run_id = row.Text(4);
    f.reason = row.Text(5);
    f.catch_up = row.Int(6) != 0;
    f.missed = row.Int(7);
    return f;
}

Result<bool> JobExists(Connection& db, const std::string& job_id) {
    STROWGER_ASSIGN_OR_RETURN(auto find, db.Prepare("SELECT 1 FROM cron_jobs WHERE job_id = ?"));
    find.Bind(1, job_id);
    return find.Step();
}

Result<bool> FireExists(Connection& db, const CronFire& fire) {
    STROWGER_ASSIGN_OR_RETURN(
        auto find, db.Prepare("SELECT 1 FROM cron_fires WHERE job_id = ? AND scheduled_at = ?"));
    find.Bind(1, fire.job_id);
    find.Bind(2, ToUnixMicros(fire.scheduled_at));
    return find.Step();
}

Status WriteFire(Connection& db, const CronFire& fire) {
    STROWGER_ASSIGN_OR_RETURN(auto insert, db.Prepare("INSERT OR REPLACE INTO cron_fires (" +
                                                      std::string(kCronFireColumns) +
                                                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, fire.job_id);
    insert.Bind(2, ToUnixMicros(fire.scheduled_at));
    insert.Bind(3, ToUnixMicros(fire.recorded_at));
    insert.Bind(4, fire.status);
    insert.Bind(5, fire.run_id);
    insert.Bind(6, fire.reason);
    insert.Bind(7, fire.catch_up ? 1 : 0);
    insert.Bind(8, fire.missed);
    return insert.Run();
}

}  // namespace

Result<AgentSession> ApplyOpenSession(Connection& db, const AgentSession& session) {
    if (session.mode == "persistent") {
        STROWGER_ASSIGN_OR_RETURN(
            auto find, db.Prepare("SELECT " + std::string(kSessionColumns) +
                                  " FROM agent_sessions WHERE agent = ? AND channel = ? AND "
                                  "mode = 'persistent'"));
        find.Bind(1, session.agent);
        find.Bind(2, session.channel);
        STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
        if (found) return ReadSession(find);
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT INTO agent_sessions (" + std::string(kSessionColumns) +
                                ") VALUES (?, ?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, session.session_id);
    insert.Bind(2, session.agent);
    insert.Bind(3, session.channel);
    insert.Bind(4, session.mode);
    insert.Bind(5, session.summary);
    insert.Bind(6, ToUnixMicros(session.created_at));
    insert.Bind(7, ToUnixMicros(session.updated_at));
    STROWGER_TRY(insert.Run());
    return session;
}

Result<AgentSession> QuerySession(Connection& db, const std::string& session_id) {
    STROWGER_ASSIGN_OR_RETURN(auto find, db.Prepare("SELECT " + std::string(kSessionColumns) +
                                                    " FROM agent_sessions WHERE session_id = ?"));
    find.Bind(1, session_id);
    STROWGER_ASSIGN_OR_RETURN(bool found, find.Step());
    if (!found) return NotFoundError("no session " + session_id);
    return ReadSession(find);
}

Result<std::vector<AgentSession>> QuerySessions(Connection& db, const std::string& agent) {
    STROWGER_ASSIGN_OR_RETURN(auto list,
                              db.Prepare("SELECT " + std::string(kSessionColumns) +
                                         " FROM agent_sessions WHERE ? = '' OR agent = ? ORDER BY "
                                         "session_id"));
    list.Bind(1, agent);
    list.Bind(2, agent);
    std::vector<AgentSession> out;
    while (true) {
        STROWGER_ASSIGN_OR_RETURN(bool row, list.Step());
        if (!row) break;
        out.push_back(ReadSession(list));
    }
    return out;
}

Result<std::vector<SessionMessage>> QuerySessionMessages(Connection& db,
                                                         const std::string& session_id) {
    STROWGER_ASSIGN_OR_RETURN(
        auto list, db.Prepare("SELECT seq, role, content, tokens, run_id FROM "
                              "agent_session_messages WHERE session_id = ? ORDER BY seq"));
    list.Bind(1, session_id);
    std::vector<SessionMessage> out;
    while (true) {
        STROWGER_ASSIGN_OR_RETURN(bool row, list.Step());
        if (!row) break;
        out.push_back({list.Int(0), list.Text(1), list.Text(2), list.Int(3), list.Text(4)});
    }
    return out;
}

Result<void> ApplyUpdateSession(Connection& db, const SessionUpdate& update) {
    {
        STROWGER_ASSIGN_OR_RETURN(auto touch,
                                  db.Prepare("UPDATE agent_sessions SET updated_at = ? WHERE "
                                             "session_id = ? RETURNING session_id"));
        touch.Bind(1, ToUnixMicros(update.at));
        touch.Bind(2, update.session_id);
        STROWGER_ASSIGN_OR_RETURN(bool found, touch.Step());
        if (!found) return NotFoundError("no session " + update.session_id);
    }
    if (update.set_summary) {
        STROWGER_ASSIGN_OR_RETURN(
            auto set, db.Prepare("UPDATE agent_sessions SET summary = ? WHERE session_id = ?"));
        set.Bind(1, update.summary);
        set.Bind(2, update.session_id);
        STROWGER_TRY(set.Run());
    }
    if (!update.finish_run_id.empty()) {
        STROWGER_ASSIGN_OR_RETURN(auto done,
                                  db.Prepare("DELETE FROM agent_turns WHERE run_id = ?"));
        done.Bind(1, update.finish_run_id);
        STROWGER_TRY(done.Run());
    }
    if (update.drop_through > 0) {
        STROWGER_ASSIGN_OR_RETURN(
            auto drop, db.Prepare("DELETE FROM agent_session_messages WHERE session_id = ? AND "
                                  "seq <= ?"));
        drop.Bind(1, update.session_id);
        drop.Bind(2, update.drop_through);
        STROWGER_TRY(drop.Run());
    }
    if (update.append.empty()) return OkStatus();
    // Sequence numbers continue after the highest ever used: the session's last message, or
    // what compaction dropped (drop_through).
    int64_t seq = update.drop_through;
    {
        STROWGER_ASSIGN_OR_RETURN(
            auto last, db.Prepare("SELECT COALESCE(MAX(seq), 0) FROM agent_session_messages "
                                  "WHERE session_id = ?"));
        last.Bind(1, update.session_id);
        STROWGER_ASSIGN_OR_RETURN(bool row, last.Step());
        if (row) seq = std::max(seq, last.Int(0));
    }
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT INTO agent_session_messages (session_id, seq, role, "
                                "content, tokens, run_id) VALUES (?, ?, ?, ?, ?, ?)"));
    for (const auto& message : update.append) {
        insert.Bind(1, update.session_id);
        insert.Bind(2, ++seq);
        insert.Bind(3, message.role);
        insert.Bind(4, message.content);
        insert.Bind(5, message.tokens);
        insert.Bind(6, message.run_id);
        STROWGER_TRY(insert.Run());
    }
    return OkStatus();
}

Result<void> ApplyPutAgentTurn(Connection& db, const AgentTurn& turn) {
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT OR REPLACE INTO agent_turns (run_id, session_id, agent, "
                                "message, silent, created_at) VALUES (?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, turn.run_id);
    insert.Bind(2, turn.session_id);
    insert.Bind(3, turn.agent);
    insert.Bind(4, turn.message);
    insert.Bind(5, turn.silent ? 1 : 0);
    insert.Bind(6, ToUnixMicros(turn.created_at));
    return insert.Run();
}

Result<std::vector<AgentTurn>> QueryAgentTurns(Connection& db) {
    STROWGER_ASSIGN_OR_RETURN(
        auto list, db.Prepare("SELECT run_id, session_id, agent, message, silent, created_at "
                              "FROM agent_turns ORDER BY run_id"));
    std::vector<AgentTurn> out;
    while (true) {
        STROWGER_ASSIGN_OR_RETURN(bool row, list.Step());
        if (!row) break;
        out.push_back({list.Text(0), list.Text(1), list.Text(2), list.Text(3), list.Int(4) != 0,
                       FromUnixMicros(list.Int(5))});
    }
    return out;
}

Result<void> ApplyPutCronJob(Connection& db, const CronJob& job) {
    STROWGER_ASSIGN_OR_RETURN(
        auto insert, db.Prepare("INSERT OR REPLACE INTO cron_jobs (" + std::string(kJobColumns) +
                                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, job.job_id);
    insert.Bind(2, job.name);
    insert.Bind(3, job.agent);
    insert.Bind(4, job.schedule);
    insert.Bind(5, job.action);
    insert.Bind(6, job.enabled ? 1 : 0);
    insert.Bind(7, job.misfire);
    insert.Bind(8, job.overlap);
    insert.Bind(9, job.origin);
    insert.Bind(10, MicrosOrZero(job.created_at));
    insert.Bind(11, MicrosOrZero(job.updated_at));
    insert.Bind(12, MicrosOrZero(job.next_fire_at));
    insert.Bind(13, MicrosOrZero(job.last_fire_at));
    insert.Bind(14, job.last_run_id);
    insert.Bind(15, job.last_status);
    insert.Bind(16, job.fire_count);
    insert.Bind(17, job.consecutive_failures);
    insert.Bind(18, job.disabled_reason);
    return insert.Run();
}

Result<std::vector<CronJob>> QueryCronJobs(Connection& db, const std::string& job_id) {
    STROWGER_ASSIGN_OR_RETURN(
        auto list, db.Prepare("SELECT " + std::string(kJobColumns) +
                              " FROM cron_jobs WHERE ? = '' OR job_id = ? ORDER BY job_id"));
    list.Bind(1, job_id);
    list.Bind(2, job_id);
    std::vector<CronJob> out;
    while (true) {
        STROWGER_ASSIGN_OR_RETURN(bool row, list.Step());
        if (!row) break;
        out.push_back(ReadJob(list));
    }
    return out;
}

Result<void> ApplyDeleteCronJob(Connection& db, const std::string& job_id) {
    STROWGER_ASSIGN_OR_RETURN(bool exists, JobExists(db, job_id));
    if (!exists) return NotFoundError("no cron job " + job_id);
    STROWGER_ASSIGN_OR_RETURN(auto fires, db.Prepare("DELETE FROM cron_fires WHERE job_id = ?"));
    fires.Bind(1, job_id);
    STROWGER_TRY(fires.Run());
    STROWGER_ASSIGN_OR_RETURN(auto job, db.Prepare("DELETE FROM cron_jobs WHERE job_id = ?"));
    job.Bind(1, job_id);
    return job.Run();
}

Result<void> ApplyRecordCronFire(Connection& db, const CronFire& fire, const CronJob& job) {
    STROWGER_ASSIGN_OR_RETURN(bool exists, JobExists(db, job.job_id));
    if (!exists) return NotFoundError("no cron job " + job.job_id);
    STROWGER_ASSIGN_OR_RETURN(bool recorded, FireExists(db, fire));
    if (recorded) {
        return AlreadyExistsError("the fire of " + fire.job_id + " at " +
                                  FormatRfc3339(fire.scheduled_at) + " was recorded");
    }
    STROWGER_TRY(WriteFire(db, fire));
    return ApplyPutCronJob(db, job);
}

Result<void> ApplyUpdateCronFire(Connection& db, const CronFire& fire, const CronJob& job) {
    STROWGER_ASSIGN_OR_RETURN(bool exists, JobExists(db, job.job_id));
    if (!exists) return NotFoundError("no cron job " + job.job_id);
    STROWGER_ASSIGN_OR_RETURN(bool recorded, FireExists(db, fire));
    if (!recorded) {
        return NotFoundError("no fire of " + fire.job_id + " at " +
                             FormatRfc3339(fire.scheduled_at));
    }
    STROWGER_TRY(WriteFire(db, fire));
    return ApplyPutCronJob(db, job);
}

Result<std::vector<CronFire>> QueryCronFires(Connection& db, const std::string& job_id,
                                             int64_t limit, bool open_only) {
    std::string sql = "SELECT " + std::string(kCronFireColumns) + " FROM cron_fires ";
    if (open_only) {
        sql += "WHERE status IN ('recorded', 'started') ORDER BY scheduled_at";
    } else {
        sql += "WHERE job_id = ? ORDER BY scheduled_at DESC LIMIT ?";
    }
    STROWGER_ASSIGN_OR_RETURN(auto list, db.Prepare(sql));
    if (!open_only) {
        list.Bind(1, job_id);
        list.Bind(2, limit > 0 ? limit : -1);
    }
    std::vector<CronFire> out;
    while (true) {
        STROWGER_ASSIGN_OR_RETURN(bool row, list.Step());
        if (!row) break;
        out.push_back(ReadCronFire(list));
    }
    return out;
}

}  // namespace strowger::store::sqlite
