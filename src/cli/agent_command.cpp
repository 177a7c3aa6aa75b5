// strowger agent list | send NAME TEXT | sessions NAME | reset NAME: standing agents of a daemon
// started with --agents DIR (--server URL or $STROWGER_SERVER).
#include <boost/json.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

struct AgentFlags {
    std::string server;
    std::string name;
    std::string text;
    std::string session_mode;
    std::string channel;
    std::string session;
    bool json = false;
};

int DoAgent(const std::string& action, const AgentFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    std::string server = ServerUrl(flags.server);
    if (server.empty()) {
        PrintError("agent commands need a daemon: --server URL or STROWGER_SERVER");
        return ToInt(ExitCode::kUsage);
    }
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kUsage);
    if (action == "list") {
        auto reply = client->Checked("GET", "/api/agents");
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        for (const auto& value : reply->json.as_array()) {
            const auto& a = value.as_object();
            std::cout << JsonString(a, "name") << "\t" << JsonString(a, "model") << "\t"
                      << JsonString(a, "session_mode") << "\t" << JsonInt(a, "max_history_tokens")
                      << " tokens\t" << JsonInt(a, "cron_jobs") << " cron\n";
        }
        return 0;
    }
    if (action == "sessions") {
        auto reply = client->Checked("GET", "/api/agents/" + flags.name + "/sessions");
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        for (const auto& value : reply->json.as_array()) {
            const auto& s = value.as_object();
            std::cout << JsonString(s, "session_id") << "\t" << JsonString(s, "channel") << "\t"
                      << JsonString(s, "mode") << "\t" << JsonInt(s, "message_count")
                      << " messages\t" << JsonInt(s, "tokens") << " tokens\n";
        }
        return 0;
    }
    if (action == "reset") {
        std::string path = "/api/agents/" + flags.name + "/sessions";
        if (!flags.session.empty()) path += "/" + flags.session;
        if (!flags.channel.empty()) path += "?channel=" + PercentEncode(flags.channel);
        auto reply = client->Checked("DELETE", path);
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        const auto& out = reply->json.as_object();
        for (const auto& value : out.at("sessions").as_array()) {
            const auto& s = value.as_object();
            std::cout << "reset " << JsonString(s, "session_id") << "\t" << JsonString(s, "channel")
                      << "\t" << JsonInt(s, "messages_deleted") << " messages deleted\n";
        }
        if (out.at("sessions").as_array().empty()) {
            std::cout << "no sessions of " << flags.name << " to reset\n";
        }
        return 0;
    }
    // send: one turn, waiting for the reply.
    json::object body;
    body["message"] = flags.text;
    if (!flags.session_mode.empty()) body["session_mode"] = flags.session_mode;
    if (!flags.channel.empty()) body["channel"] = flags.channel;
    auto reply = client->Checked("POST", "/api/agents/" + flags.name + "/message?wait=true",
                                 json::serialize(body));
    if (!reply) return ReportError(reply.error());
    if (flags.json) {
        std::cout << json::serialize(reply->json) << "\n";
        return 0;
    }
    std::string response(JsonString(reply->json.as_object(), "response"));
    std::cout << response;
    if (response.empty() || response.back() != '\n') std::cout << "\n";
    return 0;
}

}  // namespace

void AddAgentCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* agent = app.add_subcommand("agent", "Standing agents of a daemon (serve --agents DIR)");
    agent->require_subcommand(1);
    auto flags = std::make_shared<AgentFlags>();
    auto server = [flags](CLI::App* cmd) {
        cmd->add_option("--server", flags->server, "Daemon URL (default $STROWGER_SERVER)")
            ->type_name("URL");
        cmd->add_flag("--json", flags->json, "JSON output");
    };
    auto* list = agent->add_subcommand("list", "The daemon's standing agents");
    server(list);
    list->callback([flags, &global, &exit_code] { exit_code = DoAgent("list", *flags, global); });
    auto* send = agent->add_subcommand(
        "send", "Send a message (one durable turn); waits and prints the reply");
    server(send);
    send->add_option("name", flags->name, "Agent name")->required();
    send->add_option("text", flags->text, "The message ([SILENT] first: kept out of the session)")
        ->required();
    send->add_option("--session-mode", flags->session_mode, "persistent or new")
        ->check(CLI::IsMember({"persistent", "new"}));
    send->add_option("--channel", flags->channel, "The session's channel (default api)");
    send->callback([flags, &global, &exit_code] { exit_code = DoAgent("send", *flags, global); });
    auto* sessions = agent->add_subcommand("sessions", "An agent's sessions");
    server(sessions);
    sessions->add_option("name", flags->name, "Agent name")->required();
    sessions->callback(
        [flags, &global, &exit_code] { exit_code = DoAgent("sessions", *flags, global); });
    auto* reset = agent->add_subcommand(
        "reset", "Delete an agent's session history (every session, one, or one channel's)");
    server(reset);
    reset->add_option("name", flags->name, "Agent name")->required();
    reset->add_option("--session", flags->session, "Only this session")->type_name("ID");
    reset->add_option("--channel", flags->channel, "Only the sessions of this channel");
    reset->callback([flags, &global, &exit_code] { exit_code = DoAgent("reset", *flags, global); });
}

}  // namespace strowger::cli
