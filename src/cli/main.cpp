#include <algorithm>
#include <iostream>
#include <optional>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "core/strings.hpp"

#ifndef STROWGER_COMMIT
#define STROWGER_COMMIT "unknown"
#endif

namespace strowger::cli {

namespace {

// A subcommand inherits its parent's footer (CLI11): one that set none would show the
// parent's examples as its own. Clears those, top down.
void ClearInheritedFooters(CLI::App& app) {
    const std::string own = app.get_footer();
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        ClearInheritedFooters(*sub);
        if (sub->get_footer() == own) sub->footer("");
    }
}

// The names of `app`'s subcommands.
std::vector<std::string> SubcommandNames(CLI::App& app) {
    std::vector<std::string> names;
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        names.push_back(sub->get_name());
    }
    return names;
}

// The closest candidate ("runz": "runs" rather than "run", which is as close but shorter).
std::string Suggest(std::string_view word, const std::vector<std::string>& candidates) {
    const std::string* best = nullptr;
    size_t best_distance = SIZE_MAX;
    size_t best_length_gap = SIZE_MAX;
    for (const auto& candidate : candidates) {
        if (candidate.starts_with("__")) continue;
        size_t distance = EditDistance(AsciiLower(word), AsciiLower(candidate));
        size_t gap = candidate.size() > word.size() ? candidate.size() - word.size()
                                                    : word.size() - candidate.size();
        if (distance < best_distance || (distance == best_distance && gap < best_length_gap)) {
            best = &candidate;
            best_distance = distance;
            best_length_gap = gap;
        }
    }
    if (best == nullptr || best_distance > std::max<size_t>(2, word.size() / 3)) return "";
    return "; did you mean \"" + *best + "\"?";
}

// The first word that is not an option (or an option's value) names the command: an unknown
// one gets a did-you-mean instead of CLI11's "A subcommand is required". nullopt if it is known
// (or there is none).
std::optional<std::string> UnknownCommand(CLI::App& app, int argc, char** argv) {
    auto names = SubcommandNames(app);
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--") return std::nullopt;
        if (StartsWith(arg, "-")) {
            // The root's options with a separate value.
            if (arg == "--log-level" || arg == "--providers") ++i;
            continue;
        }
        if (std::find(names.begin(), names.end(), arg) != names.end()) return std::nullopt;
        return "unknown command \"" + CapForMessage(arg) + "\"" + Suggest(arg, names) +
               " (see `strowger --help`)";
    }
    return std::nullopt;
}

// The deepest subcommand the parse reached.
CLI::App* ChosenCommand(CLI::App& app) {
    CLI::App* current = &app;
    while (true) {
        auto chosen = current->get_subcommands();
        if (chosen.empty()) return current;
        current = chosen.front();
    }
}

// "--inptu": the closest long option of the command the user chose, and of the root.
std::string SuggestOption(CLI::App& app, const std::vector<std::string>& extras) {
    for (const auto& extra : extras) {
        if (!StartsWith(extra, "--")) continue;
        std::string name = extra.substr(
            2, extra.find('=') == std::string::npos ? std::string::npos : extra.find('=') - 2);
        std::vector<std::string> longs;
        for (CLI::App* command = ChosenCommand(app); command != nullptr;
             command = command->get_parent()) {
            for (const CLI::Option* option : command->get_options()) {
                for (const auto& lname : option->get_lnames()) longs.push_back(lname);
            }
        }
        std::vector<std::string_view> views(longs.begin(), longs.end());
        std::string closest = ClosestMatch(name, views);
        if (!closest.empty()) return "did you mean --" + closest + "?";
    }
    return "";
}

}  // namespace

std::string VersionText() {
    return std::string("strowger 0.1.0 (commit ") + STROWGER_COMMIT + ")";
}

int Main(int argc, char** argv) {
    CLI::App app{"strowger — runs AI-agent workflows reliably and auditably"};
    app.require_subcommand(1);
    // Global options are accepted after the subcommand too (`strowger run f.yaml --providers
    // p.yaml`): a subcommand passes what it does not know to its parent.
    app.fallthrough();
    app.set_version_flag("--version", VersionText());
    GlobalFlags global;
    app.add_option("--log-level", global.log_level,
                   "trace|debug|info|warn|error|off (default warn)")
        ->envname("STROWGER_LOG");
    app.add_option("--providers", global.providers_file,
                   "Provider config file: base URLs, keys, limits, retries, prices "
                   "(default $STROWGER_PROVIDERS, else ~/.config/strowger/providers.yaml)");
    app.footer(
        "Examples:\n"
        "  strowger validate flow.yaml\n"
        "  strowger plan flow.yaml --format mermaid\n"
        "  strowger run flow.yaml --input 'hello'\n"
        "  strowger runs list\n"
        "  strowger audit verify --all\n\n"
        "Exit codes: 0 completed, 1 run failed, 2 usage error or invalid workflow, 3 waiting or "
        "paused, 4 cancelled, 5 store or internal error.\n\n"
        "Run `strowger COMMAND --help` for the options of a command.");
    int exit_code = ToInt(ExitCode::kInternal);
    AddRunCommand(app, global, exit_code);
    AddValidateCommand(app, global, exit_code);
    AddPlanCommand(app, global, exit_code);
    AddRunsCommand(app, global, exit_code);
    AddAuditCommand(app, global, exit_code);
    AddApproveCommands(app, global, exit_code);
    AddServeCommand(app, global, exit_code);
    AddTokenCommand(app, global, exit_code);
    AddWorkflowCommand(app, global, exit_code);
    AddAgentCommand(app, global, exit_code);
    AddCronCommand(app, global, exit_code);
    AddTasksCommand(app, global, exit_code);
    AddInitCommand(app, global, exit_code);
    AddTriggerCommand(app, global, exit_code);
    AddMemoryCommand(app, global, exit_code);
    AddToolingCommands(app, global, exit_code);
    ClearInheritedFooters(app);
    if (auto unknown = UnknownCommand(app, argc, argv)) {
        PrintError(*unknown);
        return ToInt(ExitCode::kUsage);
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ExtrasError& e) {
        int code = app.exit(e);
        std::vector<std::string> extras = app.remaining();
        if (CLI::App* chosen = ChosenCommand(app); chosen != &app) {
            auto more = chosen->remaining();
            extras.insert(extras.end(), more.begin(), more.end());
        }
        if (auto hint = SuggestOption(app, extras); !hint.empty()) std::cerr << hint << "\n";
        return code == 0 ? 0 : ToInt(ExitCode::kUsage);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : ToInt(ExitCode::kUsage);
    }
    return exit_code;
}

}  // namespace strowger::cli
