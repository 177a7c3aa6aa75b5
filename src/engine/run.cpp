#include "engine/internal/run.hpp"

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

namespace strowger::engine::internal {

using ledger::NodeStatus;
using ledger::RunStatus;
using model::PlanNode;

namespace {

// Whether error_mode retry may try again after `error`: everything but budget exhaustion and
// cancellation (LibreFang retries any failure; budgets are final by definition).
bool StepRetryable(const Error& error) {
    return error.code() != ErrorCode::kCancelled && error.code() != ErrorCode::kResourceExhausted;
}

constexpr std::string_view kSecretInArguments =
    "error: the arguments contain a secret value (a registered key or a match of a secret "
    "pattern); the call was refused, so that the ledger records what runs";

}  // namespace

std::string FormatSeconds(int64_t ms) {
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    std::string text = std::to_string(ms / 1000) + "." + std::to_string(1000 + ms % 1000).substr(1);
    while (text.back() == '0') text.pop_back();
    return text + "s";
}

Run::Run(std::shared_ptr<Engine::Impl> engine, std::shared_ptr<PlanRuntime> runtime,
         ledger::RunState state)
    : engine_(std::move(engine)),
      runtime_(std::move(runtime)),
      plan_(*runtime_->plan),
      // A strand gives the run one owner on a multi-threaded executor; a single-threaded
      // executor already is one (and an any_io_executor holding a strand costs a heap
      // allocation per copy: every timer).
      executor_(engine_->options_.single_threaded_executor
                    ? engine_->executor_
                    : Executor(asio::make_strand(engine_->executor_))),
      state_(std::move(state)),
      in_flight_(plan_.nodes.size()) {
    state_.node_names = &plan_.node_ids;
    if (plan_.dag) join_cancelled_ = std::make_unique<bool[]>(plan_.nodes.size());
}

Run::Notes& Run::notes() {
    if (!notes_) notes_ = std::make_unique<Notes>();
    return *notes_;
}

ledger::Event Run::SealCreated(const ledger::NewEvent& event) {
    auto now = engine_->clock_.Now();
    // With its payload in `data` when observers read it (they are told once it is created).
    ledger::Event sealed =
        ledger::Seal(state_.head, state_.run_id, now, event, engine_->observers_want_data_);
    state_.Apply(now, -1, event);
    return sealed;
}

void Run::SetResumeReason(std::string reason, std::string actor) {
    notes().resume_reason = std::move(reason);
    notes().resume_actor = std::move(actor);
}

void Run::RequestCancel(std::string reason, std::string actor) {
    asio::dispatch(executor_, [self = shared_from_this(), reason = std::move(reason),
                               actor = std::move(actor)]() mutable {
        if (self->cancel_requested_ || self->finished_) return;
        self->cancel_requested_ = true;
        self->notes().cancel_reason = std::move(reason);
        self->notes().cancel_actor = std::move(actor);
        self->CancelTasks();
        if (self->queued_) self->main_signal_.emit(asio::cancellation_type::terminal);
        self->Wake();
    });
}

void Run::RequestPause(std::string reason, std::string actor) {
    asio::dispatch(executor_, [self = shared_from_this(), reason = std::move(reason),
                               actor = std::move(actor)]() mutable {
        if (self->pause_requested_ || self->finished_) return;
        self->pause_requested_ = true;
        self->notes().pause_reason = std::move(reason);
        self->notes().pause_actor = std::move(actor);
        if (self->queued_) self->main_signal_.emit(asio::cancellation_type::terminal);
        self->Wake();
    });
}

// ---- Ledger -------------------------------------------------------------------------------

Awaitable<bool> Run::Create(std::unique_ptr<store::NewRun> record) {
    // Observers are told of run.created too, once it is committed (its header and payload).
    std::optional<ledger::Event> notify;
    if (!engine_->observers_.empty() && !record->events.empty()) {
        const ledger::Event& event = record->events.front();
        notify.emplace();
        notify->seq = event.seq;
        notify->time = event.time;
        notify->type = event.type;
        notify->type_name = event.type_name;
        notify->run_id = state_.run_id;
        if (engine_->observers_want_data_) notify->data = event.data;
    }
    auto created = co_await engine_->store_->CreateRun(std::move(*record));
    if (!created) {
        store_failed_ = true;
        notes().store_error = created.error();
        co_return false;
    }
    if (created->created) {
        if (notify) engine_->Notify(*notify);
        co_return true;
    }
    // An idempotency key used before: report that run, do nothing.
    existing_ = true;
    state_.run_id = created->run_id;
    auto existing = co_await engine_->store_->GetRun(created->run_id);
    if (!existing) {
        store_failed_ = true;
        notes().store_error = existing.error();
    } else {
        existing_status_ = existing->status;
    }
    co_return false;
}

void RedactSecrets(ledger::NewEvent& event) {
    // Secrets (keys from the environment, configured patterns) never reach the ledger: every
    // free-text field is redacted before the event is applied and sealed.
    if (!HaveSecrets()) return;
    ledger::ForEachText(event.payload, [](std::string& text) {
        if (!text.empty()) text = Redact(text);
    });
}

void Run::SealEvents(std::vector<ledger::NewEvent>& events, int node_index, Sealed& out) {
    for (auto& event : events) RedactSecrets(event);
    out.count = events.size();
    if (out.events.size() < out.count) out.events.resize(out.count);
    // One time for the events committed together.
    const SystemTime now = engine_->clock_.Now();
    for (size_t i = 0; i < out.count; ++i) {
        ledger::SealInto(out.events[i], state_.head, state_.run_id, now, events[i],
                         engine_->observers_want_data_);
        state_.Apply(now, events[i].node.empty() ? -1 : node_index, events[i]);
    }
    out.checkpoint =
        engine_->ExpectCheckpoint(state_, state_.head.seq - static_cast<int64_t>(out.count));
    // What observers get: the header fields and the payload, not the stored line (the run id
    // is added when they are told).
    if (!engine_->observers_.empty()) {
        if (out.notify.size() < out.count) out.notify.resize(out.count);
        for (size_t i = 0; i < out.count; ++i) {
            ledger::Event& event = out.events[i];
            ledger::Event& copy = out.notify[i];
            copy.seq = event.seq;
            copy.time = event.time;
            copy.type = event.type;
            copy.type_name = event.type_name;
            copy.node = event.node;
            copy.attempt = event.attempt;
            copy.data.swap(event.data);
        }
    }
}

bool Run::Committed(const Result<void>& appended, Sealed& sealed) {
    engine_->CheckpointCommitted(sealed.checkpoint, appended.has_value());
    if (!appended) {
        store_failed_ = true;
        notes().store_error = appended.error();
        spdlog::error("run {}: cannot append to the ledger: {}", state_.run_id,
                      appended.error().ToString());
        return false;
    }
    if (!engine_->observers_.empty()) {
        // Assigned, not constructed: a thread's sealed events are reused (AppendAtOnce), and
        // so are their strings' buffers.
        for (size_t i = 0; i < sealed.count; ++i) {
            ledger::Event& event = sealed.notify[i];
            event.run_id.assign(state_.run_id);
            engine_->Notify(event);
        }
    }
    return true;
}

bool Run::AppendAtOnce(std::vector<ledger::NewEvent> events, int node_index) {
    if (store_failed_) return false;
    // This thread's buffers, unless an observer appends from inside another append.
    thread_local Sealed reused;
    Sealed local;
    Sealed& sealed = reused.busy ? local : reused;
    sealed.busy = true;
    SealEvents(events, node_index, sealed);
    auto appended = engine_->store_->AppendEventsAtOnce(
        state_.run_id, std::span<const ledger::Event>(sealed.events.data(), sealed.count),
        state_.status);
    bool ok = Committed(appended, sealed);
    sealed.busy = false;
    return ok;
}

Awaitable<bool> Run::Append(std::vector<ledger::NewEvent> events, int node_index) {
    if (engine_->appends_at_once_) co_return AppendAtOnce(std::move(events), node_index);
    if (store_failed_) co_return false;
    Sealed sealed;
    SealEvents(events, node_index, sealed);
    auto appended = co_await engine_->store_->AppendEvents(state_.run_id, std::move(sealed.events),
                                                           state_.status);
    co_return Committed(appended, sealed);
}

// ---- Data flow ----------------------------------------------------------------------------

std::string Run::EffectiveOutput(int index) const {
    const auto& node_state = state_.nodes[static_cast<size_t>(index)];
    if (node_state.status == NodeStatus::kCompleted) return node_state.output;
    // Skipped: pass its own input through, so {{input}} downstream is unchanged.
    return InputOf(plan_.nodes[static_cast<size_t>(index)]);
}

std::string Run::InputOf(const PlanNode& node) const {
    if (plan_.dag) return DagInput(node);
    if (node.inputs.empty()) return state_.input;
    if (node.inputs.size() == 1) return EffectiveOutput(node.inputs.front());
    std::string joined;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
        if (i > 0) joined += model::kCollectSeparator;
        joined += EffectiveOutput(node.inputs[i]);
    }
    return joined;
}

std::string Run::Render(const PlanNode& node, std::string_view input) const {
    std::string prompt = RenderTemplate(node.prompt, input);
    if (!node.upstream_section) return prompt;
    // CMDC's dep_results: the upstream outputs as a labelled section, one entry per dependency.
    std::string section;
    for (int e : node.in_edges) {
        if (EdgeStateOf(e) != EdgeState::kCarries) continue;
        int from = plan_.edges[static_cast<size_t>(e)].from;
        section += "\n\n### " + plan_.nodes[static_cast<size_t>(from)].id + "\n" +
                   state_.nodes[static_cast<size_t>(from)].output;
    }
    if (!section.empty()) prompt += "\n\n## Upstream outputs" + section;
    return prompt;
}

// ---- Scheduling ---------------------------------------------------------------------------

bool Run::Ready(const PlanNode& node) const {
    if (plan_.dag) return DagReady(node);
    const auto& s = state_.nodes[static_cast<size_t>(node.index)];
    if (ledger::IsFinished(s.status) || in_flight_[static_cast<size_t>(node.index)]) return false;
    if (WaitsForHuman(node)) return false;
    for (int dep : node.deps) {
        auto status = state_.nodes[static_cast<size_t>(dep)].status;
        // A failed dependency fails the run (no node type tolerates failures yet).
        if (!ledger::IsFinished(status) || status == NodeStatus::kFailed) return false;
    }
    return true;
}

int Run::SoleReadyNode() const {
    if (running_ > 0) return -1;
    int found = -1;
    for (const auto& node : plan_.nodes) {
        if (!Ready(node)) continue;
        if (found >= 0) return -1;
        found = node.index;
    }
    return found;
}

void Run::StartReadyNodes() {
    // A node may finish inside StartNode (co_spawn runs it inline on our executor until it
    // first suspends), failing the run or readying others: re-check before each start.
    for (const auto& node : plan_.nodes) {
        if (Stopping()) return;
        if (Ready(node)) StartNode(node.index);
    }
}

void Run::StartNode(int index) {
    auto task = std::make_shared<Task>(executor_, nullptr);
    in_flight_[static_cast<size_t>(index)] = task;
    ++running_;
    auto& signal = *task->signal;
    auto execute = plan_.nodes[static_cast<size_t>(index)].kind == model::NodeKind::kTyped
                       ? ExecuteTyped(index, std::move(task))
                       : ExecuteNode(index, std::move(task));
    asio::co_spawn(
        executor_, std::move(execute),
        asio::bind_cancellation_slot(signal.slot(), [self = shared_from_this(), index](
                                                        std::exception_ptr error, NodeResult) {
            if (error) {
                // Our coroutines report failures as values; an exception here is a bug
                // in a dependency. Stop the run rather than lose it.
                try {
                    std::rethrow_exception(error);
                } catch (const std::exception& e) {
                    spdlog::error("run {}: node {} threw: {}", self->run_id(),
                                  self->plan_.nodes[static_cast<size_t>(index)].id, e.what());
                }
                self->store_failed_ = true;
                self->notes().store_error = Error(ErrorCode::kInternal, "node execution threw");
            }
            self->OnNodeDone(index);
        }));
}

void Run::OnNodeDone(int index) {
    // The node's outcome is already in state_ (and failed_, see FailRun).
    in_flight_[static_cast<size_t>(index)]->ReleaseSlot();
    in_flight_[static_cast<size_t>(index)].reset();
    --running_;
    Wake();
}

void Run::FailRun(const PlanNode& node) {
    // Called as soon as node.failed is appended, not when the node's coroutine completes (its
    // completion handler is posted, and the scheduler must not start dependents meanwhile).
    if (failed_) return;
    if (plan_.dag && node.fork >= 0) {
        // Inside a fork's branch: the branch is settled, and its join decides.
        Wake();
        return;
    }
    failed_ = true;
    const auto& s = state_.nodes[static_cast<size_t>(node.index)];
    notes().failure_message = s.error();
    notes().failure_code = s.error_code();
    notes().failure_node = node.id;
    CancelTasks();  // fail fast: siblings (fan-out) stop now
    Wake();
}

void Run::CancelTasks() {
    for (auto& task : in_flight_) {
        if (task) task->Interrupt();
    }
}

Awaitable<bool> Run::SleepUntil(SystemTime due) {
    auto delay = due - engine_->clock_.Now();
    if (delay <= SystemTime::duration::zero()) co_return !cancel_requested_;
    asio::steady_timer timer(executor_);
    timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay));
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec && !cancel_requested_;
}

// ---- Decisions ----------------------------------------------------------------------------

const std::filesystem::path& Run::Workspace() {
    if (!workspace_) {
        workspace_ = std::make_unique<std::filesystem::path>();
        if (!plan_.workspace.empty()) {
            *workspace_ = plan_.workspace;
        } else {
            std::filesystem::path root = engine_->options_.workspace_root;
            if (root.empty()) root = std::filesystem::temp_directory_path() / "strowger-workspaces";
            *workspace_ = root / state_.run_id;
        }
        std::error_code ec;
        std::filesystem::create_directories(*workspace_, ec);
    }
    return *workspace_;
}

bool Run::HasUnfinishedCalls(const ledger::NodeState& ns) {
    if (ns.turns.empty()) return false;
    for (const auto& call : ns.turns.back().calls) {
        if (!call.finished) return true;
    }
    return false;
}

bool Run::WaitsForHuman(const PlanNode& node) const {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    if (ns.status != NodeStatus::kWaiting) return false;
    for (const auto& task : state_.tasks) {
        if (task.task_id != ns.waiting_task()) continue;
        // A human_task whose timeout is due: its node goes on (it applies on_timeout).
        if (task.open() && task.details && task.details->due &&
            *task.details->due <= engine_->clock_.Now()) {
            return false;
        }
        return task.open();
    }
    return false;
}

std::optional<Run::Step> Run::Prologue(const PlanNode& node) const {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    if (ns.status == NodeStatus::kWaiting) {
        // A decided reconciliation task ends here; a decided approval goes on in the loop.
        for (const auto& task : state_.tasks) {
            if (task.task_id != ns.waiting_task() || task.kind != "reconciliation" || task.open())
                continue;
            Step step;
            if (task.decision == "reject") {
                step.events.push_back(
                    {node.id, ns.attempt,
                     ledger::NodeFailed{"Step '" + node.id +
                                            "' failed: reconciliation rejected by " + task.actor +
                                            (task.comment.empty() ? "" : ": " + task.comment),
                                        "aborted"}});
                step.result = NodeResult::kFailed;
                return step;
            }
            if (!task.output.empty()) {
                step.events.push_back(
                    {node.id, ns.attempt, ledger::NodeCompleted{task.output, 0, 0, 0, 0}});
                return step;
            }
            return std::nullopt;  // approved: a new attempt
        }
        return std::nullopt;
    }
    if (ns.status == NodeStatus::kRunning && !ns.turns.empty()) {
        // Interrupted (a crash) after tool calls: re-attempting repeats them, which is only
        // safe if every call started was read-only or idempotent; otherwise a human decides.
        bool unsafe = false;
        std::vector<std::string> tools;
        for (const auto& turn : ns.turns) {
            for (const auto& call : turn.calls) {
                if (!call.started) continue;
                tools.push_back(call.tool);
                if (call.safety != "read_only" && call.safety != "idempotent_write") unsafe = true;
            }
        }
        if (unsafe) {
            Step step;
            std::string task_id = node.id + "/" + ExecutionLabel(node) + "/reconcile";
            step.events.push_back(
                {node.id, ns.attempt,
                 ledger::HumanTaskCreated{
                     task_id,
                     "reconciliation",
                     "Step '" + node.id + "' was interrupted after calling " + Join(tools, ", ") +
                         ": approve to run it again, approve with an output to "
                         "accept that output, or reject to fail the step",
                     {},
                     {},
                     {}}});
            step.result = NodeResult::kWaiting;
            return step;
        }
        return std::nullopt;
    }
    if (ns.status != NodeStatus::kPending) return std::nullopt;  // resumed: its gate passed
    if (Pruned(node)) {
        Step step;
        step.events.push_back({node.id, 0, ledger::NodeSkipped{"pruned", {}}});
        step.result = NodeResult::kSkipped;
        return step;
    }
    if (node.conditional && !ContainsIgnoreCase(InputOf(node), node.condition)) {
        Step step;
        step.events.push_back({node.id, 0, ledger::NodeSkipped{"condition_not_met", {}}});
        step.result = NodeResult::kSkipped;
        return step;
    }
    if (node.kind == model::NodeKind::kCollect) {
        Step step;
        step.events.push_back({node.id, 0, ledger::NodeCompleted{InputOf(node), 0, 0, 0, 0}});
        return step;
    }
    return std::nullopt;
}

std::string Run::ExecutionLabel(const PlanNode& node) const {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    if (!node.loop) return std::to_string(ns.attempt);
    return std::to_string(ns.iteration) + "." + std::to_string(ns.attempt);
}

std::string Run::IdempotencyKey(const PlanNode& node, int64_t call_index) const {
    return state_.run_id + "/" + node.id + "/" + ExecutionLabel(node) + "/" +
           std::to_string(call_index);
}

int64_t Run::FirstIteration(const PlanNode& node) const {
    if (!node.loop) return 0;
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    int64_t iteration = std::max<int64_t>(1, ns.iteration);
    if (ns.iterations_done >= iteration) iteration = ns.iterations_done + 1;
    return iteration;
}

std::string Run::PromptFor(const PlanNode& node, int64_t iteration) const {
    // A loop's later iterations read the previous iteration's output.
    if (node.loop && iteration > 1) {
        return Render(node, state_.nodes[static_cast<size_t>(node.index)].output);
    }
    return Render(node, InputOf(node));
}

std::vector<ledger::NewEvent> Run::StartEvents(const PlanNode& node, int64_t attempt,
                                               int64_t iteration, const std::string& prompt) const {
    std::vector<ledger::NewEvent> events;
    events.reserve(2);
    events.push_back({node.id, attempt, ledger::NodeStarted{iteration}});
    const auto& model = runtime_->models[static_cast<size_t>(node.agent)];
    if (model) {
        // The system prompt is the agent's, in the pinned definition (run.created has its
        // hash); the ledger records what varies per call.
        events.push_back({node.id, attempt,
                          ledger::LlmRequest{model->provider_name, model->model, {}, prompt, 1}});
    }
    return events;
}

Run::Step Run::OnSuccess(const PlanNode& node, providers::Completion completion, int64_t latency_ms,
                         int64_t iteration, const AgentToolSet* tools) const {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    const auto& model = *runtime_->models[static_cast<size_t>(node.agent)];
    const int64_t attempt = ns.attempt;
    const int64_t turn = static_cast<int64_t>(ns.turns.size()) + 1;
    std::string content = ToValidUtf8(completion.content);
    const auto& usage = completion.usage;
    ledger::LlmResponse response{content,
                                 {},
                                 usage.input_tokens,
                                 usage.output_tokens,
                                 model.pricing.CostNanoUsd(usage),
                                 latency_ms,
                                 completion.finish_reason,
                                 turn};
    for (auto& call : completion.tool_calls) {
        // Back from the model-facing name ("server__tool") to ours ("server/tool").
        std::string name = call.name;
        if (tools != nullptr && tools->Find(name) == nullptr) {
            for (const auto& t : tools->tools) {
                std::string facing = t.name;
                if (auto slash = facing.find('/'); slash != std::string::npos)
                    facing.replace(slash, 1, "__");
                if (facing == name) name = t.name;
            }
        }
        response.tool_calls.push_back({call.id.empty()
                                           ? "call_" + std::to_string(turn) + "_" +
                                                 std::to_string(response.tool_calls.size() + 1)
                                           : call.id,
                                       std::move(name), ToValidUtf8(call.arguments)});
    }
    Step step;
    const bool wants_tools = !response.tool_calls.empty();
    step.events.reserve(wants_tools ? 1 + response.tool_calls.size() : node.loop ? 3 : 2);
    // Redaction changes what is recorded (these arguments too), never what a tool executes: a
    // call whose arguments hold a secret would run with arguments the ledger does not show, so
    // it is refused. Its result is committed with the response, so a resumed run sees it
    // finished and never runs it either.
    std::vector<ledger::NewEvent> refused;
    if (wants_tools && HaveSecrets()) {
        for (const auto& call : response.tool_calls) {
            if (!ContainsSecret(call.arguments)) continue;
            refused.push_back(
                {node.id, attempt,
                 ledger::ToolResult{call.id, std::string(kSecretInArguments), true, 0}});
        }
    }
    step.events.push_back({node.id, attempt, std::move(response)});
    if (wants_tools) {
        for (auto& event : refused) step.events.push_back(std::move(event));
        step.tools = true;
        return step;
    }
    // Totals over the attempt's turns (the response above is not applied yet).
    int64_t tokens_in = usage.input_tokens, tokens_out = usage.output_tokens;
    for (const auto& past : ns.turns) {
        tokens_in = SaturatingAdd(tokens_in, past.tokens_in);
        tokens_out = SaturatingAdd(tokens_out, past.tokens_out);
    }
    if (!node.loop) {
        step.events.push_back(
            {node.id, attempt,
             ledger::NodeCompleted{std::move(content), tokens_in, tokens_out, latency_ms, 0}});
        return step;
    }
    bool stop = ContainsIgnoreCase(content, node.until) || iteration >= node.max_iterations;
    step.events.push_back(
        {node.id, attempt,
         ledger::NodeIterationCompleted{iteration, content, tokens_in, tokens_out, latency_ms}});
    if (stop) {
        step.events.push_back(
            {node.id, attempt,
             ledger::NodeCompleted{std::move(content), SaturatingAdd(ns.tokens_in, tokens_in),
                                   SaturatingAdd(ns.tokens_out, tokens_out),
                                   ns.duration_ms + latency_ms, iteration}});
    }
    step.more = !stop;
    return step;
}

Run::Step Run::OnFailure(const PlanNode& node, const Error& error, int64_t iteration) {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    const int64_t attempt = ns.attempt;
    const std::string& error_text = error.message();
    const std::string code(ErrorCodeName(error.code()));
    Step step;
    if (node.error_mode == model::ErrorMode::kRetry && StepRetryable(error) &&
        ns.failures_in_iteration + 1 < node.max_attempts) {
        int64_t delay =
            BackoffDelayMs(node.backoff, ns.failures_in_iteration + 1, engine_->random_);
        auto due = engine_->clock_.Now() + std::chrono::milliseconds(delay);
        step.events.push_back(
            {node.id, attempt,
             ledger::NodeRetryScheduled{error_text, code, delay, due, iteration}});
        step.retry = true;
        return step;
    }
    if (node.error_mode == model::ErrorMode::kSkip) {
        spdlog::warn("run {}: step '{}' skipped after error: {}", state_.run_id, node.id,
                     error_text);
        if (node.loop && ns.iterations_done > 0) {
            // The loop stops; the iterations that completed stand.
            step.events.push_back({node.id, attempt,
                                   ledger::NodeCompleted{ns.output, ns.tokens_in, ns.tokens_out,
                                                         ns.duration_ms, ns.iterations_done}});
            return step;
        }
        step.events.push_back({node.id, attempt, ledger::NodeSkipped{"error", error_text}});
        step.result = NodeResult::kSkipped;
        return step;
    }
    std::string message;
    const char* what = plan_.dag ? "Node '" : "Step '";
    if (node.error_mode == model::ErrorMode::kRetry && StepRetryable(error)) {
        message = what + node.id + "' failed after " + std::to_string(node.max_attempts - 1) +
                  " retries: " + error_text;
    } else if (error.details().reason == "timeout") {
        message = what + node.id + "' timed out after " + FormatSeconds(node.timeout_ms);
    } else {
        message = what + node.id + "' failed: " + error_text;
    }
    if (plan_.dag) return DagFailure(node, error, std::move(message));
    step.events.push_back({node.id, attempt, ledger::NodeFailed{std::move(message), code}});
    step.result = NodeResult::kFailed;
    return step;
}

std::optional<Run::Step> Run::CheckBudgets(const PlanNode& node, int64_t new_tool_calls,
                                           int64_t hour_usage, int64_t iteration) {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    const auto* agent = plan_.AgentOf(node);
    const RunBudget run_limits = Budget();
    auto usd = [](double dollars) { return SaturatingFromDouble(dollars * 1e9 + 0.5); };
    struct Check {
        const char* scope;
        const char* limit;
        int64_t used;
        std::optional<int64_t> max;
        bool money;
    };
    std::vector<Check> checks;
    if (new_tool_calls > 0) {
        if (agent->limits.max_tool_calls) {
            checks.push_back({"step", "tool_calls", ns.spent_tool_calls + new_tool_calls,
                              *agent->limits.max_tool_calls, false});
        }
        if (run_limits.max_tool_calls) {
            checks.push_back({"run", "tool_calls", state_.tool_calls + new_tool_calls,
                              *run_limits.max_tool_calls, false});
        }
    } else {
        // Before a model call: a budget already used up stops it. (The response that crosses a
        // limit is recorded; the next call is refused.)
        if (agent->limits.max_tokens) {
            checks.push_back({"step", "tokens", ns.spent_tokens, *agent->limits.max_tokens, false});
        }
        if (agent->limits.max_cost_usd) {
            checks.push_back({"step", "cost_usd", ns.spent_cost_nano_usd,
                              usd(*agent->limits.max_cost_usd), true});
        }
        if (run_limits.max_tokens) {
            checks.push_back({"run", "tokens", SaturatingAdd(state_.tokens_in, state_.tokens_out),
                              *run_limits.max_tokens, false});
        }
        if (run_limits.max_cost_nano_usd) {
            checks.push_back(
                {"run", "cost_usd", state_.cost_nano_usd, *run_limits.max_cost_nano_usd, true});
        }
        if (hour_usage >= 0 && agent->limits.max_tokens_per_hour) {
            checks.push_back({"agent_hour", "tokens_per_hour", hour_usage,
                              *agent->limits.max_tokens_per_hour, false});
        }
    }
    for (const auto& check : checks) {
        bool over = new_tool_calls > 0 ? check.used > *check.max : check.used >= *check.max;
        if (!over) continue;
        std::string used = check.money ? ledger::FormatUsd(check.used) : std::to_string(check.used);
        std::string max = check.money ? ledger::FormatUsd(*check.max) : std::to_string(*check.max);
        std::string what = std::string(check.scope) == "run" ? "run" : "agent " + agent->name;
        Error error(ErrorCode::kResourceExhausted,
                    "budget exceeded: " + std::string(check.limit) + " " + used +
                        (new_tool_calls > 0 ? " > " : " >= ") + max + " (" + what +
                        (std::string(check.scope) == "agent_hour" ? ", last hour" : "") + ")",
                    ErrorDetails{0, -1, -1, "budget_exceeded"});
        Step step = OnFailure(node, error, iteration);
        step.events.insert(
            step.events.begin(),
            {node.id, ns.attempt, ledger::BudgetExceeded{check.scope, check.limit, used, max}});
        return step;
    }
    return std::nullopt;
}

std::vector<ledger::NewEvent> Run::BeginEvents(bool resumed) {
    std::vector<ledger::NewEvent> events;
    if (resumed) {
        events.push_back({{}, 0, ledger::RunResumed{notes().resume_reason, notes().resume_actor}});
    } else {
        events.push_back({{}, 0, ledger::RunStarted{}});
    }
    return events;
}

Run::Ending Run::EndEvents() const {
    // Called when nothing is running; decides whether (and how) the run stops now.
    Ending ending;
    ending.stop = true;
    if (cancel_requested_) {
        ending.events.push_back(
            {{}, 0, ledger::RunCancelled{notes_->cancel_reason, notes_->cancel_actor}});
    } else if (failed_) {
        ending.events.push_back({{},
                                 0,
                                 ledger::RunFailed{notes_->failure_message, notes_->failure_code,
                                                   notes_->failure_node}});
    } else if (pause_requested_) {
        ending.events.push_back(
            {{}, 0, ledger::RunPaused{notes_->pause_reason, notes_->pause_actor}});
    } else {
        bool all_done = true;
        bool waiting = false;
        for (const auto& node : plan_.nodes) {
            all_done = all_done &&
                       ledger::IsFinished(state_.nodes[static_cast<size_t>(node.index)].status);
            waiting = waiting || WaitsForHuman(node);
            if (Ready(node)) {
                ending.stop = false;  // more to run
                return ending;
            }
        }
        if (all_done) {
            ending.events.push_back(
                {{},
                 0,
                 ledger::RunCompleted{plan_.output_node >= 0 ? EffectiveOutput(plan_.output_node)
                                                             : DagOutput()}});
        } else if (!waiting) {
            // Nothing runnable, nothing running, nobody to wait for: only a broken plan.
            ending.events.push_back(
                {{}, 0, ledger::RunFailed{"internal error: run stalled", "internal", {}}});
        }
        // Waiting for a human: the run stops here, durable; its status says waiting.
    }
    return ending;
}

void Run::Spawn(std::shared_ptr<Run> self, std::unique_ptr<store::NewRun> record, bool continuing) {
    Run& r = *self;
    r.spawned_ = true;
    auto main = r.Main(self, std::move(record), continuing);
    // The spawned coroutine's cancellation state lives in main_signal_ and is torn down after
    // this handler returns: the run goes (or Main is spawned again) in a later handler.
    auto finish = [self = std::move(self)](std::exception_ptr thrown) mutable {
        Run& run = *self;
        run.spawned_ = false;
        auto executor = run.executor_;
        if (!thrown && run.parked_node_ >= 0) {
            asio::post(executor, [self = std::move(self)]() mutable {
                if (self->spawned_) return;  // spawned again: the new spawn holds the signal
                if (self->respawn_) {        // the call answered already
                    self->respawn_ = false;
                    Spawn(std::move(self), nullptr, true);
                    return;
                }
                // While the model thinks, the finished spawn's cancellation state (≈ 150 B)
                // is not kept. The call's completion handler holds the run.
                self->main_signal_.slot().clear();
            });
            return;
        }
        run.finished_ = true;
        Result<RunOutcome> outcome = run.FinalResult(thrown);
        Engine::OutcomeHandler done = std::move(run.done_);
        asio::post(executor, [self = std::move(self)] {});
        done(std::move(outcome));
        run.Shed();
    };
    asio::co_spawn(r.executor_, std::move(main),
                   asio::bind_cancellation_slot(r.main_signal_.slot(), std::move(finish)));
}

Awaitable<void> Run::Main(std::shared_ptr<Run> self, std::unique_ptr<store::NewRun> record,
                          bool continuing) {
    co_await asio::this_coro::throw_if_cancelled(false);
    if (!continuing) {
        const bool resumed = !record;
        if (record) {
            if (!co_await Create(std::move(record))) {
                // Refused (a store error), or an idempotency key used before: that run is the
                // outcome.
                create_failed_ = store_failed_;
                co_return;
            }
        }
        engine_->Register(state_.run_id, self);
        // Over the engine's cap on executing runs: wait, durable and pending, for a slot. A
        // cancel or pause meanwhile ends the wait (and the run, below) without starting it.
        run_slot_ = !engine_->run_slots_.limited();
        if (!run_slot_) {
            queued_ = true;
            bool granted = co_await engine_->run_slots_.Acquire();
            run_slot_ = granted;
            queued_ = false;
            co_await asio::this_coro::reset_cancellation_state();
            if (run_slot_ && (cancel_requested_ || pause_requested_)) {
                // Granted just as it was told to stop: pass the slot on, start nothing.
                engine_->run_slots_.Release();
                run_slot_ = false;
            }
        }
        if (run_slot_) co_await Begin(resumed);
    }
    while (!store_failed_) {
        if (join_cancelled_ && !co_await SettleDag()) break;
        const bool go = !cancel_requested_ && !failed_ && !pause_requested_;
        // The node whose parked call answered goes on first.
        int only = parked_node_;
        parked_node_ = -1;
        if (only < 0 && go) only = SoleReadyNode();
        if (only >= 0) {
            // Sequential steps (the common case) run on this coroutine: no spawn, no wake-up;
            // while the model thinks, the call is parked and no coroutine of the run exists.
            if (!in_flight_[static_cast<size_t>(only)]) {
                if (!inline_task_) inline_task_ = std::make_shared<Task>(executor_, &main_signal_);
                in_flight_[static_cast<size_t>(only)] = inline_task_;
                ++running_;
            }
            NodeResult result;
            if (plan_.nodes[static_cast<size_t>(only)].kind == model::NodeKind::kTyped) {
                result = co_await ExecuteTyped(only, inline_task_);
            } else {
                result = co_await ExecuteNode(only, inline_task_);
            }
            if (result == NodeResult::kParked) {
                parked_node_ = only;
                // A spawn that never suspended posts its completion, which then runs after
                // whatever is queued — in a burst of starts, after every other run's start,
                // so each run's spawn state would outlive its start-up and leave a hole among
                // the runs' memory (≈ 800 B per waiting run in W3). Suspending once, here, at
                // no cost (dispatch on our own executor runs at once), makes the spawn hand
                // over its completion directly.
                co_await asio::dispatch(asio::use_awaitable);
                co_return;
            }
            co_await asio::this_coro::reset_cancellation_state();
            OnNodeDone(only);
            continue;
        }
        if (go) StartReadyNodes();
        if (store_failed_) break;
        if (running_ > 0) {
            if (cancel_requested_ || failed_) CancelTasks();
            WakeTimer().expires_at(asio::steady_timer::time_point::max());
            co_await wake_->async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        if (co_await End()) break;
    }
    ending_.store(true, std::memory_order_release);
    // Wait for stragglers (only after a store error can nodes still be running here).
    while (running_ > 0) {
        CancelTasks();
        WakeTimer().expires_at(asio::steady_timer::time_point::max());
        co_await wake_->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    finished_ = true;
    if (run_slot_ && engine_->run_slots_.limited()) engine_->run_slots_.Release();
    engine_->Unregister(state_.run_id);
    co_await ReleaseLease();
    // A spawn that never suspended posts its completion, which then runs behind everything
    // queued — in a burst of starts, behind every other start — and what the run holds would
    // wait for it (≈ 4 KB per run in W1, new heap pages for every run). Suspending once here
    // (dispatch on our own executor runs at once) hands the completion over now, and it gives
    // that memory back (Shed).
    co_await asio::dispatch(asio::use_awaitable);
}

Awaitable<void> Run::Begin(bool resumed) {
    std::vector<ledger::NewEvent> begin = BeginEvents(resumed);
    co_await Append(std::move(begin), -1);
}

Awaitable<bool> Run::End() {
    Ending ending = EndEvents();
    if (!ending.stop) co_return false;
    if (!ending.events.empty()) co_await Append(std::move(ending.events), -1);
    co_return true;
}

Awaitable<void> Run::ReleaseLease() {
    (void)co_await engine_->store_->ReleaseLease(state_.run_id, engine_->options_.owner);
}

void Run::Shed() {
    // The run itself goes in a handler posted behind everything queued now — in a burst of
    // starts, behind every other start — so what it holds would pile up until then (≈ 4 KB per
    // run of W1: a new heap page every run).
    state_ = ledger::RunState();
    std::vector<std::shared_ptr<Task>>().swap(in_flight_);
    inline_task_.reset();
    wake_.reset();
}

Result<RunOutcome> Run::FinalResult(std::exception_ptr thrown) {
    if (!thrown && !create_failed_) return Outcome();
    Error error = thrown ? ThrownError(thrown) : *notes_->store_error;
    if (forget_if_thrown_ && error.code() == ErrorCode::kInternal) engine_->Unregister(run_id());
    return std::unexpected(std::move(error));
}

RunOutcome Run::Outcome() const {
    RunOutcome outcome;
    outcome.run_id = state_.run_id;
    if (existing_) {
        outcome.existing = true;
        outcome.status = existing_status_;
    } else {
        outcome.status = state_.status;
        outcome.output = state_.output;
        std::tie(outcome.tokens_in, outcome.tokens_out, outcome.cost_nano_usd) =
            std::tuple(state_.tokens_in, state_.tokens_out, state_.cost_nano_usd);
        outcome.error = state_.error();
        outcome.error_code =
            state_.error_code().empty() ? ErrorCode::kOk : ErrorCodeFromName(state_.error_code());
    }
    if (store_failed_ && notes_ && notes_->store_error) {
        outcome.error = "store error: " + notes_->store_error->message();
        outcome.error_code = notes_->store_error->code();
    }
    return outcome;
}

}  // namespace strowger::engine::internal
