// Health, readiness, metrics, the OpenAPI document, API tokens and retention policies.
#include <boost/json.hpp>

#include "api/internal/service.hpp"
#include "api/openapi.hpp"

namespace strowger::api::internal {
namespace {

Awaitable<Response> Healthz(Service*, Request) {
    co_return RawJsonResponse(200, "{\"status\":\"ok\"}");
}

Awaitable<Response> Readyz(Service* s, Request) {
    if (s->draining) co_return Problem(503, "draining");
    if (!s->ready) co_return Problem(503, "starting: unfinished runs are being resumed");
    // The store answers (a read of a run that does not exist).
    auto probe = co_await s->store->GetRun("readyz-probe");
    if (!probe && probe.error().code() != ErrorCode::kNotFound) {
        if (s->automation.bus) {
            automation::BusEvent event;
            event.kind = automation::EventKind::kSystem;
            event.type = "health_check_failed";
            event.subject = "store";
            event.description =
                "Health check failed: the store does not answer: " + probe.error().message();
            s->automation.bus->Publish(std::move(event));
        }
        co_return Problem(503, "the store does not answer: " + probe.error().message());
    }
    co_return RawJsonResponse(200, "{\"status\":\"ready\"}");
}

Awaitable<Response> MetricsText(Service* s, Request) {
    Metrics::Gauges gauges;
    gauges.runs_executing = static_cast<int64_t>(s->engine.ActiveRuns());
    if (s->server) {
        auto stats = s->server->stats();
        gauges.sse_streams = stats.streams_open;
        gauges.http_connections = stats.connections_open;
    }
    gauges.followers = static_cast<int64_t>(s->hub.followers());
    gauges.workflows = static_cast<int64_t>(s->workflows.List().size());
    gauges.ready = s->ready;
    Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = s->metrics.Render(gauges);
    co_return response;
}

Awaitable<Response> OpenApi(Service* s, Request) {
    co_return RawJsonResponse(200, OpenApiDocument(*s->router));
}

json::object TokenJson(const store::ApiToken& token) {
    json::object o;
    o["name"] = token.name;
    o["role"] = token.role;
    o["created_by"] = token.created_by;
    o["created_at"] = FormatRfc3339(token.created_at);
    o["revoked_at"] =
        token.live() ? json::value(nullptr) : json::value(FormatRfc3339(token.revoked_at));
    o["live"] = token.live();
    return o;
}

Awaitable<Response> CreateToken(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    std::string name(JsonString(*body, "name"));
    std::string role(JsonString(*body, "role"));
    if (auto ok = CheckTokenName(name); !ok) co_return FieldProblem("name", ok.error().message());
    bool known = false;
    RoleFromName(role, &known);
    if (!known) co_return FieldProblem("role", "expected viewer, operator, approver or admin");
    auto created = co_await s->tokens.Create(name, role, request.actor);
    if (!created) co_return ProblemFor(created.error());
    json::object out = TokenJson(created->record);
    out["token"] = created->token;
    co_return JsonResponse(201, out);
}

Awaitable<Response> ListTokens(Service* s, Request) {
    auto refreshed = co_await s->tokens.Refresh();
    if (!refreshed) co_return ProblemFor(refreshed.error());
    json::array tokens;
    for (const auto& token : s->tokens.tokens()) tokens.push_back(TokenJson(token));
    json::object out;
    out["tokens"] = std::move(tokens);
    co_return JsonResponse(200, out);
}

Awaitable<Response> RevokeToken(Service* s, Request request) {
    std::string name = request.Param("name");
    auto revoked = co_await s->tokens.Revoke(name);
    if (!revoked) co_return ProblemFor(revoked.error());
    json::object out;
    out["status"] = "revoked";
    out["name"] = name;
    co_return JsonResponse(200, out);
}

json::object PolicyJson(const store::RetentionPolicy& p) {
    json::object o;
    o["workflow"] = p.workflow.empty() ? "*" : p.workflow;
    o["keep_days"] = p.keep_days;
    o["keep_count"] = p.keep_count;
    return o;
}

Awaitable<Response> ListRetention(Service* s, Request) {
    auto policies = co_await s->store->ListRetentionPolicies();
    if (!policies) co_return ProblemFor(policies.error());
    json::array list;
    for (const auto& p : *policies) list.push_back(PolicyJson(p));
    json::object out;
    out["policies"] = std::move(list);
    co_return JsonResponse(200, out);
}

Awaitable<Response> PutRetention(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    store::RetentionPolicy policy;
    policy.workflow = request.Param("workflow") == "*" ? "" : request.Param("workflow");
    for (const char* field : {"keep_days", "keep_count"}) {
        auto it = body->find(field);
        if (it == body->end()) continue;
        if (!it->value().is_int64() || it->value().as_int64() < 0) {
            co_return FieldProblem(field, "expected a whole number >= 0 (0 = no limit)");
        }
        (std::string_view(field) == "keep_days" ? policy.keep_days : policy.keep_count) =
            it->value().as_int64();
    }
    if (policy.keep_days == 0 && policy.keep_count == 0) {
        co_return FieldProblem("keep_days", "give keep_days or keep_count (or both)");
    }
    auto put = co_await s->store->PutRetentionPolicy(policy);
    if (!put) co_return ProblemFor(put.error());
    co_return JsonResponse(200, PolicyJson(policy));
}

// `strowger runs prune --keep N` over HTTP: deletes the oldest finished runs beyond the newest
// `keep` (never an unfinished one); `dry_run` only counts them.
Awaitable<Response> PruneRuns(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    auto keep = body->find("keep");
    if (keep == body->end() || !keep->value().is_int64() || keep->value().as_int64() < 0) {
        co_return FieldProblem("keep", "expected the number of finished runs to keep (>= 0)");
    }
    bool dry_run = false;
    if (auto it = body->find("dry_run"); it != body->end()) {
        if (!it->value().is_bool()) co_return FieldProblem("dry_run", "expected true or false");
        dry_run = it->value().as_bool();
    }
    store::RunFilter finished;
    finished.statuses = {ledger::RunStatus::kCompleted, ledger::RunStatus::kFailed,
                         ledger::RunStatus::kCancelled};
    finished.limit = 1000;
    int64_t total = 0;
    do {
        auto page = co_await s->store->ListRuns(finished);
        if (!page) co_return ProblemFor(page.error());
        total += static_cast<int64_t>(page->runs.size());
        finished.before_run_id = page->next_cursor;
    } while (!finished.before_run_id.empty());
    int64_t deleted = std::max<int64_t>(0, total - keep->value().as_int64());
    if (!dry_run) {
        auto pruned = co_await s->store->PruneTerminalRuns(keep->value().as_int64());
        if (!pruned) co_return ProblemFor(pruned.error());
        deleted = *pruned;
    }
    json::object out;
    out["finished"] = total;
    out["deleted"] = deleted;
    out["keep"] = keep->value().as_int64();
    out["dry_run"] = dry_run;
    co_return JsonResponse(200, out);
}

Awaitable<Response> DeleteRetention(Service* s, Request request) {
    std::string workflow = request.Param("workflow") == "*" ? "" : request.Param("workflow");
    auto removed = co_await s->store->DeleteRetentionPolicy(workflow);
    if (!removed) co_return ProblemFor(removed.error());
    json::object out;
    out["status"] = "removed";
    out["workflow"] = request.Param("workflow");
    co_return JsonResponse(200, out);
}

}  // namespace

void AddAdminRoutes(Router& router, Service& service) {
    Service* s = &service;
    RouteTable table(router, "health");
    table.Add("GET", "/healthz", Role::kPublic, "healthz", "The process is up",
              [s](Request r) { return Healthz(s, std::move(r)); }, {Ok(200, "Up", "Health")});
    table.Add("GET", "/readyz", Role::kPublic, "readyz",
              "Ready: the store answers and unfinished runs were resumed",
              [s](Request r) { return Readyz(s, std::move(r)); },
              {Ok(200, "Ready", "Health"),
               Ok(503, "Not ready (starting, draining, store down)", "Problem")});
    table.Add("GET", "/metrics", s->options.metrics_public ? Role::kPublic : Role::kViewer,
              "metrics", "Prometheus metrics (text exposition format)",
              [s](Request r) { return MetricsText(s, std::move(r)); },
              {Ok(200, "Metrics", "Text", "text/plain")});
    table.Add("GET", "/api/openapi.json", Role::kViewer, "openapi",
              "This API's OpenAPI 3.1 document (generated from the route table)",
              [s](Request r) { return OpenApi(s, std::move(r)); },
              {Ok(200, "The document", "Object")});
    table.SetTag("tokens");
    table.Add(
        "POST", "/api/tokens", Role::kAdmin, "createToken",
        "Create an API token (its text is in this response only)",
        [s](Request r) { return CreateToken(s, std::move(r)); },
        {Ok(201, "Created", "TokenCreated"), Ok(409, "The name is taken", "Problem")}, {},
        Body("TokenRequest"));
    table.Add("GET", "/api/tokens", Role::kAdmin, "listTokens", "List tokens (never their text)",
              [s](Request r) { return ListTokens(s, std::move(r)); },
              {Ok(200, "Tokens", "TokenList")});
    table.Add("DELETE", "/api/tokens/{name}", Role::kAdmin, "revokeToken",
              "Revoke a token for good", [s](Request r) { return RevokeToken(s, std::move(r)); },
              {Ok(200, "Revoked", "TokenRevoked")});
    table.SetTag("retention");
    table.Add("GET", "/api/retention", Role::kViewer, "listRetention", "Retention policies",
              [s](Request r) { return ListRetention(s, std::move(r)); },
              {Ok(200, "Policies", "RetentionList")});
    table.Add(
        "PUT", "/api/retention/{workflow}", Role::kAdmin, "putRetention",
        "Set the retention policy of a workflow (by name; * for the default)",
        [s](Request r) { return PutRetention(s, std::move(r)); },
        {Ok(200, "Set", "RetentionPolicy")}, {}, Body("RetentionRequest"));
    table.Add(
        "POST", "/api/runs/prune", Role::kAdmin, "pruneRuns",
        "Delete the oldest finished runs beyond the newest `keep` (never unfinished ones)",
        [s](Request r) { return PruneRuns(s, std::move(r)); },
        {Ok(200, "Deleted (or, with dry_run, counted)", "PruneResult")}, {}, Body("PruneRequest"));
    table.Add("DELETE", "/api/retention/{workflow}", Role::kAdmin, "deleteRetention",
              "Remove a retention policy",
              [s](Request r) { return DeleteRetention(s, std::move(r)); },
              {Ok(200, "Removed", "RetentionRemoved")});
}

}  // namespace strowger::api::internal
