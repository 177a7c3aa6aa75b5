#include "engine/engine.hpp"

#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/sha256.hpp"
#include "engine/internal/engine_impl.hpp"
#include "engine/internal/run.hpp"
#include "engine/nodes/node_type.hpp"
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

Error ThrownError(std::exception_ptr thrown) {
    try {
        std::rethrow_exception(thrown);
    } catch (const std::exception& e) {
        return Error(ErrorCode::kInternal, std::string("run execution threw: ") + e.what());
    } catch (...) {
        return Error(ErrorCode::kInternal, "run execution threw");
    }
}

namespace {

// A pinned definition was validated when its run was created; its tool names are not checked
// again (a tool this process lacks fails the step that calls it, with the reason).
model::CompileOptions SnapshotCompileOptions(const providers::ProviderRegistry& registry) {
    model::CompileOptions options = CompileOptionsFor(registry);
    options.known_tools.clear();
    return options;
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
      random_(random),
      appends_at_once_(store_->AppendsAtOnce()),
      timeouts_(executor_),
      run_slots_(options_.max_concurrent_runs),
      node_slots_(options_.max_concurrent_nodes),
      signer_(options_.signer),
      verifier_(options_.ledger_key ? options_.ledger_key
                                    : (options_.signer ? std::make_shared<const VerifyingKey>(
                                                             options_.signer->key().verifying_key())
                                                       : nullptr)) {
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
    state.run_id = request.run_id.empty() ? NewRunId(clock_, random_) : std::move(request.run_id);
    Prepared prepared;
    prepared.run =
        std::make_shared<Run>(shared_from_this(), RuntimeFor(request.plan), std::move(state));
    auto record = std::make_unique<store::NewRun>();
    record->run_id = prepared.run->run_id();
    record->workflow = request.plan->workflow_name;
    record->definition_sha256 = request.plan->definition_sha256;
    record->definition_json =
        std::shared_ptr<const std::string>(request.plan, &request.plan->definition_json);
    record->idempotency_key = request.idempotency_key;
    ledger::RunCreated run_created;
    run_created.workflow = request.plan->workflow_name;
    run_created.definition_sha256 = request.plan->definition_sha256;
    run_created.input = ToValidUtf8(request.input);
    run_created.idempotency_key = request.idempotency_key;
    run_created.rerun_of = request.rerun_of;
    run_created.actor = std::move(request.actor);
    run_created.parent_run = std::move(request.parent_run);
    run_created.parent_node = std::move(request.parent_node);
    run_created.max_tokens = request.max_tokens;
    run_created.max_cost_nano_usd = request.max_cost_nano_usd;
    ledger::NewEvent created{{}, 0, std::move(run_created)};
    // The input too: a secret in it never reaches the ledger (nor, then, any prompt).
    internal::RedactSecrets(created);
    record->events.push_back(prepared.run->SealCreated(created));
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
    // Launched like any run; the awaiting coroutine is resumed on its own executor.
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<RunOutcome>)>(
        [](auto handler, std::shared_ptr<Run> launched, std::unique_ptr<store::NewRun> created) {
            Run::Launch(std::move(launched), std::move(created),
                        [handler = std::move(handler)](Result<RunOutcome> outcome) mutable {
                            auto executor = asio::get_associated_executor(handler);
                            asio::post(executor, [handler = std::move(handler),
                                                  outcome = std::move(outcome)]() mutable {
                                std::move(handler)(std::move(outcome));
                            });
                        });
        },
        asio::use_awaitable, std::move(run), std::move(record));
}

Result<std::shared_ptr<const model::Plan>> Engine::Impl::PlanFor(const std::string& sha256,
                                                                 const std::string* definition) {
    {
        std::lock_guard lock(mutex_);
        auto it = runtimes_.find(sha256);
        if (it != runtimes_.end()) return it->second->plan;
    }
    if (definition == nullptr) return std::shared_ptr<const model::Plan>();
    return CompileSnapshot(*definition, SnapshotCompileOptions(providers_));
}

namespace {

std::string Short(std::string_view hash) {
    return std::string(hash.substr(0, 12)) + "\xE2\x80\xA6";
}

}  // namespace

Awaitable<Result<Engine::Impl::Verified>> Engine::Impl::Verify(std::string run_id, bool load) {
    Verified out;
    Engine::Verification& v = out.verification;
    // The record and the events are two reads: a run executing in another process may append
    // between them. A record whose head moved meanwhile is read again; one whose head did not
    // move while more events exist is what verification reports.
    std::vector<store::StoredEvent> stored;
    for (int tries = 0; tries < 5; ++tries) {
        STROWGER_CO_ASSIGN_OR_RETURN(v.record, co_await store_->GetRun(run_id));
        store::EventQuery all_events;
        STROWGER_CO_ASSIGN_OR_RETURN(stored, co_await store_->ReadEvents(run_id, all_events));
        if (static_cast<int64_t>(stored.size()) <= v.record.head.seq) break;
        STROWGER_CO_ASSIGN_OR_RETURN(auto again, co_await store_->GetRun(run_id));
        if (again.head.seq == v.record.head.seq) break;
    }
    // 1-2. The chain, every hash recomputed, ending at the head the store recorded.
    std::vector<ledger::Event> events;
    {
        std::vector<std::string> lines;
        lines.reserve(stored.size());
        for (auto& event : stored) lines.push_back(std::move(event.encoded));
        events.reserve(lines.size());
        auto report = ledger::VerifyChain(run_id, lines, v.record.head, &events);
        v.events = report.events;
        v.head = report.head;
        if (!report.ok()) {
            v.finding =
                audit::Finding{report.issue->seq, report.issue->reason, report.issue->detail};
            co_return out;
        }
    }
    v.hashes.reserve(events.size());
    for (const auto& event : events) v.hashes.push_back(event.hash);
    if (events.empty() || events.front().type != ledger::EventType::kRunCreated) {
        v.finding = audit::Finding{1, "malformed", "the ledger does not begin with run.created"};
        co_return out;
    }
    // 3. The pinned definition: run.created's hash, the record's, and the snapshot's own.
    std::string pinned;
    {
        auto created = ledger::DecodePayload(events.front().type, events.front().type_name,
                                             events.front().data);
        if (!created) {
            v.finding = audit::Finding{1, "malformed", created.error().message()};
            co_return out;
        }
        pinned = std::get<ledger::RunCreated>(*created).definition_sha256;
    }
    if (pinned != v.record.definition_sha256) {
        v.finding = audit::Finding{1, "definition mismatch",
                                   "run.created pins " + Short(pinned) + ", the run row names " +
                                       Short(v.record.definition_sha256)};
        co_return out;
    }
    std::shared_ptr<const model::Plan> plan;
    {
        auto cached = PlanFor(pinned, nullptr);
        if (cached && *cached) plan = *cached;
    }
    if (!plan) {
        auto definition = co_await store_->GetDefinition(pinned);
        if (!definition) {
            if (definition.error().code() != ErrorCode::kNotFound) {
                co_return std::unexpected(definition.error());
            }
            v.finding =
                audit::Finding{1, "definition missing",
                               "the pinned definition " + Short(pinned) + " is not in the store"};
            co_return out;
        }
        std::string actual = Sha256Hex(*definition);
        if (actual != pinned) {
            v.finding = audit::Finding{1, "definition mismatch",
                                       "the stored definition hashes to " + Short(actual) +
                                           ", run.created pins " + Short(pinned)};
            co_return out;
        }
        auto compiled = PlanFor(pinned, &*definition);
        if (!compiled) {
            v.finding =
                audit::Finding{1, "definition does not compile", compiled.error().message()};
            co_return out;
        }
        plan = *compiled;
    }
    // 4. The status the events replay to is the status the store gives.
    auto state = ReplayVerified(*plan, events);
    if (!state) {
        v.finding = audit::Finding{v.head.seq, "malformed", state.error().message()};
        co_return out;
    }
    if (state->status != v.record.status) {
        v.finding = audit::Finding{
            v.head.seq, "status mismatch",
            "the run row says " + std::string(ledger::RunStatusName(v.record.status)) +
                ", its ledger ends " + std::string(ledger::RunStatusName(state->status)) +
                " (seq " + std::to_string(v.head.seq) + ", " + events.back().type_name + ")"};
        co_return out;
    }
    // 5. Signed checkpoints.
    {
        // A stop not yet signed is pending when this process's signer expects or holds it:
        // every append that makes a checkpoint due announces it before it is committed, so a
        // reader between the commit and the signing (a daemon's `?wait=true`) finds it here.
        auto signer = signer_;
        auto pending = [signer](const ledger::CheckpointLeaf& leaf) {
            return signer && signer->Pending(leaf);
        };
        auto checked = co_await verifier_.CheckRun(*store_, v.record, v.hashes, pending);
        if (!checked) co_return std::unexpected(checked.error());
        if (*checked) {
            v.finding = std::move(**checked);
            co_return out;
        }
    }
    if (load) {
        Loaded loaded;
        loaded.record = v.record;
        loaded.plan = std::move(plan);
        loaded.state = std::move(*state);
        out.loaded = std::move(loaded);
    }
    co_return out;
}

Awaitable<Result<Engine::Impl::Loaded>> Engine::Impl::Load(std::string run_id) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto verified, co_await Verify(run_id, true));
    if (verified.verification.finding) {
        co_return DataLossError("run " + run_id + ": ledger does not verify " +
                                verified.verification.finding->Describe() +
                                "; nothing was done (see `strowger audit verify " + run_id + "`)");
    }
    co_return std::move(*verified.loaded);
}

Awaitable<Status> Engine::Impl::AppendIdle(Loaded& loaded, ledger::NewEvent event) {
    internal::RedactSecrets(event);
    auto now = clock_.Now();
    std::vector<ledger::Event> sealed;
    const int64_t before = loaded.state.head.seq;
    sealed.push_back(ledger::Seal(loaded.state.head, loaded.state.run_id, now, event));
    loaded.state.Apply(now, -1, event);
    auto checkpoint = ExpectCheckpoint(loaded.state, before);
    auto appended =
        co_await store_->AppendEvents(loaded.state.run_id, std::move(sealed), loaded.state.status);
    CheckpointCommitted(checkpoint, appended.has_value());
    co_return appended;
}

std::shared_ptr<Run> Engine::Impl::MakeRun(Loaded loaded, std::string reason, std::string actor) {
    auto plan = loaded.plan;
    auto run = std::make_shared<Run>(shared_from_this(), RuntimeFor(plan), std::move(loaded.state));
    run->SetResumeReason(std::move(reason), std::move(actor));
    return run;
}

Awaitable<Result<RunOutcome>> Engine::Impl::ExecuteLoaded(Loaded loaded, std::string reason,
                                                          std::string actor) {
    auto run = MakeRun(std::move(loaded), std::move(reason), std::move(actor));
    std::unique_ptr<store::NewRun> no_record;
    co_return co_await Drive(std::move(run), std::move(no_record));
}

Awaitable<Result<RunOutcome>> Engine::Impl::Resume(std::string run_id, std::string reason,
                                                   std::string actor) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await LoadForResume(std::move(run_id)));
    co_return co_await ExecuteLoaded(std::move(loaded), std::move(reason), std::move(actor));
}

Awaitable<Result<RunOutcome>> Engine::Impl::RunChild(StartRequest request) {
    const std::string run_id = request.run_id;
    auto record = co_await store_->GetRun(run_id);
    if (!record) {
        if (record.error().code() != ErrorCode::kNotFound)
            co_return std::unexpected(record.error());
        // Recorded by the parent (subworkflow.started) but never created: create it now.
        auto prepared = Prepare(std::move(request), Lease::kTake);
        if (!prepared) co_return std::unexpected(std::move(prepared).error());
        co_return co_await Drive(std::move(prepared->run), std::move(prepared->record));
    }
    if (ledger::IsTerminal(record->status)) {
        STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await Load(run_id));
        RunOutcome outcome;
        outcome.run_id = run_id;
        outcome.status = loaded.state.status;
        outcome.output = loaded.state.output;
        outcome.tokens_in = loaded.state.tokens_in;
        outcome.tokens_out = loaded.state.tokens_out;
        outcome.cost_nano_usd = loaded.state.cost_nano_usd;
        outcome.error = loaded.state.error();
        co_return outcome;
    }
    STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await LoadForResume(run_id));
    co_return co_await ExecuteLoaded(std::move(loaded), "parent resumed", "");
}

Awaitable<Result<Engine::Impl::Loaded>> Engine::Impl::LoadForResume(std::string run_id) {
    if (!co_await Claim(run_id, ClaimKind::kExecute)) {
        co_return FailedPreconditionError("run " + run_id + " is already executing here");
    }
    // Held until the run registers (the caller executes it) or this fails.
    ClaimGuard claim(this, run_id);
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
        // Who holds it now: the owner read before the attempt may be the dead process whose
        // lease another resumer has just taken over.
        auto holder = co_await store_->GetRun(run_id);
        co_return MakeError(ErrorCode::kAborted, "run " + run_id + " is being executed by " +
                                                     (holder ? holder->owner : record.owner));
    }
    auto loaded = co_await Load(run_id);
    if (!loaded) {
        (void)co_await store_->ReleaseLease(run_id, options_.owner);
        co_return std::unexpected(loaded.error());
    }
    // Open tasks keep the run waiting, unless a task's timeout is due (a durable timer): then
    // the run goes on and its node applies on_timeout.
    const auto wake = loaded->state.WakeAt();
    const bool timer_due = wake && *wake <= clock_.Now();
    if (auto open = loaded->state.OpenTasks(); !open.empty() && !timer_due) {
        (void)co_await store_->ReleaseLease(run_id, options_.owner);
        co_return FailedPreconditionError("run " + run_id + " waits for a human decision on task " +
                                          open.front()->task_id + " (`strowger approve " + run_id +
                                          " " + open.front()->task_id + "` or `strowger reject`)");
    }
    claim.Dismiss();
    NotifyResume(*loaded->plan, loaded->state);
    co_return std::move(*loaded);
}

void Engine::Impl::Register(const std::string& run_id, std::shared_ptr<Run> run) {
    std::vector<store::ControlRequest> deferred;
    {
        std::lock_guard lock(mutex_);
        if (auto it = claims_.find(run_id); it != claims_.end()) {
            deferred = std::move(it->second.deferred);
            claims_.erase(it);
        }
        active_[run_id] = run;
    }
    if (deferred.empty()) return;
    // Posted: the run is registering from its own start and asks for the requests after it.
    asio::post(executor_, [run = std::move(run), deferred = std::move(deferred)]() mutable {
        for (auto& request : deferred) {
            if (request.action == store::ControlAction::kCancel) {
                run->RequestCancel(std::move(request.reason), std::move(request.actor));
            } else {
                run->RequestPause(std::move(request.reason), std::move(request.actor));
            }
        }
    });
}

Engine::Impl::ClaimResult Engine::Impl::TryClaim(const std::string& run_id, ClaimKind kind) {
    std::lock_guard lock(mutex_);
    if (auto it = active_.find(run_id); it != active_.end()) {
        return it->second->ending() ? ClaimResult::kEnding : ClaimResult::kBusy;
    }
    return claims_.try_emplace(run_id, ClaimState{kind, {}}).second ? ClaimResult::kClaimed
                                                                    : ClaimResult::kBusy;
}

Awaitable<bool> Engine::Impl::WaitForEnding(std::optional<asio::steady_timer>& timer, int& tries) {
    // An ending run unregisters once its lease is released (one store write): a resume or a
    // control that comes right after the run stopped waits for that instead of failing.
    if (++tries > 2500) co_return false;  // ≈ 5 s
    if (!timer) timer.emplace(executor_);
    timer->expires_after(std::chrono::milliseconds(2));
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
    co_return true;
}

Awaitable<bool> Engine::Impl::Claim(std::string run_id, ClaimKind kind) {
    std::optional<asio::steady_timer> timer;
    int tries = 0;
    // (No co_await inside a condition: GCC 12 miscompiles it.)
    while (true) {
        ClaimResult result = TryClaim(run_id, kind);
        if (result != ClaimResult::kEnding) co_return result == ClaimResult::kClaimed;
        const bool waited = co_await WaitForEnding(timer, tries);
        if (!waited) co_return false;
    }
}

void Engine::Impl::Unclaim(const std::string& run_id) {
    std::vector<store::ControlRequest> deferred;
    {
        std::lock_guard lock(mutex_);
        auto it = claims_.find(run_id);
        if (it == claims_.end()) return;
        deferred = std::move(it->second.deferred);
        claims_.erase(it);
    }
    if (deferred.empty()) return;
    // The run did not start here after all: its requests wait in the store for its next
    // executor, as requests for a run executing in another process do.
    asio::co_spawn(
        executor_,
        [store = store_, deferred = std::move(deferred)]() mutable -> Awaitable<void> {
            for (auto& request : deferred) {
                (void)co_await store->RequestControl(std::move(request));
            }
        },
        asio::detached);
}

Engine::Impl::ControlHere Engine::Impl::RouteControl(store::ControlRequest request) {
    std::shared_ptr<Run> run;
    {
        std::lock_guard lock(mutex_);
        if (auto it = active_.find(request.run_id); it != active_.end()) {
            if (it->second->ending()) return ControlHere::kEnding;
            run = it->second;
        } else if (auto claim = claims_.find(request.run_id); claim != claims_.end()) {
            if (claim->second.kind == ClaimKind::kIdle) return ControlHere::kBusy;
            claim->second.deferred.push_back(std::move(request));
            return ControlHere::kDeferred;
        } else {
            claims_.emplace(request.run_id, ClaimState{ClaimKind::kIdle, {}});
            return ControlHere::kClaimed;
        }
    }
    if (request.action == store::ControlAction::kCancel) {
        run->RequestCancel(std::move(request.reason), std::move(request.actor));
    } else {
        run->RequestPause(std::move(request.reason), std::move(request.actor));
    }
    return ControlHere::kApplied;
}

void Engine::Impl::ForgetRuns() {
    decltype(active_) forgotten;
    {
        std::lock_guard lock(mutex_);
        forgotten.swap(active_);
    }
    // Released here, outside the lock: a run that goes now takes its tasks with it.
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

Engine::~Engine() {
    impl_->StopMcpServers();
    impl_->ForgetRuns();
}

void Engine::AddObserver(Observer* observer) {
    impl_->observers_.push_back(observer);
    if (observer->WantsDeltas()) impl_->wants_deltas_ = true;
    if (observer->WantsData()) impl_->observers_want_data_ = true;
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

void Engine::StartRun(StartRequest request, OutcomeHandler done) {
    // Prepared when the executor gets to it, not now: a burst of starts then holds only the
    // requests (QueuedStart) until each run is under way, and each run's start-up memory is freed
    // before the next one's is taken (allocated all at once, it leaves holes among the runs'
    // lasting memory: ≈ 1 KB per run in W3).
    asio::post(impl_->executor_, [impl = impl_, queued = internal::QueuedStart(std::move(request)),
                                  done = std::move(done)]() mutable {
        auto prepared = impl->Prepare(std::move(queued).Take(), Impl::Lease::kTake);
        if (!prepared) {
            done(std::unexpected(std::move(prepared).error()));
            return;
        }
        // A run that threw is forgotten (Launch): no wrapper around `done`, which
        // would be allocated for every run and held while it waits.
        Run::Launch(std::move(prepared->run), std::move(prepared->record), std::move(done),
                    /*forget_if_thrown=*/true);
    });
}

void Engine::ResumeRun(std::string run_id, std::string reason, std::string actor,
                       OutcomeHandler done) {
    // A coroutine only for the loading; the run itself is launched like a new one.
    auto impl = impl_;
    asio::co_spawn(
        impl->executor_, impl->LoadForResume(std::move(run_id)),
        [impl, reason = std::move(reason), actor = std::move(actor), done = std::move(done)](
            std::exception_ptr thrown, Result<Impl::Loaded> loaded) mutable {
            if (thrown) loaded = std::unexpected(ThrownError(thrown));
            if (!loaded) {
                done(std::unexpected(std::move(loaded).error()));
                return;
            }
            auto run = impl->MakeRun(std::move(*loaded), std::move(reason), std::move(actor));
            Run::Launch(std::move(run), nullptr, std::move(done), /*forget_if_thrown=*/true);
        });
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

void Engine::PauseAll(std::string reason) {
    for (auto& run : impl_->All()) run->RequestPause(reason, {});
}

size_t Engine::ActiveRuns() const {
    return impl_->ActiveCount();
}

Awaitable<Result<Engine::ControlResult>> Engine::Control(std::string run_id,
                                                         store::ControlAction action,
                                                         std::string reason, std::string actor) {
    const bool cancel = action == store::ControlAction::kCancel;
    // A run whose execution here is ending is waited for: what it ends with decides what the
    // request does.
    std::optional<asio::steady_timer> timer;
    int tries = 0;
    Impl::ControlHere here = impl_->RouteControl({run_id, action, reason, actor});
    while (here == Impl::ControlHere::kEnding) {
        const bool waited = co_await impl_->WaitForEnding(timer, tries);
        if (!waited) break;
        here = impl_->RouteControl({run_id, action, reason, actor});
    }
    switch (here) {
        case Impl::ControlHere::kEnding:
            co_return MakeError(ErrorCode::kAborted,
                                "run " + run_id + " is still ending here; try again");
        case Impl::ControlHere::kApplied:
        case Impl::ControlHere::kDeferred:
            co_return ControlResult::kApplied;
        case Impl::ControlHere::kBusy:
            co_return MakeError(ErrorCode::kAborted, "run " + run_id +
                                                         " is recording another change here; "
                                                         "try again");
        case Impl::ControlHere::kClaimed:
            break;
    }
    Impl::ClaimGuard claim(impl_.get(), run_id);
    STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await impl_->store_->GetRun(run_id));
    if (ledger::IsTerminal(record.status)) {
        co_return FailedPreconditionError("run " + run_id + " has ended (" +
                                          std::string(ledger::RunStatusName(record.status)) + ")");
    }
    if (!cancel && record.status == RunStatus::kPaused) co_return ControlResult::kApplied;
    auto until = impl_->clock_.Now() + impl_->options_.lease_duration;
    STROWGER_CO_ASSIGN_OR_RETURN(
        bool leased, co_await impl_->store_->TryLease(run_id, impl_->options_.owner, until));
    if (!leased) {
        // Executing in another live process: it applies the request at its next poll.
        store::ControlRequest request{run_id, action, std::move(reason), std::move(actor)};
        STROWGER_CO_TRY(co_await impl_->store_->RequestControl(std::move(request)));
        co_return ControlResult::kRequested;
    }
    // Executing nowhere: record the decision ourselves.
    auto loaded = co_await impl_->Load(run_id);
    Status appended = loaded ? OkStatus() : Status(std::unexpected(loaded.error()));
    if (loaded) {
        ledger::NewEvent event{{}, 0, ledger::RunPaused{reason, actor}};
        if (cancel) event.payload = ledger::RunCancelled{reason, actor};
        appended = co_await impl_->AppendIdle(*loaded, std::move(event));
    }
    (void)co_await impl_->store_->ReleaseLease(run_id, impl_->options_.owner);
    STROWGER_CO_TRY(appended);
    co_return ControlResult::kApplied;
}

Awaitable<Result<RunOutcome>> Engine::RetryRun(std::string run_id, std::string from_step,
                                               std::string actor) {
    if (!co_await impl_->Claim(run_id, Impl::ClaimKind::kExecute)) {
        co_return FailedPreconditionError("run " + run_id +
                                          " is executing; it can be retried once it has ended");
    }
    // Held until the run registers again (ExecuteLoaded), or this fails.
    Impl::ClaimGuard claim(impl_.get(), run_id);
    STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await impl_->store_->GetRun(run_id));
    if (!ledger::IsTerminal(record.status)) {
        co_return FailedPreconditionError(
            "run " + run_id + " is " + std::string(ledger::RunStatusName(record.status)) +
            "; retry reopens a run that has ended (use `strowger runs resume` to continue it)");
    }
    if (from_step.empty() && record.status == RunStatus::kCompleted) {
        co_return FailedPreconditionError("run " + run_id +
                                          " completed; name the step to run again with --step");
    }
    auto until = impl_->clock_.Now() + impl_->options_.lease_duration;
    STROWGER_CO_ASSIGN_OR_RETURN(
        bool leased, co_await impl_->store_->TryLease(run_id, impl_->options_.owner, until));
    if (!leased) {
        co_return MakeError(ErrorCode::kAborted, "run " + run_id + " is leased by " + record.owner);
    }
    auto loaded = co_await impl_->Load(run_id);
    if (!loaded) {
        (void)co_await impl_->store_->ReleaseLease(run_id, impl_->options_.owner);
        co_return std::unexpected(loaded.error());
    }
    const model::Plan& plan = *loaded->plan;
    std::vector<bool> clear(plan.nodes.size(), false);
    if (!from_step.empty()) {
        const model::PlanNode* node = plan.FindNode(from_step);
        if (node == nullptr) {
            (void)co_await impl_->store_->ReleaseLease(run_id, impl_->options_.owner);
            co_return NotFoundError("run " + run_id + " has no step '" + from_step + "'");
        }
        for (int index : plan.WithDescendants(node->index))
            clear[static_cast<size_t>(index)] = true;
    }
    ledger::RunRetried retried{from_step, {}, actor};
    for (size_t i = 0; i < plan.nodes.size(); ++i) {
        auto status = loaded->state.nodes[i].status;
        // Whatever did not finish well starts again too.
        if (status == ledger::NodeStatus::kFailed || status == ledger::NodeStatus::kCancelled ||
            status == ledger::NodeStatus::kRunning || status == ledger::NodeStatus::kRetryWaiting) {
            clear[i] = true;
        }
        if (clear[i]) retried.cleared.push_back(plan.nodes[i].id);
    }
    ledger::NewEvent event{{}, 0, std::move(retried)};
    auto appended = co_await impl_->AppendIdle(*loaded, std::move(event));
    if (!appended) {
        (void)co_await impl_->store_->ReleaseLease(run_id, impl_->options_.owner);
        co_return std::unexpected(appended.error());
    }
    claim.Dismiss();
    co_return co_await impl_->ExecuteLoaded(std::move(*loaded), "retry", std::move(actor));
}

Awaitable<Result<RunOutcome>> Engine::RerunRun(std::string run_id) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await impl_->Load(run_id));
    StartRequest request;
    request.plan = loaded.plan;
    request.input = loaded.state.input;
    request.rerun_of = run_id;
    co_return co_await StartRun(std::move(request));
}

Awaitable<Status> Engine::FailRun(std::string run_id, std::string error, std::string code) {
    if (!co_await impl_->Claim(run_id, Impl::ClaimKind::kIdle)) {
        co_return FailedPreconditionError("run " + run_id + " is executing here");
    }
    Impl::ClaimGuard claim(impl_.get(), run_id);
    STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await impl_->store_->GetRun(run_id));
    if (ledger::IsTerminal(record.status)) {
        co_return FailedPreconditionError("run " + run_id + " has ended (" +
                                          std::string(ledger::RunStatusName(record.status)) + ")");
    }
    auto until = impl_->clock_.Now() + impl_->options_.lease_duration;
    STROWGER_CO_ASSIGN_OR_RETURN(
        bool leased, co_await impl_->store_->TryLease(run_id, impl_->options_.owner, until));
    if (!leased) {
        co_return MakeError(ErrorCode::kAborted, "run " + run_id + " is leased by " + record.owner);
    }
    auto loaded = co_await impl_->Load(run_id);
    Status appended = loaded ? OkStatus() : Status(std::unexpected(loaded.error()));
    if (loaded) {
        ledger::NewEvent event{{}, 0, ledger::RunFailed{std::move(error), std::move(code), {}}};
        appended = co_await impl_->AppendIdle(*loaded, std::move(event));
    }
    (void)co_await impl_->store_->ReleaseLease(run_id, impl_->options_.owner);
    co_return appended;
}

Awaitable<void> Engine::Supervise(std::chrono::milliseconds poll_interval) {
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto last_renewal = std::chrono::steady_clock::now();
    const auto renew_every = impl_->options_.lease_duration / 3;
    while (true) {
        timer.expires_after(poll_interval);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;  // cancelled
        std::vector<std::string> ids;
        for (const auto& run : impl_->All()) ids.push_back(run->run_id());
        if (!ids.empty()) {
            auto requests = co_await impl_->store_->TakeControlRequests(std::move(ids));
            if (requests) {
                for (auto& request : *requests) {
                    if (request.action == store::ControlAction::kCancel) {
                        Cancel(request.run_id, std::move(request.reason), std::move(request.actor));
                    } else {
                        Pause(request.run_id, std::move(request.reason), std::move(request.actor));
                    }
                }
            }
        }
        if (std::chrono::steady_clock::now() - last_renewal >= renew_every) {
            last_renewal = std::chrono::steady_clock::now();
            auto until = impl_->clock_.Now() + impl_->options_.lease_duration;
            (void)co_await impl_->store_->RenewLeases(impl_->options_.owner, until);
        }
    }
}

Awaitable<Result<Engine::Verification>> Engine::VerifyRun(std::string run_id) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto verified, co_await impl_->Verify(std::move(run_id), false));
    co_return std::move(verified.verification);
}

Awaitable<Status> Engine::FlushCheckpoints() {
    if (!impl_->signer_) co_return OkStatus();
    co_return co_await impl_->signer_->Flush();
}

bool Engine::CheckpointsPending() const {
    return impl_->signer_ && impl_->signer_->HasPending();
}

Awaitable<Result<int64_t>> Engine::SignUnsignedStops() {
    if (!impl_->signer_) co_return int64_t{0};
    auto impl = impl_;
    audit::CheckpointSigner::VerifyFn verified =
        [impl](store::RunRecord record) -> Awaitable<Result<bool>> {
        // Its chain, definition and status must verify; its checkpoints too, except the stop
        // being recovered.
        auto checked = co_await impl->Verify(record.run_id, false);
        if (!checked) co_return std::unexpected(checked.error());
        const auto& finding = checked->verification.finding;
        if (finding && finding->reason != "unsigned stop") {
            spdlog::warn("run {}: not signing its stop: ledger does not verify {}", record.run_id,
                         finding->Describe());
            co_return false;
        }
        co_return true;
    };
    co_return co_await impl_->signer_->RecoverUnsignedStops(std::move(verified));
}

audit::CheckpointVerifier& Engine::checkpoint_verifier() {
    return impl_->verifier_;
}

Awaitable<Result<Engine::LoadedRun>> Engine::LoadRun(std::string run_id) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await impl_->Load(std::move(run_id)));
    co_return LoadedRun{std::move(loaded.record), std::move(loaded.plan), std::move(loaded.state)};
}

Awaitable<Result<std::shared_ptr<const model::Plan>>> Engine::LoadPinnedPlan(std::string sha256) {
    {
        std::lock_guard lock(impl_->mutex_);
        auto it = impl_->runtimes_.find(sha256);
        if (it != impl_->runtimes_.end()) co_return it->second->plan;
    }
    STROWGER_CO_ASSIGN_OR_RETURN(auto definition, co_await impl_->store_->GetDefinition(sha256));
    if (Sha256Hex(definition) != sha256) {
        co_return DataLossError("the stored definition " + sha256.substr(0, 12) +
                                "\xE2\x80\xA6 does not hash to its SHA-256 (see `strowger audit "
                                "verify`)");
    }
    co_return CompileSnapshot(definition, SnapshotCompileOptions(impl_->providers_));
}

store::Store& Engine::store() {
    return *impl_->store_;
}
const std::string& Engine::owner() const {
    return impl_->options_.owner;
}

Result<ledger::RunState> ReplayRun(const model::Plan& plan,
                                   const std::vector<store::StoredEvent>& events) {
    if (events.empty()) return ledger::RunState(plan.nodes.size());
    std::vector<std::string> lines;
    lines.reserve(events.size());
    for (const auto& stored : events) lines.push_back(stored.encoded);
    std::string run_id;
    if (auto first = ledger::DecodeEvent(lines.front())) run_id = first->run_id;
    std::vector<ledger::Event> decoded;
    decoded.reserve(lines.size());
    auto report = ledger::VerifyChain(run_id, lines, std::nullopt, &decoded);
    if (!report.ok()) {
        return DataLossError("run " + run_id + ": ledger broken at seq " +
                             std::to_string(report.issue->seq) + ": " + report.issue->reason +
                             " (run `strowger audit verify`)");
    }
    return ReplayVerified(plan, decoded);
}

Result<ledger::RunState> ReplayVerified(const model::Plan& plan,
                                        std::vector<ledger::Event>& events) {
    ledger::RunState state(plan.nodes.size());
    state.node_names = &plan.node_ids;
    std::unordered_map<std::string_view, int> index;
    for (const auto& node : plan.nodes) index.emplace(node.id, node.index);
    for (auto& event : events) {
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
                    ledger::NewEvent{std::move(event.node), event.attempt, std::move(payload)});
    }
    return state;
}

model::CompileOptions CompileOptionsFor(const providers::ProviderRegistry& registry,
                                        const tools::ToolRegistry* tools) {
    model::CompileOptions options;
    options.node_types = &NodeTypes();
    options.known_providers = registry.Names();
    options.known_tools = tools::BuiltinToolNames();
    for (const auto& name : tools::MemoryToolNames()) options.known_tools.push_back(name);
    if (tools) {
        for (auto& name : tools->Names()) {
            if (std::find(options.known_tools.begin(), options.known_tools.end(), name) ==
                options.known_tools.end()) {
                options.known_tools.push_back(std::move(name));
            }
        }
    }
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
