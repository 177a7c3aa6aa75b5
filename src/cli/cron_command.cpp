// strowger cron list [--json] | create AGENT SPEC PROMPT [--name N] [--tz Z] | delete ID |
// enable ID | disable ID | status ID: cron jobs of a daemon (--server URL or $STROWGER_SERVER).
// SPEC: a 5-field cron expression or @daily-style alias, "every 30m", or "at RFC3339".
#include <boost/json.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

struct CronFlags {
    std::string server;
    std::string id;
    std::string agent;
    std::string spec;
    std::string prompt;
    std::string name;
    std::string tz;
    std::string session_mode;
    bool json = false;
};

std::string Value(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) return "-";
    if (v->is_string()) return std::string(v->as_string());
    return json::serialize(*v);
}

std::string Describe(const json::object& schedule) {
    std::string kind(JsonString(schedule, "kind"));
    if (kind == "every") return "every " + std::to_string(JsonInt(schedule, "every_secs")) + "s";
    if (kind == "at") return "at " + std::string(JsonString(schedule, "at"));
    std::string tz(JsonString(schedule, "tz"));
    return std::string(JsonString(schedule, "expr")) + " (" + (tz.empty() ? "UTC" : tz) + ")";
}

int DoCron(const std::string& action, const CronFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    std::string server = ServerUrl(flags.server);
    if (server.empty()) {
        PrintError("cron commands need a daemon: --server URL or STROWGER_SERVER");
        return ToInt(ExitCode::kUsage);
    }
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kUsage);
    Result<ApiClient::Reply> reply = std::unexpected(Error(ErrorCode::kInternal, ""));
    if (action == "list") {
        reply = client->Checked("GET", "/api/cron/jobs");
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        for (const auto& value : reply->json.as_object().at("jobs").as_array()) {
            const auto& j = value.as_object();
            const json::object empty;
            const auto* schedule = j.if_contains("schedule");
            std::cout << JsonString(j, "job_id") << "\t" << JsonString(j, "name") << "\t"
                      << JsonString(j, "agent_id") << "\t"
                      << Describe(schedule && schedule->is_object() ? schedule->as_object() : empty)
                      << "\t" << (JsonBool(j, "enabled") ? "enabled" : "disabled") << "\tnext "
                      << Value(j, "next_fire_at") << "\n";
        }
        return 0;
    }
    if (action == "create") {
        json::object body;
        body["agent_id"] = flags.agent;
        body["name"] = flags.name.empty() ? flags.agent + "-cron" : flags.name;
        body["schedule"] = flags.spec;
        if (!flags.tz.empty()) body["tz"] = flags.tz;
        json::object act{{"kind", "agent_turn"}, {"message", flags.prompt}};
        if (!flags.session_mode.empty()) act["session_mode"] = flags.session_mode;
        body["action"] = act;
        reply = client->Checked("POST", "/api/cron/jobs", json::serialize(body));
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        const auto& j = reply->json.as_object();
        std::cout << JsonString(j, "job_id") << "\tnext " << Value(j, "next_fire_at") << "\n";
        return 0;
    }
    if (action == "delete") {
        reply = client->Checked("DELETE", "/api/cron/jobs/" + flags.id);
        if (!reply) return ReportError(reply.error());
        std::cout << "removed " << JsonString(reply->json.as_object(), "job_id") << "\n";
        return 0;
    }
    if (action == "enable" || action == "disable") {
        json::object body{{"enabled", action == "enable"}};
        reply =
            client->Checked("PUT", "/api/cron/jobs/" + flags.id + "/enable", json::serialize(body));
        if (!reply) return ReportError(reply.error());
        std::cout << action << "d " << flags.id << "\n";
        return 0;
    }
    reply = client->Checked("GET", "/api/cron/jobs/" + flags.id + "/status");
    if (!reply) return ReportError(reply.error());
    if (flags.json) {
        std::cout << json::serialize(reply->json) << "\n";
        return 0;
    }
    const auto& j = reply->json.as_object();
    std::cout << "job:          " << Value(j, "job_id") << " (" << Value(j, "name") << ")\n"
              << "enabled:      " << (JsonBool(j, "enabled") ? "yes" : "no") << "\n";
    if (!JsonString(j, "disabled_reason").empty()) {
        std::cout << "disabled:     " << JsonString(j, "disabled_reason") << "\n";
    }
    std::cout << "next fire:    " << Value(j, "next_fire_at") << "\n"
              << "last fire:    " << Value(j, "last_fire_at") << " " << Value(j, "last_status")
              << " " << Value(j, "last_run_id") << "\n"
              << "fires:        " << JsonInt(j, "fire_count") << ", failures in a row "
              << JsonInt(j, "consecutive_failures") << "\n";
    for (const auto& value : j.at("recent_fires").as_array()) {
        const auto& f = value.as_object();
        std::cout << "  " << JsonString(f, "scheduled_at") << " " << JsonString(f, "status") << " "
                  << JsonString(f, "run_id")
                  << (JsonBool(f, "catch_up")
                          ? " catch-up (" + std::to_string(JsonInt(f, "missed")) + " missed)"
                          : std::string())
                  << (JsonString(f, "reason").empty() ? std::string()
                                                      : " " + std::string(JsonString(f, "reason")))
                  << "\n";
    }
    return 0;
}

}  // namespace

void AddCronCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* cron = app.add_subcommand("cron", "Cron jobs of a daemon");
    cron->require_subcommand(1);
    auto flags = std::make_shared<CronFlags>();
    auto server = [flags](CLI::App* cmd) {
        cmd->add_option("--server", flags->server, "Daemon URL (default $STROWGER_SERVER)")
            ->type_name("URL");
        cmd->add_flag("--json", flags->json, "JSON output");
    };
    auto* list = cron->add_subcommand("list", "Every job: id, name, agent, schedule, next fire");
    server(list);
    list->callback([flags, &global, &exit_code] { exit_code = DoCron("list", *flags, global); });
    auto* create = cron->add_subcommand("create", "Create a job that sends PROMPT to AGENT");
    server(create);
    create->add_option("agent", flags->agent, "Agent name")->required();
    create
        ->add_option("spec", flags->spec,
                     "\"0 8 * * *\", @daily, \"every 30m\" or \"at 2026-12-24T18:00:00Z\"")
        ->required();
    create->add_option("prompt", flags->prompt, "The message ([SILENT] first: not kept)")
        ->required();
    create->add_option("--name", flags->name, "Job name (default AGENT-cron)");
    create->add_option("--tz", flags->tz, "IANA time zone of a cron expression (default UTC)");
    create->add_option("--session-mode", flags->session_mode, "persistent or new")
        ->check(CLI::IsMember({"persistent", "new"}));
    create->callback(
        [flags, &global, &exit_code] { exit_code = DoCron("create", *flags, global); });
    for (const char* name : {"delete", "enable", "disable", "status"}) {
        std::string action = name;
        auto* cmd =
            cron->add_subcommand(name, action == "status" ? "A job's state and recent fires"
                                                          : "The job with this id: " + action);
        server(cmd);
        cmd->add_option("id", flags->id, "Job id")->required();
        cmd->callback(
            [flags, action, &global, &exit_code] { exit_code = DoCron(action, *flags, global); });
    }
}

}  // namespace strowger::cli
