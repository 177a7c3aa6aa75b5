#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>

#include <csignal>
#include <iostream>
#include <optional>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "engine/engine.hpp"
#include "engine/run_view.hpp"
#include "providers/builtin.hpp"
#include "store/store.hpp"

namespace strowger::cli {
namespace {

struct RunFlags {
    std::string file;
    InputFlags input;
    WorkflowFlags workflow;
    std::string store;
    bool json = false;
    std::string idempotency_key;
    std::string progress = "auto";
};

int DoRun(const RunFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    asio::io_context io(1);
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);

    auto plan = LoadPlan(flags.file, flags.workflow, registry, Warnings::kHide);
    if (!plan) return ToInt(ExitCode::kUsage);
    auto input = ResolveInput(flags.input);
    if (!input) {
        PrintError(input.error().message());
        return ToInt(ExitCode::kUsage);
    }
    std::string store_url = StoreUrl(flags.store);
    auto store = store::OpenStoreBlocking(store_url);
    if (!store) {
        PrintError("cannot open store " + store_url + ": " + store.error().message());
        return ToInt(ExitCode::kInternal);
    }

    engine::EngineOptions options;
    options.single_threaded_executor = true;  // io.run() on this thread only
    engine::Engine engine(io.get_executor(), *store, registry, options);
    std::optional<ProgressDisplay> progress;
    bool live = StderrIsTerminal();
    if (flags.progress == "always" || (flags.progress == "auto" && live)) {
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

    engine::StartRequest request;
    request.plan = plan;
    request.input = std::move(*input);
    request.idempotency_key = flags.idempotency_key;
    std::optional<Result<engine::RunOutcome>> outcome;
    std::optional<Result<ledger::RunState>> final_state;
    asio::co_spawn(
        io,
        [&]() -> Awaitable<void> {
            auto result = co_await engine.StartRun(request);
            if (result && flags.json) {
                store::EventQuery all_events;
                auto events = co_await (*store)->ReadEvents(result->run_id, all_events);
                if (events) {
                    final_state = engine::ReplayRun(*plan, *events);
                } else {
                    final_state = std::unexpected(events.error());
                }
            }
            outcome = std::move(result);
            signals.cancel();
            if (progress) progress->Stop();
        },
        asio::detached);
    io.run();

    if (!outcome || !*outcome) {
        PrintError(outcome ? (*outcome).error().message() : "run did not finish");
        return ToInt(ExitCode::kInternal);
    }
    const engine::RunOutcome& result = **outcome;
    if (result.existing) {
        std::cerr << "strowger: idempotency key already used by run " << result.run_id << " ("
                  << ledger::RunStatusName(result.status) << "); not started again\n";
    }
    if (flags.json) {
        if (final_state && *final_state) {
            std::cout << json::serialize(engine::RunRecordJson(plan.get(), **final_state)) << "\n";
        } else {
            json::object minimal;
            minimal["run_id"] = result.run_id;
            minimal["status"] = std::string(ledger::RunStatusName(result.status));
            std::cout << json::serialize(minimal) << "\n";
        }
    } else if (result.status == ledger::RunStatus::kCompleted) {
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

}  // namespace

void AddRunCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto flags = std::make_shared<RunFlags>();
    auto* cmd = app.add_subcommand("run", "Run a workflow to the end in this process");
    cmd->add_option("file", flags->file, "Workflow file (YAML or JSON)")
        ->required()
        ->check(CLI::ExistingFile);
    AddInputFlags(cmd, flags->input);
    AddWorkflowFlags(cmd, flags->workflow);
    cmd->add_option("--store", flags->store,
                    "Run store: sqlite:PATH, memory: (default: $STROWGER_STORE or sqlite under "
                    "~/.local/state/strowger)")
        ->type_name("URL");
    cmd->add_flag("--json", flags->json, "Print the run record as JSON instead of the output");
    cmd->add_option(
           "--idempotency-key", flags->idempotency_key,
           "Return the existing run if this key was used before, instead of starting another")
        ->type_name("KEY");
    cmd->add_option("--progress", flags->progress, "Live progress on stderr")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    cmd->footer(
        "Exit codes: 0 completed, 1 failed, 2 invalid workflow or usage, 3 waiting/paused, 4 "
        "cancelled, 5 store error.\n\n"
        "Examples:\n"
        "  strowger run examples/code-review.json --input-file src/main.cpp\n"
        "  strowger run flow.yaml --input 'quantum batteries' --model scripted:replies.yaml\n"
        "  strowger run flow.yaml --input-json '{\"ticket\": 42}' --json | jq .step_results");
    cmd->callback([flags, &global, &exit_code] { exit_code = DoRun(*flags, global); });
}

}  // namespace strowger::cli
