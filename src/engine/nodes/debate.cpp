// `debate`: debaters argue a topic over rounds and a judge decides (issue 18, CMDC-style
// multi-agent). Each round every debater, at once, sees the topic and all earlier rounds'
// arguments; after the last round the judge's verdict is the output. With `consensus:
// {until: TEXT}` the judge gives a verdict after every round and the debate stops at the first
// verdict containing TEXT (any case). Every call is a labelled sub-call (round2/debater:alice,
// round2/judge), so a debate resumed after a crash does not re-argue finished calls. Errors
// name the part: "debate failed: debater_round: ..." or "debate failed: judge: ...".
#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/nodes/ask_all.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct DebateConfig {
    model::Template topic;
    std::vector<int> debaters;
    int judge = -1;
    int64_t max_rounds = 3;
    std::string until;  // consensus ("" = none)
};

struct Argument {
    int64_t round = 0;
    std::string debater;
    std::string text;
};

std::string Transcript(const std::vector<Argument>& arguments) {
    std::string out;
    for (const auto& a : arguments) {
        out += "\n\n### Round " + std::to_string(a.round) + " — " + a.debater + "\n" + a.text;
    }
    return out;
}

class DebateType final : public NodeType {
  public:
    std::string_view name() const override { return "debate"; }
    std::string_view summary() const override {
        return "debaters argue a topic for max_rounds (or until the judge sees consensus); the "
               "judge's verdict is the output";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["topic","debaters","judge"],
            "properties":{"topic":{"type":"string"},
            "debaters":{"type":"array","minItems":2,
                "items":{"oneOf":[{"type":"string"},{"type":"object"}]}},
            "judge":{"oneOf":[{"type":"string"},{"type":"object"}]},
            "max_rounds":{"type":"integer","minimum":1,"maximum":20,"default":3},
            "consensus":{"type":"object","required":["until"],
                "properties":{"until":{"type":"string","minLength":1}},
                "additionalProperties":false},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }

    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context,
                    {"topic", "debaters", "judge", "max_rounds", "consensus", "output_key"});
        auto config = std::make_shared<Config<DebateConfig>>();
        DebateConfig& c = config->value;
        if (auto topic = RequiredString(context, "topic")) {
            c.topic = context.ParseTemplate(*topic, "topic");
        }
        const json::value* debaters = Field(context, "debaters");
        if (debaters == nullptr || !debaters->is_array() || debaters->get_array().size() < 2) {
            context.Error("debaters", "a debate needs at least two debaters (a list of agents)");
        } else {
            for (size_t i = 0; i < debaters->get_array().size(); ++i) {
                std::string at = "debaters[" + std::to_string(i) + "]";
                int agent = context.ResolveAgent(debaters->get_array()[i], at);
                if (agent < 0) continue;
                // The debater's name labels its calls (agents' names are unique in a plan):
                // the same debater twice would share answers.
                if (std::find(c.debaters.begin(), c.debaters.end(), agent) != c.debaters.end()) {
                    context.Error(at, "this debater is listed twice");
                    continue;
                }
                c.debaters.push_back(agent);
            }
        }
        if (const json::value* judge = Field(context, "judge")) {
            c.judge = context.ResolveAgent(*judge, "judge");
        } else {
            context.Error("judge", "a debate needs a judge (an agent)");
        }
        if (Field(context, "max_rounds") != nullptr) {
            if (auto rounds = Integer(context, "max_rounds", 1)) {
                if (*rounds > 20) {
                    context.Error("max_rounds", "at most 20 rounds");
                } else {
                    c.max_rounds = *rounds;
                }
            }
        }
        if (const json::value* consensus = Field(context, "consensus")) {
            const json::object* o = consensus->if_object();
            const json::value* until = o != nullptr ? o->if_contains("until") : nullptr;
            if (o == nullptr || until == nullptr || !until->is_string() ||
                Trim(until->get_string()).empty() || o->size() != 1) {
                context.Error("consensus",
                              "expected {until: TEXT}: the text the judge's round "
                              "verdict contains when the debaters agree");
            } else {
                c.until = std::string(until->get_string());
            }
        }
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<DebateConfig>>().value;
        const std::string topic = run.Render(c.topic);
        std::string names;
        for (int d : c.debaters) {
            names += (names.empty() ? "" : ", ") + AgentName(run.plan(), d);
        }
        std::vector<Argument> arguments;
        std::string verdict;
        int64_t round = 1;
        bool agreed = false;
        for (;; ++round) {
            const std::string r = std::to_string(round);
            std::vector<AskCall> calls;
            for (int d : c.debaters) {
                std::string name = AgentName(run.plan(), d);
                std::string prompt = "Debate topic: " + topic + "\n\nYou are " + name +
                                     ", one of the debaters (" + names + "). This is round " + r +
                                     " of " + std::to_string(c.max_rounds) + ".";
                if (!arguments.empty()) prompt += "\n\nEarlier arguments:" + Transcript(arguments);
                prompt += "\n\nGive your argument for this round.";
                calls.push_back({d, "round" + r + "/debater:" + name, std::move(prompt)});
            }
            auto answers = co_await AskAll(run, std::move(calls), c.debaters.size());
            for (size_t i = 0; i < answers.size(); ++i) {
                if (!answers[i])
                    co_return SubCallFailure("debate", "debater_round", answers[i].error());
                arguments.push_back(
                    {round, AgentName(run.plan(), c.debaters[i]), std::move(*answers[i])});
            }
            const bool last = round >= c.max_rounds;
            if (!last && c.until.empty()) continue;
            std::string prompt =
                "Debate topic: " + topic + "\n\nArguments:" + Transcript(arguments) + "\n\n";
            if (last) {
                prompt += "The debate is over: give your final verdict.";
            } else {
                prompt += "Give your verdict on round " + r +
                          ". If the debaters have reached "
                          "consensus, say \"" +
                          c.until + "\".";
            }
            auto judged = co_await run.Ask(c.judge, "round" + r + "/judge", std::move(prompt));
            if (!judged) co_return SubCallFailure("debate", "judge", judged.error());
            verdict = std::move(*judged);
            if (!c.until.empty() && ContainsIgnoreCase(verdict, c.until)) agreed = true;
            if (agreed || last) break;
        }
        NodeOutcome outcome = NodeOutcome::Completed(std::move(verdict));
        json::object detail;
        detail["rounds"] = round;
        if (!c.until.empty()) detail["consensus"] = agreed;
        if (auto text = CanonicalJson(detail)) outcome.detail = std::move(*text);
        co_return outcome;
    }
};

}  // namespace

const NodeType& DebateNode() {
    static const DebateType type;
    return type;
}

}  // namespace strowger::engine::nodes
