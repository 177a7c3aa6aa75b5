// `aggregator`: combines its upstream outputs (CMDC's :aggregator). concat joins them in edge
// order with "\n\n---\n\n"; merge merges JSON objects in edge order (later keys win); vote
// picks the most frequent output after trimming (ties: the earliest in edge order), with the
// counts in node.completed's detail.
#include <map>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct AggregatorConfig {
    std::string strategy = "concat";
};

class AggregatorType final : public NodeType {
  public:
    std::string_view name() const override { return "aggregator"; }
    std::string_view summary() const override {
        return "combines upstream outputs: concat, merge (JSON objects) or vote";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","properties":{
            "strategy":{"enum":["concat","merge","vote"],"default":"concat"},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"strategy", "output_key"});
        auto config = std::make_shared<Config<AggregatorConfig>>();
        config->value.strategy =
            OneOf(context, "strategy", {"concat", "merge", "vote"}).value_or("concat");
        if (context.IncomingEdges() == 0) {
            context.Warn("", "an aggregator without incoming edges aggregates nothing");
        }
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<AggregatorConfig>>().value;
        auto upstreams = run.Upstreams();
        if (c.strategy == "concat") {
            std::string joined;
            for (size_t i = 0; i < upstreams.size(); ++i) {
                if (i > 0) joined += model::kCollectSeparator;
                joined += upstreams[i].output;
            }
            co_return NodeOutcome::Completed(std::move(joined));
        }
        if (c.strategy == "merge") {
            json::object merged;
            for (const auto& up : upstreams) {
                auto parsed = ParseJson(up.output);
                if (!parsed || !parsed->is_object()) {
                    co_return NodeOutcome::Failed(Error(
                        ErrorCode::kInvalidArgument,
                        "aggregator '" + run.node().id + "' (merge): the output of '" + up.id +
                            "' is not a JSON object: " + CapForMessage(up.output, 200)));
                }
                for (auto& [key, value] : parsed->get_object()) merged[key] = value;
            }
            auto text = CanonicalJson(merged);
            co_return NodeOutcome::Completed(text ? *text : json::serialize(merged));
        }
        // vote
        std::vector<std::pair<std::string, int64_t>> counts;  // in first-seen (edge) order
        for (const auto& up : upstreams) {
            std::string answer(Trim(up.output));
            auto it = std::find_if(counts.begin(), counts.end(),
                                   [&](const auto& entry) { return entry.first == answer; });
            if (it == counts.end()) {
                counts.emplace_back(std::move(answer), 1);
            } else {
                ++it->second;
            }
        }
        if (counts.empty()) co_return NodeOutcome::Completed("");
        auto winner = counts.begin();
        for (auto it = counts.begin(); it != counts.end(); ++it) {
            if (it->second > winner->second) winner = it;
        }
        json::array detail;
        for (const auto& [answer, count] : counts) {
            detail.push_back(json::object{{"output", answer}, {"votes", count}});
        }
        NodeOutcome outcome = NodeOutcome::Completed(winner->first);
        auto text = CanonicalJson(json::object{{"votes", detail}});
        if (text) outcome.detail = std::move(*text);
        co_return outcome;
    }
};

}  // namespace

const NodeType& AggregatorNode() {
    static const AggregatorType type;
    return type;
}

}  // namespace strowger::engine::nodes
