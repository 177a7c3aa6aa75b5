#include "ledger/event.hpp"

#include <boost/json.hpp>

#include <array>
#include <charconv>
#include <cstring>
#include <iterator>

#include "core/json.hpp"
#include "core/overloaded.hpp"

namespace strowger::ledger {
namespace {

constexpr std::array<std::string_view, static_cast<size_t>(EventType::kUnknown)> kTypeNames = {
    "run.created",
    "run.started",
    "run.resumed",
    "run.paused",
    "run.cancelled",
    "run.completed",
    "run.failed",
    "node.started",
    "llm.request",
    "llm.response",
    "node.iteration_completed",
    "node.completed",
    "node.retry_scheduled",
    "node.failed",
    "node.skipped",
    "run.retried",
    "tool.call",
    "tool.result",
    "human_task.created",
    "human_task.decided",
    "budget.exceeded",
    "llm.retried",
    "node.signal",
    "node.cancelled",
    "router.decided",
    "condition.evaluated",
    "gate.evaluated",
    "metric.evaluated",
    "human_task.completed",
    "subworkflow.started",
    "for_each.item_completed",
    "subworkflow.ended",
    "session.compacted",
};

void OptionalField(JsonWriter& w, std::string_view key, const std::string& value) {
    if (!value.empty()) w.Field(key, value);
}

std::string Str(const json::object& o, std::string_view key) {
    return std::string(JsonString(o, key));
}

}  // namespace

std::string_view EventTypeName(EventType type) {
    auto index = static_cast<size_t>(type);
    return index < kTypeNames.size() ? kTypeNames[index] : "unknown";
}

EventType EventTypeFromName(std::string_view name) {
    for (size_t i = 0; i < kTypeNames.size(); ++i) {
        if (kTypeNames[i] == name) return static_cast<EventType>(i);
    }
    return EventType::kUnknown;
}

size_t FormatUsdTo(char* out, int64_t nano_usd) {
    const bool negative = nano_usd < 0;
    const uint64_t v =
        negative ? static_cast<uint64_t>(-(nano_usd + 1)) + 1 : static_cast<uint64_t>(nano_usd);
    char* p = out;
    if (negative) *p++ = '-';
    p = std::to_chars(p, out + kUsdSize, v / 1000000000ull).ptr;
    *p++ = '.';
    // Nine digits of fraction, then the trailing zeros dropped (one digit stays: "0.0").
    uint64_t fraction = v % 1000000000ull;
    for (int i = 8; i >= 0; --i) {
        p[i] = static_cast<char>('0' + fraction % 10);
        fraction /= 10;
    }
    size_t digits = 9;
    while (digits > 1 && p[digits - 1] == '0') --digits;
    return static_cast<size_t>(p + digits - out);
}

std::string FormatUsd(int64_t nano_usd) {
    char text[kUsdSize];
    return std::string(text, FormatUsdTo(text, nano_usd));
}

Result<int64_t> ParseUsd(std::string_view text) {
    bool negative = !text.empty() && text[0] == '-';
    if (negative) text.remove_prefix(1);
    auto dot = text.find('.');
    std::string_view whole = text.substr(0, dot);
    std::string_view fraction =
        dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
    if (whole.empty() || fraction.size() > 9) return InvalidArgumentError("bad USD amount");
    int64_t w = 0;
    auto [p1, e1] = std::from_chars(whole.data(), whole.data() + whole.size(), w);
    if (e1 != std::errc() || p1 != whole.data() + whole.size())
        return InvalidArgumentError("bad USD amount");
    int64_t f = 0;
    if (!fraction.empty()) {
        auto [p2, e2] = std::from_chars(fraction.data(), fraction.data() + fraction.size(), f);
        if (e2 != std::errc() || p2 != fraction.data() + fraction.size()) {
            return InvalidArgumentError("bad USD amount");
        }
        for (size_t i = fraction.size(); i < 9; ++i) f *= 10;
    }
    int64_t nanos = 0;
    if (__builtin_mul_overflow(w, int64_t{1000000000}, &nanos) ||
        __builtin_add_overflow(nanos, f, &nanos)) {
        return InvalidArgumentError("bad USD amount");
    }
    return negative ? -nanos : nanos;
}

EventType TypeOf(const Payload& payload) {
    return std::visit(
        Overloaded{
            [](const RunCreated&) { return EventType::kRunCreated; },
            [](const RunStarted&) { return EventType::kRunStarted; },
            [](const RunResumed&) { return EventType::kRunResumed; },
            [](const RunPaused&) { return EventType::kRunPaused; },
            [](const RunCancelled&) { return EventType::kRunCancelled; },
            [](const RunCompleted&) { return EventType::kRunCompleted; },
            [](const RunFailed&) { return EventType::kRunFailed; },
            [](const NodeStarted&) { return EventType::kNodeStarted; },
            [](const LlmRequest&) { return EventType::kLlmRequest; },
            [](const LlmResponse&) { return EventType::kLlmResponse; },
            [](const NodeIterationCompleted&) { return EventType::kNodeIterationCompleted; },
            [](const NodeCompleted&) { return EventType::kNodeCompleted; },
            [](const NodeRetryScheduled&) { return EventType::kNodeRetryScheduled; },
            [](const NodeFailed&) { return EventType::kNodeFailed; },
            [](const NodeSkipped&) { return EventType::kNodeSkipped; },
            [](const RunRetried&) { return EventType::kRunRetried; },
            [](const ToolCall&) { return EventType::kToolCall; },
            [](const ToolResult&) { return EventType::kToolResult; },
            [](const HumanTaskCreated&) { return EventType::kHumanTaskCreated; },
            [](const HumanTaskDecided&) { return EventType::kHumanTaskDecided; },
            [](const BudgetExceeded&) { return EventType::kBudgetExceeded; },
            [](const LlmRetried&) { return EventType::kLlmRetried; },
            [](const NodeSignal&) { return EventType::kNodeSignal; },
            [](const NodeCancelled&) { return EventType::kNodeCancelled; },
            [](const RouterDecided&) { return EventType::kRouterDecided; },
            [](const ConditionEvaluated&) { return EventType::kConditionEvaluated; },
            [](const GateEvaluated&) { return EventType::kGateEvaluated; },
            [](const MetricEvaluated&) { return EventType::kMetricEvaluated; },
            [](const HumanTaskCompleted&) { return EventType::kHumanTaskCompleted; },
            [](const SubworkflowStarted&) { return EventType::kSubworkflowStarted; },
            [](const SubworkflowEnded&) { return EventType::kSubworkflowEnded; },
            [](const ItemCompleted&) { return EventType::kItemCompleted; },
            [](const SessionCompacted&) { return EventType::kSessionCompacted; },
            [](const UnknownPayload&) { return EventType::kUnknown; },
        },
        payload);
}

namespace {

// A child run's caps (run.created, subworkflow.started): `max_cost_usd` then `max_tokens`,
// each only if set — consecutive in both payloads' canonical key order.
void CapFields(JsonWriter& w, const std::optional<int64_t>& max_tokens,
               const std::optional<int64_t>& max_cost_nano_usd) {
    if (max_cost_nano_usd) {
        char cost[kUsdSize];
        w.Field("max_cost_usd", std::string_view(cost, FormatUsdTo(cost, *max_cost_nano_usd)));
    }
    if (max_tokens) w.Field("max_tokens", *max_tokens);
}

Status ReadCaps(const json::object& o, std::optional<int64_t>& max_tokens,
                std::optional<int64_t>& max_cost_nano_usd) {
    if (o.contains("max_tokens")) max_tokens = JsonInt(o, "max_tokens");
    if (o.contains("max_cost_usd")) {
        auto cost = ParseUsd(JsonString(o, "max_cost_usd", "0"));
        if (!cost) return std::unexpected(cost.error());
        max_cost_nano_usd = *cost;
    }
    return OkStatus();
}

}  // namespace

std::string EncodePayload(const Payload& payload) {
    std::string out;
    out.reserve(128);
    AppendPayload(out, payload);
    return out;
}

// Keys are written in sorted order by hand; ledger_test checks the output is canonical.
void AppendPayload(std::string& out, const Payload& payload) {
    JsonWriter w(out);
    std::visit(
        Overloaded{
            [&](const RunCreated& p) {
                w.BeginObject();
                OptionalField(w, "actor", p.actor);
                w.Field("definition_sha256", p.definition_sha256);
                OptionalField(w, "idempotency_key", p.idempotency_key);
                w.Field("input", p.input);
                CapFields(w, p.max_tokens, p.max_cost_nano_usd);
                OptionalField(w, "parent_node", p.parent_node);
                OptionalField(w, "parent_run", p.parent_run);
                OptionalField(w, "rerun_of", p.rerun_of);
                w.Field("workflow", p.workflow).EndObject();
            },
            [&](const RunStarted&) { w.BeginObject().EndObject(); },
            [&](const RunResumed& p) {
                w.BeginObject();
                OptionalField(w, "actor", p.actor);
                w.Field("reason", p.reason).EndObject();
            },
            [&](const RunPaused& p) {
                w.BeginObject();
                OptionalField(w, "actor", p.actor);
                w.Field("reason", p.reason).EndObject();
            },
            [&](const RunCancelled& p) {
                w.BeginObject();
                OptionalField(w, "actor", p.actor);
                w.Field("reason", p.reason).EndObject();
            },
            [&](const RunCompleted& p) { w.BeginObject().Field("output", p.output).EndObject(); },
            [&](const RunFailed& p) {
                w.BeginObject().Field("code", p.code).Field("error", p.error);
                OptionalField(w, "node", p.node);
                w.EndObject();
            },
            [&](const NodeStarted& p) {
                w.BeginObject();
                if (p.iteration > 0) w.Field("iteration", p.iteration);
                w.EndObject();
            },
            [&](const LlmRequest& p) {
                w.BeginObject();
                OptionalField(w, "label", p.label);
                w.Field("model", p.model)
                    .Field("prompt", p.prompt)
                    .Field("provider", p.provider)
                    .Field("system_prompt", p.system_prompt)
                    .Field("turn", p.turn)
                    .EndObject();
            },
            [&](const LlmResponse& p) {
                char cost[kUsdSize];
                w.BeginObject()
                    .Field("content", p.content)
                    .Field("cost_usd", std::string_view(cost, FormatUsdTo(cost, p.cost_nano_usd)))
                    .Field("finish_reason", p.finish_reason);
                OptionalField(w, "label", p.label);
                w.Field("latency_ms", p.latency_ms)
                    .Field("tokens_in", p.tokens_in)
                    .Field("tokens_out", p.tokens_out);
                if (!p.tool_calls.empty()) {
                    w.Key("tool_calls").BeginArray();
                    for (const auto& call : p.tool_calls) {
                        w.BeginObject()
                            .Field("arguments", call.arguments)
                            .Field("id", call.id)
                            .Field("name", call.name)
                            .EndObject();
                    }
                    w.EndArray();
                }
                w.Field("turn", p.turn).EndObject();
            },
            [&](const NodeIterationCompleted& p) {
                w.BeginObject()
                    .Field("duration_ms", p.duration_ms)
                    .Field("iteration", p.iteration)
                    .Field("output", p.output)
                    .Field("tokens_in", p.tokens_in)
                    .Field("tokens_out", p.tokens_out)
                    .EndObject();
            },
            [&](const NodeCompleted& p) {
                w.BeginObject();
                if (!p.detail.empty()) w.Key("detail").Raw(p.detail);
                w.Field("duration_ms", p.duration_ms);
                if (p.iterations > 0) w.Field("iterations", p.iterations);
                w.Field("output", p.output);
                OptionalField(w, "signal", p.signal);
                w.Field("tokens_in", p.tokens_in).Field("tokens_out", p.tokens_out).EndObject();
            },
            [&](const NodeRetryScheduled& p) {
                w.BeginObject()
                    .Field("code", p.code)
                    .Field("delay_ms", p.delay_ms)
                    .Field("due", FormatRfc3339(p.due))
                    .Field("error", p.error);
                if (p.iteration > 0) w.Field("iteration", p.iteration);
                w.EndObject();
            },
            [&](const NodeFailed& p) {
                w.BeginObject().Field("code", p.code).Field("error", p.error).EndObject();
            },
            [&](const NodeSkipped& p) {
                w.BeginObject();
                OptionalField(w, "error", p.error);
                w.Field("reason", p.reason).EndObject();
            },
            [&](const RunRetried& p) {
                w.BeginObject();
                OptionalField(w, "actor", p.actor);
                w.Key("cleared").BeginArray();
                for (const auto& node : p.cleared) w.String(node);
                w.EndArray();
                OptionalField(w, "from_step", p.from_step);
                w.EndObject();
            },
            [&](const ToolCall& p) {
                w.BeginObject()
                    .Field("arguments", p.arguments)
                    .Field("call_id", p.call_id)
                    .Field("idempotency_key", p.idempotency_key)
                    .Field("safety", p.safety)
                    .Field("tool", p.tool)
                    .Field("turn", p.turn)
                    .EndObject();
            },
            [&](const ToolResult& p) {
                w.BeginObject()
                    .Field("call_id", p.call_id)
                    .Field("content", p.content)
                    .Field("duration_ms", p.duration_ms)
                    .Field("is_error", p.is_error)
                    .EndObject();
            },
            [&](const HumanTaskCreated& p) {
                w.BeginObject();
                OptionalField(w, "arguments", p.arguments);
                OptionalField(w, "call_id", p.call_id);
                if (const TaskDetails* d = p.details.get()) {
                    w.Key("details").BeginObject();
                    w.Field("approval_mode", d->approval_mode);
                    w.Key("assignees").BeginArray();
                    for (const auto& a : d->assignees) w.String(a);
                    w.EndArray();
                    OptionalField(w, "default_output", d->default_output);
                    OptionalField(w, "default_signal", d->default_signal);
                    OptionalField(w, "description", d->description);
                    if (d->due) w.Field("due", FormatRfc3339(*d->due));
                    OptionalField(w, "on_timeout", d->on_timeout);
                    w.Field("required_count", d->required_count);
                    w.EndObject();
                }
                w.Field("kind", p.kind).Field("task_id", p.task_id).Field("title", p.title);
                OptionalField(w, "tool", p.tool);
                w.EndObject();
            },
            [&](const HumanTaskDecided& p) {
                w.BeginObject();
                OptionalField(w, "actor", p.actor);
                OptionalField(w, "comment", p.comment);
                w.Field("decision", p.decision);
                OptionalField(w, "idempotency_key", p.idempotency_key);
                OptionalField(w, "output", p.output);
                w.Field("task_id", p.task_id).EndObject();
            },
            [&](const BudgetExceeded& p) {
                w.BeginObject()
                    .Field("limit", p.limit)
                    .Field("max", p.max)
                    .Field("scope", p.scope)
                    .Field("used", p.used)
                    .EndObject();
            },
            [&](const LlmRetried& p) {
                w.BeginObject()
                    .Field("code", p.code)
                    .Field("delay_ms", p.delay_ms)
                    .Field("error", p.error);
                if (p.http_status > 0) w.Field("http_status", p.http_status);
                w.Field("try", p.try_number).Field("turn", p.turn).EndObject();
            },
            [&](const NodeSignal& p) {
                w.BeginObject();
                OptionalField(w, "reason", p.reason);
                w.Field("signal", p.signal).EndObject();
            },
            [&](const NodeCancelled& p) { w.BeginObject().Field("reason", p.reason).EndObject(); },
            [&](const RouterDecided& p) {
                w.BeginObject().Field("branch", p.branch);
                if (p.fallback) w.Field("fallback", true);
                w.Field("reason", p.reason).Field("strategy", p.strategy).EndObject();
            },
            [&](const ConditionEvaluated& p) {
                w.BeginObject()
                    .Field("left", p.left)
                    .Field("operator", p.op)
                    .Field("result", p.result)
                    .Field("right", p.right)
                    .EndObject();
            },
            [&](const GateEvaluated& p) {
                w.BeginObject().Field("criterion", p.criterion);
                OptionalField(w, "detail", p.detail);
                w.Field("method", p.method).Field("passed", p.passed).EndObject();
            },
            [&](const MetricEvaluated& p) {
                w.BeginObject()
                    .Field("bound", p.bound)
                    .Field("metric", p.metric)
                    .Field("passed", p.passed)
                    .Field("threshold", p.threshold)
                    .Field("value", p.value)
                    .EndObject();
            },
            [&](const HumanTaskCompleted& p) {
                w.BeginObject()
                    .Field("output", p.output)
                    .Field("reason", p.reason)
                    .Field("signal", p.signal)
                    .Field("task_id", p.task_id)
                    .EndObject();
            },
            [&](const SubworkflowStarted& p) {
                w.BeginObject()
                    .Field("child_run_id", p.child_run_id)
                    .Field("definition_sha256", p.definition_sha256);
                if (p.index >= 0) w.Field("index", p.index);
                CapFields(w, p.max_tokens, p.max_cost_nano_usd);
                w.Field("workflow", p.workflow).EndObject();
            },
            [&](const SubworkflowEnded& p) {
                char cost[kUsdSize];
                w.BeginObject()
                    .Field("child_run_id", p.child_run_id)
                    .Field("cost_usd", std::string_view(cost, FormatUsdTo(cost, p.cost_nano_usd)));
                if (p.index >= 0) w.Field("index", p.index);
                w.Field("status", p.status)
                    .Field("tokens_in", p.tokens_in)
                    .Field("tokens_out", p.tokens_out)
                    .EndObject();
            },
            [&](const ItemCompleted& p) {
                w.BeginObject();
                OptionalField(w, "error", p.error);
                if (p.failed) w.Field("failed", true);
                w.Field("index", p.index).Field("output", p.output).EndObject();
            },
            [&](const SessionCompacted& p) {
                w.BeginObject()
                    .Field("dropped_messages", p.dropped_messages)
                    .Field("dropped_tokens", p.dropped_tokens)
                    .Field("kept_messages", p.kept_messages)
                    .Field("kept_tokens", p.kept_tokens)
                    .Field("max_history_tokens", p.max_history_tokens)
                    .Field("session_id", p.session_id)
                    .Field("summary_sha256", p.summary_sha256)
                    .EndObject();
            },
            [&](const UnknownPayload& p) { out += p.data.empty() ? "{}" : p.data; },
        },
        payload);
}

void ForEachText(Payload& payload, const std::function<void(std::string&)>& edit) {
    std::visit(Overloaded{
                   [&](RunCreated& p) { edit(p.input); },
                   [&](RunResumed& p) { edit(p.reason); },
                   [&](RunPaused& p) { edit(p.reason); },
                   [&](RunCancelled& p) { edit(p.reason); },
                   [&](RunCompleted& p) { edit(p.output); },
                   [&](RunFailed& p) { edit(p.error); },
                   [&](LlmRequest& p) {
                       edit(p.system_prompt);
                       edit(p.prompt);
                   },
                   [&](LlmResponse& p) {
                       edit(p.content);
                       for (auto& call : p.tool_calls) edit(call.arguments);
                   },
                   [&](ToolCall& p) { edit(p.arguments); },
                   [&](ToolResult& p) { edit(p.content); },
                   [&](HumanTaskCreated& p) {
                       edit(p.title);
                       edit(p.arguments);
                   },
                   [&](HumanTaskDecided& p) {
                       edit(p.comment);
                       edit(p.output);
                   },
                   [&](NodeIterationCompleted& p) { edit(p.output); },
                   [&](NodeCompleted& p) { edit(p.output); },
                   [&](NodeRetryScheduled& p) { edit(p.error); },
                   [&](NodeFailed& p) { edit(p.error); },
                   [&](NodeSkipped& p) { edit(p.error); },
                   [&](LlmRetried& p) { edit(p.error); },
                   [&](NodeSignal& p) { edit(p.reason); },
                   [&](RouterDecided& p) { edit(p.reason); },
                   [&](ConditionEvaluated& p) {
                       edit(p.left);
                       edit(p.right);
                   },
                   [&](GateEvaluated& p) { edit(p.detail); },
                   [&](HumanTaskCompleted& p) { edit(p.output); },
                   [&](ItemCompleted& p) {
                       edit(p.output);
                       edit(p.error);
                   },
                   [](auto&) {},
               },
               payload);
}

Result<Payload> DecodePayload(EventType type, std::string_view type_name, std::string_view data) {
    auto parsed = ParseJson(data);
    if (!parsed || !parsed->is_object()) {
        return DataLossError("event data is not a JSON object");
    }
    const json::object& o = parsed->get_object();
    switch (type) {
        case EventType::kRunCreated: {
            RunCreated created{Str(o, "workflow"),    Str(o, "definition_sha256"),
                               Str(o, "input"),       Str(o, "idempotency_key"),
                               Str(o, "rerun_of"),    Str(o, "parent_run"),
                               Str(o, "parent_node"), Str(o, "actor")};
            STROWGER_TRY(ReadCaps(o, created.max_tokens, created.max_cost_nano_usd));
            return created;
        }
        case EventType::kRunStarted:
            return RunStarted{};
        case EventType::kRunResumed:
            return RunResumed{Str(o, "reason"), Str(o, "actor")};
        case EventType::kRunPaused:
            return RunPaused{Str(o, "reason"), Str(o, "actor")};
        case EventType::kRunCancelled:
            return RunCancelled{Str(o, "reason"), Str(o, "actor")};
        case EventType::kRunCompleted:
            return RunCompleted{Str(o, "output")};
        case EventType::kRunFailed:
            return RunFailed{Str(o, "error"), Str(o, "code"), Str(o, "node")};
        case EventType::kNodeStarted:
            return NodeStarted{JsonInt(o, "iteration")};
        case EventType::kLlmRequest:
            return LlmRequest{Str(o, "provider"), Str(o, "model"),       Str(o, "system_prompt"),
                              Str(o, "prompt"),   JsonInt(o, "turn", 1), Str(o, "label")};
        case EventType::kLlmResponse: {
            auto cost = ParseUsd(JsonString(o, "cost_usd", "0"));
            LlmResponse response{Str(o, "content"),       {},
                                 JsonInt(o, "tokens_in"), JsonInt(o, "tokens_out"),
                                 cost ? *cost : 0,        JsonInt(o, "latency_ms"),
                                 Str(o, "finish_reason"), JsonInt(o, "turn", 1),
                                 Str(o, "label")};
            if (const json::array* calls = JsonArray(o, "tool_calls")) {
                for (const auto& call : *calls) {
                    if (!call.is_object()) continue;
                    const auto& c = call.get_object();
                    response.tool_calls.push_back(
                        {Str(c, "id"), Str(c, "name"), Str(c, "arguments")});
                }
            }
            return response;
        }
        case EventType::kNodeIterationCompleted:
            return NodeIterationCompleted{JsonInt(o, "iteration", 1), Str(o, "output"),
                                          JsonInt(o, "tokens_in"), JsonInt(o, "tokens_out"),
                                          JsonInt(o, "duration_ms")};
        case EventType::kNodeCompleted: {
            NodeCompleted completed{Str(o, "output"),
                                    JsonInt(o, "tokens_in"),
                                    JsonInt(o, "tokens_out"),
                                    JsonInt(o, "duration_ms"),
                                    JsonInt(o, "iterations"),
                                    Str(o, "signal"),
                                    {}};
            if (const json::value* detail = o.if_contains("detail")) {
                auto text = CanonicalJson(*detail);
                if (!text) return DataLossError("node.completed: detail is not canonical");
                completed.detail = std::move(*text);
            }
            return completed;
        }
        case EventType::kNodeRetryScheduled: {
            auto due = ParseRfc3339(JsonString(o, "due"));
            if (!due) return DataLossError("node.retry_scheduled: bad due time");
            return NodeRetryScheduled{Str(o, "error"), Str(o, "code"), JsonInt(o, "delay_ms"), *due,
                                      JsonInt(o, "iteration")};
        }
        case EventType::kNodeFailed:
            return NodeFailed{Str(o, "error"), Str(o, "code")};
        case EventType::kNodeSkipped:
            return NodeSkipped{Str(o, "reason"), Str(o, "error")};
        case EventType::kRunRetried: {
            RunRetried retried{Str(o, "from_step"), {}, Str(o, "actor")};
            if (const json::array* cleared = JsonArray(o, "cleared")) {
                for (const auto& node : *cleared) {
                    if (node.is_string()) retried.cleared.emplace_back(node.get_string());
                }
            }
            return retried;
        }
        case EventType::kToolCall:
            return ToolCall{Str(o, "call_id"),         Str(o, "tool"),   Str(o, "arguments"),
                            Str(o, "idempotency_key"), Str(o, "safety"), JsonInt(o, "turn", 1)};
        case EventType::kToolResult:
            return ToolResult{Str(o, "call_id"), Str(o, "content"), JsonBool(o, "is_error"),
                              JsonInt(o, "duration_ms")};
        case EventType::kHumanTaskCreated: {
            HumanTaskCreated created{
                Str(o, "task_id"), Str(o, "kind"),      Str(o, "title"), Str(o, "call_id"),
                Str(o, "tool"),    Str(o, "arguments"), nullptr};
            if (const json::object* d = JsonObject(o, "details")) {
                auto details = std::make_shared<TaskDetails>();
                details->description = Str(*d, "description");
                if (const json::array* assignees = JsonArray(*d, "assignees")) {
                    for (const auto& a : *assignees) {
                        if (a.is_string()) details->assignees.emplace_back(a.get_string());
                    }
                }
                details->approval_mode = Str(*d, "approval_mode");
                details->required_count = JsonInt(*d, "required_count", 1);
                if (d->contains("due")) {
                    auto due = ParseRfc3339(JsonString(*d, "due"));
                    if (!due) return DataLossError("human_task.created: bad due time");
                    details->due = *due;
                }
                details->on_timeout = Str(*d, "on_timeout");
                details->default_signal = Str(*d, "default_signal");
                details->default_output = Str(*d, "default_output");
                created.details = std::move(details);
            }
            return created;
        }
        case EventType::kHumanTaskDecided:
            return HumanTaskDecided{Str(o, "task_id"), Str(o, "decision"),
                                    Str(o, "actor"),   Str(o, "comment"),
                                    Str(o, "output"),  Str(o, "idempotency_key")};
        case EventType::kNodeSignal:
            return NodeSignal{Str(o, "signal"), Str(o, "reason")};
        case EventType::kNodeCancelled:
            return NodeCancelled{Str(o, "reason")};
        case EventType::kRouterDecided:
            return RouterDecided{Str(o, "strategy"), Str(o, "branch"), Str(o, "reason"),
                                 JsonBool(o, "fallback")};
        case EventType::kConditionEvaluated:
            return ConditionEvaluated{Str(o, "left"), Str(o, "operator"), Str(o, "right"),
                                      JsonBool(o, "result")};
        case EventType::kGateEvaluated:
            return GateEvaluated{Str(o, "criterion"), Str(o, "method"), JsonBool(o, "passed"),
                                 Str(o, "detail")};
        case EventType::kMetricEvaluated:
            return MetricEvaluated{Str(o, "metric"), Str(o, "value"), Str(o, "bound"),
                                   Str(o, "threshold"), JsonBool(o, "passed")};
        case EventType::kHumanTaskCompleted:
            return HumanTaskCompleted{Str(o, "task_id"), Str(o, "signal"), Str(o, "output"),
                                      Str(o, "reason")};
        case EventType::kSubworkflowStarted: {
            SubworkflowStarted started{Str(o, "child_run_id"), Str(o, "workflow"),
                                       Str(o, "definition_sha256"),
                                       o.contains("index") ? JsonInt(o, "index") : -1};
            STROWGER_TRY(ReadCaps(o, started.max_tokens, started.max_cost_nano_usd));
            return started;
        }
        case EventType::kSubworkflowEnded: {
            auto cost = ParseUsd(JsonString(o, "cost_usd", "0"));
            if (!cost) return std::unexpected(cost.error());
            return SubworkflowEnded{Str(o, "child_run_id"),
                                    Str(o, "status"),
                                    JsonInt(o, "tokens_in"),
                                    JsonInt(o, "tokens_out"),
                                    *cost,
                                    o.contains("index") ? JsonInt(o, "index") : -1};
        }
        case EventType::kItemCompleted:
            return ItemCompleted{JsonInt(o, "index"), Str(o, "output"), JsonBool(o, "failed"),
                                 Str(o, "error")};
        case EventType::kSessionCompacted:
            return SessionCompacted{Str(o, "session_id"),         JsonInt(o, "dropped_messages"),
                                    JsonInt(o, "dropped_tokens"), JsonInt(o, "kept_messages"),
                                    JsonInt(o, "kept_tokens"),    JsonInt(o, "max_history_tokens"),
                                    Str(o, "summary_sha256")};
        case EventType::kBudgetExceeded:
            return BudgetExceeded{Str(o, "scope"), Str(o, "limit"), Str(o, "used"), Str(o, "max")};
        case EventType::kLlmRetried:
            return LlmRetried{JsonInt(o, "turn", 1),     JsonInt(o, "try", 1),
                              Str(o, "error"),           Str(o, "code"),
                              JsonInt(o, "http_status"), JsonInt(o, "delay_ms")};
        case EventType::kUnknown:
            break;
    }
    return UnknownPayload{std::string(type_name), std::string(data)};
}

namespace {

constexpr std::string_view kHashSlot =
    "                                                                ";
static_assert(kHashSlot.size() == 64);

// AppendEvent when no header string needs escaping (every line the engine seals, in
// practice): the line's size is known up front, and its pieces are copied in one pass. False
// (nothing written) otherwise.
bool AppendPlainEvent(std::string& out, int64_t seq, std::string_view run_id, SystemTime time,
                      std::string_view type_name, std::string_view node, int64_t attempt,
                      std::string_view data, std::string_view prev_hash, std::string_view hash,
                      EventOffsets* offsets) {
    if (offsets != nullptr) {
        hash = kHashSlot;  // plain
    } else if (!IsPlainJsonString(hash)) {
        return false;
    }
    if (!IsPlainJsonString(type_name) || !IsPlainJsonString(node) || !IsPlainJsonString(run_id) ||
        !IsPlainJsonString(prev_hash)) {
        return false;
    }
    char attempt_digits[24], seq_digits[24];
    const std::string_view attempt_text(
        attempt_digits,
        attempt > 0
            ? std::to_chars(attempt_digits, attempt_digits + 24, attempt).ptr - attempt_digits
            : 0);
    const std::string_view seq_text(
        seq_digits, std::to_chars(seq_digits, seq_digits + 24, seq).ptr - seq_digits);
    char time_text[kRfc3339Size];
    FormatRfc3339To(time_text, time);
    // Each member: its opening text (a separator, the key, an opening quote), its value, and
    // its closing quote if a string.
    const struct Member {
        std::string_view open, value;
        bool quoted, present;
    } members[] = {
        {R"({"attempt":)", attempt_text, false, attempt > 0},
        {attempt > 0 ? R"(,"data":)" : R"({"data":)", data, false, true},
        {R"(,"hash":")", hash, true, !hash.empty()},
        {R"(,"node":")", node, true, !node.empty()},
        {R"(,"prev_hash":")", prev_hash, true, true},
        {R"(,"run_id":")", run_id, true, true},
        {R"(,"seq":)", seq_text, false, true},
        {R"(,"time":")", std::string_view(time_text, kRfc3339Size), true, true},
        {R"(,"type":")", type_name, true, true},
        {R"(,"v":1})", {}, false, true},
    };
    size_t size = 0;
    for (const Member& m : members) {
        if (m.present) size += m.open.size() + m.value.size() + (m.quoted ? 1 : 0);
    }
    const size_t start = out.size();
    size_t at[std::size(members)] = {};  // where each value went
    out.resize_and_overwrite(start + size, [&](char* p, size_t) {
        size_t n = start;
        for (size_t i = 0; i < std::size(members); ++i) {
            const Member& m = members[i];
            if (!m.present) continue;
            std::memcpy(p + n, m.open.data(), m.open.size());
            n += m.open.size();
            at[i] = n;
            if (!m.value.empty()) std::memcpy(p + n, m.value.data(), m.value.size());
            n += m.value.size();
            if (m.quoted) p[n++] = '"';
        }
        return n;
    });
    if (offsets != nullptr) {
        offsets->hash = at[2];
        offsets->prev_hash = at[4];
        offsets->run_id = at[5];
        offsets->plain = true;
    }
    return true;
}

// Writes the canonical event. With `offsets`, a `"hash":"<64 spaces>"` member is written in
// its sorted place and its offset (of the first hex digit) stored there, with where the
// prev_hash and run_id values went.
void AppendEvent(std::string& out, int64_t seq, std::string_view run_id, SystemTime time,
                 std::string_view type_name, std::string_view node, int64_t attempt,
                 std::string_view data, std::string_view prev_hash, std::string_view hash,
                 EventOffsets* offsets) {
    if (AppendPlainEvent(out, seq, run_id, time, type_name, node, attempt, data, prev_hash, hash,
                         offsets)) {
        return;
    }
    JsonWriter w(out);
    w.BeginObject();
    if (attempt > 0) w.Field("attempt", attempt);
    w.Key("data").Raw(data);
    if (offsets) {
        out += ",\"hash\":\"";
        offsets->hash = out.size();
        out.append(64, ' ');
        out += '"';
    } else if (!hash.empty()) {
        w.Field("hash", hash);
    }
    if (!node.empty()) w.Field("node", node);
    char formatted_time[kRfc3339Size];
    FormatRfc3339To(formatted_time, time);
    // A value written as it is starts after its opening quote; one that needed escaping is not
    // reported (0).
    auto value_at = [&](std::string_view value, size_t start) -> size_t {
        size_t at = start + 1;
        return out.size() == at + value.size() + 1 && out.compare(at, value.size(), value) == 0 ? at
                                                                                                : 0;
    };
    w.Key("prev_hash");
    size_t start = out.size();
    w.String(prev_hash);
    if (offsets) offsets->prev_hash = value_at(prev_hash, start);
    w.Key("run_id");
    start = out.size();
    w.String(run_id);
    if (offsets) offsets->run_id = value_at(run_id, start);
    w.Field("seq", seq)
        .Field("time", std::string_view(formatted_time, kRfc3339Size))
        .Field("type", type_name)
        .Field("v", int64_t{kFormatVersion})
        .EndObject();
}

}  // namespace

std::string EncodeEvent(int64_t seq, std::string_view run_id, SystemTime time,
                        std::string_view type_name, std::string_view node, int64_t attempt,
                        std::string_view data, std::string_view prev_hash, std::string_view hash) {
    std::string out;
    out.reserve(data.size() + 256);
    AppendEvent(out, seq, run_id, time, type_name, node, attempt, data, prev_hash, hash, nullptr);
    return out;
}

std::string EncodeEventWithHashSlot(int64_t seq, std::string_view run_id, SystemTime time,
                                    std::string_view type_name, std::string_view node,
                                    int64_t attempt, std::string_view data,
                                    std::string_view prev_hash, EventOffsets* offsets) {
    std::string out;
    out.reserve(data.size() + 320);
    AppendEvent(out, seq, run_id, time, type_name, node, attempt, data, prev_hash, {}, offsets);
    return out;
}

void AppendEventWithHashSlot(std::string& out, int64_t seq, std::string_view run_id,
                             SystemTime time, std::string_view type_name, std::string_view node,
                             int64_t attempt, std::string_view data, std::string_view prev_hash,
                             EventOffsets* offsets) {
    AppendEvent(out, seq, run_id, time, type_name, node, attempt, data, prev_hash, {}, offsets);
}

Result<Event> DecodeEvent(std::string_view line) {
    auto parsed = ParseJson(line);
    if (!parsed || !parsed->is_object()) return DataLossError("malformed: not a JSON object");
    const json::object& o = parsed->get_object();
    if (JsonInt(o, "v", -1) != kFormatVersion)
        return DataLossError("malformed: unsupported version");
    const json::object* data = JsonObject(o, "data");
    if (data == nullptr) return DataLossError("malformed: missing data");
    auto time = ParseRfc3339(JsonString(o, "time"));
    if (!time) return DataLossError("malformed: bad time");
    Event event;
    event.seq = JsonInt(o, "seq", -1);
    event.run_id = Str(o, "run_id");
    event.time = *time;
    event.type_name = Str(o, "type");
    event.type = EventTypeFromName(event.type_name);
    event.node = Str(o, "node");
    event.attempt = JsonInt(o, "attempt", 0);
    auto canonical_data = CanonicalJson(json::value(*data));
    if (!canonical_data) return DataLossError("malformed: data is not canonical");
    event.data = std::move(*canonical_data);
    event.prev_hash = Str(o, "prev_hash");
    event.hash = Str(o, "hash");
    if (event.seq < 1 || event.run_id.empty() || event.type_name.empty() ||
        event.prev_hash.size() != 64 || event.hash.size() != 64) {
        return DataLossError("malformed: missing or invalid header field");
    }
    event.encoded = EncodeEvent(event.seq, event.run_id, event.time, event.type_name, event.node,
                                event.attempt, event.data, event.prev_hash, event.hash);
    if (event.encoded != line) return DataLossError("malformed: not in canonical form");
    return event;
}

}  // namespace strowger::ledger
