// `router`: chooses one outgoing branch (CMDC's :router). rule: `rules` matched in order
// against the input (a case-insensitive substring, or an RE2 regex written /.../); random:
// uniform over `branches`, drawn from the run and the node (so a resume draws the same, and the
// choice is recorded); llm: an agent picks one of `branches`. No match: `default` / `fallback`
// if given, else the node fails. The router passes its input through; its branch is its signal.
#include <re2/re2.h>

#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct Rule {
    std::string pattern;
    std::string branch;
    std::shared_ptr<const re2::RE2> regex;  // for /.../ patterns
};

struct RouterConfig {
    std::string strategy;
    std::vector<Rule> rules;
    std::vector<std::string> branches;  // the fallback last, unless already one of them
    size_t choices = 0;                 // random: the first `choices` branches
    std::string fallback;               // default / fallback branch ("" = none)
    int agent = -1;                     // llm
    model::Template prompt;
};

class RouterType final : public NodeType {
  public:
    std::string_view name() const override { return "router"; }
    std::string_view summary() const override {
        return "chooses a branch: rule (substring or /regex/), random, or llm";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["strategy"],"properties":{
            "strategy":{"enum":["rule","random","llm"]},
            "rules":{"type":"array","items":{"type":"object","required":["pattern","branch"],
                "properties":{"pattern":{"type":"string"},"branch":{"type":"string"}}}},
            "branches":{"type":"array","items":{"type":"string"}},
            "default":{"type":"string"},"fallback":{"type":"string"},
            "router_agent":{"oneOf":[{"type":"string"},{"type":"object"}]},
            "agent":{"oneOf":[{"type":"string"},{"type":"object"}]},
            "prompt":{"type":"string"},"output_key":{"type":"string"}},
            "additionalProperties":false})")
            .as_object();
    }

    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"strategy", "rules", "branches", "default", "fallback",
                              "router_agent", "agent", "prompt", "output_key"});
        auto config = std::make_shared<Config<RouterConfig>>();
        RouterConfig& c = config->value;
        auto strategy = OneOf(context, "strategy", {"rule", "random", "llm"});
        if (!strategy) {
            if (Field(context, "strategy") == nullptr) {
                context.Error("", "a router needs a strategy (rule, random or llm)");
            }
            return nullptr;
        }
        c.strategy = *strategy;
        c.fallback = String(context, "default").value_or("");
        if (auto fallback = String(context, "fallback")) {
            if (!c.fallback.empty() && c.fallback != *fallback) {
                context.Error("fallback", "default and fallback name different branches");
            }
            c.fallback = *fallback;
        }
        if (c.strategy == "rule") {
            const json::value* rules = Field(context, "rules");
            if (rules == nullptr || !rules->is_array() || rules->get_array().empty()) {
                context.Error("rules", "a rule router needs rules: [{pattern, branch}, ...]");
                return nullptr;
            }
            for (size_t i = 0; i < rules->get_array().size(); ++i) {
                const auto& item = rules->get_array()[i];
                std::string at = "rules[" + std::to_string(i) + "]";
                if (!item.is_object() || !item.get_object().contains("pattern") ||
                    !item.get_object().contains("branch")) {
                    context.Error(at, "expected {pattern, branch}");
                    continue;
                }
                Rule rule;
                rule.pattern = Text(item.get_object().at("pattern"));
                rule.branch = Text(item.get_object().at("branch"));
                if (rule.pattern.size() >= 2 && rule.pattern.front() == '/' &&
                    rule.pattern.back() == '/') {
                    re2::RE2::Options options;
                    options.set_log_errors(false);
                    options.set_case_sensitive(false);
                    auto regex = std::make_shared<re2::RE2>(
                        rule.pattern.substr(1, rule.pattern.size() - 2), options);
                    if (!regex->ok()) {
                        context.Error(at + ".pattern",
                                      "not a regular expression (RE2): " + regex->error());
                        continue;
                    }
                    rule.regex = std::move(regex);
                }
                c.branches.push_back(rule.branch);
                c.rules.push_back(std::move(rule));
            }
        } else {
            auto branches = StringList(context, "branches");
            if (!branches || branches->empty()) {
                context.Error("branches", "a " + c.strategy + " router needs branches");
                return nullptr;
            }
            c.branches = *branches;
        }
        if (c.strategy == "llm") {
            const json::value* agent = Field(context, "router_agent");
            std::string field = "router_agent";
            if (agent == nullptr) {
                agent = Field(context, "agent");
                field = "agent";
            }
            c.agent =
                agent != nullptr ? context.ResolveAgent(*agent, field) : context.DefaultAgent("");
            c.prompt = context.ParseTemplate(
                String(context, "prompt")
                    .value_or("Choose the one branch that fits the input best. Answer with "
                              "the branch name only.\n\nBranches: {{branches}}\n\nInput:\n"
                              "{{input}}"),
                "prompt", {"branches"});
        }
        c.choices = c.branches.size();
        if (!c.fallback.empty() &&
            std::find(c.branches.begin(), c.branches.end(), c.fallback) == c.branches.end()) {
            c.branches.push_back(c.fallback);
        }
        // Every branch must be on an outgoing edge (CMDC), and every labelled edge a branch.
        auto labels = context.OutgoingLabels();
        for (const auto& branch : c.branches) {
            if (std::find(labels.begin(), labels.end(), branch) == labels.end()) {
                context.Warn("", "branch " + model::Quote(branch) +
                                     " is on no outgoing edge: choosing it ends this path");
            }
        }
        return config;
    }

    std::vector<std::string> Signals(const model::NodeConfig& config) const override {
        return static_cast<const Config<RouterConfig>&>(config).value.branches;
    }

    std::optional<model::DryOutcome> DryRun(const model::NodeConfig& config,
                                            const model::DryRunContext& context) const override {
        const auto& c = static_cast<const Config<RouterConfig>&>(config).value;
        if (c.strategy != "rule") return std::nullopt;
        auto input = context.Input();
        if (!input) return std::nullopt;
        model::DryOutcome outcome;
        outcome.output = *input;
        for (const auto& rule : c.rules) {
            bool match = rule.regex ? re2::RE2::PartialMatch(*input, *rule.regex)
                                    : ContainsIgnoreCase(*input, rule.pattern);
            if (match) {
                outcome.signal = rule.branch;
                outcome.why = "matched " + rule.pattern;
                return outcome;
            }
        }
        if (c.fallback.empty()) {
            outcome.fails = true;
            outcome.why = "no rule matched and no default branch";
        } else {
            outcome.signal = c.fallback;
            outcome.why = "no rule matched: the default branch";
        }
        return outcome;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<RouterConfig>>().value;
        const std::string input = run.Input();
        ledger::RouterDecided decided;
        decided.strategy = c.strategy;
        if (c.strategy == "rule") {
            for (const auto& rule : c.rules) {
                bool match = rule.regex ? re2::RE2::PartialMatch(input, *rule.regex)
                                        : ContainsIgnoreCase(input, rule.pattern);
                if (match) {
                    decided.branch = rule.branch;
                    decided.reason = "matched " + rule.pattern;
                    break;
                }
            }
        } else if (c.strategy == "random") {
            // Drawn from the run and the node: the same on every replay of this decision.
            std::string seed = Sha256Hex(run.run_state().run_id, run.node().id);
            uint64_t draw = std::stoull(seed.substr(0, 15), nullptr, 16);
            size_t options = c.choices;
            decided.branch = c.branches[draw % std::max<size_t>(options, 1)];
            decided.reason = "draw " + std::to_string(draw % std::max<size_t>(options, 1)) +
                             " of " + std::to_string(options);
        } else {
            std::string branches;
            for (const auto& b : c.branches) branches += (branches.empty() ? "" : ", ") + b;
            std::string prompt = run.Render(c.prompt, {{"branches", branches}});
            auto answer = co_await run.Ask(c.agent, "router", std::move(prompt));
            if (!answer) co_return NodeOutcome::Failed(answer.error());
            std::string said(Trim(*answer));
            for (const auto& b : c.branches) {
                if (AsciiLower(said) == AsciiLower(b)) decided.branch = b;
            }
            if (decided.branch.empty()) {
                for (const auto& b : c.branches) {
                    if (ContainsIgnoreCase(said, b)) {
                        decided.branch = b;
                        break;
                    }
                }
            }
            decided.reason = "the model answered " + CapForMessage(said, 200);
        }
        if (decided.branch.empty()) {
            if (c.fallback.empty()) {
                co_return NodeOutcome::Failed(
                    Error(ErrorCode::kFailedPrecondition,
                          "router '" + run.node().id + "': no rule matched and no default branch"));
            }
            decided.branch = c.fallback;
            decided.fallback = true;
        }
        std::string branch = decided.branch;
        std::vector<ledger::Payload> events;
        events.push_back(std::move(decided));
        if (!co_await run.Record(std::move(events))) co_return NodeOutcome::Stopped();
        co_return NodeOutcome::Completed(input, branch);
    }
};

}  // namespace

const NodeType& RouterNode() {
    static const RouterType type;
    return type;
}

}  // namespace strowger::engine::nodes
