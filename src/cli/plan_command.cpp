#include <boost/asio/io_context.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "model/plan_format.hpp"

namespace strowger::cli {

void AddPlanCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    struct Flags {
        std::string file;
        InputFlags input;
        WorkflowFlags workflow;
        std::string format = "text";
    };
    auto flags = std::make_shared<Flags>();
    auto* cmd = app.add_subcommand(
        "plan", "Show what a workflow would do (agents, order, prompts) without calling any model");
    cmd->add_option("file", flags->file, "Workflow file")->required()->check(CLI::ExistingFile);
    AddInputFlags(cmd, flags->input);
    AddWorkflowFlags(cmd, flags->workflow);
    cmd->add_option("--format,-f", flags->format, "Output format")
        ->check(CLI::IsMember({"text", "json", "dot", "mermaid"}));
    cmd->footer(
        "Examples:\n"
        "  strowger plan examples/brainstorm.json\n"
        "  strowger plan flow.yaml --format dot | dot -Tsvg > flow.svg\n"
        "  strowger plan flow.yaml --input 'topic' --format json");
    cmd->callback([flags, &global, &exit_code] {
        SetUpProcess(global.log_level);
        asio::io_context io;
        providers::ProviderRegistry registry(io.get_executor());
        if (!SetUpProvidersOrReport(io.get_executor(), global.providers_file, registry)) {
            exit_code = ToInt(ExitCode::kUsage);
            return;
        }
        auto plan = LoadPlan(flags->file, flags->workflow, registry, Warnings::kPrint);
        if (!plan) {
            exit_code = ToInt(ExitCode::kUsage);
            return;
        }
        std::optional<std::string> input;
        if (HasInput(flags->input)) {
            input = RunInputOrReport(flags->input, *plan);
            if (!input) {
                exit_code = ToInt(ExitCode::kUsage);
                return;
            }
        }
        model::PlanFormat format = flags->format == "json"      ? model::PlanFormat::kJson
                                   : flags->format == "dot"     ? model::PlanFormat::kDot
                                   : flags->format == "mermaid" ? model::PlanFormat::kMermaid
                                                                : model::PlanFormat::kText;
        // The text form is a report for a person: its names and prompts are escaped. JSON
        // escapes control characters itself; DOT and Mermaid are data for a pipe, escaped only
        // on a terminal.
        std::string formatted = model::FormatPlan(*plan, format, input);
        if (format == model::PlanFormat::kText) {
            std::cout << Shown(formatted);
        } else if (format == model::PlanFormat::kJson) {
            std::cout << formatted;
        } else {
            std::cout << ForStdout(formatted);
        }
        exit_code = ToInt(ExitCode::kOk);
    });
}

}  // namespace strowger::cli
