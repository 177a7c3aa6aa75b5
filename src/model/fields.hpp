// The fields of every mapping of a workflow file, one table each: the loader's unknown-field
// check reads them (Reader::ForEachField), and so does the JSON Schema of the format
// (WorkflowJsonSchema, `strowger schema`), so the two cannot drift. A field added to a table
// without a type in schema.cpp fails model_test.
#pragma once

#include <string_view>
#include <vector>

namespace strowger::model::fields {

using Table = std::vector<std::string_view>;

inline const Table kWorkflow = {
    "name",        "description", "agents",        "steps",       "nodes",    "edges",
    "id",          "version",     "created_at",    "mcp_servers", "limits",   "workspace",
    "inputs",      "output",      "default_model", "policies",    "metadata", "schema_version",
    "workflow_id", "mode",        "base_dir",      "session"};
inline const Table kAgent = {
    "name",      "id",          "description",       "model",  "system_prompt", "tools",
    "max_turns", "temperature", "max_output_tokens", "limits", "base_dir",      "require_approval",
    "network",   "http_hosts",  "private_addresses", "sandbox"};
inline const Table kAgentLimits = {"max_tokens", "max_cost_usd", "max_tool_calls",
                                   "max_tokens_per_hour"};
inline const Table kSandbox = {"cpu_seconds",    "memory_mb",        "max_processes",
                               "max_open_files", "max_file_size_mb", "timeout_secs",
                               "max_output_kb"};
inline const Table kRunLimits = {"max_tokens", "max_cost_usd", "max_tool_calls"};
inline const Table kMcpServer = {"command", "args",   "env",   "sandboxed",
                                 "network", "safety", "tools", "base_dir"};
inline const Table kMcpTool = {"safety", "require_approval"};
inline const Table kBackoff = {"initial_delay_ms", "max_delay_ms", "multiplier", "jitter"};
inline const Table kStep = {"name",           "agent_name",  "agent_id",     "agent",
                            "prompt",         "mode",        "timeout_secs", "timeout_ms",
                            "error_mode",     "max_retries", "output_var",   "condition",
                            "max_iterations", "until",       "retry",        "depends_on"};
inline const Table kPolicy = {"retries",      "timeout_ms", "backoff",         "initial_delay_ms",
                              "max_delay_ms", "on_error",   "fallback_output", "signal"};
inline const Table kPolicies = {"default"};
inline const Table kNode = {"id", "type", "config", "policy", "label", "metadata"};
inline const Table kEdge = {"from", "to", "branch", "signal", "label", "metadata"};
inline const Table kInput = {"name", "type", "required", "default", "description"};

// The values some fields take.
inline constexpr std::string_view kModes[] = {"sequential", "fan_out", "collect", "conditional",
                                              "loop"};
inline constexpr std::string_view kErrorModes[] = {"fail", "skip", "retry"};
inline constexpr std::string_view kSafetyClasses[] = {"read_only", "idempotent_write",
                                                      "destructive"};
inline constexpr std::string_view kBackoffKinds[] = {"constant", "linear", "exponential"};
inline constexpr std::string_view kOnErrors[] = {"fail", "continue", "skip", "fallback",
                                                 "emit_signal"};
inline constexpr std::string_view kInputTypes[] = {"string", "number", "boolean", "object",
                                                   "array"};

}  // namespace strowger::model::fields
