// Private to the engine module: the engine's shared state and the per-definition runtime.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine.hpp"
#include "engine/internal/slots.hpp"
#include "engine/internal/timeouts.hpp"
#include "tools/mcp/mcp_client.hpp"

namespace strowger::engine {

// Our coroutines report failures as values; an exception is a bug in a dependency.
Error ThrownError(std::exception_ptr thrown);

namespace internal {
class Run;

// A start waiting for the executor (Engine::StartRun with a handler). In a burst every start
// waits at once (W3: 10,000), and the memory they take stays with the process, so a request
// that names only its plan and input is held as those two (56 B, not the 272 B of a
// StartRequest); any other is held whole.
class QueuedStart {
  public:
    explicit QueuedStart(StartRequest request)
        : plan_(std::move(request.plan)), input_(std::move(request.input)) {
        if (request == StartRequest{}) return;
        request.plan = std::move(plan_);
        request.input = std::move(input_);
        whole_ = std::make_unique<StartRequest>(std::move(request));
    }
    StartRequest Take() && {
        if (whole_) return std::move(*whole_);
        StartRequest request;
        request.plan = std::move(plan_);
        request.input = std::move(input_);
        return request;
    }

  private:
    std::shared_ptr<const model::Plan> plan_;
    std::string input_;
    std::unique_ptr<StartRequest> whole_;
};

// A tool as one agent may use it.
struct AgentTool {
    std::string name;
    std::shared_ptr<tools::Tool> tool;
    tools::SafetyClass safety = tools::SafetyClass::kDestructive;
    bool require_approval = false;
};

// The tools of one agent, resolved (MCP servers started) on first use.
struct AgentToolSet {
    std::vector<AgentTool> tools;
    std::vector<providers::ToolSpec> specs;  // what the model is shown
    tools::ToolGrants grants;
    const AgentTool* Find(std::string_view name) const {
        for (const auto& t : tools) {
            if (t.name == name) return &t;
        }
        return nullptr;
    }
};

// The compiled plan of a definition plus the providers its agents resolved to.
struct PlanRuntime {
    std::shared_ptr<const model::Plan> plan;
    std::vector<Result<providers::ResolvedModel>> models;  // by plan agent index
    std::mutex mutex;
    std::vector<std::shared_ptr<const AgentToolSet>> tool_sets;  // by agent; GUARDED_BY(mutex)
};

// "120s", or "1.5s" for timeouts given in milliseconds.
std::string FormatSeconds(int64_t ms);
}  // namespace internal

class Engine::Impl : public std::enable_shared_from_this<Engine::Impl> {
  public:
    Impl(Executor executor, std::shared_ptr<store::Store> store,
         providers::ProviderRegistry& providers, EngineOptions options, Clock& clock,
         Random& random);

    std::shared_ptr<internal::PlanRuntime> RuntimeFor(std::shared_ptr<const model::Plan> plan);

    // A new run of `request.plan`: its state with run.created applied, and the store record
    // to create (leased to this engine when `lease` is set).
    struct Prepared {
        std::shared_ptr<internal::Run> run;
        std::unique_ptr<store::NewRun> record;
    };
    enum class Lease { kNone, kTake };
    Result<Prepared> Prepare(StartRequest request, Lease lease);

    // A stored run, replayed: its record, pinned plan and state.
    struct Loaded {
        store::RunRecord record;
        std::shared_ptr<const model::Plan> plan;
        ledger::RunState state;
    };
    Awaitable<Result<Loaded>> Load(std::string run_id);
    // Load's reading and checking: the verification, and the loaded run when it found nothing.
    struct Verified {
        Engine::Verification verification;
        std::optional<Loaded> loaded;
    };
    Awaitable<Result<Verified>> Verify(std::string run_id, bool load);
    // The pinned plan for `sha256` (cached), compiled from `definition` when not cached.
    Result<std::shared_ptr<const model::Plan>> PlanFor(const std::string& sha256,
                                                       const std::string* definition);
    // Checkpoints, in two halves around an append that moves a run's head from `before` to
    // `state`'s. Before the append: the checkpoint it makes due, if any, announced to the
    // signer (so a reader who sees the committed stop first finds it pending, never
    // "unsigned"). After: queued for signing if the append committed, forgotten if not.
    std::optional<ledger::CheckpointLeaf> ExpectCheckpoint(const ledger::RunState& state,
                                                           int64_t before) {
        if (!signer_ || !ledger::CheckpointDue(before, state.head.seq, state.status)) {
            return std::nullopt;
        }
        ledger::CheckpointLeaf leaf{state.run_id, state.head.seq, state.head.hash};
        signer_->Expect(leaf);
        return leaf;
    }
    void CheckpointCommitted(std::optional<ledger::CheckpointLeaf>& leaf, bool committed) {
        if (!leaf) return;
        if (committed) {
            signer_->Add(std::move(*leaf));
        } else {
            signer_->Forget(*leaf);
        }
        leaf.reset();
    }
    // Appends one event to a run that executes nowhere (the caller holds its lease).
    Awaitable<Status> AppendIdle(Loaded& loaded, ledger::NewEvent event);
    Awaitable<Result<RunOutcome>> Resume(std::string run_id, std::string reason, std::string actor);
    // Resume's checks, lease and replay: the run, loaded and leased, ready to execute.
    Awaitable<Result<Loaded>> LoadForResume(std::string run_id);
    // The Run that executes a loaded run (after resume or retry).
    std::shared_ptr<internal::Run> MakeRun(Loaded loaded, std::string reason, std::string actor);
    // Executes a loaded run (after resume or retry); the caller holds its lease.
    Awaitable<Result<RunOutcome>> ExecuteLoaded(Loaded loaded, std::string reason,
                                                std::string actor);
    // A subworkflow node's child run `request.run_id`: created and executed if it does not
    // exist, resumed if it is unfinished, read if it ended; its outcome.
    Awaitable<Result<RunOutcome>> RunChild(StartRequest request);
    // Launches `run` (Run::Launch) and waits for its outcome.
    static Awaitable<Result<RunOutcome>> Drive(std::shared_ptr<internal::Run> run,
                                               std::unique_ptr<store::NewRun> record);

    // Registers a run as executing here; control requests that came while it was claimed for
    // execution (below) are handed to it now.
    void Register(const std::string& run_id, std::shared_ptr<internal::Run> run);
    void Unregister(const std::string& run_id);

    // A claim keeps this engine's own operations on one run apart. The store's lease cannot:
    // it is held per owner, and every operation of this engine is the same owner. A run is
    // claimed for execution (resume, retry) from before its lease is taken until it registers,
    // or for a moment (a control, decision or failure recorded while the run executes
    // nowhere) until the event is appended.
    enum class ClaimKind { kExecute, kIdle };
    // False when the run executes or is claimed here. A run whose execution here is ending
    // (its last event committed) is waited for, a few seconds at most.
    Awaitable<bool> Claim(std::string run_id, ClaimKind kind);
    enum class ClaimResult { kClaimed, kBusy, kEnding };
    ClaimResult TryClaim(const std::string& run_id, ClaimKind kind);
    // One short wait for a run whose execution here is ending (`tries` counts them; false once
    // they are used up, after ≈ 5 s). `timer` is made on first use.
    Awaitable<bool> WaitForEnding(std::optional<asio::steady_timer>& timer, int& tries);
    // Drops a claim that did not end in Register. Control requests deferred to it are left
    // for whoever executes the run next (store::Store::RequestControl).
    void Unclaim(const std::string& run_id);
    // Releases a claim when it goes out of scope, unless dismissed.
    class ClaimGuard {
      public:
        ClaimGuard(Impl* impl, std::string run_id) : impl_(impl), run_id_(std::move(run_id)) {}
        ClaimGuard(const ClaimGuard&) = delete;
        ClaimGuard& operator=(const ClaimGuard&) = delete;
        ~ClaimGuard() {
            if (impl_ != nullptr) impl_->Unclaim(run_id_);
        }
        void Dismiss() { impl_ = nullptr; }

      private:
        Impl* impl_;
        std::string run_id_;
    };
    // Where a control request for `request.run_id` goes in this engine.
    enum class ControlHere {
        kApplied,   // the run executes here: requested of it
        kDeferred,  // claimed for execution: handed to it when it registers
        kBusy,      // another operation of this engine is recording an event
        kClaimed,   // nowhere here: now claimed (kIdle) for the caller to record it
        kEnding,    // its execution here is ending: ask again once it has gone
    };
    ControlHere RouteControl(store::ControlRequest request);
    std::shared_ptr<internal::Run> Find(const std::string& run_id);
    std::vector<std::shared_ptr<internal::Run>> All();
    size_t ActiveCount() const;

    // The tools of `agent` of `runtime`'s plan, starting MCP servers on first use.
    Awaitable<Result<std::shared_ptr<const internal::AgentToolSet>>> ToolsFor(
        std::shared_ptr<internal::PlanRuntime> runtime, int agent);
    // One tool by name (a built-in, or "<server>/<tool>" of the plan's MCP servers): its
    // safety class, and require_approval as the MCP server's settings give it.
    Awaitable<Result<internal::AgentTool>> ToolNamed(std::shared_ptr<internal::PlanRuntime> runtime,
                                                     std::string name);
    // What a call made outside any agent (a tool node) is granted: the default sandbox.
    tools::ToolGrants DefaultGrants() const;
    // A started MCP server of a definition, shared by its runs (started once).
    Awaitable<Result<std::shared_ptr<tools::mcp::McpClient>>> McpClientFor(
        std::string definition_sha256, model::McpServerSpec server);
    // Engine::Decide once the run is leased.
    Awaitable<Result<std::string>> DecideLeased(std::string run_id, std::string task_id,
                                                std::string decision, std::string actor,
                                                std::string comment, std::string output,
                                                std::string idempotency_key);
    // Shuts MCP servers down (engine destruction).
    void StopMcpServers();
    // Drops the registry of active runs (engine destruction): each holds the engine's
    // internals, so a run abandoned mid-flight (its executor stopped) would keep both alive.
    void ForgetRuns();

    void Notify(const ledger::Event& event) {
        for (auto* observer : observers_) observer->OnEvent(event);
    }
    void NotifyDelta(std::string_view run_id, std::string_view node, std::string_view text) {
        for (auto* observer : observers_) observer->OnDelta(run_id, node, text);
    }
    void NotifyQuotaUse(const QuotaUse& use) {
        for (auto* observer : observers_) observer->OnQuotaUse(use);
    }
    void NotifyResume(const model::Plan& plan, const ledger::RunState& state) {
        for (auto* observer : observers_) observer->OnResume(plan, state);
    }

    Executor executor_;
    std::shared_ptr<store::Store> store_;
    providers::ProviderRegistry& providers_;
    EngineOptions options_;
    Clock& clock_;
    Random& random_;
    std::vector<Observer*> observers_;                 // set up before runs start
    bool observers_want_data_ = false;                 // one of them reads events' `data`
    const bool appends_at_once_;                       // store_->AppendsAtOnce()
    bool wants_deltas_ = false;                        // some observer wants streamed text
    internal::Timeouts timeouts_;                      // attempt deadlines of all runs here
    internal::Slots run_slots_;                        // options_.max_concurrent_runs
    internal::Slots node_slots_;                       // options_.max_concurrent_nodes
    std::shared_ptr<audit::CheckpointSigner> signer_;  // options_.signer
    audit::CheckpointVerifier verifier_;               // with options_.ledger_key

    mutable std::mutex mutex_;
    std::unordered_map<std::string, std::shared_ptr<internal::Run>> active_;  // GUARDED_BY(mutex_)
    struct ClaimState {
        ClaimKind kind;
        std::vector<store::ControlRequest> deferred;  // kExecute only
    };
    std::unordered_map<std::string, ClaimState> claims_;                      // GUARDED_BY(mutex_)
    std::map<std::string, std::shared_ptr<internal::PlanRuntime>> runtimes_;  // GUARDED_BY(mutex_)
    // MCP servers by "<definition sha>/<server>", with their tool lists.
    struct McpSlot {
        std::shared_ptr<tools::mcp::McpClient> client;
        std::vector<tools::mcp::McpToolInfo> tools;
        std::optional<Error> error;
        bool starting = false;
        std::vector<std::shared_ptr<asio::steady_timer>> waiters;  // wait for `starting`
    };
    std::map<std::string, std::shared_ptr<McpSlot>> mcp_;  // GUARDED_BY(mutex_)
};

}  // namespace strowger::engine
