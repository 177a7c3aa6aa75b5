#include "cli/context.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "cli/progress.hpp"
#include "core/json.hpp"
#include "engine/run_view.hpp"
#include "providers/builtin.hpp"

namespace strowger::cli {

Result<std::unique_ptr<Context>> Context::Open(const std::string& store_flag) {
    std::unique_ptr<Context> context(new Context());
    context->registry_ = std::make_unique<providers::ProviderRegistry>(context->io_.get_executor());
    providers::RegisterBuiltinProviders(*context->registry_);
    std::string url = StoreUrl(store_flag);
    auto store = store::OpenStoreBlocking(url);
    if (!store) return std::unexpected(store.error().WithPrefix("cannot open store " + url + ": "));
    context->store_ = *store;
    engine::EngineOptions options;
    options.single_threaded_executor = true;  // io_ is run by this thread only
    context->engine_ = std::make_unique<engine::Engine>(
        context->io_.get_executor(), context->store_, *context->registry_, options);
    return context;
}

std::string DefaultActor() {
    const char* user = std::getenv("USER");
    return user && *user ? user : "unknown";
}

int ExecuteWithProgress(Context& context, Awaitable<Result<engine::RunOutcome>> start,
                        const std::string& progress_mode, bool json_output) {
    auto& io = context.io();
    auto& engine = context.engine();
    std::optional<ProgressDisplay> progress;
    bool live = StderrIsTerminal();
    if (progress_mode == "always" || (progress_mode == "auto" && live)) {
        progress.emplace(io.get_executor(),
                         live ? ProgressDisplay::Mode::kLive : ProgressDisplay::Mode::kLines);
        engine.AddObserver(&*progress);
    }
    // Ctrl-C / SIGTERM cancel the run (in-flight model calls are aborted); a second signal
    // exits at once.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    int signal_count = 0;
    std::function<void()> arm = [&] {
        signals.async_wait([&](boost::system::error_code ec, int signal_number) {
            if (ec) return;
            if (++signal_count > 1) std::_Exit(ToInt(ExitCode::kCancelled));
            engine.CancelAll(signal_number == SIGINT ? "interrupted (SIGINT)"
                                                     : "terminated (SIGTERM)");
            arm();
        });
    };
    arm();
    // Pause/cancel requests from other processes, and lease renewal, while the run executes.
    asio::cancellation_signal stop_supervising;
    asio::co_spawn(io, engine.Supervise(std::chrono::milliseconds(200)),
                   asio::bind_cancellation_slot(stop_supervising.slot(), asio::detached));

    std::optional<Result<engine::RunOutcome>> outcome;
    std::optional<Result<engine::Engine::LoadedRun>> loaded;
    asio::co_spawn(
        io,
        [&]() -> Awaitable<void> {
            auto result = co_await std::move(start);
            if (result && json_output) loaded = co_await engine.LoadRun(result->run_id);
            outcome = std::move(result);
            signals.cancel();
            stop_supervising.emit(asio::cancellation_type::terminal);
            if (progress) progress->Stop();
        },
        asio::detached);
    io.restart();
    io.run();

    if (!outcome || !*outcome) {
        PrintError(outcome ? (*outcome).error().message() : "run did not finish");
        return ToInt((*outcome).error().code() == ErrorCode::kFailedPrecondition ||
                             (*outcome).error().code() == ErrorCode::kNotFound
                         ? ExitCode::kUsage
                         : ExitCode::kInternal);
    }
    const engine::RunOutcome& result = **outcome;
    if (result.existing) {
        std::cerr << "strowger: idempotency key already used by run " << result.run_id << " ("
                  << ledger::RunStatusName(result.status) << "); not started again\n";
    }
    if (json_output) {
        if (loaded && *loaded) {
            std::cout << json::serialize(
                             engine::RunRecordJson((*loaded)->plan.get(), (*loaded)->state))
                      << "\n";
        } else {
            json::object minimal;
            minimal["run_id"] = result.run_id;
            minimal["status"] = std::string(ledger::RunStatusName(result.status));
            std::cout << json::serialize(minimal) << "\n";
        }
    } else if (result.status == ledger::RunStatus::kCompleted && !result.existing) {
        std::cout << result.output;
        if (result.output.empty() || result.output.back() != '\n') std::cout << "\n";
    }
    std::cout.flush();
    if (result.error_code != ErrorCode::kOk && result.status != ledger::RunStatus::kFailed) {
        PrintError("run " + result.run_id + " stopped: " + result.error);
        return ToInt(ExitCode::kInternal);
    }
    switch (result.status) {
        case ledger::RunStatus::kFailed:
            PrintError("run " + result.run_id + " failed: " + result.error);
            break;
        case ledger::RunStatus::kCancelled:
            PrintError("run " + result.run_id + " cancelled");
            break;
        case ledger::RunStatus::kPaused:
        case ledger::RunStatus::kWaiting:
            PrintError("run " + result.run_id + " is " +
                       std::string(ledger::RunStatusName(result.status)) +
                       "; continue it with `strowger runs resume " + result.run_id + "`");
            break;
        default:
            break;
    }
    return ToInt(ExitCodeFor(result.status));
}

}  // namespace strowger::cli
