// The daemon's event bus (issue 16, item 1): Strowger's own events, each with a human-readable
// description in the style of LibreFang's describe_event ("Agent 'coder' (id: …) was spawned",
// "Tool 'web_search' succeeded (450ms): …"), for triggers to match.
//
// What is on it:
//   kind "lifecycle"  runs (run_created, run_started, run_completed, run_failed,
//                     run_cancelled, run_paused, run_resumed) and agents — a run whose
//                     workflow is "agent:<name>" is an agent turn: agent_spawned at its
//                     run.created, agent_terminated at completed/cancelled, agent_crashed at
//                     failed; session_reset (published by the API when a standing agent's
//                     session history is deleted)
//   kind "node"       node_started, node_completed, node_failed
//   kind "tool"       tool_succeeded, tool_failed (with the call's duration)
//   kind "task"       task_posted (human_task.created), task_claimed (human_task.decided),
//                     task_completed (human_task.completed, or the decision of an approval
//                     or reconciliation, which completes it)
//   kind "system"     daemon_started, daemon_draining, health_check_failed (/readyz),
//                     provider_unreachable (an llm.retried or
//                     node.failed with code unavailable), quota_exceeded (budget.exceeded:
//                     "at 100.0%"), quota_warning (85 %: QuotaWatch,
//                     quota.hpp), webhook_rejected, webhook
//   kind "memory"     memory_update (every change of the agent memory)
//
// Depth: events caused by a run that automation started carry that start's depth (the start
// is announced by its idempotency key before the run exists: ExpectStart); a subworkflow's
// child run inherits its parent's. Other runs are at depth 0.
//
// Thread-safety: everything on the daemon's one executor.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"
#include "engine/observer.hpp"
#include "ledger/event.hpp"

namespace strowger::automation {

enum class EventKind : uint8_t { kLifecycle, kNode, kTool, kTask, kSystem, kMemory };
std::string_view EventKindName(EventKind kind);

struct BusEvent {
    std::string id;  // "<run>:<seq>" for a ledger event (stable), else "evt_<ulid>"
    EventKind kind = EventKind::kSystem;
    std::string type;     // "agent_spawned", "memory_update", ...
    std::string subject;  // what cooldowns are per: the agent, the run, the memory key, ...
    std::string agent;    // lifecycle of an agent: its name
    std::string key;      // memory_update: the key
    std::string run_id;   // "" = none
    std::string description;
    int depth = 0;
    SystemTime time{};
};

class EventBus {
  public:
    using Subscriber = std::function<void(const BusEvent&)>;
    explicit EventBus(Clock& clock, size_t keep_recent = 1024);

    void Subscribe(Subscriber subscriber) { subscribers_.push_back(std::move(subscriber)); }
    // Sets id (if empty) and time, then hands the event to every subscriber, in order.
    void Publish(BusEvent event);
    // The newest events, oldest first, at most `limit`.
    std::vector<BusEvent> Recent(size_t limit) const;
    uint64_t published() const { return published_; }

    // A start about to be made with `idempotency_key` will be at `depth`: its run's events
    // carry it (the feeder sees the key in run.created).
    void ExpectStart(const std::string& idempotency_key, int depth);
    // The depth of `run_id`'s events (0 if none was noted).
    int RunDepth(const std::string& run_id) const;
    void SetRunDepth(const std::string& run_id, int depth);
    // The depth noted for a start by ExpectStart, once (-1 = none).
    int TakeExpectedDepth(const std::string& idempotency_key);
    void ForgetRun(const std::string& run_id);

  private:
    Clock& clock_;
    size_t keep_recent_;
    uint64_t published_ = 0;
    uint64_t next_id_ = 0;
    std::string id_prefix_;
    std::vector<Subscriber> subscribers_;
    std::deque<BusEvent> recent_;
    std::unordered_map<std::string, int> expected_;  // idempotency key -> depth
    std::unordered_map<std::string, int> depths_;    // run -> depth (non-zero only)
};

// Turns committed ledger events into bus events (an engine observer).
class BusFeeder final : public engine::Observer {
  public:
    explicit BusFeeder(EventBus& bus) : bus_(bus) {}
    void OnEvent(const ledger::Event& event) override;
    // What a run resumed after a restart was (its run.created is not seen again): its workflow
    // name and the depth its start recorded.
    void NoteRun(const std::string& run_id, const std::string& workflow, int depth);
    bool WantsData() const override { return true; }

  private:
    struct RunInfo {
        std::string workflow;
        std::string agent;                                   // "" = not an agent turn
        std::unordered_map<std::string, std::string> calls;  // call id -> tool
        std::unordered_map<std::string, std::string> tasks;  // task id -> kind
    };
    EventBus& bus_;
    std::unordered_map<std::string, RunInfo> runs_;
};

}  // namespace strowger::automation
