// SqliteStore's daemon, automation, standing-agent and cron records: each call is one job on
// the store's writer or read pool (sqlite_store_impl.hpp); the SQL is in daemon_state_sql.cpp,
// automation_sql.cpp and agents_cron_sql.cpp.
#include <string>
#include <utility>
#include <vector>

#include "store/sqlite/agents_cron_sql.hpp"
#include "store/sqlite/automation_sql.hpp"
#include "store/sqlite/daemon_state_sql.hpp"
#include "store/sqlite/sqlite_store_impl.hpp"

namespace strowger::store {

using sqlite::Connection;

// ---- The daemon's records (the SQL is in daemon_state_sql.cpp) ----

Awaitable<Result<WorkflowVersion>> SqliteStore::PutWorkflowVersion(WorkflowVersion version) {
    return impl_->Write<WorkflowVersion>([version = std::move(version)](Connection& db) {
        return sqlite::ApplyPutWorkflowVersion(db, version);
    });
}

Awaitable<Result<std::vector<WorkflowVersion>>> SqliteStore::ListWorkflowVersions(
    std::string workflow_id) {
    return impl_->Read<std::vector<WorkflowVersion>>([id = std::move(workflow_id)](Connection& db) {
        return sqlite::QueryWorkflowVersions(db, id);
    });
}

Awaitable<Result<void>> SqliteStore::DeleteWorkflow(std::string workflow_id, SystemTime at) {
    return impl_->Write<void>([id = std::move(workflow_id), at](Connection& db) {
        return sqlite::ApplyDeleteWorkflow(db, id, at);
    });
}

Awaitable<Result<void>> SqliteStore::PutToken(ApiToken token) {
    return impl_->Write<void>(
        [token = std::move(token)](Connection& db) { return sqlite::ApplyPutToken(db, token); });
}

Awaitable<Result<std::vector<ApiToken>>> SqliteStore::ListTokens() {
    return impl_->Read<std::vector<ApiToken>>(
        [](Connection& db) { return sqlite::QueryTokens(db); });
}

Awaitable<Result<void>> SqliteStore::RevokeToken(std::string name, SystemTime at) {
    return impl_->Write<void>([name = std::move(name), at](Connection& db) {
        return sqlite::ApplyRevokeToken(db, name, at);
    });
}

Awaitable<Result<void>> SqliteStore::PutRetentionPolicy(RetentionPolicy policy) {
    return impl_->Write<void>([policy = std::move(policy)](Connection& db) {
        return sqlite::ApplyPutRetentionPolicy(db, policy);
    });
}

Awaitable<Result<std::vector<RetentionPolicy>>> SqliteStore::ListRetentionPolicies() {
    return impl_->Read<std::vector<RetentionPolicy>>(
        [](Connection& db) { return sqlite::QueryRetentionPolicies(db); });
}

Awaitable<Result<void>> SqliteStore::DeleteRetentionPolicy(std::string workflow) {
    return impl_->Write<void>([workflow = std::move(workflow)](Connection& db) {
        return sqlite::ApplyDeleteRetentionPolicy(db, workflow);
    });
}

Awaitable<Result<void>> SqliteStore::PutRunAnnotation(RunAnnotation annotation) {
    return impl_->Write<void>([annotation = std::move(annotation)](Connection& db) {
        return sqlite::ApplyPutRunAnnotation(db, annotation);
    });
}

Awaitable<Result<RunAnnotation>> SqliteStore::GetRunAnnotation(std::string run_id) {
    return impl_->Read<RunAnnotation>([run_id = std::move(run_id)](Connection& db) {
        return sqlite::QueryRunAnnotation(db, run_id);
    });
}

// ---- Automation (the SQL is in automation_sql.cpp) ----

Awaitable<Result<void>> SqliteStore::PutTrigger(TriggerRecord trigger) {
    return impl_->Write<void>(
        [t = std::move(trigger)](Connection& db) { return sqlite::ApplyPutTrigger(db, t); });
}

Awaitable<Result<std::vector<TriggerRecord>>> SqliteStore::ListTriggers() {
    return impl_->Read<std::vector<TriggerRecord>>(
        [](Connection& db) { return sqlite::QueryTriggers(db); });
}

Awaitable<Result<void>> SqliteStore::DeleteTrigger(std::string trigger_id) {
    return impl_->Write<void>([id = std::move(trigger_id)](Connection& db) {
        return sqlite::ApplyDeleteTrigger(db, id);
    });
}

Awaitable<Result<void>> SqliteStore::RecordTriggerFire(TriggerFire fire) {
    return impl_->Write<void>(
        [f = std::move(fire)](Connection& db) { return sqlite::ApplyRecordTriggerFire(db, f); });
}

Awaitable<Result<TriggerRecord>> SqliteStore::CompleteTriggerFire(std::string fire_id,
                                                                  std::string run_id,
                                                                  std::string error,
                                                                  SystemTime at) {
    return impl_->Write<TriggerRecord>(
        [id = std::move(fire_id), run = std::move(run_id), e = std::move(error),
         at](Connection& db) { return sqlite::ApplyCompleteTriggerFire(db, id, run, e, at); });
}

Awaitable<Result<std::vector<TriggerFire>>> SqliteStore::PendingTriggerFires() {
    return impl_->Read<std::vector<TriggerFire>>(
        [](Connection& db) { return sqlite::QueryPendingTriggerFires(db); });
}

Awaitable<Result<std::vector<TriggerFire>>> SqliteStore::ListTriggerFires(std::string trigger_id,
                                                                          int64_t limit) {
    return impl_->Read<std::vector<TriggerFire>>(
        [id = std::move(trigger_id), limit](Connection& db) {
            return sqlite::QueryTriggerFires(db, id, limit);
        });
}

Awaitable<Result<MemoryChange>> SqliteStore::PutMemory(MemoryEntry entry) {
    return impl_->Write<MemoryChange>(
        [e = std::move(entry)](Connection& db) { return sqlite::ApplyPutMemory(db, e); });
}

Awaitable<Result<MemoryEntry>> SqliteStore::GetMemory(std::string name_space, std::string key) {
    return impl_->Read<MemoryEntry>([ns = std::move(name_space), k = std::move(key)](
                                        Connection& db) { return sqlite::QueryMemory(db, ns, k); });
}

Awaitable<Result<std::vector<MemoryEntry>>> SqliteStore::ListMemory(std::string name_space,
                                                                    std::string prefix,
                                                                    int64_t limit) {
    return impl_->Read<std::vector<MemoryEntry>>(
        [ns = std::move(name_space), p = std::move(prefix), limit](Connection& db) {
            return sqlite::QueryMemoryList(db, ns, p, limit);
        });
}

Awaitable<Result<MemoryChange>> SqliteStore::DeleteMemory(std::string name_space, std::string key) {
    return impl_->Write<MemoryChange>(
        [ns = std::move(name_space), k = std::move(key)](Connection& db) {
            return sqlite::ApplyDeleteMemory(db, ns, k);
        });
}

Awaitable<Result<void>> SqliteStore::PutWebhook(WebhookRecord hook) {
    return impl_->Write<void>(
        [h = std::move(hook)](Connection& db) { return sqlite::ApplyPutWebhook(db, h); });
}

Awaitable<Result<std::vector<WebhookRecord>>> SqliteStore::ListWebhooks() {
    return impl_->Read<std::vector<WebhookRecord>>(
        [](Connection& db) { return sqlite::QueryWebhooks(db); });
}

Awaitable<Result<void>> SqliteStore::DeleteWebhook(std::string name) {
    return impl_->Write<void>(
        [n = std::move(name)](Connection& db) { return sqlite::ApplyDeleteWebhook(db, n); });
}

Awaitable<Result<void>> SqliteStore::RecordWebhookDelivery(std::string hook,
                                                           std::string delivery_id, SystemTime at) {
    return impl_->Write<void>(
        [h = std::move(hook), d = std::move(delivery_id), at](Connection& db) {
            return sqlite::ApplyRecordWebhookDelivery(db, h, d, at);
        });
}

Awaitable<Result<void>> SqliteStore::SetWebhookDeliveryRun(std::string hook,
                                                           std::string delivery_id,
                                                           std::string run_id) {
    return impl_->Write<void>(
        [h = std::move(hook), d = std::move(delivery_id), r = std::move(run_id)](Connection& db) {
            return sqlite::ApplySetWebhookDeliveryRun(db, h, d, r);
        });
}

// ---- Standing agents and cron jobs (the SQL is in agents_cron_sql.cpp) ----

Awaitable<Result<AgentSession>> SqliteStore::OpenSession(AgentSession session) {
    return impl_->Write<AgentSession>([session = std::move(session)](Connection& db) {
        return sqlite::ApplyOpenSession(db, session);
    });
}

Awaitable<Result<AgentSession>> SqliteStore::GetSession(std::string session_id) {
    return impl_->Read<AgentSession>(
        [id = std::move(session_id)](Connection& db) { return sqlite::QuerySession(db, id); });
}

Awaitable<Result<std::vector<AgentSession>>> SqliteStore::ListSessions(std::string agent) {
    return impl_->Read<std::vector<AgentSession>>(
        [agent = std::move(agent)](Connection& db) { return sqlite::QuerySessions(db, agent); });
}

Awaitable<Result<std::vector<SessionMessage>>> SqliteStore::ReadSessionMessages(
    std::string session_id) {
    return impl_->Read<std::vector<SessionMessage>>([id = std::move(session_id)](Connection& db) {
        return sqlite::QuerySessionMessages(db, id);
    });
}

Awaitable<Result<void>> SqliteStore::UpdateSession(SessionUpdate update) {
    return impl_->Write<void>([update = std::move(update)](Connection& db) {
        return sqlite::ApplyUpdateSession(db, update);
    });
}

Awaitable<Result<void>> SqliteStore::PutAgentTurn(AgentTurn turn) {
    return impl_->Write<void>(
        [turn = std::move(turn)](Connection& db) { return sqlite::ApplyPutAgentTurn(db, turn); });
}

Awaitable<Result<std::vector<AgentTurn>>> SqliteStore::ListAgentTurns() {
    return impl_->Read<std::vector<AgentTurn>>(
        [](Connection& db) { return sqlite::QueryAgentTurns(db); });
}

Awaitable<Result<void>> SqliteStore::PutCronJob(CronJob job) {
    return impl_->Write<void>(
        [job = std::move(job)](Connection& db) { return sqlite::ApplyPutCronJob(db, job); });
}

Awaitable<Result<std::vector<CronJob>>> SqliteStore::ListCronJobs() {
    return impl_->Read<std::vector<CronJob>>(
        [](Connection& db) { return sqlite::QueryCronJobs(db, ""); });
}

Awaitable<Result<CronJob>> SqliteStore::GetCronJob(std::string job_id) {
    return impl_->Read<CronJob>([id = std::move(job_id)](Connection& db) -> Result<CronJob> {
        if (id.empty()) return NotFoundError("no cron job \"\"");
        STROWGER_ASSIGN_OR_RETURN(auto jobs, sqlite::QueryCronJobs(db, id));
        if (jobs.empty()) return NotFoundError("no cron job " + id);
        return jobs.front();
    });
}

Awaitable<Result<void>> SqliteStore::DeleteCronJob(std::string job_id) {
    return impl_->Write<void>(
        [id = std::move(job_id)](Connection& db) { return sqlite::ApplyDeleteCronJob(db, id); });
}

Awaitable<Result<void>> SqliteStore::RecordCronFire(CronFire fire, CronJob job) {
    return impl_->Write<void>([fire = std::move(fire), job = std::move(job)](Connection& db) {
        return sqlite::ApplyRecordCronFire(db, fire, job);
    });
}

Awaitable<Result<void>> SqliteStore::UpdateCronFire(CronFire fire, CronJob job) {
    return impl_->Write<void>([fire = std::move(fire), job = std::move(job)](Connection& db) {
        return sqlite::ApplyUpdateCronFire(db, fire, job);
    });
}

Awaitable<Result<std::vector<CronFire>>> SqliteStore::ListCronFires(std::string job_id,
                                                                    int64_t limit) {
    return impl_->Read<std::vector<CronFire>>([id = std::move(job_id), limit](Connection& db) {
        return sqlite::QueryCronFires(db, id, limit, false);
    });
}

Awaitable<Result<std::vector<CronFire>>> SqliteStore::ListOpenCronFires() {
    return impl_->Read<std::vector<CronFire>>(
        [](Connection& db) { return sqlite::QueryCronFires(db, "", 0, true); });
}

}  // namespace strowger::store
