#include "ledger/run_state.hpp"

#include <algorithm>

#include <array>
#include <variant>

#include "core/checked_math.hpp"
#include "core/overloaded.hpp"

namespace strowger::ledger {
namespace {

constexpr std::array<std::string_view, 8> kRunStatusNames = {
    "pending",   "running", "paused",    "waiting",
    "completed", "failed",  "cancelled", "needs_reconciliation",
};

ToolCallState* FindCall(TurnState& turn, std::string_view call_id) {
    for (auto& call : turn.calls) {
        if (call.call_id == call_id) return &call;
    }
    return nullptr;
}

}  // namespace

std::string_view RunStatusName(RunStatus status) {
    return kRunStatusNames[static_cast<size_t>(status)];
}

RunStatus RunStatusFromName(std::string_view name, bool* ok) {
    for (size_t i = 0; i < kRunStatusNames.size(); ++i) {
        if (kRunStatusNames[i] == name) {
            if (ok) *ok = true;
            return static_cast<RunStatus>(i);
        }
    }
    if (ok) *ok = false;
    return RunStatus::kPending;
}

bool IsTerminal(RunStatus status) {
    return status == RunStatus::kCompleted || status == RunStatus::kFailed ||
           status == RunStatus::kCancelled;
}

std::string_view NodeStatusName(NodeStatus status) {
    switch (status) {
        case NodeStatus::kPending:
            return "pending";
        case NodeStatus::kRunning:
            return "running";
        case NodeStatus::kRetryWaiting:
            return "retry_waiting";
        case NodeStatus::kCompleted:
            return "completed";
        case NodeStatus::kSkipped:
            return "skipped";
        case NodeStatus::kFailed:
            return "failed";
        case NodeStatus::kCancelled:
            return "cancelled";
        case NodeStatus::kWaiting:
            return "waiting";
    }
    return "pending";
}

HumanTask* RunState::FindTask(std::string_view task_id) {
    for (auto& task : tasks) {
        if (task.task_id == task_id) return &task;
    }
    return nullptr;
}

const HumanTask* RunState::FindTask(std::string_view task_id) const {
    for (const auto& task : tasks) {
        if (task.task_id == task_id) return &task;
    }
    return nullptr;
}

std::optional<SystemTime> RunState::WakeAt() const {
    std::optional<SystemTime> earliest;
    for (const auto& task : tasks) {
        if (!task.open() || !task.details || !task.details->due) continue;
        if (!earliest || *task.details->due < *earliest) earliest = *task.details->due;
    }
    return earliest;
}

size_t HumanTask::Approvals() const {
    std::vector<std::string_view> actors;
    for (const auto& d : decisions) {
        if (d.action != "approve") continue;
        if (std::find(actors.begin(), actors.end(), d.actor) == actors.end()) {
            actors.push_back(d.actor);
        }
    }
    return actors.size();
}

bool HumanTask::HasDecision(std::string_view idempotency_key) const {
    if (idempotency_key.empty()) return false;
    for (const auto& d : decisions) {
        if (d.idempotency_key == idempotency_key) return true;
    }
    return false;
}

std::vector<const HumanTask*> RunState::OpenTasks() const {
    std::vector<const HumanTask*> open;
    for (const auto& task : tasks) {
        if (task.open()) open.push_back(&task);
    }
    return open;
}

void RunState::CloseInFlightNodes() {
    for (auto& node : nodes) {
        if (node.status == NodeStatus::kRunning || node.status == NodeStatus::kRetryWaiting ||
            node.status == NodeStatus::kWaiting) {
            node.status = NodeStatus::kCancelled;
        }
    }
}

void RunState::Apply(SystemTime time, int node_index, const NewEvent& event) {
    updated_at = time;
    NodeState* node = node_index >= 0 && static_cast<size_t>(node_index) < nodes.size()
                          ? &nodes[static_cast<size_t>(node_index)]
                          : nullptr;
    std::visit(
        Overloaded{
            [&](const RunCreated& p) {
                workflow = p.workflow;
                definition_sha256 = p.definition_sha256;
                input = p.input;
                if (!p.idempotency_key.empty() || !p.rerun_of.empty()) {
                    notes.GetOrCreate().idempotency_key = p.idempotency_key;
                    notes.GetOrCreate().rerun_of = p.rerun_of;
                }
                if (p.max_tokens || p.max_cost_nano_usd) {
                    notes.GetOrCreate().cap_max_tokens = p.max_tokens;
                    notes.GetOrCreate().cap_max_cost_nano_usd = p.max_cost_nano_usd;
                }
                status = RunStatus::kPending;
                created_at = time;
            },
            [&](const RunStarted&) {
                if (started_at == SystemTime{}) started_at = time;
                status = RunStatus::kRunning;
            },
            [&](const RunResumed&) {
                if (started_at == SystemTime{}) started_at = time;
                status = RunStatus::kRunning;
                // A run resumed with a decision still open keeps waiting for it.
                for (const auto& task : tasks) {
                    if (!task.open()) continue;
                    status = task.kind == "reconciliation" ? RunStatus::kNeedsReconciliation
                                                           : RunStatus::kWaiting;
                }
            },
            [&](const RunPaused&) { status = RunStatus::kPaused; },
            [&](const RunCancelled& p) {
                CloseInFlightNodes();
                status = RunStatus::kCancelled;
                notes.GetOrCreate().cancel_reason = p.reason;
                ended_at = time;
            },
            [&](const RunCompleted& p) {
                status = RunStatus::kCompleted;
                output = p.output;
                ended_at = time;
            },
            [&](const RunFailed& p) {
                CloseInFlightNodes();
                status = RunStatus::kFailed;
                Notes& n = notes.GetOrCreate();
                n.error = p.error;
                n.error_code = p.code;
                n.failed_node = p.node;
                ended_at = time;
            },
            [&](const NodeStarted& p) {
                if (!node) return;
                node->status = NodeStatus::kRunning;
                node->attempt = event.attempt;
                if (p.iteration > 0 && p.iteration != node->iteration) {
                    node->iteration = p.iteration;
                    node->iteration_first_attempt = event.attempt;
                    node->failures_in_iteration = 0;
                }
                if (p.iteration > 0 && event.attempt > 1) {
                    int64_t& highest = node->notes.GetOrCreate().max_attempt;
                    highest = std::max(highest, event.attempt);
                }
                node->started_at = time;
                if (NodeNotes* node_notes = node->notes.get()) {
                    node_notes->error.clear();
                    node_notes->error_code.clear();
                    node_notes->waiting_task.clear();
                }
                node->turns.clear();
            },
            [&](const LlmRequest& p) {
                if (node && p.turn <= 1 && p.label.empty()) node->prompt = p.prompt;
            },
            [&](const LlmResponse& p) {
                // Saturating: counts are the provider's (checked when they arrive) or
                // a ledger's (which may have been written by anything).
                tokens_in = SaturatingAdd(tokens_in, p.tokens_in);
                tokens_out = SaturatingAdd(tokens_out, p.tokens_out);
                cost_nano_usd = SaturatingAdd(cost_nano_usd, p.cost_nano_usd);
                ++model_calls;
                if (!node) return;
                node->spent_tokens =
                    SaturatingAdd(node->spent_tokens, SaturatingAdd(p.tokens_in, p.tokens_out));
                node->spent_cost_nano_usd =
                    SaturatingAdd(node->spent_cost_nano_usd, p.cost_nano_usd);
                if (!p.label.empty()) {
                    // A call inside a typed node: its answer, kept for later attempts.
                    node->notes.GetOrCreate().answers.emplace_back(p.label, p.content);
                    return;
                }
                TurnState turn;
                turn.turn = p.turn;
                turn.content = p.content;
                turn.tokens_in = p.tokens_in;
                turn.tokens_out = p.tokens_out;
                for (const auto& call : p.tool_calls) {
                    ToolCallState state;
                    state.call_id = call.id;
                    state.tool = call.name;
                    state.arguments = call.arguments;
                    turn.calls.push_back(std::move(state));
                }
                node->turns.push_back(std::move(turn));
            },
            [&](const ToolCall& p) {
                ++tool_calls;
                if (!node) return;
                ++node->spent_tool_calls;
                if (node->turns.empty()) {
                    // A tool node's call: no model turn asked for it.
                    TurnState turn;
                    turn.turn = p.turn;
                    ToolCallState state;
                    state.call_id = p.call_id;
                    state.tool = p.tool;
                    state.arguments = p.arguments;
                    turn.calls.push_back(std::move(state));
                    node->turns.push_back(std::move(turn));
                }
                if (ToolCallState* call = FindCall(node->turns.back(), p.call_id)) {
                    call->started = true;
                    call->safety = p.safety;
                }
            },
            [&](const ToolResult& p) {
                if (!node || node->turns.empty()) return;
                if (ToolCallState* call = FindCall(node->turns.back(), p.call_id)) {
                    call->finished = true;
                    call->result = p.content;
                    call->is_error = p.is_error;
                }
            },
            [&](const HumanTaskCreated& p) {
                HumanTask task;
                task.task_id = p.task_id;
                task.kind = p.kind;
                task.node_index = node_index;
                task.title = p.title;
                task.call_id = p.call_id;
                task.tool = p.tool;
                task.arguments = p.arguments;
                task.details = p.details;
                task.created_at = time;
                tasks.push_back(std::move(task));
                status = p.kind == "reconciliation" ? RunStatus::kNeedsReconciliation
                                                    : RunStatus::kWaiting;
                if (!node) return;
                node->status = NodeStatus::kWaiting;
                node->notes.GetOrCreate().waiting_task = p.task_id;
                if (node->turns.empty()) return;
                if (ToolCallState* call = FindCall(node->turns.back(), p.call_id)) {
                    call->task_id = p.task_id;
                }
            },
            [&](const HumanTaskDecided& p) {
                if (HumanTask* task = FindTask(p.task_id)) {
                    if (task->kind == "task") {
                        if (task->HasDecision(p.idempotency_key)) return;
                        task->decisions.push_back(
                            {p.decision, p.actor, p.comment, p.idempotency_key, time});
                        if (p.decision == "progress") return;
                    }
                    task->decision = p.decision;
                    task->actor = p.actor;
                    task->comment = p.comment;
                    task->output = p.output;
                }
                if (OpenTasks().empty() &&
                    (status == RunStatus::kWaiting || status == RunStatus::kNeedsReconciliation)) {
                    status = RunStatus::kPending;  // ready to go on (run.resumed follows)
                }
            },
            [&](const BudgetExceeded&) {},
            [&](const LlmRetried&) {},
            [&](const HumanTaskCompleted& p) {
                if (HumanTask* task = FindTask(p.task_id)) {
                    task->completed = true;
                    task->signal = p.signal;
                    task->output = p.output;
                }
                if (OpenTasks().empty() && status == RunStatus::kWaiting) {
                    // Decided by an idle process: ready to go on (run.resumed follows);
                    // timed out inside the executing run: it goes on now.
                    status = p.reason == "timeout" ? RunStatus::kRunning : RunStatus::kPending;
                }
            },
            [&](const NodeSignal& p) {
                if (node) node->notes.GetOrCreate().signal = p.signal;
            },
            [&](const NodeCancelled& p) {
                if (!node) return;
                node->status = NodeStatus::kCancelled;
                node->notes.GetOrCreate().cancel_reason = p.reason;
            },
            [&](const RouterDecided&) {},
            [&](const ConditionEvaluated&) {},
            [&](const GateEvaluated&) {},
            [&](const MetricEvaluated&) {},
            [&](const SubworkflowStarted& p) {
                if (!node) return;
                NodeNotes& n = node->notes.GetOrCreate();
                NodeNotes::ChildCaps caps{p.max_tokens, p.max_cost_nano_usd};
                if (p.index < 0) {
                    n.child_run_id = p.child_run_id;
                    n.child_caps = caps;
                } else if (NodeNotes::ItemChild* c = n.ItemChildOf(p.index)) {
                    *c = {p.index, p.child_run_id, false, caps};
                } else {
                    n.item_children.push_back({p.index, p.child_run_id, false, caps});
                }
            },
            [&](const SessionCompacted&) {},
            [&](const SubworkflowEnded& p) {
                // The child's spending, charged to this run (once: the node is marked).
                tokens_in = SaturatingAdd(tokens_in, p.tokens_in);
                tokens_out = SaturatingAdd(tokens_out, p.tokens_out);
                cost_nano_usd = SaturatingAdd(cost_nano_usd, p.cost_nano_usd);
                if (!node) return;
                node->spent_tokens =
                    SaturatingAdd(node->spent_tokens, SaturatingAdd(p.tokens_in, p.tokens_out));
                node->spent_cost_nano_usd =
                    SaturatingAdd(node->spent_cost_nano_usd, p.cost_nano_usd);
                NodeNotes& n = node->notes.GetOrCreate();
                if (p.index < 0) {
                    n.child_charged = true;
                } else if (NodeNotes::ItemChild* c = n.ItemChildOf(p.index)) {
                    c->charged = true;
                }
            },
            [&](const ItemCompleted& p) {
                if (!node) return;
                NodeNotes& n = node->notes.GetOrCreate();
                n.items.push_back({p.index, p.failed ? p.error : p.output, p.failed});
            },
            [&](const NodeIterationCompleted& p) {
                if (!node) return;
                node->iterations_done = p.iteration;
                node->output = p.output;
                node->tokens_in = SaturatingAdd(node->tokens_in, p.tokens_in);
                node->tokens_out = SaturatingAdd(node->tokens_out, p.tokens_out);
                node->duration_ms = SaturatingAdd(node->duration_ms, p.duration_ms);
                ReserveSteps();
                steps.push_back(StepResult{
                    node_index, event.node + " (iter " + std::to_string(p.iteration) + ")",
                    node->prompt, p.output, p.tokens_in, p.tokens_out, p.duration_ms,
                    node->AttemptsInIteration()});
            },
            [&](const NodeCompleted& p) {
                if (!node) return;
                bool had_model_call = !node->prompt.empty();
                node->status = NodeStatus::kCompleted;
                node->output = p.output;
                if (!p.signal.empty()) node->notes.GetOrCreate().signal = p.signal;
                if (p.iterations == 0) {
                    node->tokens_in = p.tokens_in;
                    node->tokens_out = p.tokens_out;
                    node->duration_ms = p.duration_ms;
                    if (had_model_call) {
                        ReserveSteps();
                        steps.push_back(StepResult{node_index, event.node, node->prompt, p.output,
                                                   p.tokens_in, p.tokens_out, p.duration_ms,
                                                   node->AttemptsInIteration()});
                    }
                }
            },
            [&](const NodeRetryScheduled& p) {
                if (!node) return;
                node->status = NodeStatus::kRetryWaiting;
                ++node->failures_in_iteration;
                NodeNotes& node_notes = node->notes.GetOrCreate();
                node_notes.retry_due = p.due;
                node_notes.error = p.error;
                node_notes.error_code = p.code;
            },
            [&](const NodeFailed& p) {
                if (!node) return;
                node->status = NodeStatus::kFailed;
                NodeNotes& node_notes = node->notes.GetOrCreate();
                node_notes.error = p.error;
                node_notes.error_code = p.code;
            },
            [&](const NodeSkipped& p) {
                if (!node) return;
                node->status = NodeStatus::kSkipped;
                NodeNotes& node_notes = node->notes.GetOrCreate();
                node_notes.skip_reason = p.reason;
                if (!p.error.empty()) node_notes.error = p.error;
            },
            [&](const RunRetried& p) {
                status = RunStatus::kPending;
                if (Notes* n = notes.get()) {
                    n->error.clear();
                    n->error_code.clear();
                    n->failed_node.clear();
                    n->cancel_reason.clear();
                }
                output.clear();
                ended_at = {};
                for (const auto& name : p.cleared) {
                    int index = -1;
                    if (node_names) {
                        for (size_t i = 0; i < node_names->size(); ++i) {
                            if ((*node_names)[i] == name) index = static_cast<int>(i);
                        }
                    }
                    if (index < 0) continue;
                    NodeState& cleared = nodes[static_cast<size_t>(index)];
                    NodeState fresh;
                    fresh.attempt = cleared.attempt;  // attempt numbers never repeat
                    // A loop starts again at iteration 1, its attempts past every earlier one
                    // (whichever iteration had it; also a loop reopened before it started
                    // again keeps the base it had).
                    const NodeNotes* old_notes = cleared.notes.get();
                    const int64_t base = old_notes ? old_notes->attempt_base : 0;
                    const int64_t highest =
                        cleared.iteration > 0
                            ? std::max({base, cleared.attempt,
                                        old_notes ? old_notes->max_attempt : int64_t{0}})
                            : base;
                    if (highest > 0) fresh.notes.GetOrCreate().attempt_base = highest;
                    cleared = std::move(fresh);
                    std::erase_if(steps,
                                  [&](const StepResult& r) { return r.node_index == index; });
                }
            },
            [&](const UnknownPayload&) {},
        },
        event.payload);
}

}  // namespace strowger::ledger
