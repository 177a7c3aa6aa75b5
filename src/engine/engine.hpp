// The engine: executes runs of compiled plans, durably.
//
// Every state change of a run is an event appended to the run's ledger in the store, and
// committed, before anything that depends on it happens: a node's model call starts only
// after its `node.started` is committed; dependents start only after `node.completed` is.
// The run's in-memory state is RunState::Apply over those same events, so ResumeRun rebuilds
// exactly the state a crashed process had (docs/design/engine.md, "Life of a run").
//
// Concurrency: runs are coroutines on the engine's executor, each on its own strand (one
// owner for its state; no thread per run). A waiting run costs its coroutine frames and
// state, a few KB. Fan-out nodes of a run execute concurrently on that strand.
//
// Thread-safety: Engine methods are safe to call from any thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "audit/signer.hpp"
#include "audit/verifier.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/ed25519.hpp"
#include "core/random.hpp"
#include "core/result.hpp"
#include "engine/observer.hpp"
#include "ledger/run_state.hpp"
#include "model/plan.hpp"
#include "providers/provider.hpp"
#include "store/store.hpp"
#include "tools/tool.hpp"

namespace strowger::engine {

struct EngineOptions {
    // Identifies this process as a lease holder; default "<host>:<pid>:<random>".
    std::string owner;
    std::chrono::milliseconds lease_duration{30'000};
    // True if the executor runs handlers on one thread only (an io_context run by one
    // thread, as in the CLI): runs then use it directly instead of a strand each.
    bool single_threaded_executor = false;
    // The built-in tools agents may be granted (shell, read_file, ...). Null: an agent that
    // lists a built-in tool fails its step with "tool ... is not available".
    std::shared_ptr<tools::ToolRegistry> tools;
    // Why a built-in tool is missing from `tools` (e.g. "shell" -> "bubblewrap is not
    // installed"), added to the step's error.
    std::map<std::string, std::string, std::less<>> unavailable_tools;
    // Runs without a workflow `workspace` get <workspace_root>/<run id>; default: a
    // "strowger-workspaces" directory under the system's temp directory.
    std::filesystem::path workspace_root;
    // Sandbox limits for agents that do not set their own.
    tools::SandboxLimits default_sandbox;
    // Caps on what executes at once in this engine (0 = no cap). A run over the cap is created
    // (run.created committed: `pending`, durable) and waits in a FIFO queue before run.started;
    // a node over the cap waits before node.started. Cancelling or pausing a queued run ends
    // it without starting it.
    int64_t max_concurrent_runs = 0;
    int64_t max_concurrent_nodes = 0;
    // Signs checkpoints of runs' heads at every stop and every ledger::kCheckpointEvery events
    // (docs/design/audit.md). Null: none are made (tests and benchmarks that do not need them).
    std::shared_ptr<audit::CheckpointSigner> signer;
    // The key every read of a run verifies its checkpoints with; defaults to the signer's.
    // Null (and no signer): signatures are not checked — chains, definitions and statuses are.
    std::shared_ptr<const VerifyingKey> ledger_key;
};

struct StartRequest {
    std::shared_ptr<const model::Plan> plan;
    std::string input;
    std::string idempotency_key;  // "" = none
    std::string rerun_of;         // run id this run repeats, if any
    // The new run's id ("" = a new ULID); a caller that must know it before the run is created
    // (the daemon answers 202 with it) makes it with NewRunId.
    std::string run_id;
    std::string actor;  // who starts it, recorded in run.created ("" = not recorded)
    // A child run (a subworkflow node's): its parent run and node, in run.created.
    std::string parent_run;
    std::string parent_node;
    // A child run's caps (its parent's budgets left), recorded in run.created.
    std::optional<int64_t> max_tokens;
    std::optional<int64_t> max_cost_nano_usd;

    bool operator==(const StartRequest&) const = default;
};

struct RunOutcome {
    std::string run_id;
    ledger::RunStatus status = ledger::RunStatus::kPending;
    std::string output;
    std::string error;  // run.failed message, or why the run stopped (store error)
    ErrorCode error_code = ErrorCode::kOk;
    // True when an idempotency key matched a run that already existed: nothing was created
    // or executed, and status is that run's stored status.
    bool existing = false;
    // What the run spent (all its model calls, its children's included).
    int64_t tokens_in = 0;
    int64_t tokens_out = 0;
    int64_t cost_nano_usd = 0;
};

class Engine {
  public:
    Engine(Executor executor, std::shared_ptr<store::Store> store,
           providers::ProviderRegistry& providers, EngineOptions options = {},
           Clock& clock = Clock::Real(), Random& random = Random::Real());
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    void AddObserver(Observer* observer);

    // Creates a pending run. With an idempotency key that was used before, creates nothing and
    // returns that run (existing = true).
    Awaitable<Result<RunOutcome>> CreateRun(StartRequest request);

    // Creates a run and executes it until it ends (completed, failed, cancelled) or stops
    // (paused, waiting). With a used idempotency key, returns the existing run unexecuted.
    Awaitable<Result<RunOutcome>> StartRun(StartRequest request);

    // Gets a run's outcome when it is started or resumed without being awaited.
    using OutcomeHandler = std::move_only_function<void(Result<RunOutcome>)>;
    // As StartRun, for a caller that starts many runs: returns at once (the run is prepared
    // and started when the engine's executor gets to it), and `done` gets the outcome on the
    // run's executor (an error from the start too). Nothing of the caller's waits on the run,
    // so a run of sequential steps waiting on its model holds no coroutine frame at all.
    void StartRun(StartRequest request, OutcomeHandler done);

    // Continues a run from its ledger: after a crash, a pause, or for a pending run. The run's
    // pinned definition is used, whatever the workflow file says now. kFailedPrecondition if
    // the run is terminal, kAborted if another process holds its lease.
    Awaitable<Result<RunOutcome>> ResumeRun(std::string run_id, std::string reason = "restart",
                                            std::string actor = {});
    // As ResumeRun, without being awaited (see StartRun with an OutcomeHandler): what resumes
    // many runs after a crash.
    void ResumeRun(std::string run_id, std::string reason, std::string actor, OutcomeHandler done);

    // Ask a run executing in this engine to stop. Cancel aborts in-flight model calls; Pause
    // lets them finish and stops at the next node boundary. False if the run is not here.
    bool Cancel(const std::string& run_id, std::string reason, std::string actor = {});
    bool Pause(const std::string& run_id, std::string reason, std::string actor = {});
    void CancelAll(std::string reason);
    // Pause every run executing here (a SIGTERM of `strowger run`: the runs stay resumable).
    void PauseAll(std::string reason);
    size_t ActiveRuns() const;

    // Pauses or cancels a run wherever it is: executing here, directly; executing in another
    // live process, through a control request that process applies within its poll interval
    // (kRequested); executing nowhere (pending, paused, or its process died), by appending
    // run.paused / run.cancelled under a lease (kApplied). kFailedPrecondition if the run has
    // ended; pausing a paused run is kApplied and changes nothing.
    enum class ControlResult { kApplied, kRequested };
    Awaitable<Result<ControlResult>> Control(std::string run_id, store::ControlAction action,
                                             std::string reason, std::string actor);

    // Reopens a finished run and executes it again from a step: without `from_step`, the
    // step(s) that failed or were cancelled; with it, that step and every step after it
    // (whatever they did). Completed steps outside that set are not run again; attempt
    // numbers continue. Appends run.retried, then runs like ResumeRun.
    Awaitable<Result<RunOutcome>> RetryRun(std::string run_id, std::string from_step,
                                           std::string actor);

    // Records a human decision on an open task of a run that is not executing anywhere
    // ("approve" or "reject"; for a reconciliation task, approve with `output` accepts that
    // output instead of running the step again; a human_task node's task also takes
    // "request_changes" and "progress", and completes on a terminal decision or its quorum's
    // last approval). The same `idempotency_key` twice records one decision. Does not
    // continue the run: ResumeRun does. `task_id` may be empty when the run has exactly one
    // open task. Returns the task id.
    Awaitable<Result<std::string>> Decide(std::string run_id, std::string task_id,
                                          std::string decision, std::string actor,
                                          std::string comment, std::string output,
                                          std::string idempotency_key = {});

    // Starts a new run with the same input and pinned definition as `run_id`.
    Awaitable<Result<RunOutcome>> RerunRun(std::string run_id);

    // Ends an unfinished run that executes nowhere with run.failed (`error`, code
    // "supervisor" ...): what a supervisor does with a run that keeps failing unexpectedly.
    // kFailedPrecondition if the run has ended or executes here, kAborted if another process
    // holds its lease.
    Awaitable<Status> FailRun(std::string run_id, std::string error, std::string code);

    // While it runs: applies control requests other processes left for runs executing here,
    // and renews this engine's leases. Returns when cancelled (asio cancellation).
    Awaitable<void> Supervise(std::chrono::milliseconds poll_interval);

    // Verifies a stored run as every read path does (docs/design/audit.md): its chain with
    // every hash recomputed, the head and status its record gives, its pinned definition's
    // SHA-256, and its signed checkpoints. A store error is an error; what is wrong with the
    // run is `finding`.
    struct Verification {
        store::RunRecord record;
        int64_t events = 0;
        ledger::ChainHead head;  // of the verified prefix
        std::optional<audit::Finding> finding;
        std::vector<std::string> hashes;  // of events 1..events
        bool ok() const { return !finding.has_value(); }
    };
    Awaitable<Result<Verification>> VerifyRun(std::string run_id);
    // Signs and stores the checkpoints this engine has queued (call before exiting).
    Awaitable<Status> FlushCheckpoints();
    bool CheckpointsPending() const;
    // Signs the heads of stopped runs a crash left unsigned, each after it verifies. Returns
    // how many were signed.
    Awaitable<Result<int64_t>> SignUnsignedStops();
    // The checkpoint verifier every read uses.
    audit::CheckpointVerifier& checkpoint_verifier();

    // A stored run as it stands: its record, pinned plan and state replayed from its ledger.
    struct LoadedRun {
        store::RunRecord record;
        std::shared_ptr<const model::Plan> plan;
        ledger::RunState state;
    };
    Awaitable<Result<LoadedRun>> LoadRun(std::string run_id);

    // The plan a run is pinned to (compiled from the stored definition snapshot; cached).
    Awaitable<Result<std::shared_ptr<const model::Plan>>> LoadPinnedPlan(std::string sha256);

    store::Store& store();
    const std::string& owner() const;

    class Impl;

  private:
    std::shared_ptr<Impl> impl_;
};

// Rebuilds a run's state from its stored events: verifies the chain (every hash recomputed;
// kDataLoss naming the seq otherwise), then applies each event.
Result<ledger::RunState> ReplayRun(const model::Plan& plan,
                                   const std::vector<store::StoredEvent>& events);
// The same from events ledger::VerifyChain has decoded and verified.
Result<ledger::RunState> ReplayVerified(const model::Plan& plan,
                                        std::vector<ledger::Event>& events);

// What a workflow is checked against when it is compiled: the provider names `registry` knows
// and, as tool names, the built-in tools plus those in `tools` (if given).
model::CompileOptions CompileOptionsFor(const providers::ProviderRegistry& registry,
                                        const tools::ToolRegistry* tools = nullptr);

// Compiles a pinned definition snapshot (model::SnapshotJson) back to a plan.
Result<std::shared_ptr<const model::Plan>> CompileSnapshot(const std::string& definition_json,
                                                           const model::CompileOptions& options);

}  // namespace strowger::engine
