// What the `--server` forms of the commands share: connecting to the daemon (printing why
// not) and turning its errors into the CLI's exit codes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/api_client.hpp"

namespace strowger::cli {

// The help of every --server option.
inline constexpr char kServerHelp[] =
    "Through this daemon's API (default: $STROWGER_SERVER unless --store)";

// Connects to `server` with the token from $STROWGER_TOKEN or the token file; prints the
// error and returns null if it cannot.
std::unique_ptr<ApiClient> ConnectOrReport(const std::string& server);

// The daemon a command talks to: --server, else $STROWGER_SERVER unless --store was given;
// "" = the store, as without a daemon.
std::string RemoteServer(const std::string& server_flag, const std::string& store_flag);

// The string `key` of a daemon's JSON answer; "" when it is missing or not a string.
std::string StrField(const json::object& o, std::string_view key);

// `text` percent-encoded for one path segment or query value (RFC 3986 unreserved kept).
std::string PercentEncode(std::string_view text);

// The --server forms of the store commands (remote_commands.cpp): the same output and exit
// codes. Those that continue a run follow its event stream with the live display until it
// ends or stops.
int RemoteRunsList(const std::string& server, const std::vector<std::string>& statuses,
                   const std::string& workflow, int64_t limit, const std::string& before,
                   bool json_output);
int RemoteRunsShow(const std::string& server, const std::string& run_id, bool json_output);
int RemoteRunsEvents(const std::string& server, const std::string& run_id,
                     const std::vector<std::string>& types, int64_t after, int64_t limit,
                     bool follow, bool json_output);
int RemoteControl(const std::string& server, const std::string& run_id, bool cancel,
                  const std::string& reason);
// `action`: "resume", "retry" (with `step`) or "rerun".
int RemoteContinue(const std::string& server, const std::string& run_id, const std::string& action,
                   const std::string& step, const std::string& progress, bool json_output);
int RemoteDecide(const std::string& server, const std::string& run_id, std::string task_id,
                 const std::string& decision, const std::string& comment, const std::string& output,
                 bool no_resume, const std::string& progress, bool json_output,
                 const std::string& idempotency_key = "");
int RemoteTasksList(const std::string& server, const std::string& run_id,
                    const std::string& assignee, bool json_output);
// Registers FILE (or makes it the next version of its workflow), starts it and follows it.
int RemoteRun(const std::string& server, const std::string& file, const std::string& input,
              const std::string& idempotency_key, const std::string& progress, bool json_output);

// `audit verify|export|pubkey|anchor --server` (remote_audit.cpp). `anchors_file`: the text of
// --anchors ("" = none), read by the caller.
int RemoteAuditVerify(const std::string& server, const std::vector<std::string>& run_ids, bool all,
                      const std::string& anchors_text);
int RemoteAuditExport(const std::string& server, const std::string& run_id,
                      const std::string& output, const std::string& definition_file);
int RemoteAuditPubkey(const std::string& server);
int RemoteAuditAnchor(const std::string& server, const std::vector<std::string>& run_ids, bool all);

}  // namespace strowger::cli
