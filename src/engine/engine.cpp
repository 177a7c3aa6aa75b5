#include "engine/engine.hpp"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/strand.hpp>

#include <map>
#include <mutex>
#include <unordered_map>

#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine/backoff.hpp"
#include "ledger/chain.hpp"
#include "model/loader.hpp"

namespace strowger::engine {

using ledger::NodeStatus;
using ledger::RunStatus;
using model::PlanNode;

namespace {

std::string DefaultOwner(Random& random) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    return std::string(host) + ":" + std::to_string(getpid()) + ":" +
           std::to_string(random.Next() % 1000000);
}

// "120s", or "1.5s" for timeouts given in milliseconds.
std::string FormatSeconds(int64_t ms) {
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    std::string text = std::to_string(ms / 1000) + "." + std::to_string(1000 + ms % 1000).substr(1);
    while (text.back() == '0') text.pop_back();
    return text + "s";
}

// Whether error_mode retry may try again after `error`: everything but budget exhaustion and
// cancellation (LibreFang retries any failure; budgets are final by definition).
bool StepRetryable(const Error& error) {
    return error.code() != ErrorCode::kCancelled && error.code() != ErrorCode::kResourceExhausted;
}

}  // namespace

// The compiled plan of a definition plus the providers its agents resolved to.
struct PlanRuntime {
    std::shared_ptr<const model::Plan> plan;
    std::vector<Result<providers::ResolvedModel>> models;  // by plan agent index
};

class Run;

class Engine::Impl : public std::enable_shared_from_this<Engine::Impl> {
  public:
    Impl(Executor executor, std::shared_ptr<store::Store> store,
         providers::ProviderRegistry& providers, EngineOptions options, Clock& clock,
         Random& random)
        : executor_(std::move(executor)),
          store_(std::move(store)),
          providers_(providers),
          options_(std::move(options)),
          clock_(clock),
          random_(random) {
        if (options_.owner.empty()) options_.owner = DefaultOwner(random_);
    }

    std::shared_ptr<PlanRuntime> RuntimeFor(std::shared_ptr<const model::Plan> plan) {
        std::lock_guard lock(mutex_);
        auto& slot = runtimes_[plan->definition_sha256];
        if (slot && slot->plan == plan) return slot;
        if (slot && slot->plan->definition_sha256 == plan->definition_sha256) return slot;
        auto runtime = std::make_shared<PlanRuntime>();
        runtime->plan = plan;
        for (const auto& agent : plan->agents) {
            runtime->models.push_back(providers_.Resolve(agent.model, agent.base_dir));
        }
        slot = runtime;
        return runtime;
    }

    Awaitable<Result<RunOutcome>> Create(StartRequest request, std::shared_ptr<Run>* run_out);
    Awaitable<Result<RunOutcome>> Execute(std::shared_ptr<Run> run, bool resumed,
                                          std::string reason, std::string actor);
    Awaitable<Result<RunOutcome>> Resume(std::string run_id, std::string reason, std::string actor);

    void Register(const std::string& run_id, std::shared_ptr<Run> run) {
        std::lock_guard lock(mutex_);
        active_[run_id] = std::move(run);
    }
    void Unregister(const std::string& run_id) {
        std::lock_guard lock(mutex_);
        active_.erase(run_id);
    }
    std::shared_ptr<Run> Find(const std::string& run_id) {
        std::lock_guard lock(mutex_);
        auto it = active_.find(run_id);
        return it == active_.end() ? nullptr : it->second;
    }
    std::vector<std::shared_ptr<Run>> All() {
        std::lock_guard lock(mutex_);
        std::vector<std::shared_ptr<Run>> out;
        for (auto& [id, run] : active_) out.push_back(run);
        return out;
    }
    size_t ActiveCount() const {
        std::lock_guard lock(mutex_);
        return active_.size();
    }

    void Notify(const ledger::Event& event) {
        for (auto* observer : observers_) observer->OnEvent(event);
    }
    void NotifyDelta(std::string_view run_id, std::string_view node, std::string_view text) {
        for (auto* observer : observers_) observer->OnDelta(run_id, node, text);
    }

    Executor executor_;
    std::shared_ptr<store::Store> store_;
    providers::ProviderRegistry& providers_;
    EngineOptions options_;
    Clock& clock_;
    Random& random_;
    std::vector<Observer*> observers_;  // set up before runs start

    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<Run>> active_;  // GUARDED_BY(mutex_)
    std::map<std::string, std::shared_ptr<PlanRuntime>> runtimes_;  // GUARDED_BY(mutex_)
};

// One run being executed: the actor that owns its state. Everything below runs on strand_.
class Run : public std::enable_shared_from_this<Run> {
  public:
    Run(std::shared_ptr<Engine::Impl> engine, std::shared_ptr<PlanRuntime> runtime,
        ledger::RunState state)
        : engine_(std::move(engine)),
          runtime_(std::move(runtime)),
          plan_(*runtime_->plan),
          strand_(asio::make_strand(engine_->executor_)),
          wake_(strand_),
          state_(std::move(state)),
          in_flight_(plan_.nodes.size()) {}

    const std::string& run_id() const { return state_.run_id; }
    const ledger::RunState& state() const { return state_; }
    asio::strand<Executor>& strand() { return strand_; }

    // Appends the first events of a new run (before it is stored) without a store call.
    ledger::Event SealCreated(const ledger::NewEvent& event) {
        auto now = engine_->clock_.Now();
        ledger::Event sealed = ledger::Seal(state_.head, state_.run_id, now, event);
        state_.Apply(now, -1, event);
        return sealed;
    }

    void RequestCancel(std::string reason, std::string actor) {
        asio::dispatch(strand_, [self = shared_from_this(), reason = std::move(reason),
                                 actor = std::move(actor)]() mutable {
            if (self->cancel_requested_ || self->finished_) return;
            self->cancel_requested_ = true;
            self->cancel_reason_ = std::move(reason);
            self->cancel_actor_ = std::move(actor);
            self->CancelTasks();
            self->wake_.cancel();
        });
    }

    void RequestPause(std::string reason, std::string actor) {
        asio::dispatch(strand_, [self = shared_from_this(), reason = std::move(reason),
                                 actor = std::move(actor)]() mutable {
            if (self->pause_requested_ || self->finished_) return;
            self->pause_requested_ = true;
            self->pause_reason_ = std::move(reason);
            self->pause_actor_ = std::move(actor);
            self->wake_.cancel();
        });
    }

    Awaitable<RunOutcome> Execute(bool resumed, std::string reason, std::string actor);

  private:
    enum class NodeResult { kCompleted, kSkipped, kFailed, kCancelled, kStoreError };

    // What a node task shares with the timers and callbacks that may outlive a coroutine.
    struct Task {
        explicit Task(asio::strand<Executor>& strand) : timer(strand) {}
        asio::cancellation_signal signal;
        asio::steady_timer timer;
        uint64_t generation = 0;
        bool in_call = false;
        bool timed_out = false;
    };

    Awaitable<Status> Append(std::vector<ledger::NewEvent> events);
    // One event. GCC 12 miscompiles a braced prvalue argument inside a co_await expression
    // (it frees it twice), so coroutines build events in named locals and move them in.
    Awaitable<Status> AppendOne(ledger::NewEvent event);
    Awaitable<NodeResult> ExecuteNode(int index, std::shared_ptr<Task> task);
    Awaitable<Result<providers::Completion>> CallModel(const PlanNode& node,
                                                       const providers::ResolvedModel& model,
                                                       std::string prompt, int64_t attempt,
                                                       Task& task, std::shared_ptr<Task> task_ref);
    Awaitable<bool> SleepUntil(SystemTime due);
    void StartNode(int index);
    void OnNodeDone(int index, NodeResult result);
    void FailRun(const PlanNode& node);
    void CancelTasks();
    bool Ready(const PlanNode& node) const;
    std::string EffectiveOutput(int index) const;
    std::string InputOf(const PlanNode& node) const;
    std::string Render(const PlanNode& node, std::string_view input) const;
    RunOutcome Outcome() const;

    std::shared_ptr<Engine::Impl> engine_;
    std::shared_ptr<PlanRuntime> runtime_;
    const model::Plan& plan_;
    asio::strand<Executor> strand_;
    asio::steady_timer wake_;
    ledger::RunState state_;

    std::vector<std::shared_ptr<Task>> in_flight_;  // by node index; null = not running
    size_t running_ = 0;
    bool cancel_requested_ = false;
    std::string cancel_reason_, cancel_actor_;
    bool pause_requested_ = false;
    std::string pause_reason_, pause_actor_;
    bool failed_ = false;
    std::string failure_message_, failure_code_, failure_node_;
    std::optional<Error> store_error_;
    bool finished_ = false;
};

Awaitable<Status> Run::Append(std::vector<ledger::NewEvent> events) {
    if (store_error_) co_return std::unexpected(*store_error_);
    std::vector<ledger::Event> sealed;
    sealed.reserve(events.size());
    for (auto& event : events) {
        int node_index = -1;
        if (!event.node.empty()) {
            if (const auto* node = plan_.FindNode(event.node)) node_index = node->index;
        }
        auto now = engine_->clock_.Now();
        sealed.push_back(ledger::Seal(state_.head, state_.run_id, now, event));
        state_.Apply(now, node_index, event);
    }
    std::vector<ledger::Event> notify;
    if (!engine_->observers_.empty()) notify = sealed;
    auto appended =
        co_await engine_->store_->AppendEvents(state_.run_id, std::move(sealed), state_.status);
    if (!appended) {
        store_error_ = appended.error();
        spdlog::error("run {}: cannot append to the ledger: {}", state_.run_id,
                      appended.error().ToString());
        co_return std::unexpected(appended.error());
    }
    for (const auto& event : notify) engine_->Notify(event);
    co_return OkStatus();
}

Awaitable<Status> Run::AppendOne(ledger::NewEvent event) {
    std::vector<ledger::NewEvent> events;
    events.push_back(std::move(event));
    co_return co_await Append(std::move(events));
}

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

void Run::CancelTasks() {
    for (auto& task : in_flight_) {
        if (task) task->signal.emit(asio::cancellation_type::terminal);
    }
}

void Run::StartNode(int index) {
    auto task = std::make_shared<Task>(strand_);
    in_flight_[static_cast<size_t>(index)] = task;
    ++running_;
    asio::co_spawn(
        strand_, ExecuteNode(index, task),
        asio::bind_cancellation_slot(
            task->signal.slot(),
            [self = shared_from_this(), index](std::exception_ptr error, NodeResult result) {
                if (error) {
                    // Our coroutines report failures as values; an exception here is
                    // a bug in a dependency. Fail the run rather than lose it.
                    try {
                        std::rethrow_exception(error);
                    } catch (const std::exception& e) {
                        spdlog::error("run {}: node {} threw: {}", self->run_id(),
                                      self->plan_.nodes[static_cast<size_t>(index)].id, e.what());
                    }
                    result = NodeResult::kStoreError;
                    if (!self->store_error_) {
                        self->store_error_ = Error(ErrorCode::kInternal, "node execution threw");
                    }
                }
                self->OnNodeDone(index, result);
            }));
}

void Run::OnNodeDone(int index, NodeResult result) {
    (void)result;  // the node's outcome is already in state_ (and failed_, see FailRun)
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
    failure_message_ = s.error;
    failure_code_ = s.error_code;
    failure_node_ = node.id;
    CancelTasks();  // fail fast: siblings (fan-out) stop now
    wake_.cancel();
}

Awaitable<bool> Run::SleepUntil(SystemTime due) {
    auto delay = due - engine_->clock_.Now();
    if (delay <= SystemTime::duration::zero()) co_return !cancel_requested_;
    asio::steady_timer timer(strand_);
    timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay));
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec && !cancel_requested_;
}

Awaitable<Result<providers::Completion>> Run::CallModel(const PlanNode& node,
                                                        const providers::ResolvedModel& model,
                                                        std::string prompt, int64_t attempt,
                                                        Task& task,
                                                        std::shared_ptr<Task> task_ref) {
    const auto* agent = plan_.AgentOf(node);
    providers::CompletionRequest request;
    request.model = model.model;
    if (!agent->system_prompt.empty()) {
        request.messages.push_back({providers::Role::kSystem, agent->system_prompt, {}, {}, {}});
    }
    request.messages.push_back({providers::Role::kUser, std::move(prompt), {}, {}, {}});
    request.temperature = agent->temperature;
    request.max_output_tokens = agent->max_output_tokens;
    request.run_id = state_.run_id;
    request.node = node.id;
    request.agent = agent->name;
    request.attempt = attempt;

    // The attempt's timeout is enforced twice: the provider gets the deadline (so its I/O
    // expires on time), and a timer cancels the call outright if it is still running then.
    auto timeout = std::chrono::milliseconds(node.timeout_ms);
    Deadline deadline = Deadline::After(timeout);
    uint64_t generation = ++task.generation;
    task.in_call = true;
    task.timed_out = false;
    task.timer.expires_after(timeout);
    task.timer.async_wait([task_ref, generation](boost::system::error_code ec) {
        if (ec || task_ref->generation != generation || !task_ref->in_call) return;
        task_ref->timed_out = true;
        task_ref->signal.emit(asio::cancellation_type::terminal);
    });
    auto result = co_await model.provider->Complete(std::move(request), deadline);
    task.in_call = false;
    task.timer.cancel();
    if (!result && (task.timed_out || (result.error().code() == ErrorCode::kDeadlineExceeded &&
                                       deadline.Expired()))) {
        ErrorDetails details;
        details.reason = "timeout";
        co_return MakeError(ErrorCode::kDeadlineExceeded,
                            "timed out after " + FormatSeconds(node.timeout_ms), details);
    }
    co_return result;
}

Awaitable<Run::NodeResult> Run::ExecuteNode(int index, std::shared_ptr<Task> task) {
    co_await asio::this_coro::throw_if_cancelled(false);
    const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
    ledger::NodeState& ns = state_.nodes[static_cast<size_t>(index)];
    const std::string input = InputOf(node);

    if (ns.status == NodeStatus::kPending) {
        if (node.conditional && !ContainsIgnoreCase(input, node.condition)) {
            ledger::NewEvent skipped{node.id, 0, ledger::NodeSkipped{"condition_not_met", {}}};
            auto ok = co_await AppendOne(std::move(skipped));
            co_return ok ? NodeResult::kSkipped : NodeResult::kStoreError;
        }
        if (node.kind == model::NodeKind::kCollect) {
            ledger::NewEvent collected{node.id, 0, ledger::NodeCompleted{input, 0, 0, 0, 0}};
            auto ok = co_await AppendOne(std::move(collected));
            co_return ok ? NodeResult::kCompleted : NodeResult::kStoreError;
        }
    }

    const auto& model = runtime_->models[static_cast<size_t>(node.agent)];
    int64_t iteration = 0;
    if (node.loop) {
        iteration = std::max<int64_t>(1, ns.iteration);
        if (ns.iterations_done >= iteration) iteration = ns.iterations_done + 1;
    }

    while (true) {  // iterations (one for a non-loop node)
        const std::string iteration_input = (node.loop && iteration > 1) ? ns.output : input;
        const std::string prompt = Render(node, iteration_input);
        providers::Completion completion;
        int64_t latency_ms = 0;
        while (true) {  // attempts
            if (ns.status == NodeStatus::kRetryWaiting) {
                if (!co_await SleepUntil(ns.retry_due)) co_return NodeResult::kCancelled;
                co_await asio::this_coro::reset_cancellation_state();
            }
            if (cancel_requested_ || failed_) co_return NodeResult::kCancelled;
            const int64_t attempt = ns.attempt + 1;
            const bool new_iteration = node.loop && iteration != ns.iteration;
            std::vector<ledger::NewEvent> start;
            start.push_back({node.id, attempt, ledger::NodeStarted{iteration}});
            if (model) {
                start.push_back(
                    {node.id, attempt,
                     ledger::LlmRequest{model->provider_name, model->model,
                                        plan_.AgentOf(node)->system_prompt, prompt, 1}});
            }
            (void)new_iteration;
            if (!co_await Append(std::move(start))) co_return NodeResult::kStoreError;

            Result<providers::Completion> result = std::unexpected(model ? Error() : model.error());
            auto started = engine_->clock_.SteadyNow();
            if (model) {
                result = co_await CallModel(node, *model, prompt, attempt, *task, task);
                co_await asio::this_coro::reset_cancellation_state();
            }
            latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             engine_->clock_.SteadyNow() - started)
                             .count();
            // Interrupted because the run is ending (cancelled, or another node failed): the
            // run's terminal event closes this node; there is no failure of its own to record.
            if (cancel_requested_ || failed_) co_return NodeResult::kCancelled;
            if (result) {
                completion = std::move(*result);
                completion.content = ToValidUtf8(completion.content);
                break;
            }

            const Error& error = result.error();
            const bool timed_out = error.details().reason == "timeout";
            const std::string error_text = error.message();
            if (node.error_mode == model::ErrorMode::kRetry && StepRetryable(error) &&
                ns.failures_in_iteration + 1 < node.max_attempts) {
                int64_t delay =
                    BackoffDelayMs(node.backoff, ns.failures_in_iteration + 1, engine_->random_);
                auto due = engine_->clock_.Now() + std::chrono::milliseconds(delay);
                ledger::NewEvent retry{
                    node.id, attempt,
                    ledger::NodeRetryScheduled{error_text, std::string(ErrorCodeName(error.code())),
                                               delay, due, iteration}};
                if (!co_await AppendOne(std::move(retry))) {
                    co_return NodeResult::kStoreError;
                }
                continue;
            }
            if (node.error_mode == model::ErrorMode::kSkip) {
                spdlog::warn("run {}: step '{}' skipped after error: {}", state_.run_id, node.id,
                             error_text);
                if (node.loop && ns.iterations_done > 0) {
                    // The loop stops; the iterations that completed stand.
                    ledger::NewEvent loop_done{
                        node.id, attempt,
                        ledger::NodeCompleted{ns.output, ns.tokens_in, ns.tokens_out,
                                              ns.duration_ms, ns.iterations_done}};
                    if (!co_await AppendOne(std::move(loop_done))) {
                        co_return NodeResult::kStoreError;
                    }
                    co_return NodeResult::kCompleted;
                }
                ledger::NewEvent skipped{node.id, attempt,
                                         ledger::NodeSkipped{"error", error_text}};
                if (!co_await AppendOne(std::move(skipped))) {
                    co_return NodeResult::kStoreError;
                }
                co_return NodeResult::kSkipped;
            }
            std::string message;
            if (node.error_mode == model::ErrorMode::kRetry) {
                message = "Step '" + node.id + "' failed after " +
                          std::to_string(node.max_attempts - 1) + " retries: " + error_text;
            } else if (timed_out) {
                message =
                    "Step '" + node.id + "' timed out after " + FormatSeconds(node.timeout_ms);
            } else {
                message = "Step '" + node.id + "' failed: " + error_text;
            }
            ledger::NewEvent failed{
                node.id, attempt,
                ledger::NodeFailed{message, std::string(ErrorCodeName(error.code()))}};
            if (!co_await AppendOne(std::move(failed))) {
                co_return NodeResult::kStoreError;
            }
            FailRun(node);
            co_return NodeResult::kFailed;
        }

        // The attempt succeeded.
        const int64_t attempt = ns.attempt;
        int64_t cost = model->pricing.CostNanoUsd(completion.usage);
        std::vector<ledger::NewEvent> done;
        done.push_back({node.id, attempt,
                        ledger::LlmResponse{completion.content, completion.usage.input_tokens,
                                            completion.usage.output_tokens, cost, latency_ms,
                                            completion.finish_reason, 1}});
        if (!node.loop) {
            done.push_back({node.id, attempt,
                            ledger::NodeCompleted{completion.content, completion.usage.input_tokens,
                                                  completion.usage.output_tokens, latency_ms, 0}});
            if (!co_await Append(std::move(done))) co_return NodeResult::kStoreError;
            co_return NodeResult::kCompleted;
        }
        done.push_back({node.id, attempt,
                        ledger::NodeIterationCompleted{
                            iteration, completion.content, completion.usage.input_tokens,
                            completion.usage.output_tokens, latency_ms}});
        bool stop =
            ContainsIgnoreCase(completion.content, node.until) || iteration >= node.max_iterations;
        if (stop) {
            done.push_back({node.id, attempt,
                            ledger::NodeCompleted{completion.content,
                                                  ns.tokens_in + completion.usage.input_tokens,
                                                  ns.tokens_out + completion.usage.output_tokens,
                                                  ns.duration_ms + latency_ms, iteration}});
        }
        if (!co_await Append(std::move(done))) co_return NodeResult::kStoreError;
        if (stop) co_return NodeResult::kCompleted;
        ++iteration;
    }
}

Awaitable<RunOutcome> Run::Execute(bool resumed, std::string reason, std::string actor) {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto self = shared_from_this();
    if (resumed) {
        ledger::NewEvent resumed{{}, 0, ledger::RunResumed{std::move(reason), std::move(actor)}};
        co_await AppendOne(std::move(resumed));
    } else {
        ledger::NewEvent started{{}, 0, ledger::RunStarted{}};
        co_await AppendOne(std::move(started));
    }
    while (!store_error_) {
        if (cancel_requested_ || failed_) {
            if (running_ > 0) {
                CancelTasks();
            } else if (cancel_requested_) {
                ledger::NewEvent cancelled{
                    {}, 0, ledger::RunCancelled{cancel_reason_, cancel_actor_}};
                co_await AppendOne(std::move(cancelled));
                break;
            } else {
                ledger::NewEvent run_failed{
                    {}, 0, ledger::RunFailed{failure_message_, failure_code_, failure_node_}};
                co_await AppendOne(std::move(run_failed));
                break;
            }
        } else {
            // A node may finish inside StartNode (co_spawn runs it inline on our strand until
            // it first suspends), failing the run or readying others: re-check after each.
            bool started = true;
            while (started && !pause_requested_ && !failed_ && !cancel_requested_) {
                started = false;
                for (const auto& node : plan_.nodes) {
                    if (failed_ || cancel_requested_) break;
                    if (Ready(node)) {
                        StartNode(node.index);
                        started = true;
                    }
                }
            }
            if (failed_ || cancel_requested_) continue;
            if (running_ == 0) {
                if (pause_requested_) {
                    ledger::NewEvent paused{{}, 0, ledger::RunPaused{pause_reason_, pause_actor_}};
                    co_await AppendOne(std::move(paused));
                    break;
                }
                bool all_done = true;
                for (const auto& s : state_.nodes)
                    all_done = all_done && ledger::IsFinished(s.status);
                if (all_done) {
                    ledger::NewEvent completed{
                        {}, 0, ledger::RunCompleted{EffectiveOutput(plan_.output_node)}};
                    co_await AppendOne(std::move(completed));
                } else {
                    // Nothing runnable and nothing running: only a broken plan gets here.
                    ledger::NewEvent stalled{
                        {}, 0, ledger::RunFailed{"internal error: run stalled", "internal", {}}};
                    co_await AppendOne(std::move(stalled));
                }
                break;
            }
        }
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    // Wait for stragglers (only after a store error can nodes still be running here).
    while (running_ > 0) {
        CancelTasks();
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    finished_ = true;
    co_return Outcome();
}

RunOutcome Run::Outcome() const {
    RunOutcome outcome;
    outcome.run_id = state_.run_id;
    outcome.status = state_.status;
    outcome.output = state_.output;
    outcome.error = state_.error;
    outcome.error_code =
        state_.error_code.empty() ? ErrorCode::kOk : ErrorCodeFromName(state_.error_code);
    if (store_error_) {
        outcome.error = "store error: " + store_error_->message();
        outcome.error_code = store_error_->code();
    }
    return outcome;
}

Awaitable<Result<RunOutcome>> Engine::Impl::Create(StartRequest request,
                                                   std::shared_ptr<Run>* run_out) {
    if (!request.plan) co_return InvalidArgumentError("no plan");
    auto runtime = RuntimeFor(request.plan);
    ledger::RunState state(request.plan->nodes.size());
    state.run_id = NewRunId(clock_, random_);
    auto run = std::make_shared<Run>(shared_from_this(), runtime, std::move(state));

    store::NewRun new_run;
    new_run.run_id = run->run_id();
    new_run.workflow = request.plan->workflow_name;
    new_run.definition_sha256 = request.plan->definition_sha256;
    new_run.definition_json = request.plan->definition_json;
    new_run.idempotency_key = request.idempotency_key;
    new_run.events.push_back(run->SealCreated(
        {{},
         0,
         ledger::RunCreated{request.plan->workflow_name, request.plan->definition_sha256,
                            ToValidUtf8(request.input), request.idempotency_key,
                            request.rerun_of}}));
    new_run.status = RunStatus::kPending;
    if (run_out) {
        new_run.owner = options_.owner;
        new_run.lease_until = clock_.Now() + options_.lease_duration;
    }
    auto created = co_await store_->CreateRun(std::move(new_run));
    if (!created) co_return std::unexpected(created.error());
    RunOutcome outcome;
    outcome.run_id = created->run_id;
    if (!created->created) {
        auto record = co_await store_->GetRun(created->run_id);
        if (!record) co_return std::unexpected(record.error());
        outcome.status = record->status;
        outcome.existing = true;
        co_return outcome;
    }
    for (auto* observer : observers_) {
        // The creation event is committed with the run.
        (void)observer;
    }
    outcome.status = RunStatus::kPending;
    if (run_out) *run_out = run;
    co_return outcome;
}

Awaitable<Result<RunOutcome>> Engine::Impl::Execute(std::shared_ptr<Run> run, bool resumed,
                                                    std::string reason, std::string actor) {
    Register(run->run_id(), run);
    auto outcome = co_await asio::co_spawn(
        run->strand(), run->Execute(resumed, std::move(reason), std::move(actor)),
        asio::use_awaitable);
    Unregister(run->run_id());
    (void)co_await store_->ReleaseLease(run->run_id(), options_.owner);
    co_return outcome;
}

Awaitable<Result<RunOutcome>> Engine::Impl::Resume(std::string run_id, std::string reason,
                                                   std::string actor) {
    if (Find(run_id))
        co_return FailedPreconditionError("run " + run_id + " is already executing here");
    STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await store_->GetRun(run_id));
    if (ledger::IsTerminal(record.status)) {
        co_return FailedPreconditionError("run " + run_id + " is " +
                                          std::string(ledger::RunStatusName(record.status)) +
                                          "; only unfinished runs can be resumed");
    }
    STROWGER_CO_ASSIGN_OR_RETURN(
        bool leased,
        co_await store_->TryLease(run_id, options_.owner, clock_.Now() + options_.lease_duration));
    if (!leased) {
        co_return MakeError(ErrorCode::kAborted,
                            "run " + run_id + " is being executed by " + record.owner);
    }
    STROWGER_CO_ASSIGN_OR_RETURN(auto definition,
                                 co_await store_->GetDefinition(record.definition_sha256));
    std::shared_ptr<const model::Plan> plan;
    {
        std::lock_guard lock(mutex_);
        auto it = runtimes_.find(record.definition_sha256);
        if (it != runtimes_.end()) plan = it->second->plan;
    }
    if (!plan) {
        STROWGER_CO_ASSIGN_OR_RETURN(plan,
                                     CompileSnapshot(definition, CompileOptionsFor(providers_)));
    }
    store::EventQuery all_events;
    STROWGER_CO_ASSIGN_OR_RETURN(auto events, co_await store_->ReadEvents(run_id, all_events));
    STROWGER_CO_ASSIGN_OR_RETURN(auto state, ReplayRun(*plan, events));
    if (state.head.seq != record.head.seq || state.head.hash != record.head.hash) {
        co_return DataLossError("run " + run_id + ": ledger does not match its recorded head");
    }
    auto run = std::make_shared<Run>(shared_from_this(), RuntimeFor(plan), std::move(state));
    co_return co_await Execute(run, true, std::move(reason), std::move(actor));
}

Engine::Engine(Executor executor, std::shared_ptr<store::Store> store,
               providers::ProviderRegistry& providers, EngineOptions options, Clock& clock,
               Random& random)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(store), providers,
                                   std::move(options), clock, random)) {}

Engine::~Engine() = default;

void Engine::AddObserver(Observer* observer) {
    impl_->observers_.push_back(observer);
}

Awaitable<Result<RunOutcome>> Engine::CreateRun(StartRequest request) {
    co_return co_await impl_->Create(std::move(request), nullptr);
}

Awaitable<Result<RunOutcome>> Engine::StartRun(StartRequest request) {
    std::shared_ptr<Run> run;
    auto created = co_await impl_->Create(std::move(request), &run);
    if (!created || created->existing) co_return created;
    co_return co_await impl_->Execute(run, false, {}, {});
}

Awaitable<Result<RunOutcome>> Engine::ResumeRun(std::string run_id, std::string reason,
                                                std::string actor) {
    co_return co_await impl_->Resume(std::move(run_id), std::move(reason), std::move(actor));
}

bool Engine::Cancel(const std::string& run_id, std::string reason, std::string actor) {
    auto run = impl_->Find(run_id);
    if (!run) return false;
    run->RequestCancel(std::move(reason), std::move(actor));
    return true;
}

bool Engine::Pause(const std::string& run_id, std::string reason, std::string actor) {
    auto run = impl_->Find(run_id);
    if (!run) return false;
    run->RequestPause(std::move(reason), std::move(actor));
    return true;
}

void Engine::CancelAll(std::string reason) {
    for (auto& run : impl_->All()) run->RequestCancel(reason, {});
}

size_t Engine::ActiveRuns() const {
    return impl_->ActiveCount();
}

Awaitable<Result<std::shared_ptr<const model::Plan>>> Engine::LoadPinnedPlan(std::string sha256) {
    {
        std::lock_guard lock(impl_->mutex_);
        auto it = impl_->runtimes_.find(sha256);
        if (it != impl_->runtimes_.end()) co_return it->second->plan;
    }
    STROWGER_CO_ASSIGN_OR_RETURN(auto definition, co_await impl_->store_->GetDefinition(sha256));
    co_return CompileSnapshot(definition, CompileOptionsFor(impl_->providers_));
}

store::Store& Engine::store() {
    return *impl_->store_;
}
const std::string& Engine::owner() const {
    return impl_->options_.owner;
}

Result<ledger::RunState> ReplayRun(const model::Plan& plan,
                                   const std::vector<store::StoredEvent>& events) {
    ledger::RunState state(plan.nodes.size());
    std::unordered_map<std::string_view, int> index;
    for (const auto& node : plan.nodes) index.emplace(node.id, node.index);
    for (const auto& stored : events) {
        STROWGER_ASSIGN_OR_RETURN(auto event, ledger::DecodeEvent(stored.encoded));
        if (event.seq != state.head.seq + 1 || event.prev_hash != state.head.hash) {
            return DataLossError("run " + event.run_id + ": ledger broken at seq " +
                                 std::to_string(event.seq) + " (run `strowger audit verify`)");
        }
        STROWGER_ASSIGN_OR_RETURN(auto payload,
                                  ledger::DecodePayload(event.type, event.type_name, event.data));
        int node_index = -1;
        if (!event.node.empty()) {
            auto it = index.find(event.node);
            if (it == index.end()) {
                return DataLossError("run " + event.run_id + ": event " +
                                     std::to_string(event.seq) + " names unknown node '" +
                                     event.node + "'");
            }
            node_index = it->second;
        }
        if (state.run_id.empty()) state.run_id = event.run_id;
        state.head.seq = event.seq;
        state.head.hash = event.hash;
        state.Apply(event.time, node_index,
                    ledger::NewEvent{event.node, event.attempt, std::move(payload)});
    }
    return state;
}

model::CompileOptions CompileOptionsFor(const providers::ProviderRegistry& registry) {
    model::CompileOptions options;
    options.known_providers = registry.Names();
    return options;
}

Result<std::shared_ptr<const model::Plan>> CompileSnapshot(const std::string& definition_json,
                                                           const model::CompileOptions& options) {
    model::LoadOptions load_options;
    load_options.sibling_agents = false;
    auto loaded = model::LoadWorkflowText(definition_json, "<pinned definition>", "", load_options);
    if (!loaded.ok()) {
        std::string message = "pinned definition does not load:";
        for (const auto& d : loaded.diagnostics) message += "\n  " + d.ToString();
        return DataLossError(message);
    }
    auto compiled = model::Compile(loaded.workflow, options);
    if (!compiled.ok()) {
        std::string message = "pinned definition does not compile:";
        for (const auto& d : compiled.diagnostics) message += "\n  " + d.ToString();
        return DataLossError(message);
    }
    return std::shared_ptr<const model::Plan>(compiled.plan);
}

}  // namespace strowger::engine
