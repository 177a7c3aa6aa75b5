// Private to the SQLite store: the SQL of the daemon's records (docs/formats/daemon_state_v1.md).
// Apply* run on the writer thread inside the batch transaction; Query* on a read connection.
#pragma once

#include <string>
#include <vector>

#include "store/sqlite/sqlite_connection.hpp"
#include "store/store.hpp"

namespace strowger::store::sqlite {

// The schema migration that adds the daemon's tables.
extern const char* const kDaemonStateMigration;

Result<WorkflowVersion> ApplyPutWorkflowVersion(Connection& db, const WorkflowVersion& version);
Result<std::vector<WorkflowVersion>> QueryWorkflowVersions(Connection& db,
                                                           const std::string& workflow_id);
Result<void> ApplyDeleteWorkflow(Connection& db, const std::string& workflow_id, SystemTime at);

Result<void> ApplyPutToken(Connection& db, const ApiToken& token);
Result<std::vector<ApiToken>> QueryTokens(Connection& db);
Result<void> ApplyRevokeToken(Connection& db, const std::string& name, SystemTime at);

Result<void> ApplyPutRetentionPolicy(Connection& db, const RetentionPolicy& policy);
Result<std::vector<RetentionPolicy>> QueryRetentionPolicies(Connection& db);
Result<void> ApplyDeleteRetentionPolicy(Connection& db, const std::string& workflow);
// The runs PruneRuns deletes, oldest first (the deleting is the store's: DeleteRuns).
Result<std::vector<std::string>> QueryRunsToPrune(Connection& db, const PruneRequest& request);

Result<void> ApplyPutRunAnnotation(Connection& db, const RunAnnotation& annotation);
Result<RunAnnotation> QueryRunAnnotation(Connection& db, const std::string& run_id);

}  // namespace strowger::store::sqlite
