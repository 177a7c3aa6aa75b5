// The workflow as the user wrote it (SPEC §3), after parsing and before compilation.
//
// A Workflow is produced by LoadWorkflow (loader.hpp), checked by Validate (validate.hpp) and
// compiled into an immutable Plan (plan.hpp). Defaults are LibreFang's.
//
// Thread-safety: plain values.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strowger::model {

// Where a value came from: 1-based line and column; line 0 = unknown.
struct SourcePos {
    std::string file;
    int line = 0;
    int column = 0;
};

// Persisted by name ("sequential", "fan_out", ...), never by number.
enum class StepMode { kSequential, kFanOut, kCollect, kConditional, kLoop };
enum class ErrorMode { kFail, kSkip, kRetry };

std::string_view StepModeName(StepMode mode);
std::string_view ErrorModeName(ErrorMode mode);

// Exponential backoff between retry attempts: delay(k) = min(max, initial * multiplier^(k-1)),
// then reduced by up to `jitter` (a fraction) at random.
// Persisted by name.
enum class BackoffKind { kConstant, kLinear, kExponential };
enum class OnError { kFail, kContinue, kSkip, kFallback, kEmitSignal };
std::string_view BackoffKindName(BackoffKind kind);
std::string_view OnErrorName(OnError on_error);

// Exponential (the linear form's) backoff: as above. Constant: initial_delay_ms every time;
// linear: initial_delay_ms * k; both capped at max_delay_ms and reduced by the jitter.
struct BackoffSpec {
    int64_t initial_delay_ms = 100;
    int64_t max_delay_ms = 2000;
    double multiplier = 2.0;
    double jitter = 0.2;
    BackoffKind kind = BackoffKind::kExponential;
};

struct AgentLimits {
    std::optional<int64_t> max_tokens;           // per step, input + output
    std::optional<double> max_cost_usd;          // per step
    std::optional<int64_t> max_tool_calls;       // per step
    std::optional<int64_t> max_tokens_per_hour;  // rolling hourly quota for the agent
};

// Sandbox limits for an agent's shell tool (unset = the engine's defaults).
struct SandboxSettings {
    std::optional<int64_t> cpu_seconds;
    std::optional<int64_t> memory_mb;
    std::optional<int64_t> max_processes;
    std::optional<int64_t> max_open_files;
    std::optional<int64_t> max_file_size_mb;
    std::optional<int64_t> timeout_secs;
    std::optional<int64_t> max_output_kb;
};

struct AgentSpec {
    std::string name;
    std::string id;  // optional UUID-like id, for LibreFang's `agent_id` references
    std::string description;
    std::string model;  // "provider:model", e.g. "openai:gpt-4o-mini", "scripted:replies.yaml"
    std::string system_prompt;
    std::vector<std::string> tools;  // allowlist; empty = no tools
    // Tools (of `tools`) that pause the run for a human decision before each call.
    std::vector<std::string> require_approval;
    bool network = false;                 // shell may use the network
    std::vector<std::string> http_hosts;  // http_request allowlist ("api.github.com", "*.x.org")
    bool private_addresses = false;       // http_request may reach loopback/private addresses
    SandboxSettings sandbox;
    int64_t max_turns = 8;
    std::optional<double> temperature;
    std::optional<int64_t> max_output_tokens;
    AgentLimits limits;
    // Directory that relative paths in this agent (e.g. a scripted file) are resolved against.
    std::string base_dir;
    SourcePos pos;
};

struct StepSpec {
    std::string name = "step";
    std::string agent_name;  // LibreFang `agent_name`
    std::string agent_id;    // LibreFang `agent_id`
    std::string prompt = "{{input}}";
    StepMode mode = StepMode::kSequential;
    int64_t timeout_ms = 120'000;  // from `timeout_secs` (or the `timeout_ms` extension)
    ErrorMode error_mode = ErrorMode::kFail;
    int64_t max_retries = 3;
    std::string output_var;
    std::string condition;       // mode conditional
    int64_t max_iterations = 5;  // mode loop
    std::string until;           // mode loop
    BackoffSpec retry;
    std::vector<std::string> depends_on;  // extension: turns the list into a DAG
    bool has_depends_on = false;
    // Positions are in Workflow::positions ("steps[2]", "steps[2].agent_name").
};

// Per-tool settings of an MCP server.
struct McpToolSettings {
    std::string safety;  // "" = the server's default
    bool require_approval = false;
};

// An MCP server (stdio) whose tools agents may use as "<server>/<tool>".
struct McpServerSpec {
    std::string name;
    std::string command;
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    bool sandboxed = false;              // run it inside bubblewrap
    bool network = true;                 // when sandboxed
    std::string safety = "destructive";  // default safety class of its tools
    std::map<std::string, McpToolSettings> tools;
    std::string base_dir;  // the command and its relative paths resolve against it
    SourcePos pos;
};

// Budgets for a whole run (agents have their own per step).
struct RunLimits {
    std::optional<int64_t> max_tokens;
    std::optional<double> max_cost_usd;
    std::optional<int64_t> max_tool_calls;
};

// Source positions by field path ("steps[2].mode"), compactly: a workflow records one for every
// field it reads (400,000 for 100,000 steps), and a std::map of them took 60 MB. An open-address
// table of 20-byte slots over one string of all the paths.
class FieldPositions {
  public:
    // Records `pos` for `path` unless `path` has a position already.
    void Record(std::string_view path, const SourcePos& pos);
    // The position recorded for `path`, if any.
    std::optional<SourcePos> Find(std::string_view path) const;
    size_t size() const { return used_; }

  private:
    struct Slot {
        uint32_t path_begin = 0;  // in paths_
        uint32_t path_size = kEmpty;
        uint32_t file = 0;  // in files_
        int32_t line = 0;
        int32_t column = 0;
    };
    static constexpr uint32_t kEmpty = UINT32_MAX;

    size_t SlotOf(std::string_view path) const;  // its slot, or the empty one it would take
    void Grow();

    std::string paths_;
    std::vector<std::string> files_;
    std::vector<Slot> slots_;  // a power of two in size, at most half full
    size_t used_ = 0;
};

// The longest timeout or retry delay a workflow may give: a year, in milliseconds (a longer one
// is a typo, and one near 2^63 ns cannot be armed as a timer).
inline constexpr int64_t kMaxDurationMs = 365LL * 24 * 3600 * 1000;

// ---- The DAG form (CMDC's WorkflowSpec; docs/formats/workflow.md "DAG form"). ----

// A node's execution policy; unset fields take the defaults of docs/formats/workflow.md.
struct PolicySpec {
    std::optional<int64_t> retries;     // attempts after the first
    std::optional<int64_t> timeout_ms;  // per attempt
    std::optional<BackoffKind> backoff;
    std::optional<int64_t> initial_delay_ms;
    std::optional<int64_t> max_delay_ms;
    std::optional<OnError> on_error;
    std::optional<std::string> fallback_output;  // on_error: fallback
    std::string signal;                          // on_error: emit_signal
};

struct NodeSpec {
    std::string id;
    std::string type;           // as written ("human_approval" normalises to "human_task" later)
    boost::json::value config;  // an object (or null); positions under "nodes[i].config"
    PolicySpec policy;
};

struct EdgeSpec {
    std::string from;
    std::string to;
    std::string branch;  // carries only if the source's branch (or signal) is this
    std::string signal;  // the same, spelled as a signal
    std::string label;   // for display
    boost::json::value metadata;
};

// A typed input of the workflow (`inputs:`), checked before a run is created.
struct InputSpec {
    std::string name;
    std::string type = "string";  // string | number | boolean | object | array
    bool required = false;
    std::optional<boost::json::value> default_value;
    std::string description;
};

struct Workflow {
    std::string name;
    std::string description;
    // Agents by name, in the order they were declared (inline first, then agent files).
    std::vector<AgentSpec> agents;
    std::vector<StepSpec> steps;
    // The DAG form: `nodes` + `edges` instead of `steps`.
    bool dag = false;
    std::vector<NodeSpec> nodes;
    std::vector<EdgeSpec> edges;
    std::string output;         // the node whose output is the run's ("" = the sinks')
    std::string default_model;  // for agent nodes that name no agent and no model
    PolicySpec default_policy;  // `policies.default`
    // CMDC's WorkflowSpec envelope: kept in the snapshot, not interpreted.
    std::string schema_version, workflow_id, version, mode;
    boost::json::value metadata;
    // Typed inputs (both forms); empty = the input is text.
    std::vector<InputSpec> inputs;
    std::vector<McpServerSpec> mcp_servers;
    RunLimits limits;
    // Where tools read and write: a directory (relative to the workflow file) shared by every
    // run, or "" for a fresh directory per run.
    std::string workspace;
    // A standing agent's turn (docs/formats/agents_cron_state_v1.md): the run's input is a
    // JSON object whose `history` (and `summary`) are the session's earlier messages, given to
    // the agent before its prompt.
    bool session = false;
    std::string source_file;  // as given by the user
    std::string base_dir;     // directory of source_file
    // Source position of every field that was read, by field path ("steps[2].mode",
    // "agents.writer.model"); validation uses it to point at the offending text.
    FieldPositions positions;

    // Position of `path`, else of its closest recorded parent, else of the file itself.
    SourcePos PositionOf(const std::string& path) const;

    const AgentSpec* FindAgentByName(std::string_view name) const;
    const AgentSpec* FindAgentById(std::string_view id) const;
    const McpServerSpec* FindMcpServer(std::string_view name) const;
    // The agent a step refers to (by name, else by id), or nullptr.
    const AgentSpec* ResolveAgent(const StepSpec& step) const;
};

}  // namespace strowger::model
