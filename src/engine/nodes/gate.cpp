// `gate` and `eval_gate`: checkpoints that stop the run unless they pass (CMDC's :gate and
// :eval_gate). A gate's `criteria` all pass, else the run fails with "gate not passed:
// <criterion>". A criterion is text an agent (`judge`) judges PASS or FAIL, or a deterministic
// check: {contains}, {regex} (RE2) or {json_path, op, value} on the input. An eval gate compares
// `metrics` (numbers, or templates reading upstream JSON) with `thresholds`: {min: x}, {max: y},
// or a bare number meaning min — except for a metric whose name ends in _count, where it means
// max (so unauthorized_source_count: 0 reads "at most 0"). Each verdict is in the ledger; both
// pass their input through.
#include <re2/re2.h>

#include <charconv>
#include <cmath>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "ledger/event.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct Criterion {
    std::string text;    // as written (for the verdict and the error)
    std::string method;  // judge | contains | regex | json_path
    std::string needle;
    std::shared_ptr<const re2::RE2> regex;
    std::vector<std::string> path;
    std::string op;
    json::value value;
};

struct GateConfig {
    std::vector<Criterion> criteria;
    int judge = -1;
};

std::optional<double> AsNumber(const json::value& value) {
    if (value.is_number()) return value.to_number<double>();
    if (value.is_string()) {
        std::string_view text = Trim(value.get_string());
        double d = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
        if (ec == std::errc() && end == text.data() + text.size() && std::isfinite(d)) return d;
    }
    return std::nullopt;
}

bool Compare(const json::value& left, const std::string& op, const json::value& right) {
    auto l = AsNumber(left), r = AsNumber(right);
    if (l && r) {
        if (op == "eq") return *l == *r;
        if (op == "neq") return *l != *r;
        if (op == "gt") return *l > *r;
        if (op == "gte") return *l >= *r;
        if (op == "lt") return *l < *r;
        if (op == "lte") return *l <= *r;
    }
    std::string a = Text(left), b = Text(right);
    if (op == "eq") return a == b;
    if (op == "neq") return a != b;
    if (op == "contains") return a.find(b) != std::string::npos;
    if (op == "not_contains") return a.find(b) == std::string::npos;
    if (op == "gt") return a > b;
    if (op == "gte") return a >= b;
    if (op == "lt") return a < b;
    if (op == "lte") return a <= b;
    return false;
}

class GateType final : public NodeType {
  public:
    std::string_view name() const override { return "gate"; }
    std::string_view summary() const override {
        return "every criterion passes (judged by an agent, or contains / regex / json_path), "
               "else the run fails";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["criteria"],"properties":{
            "criteria":{"type":"array","items":{"oneOf":[{"type":"string"},{"type":"object",
                "properties":{"contains":{"type":"string"},"regex":{"type":"string"},
                "json_path":{"type":"string"},"op":{"type":"string"},"value":{}}}]}},
            "judge":{"oneOf":[{"type":"string"},{"type":"object"}]},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"criteria", "judge", "output_key"});
        auto config = std::make_shared<Config<GateConfig>>();
        GateConfig& c = config->value;
        const json::value* criteria = Field(context, "criteria");
        if (criteria == nullptr || !criteria->is_array() || criteria->get_array().empty()) {
            context.Error("criteria", "a gate needs criteria (a list)");
            return nullptr;
        }
        bool needs_judge = false;
        for (size_t i = 0; i < criteria->get_array().size(); ++i) {
            const auto& item = criteria->get_array()[i];
            std::string at = "criteria[" + std::to_string(i) + "]";
            Criterion criterion;
            if (item.is_string()) {
                criterion.text = std::string(item.get_string());
                criterion.method = "judge";
                needs_judge = true;
            } else if (item.is_object()) {
                const auto& o = item.get_object();
                criterion.text = JsonText(item);
                if (const auto* v = o.if_contains("contains")) {
                    criterion.method = "contains";
                    criterion.needle = Text(*v);
                } else if (const auto* r = o.if_contains("regex")) {
                    criterion.method = "regex";
                    re2::RE2::Options options;
                    options.set_log_errors(false);
                    auto regex = std::make_shared<re2::RE2>(Text(*r), options);
                    if (!regex->ok()) {
                        context.Error(at + ".regex",
                                      "not a regular expression (RE2): " + regex->error());
                        continue;
                    }
                    criterion.regex = std::move(regex);
                } else if (const auto* p = o.if_contains("json_path")) {
                    criterion.method = "json_path";
                    std::string path = Text(*p);
                    if (StartsWith(path, "$.")) path = path.substr(2);
                    if (StartsWith(path, "$")) path = path.substr(1);
                    criterion.path = Split(path, '.');
                    if (path.empty()) criterion.path.clear();
                    criterion.op = o.contains("op") ? Text(o.at("op")) : "eq";
                    static const std::vector<std::string> ops = {
                        "eq",  "neq",      "gt",           "gte",   "lt",
                        "lte", "contains", "not_contains", "exists"};
                    if (std::find(ops.begin(), ops.end(), criterion.op) == ops.end()) {
                        context.Error(at + ".op", "unknown op " + model::Quote(criterion.op));
                    }
                    if (!o.contains("value") && criterion.op != "exists") {
                        context.Error(at, "a json_path check needs a value");
                    }
                    if (o.contains("value")) criterion.value = o.at("value");
                } else {
                    context.Error(at,
                                  "expected a criterion: text for the judge, or "
                                  "{contains}, {regex} or {json_path, op, value}");
                    continue;
                }
            } else {
                context.Error(at, "expected a criterion");
                continue;
            }
            c.criteria.push_back(std::move(criterion));
        }
        if (const json::value* judge = Field(context, "judge")) {
            c.judge = context.ResolveAgent(*judge, "judge");
        } else if (needs_judge) {
            c.judge = context.DefaultAgent("criteria");
        }
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<GateConfig>>().value;
        const std::string input = run.Input();
        for (size_t i = 0; i < c.criteria.size(); ++i) {
            const Criterion& criterion = c.criteria[i];
            ledger::GateEvaluated verdict;
            verdict.criterion = criterion.text;
            verdict.method = criterion.method;
            if (criterion.method == "contains") {
                verdict.passed = input.find(criterion.needle) != std::string::npos;
            } else if (criterion.method == "regex") {
                verdict.passed = re2::RE2::PartialMatch(input, *criterion.regex);
            } else if (criterion.method == "json_path") {
                auto parsed = ParseJson(input);
                const json::value* at = parsed ? &*parsed : nullptr;
                for (const auto& field : criterion.path) {
                    if (at == nullptr) break;
                    if (at->is_object()) {
                        at = at->get_object().if_contains(field);
                    } else if (at->is_array()) {
                        size_t index = 0;
                        auto [end, ec] =
                            std::from_chars(field.data(), field.data() + field.size(), index);
                        at = ec == std::errc() && index < at->get_array().size()
                                 ? &at->get_array()[index]
                                 : nullptr;
                    } else {
                        at = nullptr;
                    }
                }
                if (criterion.op == "exists") {
                    verdict.passed = at != nullptr;
                } else {
                    verdict.passed = at != nullptr && Compare(*at, criterion.op, criterion.value);
                }
                verdict.detail = at != nullptr ? CapForMessage(Text(*at), 200) : "(no such field)";
            } else {
                std::string prompt =
                    "Judge whether the text below meets this criterion: " + criterion.text +
                    "\n\nAnswer PASS or FAIL on the first line, then one line of reason."
                    "\n\nText:\n" +
                    input;
                auto answer = co_await run.Ask(c.judge, "criterion " + std::to_string(i + 1),
                                               std::move(prompt));
                if (!answer) co_return NodeOutcome::Failed(answer.error());
                std::string first(Trim(answer->substr(0, answer->find('\n'))));
                verdict.passed = StartsWith(AsciiLower(first), "pass");
                verdict.detail = CapForMessage(Trim(*answer), 500);
            }
            const bool passed = verdict.passed;
            std::vector<ledger::Payload> events;
            events.push_back(std::move(verdict));
            if (!co_await run.Record(std::move(events))) co_return NodeOutcome::Stopped();
            if (!passed) {
                co_return NodeOutcome::Failed(Error(ErrorCode::kFailedPrecondition,
                                                    "gate not passed: " + criterion.text,
                                                    ErrorDetails{0, -1, -1, "gate"}));
            }
        }
        co_return NodeOutcome::Completed(input);
    }
};

struct Metric {
    std::string name;
    json::value literal;     // a number, or null when a template gives it
    model::Template source;  // when not a literal
    bool has_template = false;
    std::string bound;  // min | max
    double threshold = 0;
};

struct EvalGateConfig {
    std::vector<Metric> metrics;
};

class EvalGateType final : public NodeType {
  public:
    std::string_view name() const override { return "eval_gate"; }
    std::string_view summary() const override {
        return "metrics against thresholds ({min}, {max}, or a bare number: min, max for "
               "*_count); the run fails unless all pass";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["metrics","thresholds"],
            "properties":{"metrics":{"type":"object"},"thresholds":{"type":"object"},
            "gate_module":{"type":"string"},"output_key":{"type":"string"}},
            "additionalProperties":false})")
            .as_object();
    }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"metrics", "thresholds", "gate_module", "output_key"});
        if (Field(context, "gate_module") != nullptr) {
            context.Error("gate_module",
                          "gate_module delegates to an Elixir module, which "
                          "Strowger cannot call: give metrics and thresholds");
        }
        auto config = std::make_shared<Config<EvalGateConfig>>();
        const json::value* metrics = Field(context, "metrics");
        const json::value* thresholds = Field(context, "thresholds");
        if (metrics == nullptr || !metrics->is_object()) {
            context.Error("metrics", "an eval_gate needs metrics (a mapping name -> value)");
            return nullptr;
        }
        if (thresholds == nullptr || !thresholds->is_object()) {
            context.Error("thresholds", "an eval_gate needs thresholds (a mapping name -> bound)");
            return nullptr;
        }
        for (const auto& [name, bound] : thresholds->get_object()) {
            std::string at = "thresholds." + std::string(name);
            Metric metric;
            metric.name = std::string(name);
            const json::value* value = metrics->get_object().if_contains(name);
            if (value == nullptr) {
                context.Error(at, "no metric " + model::Quote(name) + " in metrics");
                continue;
            }
            if (value->is_number()) {
                metric.literal = *value;
            } else if (value->is_string()) {
                metric.source =
                    context.ParseTemplate(value->get_string(), "metrics." + metric.name);
                metric.has_template = true;
            } else {
                context.Error("metrics." + metric.name, "expected a number or a template");
                continue;
            }
            if (bound.is_number()) {
                metric.threshold = bound.to_number<double>();
                metric.bound = EndsWith(metric.name, "_count") ? "max" : "min";
            } else if (bound.is_object() && bound.get_object().size() == 1 &&
                       (bound.get_object().contains("min") || bound.get_object().contains("max"))) {
                auto& [key, v] = *bound.get_object().begin();
                if (!v.is_number()) {
                    context.Error(at + "." + std::string(key), "expected a number");
                    continue;
                }
                metric.bound = std::string(key);
                metric.threshold = v.to_number<double>();
            } else {
                context.Error(at, "expected a number, {min: x} or {max: y}");
                continue;
            }
            config->value.metrics.push_back(std::move(metric));
        }
        for (const auto& [name, value] : metrics->get_object()) {
            if (!thresholds->get_object().contains(name)) {
                context.Warn("metrics." + std::string(name),
                             "metric has no threshold: not checked");
            }
        }
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<EvalGateConfig>>().value;
        std::vector<std::string> failures;
        std::vector<ledger::Payload> events;
        for (const auto& metric : c.metrics) {
            std::optional<double> value;
            std::string shown;
            if (metric.has_template) {
                shown = run.Render(metric.source);
                value = AsNumber(json::value(shown));
            } else {
                value = metric.literal.to_number<double>();
                shown = JsonText(metric.literal);
            }
            ledger::MetricEvaluated verdict;
            verdict.metric = metric.name;
            verdict.value = CapForMessage(shown, 100);
            verdict.bound = metric.bound;
            verdict.threshold = JsonText(json::value(metric.threshold));
            verdict.passed = value && (metric.bound == "min" ? *value >= metric.threshold
                                                             : *value <= metric.threshold);
            if (!verdict.passed) {
                failures.push_back(metric.name + " = " + verdict.value + " (" + metric.bound + " " +
                                   verdict.threshold + ")");
            }
            events.push_back(std::move(verdict));
        }
        if (!co_await run.Record(std::move(events))) co_return NodeOutcome::Stopped();
        if (!failures.empty()) {
            co_return NodeOutcome::Failed(Error(ErrorCode::kFailedPrecondition,
                                                "eval gate not passed: " + Join(failures, ", "),
                                                ErrorDetails{0, -1, -1, "gate"}));
        }
        co_return NodeOutcome::Completed(run.Input());
    }
};

}  // namespace

const NodeType& GateNode() {
    static const GateType type;
    return type;
}

const NodeType& EvalGateNode() {
    static const EvalGateType type;
    return type;
}

}  // namespace strowger::engine::nodes
