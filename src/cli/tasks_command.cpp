// strowger tasks list [--run RUN] [--assignee REF] [--json]: the open human tasks (tool
// approvals, reconciliations, human_task nodes' tasks) of waiting runs, on the store or
// (--server) through the daemon. strowger tasks decide RUN TASK --action A: a decision on one
// (approve, reject, request_changes, progress), with an actor, a comment and an idempotency key;
// `strowger approve` / `strowger reject` are its short forms.
#include <boost/json.hpp>

#include <algorithm>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

struct TasksFlags {
    std::string store;
    std::string server;
    std::string run_id;
    std::string assignee;
    bool json = false;
};

struct TaskDecideFlags {
    std::string store;
    std::string server;
    std::string run_id;
    std::string task_id;
    std::string action;
    std::string comment;
    std::string actor;
    std::string idempotency_key;
    bool no_resume = false;
    std::string progress = "auto";
    bool json = false;
};

// A task with assignees is listed for --assignee REF when REF is one of them; a task without
// (a tool approval, a reconciliation) is anyone's.
bool AssignedTo(const ledger::HumanTask& task, const std::string& assignee) {
    if (assignee.empty() || task.details == nullptr || task.details->assignees.empty()) {
        return true;
    }
    const auto& refs = task.details->assignees;
    return std::find(refs.begin(), refs.end(), assignee) != refs.end();
}

int DoTasksList(const TasksFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    if (auto daemon = RemoteServer(flags.server, flags.store); !daemon.empty()) {
        return RemoteTasksList(daemon, flags.run_id, flags.assignee, flags.json);
    }
    auto context = Context::Open(flags.store, global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    std::vector<std::string> run_ids;
    if (!flags.run_id.empty()) {
        auto run_id = ResolveRunId(**context, flags.run_id);
        if (!run_id) return ReportError(run_id.error());
        run_ids.push_back(*run_id);
    } else {
        store::RunFilter filter;
        filter.statuses = {ledger::RunStatus::kWaiting, ledger::RunStatus::kNeedsReconciliation};
        filter.limit = 500;
        do {  // every waiting run, a page at a time
            auto page = (*context)->Await((*context)->store().ListRuns(filter));
            if (!page) {
                PrintError(page.error().message());
                return ToInt(ExitCode::kInternal);
            }
            for (const auto& record : page->runs) run_ids.push_back(record.run_id);
            filter.before_run_id = page->next_cursor;
        } while (!filter.before_run_id.empty());
    }
    json::array tasks;
    for (const auto& run_id : run_ids) {
        auto loaded = (*context)->Await((*context)->engine().LoadRun(run_id));
        if (!loaded) {
            if (!flags.run_id.empty()) {
                PrintError(loaded.error().message());
                return ToInt(loaded.error().code() == ErrorCode::kNotFound ? ExitCode::kUsage
                                                                           : ExitCode::kInternal);
            }
            continue;
        }
        for (const auto* task : loaded->state.OpenTasks()) {
            if (!AssignedTo(*task, flags.assignee)) continue;
            json::object t;
            t["run_id"] = run_id;
            t["workflow"] = loaded->state.workflow;
            t["task_id"] = task->task_id;
            t["kind"] = task->kind;
            t["title"] = task->title;
            if (task->node_index >= 0) {
                t["step"] = loaded->plan->nodes[static_cast<size_t>(task->node_index)].id;
            }
            if (!task->tool.empty()) t["tool"] = task->tool;
            if (!task->arguments.empty()) t["arguments"] = task->arguments;
            json::array assignees;
            if (task->details) {
                for (const auto& ref : task->details->assignees) assignees.emplace_back(ref);
                t["approval_mode"] = task->details->approval_mode;
                t["required_count"] = task->details->required_count;
                t["approvals"] = static_cast<int64_t>(task->Approvals());
            }
            t["assignees"] = std::move(assignees);
            t["created_at"] = FormatRfc3339(task->created_at);
            tasks.push_back(std::move(t));
        }
    }
    if (flags.json) {
        json::object out;
        out["tasks"] = std::move(tasks);
        std::cout << json::serialize(out) << "\n";
        return 0;
    }
    std::cout << Pad("RUN", 28) << Pad("TASK", 22) << Pad("KIND", 16) << "TITLE\n";
    for (const auto& value : tasks) {
        const auto& t = value.as_object();
        std::cout << Pad(std::string(JsonString(t, "run_id")), 28)
                  << Pad(std::string(JsonString(t, "task_id")), 22)
                  << Pad(std::string(JsonString(t, "kind")), 16) << JsonString(t, "title") << "\n";
    }
    return 0;
}

int DoTaskDecide(const TaskDecideFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    if (auto daemon = RemoteServer(flags.server, flags.store); !daemon.empty()) {
        return RemoteDecide(daemon, flags.run_id, flags.task_id, flags.action, flags.comment, "",
                            flags.no_resume, flags.progress, flags.json, flags.idempotency_key);
    }
    auto context = Context::Open(flags.store, global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    auto run_id = ResolveRunId(**context, flags.run_id);
    if (!run_id) return ReportError(run_id.error());
    return DecideOnStore(**context, *run_id, flags.task_id, flags.action, flags.actor,
                         flags.comment, "", flags.idempotency_key, flags.no_resume, flags.progress,
                         flags.json);
}

}  // namespace

void AddTasksCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* tasks = app.add_subcommand("tasks", "Open human tasks (decide them with approve/reject)");
    tasks->require_subcommand(1);
    auto flags = std::make_shared<TasksFlags>();
    auto* list = tasks->add_subcommand("list", "List the open tasks of waiting runs");
    list->add_option("--run", flags->run_id, "Only this run's");
    list->add_option("--store", flags->store, "Run store URL")->type_name("URL");
    list->add_option("--server", flags->server, kServerHelp)->type_name("URL");
    list->add_option("--assignee", flags->assignee,
                     "Only tasks assigned to this ref (as in assignee_refs: role:legal, "
                     "user:ana), and tasks assigned to nobody")
        ->type_name("REF");
    list->add_flag("--json", flags->json, "JSON output");
    list->callback([flags, &global, &exit_code] { exit_code = DoTasksList(*flags, global); });

    auto decide_flags = std::make_shared<TaskDecideFlags>();
    auto* decide = tasks->add_subcommand(
        "decide",
        "Decide on an open task: approve, reject, request_changes, or progress (a note "
        "that leaves it open); the run continues once nothing waits");
    decide->add_option("run", decide_flags->run_id, "Run id")->required();
    decide->add_option("task", decide_flags->task_id, "Task id")->required();
    decide->add_option("--action", decide_flags->action, "The decision")
        ->required()
        ->check(CLI::IsMember({"approve", "reject", "request_changes", "progress"}));
    decide->add_option("--comment", decide_flags->comment, "Recorded with the decision");
    decide->add_option("--actor", decide_flags->actor,
                       "Who decides (default: $USER; with --server, the token's name)");
    decide
        ->add_option("--idempotency-key", decide_flags->idempotency_key,
                     "The same key twice records one decision")
        ->type_name("KEY");
    decide->add_option("--store", decide_flags->store, "Run store URL")->type_name("URL");
    decide->add_option("--server", decide_flags->server, kServerHelp)->type_name("URL");
    decide->add_flag("--no-resume", decide_flags->no_resume,
                     "Only record the decision; do not continue the run here");
    decide->add_option("--progress", decide_flags->progress, "Live progress on stderr")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    decide->add_flag("--json", decide_flags->json, "Print the run record as JSON when it stops");
    decide->footer(
        "Exit codes: 0 the run completed (or --no-resume), 3 it still waits (a quorum short of "
        "approvals, another open task), 2 no such open task or a bad decision.\n\n"
        "Examples:\n"
        "  strowger tasks decide 01JD3M6K9Q3V8C6Y2W5T0R1N7H legal --action approve --actor ana\n"
        "  strowger tasks decide RUN legal --action request_changes --comment 'clause 4'\n"
        "  strowger tasks decide RUN legal --action progress --comment 'reading it now'");
    decide->callback(
        [decide_flags, &global, &exit_code] { exit_code = DoTaskDecide(*decide_flags, global); });
}

}  // namespace strowger::cli
