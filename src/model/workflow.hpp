// The workflow as the user wrote it (SPEC §3), after parsing and before compilation.
//
// A Workflow is produced by LoadWorkflow (loader.hpp), checked by Validate (validate.hpp) and
// compiled into an immutable Plan (plan.hpp). Defaults are LibreFang's.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
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
struct BackoffSpec {
    int64_t initial_delay_ms = 100;
    int64_t max_delay_ms = 2000;
    double multiplier = 2.0;
    double jitter = 0.2;
};

struct AgentLimits {
    std::optional<int64_t> max_tokens;           // per step, input + output
    std::optional<double> max_cost_usd;          // per step
    std::optional<int64_t> max_tool_calls;       // per step
    std::optional<int64_t> max_tokens_per_hour;  // rolling hourly quota for the agent
};

struct AgentSpec {
    std::string name;
    std::string id;  // optional UUID-like id, for LibreFang's `agent_id` references
    std::string description;
    std::string model;  // "provider:model", e.g. "openai:gpt-4o-mini", "scripted:replies.yaml"
    std::string system_prompt;
    std::vector<std::string> tools;  // allowlist; empty = no tools
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
    SourcePos pos;
    SourcePos agent_pos;  // of the agent_name / agent_id field, for "Agent not found"
};

struct Workflow {
    std::string name;
    std::string description;
    // Agents by name, in the order they were declared (inline first, then agent files).
    std::vector<AgentSpec> agents;
    std::vector<StepSpec> steps;
    std::string source_file;  // as given by the user
    std::string base_dir;     // directory of source_file
    // Source position of every field that was read, by field path ("steps[2].mode",
    // "agents.writer.model"); validation uses it to point at the offending text.
    std::map<std::string, SourcePos> positions;

    // Position of `path`, else of its closest recorded parent, else of the file itself.
    SourcePos PositionOf(const std::string& path) const;

    const AgentSpec* FindAgentByName(std::string_view name) const;
    const AgentSpec* FindAgentById(std::string_view id) const;
    // The agent a step refers to (by name, else by id), or nullptr.
    const AgentSpec* ResolveAgent(const StepSpec& step) const;
};

}  // namespace strowger::model
