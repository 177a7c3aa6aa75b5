// strowger trigger list [--agent-id A] | create AGENT PATTERN_JSON [--prompt T] [--max-fires N]
//   [--workflow W] [--cooldown S] | get ID | enable ID | disable ID | delete ID
//   LibreFang's trigger commands, against a running daemon (--server URL or $STROWGER_SERVER).
// strowger memory get KEY | set KEY VALUE | list | delete KEY  [--namespace NS]
//   the agent memory: through the daemon with --server (or $STROWGER_SERVER), else in the
//   store directly (--store), as the memory_* tools of `strowger run` see it.
#include <boost/json.hpp>

#include <iostream>

#include "automation/memory.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

// ---- strowger trigger ----

struct TriggerFlags {
    std::string server;
    std::string id;
    std::string agent;
    std::string pattern;
    std::string prompt = "Event: {{event}}";
    int64_t max_fires = 0;
    std::string workflow;
    int64_t cooldown = -1;
    std::string agent_filter;
    bool json = false;
};

std::unique_ptr<ApiClient> Connect(const std::string& flag, const char* what) {
    std::string server = ServerUrl(flag);
    if (server.empty()) {
        PrintError(std::string(what) + " commands need a daemon: --server URL or STROWGER_SERVER");
        return nullptr;
    }
    return ConnectOrReport(server);
}

std::string PatternText(const json::value& pattern) {
    return pattern.is_string() ? std::string(pattern.as_string()) : json::serialize(pattern);
}

int DoTrigger(const std::string& action, const TriggerFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto client = Connect(flags.server, "trigger");
    if (!client) return ToInt(ExitCode::kUsage);
    if (action == "list") {
        std::string path = "/api/triggers";
        if (!flags.agent_filter.empty()) path += "?agent_id=" + PercentEncode(flags.agent_filter);
        auto reply = client->Checked("GET", path);
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
            return 0;
        }
        std::cout << PadCell("ID", 32) << PadCell("TARGET", 24) << PadCell("ENABLED", 8)
                  << PadCell("FIRES", 10) << "PATTERN\n";
        for (const auto& value : reply->json.as_array()) {
            const auto& t = value.as_object();
            std::string target = JsonString(t, "workflow_id").empty()
                                     ? "agent " + std::string(JsonString(t, "agent_id"))
                                     : "workflow " + std::string(JsonString(t, "workflow_id"));
            std::string fires = std::to_string(JsonInt(t, "fire_count"));
            if (JsonInt(t, "max_fires") > 0) fires += "/" + std::to_string(JsonInt(t, "max_fires"));
            std::cout << PadCell(std::string(JsonString(t, "id")), 32) << PadCell(target, 24)
                      << PadCell(JsonBool(t, "enabled") ? "yes" : "no", 8) << PadCell(fires, 10)
                      << PatternText(t.at("pattern")) << "\n";
        }
        return 0;
    }
    if (action == "create") {
        auto pattern = ParseJson(flags.pattern);
        if (!pattern) {
            // A bare pattern name without its JSON quotes: lifecycle, all, ...
            pattern = json::value(flags.pattern);
        }
        json::object body;
        if (flags.workflow.empty()) {
            body["agent_id"] = flags.agent;
        } else {
            body["workflow_id"] = flags.workflow;
        }
        body["pattern"] = *pattern;
        body["prompt_template"] = flags.prompt;
        body["max_fires"] = flags.max_fires;
        if (flags.cooldown >= 0) body["cooldown_secs"] = flags.cooldown;
        auto reply = client->Checked("POST", "/api/triggers", json::serialize(body));
        if (!reply) return ReportError(reply.error());
        if (flags.json) {
            std::cout << json::serialize(reply->json) << "\n";
        } else {
            std::cout << JsonString(reply->json.as_object(), "trigger_id") << "\n";
        }
        return 0;
    }
    const std::string path = "/api/triggers/" + PercentEncode(flags.id);
    if (action == "get") {
        auto reply = client->Checked("GET", path);
        if (!reply) return ReportError(reply.error());
        std::cout << json::serialize(reply->json) << "\n";
        return 0;
    }
    if (action == "enable" || action == "disable") {
        json::object body;
        body["enabled"] = action == "enable";
        auto reply = client->Checked("PUT", path, json::serialize(body));
        if (!reply) return ReportError(reply.error());
        std::cout << (action == "enable" ? "enabled " : "disabled ") << flags.id << "\n";
        return 0;
    }
    auto reply = client->Checked("DELETE", path);
    if (!reply) return ReportError(reply.error());
    std::cout << "removed " << flags.id << "\n";
    return 0;
}

// ---- strowger memory ----

struct MemoryFlags {
    std::string server;
    std::string store;
    std::string name_space = "global";
    std::string key;
    std::string value;
    std::string prefix;
    bool json = false;
};

// VALUE as JSON if it is JSON, else as a string.
json::value ValueOf(const std::string& text) {
    auto parsed = ParseJson(text);
    return parsed ? *parsed : json::value(text);
}

void PrintEntries(const std::string& name_space, const std::vector<store::MemoryEntry>& entries,
                  bool as_json) {
    if (as_json) {
        json::array list;
        for (const auto& e : entries) {
            json::object o;
            o["key"] = e.key;
            o["value"] = ValueOf(e.value);
            o["updated_at"] = FormatRfc3339(e.updated_at);
            list.push_back(std::move(o));
        }
        json::object out;
        out["namespace"] = name_space;
        out["entries"] = std::move(list);
        std::cout << json::serialize(out) << "\n";
        return;
    }
    for (const auto& e : entries) std::cout << e.key << "\t" << e.value << "\n";
}

int DoMemoryRemote(const std::string& action, const MemoryFlags& flags, const std::string& server) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kUsage);
    const std::string base = "/api/memory/" + PercentEncode(flags.name_space);
    if (action == "list") {
        std::string path = base;
        if (!flags.prefix.empty()) path += "?prefix=" + PercentEncode(flags.prefix);
        auto reply = client->Checked("GET", path);
        if (!reply) return ReportError(reply.error());
        std::vector<store::MemoryEntry> entries;
        for (const auto& value : reply->json.as_object().at("entries").as_array()) {
            const auto& e = value.as_object();
            store::MemoryEntry entry;
            entry.key = std::string(JsonString(e, "key"));
            entry.value = CompactJson(e.at("value"));
            if (auto at = ParseRfc3339(JsonString(e, "updated_at"))) entry.updated_at = *at;
            entries.push_back(std::move(entry));
        }
        PrintEntries(flags.name_space, entries, flags.json);
        return 0;
    }
    const std::string path = base + "/" + PercentEncode(flags.key);
    if (action == "get") {
        auto reply = client->Checked("GET", path);
        if (!reply) return ReportError(reply.error());
        std::cout << CompactJson(reply->json.as_object().at("value")) << "\n";
        return 0;
    }
    if (action == "set") {
        json::object body;
        body["value"] = ValueOf(flags.value);
        auto reply = client->Checked("PUT", path, json::serialize(body));
        if (!reply) return ReportError(reply.error());
        std::cout << JsonString(reply->json.as_object(), "change") << " " << flags.name_space << " "
                  << flags.key << "\n";
        return 0;
    }
    auto reply = client->Checked("DELETE", path);
    if (!reply) return ReportError(reply.error());
    std::cout << "deleted " << flags.name_space << " " << flags.key << "\n";
    return 0;
}

int DoMemory(const std::string& action, const MemoryFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    std::string server = RemoteServer(flags.server, flags.store);
    if (!server.empty()) return DoMemoryRemote(action, flags, server);
    auto context = Context::Open(flags.store, global.providers_file);
    if (!context) return ReportError(context.error());
    automation::MemoryService memory;
    memory.Attach((*context)->shared_store());
    if (action == "list") {
        auto entries = (*context)->Await(memory.List(flags.name_space, flags.prefix, 0));
        if (!entries) return ReportError(entries.error());
        PrintEntries(flags.name_space, *entries, flags.json);
        return 0;
    }
    if (action == "get") {
        auto entry = (*context)->Await(memory.Get(flags.name_space, flags.key));
        if (!entry) return ReportError(entry.error());
        std::cout << entry->value << "\n";
        return 0;
    }
    if (action == "set") {
        auto change = (*context)->Await(
            memory.Set(flags.name_space, flags.key, ValueOf(flags.value), Clock::Real().Now()));
        if (!change) return ReportError(change.error());
        std::cout << change->kind << " " << flags.name_space << " " << flags.key << "\n";
        return 0;
    }
    auto deleted = (*context)->Await(memory.Delete(flags.name_space, flags.key));
    if (!deleted) return ReportError(deleted.error());
    std::cout << "deleted " << flags.name_space << " " << flags.key << "\n";
    return 0;
}

}  // namespace

void AddTriggerCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* trigger = app.add_subcommand(
        "trigger", "Triggers of a daemon: events that start agents or workflows");
    trigger->require_subcommand(1);
    auto flags = std::make_shared<TriggerFlags>();
    auto common = [flags](CLI::App* cmd) {
        cmd->add_option("--server", flags->server, "Daemon URL (default $STROWGER_SERVER)")
            ->type_name("URL");
    };
    auto on = [flags, &global, &exit_code](CLI::App* cmd, std::string action) {
        cmd->callback([flags, &global, &exit_code, action] {
            exit_code = DoTrigger(action, *flags, global);
        });
    };
    auto* list = trigger->add_subcommand("list", "List triggers");
    common(list);
    list->add_option("--agent-id", flags->agent_filter, "Only this agent's triggers");
    list->add_flag("--json", flags->json, "JSON output");
    on(list, "list");
    auto* create = trigger->add_subcommand(
        "create",
        "Create a trigger, e.g. create ops '{\"content_match\":{\"substring\":\"error\"}}'");
    common(create);
    create
        ->add_option("agent", flags->agent,
                     "The agent the prompt goes to (with --workflow: a label)")
        ->required();
    create
        ->add_option("pattern", flags->pattern,
                     "The pattern as JSON: '\"lifecycle\"', "
                     "'{\"agent_spawned\":{\"name_pattern\":\"coder\"}}', ...")
        ->required();
    create->add_option("--prompt", flags->prompt,
                       "Prompt template ({{event}}: the event's description)");
    create->add_option("--max-fires", flags->max_fires, "Disable after this many fires (0: never)")
        ->check(CLI::NonNegativeNumber);
    create->add_option("--workflow", flags->workflow,
                       "Start this workflow (id or name) instead of an agent turn");
    create
        ->add_option("--cooldown", flags->cooldown, "Seconds between fires per subject (default 5)")
        ->check(CLI::NonNegativeNumber);
    create->add_flag("--json", flags->json, "JSON output");
    on(create, "create");
    for (const char* action : {"get", "enable", "disable", "delete"}) {
        std::string what = std::string(action) == "get"      ? "A trigger (JSON)"
                           : std::string(action) == "delete" ? "Delete a trigger"
                           : std::string(action) == "enable" ? "Enable a trigger"
                                                             : "Disable a trigger";
        auto* cmd = trigger->add_subcommand(action, what);
        common(cmd);
        cmd->add_option("id", flags->id, "Trigger id")->required();
        on(cmd, action);
    }
}

void AddMemoryCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* memory = app.add_subcommand(
        "memory", "The agent memory: a daemon's with --server, else the store's");
    memory->require_subcommand(1);
    auto flags = std::make_shared<MemoryFlags>();
    auto common = [flags](CLI::App* cmd) {
        cmd->add_option("--server", flags->server, "Daemon URL (default $STROWGER_SERVER)")
            ->type_name("URL");
        cmd->add_option("--store", flags->store, "Store URL (without a daemon)");
        cmd->add_option("--namespace,-n", flags->name_space,
                        "global (default), agent:<name> or run:<run_id>");
    };
    auto on = [flags, &global, &exit_code](CLI::App* cmd, std::string action) {
        cmd->callback(
            [flags, &global, &exit_code, action] { exit_code = DoMemory(action, *flags, global); });
    };
    auto* get = memory->add_subcommand("get", "Print a key's value (JSON)");
    common(get);
    get->add_option("key", flags->key, "Key")->required();
    on(get, "get");
    auto* set = memory->add_subcommand("set", "Set a key (VALUE as JSON, else as text)");
    common(set);
    set->add_option("key", flags->key, "Key")->required();
    set->add_option("value", flags->value, "Value")->required();
    on(set, "set");
    auto* list = memory->add_subcommand("list", "List the keys of a namespace");
    common(list);
    list->add_option("--prefix", flags->prefix, "Only keys starting with this");
    list->add_flag("--json", flags->json, "JSON output");
    on(list, "list");
    auto* remove = memory->add_subcommand("delete", "Delete a key");
    common(remove);
    remove->add_option("key", flags->key, "Key")->required();
    on(remove, "delete");
}

}  // namespace strowger::cli
