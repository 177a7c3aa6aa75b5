#include "cli/common.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <tuple>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "engine/engine.hpp"
#include "engine/run_view.hpp"
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
    command
        ->add_option("--max-input-bytes", flags.max_bytes,
                     "Refuse a larger input (default 10485760, 10 MiB)")
        ->envname("STROWGER_MAX_INPUT_BYTES")
        ->check(CLI::PositiveNumber)
        ->type_name("BYTES");
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

namespace {

std::string OverLimit(std::string_view what, int64_t limit) {
    return std::string(what) + " is larger than the input limit of " + std::to_string(limit) +
           " bytes (raise it with --max-input-bytes or $STROWGER_MAX_INPUT_BYTES)";
}

// At most limit + 1 bytes of `in` (one more than allowed says it is too big).
std::string ReadCapped(std::istream& in, int64_t limit) {
    std::string data;
    char chunk[64 * 1024];
    while (in && static_cast<int64_t>(data.size()) <= limit) {
        in.read(chunk, sizeof chunk);
        data.append(chunk, static_cast<size_t>(in.gcount()));
    }
    return data;
}

Result<std::string> ReadInputText(const InputFlags& flags) {
    const int64_t limit = flags.max_bytes;
    if (flags.text) {
        if (static_cast<int64_t>(flags.text->size()) > limit) {
            return InvalidArgumentError(OverLimit("--input", limit));
        }
        return *flags.text;
    }
    if (flags.file) {
        const std::string shown = CapForMessage(*flags.file);
        std::string data;
        if (*flags.file == "-") {
            data = ReadCapped(std::cin, limit);
        } else {
            std::error_code ec;
            if (std::filesystem::is_directory(*flags.file, ec)) {
                return InvalidArgumentError(shown +
                                            ": is a directory; --input-file reads one file");
            }
            std::ifstream in(*flags.file, std::ios::binary);
            if (!in) return InvalidArgumentError(shown + ": cannot read input file");
            data = ReadCapped(in, limit);
            if (in.bad()) return InvalidArgumentError(shown + ": cannot read input file");
        }
        if (static_cast<int64_t>(data.size()) > limit) {
            return InvalidArgumentError(OverLimit(*flags.file == "-" ? "stdin" : shown, limit));
        }
        return data;
    }
    if (flags.json) {
        if (static_cast<int64_t>(flags.json->size()) > limit) {
            return InvalidArgumentError(OverLimit("--input-json", limit));
        }
        auto parsed = ParseJson(*flags.json);
        if (!parsed) return InvalidArgumentError("--input-json: " + parsed.error().message());
        return CompactJson(*parsed);
    }
    return std::string();
}

}  // namespace

Result<std::string> ResolveInput(const InputFlags& flags) {
    STROWGER_ASSIGN_OR_RETURN(auto text, ReadInputText(flags));
    // The ledger holds UTF-8 only: other bytes become U+FFFD there. Say so rather than
    // change the input silently.
    if (!IsValidUtf8(text)) {
        PrintError("warning: the input is not valid UTF-8; invalid bytes are stored as U+FFFD");
    }
    return text;
}

LoadedPlan LoadAndCompile(const std::string& file, const WorkflowFlags& flags,
                          providers::ProviderRegistry& registry) {
    model::LoadOptions options;
    options.agent_dirs = flags.agent_dirs;
    LoadedPlan result;
    std::error_code dir_ec;
    if (file != "-" && std::filesystem::is_directory(file, dir_ec)) {
        result.diagnostics.push_back(
            {model::Diagnostic::Severity::kError, model::SourcePos{file, 0, 0}, "",
             "is a directory: name the workflow files in it (e.g. " + file + "/*.yaml)"});
        return result;
    }
    // `-`: the workflow from stdin (relative paths resolve against the working directory).
    auto loaded = file == "-"
                      ? model::LoadWorkflowText(
                            std::string(std::istreambuf_iterator<char>(std::cin), {}), "<stdin>",
                            std::filesystem::current_path(dir_ec).string(), options)
                      : model::LoadWorkflowFile(file, options);
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
    // A problem many agents share (a bad $OPENAI_BASE_URL) is reported once, at the first.
    // What the environment lacks (an API key) is collected for `run`, which checks it before
    // creating a run: each variable named once, with the agents that need it.
    std::set<std::string> reported;
    std::vector<std::pair<std::string, std::vector<std::string>>> missing;
    for (const auto& agent : loaded.workflow.agents) {
        if (agent.model.find(':') == std::string::npos) continue;
        auto resolved = registry.Resolve(agent.model, agent.base_dir);
        if (!resolved) {
            const std::string& message = resolved.error().message();
            if (StartsWith(message, "unknown provider") || !reported.insert(message).second) {
                continue;
            }
            std::string path = "agents." + agent.name + ".model";
            result.diagnostics.push_back({model::Diagnostic::Severity::kError,
                                          loaded.workflow.PositionOf(path), path, message});
            continue;
        }
        if (auto ready = resolved->provider->CheckEnvironment(); !ready) {
            const std::string message = ready.error().message();
            auto it = std::find_if(missing.begin(), missing.end(),
                                   [&](const auto& entry) { return entry.first == message; });
            if (it == missing.end()) it = missing.insert(missing.end(), {message, {}});
            it->second.push_back(agent.name);
        }
    }
    for (const auto& [message, agents] : missing) {
        std::string names;
        for (const auto& name : agents) names += (names.empty() ? "" : ", ") + Shown(name);
        result.environment.push_back(message + " (needed by agent" +
                                     (agents.size() > 1 ? "s " : " ") + names + ")");
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
                                            Warnings warnings, Environment environment) {
    auto loaded = LoadAndCompile(file, flags, registry);
    for (const auto& d : loaded.diagnostics) {
        if (d.severity == model::Diagnostic::Severity::kError || warnings == Warnings::kPrint) {
            std::cerr << d.ToString() << "\n";  // one escaped line
        }
    }
    if (environment == Environment::kRequire && loaded.plan) {
        for (const auto& problem : loaded.environment) PrintError(problem);
        if (!loaded.environment.empty()) return nullptr;
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

json::object RunRecord(const model::Plan* plan, const ledger::RunState& state) {
    json::object record;
    record["format"] = kRunRecordFormat;
    for (auto& [key, value] : engine::RunRecordJson(plan, state)) record[key] = value;
    // The human tasks the run waits for (tool approvals, reconciliations).
    json::array open_tasks;
    for (const auto* task : state.OpenTasks()) {
        json::object t;
        t["task_id"] = task->task_id;
        t["kind"] = task->kind;
        t["title"] = task->title;
        if (plan && task->node_index >= 0 &&
            static_cast<size_t>(task->node_index) < plan->nodes.size()) {
            t["step"] = plan->nodes[static_cast<size_t>(task->node_index)].id;
        }
        if (!task->tool.empty()) t["tool"] = task->tool;
        if (!task->arguments.empty()) t["arguments"] = task->arguments;
        t["created_at"] = FormatRfc3339(task->created_at);
        open_tasks.push_back(std::move(t));
    }
    record["open_tasks"] = std::move(open_tasks);
    return record;
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

RunTotals RunTotalsOf(const json::object& record) {
    RunTotals totals;
    totals.duration_ms = JsonInt(record, "duration_ms");
    totals.tokens = JsonInt(record, "input_tokens") + JsonInt(record, "output_tokens");
    totals.cost_usd = std::string(JsonString(record, "cost_usd"));
    if (totals.cost_usd.empty()) totals.cost_usd = "0";
    if (auto it = record.find("models"); it != record.end() && it->value().is_array()) {
        const auto& models = it->value().get_array();
        if (!models.empty() && models[0].is_string()) {
            totals.model = std::string(models[0].get_string());
            if (models.size() > 1) totals.model += " +" + std::to_string(models.size() - 1);
        }
    }
    return totals;
}

void AddTotals(json::object& run, const RunTotals& totals) {
    run["duration_ms"] = totals.duration_ms;
    run["tokens"] = totals.tokens;
    run["cost_usd"] = totals.cost_usd;
    run["model"] = totals.model;
}

std::string Pad(const std::string& text, size_t width) {
    return text.size() >= width ? text : text + std::string(width - text.size(), ' ');
}

std::string PadCell(const std::string& text, size_t width) {
    return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

std::string Column(const std::string& text, size_t width) {
    size_t columns = 0;
    for (char c : text) columns += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return text + std::string(columns + 2 > width ? 2 : width - columns, ' ');
}

std::string RunsListHeader() {
    return Column("RUN", 28) + Column("STATUS", 12) + Column("WORKFLOW", 22) +
           Column("CREATED", 22) + Column("DURATION", 10) + Column("TOKENS", 9) +
           Column("COST", 11) + "MODEL\n";
}

std::string RunsListRow(const std::string& run_id, const std::string& status,
                        const std::string& workflow, const std::string& created,
                        const RunTotals& totals) {
    char duration[32];
    std::snprintf(duration, sizeof duration, "%.1fs",
                  static_cast<double>(totals.duration_ms) / 1000.0);
    return Column(Shown(run_id, Newlines::kEscape), 28) + Column(status, 12) +
           Column(Shown(Preview(workflow, 20), Newlines::kEscape), 22) + Column(created, 22) +
           Column(duration, 10) + Column(std::to_string(totals.tokens), 9) +
           Column("$" + totals.cost_usd, 11) + Shown(Preview(totals.model, 30), Newlines::kEscape) +
           "\n";
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
        case ledger::EventType::kToolCall:
            return std::string(JsonString(o, "tool")) + " " +
                   Preview(JsonString(o, "arguments"), 60) + " (" +
                   std::string(JsonString(o, "safety")) + ")";
        case ledger::EventType::kToolResult:
            return std::string(JsonBool(o, "is_error") ? "error " : "") +
                   std::to_string(JsonInt(o, "duration_ms")) + "ms " +
                   Preview(JsonString(o, "content"), 60);
        case ledger::EventType::kHumanTaskCreated: {
            std::string text = std::string(JsonString(o, "task_id")) + " " +
                               std::string(JsonString(o, "kind")) + ": " +
                               Preview(JsonString(o, "title"), 60);
            return text;
        }
        case ledger::EventType::kHumanTaskDecided: {
            std::string text = std::string(JsonString(o, "task_id")) + " " +
                               std::string(JsonString(o, "decision")) + " by " +
                               std::string(JsonString(o, "actor"));
            if (auto comment = JsonString(o, "comment"); !comment.empty()) {
                text += ": " + Preview(comment, 50);
            }
            return text;
        }
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
