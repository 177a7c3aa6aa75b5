// Private to the engine module: the engine's shared state and the per-definition runtime.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine.hpp"

namespace strowger::engine {

namespace internal {
class Run;

// The compiled plan of a definition plus the providers its agents resolved to.
struct PlanRuntime {
    std::shared_ptr<const model::Plan> plan;
    std::vector<Result<providers::ResolvedModel>> models;  // by plan agent index
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
    // Appends one event to a run that executes nowhere (the caller holds its lease).
    Awaitable<Status> AppendIdle(Loaded& loaded, ledger::NewEvent event);
    Awaitable<Result<RunOutcome>> Resume(std::string run_id, std::string reason, std::string actor);
    // Executes a loaded run (after resume or retry); the caller holds its lease.
    Awaitable<Result<RunOutcome>> ExecuteLoaded(Loaded loaded, std::string reason, std::string actor);
    // Spawns `run`'s main coroutine on its executor and waits for it.
    static Awaitable<Result<RunOutcome>> Drive(std::shared_ptr<internal::Run> run,
                                               std::unique_ptr<store::NewRun> record);

    void Register(const std::string& run_id, std::shared_ptr<internal::Run> run);
    void Unregister(const std::string& run_id);
    std::shared_ptr<internal::Run> Find(const std::string& run_id);
    std::vector<std::shared_ptr<internal::Run>> All();
    size_t ActiveCount() const;

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
    std::unordered_map<std::string, std::shared_ptr<internal::Run>> active_;  // GUARDED_BY(mutex_)
    std::map<std::string, std::shared_ptr<internal::PlanRuntime>> runtimes_;  // GUARDED_BY(mutex_)
};

}  // namespace strowger::engine
