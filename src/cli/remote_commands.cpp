// The `--server` forms of `runs`, `approve`/`reject`, `tasks` and `run`: the same output and
// exit codes as on the store, through the daemon's API. Runs that continue (resume, retry,
// rerun, a decision, a new run) are followed through the run's event stream with the same
// live display; each event is verified against the chain so far before it is shown.
#include <boost/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "cli/remote.hpp"
#include "core/strings.hpp"
#include "ledger/chain.hpp"
#include "ledger/event.hpp"
#include "model/loader.hpp"

namespace strowger::cli {
namespace {

using ledger::RunStatus;

std::string ShortTime(std::string_view rfc3339) {
    if (rfc3339.size() < 19) return "-";
    return std::string(rfc3339.substr(0, 19)) + "Z";
}

RunStatus StatusOf(const std::string& name) {
    return ledger::RunStatusFromName(name);
}

void PrintEvent(const ledger::Event& event) {
    std::string where = event.node.empty()   ? ""
                        : event.attempt <= 0 ? event.node
                                             : event.node + "#" + std::to_string(event.attempt);
    std::cout << Pad(std::to_string(event.seq), 6) << FormatRfc3339(event.time).substr(11, 15)
              << "  " << Pad(event.type_name, 26) << Pad(where, 22) << EventSummary(event) << "\n";
}

// Follows a run's event stream with the live display until the run ends or stops (paused,
// waiting for a decision), then prints its outcome as ExecuteWithProgress does. Returns the
// exit code.
int FollowAndReport(ApiClient& client, const std::string& run_id, const std::string& progress_mode,
                    bool json_output, bool existing = false) {
    std::optional<ProgressDisplay> progress;
    bool live = StderrIsTerminal();
    if (progress_mode == "always" || (progress_mode == "auto" && live)) {
        // On the client's loop: it redraws while the stream is read.
        progress.emplace(client.executor(),
                         live ? ProgressDisplay::Mode::kLive : ProgressDisplay::Mode::kLines);
    }
    // Verified as they come: the chain so far, from the first event.
    ledger::ChainHead head;
    Status broken = OkStatus();
    auto followed =
        client.Follow("/api/runs/" + run_id + "/events", [&](const http::SseEvent& sse) -> bool {
            if (sse.event == "delta") {
                if (progress) {
                    auto parsed = ParseJson(sse.data);
                    if (parsed && parsed->is_object()) {
                        progress->OnDelta(run_id, JsonString(parsed->as_object(), "node"),
                                          JsonString(parsed->as_object(), "text"));
                    }
                }
                return true;
            }
            if (sse.event == "end") return true;
            if (sse.event == "error") {
                broken = DataLossError("run " + run_id + ": " + std::string(sse.data));
                return false;
            }
            ledger::Event event;
            if (auto issue = ledger::VerifyNext(head, run_id, sse.data, &event)) {
                broken = DataLossError("run " + run_id + ": ledger does not verify at seq " +
                                       std::to_string(issue->seq) + ": " + issue->reason);
                return false;
            }
            if (progress) progress->OnEvent(event);
            // A stop: the run no longer executes (it waits for a human, or was paused).
            return event.type != ledger::EventType::kRunPaused &&
                   event.type != ledger::EventType::kHumanTaskCreated;
        });
    if (progress) progress->Stop();
    if (!broken) {
        PrintError(broken.error().message());
        return ToInt(ExitCode::kInternal);
    }
    if (!followed) return ReportError(followed.error());
    // The run as it stands once it stopped executing.
    auto waited = client.Checked("GET", "/api/runs/" + run_id + "/wait?timeout_ms=5000");
    if (!waited) return ReportError(waited.error());
    auto record = client.Checked("GET", "/api/workflows/runs/" + run_id);
    if (!record) return ReportError(record.error());
    json::object run = record->json.as_object();
    RunStatus status = StatusOf(StrField(run, "status"));
    if (existing) {
        std::cerr << "strowger: idempotency key already used by run " << run_id << " ("
                  << ledger::RunStatusName(status) << "); not started again\n";
    }
    if (json_output) {
        // The record `strowger run --json` prints (the daemon adds fields of its own).
        for (const char* extra :
             {"open_tasks", "workflow_id", "workflow_version", "trigger_source", "metadata"}) {
            run.erase(extra);
        }
        if (auto* nodes = run["nodes"].if_array()) {
            for (auto& node : *nodes) {
                for (const char* extra :
                     {"input_tokens", "output_tokens", "duration_ms", "output"}) {
                    node.as_object().erase(extra);
                }
            }
        }
        std::cout << json::serialize(run) << "\n";
    } else if (status == RunStatus::kCompleted && !existing) {
        std::string output = StrField(run, "output");
        std::cout << output;
        if (output.empty() || output.back() != '\n') std::cout << "\n";
    }
    std::cout.flush();
    std::string error = StrField(run, "error");
    switch (status) {
        case RunStatus::kFailed:
            PrintError("run " + run_id + " failed: " + error);
            break;
        case RunStatus::kCancelled:
            PrintError("run " + run_id + " cancelled");
            break;
        case RunStatus::kPaused:
            PrintError("run " + run_id + " is paused; continue it with `strowger runs resume " +
                       run_id + "`");
            break;
        case RunStatus::kWaiting:
        case RunStatus::kNeedsReconciliation:
            PrintError("run " + run_id + " waits for a human decision: `strowger approve " +
                       run_id + "` or `strowger reject " + run_id +
                       " --reason ...` (see `strowger runs show " + run_id + "`)");
            break;
        default:
            break;
    }
    return ToInt(ExitCodeFor(status));
}

}  // namespace

std::string PercentEncode(std::string_view text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            char buffer[4];
            std::snprintf(buffer, sizeof buffer, "%%%02X", c);
            out += buffer;
        }
    }
    return out;
}

std::string RemoteServer(const std::string& server_flag, const std::string& store_flag) {
    if (!server_flag.empty()) return server_flag;
    if (!store_flag.empty()) return {};
    return ServerUrl("");
}

// A run's totals for `runs list`, from the daemon's run record (zeros if it cannot be read).
RunTotals RemoteTotals(ApiClient& client, const std::string& run_id) {
    auto reply = client.Checked("GET", "/api/workflows/runs/" + PercentEncode(run_id));
    if (!reply || !reply->json.is_object()) return {};
    return RunTotalsOf(reply->json.as_object());
}

int RemoteRunsList(const std::string& server, const std::vector<std::string>& statuses,
                   const std::string& workflow, int64_t limit, const std::string& before,
                   bool json_output) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    for (const auto& name : statuses) {
        bool ok = false;
        ledger::RunStatusFromName(name, &ok);
        if (!ok) {
            PrintError("--status: unknown status \"" + name +
                       "\" (expected pending, running, paused, waiting, completed, failed, "
                       "cancelled, needs_reconciliation)");
            return ToInt(ExitCode::kUsage);
        }
    }
    std::string target = "/api/runs?limit=" + std::to_string(limit);
    if (!statuses.empty()) target += "&status=" + PercentEncode(Join(statuses, ","));
    if (!workflow.empty()) target += "&workflow=" + PercentEncode(workflow);
    if (!before.empty()) target += "&cursor=" + PercentEncode(before);
    auto reply = client->Checked("GET", target);
    if (!reply) return ReportError(reply.error());
    const auto& page = reply->json.as_object();
    std::string next = page.at("next_cursor").is_string()
                           ? std::string(page.at("next_cursor").as_string())
                           : std::string();
    if (json_output) {
        json::array runs;
        for (const auto& r : page.at("runs").as_array()) {
            const auto& o = r.as_object();
            json::object out;
            out["run_id"] = o.at("run_id");
            out["workflow"] = o.at("workflow");
            out["status"] = o.at("status");
            out["created_at"] = o.at("created_at");
            out["updated_at"] = o.at("updated_at");
            out["events"] = o.at("events");
            AddTotals(out, RemoteTotals(*client, StrField(o, "run_id")));
            runs.push_back(std::move(out));
        }
        json::object out;
        out["format"] = "strowger.runs_list.v1";
        out["runs"] = std::move(runs);
        out["next_cursor"] = next;
        std::cout << json::serialize(out) << "\n";
        return 0;
    }
    std::cout << RunsListHeader();
    for (const auto& r : page.at("runs").as_array()) {
        const auto& o = r.as_object();
        std::cout << RunsListRow(StrField(o, "run_id"), StrField(o, "status"),
                                 StrField(o, "workflow"), ShortTime(StrField(o, "created_at")),
                                 RemoteTotals(*client, StrField(o, "run_id")));
    }
    if (!next.empty()) std::cerr << "(more: --before " << next << ")\n";
    return 0;
}

int RemoteRunsShow(const std::string& server, const std::string& run_id, bool json_output) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    auto reply = client->Checked("GET", "/api/workflows/runs/" + PercentEncode(run_id));
    if (!reply) return ReportError(reply.error());
    json::object run = reply->json.as_object();
    if (json_output) {
        for (const char* extra :
             {"workflow_id", "workflow_version", "trigger_source", "metadata"}) {
            run.erase(extra);
        }
        if (auto* nodes = run["nodes"].if_array()) {
            for (auto& node : *nodes) {
                for (const char* extra :
                     {"input_tokens", "output_tokens", "duration_ms", "output"}) {
                    node.as_object().erase(extra);
                }
            }
        }
        // As `runs show --json` has it: its format first, open_tasks after every other field.
        json::value open = run["open_tasks"];
        run.erase("open_tasks");
        json::object ordered;
        ordered["format"] = kRunRecordFormat;
        for (auto& [key, value] : run) ordered[key] = std::move(value);
        ordered["open_tasks"] = std::move(open);
        std::cout << json::serialize(ordered) << "\n";
        return 0;
    }
    std::string status = StrField(run, "status");
    std::cout << "run:        " << StrField(run, "run_id") << "\n"
              << "workflow:   " << StrField(run, "workflow")
              << " (definition sha256:" << StrField(run, "definition_sha256").substr(0, 12)
              << "…)\n"
              << "status:     " << status << "\n";
    if (!StrField(run, "error").empty())
        std::cout << "error:      " << StrField(run, "error") << "\n";
    if (!StrField(run, "idempotency_key").empty())
        std::cout << "idempotency key: " << StrField(run, "idempotency_key") << "\n";
    if (!StrField(run, "rerun_of").empty())
        std::cout << "rerun of:   " << StrField(run, "rerun_of") << "\n";
    std::cout << "created:    " << ShortTime(StrField(run, "created_at"))
              << "   started: " << ShortTime(StrField(run, "started_at"))
              << "   ended: " << ShortTime(StrField(run, "completed_at")) << "\n"
              << "tokens:     " << JsonInt(run, "input_tokens") << " in, "
              << JsonInt(run, "output_tokens") << " out   cost: $" << StrField(run, "cost_usd")
              << "   model calls: " << JsonInt(run, "model_calls")
              << "   events: " << JsonInt(run, "events") << "\n"
              << "input:      " << Preview(StrField(run, "input"), 100) << "\n\n";
    std::cout << Pad("STEP", 24) << Pad("STATE", 14) << Pad("ATTEMPTS", 10) << Pad("TOKENS", 14)
              << Pad("TIME", 10) << "OUTPUT\n";
    for (const auto& value : run.at("nodes").as_array()) {
        const auto& node = value.as_object();
        int64_t in = JsonInt(node, "input_tokens"), out = JsonInt(node, "output_tokens");
        std::string tokens = in || out ? std::to_string(in) + "/" + std::to_string(out) : "-";
        char time[32];
        std::snprintf(time, sizeof time, "%.2fs",
                      static_cast<double>(JsonInt(node, "duration_ms")) / 1000.0);
        std::string node_status = StrField(node, "status");
        std::string what = node_status == "completed" ? Preview(StrField(node, "output"), 60)
                           : !StrField(node, "error").empty() ? Preview(StrField(node, "error"), 60)
                                                              : StrField(node, "skip_reason");
        std::string label = node_status;
        if (JsonInt(node, "iterations") > 0)
            label += " ×" + std::to_string(JsonInt(node, "iterations"));
        int64_t attempts = JsonInt(node, "attempts");
        std::cout << Pad(StrField(node, "id"), 24) << Pad(label, 14)
                  << Pad(std::to_string(attempts), 10) << Pad(tokens, 14)
                  << Pad(attempts ? time : "-", 10) << what << "\n";
    }
    const auto& open = run.at("open_tasks").as_array();
    if (!open.empty()) {
        std::cout << "\nwaiting for a human decision (`strowger approve " << run_id
                  << " TASK` or `strowger reject " << run_id << " TASK --reason ...`):\n";
        for (const auto& value : open) {
            const auto& task = value.as_object();
            std::cout << "  " << StrField(task, "task_id") << "  " << StrField(task, "title")
                      << "\n";
            if (!StrField(task, "tool").empty())
                std::cout << "    tool:      " << StrField(task, "tool") << "\n";
            if (!StrField(task, "arguments").empty())
                std::cout << "    arguments: " << StrField(task, "arguments") << "\n";
        }
    }
    if (status == "completed") std::cout << "\noutput:\n" << StrField(run, "output") << "\n";
    return 0;
}

int RemoteRunsEvents(const std::string& server, const std::string& run_id,
                     const std::vector<std::string>& types, int64_t after, int64_t limit,
                     bool follow, bool json_output) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    std::string filter;
    if (!types.empty()) filter += "&type=" + PercentEncode(Join(types, ","));
    // The whole ledger is read and verified from its first event (as on the store); `after`
    // and `limit` only choose what is printed.
    ledger::ChainHead head;
    int64_t printed = 0;
    auto handle = [&](std::string_view line, const std::string& type) -> int {
        ledger::Event event;
        if (auto issue = ledger::VerifyNext(head, run_id, line, &event)) {
            PrintError("run " + run_id + ": ledger does not verify at seq " +
                       std::to_string(issue->seq) + ": " + issue->reason);
            return ToInt(ExitCode::kInternal);
        }
        if (event.seq <= after) return -1;
        bool wanted = types.empty();
        for (const auto& t : types) {
            if (t == type || (EndsWith(t, ".") && StartsWith(type, t))) wanted = true;
        }
        if (!wanted) return -1;
        if (limit > 0 && printed >= limit) return 0;
        ++printed;
        if (json_output) {
            std::cout << line << "\n";
        } else {
            PrintEvent(event);
        }
        return -1;
    };
    if (!follow) {
        int64_t cursor = 0;
        while (true) {
            auto reply =
                client->Checked("GET", "/api/runs/" + PercentEncode(run_id) +
                                           "/events?limit=10000&after=" + std::to_string(cursor));
            if (!reply) return ReportError(reply.error());
            const auto& page = reply->json.as_object();
            const auto& events = page.at("events").as_array();
            for (const auto& value : events) {
                // The canonical encoding of what was sent is the stored line itself.
                auto line = CanonicalJson(value);
                if (!line) return ReportError(line.error());
                int code = handle(*line, std::string(value.as_object().at("type").as_string()));
                if (code >= 0) {
                    std::cout.flush();
                    return code;
                }
            }
            int64_t next = JsonInt(page, "next_after");
            if (events.empty() || next <= cursor) break;
            cursor = next;
        }
        std::cout.flush();
        return 0;
    }
    int result = 0;
    auto followed = client->Follow("/api/runs/" + PercentEncode(run_id) + "/events",
                                   [&](const http::SseEvent& sse) -> bool {
                                       if (sse.event == "delta" || sse.event == "end") return true;
                                       int code = handle(sse.data, std::string(sse.event));
                                       std::cout.flush();
                                       if (code >= 0) {
                                           result = code;
                                           return false;
                                       }
                                       return true;
                                   });
    if (!followed) return ReportError(followed.error());
    return result;
}

int RemoteControl(const std::string& server, const std::string& run_id, bool cancel,
                  const std::string& reason) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    json::object body;
    if (!reason.empty()) body["reason"] = reason;
    auto reply = client->Checked(
        "POST", "/api/runs/" + PercentEncode(run_id) + (cancel ? "/cancel" : "/pause"),
        json::serialize(body));
    if (!reply) return ReportError(reply.error());
    if (StrField(reply->json.as_object(), "result") == "requested") {
        std::cout << "run " << run_id << ": " << (cancel ? "cancel" : "pause")
                  << " requested; the process executing it applies it "
                  << (cancel ? "at once" : "at the next step boundary") << "\n";
    } else {
        std::cout << "run " << run_id << ": " << (cancel ? "cancelled" : "paused") << "\n";
    }
    return 0;
}

int RemoteContinue(const std::string& server, const std::string& run_id, const std::string& action,
                   const std::string& step, const std::string& progress, bool json_output) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    json::object body;
    if (!step.empty()) body["step"] = step;
    auto reply = client->Checked("POST", "/api/runs/" + PercentEncode(run_id) + "/" + action,
                                 json::serialize(body));
    if (!reply) return ReportError(reply.error());
    std::string followed = StrField(reply->json.as_object(), "run_id");
    return FollowAndReport(*client, followed, progress, json_output);
}

int RemoteDecide(const std::string& server, const std::string& run_id, std::string task_id,
                 const std::string& decision, const std::string& comment, const std::string& output,
                 bool no_resume, const std::string& progress, bool json_output,
                 const std::string& idempotency_key) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    if (task_id.empty()) {
        auto tasks = client->Checked("GET", "/api/tasks?run_id=" + PercentEncode(run_id));
        if (!tasks) return ReportError(tasks.error());
        const auto& open = tasks->json.as_object().at("tasks").as_array();
        if (open.size() != 1) {
            std::vector<std::string> ids;
            for (const auto& t : open) ids.push_back(StrField(t.as_object(), "task_id"));
            PrintError("run " + run_id + " has " + std::to_string(open.size()) +
                       " open tasks; name one" + (ids.empty() ? "" : ": " + Join(ids, ", ")));
            return ToInt(ExitCode::kUsage);
        }
        task_id = StrField(open[0].as_object(), "task_id");
    }
    json::object body;
    body["action"] = decision;
    if (!comment.empty()) body["comment"] = comment;
    if (!output.empty()) body["output"] = output;
    if (!idempotency_key.empty()) body["idempotency_key"] = idempotency_key;
    auto reply = client->Checked(
        "POST",
        "/api/runs/" + PercentEncode(run_id) + "/tasks/" + PercentEncode(task_id) + "/decision",
        json::serialize(body));
    if (!reply) return ReportError(reply.error());
    const auto& decided = reply->json.as_object();
    std::cerr << "run " << run_id << ": task " << StrField(decided, "task_id") << " "
              << (decision == "approve"           ? "approved"
                  : decision == "reject"          ? "rejected"
                  : decision == "request_changes" ? "sent back for changes"
                                                  : "noted (progress)")
              << " by " << StrField(decided, "actor") << "\n";
    if (StrField(decided, "status") == "waiting") {
        std::cerr << "strowger: run " << run_id << " still has open task(s)\n";
        return ToInt(ExitCode::kWaiting);
    }
    // The daemon continues the run itself; --no-resume only stops us from following it.
    if (no_resume) return 0;
    return FollowAndReport(*client, run_id, progress, json_output);
}

int RemoteTasksList(const std::string& server, const std::string& run_id,
                    const std::string& assignee, bool json_output) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    std::string target = "/api/tasks";
    std::string query;
    if (!run_id.empty()) query += "&run_id=" + PercentEncode(run_id);
    if (!assignee.empty()) query += "&assignee=" + PercentEncode(assignee);
    // Every page of waiting runs.
    json::array tasks;
    std::string cursor;
    do {
        std::string page = target + "?limit=500" + query +
                           (cursor.empty() ? "" : "&cursor=" + PercentEncode(cursor));
        auto reply = client->Checked("GET", page);
        if (!reply) return ReportError(reply.error());
        const auto& answer = reply->json.as_object();
        for (const auto& task : answer.at("tasks").as_array()) tasks.push_back(task);
        cursor = StrField(answer, "next_cursor");
    } while (!cursor.empty());
    if (json_output) {
        json::object out;
        out["tasks"] = std::move(tasks);
        std::cout << json::serialize(out) << "\n";
        return 0;
    }
    std::cout << Pad("RUN", 28) << Pad("TASK", 22) << Pad("KIND", 16) << "TITLE\n";
    for (const auto& value : tasks) {
        const auto& t = value.as_object();
        std::cout << Pad(StrField(t, "run_id"), 28) << Pad(StrField(t, "task_id"), 22)
                  << Pad(StrField(t, "kind"), 16) << StrField(t, "title") << "\n";
    }
    return 0;
}

int RemoteRun(const std::string& server, const std::string& file, const std::string& input,
              const std::string& idempotency_key, const std::string& progress, bool json_output) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    // Registered, or a new version of the workflow of its name (none if unchanged); the
    // daemon validates it (a problem lists every error with its line:column).
    std::string workflow_id;
    auto created = client->Call("POST", "/api/workflows", text.str());
    if (!created) return ReportError(created.error());
    if (created->status == 201) {
        workflow_id = StrField(created->json.as_object(), "workflow_id");
    } else if (created->status == 409) {
        auto name = model::LoadWorkflowFile(file).workflow.name;
        auto existing = client->Checked("GET", "/api/workflows/" + PercentEncode(name));
        if (!existing) return ReportError(existing.error());
        workflow_id = StrField(existing->json.as_object(), "id");
        auto updated = client->Checked("PUT", "/api/workflows/" + workflow_id, text.str());
        if (!updated) return ReportError(updated.error());
    } else {
        auto checked = client->Checked("POST", "/api/workflows", text.str());
        return ReportError(checked.error());
    }
    json::object body;
    body["workflow"] = workflow_id;
    body["input"] = input;
    body["trigger_source"] = "cli";
    if (!idempotency_key.empty()) body["idempotency_key"] = idempotency_key;
    auto started = client->Checked("POST", "/api/runs", json::serialize(body));
    if (!started) return ReportError(started.error());
    const auto& run = started->json.as_object();
    return FollowAndReport(*client, StrField(run, "run_id"), progress, json_output,
                           JsonBool(run, "existing"));
}

}  // namespace strowger::cli
