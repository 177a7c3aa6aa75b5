// strowger approve RUN [TASK] / strowger reject RUN [TASK] --reason R
#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

struct DecideFlags {
    std::string store;
    std::string server;
    std::string run_id;
    std::string task_id;
    std::string actor;
    std::string comment;  // --comment, or --reason for reject
    std::string output;   // approve --output: accept this output (reconciliation)
    bool no_resume = false;
    std::string progress = "auto";
    bool json = false;
};

int DoDecide(const DecideFlags& flags, const std::string& decision, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    if (auto daemon = RemoteServer(flags.server, flags.store); !daemon.empty()) {
        return RemoteDecide(daemon, flags.run_id, flags.task_id, decision, flags.comment,
                            flags.output, flags.no_resume, flags.progress, flags.json);
    }
    auto context = Context::Open(flags.store, global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    auto run_id = ResolveRunId(**context, flags.run_id);
    if (!run_id) return ReportError(run_id.error());
    return DecideOnStore(**context, *run_id, flags.task_id, decision, flags.actor, flags.comment,
                         flags.output, "", flags.no_resume, flags.progress, flags.json);
}

void AddDecideCommand(CLI::App& app, const GlobalFlags& global, int& exit_code,
                      const std::string& decision) {
    const bool approve = decision == "approve";
    auto flags = std::make_shared<DecideFlags>();
    auto* cmd =
        app.add_subcommand(decision, approve ? "Approve a waiting human task (a tool call, or a "
                                               "step to reconcile) and continue the run"
                                             : "Reject a waiting human task and continue the run");
    cmd->add_option("run", flags->run_id, "Run id")->required();
    cmd->add_option("task", flags->task_id, "Task id (default: the run's only open task)");
    cmd->add_option("--store", flags->store, "Run store URL")->type_name("URL");
    cmd->add_option("--server", flags->server,
                    "Through this daemon's API (default: $STROWGER_SERVER unless --store); the "
                    "actor is the token's name")
        ->type_name("URL");
    cmd->add_option("--actor", flags->actor,
                    "Who decides (default: $USER); recorded in the ledger");
    if (approve) {
        cmd->add_option("--comment", flags->comment, "Recorded with the decision");
        cmd->add_option(
            "--output", flags->output,
            "Reconciliation only: accept this as the step's output instead of running it again");
    } else {
        cmd->add_option("--reason,--comment", flags->comment,
                        "Why; recorded, and shown to the agent")
            ->required();
    }
    cmd->add_flag("--no-resume", flags->no_resume,
                  "Only record the decision; do not continue the run here");
    cmd->add_option("--progress", flags->progress, "Live progress on stderr")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    cmd->add_flag("--json", flags->json, "Print the run record as JSON when the run stops");
    cmd->footer(
        approve
            ? "Examples:\n  strowger approve 01JD3M6K9Q3V8C6Y2W5T0R1N7H\n"
              "  strowger approve 01JD3M6K9Q3V8C6Y2W5T0R1N7H deploy/1/2 --comment 'checked the "
              "diff'"
            : "Example:\n  strowger reject 01JD3M6K9Q3V8C6Y2W5T0R1N7H --reason 'not on a Friday'");
    cmd->callback(
        [flags, &global, &exit_code, decision] { exit_code = DoDecide(*flags, decision, global); });
}

}  // namespace

int DecideOnStore(Context& context, const std::string& run_id, const std::string& task_id,
                  const std::string& decision, const std::string& actor_flag,
                  const std::string& comment, const std::string& output,
                  const std::string& idempotency_key, bool no_resume, const std::string& progress,
                  bool json_output) {
    auto& engine = context.engine();
    std::string actor = actor_flag.empty() ? DefaultActor() : actor_flag;
    auto decided = context.Await(
        engine.Decide(run_id, task_id, decision, actor, comment, output, idempotency_key));
    if (!decided) {
        PrintError(decided.error().message());
        return ToInt(decided.error().code() == ErrorCode::kInternal ||
                             decided.error().code() == ErrorCode::kDataLoss
                         ? ExitCode::kInternal
                         : ExitCode::kUsage);
    }
    const char* done = decision == "approve"           ? "approved"
                       : decision == "reject"          ? "rejected"
                       : decision == "request_changes" ? "sent back for changes"
                                                       : "noted (progress)";
    std::cerr << "run " << Shown(run_id, Newlines::kEscape) << ": task "
              << Shown(*decided, Newlines::kEscape) << " " << done << " by "
              << Shown(actor, Newlines::kEscape) << "\n";
    if (no_resume) return 0;
    // Go on with the run here, like `runs resume` (unless other tasks are still open).
    auto loaded = context.Await(engine.LoadRun(run_id));
    if (loaded && !loaded->state.OpenTasks().empty()) {
        const auto open = loaded->state.OpenTasks();
        std::string waiting = "run " + run_id + " still waits: ";
        for (size_t i = 0; i < open.size(); ++i) {
            const auto* task = open[i];
            if (i > 0) waiting += ", ";
            waiting += "task " + task->task_id;
            if (task->details && task->details->approval_mode == "quorum") {
                waiting += " (" + std::to_string(task->Approvals()) + " of " +
                           std::to_string(task->details->required_count) + " approvals)";
            }
        }
        PrintError(waiting);
        return ToInt(ExitCode::kWaiting);
    }
    return ExecuteWithProgress(context, engine.ResumeRun(run_id, "decided", actor), progress,
                               json_output);
}

void AddApproveCommands(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    AddDecideCommand(app, global, exit_code, "approve");
    AddDecideCommand(app, global, exit_code, "reject");
}

}  // namespace strowger::cli
