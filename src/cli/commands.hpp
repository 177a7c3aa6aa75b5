// One function per subcommand: each adds itself to the app and, when chosen, runs and stores
// its exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace strowger::cli {

struct GlobalFlags {
    std::string log_level;
    std::string providers_file;  // --providers
};

void AddRunCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddValidateCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddPlanCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddRunsCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddAuditCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddApproveCommands(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddServeCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddTokenCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddWorkflowCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddAgentCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddCronCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddTasksCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddInitCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddTriggerCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddMemoryCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);
void AddHookCommand(CLI::App& app, const GlobalFlags& global, int& exit_code);

// version, schema, completion, man: what editors and shells load (tooling_command.cpp).
void AddToolingCommands(CLI::App& app, const GlobalFlags& global, int& exit_code);

// "strowger 0.1.0 (commit <git describe at configure time, or unknown>)".
std::string VersionText();

// Parses argv and runs the chosen subcommand; returns the process exit code.
int Main(int argc, char** argv);

}  // namespace strowger::cli
