#include "automation/triggers.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/ids.hpp"
#include "core/strings.hpp"

namespace strowger::automation {
namespace {

struct KindName {
    PatternKind kind;
    std::string_view name;
    std::string_view field;  // the object form's field ("" = the plain string form)
};
constexpr KindName kKinds[] = {
    {PatternKind::kAll, "all", ""},
    {PatternKind::kLifecycle, "lifecycle", ""},
    {PatternKind::kAgentSpawned, "agent_spawned", "name_pattern"},
    {PatternKind::kAgentTerminated, "agent_terminated", ""},
    {PatternKind::kSystem, "system", ""},
    {PatternKind::kSystemKeyword, "system_keyword", "keyword"},
    {PatternKind::kMemoryUpdate, "memory_update", ""},
    {PatternKind::kMemoryKeyPattern, "memory_key_pattern", "key_pattern"},
    {PatternKind::kContentMatch, "content_match", "substring"},
    {PatternKind::kTaskPosted, "task_posted", ""},
    {PatternKind::kTaskClaimed, "task_claimed", ""},
    {PatternKind::kTaskCompleted, "task_completed", ""},
};

const KindName& NameOf(PatternKind kind) {
    return kKinds[static_cast<int>(kind)];
}

std::string KnownPatterns() {
    std::vector<std::string> names;
    for (const auto& k : kKinds) names.emplace_back(k.name);
    return Join(names, ", ");
}

// Case-insensitive patterns compare lower-cased text.
bool LowerCased(PatternKind kind) {
    return kind == PatternKind::kSystemKeyword || kind == PatternKind::kContentMatch;
}

bool Keyed(PatternKind kind) {
    return !NameOf(kind).field.empty();
}

bool Contains(std::string_view haystack, std::string_view needle) {
    return needle == "*" || haystack.find(needle) != std::string_view::npos;
}

}  // namespace

Result<Pattern> ParsePattern(const json::value& value) {
    if (value.is_string()) {
        std::string_view name = value.as_string();
        for (const auto& k : kKinds) {
            if (k.name != name) continue;
            if (!k.field.empty()) {
                return InvalidArgumentError("pattern: \"" + std::string(name) +
                                            "\" needs its object form {\"" + std::string(name) +
                                            "\": {\"" + std::string(k.field) + "\": ...}}");
            }
            return Pattern{k.kind, ""};
        }
        return InvalidArgumentError("pattern: unknown pattern \"" + CapForMessage(name) +
                                    "\" (known: " + KnownPatterns() + ")");
    }
    if (!value.is_object() || value.as_object().size() != 1) {
        return InvalidArgumentError(
            "pattern: expected a pattern name or an object with one pattern, such as "
            "{\"content_match\": {\"substring\": \"error\"}}");
    }
    const auto& [name, body] = *value.as_object().begin();
    for (const auto& k : kKinds) {
        if (k.name != std::string_view(name)) continue;
        if (k.field.empty()) {
            // {"lifecycle": {}} is accepted for the plain ones.
            if (body.is_object() && body.as_object().empty()) return Pattern{k.kind, ""};
            return InvalidArgumentError("pattern: \"" + std::string(k.name) +
                                        "\" takes no arguments");
        }
        const json::object* fields = body.if_object();
        const json::value* arg = fields ? fields->if_contains(k.field) : nullptr;
        if (!arg || !arg->is_string() || arg->as_string().empty() || fields->size() != 1) {
            return InvalidArgumentError("pattern." + std::string(k.name) + "." +
                                        std::string(k.field) + ": required, a non-empty string");
        }
        return Pattern{k.kind, std::string(arg->as_string())};
    }
    return InvalidArgumentError("pattern: unknown pattern \"" + CapForMessage(name) +
                                "\" (known: " + KnownPatterns() + ")");
}

json::value PatternJson(const Pattern& pattern) {
    const KindName& k = NameOf(pattern.kind);
    if (k.field.empty()) return json::value(k.name);
    json::object inner;
    inner[k.field] = pattern.arg;
    json::object outer;
    outer[k.name] = std::move(inner);
    return outer;
}

bool Matches(const Pattern& p, const BusEvent& e) {
    switch (p.kind) {
        case PatternKind::kAll:
            return true;
        case PatternKind::kLifecycle:
            return e.kind == EventKind::kLifecycle;
        case PatternKind::kAgentSpawned:
            return e.kind == EventKind::kLifecycle && e.type == "agent_spawned" &&
                   Contains(e.agent, p.arg);
        case PatternKind::kAgentTerminated:
            return e.kind == EventKind::kLifecycle &&
                   (e.type == "agent_terminated" || e.type == "agent_crashed");
        case PatternKind::kSystem:
            return e.kind == EventKind::kSystem;
        case PatternKind::kSystemKeyword:
            return e.kind == EventKind::kSystem && ContainsIgnoreCase(e.description, p.arg);
        case PatternKind::kMemoryUpdate:
            return e.kind == EventKind::kMemory;
        case PatternKind::kMemoryKeyPattern:
            return e.kind == EventKind::kMemory && Contains(e.key, p.arg);
        case PatternKind::kContentMatch:
            return ContainsIgnoreCase(e.description, p.arg);
        case PatternKind::kTaskPosted:
            return e.kind == EventKind::kTask && e.type == "task_posted";
        case PatternKind::kTaskClaimed:
            return e.kind == EventKind::kTask && e.type == "task_claimed";
        case PatternKind::kTaskCompleted:
            return e.kind == EventKind::kTask && e.type == "task_completed";
    }
    return false;
}

std::string RenderPrompt(std::string_view prompt_template, std::string_view description) {
    constexpr std::string_view kPlaceholder = "{{event}}";
    std::string out;
    size_t at = 0;
    while (true) {
        size_t found = prompt_template.find(kPlaceholder, at);
        if (found == std::string_view::npos) break;
        out.append(prompt_template.substr(at, found - at));
        out.append(description);
        at = found + kPlaceholder.size();
    }
    out.append(prompt_template.substr(at));
    return out;
}

TriggerEngine::TriggerEngine(Executor executor, std::shared_ptr<store::Store> store, Clock& clock,
                             Random& random, TriggerOptions options)
    : executor_(std::move(executor)),
      store_(std::move(store)),
      clock_(clock),
      random_(random),
      options_(options) {}

int32_t TriggerEngine::Automaton::Child(int32_t node, unsigned char c) const {
    const auto& next = nodes[static_cast<size_t>(node)].next;
    auto it = std::lower_bound(next.begin(), next.end(), c,
                               [](const auto& edge, unsigned char x) { return edge.first < x; });
    return it != next.end() && it->first == c ? it->second : -1;
}

void TriggerEngine::Automaton::Build(const std::map<std::string, std::vector<Entry*>>& by_key) {
    nodes.assign(1, Node{});
    keys.clear();
    for (const auto& [key, entries] : by_key) {
        int32_t state = 0;
        for (unsigned char c : key) {
            int32_t next = Child(state, c);
            if (next < 0) {
                next = static_cast<int32_t>(nodes.size());
                nodes.emplace_back();
                auto& edges = nodes[static_cast<size_t>(state)].next;
                edges.insert(std::lower_bound(
                                 edges.begin(), edges.end(), c,
                                 [](const auto& edge, unsigned char x) { return edge.first < x; }),
                             {c, next});
            }
            state = next;
        }
        nodes[static_cast<size_t>(state)].out = static_cast<int32_t>(keys.size());
        keys.push_back(&entries);
    }
    // Fail links, breadth first.
    std::vector<int32_t> queue;
    for (const auto& [c, child] : nodes[0].next) queue.push_back(child);
    for (size_t i = 0; i < queue.size(); ++i) {
        int32_t u = queue[i];
        for (const auto& [c, v] : nodes[static_cast<size_t>(u)].next) {
            int32_t f = nodes[static_cast<size_t>(u)].fail;
            while (f != 0 && Child(f, c) < 0) f = nodes[static_cast<size_t>(f)].fail;
            int32_t w = Child(f, c);
            Node& node = nodes[static_cast<size_t>(v)];
            node.fail = w >= 0 && w != v ? w : 0;
            const Node& fail = nodes[static_cast<size_t>(node.fail)];
            node.link = fail.out >= 0 ? node.fail : fail.link;
            queue.push_back(v);
        }
    }
    seen.assign(keys.size(), 0);
    generation = 0;
    built = true;
}

void TriggerEngine::Automaton::Collect(std::string_view text, std::vector<Entry*>& out) {
    if (keys.empty()) return;
    if (++generation == 0) {
        std::fill(seen.begin(), seen.end(), 0);
        generation = 1;
    }
    auto report = [&](int32_t key) {
        if (seen[static_cast<size_t>(key)] == generation) return;
        seen[static_cast<size_t>(key)] = generation;
        const auto& entries = *keys[static_cast<size_t>(key)];
        out.insert(out.end(), entries.begin(), entries.end());
    };
    int32_t state = 0;
    for (unsigned char c : text) {
        int32_t next;
        while ((next = Child(state, c)) < 0 && state != 0) {
            state = nodes[static_cast<size_t>(state)].fail;
        }
        state = next < 0 ? 0 : next;
        const Node& node = nodes[static_cast<size_t>(state)];
        if (node.out >= 0) report(node.out);
        for (int32_t l = node.link; l >= 0; l = nodes[static_cast<size_t>(l)].link) {
            report(nodes[static_cast<size_t>(l)].out);
        }
    }
}

void TriggerEngine::Index(Entry* entry) {
    Bucket& bucket = buckets_[static_cast<int>(entry->pattern.kind)];
    if (!Keyed(entry->pattern.kind) || entry->pattern.arg == "*") {
        bucket.any.push_back(entry);
    } else {
        bucket.by_key[entry->key].push_back(entry);
        bucket.automaton.built = false;
    }
}

void TriggerEngine::Unindex(Entry* entry) {
    Bucket& bucket = buckets_[static_cast<int>(entry->pattern.kind)];
    auto drop = [entry](std::vector<Entry*>& list) {
        list.erase(std::remove(list.begin(), list.end(), entry), list.end());
    };
    drop(bucket.any);
    if (auto it = bucket.by_key.find(entry->key); it != bucket.by_key.end()) {
        drop(it->second);
        if (it->second.empty()) bucket.by_key.erase(it);
        bucket.automaton.built = false;
    }
}

void TriggerEngine::Collect(const Bucket& bucket, std::string_view haystack,
                            std::vector<Entry*>& out) const {
    out.insert(out.end(), bucket.any.begin(), bucket.any.end());
    if (bucket.by_key.empty()) return;
    // The bucket is one of buckets_ (mutable): its automaton is built on first use.
    Automaton& automaton = const_cast<Bucket&>(bucket).automaton;
    if (!automaton.built) automaton.Build(bucket.by_key);
    automaton.Collect(haystack, out);
}

void TriggerEngine::Candidates(const BusEvent& e, std::vector<Entry*>& out) const {
    auto bucket = [this](PatternKind kind) -> const Bucket& {
        return buckets_[static_cast<int>(kind)];
    };
    auto plain = [&](PatternKind kind) {
        const auto& any = bucket(kind).any;
        out.insert(out.end(), any.begin(), any.end());
    };
    plain(PatternKind::kAll);
    std::string lower;
    auto lowered = [&]() -> const std::string& {
        if (lower.empty()) lower = AsciiLower(e.description);
        return lower;
    };
    const Bucket& content = bucket(PatternKind::kContentMatch);
    if (!content.any.empty() || !content.by_key.empty()) {
        Collect(content, lowered(), out);
    }
    switch (e.kind) {
        case EventKind::kLifecycle:
            plain(PatternKind::kLifecycle);
            if (e.type == "agent_spawned") {
                Collect(bucket(PatternKind::kAgentSpawned), e.agent, out);
            } else if (e.type == "agent_terminated" || e.type == "agent_crashed") {
                plain(PatternKind::kAgentTerminated);
            }
            break;
        case EventKind::kSystem: {
            plain(PatternKind::kSystem);
            const Bucket& keyword = bucket(PatternKind::kSystemKeyword);
            if (!keyword.any.empty() || !keyword.by_key.empty()) {
                Collect(keyword, lowered(), out);
            }
            break;
        }
        case EventKind::kMemory:
            plain(PatternKind::kMemoryUpdate);
            Collect(bucket(PatternKind::kMemoryKeyPattern), e.key, out);
            break;
        case EventKind::kTask:
            if (e.type == "task_posted") plain(PatternKind::kTaskPosted);
            if (e.type == "task_claimed") plain(PatternKind::kTaskClaimed);
            if (e.type == "task_completed") plain(PatternKind::kTaskCompleted);
            break;
        case EventKind::kNode:
        case EventKind::kTool:
            break;
    }
}

void TriggerEngine::Match(const BusEvent& event,
                          std::vector<const store::TriggerRecord*>& out) const {
    std::vector<Entry*> candidates;
    Candidates(event, candidates);
    std::sort(candidates.begin(), candidates.end(), [](const Entry* a, const Entry* b) {
        return a->record.trigger_id < b->record.trigger_id;
    });
    for (const Entry* entry : candidates) {
        if (entry->record.enabled) out.push_back(&entry->record);
    }
}

void TriggerEngine::OnEvent(const BusEvent& event) {
    if (event.depth >= options_.max_depth || entries_.empty()) return;
    std::vector<Entry*> candidates;
    Candidates(event, candidates);
    if (candidates.empty()) return;
    std::sort(candidates.begin(), candidates.end(), [](const Entry* a, const Entry* b) {
        return a->record.trigger_id < b->record.trigger_id;
    });
    const SteadyTime now = clock_.SteadyNow();
    int fired = 0;
    for (Entry* entry : candidates) {
        if (fired >= options_.max_fires_per_event) {
            spdlog::warn("event {}: more than {} triggers match; the rest do not fire", event.id,
                         options_.max_fires_per_event);
            break;
        }
        store::TriggerRecord& t = entry->record;
        if (!t.enabled) continue;
        if (t.max_fires > 0 && t.fire_count + entry->in_flight >= t.max_fires) continue;
        const auto cooldown = std::chrono::seconds(t.cooldown_secs);
        if (t.cooldown_secs > 0) {
            auto last = entry->last_fire.find(std::string_view(event.subject));
            if (last != entry->last_fire.end()) {
                if (now - last->second < cooldown) continue;
                last->second = now;
            } else {
                if (entry->last_fire.size() >= 10'000) {
                    // Forget the subjects whose cooldown ran out.
                    std::erase_if(entry->last_fire,
                                  [&](const auto& item) { return now - item.second >= cooldown; });
                }
                entry->last_fire.emplace(event.subject, now);
            }
        }
        ++fired;
        ++entry->in_flight;
        ++in_flight_total_;
        store::TriggerFire fire;
        fire.fire_id = "fire_" + NewRunId(clock_, random_);
        fire.trigger_id = t.trigger_id;
        fire.event_id = event.id;
        json::object target;
        if (!t.workflow_id.empty()) {
            target["workflow"] = t.workflow_id;
        } else {
            target["agent"] = t.agent_id;
        }
        fire.target = CompactJson(target);
        fire.prompt = RenderPrompt(t.prompt_template, event.description);
        fire.depth = event.depth + 1;
        fire.idempotency_key = "trigger:" + t.trigger_id + ":" + event.id;
        fire.created_at = clock_.Now();
        asio::co_spawn(executor_, Fire(t.trigger_id, std::move(fire)), asio::detached);
    }
}

Awaitable<void> TriggerEngine::Fire(std::string trigger_id, store::TriggerFire fire) {
    auto recorded = co_await store_->RecordTriggerFire(fire);
    if (!recorded) {
        if (recorded.error().code() != ErrorCode::kAlreadyExists) {
            spdlog::error("trigger {}: cannot record its fire for event {}: {}", trigger_id,
                          fire.event_id, recorded.error().message());
        }
        if (auto it = entries_.find(trigger_id); it != entries_.end()) {
            --it->second->in_flight;
            --in_flight_total_;
        }
        co_return;
    }
    if (after_record_) after_record_(fire);
    co_await StartAndComplete(std::move(fire));
}

Awaitable<Result<std::string>> TriggerEngine::Start(const store::TriggerFire& fire) {
    if (!launcher_) co_return UnavailableError("no launcher: automation is not running");
    auto target = ParseJson(fire.target);
    if (!target || !target->is_object())
        co_return InternalError("fire " + fire.fire_id + ": bad target");
    Origin origin{"trigger", fire.trigger_id, fire.fire_id, static_cast<int>(fire.depth)};
    std::string workflow(JsonString(target->as_object(), "workflow"));
    if (!workflow.empty()) {
        co_return co_await launcher_->StartWorkflow(workflow, json::value(fire.prompt), origin,
                                                    fire.idempotency_key);
    }
    AgentMessage message;
    message.agent = std::string(JsonString(target->as_object(), "agent"));
    message.text = fire.prompt;
    message.origin = origin;
    co_return co_await launcher_->SendToAgent(std::move(message), fire.idempotency_key);
}

Awaitable<void> TriggerEngine::StartAndComplete(store::TriggerFire fire) {
    auto started = co_await Start(fire);
    std::string run_id = started ? *started : std::string();
    std::string error = started ? std::string() : started.error().message();
    if (!started) {
        spdlog::warn("trigger {}: fire for event {} did not start: {}", fire.trigger_id,
                     fire.event_id, error);
    }
    auto completed =
        co_await store_->CompleteTriggerFire(fire.fire_id, run_id, error, clock_.Now());
    if (!completed) {
        spdlog::error("trigger {}: cannot complete fire {}: {}", fire.trigger_id, fire.fire_id,
                      completed.error().message());
    }
    auto it = entries_.find(fire.trigger_id);
    if (it != entries_.end()) {
        Entry& entry = *it->second;
        if (entry.in_flight > 0) {
            --entry.in_flight;
            --in_flight_total_;
        }
        if (completed) {
            entry.record.fire_count = completed->fire_count;
            entry.record.enabled = completed->enabled;
        }
    }
    (started ? fires_started_ : fires_failed_)++;
}

Awaitable<Status> TriggerEngine::Load() {
    STROWGER_CO_ASSIGN_OR_RETURN(auto records, co_await store_->ListTriggers());
    for (auto& record : records) {
        auto pattern_json = ParseJson(record.pattern);
        if (!pattern_json) {
            spdlog::error("trigger {}: stored pattern does not parse; skipped", record.trigger_id);
            continue;
        }
        auto pattern = ParsePattern(*pattern_json);
        if (!pattern) {
            spdlog::error("trigger {}: {}; skipped", record.trigger_id, pattern.error().message());
            continue;
        }
        auto entry = std::make_unique<Entry>();
        entry->pattern = *pattern;
        entry->key = LowerCased(pattern->kind) ? AsciiLower(pattern->arg) : pattern->arg;
        entry->record = std::move(record);
        Entry* raw = entry.get();
        if (auto old = entries_.find(raw->record.trigger_id); old != entries_.end()) {
            Unindex(old->second.get());
        }
        entries_[raw->record.trigger_id] = std::move(entry);
        Index(raw);
    }
    co_return OkStatus();
}

Awaitable<Result<int64_t>> TriggerEngine::Recover() {
    STROWGER_CO_ASSIGN_OR_RETURN(auto pending, co_await store_->PendingTriggerFires());
    for (auto& fire : pending) {
        auto it = entries_.find(fire.trigger_id);
        if (it != entries_.end()) {
            ++it->second->in_flight;
            ++in_flight_total_;
        }
        spdlog::info("trigger {}: completing fire {} for event {} (interrupted)", fire.trigger_id,
                     fire.fire_id, fire.event_id);
        co_await StartAndComplete(std::move(fire));
    }
    co_return static_cast<int64_t>(pending.size());
}

Awaitable<Result<store::TriggerRecord>> TriggerEngine::Create(TriggerChange change) {
    const bool agent = change.agent_id && !change.agent_id->empty();
    const bool workflow = change.workflow_id && !change.workflow_id->empty();
    if (agent == workflow) {
        co_return InvalidArgumentError(
            "agent_id: give either agent_id (an agent turn) or workflow_id (a workflow run)");
    }
    if (!change.pattern) co_return InvalidArgumentError("pattern: required");
    store::TriggerRecord record;
    record.trigger_id = "trg_" + NewRunId(clock_, random_);
    record.agent_id = change.agent_id.value_or("");
    record.workflow_id = change.workflow_id.value_or("");
    record.pattern = CompactJson(PatternJson(*change.pattern));
    record.prompt_template = change.prompt_template.value_or(std::string(kDefaultPrompt));
    record.enabled = change.enabled.value_or(true);
    record.max_fires = change.max_fires.value_or(0);
    record.cooldown_secs = change.cooldown_secs.value_or(5);
    record.created_at = clock_.Now();
    if (record.max_fires < 0) co_return InvalidArgumentError("max_fires: must be >= 0");
    if (record.cooldown_secs < 0) co_return InvalidArgumentError("cooldown_secs: must be >= 0");
    STROWGER_CO_TRY(co_await store_->PutTrigger(record));
    auto entry = std::make_unique<Entry>();
    entry->pattern = *change.pattern;
    entry->key =
        LowerCased(entry->pattern.kind) ? AsciiLower(entry->pattern.arg) : entry->pattern.arg;
    entry->record = record;
    Entry* raw = entry.get();
    entries_[record.trigger_id] = std::move(entry);
    Index(raw);
    co_return record;
}

Awaitable<Result<store::TriggerRecord>> TriggerEngine::Update(std::string trigger_id,
                                                              TriggerChange change) {
    auto it = entries_.find(trigger_id);
    if (it == entries_.end()) co_return NotFoundError("Trigger not found");
    store::TriggerRecord record = it->second->record;
    if (change.agent_id) {
        record.agent_id = *change.agent_id;
        if (!record.agent_id.empty()) record.workflow_id.clear();
    }
    if (change.workflow_id) {
        record.workflow_id = *change.workflow_id;
        if (!record.workflow_id.empty()) record.agent_id.clear();
    }
    if (record.agent_id.empty() == record.workflow_id.empty()) {
        co_return InvalidArgumentError("agent_id: a trigger targets an agent or a workflow");
    }
    if (change.pattern) record.pattern = CompactJson(PatternJson(*change.pattern));
    if (change.prompt_template) record.prompt_template = *change.prompt_template;
    if (change.enabled) record.enabled = *change.enabled;
    if (change.max_fires) {
        if (*change.max_fires < 0) co_return InvalidArgumentError("max_fires: must be >= 0");
        record.max_fires = *change.max_fires;
    }
    if (change.cooldown_secs) {
        if (*change.cooldown_secs < 0) {
            co_return InvalidArgumentError("cooldown_secs: must be >= 0");
        }
        record.cooldown_secs = *change.cooldown_secs;
    }
    STROWGER_CO_TRY(co_await store_->PutTrigger(record));
    // Found again: the entry may have gone while the store wrote.
    it = entries_.find(trigger_id);
    if (it == entries_.end()) co_return NotFoundError("Trigger not found");
    Entry* entry = it->second.get();
    Unindex(entry);
    if (change.pattern) {
        entry->pattern = *change.pattern;
        entry->key =
            LowerCased(entry->pattern.kind) ? AsciiLower(entry->pattern.arg) : entry->pattern.arg;
    }
    // Counters move under fires: keep the engine's.
    record.fire_count = entry->record.fire_count;
    entry->record = record;
    Index(entry);
    co_return record;
}

Awaitable<Status> TriggerEngine::Delete(std::string trigger_id) {
    if (!entries_.contains(trigger_id)) co_return NotFoundError("Trigger not found");
    STROWGER_CO_TRY(co_await store_->DeleteTrigger(trigger_id));
    auto it = entries_.find(trigger_id);
    if (it != entries_.end()) {
        Unindex(it->second.get());
        in_flight_total_ -= it->second->in_flight;
        entries_.erase(it);
    }
    co_return OkStatus();
}

const store::TriggerRecord* TriggerEngine::Find(const std::string& trigger_id) const {
    auto it = entries_.find(trigger_id);
    return it == entries_.end() ? nullptr : &it->second->record;
}

const Pattern* TriggerEngine::PatternOf(const std::string& trigger_id) const {
    auto it = entries_.find(trigger_id);
    return it == entries_.end() ? nullptr : &it->second->pattern;
}

std::vector<store::TriggerRecord> TriggerEngine::List(const std::string& agent_id) const {
    std::vector<store::TriggerRecord> out;
    for (const auto& [id, entry] : entries_) {
        if (!agent_id.empty() && entry->record.agent_id != agent_id) continue;
        out.push_back(entry->record);
    }
    return out;
}

}  // namespace strowger::automation
