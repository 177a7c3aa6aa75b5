#include "automation/quota.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "ledger/run_state.hpp"

namespace strowger::automation {
namespace {

int64_t NanoUsd(double usd) {
    if (!(usd > 0)) return 0;
    double nano = usd * 1e9;
    if (nano >= static_cast<double>(std::numeric_limits<int64_t>::max())) {
        return std::numeric_limits<int64_t>::max();
    }
    return std::llround(nano);
}

int64_t Add(int64_t a, int64_t b) {
    int64_t sum = 0;
    if (__builtin_add_overflow(a, b, &sum)) return std::numeric_limits<int64_t>::max();
    return sum;
}

// used / max >= 85 %, without overflow.
bool Crossed(int64_t used, int64_t max) {
    if (max <= 0) return false;
    return static_cast<__int128>(used) * 100 >= static_cast<__int128>(max) * kQuotaWarningPercent;
}

std::string Percent(int64_t used, int64_t max) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f%%",
                  static_cast<double>(used) * 100.0 / static_cast<double>(max));
    return text;
}

template <typename T>
void Lower(std::optional<T>& limit, T cap) {
    limit = limit ? std::min(*limit, cap) : cap;
}

}  // namespace

void QuotaWatch::Watch(const std::string& run_id, const model::Plan& plan) {
    RunWatch watch;
    watch.workflow = plan.workflow_name;
    if (plan.limits.max_tokens) watch.run.max_tokens = *plan.limits.max_tokens;
    if (plan.limits.max_cost_usd) watch.run.max_nano_usd = NanoUsd(*plan.limits.max_cost_usd);
    for (const auto& node : plan.nodes) {
        const model::AgentSpec* agent = plan.AgentOf(node);
        if (agent == nullptr) continue;
        Budget step;
        if (agent->limits.max_tokens) step.max_tokens = *agent->limits.max_tokens;
        if (agent->limits.max_cost_usd) step.max_nano_usd = NanoUsd(*agent->limits.max_cost_usd);
        if (step.any()) watch.steps[node.id] = step;
    }
    if (!watch.run.any() && watch.steps.empty()) return;
    runs_[run_id] = std::move(watch);
}

void QuotaWatch::OnEvent(const ledger::Event& event) {
    using ledger::EventType;
    switch (event.type) {
        case EventType::kRunCreated: {
            auto it = runs_.find(event.run_id);
            // A child run's caps (its parent's budgets left) start a watch of their own.
            const bool capped = event.data.find("\"max_tokens\"") != std::string::npos ||
                                event.data.find("\"max_cost_usd\"") != std::string::npos;
            if (it == runs_.end() && !capped) return;
            auto parsed = ParseJson(event.data);
            if (!parsed || !parsed->is_object()) return;
            const auto& data = parsed->as_object();
            RunWatch& watch = runs_[event.run_id];
            watch.workflow = std::string(JsonString(data, "workflow", watch.workflow));
            if (StartsWith(watch.workflow, "agent:")) watch.agent = watch.workflow.substr(6);
            if (const auto* v = data.if_contains("max_tokens"); v && v->is_int64()) {
                Lower(watch.run.max_tokens, v->as_int64());
            }
            if (data.contains("max_cost_usd")) {
                if (auto cost = ledger::ParseUsd(JsonString(data, "max_cost_usd", "0"))) {
                    Lower(watch.run.max_nano_usd, *cost);
                }
            }
            return;
        }
        case EventType::kLlmResponse:
        case EventType::kSubworkflowEnded: {
            auto it = runs_.find(event.run_id);
            if (it == runs_.end()) return;
            auto parsed = ParseJson(event.data);
            if (!parsed || !parsed->is_object()) return;
            const auto& data = parsed->as_object();
            int64_t tokens = Add(std::max<int64_t>(0, JsonInt(data, "tokens_in")),
                                 std::max<int64_t>(0, JsonInt(data, "tokens_out")));
            int64_t cost = 0;
            if (auto parsed_cost = ledger::ParseUsd(JsonString(data, "cost_usd", "0"))) {
                cost = std::max<int64_t>(0, *parsed_cost);
            }
            Spend(event, it->second, tokens, cost);
            return;
        }
        case EventType::kRunCompleted:
        case EventType::kRunFailed:
        case EventType::kRunCancelled:
            runs_.erase(event.run_id);
            return;
        default:
            return;
    }
}

void QuotaWatch::OnResume(const model::Plan& plan, const ledger::RunState& state) {
    const std::string& run_id = state.run_id;
    Watch(run_id, plan);
    if (state.cap_max_tokens() || state.cap_max_cost_nano_usd()) {
        RunWatch& capped = runs_[run_id];
        capped.workflow = plan.workflow_name;
        if (auto cap = state.cap_max_tokens()) Lower(capped.run.max_tokens, *cap);
        if (auto cap = state.cap_max_cost_nano_usd()) Lower(capped.run.max_nano_usd, *cap);
    }
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return;
    RunWatch& watch = it->second;
    if (StartsWith(plan.workflow_name, "agent:")) watch.agent = plan.workflow_name.substr(6);
    // What the run spent before; a budget already past 85 % was warned about then.
    auto resume = [](Budget& budget, int64_t tokens, int64_t nano_usd) {
        budget.tokens = tokens;
        budget.nano_usd = nano_usd;
        budget.warned_tokens = budget.max_tokens && Crossed(tokens, *budget.max_tokens);
        budget.warned_cost = budget.max_nano_usd && Crossed(nano_usd, *budget.max_nano_usd);
    };
    resume(watch.run, Add(state.tokens_in, state.tokens_out), state.cost_nano_usd);
    for (size_t i = 0; i < plan.nodes.size() && i < state.nodes.size(); ++i) {
        auto step = watch.steps.find(plan.nodes[i].id);
        if (step == watch.steps.end()) continue;
        resume(step->second, state.nodes[i].spent_tokens, state.nodes[i].spent_cost_nano_usd);
    }
}

void QuotaWatch::OnQuotaUse(const engine::QuotaUse& use) {
    if (!Crossed(use.used, use.limit)) return;
    auto [last, first] = hour_warned_.try_emplace(std::string(use.agent), use.time);
    if (!first) {
        if (use.time - last->second < std::chrono::hours(1)) return;
        last->second = use.time;
    }
    const std::string agent(use.agent);
    BusEvent out;
    out.id = std::string(use.run_id) + ":" + std::string(use.node) +
             ":quota_warning:agent_hour:tokens_per_hour:" + std::to_string(ToUnixMicros(use.time));
    out.kind = EventKind::kSystem;
    out.type = "quota_warning";
    out.run_id = std::string(use.run_id);
    out.agent = agent;
    out.subject = agent;
    out.depth = bus_.RunDepth(out.run_id);
    out.time = use.time;
    out.description = "Quota warning: agent '" + agent + "', tokens at " +
                      Percent(use.used, use.limit) + " (" + std::to_string(use.used) + " of " +
                      std::to_string(use.limit) +
                      " in the last hour, scope agent_hour, warned at " +
                      std::to_string(kQuotaWarningPercent) + "%)";
    bus_.Publish(std::move(out));
}

void QuotaWatch::Spend(const ledger::Event& event, RunWatch& watch, int64_t tokens,
                       int64_t nano_usd) {
    watch.run.tokens = Add(watch.run.tokens, tokens);
    watch.run.nano_usd = Add(watch.run.nano_usd, nano_usd);
    Check(event, watch, watch.run, "run", "");
    if (auto step = watch.steps.find(event.node); step != watch.steps.end()) {
        step->second.tokens = Add(step->second.tokens, tokens);
        step->second.nano_usd = Add(step->second.nano_usd, nano_usd);
        Check(event, watch, step->second, "step", event.node);
    }
}

void QuotaWatch::Check(const ledger::Event& event, const RunWatch& watch, Budget& budget,
                       const std::string& scope, const std::string& step) {
    struct Limit {
        const char* name;
        std::optional<int64_t> max;
        int64_t used;
        bool* warned;
        bool money;
    };
    const Limit limits[] = {
        {"tokens", budget.max_tokens, budget.tokens, &budget.warned_tokens, false},
        {"cost_usd", budget.max_nano_usd, budget.nano_usd, &budget.warned_cost, true},
    };
    for (const auto& limit : limits) {
        if (!limit.max || *limit.warned || !Crossed(limit.used, *limit.max)) continue;
        *limit.warned = true;
        BusEvent out;
        out.id = event.run_id + ":" + std::to_string(event.seq) + ":quota_warning:" + scope + ":" +
                 limit.name + (step.empty() ? std::string() : ":" + step);
        out.kind = EventKind::kSystem;
        out.type = "quota_warning";
        out.run_id = event.run_id;
        out.agent = watch.agent;
        out.subject = watch.agent.empty() ? event.run_id : watch.agent;
        out.depth = bus_.RunDepth(event.run_id);
        out.time = event.time;
        std::string who = !watch.agent.empty() ? "agent '" + watch.agent + "'"
                          : scope == "step"    ? "run " + event.run_id + ", step '" + step + "'"
                                               : "run " + event.run_id;
        std::string used = limit.money ? ledger::FormatUsd(limit.used) : std::to_string(limit.used);
        std::string max = limit.money ? ledger::FormatUsd(*limit.max) : std::to_string(*limit.max);
        out.description = "Quota warning: " + who + ", " + limit.name + " at " +
                          Percent(limit.used, *limit.max) + " (" + used + " of " + max +
                          ", scope " + scope + ", warned at " +
                          std::to_string(kQuotaWarningPercent) + "%)";
        bus_.Publish(std::move(out));
    }
}

}  // namespace strowger::automation
