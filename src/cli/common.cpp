#include "cli/common.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine/engine.hpp"
#include "model/inputs.hpp"
#include "model/loader.hpp"
#include "store/store.hpp"

namespace strowger::cli {

ExitCode ExitCodeFor(ledger::RunStatus status) {
    switch (status) {
        case ledger::RunStatus::kCompleted:
            return ExitCode::kOk;
        case ledger::RunStatus::kFailed:
            return ExitCode::kRunFailed;
        case ledger::RunStatus::kCancelled:
            return ExitCode::kCancelled;
        case ledger::RunStatus::kPaused:
        case ledger::RunStatus::kWaiting:
        case ledger::RunStatus::kNeedsReconciliation:
            return ExitCode::kWaiting;
        case ledger::RunStatus::kPending:
        case ledger::RunStatus::kRunning:
            return ExitCode::kInternal;
    }
    return ExitCode::kInternal;
}

void PrintError(std::string_view message) {
    std::cerr << "strowger: " << CapForMessage(message, kErrorBytes) << "\n";
}

bool StderrIsTerminal() {
    return isatty(STDERR_FILENO) == 1;
}

bool StdoutIsTerminal() {
    return isatty(STDOUT_FILENO) == 1;
}

std::string Shown(std::string_view text, Newlines newlines) {
    return EscapeControl(text, newlines);
}

std::string ForStdout(std::string_view text) {
    return StdoutIsTerminal() ? EscapeControl(text) : std::string(text);
}

void AddWorkflowFlags(CLI::App* command, WorkflowFlags& flags) {
    command
        ->add_option(
            "--agents", flags.agent_dirs,
            "Extra directory of agent files (*.yaml), besides agents/ next to the workflow")
        ->type_name("DIR");
    command
        ->add_option(
            "--model", flags.model_override,
            "Use this model for every agent, e.g. scripted:replies.yaml or openai:gpt-4o-mini")
        ->type_name("PROVIDER:MODEL")
        ->envname("STROWGER_MODEL");
}

void AddInputFlags(CLI::App* command, InputFlags& flags) {
    auto* text = command->add_option("--input,-i", flags.text, "Run input text")->type_name("TEXT");
    auto* file =
        command
            ->add_option("--input-file", flags.file, "Read the run input from a file (- for stdin)")
            ->type_name("PATH");
    auto* json = command->add_option("--input-json", flags.json, "Run input as a JSON value")
                     ->type_name("JSON");
    text->excludes(file)->excludes(json);
    file->excludes(json);
    command
        ->add_option("--set", flags.sets,
                     "A typed input: name=value, read by the input's type (repeatable; after "
                     "--input-json)")
        ->type_name("NAME=VALUE")
        ->allow_extra_args(false);
}

bool HasInput(const InputFlags& flags) {
    return flags.text || flags.file || flags.json || !flags.sets.empty();
}

std::optional<std::string> RunInputOrReport(const InputFlags& flags, const model::Plan& plan) {
    auto text = ResolveInput(flags);
    if (!text) {
        PrintError(text.error().message());
        return std::nullopt;
    }
    model::GivenInput given{*text, flags.json.has_value(), flags.sets};
    auto applied = model::ApplyInputs(plan.inputs, given);
    if (!applied.ok()) {
        for (const auto& problem : applied.problems) PrintError(problem.message);
        return std::nullopt;
    }
    return applied.input;
}

Result<std::string> ResolveInput(const InputFlags& flags) {
    if (flags.text) return *flags.text;
    if (flags.file) {
        std::ostringstream buffer;
        if (*flags.file == "-") {
            buffer << std::cin.rdbuf();
        } else {
            std::ifstream in(*flags.file, std::ios::binary);
            if (!in) {
                return InvalidArgumentError(CapForMessage(*flags.file) +
                                            ": cannot read input file");
            }
            buffer << in.rdbuf();
        }
        return buffer.str();
    }
    if (flags.json) {
        auto parsed = ParseJson(*flags.json);
        if (!parsed) return InvalidArgumentError("--input-json: " + parsed.error().message());
        return CompactJson(*parsed);
    }
    return std::string();
}

LoadedPlan LoadAndCompile(const std::string& file, const WorkflowFlags& flags,
                          providers::ProviderRegistry& registry) {
    model::LoadOptions options;
    options.agent_dirs = flags.agent_dirs;
    auto loaded = model::LoadWorkflowFile(file, options);
    LoadedPlan result;
    result.diagnostics = loaded.diagnostics;
    if (!flags.model_override.empty()) {
        std::error_code ec;
        std::string cwd = std::filesystem::current_path(ec).string();
        for (auto& agent : loaded.workflow.agents) {
            agent.model = flags.model_override;
            agent.base_dir = cwd;
        }
    }
    // Cross-reference checks run even when the loader found problems, so one validation shows
    // every error; a plan only comes out of an error-free file.
    auto compile_options = engine::CompileOptionsFor(registry);
    if (!flags.model_override.empty()) {
        // --model is also the DAG form's default_model (agent nodes that name no agent).
        std::error_code ec;
        compile_options.default_model = flags.model_override;
        compile_options.default_model_dir = std::filesystem::current_path(ec).string();
    }
    auto compiled = model::Compile(loaded.workflow, compile_options);
    result.diagnostics.insert(result.diagnostics.end(), compiled.diagnostics.begin(),
                              compiled.diagnostics.end());
    // Resolve each model now, so a missing scripted file is reported with its position instead
    // of failing the first step at run time. Unknown providers were reported by Compile.
    for (const auto& agent : loaded.workflow.agents) {
        if (agent.model.find(':') == std::string::npos) continue;
        auto resolved = registry.Resolve(agent.model, agent.base_dir);
        if (!resolved && !StartsWith(resolved.error().message(), "unknown provider")) {
            std::string path = "agents." + agent.name + ".model";
            result.diagnostics.push_back({model::Diagnostic::Severity::kError,
                                          loaded.workflow.PositionOf(path), path,
                                          resolved.error().message()});
        }
    }
    if (loaded.ok() && !model::HasErrors(result.diagnostics)) result.plan = compiled.plan;
    std::stable_sort(result.diagnostics.begin(), result.diagnostics.end(),
                     [](const auto& x, const auto& y) {
                         return std::tie(x.pos.file, x.pos.line, x.pos.column) <
                                std::tie(y.pos.file, y.pos.line, y.pos.column);
                     });
    return result;
}

std::shared_ptr<const model::Plan> LoadPlan(const std::string& file, const WorkflowFlags& flags,
                                            providers::ProviderRegistry& registry,
                                            Warnings warnings) {
    auto loaded = LoadAndCompile(file, flags, registry);
    for (const auto& d : loaded.diagnostics) {
        if (d.severity == model::Diagnostic::Severity::kError || warnings == Warnings::kPrint) {
            std::cerr << d.ToString() << "\n";  // one escaped line
        }
    }
    return loaded.plan;
}

std::string StoreUrl(const std::string& flag) {
    return flag.empty() ? store::DefaultStoreUrl() : flag;
}

void SetUpProcess(const std::string& log_level) {
    InitLogging(log_level.empty() ? "warn" : log_level);
    RegisterEnvironmentSecrets();
    // Extra secret patterns, one ECMAScript regex per line (or separated by ';;').
    if (const char* patterns = std::getenv("STROWGER_REDACT_PATTERNS"); patterns && *patterns) {
        std::string all(patterns);
        size_t start = 0;
        while (start <= all.size()) {
            size_t end = all.find_first_of("\n", start);
            size_t sep = all.find(";;", start);
            if (sep != std::string::npos && (end == std::string::npos || sep < end)) end = sep;
            std::string pattern =
                all.substr(start, end == std::string::npos ? std::string::npos : end - start);
            if (!pattern.empty() && !RegisterSecretPattern(pattern)) {
                PrintError("STROWGER_REDACT_PATTERNS: not a valid regular expression: " +
                           CapForMessage(pattern));
            }
            if (end == std::string::npos) break;
            start = end + (all.compare(end, 2, ";;") == 0 ? 2 : 1);
        }
    }
}

int ReportError(const Error& error) {
    PrintError(error.message());
    switch (error.code()) {
        case ErrorCode::kNotFound:
        case ErrorCode::kFailedPrecondition:
        case ErrorCode::kInvalidArgument:
        case ErrorCode::kAborted:
            return ToInt(ExitCode::kUsage);
        default:
            return ToInt(ExitCode::kInternal);
    }
}

std::string EventSummary(const ledger::Event& event) {
    auto parsed = ParseJson(event.data);
    if (!parsed || !parsed->is_object()) return {};
    const auto& o = parsed->get_object();
    switch (event.type) {
        case ledger::EventType::kRunCreated:
            return "input: " + Preview(JsonString(o, "input"), 80);
        case ledger::EventType::kRunCompleted:
            return "output: " + Preview(JsonString(o, "output"), 80);
        case ledger::EventType::kRunFailed:
            return std::string(JsonString(o, "error"));
        case ledger::EventType::kRunPaused:
        case ledger::EventType::kRunResumed:
        case ledger::EventType::kRunCancelled: {
            std::string text(JsonString(o, "reason"));
            if (auto actor = JsonString(o, "actor"); !actor.empty())
                text += " (by " + std::string(actor) + ")";
            return text;
        }
        case ledger::EventType::kLlmRequest:
            return std::string(JsonString(o, "provider")) + ":" +
                   std::string(JsonString(o, "model")) + " " + Preview(JsonString(o, "prompt"), 60);
        case ledger::EventType::kLlmResponse:
            return std::to_string(JsonInt(o, "tokens_in")) + "→" +
                   std::to_string(JsonInt(o, "tokens_out")) + " tokens " +
                   std::to_string(JsonInt(o, "latency_ms")) + "ms " +
                   Preview(JsonString(o, "content"), 50);
        case ledger::EventType::kNodeCompleted:
        case ledger::EventType::kNodeIterationCompleted:
            return Preview(JsonString(o, "output"), 80);
        case ledger::EventType::kLlmRetried: {
            std::string text = "try " + std::to_string(JsonInt(o, "try")) + " failed";
            if (int64_t status = JsonInt(o, "http_status"); status > 0)
                text += " (HTTP " + std::to_string(status) + ")";
            return text + ", waited " + std::to_string(JsonInt(o, "delay_ms")) +
                   "ms: " + Preview(JsonString(o, "error"), 60);
        }
        case ledger::EventType::kNodeRetryScheduled:
            return "retry in " + std::to_string(JsonInt(o, "delay_ms")) +
                   "ms: " + Preview(JsonString(o, "error"), 60);
        case ledger::EventType::kNodeFailed:
            return std::string(JsonString(o, "error"));
        case ledger::EventType::kNodeSkipped:
            return std::string(JsonString(o, "reason")) + " " + Preview(JsonString(o, "error"), 60);
        case ledger::EventType::kRunRetried: {
            std::string text = "cleared:";
            if (const auto* cleared = JsonArray(o, "cleared")) {
                for (const auto& n : *cleared) text += " " + std::string(n.get_string());
            }
            return text;
        }
        default:
            return {};
    }
}

std::optional<int> WriteOutput(const std::string& file, std::string_view text) {
    if (file.empty() || file == "-") {
        std::cout << text;
        std::cout.flush();
        return std::nullopt;
    }
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) {
        PrintError(file + ": cannot write");
        return ToInt(ExitCode::kUsage);
    }
    return std::nullopt;
}

}  // namespace strowger::cli
