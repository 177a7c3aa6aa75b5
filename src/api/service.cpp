// The run operations the routes share: starting, resuming and retrying runs without holding the
// request for the whole run, waiting for a run to stop, the verified run record, supervision.
#include "api/internal/service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/json.hpp>

#include <charconv>

#include <spdlog/spdlog.h>

#include "core/strings.hpp"
#include "engine/run_view.hpp"
#include "ledger/chain.hpp"

namespace strowger::api::internal {
namespace {

constexpr size_t kOutcomesKept = 4096;
// How long a start or resume may take to commit its first event before the request gives up
// waiting (the run goes on).
constexpr std::chrono::seconds kStartWait{30};

}  // namespace

Service::Service(Executor executor_in, std::shared_ptr<store::Store> store_in,
                 engine::Engine& engine_in, WorkflowRegistry& workflows_in, EventHub& hub_in,
                 TokenRegistry& tokens_in, Metrics& metrics_in, const DaemonOptions& options_in,
                 Clock& clock_in, Random& random_in)
    : executor(std::move(executor_in)),
      store(std::move(store_in)),
      engine(engine_in),
      workflows(workflows_in),
      hub(hub_in),
      tokens(tokens_in),
      metrics(metrics_in),
      options(options_in),
      clock(clock_in),
      random(random_in) {}

void Service::Remember(const std::string& run_id, Result<engine::RunOutcome> outcome) {
    auto [it, inserted] = outcomes_.insert_or_assign(run_id, std::move(outcome));
    if (inserted) outcome_order_.push_back(run_id);
    while (outcome_order_.size() > kOutcomesKept) {
        outcomes_.erase(outcome_order_.front());
        outcome_order_.pop_front();
    }
}

const Result<engine::RunOutcome>* Service::Outcome(const std::string& run_id) const {
    auto it = outcomes_.find(run_id);
    return it == outcomes_.end() ? nullptr : &it->second;
}

engine::Engine::OutcomeHandler Service::DoneHandler(std::string run_id) {
    outcomes_.erase(run_id);  // a run resumed again has no outcome yet
    executing_.insert(run_id);
    const uint64_t execution = ++executions_[run_id];
    return [this, run_id = std::move(run_id), execution](Result<engine::RunOutcome> outcome) {
        if (auto it = executions_.find(run_id); it != executions_.end()) {
            if (it->second != execution) return;  // superseded: the newer one's counts
            executions_.erase(it);
        }
        executing_.erase(run_id);
        // An exception out of the run's execution (ThrownError) is unexpected: supervised.
        if (!outcome && outcome.error().code() == ErrorCode::kInternal) {
            Supervise(run_id, outcome.error());
        }
        Remember(run_id, std::move(outcome));
        hub.WakeRun(run_id);
    };
}

Awaitable<Result<Service::Started>> Service::StartRun(engine::StartRequest request) {
    const std::string run_id = request.run_id;
    // Its budgets, for the 85 % warnings (before the start: its first response may cross).
    if (automation.quota != nullptr && request.plan) automation.quota->Watch(run_id, *request.plan);
    // Followed before the start, so run.created cannot be missed.
    auto follower = hub.Follow(run_id, false);
    engine.StartRun(std::move(request), DoneHandler(run_id));
    const auto deadline = std::chrono::steady_clock::now() + kStartWait;
    while (true) {
        if (const auto* outcome = Outcome(run_id)) {
            // Not created (an error, or an idempotency key naming another run): not watched.
            if (automation.quota != nullptr && (!*outcome || (**outcome).existing)) {
                automation.quota->Forget(run_id);
            }
            if (!*outcome) co_return std::unexpected((*outcome).error());
            // Ended already, or an idempotency key named another run.
            const engine::RunOutcome& done = **outcome;
            if (!done.existing && done.error_code != ErrorCode::kOk &&
                done.status == ledger::RunStatus::kPending) {
                co_return MakeError(done.error_code, done.error);
            }
            co_return Started{done.run_id, done.existing, done.status};
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            co_return DeadlineExceededError("run " + run_id + " was not created in time");
        }
        auto wake = co_await follower->Wait(left);
        if (wake == EventHub::Follower::Wake::kCancelled) {
            co_return CancelledError("the request was cancelled");
        }
        // An event of the run: it was created (the outcome, if any, is checked first).
        if (wake == EventHub::Follower::Wake::kSignalled && !Outcome(run_id)) {
            co_return Started{run_id, false, ledger::RunStatus::kRunning};
        }
    }
}

Awaitable<Status> Service::ResumeRun(std::string run_id, std::string reason, std::string actor) {
    auto follower = hub.Follow(run_id, false);
    engine.ResumeRun(run_id, std::move(reason), std::move(actor), DoneHandler(run_id));
    auto wake = co_await follower->Wait(kStartWait);
    if (const auto* outcome = Outcome(run_id); outcome && !*outcome) {
        co_return std::unexpected((*outcome).error());
    }
    if (wake == EventHub::Follower::Wake::kTimeout) {
        co_return DeadlineExceededError("run " + run_id + " did not resume in time");
    }
    co_return OkStatus();
}

Awaitable<Status> Service::RetryRun(std::string run_id, std::string step, std::string actor) {
    auto follower = hub.Follow(run_id, false);
    outcomes_.erase(run_id);
    // RetryRun has no handler form: its coroutine runs on its own, the outcome goes where a
    // handler's would.
    auto done = DoneHandler(run_id);
    asio::co_spawn(executor, engine.RetryRun(run_id, std::move(step), std::move(actor)),
                   [done = std::move(done)](std::exception_ptr thrown,
                                            Result<engine::RunOutcome> outcome) mutable {
                       if (thrown) outcome = InternalError("retry threw");
                       done(std::move(outcome));
                   });
    auto wake = co_await follower->Wait(kStartWait);
    if (const auto* outcome = Outcome(run_id); outcome && !*outcome) {
        co_return std::unexpected((*outcome).error());
    }
    if (wake == EventHub::Follower::Wake::kTimeout) {
        co_return DeadlineExceededError("run " + run_id + " was not retried in time");
    }
    co_return OkStatus();
}

Awaitable<Result<store::RunRecord>> Service::WaitForStop(std::string run_id,
                                                         std::chrono::milliseconds timeout) {
    auto follower = hub.Follow(run_id, false, EventHub::Only::kStatus);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await store->GetRun(run_id));
        if (record.status != ledger::RunStatus::kRunning &&
            record.status != ledger::RunStatus::kPending) {
            co_return record;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) co_return record;
        auto wake = co_await follower->Wait(left);
        if (wake == EventHub::Follower::Wake::kCancelled) co_return record;
    }
}

Awaitable<Result<json::object>> Service::RunRecord(std::string run_id) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await engine.LoadRun(run_id));
    json::object run = engine::RunRecordJson(loaded.plan.get(), loaded.state);
    // What `strowger runs show` prints of each node, for its --server form.
    if (auto* nodes = run["nodes"].if_array()) {
        for (size_t i = 0; i < nodes->size() && i < loaded.state.nodes.size(); ++i) {
            auto& node = (*nodes)[i].as_object();
            const auto& state = loaded.state.nodes[i];
            node["input_tokens"] = state.tokens_in;
            node["output_tokens"] = state.tokens_out;
            node["duration_ms"] = state.duration_ms;
            if (state.status == ledger::NodeStatus::kCompleted) node["output"] = state.output;
        }
    }
    json::array open_tasks;
    for (const auto* task : loaded.state.OpenTasks()) {
        json::object t;
        t["task_id"] = task->task_id;
        t["kind"] = task->kind;
        t["title"] = task->title;
        if (task->node_index >= 0 &&
            static_cast<size_t>(task->node_index) < loaded.plan->nodes.size()) {
            t["step"] = loaded.plan->nodes[static_cast<size_t>(task->node_index)].id;
        }
        if (!task->tool.empty()) t["tool"] = task->tool;
        if (!task->arguments.empty()) t["arguments"] = task->arguments;
        t["created_at"] = FormatRfc3339(task->created_at);
        open_tasks.push_back(std::move(t));
    }
    run["open_tasks"] = std::move(open_tasks);
    auto annotation = co_await store->GetRunAnnotation(run_id);
    if (annotation) {
        run["workflow_id"] = annotation->workflow_id;
        run["workflow_version"] = annotation->workflow_version;
        run["trigger_source"] = annotation->trigger_source;
        auto metadata = ParseJson(annotation->metadata);
        run["metadata"] = metadata ? *metadata : json::value(json::object());
    } else if (annotation.error().code() != ErrorCode::kNotFound) {
        co_return std::unexpected(annotation.error());
    }
    co_return run;
}

Awaitable<Result<std::string>> Service::RunDetail(std::string run_id) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await store->GetRun(run_id));
    if (const std::string* cached = details_.Find(run_id, record.head)) co_return *cached;
    STROWGER_CO_ASSIGN_OR_RETURN(auto run, co_await RunRecord(run_id));
    // The events as they verified: the chain up to the head the record was replayed from.
    const int64_t events = run["events"].as_int64();
    store::EventQuery query;
    query.limit = events;
    STROWGER_CO_ASSIGN_OR_RETURN(auto stored, co_await store->ReadEvents(run_id, query));
    std::vector<std::string> lines;
    lines.reserve(stored.size());
    for (auto& event : stored) lines.push_back(std::move(event.encoded));
    ledger::ChainHead head;
    if (!lines.empty()) {
        // The head the run record was verified at is the line's own: VerifyChain checks the
        // links and every hash; the loaded state's head is what it must end at.
        auto report = ledger::VerifyChain(run_id, lines);
        if (!report.ok() || report.head.seq != events) {
            co_return DataLossError("run " + run_id + ": its events changed while being read");
        }
        head = report.head;
    }
    json::value node_runs = run["nodes"];
    run.erase("nodes");
    std::string body = "{\"run\":";
    body += json::serialize(run);
    body += ",\"node_runs\":";
    body += json::serialize(node_runs);
    body += ",\"events\":[";
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) body += ',';
        body += lines[i];
    }
    body += "]}";
    // Cached under the head it was verified at (the record read first may be older: then the
    // next read misses and verifies again).
    if (head.seq == record.head.seq && head.hash == record.head.hash) {
        details_.Put(run_id, head, body);
    }
    co_return body;
}

Awaitable<Result<json::array>> Service::OpenTasks(store::RunRecord record) {
    if (const json::array* cached = open_tasks_.Find(record.run_id, record.head)) {
        co_return *cached;
    }
    STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await engine.LoadRun(record.run_id));
    json::array tasks;
    for (const auto* task : loaded.state.OpenTasks()) {
        json::object t;
        t["run_id"] = record.run_id;
        t["workflow"] = loaded.state.workflow;
        t["task_id"] = task->task_id;
        t["kind"] = task->kind;
        t["title"] = task->title;
        if (task->node_index >= 0 &&
            static_cast<size_t>(task->node_index) < loaded.plan->nodes.size()) {
            t["step"] = loaded.plan->nodes[static_cast<size_t>(task->node_index)].id;
        }
        if (!task->tool.empty()) t["tool"] = task->tool;
        if (!task->arguments.empty()) t["arguments"] = task->arguments;
        json::array assignees;
        if (task->details) {
            for (const auto& ref : task->details->assignees) assignees.emplace_back(ref);
            t["approval_mode"] = task->details->approval_mode;
            t["required_count"] = task->details->required_count;
            t["approvals"] = static_cast<int64_t>(task->Approvals());
        }
        t["assignees"] = std::move(assignees);
        t["created_at"] = FormatRfc3339(task->created_at);
        tasks.push_back(std::move(t));
    }
    // Under the head it was verified at (a run that moved since its record was read misses
    // next time and is replayed again).
    open_tasks_.Put(record.run_id, loaded.state.head, tasks);
    co_return tasks;
}

void Service::Supervise(const std::string& run_id, const Error& error) {
    auto& history = restarts_[run_id].times;
    const auto now = std::chrono::steady_clock::now();
    while (!history.empty() && now - history.front() > options.restart_window) history.pop_front();
    const int attempt = static_cast<int>(history.size()) + 1;
    if (attempt > options.max_restarts || draining) {
        std::string reason =
            "execution failed unexpectedly " + std::to_string(attempt) + " times within " +
            std::to_string(options.restart_window.count() / 1000) + "s; last: " + error.message();
        if (draining) reason = "execution failed unexpectedly while draining: " + error.message();
        spdlog::error("run {}: {}; failing it", run_id, reason);
        if (!draining) {
            restarts_.erase(run_id);
            metrics.RunGivenUp();
            asio::co_spawn(
                executor,
                [this, run_id, reason]() -> Awaitable<void> {
                    auto failed = co_await engine.FailRun(run_id, reason, "supervisor");
                    if (!failed) {
                        spdlog::error("run {}: cannot fail it: {}", run_id,
                                      failed.error().message());
                    }
                    hub.WakeRun(run_id);
                },
                asio::detached);
        }
        return;
    }
    history.push_back(now);
    metrics.RunRestarted();
    auto delay = options.restart_backoff * (1 << std::min(attempt - 1, 10));
    std::string reason = "supervisor: restart " + std::to_string(attempt) + " of " +
                         std::to_string(options.max_restarts) + " after: " + error.message();
    spdlog::warn("run {}: {} (in {} ms)", run_id, reason, delay.count());
    asio::co_spawn(executor, Restart(run_id, std::move(reason), attempt, delay), asio::detached);
}

Awaitable<void> Service::Restart(std::string run_id, std::string reason, int,
                                 std::chrono::milliseconds delay) {
    asio::steady_timer timer(executor);
    timer.expires_after(delay);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (draining) co_return;  // the next start resumes it
    engine.ResumeRun(run_id, std::move(reason), "supervisor", DoneHandler(run_id));
}

// ---- Helpers ----

Result<json::object> ParseBody(const Request& request, Response& problem) {
    if (Trim(request.body).empty()) return json::object();
    auto parsed = ParseJson(request.body);
    if (!parsed) {
        problem = FieldProblem("body", "not valid JSON: " + parsed.error().message());
        return InvalidArgumentError("bad body");
    }
    if (!parsed->is_object()) {
        problem = FieldProblem("body", "expected a JSON object");
        return InvalidArgumentError("bad body");
    }
    return std::move(parsed->as_object());
}

std::optional<int64_t> QueryInt(const Request& request, std::string_view name, int64_t fallback,
                                int64_t min, int64_t max, Response& problem) {
    auto text = request.Query(name);
    if (!text) return fallback;
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || value < min || value > max) {
        problem =
            FieldProblem(std::string(name), "expected a whole number from " + std::to_string(min) +
                                                " to " + std::to_string(max));
        return std::nullopt;
    }
    return value;
}

Response DiagnosticsProblem(const std::vector<model::Diagnostic>& diagnostics) {
    std::vector<FieldError> errors;
    std::string first;
    for (const auto& d : diagnostics) {
        if (d.severity != model::Diagnostic::Severity::kError) continue;
        if (first.empty()) first = d.ToString();
        errors.push_back(
            FieldError{d.path.empty() ? "body" : d.path, d.message, d.pos.line, d.pos.column});
    }
    return Problem(422, "the workflow definition is not valid: " + first, std::move(errors),
                   "urn:strowger:problem:invalid-workflow");
}

bool WantsEventStream(const Request& request) {
    return request.Header("accept").find("text/event-stream") != std::string::npos ||
           request.Query("stream").value_or("") == "true";
}

}  // namespace strowger::api::internal
