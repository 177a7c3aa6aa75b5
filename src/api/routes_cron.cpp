// Cron jobs (docs/formats/agents_cron_state_v1.md): GET/POST /api/cron/jobs, GET/PUT/DELETE
// /api/cron/jobs/{id}, PUT /api/cron/jobs/{id}/enable, GET /api/cron/jobs/{id}/status.
#include <boost/json.hpp>

#include "api/internal/standing.hpp"
#include "core/strings.hpp"

namespace strowger::api::internal {
namespace {

json::value TimeOrNull(SystemTime time) {
    if (time == SystemTime{}) return nullptr;
    return json::string(FormatRfc3339(time));
}

json::object JobJson(const store::CronJob& job) {
    json::object o;
    o["id"] = job.job_id;
    o["job_id"] = job.job_id;
    o["name"] = job.name;
    o["agent_id"] = job.agent;
    o["schedule"] = ParseJson(job.schedule).value_or(json::object());
    o["action"] = ParseJson(job.action).value_or(json::object());
    o["enabled"] = job.enabled;
    o["misfire"] = job.misfire;
    o["overlap"] = job.overlap;
    o["origin"] = job.origin;
    o["created_at"] = TimeOrNull(job.created_at);
    o["updated_at"] = TimeOrNull(job.updated_at);
    o["next_fire_at"] = TimeOrNull(job.next_fire_at);
    o["last_fire_at"] = TimeOrNull(job.last_fire_at);
    o["last_run_id"] = job.last_run_id;
    o["last_status"] = job.last_status;
    o["fire_count"] = job.fire_count;
    o["consecutive_failures"] = job.consecutive_failures;
    o["disabled_reason"] = job.disabled_reason;
    return o;
}

// A problem for a bad job: 400 with the field (the text before the first ':'), 404 for an
// unknown agent.
Response JobProblem(const Error& error) {
    if (error.code() == ErrorCode::kNotFound) return Problem(404, error.message());
    if (error.code() != ErrorCode::kInvalidArgument) return ProblemFor(error);
    std::string field = error.message().substr(0, error.message().find(':'));
    if (field.find(' ') != std::string::npos) field = "body";
    return Problem(400, error.message(), {FieldError{field, error.message()}});
}

Awaitable<Response> ListJobs(Standing* st, Request) {
    json::array jobs;
    for (const auto& job : st->cron.List()) jobs.push_back(JobJson(job));
    json::object out;
    out["total"] = static_cast<int64_t>(jobs.size());
    out["jobs"] = std::move(jobs);
    co_return JsonResponse(200, out);
}

Awaitable<Response> CreateJob(Standing* st, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    automation::CronJobSpec base;
    auto spec = automation::CronSpecFromJson(*body, base);
    if (!spec) co_return JobProblem(spec.error());
    if (spec->name.empty()) co_return FieldProblem("name", "a cron job needs a name");
    auto job = co_await st->cron.Put(std::move(*spec));
    if (!job) co_return JobProblem(job.error());
    json::object out = JobJson(*job);
    out["status"] = "created";
    co_return JsonResponse(201, out);
}

Awaitable<Response> GetJob(Standing* st, Request request) {
    auto job = st->cron.Get(request.Param("id"));
    if (!job) co_return Problem(404, "no cron job " + request.Param("id"));
    co_return JsonResponse(200, JobJson(*job));
}

Awaitable<Response> UpdateJob(Standing* st, Request request) {
    auto job = st->cron.Get(request.Param("id"));
    if (!job) co_return Problem(404, "no cron job " + request.Param("id"));
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    automation::CronJobSpec base;
    base.job_id = job->job_id;
    base.name = job->name;
    base.agent = job->agent;
    base.schedule = ParseJson(job->schedule).value_or(json::value());
    base.action = ParseJson(job->action).value_or(json::value());
    base.enabled = job->enabled;
    base.misfire = job->misfire;
    base.overlap = job->overlap;
    base.origin = job->origin;
    auto spec = automation::CronSpecFromJson(*body, base);
    if (!spec) co_return JobProblem(spec.error());
    auto updated = co_await st->cron.Put(std::move(*spec));
    if (!updated) co_return JobProblem(updated.error());
    json::object out = JobJson(*updated);
    out["status"] = "updated";
    co_return JsonResponse(200, out);
}

Awaitable<Response> DeleteJob(Standing* st, Request request) {
    std::string id = request.Param("id");
    if (!st->cron.Get(id)) co_return Problem(404, "no cron job " + id);
    auto deleted = co_await st->cron.Delete(id);
    if (!deleted) co_return ProblemFor(deleted.error());
    co_return JsonResponse(200, json::object{{"status", "removed"}, {"job_id", id}});
}

Awaitable<Response> EnableJob(Standing* st, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    const auto* enabled = body->if_contains("enabled");
    if (enabled == nullptr || !enabled->is_bool()) {
        co_return FieldProblem("enabled", "expected true or false");
    }
    std::string id = request.Param("id");
    auto job = co_await st->cron.SetEnabled(id, enabled->as_bool());
    if (!job) co_return ProblemFor(job.error());
    co_return JsonResponse(
        200, json::object{{"status", "updated"}, {"job_id", id}, {"enabled", job->enabled}});
}

Awaitable<Response> JobStatus(Service* s, Standing* st, Request request) {
    std::string id = request.Param("id");
    auto job = st->cron.Get(id);
    if (!job) co_return Problem(404, "no cron job " + id);
    auto fires = co_await s->store->ListCronFires(id, 20);
    if (!fires) co_return ProblemFor(fires.error());
    json::object out = JobJson(*job);
    out["running"] = st->cron.Running(id);
    json::array recent;
    for (const auto& f : *fires) {
        recent.push_back(json::object{{"scheduled_at", FormatRfc3339(f.scheduled_at)},
                                      {"recorded_at", FormatRfc3339(f.recorded_at)},
                                      {"status", f.status},
                                      {"run_id", f.run_id},
                                      {"reason", f.reason},
                                      {"catch_up", f.catch_up},
                                      {"missed", f.missed}});
    }
    out["recent_fires"] = std::move(recent);
    co_return JsonResponse(200, out);
}

}  // namespace

void AddCronRoutes(Router& router, Service& service, Standing& standing) {
    Service* s = &service;
    Standing* st = &standing;
    RouteTable table(router, "cron");
    table.Add("GET", "/api/cron/jobs", Role::kViewer, "listCronJobs", "Every cron job",
              [st](Request r) { return ListJobs(st, std::move(r)); },
              {Ok(200, "Jobs", "CronJobList")});
    table.Add(
        "POST", "/api/cron/jobs", Role::kAdmin, "createCronJob",
        "Create a cron job (an agent turn or a workflow run on a schedule)",
        [st](Request r) { return CreateJob(st, std::move(r)); },
        {Ok(201, "Created", "CronJob"), Ok(404, "No such agent", "Problem")}, {},
        Body("CronJobRequest"));
    table.Add("GET", "/api/cron/jobs/{id}", Role::kViewer, "getCronJob", "A cron job",
              [st](Request r) { return GetJob(st, std::move(r)); },
              {Ok(200, "The job", "CronJob")});
    table.Add(
        "PUT", "/api/cron/jobs/{id}", Role::kAdmin, "updateCronJob",
        "Change a cron job (the fields given)",
        [st](Request r) { return UpdateJob(st, std::move(r)); }, {Ok(200, "Updated", "CronJob")},
        {}, Body("CronJobRequest"));
    table.Add("DELETE", "/api/cron/jobs/{id}", Role::kAdmin, "deleteCronJob",
              "Delete a cron job and its fires",
              [st](Request r) { return DeleteJob(st, std::move(r)); },
              {Ok(200, "Removed", "CronJobRemoved")});
    table.Add(
        "PUT", "/api/cron/jobs/{id}/enable", Role::kAdmin, "enableCronJob",
        "Enable or disable a cron job ({\"enabled\": bool}); enabling resets its failures",
        [st](Request r) { return EnableJob(st, std::move(r)); },
        {Ok(200, "Updated", "CronJobEnabled")}, {}, Body("CronJobEnable"));
    table.Add("GET", "/api/cron/jobs/{id}/status", Role::kViewer, "cronJobStatus",
              "A cron job's state: next and last fire, failures, why it was disabled, recent fires",
              [s, st](Request r) { return JobStatus(s, st, std::move(r)); },
              {Ok(200, "The job's status", "CronJobStatus")});
}

}  // namespace strowger::api::internal
