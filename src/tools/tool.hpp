// Tools: what an agent may call between model turns (SPEC §4).
//
// A Tool has a name, a JSON-Schema for its arguments (shown to the model), a safety class and
// a Call. The engine decides whether a call may happen (the agent's allowlist, approvals,
// budgets) and records tool.call / tool.result in the ledger; a Tool only executes.
//
// Errors: Call returns an error Result when the call could not be carried out (bad arguments,
// a path outside the workspace, the sandbox refused, a timeout); the engine reports it to the
// model as a failed tool result and the agent loop goes on. ToolResult::is_error is for tools
// that ran and report failure in their own output (a shell command's non-zero exit).
//
// Thread-safety: Call may be invoked concurrently (parallel tool calls of one turn).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/deadline.hpp"
#include "core/result.hpp"
#include "providers/provider.hpp"

namespace strowger::tools {

// How much harm a call can do; ordered. Persisted by name (SafetyClassName).
enum class SafetyClass {
    kReadOnly = 0,         // no effect outside the call (read_file, list_dir, grep)
    kIdempotentWrite = 1,  // effects, but repeating the same call changes nothing more
    kDestructive = 2,      // effects that repeat (shell, most MCP tools unless declared)
};
std::string_view SafetyClassName(SafetyClass safety);
std::optional<SafetyClass> SafetyClassFromName(std::string_view name);

// Limits of the bubblewrap sandbox for one process tree (tools/sandbox/sandbox.hpp).
struct SandboxLimits {
    int64_t cpu_seconds = 30;                         // RLIMIT_CPU
    int64_t memory_bytes = int64_t{1} << 30;          // RLIMIT_AS
    int64_t max_processes = 64;                       // process tree size
    int64_t max_open_files = 256;                     // RLIMIT_NOFILE
    int64_t max_file_size_bytes = int64_t{64} << 20;  // RLIMIT_FSIZE
    int64_t wall_timeout_ms = 60'000;                 // then the whole tree is killed
    int64_t max_output_bytes = 64 << 10;              // stdout and stderr each; the rest is dropped
};

// What the agent making the call is allowed beyond its tool allowlist.
struct ToolGrants {
    bool network = false;                 // shell: network namespace shared with the host
    std::vector<std::string> http_hosts;  // http_request: allowed hosts ("*.example.com" ok)
    bool private_addresses = false;       // http_request: loopback/private/metadata allowed
    SandboxLimits sandbox;
};

// Everything a call needs to know about where it happens.
struct ToolContext {
    std::string run_id;
    std::string node;
    int64_t attempt = 1;
    int64_t call_index = 1;  // 1-based within the attempt
    // "<run>/<node>/<attempt>/<call>": stable across retries of delivery, unique per call.
    // Passed to tools as STROWGER_IDEMPOTENCY_KEY, HTTP Idempotency-Key, MCP _meta.
    std::string idempotency_key;
    std::filesystem::path workspace;  // absolute; the only place tools may write
    Deadline deadline = Deadline::Never();
    ToolGrants grants;
};

struct ToolResult {
    std::string content;  // what the model sees
    bool is_error = false;
};

class Tool {
  public:
    virtual ~Tool() = default;
    // Name, description and parameters JSON Schema, as sent to the model.
    virtual const providers::ToolSpec& spec() const = 0;
    virtual SafetyClass safety() const = 0;
    // `arguments` is the JSON text the model produced.
    virtual Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) = 0;
};

// Tools by name. Built-in tools are registered at start; MCP tools ("server/tool") when their
// server is started for a run.
//
// Thread-safety: all methods are thread-safe.
class ToolRegistry {
  public:
    void Register(std::shared_ptr<Tool> tool);
    std::shared_ptr<Tool> Find(std::string_view name) const;
    std::vector<std::string> Names() const;

  private:
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<Tool>, std::less<>> tools_;  // GUARDED_BY(mutex_)
};

// The built-in tool names, for validation before any tool is constructed.
const std::vector<std::string>& BuiltinToolNames();
// The agent memory's tools (memory_get, memory_set, memory_list, memory_delete;
// automation/memory.hpp): registered wherever a store is (strowger run, serve), so workflows
// may name them.
const std::vector<std::string>& MemoryToolNames();

}  // namespace strowger::tools
