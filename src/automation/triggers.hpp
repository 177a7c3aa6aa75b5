// The trigger engine (issue 16, item 2; LibreFang's triggers.rs with its shapes): triggers
// match events of the bus and start an agent turn or a workflow run with their rendered
// prompt, through the Launcher.
//
// Patterns (JSON as in the reference): "all", "lifecycle", {"agent_spawned":{"name_pattern":
// "coder"}} (substring, or "*"), "agent_terminated" (also crashed), "system",
// {"system_keyword":{"keyword":"quota"}} (case-insensitive over the description),
// "memory_update", {"memory_key_pattern":{"key_pattern":"config"}} (substring, or "*"),
// {"content_match":{"substring":"error"}} (case-insensitive over the description), and
// "task_posted", "task_claimed", "task_completed" over human tasks.
//
// Limits: a disabled trigger never fires; max_fires > 0 disables the trigger when fire_count
// reaches it (fires in flight count towards it, so it is never overshot); cooldown_secs
// (default 5) per trigger and event subject; at most 10 fires per event (oldest triggers
// first); an event at depth >= 5 fires nothing (a fired run's events are one deeper than the
// event that fired it).
//
// Durability: a fire is recorded in the store ((trigger, event) unique) before its start, and
// started with the idempotency key "trigger:<trigger>:<event>"; completing it counts it. At
// start-up, Recover() completes the pending fires a crash left: each starts exactly once.
//
// Matching is indexed: triggers sit in one bucket per pattern kind, and the keyed kinds
// (agent_spawned, system_keyword, memory_key_pattern, content_match) under their distinct key,
// so an event looks only at the buckets its kind can match.
//
// Thread-safety: everything on the daemon's one executor.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "automation/bus.hpp"
#include "automation/launcher.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/random.hpp"
#include "store/store.hpp"

namespace strowger::automation {

enum class PatternKind : uint8_t {
    kAll,
    kLifecycle,
    kAgentSpawned,
    kAgentTerminated,
    kSystem,
    kSystemKeyword,
    kMemoryUpdate,
    kMemoryKeyPattern,
    kContentMatch,
    kTaskPosted,
    kTaskClaimed,
    kTaskCompleted,
};
inline constexpr int kPatternKinds = 12;

struct Pattern {
    PatternKind kind = PatternKind::kAll;
    std::string arg;  // name_pattern, keyword, key_pattern or substring
};

// Parses a pattern in the reference's JSON; kInvalidArgument saying what is wrong.
Result<Pattern> ParsePattern(const json::value& value);
json::value PatternJson(const Pattern& pattern);
// Whether `pattern` matches `event` (the reference's matches_pattern).
bool Matches(const Pattern& pattern, const BusEvent& event);

inline constexpr std::string_view kDefaultPrompt = "Event: {{event}}";

// Replaces every {{event}} in `prompt_template` with `description`.
std::string RenderPrompt(std::string_view prompt_template, std::string_view description);

struct TriggerOptions {
    int max_fires_per_event = 10;
    int max_depth = 5;
};

// What creating or changing a trigger gives (absent fields: unchanged, or the defaults).
struct TriggerChange {
    std::optional<std::string> agent_id;
    std::optional<std::string> workflow_id;
    std::optional<Pattern> pattern;
    std::optional<std::string> prompt_template;
    std::optional<bool> enabled;
    std::optional<int64_t> max_fires;
    std::optional<int64_t> cooldown_secs;
};

class TriggerEngine {
  public:
    TriggerEngine(Executor executor, std::shared_ptr<store::Store> store, Clock& clock,
                  Random& random, TriggerOptions options = {});

    // Where fires start things (the daemon's Launcher). Without one, a fire fails.
    void SetLauncher(Launcher* launcher) { launcher_ = launcher; }
    // Test hook: called after a fire is recorded and before its start (a crash there).
    void SetAfterRecordHook(std::function<void(const store::TriggerFire&)> hook) {
        after_record_ = std::move(hook);
    }

    // Loads the triggers from the store.
    Awaitable<Status> Load();
    // Starts what pending fires a crash left (each once, by its idempotency key) and counts
    // them. Returns how many there were.
    Awaitable<Result<int64_t>> Recover();

    // Matches `event` and fires what it should (the fires complete asynchronously).
    void OnEvent(const BusEvent& event);
    // The enabled triggers `event` matches, in trigger id order, before limits (the bench).
    void Match(const BusEvent& event, std::vector<const store::TriggerRecord*>& out) const;

    // The CRUD behind the API. Create needs agent_id or workflow_id (one) and a pattern.
    Awaitable<Result<store::TriggerRecord>> Create(TriggerChange change);
    Awaitable<Result<store::TriggerRecord>> Update(std::string trigger_id, TriggerChange change);
    Awaitable<Status> Delete(std::string trigger_id);
    // Null if there is none.
    const store::TriggerRecord* Find(const std::string& trigger_id) const;
    // Every trigger (of `agent_id` if not ""), by id.
    std::vector<store::TriggerRecord> List(const std::string& agent_id) const;
    const Pattern* PatternOf(const std::string& trigger_id) const;

    // Fires recorded and not yet completed.
    int64_t in_flight() const { return in_flight_total_; }
    int64_t fires_started() const { return fires_started_; }
    int64_t fires_failed() const { return fires_failed_; }

  private:
    struct SubjectHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct Entry {
        store::TriggerRecord record;
        Pattern pattern;
        std::string key;  // lower-cased arg for the keyed kinds
        int64_t in_flight = 0;
        // When it last fired per event subject (its cooldown).
        std::unordered_map<std::string, SteadyTime, SubjectHash, std::equal_to<>> last_fire;
    };
    // Aho-Corasick over a bucket's keys: every key occurring in a text in one pass over it,
    // whatever the number of keys. Built when first needed after the keys changed.
    struct Automaton {
        struct Node {
            std::vector<std::pair<unsigned char, int32_t>> next;  // by character
            int32_t fail = 0;
            int32_t out = -1;   // the key ending here
            int32_t link = -1;  // the nearest node on the fail chain with a key
        };
        std::vector<Node> nodes;
        std::vector<const std::vector<Entry*>*> keys;  // the entries of each key
        std::vector<uint32_t> seen;                    // generation of each key's last report
        uint32_t generation = 0;
        bool built = false;
        void Build(const std::map<std::string, std::vector<Entry*>>& by_key);
        int32_t Child(int32_t node, unsigned char c) const;
        // Appends the entries of every key that occurs in `text` (each key once).
        void Collect(std::string_view text, std::vector<Entry*>& out);
    };
    struct Bucket {
        std::vector<Entry*> any;                            // unkeyed, or key "*"
        std::map<std::string, std::vector<Entry*>> by_key;  // keyed (lower-cased where the
                                                            // match ignores case)
        Automaton automaton;
    };
    void Index(Entry* entry);
    void Unindex(Entry* entry);
    void Collect(const Bucket& bucket, std::string_view haystack, std::vector<Entry*>& out) const;
    void Candidates(const BusEvent& event, std::vector<Entry*>& out) const;
    Awaitable<void> Fire(std::string trigger_id, store::TriggerFire fire);
    // Starts a recorded fire and completes it.
    Awaitable<void> StartAndComplete(store::TriggerFire fire);
    Awaitable<Result<std::string>> Start(const store::TriggerFire& fire);
    void Completed(const Result<store::TriggerRecord>& trigger, bool started);

    Executor executor_;
    std::shared_ptr<store::Store> store_;
    Clock& clock_;
    Random& random_;
    TriggerOptions options_;
    Launcher* launcher_ = nullptr;
    std::function<void(const store::TriggerFire&)> after_record_;
    std::map<std::string, std::unique_ptr<Entry>> entries_;  // by trigger id
    mutable Bucket buckets_[kPatternKinds];  // automata are built lazily by matching
    int64_t in_flight_total_ = 0;
    int64_t fires_started_ = 0;
    int64_t fires_failed_ = 0;
};

}  // namespace strowger::automation
