// The DAG form in the run's actor (docs/design/dag.md): which edges carry, which nodes are
// ready or pruned, joins, typed nodes' attempts and policies, and NodeRun — what a node type
// sees of its run. Run stays the scheduler and owner of state; node types are in nodes/.
#include <boost/asio/as_tuple.hpp>
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/checked_math.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine/backoff.hpp"
#include "engine/internal/run.hpp"
#include "engine/nodes/join.hpp"

namespace strowger::engine::internal {

using ledger::NodeStatus;
using model::PlanNode;

namespace {

// A field of a JSON text: "" path is the text itself; a string field is its string, any
// other value its compact JSON. nullopt if the text is not JSON or has no such field.
std::optional<std::string> FieldOf(std::string_view text, const std::vector<std::string>& path) {
    if (path.empty()) return std::string(text);
    auto parsed = ParseJson(text);
    if (!parsed) return std::nullopt;
    const json::value* at = &*parsed;
    for (const auto& field : path) {
        if (at->is_object()) {
            at = at->get_object().if_contains(field);
        } else if (at->is_array()) {
            size_t index = 0;
            auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), index);
            if (ec != std::errc() || end != field.data() + field.size() ||
                index >= at->get_array().size()) {
                return std::nullopt;
            }
            at = &at->get_array()[index];
        } else {
            return std::nullopt;
        }
        if (at == nullptr) return std::nullopt;
    }
    return JsonText(*at);
}

}  // namespace

// ---- Templates ----------------------------------------------------------------------------

std::string Run::RenderTemplate(const model::Template& text, std::string_view input,
                                const std::map<std::string, std::string>* extras) const {
    using Kind = model::Template::Segment::Kind;
    std::string scratch;  // a field's value, for the lookup's view
    return text.Render(
        [&](const model::Template::Segment& segment) -> std::optional<std::string_view> {
            std::optional<std::string_view> whole;
            switch (segment.kind) {
                case Kind::kInput:
                    whole = input;
                    break;
                case Kind::kRunInput:
                    whole = state_.input;
                    break;
                case Kind::kNode: {
                    const auto& s = state_.nodes[static_cast<size_t>(segment.node)];
                    if (s.status == NodeStatus::kCompleted) whole = s.output;
                    break;
                }
                case Kind::kVariable:
                    for (int source : segment.sources) {
                        const auto& s = state_.nodes[static_cast<size_t>(source)];
                        if (s.status == NodeStatus::kCompleted) {
                            whole = s.output;
                            break;
                        }
                    }
                    break;
                case Kind::kExtra:
                    if (extras != nullptr) {
                        if (auto it = extras->find(segment.text); it != extras->end()) {
                            whole = it->second;
                        }
                    }
                    break;
                case Kind::kLiteral:
                    break;
            }
            // The linear form leaves what has no value as written (LibreFang); in the DAG form a
            // node that did not run, or a field that is not there, is empty.
            const auto missing = [&]() -> std::optional<std::string_view> {
                if (plan_.dag) return std::string_view();
                return std::nullopt;
            };
            if (!whole) return missing();
            if (segment.path.empty()) return whole;
            auto field = FieldOf(*whole, segment.path);
            if (!field) return missing();
            scratch = std::move(*field);
            return std::string_view(scratch);
        });
}

// ---- Edges and readiness ------------------------------------------------------------------

EdgeState Run::EdgeStateOf(int edge) const {
    const model::PlanEdge& e = plan_.edges[static_cast<size_t>(edge)];
    const auto& source = state_.nodes[static_cast<size_t>(e.from)];
    switch (source.status) {
        case NodeStatus::kCompleted:
            return e.label.empty() || e.label == source.signal() ? EdgeState::kCarries
                                                                 : EdgeState::kDead;
        case NodeStatus::kSkipped:
        case NodeStatus::kCancelled:
        case NodeStatus::kFailed:
            return EdgeState::kDead;
        default:
            return EdgeState::kPending;
    }
}

bool Run::Pruned(const PlanNode& node) const {
    if (!plan_.dag || node.in_edges.empty()) return false;
    for (int e : node.in_edges) {
        if (EdgeStateOf(e) != EdgeState::kDead) return false;
    }
    return true;
}

namespace {

// The join's branches, counted from its incoming edges.
nodes::JoinCounts CountBranches(const model::Plan& plan, const ledger::RunState& state,
                                const PlanNode& join,
                                const std::function<EdgeState(int)>& edge_state) {
    nodes::JoinCounts counts;
    for (int e : join.in_edges) {
        ++counts.total;
        const int from = plan.edges[static_cast<size_t>(e)].from;
        const int branch = plan.nodes[static_cast<size_t>(from)].branch;
        bool branch_failed = false;
        for (const auto& member : plan.nodes) {
            if (member.fork == join.join && member.branch == branch && branch >= 0 &&
                state.nodes[static_cast<size_t>(member.index)].status == NodeStatus::kFailed) {
                branch_failed = true;
            }
        }
        switch (edge_state(e)) {
            case EdgeState::kCarries:
                ++counts.carried;
                break;
            case EdgeState::kDead:
                ++(branch_failed ? counts.failed : counts.dead);
                break;
            case EdgeState::kPending:
                // A failure inside the branch settles it before its end node knows.
                ++(branch_failed ? counts.failed : counts.pending);
                break;
        }
    }
    return counts;
}

}  // namespace

bool Run::DagReady(const PlanNode& node) const {
    const auto& s = state_.nodes[static_cast<size_t>(node.index)];
    if (ledger::IsFinished(s.status) || in_flight_[static_cast<size_t>(node.index)]) return false;
    if (WaitsForHuman(node)) return false;
    if (node.type != nullptr && node.type->IsJoin() && node.config) {
        auto counts = CountBranches(plan_, state_, node, [&](int e) { return EdgeStateOf(e); });
        return nodes::DecideJoin(*node.config, counts, nullptr) != nodes::JoinVerdict::kWait;
    }
    for (int e : node.in_edges) {
        if (EdgeStateOf(e) == EdgeState::kPending) return false;
    }
    return true;
}

std::string Run::DagInput(const PlanNode& node) const {
    if (node.in_edges.empty()) return state_.input;
    std::string joined;
    int count = 0;
    for (int e : node.in_edges) {
        if (EdgeStateOf(e) != EdgeState::kCarries) continue;
        if (count++ > 0) joined += model::kCollectSeparator;
        joined +=
            state_.nodes[static_cast<size_t>(plan_.edges[static_cast<size_t>(e)].from)].output;
    }
    return joined;
}

std::string Run::DagOutput() const {
    json::object outputs;
    for (int sink : plan_.sinks) {
        const auto& s = state_.nodes[static_cast<size_t>(sink)];
        if (s.status != NodeStatus::kCompleted) continue;
        auto parsed = ParseJson(s.output);
        outputs[plan_.nodes[static_cast<size_t>(sink)].id] =
            parsed && (parsed->is_object() || parsed->is_array()) ? *parsed : json::value(s.output);
    }
    auto text = CanonicalJson(outputs);
    return text ? *text : json::serialize(outputs);
}

// ---- Joins cancelling branches ------------------------------------------------------------

void Run::CancelBranches(const PlanNode& join) {
    for (const auto& member : plan_.nodes) {
        if (member.fork != join.join) continue;
        const auto& s = state_.nodes[static_cast<size_t>(member.index)];
        if (ledger::IsFinished(s.status)) continue;
        if (in_flight_[static_cast<size_t>(member.index)]) {
            join_cancelled_[static_cast<size_t>(member.index)] = true;
            in_flight_[static_cast<size_t>(member.index)]->Interrupt();
        } else if (s.status != NodeStatus::kPending) {
            // Waiting for a retry or a human: stopped where it is.
            join_cancelled_[static_cast<size_t>(member.index)] = true;
        }
    }
}

Awaitable<bool> Run::SettleDag() {
    for (const auto& node : plan_.nodes) {
        const auto i = static_cast<size_t>(node.index);
        if (!join_cancelled_[i] || in_flight_[i]) continue;
        if (ledger::IsFinished(state_.nodes[i].status)) {
            join_cancelled_[i] = false;
            continue;
        }
        std::vector<ledger::NewEvent> events;
        const PlanNode& fork = plan_.nodes[static_cast<size_t>(node.fork)];
        const PlanNode& join = plan_.nodes[static_cast<size_t>(fork.join)];
        events.push_back({node.id, state_.nodes[i].attempt,
                          ledger::NodeCancelled{"cancelled by join " + join.id}});
        join_cancelled_[i] = false;
        if (!co_await Append(std::move(events), node.index)) co_return false;
    }
    co_return true;
}

// ---- Failures by policy -------------------------------------------------------------------

Run::Step Run::DagFailure(const PlanNode& node, const Error& error, std::string message) {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    const int64_t attempt = ns.attempt;
    const std::string code(ErrorCodeName(error.code()));
    Step step;
    ledger::NodeCompleted completed;
    completed.output = "";
    switch (node.on_error) {
        case model::OnError::kFail:
            step.events.push_back({node.id, attempt, ledger::NodeFailed{std::move(message), code}});
            step.result = NodeResult::kFailed;
            return step;
        case model::OnError::kSkip:
            step.events.push_back({node.id, attempt, ledger::NodeSkipped{"error", message}});
            step.result = NodeResult::kSkipped;
            return step;
        case model::OnError::kContinue:
            step.events.push_back({node.id, attempt, ledger::NodeSignal{"", message}});
            break;
        case model::OnError::kFallback:
            completed.output = node.fallback_output;
            step.events.push_back({node.id, attempt, ledger::NodeSignal{"", message}});
            break;
        case model::OnError::kEmitSignal:
            completed.signal = node.error_signal;
            step.events.push_back(
                {node.id, attempt, ledger::NodeSignal{node.error_signal, message}});
            break;
    }
    step.events.push_back({node.id, attempt, std::move(completed)});
    step.result = NodeResult::kCompleted;
    return step;
}

// ---- NodeRun ------------------------------------------------------------------------------

Run::ChildHold::ChildHold(Run& run, int index, const ledger::NodeNotes::ChildCaps& caps)
    : run_(run), index_(index) {
    if (!caps.max_tokens && !caps.max_cost_nano_usd) return;
    held_ = true;
    tokens_ = caps.max_tokens.value_or(0);
    nano_usd_ = caps.max_cost_nano_usd.value_or(0);
    Notes& notes = run_.notes();
    notes.reserved_tokens = SaturatingAdd(notes.reserved_tokens, tokens_);
    notes.reserved_nano_usd = SaturatingAdd(notes.reserved_nano_usd, nano_usd_);
    notes.holding.push_back(index_);
}

Run::ChildHold::~ChildHold() {
    if (!held_) return;
    Notes& notes = run_.notes();
    notes.reserved_tokens -= tokens_;
    notes.reserved_nano_usd -= nano_usd_;
    auto it = std::find(notes.holding.begin(), notes.holding.end(), index_);
    if (it != notes.holding.end()) notes.holding.erase(it);
}

int64_t Run::ChildrenHolding(int index) const {
    if (!notes_) return 0;
    return std::count(notes_->holding.begin(), notes_->holding.end(), index);
}

class Run::TypedNodeRun final : public NodeRun {
  public:
    TypedNodeRun(Run& run, int index, std::shared_ptr<Task> task)
        : run_(run), index_(index), task_(std::move(task)) {}

    const model::Plan& plan() const override { return run_.plan_; }
    const PlanNode& node() const override { return run_.plan_.nodes[static_cast<size_t>(index_)]; }
    int64_t attempt() const override { return state().attempt; }
    const ledger::NodeState& state() const override {
        return run_.state_.nodes[static_cast<size_t>(index_)];
    }
    const ledger::RunState& run_state() const override { return run_.state_; }

    std::vector<Upstream> Upstreams() const override {
        std::vector<Upstream> out;
        for (int e : node().in_edges) {
            if (run_.EdgeStateOf(e) != EdgeState::kCarries) continue;
            int from = run_.plan_.edges[static_cast<size_t>(e)].from;
            out.push_back({from, run_.plan_.nodes[static_cast<size_t>(from)].id,
                           run_.state_.nodes[static_cast<size_t>(from)].output});
        }
        return out;
    }
    std::string Input() const override { return run_.DagInput(node()); }
    const std::string& RunInput() const override { return run_.state_.input; }
    std::string OutputOf(int index) const override {
        const auto& s = run_.state_.nodes[static_cast<size_t>(index)];
        return s.status == NodeStatus::kCompleted ? s.output : std::string();
    }
    std::string Render(const model::Template& text,
                       const std::map<std::string, std::string>& extras) const override {
        return run_.RenderTemplate(text, Input(), &extras);
    }

    Awaitable<bool> Record(std::vector<ledger::Payload> payloads) override {
        std::vector<ledger::NewEvent> events;
        events.reserve(payloads.size());
        for (auto& payload : payloads) {
            events.push_back({node().id, attempt(), std::move(payload)});
        }
        if (!co_await run_.Append(std::move(events), index_)) co_return false;
        co_return !run_.NodeStopped(index_);
    }

    Awaitable<Result<std::string>> Ask(int agent, std::string label, std::string prompt) override {
        co_return co_await run_.AskAgent(index_, agent, std::move(label), std::move(prompt),
                                         task_->deadline);
    }

    Awaitable<NodeOutcome> CallTool(std::string name, std::string arguments,
                                    bool require_approval) override {
        const PlanNode& n = node();
        auto resolved = co_await run_.engine_->ToolNamed(run_.runtime_, name);
        if (!resolved) co_return NodeOutcome::Failed(resolved.error());
        const std::string call_id = "1";
        const std::string suffix = "/" + std::to_string(attempt()) + "/1";
        if (require_approval || resolved->require_approval) {
            const std::string task_id = n.id + suffix;
            const ledger::HumanTask* task = run_.state_.FindTask(task_id);
            if (task == nullptr) {
                std::vector<ledger::Payload> ask;
                ask.push_back(ledger::HumanTaskCreated{task_id, "tool_approval",
                                                       "Node " + n.id + " wants to call " + name,
                                                       call_id, name, arguments});
                if (!co_await Record(std::move(ask))) co_return NodeOutcome::Stopped();
                co_return NodeOutcome::Waiting();
            }
            if (task->open()) co_return NodeOutcome::Waiting();
            if (task->decision == "reject") {
                co_return NodeOutcome::Failed(
                    Error(ErrorCode::kPermissionDenied,
                          "a human rejected the call of " + name + " (" + task->actor +
                              (task->comment.empty() ? ")" : ": " + task->comment + ")"),
                          ErrorDetails{0, -1, -1, "rejected"}));
            }
        }
        if (const auto& max = run_.plan_.limits.max_tool_calls;
            max && run_.state_.tool_calls + 1 > *max) {
            co_return NodeOutcome::Failed(Error(ErrorCode::kResourceExhausted,
                                                "budget exceeded: run tool_calls " +
                                                    std::to_string(run_.state_.tool_calls + 1) +
                                                    " > " + std::to_string(*max),
                                                ErrorDetails{0, -1, -1, "budget_exceeded"}));
        }
        // Arguments holding a secret would run with what the ledger does not show (it is
        // redacted there): refused, as an agent's call is.
        if (HaveSecrets() && ContainsSecret(arguments)) {
            std::vector<ledger::Payload> refused;
            refused.push_back(ledger::ToolResult{
                call_id, "error: the arguments contain a secret value; the call was refused", true,
                0});
            if (!co_await Record(std::move(refused))) co_return NodeOutcome::Stopped();
            co_return NodeOutcome::Failed(
                Error(ErrorCode::kPermissionDenied,
                      "tool " + name +
                          ": the arguments contain a secret value (a registered "
                          "key or a match of a secret pattern); the call was refused",
                      ErrorDetails{0, -1, -1, "secret_in_arguments"}));
        }
        const std::string key = run_.state_.run_id + "/" + n.id + suffix;
        {
            std::vector<ledger::Payload> call;
            call.push_back(ledger::ToolCall{call_id, name, arguments, key,
                                            std::string(tools::SafetyClassName(resolved->safety)),
                                            1});
            if (!co_await Record(std::move(call))) co_return NodeOutcome::Stopped();
        }
        tools::ToolContext context;
        context.run_id = run_.state_.run_id;
        context.node = n.id;
        context.attempt = attempt();
        context.call_index = 1;
        context.idempotency_key = key;
        context.workspace = run_.Workspace();
        context.deadline = task_->deadline;
        context.grants = run_.engine_->DefaultGrants();
        const auto started = std::chrono::steady_clock::now();
        auto result = co_await resolved->tool->Call(std::move(arguments), std::move(context));
        // Stopped or timed out: the call stays unfinished in this attempt (as an agent's).
        if (run_.NodeStopped(index_)) co_return NodeOutcome::Stopped();
        if (task_->timed_out)
            co_return NodeOutcome::Failed(Error(ErrorCode::kDeadlineExceeded, "timed out"));
        ledger::ToolResult recorded;
        recorded.call_id = call_id;
        recorded.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count();
        if (result) {
            recorded.content = ToValidUtf8(result->content);
            recorded.is_error = result->is_error;
        } else {
            recorded.content = "error: " + result.error().message();
            recorded.is_error = true;
        }
        std::string content = recorded.content;
        const bool failed = recorded.is_error;
        {
            std::vector<ledger::Payload> done;
            done.push_back(std::move(recorded));
            if (!co_await Record(std::move(done))) co_return NodeOutcome::Stopped();
        }
        if (!result) {
            co_return NodeOutcome::Failed(result.error().WithPrefix("tool " + name + ": "));
        }
        if (failed) {
            co_return NodeOutcome::Failed(Error(
                ErrorCode::kAborted, "tool " + name + " failed: " + CapForMessage(content, 500),
                ErrorDetails{0, -1, -1, "tool_failed"}));
        }
        co_return NodeOutcome::Completed(std::move(content));
    }

    Awaitable<Result<ChildResult>> RunChild(std::shared_ptr<const model::Plan> plan,
                                            std::string input, int64_t item,
                                            int64_t slots) override {
        // The child recorded for this node (or this item), if any: its id, its caps, and
        // whether it was charged.
        struct Recorded {
            std::string id;
            ledger::NodeNotes::ChildCaps caps;
            bool charged = false;
        };
        auto recorded = [this, item]() -> Recorded {
            const ledger::NodeNotes* notes = state().notes.get();
            if (notes == nullptr) return {};
            if (item < 0) return {notes->child_run_id, notes->child_caps, notes->child_charged};
            const auto* child = notes->ItemChildOf(item);
            return child ? Recorded{child->child_run_id, child->caps, child->charged} : Recorded{};
        };
        Recorded before = recorded();
        std::string child_id = before.id;
        ledger::NodeNotes::ChildCaps caps = before.caps;
        const auto budget = run_.Budget();  // less what children in flight hold
        const auto& rs = run_.state_;
        const int64_t tokens_used = SaturatingAdd(rs.tokens_in, rs.tokens_out);
        if (child_id.empty()) {
            // The parent's budgets bound the child: some must be left (not spent, not held).
            if ((budget.max_tokens && tokens_used >= *budget.max_tokens) ||
                (budget.max_cost_nano_usd && rs.cost_nano_usd >= *budget.max_cost_nano_usd)) {
                co_return std::unexpected(Error(ErrorCode::kResourceExhausted,
                                                "budget exceeded: the run's budget is spent",
                                                ErrorDetails{0, -1, -1, "budget_exceeded"}));
            }
            // An equal share among the node's children that run together: what is free,
            // split among the slots not yet holding a share.
            const int64_t share = std::max<int64_t>(1, slots - run_.ChildrenHolding(index_));
            if (budget.max_tokens) caps.max_tokens = (*budget.max_tokens - tokens_used) / share;
            if (budget.max_cost_nano_usd) {
                caps.max_cost_nano_usd = (*budget.max_cost_nano_usd - rs.cost_nano_usd) / share;
            }
        }
        // Held from here (before the record's commit, so children started together see each
        // other's) until this returns, after the child's spending is charged.
        ChildHold hold(run_, index_, caps);
        if (child_id.empty()) {
            child_id = NewRunId(run_.engine_->clock_, run_.engine_->random_);
            ledger::SubworkflowStarted event{child_id, plan->workflow_name, plan->definition_sha256,
                                             item};
            event.max_tokens = caps.max_tokens;
            event.max_cost_nano_usd = caps.max_cost_nano_usd;
            std::vector<ledger::Payload> started;
            started.push_back(std::move(event));
            if (!co_await Record(std::move(started))) {
                co_return CancelledError("the run is stopping");
            }
        }
        StartRequest request;
        request.plan = std::move(plan);
        request.input = std::move(input);
        request.run_id = child_id;
        request.parent_run = run_.state_.run_id;
        request.parent_node = node().id;
        // The caps go into the child's run.created (used only if the child is created now;
        // a re-attached child keeps the caps it was created with). A child recorded before
        // caps were recorded gets what this run has left, as then.
        request.max_tokens = caps.max_tokens;
        request.max_cost_nano_usd = caps.max_cost_nano_usd;
        if (!caps.max_tokens && budget.max_tokens) {
            request.max_tokens = std::max<int64_t>(0, *budget.max_tokens - tokens_used);
        }
        if (!caps.max_cost_nano_usd && budget.max_cost_nano_usd) {
            request.max_cost_nano_usd =
                std::max<int64_t>(0, *budget.max_cost_nano_usd - rs.cost_nano_usd);
        }
        auto outcome = co_await run_.engine_->RunChild(std::move(request));
        if (run_.NodeStopped(index_)) co_return CancelledError("the run is stopping");
        if (!outcome) co_return std::unexpected(outcome.error());
        if (ledger::IsTerminal(outcome->status) && !recorded().charged) {
            // What the child spent is this run's spending too: charged once, in the ledger.
            std::vector<ledger::Payload> ended;
            ended.push_back(ledger::SubworkflowEnded{
                child_id, std::string(ledger::RunStatusName(outcome->status)), outcome->tokens_in,
                outcome->tokens_out, outcome->cost_nano_usd, item});
            if (!co_await Record(std::move(ended))) co_return CancelledError("the run is stopping");
        }
        ChildResult result;
        result.run_id = child_id;
        result.status = outcome->status;
        result.output = std::move(outcome->output);
        result.error = std::move(outcome->error);
        co_return result;
    }

    Awaitable<bool> ArmTimer(SystemTime due) override {
        auto set = co_await run_.engine_->store_->SetWakeAt(run_.state_.run_id, due);
        if (!set) {
            run_.store_failed_ = true;
            run_.notes().store_error = set.error();
            co_return false;
        }
        co_return true;
    }

    Random& random() override { return run_.engine_->random_; }
    SystemTime Now() const override { return run_.engine_->clock_.Now(); }

  private:
    Run& run_;
    int index_;
    std::shared_ptr<Task> task_;
};

// ---- Typed nodes --------------------------------------------------------------------------

namespace {

bool WaitsOnReconciliationIn(const ledger::RunState& state, const ledger::NodeState& ns) {
    const ledger::HumanTask* task = state.FindTask(ns.waiting_task());
    return task != nullptr && task->kind == "reconciliation";
}

}  // namespace

Awaitable<Run::NodeResult> Run::ExecuteTyped(int index, std::shared_ptr<Task> task) {
    co_await asio::this_coro::throw_if_cancelled(false);
    const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
    const ledger::NodeState& ns = state_.nodes[static_cast<size_t>(index)];
    if (WaitsForHuman(node)) co_return NodeResult::kWaiting;
    if (ns.status == NodeStatus::kPending && Pruned(node)) {
        std::vector<ledger::NewEvent> pruned;
        pruned.push_back({node.id, 0, ledger::NodeSkipped{"pruned", {}}});
        if (!co_await Append(std::move(pruned), index)) co_return NodeResult::kStoreError;
        co_return NodeResult::kSkipped;
    }
    const NodeType& type = AsNodeType(*node.type);
    while (true) {  // attempts
        if (ns.status == NodeStatus::kRetryWaiting) {
            if (!co_await SleepUntil(ns.retry_due())) co_return NodeResult::kCancelled;
            co_await asio::this_coro::reset_cancellation_state();
        }
        if (NodeStopped(index)) co_return NodeResult::kCancelled;
        // Interrupted after a tool call (a tool node), or back from a reconciliation: as for
        // an agent (Prologue).
        if (ns.status == NodeStatus::kRunning || ns.status == NodeStatus::kWaiting) {
            if (std::unique_ptr<Step> early = PrologueStep(node)) {
                NodeResult result = early->result;
                if (!co_await Append(std::move(early->events), index))
                    co_return NodeResult::kStoreError;
                if (result == NodeResult::kFailed) FailRun(node);
                co_return result;
            }
        }
        // A node back from waiting for a human goes on with the same attempt (an approved
        // reconciliation excepted); anything else (a crash mid-attempt included: its labelled
        // calls are answered from the ledger, so what finished is not done again) starts a
        // new one.
        if (ns.status != NodeStatus::kWaiting || WaitsOnReconciliationIn(state_, ns)) {
            std::vector<ledger::NewEvent> start;
            start.push_back({node.id, ns.attempt + 1, ledger::NodeStarted{0}});
            if (!co_await Append(std::move(start), index)) co_return NodeResult::kStoreError;
        }
        if (NodeStopped(index)) co_return NodeResult::kCancelled;
        task->deadline = Deadline::After(std::chrono::milliseconds(node.timeout_ms));
        // The attempt's timeout interrupts whatever the type awaits.
        task->in_call = true;
        task->timed_out = false;
        engine_->timeouts_.Arm(task->timeout, task->deadline.time(),
                               std::chrono::milliseconds(node.timeout_ms), task,
                               [](void* owner, uint64_t arm) {
                                   auto* expired = static_cast<Task*>(owner);
                                   if (!expired->in_call || expired->timeout.arms() != arm) return;
                                   expired->timed_out = true;
                                   expired->Interrupt();
                               });
        TypedNodeRun view(*this, index, task);
        NodeOutcome outcome = co_await type.Execute(view);
        task->in_call = false;
        Timeouts::Disarm(task->timeout);
        co_await asio::this_coro::reset_cancellation_state();
        if (task->timed_out && !NodeStopped(index)) {
            outcome = NodeOutcome::Failed(Error(ErrorCode::kDeadlineExceeded,
                                                "timed out after " + FormatSeconds(node.timeout_ms),
                                                ErrorDetails{0, -1, -1, "timeout"}));
        }
        if (NodeStopped(index)) co_return NodeResult::kCancelled;
        Step step;
        switch (outcome.kind) {
            case NodeOutcome::Kind::kStopped:
                co_return store_failed_ ? NodeResult::kStoreError : NodeResult::kCancelled;
            case NodeOutcome::Kind::kWaiting:
                co_return NodeResult::kWaiting;
            case NodeOutcome::Kind::kCompleted: {
                ledger::NodeCompleted completed;
                completed.output = std::move(outcome.output);
                completed.signal = std::move(outcome.signal);
                completed.detail = std::move(outcome.detail);
                step.events.push_back({node.id, ns.attempt, std::move(completed)});
                break;
            }
            case NodeOutcome::Kind::kFailed:
                step = OnFailure(node, outcome.error, 0);
                break;
        }
        if (!co_await Append(std::move(step.events), index)) co_return NodeResult::kStoreError;
        if (step.retry) continue;
        if (node.type->IsJoin()) CancelBranches(node);
        if (step.result == NodeResult::kFailed) FailRun(node);
        co_return step.result;
    }
}

}  // namespace strowger::engine::internal
