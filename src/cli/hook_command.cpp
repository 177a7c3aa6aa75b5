// strowger hook create NAME [--workflow W] [--secret-env VAR] [--no-timestamp] | list | delete NAME
//   A daemon's signed webhooks (docs/formats/api.md, "Webhooks"), through --server URL or
//   $STROWGER_SERVER. The secret never goes on the command line (other users see argv): it is
//   read from the environment variable --secret-env names, or made by the daemon and printed
//   once.
#include <boost/json.hpp>

#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

struct HookFlags {
    std::string server;
    std::string name;
    std::string workflow;
    std::string secret_env;
    bool no_timestamp = false;
    bool json = false;
};

int DoHook(const std::string& action, const HookFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    std::string server = ServerUrl(flags.server);
    if (server.empty()) {
        PrintError("hook commands need a daemon: --server URL or STROWGER_SERVER");
        return ToInt(ExitCode::kUsage);
    }
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    if (action == "create") {
        json::object body;
        body["name"] = flags.name;
        if (!flags.workflow.empty()) body["workflow"] = flags.workflow;
        if (!flags.secret_env.empty()) {
            const char* secret = std::getenv(flags.secret_env.c_str());
            if (secret == nullptr || *secret == '\0') {
                PrintError("--secret-env: $" + flags.secret_env + " is not set");
                return ToInt(ExitCode::kUsage);
            }
            body["secret"] = secret;
        }
        if (flags.no_timestamp) body["require_timestamp"] = false;
        auto reply = client->Checked("POST", "/api/hooks", json::serialize(body));
        if (!reply) return ReportError(reply.error());
        const auto& o = reply->json.as_object();
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
        } else {
            std::cout << "hook " << JsonString(o, "name") << ": POST " << server
                      << JsonString(o, "url") << "\n";
            // The daemon made the secret: this is the only time it is shown.
            if (flags.secret_env.empty())
                std::cout << "secret (shown once): " << JsonString(o, "secret") << "\n";
        }
        return 0;
    }
    if (action == "list") {
        auto reply = client->Checked("GET", "/api/hooks");
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        std::cout << Column("NAME", 24) << Column("WORKFLOW", 28) << Column("TIMESTAMP", 11)
                  << "URL\n";
        for (const auto& value : reply->json.as_object().at("hooks").as_array()) {
            const auto& h = value.as_object();
            std::string workflow(JsonString(h, "workflow_id"));
            std::cout << Column(std::string(JsonString(h, "name")), 24)
                      << Column(workflow.empty() ? "(events only)" : workflow, 28)
                      << Column(JsonBool(h, "require_timestamp") ? "required" : "no", 11)
                      << JsonString(h, "url") << "\n";
        }
        return 0;
    }
    // delete
    auto reply = client->Checked("DELETE", "/api/hooks/" + PercentEncode(flags.name));
    if (!reply) return ReportError(reply.error());
    if (flags.json) std::cout << json::serialize(reply->json) << "\n";
    return 0;
}

}  // namespace

void AddHookCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* hook = app.add_subcommand("hook", "Signed webhooks of a daemon that start workflows");
    hook->require_subcommand(1);
    auto flags = std::make_shared<HookFlags>();
    auto common = [flags](CLI::App* cmd) {
        cmd->add_option("--server", flags->server, "Daemon URL (default $STROWGER_SERVER)")
            ->type_name("URL");
        cmd->add_flag("--json", flags->json, "JSON output");
    };
    auto on = [flags, &global, &exit_code](CLI::App* cmd, std::string action) {
        cmd->callback(
            [flags, &global, &exit_code, action] { exit_code = DoHook(action, *flags, global); });
    };
    auto* create = hook->add_subcommand(
        "create", "Create a webhook: POST /api/hooks/NAME, signed with X-Hub-Signature-256");
    common(create);
    create->add_option("name", flags->name, "The hook's name (its URL's last segment)")->required();
    create->add_option("--workflow", flags->workflow,
                       "Start this workflow (id or name) with the delivery as input; without "
                       "it a delivery is only an event on the bus");
    create->add_option("--secret-env", flags->secret_env,
                       "Read the signing secret from this environment variable (default: the "
                       "daemon makes one and it is printed once)");
    create->add_flag(
        "--no-timestamp", flags->no_timestamp,
        "Accept deliveries without an X-Strowger-Timestamp header (GitHub sends none)");
    on(create, "create");
    auto* list = hook->add_subcommand("list", "List webhooks (never their secrets)");
    common(list);
    on(list, "list");
    auto* remove = hook->add_subcommand("delete", "Delete a webhook");
    common(remove);
    remove->add_option("name", flags->name, "The hook's name")->required();
    on(remove, "delete");
}

}  // namespace strowger::cli
