// LibreFang's workflow endpoints (reference/003, "API 端点"), same paths, bodies and status
// codes, over the daemon's versioned registry (docs/formats/api.md "Workflows").
#include <boost/json.hpp>

#include "api/internal/service.hpp"
#include "model/plan_format.hpp"

namespace strowger::api::internal {
namespace {

using ledger::RunStatus;

int64_t StepCount(const WorkflowRegistry::Version& version) {
    return version.plan ? static_cast<int64_t>(version.plan->nodes.size()) : 0;
}

json::object WorkflowSummary(const WorkflowRegistry::Entry& entry) {
    const auto& latest = entry.latest();
    json::object o;
    o["id"] = entry.id;
    o["name"] = latest.record.name;
    o["description"] = latest.record.description;
    o["steps"] = StepCount(latest);
    o["created_at"] = FormatRfc3339(entry.versions.front().record.created_at);
    o["updated_at"] = FormatRfc3339(latest.record.created_at);
    o["version"] = latest.record.version;
    o["origin"] = entry.origin;
    return o;
}

json::object WorkflowDetail(const WorkflowRegistry::Entry& entry) {
    json::object o = WorkflowSummary(entry);
    const auto& latest = entry.latest();
    o["definition_sha256"] = latest.record.definition_sha256;
    o["source_format"] = latest.record.source_format;
    o["source"] = latest.record.source;
    if (latest.record.source_format == "json") {
        if (auto parsed = ParseJson(latest.record.source)) o["definition"] = *parsed;
    }
    if (!latest.error.empty()) o["error"] = latest.error;
    json::array versions;
    for (const auto& v : entry.versions) {
        json::object item;
        item["version"] = v.record.version;
        item["definition_sha256"] = v.record.definition_sha256;
        item["created_at"] = FormatRfc3339(v.record.created_at);
        item["actor"] = v.record.actor;
        versions.push_back(std::move(item));
    }
    o["versions"] = std::move(versions);
    return o;
}

Awaitable<Response> CreateWorkflow(Service* s, Request request) {
    WorkflowRegistry::Compiled compiled;
    auto created = co_await s->workflows.Create(request.body, request.actor, compiled);
    if (!created) {
        if (created.error().code() == ErrorCode::kInvalidArgument) {
            co_return DiagnosticsProblem(compiled.diagnostics);
        }
        co_return ProblemFor(created.error());
    }
    json::object out;
    out["workflow_id"] = (*created)->id;
    out["name"] = (*created)->name();
    out["version"] = (*created)->latest().record.version;
    co_return JsonResponse(201, out);
}

Awaitable<Response> ListWorkflows(Service* s, Request) {
    json::array list;
    for (const auto* entry : s->workflows.List()) list.push_back(WorkflowSummary(*entry));
    co_return JsonResponse(200, list);
}

Awaitable<Response> GetWorkflow(Service* s, Request request) {
    const auto* entry = s->workflows.Find(request.Param("id"));
    if (!entry) co_return Problem(404, "no workflow " + request.Param("id"));
    co_return JsonResponse(200, WorkflowDetail(*entry));
}

Awaitable<Response> UpdateWorkflow(Service* s, Request request) {
    const auto* entry = s->workflows.Find(request.Param("id"));
    if (!entry) co_return Problem(404, "no workflow " + request.Param("id"));
    const int64_t before = entry->latest().record.version;
    WorkflowRegistry::Compiled compiled;
    std::string id = entry->id;
    auto updated = co_await s->workflows.Update(id, request.body, request.actor, compiled);
    if (!updated) {
        if (updated.error().code() == ErrorCode::kInvalidArgument) {
            co_return DiagnosticsProblem(compiled.diagnostics);
        }
        co_return ProblemFor(updated.error());
    }
    json::object out;
    out["workflow_id"] = id;
    out["version"] = (*updated)->latest().record.version;
    out["changed"] = (*updated)->latest().record.version != before;
    co_return JsonResponse(200, out);
}

Awaitable<Response> DeleteWorkflow(Service* s, Request request) {
    const auto* entry = s->workflows.Find(request.Param("id"));
    if (!entry) co_return Problem(404, "no workflow " + request.Param("id"));
    std::string id = entry->id;
    auto deleted = co_await s->workflows.Delete(id);
    if (!deleted) co_return ProblemFor(deleted.error());
    json::object out;
    out["status"] = "removed";
    out["workflow_id"] = id;
    co_return JsonResponse(200, out);
}

Awaitable<Response> RunWorkflow(Service* s, Request request) {
    const auto* entry = s->workflows.Find(request.Param("id"));
    if (!entry) co_return Problem(404, "no workflow " + request.Param("id"));
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    const bool wait = request.Query("wait").value_or("") == "true";
    auto timeout = QueryInt(request, "timeout_ms", 3'600'000, 0, 86'400'000, problem);
    if (!timeout) co_return problem;
    StartArgs args;
    args.workflow = entry;
    args.version = &entry->latest();
    if (auto v = body->find("version"); v != body->end() && v->value().is_int64()) {
        args.version = entry->Find(v->value().as_int64());
        if (!args.version) {
            co_return Problem(404,
                              "workflow " + entry->id + " has no version " +
                                  std::to_string(v->value().as_int64()),
                              {FieldError{"version", "no such version"}});
        }
    }
    if (auto input = body->find("input"); input != body->end() && !input->value().is_null()) {
        args.input = input->value().is_string() ? std::string(input->value().as_string())
                                                : CompactJson(input->value());
        args.input_json = !input->value().is_string();
    }
    args.idempotency_key = request.Header("idempotency-key");
    args.actor = request.actor;
    Service::Started started;
    Response response = co_await StartFromRegistry(s, std::move(args), &started);
    if (!wait || (response.status != 202 && response.status != 200)) {
        if (response.status == 202 || response.status == 200) {
            // LibreFang's body: {run_id} (the rest is ours).
            response.status = 202;
        }
        co_return response;
    }
    auto record = co_await s->WaitForStop(started.run_id, std::chrono::milliseconds(*timeout));
    if (!record) co_return ProblemFor(record.error());
    if (record->status == RunStatus::kCompleted || record->status == RunStatus::kFailed ||
        record->status == RunStatus::kCancelled) {
        auto run = co_await s->RunRecord(started.run_id);
        if (!run) co_return ProblemFor(run.error());
        if (record->status == RunStatus::kCompleted) {
            json::object out;
            out["run_id"] = started.run_id;
            out["output"] = (*run)["output"];
            out["status"] = "completed";
            out["step_results"] = (*run)["step_results"];
            co_return JsonResponse(200, out);
        }
        // The failure, as problem details naming the run.
        std::string error = (*run)["error"].is_string()
                                ? std::string((*run)["error"].as_string())
                                : std::string(ledger::RunStatusName(record->status));
        Response failed =
            Problem(422,
                    "run " + started.run_id + " " +
                        std::string(ledger::RunStatusName(record->status)) + ": " + error,
                    {}, "urn:strowger:problem:run-failed");
        // Extension members: which run, how it ended, what it produced so far.
        auto parsed = ParseJson(failed.body);
        json::object extended = parsed ? parsed->as_object() : json::object();
        extended["run_id"] = started.run_id;
        extended["run_status"] = std::string(ledger::RunStatusName(record->status));
        extended["error"] = error;
        extended["step_results"] = (*run)["step_results"];
        failed.body = json::serialize(extended);
        co_return failed;
    }
    // Still executing at the timeout, or stopped (waiting for a human, paused): never
    // "completed".
    json::object out;
    out["run_id"] = started.run_id;
    out["status"] = std::string(ledger::RunStatusName(record->status));
    co_return JsonResponse(202, out);
}

Awaitable<Response> DryRun(Service* s, Request request) {
    const auto* entry = s->workflows.Find(request.Param("id"));
    if (!entry) co_return Problem(404, "no workflow " + request.Param("id"));
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    const auto& latest = entry->latest();
    if (!latest.plan) {
        co_return Problem(409, "workflow " + entry->id + " does not compile here: " + latest.error);
    }
    std::optional<std::string> input;
    if (auto in = body->find("input"); in != body->end() && !in->value().is_null()) {
        input = in->value().is_string() ? std::string(in->value().as_string())
                                        : CompactJson(in->value());
    }
    json::object out;
    out["workflow_id"] = entry->id;
    out["version"] = latest.record.version;
    out["valid"] = true;
    auto plan = ParseJson(model::FormatPlan(*latest.plan, model::PlanFormat::kJson, input));
    out["plan"] = plan ? *plan : json::value(nullptr);
    out["text"] = model::FormatPlan(*latest.plan, model::PlanFormat::kText, input);
    co_return JsonResponse(200, out);
}

Awaitable<Response> WorkflowRuns(Service* s, Request request) {
    const auto* entry = s->workflows.Find(request.Param("id"));
    if (!entry) co_return Problem(404, "no workflow " + request.Param("id"));
    Response problem;
    auto limit = QueryInt(request, "limit", 50, 1, 200, problem);
    if (!limit) co_return problem;
    store::RunFilter filter;
    filter.workflow = entry->name();
    filter.limit = *limit;
    auto page = co_await s->store->ListRuns(filter);
    if (!page) co_return ProblemFor(page.error());
    json::array list;
    for (const auto& record : page->runs) {
        json::object o;
        o["id"] = record.run_id;
        o["workflow_name"] = record.workflow;
        o["state"] = std::string(ledger::RunStatusName(record.status));
        int64_t steps_completed = 0;
        json::value started_at = nullptr, completed_at = nullptr;
        if (auto run = co_await s->RunRecord(record.run_id)) {
            steps_completed = static_cast<int64_t>((*run)["step_results"].as_array().size());
            started_at = (*run)["started_at"];
            completed_at = (*run)["completed_at"];
        }
        o["steps_completed"] = steps_completed;
        o["started_at"] = started_at;
        o["completed_at"] = completed_at;
        list.push_back(std::move(o));
    }
    co_return JsonResponse(200, list);
}

Awaitable<Response> WorkflowRun(Service* s, Request request) {
    auto run = co_await s->RunRecord(request.Param("id"));
    if (!run) co_return ProblemFor(run.error());
    co_return JsonResponse(200, *run);
}

}  // namespace

void AddWorkflowRoutes(Router& router, Service& service) {
    Service* s = &service;
    RouteTable table(router, "workflows");
    table.Add(
        "POST", "/api/workflows", Role::kAdmin, "createWorkflow",
        "Register a workflow (LibreFang's body, or any Strowger workflow as JSON or YAML)",
        [s](Request r) { return CreateWorkflow(s, std::move(r)); },
        {Ok(201, "Registered as version 1", "WorkflowCreated"),
         Ok(409, "A workflow of that name exists", "Problem"),
         Ok(422, "Not valid: every error with its field path and line:column", "Problem")},
        {}, Body("WorkflowDefinition"));
    table.Add("GET", "/api/workflows", Role::kViewer, "listWorkflows",
              "List the registered workflows",
              [s](Request r) { return ListWorkflows(s, std::move(r)); },
              {Ok(200, "Workflows", "WorkflowList")});
    table.Add("GET", "/api/workflows/{id}", Role::kViewer, "getWorkflow",
              "A workflow (by id or name): its latest definition and every version",
              [s](Request r) { return GetWorkflow(s, std::move(r)); },
              {Ok(200, "The workflow", "WorkflowDetail")});
    table.Add(
        "PUT", "/api/workflows/{id}", Role::kAdmin, "updateWorkflow",
        "Replace a workflow's definition: a new version (running runs keep theirs)",
        [s](Request r) { return UpdateWorkflow(s, std::move(r)); },
        {Ok(200, "Updated (changed: false when the definition was the same)", "WorkflowUpdated"),
         Ok(409, "Comes from a file of --workflows, or the new name is taken", "Problem"),
         Ok(422, "Not valid", "Problem")},
        {}, Body("WorkflowDefinition"));
    table.Add("DELETE", "/api/workflows/{id}", Role::kAdmin, "deleteWorkflow",
              "Delete a workflow (its runs stay)",
              [s](Request r) { return DeleteWorkflow(s, std::move(r)); },
              {Ok(200, "Removed", "WorkflowRemoved")});
    table.Add(
        "POST", "/api/workflows/{id}/run", Role::kOperator, "runWorkflow",
        "Run a workflow: 202 {run_id}; with wait=true, 200 {run_id, output, status, "
        "step_results} or 422 with the failure (202 {run_id, status} if not done in time)",
        [s](Request r) { return RunWorkflow(s, std::move(r)); },
        {Ok(200, "Completed (wait=true)", "WorkflowRunResult"),
         Ok(202, "Started; or still executing / stopped at the timeout (wait=true)", "RunState"),
         Ok(409, "The workflow does not compile here", "Problem"),
         Ok(422, "The run failed or was cancelled (wait=true)", "Problem")},
        {{"wait", "query", "boolean", "true: answer when the run ends or stops"},
         {"timeout_ms", "query", "integer", "With wait=true, answer after this long at most"},
         {"Idempotency-Key", "header", "string", "Same key: the same run"}},
        OptionalBody("WorkflowRunRequest"));
    table.Add(
        "POST", "/api/workflows/{id}/dry-run", Role::kViewer, "dryRunWorkflow",
        "The plan a run would follow, with no model calls",
        [s](Request r) { return DryRun(s, std::move(r)); },
        {Ok(200, "The plan", "DryRun"), Ok(409, "Does not compile here", "Problem")}, {},
        OptionalBody("WorkflowRunRequest"));
    table.Add("GET", "/api/workflows/{id}/runs", Role::kViewer, "listWorkflowRuns",
              "The workflow's runs, newest first",
              [s](Request r) { return WorkflowRuns(s, std::move(r)); },
              {Ok(200, "Runs", "WorkflowRunList")},
              {{"limit", "query", "integer", "1-200 (default 50)"}});
    table.Add(
        "GET", "/api/workflows/runs/{id}", Role::kViewer, "getWorkflowRun",
        "A run's record (LibreFang's WorkflowRun fields: step_results, ...)",
        [s](Request r) { return WorkflowRun(s, std::move(r)); },
        {Ok(200, "The run", "RunRecord"), Ok(500, "The run's ledger does not verify", "Problem")});
}

}  // namespace strowger::api::internal
