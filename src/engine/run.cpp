#include "engine/internal/run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>

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

Error TimeoutError(const PlanNode& node) {
    ErrorDetails details;
    details.reason = "timeout";
    return Error(ErrorCode::kDeadlineExceeded, "timed out after " + FormatSeconds(node.timeout_ms),
                 details);
}

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
      wake_(executor_),
      state_(std::move(state)),
      in_flight_(plan_.nodes.size()) {
    state_.node_names = &plan_.node_ids;
}

Run::Notes& Run::notes() {
    if (!notes_) notes_ = std::make_unique<Notes>();
    return *notes_;
}

ledger::Event Run::SealCreated(const ledger::NewEvent& event) {
    auto now = engine_->clock_.Now();
    ledger::Event sealed = ledger::Seal(state_.head, state_.run_id, now, event);
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
        self->wake_.cancel();
    });
}

void Run::RequestPause(std::string reason, std::string actor) {
    asio::dispatch(executor_, [self = shared_from_this(), reason = std::move(reason),
                               actor = std::move(actor)]() mutable {
        if (self->pause_requested_ || self->finished_) return;
        self->pause_requested_ = true;
        self->notes().pause_reason = std::move(reason);
        self->notes().pause_actor = std::move(actor);
        self->wake_.cancel();
    });
}

// ---- Ledger -------------------------------------------------------------------------------

Awaitable<bool> Run::Create(std::unique_ptr<store::NewRun> record) {
    auto created = co_await engine_->store_->CreateRun(std::move(*record));
    if (!created) {
        store_failed_ = true;
        notes().store_error = created.error();
        co_return false;
    }
    if (created->created) co_return true;
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

Awaitable<bool> Run::Append(std::vector<ledger::NewEvent> events, int node_index) {
    if (store_failed_) co_return false;
    for (auto& event : events) RedactSecrets(event);
    std::vector<ledger::Event> sealed;
    sealed.reserve(events.size());
    for (auto& event : events) {
        auto now = engine_->clock_.Now();
        sealed.push_back(ledger::Seal(state_.head, state_.run_id, now, event));
        state_.Apply(now, event.node.empty() ? -1 : node_index, event);
    }
    std::vector<ledger::Event> notify;
    if (!engine_->observers_.empty()) {
        notify = sealed;
        for (size_t i = 0; i < notify.size(); ++i) {
            notify[i].run_id = state_.run_id;
            notify[i].data = ledger::EncodePayload(events[i].payload);
        }
    }
    auto appended =
        co_await engine_->store_->AppendEvents(state_.run_id, std::move(sealed), state_.status);
    if (!appended) {
        store_failed_ = true;
        notes().store_error = appended.error();
        spdlog::error("run {}: cannot append to the ledger: {}", state_.run_id,
                      appended.error().ToString());
        co_return false;
    }
    for (const auto& event : notify) engine_->Notify(event);
    co_return true;
}

// ---- Data flow ----------------------------------------------------------------------------

std::string Run::EffectiveOutput(int index) const {
    const auto& node_state = state_.nodes[static_cast<size_t>(index)];
    if (node_state.status == NodeStatus::kCompleted) return node_state.output;
    // Skipped: pass its own input through, so {{input}} downstream is unchanged.
    return InputOf(plan_.nodes[static_cast<size_t>(index)]);
}

std::string Run::InputOf(const PlanNode& node) const {
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
    return node.prompt.Render(
        [&](const model::Template::Segment& segment) -> std::optional<std::string_view> {
            if (segment.kind == model::Template::Segment::Kind::kInput) return input;
            for (int source : segment.sources) {
                const auto& s = state_.nodes[static_cast<size_t>(source)];
                if (s.status == NodeStatus::kCompleted) return std::string_view(s.output);
            }
            return std::nullopt;
        });
}

// ---- Scheduling ---------------------------------------------------------------------------

bool Run::Ready(const PlanNode& node) const {
    const auto& s = state_.nodes[static_cast<size_t>(node.index)];
    if (ledger::IsFinished(s.status) || in_flight_[static_cast<size_t>(node.index)]) return false;
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
    asio::co_spawn(
        executor_, ExecuteNode(index, std::move(task)),
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
    in_flight_[static_cast<size_t>(index)].reset();
    --running_;
    wake_.cancel();
}

void Run::FailRun(const PlanNode& node) {
    // Called as soon as node.failed is appended, not when the node's coroutine completes (its
    // completion handler is posted, and the scheduler must not start dependents meanwhile).
    if (failed_) return;
    failed_ = true;
    const auto& s = state_.nodes[static_cast<size_t>(node.index)];
    notes().failure_message = s.error;
    notes().failure_code = s.error_code;
    notes().failure_node = node.id;
    CancelTasks();  // fail fast: siblings (fan-out) stop now
    wake_.cancel();
}

void Run::CancelTasks() {
    for (auto& task : in_flight_) {
        if (task) task->signal->emit(asio::cancellation_type::terminal);
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

std::optional<Run::Step> Run::Prologue(const PlanNode& node) const {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    if (ns.status != NodeStatus::kPending) return std::nullopt;  // resumed: its gate passed
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
                         int64_t iteration) const {
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    const auto& model = *runtime_->models[static_cast<size_t>(node.agent)];
    const int64_t attempt = ns.attempt;
    std::string content = ToValidUtf8(completion.content);
    const auto& usage = completion.usage;
    Step step;
    step.events.push_back({node.id, attempt,
                           ledger::LlmResponse{content, usage.input_tokens, usage.output_tokens,
                                               model.pricing.CostNanoUsd(usage), latency_ms,
                                               completion.finish_reason, 1}});
    if (!node.loop) {
        step.events.push_back({node.id, attempt,
                               ledger::NodeCompleted{std::move(content), usage.input_tokens,
                                                     usage.output_tokens, latency_ms, 0}});
        return step;
    }
    bool stop = ContainsIgnoreCase(content, node.until) || iteration >= node.max_iterations;
    step.events.push_back({node.id, attempt,
                           ledger::NodeIterationCompleted{iteration, content, usage.input_tokens,
                                                          usage.output_tokens, latency_ms}});
    if (stop) {
        step.events.push_back(
            {node.id, attempt,
             ledger::NodeCompleted{std::move(content), ns.tokens_in + usage.input_tokens,
                                   ns.tokens_out + usage.output_tokens, ns.duration_ms + latency_ms,
                                   iteration}});
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
    if (node.error_mode == model::ErrorMode::kRetry) {
        message = "Step '" + node.id + "' failed after " + std::to_string(node.max_attempts - 1) +
                  " retries: " + error_text;
    } else if (error.details().reason == "timeout") {
        message = "Step '" + node.id + "' timed out after " + FormatSeconds(node.timeout_ms);
    } else {
        message = "Step '" + node.id + "' failed: " + error_text;
    }
    step.events.push_back({node.id, attempt, ledger::NodeFailed{std::move(message), code}});
    step.result = NodeResult::kFailed;
    return step;
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

std::vector<ledger::NewEvent> Run::EndEvents() const {
    // Called when nothing is running; decides whether (and how) the run stops now.
    std::vector<ledger::NewEvent> events;
    if (cancel_requested_) {
        events.push_back(
            {{}, 0, ledger::RunCancelled{notes_->cancel_reason, notes_->cancel_actor}});
    } else if (failed_) {
        events.push_back({{},
                          0,
                          ledger::RunFailed{notes_->failure_message, notes_->failure_code,
                                            notes_->failure_node}});
    } else if (pause_requested_) {
        events.push_back({{}, 0, ledger::RunPaused{notes_->pause_reason, notes_->pause_actor}});
    } else {
        bool all_done = true;
        for (const auto& s : state_.nodes) all_done = all_done && ledger::IsFinished(s.status);
        if (all_done) {
            events.push_back({{}, 0, ledger::RunCompleted{EffectiveOutput(plan_.output_node)}});
        } else {
            for (const auto& node : plan_.nodes) {
                if (Ready(node)) return events;  // more to run
            }
            // Nothing runnable and nothing running: only a broken plan gets here.
            events.push_back(
                {{}, 0, ledger::RunFailed{"internal error: run stalled", "internal", {}}});
        }
    }
    return events;
}

providers::CompletionRequest Run::BuildRequest(const PlanNode& node,
                                               const providers::ResolvedModel& model,
                                               const std::string& prompt, int64_t attempt) const {
    const auto* agent = plan_.AgentOf(node);
    providers::CompletionRequest request;
    request.model = model.model;
    if (!agent->system_prompt.empty()) {
        request.messages.push_back({providers::Role::kSystem, agent->system_prompt, {}, {}, {}});
    }
    request.messages.push_back({providers::Role::kUser, prompt, {}, {}, {}});
    request.temperature = agent->temperature;
    request.max_output_tokens = agent->max_output_tokens;
    request.run_id = state_.run_id;
    request.node = node.id;
    request.agent = agent->name;
    request.attempt = attempt;
    return request;
}

Deadline Run::ArmTimeout(const PlanNode& node, const std::shared_ptr<Task>& task) {
    // The attempt's timeout is enforced twice: the provider gets the deadline (so its I/O
    // expires on time), and this timer cancels the call outright if it is still running then.
    auto timeout = std::chrono::milliseconds(node.timeout_ms);
    Deadline deadline = Deadline::After(timeout);
    uint64_t generation = ++task->generation;
    task->in_call = true;
    task->timed_out = false;
    task->timer.expires_after(timeout);
    task->timer.async_wait([task, generation](boost::system::error_code ec) {
        if (ec || task->generation != generation || !task->in_call) return;
        task->timed_out = true;
        task->signal->emit(asio::cancellation_type::terminal);
    });
    return deadline;
}

void Run::DisarmTimeout(const PlanNode& node, Task& task, Deadline deadline,
                        Result<providers::Completion>& result) {
    task.in_call = false;
    task.timer.cancel();
    if (!result && (task.timed_out || (result.error().code() == ErrorCode::kDeadlineExceeded &&
                                       deadline.Expired()))) {
        result = std::unexpected(TimeoutError(node));
    }
}

// ---- Coroutines ---------------------------------------------------------------------------

Awaitable<Run::NodeResult> Run::ExecuteNode(int index, std::shared_ptr<Task> task) {
    co_await asio::this_coro::throw_if_cancelled(false);
    const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
    if (std::optional<Step> early = Prologue(node)) {
        NodeResult result = early->result;
        if (!co_await Append(std::move(early->events), index)) co_return NodeResult::kStoreError;
        co_return result;
    }
    const ledger::NodeState& ns = state_.nodes[static_cast<size_t>(index)];
    const Result<providers::ResolvedModel>& model =
        runtime_->models[static_cast<size_t>(node.agent)];
    for (int64_t iteration = FirstIteration(node);; ++iteration) {
        std::string prompt = PromptFor(node, iteration);
        Step step;
        do {  // attempts
            if (ns.status == NodeStatus::kRetryWaiting) {
                if (!co_await SleepUntil(ns.retry_due)) co_return NodeResult::kCancelled;
                co_await asio::this_coro::reset_cancellation_state();
            }
            if (cancel_requested_ || failed_) co_return NodeResult::kCancelled;
            std::vector<ledger::NewEvent> start =
                StartEvents(node, ns.attempt + 1, iteration, prompt);
            if (!co_await Append(std::move(start), index)) co_return NodeResult::kStoreError;
            // Observers run inside Append and may have cancelled the run (or a sibling failed).
            if (cancel_requested_ || failed_) co_return NodeResult::kCancelled;
            auto started = engine_->clock_.SteadyNow();
            Result<providers::Completion> result = std::unexpected(model ? Error() : model.error());
            if (model) {
                Deadline deadline = ArmTimeout(node, task);
                // Made in its own statement so the request is gone before the wait (as a
                // temporary of the co_await it would sit in this frame while the model thinks).
                auto call = model->provider->Complete(
                    BuildRequest(node, *model, prompt, ns.attempt), deadline);
                result = co_await std::move(call);
                DisarmTimeout(node, *task, deadline, result);
                co_await asio::this_coro::reset_cancellation_state();
            }
            // Interrupted because the run is ending (cancelled, or another node failed): the
            // run's terminal event closes this node; there is no failure of its own to record.
            if (cancel_requested_ || failed_) co_return NodeResult::kCancelled;
            int64_t latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                     engine_->clock_.SteadyNow() - started)
                                     .count();
            step = result ? OnSuccess(node, std::move(*result), latency_ms, iteration)
                          : OnFailure(node, result.error(), iteration);
            if (!co_await Append(std::move(step.events), index)) co_return NodeResult::kStoreError;
        } while (step.retry);
        if (step.result == NodeResult::kFailed) FailRun(node);
        if (!step.more) co_return step.result;
    }
}

Awaitable<Result<RunOutcome>> Run::Main(std::shared_ptr<Run> self,
                                        std::unique_ptr<store::NewRun> record) {
    co_await asio::this_coro::throw_if_cancelled(false);
    const bool resumed = !record;
    if (record) {
        bool created = co_await Create(std::move(record));
        if (!created && store_failed_) co_return std::unexpected(*notes_->store_error);
        if (!created) co_return Outcome();
    }
    engine_->Register(state_.run_id, self);
    {
        std::vector<ledger::NewEvent> begin = BeginEvents(resumed);
        co_await Append(std::move(begin), -1);
    }
    while (!store_failed_) {
        if (!cancel_requested_ && !failed_ && !pause_requested_) {
            if (int only = SoleReadyNode(); only >= 0) {
                // Sequential steps (the common case) run on this coroutine: no spawn, no
                // wake-up, no extra frame while the model thinks.
                if (!inline_task_) inline_task_ = std::make_shared<Task>(executor_, &main_signal_);
                in_flight_[static_cast<size_t>(only)] = inline_task_;
                ++running_;
                co_await ExecuteNode(only, inline_task_);
                co_await asio::this_coro::reset_cancellation_state();
                OnNodeDone(only);
                continue;
            }
            StartReadyNodes();
        }
        if (store_failed_) break;
        if (running_ > 0) {
            if (cancel_requested_ || failed_) CancelTasks();
            wake_.expires_at(asio::steady_timer::time_point::max());
            co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        std::vector<ledger::NewEvent> end = EndEvents();
        if (end.empty()) continue;
        co_await Append(std::move(end), -1);
        break;
    }
    // Wait for stragglers (only after a store error can nodes still be running here).
    while (running_ > 0) {
        CancelTasks();
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    finished_ = true;
    engine_->Unregister(state_.run_id);
    (void)co_await engine_->store_->ReleaseLease(state_.run_id, engine_->options_.owner);
    co_return Outcome();
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
        outcome.error = state_.error;
        outcome.error_code =
            state_.error_code.empty() ? ErrorCode::kOk : ErrorCodeFromName(state_.error_code);
    }
    if (store_failed_ && notes_ && notes_->store_error) {
        outcome.error = "store error: " + notes_->store_error->message();
        outcome.error_code = notes_->store_error->code();
    }
    return outcome;
}

}  // namespace strowger::engine::internal
