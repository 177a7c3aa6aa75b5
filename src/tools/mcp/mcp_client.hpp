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
// Errors: the server exiting or closing its stdout fails every pending and later request with
// kUnavailable "MCP server '<name>' exited: <tail of its stderr>"; a message over 8 MiB either
// way fails its request with kResourceExhausted (the session goes on); a JSON-RPC error
// response maps -32602 to kInvalidArgument, -32601 to kUnimplemented, -32002 to kNotFound,
// -32700/-32600/-32603 to kInternal and the rest to kUnknown. Messages name the server.
//
// Thread-safety: calls may be made concurrently; requests are matched to responses by id.
// Everything a client does runs on its own strand of the executor given to StartMcpClient.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/deadline.hpp"
#include "core/result.hpp"
#include "tools/sandbox/sandbox.hpp"
#include "tools/tool.hpp"

namespace strowger::tools::mcp {

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
    // Kills the server; pending and later calls fail with kUnavailable. Also done when the
    // client is destroyed. Callable from any thread.
    virtual void Shutdown() = 0;
};

// Starts the server (through sandbox::StartProcess, with a scrubbed environment: PATH, HOME,
// locale, TZ, TMPDIR, USER plus spec.env) and completes the initialize handshake
// (initialize, then notifications/initialized) by `deadline`.
Awaitable<Result<std::shared_ptr<McpClient>>> StartMcpClient(Executor executor, McpServerSpec spec,
                                                             Deadline deadline);

// Adapts one of a client's tools to the Tool interface, named "<server>/<tool>".
std::shared_ptr<Tool> MakeMcpTool(std::shared_ptr<McpClient> client, McpToolInfo info);

}  // namespace strowger::tools::mcp
