#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"

namespace strowger::cli {
namespace {

// `validate --json`: {"format": "strowger.validate.v1", "ok", "files": [{"file", "ok",
// "form", "steps"|"nodes", "edges", "agents", "inputs", "diagnostics": [...]}]}.
int ValidateJson(const std::vector<std::string>& files, const WorkflowFlags& workflow,
                 providers::ProviderRegistry& registry) {
    json::array results;
    bool all_ok = true;
    for (const auto& file : files) {
        auto loaded = LoadAndCompile(file, workflow, registry);
        json::object result;
        result["file"] = file;
        result["ok"] = loaded.plan != nullptr;
        all_ok = all_ok && loaded.plan != nullptr;
        if (const auto& plan = loaded.plan) {
            result["form"] = plan->dag ? "dag" : "linear";
            result[plan->dag ? "nodes" : "steps"] = static_cast<int64_t>(plan->nodes.size());
            if (plan->dag) result["edges"] = static_cast<int64_t>(plan->edges.size());
            result["agents"] = static_cast<int64_t>(plan->agents.size());
            result["inputs"] = static_cast<int64_t>(plan->inputs.size());
        }
        json::array diagnostics;
        for (const auto& d : loaded.diagnostics) {
            json::object item;
            item["severity"] =
                d.severity == model::Diagnostic::Severity::kError ? "error" : "warning";
            item["file"] = d.pos.file;
            item["line"] = d.pos.line;
            item["column"] = d.pos.column;
            item["path"] = d.path;
            item["message"] = d.message;
            diagnostics.push_back(std::move(item));
        }
        result["diagnostics"] = std::move(diagnostics);
        results.push_back(std::move(result));
    }
    json::object out;
    out["format"] = "strowger.validate.v1";
    out["ok"] = all_ok;
    out["files"] = std::move(results);
    std::cout << json::serialize(out) << "\n";
    return ToInt(all_ok ? ExitCode::kOk : ExitCode::kUsage);
}

}  // namespace

void AddValidateCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    struct Flags {
        std::vector<std::string> files;
        WorkflowFlags workflow;
        InputFlags input;
        bool json = false;
    };
    auto flags = std::make_shared<Flags>();
    auto* cmd = app.add_subcommand(
        "validate", "Check workflow files; report every problem with file:line:column and field");
    cmd->add_option("files", flags->files, "Workflow files")->required();
    AddWorkflowFlags(cmd, flags->workflow);
    AddInputFlags(cmd, flags->input);
    cmd->add_flag("--json", flags->json,
                  "One JSON object: each file's result and diagnostics "
                  "(docs/formats/run_record_v1.md#validate)");
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
        if (flags->json) {
            exit_code = ValidateJson(flags->files, flags->workflow, registry);
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
