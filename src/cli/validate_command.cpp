#include <boost/asio/io_context.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"

namespace strowger::cli {

void AddValidateCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    struct Flags {
        std::vector<std::string> files;
        WorkflowFlags workflow;
        InputFlags input;
    };
    auto flags = std::make_shared<Flags>();
    auto* cmd = app.add_subcommand(
        "validate", "Check workflow files; report every problem with file:line:column and field");
    cmd->add_option("files", flags->files, "Workflow files")->required();
    AddWorkflowFlags(cmd, flags->workflow);
    AddInputFlags(cmd, flags->input);
    cmd->footer(
        "Exit codes: 0 all files valid (warnings allowed), 2 otherwise.\n\n"
        "Examples:\n"
        "  strowger validate examples/*.json\n"
        "  strowger validate flow.yaml --agents ./agents\n"
        "  strowger validate review.yaml --set amount=120000   (checks an input too)");
    cmd->callback([flags, &global, &exit_code] {
        SetUpProcess(global.log_level);
        asio::io_context io;
        providers::ProviderRegistry registry(io.get_executor());
        if (!SetUpProvidersOrReport(io.get_executor(), global.providers_file, registry)) {
            exit_code = ToInt(ExitCode::kUsage);
            return;
        }
        bool all_ok = true;
        for (const auto& file : flags->files) {
            auto plan = LoadPlan(file, flags->workflow, registry, Warnings::kPrint);
            if (plan && HasInput(flags->input) && !RunInputOrReport(flags->input, *plan)) {
                all_ok = false;
                continue;
            }
            if (plan) {
                std::cout << Shown(file, Newlines::kEscape) << ": ok (";
                if (plan->dag) {
                    std::cout << plan->nodes.size() << " nodes, " << plan->edges.size() << " edges";
                } else {
                    std::cout << plan->nodes.size() << " steps";
                }
                std::cout << ", " << plan->agents.size() << " agents";
                if (!plan->inputs.empty()) std::cout << ", " << plan->inputs.size() << " inputs";
                std::cout << ")\n";
            } else {
                all_ok = false;
            }
        }
        exit_code = ToInt(all_ok ? ExitCode::kOk : ExitCode::kUsage);
    });
}

}  // namespace strowger::cli
