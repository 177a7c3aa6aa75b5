// The built-in tools (SPEC §4): shell, read_file, write_file, list_dir, grep, http_request.
//
//   shell         destructive       `sh -c <command>` in the bubblewrap sandbox: the call's
//                                   workspace writable, network only if granted, the grants'
//                                   limits; env PATH, HOME=<workspace>, LANG,
//                                   STROWGER_IDEMPOTENCY_KEY. Reports exit code, stdout and
//                                   stderr (is_error when the exit code is not 0 or the tree was
//                                   killed).
//   read_file     read_only         a file of the workspace, up to 1 MiB (longer files are cut,
//                                   with a note)
//   write_file    idempotent_write  creates or replaces a file of the workspace (and its parent
//                                   directories); at most the grants' max_file_size_bytes
//   list_dir      read_only         the entries of a directory of the workspace
//   grep          read_only         a regular expression (Perl syntax) over the files under a
//                                   path of the workspace: "file:line: text"
//   http_request  destructive       one HTTP request to a host in the grants' http_hosts
//                                   (see http_request_tool.hpp)
//
// The file tools never leave the workspace (tools/builtin/workspace_files.hpp) and run their
// file system calls on a small thread pool, not on the caller's I/O thread. Bad arguments are
// kInvalidArgument naming the field; see each tool's spec() for its JSON Schema.
//
// Thread-safety: every tool may be called concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "providers/http/http_client.hpp"
#include "tools/sandbox/sandbox.hpp"
#include "tools/tool.hpp"

namespace strowger::tools::builtin {

inline constexpr size_t kMaxReadBytes = size_t{1} << 20;

std::shared_ptr<Tool> MakeShellTool(std::shared_ptr<sandbox::Sandbox> sandbox);
std::shared_ptr<Tool> MakeReadFileTool();
std::shared_ptr<Tool> MakeWriteFileTool();
std::shared_ptr<Tool> MakeListDirTool();
std::shared_ptr<Tool> MakeGrepTool();

struct HttpRequestToolOptions {
    // The response body shown to the model is cut here (with a note); the HttpClient's own
    // max_response_body_bytes bounds what is downloaded.
    size_t max_body_bytes = size_t{1} << 20;
    size_t max_request_body_bytes = size_t{1} << 20;
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // and the call's deadline
};
std::shared_ptr<Tool> MakeHttpRequestTool(std::shared_ptr<http::HttpClient> client,
                                          HttpRequestToolOptions options = {});

}  // namespace strowger::tools::builtin

namespace strowger::tools {

// Registers the built-in tools. Without a sandbox, shell is not registered; without an HTTP
// client, http_request is not.
void RegisterBuiltinTools(ToolRegistry& registry, std::shared_ptr<sandbox::Sandbox> sandbox,
                          std::shared_ptr<http::HttpClient> client);

}  // namespace strowger::tools
