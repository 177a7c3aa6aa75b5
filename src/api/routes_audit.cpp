// The audit over HTTP: what `strowger audit verify|anchor|export|pubkey` do on a store, for a
// program or an auditor that only reaches the daemon (docs/formats/api.md, "Audit"). The checks
// are the CLI's (audit/report.hpp on top of Engine::VerifyRun), so both report the same.
#include <boost/json.hpp>

#include "api/internal/service.hpp"
#include "audit/report.hpp"
#include "core/sha256.hpp"

namespace strowger::api::internal {
namespace {

constexpr int64_t kMaxRunsPerCall = 1000;

// The body's run ids (`run_ids`) or `all`; a problem if neither or if malformed.
struct RunSelection {
    std::vector<std::string> run_ids;
    bool all = false;
};
std::optional<RunSelection> SelectRuns(const json::object& body, Response& problem) {
    RunSelection selection;
    if (auto it = body.find("all"); it != body.end()) {
        if (!it->value().is_bool()) {
            problem = FieldProblem("all", "expected true or false");
            return std::nullopt;
        }
        selection.all = it->value().as_bool();
    }
    if (auto it = body.find("run_ids"); it != body.end()) {
        if (!it->value().is_array()) {
            problem = FieldProblem("run_ids", "expected an array of run ids");
            return std::nullopt;
        }
        const auto& ids = it->value().as_array();
        if (static_cast<int64_t>(ids.size()) > kMaxRunsPerCall) {
            problem = FieldProblem("run_ids", "at most " + std::to_string(kMaxRunsPerCall) +
                                                  " run ids per call (or all with a cursor)");
            return std::nullopt;
        }
        for (size_t i = 0; i < ids.size(); ++i) {
            if (!ids[i].is_string() || ids[i].as_string().empty()) {
                problem = FieldProblem("run_ids/" + std::to_string(i), "expected a run id");
                return std::nullopt;
            }
            selection.run_ids.emplace_back(ids[i].as_string());
        }
    }
    if (selection.all == !selection.run_ids.empty()) {
        problem = FieldProblem("run_ids", "give run_ids or all: true (not both)");
        return std::nullopt;
    }
    return selection;
}

// A page of run ids, newest first, after `cursor` (next_cursor "" at the end).
Awaitable<Result<store::RunPage>> RunIdPage(Service* s, std::string cursor, int64_t limit) {
    store::RunFilter filter;
    filter.limit = limit;
    filter.before_run_id = std::move(cursor);
    co_return co_await s->store->ListRuns(std::move(filter));
}

Awaitable<Result<std::vector<std::string>>> AllRunIds(Service* s) {
    std::vector<std::string> ids;
    std::string cursor;
    do {
        auto page = co_await RunIdPage(s, cursor, 500);
        if (!page) co_return std::unexpected(page.error());
        for (const auto& record : page->runs) ids.push_back(record.run_id);
        cursor = page->next_cursor;
    } while (!cursor.empty());
    co_return ids;
}

json::value FindingJson(const std::optional<audit::Finding>& finding) {
    if (!finding) return nullptr;
    json::object o;
    o["seq"] = finding->seq;
    o["reason"] = finding->reason;
    o["detail"] = finding->detail;
    return o;
}

// One run's audit: {run_id, result: ok|broken|error, description, events, ...}.
Awaitable<json::object> AuditRun(Service* s, const std::string& run_id,
                                 const audit::SignedLeaves& leaves,
                                 const std::vector<audit::Anchor>& anchors) {
    json::object o;
    o["run_id"] = run_id;
    auto verified = co_await s->engine.VerifyRun(run_id);
    if (!verified) {
        o["result"] = "error";
        o["description"] = "cannot read: " + verified.error().message();
        o["finding"] = nullptr;
        co_return o;
    }
    int64_t signed_leaves = 0;
    std::optional<audit::Finding> finding = verified->finding;
    if (!finding) {
        finding =
            audit::CheckSignedAndAnchored(run_id, verified->hashes, leaves, anchors, signed_leaves);
    }
    o["result"] = finding ? "broken" : "ok";
    o["description"] = finding ? "BROKEN " + finding->Describe()
                               : "ok (" + std::to_string(verified->events) + " events, " +
                                     std::to_string(signed_leaves) + " signed checkpoints, head " +
                                     audit::ShortHash(verified->head.hash) + ")";
    o["events"] = verified->events;
    o["signed_checkpoints"] = signed_leaves;
    o["head_seq"] = verified->head.seq;
    o["head"] = verified->head.hash;
    o["finding"] = FindingJson(finding);
    co_return o;
}

Awaitable<Response> Verify(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    auto selection = SelectRuns(*body, problem);
    if (!selection) co_return problem;
    std::vector<audit::Anchor> anchors;
    if (auto it = body->find("anchors"); it != body->end()) {
        if (!it->value().is_string()) co_return FieldProblem("anchors", "expected anchor lines");
        auto parsed = audit::ParseAnchors(it->value().as_string(), "anchors");
        if (!parsed) co_return FieldProblem("anchors", parsed.error().message());
        anchors = std::move(*parsed);
    }
    std::string cursor(JsonString(*body, "cursor"));
    int64_t limit = 100;
    if (auto it = body->find("limit"); it != body->end()) {
        if (!it->value().is_int64() || it->value().as_int64() < 1 ||
            it->value().as_int64() > kMaxRunsPerCall) {
            co_return FieldProblem("limit", "expected 1-" + std::to_string(kMaxRunsPerCall));
        }
        limit = it->value().as_int64();
    }

    auto log = co_await audit::AuditBatchLog(*s->store, s->engine.checkpoint_verifier(), anchors);
    if (!log) co_return ProblemFor(log.error());
    json::object out;
    json::object batch_log;
    batch_log["batches"] = log->batches;
    batch_log["ok"] = log->ok();
    json::array log_findings;
    for (const auto& finding : log->findings) log_findings.emplace_back(finding);
    batch_log["findings"] = std::move(log_findings);
    bool ok = log->ok();

    std::vector<std::string> ids = std::move(selection->run_ids);
    std::string next_cursor;
    json::array missing;
    int64_t pruned_signed = 0;
    if (selection->all) {
        auto page = co_await RunIdPage(s, cursor, limit);
        if (!page) co_return ProblemFor(page.error());
        for (const auto& record : page->runs) ids.push_back(record.run_id);
        next_cursor = page->next_cursor;
        if (cursor.empty()) {
            // What is expected but gone is reported once, with the first page.
            auto every = co_await AllRunIds(s);
            if (!every) co_return ProblemFor(every.error());
            auto gone = audit::FindMissingRuns(*every, log->leaves, anchors);
            for (auto& [run_id, what] : gone.anchored) {
                json::object m;
                m["run_id"] = run_id;
                m["description"] = "BROKEN: " + what;
                missing.push_back(std::move(m));
                ok = false;
            }
            pruned_signed = gone.pruned_signed;
        }
    }
    json::array runs;
    int64_t broken = 0;
    for (const auto& run_id : ids) {
        json::object report = co_await AuditRun(s, run_id, log->leaves, anchors);
        if (report["result"] != "ok") {
            ++broken;
            ok = false;
        }
        runs.push_back(std::move(report));
    }
    out["ok"] = ok;
    out["batch_log"] = std::move(batch_log);
    out["runs"] = std::move(runs);
    out["broken"] = broken;
    out["missing"] = std::move(missing);
    out["pruned_signed"] = pruned_signed;
    out["next_cursor"] = next_cursor;
    co_return JsonResponse(200, out);
}

Awaitable<Response> Anchor(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    auto selection = SelectRuns(*body, problem);
    if (!selection) co_return problem;
    std::vector<std::string> ids = std::move(selection->run_ids);
    if (selection->all) {
        auto every = co_await AllRunIds(s);
        if (!every) co_return ProblemFor(every.error());
        ids = std::move(*every);
    }
    const SystemTime now = s->clock.Now();
    json::array anchors;
    json::array refused;
    for (const auto& run_id : ids) {
        // Only what verifies is anchored: an anchor vouches for the record as it is now.
        auto verified = co_await s->engine.VerifyRun(run_id);
        std::string why;
        if (!verified) {
            why = verified.error().message();
        } else if (verified->finding) {
            why = "not anchored: ledger does not verify " + verified->finding->Describe();
        }
        if (!why.empty()) {
            json::object r;
            r["run_id"] = run_id;
            r["reason"] = why;
            refused.push_back(std::move(r));
            continue;
        }
        anchors.emplace_back(audit::FormatAnchor(
            audit::RunAnchor(run_id, verified->head.seq, verified->head.hash, now)));
    }
    // The batch log's head, once the checkpoints queued here are stored.
    if (auto flushed = co_await s->engine.FlushCheckpoints(); !flushed) {
        co_return ProblemFor(flushed.error());
    }
    auto batches = co_await audit::BatchLogAnchor(*s->store, now);
    if (!batches) co_return ProblemFor(batches.error());
    if (*batches) anchors.emplace_back(audit::FormatAnchor(**batches));
    json::object out;
    out["anchors"] = std::move(anchors);
    out["refused"] = std::move(refused);
    co_return JsonResponse(200, out);
}

Awaitable<Response> PublicKey(Service* s, Request) {
    const VerifyingKey* key = s->engine.checkpoint_verifier().key();
    if (key == nullptr) co_return Problem(404, "this daemon does not sign checkpoints");
    Response response;
    response.content_type = "application/x-pem-file";
    response.body = key->Pem();
    co_return response;
}

// The run's ledger lines and its checkpoint lines (docs/formats/checkpoint_v1.md), verified
// first: an export vouches for what it hands out, as every read does.
Awaitable<Response> Export(Service* s, Request request) {
    const std::string& run_id = request.Param("id");
    auto verified = co_await s->engine.VerifyRun(run_id);
    if (!verified) co_return ProblemFor(verified.error());
    if (verified->finding) {
        co_return Problem(
            500, "run " + run_id + ": the ledger does not verify " + verified->finding->Describe());
    }
    store::EventQuery all;
    auto events = co_await s->store->ReadEvents(run_id, all);
    if (!events) co_return ProblemFor(events.error());
    auto checkpoints = co_await audit::CheckpointExportLines(*s->store, run_id);
    if (!checkpoints) co_return ProblemFor(checkpoints.error());
    Response response;
    response.content_type = "application/x-ndjson";
    for (const auto& event : *events) response.body.append(event.encoded).push_back('\n');
    for (const auto& line : *checkpoints) response.body.append(line).push_back('\n');
    co_return response;
}

// The pinned definition snapshot, byte for byte (its SHA-256 is in run.created).
Awaitable<Response> Definition(Service* s, Request request) {
    auto record = co_await s->store->GetRun(request.Param("id"));
    if (!record) co_return ProblemFor(record.error());
    auto definition = co_await s->store->GetDefinition(record->definition_sha256);
    if (!definition) co_return ProblemFor(definition.error());
    if (Sha256Hex(*definition) != record->definition_sha256) {
        co_return Problem(
            500, "run " + record->run_id + ": the pinned definition does not match its SHA-256");
    }
    co_return RawJsonResponse(200, std::move(*definition));
}

}  // namespace

void AddAuditRoutes(Router& router, Service& service) {
    Service* s = &service;
    RouteTable table(router, "audit");
    table.Add(
        "POST", "/api/audit/verify", Role::kViewer, "auditVerify",
        "Verify runs as `strowger audit verify` does: chains, pinned definitions, "
        "signed checkpoints, the batch log and the anchors given",
        [s](Request r) { return Verify(s, std::move(r)); },
        {Ok(200, "The report (ok false if anything is broken)", "AuditReport")}, {},
        Body("AuditVerifyRequest"));
    table.Add(
        "POST", "/api/audit/anchor", Role::kViewer, "auditAnchor",
        "Anchor lines for runs that verify, and for the checkpoint batch log, to keep "
        "outside the store",
        [s](Request r) { return Anchor(s, std::move(r)); },
        {Ok(200, "Anchor lines", "AuditAnchors")}, {}, Body("AuditAnchorRequest"));
    table.Add("GET", "/api/audit/pubkey", Role::kViewer, "auditPubkey",
              "The public key checkpoints are signed with (PEM)",
              [s](Request r) { return PublicKey(s, std::move(r)); },
              {Ok(200, "The key", "Text", "application/x-pem-file"),
               Ok(404, "This daemon does not sign", "Problem")});
    table.Add("GET", "/api/runs/{id}/export", Role::kViewer, "exportRun",
              "A run's ledger and signed checkpoints as JSON Lines that verify without "
              "Strowger (scripts/verify_ledger.py)",
              [s](Request r) { return Export(s, std::move(r)); },
              {Ok(200, "JSON Lines", "Text", "application/x-ndjson"),
               Ok(500, "The run's ledger does not verify", "Problem")});
    table.Add("GET", "/api/runs/{id}/definition", Role::kViewer, "getRunDefinition",
              "The run's pinned definition snapshot, byte for byte",
              [s](Request r) { return Definition(s, std::move(r)); },
              {Ok(200, "The definition", "Object"),
               Ok(500, "The snapshot does not match its SHA-256", "Problem")});
}

}  // namespace strowger::api::internal
