// What the `--server` forms of the commands share: connecting to the daemon (printing why
// not) and turning its errors into the CLI's exit codes.
#pragma once

#include <memory>
#include <string>

#include "cli/api_client.hpp"

namespace strowger::cli {

// Connects to `server` with the token from $STROWGER_TOKEN or the token file; prints the
// error and returns null if it cannot.
std::unique_ptr<ApiClient> ConnectOrReport(const std::string& server);
// Prints `error` and returns the exit code for it: 2 for what the caller got wrong (400, 404,
// 409, 422), 5 for the rest (cannot connect, 5xx, 401/403).
int ReportRemoteError(const Error& error);

}  // namespace strowger::cli
