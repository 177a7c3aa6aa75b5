// The in-memory store's standing agents and cron jobs (docs/formats/agents_cron_state_v1.md):
// plain maps under the store's mutex.
#include <algorithm>

#include "store/memory/memory_store.hpp"

namespace strowger::store {

Awaitable<Result<AgentSession>> MemoryStore::OpenSession(AgentSession session) {
    std::lock_guard lock(mutex_);
    if (session.mode == "persistent") {
        for (const auto& [id, entry] : sessions_) {
            if (entry.session.mode == "persistent" && entry.session.agent == session.agent &&
                entry.session.channel == session.channel) {
                co_return entry.session;
            }
        }
    }
    if (sessions_.count(session.session_id) != 0) {
        co_return AlreadyExistsError("session " + session.session_id + " exists");
    }
    sessions_[session.session_id].session = session;
    co_return session;
}

Awaitable<Result<AgentSession>> MemoryStore::GetSession(std::string session_id) {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) co_return NotFoundError("no session " + session_id);
    co_return it->second.session;
}

Awaitable<Result<std::vector<AgentSession>>> MemoryStore::ListSessions(std::string agent) {
    std::lock_guard lock(mutex_);
    std::vector<AgentSession> out;
    for (const auto& [id, entry] : sessions_) {
        if (agent.empty() || entry.session.agent == agent) out.push_back(entry.session);
    }
    co_return out;
}

Awaitable<Result<std::vector<SessionMessage>>> MemoryStore::ReadSessionMessages(
    std::string session_id) {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) co_return std::vector<SessionMessage>{};
    co_return it->second.messages;
}

Awaitable<Result<void>> MemoryStore::UpdateSession(SessionUpdate update) {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(update.session_id);
    if (it == sessions_.end()) co_return NotFoundError("no session " + update.session_id);
    SessionEntry& entry = it->second;
    if (!update.finish_run_id.empty()) turns_.erase(update.finish_run_id);
    std::erase_if(entry.messages,
                  [&](const SessionMessage& m) { return m.seq <= update.drop_through; });
    for (auto& message : update.append) {
        message.seq = ++entry.last_seq;
        entry.messages.push_back(std::move(message));
    }
    if (update.set_summary) entry.session.summary = update.summary;
    entry.session.updated_at = update.at;
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::PutAgentTurn(AgentTurn turn) {
    std::lock_guard lock(mutex_);
    std::string id = turn.run_id;
    turns_[id] = std::move(turn);
    co_return OkStatus();
}

Awaitable<Result<std::vector<AgentTurn>>> MemoryStore::ListAgentTurns() {
    std::lock_guard lock(mutex_);
    std::vector<AgentTurn> out;
    for (const auto& [id, turn] : turns_) out.push_back(turn);
    co_return out;
}

Awaitable<Result<void>> MemoryStore::PutCronJob(CronJob job) {
    std::lock_guard lock(mutex_);
    std::string id = job.job_id;
    cron_jobs_[id] = std::move(job);
    co_return OkStatus();
}

Awaitable<Result<std::vector<CronJob>>> MemoryStore::ListCronJobs() {
    std::lock_guard lock(mutex_);
    std::vector<CronJob> out;
    out.reserve(cron_jobs_.size());
    for (const auto& [id, job] : cron_jobs_) out.push_back(job);
    co_return out;
}

Awaitable<Result<CronJob>> MemoryStore::GetCronJob(std::string job_id) {
    std::lock_guard lock(mutex_);
    auto it = cron_jobs_.find(job_id);
    if (it == cron_jobs_.end()) co_return NotFoundError("no cron job " + job_id);
    co_return it->second;
}

Awaitable<Result<void>> MemoryStore::DeleteCronJob(std::string job_id) {
    std::lock_guard lock(mutex_);
    if (cron_jobs_.erase(job_id) == 0) co_return NotFoundError("no cron job " + job_id);
    std::erase_if(cron_fires_, [&](const auto& entry) { return entry.first.first == job_id; });
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::RecordCronFire(CronFire fire, CronJob job) {
    std::lock_guard lock(mutex_);
    if (cron_jobs_.count(job.job_id) == 0) co_return NotFoundError("no cron job " + job.job_id);
    auto key = std::make_pair(fire.job_id, ToUnixMicros(fire.scheduled_at));
    if (cron_fires_.count(key) != 0) {
        co_return AlreadyExistsError("the fire of " + fire.job_id + " at " +
                                     FormatRfc3339(fire.scheduled_at) + " was recorded");
    }
    cron_fires_.emplace(std::move(key), std::move(fire));
    std::string id = job.job_id;
    cron_jobs_[id] = std::move(job);
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::UpdateCronFire(CronFire fire, CronJob job) {
    std::lock_guard lock(mutex_);
    if (cron_jobs_.count(job.job_id) == 0) co_return NotFoundError("no cron job " + job.job_id);
    auto it = cron_fires_.find(std::make_pair(fire.job_id, ToUnixMicros(fire.scheduled_at)));
    if (it == cron_fires_.end()) {
        co_return NotFoundError("no fire of " + fire.job_id + " at " +
                                FormatRfc3339(fire.scheduled_at));
    }
    it->second = std::move(fire);
    std::string id = job.job_id;
    cron_jobs_[id] = std::move(job);
    co_return OkStatus();
}

Awaitable<Result<std::vector<CronFire>>> MemoryStore::ListCronFires(std::string job_id,
                                                                    int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<CronFire> out;
    auto first = cron_fires_.lower_bound(std::make_pair(job_id, INT64_MIN));
    auto last = cron_fires_.lower_bound(std::make_pair(job_id + '\0', INT64_MIN));
    for (auto it = first; it != last; ++it) out.push_back(it->second);
    std::reverse(out.begin(), out.end());
    if (limit > 0 && static_cast<int64_t>(out.size()) > limit) out.resize(limit);
    co_return out;
}

Awaitable<Result<std::vector<CronFire>>> MemoryStore::ListOpenCronFires() {
    std::lock_guard lock(mutex_);
    std::vector<CronFire> out;
    for (const auto& [key, fire] : cron_fires_) {
        if (fire.status == "recorded" || fire.status == "started") out.push_back(fire);
    }
    std::sort(out.begin(), out.end(),
              [](const CronFire& a, const CronFire& b) { return a.scheduled_at < b.scheduled_at; });
    co_return out;
}

}  // namespace strowger::store
