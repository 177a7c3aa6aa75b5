// Standing agents (docs/formats/agents_cron_state_v1.md): `serve --agents DIR`, the turns of
// POST /api/agents/{name}/message, GET /api/agents and their sessions; and Standing, which holds
// them with the cron scheduler.
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include "api/internal/standing.hpp"
#include "core/strings.hpp"

#include <cstdlib>
#include <set>

namespace strowger::api::internal {
namespace {

using automation::AgentManifest;

ResponseDoc Ok(int status, std::string description, std::string schema) {
    return ResponseDoc{status, std::move(description), std::move(schema)};
}

// Waits until the run is neither pending nor running; its end.
Awaitable<Result<automation::RunEnd>> WaitForEnd(Service* s, std::string run_id) {
    while (true) {
        STROWGER_CO_ASSIGN_OR_RETURN(auto record,
                                     co_await s->WaitForStop(run_id, std::chrono::hours(1)));
        if (record.status != ledger::RunStatus::kPending &&
            record.status != ledger::RunStatus::kRunning) {
            break;
        }
        if (s->draining) co_return UnavailableError("daemon draining");
    }
    co_return co_await automation::ReadRunEnd(*s->store, run_id);
}

automation::RunHooks Hooks(Service* s) {
    automation::RunHooks hooks;
    hooks.start = [s](engine::StartRequest request) -> Awaitable<Result<std::string>> {
        auto started = co_await s->StartRun(std::move(request));
        if (!started) co_return std::unexpected(started.error());
        co_return started->run_id;
    };
    hooks.wait = [s](std::string run_id) { return WaitForEnd(s, std::move(run_id)); };
    return hooks;
}

json::object AgentJson(const AgentManifest& m) {
    json::object o;
    o["name"] = m.name;
    o["id"] = m.spec.id;
    o["description"] = m.spec.description;
    o["model"] = m.spec.model;
    json::array tools;
    for (const auto& t : m.spec.tools) tools.push_back(json::string(t));
    o["tools"] = std::move(tools);
    o["session_mode"] = m.session_mode.empty() ? "persistent" : m.session_mode;
    o["max_history_tokens"] = m.max_history_tokens;
    o["file"] = m.file;
    o["cron_jobs"] = static_cast<int64_t>(m.cron.size());
    return o;
}

Awaitable<Response> ListAgents(Standing* st, Request) {
    json::array agents;
    for (const auto& [name, m] : st->turns.manifests()) agents.push_back(AgentJson(m));
    co_return JsonResponse(200, agents);
}

Awaitable<Response> SendMessage(Service* s, Standing* st, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    const auto* text = body->if_contains("message");
    if (text == nullptr || !text->is_string() || text->as_string().empty()) {
        co_return FieldProblem("message", "a message is required (a non-empty string)");
    }
    automation::AgentMessage message;
    message.agent = request.Param("name");
    message.text = std::string(text->as_string());
    message.session_mode = std::string(JsonString(*body, "session_mode"));
    message.channel = std::string(JsonString(*body, "channel"));
    message.model_override = std::string(JsonString(*body, "model_override"));
    if (const auto* t = body->if_contains("timeout_secs"); t != nullptr && !t->is_null()) {
        if (!t->is_int64() || t->as_int64() < 1) {
            co_return FieldProblem("timeout_secs", "expected a positive whole number");
        }
        message.timeout = std::chrono::seconds(t->as_int64());
    }
    if (message.session_mode != "" && message.session_mode != "persistent" &&
        message.session_mode != "new") {
        co_return FieldProblem("session_mode", "expected \"persistent\" or \"new\", not \"" +
                                                   message.session_mode + "\"");
    }
    message.origin.kind = "api";
    const bool wait = request.Query("wait").value_or("") == "true";
    std::string key = request.Header("idempotency-key");
    auto started = co_await st->turns.Send(std::move(message), std::move(key));
    if (!started) co_return ProblemFor(started.error());
    json::object out;
    out["run_id"] = started->run_id;
    out["agent"] = request.Param("name");
    out["session_id"] = started->session_id;
    out["silent"] = started->silent;
    if (!wait) {
        out["status"] = "pending";
        co_return JsonResponse(202, out);
    }
    auto end = co_await st->turns.Wait(started->run_id);
    if (!end) co_return ProblemFor(end.error());
    std::string status(ledger::RunStatusName(end->status));
    out["status"] = status;
    if (end->status != ledger::RunStatus::kCompleted) {
        co_return Problem(422, "the turn (run " + started->run_id + ") is " + status +
                                   (end->error.empty() ? std::string() : ": " + end->error));
    }
    out["response"] = end->output;
    (void)s;
    co_return JsonResponse(200, out);
}

Awaitable<Response> Sessions(Service* s, Standing* st, Request request) {
    const AgentManifest* m = st->turns.Find(request.Param("name"));
    if (m == nullptr) co_return Problem(404, "no agent named " + request.Param("name"));
    auto sessions = co_await s->store->ListSessions(m->name);
    if (!sessions) co_return ProblemFor(sessions.error());
    json::array out;
    for (const auto& session : *sessions) {
        auto messages = co_await s->store->ReadSessionMessages(session.session_id);
        if (!messages) co_return ProblemFor(messages.error());
        int64_t tokens = automation::EstimateTokens(session.summary);
        json::array history;
        for (const auto& message : *messages) {
            tokens += message.tokens;
            history.push_back(json::object{{"seq", message.seq},
                                           {"role", message.role},
                                           {"content", message.content},
                                           {"tokens", message.tokens},
                                           {"run_id", message.run_id}});
        }
        json::object o;
        o["session_id"] = session.session_id;
        o["agent"] = session.agent;
        o["channel"] = session.channel;
        o["mode"] = session.mode;
        o["summary"] = session.summary;
        o["message_count"] = static_cast<int64_t>(messages->size());
        o["tokens"] = tokens;
        o["messages"] = std::move(history);
        o["created_at"] = FormatRfc3339(session.created_at);
        o["updated_at"] = FormatRfc3339(session.updated_at);
        out.push_back(std::move(o));
    }
    co_return JsonResponse(200, out);
}

// Test only (--inject-faults): a job named "strowger-inject-crash" kills the process between
// recording its fire and starting its run, as a power cut would.
automation::CronScheduler::Options CronOptions(const DaemonOptions& daemon) {
    automation::CronScheduler::Options options;
    if (daemon.inject_faults) {
        options.after_record = [](const store::CronJob& job, const store::CronFire&) {
            if (job.name == "strowger-inject-crash") std::_Exit(137);
        };
    }
    return options;
}

}  // namespace

Awaitable<Result<std::string>> StandingLauncher::StartWorkflow(std::string workflow,
                                                               json::value input,
                                                               automation::Origin origin,
                                                               std::string idempotency_key) {
    const auto* entry = service_.workflows.Find(workflow);
    if (entry == nullptr) co_return NotFoundError("no workflow " + workflow);
    StartArgs args;
    args.workflow = entry;
    args.version = &entry->latest();
    if (input.is_string()) {
        args.input = std::string(input.as_string());
    } else {
        args.input = JsonText(input);
        args.input_json = true;
    }
    args.idempotency_key = std::move(idempotency_key);
    args.trigger_source = origin.kind;
    args.metadata = JsonText(json::object{{"origin", origin.kind},
                                          {"id", origin.id},
                                          {"fire_id", origin.fire_id},
                                          {"depth", origin.depth}});
    args.actor = origin.kind;
    Service::Started started;
    Response response = co_await StartFromRegistry(&service_, std::move(args), &started);
    if (response.status >= 300) {
        co_return InvalidArgumentError("workflow " + workflow + ": " + response.body);
    }
    co_return started.run_id;
}

Awaitable<Result<std::string>> StandingLauncher::SendToAgent(automation::AgentMessage message,
                                                             std::string idempotency_key) {
    auto started = co_await turns_.Send(std::move(message), std::move(idempotency_key));
    if (!started) co_return std::unexpected(started.error());
    co_return started->run_id;
}

Standing::Standing(Service& s, std::string dir, model::CompileOptions compile_options)
    : service(s),
      agents_dir(std::move(dir)),
      compile(compile_options),
      turns(s.executor, s.store, std::move(compile_options), Hooks(&s), s.clock, s.random),
      launcher(s, turns),
      cron(
          s.executor, s.store, launcher,
          [sp = &s](std::string run_id) { return WaitForEnd(sp, std::move(run_id)); }, s.clock,
          s.random, CronOptions(s.options)) {
    cron.agent_known = [this](const std::string& name) { return turns.Find(name) != nullptr; };
}

Awaitable<Result<std::vector<std::string>>> Standing::Start() {
    std::vector<std::string> problems;
    if (!agents_dir.empty()) {
        auto set = automation::LoadManifests(agents_dir, compile);
        for (const auto& d : set.diagnostics) {
            if (d.severity != model::Diagnostic::Severity::kError) continue;
            spdlog::error("--agents: {}", d.ToString());
            problems.push_back(d.ToString());
        }
        turns.SetManifests(std::move(set.agents));
    }
    STROWGER_CO_TRY(co_await turns.Recover());
    STROWGER_CO_TRY(co_await cron.Start());
    // Manifests' [[cron]] entries: a job each (replaced only when the entry changed, so its
    // next fire time and missed fires stay), and jobs of entries that are gone are deleted.
    std::set<std::string> wanted;
    for (const auto& [name, m] : turns.manifests()) {
        for (const auto& entry : m.cron) {
            automation::CronJobSpec spec;
            std::string slug;
            for (char c : m.name + "_" + entry.name) {
                slug += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
            }
            spec.job_id = "cron_" + slug;
            spec.name = entry.name;
            spec.agent = m.name;
            auto schedule =
                automation::Schedule::FromSpec(entry.schedule, entry.tz, service.clock.Now());
            if (!schedule) {
                std::string line = m.file + ":" + std::to_string(entry.pos.line) + ":" +
                                   std::to_string(entry.pos.column) + ": cron." + entry.name +
                                   ".schedule: " + schedule.error().message();
                spdlog::error("--agents: {}", line);
                problems.push_back(line);
                continue;
            }
            spec.schedule = schedule->ToJson();
            json::object action{{"kind", "agent_turn"}, {"message", entry.message}};
            if (!entry.session_mode.empty()) action["session_mode"] = entry.session_mode;
            if (!entry.model_override.empty()) action["model_override"] = entry.model_override;
            if (entry.timeout_secs > 0) action["timeout_secs"] = entry.timeout_secs;
            spec.action = action;
            spec.misfire = entry.misfire;
            spec.overlap = entry.overlap;
            spec.origin = "manifest:" + m.file;
            wanted.insert(spec.job_id);
            if (auto existing = cron.Get(spec.job_id);
                existing && existing->schedule == JsonText(spec.schedule) &&
                existing->action == JsonText(spec.action) && existing->misfire == spec.misfire &&
                existing->overlap == spec.overlap && existing->name == spec.name) {
                continue;
            }
            auto put = co_await cron.Put(std::move(spec));
            if (!put)
                problems.push_back(m.file + ": cron." + entry.name + ": " + put.error().message());
        }
    }
    for (const auto& job : cron.List()) {
        if (StartsWith(job.origin, "manifest:") && !wanted.contains(job.job_id)) {
            (void)co_await cron.Delete(job.job_id);
        }
    }
    co_return problems;
}

void Standing::Stop() {
    cron.Stop();
}

void AddAgentRoutes(Router& router, Service& service, Standing& standing) {
    Service* s = &service;
    Standing* st = &standing;
    auto add = [&](std::string method, std::string pattern, Role role, std::string id,
                   std::string summary, Handler handler, std::vector<ResponseDoc> responses,
                   std::vector<ParamDoc> params = {}, std::string request_schema = "") {
        Route route;
        route.method = std::move(method);
        route.pattern = std::move(pattern);
        route.role = role;
        route.operation_id = std::move(id);
        route.summary = std::move(summary);
        route.tag = "agents";
        route.handler = std::move(handler);
        route.responses = std::move(responses);
        route.params = std::move(params);
        route.request_required = !request_schema.empty();
        route.request_schema = std::move(request_schema);
        router.Add(std::move(route));
    };
    add("GET", "/api/agents", Role::kViewer, "listAgents", "The standing agents of --agents DIR",
        [st](Request r) { return ListAgents(st, std::move(r)); }, {Ok(200, "Agents", "AgentList")});
    add(
        "POST", "/api/agents/{name}/message", Role::kOperator, "messageAgent",
        "One durable agent turn: 202 {run_id}; with wait=true, 200 with the response",
        [s, st](Request r) { return SendMessage(s, st, std::move(r)); },
        {Ok(200, "The turn's response (wait=true)", "AgentReply"),
         Ok(202, "The turn started", "AgentTurnStarted"),
         Ok(422, "The turn failed (wait=true)", "Problem")},
        {{"wait", "query", "boolean", "true: answer with the response when the turn ends"},
         {"Idempotency-Key", "header", "string", "Same key: the same turn"}},
        "AgentMessage");
    add("GET", "/api/agents/{name}/sessions", Role::kViewer, "agentSessions",
        "The agent's sessions with their messages and summaries",
        [s, st](Request r) { return Sessions(s, st, std::move(r)); },
        {Ok(200, "Sessions", "AgentSessionList")});
}

}  // namespace strowger::api::internal
