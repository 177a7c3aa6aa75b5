// The in-memory store's automation records (docs/formats/automation_state_v1.md): plain maps
// under the store's mutex.
#include <algorithm>

#include "store/memory/memory_store.hpp"

namespace strowger::store {

Awaitable<Result<void>> MemoryStore::PutTrigger(TriggerRecord trigger) {
    std::lock_guard lock(mutex_);
    std::string id = trigger.trigger_id;
    triggers_[id] = std::move(trigger);
    co_return OkStatus();
}

Awaitable<Result<std::vector<TriggerRecord>>> MemoryStore::ListTriggers() {
    std::lock_guard lock(mutex_);
    std::vector<TriggerRecord> out;
    for (const auto& [id, t] : triggers_) out.push_back(t);
    co_return out;
}

Awaitable<Result<void>> MemoryStore::DeleteTrigger(std::string trigger_id) {
    std::lock_guard lock(mutex_);
    if (triggers_.erase(trigger_id) == 0)
        co_return NotFoundError("Trigger not found: " + trigger_id);
    for (auto it = fires_.begin(); it != fires_.end();) {
        if (it->second.trigger_id == trigger_id) {
            fired_.erase({trigger_id, it->second.event_id});
            it = fires_.erase(it);
        } else {
            ++it;
        }
    }
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::RecordTriggerFire(TriggerFire fire) {
    std::lock_guard lock(mutex_);
    if (!triggers_.contains(fire.trigger_id)) {
        co_return NotFoundError("Trigger not found: " + fire.trigger_id);
    }
    if (!fired_.insert({fire.trigger_id, fire.event_id}).second) {
        co_return AlreadyExistsError("trigger " + fire.trigger_id + " fired for event " +
                                     fire.event_id + " already");
    }
    fire.status = "pending";
    fire.run_id.clear();
    fire.error.clear();
    fire.updated_at = fire.created_at;
    std::string id = fire.fire_id;
    fires_[id] = std::move(fire);
    co_return OkStatus();
}

Awaitable<Result<TriggerRecord>> MemoryStore::CompleteTriggerFire(std::string fire_id,
                                                                  std::string run_id,
                                                                  std::string error,
                                                                  SystemTime at) {
    std::lock_guard lock(mutex_);
    auto it = fires_.find(fire_id);
    if (it == fires_.end() || it->second.status != "pending") {
        co_return NotFoundError("no pending fire " + fire_id);
    }
    auto trigger = triggers_.find(it->second.trigger_id);
    if (trigger == triggers_.end()) co_return NotFoundError("Trigger not found");
    it->second.status = run_id.empty() ? "failed" : "started";
    it->second.run_id = run_id;
    it->second.error = error;
    it->second.updated_at = at;
    if (!run_id.empty()) {
        TriggerRecord& t = trigger->second;
        ++t.fire_count;
        if (t.max_fires > 0 && t.fire_count >= t.max_fires) t.enabled = false;
    }
    co_return trigger->second;
}

Awaitable<Result<std::vector<TriggerFire>>> MemoryStore::PendingTriggerFires() {
    std::lock_guard lock(mutex_);
    std::vector<TriggerFire> out;
    for (const auto& [id, f] : fires_) {
        if (f.status == "pending") out.push_back(f);
    }
    co_return out;
}

Awaitable<Result<std::vector<TriggerFire>>> MemoryStore::ListTriggerFires(std::string trigger_id,
                                                                          int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<TriggerFire> out;
    for (auto it = fires_.rbegin(); it != fires_.rend(); ++it) {
        if (it->second.trigger_id != trigger_id) continue;
        out.push_back(it->second);
        if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    }
    co_return out;
}

Awaitable<Result<MemoryChange>> MemoryStore::PutMemory(MemoryEntry entry) {
    std::lock_guard lock(mutex_);
    auto key = std::make_pair(entry.name_space, entry.key);
    MemoryChange change{"created", ""};
    if (auto it = memory_.find(key); it != memory_.end()) {
        change.old_value = it->second.value;
        if (change.old_value == entry.value) co_return MemoryChange{"unchanged", change.old_value};
        change.kind = "updated";
    }
    memory_[key] = std::move(entry);
    co_return change;
}

Awaitable<Result<MemoryEntry>> MemoryStore::GetMemory(std::string name_space, std::string key) {
    std::lock_guard lock(mutex_);
    auto it = memory_.find({name_space, key});
    if (it == memory_.end()) {
        co_return NotFoundError("no key \"" + key + "\" in memory " + name_space);
    }
    co_return it->second;
}

Awaitable<Result<std::vector<MemoryEntry>>> MemoryStore::ListMemory(std::string name_space,
                                                                    std::string prefix,
                                                                    int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<MemoryEntry> out;
    for (auto it = memory_.lower_bound({name_space, prefix});
         it != memory_.end() && it->first.first == name_space; ++it) {
        if (it->first.second.compare(0, prefix.size(), prefix) != 0) break;
        out.push_back(it->second);
        if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    }
    co_return out;
}

Awaitable<Result<MemoryChange>> MemoryStore::DeleteMemory(std::string name_space, std::string key) {
    std::lock_guard lock(mutex_);
    auto it = memory_.find({name_space, key});
    if (it == memory_.end()) {
        co_return NotFoundError("no key \"" + key + "\" in memory " + name_space);
    }
    MemoryChange change{"deleted", it->second.value};
    memory_.erase(it);
    co_return change;
}

Awaitable<Result<void>> MemoryStore::PutWebhook(WebhookRecord hook) {
    std::lock_guard lock(mutex_);
    if (webhooks_.contains(hook.name)) {
        co_return AlreadyExistsError("a hook named " + hook.name + " exists");
    }
    std::string name = hook.name;
    webhooks_[name] = std::move(hook);
    co_return OkStatus();
}

Awaitable<Result<std::vector<WebhookRecord>>> MemoryStore::ListWebhooks() {
    std::lock_guard lock(mutex_);
    std::vector<WebhookRecord> out;
    for (const auto& [name, hook] : webhooks_) out.push_back(hook);
    co_return out;
}

Awaitable<Result<void>> MemoryStore::DeleteWebhook(std::string name) {
    std::lock_guard lock(mutex_);
    if (webhooks_.erase(name) == 0) co_return NotFoundError("no hook named " + name);
    for (auto it = deliveries_.begin(); it != deliveries_.end();) {
        it = it->first.first == name ? deliveries_.erase(it) : std::next(it);
    }
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::RecordWebhookDelivery(std::string hook,
                                                           std::string delivery_id, SystemTime at) {
    std::lock_guard lock(mutex_);
    auto [it, inserted] =
        deliveries_.try_emplace({hook, delivery_id}, std::make_pair(at, std::string()));
    if (!inserted) {
        co_return AlreadyExistsError("delivery " + delivery_id + " was received before");
    }
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::SetWebhookDeliveryRun(std::string hook,
                                                           std::string delivery_id,
                                                           std::string run_id) {
    std::lock_guard lock(mutex_);
    if (auto it = deliveries_.find({hook, delivery_id}); it != deliveries_.end()) {
        it->second.second = std::move(run_id);
    }
    co_return OkStatus();
}

}  // namespace strowger::store
