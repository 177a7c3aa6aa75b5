// Observers see a run's progress as it happens (taskflow's ObserverInterface): the CLI's live
// display, `runs events --follow` in-process, and later the daemon's event streams.
//
// Callbacks run on the run's executor, after the events were committed; they must be quick
// and must not block. An observer must outlive the engine it is added to.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/clock.hpp"
#include "ledger/event.hpp"

namespace strowger::model {
struct Plan;
}  // namespace strowger::model
namespace strowger::ledger {
class RunState;
}  // namespace strowger::ledger

namespace strowger::engine {

// An agent's hourly token quota (`limits.max_tokens_per_hour`) after a model call was counted
// against it: `used` is the hour's use up to `time` (every run's calls of that agent, as the
// store counted them before the call, plus this call's tokens), of `limit`.
struct QuotaUse {
    std::string_view run_id;
    std::string_view node;
    std::string_view agent;
    int64_t used = 0;
    int64_t limit = 0;
    SystemTime time{};
};

class Observer {
  public:
    virtual ~Observer() = default;
    // Called once per committed event, in ledger order per run. The event has its header
    // fields (seq, run_id, time, type, node, attempt) and `data`; not its hashes or stored line
    // (read those from the store).
    virtual void OnEvent(const ledger::Event& event) { (void)event; }
    // False if OnEvent never reads `data`: the engine then does not copy each event's payload
    // for observers unless another one wants it. Asked when the observer is added.
    virtual bool WantsData() const { return true; }
    // True if this observer wants OnDelta: model calls then stream (where the provider can),
    // which costs a little more than a plain call. Asked when the observer is added.
    virtual bool WantsDeltas() const { return false; }
    // Streamed model text for a running node (not in the ledger; the final text is). Runs on
    // the run's executor, in order, possibly after the node's events that end the call.
    virtual void OnDelta(std::string_view run_id, std::string_view node, std::string_view text) {
        (void)run_id;
        (void)node;
        (void)text;
    }
    // An hourly quota's use after a call counted against it (not in the ledger: the quota
    // spans runs). Runs on the run's executor, after the call's events were committed.
    virtual void OnQuotaUse(const QuotaUse& use) { (void)use; }
    // A run about to execute again in this process (resumed: after a restart, a pause, a
    // decision's wait): its plan, and the state its verified ledger replayed to (what it has
    // spent so far). Its run.resumed event follows.
    virtual void OnResume(const model::Plan& plan, const ledger::RunState& state) {
        (void)plan;
        (void)state;
    }
};

}  // namespace strowger::engine
