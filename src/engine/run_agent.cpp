// The agent loop (docs/design/dag.md): an agent node's model calls and tool rounds, its
// conversation (a pool's shared turns), timeouts, budgets and the calls parked while a run
// waits. run.cpp keeps the run: its ledger, scheduling and life.
#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>

#include "core/checked_math.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine/backoff.hpp"
#include "engine/internal/run.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"

namespace strowger::engine::internal {

using model::PlanNode;

using ledger::NodeStatus;
using ledger::RunStatus;

namespace {

Error TimeoutError(const PlanNode& node) {
    ErrorDetails details;
    details.reason = "timeout";
    return Error(ErrorCode::kDeadlineExceeded, "timed out after " + FormatSeconds(node.timeout_ms),
                 details);
}

// Hands a node's streamed model text to the engine's observers, on the run's executor (the
// provider may call from an I/O thread of its HTTP client).
class ObserverSink final : public providers::StreamSink {
  public:
    ObserverSink(std::shared_ptr<Engine::Impl> engine, Executor executor, std::string run_id,
                 std::string node)
        : engine_(engine),
          executor_(std::move(executor)),
          run_id_(std::move(run_id)),
          node_(std::move(node)) {}

    void OnDelta(std::string_view text) override {
        asio::post(executor_,
                   [engine = engine_, run_id = run_id_, node = node_, text = std::string(text)] {
                       engine->NotifyDelta(run_id, node, text);
                   });
    }

  private:
    std::shared_ptr<Engine::Impl> engine_;
    Executor executor_;
    std::string run_id_;
    std::string node_;
};

// A completion reporting usage out of range (a negative or absurd count, from a broken or
// hostile provider) is that provider's protocol error: no budget or price is computed from it.
void RejectBadUsage(Result<providers::Completion>& result, const std::string& provider) {
    if (!result) return;
    if (Status usage = providers::CheckUsage(provider, result->usage); !usage) {
        result = std::unexpected(std::move(usage).error());
    }
}

// The pool key of an agent node in mode pool, or null.
const std::string* PoolKey(const PlanNode& node) {
    const auto* config =
        dynamic_cast<const nodes::Config<nodes::AgentNodeConfig>*>(node.config.get());
    if (config == nullptr || config->value.mode != "pool") return nullptr;
    return &config->value.pool_key;
}

// A standing agent's turn (Plan::session; docs/formats/agents_cron_state_v1.md): its run input
// is {"message", "history": [{"role", "content"}], "summary", "session_id", "compaction"}. The
// summary of compacted turns and the history come before the prompt (the message).
void AppendSessionHistory(const std::string& input, std::vector<providers::Message>& messages) {
    auto parsed = ParseJson(input);
    if (!parsed || !parsed->is_object()) return;
    const auto& o = parsed->as_object();
    if (auto summary = JsonString(o, "summary"); !summary.empty()) {
        messages.push_back({providers::Role::kSystem,
                            "Summary of the earlier conversation:\n" + std::string(summary),
                            {},
                            {},
                            {}});
    }
    const auto* history = JsonArray(o, "history");
    if (history == nullptr) return;
    for (const auto& item : *history) {
        const auto* m = item.if_object();
        if (m == nullptr) continue;
        const auto role = JsonString(*m, "role");
        messages.push_back(
            {role == "assistant" ? providers::Role::kAssistant : providers::Role::kUser,
             std::string(JsonString(*m, "content")),
             {},
             {},
             {}});
    }
}

// The session.compacted event a turn's first attempt records, if its session was compacted.
std::optional<ledger::SessionCompacted> SessionCompaction(const std::string& input) {
    auto parsed = ParseJson(input);
    if (!parsed || !parsed->is_object()) return std::nullopt;
    const auto* c = JsonObject(parsed->as_object(), "compaction");
    if (c == nullptr) return std::nullopt;
    ledger::SessionCompacted event;
    event.session_id = std::string(JsonString(parsed->as_object(), "session_id"));
    event.dropped_messages = JsonInt(*c, "dropped_messages");
    event.dropped_tokens = JsonInt(*c, "dropped_tokens");
    event.kept_messages = JsonInt(*c, "kept_messages");
    event.kept_tokens = JsonInt(*c, "kept_tokens");
    event.max_history_tokens = JsonInt(*c, "max_history_tokens");
    event.summary_sha256 = std::string(JsonString(*c, "summary_sha256"));
    return event;
}

}  // namespace

// A pooled node's earlier turns: the exchanges (prompt, answer) of the nodes of its pool
// upstream of it, in the order they completed. Upstream only, so the conversation is fixed
// before the node starts and the same when rebuilt from the ledger on resume.
void Run::AppendPoolTurns(const PlanNode& node, std::vector<providers::Message>& messages) const {
    const std::string* key = PoolKey(node);
    if (key == nullptr) return;
    std::vector<char> upstream(plan_.nodes.size(), 0);
    std::vector<int> stack = {node.index};
    while (!stack.empty()) {
        const PlanNode& at = plan_.nodes[static_cast<size_t>(stack.back())];
        stack.pop_back();
        for (int e : at.in_edges) {
            const int from = plan_.edges[static_cast<size_t>(e)].from;
            if (upstream[static_cast<size_t>(from)]) continue;
            upstream[static_cast<size_t>(from)] = 1;
            stack.push_back(from);
        }
    }
    for (const auto& step : state_.steps) {
        if (step.node_index < 0 || !upstream[static_cast<size_t>(step.node_index)]) continue;
        const std::string* other = PoolKey(plan_.nodes[static_cast<size_t>(step.node_index)]);
        if (other == nullptr || *other != *key) continue;
        messages.push_back({providers::Role::kUser, step.prompt, {}, {}, {}});
        messages.push_back({providers::Role::kAssistant, step.output, {}, {}, {}});
    }
}

std::vector<providers::Message> Run::Conversation(const PlanNode& node,
                                                  const std::string& prompt) const {
    const auto* agent = plan_.AgentOf(node);
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    size_t count = 2;  // system and user
    for (const auto& turn : ns.turns) count += 1 + turn.calls.size();
    std::vector<providers::Message> messages;
    messages.reserve(count);
    if (!agent->system_prompt.empty()) {
        messages.push_back({providers::Role::kSystem, agent->system_prompt, {}, {}, {}});
    }
    if (plan_.dag) AppendPoolTurns(node, messages);
    if (plan_.session) AppendSessionHistory(state_.input, messages);
    messages.push_back({providers::Role::kUser, prompt, {}, {}, {}});
    for (const auto& turn : ns.turns) {
        providers::Message assistant{providers::Role::kAssistant, turn.content, {}, {}, {}};
        for (const auto& call : turn.calls) {
            std::string facing = call.tool;
            if (auto slash = facing.find('/'); slash != std::string::npos)
                facing.replace(slash, 1, "__");
            assistant.tool_calls.push_back({call.call_id, facing, call.arguments});
        }
        messages.push_back(std::move(assistant));
        for (const auto& call : turn.calls) {
            if (!call.finished) continue;
            messages.push_back({providers::Role::kTool, call.result, {}, call.call_id, call.tool});
        }
    }
    return messages;
}

providers::CompletionRequest Run::BuildRequest(const PlanNode& node,
                                               const providers::ResolvedModel& model,
                                               const std::string& prompt, int64_t attempt,
                                               const AgentToolSet* tools) const {
    const auto* agent = plan_.AgentOf(node);
    providers::CompletionRequest request;
    request.model = model.model;
    request.messages = Conversation(node, prompt);
    if (tools != nullptr) request.tools = tools->specs;
    request.temperature = agent->temperature;
    request.max_output_tokens = agent->max_output_tokens;
    request.run_id = state_.run_id;
    request.node = node.id;
    request.agent = agent->name;
    request.attempt = attempt;
    request.turn =
        static_cast<int64_t>(state_.nodes[static_cast<size_t>(node.index)].turns.size()) + 1;
    return request;
}

providers::CompletionRequest Run::CallRequest(const PlanNode& node,
                                              const providers::ResolvedModel& model, Task& task) {
    // The prompt is the one the attempt's llm.request recorded. The attempt a provider sees
    // (the scripted `${attempt}`, X-Strowger-Attempt) counts the tries of this iteration: a
    // loop's second iteration is a first try (also after `runs retry`, when the ledger's
    // numbers for the loop continue past the earlier ones).
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    providers::CompletionRequest request =
        BuildRequest(node, model, ns.prompt, ns.AttemptsInIteration(), task.tools.get());
    task.sink.reset();
    if (engine_->wants_deltas_) {
        task.sink = std::make_unique<ObserverSink>(engine_, executor_, state_.run_id, node.id);
        request.stream = task.sink.get();
    }
    task.retries.tries.clear();
    request.retries = &task.retries;
    return request;
}

bool Run::StartInlineCall(const PlanNode& node, const providers::ResolvedModel& model, Task& task) {
    task.parked = true;
    auto ready = model.provider->Start(
        CallRequest(node, model, task), task.deadline, executor_, task.own_signal.slot(),
        [self = shared_from_this()](Result<providers::Completion> result) mutable {
            self->OnAnswer(std::move(result));
        });
    if (!ready) return true;
    task.parked = false;
    task.answer = std::make_unique<Result<providers::Completion>>(std::move(*ready));
    return false;
}

Awaitable<void> Run::AwaitModel(const PlanNode& node, const providers::ResolvedModel& model,
                                std::shared_ptr<Task> task) {
    auto call = model.provider->Complete(CallRequest(node, model, *task), task->deadline);
    Result<providers::Completion> result = co_await std::move(call);
    task->answer = std::make_unique<Result<providers::Completion>>(std::move(result));
}

void Run::OnAnswer(Result<providers::Completion> result) {
    Task& task = *inline_task_;
    task.parked = false;
    task.answer = std::make_unique<Result<providers::Completion>>(std::move(result));
    // The call may have answered before the spawn of the Main that parked it completed (it
    // still holds main_signal_ then): that completion spawns Main again.
    asio::post(executor_, [self = shared_from_this()]() mutable {
        if (self->finished_) return;  // its outcome was given (Main threw)
        if (self->spawned_) {
            self->respawn_ = true;
            return;
        }
        Spawn(std::move(self), nullptr, true);
    });
}

void Run::PrependRetries(const PlanNode& node, Task& task, Step& step) const {
    auto& tries = task.retries.tries;
    if (tries.empty()) return;
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    const auto turn = static_cast<int64_t>(ns.turns.size()) + 1;
    std::vector<ledger::NewEvent> events;
    events.reserve(tries.size() + step.events.size());
    for (auto& t : tries) {
        t.turn = turn;
        events.push_back({node.id, ns.attempt, std::move(t)});
    }
    tries.clear();
    for (auto& event : step.events) events.push_back(std::move(event));
    step.events = std::move(events);
}

void Run::ArmTimeout(const PlanNode& node, const std::shared_ptr<Task>& task) {
    // The attempt's timeout is enforced twice: callees get the deadline (so their I/O expires
    // on time), and this timer cancels the call outright if it is still running then.
    task->in_call = true;
    task->timed_out = false;
    if (!task->deadline.IsNever()) {
        engine_->timeouts_.Arm(task->timeout, task->deadline.time(),
                               std::chrono::milliseconds(node.timeout_ms), task,
                               [](void* owner, uint64_t arm) {
                                   auto* expired = static_cast<Task*>(owner);
                                   // Stale: the call returned (and maybe another began).
                                   if (!expired->in_call || expired->timeout.arms() != arm) return;
                                   expired->timed_out = true;
                                   expired->Interrupt();
                               });
    }
}

void Run::DisarmTimeout(const PlanNode& node, Task& task, Result<providers::Completion>& result) {
    task.in_call = false;
    Timeouts::Disarm(task.timeout);
    if (!result && (task.timed_out || (result.error().code() == ErrorCode::kDeadlineExceeded &&
                                       task.deadline.Expired()))) {
        result = std::unexpected(TimeoutError(node));
    }
}

// ---- Coroutines ---------------------------------------------------------------------------

Awaitable<Run::NodeResult> Run::RunTools(int index, std::shared_ptr<Task> task) {
    const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
    const AgentToolSet* tools = task->tools.get();
    const ledger::NodeState& ns = state_.nodes[static_cast<size_t>(index)];
    const ledger::TurnState& turn = ns.turns.back();
    const int64_t attempt = ns.attempt;

    // Which calls run now, which are refused, which need a human first.
    std::vector<ledger::NewEvent> now;  // tool.call events (and results of refused calls)
    std::vector<ledger::NewEvent> refused;
    std::vector<ledger::NewEvent> approvals;
    struct Planned {
        std::string call_id;
        std::shared_ptr<tools::Tool> tool;
        std::string arguments;
        int64_t call_index;
    };
    std::vector<Planned> planned;
    int64_t call_index = 0;
    for (const auto& past : ns.turns) call_index += static_cast<int64_t>(past.calls.size());
    call_index -= static_cast<int64_t>(turn.calls.size());
    for (const auto& call : turn.calls) {
        ++call_index;
        if (call.finished) continue;
        const AgentTool* entry = tools ? tools->Find(call.tool) : nullptr;
        if (entry == nullptr) {
            refused.push_back(
                {node.id, attempt,
                 ledger::ToolResult{call.call_id,
                                    "error: tool '" + call.tool + "' is not allowed for agent " +
                                        plan_.AgentOf(node)->name,
                                    true, 0}});
            continue;
        }
        if (entry->require_approval) {
            const ledger::HumanTask* decided = nullptr;
            for (const auto& t : state_.tasks) {
                if (t.task_id == call.task_id && !t.open()) decided = &t;
            }
            if (call.task_id.empty()) {
                std::string task_id =
                    node.id + "/" + ExecutionLabel(node) + "/" + std::to_string(call_index);
                approvals.push_back(
                    {node.id, attempt,
                     ledger::HumanTaskCreated{
                         task_id, "tool_approval",
                         "Agent " + plan_.AgentOf(node)->name + " wants to call " + call.tool,
                         call.call_id, call.tool, call.arguments}});
                continue;
            }
            if (decided == nullptr) continue;  // still open
            if (decided->decision == "reject") {
                refused.push_back(
                    {node.id, attempt,
                     ledger::ToolResult{
                         call.call_id,
                         "error: a human rejected this call (" + decided->actor +
                             (decided->comment.empty() ? ")" : ": " + decided->comment + ")"),
                         true, 0}});
                continue;
            }
        }
        std::string key = IdempotencyKey(node, call_index);
        now.push_back(
            {node.id, attempt,
             ledger::ToolCall{call.call_id, call.tool, call.arguments, key,
                              std::string(tools::SafetyClassName(entry->safety)), turn.turn}});
        planned.push_back({call.call_id, entry->tool, call.arguments, call_index});
    }
    if (!approvals.empty()) {
        // Ask first, run everything of this turn after the decisions.
        if (!co_await Append(std::move(approvals), index)) co_return NodeResult::kStoreError;
        co_return NodeResult::kWaiting;
    }
    if (!refused.empty()) {
        if (!co_await Append(std::move(refused), index)) co_return NodeResult::kStoreError;
    }
    if (planned.empty()) {
        co_return WaitsForHuman(node) ? NodeResult::kWaiting : NodeResult::kCompleted;
    }
    if (std::optional<Step> over =
            CheckBudgets(node, static_cast<int64_t>(planned.size()), -1, task->iteration)) {
        NodeResult result = over->result;
        if (!co_await Append(std::move(over->events), index)) co_return NodeResult::kStoreError;
        if (result == NodeResult::kFailed) FailRun(node);
        co_return result == NodeResult::kCompleted ? NodeResult::kFailed : result;
    }
    // tool.call events are committed before any tool starts.
    if (!co_await Append(std::move(now), index)) co_return NodeResult::kStoreError;
    if (NodeStopped(index)) co_return NodeResult::kCancelled;

    // Run the calls concurrently; each gets the attempt's deadline and its idempotency key.
    struct Outcome {
        Result<tools::ToolResult> result = std::unexpected(Error(ErrorCode::kCancelled, "not run"));
        int64_t duration_ms = 0;
    };
    auto outcomes = std::make_shared<std::vector<Outcome>>(planned.size());
    auto pending = std::make_shared<size_t>(planned.size());
    auto done = std::make_shared<asio::steady_timer>(executor_);
    done->expires_at(asio::steady_timer::time_point::max());
    auto signals = std::make_shared<std::vector<asio::cancellation_signal>>(planned.size());
    const std::filesystem::path workspace = Workspace();
    for (size_t i = 0; i < planned.size(); ++i) {
        tools::ToolContext context;
        context.run_id = state_.run_id;
        context.node = node.id;
        context.attempt = attempt;
        context.call_index = planned[i].call_index;
        context.idempotency_key = IdempotencyKey(node, planned[i].call_index);
        context.workspace = workspace;
        context.deadline = task->deadline;
        context.grants = tools->grants;
        auto started = std::chrono::steady_clock::now();
        asio::co_spawn(executor_, planned[i].tool->Call(planned[i].arguments, std::move(context)),
                       asio::bind_cancellation_slot(
                           (*signals)[i].slot(),
                           [outcomes, pending, done, i, started](std::exception_ptr error,
                                                                 Result<tools::ToolResult> result) {
                               (*outcomes)[i].result =
                                   error ? Result<tools::ToolResult>(std::unexpected(
                                               Error(ErrorCode::kInternal, "tool threw")))
                                         : std::move(result);
                               (*outcomes)[i].duration_ms =
                                   std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - started)
                                       .count();
                               if (--*pending == 0) done->cancel();
                           }));
    }
    // Wait for all of them; if this node is cancelled meanwhile (timeout, run cancel,
    // fail-fast), pass the cancellation on and keep waiting until they have all stopped.
    ArmTimeout(node, task);
    while (*pending > 0) {
        co_await done->async_wait(asio::as_tuple(asio::use_awaitable));
        if (*pending > 0) {
            for (auto& signal : *signals) signal.emit(asio::cancellation_type::terminal);
            co_await asio::this_coro::reset_cancellation_state();
        }
    }
    task->in_call = false;
    Timeouts::Disarm(task->timeout);
    if (NodeStopped(index)) co_return NodeResult::kCancelled;
    if (task->timed_out) co_return NodeResult::kFailed;  // the caller turns this into a timeout

    std::vector<ledger::NewEvent> results;
    for (size_t i = 0; i < planned.size(); ++i) {
        auto& outcome = (*outcomes)[i];
        std::string content;
        bool is_error = false;
        if (outcome.result) {
            content = ToValidUtf8(outcome.result->content);
            is_error = outcome.result->is_error;
        } else {
            content = "error: " + outcome.result.error().message();
            is_error = true;
        }
        results.push_back({node.id, attempt,
                           ledger::ToolResult{planned[i].call_id, std::move(content), is_error,
                                              outcome.duration_ms}});
    }
    if (!co_await Append(std::move(results), index)) co_return NodeResult::kStoreError;
    co_return NodeResult::kCompleted;
}

std::unique_ptr<Run::Step> Run::PrologueStep(const PlanNode& node) const {
    std::optional<Step> early = Prologue(node);
    if (!early) return nullptr;
    return std::make_unique<Step>(std::move(*early));
}

Awaitable<void> Run::ResolveTools(const PlanNode& node, std::shared_ptr<const AgentToolSet>& tools,
                                  std::shared_ptr<const Error>& error) {
    auto resolved = co_await engine_->ToolsFor(runtime_, node.agent);
    if (resolved) {
        tools = WithSubagents(node, std::move(*resolved));
    } else {
        error = std::make_shared<const Error>(resolved.error());
    }
}

Awaitable<int64_t> Run::HourUsage(const model::AgentSpec& agent) {
    auto usage = co_await engine_->store_->UsageSince(
        "agent:" + agent.name, engine_->clock_.Now() - std::chrono::hours(1));
    co_return usage ? *usage : 0;
}

Awaitable<void> Run::RecordHourUsage(const PlanNode& node, const model::AgentSpec& agent,
                                     int64_t before, int64_t tokens) {
    const SystemTime now = engine_->clock_.Now();
    (void)co_await engine_->store_->RecordUsage("agent:" + agent.name, now, tokens);
    if (agent.limits.max_tokens_per_hour) {
        engine_->NotifyQuotaUse({state_.run_id, node.id, agent.name, SaturatingAdd(before, tokens),
                                 *agent.limits.max_tokens_per_hour, now});
    }
}

bool Run::OverBudget(const PlanNode& node, int64_t hour_usage, int64_t iteration, Step& step) {
    std::optional<Step> over = CheckBudgets(node, 0, hour_usage, iteration);
    if (!over) return false;
    step = std::move(*over);
    return true;
}

std::vector<ledger::NewEvent> Run::TurnRequestEvents(const PlanNode& node) const {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    const auto& model = runtime_->models[static_cast<size_t>(node.agent)];
    std::vector<ledger::NewEvent> events;
    events.push_back({node.id, ns.attempt,
                      ledger::LlmRequest{model ? model->provider_name : "",
                                         model ? model->model : "",
                                         {},
                                         {},
                                         static_cast<int64_t>(ns.turns.size()) + 1}});
    return events;
}

Result<providers::Completion> Run::NoCall(const Result<providers::ResolvedModel>& model,
                                          const Error* tools_error) {
    if (tools_error) return std::unexpected(*tools_error);
    return std::unexpected(model ? Error() : model.error());
}

Run::Step Run::TimeoutFailure(const PlanNode& node, int64_t iteration) {
    return OnFailure(node, TimeoutError(node), iteration);
}

Run::Step Run::MaxTurnsFailure(const PlanNode& node, int64_t max_turns, int64_t iteration) {
    // It asks for tools in its last allowed turn: it did not finish.
    Error error(ErrorCode::kAborted,
                "the agent did not give a final answer within max_turns (" +
                    std::to_string(max_turns) + ")",
                ErrorDetails{0, -1, -1, "max_turns"});
    return OnFailure(node, error, iteration);
}

// Its frame is allocated for every step: keep it within glibc's per-thread cache (requests up
// to 1,016 B; see ARCHITECTURE.md, rules of the code). What spans the model call is in the
// task: an inline node's call is parked (this coroutine returns kParked), and its answer
// spawns Main again, which calls this again to go on after the call.
Awaitable<Run::NodeResult> Run::ExecuteNode(int index, std::shared_ptr<Task> task) {
    co_await asio::this_coro::throw_if_cancelled(false);
    const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
    const ledger::NodeState& ns = state_.nodes[static_cast<size_t>(index)];
    const Result<providers::ResolvedModel>& model =
        runtime_->models[static_cast<size_t>(node.agent)];
    const model::AgentSpec* agent = plan_.AgentOf(node);
    Task& t = *task;
    bool resuming = t.answer != nullptr;  // a parked call answered: go on after it
    if (!resuming) {
        if (WaitsForHuman(node)) co_return NodeResult::kWaiting;
        if (std::unique_ptr<Step> early = PrologueStep(node)) {
            NodeResult result = early->result;
            if (!co_await Append(std::move(early->events), index))
                co_return NodeResult::kStoreError;
            if (result == NodeResult::kFailed) FailRun(node);
            co_return result;
        }
        // Over the engine's cap on executing nodes: wait (not started yet) for a slot, held
        // until the node is done (OnNodeDone).
        if (engine_->node_slots_.limited()) {
            if (!co_await engine_->node_slots_.Acquire()) co_return NodeResult::kCancelled;
            t.slot = &engine_->node_slots_;
            co_await asio::this_coro::reset_cancellation_state();
            if (NodeStopped(index)) co_return NodeResult::kCancelled;
        }
        t.tools.reset();
        t.tools_error.reset();
        if (!agent->tools.empty()) {
            co_await ResolveTools(node, t.tools, t.tools_error);
        } else {
            t.tools = WithSubagents(node, nullptr);  // mode subagent: its subagents only
        }
        t.iteration = FirstIteration(node);
    }
    for (;; ++t.iteration) {
        Step step;
        do {  // attempts
            if (!resuming) {
                if (ns.status == NodeStatus::kRetryWaiting) {
                    if (!co_await SleepUntil(ns.retry_due())) co_return NodeResult::kCancelled;
                    co_await asio::this_coro::reset_cancellation_state();
                }
                if (NodeStopped(index)) co_return NodeResult::kCancelled;
                // A node that waited for a decided tool approval goes on with the same
                // attempt; anything else (including an approved reconciliation) starts a new
                // one.
                bool continuing = false;
                if (ns.status == NodeStatus::kWaiting && !ns.turns.empty()) {
                    for (const auto& task_state : state_.tasks) {
                        if (task_state.task_id == ns.waiting_task() &&
                            task_state.kind == "tool_approval")
                            continuing = true;
                    }
                }
                if (!continuing) {
                    // A loop's new iteration is a first try; anything else tries again.
                    const int64_t attempt = node.loop && t.iteration != ns.iteration
                                                ? ns.FirstAttemptOfNextIteration()
                                                : ns.attempt + 1;
                    std::vector<ledger::NewEvent> start =
                        StartEvents(node, attempt, t.iteration, PromptFor(node, t.iteration));
                    // A standing agent's turn records its session's compaction once, with
                    // its first attempt's start.
                    if (plan_.session && ns.attempt == 0) {
                        if (auto compacted = SessionCompaction(state_.input)) {
                            start.insert(start.begin() + 1, {node.id, 1, std::move(*compacted)});
                        }
                    }
                    bool appended;
                    if (engine_->appends_at_once_) {
                        appended = AppendAtOnce(std::move(start), index);
                    } else {
                        appended = co_await Append(std::move(start), index);
                    }
                    if (!appended) co_return NodeResult::kStoreError;
                }
                // Observers run inside Append and may have cancelled the run (or a sibling
                // failed).
                if (NodeStopped(index)) co_return NodeResult::kCancelled;
                t.deadline = Deadline::After(std::chrono::milliseconds(node.timeout_ms));
            }
            step = Step{};
            while (true) {  // turns
                if (!resuming) {
                    if (HasUnfinishedCalls(ns)) {
                        NodeResult tools_result = co_await RunTools(index, task);
                        co_await asio::this_coro::reset_cancellation_state();
                        if (tools_result == NodeResult::kFailed && t.timed_out) {
                            step = TimeoutFailure(node, t.iteration);
                            break;
                        }
                        if (tools_result != NodeResult::kCompleted) co_return tools_result;
                    }
                    if (!ns.turns.empty()) {
                        // Turn 2 and later: record the call (its messages are the turns so
                        // far).
                        std::vector<ledger::NewEvent> request = TurnRequestEvents(node);
                        if (!co_await Append(std::move(request), index))
                            co_return NodeResult::kStoreError;
                    }
                    t.hour_usage = -1;  // no hourly quota
                    if (agent->limits.max_tokens_per_hour) {
                        int64_t usage = co_await HourUsage(*agent);
                        t.hour_usage = usage;
                    }
                    if (OverBudget(node, t.hour_usage, t.iteration, step)) break;
                    if (!model || t.tools_error) {  // no call can be made: the step fails
                        if (NodeStopped(index)) co_return NodeResult::kCancelled;
                        step = OnFailure(node, NoCall(model, t.tools_error.get()).error(),
                                         t.iteration);
                        PrependRetries(node, t, step);
                        break;
                    }
                    t.call_started = engine_->clock_.SteadyNow();
                    ArmTimeout(node, task);
                    if (task != inline_task_) {
                        co_await AwaitModel(node, *model, task);
                    } else if (StartInlineCall(node, *model, t)) {
                        co_return NodeResult::kParked;
                    }
                }
                resuming = false;
                std::unique_ptr<Result<providers::Completion>> result = std::move(t.answer);
                DisarmTimeout(node, t, *result);
                RejectBadUsage(*result, model->provider_name);
                co_await asio::this_coro::reset_cancellation_state();
                // Interrupted because the run is ending (cancelled, or another node failed):
                // the run's terminal event closes this node; no failure of its own to record.
                if (NodeStopped(index)) co_return NodeResult::kCancelled;
                int64_t latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                         engine_->clock_.SteadyNow() - t.call_started)
                                         .count();
                if (!*result) {
                    step = OnFailure(node, result->error(), t.iteration);
                    PrependRetries(node, t, step);
                    break;
                }
                const int64_t tokens =
                    SaturatingAdd((*result)->usage.input_tokens, (*result)->usage.output_tokens);
                step = OnSuccess(node, std::move(**result), latency_ms, t.iteration, t.tools.get());
                PrependRetries(node, t, step);
                if (t.hour_usage >= 0) co_await RecordHourUsage(node, *agent, t.hour_usage, tokens);
                if (!step.tools) break;
                if (!co_await Append(std::move(step.events), index))
                    co_return NodeResult::kStoreError;
                if (NodeStopped(index)) co_return NodeResult::kCancelled;
                if (static_cast<int64_t>(ns.turns.size()) >= agent->max_turns) {
                    step = MaxTurnsFailure(node, agent->max_turns, t.iteration);
                    break;
                }
            }
            bool appended;
            if (engine_->appends_at_once_) {
                appended = AppendAtOnce(std::move(step.events), index);
            } else {
                appended = co_await Append(std::move(step.events), index);
            }
            if (!appended) co_return NodeResult::kStoreError;
        } while (step.retry);
        if (step.result == NodeResult::kFailed) FailRun(node);
        if (!step.more) co_return step.result;
    }
}

}  // namespace strowger::engine::internal
