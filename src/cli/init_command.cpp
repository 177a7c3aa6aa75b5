// strowger init --template NAME [DIR] [--force] / strowger init --list: writes a runnable DAG
// workflow (<name>.yaml) and the scripted provider file it runs offline with
// (<name>.replies.yaml) from the templates embedded in the binary (cli/templates.hpp).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/templates.hpp"
#include "core/strings.hpp"

namespace strowger::cli {
namespace {

struct InitFlags {
    std::string template_name;
    std::string dir = ".";
    bool list = false;
    bool force = false;
};

// The template's one-line description: its workflow's `description:` line.
std::string DescriptionOf(std::string_view workflow) {
    for (const auto& line : Split(workflow, '\n')) {
        if (!StartsWith(line, "description:")) continue;
        std::string_view text = Trim(std::string_view(line).substr(12));
        if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
            text = text.substr(1, text.size() - 2);
        }
        return std::string(text);
    }
    return "";
}

std::map<std::string_view, std::vector<const TemplateFile*>> ByName() {
    std::map<std::string_view, std::vector<const TemplateFile*>> by_name;
    for (const auto& file : TemplateFiles()) by_name[file.template_name].push_back(&file);
    return by_name;
}

int DoInit(const InitFlags& flags) {
    auto templates = ByName();
    if (flags.list || flags.template_name.empty()) {
        for (const auto& [name, files] : templates) {
            std::string description;
            for (const auto* file : files) {
                if (file->file_name == std::string(name) + ".yaml") {
                    description = DescriptionOf(file->content);
                }
            }
            std::cout << name << std::string(name.size() < 24 ? 24 - name.size() : 1, ' ')
                      << description << "\n";
        }
        if (!flags.list) {
            PrintError("name a template: strowger init --template NAME [DIR]");
            return ToInt(ExitCode::kUsage);
        }
        return ToInt(ExitCode::kOk);
    }
    auto it = templates.find(flags.template_name);
    if (it == templates.end()) {
        std::vector<std::string_view> names;
        for (const auto& [name, files] : templates) names.push_back(name);
        std::string message =
            "no template named \"" + CapForMessage(flags.template_name, 64) + "\"";
        std::string suggestion = ClosestMatch(flags.template_name, names);
        if (!suggestion.empty()) message += " (did you mean \"" + suggestion + "\"?)";
        message += "; strowger init --list shows them";
        PrintError(message);
        return ToInt(ExitCode::kUsage);
    }
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(flags.dir, ec);
    if (ec) {
        PrintError(flags.dir + ": cannot create the directory: " + ec.message());
        return ToInt(ExitCode::kUsage);
    }
    // Nothing is written if any file exists (unless --force).
    for (const auto* file : it->second) {
        fs::path target = fs::path(flags.dir) / std::string(file->file_name);
        if (!flags.force && fs::exists(target, ec)) {
            PrintError(target.string() + " exists; use --force to overwrite it");
            return ToInt(ExitCode::kUsage);
        }
    }
    for (const auto* file : it->second) {
        fs::path target = fs::path(flags.dir) / std::string(file->file_name);
        std::ofstream out(target, std::ios::binary | std::ios::trunc);
        out << file->content;
        out.close();
        if (!out) {
            PrintError(target.string() + ": cannot write");
            return ToInt(ExitCode::kInternal);
        }
        std::cout << "wrote " << Shown(target.string(), Newlines::kEscape) << "\n";
    }
    fs::path workflow = fs::path(flags.dir) / (flags.template_name + ".yaml");
    std::cerr << "run it offline: strowger run " << Shown(workflow.string(), Newlines::kEscape)
              << " --set ...   (strowger plan " << Shown(workflow.string(), Newlines::kEscape)
              << " shows its inputs)\n";
    return ToInt(ExitCode::kOk);
}

}  // namespace

void AddInitCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto flags = std::make_shared<InitFlags>();
    auto* cmd = app.add_subcommand(
        "init",
        "Write a runnable workflow from a template, with a scripted model to try it offline");
    cmd->add_option("--template,-t", flags->template_name, "Template name (see --list)")
        ->type_name("NAME");
    cmd->add_option("dir", flags->dir, "Directory to write into (default: the current one)");
    cmd->add_flag("--list", flags->list, "List the templates");
    cmd->add_flag("--force", flags->force, "Overwrite existing files");
    cmd->footer(
        "Examples:\n"
        "  strowger init --list\n"
        "  strowger init --template ticket_triage triage/\n"
        "  strowger run triage/ticket_triage.yaml --set ticket='I was charged twice'\n"
        "  strowger run triage/ticket_triage.yaml --model openai:gpt-4o-mini --set ticket=...");
    cmd->callback([flags, &global, &exit_code] {
        SetUpProcess(global.log_level);
        exit_code = DoInit(*flags);
    });
}

}  // namespace strowger::cli
