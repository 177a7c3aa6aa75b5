#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"

namespace strowger::cli {

int Main(int argc, char** argv) {
    CLI::App app{"strowger — runs AI-agent workflows reliably and auditably"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "strowger 0.1.0");
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
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : ToInt(ExitCode::kUsage);
    }
    return exit_code;
}

}  // namespace strowger::cli
