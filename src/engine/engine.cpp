#include "engine/engine.hpp"

#include <unistd.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>

#include "core/ids.hpp"
#include "core/json.hpp"
#include "engine/internal/engine_impl.hpp"
#include "engine/internal/run.hpp"
#include "ledger/chain.hpp"
#include "model/loader.hpp"

namespace strowger::engine {

using internal::Run;
using ledger::RunStatus;

namespace {

std::string DefaultOwner(Random& random) {
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    return std::string(host) + ":" + std::to_string(getpid()) + ":" +
           std::to_string(random.Next() % 1000000);
}

Awaitable<Result<RunOutcome>> Fail(Error error) {
    co_return std::unexpected(std::move(error));
}

}  // namespace

Engine::Impl::Impl(Executor executor, std::shared_ptr<store::Store> store,
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

std::shared_ptr<internal::PlanRuntime> Engine::Impl::RuntimeFor(
    std::shared_ptr<const model::Plan> plan) {
    std::lock_guard lock(mutex_);
    auto& slot = runtimes_[plan->definition_sha256];
    if (slot) return slot;  // same definition hash: the same plan
    auto runtime = std::make_shared<internal::PlanRuntime>();
    runtime->plan = plan;
    for (const auto& agent : plan->agents) {
        runtime->models.push_back(providers_.Resolve(agent.model, agent.base_dir));
    }
    slot = runtime;
    return runtime;
}

Result<Engine::Impl::Prepared> Engine::Impl::Prepare(StartRequest request, Lease lease) {
    if (!request.plan) return InvalidArgumentError("no plan");
    ledger::RunState state(request.plan->nodes.size());
    state.run_id = NewRunId(clock_, random_);
    Prepared prepared;
    prepared.run =
        std::make_shared<Run>(shared_from_this(), RuntimeFor(request.plan), std::move(state));
    auto record = std::make_unique<store::NewRun>();
    record->run_id = prepared.run->run_id();
    record->workflow = request.plan->workflow_name;
    record->definition_sha256 = request.plan->definition_sha256;
    record->definition_json = request.plan->definition_json;
    record->idempotency_key = request.idempotency_key;
    record->events.push_back(prepared.run->SealCreated(
        {{},
         0,
         ledger::RunCreated{request.plan->workflow_name, request.plan->definition_sha256,
                            ToValidUtf8(request.input), request.idempotency_key,
                            request.rerun_of}}));
    record->status = RunStatus::kPending;
    if (lease == Lease::kTake) {
        record->owner = options_.owner;
        record->lease_until = clock_.Now() + options_.lease_duration;
    }
    prepared.record = std::move(record);
    return prepared;
}

Awaitable<Result<RunOutcome>> Engine::Impl::Drive(std::shared_ptr<Run> run,
                                                  std::unique_ptr<store::NewRun> record) {
    // The run's main coroutine runs on the run's executor with its cancellation slot bound to
    // the run's main signal (how nodes run inline are cancelled). This frame keeps the run —
    // and so the signal — alive until the spawned coroutine has completed.
    auto call = run->Main(run, std::move(record));
    co_return co_await asio::co_spawn(
        run->executor(), std::move(call),
        asio::bind_cancellation_slot(run->main_signal().slot(), asio::use_awaitable));
}

Awaitable<Result<RunOutcome>> Engine::Impl::Resume(std::string run_id, std::string reason,
                                                   std::string actor) {
    if (Find(run_id)) {
        co_return FailedPreconditionError("run " + run_id + " is already executing here");
    }
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
    std::shared_ptr<const model::Plan> plan;
    {
        std::lock_guard lock(mutex_);
        auto it = runtimes_.find(record.definition_sha256);
        if (it != runtimes_.end()) plan = it->second->plan;
    }
    if (!plan) {
        STROWGER_CO_ASSIGN_OR_RETURN(auto definition,
                                     co_await store_->GetDefinition(record.definition_sha256));
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
    run->SetResumeReason(std::move(reason), std::move(actor));
    std::unique_ptr<store::NewRun> no_record;
    co_return co_await Drive(std::move(run), std::move(no_record));
}

void Engine::Impl::Register(const std::string& run_id, std::shared_ptr<Run> run) {
    std::lock_guard lock(mutex_);
    active_[run_id] = std::move(run);
}

void Engine::Impl::Unregister(const std::string& run_id) {
    std::lock_guard lock(mutex_);
    active_.erase(run_id);
}

std::shared_ptr<Run> Engine::Impl::Find(const std::string& run_id) {
    std::lock_guard lock(mutex_);
    auto it = active_.find(run_id);
    return it == active_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Run>> Engine::Impl::All() {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<Run>> out;
    for (auto& [id, run] : active_) out.push_back(run);
    return out;
}

size_t Engine::Impl::ActiveCount() const {
    std::lock_guard lock(mutex_);
    return active_.size();
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
    STROWGER_CO_ASSIGN_OR_RETURN(auto prepared,
                                 impl_->Prepare(std::move(request), Impl::Lease::kNone));
    std::string run_id = prepared.run->run_id();
    STROWGER_CO_ASSIGN_OR_RETURN(auto created,
                                 co_await impl_->store_->CreateRun(std::move(*prepared.record)));
    RunOutcome outcome;
    outcome.run_id = created.run_id;
    outcome.existing = !created.created;
    outcome.status = RunStatus::kPending;
    if (outcome.existing) {
        STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await impl_->store_->GetRun(created.run_id));
        outcome.status = record.status;
    }
    co_return outcome;
}

Awaitable<Result<RunOutcome>> Engine::StartRun(StartRequest request) {
    // Not a coroutine: the caller awaits the run's own frames directly.
    auto prepared = impl_->Prepare(std::move(request), Impl::Lease::kTake);
    if (!prepared) return Fail(std::move(prepared).error());
    return Impl::Drive(std::move(prepared->run), std::move(prepared->record));
}

Awaitable<Result<RunOutcome>> Engine::ResumeRun(std::string run_id, std::string reason,
                                                std::string actor) {
    return impl_->Resume(std::move(run_id), std::move(reason), std::move(actor));
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
