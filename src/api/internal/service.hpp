// Private to the API module: what the route handlers share (the engine, the store, the
// registries, the event hub) and the run operations several routes use. Everything runs on
// the daemon's one executor.
#pragma once

#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "api/auth.hpp"
#include "api/daemon.hpp"
#include "api/event_hub.hpp"
#include "api/http.hpp"
#include "api/internal/head_cache.hpp"
#include "api/metrics.hpp"
#include "api/problem.hpp"
#include "api/router.hpp"
#include "api/workflow_registry.hpp"
#include "automation/bus.hpp"
#include "automation/launcher.hpp"
#include "automation/memory.hpp"
#include "automation/quota.hpp"
#include "automation/triggers.hpp"
#include "automation/webhooks.hpp"
#include "core/json.hpp"
#include "engine/engine.hpp"
#include "store/store.hpp"

namespace strowger::api::internal {

// Automation's parts the routes use (issue 16, part A), owned by the daemon.
struct AutomationParts {
    automation::EventBus* bus = nullptr;
    automation::TriggerEngine* triggers = nullptr;
    automation::MemoryService* memory = nullptr;
    automation::WebhookService* webhooks = nullptr;
    automation::QuotaWatch* quota = nullptr;  // told each start's budgets (85 % warnings)
};

class Service {
  public:
    Service(Executor executor, std::shared_ptr<store::Store> store, engine::Engine& engine,
            WorkflowRegistry& workflows, EventHub& hub, TokenRegistry& tokens, Metrics& metrics,
            const DaemonOptions& options, Clock& clock, Random& random);

    Executor executor;
    std::shared_ptr<store::Store> store;
    engine::Engine& engine;
    WorkflowRegistry& workflows;
    EventHub& hub;
    TokenRegistry& tokens;
    Metrics& metrics;
    const DaemonOptions& options;
    Clock& clock;
    Random& random;
    HttpServer* server = nullptr;
    Router* router = nullptr;
    AutomationParts automation;
    bool ready = false;
    bool draining = false;

    // ---- Runs ----

    // What a start reports once run.created is committed (or the idempotency key matched).
    struct Started {
        std::string run_id;
        bool existing = false;
        ledger::RunStatus status = ledger::RunStatus::kPending;
    };
    // Starts `request` (its run_id set by the caller) and returns once it is created.
    Awaitable<Result<Started>> StartRun(engine::StartRequest request);
    // Resumes a stopped or interrupted run here; returns once it continues (or why not).
    Awaitable<Status> ResumeRun(std::string run_id, std::string reason, std::string actor);
    // Reopens a finished run from its failed step, or `step` and after; returns once it runs.
    Awaitable<Status> RetryRun(std::string run_id, std::string step, std::string actor);
    // Waits until the run is neither pending nor running (or `timeout`); its record then.
    Awaitable<Result<store::RunRecord>> WaitForStop(std::string run_id,
                                                    std::chrono::milliseconds timeout);
    // Runs started or resumed here whose outcome has not been handed over yet.
    std::vector<std::string> ExecutingHere() const {
        return std::vector<std::string>(executing_.begin(), executing_.end());
    }
    bool IsExecutingHere(const std::string& run_id) const { return executing_.contains(run_id); }
    // The outcome the engine handed over for a run executing here, if it has ended.
    const Result<engine::RunOutcome>* Outcome(const std::string& run_id) const;

    // The verified run as JSON: {run, node_runs, events} (CMDC's `status`); served from a cache
    // while the run's head has not moved (what it holds was verified at that head).
    Awaitable<Result<std::string>> RunDetail(std::string run_id);
    // The open human tasks of a run whose stored record is `record`, as GET /api/tasks lists
    // them (every assignee's), from its verified ledger; cached while its head does not move.
    Awaitable<Result<json::array>> OpenTasks(store::RunRecord record);
    // The verified run record (engine::RunRecordJson plus annotation and open tasks).
    Awaitable<Result<json::object>> RunRecord(std::string run_id);

    // Supervision: restarts a run whose execution failed unexpectedly, or gives up on it.
    void Supervise(const std::string& run_id, const Error& error);
    // The handler given to the engine for every run started or resumed here.
    engine::Engine::OutcomeHandler DoneHandler(std::string run_id);

    // Idempotency of task decisions: key -> (request hash, response).
    struct Decided {
        std::string request_sha256;
        std::string response;
    };
    std::unordered_map<std::string, Decided> decisions;

    // In-flight starts with an idempotency key (between the engine creating the run and its
    // annotation being stored): key -> (request hash, run id).
    std::unordered_map<std::string, std::pair<std::string, std::string>> starting;

  private:
    HeadCache<std::string> details_{1024};
    HeadCache<json::array> open_tasks_{16384};
    std::unordered_map<std::string, Result<engine::RunOutcome>> outcomes_;
    std::set<std::string> executing_;
    // Executions of each run started here, counted: an execution's outcome that comes after
    // the next one started (a run resumed as it was stopping) is not that run's outcome.
    std::unordered_map<std::string, uint64_t> executions_;
    std::deque<std::string> outcome_order_;
    struct Restarts {
        std::deque<std::chrono::steady_clock::time_point> times;
    };
    std::unordered_map<std::string, Restarts> restarts_;
    void Remember(const std::string& run_id, Result<engine::RunOutcome> outcome);
    Awaitable<void> Restart(std::string run_id, std::string reason, int attempt,
                            std::chrono::milliseconds delay);
};

// What starting a run of a registry version takes (POST /api/runs, POST /api/workflows/{id}/run).
struct StartArgs {
    const WorkflowRegistry::Entry* workflow = nullptr;
    const WorkflowRegistry::Version* version = nullptr;
    std::string input;
    bool input_json = false;  // `input` is a JSON value (the request's input was not a string)
    std::string idempotency_key;
    std::string trigger_source = "api";
    std::string metadata = "{}";  // compact JSON object
    std::string actor;
};
// Starts it (idempotency keys honoured: the same request names the same run, another body is
// 409) and stores its annotation. The response is 202 {run_id, status, workflow_id,
// workflow_version, existing: false}, or 200 with existing: true; `started` (if given) gets the
// run that answers.
Awaitable<Response> StartFromRegistry(Service* s, StartArgs args, Service::Started* started);

// ---- Helpers for handlers ----

// The request body as a JSON object; a problem response if it is not one ("" body = {}).
Result<json::object> ParseBody(const Request& request, Response& problem);
// A query parameter as a whole number in [min, max] (absent: `fallback`); a problem if not.
std::optional<int64_t> QueryInt(const Request& request, std::string_view name, int64_t fallback,
                                int64_t min, int64_t max, Response& problem);
// Problem details for a workflow definition that does not compile: every error with its field
// path and line:column.
Response DiagnosticsProblem(const std::vector<model::Diagnostic>& diagnostics);
// Whether the client asked for text/event-stream.
bool WantsEventStream(const Request& request);

void AddRunRoutes(Router& router, Service& service);
void AddWorkflowRoutes(Router& router, Service& service);
void AddAdminRoutes(Router& router, Service& service);
void AddAuditRoutes(Router& router, Service& service);
// Triggers, agent memory, webhooks and the bus's recent events (routes_triggers.cpp).
void AddAutomationRoutes(Router& router, Service& service);
// The component schemas of those routes, merged into the OpenAPI document.
extern const char* const kAutomationSchemas;

// The daemon's automation::Launcher: workflows through the registry and StartFromRegistry
// (the start's origin recorded in the run's annotation, its depth announced to the bus);
// agent turns through `agent_turns`, the one place they are forwarded (set by the daemon once
// standing agents exist; until then SendToAgent is kUnavailable).
class DaemonLauncher final : public automation::Launcher {
  public:
    DaemonLauncher(Service& service, automation::EventBus& bus) : service_(service), bus_(bus) {}
    Awaitable<Result<std::string>> StartWorkflow(std::string workflow, json::value input,
                                                 automation::Origin origin,
                                                 std::string idempotency_key) override;
    Awaitable<Result<std::string>> SendToAgent(automation::AgentMessage message,
                                               std::string idempotency_key) override;
    automation::Launcher* agent_turns = nullptr;

  private:
    Service& service_;
    automation::EventBus& bus_;
};

}  // namespace strowger::api::internal
