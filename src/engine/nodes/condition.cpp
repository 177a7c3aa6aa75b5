// `condition`: a deterministic test (CMDC's :condition). `left` (a template) `operator`
// `right`: eq neq gt gte lt lte compare as numbers when both sides parse as numbers, as
// strings otherwise; contains / not_contains test a substring; is_truthy / is_falsy take no
// right. Emits signal "true" or "false"; its output is that boolean (stored under output_key).
#include <charconv>
#include <cmath>

#include "core/strings.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct ConditionConfig {
    model::Template left;
    std::string op;
    model::Template right;
};

std::optional<double> Number(std::string_view text) {
    text = Trim(text);
    if (text.empty()) return std::nullopt;
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
        return std::nullopt;
    }
    return value;
}

bool Truthy(std::string_view text) {
    text = Trim(text);
    std::string lower = AsciiLower(text);
    if (lower.empty() || lower == "false" || lower == "no" || lower == "null" || lower == "0" ||
        lower == "[]" || lower == "{}" || lower == "\"\"") {
        return false;
    }
    if (auto n = Number(text)) return *n != 0;
    return true;
}

bool Evaluate(const std::string& left, const std::string& op, const std::string& right) {
    bool result = false;
    auto l = Number(left), r = Number(right);
    const bool numbers = l && r;
    int compare = numbers ? (*l < *r ? -1 : *l > *r ? 1 : 0) : left.compare(right);
    if (op == "eq") result = numbers ? compare == 0 : left == right;
    if (op == "neq") result = numbers ? compare != 0 : left != right;
    if (op == "gt") result = compare > 0;
    if (op == "gte") result = compare >= 0;
    if (op == "lt") result = compare < 0;
    if (op == "lte") result = compare <= 0;
    if (op == "contains") result = left.find(right) != std::string::npos;
    if (op == "not_contains") result = left.find(right) == std::string::npos;
    if (op == "is_truthy") result = Truthy(left);
    if (op == "is_falsy") result = !Truthy(left);
    return result;
}

class ConditionType final : public NodeType {
  public:
    std::string_view name() const override { return "condition"; }
    std::string_view summary() const override {
        return "a deterministic test of left operator right: signal \"true\" or \"false\"";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["left","operator"],"properties":{
            "left":{},"right":{},
            "operator":{"enum":["eq","neq","gt","gte","lt","lte","contains","not_contains",
                                "is_truthy","is_falsy"]},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"left", "operator", "right", "output_key"});
        auto config = std::make_shared<Config<ConditionConfig>>();
        ConditionConfig& c = config->value;
        auto left = String(context, "left", true);
        if (!left) {
            if (Field(context, "left") == nullptr) context.Error("", "a condition needs left");
            return nullptr;
        }
        c.left = context.ParseTemplate(*left, "left");
        auto op = OneOf(context, "operator",
                        {"eq", "neq", "gt", "gte", "lt", "lte", "contains", "not_contains",
                         "is_truthy", "is_falsy"});
        if (!op) {
            if (Field(context, "operator") == nullptr) {
                context.Error("", "a condition needs an operator");
            }
            return nullptr;
        }
        c.op = *op;
        const bool unary = c.op == "is_truthy" || c.op == "is_falsy";
        auto right = String(context, "right", true);
        if (!unary && !right) {
            context.Error("", "operator " + c.op + " needs right");
            return nullptr;
        }
        if (unary && right) context.Warn("right", "operator " + c.op + " takes no right");
        if (right) c.right = context.ParseTemplate(*right, "right");
        return config;
    }
    std::vector<std::string> Signals(const model::NodeConfig&) const override {
        return {"true", "false"};
    }

    std::optional<model::DryOutcome> DryRun(const model::NodeConfig& config,
                                            const model::DryRunContext& context) const override {
        const auto& c = static_cast<const Config<ConditionConfig>&>(config).value;
        auto left = context.Render(c.left);
        auto right = context.Render(c.right);
        if (!left || !right) return std::nullopt;
        model::DryOutcome outcome;
        outcome.signal = Evaluate(*left, c.op, *right) ? "true" : "false";
        outcome.output = outcome.signal;
        outcome.why =
            CapForMessage(*left, 60) + " " + c.op +
            (c.op == "is_truthy" || c.op == "is_falsy" ? "" : " " + CapForMessage(*right, 60));
        return outcome;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<ConditionConfig>>().value;
        std::string left = run.Render(c.left);
        std::string right = run.Render(c.right);
        const bool result = Evaluate(left, c.op, right);
        std::vector<ledger::Payload> events;
        events.push_back(ledger::ConditionEvaluated{left, c.op, right, result});
        if (!co_await run.Record(std::move(events))) co_return NodeOutcome::Stopped();
        std::string signal = result ? "true" : "false";
        co_return NodeOutcome::Completed(signal, signal);
    }
};

}  // namespace

const NodeType& ConditionNode() {
    static const ConditionType type;
    return type;
}

}  // namespace strowger::engine::nodes
