// Private to the SQLite store: the SQL of standing agents and cron jobs
// (docs/formats/agents_cron_state_v1.md). Apply* run on the writer thread inside the batch
// transaction; Query* on a read connection.
#pragma once

#include <string>
#include <vector>

#include "store/sqlite/sqlite_connection.hpp"
#include "store/store.hpp"

namespace strowger::store::sqlite {

// The schema migration that adds the tables.
extern const char* const kAgentsCronMigration;

Result<AgentSession> ApplyOpenSession(Connection& db, const AgentSession& session);
Result<AgentSession> QuerySession(Connection& db, const std::string& session_id);
Result<std::vector<AgentSession>> QuerySessions(Connection& db, const std::string& agent);
Result<std::vector<SessionMessage>> QuerySessionMessages(Connection& db,
                                                         const std::string& session_id);
Result<void> ApplyUpdateSession(Connection& db, const SessionUpdate& update);
Result<void> ApplyPutAgentTurn(Connection& db, const AgentTurn& turn);
Result<std::vector<AgentTurn>> QueryAgentTurns(Connection& db);

Result<void> ApplyPutCronJob(Connection& db, const CronJob& job);
Result<std::vector<CronJob>> QueryCronJobs(Connection& db, const std::string& job_id);
Result<void> ApplyDeleteCronJob(Connection& db, const std::string& job_id);
Result<void> ApplyRecordCronFire(Connection& db, const CronFire& fire, const CronJob& job);
Result<void> ApplyUpdateCronFire(Connection& db, const CronFire& fire, const CronJob& job);
Result<std::vector<CronFire>> QueryCronFires(Connection& db, const std::string& job_id,
                                             int64_t limit, bool open_only);

}  // namespace strowger::store::sqlite
