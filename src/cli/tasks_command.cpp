// strowger tasks list [--run RUN] [--json]: the open human tasks (tool approvals,
// reconciliations) of waiting runs, on the store or (--server) through the daemon. Decide them
// with `strowger approve` / `strowger reject`.
#include <boost/json.hpp>

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
    bool json = false;
};

std::string Pad(const std::string& text, size_t width) {
    return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

int DoTasksList(const TasksFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    if (auto daemon = RemoteServer(flags.server, flags.store); !daemon.empty()) {
        return RemoteTasksList(daemon, flags.run_id, flags.json);
    }
    auto context = Context::Open(flags.store, global.providers_file);
    if (!context) {
        PrintError(context.error().message());
        return ToInt(ExitCode::kInternal);
    }
    std::vector<std::string> run_ids;
    if (!flags.run_id.empty()) {
        run_ids.push_back(flags.run_id);
    } else {
        store::RunFilter filter;
        filter.statuses = {ledger::RunStatus::kWaiting, ledger::RunStatus::kNeedsReconciliation};
        filter.limit = 500;
        auto page = (*context)->Await((*context)->store().ListRuns(filter));
        if (!page) {
            PrintError(page.error().message());
            return ToInt(ExitCode::kInternal);
        }
        for (const auto& record : page->runs) run_ids.push_back(record.run_id);
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
            t["assignees"] = json::array();
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
                  << Pad(std::string(JsonString(t, "kind")), 16) << JsonString(t, "title")
                  << "\n";
    }
    return 0;
}

}  // namespace

void AddTasksCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* tasks = app.add_subcommand("tasks", "Open human tasks (decide them with approve/reject)");
    tasks->require_subcommand(1);
    auto flags = std::make_shared<TasksFlags>();
    auto* list = tasks->add_subcommand("list", "List the open tasks of waiting runs");
    list->add_option("--run", flags->run_id, "Only this run's");
    list->add_option("--store", flags->store, "Run store URL")->type_name("URL");
    list->add_option("--server", flags->server,
                     "Through this daemon's API (default: $STROWGER_SERVER unless --store)")
        ->type_name("URL");
    list->add_flag("--json", flags->json, "JSON output");
    list->callback([flags, &global, &exit_code] { exit_code = DoTasksList(*flags, global); });
}

}  // namespace strowger::cli
