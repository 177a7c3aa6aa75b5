#include <boost/json/serialize.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "cli/remote.hpp"
#include "engine/run_view.hpp"

namespace strowger::cli {
namespace {

struct RunFlags {
    std::string file;
    InputFlags input;
    WorkflowFlags workflow;
    std::string store;
    std::string server;
    bool json = false;
    std::string idempotency_key;
    std::string progress = "auto";
    bool stream = false;
};

// A --idempotency-key used before (CMDC's and the daemon's rule): the same workflow and input
// return that run as if it had just ended here (its output, its exit code; a note on stderr);
// another workflow or input is a conflict (exit 2, naming the run). nullopt: the key is new.
std::optional<int> ReuseOfIdempotencyKey(Context& context, const RunFlags& flags,
                                         const model::Plan& plan, const std::string& input) {
    auto found = context.Await(context.store().FindByIdempotencyKey(flags.idempotency_key));
    if (!found) {
        if (found.error().code() == ErrorCode::kNotFound) return std::nullopt;
        return ReportError(found.error());
    }
    auto loaded = context.Await(context.engine().LoadRun(*found));
    if (!loaded) return ReportError(loaded.error());
    const ledger::RunState& state = loaded->state;
    const char* differs = loaded->record.definition_sha256 != plan.definition_sha256
                              ? "another workflow"
                          : state.input != input ? "another input"
                                                 : nullptr;
    if (differs != nullptr) {
        PrintError("idempotency key \"" + flags.idempotency_key + "\" was used by run " +
                   state.run_id + " with " + differs +
                   "; use another key (see `strowger runs show " + state.run_id + "`)");
        return ToInt(ExitCode::kUsage);
    }
    PrintError("idempotency key already used by run " + state.run_id + " (" +
               std::string(ledger::RunStatusName(state.status)) + "); not started again");
    if (flags.json) {
        std::cout << json::serialize(RunRecord(loaded->plan.get(), state)) << "\n";
    } else if (state.status == ledger::RunStatus::kCompleted) {
        std::cout << ForStdout(state.output);
        if (state.output.empty() || state.output.back() != '\n') std::cout << "\n";
    }
    std::cout.flush();
    return ToInt(ExitCodeFor(state.status));
}

int DoRun(const RunFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    if (!flags.server.empty()) {
        if (!flags.input.sets.empty()) {
            PrintError(
                "--set needs the workflow's inputs, which --server checks: give the "
                "inputs as --input-json '{\"name\": value}'");
            return ToInt(ExitCode::kUsage);
        }
        auto input = ResolveInput(flags.input);
        if (!input) {
            PrintError(input.error().message());
            return ToInt(ExitCode::kUsage);
        }
        return RemoteRun(flags.server, flags.file, *input, flags.idempotency_key, flags.progress,
                         flags.json);
    }
    auto context = Context::WithoutStore(global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    // The workflow and the input are checked before the store is opened: a bad one leaves no
    // store file and no run behind.
    auto plan = LoadPlan(flags.file, flags.workflow, (*context)->registry(), Warnings::kHide,
                         Environment::kRequire);
    if (!plan) return ToInt(ExitCode::kUsage);
    auto input = RunInputOrReport(flags.input, *plan);
    if (!input) return ToInt(ExitCode::kUsage);
    if (auto opened = (*context)->OpenStore(flags.store); !opened) {
        PrintError(opened.error().message());
        return ToInt(ExitCode::kInternal);
    }
    auto& engine = (*context)->engine();
    if (!flags.idempotency_key.empty()) {
        if (auto used = ReuseOfIdempotencyKey(**context, flags, *plan, *input)) return *used;
    }
    engine::StartRequest request;
    request.plan = plan;
    request.input = std::move(*input);
    request.idempotency_key = flags.idempotency_key;
    std::string stream_node;
    if (flags.stream && plan->output_node >= 0) {
        stream_node = plan->nodes[static_cast<size_t>(plan->output_node)].id;
    }
    return ExecuteWithProgress(**context, engine.StartRun(std::move(request)), flags.progress,
                               flags.json, stream_node);
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
                    "Run store: sqlite:PATH or memory: (default: $STROWGER_STORE, else "
                    "sqlite under $XDG_STATE_HOME/strowger or ~/.local/state/strowger)")
        ->type_name("URL");
    cmd->add_option("--server", flags->server,
                    "Submit to this daemon (the file becomes a workflow version there) and "
                    "follow the run's events")
        ->type_name("URL");
    cmd->add_flag("--json", flags->json, "Print the run record as JSON instead of the output");
    cmd->add_option(
           "--idempotency-key", flags->idempotency_key,
           "Return the existing run if this key was used before, instead of starting another")
        ->type_name("KEY");
    cmd->add_flag("--stream", flags->stream,
                  "Print the final step's text as the model writes it (providers that stream)");
    cmd->add_option("--progress", flags->progress, "Live progress on stderr")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    cmd->footer(
        "Exit codes: 0 completed, 1 failed, 2 invalid workflow or usage, 3 waiting/paused, "
        "4 cancelled, 5 store error.\n\n"
        "Examples:\n"
        "  strowger run examples/code-review.json --input-file src/main.cpp\n"
        "  strowger run flow.yaml --input 'quantum batteries' --model scripted:replies.yaml\n"
        "  strowger run flow.yaml --input-json '{\"ticket\": 42}' --json | jq .step_results\n"
        "  strowger run review.yaml --set amount=120000 --set customer=ACME\n"
        "  strowger run flow.yaml --idempotency-key nightly-2026-11-21\n"
        "  strowger run flow.yaml --input 'hello' --stream");
    cmd->callback([flags, &global, &exit_code] { exit_code = DoRun(*flags, global); });
}

}  // namespace strowger::cli
