// Standing agents (docs/formats/agents_cron_state_v1.md): `serve --agents DIR`, the turns of
// POST /api/agents/{name}/message, GET /api/agents and their sessions; and Standing, which holds
// them with the cron scheduler.
#include <boost/json.hpp>

#include <spdlog/spdlog.h>

#include "api/internal/standing.hpp"
#include "core/strings.hpp"

#include <csignal>
#include <set>

namespace strowger::api::internal {
namespace {

using automation::AgentManifest;

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

// DELETE /api/agents/{name}/sessions[/{session_id}][?channel=]: the sessions' history deleted,
// one bus event (lifecycle, session_reset) each.
Awaitable<Response> ResetSessions(Service* s, Standing* st, Request request) {
    std::string agent = request.Param("name");
    std::string session_id = request.Param("session_id");
    std::string channel = request.Query("channel").value_or("");
    auto reset = co_await st->turns.ResetSessions(agent, session_id, channel);
    if (!reset) {
        if (reset.error().code() == ErrorCode::kNotFound)
            co_return Problem(404, reset.error().message());
        co_return ProblemFor(reset.error());
    }
    const AgentManifest* found = st->turns.Find(agent);
    const std::string name = found != nullptr ? found->name : agent;
    json::array sessions;
    int64_t deleted = 0;
    for (const auto& r : *reset) {
        deleted += r.messages;
        sessions.push_back(json::object{{"session_id", r.session.session_id},
                                        {"channel", r.session.channel},
                                        {"mode", r.session.mode},
                                        {"messages_deleted", r.messages},
                                        {"summary_deleted", r.had_summary}});
        if (s->automation.bus == nullptr) continue;
        automation::BusEvent event;
        event.kind = automation::EventKind::kLifecycle;
        event.type = "session_reset";
        event.agent = name;
        event.subject = name;
        event.description = "Agent '" + name + "' session " + r.session.session_id + " (channel " +
                            r.session.channel + ") was reset by " +
                            (request.actor.empty() ? std::string("the API") : request.actor) +
                            ": " + std::to_string(r.messages) + " messages deleted";
        s->automation.bus->Publish(std::move(event));
    }
    json::object out;
    out["status"] = "reset";
    out["agent"] = name;
    out["messages_deleted"] = deleted;
    out["sessions"] = std::move(sessions);
    co_return JsonResponse(200, out);
}

// Test only (--inject-faults): a job named "strowger-inject-crash" kills the process (SIGKILL)
// between recording its fire and starting its run.
automation::CronScheduler::Options CronOptions(const DaemonOptions& daemon) {
    automation::CronScheduler::Options options;
    if (daemon.inject_faults) {
        options.after_record = [](const store::CronJob& job, const store::CronFire&) {
            if (job.name == "strowger-inject-crash") std::raise(SIGKILL);
        };
    }
    return options;
}

}  // namespace

Awaitable<Result<std::string>> StandingLauncher::StartWorkflow(std::string workflow,
                                                               json::value input,
                                                               automation::Origin origin,
                                                               std::string idempotency_key) {
    if (workflows != nullptr) {
        co_return co_await workflows->StartWorkflow(std::move(workflow), std::move(input),
                                                    std::move(origin), std::move(idempotency_key));
    }
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
    std::vector<std::string> problems = LoadAgents();
    STROWGER_CO_TRY(co_await turns.Recover());
    STROWGER_CO_TRY(co_await cron.Start());
    co_await SyncManifestCron(problems);
    co_return problems;
}

std::vector<std::string> Standing::LoadAgents() {
    std::vector<std::string> problems;
    if (agents_dir.empty()) return problems;
    auto set = automation::LoadManifests(agents_dir, compile, service.clock.Now());
    // A file with an error changes nothing: the agents it defined before stay as they were.
    std::set<std::string> failed;
    for (const auto& d : set.diagnostics) {
        if (d.severity != model::Diagnostic::Severity::kError) continue;
        spdlog::error("--agents: {}", d.ToString());
        problems.push_back(d.ToString());
        failed.insert(d.pos.file.empty() ? agents_dir : d.pos.file);
    }
    std::vector<AgentManifest> agents = std::move(set.agents);
    std::set<std::string> names;
    for (const auto& m : agents) names.insert(m.name);
    for (const auto& [name, m] : turns.manifests()) {
        if (failed.contains(m.file) && !names.contains(name)) {
            spdlog::warn("--agents: {} is invalid; agent {} keeps its previous definition", m.file,
                         name);
            agents.push_back(m);
            names.insert(name);
        }
    }
    turns.SetManifests(std::move(agents));
    return problems;
}

Awaitable<void> Standing::SyncManifestCron(std::vector<std::string>& problems) {
    // Manifests' cron entries: a job each (replaced only when the entry changed, so its next
    // fire time and missed fires stay), and jobs of entries (or agents) that are gone deleted.
    std::set<std::string> wanted;
    std::vector<automation::CronJobSpec> specs;
    for (const auto& [name, m] : turns.manifests()) {
        for (const auto& entry : m.cron) {
            automation::CronJobSpec spec = entry.spec;
            std::string slug;
            for (char c : m.name + "_" + spec.name) {
                slug += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
            }
            spec.job_id = "cron_" + slug;
            spec.agent = m.name;
            spec.origin = "manifest:" + m.file;
            wanted.insert(spec.job_id);
            specs.push_back(std::move(spec));
        }
    }
    for (auto& spec : specs) {
        if (auto existing = cron.Get(spec.job_id);
            existing && existing->schedule == JsonText(spec.schedule) &&
            existing->action == JsonText(spec.action) && existing->misfire == spec.misfire &&
            existing->overlap == spec.overlap && existing->name == spec.name &&
            existing->origin == spec.origin) {
            continue;
        }
        std::string id = spec.job_id;
        auto put = co_await cron.Put(std::move(spec));
        if (!put) problems.push_back(id + ": " + put.error().message());
    }
    for (const auto& job : cron.List()) {
        if (StartsWith(job.origin, "manifest:") && !wanted.contains(job.job_id)) {
            (void)co_await cron.Delete(job.job_id);
        }
    }
}

Awaitable<std::vector<std::string>> Standing::Reload() {
    std::vector<std::string> problems = LoadAgents();
    co_await SyncManifestCron(problems);
    spdlog::info("reload of --agents {}: {} agents, {} cron jobs, {} problems", agents_dir,
                 turns.manifests().size(), cron.size(), problems.size());
    co_return problems;
}

void Standing::Stop() {
    cron.Stop();
}

void AddAgentRoutes(Router& router, Service& service, Standing& standing) {
    Service* s = &service;
    Standing* st = &standing;
    RouteTable table(router, "agents");
    table.Add(
        "GET", "/api/agents", Role::kViewer, "listAgents", "The standing agents of --agents DIR",
        [st](Request r) { return ListAgents(st, std::move(r)); }, {Ok(200, "Agents", "AgentList")});
    table.Add(
        "POST", "/api/agents/{name}/message", Role::kOperator, "messageAgent",
        "One durable agent turn: 202 {run_id}; with wait=true, 200 with the response",
        [s, st](Request r) { return SendMessage(s, st, std::move(r)); },
        {Ok(200, "The turn's response (wait=true)", "AgentReply"),
         Ok(202, "The turn started", "AgentTurnStarted"),
         Ok(422, "The turn failed (wait=true)", "Problem")},
        {{"wait", "query", "boolean", "true: answer with the response when the turn ends"},
         {"Idempotency-Key", "header", "string", "Same key: the same turn"}},
        Body("AgentMessage"));
    table.Add("GET", "/api/agents/{name}/sessions", Role::kViewer, "agentSessions",
              "The agent's sessions with their messages and summaries",
              [s, st](Request r) { return Sessions(s, st, std::move(r)); },
              {Ok(200, "Sessions", "AgentSessionList")});
    table.Add(
        "DELETE", "/api/agents/{name}/sessions", Role::kOperator, "resetAgentSessions",
        "Delete the history (messages and summary) of the agent's sessions (of one channel with "
        "?channel=); the sessions stay, empty",
        [s, st](Request r) { return ResetSessions(s, st, std::move(r)); },
        {Ok(200, "Reset", "AgentSessionsReset")},
        {{"channel", "query", "string", "Only the sessions of this channel"}});
    table.Add("DELETE", "/api/agents/{name}/sessions/{session_id}", Role::kOperator,
              "resetAgentSession", "Delete the history (messages and summary) of one session",
              [s, st](Request r) { return ResetSessions(s, st, std::move(r)); },
              {Ok(200, "Reset", "AgentSessionsReset")});
}

}  // namespace strowger::api::internal
