// strowger workflow list | create FILE | get ID | delete ID | run ID INPUT: LibreFang's
// workflow commands, against a running daemon (--server URL or $STROWGER_SERVER).
#include <boost/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

struct WorkflowFlags2 {
    std::string server;
    std::string id;
    std::string file;
    std::string input;
    bool json = false;
};

std::unique_ptr<ApiClient> Connect(const WorkflowFlags2& flags) {
    std::string server = ServerUrl(flags.server);
    if (server.empty()) {
        PrintError("workflow commands need a daemon: --server URL or STROWGER_SERVER");
        return nullptr;
    }
    return ConnectOrReport(server);
}

int DoWorkflow(const std::string& action, const WorkflowFlags2& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto client = Connect(flags);
    if (!client) return ToInt(ExitCode::kUsage);
    if (action == "list") {
        auto reply = client->Checked("GET", "/api/workflows");
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        std::cout << PadCell("ID", 30) << PadCell("NAME", 24) << PadCell("STEPS", 6)
                  << PadCell("VERSION", 8) << "CREATED\n";
        for (const auto& value : reply->json.as_array()) {
            const auto& w = value.as_object();
            std::cout << PadCell(std::string(JsonString(w, "id")), 30)
                      << PadCell(std::string(JsonString(w, "name")), 24)
                      << PadCell(std::to_string(JsonInt(w, "steps")), 6)
                      << PadCell(std::to_string(JsonInt(w, "version")), 8)
                      << std::string(JsonString(w, "created_at")).substr(0, 19) << "Z\n";
        }
        return 0;
    }
    if (action == "create") {
        std::ifstream in(flags.file, std::ios::binary);
        if (!in) {
            PrintError(flags.file + ": cannot read");
            return ToInt(ExitCode::kUsage);
        }
        std::ostringstream text;
        text << in.rdbuf();
        auto reply = client->Checked("POST", "/api/workflows", text.str());
        if (!reply) return ReportError(reply.error());
        std::cout << JsonString(reply->json.as_object(), "workflow_id") << "\n";
        return 0;
    }
    if (action == "get") {
        auto reply = client->Checked("GET", "/api/workflows/" + flags.id);
        if (!reply) return ReportError(reply.error());
        std::cout << json::serialize(reply->json) << "\n";
        return 0;
    }
    if (action == "delete") {
        auto reply = client->Checked("DELETE", "/api/workflows/" + flags.id);
        if (!reply) return ReportError(reply.error());
        std::cout << "removed " << JsonString(reply->json.as_object(), "workflow_id") << "\n";
        return 0;
    }
    // run: blocks until the run ends and prints its output, as LibreFang's CLI does.
    json::object body;
    body["input"] = flags.input;
    auto reply = client->Call("POST", "/api/workflows/" + flags.id + "/run?wait=true",
                              json::serialize(body));
    if (!reply) return ReportError(reply.error());
    const json::object empty;
    const auto& o = reply->json.is_object() ? reply->json.as_object() : empty;
    if (reply->status == 200) {
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        std::string output(JsonString(o, "output"));
        std::cout << output;
        if (output.empty() || output.back() != '\n') std::cout << "\n";
        return 0;
    }
    if (reply->status == 422 && o.contains("run_id")) {
        std::string status(JsonString(o, "run_status"));
        PrintError("run " + std::string(JsonString(o, "run_id")) + " " +
                   (status == "cancelled" ? "cancelled"
                                          : "failed: " + std::string(JsonString(o, "error"))));
        return ToInt(ExitCodeFor(ledger::RunStatusFromName(status)));
    }
    if (reply->status == 202) {
        std::string status(JsonString(o, "status"));
        PrintError("run " + std::string(JsonString(o, "run_id")) + " is " + status);
        return ToInt(ExitCodeFor(ledger::RunStatusFromName(status)));
    }
    auto checked = client->Checked("GET", "/api/workflows/" + flags.id);
    return ReportError(
        checked ? Error(CodeForStatus(reply->status), std::string(JsonString(o, "detail")))
                : checked.error());
}

}  // namespace

void AddWorkflowCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* workflow = app.add_subcommand("workflow", "Workflows registered with a daemon");
    workflow->require_subcommand(1);
    auto flags = std::make_shared<WorkflowFlags2>();
    auto server = [flags](CLI::App* cmd) {
        cmd->add_option("--server", flags->server, "Daemon URL (default $STROWGER_SERVER)")
            ->type_name("URL");
    };
    auto* list = workflow->add_subcommand("list", "List workflows: id, name, steps, version");
    server(list);
    list->add_flag("--json", flags->json, "JSON output");
    list->callback(
        [flags, &global, &exit_code] { exit_code = DoWorkflow("list", *flags, global); });
    auto* create = workflow->add_subcommand("create", "Register a workflow file (JSON or YAML)");
    server(create);
    create->add_option("file", flags->file, "Workflow file")->required()->check(CLI::ExistingFile);
    create->callback(
        [flags, &global, &exit_code] { exit_code = DoWorkflow("create", *flags, global); });
    auto* get = workflow->add_subcommand("get", "A workflow's definition and versions (JSON)");
    server(get);
    get->add_option("id", flags->id, "Workflow id or name")->required();
    get->callback([flags, &global, &exit_code] { exit_code = DoWorkflow("get", *flags, global); });
    auto* remove = workflow->add_subcommand("delete", "Delete a workflow (its runs stay)");
    server(remove);
    remove->add_option("id", flags->id, "Workflow id or name")->required();
    remove->callback(
        [flags, &global, &exit_code] { exit_code = DoWorkflow("delete", *flags, global); });
    auto* run = workflow->add_subcommand("run", "Run a workflow; waits and prints the output");
    server(run);
    run->add_option("id", flags->id, "Workflow id or name")->required();
    run->add_option("input", flags->input, "Input text")->required();
    run->add_flag("--json", flags->json, "Print {run_id, output, status, step_results}");
    run->callback([flags, &global, &exit_code] { exit_code = DoWorkflow("run", *flags, global); });
}

}  // namespace strowger::cli
