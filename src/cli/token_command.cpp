// strowger token create NAME --role ROLE | list | revoke NAME
//
// With --server (or $STROWGER_SERVER) through the daemon's API (an admin token); without, on
// the store directly (whoever can write the store is its admin already).
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <iostream>

#include "api/auth.hpp"
#include "cli/api_client.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/remote.hpp"
#include "store/store.hpp"

namespace strowger::cli {
namespace {

struct TokenFlags {
    std::string server;
    std::string store;
    std::string name;
    std::string role = "viewer";
};

void PrintTokens(const json::array& tokens) {
    std::cout << PadCell("NAME", 24) << PadCell("ROLE", 10) << PadCell("CREATED BY", 14)
              << PadCell("CREATED", 22) << "REVOKED\n";
    for (const auto& t : tokens) {
        const auto& o = t.as_object();
        std::string revoked = o.at("revoked_at").is_string()
                                  ? std::string(o.at("revoked_at").as_string()).substr(0, 19) + "Z"
                                  : "-";
        std::cout << PadCell(std::string(JsonString(o, "name")), 24)
                  << PadCell(std::string(JsonString(o, "role")), 10)
                  << PadCell(std::string(JsonString(o, "created_by")), 14)
                  << PadCell(std::string(JsonString(o, "created_at")).substr(0, 19) + "Z", 22)
                  << revoked << "\n";
    }
}

json::object TokenJson(const store::ApiToken& token) {
    json::object o;
    o["name"] = token.name;
    o["role"] = token.role;
    o["created_by"] = token.created_by;
    o["created_at"] = FormatRfc3339(token.created_at);
    o["revoked_at"] =
        token.live() ? json::value(nullptr) : json::value(FormatRfc3339(token.revoked_at));
    return o;
}

// Runs `f` (a coroutine over the store) on a fresh io_context.
template <typename T>
T RunLocal(asio::io_context& io, Awaitable<T> awaitable) {
    std::optional<T> result;
    asio::co_spawn(io, std::move(awaitable),
                   [&](std::exception_ptr, T value) { result.emplace(std::move(value)); });
    io.run();
    return std::move(*result);
}

int DoToken(const std::string& action, const TokenFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    std::string server = RemoteServer(flags.server, flags.store);
    if (!server.empty()) {
        auto client = ConnectOrReport(server);
        if (!client) return ToInt(ExitCode::kInternal);
        if (action == "create") {
            json::object body;
            body["name"] = flags.name;
            body["role"] = flags.role;
            auto reply = client->Checked("POST", "/api/tokens", json::serialize(body));
            if (!reply) return ReportError(reply.error());
            std::cout << JsonString(reply->json.as_object(), "token") << "\n";
            std::cerr << "strowger: token " << flags.name << " (" << flags.role
                      << ") created; it is shown only now\n";
            return 0;
        }
        if (action == "list") {
            auto reply = client->Checked("GET", "/api/tokens");
            if (!reply) return ReportError(reply.error());
            PrintTokens(reply->json.as_object().at("tokens").as_array());
            return 0;
        }
        auto reply = client->Checked("DELETE", "/api/tokens/" + flags.name);
        if (!reply) return ReportError(reply.error());
        std::cout << "revoked " << flags.name << "\n";
        return 0;
    }
    // On the store.
    auto store = store::OpenStoreBlocking(StoreUrl(flags.store));
    if (!store) {
        PrintError(store.error().message());
        return ToInt(ExitCode::kInternal);
    }
    asio::io_context io(1);
    api::TokenRegistry tokens(*store);
    if (action == "create") {
        auto created = RunLocal(io, tokens.Create(flags.name, flags.role, "local"));
        if (!created) {
            PrintError(created.error().message());
            return ToInt(ExitCode::kUsage);
        }
        std::cout << created->token << "\n";
        std::cerr << "strowger: token " << flags.name << " (" << flags.role
                  << ") created; it is shown only now\n";
        return 0;
    }
    if (action == "list") {
        auto refreshed = RunLocal(io, tokens.Refresh());
        if (!refreshed) {
            PrintError(refreshed.error().message());
            return ToInt(ExitCode::kInternal);
        }
        json::array list;
        for (const auto& token : tokens.tokens()) list.push_back(TokenJson(token));
        PrintTokens(list);
        return 0;
    }
    auto revoked = RunLocal(io, tokens.Revoke(flags.name));
    if (!revoked) {
        PrintError(revoked.error().message());
        return ToInt(revoked.error().code() == ErrorCode::kNotFound ? ExitCode::kUsage
                                                                    : ExitCode::kInternal);
    }
    std::cout << "revoked " << flags.name << "\n";
    return 0;
}

}  // namespace

void AddTokenCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* token = app.add_subcommand("token", "API tokens of the daemon");
    token->require_subcommand(1);
    auto flags = std::make_shared<TokenFlags>();
    auto common = [flags](CLI::App* cmd) {
        cmd->add_option("--server", flags->server,
                        "Daemon URL (default $STROWGER_SERVER; neither: the store directly)")
            ->type_name("URL");
        cmd->add_option("--store", flags->store, "Run store URL, when not through a daemon")
            ->type_name("URL");
    };
    auto* create = token->add_subcommand("create", "Create a token; prints it once");
    common(create);
    create->add_option("name", flags->name, "Its name: recorded as the actor of what it does")
        ->required();
    create->add_option("--role", flags->role, "viewer, operator, approver or admin")
        ->check(CLI::IsMember({"viewer", "operator", "approver", "admin"}))
        ->capture_default_str();
    create->callback(
        [flags, &global, &exit_code] { exit_code = DoToken("create", *flags, global); });
    auto* list = token->add_subcommand("list", "List tokens (never their text)");
    common(list);
    list->callback([flags, &global, &exit_code] { exit_code = DoToken("list", *flags, global); });
    auto* revoke = token->add_subcommand("revoke", "Revoke a token for good");
    common(revoke);
    revoke->add_option("name", flags->name, "The token's name")->required();
    revoke->callback(
        [flags, &global, &exit_code] { exit_code = DoToken("revoke", *flags, global); });
}

}  // namespace strowger::cli
