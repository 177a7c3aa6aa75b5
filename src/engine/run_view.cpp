#include "engine/run_view.hpp"

#include <boost/json.hpp>

#include <algorithm>

#include "ledger/event.hpp"

namespace strowger::engine {
namespace {

json::value TimeOrNull(SystemTime time) {
    if (time == SystemTime{}) return nullptr;
    return json::string(FormatRfc3339(time));
}

}  // namespace

int64_t MillisBetween(SystemTime from, SystemTime to) {
    if (from == SystemTime{} || to == SystemTime{}) return 0;
    return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

json::object RunRecordJson(const model::Plan* plan, const ledger::RunState& state) {
    json::object run;
    run["run_id"] = state.run_id;
    run["workflow"] = state.workflow;
    run["status"] = std::string(ledger::RunStatusName(state.status));
    run["definition_sha256"] = state.definition_sha256;
    run["input"] = state.input;
    run["output"] =
        ledger::IsTerminal(state.status) && state.status == ledger::RunStatus::kCompleted
            ? json::value(state.output)
            : json::value(nullptr);
    run["error"] = state.error().empty() ? json::value(nullptr) : json::value(state.error());
    if (!state.idempotency_key().empty()) run["idempotency_key"] = state.idempotency_key();
    if (!state.rerun_of().empty()) run["rerun_of"] = state.rerun_of();
    run["created_at"] = TimeOrNull(state.created_at);
    run["started_at"] = TimeOrNull(state.started_at);
    run["completed_at"] = TimeOrNull(state.ended_at);
    run["duration_ms"] = MillisBetween(state.started_at, state.ended_at);
    run["input_tokens"] = state.tokens_in;
    run["output_tokens"] = state.tokens_out;
    run["cost_usd"] = ledger::FormatUsd(state.cost_nano_usd);
    run["model_calls"] = state.model_calls;
    json::array models;  // the plan's agents' models, each once, in the order agents are written
    if (plan) {
        std::vector<std::string_view> seen;
        for (const auto& agent : plan->agents) {
            if (agent.model.empty() || std::ranges::find(seen, agent.model) != seen.end()) continue;
            seen.push_back(agent.model);
            models.emplace_back(agent.model);
        }
    }
    run["models"] = std::move(models);
    run["events"] = state.head.seq;

    // In step order, as LibreFang reports a fan-out group (join_all keeps the order of the
    // steps, whichever finishes first); a loop's iterations stay in iteration order.
    std::vector<const ledger::StepResult*> ordered;
    for (const auto& step : state.steps) ordered.push_back(&step);
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const auto* a, const auto* b) { return a->node_index < b->node_index; });
    json::array steps;
    for (const auto* step_ptr : ordered) {
        const auto& step = *step_ptr;
        json::object s;
        s["step_name"] = step.step_name;
        if (plan && step.node_index >= 0) {
            const auto& node = plan->nodes[static_cast<size_t>(step.node_index)];
            if (const auto* agent = plan->AgentOf(node)) {
                s["agent_name"] = agent->name;
                if (!agent->id.empty()) s["agent_id"] = agent->id;
            }
        }
        s["prompt"] = step.prompt;
        s["output"] = step.output;
        s["input_tokens"] = step.input_tokens;
        s["output_tokens"] = step.output_tokens;
        s["duration_ms"] = step.duration_ms;
        s["attempts"] = step.attempts;
        steps.push_back(std::move(s));
    }
    run["step_results"] = std::move(steps);

    json::array nodes;
    for (size_t i = 0; i < state.nodes.size(); ++i) {
        const auto& ns = state.nodes[i];
        json::object n;
        if (plan) n["id"] = plan->nodes[i].id;
        n["status"] = std::string(ledger::NodeStatusName(ns.status));
        // A loop's attempts are the tries of its last iteration (its iterations are not retries).
        n["attempts"] = ns.AttemptsInIteration();
        if (ns.iterations_done > 0) n["iterations"] = ns.iterations_done;
        if (!ns.error().empty()) n["error"] = ns.error();
        if (!ns.skip_reason().empty()) n["skip_reason"] = ns.skip_reason();
        if (plan && plan->dag) n["type"] = plan->nodes[i].type_name;
        if (!ns.signal().empty()) n["signal"] = ns.signal();
        if (ns.notes.get() && !ns.notes.get()->child_run_id.empty()) {
            n["child_run"] = ns.notes.get()->child_run_id;  // a subworkflow's child run
        }
        nodes.push_back(std::move(n));
    }
    run["nodes"] = std::move(nodes);
    // CMDC's structured error for a failed DAG run: the node, why, and what completed.
    if (plan && plan->dag && state.status == ledger::RunStatus::kFailed) {
        json::object failure;
        failure["node_id"] = state.failed_node();
        std::string reason = state.error();
        if (auto cut = reason.find("' failed: "); cut != std::string::npos) {
            reason = reason.substr(cut + 10);
        }
        failure["reason"] = reason;
        json::object completed;
        for (size_t i = 0; i < state.nodes.size(); ++i) {
            if (state.nodes[i].status == ledger::NodeStatus::kCompleted) {
                completed[plan->nodes[i].id] = state.nodes[i].output;
            }
        }
        failure["completed"] = std::move(completed);
        run["failure"] = std::move(failure);
    }
    return run;
}

}  // namespace strowger::engine
