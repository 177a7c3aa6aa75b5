// The pinned npm MCP servers the tests run against (@modelcontextprotocol/server-everything and
// server-filesystem, pinned in tests/mcp_servers/package-lock.json): installed into the build
// tree (<build>/mcp_servers) by the first test that needs them, once per lockfile, under a file
// lock so that test processes running in parallel (ctest -j) install them once.
//
// Used by the MCP client tests (src/tools/mcp/mcp_test.cpp) and the end-to-end agent tests
// (tests/integration/agent_cli_test.cpp). Needs node and npm on PATH and the npm registry the
// first time.
//
// Thread-safety: InstallMcpTestServers may be called from any thread or process at once.
#pragma once

#include <filesystem>
#include <string>

#include "core/result.hpp"

namespace strowger::testing {

// Installs the pinned servers with `npm ci` unless a stamp says this package-lock.json is
// already installed. Returns node_modules/.bin (it holds mcp-server-everything and
// mcp-server-filesystem); kUnavailable (with npm's log) if npm fails.
Result<std::filesystem::path> InstallMcpTestServers();

// The entry script of server-everything below the node_modules/.bin that
// InstallMcpTestServers returned (run it as `node <script> stdio`).
std::filesystem::path EverythingServerScript(const std::filesystem::path& bin);

// The absolute path of `program` found in $PATH, or `program` itself.
std::string FindInPath(const std::string& program);

}  // namespace strowger::testing
