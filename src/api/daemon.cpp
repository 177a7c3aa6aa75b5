#include "api/daemon.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <list>
#include <map>
#include <set>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "api/internal/service.hpp"
#include "api/internal/standing.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace strowger::api {
namespace {

constexpr std::string_view kDrainReason = "daemon draining";
constexpr std::string_view kFaultMarker = "strowger-inject-fault";

// Test only (DaemonOptions::inject_faults): throws out of a marked run's execution at its
// node.started, as a bug in a library would.
class FaultInjector final : public engine::Observer {
  public:
    void OnEvent(const ledger::Event& event) override {
        if (event.type == ledger::EventType::kRunCreated) {
            if (event.data.find(kFaultMarker) != std::string::npos) {
                marked_[event.run_id] =
                    event.data.find(std::string(kFaultMarker) + ":once") != std::string::npos ? 1
                                                                                              : -1;
            }
            return;
        }
        if (event.type != ledger::EventType::kNodeStarted) return;
        auto it = marked_.find(event.run_id);
        if (it == marked_.end() || it->second == 0) return;
        if (it->second > 0) --it->second;
        throw std::runtime_error("injected fault at " + event.node);
    }
    bool WantsData() const override { return true; }

  private:
    std::map<std::string, int> marked_;  // run -> faults left (-1: every time)
};

}  // namespace

class Daemon::Impl {
  public:
    Impl(Executor executor, std::shared_ptr<store::Store> store,
         providers::ProviderRegistry& providers, engine::EngineOptions engine_options,
         DaemonOptions options, Clock& clock, Random& random)
        : executor_(executor),
          store_(store),
          options_(std::move(options)),
          clock_(clock),
          hub_(executor, EventHub::Options{8192, 1024, options_.stream_deltas}),
          engine_(std::make_unique<engine::Engine>(executor, store, providers,
                                                   std::move(engine_options), clock, random)),
          tokens_(store, clock),
          workflows_(store, providers, RegistryOptions(options_), clock, random),
          service_(executor, store, *engine_, workflows_, hub_, tokens_, metrics_, options_, clock,
                   random),
          router_([this](std::string_view token) { return tokens_.Authenticate(token); }),
          standing_(std::make_unique<internal::Standing>(service_, options_.agents_dir,
                                                         engine::CompileOptionsFor(providers))),
          bus_(clock),
          feeder_(bus_),
          quota_(bus_),
          memory_(options_.memory ? options_.memory
                                  : std::make_shared<automation::MemoryService>()),
          triggers_(executor, store, clock, random),
          webhooks_(store, bus_, clock, random),
          launcher_(service_, bus_) {
        if (options_.inject_faults) engine_->AddObserver(&faults_);
        engine_->AddObserver(&hub_);
        engine_->AddObserver(&metrics_);
        SetUpAutomation();
        router_.SetObserver([this](const std::string& route, const std::string& method, int status,
                                   std::chrono::nanoseconds elapsed) {
            metrics_.ObserveRequest(route, method, status, elapsed);
        });
        internal::AddAdminRoutes(router_, service_);
        internal::AddRunRoutes(router_, service_);
        internal::AddWorkflowRoutes(router_, service_);
        internal::AddAgentRoutes(router_, service_, *standing_);
        internal::AddCronRoutes(router_, service_, *standing_);
        internal::AddAuditRoutes(router_, service_);
        internal::AddAutomationRoutes(router_, service_);
        service_.router = &router_;
    }

    // Automation (issue 16, part A): the bus fed by the engine, triggers on the bus, memory
    // changes onto it, fires and webhooks started through the launcher.
    void SetUpAutomation() {
        engine_->AddObserver(&feeder_);
        engine_->AddObserver(&quota_);
        memory_->Attach(store_);
        memory_->SetListener([this](const automation::MemoryUpdate& update) {
            automation::BusEvent event = automation::MemoryEvent(update);
            if (!update.run_id.empty()) event.depth = bus_.RunDepth(update.run_id);
            bus_.Publish(std::move(event));
        });
        bus_.Subscribe([this](const automation::BusEvent& event) { triggers_.OnEvent(event); });
        launcher_.agent_turns = &standing_->launcher;  // triggers aimed at an agent
        standing_->launcher.workflows = &launcher_;    // cron jobs that start a workflow
        triggers_.SetLauncher(&launcher_);
        webhooks_.SetLauncher(&launcher_);
        // Test only: a kill -9 between a fire's record and its start.
        if (const char* kill = std::getenv("STROWGER_TEST_KILL_AFTER_FIRE_RECORD");
            kill && std::string_view(kill) == "1") {
            triggers_.SetAfterRecordHook([](const store::TriggerFire&) { std::raise(SIGKILL); });
        }
        service_.automation =
            internal::AutomationParts{&bus_, &triggers_, memory_.get(), &webhooks_, &quota_};
    }
    void SystemEvent(std::string type, std::string description) {
        automation::BusEvent event;
        event.kind = automation::EventKind::kSystem;
        event.type = std::move(type);
        event.subject = "daemon";
        event.description = std::move(description);
        bus_.Publish(std::move(event));
    }

    ~Impl() {
        if (standing_) standing_->Stop();
        StopBackground();
        if (server_) server_->CloseAll();
        // The engine goes before the observers it calls (members are destroyed in reverse).
        engine_.reset();
    }

    static WorkflowRegistry::Options RegistryOptions(const DaemonOptions& options) {
        WorkflowRegistry::Options registry;
        std::error_code ec;
        if (!options.workflows_dir.empty()) {
            auto dir = std::filesystem::absolute(options.workflows_dir, ec);
            registry.base_dir = dir.string();
            if (std::filesystem::is_directory(dir / "agents", ec)) {
                registry.agent_dirs.push_back((dir / "agents").string());
            }
        } else {
            registry.base_dir = std::filesystem::current_path(ec).string();
        }
        return registry;
    }

    Awaitable<Result<StartReport>> Start();
    Awaitable<std::vector<std::string>> Reload();
    Awaitable<void> Drain();
    Awaitable<void> Background(std::chrono::milliseconds interval,
                               std::function<Awaitable<void>()> tick);
    Awaitable<void> WatchDirectory();
    Awaitable<void> PruneOnce();
    Awaitable<void> WakeDueRuns();
    Awaitable<void> RestoreBusState(std::string run_id);
    Awaitable<Result<std::vector<std::string>>> RunsToResume();
    void StopBackground() {
        for (auto& signal : stop_slots_) signal.emit(asio::cancellation_type::terminal);
        if (inotify_) {
            boost::system::error_code ignored;
            inotify_->close(ignored);
        }
    }
    void Spawn(Awaitable<void> work) {
        asio::co_spawn(
            executor_, std::move(work),
            asio::bind_cancellation_slot(stop_slots_.emplace_back().slot(), asio::detached));
    }

    Executor executor_;
    std::shared_ptr<store::Store> store_;
    DaemonOptions options_;
    Clock& clock_;
    EventHub hub_;
    Metrics metrics_;
    FaultInjector faults_;
    std::unique_ptr<engine::Engine> engine_;
    TokenRegistry tokens_;
    WorkflowRegistry workflows_;
    internal::Service service_;
    Router router_;
    std::unique_ptr<internal::Standing> standing_;
    std::unique_ptr<HttpServer> server_;
    std::list<asio::cancellation_signal> stop_slots_;
    std::unique_ptr<asio::posix::stream_descriptor> inotify_;
    bool drained_ = false;
    // Automation (after the engine and the service they use; destroyed before them).
    automation::EventBus bus_;
    automation::BusFeeder feeder_;
    automation::QuotaWatch quota_;
    std::shared_ptr<automation::MemoryService> memory_;
    automation::TriggerEngine triggers_;
    automation::WebhookService webhooks_;
    internal::DaemonLauncher launcher_;
};

Awaitable<Result<std::vector<std::string>>> Daemon::Impl::RunsToResume() {
    std::vector<std::string> ids;
    // Named, not braced inside co_await (GCC 12 frees such a temporary twice).
    std::vector<ledger::RunStatus> unfinished = {ledger::RunStatus::kRunning,
                                                 ledger::RunStatus::kPending};
    STROWGER_CO_ASSIGN_OR_RETURN(auto claimable,
                                 co_await store_->FindClaimable(unfinished, clock_.Now(), 0));
    for (const auto& record : claimable) ids.push_back(record.run_id);
    // Waiting runs whose durable timer fell due while no daemon ran.
    STROWGER_CO_ASSIGN_OR_RETURN(auto due, co_await store_->FindDueRuns(clock_.Now(), 0));
    for (const auto& record : due) ids.push_back(record.run_id);
    // Runs the last drain paused (its run.paused says so): the rest of the paused runs wait
    // for someone to resume them.
    std::vector<ledger::RunStatus> stopped = {ledger::RunStatus::kPaused};
    STROWGER_CO_ASSIGN_OR_RETURN(auto paused,
                                 co_await store_->FindClaimable(stopped, clock_.Now(), 0));
    for (const auto& record : paused) {
        store::EventQuery last;
        last.after_seq = record.head.seq - 1;
        auto events = co_await store_->ReadEvents(record.run_id, last);
        if (!events || events->empty() || events->back().type != "run.paused") continue;
        if (events->back().encoded.find(std::string("\"reason\":\"") + std::string(kDrainReason) +
                                        "\"") != std::string::npos) {
            ids.push_back(record.run_id);
        }
    }
    co_return ids;
}

// A resumed run's workflow and the depth its automated start recorded (in its annotation's
// metadata), for the bus: its run.created was before this process.
Awaitable<void> Daemon::Impl::RestoreBusState(std::string run_id) {
    auto record = co_await store_->GetRun(run_id);
    if (!record) co_return;
    int depth = 0;
    if (auto annotation = co_await store_->GetRunAnnotation(run_id)) {
        if (auto metadata = ParseJson(annotation->metadata); metadata && metadata->is_object()) {
            if (const auto* origin = JsonObject(metadata->as_object(), "origin")) {
                depth = static_cast<int>(JsonInt(*origin, "depth"));
            }
        }
    }
    feeder_.NoteRun(run_id, record->workflow, depth);
}

Awaitable<Result<Daemon::StartReport>> Daemon::Impl::Start() {
    StartReport report;
    STROWGER_CO_TRY(co_await tokens_.Refresh());
    if (tokens_.tokens().empty()) {
        STROWGER_CO_ASSIGN_OR_RETURN(auto admin,
                                     co_await tokens_.Create("admin", "admin", "serve"));
        report.admin_token = admin.token;
    }
    STROWGER_CO_TRY(co_await workflows_.Load());
    STROWGER_CO_TRY(co_await triggers_.Load());
    if (!options_.workflows_dir.empty()) {
        auto sync = co_await workflows_.SyncDirectory(options_.workflows_dir);
        for (const auto& invalid : sync.invalid) {
            for (const auto& d : invalid.diagnostics) {
                spdlog::error("{}", d.ToString());
                report.invalid_files.push_back(d.ToString());
            }
        }
    }
    report.workflows = static_cast<int64_t>(workflows_.List().size());
    // Stops a crash left unsigned are signed first (each after its ledger verifies).
    STROWGER_CO_ASSIGN_OR_RETURN(report.signed_stops, co_await engine_->SignUnsignedStops());
    auto server = HttpServer::Listen(
        executor_, options_.host, options_.port,
        [this](Request request) { return router_.Dispatch(std::move(request)); }, options_.limits);
    if (!server) co_return std::unexpected(server.error());
    server_ = std::move(*server);
    service_.server = server_.get();
    report.url = "http://" + options_.host + ":" + std::to_string(server_->port());
    // Every unfinished run continues here (not awaited: each holds only its own state while it
    // waits). Runs another live process holds are left to it.
    STROWGER_CO_ASSIGN_OR_RETURN(auto ids, co_await RunsToResume());
    for (const auto& id : ids) {
        co_await RestoreBusState(id);
        engine_->ResumeRun(id, "restart", "serve", service_.DoneHandler(id));
        ++report.resumed;
    }
    // Standing agents and cron jobs, once the runs they may wait for are resumed.
    {
        auto problems = co_await standing_->Start();
        if (!problems) co_return std::unexpected(problems.error());
        for (auto& line : *problems) report.invalid_files.push_back(std::move(line));
        report.agents = static_cast<int64_t>(standing_->turns.manifests().size());
        report.cron_jobs = static_cast<int64_t>(standing_->cron.size());
    }
    // Fires a crash left between their record and their start: each starts once now.
    auto recovered = co_await triggers_.Recover();
    if (!recovered) {
        spdlog::error("triggers: cannot complete interrupted fires: {}",
                      recovered.error().message());
    }
    service_.ready = true;
    SystemEvent("daemon_started",
                "Daemon started (" + std::to_string(report.resumed) + " runs resumed, " +
                    std::to_string(recovered ? *recovered : 0) + " trigger fires completed)");
    // Control requests from other processes and lease renewal.
    Spawn(engine_->Supervise(std::chrono::milliseconds(200)));
    Spawn(Background(options_.token_refresh, [this]() -> Awaitable<void> {
        if (auto refreshed = co_await tokens_.Refresh(); !refreshed) {
            spdlog::warn("cannot refresh API tokens: {}", refreshed.error().message());
        }
    }));
    Spawn(Background(options_.retention_interval, [this]() { return PruneOnce(); }));
    Spawn(Background(options_.timer_interval, [this]() { return WakeDueRuns(); }));
    if (!options_.workflows_dir.empty()) Spawn(WatchDirectory());
    co_return report;
}

Awaitable<void> Daemon::Impl::Background(std::chrono::milliseconds interval,
                                         std::function<Awaitable<void>()> tick) {
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::steady_timer timer(executor_);
    while (true) {
        timer.expires_after(interval);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || service_.draining) co_return;
        co_await tick();
    }
}

// Durable timers: a waiting run whose wake_at is due (and whose lease nobody holds) resumes
// here; its node applies what the timer means (a human task's on_timeout).
Awaitable<void> Daemon::Impl::WakeDueRuns() {
    auto due = co_await store_->FindDueRuns(clock_.Now(), 0);
    if (!due) {
        spdlog::warn("durable timers: {}", due.error().message());
        co_return;
    }
    for (const auto& record : *due) {
        if (service_.IsExecutingHere(record.run_id)) continue;
        engine_->ResumeRun(record.run_id, "restart", "serve", service_.DoneHandler(record.run_id));
    }
}

Awaitable<void> Daemon::Impl::PruneOnce() {
    auto policies = co_await store_->ListRetentionPolicies();
    if (!policies) {
        spdlog::warn("retention: {}", policies.error().message());
        co_return;
    }
    std::vector<std::string> named;
    for (const auto& p : *policies) {
        if (!p.workflow.empty()) named.push_back(p.workflow);
    }
    for (const auto& p : *policies) {
        store::PruneRequest request;
        request.workflow = p.workflow;
        if (p.workflow.empty()) request.except = named;
        request.keep_count = p.keep_count;
        if (p.keep_days > 0)
            request.finished_before = clock_.Now() - std::chrono::hours(24 * p.keep_days);
        request.max_runs = options_.retention_slice;
        // In slices, so writers of runs are never held up for long.
        while (!service_.draining) {
            auto pruned = co_await store_->PruneRuns(request);
            if (!pruned) {
                spdlog::warn("retention: {}", pruned.error().message());
                break;
            }
            metrics_.RunsPruned(*pruned);
            if (*pruned < request.max_runs) break;
        }
    }
}

Awaitable<void> Daemon::Impl::WatchDirectory() {
    co_await asio::this_coro::throw_if_cancelled(false);
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        spdlog::warn("--workflows: cannot watch {} (inotify); reload with SIGHUP",
                     options_.workflows_dir);
        co_return;
    }
    if (inotify_add_watch(fd, options_.workflows_dir.c_str(),
                          IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) <
        0) {
        ::close(fd);
        spdlog::warn("--workflows: cannot watch {}", options_.workflows_dir);
        co_return;
    }
    inotify_ = std::make_unique<asio::posix::stream_descriptor>(executor_, fd);
    boost::system::error_code ignored;
    inotify_->non_blocking(true, ignored);
    std::array<char, 4096> buffer;
    asio::steady_timer settle(executor_);
    while (true) {
        auto [ec, n] = co_await inotify_->async_read_some(asio::buffer(buffer),
                                                          asio::as_tuple(asio::use_awaitable));
        if (ec || service_.draining) co_return;
        // Editors write in several steps: reload once things settle.
        settle.expires_after(std::chrono::milliseconds(100));
        co_await settle.async_wait(asio::as_tuple(asio::use_awaitable));
        // Drain what arrived meanwhile (the descriptor is non-blocking).
        for (boost::system::error_code more; !more;) {
            inotify_->read_some(asio::buffer(buffer), more);
        }
        co_await Reload();
    }
}

Awaitable<std::vector<std::string>> Daemon::Impl::Reload() {
    std::vector<std::string> lines;
    if (!options_.agents_dir.empty() && !drained_) {
        for (auto& line : co_await standing_->Reload()) lines.push_back(std::move(line));
    }
    if (options_.workflows_dir.empty()) co_return lines;
    auto sync = co_await workflows_.SyncDirectory(options_.workflows_dir);
    for (const auto& invalid : sync.invalid) {
        for (const auto& d : invalid.diagnostics) {
            spdlog::error("reload: {} (the previous version stays)", d.ToString());
            lines.push_back(d.ToString());
        }
    }
    spdlog::info("reload of {}: {} added, {} updated, {} removed, {} unchanged, {} invalid",
                 options_.workflows_dir, sync.added, sync.updated, sync.removed, sync.unchanged,
                 sync.invalid.size());
    co_return lines;
}

Awaitable<void> Daemon::Impl::Drain() {
    if (drained_) co_return;
    drained_ = true;
    SystemEvent("daemon_draining", "Daemon draining");
    service_.draining = true;
    service_.ready = false;
    standing_->Stop();
    if (server_) server_->StopAccepting();
    StopBackground();
    // Executing runs stop at their next step boundary, once their in-flight model calls have
    // answered; the next start resumes them (RunsToResume). Those still executing at the
    // deadline stay `running` in the store, as after a crash: resumed too.
    auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
    asio::steady_timer timer(executor_);
    std::set<std::string> told;
    while (engine_->ActiveRuns() > 0 && std::chrono::steady_clock::now() < deadline) {
        // Every run started or resumed here that may still execute (new ones too: a resume
        // the supervisor scheduled before the drain).
        for (const auto& id : service_.ExecutingHere()) {
            if (told.insert(id).second) {
                engine_->Pause(id, std::string(kDrainReason), "serve");
            }
        }
        timer.expires_after(std::chrono::milliseconds(20));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (engine_->ActiveRuns() > 0) {
        spdlog::warn("drain: {} runs still executing at the deadline; the next start resumes them",
                     engine_->ActiveRuns());
    }
    if (auto flushed = co_await engine_->FlushCheckpoints(); !flushed) {
        spdlog::error("cannot store signed checkpoints: {}", flushed.error().message());
    }
    if (server_) server_->CloseAll();
}

Daemon::Daemon(Executor executor, std::shared_ptr<store::Store> store,
               providers::ProviderRegistry& providers, engine::EngineOptions engine_options,
               DaemonOptions options, Clock& clock, Random& random)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(store), providers,
                                   std::move(engine_options), std::move(options), clock, random)) {}

Daemon::~Daemon() = default;

Awaitable<Result<Daemon::StartReport>> Daemon::Start() {
    return impl_->Start();
}

Awaitable<std::vector<std::string>> Daemon::Reload() {
    return impl_->Reload();
}

Awaitable<void> Daemon::Drain() {
    return impl_->Drain();
}

uint16_t Daemon::port() const {
    return impl_->server_ ? impl_->server_->port() : 0;
}

engine::Engine& Daemon::engine() {
    return *impl_->engine_;
}

}  // namespace strowger::api
