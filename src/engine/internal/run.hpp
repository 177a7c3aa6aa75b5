// Private to the engine module: one run being executed — the actor that owns its state.
//
// Everything a Run does happens on its executor (its own strand, or the engine's executor when
// that is single-threaded): the main coroutine, node coroutines, timers and control requests.
// The state changes only through RunState::Apply on events as they are appended.
//
// Memory: a run of sequential steps waiting on a model call is this object and the provider's
// call (for the scripted provider, a timer holding the answer): the step's call is *parked*.
// The main coroutine and the step's coroutine have returned; the loop state that spans the
// call is in the Task, and the answer spawns the main coroutine again, which re-enters the
// step after the call (see docs/design/waiting-runs.md). Coroutines keep only what spans a
// suspension point: decisions (which events to append, whether to retry) are plain functions,
// because GCC gives every coroutine local its own slot in the heap-allocated frame.
#pragma once

#include <atomic>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>

#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/checked_math.hpp"
#include "engine/internal/engine_impl.hpp"
#include "engine/nodes/node_type.hpp"
#include "ledger/chain.hpp"
#include "ledger/run_state.hpp"

namespace strowger::engine::internal {

// The tool name an agent in mode subagent calls agent `agent` by: "agent_<name>".
std::string SubagentToolName(std::string_view agent);

// Replaces registered secrets in the event's free-text fields (no-op when none are registered).
void RedactSecrets(ledger::NewEvent& event);

// A DAG edge as the run stands: its source has not settled, it carries, or it is dead.
enum class EdgeState { kPending, kCarries, kDead };

class Run : public std::enable_shared_from_this<Run> {
  public:
    // One model call as agent `agent` for node `index` (ask.cpp): recorded as llm.request /
    // llm.response under `label`, charged to the node's and the run's budgets; an answer an
    // earlier attempt recorded under the label is returned without asking again.
    Awaitable<Result<std::string>> AskAgent(int index, int agent, std::string label,
                                            std::string prompt, Deadline deadline);
    Run(std::shared_ptr<Engine::Impl> engine, std::shared_ptr<PlanRuntime> runtime,
        ledger::RunState state);

    const std::string& run_id() const { return state_.run_id; }
    // Its last event is committed and it is going: requests to it come too late, and another
    // execution of the run waits for it to be gone (Engine::Impl::Claim). Any thread.
    bool ending() const { return ending_.load(std::memory_order_acquire); }
    const Executor& executor() const { return executor_; }
    // Bound to the main coroutine's cancellation slot: how nodes run inline are cancelled.
    asio::cancellation_signal& main_signal() { return main_signal_; }

    // Seals an event of a run that is not stored yet (run.created) and applies it.
    ledger::Event SealCreated(const ledger::NewEvent& event);
    // Set before Main when resuming: recorded in run.resumed.
    void SetResumeReason(std::string reason, std::string actor);

    // Safe from any thread: the request is carried out on the run's executor.
    void RequestCancel(std::string reason, std::string actor);
    void RequestPause(std::string reason, std::string actor);

    // Executes `run` on its executor: with `record`, first creates it in the store (for an
    // idempotency key used before, `done` gets that run, unexecuted). `done` gets the outcome
    // once the run ends or stops (never inside Launch). The run stays alive until then. With
    // `forget_if_thrown`, a run whose outcome is an internal error (its execution threw) is
    // first forgotten by the engine (Unregister): its coroutines are gone and its ledger is all
    // that is left of it, so it can be resumed again.
    static void Launch(std::shared_ptr<Run> run, std::unique_ptr<store::NewRun> record,
                       Engine::OutcomeHandler done, bool forget_if_thrown = false) {
        run->done_ = std::move(done);
        run->forget_if_thrown_ = forget_if_thrown;
        Spawn(std::move(run), std::move(record), false);
    }

  private:
    // kWaiting: the node opened a human task (or waits for one) and stopped. kParked: an
    // inline node's model call is under way and nothing waits for it (OnAnswer goes on).
    enum class NodeResult {
        kCompleted,
        kSkipped,
        kFailed,
        kCancelled,
        kStoreError,
        kWaiting,
        kParked
    };

    // What a node task shares with timers and callbacks that may outlive a coroutine. A
    // spawned node has its own cancellation signal; a node run inline uses main_signal_.
    struct Task {
        Task(const Executor& executor, asio::cancellation_signal* shared_signal)
            : signal(shared_signal ? shared_signal : &own_signal), timeout(executor) {}
        ~Task() { ReleaseSlot(); }
        // A spawned node's; an inline node's parked call is bound to it.
        asio::cancellation_signal own_signal;
        asio::cancellation_signal* signal;
        Timeouts::Entry timeout;  // the current call's, on the engine's Timeouts
        // ExecuteNode's loop state that spans a model call: here, not in its frame, so that an
        // inline node's call can be parked and the answer re-enter the loop. (The prompt is
        // the node state's: the attempt's llm.request recorded it.)
        int64_t iteration = 0;
        int64_t hour_usage = -1;  // the agent's tokens in the last hour (-1: no quota)
        Deadline deadline = Deadline::Never();  // the attempt's
        SteadyTime call_started{};
        std::unique_ptr<providers::StreamSink> sink;  // the call's, when observers want deltas
        std::shared_ptr<const AgentToolSet> tools;
        std::shared_ptr<const Error> tools_error;  // set if the agent's tools cannot be had
        // The call's result, from its return until ExecuteNode takes it. While it is set the
        // call is over and (inline) the main coroutine is about to be spawned again.
        std::unique_ptr<Result<providers::Completion>> answer;
        Slots* slot = nullptr;  // the engine's node slot this node holds, if any
        bool parked = false;    // an inline node's call is under way, bound to own_signal
        // Cancels what the node is doing: its parked call, or whatever its coroutine awaits.
        // Nothing between a parked call's answer and the node going on (it checks the run's
        // flags then).
        void Interrupt() {
            if (parked) {
                own_signal.emit(asio::cancellation_type::terminal);
            } else if (!answer) {
                signal->emit(asio::cancellation_type::terminal);
            }
        }
        void ReleaseSlot() {
            if (slot) slot->Release();
            slot = nullptr;
        }
        // Tries of the current model call that the provider layer retried (llm.retried).
        struct RetryLog final : providers::RetryListener {
            std::vector<ledger::LlmRetried> tries;
            void OnRetry(const Error& error, int64_t failed_try,
                         std::chrono::milliseconds delay) override {
                tries.push_back({0, failed_try, error.message(),
                                 std::string(ErrorCodeName(error.code())),
                                 error.details().http_status, delay.count()});
            }
        } retries;
        bool in_call = false;
        bool timed_out = false;
    };

    // What a decision produces: events to append, then what the node does next.
    struct Step {
        std::vector<ledger::NewEvent> events;
        NodeResult result = NodeResult::kCompleted;
        bool retry = false;  // attempt again (after the backoff recorded in the events)
        bool more = false;   // loop: run the next iteration
        bool tools = false;  // the model asked for tools: run them, then the next turn
    };

    // What ending the main loop means once nothing runs.
    struct Ending {
        std::vector<ledger::NewEvent> events;  // the terminal (or pause) event, if any
        bool stop = false;  // true: stop now (after appending `events`); false: schedule more
    };

    // Why the run is stopping, and who asked: rarely needed, so allocated on first use.
    struct Notes {
        std::string resume_reason, resume_actor;
        std::string cancel_reason, cancel_actor;
        std::string pause_reason, pause_actor;
        std::string failure_message, failure_code, failure_node;
        std::optional<Error> store_error;
        // Child runs in flight hold their caps of this run's budgets (run_dag.cpp,
        // docs/design/dag.md): Budget() counts them as spent.
        int64_t reserved_tokens = 0;
        int64_t reserved_nano_usd = 0;
        std::vector<int> holding;  // the node of each child in flight that holds caps
    };
    Notes& notes();

    // Creates the run in the store; false if it existed already (outcome_existing_ set) or the
    // store failed (notes().store_error set).
    Awaitable<bool> Create(std::unique_ptr<store::NewRun> record);
    // Appends events about node `node_index` (-1: about the run) and waits for the commit.
    // False after a store failure (the run stops; its status stays resumable). GCC 12
    // miscompiles a braced prvalue argument inside a co_await expression (it frees it
    // twice), so callers build the vector in a named local or a plain function.
    Awaitable<bool> Append(std::vector<ledger::NewEvent> events, int node_index);
    // Append, done before returning: only where the store appends at once
    // (engine_->appends_at_once_). Hot paths call it directly, saving Append's frame:
    //     bool ok;
    //     if (engine_->appends_at_once_) ok = AppendAtOnce(...); else ok = co_await Append(...);
    bool AppendAtOnce(std::vector<ledger::NewEvent> events, int node_index);
    // Sealed events, and what observers are told of them. Its vectors are only ever grown
    // (`count` are in use): a thread's AppendAtOnce reuses one, strings' buffers included.
    struct Sealed {
        std::vector<ledger::Event> events;
        std::vector<ledger::Event> notify;  // for observers, if any
        size_t count = 0;
        bool busy = false;  // in use (an observer may append to another run from inside)
        // The checkpoint these events make due, announced to the signer before the append.
        std::optional<ledger::CheckpointLeaf> checkpoint;
    };
    // Seals `events` onto the chain into `out`, applies them to the state and announces the
    // checkpoint they make due (Engine::Impl::ExpectCheckpoint).
    void SealEvents(std::vector<ledger::NewEvent>& events, int node_index, Sealed& out);
    // After the store's answer: tells observers, or records the failure. False on failure.
    bool Committed(const Result<void>& appended, Sealed& sealed);
    // The run's main coroutine: runs until the run ends or stops, or an inline node's call is
    // parked (then the answer spawns it again, `continuing`). Without `continuing`, first
    // creates the run (`record`) or resumes it, and takes a run slot. `self` keeps the run
    // alive while it executes. Returns nothing (a result would take room in this frame and its
    // spawner's): FinalResult is the outcome.
    Awaitable<void> Main(std::shared_ptr<Run> self, std::unique_ptr<store::NewRun> record,
                         bool continuing);
    // Spawns Main; its completion hands the outcome to done_ unless a call was parked.
    static void Spawn(std::shared_ptr<Run> self, std::unique_ptr<store::NewRun> record,
                      bool continuing);
    // The parked call's answer (on the run's executor): spawns Main again in a later handler.
    void OnAnswer(Result<providers::Completion> result);
    // Once Main has returned for good (or `thrown`): the outcome, the store's refusal to create
    // the run, or what was thrown (then forgotten by the engine if Launch was told so).
    Result<RunOutcome> FinalResult(std::exception_ptr thrown);
    // Gives back what a finished run held (its outcome was handed over).
    void Shed();
    // Runs node `index` (again, after the call, when task->answer is set).
    Awaitable<NodeResult> ExecuteNode(int index, std::shared_ptr<Task> task);
    Awaitable<bool> SleepUntil(SystemTime due);
    // ExecuteNode's frame is allocated for every step (and a fan-out node's stays allocated
    // while its model thinks), and GCC 12 gives every local and temporary of a coroutine its
    // own slot in it (a NewEvent is 240 B, an Error 96 B, a Result<...> ~100 B). So what does
    // not wait on the model lives in these: helper coroutines, whose frames exist only while
    // they run, and the plain functions below.
    // The agent's tools (MCP servers started on first use); `error` set if they cannot be had.
    Awaitable<void> ResolveTools(const model::PlanNode& node,
                                 std::shared_ptr<const AgentToolSet>& tools,
                                 std::shared_ptr<const Error>& error);
    // The agent's tokens in the last hour (it has an hourly quota).
    Awaitable<int64_t> HourUsage(const model::AgentSpec& agent);
    // Counts a call's tokens against its agent's hourly quota (`before`: the hour's use read
    // before the call) and tells the observers (QuotaUse).
    Awaitable<void> RecordHourUsage(const model::PlanNode& node, const model::AgentSpec& agent,
                                    int64_t before, int64_t tokens);
    // Main's steps that do not wait on nodes: run.started (or run.resumed); the ending once
    // nothing runs (false: more to run); giving up the run's lease.
    Awaitable<void> Begin(bool resumed);
    Awaitable<bool> End();
    Awaitable<void> ReleaseLease();

    // Decisions (plain functions).
    std::optional<Step> Prologue(const model::PlanNode& node) const;
    // Prologue's step on the heap (rare; 8 bytes in the caller's frame instead of 48).
    std::unique_ptr<Step> PrologueStep(const model::PlanNode& node) const;
    int64_t FirstIteration(const model::PlanNode& node) const;
    std::string PromptFor(const model::PlanNode& node, int64_t iteration) const;
    // Names the node's current execution in task ids and idempotency keys: "<attempt>", or
    // "<iteration>.<attempt>" for a loop (its attempts count the tries of one iteration).
    std::string ExecutionLabel(const model::PlanNode& node) const;
    // "<run>/<node>/<execution>/<call_index>" (docs/formats/ledger_event_v1.md, tool.call).
    std::string IdempotencyKey(const model::PlanNode& node, int64_t call_index) const;
    std::vector<ledger::NewEvent> StartEvents(const model::PlanNode& node, int64_t attempt,
                                              int64_t iteration, const std::string& prompt) const;
    Step OnSuccess(const model::PlanNode& node, providers::Completion completion,
                   int64_t latency_ms, int64_t iteration, const AgentToolSet* tools) const;
    // The agent's budgets for node `index` (its per-step limits against the node's spending)
    // and the run's: the error if one is spent.
    std::optional<Error> OverBudgetFor(int index, const model::AgentSpec& agent) const;
    // `tools` plus, for an agent node in mode subagent, one tool per subagent (ask.cpp).
    std::shared_ptr<const AgentToolSet> WithSubagents(const model::PlanNode& node,
                                                      std::shared_ptr<const AgentToolSet> tools);
    // The run's budgets: its workflow's limits, lowered to its caps if it is a child run
    // (run.created: what its parent had left), less what its own children in flight hold.
    // Costs in nano-USD.
    struct RunBudget {
        std::optional<int64_t> max_tokens;
        std::optional<int64_t> max_cost_nano_usd;
        std::optional<int64_t> max_tool_calls;
    };
    RunBudget Budget() const {
        const auto& limits = plan_.limits;
        RunBudget budget{limits.max_tokens, std::nullopt, limits.max_tool_calls};
        if (limits.max_cost_usd) {
            budget.max_cost_nano_usd = SaturatingFromDouble(*limits.max_cost_usd * 1e9 + 0.5);
        }
        auto lower = [](std::optional<int64_t>& limit, std::optional<int64_t> cap) {
            if (cap && (!limit || *cap < *limit)) limit = cap;
        };
        lower(budget.max_tokens, state_.cap_max_tokens());
        lower(budget.max_cost_nano_usd, state_.cap_max_cost_nano_usd());
        if (notes_) {
            auto reserve = [](std::optional<int64_t>& limit, int64_t reserved) {
                if (limit) *limit = std::max<int64_t>(0, *limit - reserved);
            };
            reserve(budget.max_tokens, notes_->reserved_tokens);
            reserve(budget.max_cost_nano_usd, notes_->reserved_nano_usd);
        }
        return budget;
    }
    // Budgets (the agent's per step, the run's, the agent's hourly quota): the failure to
    // record if one is exhausted. `hour_usage` is the agent's tokens in the last hour (-1: no
    // quota). Checked before each model call and before tool calls (`new_tool_calls` > 0).
    std::optional<Step> CheckBudgets(const model::PlanNode& node, int64_t new_tool_calls,
                                     int64_t hour_usage, int64_t iteration);
    // CheckBudgets before a model call, into `step`: true if a budget is exhausted.
    bool OverBudget(const model::PlanNode& node, int64_t hour_usage, int64_t iteration, Step& step);
    // llm.request of a turn after the first (its messages are the turns so far).
    std::vector<ledger::NewEvent> TurnRequestEvents(const model::PlanNode& node) const;
    // What a turn's result is when no call can be made: the model's or the tools' error.
    static Result<providers::Completion> NoCall(const Result<providers::ResolvedModel>& model,
                                                const Error* tools_error);
    Step TimeoutFailure(const model::PlanNode& node, int64_t iteration);
    Step MaxTurnsFailure(const model::PlanNode& node, int64_t max_turns, int64_t iteration);
    // Tools of the last turn that still have to run: opens approval tasks, or runs them (in
    // parallel) and appends their results, with the tools, deadline and iteration in `task`.
    // Returns kCompleted to go on with the next turn.
    Awaitable<NodeResult> RunTools(int index, std::shared_ptr<Task> task);
    // The conversation so far, as provider messages.
    std::vector<providers::Message> Conversation(const model::PlanNode& node,
                                                 const std::string& prompt) const;
    // An agent node in mode pool: its pool's earlier exchanges (run_agent.cpp).
    void AppendPoolTurns(const model::PlanNode& node,
                         std::vector<providers::Message>& messages) const;
    // The last turn asked for tools that have not all returned.
    static bool HasUnfinishedCalls(const ledger::NodeState& ns);
    // The tools phase needs a human decision, or the node waits on an undecided task.
    bool WaitsForHuman(const model::PlanNode& node) const;
    const std::filesystem::path& Workspace();
    Step OnFailure(const model::PlanNode& node, const Error& error, int64_t iteration);
    std::vector<ledger::NewEvent> BeginEvents(bool resumed);
    Ending EndEvents() const;
    providers::CompletionRequest BuildRequest(const model::PlanNode& node,
                                              const providers::ResolvedModel& model,
                                              const std::string& prompt, int64_t attempt,
                                              const AgentToolSet* tools) const;
    // The request of a turn's model call; `task.sink` gets a stream sink when observers want
    // deltas; the provider layer's retries go to `task.retries`.
    providers::CompletionRequest CallRequest(const model::PlanNode& node,
                                             const providers::ResolvedModel& model, Task& task);
    // Starts an inline node's model call: true if it is parked (OnAnswer goes on), false if
    // it answered at once (task->answer). A spawned node's call is AwaitModel's.
    bool StartInlineCall(const model::PlanNode& node, const providers::ResolvedModel& model,
                         Task& task);
    // A spawned node's model call: waits for it, into task->answer.
    Awaitable<void> AwaitModel(const model::PlanNode& node, const providers::ResolvedModel& model,
                               std::shared_ptr<Task> task);
    // Puts an llm.retried event per retried try of the call just made before `step`'s events.
    void PrependRetries(const model::PlanNode& node, Task& task, Step& step) const;
    // Arms the attempt's timeout; DisarmTimeout turns the result into the timeout error if it
    // fired.
    void ArmTimeout(const model::PlanNode& node, const std::shared_ptr<Task>& task);
    void DisarmTimeout(const model::PlanNode& node, Task& task,
                       Result<providers::Completion>& result);

    // Scheduling.
    bool Ready(const model::PlanNode& node) const;
    int SoleReadyNode() const;  // the ready node if nothing runs and exactly one is ready
    void StartReadyNodes();
    void StartNode(int index);
    void OnNodeDone(int index);
    void FailRun(const model::PlanNode& node);
    void CancelTasks();
    bool Stopping() const { return cancel_requested_ || failed_ || store_failed_; }

    // ---- The DAG form (run_dag.cpp; docs/design/dag.md). ----
    class TypedNodeRun;
    friend class TypedNodeRun;
    // A child run's caps, held from this run's budgets (Budget() counts them as spent) for
    // as long as the object lives; nothing if the caps are none.
    class ChildHold {
      public:
        ChildHold(Run& run, int index, const ledger::NodeNotes::ChildCaps& caps);
        ~ChildHold();
        ChildHold(const ChildHold&) = delete;
        ChildHold& operator=(const ChildHold&) = delete;

      private:
        Run& run_;
        int index_;
        int64_t tokens_ = 0;
        int64_t nano_usd_ = 0;
        bool held_ = false;
    };
    // How many children of node `index` hold caps now.
    int64_t ChildrenHolding(int index) const;
    EdgeState EdgeStateOf(int edge) const;
    bool DagReady(const model::PlanNode& node) const;
    // Every incoming edge is dead: the node is pruned (node.skipped, reason pruned).
    bool Pruned(const model::PlanNode& node) const;
    // One attempt (and its retries) of a node executed by its type.
    Awaitable<NodeResult> ExecuteTyped(int index, std::shared_ptr<Task> task);
    // Appends node.cancelled for the nodes a join cancelled, once they stopped.
    Awaitable<bool> SettleDag();
    // Cancels what still runs in the fork region of a join that fired or failed.
    void CancelBranches(const model::PlanNode& join);
    // A DAG node's {{input}} (its carrying edges' sources) and the run's output when no node
    // is named (the sinks' outputs as a JSON object).
    std::string DagInput(const model::PlanNode& node) const;
    std::string DagOutput() const;
    // A failure after the node's retries, by its policy's on_error.
    Step DagFailure(const model::PlanNode& node, const Error& error, std::string message);
    // The run is stopping, or a join cancelled this node.
    bool NodeStopped(int index) const {
        return cancel_requested_ || failed_ ||
               (join_cancelled_ && join_cancelled_[static_cast<size_t>(index)]);
    }
    // Renders any template of the plan (both forms): `input` for {{input}}, `extras` for
    // the names a node supplies ({{item}}).
    std::string RenderTemplate(const model::Template& text, std::string_view input,
                               const std::map<std::string, std::string>* extras = nullptr) const;
    std::unique_ptr<bool[]> join_cancelled_;  // by node; null unless the plan is a DAG

    // Data flow.
    std::string EffectiveOutput(int index) const;
    std::string InputOf(const model::PlanNode& node) const;
    std::string Render(const model::PlanNode& node, std::string_view input) const;
    RunOutcome Outcome() const;
    Engine::OutcomeHandler done_;  // Launch's

    std::shared_ptr<Engine::Impl> engine_;
    std::shared_ptr<PlanRuntime> runtime_;
    const model::Plan& plan_;
    Executor executor_;
    // The main coroutine waits on it while nodes run (made on the first such wait: a run of
    // sequential steps never needs it).
    std::unique_ptr<asio::steady_timer> wake_;
    asio::steady_timer& WakeTimer() {
        if (!wake_) wake_ = std::make_unique<asio::steady_timer>(executor_);
        return *wake_;
    }
    void Wake() {
        if (wake_) wake_->cancel();
    }
    ledger::RunState state_;
    std::vector<std::shared_ptr<Task>> in_flight_;  // by node index; null = not running
    asio::cancellation_signal main_signal_;
    std::shared_ptr<Task> inline_task_;
    std::unique_ptr<Notes> notes_;
    std::unique_ptr<std::filesystem::path> workspace_;  // made on first use (tools)
    uint32_t running_ = 0;
    int parked_node_ = -1;   // the inline node whose call is parked, or -1
    bool spawned_ = false;   // Main's spawn has not completed
    bool respawn_ = false;   // the parked call answered while Main's spawn was completing
    bool run_slot_ = false;  // the run holds a run slot (EngineOptions::max_concurrent_runs)
    bool cancel_requested_ = false;
    bool queued_ = false;  // waiting for a run slot (EngineOptions::max_concurrent_runs)
    bool pause_requested_ = false;
    bool failed_ = false;
    bool store_failed_ = false;
    bool finished_ = false;
    std::atomic<bool> ending_{false};
    bool existing_ = false;          // the idempotency key named a run that already existed
    bool create_failed_ = false;     // the store refused to create the run
    bool forget_if_thrown_ = false;  // Launch's
    ledger::RunStatus existing_status_ = ledger::RunStatus::kPending;
};

}  // namespace strowger::engine::internal
