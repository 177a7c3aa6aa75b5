// The in-memory store's daemon records (docs/formats/daemon_state_v1.md): plain maps under the
// store's mutex.
#include <algorithm>
#include <map>

#include "store/memory/memory_store.hpp"

namespace strowger::store {

Awaitable<Result<WorkflowVersion>> MemoryStore::PutWorkflowVersion(WorkflowVersion version) {
    std::lock_guard lock(mutex_);
    auto [it, inserted] = workflows_.try_emplace(version.workflow_id);
    WorkflowEntry& entry = it->second;
    if (inserted) {
        entry.origin = version.origin;
        entry.created_at = version.created_at;
    }
    if (entry.deleted) co_return NotFoundError("workflow " + version.workflow_id + " was deleted");
    if (!entry.versions.empty() &&
        entry.versions.back().definition_sha256 == version.definition_sha256) {
        co_return entry.versions.back();
    }
    version.version = static_cast<int64_t>(entry.versions.size()) + 1;
    entry.versions.push_back(version);
    co_return version;
}

Awaitable<Result<std::vector<WorkflowVersion>>> MemoryStore::ListWorkflowVersions(
    std::string workflow_id) {
    std::lock_guard lock(mutex_);
    std::vector<WorkflowVersion> out;
    for (const auto& [id, entry] : workflows_) {
        if (entry.deleted || (!workflow_id.empty() && id != workflow_id)) continue;
        out.insert(out.end(), entry.versions.begin(), entry.versions.end());
    }
    co_return out;
}

Awaitable<Result<void>> MemoryStore::DeleteWorkflow(std::string workflow_id, SystemTime) {
    std::lock_guard lock(mutex_);
    auto it = workflows_.find(workflow_id);
    if (it == workflows_.end() || it->second.deleted) {
        co_return NotFoundError("no workflow " + workflow_id);
    }
    it->second.deleted = true;
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::PutToken(ApiToken token) {
    std::lock_guard lock(mutex_);
    if (tokens_.count(token.name) != 0) {
        co_return AlreadyExistsError("a token named " + token.name + " exists");
    }
    for (const auto& [name, existing] : tokens_) {
        if (existing.token_sha256 == token.token_sha256) {
            co_return AlreadyExistsError("a token with that hash exists");
        }
    }
    std::string name = token.name;
    tokens_.emplace(std::move(name), std::move(token));
    co_return OkStatus();
}

Awaitable<Result<std::vector<ApiToken>>> MemoryStore::ListTokens() {
    std::lock_guard lock(mutex_);
    std::vector<ApiToken> out;
    for (const auto& [name, token] : tokens_) out.push_back(token);
    co_return out;
}

Awaitable<Result<void>> MemoryStore::RevokeToken(std::string name, SystemTime at) {
    std::lock_guard lock(mutex_);
    auto it = tokens_.find(name);
    if (it == tokens_.end()) co_return NotFoundError("no token named " + name);
    if (it->second.live()) it->second.revoked_at = at;
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::PutRetentionPolicy(RetentionPolicy policy) {
    std::lock_guard lock(mutex_);
    std::string workflow = policy.workflow;
    retention_[workflow] = std::move(policy);
    co_return OkStatus();
}

Awaitable<Result<std::vector<RetentionPolicy>>> MemoryStore::ListRetentionPolicies() {
    std::lock_guard lock(mutex_);
    std::vector<RetentionPolicy> out;
    for (const auto& [workflow, policy] : retention_) out.push_back(policy);
    co_return out;
}

Awaitable<Result<void>> MemoryStore::DeleteRetentionPolicy(std::string workflow) {
    std::lock_guard lock(mutex_);
    if (retention_.erase(workflow) == 0) {
        co_return NotFoundError("no retention policy for \"" + workflow + "\"");
    }
    co_return OkStatus();
}

Awaitable<Result<int64_t>> MemoryStore::PruneRuns(PruneRequest request) {
    std::lock_guard lock(mutex_);
    auto applies = [&](const std::string& workflow) {
        if (!request.workflow.empty()) return workflow == request.workflow;
        return std::find(request.except.begin(), request.except.end(), workflow) ==
               request.except.end();
    };
    // The finished runs of each workflow concerned, newest first.
    std::map<std::string, std::vector<Runs::iterator>> by_workflow;
    for (auto it = runs_.begin(); it != runs_.end(); ++it) {
        const Record& record = it->second.record;
        if (!ledger::IsTerminal(record.status) || !applies(*record.workflow)) continue;
        by_workflow[*record.workflow].push_back(it);
    }
    std::vector<Runs::iterator> doomed;
    for (auto& [workflow, runs] : by_workflow) {
        std::sort(runs.begin(), runs.end(), [](auto a, auto b) { return a->first > b->first; });
        for (size_t i = 0; i < runs.size(); ++i) {
            bool over_count = request.keep_count > 0 && i >= static_cast<size_t>(request.keep_count);
            bool too_old = request.finished_before != SystemTime{} &&
                           runs[i]->second.record.updated_at < request.finished_before;
            if (over_count || too_old) doomed.push_back(runs[i]);
        }
    }
    // Oldest first, at most max_runs.
    std::sort(doomed.begin(), doomed.end(), [](auto a, auto b) { return a->first < b->first; });
    if (request.max_runs > 0 && doomed.size() > static_cast<size_t>(request.max_runs)) {
        doomed.resize(static_cast<size_t>(request.max_runs));
    }
    for (auto it : doomed) EraseRun(it);
    co_return static_cast<int64_t>(doomed.size());
}

Awaitable<Result<void>> MemoryStore::PutRunAnnotation(RunAnnotation annotation) {
    std::lock_guard lock(mutex_);
    if (Find(annotation.run_id) == nullptr) co_return NotFoundError("no run " + annotation.run_id);
    std::string run_id = annotation.run_id;
    annotations_[run_id] = std::move(annotation);
    co_return OkStatus();
}

Awaitable<Result<RunAnnotation>> MemoryStore::GetRunAnnotation(std::string run_id) {
    std::lock_guard lock(mutex_);
    auto it = annotations_.find(run_id);
    if (it == annotations_.end()) co_return NotFoundError("run " + run_id + " has no annotation");
    co_return it->second;
}

}  // namespace strowger::store
