#include "automation/bus.hpp"

#include <algorithm>
#include <cstdio>

#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/random.hpp"
#include "core/strings.hpp"

namespace strowger::automation {
namespace {

constexpr size_t kExcerptBytes = 120;

std::string Excerpt(std::string_view text) {
    return EscapeControl(Preview(text, kExcerptBytes), Newlines::kEscape);
}

std::string Field(const json::object& data, std::string_view key) {
    return std::string(JsonString(data, key));
}

}  // namespace

std::string_view EventKindName(EventKind kind) {
    switch (kind) {
        case EventKind::kLifecycle:
            return "lifecycle";
        case EventKind::kNode:
            return "node";
        case EventKind::kTool:
            return "tool";
        case EventKind::kTask:
            return "task";
        case EventKind::kSystem:
            return "system";
        case EventKind::kMemory:
            return "memory";
    }
    return "system";
}

EventBus::EventBus(Clock& clock, size_t keep_recent) : clock_(clock), keep_recent_(keep_recent) {
    // Ids of events that are not ledger events: unique per process start (a ULID prefix) and
    // cheap (a counter).
    id_prefix_ = "evt_" + NewRunId(clock_, Random::Real()) + "_";
}

void EventBus::Publish(BusEvent event) {
    if (event.id.empty()) event.id = id_prefix_ + std::to_string(++next_id_);
    if (event.time == SystemTime{}) event.time = clock_.Now();
    ++published_;
    for (const auto& subscriber : subscribers_) subscriber(event);
    if (keep_recent_ == 0) return;
    if (recent_.size() >= keep_recent_) recent_.pop_front();
    recent_.push_back(std::move(event));
}

std::vector<BusEvent> EventBus::Recent(size_t limit) const {
    size_t n = std::min(limit, recent_.size());
    return std::vector<BusEvent>(recent_.end() - static_cast<std::ptrdiff_t>(n), recent_.end());
}

void EventBus::ExpectStart(const std::string& idempotency_key, int depth) {
    if (!idempotency_key.empty()) expected_[idempotency_key] = depth;
}

int EventBus::TakeExpectedDepth(const std::string& idempotency_key) {
    auto it = expected_.find(idempotency_key);
    if (it == expected_.end()) return -1;
    int depth = it->second;
    expected_.erase(it);
    return depth;
}

int EventBus::RunDepth(const std::string& run_id) const {
    auto it = depths_.find(run_id);
    return it == depths_.end() ? 0 : it->second;
}

void EventBus::SetRunDepth(const std::string& run_id, int depth) {
    if (depth > 0) depths_[run_id] = depth;
}

void EventBus::ForgetRun(const std::string& run_id) {
    depths_.erase(run_id);
}

void BusFeeder::NoteRun(const std::string& run_id, const std::string& workflow, int depth) {
    RunInfo& run = runs_[run_id];
    run.workflow = workflow;
    run.agent = StartsWith(workflow, "agent:") ? workflow.substr(6) : std::string();
    bus_.SetRunDepth(run_id, depth);
}

void BusFeeder::OnEvent(const ledger::Event& event) {
    using ledger::EventType;
    switch (event.type) {
        case EventType::kLlmRequest:
        case EventType::kLlmResponse:
        case EventType::kNodeIterationCompleted:
        case EventType::kNodeRetryScheduled:
        case EventType::kNodeSkipped:
        case EventType::kRunRetried:
        case EventType::kNodeSignal:
        case EventType::kNodeCancelled:
        case EventType::kRouterDecided:
        case EventType::kConditionEvaluated:
        case EventType::kGateEvaluated:
        case EventType::kMetricEvaluated:
        case EventType::kSubworkflowStarted:
        case EventType::kItemCompleted:
        case EventType::kUnknown:
            return;  // not on the bus (nothing parsed for them)
        default:
            break;
    }
    json::object data;
    if (!event.data.empty() && event.type != EventType::kRunStarted &&
        event.type != EventType::kNodeStarted) {
        if (auto parsed = ParseJson(event.data); parsed && parsed->is_object()) {
            data = std::move(parsed->as_object());
        }
    }
    BusEvent out;
    out.id = event.run_id + ":" + std::to_string(event.seq);
    out.run_id = event.run_id;
    out.subject = event.run_id;
    out.time = event.time;
    RunInfo& run = runs_[event.run_id];
    if (event.type == EventType::kRunCreated) {
        run.workflow = Field(data, "workflow");
        if (StartsWith(run.workflow, "agent:")) run.agent = run.workflow.substr(6);
        int depth = bus_.TakeExpectedDepth(Field(data, "idempotency_key"));
        std::string parent = Field(data, "parent_run");
        if (depth < 0 && !parent.empty()) depth = bus_.RunDepth(parent);
        bus_.SetRunDepth(event.run_id, std::max(depth, 0));
    }
    out.depth = bus_.RunDepth(event.run_id);
    const std::string& id = event.run_id;
    const bool agent = !run.agent.empty();
    auto lifecycle = [&](std::string type, std::string description) {
        out.kind = EventKind::kLifecycle;
        out.type = std::move(type);
        out.agent = run.agent;
        if (agent) out.subject = run.agent;
        out.description = std::move(description);
    };
    const std::string of_workflow = "Run " + id + " of workflow '" + run.workflow + "'";
    bool terminal = false;
    switch (event.type) {
        case EventType::kRunCreated:
            if (agent) {
                lifecycle("agent_spawned",
                          "Agent '" + run.agent + "' (id: " + id + ") was spawned");
            } else {
                lifecycle("run_created", of_workflow + " was created");
            }
            break;
        case EventType::kRunStarted:
            lifecycle("run_started", agent ? "Agent '" + run.agent + "' (id: " + id + ") started"
                                           : of_workflow + " started");
            break;
        case EventType::kRunResumed:
            lifecycle("run_resumed", of_workflow + " resumed: " + Field(data, "reason"));
            break;
        case EventType::kRunPaused:
            lifecycle("run_paused", of_workflow + " paused: " + Field(data, "reason"));
            break;
        case EventType::kRunCompleted:
            terminal = true;
            if (agent) {
                lifecycle("agent_terminated", "Agent " + id + " terminated: completed");
            } else {
                lifecycle("run_completed",
                          of_workflow + " completed: " + Excerpt(Field(data, "output")));
            }
            break;
        case EventType::kRunCancelled:
            terminal = true;
            if (agent) {
                lifecycle("agent_terminated",
                          "Agent " + id + " terminated: cancelled: " + Field(data, "reason"));
            } else {
                lifecycle("run_cancelled",
                          of_workflow + " was cancelled: " + Field(data, "reason"));
            }
            break;
        case EventType::kRunFailed:
            terminal = true;
            if (agent) {
                lifecycle("agent_crashed", "Agent " + id + " crashed: " + Field(data, "error"));
            } else {
                lifecycle("run_failed", of_workflow + " failed: " + Field(data, "error"));
            }
            break;
        case EventType::kNodeStarted:
            out.kind = EventKind::kNode;
            out.type = "node_started";
            out.description = "Node '" + event.node + "' of run " + id + " started";
            break;
        case EventType::kNodeCompleted:
            out.kind = EventKind::kNode;
            out.type = "node_completed";
            out.description = "Node '" + event.node + "' of run " + id + " completed (" +
                              std::to_string(JsonInt(data, "duration_ms")) +
                              "ms): " + Excerpt(Field(data, "output"));
            break;
        case EventType::kNodeFailed:
            out.kind = EventKind::kNode;
            out.type = "node_failed";
            out.description =
                "Node '" + event.node + "' of run " + id + " failed: " + Field(data, "error");
            if (Field(data, "code") == "unavailable") {
                // Also a system event: the model's provider did not answer.
                BusEvent system = out;
                system.id += ":system";
                system.kind = EventKind::kSystem;
                system.type = "provider_unreachable";
                system.subject = "provider";
                system.description = "Provider unreachable: run " + id + ", node '" + event.node +
                                     "': " + Field(data, "error");
                bus_.Publish(std::move(system));
            }
            break;
        case EventType::kLlmRetried:
            if (Field(data, "code") != "unavailable") return;
            out.kind = EventKind::kSystem;
            out.type = "provider_unreachable";
            out.subject = "provider";
            out.description = "Provider unreachable: run " + id + ", node '" + event.node +
                              "' (try " + std::to_string(JsonInt(data, "try")) +
                              "): " + Field(data, "error");
            break;
        case EventType::kToolCall:
            run.calls[Field(data, "call_id")] = Field(data, "tool");
            return;
        case EventType::kToolResult: {
            auto call = run.calls.find(Field(data, "call_id"));
            std::string tool = call == run.calls.end() ? "?" : call->second;
            if (call != run.calls.end()) run.calls.erase(call);
            bool failed = JsonBool(data, "is_error");
            out.kind = EventKind::kTool;
            out.type = failed ? "tool_failed" : "tool_succeeded";
            out.subject = tool;
            out.description = "Tool '" + tool + "' " + (failed ? "failed" : "succeeded") + " (" +
                              std::to_string(JsonInt(data, "duration_ms")) +
                              "ms): " + Excerpt(Field(data, "content"));
            break;
        }
        case EventType::kHumanTaskCreated: {
            std::string task = Field(data, "task_id");
            std::string kind = Field(data, "kind");
            run.tasks[task] = kind.empty() ? "task" : kind;
            out.kind = EventKind::kTask;
            out.type = "task_posted";
            out.subject = task;
            out.description =
                "Task " + task + " posted in run " + id + ": " + Excerpt(Field(data, "title"));
            break;
        }
        case EventType::kHumanTaskDecided: {
            std::string task = Field(data, "task_id");
            std::string actor = Field(data, "actor");
            out.kind = EventKind::kTask;
            out.type = "task_claimed";
            out.subject = task;
            out.description = "Task " + task + " claimed by " +
                              (actor.empty() ? std::string("someone") : actor) + ": " +
                              Field(data, "decision");
            auto kind = run.tasks.find(task);
            if (kind != run.tasks.end() && kind->second != "task") {
                // An approval or a reconciliation is done once decided.
                bus_.Publish(out);
                out.id += ":completed";
                out.type = "task_completed";
                out.description = "Task " + task + " completed: " + Field(data, "decision");
                run.tasks.erase(kind);
            }
            break;
        }
        case EventType::kHumanTaskCompleted: {
            std::string task = Field(data, "task_id");
            run.tasks.erase(task);
            out.kind = EventKind::kTask;
            out.type = "task_completed";
            out.subject = task;
            out.description = "Task " + task + " completed: " + Field(data, "signal");
            break;
        }
        case EventType::kBudgetExceeded: {
            out.kind = EventKind::kSystem;
            out.type = "quota_exceeded";
            out.subject = agent ? run.agent : id;
            std::string who = agent ? "agent '" + run.agent + "'" : "run " + id;
            out.description = "Quota warning: " + who + ", " + Field(data, "limit") +
                              " at 100.0% (" + Field(data, "used") + " of " + Field(data, "max") +
                              ", scope " + Field(data, "scope") + ")";
            break;
        }
        default:
            return;
    }
    bus_.Publish(std::move(out));
    if (terminal) {
        runs_.erase(event.run_id);
        bus_.ForgetRun(event.run_id);
    }
}

}  // namespace strowger::automation
