// Budget warnings at 85 % (issue 16, item 1: LibreFang's "Quota warning: agent …, tokens at
// 85.0%"): an engine observer that adds up what a run spends and publishes one `quota_warning`
// system event on the bus when a token or cost budget is 85 % used, before the engine's
// `budget.exceeded` (the 100 % event, `quota_exceeded`) stops the step.
//
// Budgets watched (docs/formats/workflow.md `limits`): the run's `max_tokens` / `max_cost_usd`
// (lowered by a child run's caps in run.created) and each agent step's own (per step, over its
// attempts) — a standing agent's turn is a one-step run, so its agent's limits are the turn's.
// Spent: every llm.response's tokens_in + tokens_out and cost_usd, and a child's
// subworkflow.ended totals, as the engine counts them. One warning per run, scope, step and
// limit (its bus id is stable: "<run>:<seq>:quota_warning:<scope>:<limit>[:<step>]").
//
// A run is watched from its start in this process (Watch, called with the plan before the
// start), from its run.created if that names caps, or from its resumption in this process
// (OnResume: after a restart too), with what its ledger says it spent; a budget already past
// 85 % then was warned about before and is not again.
//
// An agent's hourly token quota (`limits.max_tokens_per_hour`, LibreFang's quota) spans runs:
// the engine reports its use after each call counted against it (OnQuotaUse, from the store's
// count, so calls before a restart count too), and the agent gets one warning per hour: at
// the first call that takes the last hour's use to 85 %, then again only once an hour has
// passed since that warning.
//
// Thread-safety: everything on the daemon's one executor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "automation/bus.hpp"
#include "engine/observer.hpp"
#include "model/plan.hpp"

namespace strowger::automation {

inline constexpr int kQuotaWarningPercent = 85;

class QuotaWatch final : public engine::Observer {
  public:
    explicit QuotaWatch(EventBus& bus) : bus_(bus) {}

    // Notes the budgets of `run_id`, about to be started with `plan` (nothing if it has none).
    void Watch(const std::string& run_id, const model::Plan& plan);
    // A start that created no run (an error, or an idempotency key naming another run).
    void Forget(const std::string& run_id) { runs_.erase(run_id); }
    void OnEvent(const ledger::Event& event) override;
    void OnQuotaUse(const engine::QuotaUse& use) override;
    void OnResume(const model::Plan& plan, const ledger::RunState& state) override;
    bool WantsData() const override { return true; }
    size_t watched() const { return runs_.size(); }

  private:
    struct Budget {
        std::optional<int64_t> max_tokens;
        std::optional<int64_t> max_nano_usd;
        int64_t tokens = 0;
        int64_t nano_usd = 0;
        bool warned_tokens = false;
        bool warned_cost = false;
        bool any() const { return max_tokens || max_nano_usd; }
    };
    struct RunWatch {
        std::string workflow;
        std::string agent;  // an agent turn's agent ("" = not a turn)
        Budget run;
        std::unordered_map<std::string, Budget> steps;  // by node id (only those with limits)
    };
    void Spend(const ledger::Event& event, RunWatch& watch, int64_t tokens, int64_t nano_usd);
    void Check(const ledger::Event& event, const RunWatch& watch, Budget& budget,
               const std::string& scope, const std::string& step);

    EventBus& bus_;
    std::unordered_map<std::string, RunWatch> runs_;
    std::unordered_map<std::string, SystemTime> hour_warned_;  // agent -> its last warning
};

}  // namespace strowger::automation
