// `strowger audit verify|export|pubkey|anchor --server URL`: the daemon's /api/audit routes
// (docs/formats/api.md, "Audit"), printing what the store forms print, with their exit codes.
#include <boost/json.hpp>

#include <iostream>

#include "cli/common.hpp"
#include "cli/remote.hpp"

namespace strowger::cli {
namespace {

json::array Ids(const std::vector<std::string>& run_ids) {
    json::array ids;
    for (const auto& id : run_ids) ids.emplace_back(id);
    return ids;
}

// A reply's JSON object, or an error for a body that is not one.
Result<json::object> ObjectOf(const ApiClient::Reply& reply) {
    if (!reply.json.is_object()) {
        return InternalError("the daemon's answer is not a JSON object: " +
                             reply.body.substr(0, 200));
    }
    return reply.json.as_object();
}

}  // namespace

int RemoteAuditVerify(const std::string& server, const std::vector<std::string>& run_ids, bool all,
                      const std::string& anchors_text) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    auto line = [](std::string_view text) { return Shown(text, Newlines::kEscape); };
    json::object request;
    if (all) {
        request["all"] = true;
        request["limit"] = 500;
    } else {
        request["run_ids"] = Ids(run_ids);
    }
    if (!anchors_text.empty()) request["anchors"] = anchors_text;
    int64_t verified = 0, broken = 0, batches = 0, pruned = 0;
    bool log_ok = true, store_errors = false;
    std::vector<std::pair<std::string, std::string>> missing;
    bool first = true;
    while (true) {
        auto reply = client->Checked("POST", "/api/audit/verify", json::serialize(request));
        if (!reply) return ReportError(reply.error());
        auto report = ObjectOf(*reply);
        if (!report) return ReportError(report.error());
        const json::object& log = report->at("batch_log").as_object();
        if (first) {
            batches = JsonInt(log, "batches");
            for (const auto& finding : log.at("findings").as_array()) {
                std::cout << "checkpoint batch log: BROKEN " << EscapeControl(finding.as_string())
                          << "\n";
                log_ok = false;
            }
            for (const auto& m : report->at("missing").as_array()) {
                missing.emplace_back(StrField(m.as_object(), "run_id"),
                                     StrField(m.as_object(), "description"));
            }
            pruned = JsonInt(*report, "pruned_signed");
            first = false;
        }
        for (const auto& value : report->at("runs").as_array()) {
            const json::object& run = value.as_object();
            std::cout << line(StrField(run, "run_id")) << ": " << line(StrField(run, "description"))
                      << "\n";
            ++verified;
            std::string result = StrField(run, "result");
            if (result != "ok") ++broken;
            if (result == "error") store_errors = true;
        }
        std::string next = StrField(*report, "next_cursor");
        if (!all || next.empty()) break;
        request["cursor"] = next;
    }
    if (all) {
        for (const auto& [run_id, what] : missing) {
            std::cout << line(run_id) << ": " << what << "\n";
            ++broken;
        }
        std::cout << verified << " runs verified, " << broken << " broken; " << batches
                  << " checkpoint batches"
                  << (pruned > 0 ? ", signing " + std::to_string(pruned) +
                                       " runs no longer in the store (pruned)"
                                 : std::string())
                  << "\n";
    }
    std::cout.flush();
    if (store_errors) return ToInt(ExitCode::kInternal);
    return broken == 0 && log_ok ? 0 : 1;
}

int RemoteAuditExport(const std::string& server, const std::string& run_id,
                      const std::string& output, const std::string& definition_file) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    auto reply = client->Checked("GET", "/api/runs/" + PercentEncode(run_id) + "/export");
    if (!reply) return ReportError(reply.error());
    if (auto failed = WriteOutput(output, reply->body)) return *failed;
    if (!definition_file.empty()) {
        auto definition =
            client->Checked("GET", "/api/runs/" + PercentEncode(run_id) + "/definition");
        if (!definition) return ReportError(definition.error());
        if (auto failed = WriteOutput(definition_file, definition->body)) return *failed;
    }
    return 0;
}

int RemoteAuditPubkey(const std::string& server) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    auto reply = client->Checked("GET", "/api/audit/pubkey");
    if (!reply) return ReportError(reply.error());
    std::cout << reply->body;
    std::cout.flush();
    return 0;
}

int RemoteAuditAnchor(const std::string& server, const std::vector<std::string>& run_ids,
                      bool all) {
    auto client = ConnectOrReport(server);
    if (!client) return ToInt(ExitCode::kInternal);
    json::object request;
    if (all) {
        request["all"] = true;
    } else {
        request["run_ids"] = Ids(run_ids);
    }
    auto reply = client->Checked("POST", "/api/audit/anchor", json::serialize(request));
    if (!reply) return ReportError(reply.error());
    auto answer = ObjectOf(*reply);
    if (!answer) return ReportError(answer.error());
    const auto& refused = answer->at("refused").as_array();
    for (const auto& r : refused) {
        PrintError("run " + StrField(r.as_object(), "run_id") + ": " +
                   StrField(r.as_object(), "reason"));
    }
    for (const auto& anchor : answer->at("anchors").as_array()) {
        std::cout << anchor.as_string() << "\n";
    }
    std::cout.flush();
    return refused.empty() ? 0 : 1;
}

}  // namespace strowger::cli
