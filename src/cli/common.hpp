// Plumbing shared by the subcommands: exit codes, workflow/input flags, loading a plan.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "core/result.hpp"
#include "core/strings.hpp"
#include "ledger/event.hpp"
#include "ledger/run_state.hpp"
#include "model/diagnostic.hpp"
#include "model/plan.hpp"
#include "providers/provider.hpp"

namespace strowger::cli {

// SPEC §2.
enum class ExitCode : int {
    kOk = 0,         // completed
    kRunFailed = 1,  // the run failed
    kUsage = 2,      // usage error or invalid workflow
    kWaiting = 3,    // the run waits (human task or pause) and was left durable
    kCancelled = 4,
    kInternal = 5,  // store or internal error
};

inline int ToInt(ExitCode code) {
    return static_cast<int>(code);
}
ExitCode ExitCodeFor(ledger::RunStatus status);

// Prints "strowger: <message>" on stderr, safe for a terminal: control characters escaped and
// at most kErrorBytes of it (CapForMessage), since a message may quote a model's reply, a file
// or an argument. Everything the CLI writes to stderr from a run or a user is escaped.
inline constexpr size_t kErrorBytes = 16 * 1024;
void PrintError(std::string_view message);
bool StderrIsTerminal();
bool StdoutIsTerminal();

// Text from a run or a user (outputs, prompts, names, errors, tool arguments) for a human
// reader: control characters escaped (EscapeControl), so a model's reply cannot clear the
// screen or retitle the window. Newlines are kept, or escaped for one-line fields (kEscape).
// `--json` output and files keep the exact bytes; `run`'s output does on a pipe (ForStdout).
std::string Shown(std::string_view text, Newlines newlines = Newlines::kKeep);
// `text` as Shown when stdout is a terminal, else unchanged: for data that a pipe must get
// exactly (the workflow's output, a DOT graph).
std::string ForStdout(std::string_view text);

struct WorkflowFlags {
    std::vector<std::string> agent_dirs;
    std::string model_override;  // --model: replaces every agent's model
};
void AddWorkflowFlags(CLI::App* command, WorkflowFlags& flags);

inline constexpr int64_t kDefaultMaxInputBytes = 10 * 1024 * 1024;
struct InputFlags {
    std::optional<std::string> text;
    std::optional<std::string> file;
    std::optional<std::string> json;
    std::vector<std::string> sets;  // --set name=value (typed inputs)
    // --max-input-bytes / $STROWGER_MAX_INPUT_BYTES: a larger input is refused.
    int64_t max_bytes = kDefaultMaxInputBytes;
};
void AddInputFlags(CLI::App* command, InputFlags& flags);
// The run input from the flags ("" if none); kInvalidArgument for unreadable files or bad JSON.
Result<std::string> ResolveInput(const InputFlags& flags);
// Whether any input flag was given.
bool HasInput(const InputFlags& flags);
// The run's input from the flags, checked against the workflow's typed inputs
// (model::ApplyInputs: defaults applied, the result a JSON object); prints every problem,
// each naming its input, and returns nullopt.
std::optional<std::string> RunInputOrReport(const InputFlags& flags, const model::Plan& plan);

struct LoadedPlan {
    std::shared_ptr<const model::Plan> plan;     // null if there are errors
    std::vector<model::Diagnostic> diagnostics;  // sorted by position
    // What the environment lacks for the models to answer ("OPENAI_API_KEY is not set (needed
    // by agents a, b)"): one line per problem. Not an error for validate; `run` refuses.
    std::vector<std::string> environment;
};
// Loads a workflow file (applying --agents and --model), validates it completely (shape,
// cross-references, models) and compiles it.
LoadedPlan LoadAndCompile(const std::string& file, const WorkflowFlags& flags,
                          providers::ProviderRegistry& registry);

enum class Warnings { kPrint, kHide };
// kRequire: the environment's problems (LoadedPlan::environment) are errors too (`run`).
enum class Environment { kIgnore, kRequire };
// Loads and compiles a workflow. Prints diagnostics (errors always, warnings if asked) to
// stderr; returns null if there were errors.
std::shared_ptr<const model::Plan> LoadPlan(const std::string& file, const WorkflowFlags& flags,
                                            providers::ProviderRegistry& registry,
                                            Warnings warnings,
                                            Environment environment = Environment::kIgnore);

// --store flag value, else $STROWGER_STORE, else the default sqlite file.
std::string StoreUrl(const std::string& flag);

// Applies --log-level (default warn) and registers secrets from the environment.
void SetUpProcess(const std::string& log_level);

// The run record of `--json` (run, runs show, runs resume/retry/rerun, approve): its format
// and version first, then engine::RunRecordJson's fields and the open human tasks
// (docs/formats/run_record_v1.md).
inline constexpr char kRunRecordFormat[] = "strowger.run_record.v1";
json::object RunRecord(const model::Plan* plan, const ledger::RunState& state);

// Prints `error` and returns the exit code for it: 2 for what the caller got wrong (not found,
// a failed precondition, an invalid argument, a conflict), 5 for the rest (store or server
// unreachable, internal errors). The same for the store and for a daemon's answers.
int ReportError(const Error& error);
// Writes `text` to `file` ("" or "-": stdout); the exit code (usage) if it cannot, printed.
std::optional<int> WriteOutput(const std::string& file, std::string_view text);

// `runs list`'s columns beyond the store's record (docs/formats/run_record_v1.md), the same on
// the store and through a daemon: taken from a run record (RunRecordJson's fields).
struct RunTotals {
    int64_t duration_ms = 0;
    int64_t tokens = 0;
    std::string cost_usd = "0";
    std::string model;  // the run's first model, "+N" when it has more
};
RunTotals RunTotalsOf(const json::object& record);
void AddTotals(json::object& run, const RunTotals& totals);
// `text` padded with spaces to `width` terminal columns (UTF-8 aware), and at least two
// spaces after it when it is wider: a table column.
std::string Column(const std::string& text, size_t width);
// `text` padded with spaces to `width` bytes; as it is when it is wider.
std::string Pad(const std::string& text, size_t width);
// `text` padded with spaces to `width` bytes, and one space after it when it is wider.
std::string PadCell(const std::string& text, size_t width);
std::string RunsListHeader();
std::string RunsListRow(const std::string& run_id, const std::string& status,
                        const std::string& workflow, const std::string& created,
                        const RunTotals& totals);

// The one-line summary of an event that `runs events` prints (on the store and via --server).
std::string EventSummary(const ledger::Event& event);

}  // namespace strowger::cli
