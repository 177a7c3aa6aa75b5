// A client for MCP servers over stdio (JSON-RPC 2.0, newline-delimited messages): initialize,
// tools/list, tools/call. Each server declared in a workflow becomes one McpClient per process,
// started on first use; its tools are registered as "<server>/<tool>".
//
// Protocol: we ask for revision 2025-06-18 and accept a server answering 2025-03-26 or
// 2024-11-05 (anything else fails the start with kFailedPrecondition). We declare no client
// capabilities: a server's ping is answered, its other requests (sampling, roots, elicitation)
// get JSON-RPC error -32601; its notifications are ignored. A request whose deadline passes is
// abandoned (notifications/cancelled is sent; a late response is dropped).
//
// Errors: a message over 8 MiB either way fails its request with kResourceExhausted (the
// session goes on); a JSON-RPC error response maps -32602 to kInvalidArgument, -32601 to
// kUnimplemented, -32002 to kNotFound, -32700/-32600/-32603 to kInternal and the rest to
// kUnknown. Messages name the server.
//
// A server that exits (or closes its stdout, or whose pipes fail) fails every request then
// pending with kUnavailable "MCP server '<name>' exited: <tail of its stderr>". Those calls are
// not retried: a tool call may have had side effects (the engine's reconciliation decides).
// The next CallTool or ListTools restarts the server from the same spec (command, arguments,
// environment, sandbox), repeats the initialize handshake, refreshes the tool list (tools/list;
// see LastToolList) and then makes its own request. Calls arriving meanwhile wait for that one
// restart (each until its own deadline); if it fails (the command is missing, the handshake or
// tools/list fails, or kMcpRestartTimeout passes) each of them gets its error, and the next call
// tries again. At most kMcpMaxRestarts (3) restarts happen in any kMcpRestartWindow (60 s;
// McpServerSpec::restart_window): beyond that, calls fail at once with kUnavailable
// "MCP server '<name>' exited 4 times in 60s; not restarting: <tail of its stderr>", until the
// oldest of those restarts is a window old. Each restart is logged at warn level ("MCP server
// '<name>' exited; restarting (restart k of 3 in 60s)"; never arguments or environment).
// After Shutdown nothing restarts: pending and later calls fail with kUnavailable
// "MCP server '<name>' was shut down".
//
// Thread-safety: calls may be made concurrently; requests are matched to responses by id.
// Everything a client does runs on its own strand of the executor given to StartMcpClient.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/deadline.hpp"
#include "core/result.hpp"
#include "tools/sandbox/sandbox.hpp"
#include "tools/tool.hpp"

namespace strowger::tools::mcp {

// Restarting a server that exited (see "A server that exits" above): at most kMcpMaxRestarts
// restarts in any window of kMcpRestartWindow; a restart (start, handshake and tools/list) gives
// up after kMcpRestartTimeout.
inline constexpr int kMcpMaxRestarts = 3;
inline constexpr std::chrono::milliseconds kMcpRestartWindow = std::chrono::seconds(60);
inline constexpr std::chrono::milliseconds kMcpRestartTimeout = std::chrono::seconds(120);

struct McpServerSpec {
    std::string name;  // as declared in the workflow
    std::string command;
    std::vector<std::string> args;
    std::map<std::string, std::string> env;  // added to a scrubbed environment
    std::filesystem::path working_dir;
    bool sandboxed = false;  // run the server inside bubblewrap
    bool network = false;    // when sandboxed: whether it may use the network
    SafetyClass default_safety = SafetyClass::kDestructive;
    std::map<std::string, SafetyClass> tool_safety;  // per-tool overrides
    // The restart limit's window (tests shorten it) and the clock that measures it (nullptr:
    // Clock::Real(); a fake clock must outlive the client). Only SteadyNow is used.
    std::chrono::milliseconds restart_window = kMcpRestartWindow;
    const Clock* clock = nullptr;
    // Starts the server's process (each start and restart); null: sandbox::StartProcess. The MCP
    // fuzzer (tests/fuzz/mcp_fuzz.cpp) puts a scripted process here.
    std::function<Result<std::unique_ptr<sandbox::Process>>(Executor, sandbox::ProcessSpec)>
        start_process;
};

struct McpToolInfo {
    std::string name;  // the server's name for it
    std::string description;
    std::string input_schema;  // JSON Schema text
};

class McpClient {
  public:
    virtual ~McpClient() = default;
    virtual const McpServerSpec& spec() const = 0;
    // All the server's tools, following tools/list's nextCursor to the last page.
    virtual Awaitable<Result<std::vector<McpToolInfo>>> ListTools(Deadline deadline) = 0;
    // Calls `tool` with `arguments` (JSON object text; empty or blank means {}; anything but an
    // object is kInvalidArgument). `idempotency_key` goes in params._meta as
    // "strowger/idempotency_key" and "idempotencyKey". The content blocks become one text,
    // joined by newlines: text as is, "[image: <mime>]", "[audio: <mime>]", "[resource: <uri>]"
    // (embedded or linked); structuredContent as JSON when there are no blocks.
    // A server-side tool error (isError) is a ToolResult with is_error; a protocol error, a
    // dead server or a timeout is an error Result.
    virtual Awaitable<Result<ToolResult>> CallTool(std::string tool, std::string arguments,
                                                   std::string idempotency_key,
                                                   Deadline deadline) = 0;
    // The tools as of the client's last successful tools/list: the newest ListTools answer or
    // the refresh after a restart, whichever came last; empty before either. Callable from any
    // thread.
    virtual std::vector<McpToolInfo> LastToolList() const = 0;
    // Kills the server; pending and later calls fail with kUnavailable, and the server is never
    // restarted. Also done when the client is destroyed. Callable from any thread.
    virtual void Shutdown() = 0;
};

// Starts the server (through sandbox::StartProcess, with a scrubbed environment: PATH, HOME,
// locale, TZ, TMPDIR, USER plus spec.env) and completes the initialize handshake
// (initialize, then notifications/initialized) by `deadline`. A restart (see "A server that
// exits") starts the process from a thread running `executor`, whose lifetime then bounds the
// server's (StartProcess ties the child's parent-death signal to the forking thread).
Awaitable<Result<std::shared_ptr<McpClient>>> StartMcpClient(Executor executor, McpServerSpec spec,
                                                             Deadline deadline);

// Adapts one of a client's tools to the Tool interface, named "<server>/<tool>".
std::shared_ptr<Tool> MakeMcpTool(std::shared_ptr<McpClient> client, McpToolInfo info);

}  // namespace strowger::tools::mcp
