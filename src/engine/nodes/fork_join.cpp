// `fork` and `join` (CMDC's :fork / :join; docs/design/dag.md "Fork and join"). A fork passes
// its input to its branches; the compiler pairs it with its join. A join waits for its branches
// by `mode` (all, any, n_of_m with `n`) and `fail_strategy` (fail_fast, wait_all, tolerate), and
// outputs a JSON object of the completed branches' outputs by node id. The two are one file:
// the join's rule is the scheduler's too (join.hpp).
#include "core/json.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/join.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct JoinConfig {
    std::string mode = "all";
    int64_t n = 1;
    std::string fail_strategy = "fail_fast";
};

class ForkType final : public NodeType {
  public:
    std::string_view name() const override { return "fork"; }
    std::string_view summary() const override {
        return "starts branches that run concurrently until their join";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","properties":{"output_key":{"type":"string"}},
            "additionalProperties":false})")
            .as_object();
    }
    bool IsFork() const override { return true; }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"output_key"});
        return std::make_shared<Config<int>>();
    }
    std::optional<model::DryOutcome> DryRun(const model::NodeConfig&,
                                            const model::DryRunContext& context) const override {
        model::DryOutcome outcome;
        auto input = context.Input();
        outcome.output_known = input.has_value();
        if (input) outcome.output = *input;
        outcome.why = "starts its branches";
        return outcome;
    }
    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        co_return NodeOutcome::Completed(run.Input());
    }
};

class JoinType final : public NodeType {
  public:
    std::string_view name() const override { return "join"; }
    std::string_view summary() const override {
        return "waits for a fork's branches: all, any or n_of_m; fail_fast, wait_all or tolerate";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","properties":{
            "mode":{"enum":["all","any","n_of_m"],"default":"all"},
            "n":{"type":"integer","minimum":1},
            "fail_strategy":{"enum":["fail_fast","wait_all","tolerate"],"default":"fail_fast"},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }
    bool IsJoin() const override { return true; }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"mode", "n", "fail_strategy", "output_key"});
        auto config = std::make_shared<Config<JoinConfig>>();
        JoinConfig& c = config->value;
        c.mode = OneOf(context, "mode", {"all", "any", "n_of_m"}).value_or("all");
        c.fail_strategy = OneOf(context, "fail_strategy", {"fail_fast", "wait_all", "tolerate"})
                              .value_or("fail_fast");
        if (c.mode == "n_of_m") {
            auto n = Integer(context, "n", 1);
            if (!n) {
                if (Field(context, "n") == nullptr) context.Error("mode", "mode n_of_m needs n");
                return nullptr;
            }
            if (static_cast<size_t>(*n) > context.IncomingEdges()) {
                context.Error("n", "n is " + std::to_string(*n) + " but the join has " +
                                       std::to_string(context.IncomingEdges()) + " branches");
            }
            c.n = *n;
        } else if (Field(context, "n") != nullptr) {
            context.Warn("n", "n is only used by mode n_of_m");
        }
        return config;
    }
    Awaitable<NodeOutcome> Execute(NodeRun& run) const override;
};

int Needed(const JoinConfig& c, const JoinCounts& counts) {
    if (c.mode == "any") return 1;
    if (c.mode == "n_of_m") return static_cast<int>(c.n);
    return counts.total - counts.dead;  // all: the branches that were not pruned
}

}  // namespace

JoinVerdict DecideJoin(const model::NodeConfig& config, const JoinCounts& counts,
                       std::string* why) {
    const auto& c = static_cast<const Config<JoinConfig>&>(config).value;
    const int needed = Needed(c, counts);
    auto fail = [&](std::string reason) {
        if (why) *why = std::move(reason);
        return JoinVerdict::kFail;
    };
    std::string tally = std::to_string(counts.carried) + " of " + std::to_string(counts.total) +
                        " branches completed, " + std::to_string(counts.failed) + " failed";
    if (counts.failed > 0 && c.fail_strategy == "fail_fast") {
        return fail("a branch failed (fail_fast): " + tally);
    }
    if (counts.carried >= needed && needed > 0) {
        // wait_all waits for every branch before it decides.
        if (c.fail_strategy == "wait_all" && counts.pending > 0) return JoinVerdict::kWait;
        return JoinVerdict::kFire;
    }
    const bool reachable = counts.carried + counts.pending >= needed && needed > 0;
    if (counts.pending > 0 && (reachable || c.fail_strategy == "wait_all")) {
        return JoinVerdict::kWait;
    }
    return fail("mode " + c.mode + " cannot be met: " + tally);
}

Awaitable<NodeOutcome> JoinType::Execute(NodeRun& run) const {
    const auto& c = run.config<Config<JoinConfig>>().value;
    // Counted as the scheduler does: the state is the same.
    JoinCounts counts;
    json::object outputs;
    const model::Plan& plan = run.plan();
    const auto& state = run.run_state();
    for (int e : run.node().in_edges) {
        ++counts.total;
        const model::PlanEdge& edge = plan.edges[static_cast<size_t>(e)];
        const auto& source = state.nodes[static_cast<size_t>(edge.from)];
        const int branch = plan.nodes[static_cast<size_t>(edge.from)].branch;
        bool branch_failed = false;
        for (const auto& member : plan.nodes) {
            if (member.fork == run.node().join && member.branch == branch && branch >= 0 &&
                state.nodes[static_cast<size_t>(member.index)].status ==
                    ledger::NodeStatus::kFailed) {
                branch_failed = true;
            }
        }
        if (source.status == ledger::NodeStatus::kCompleted &&
            (edge.label.empty() || edge.label == source.signal())) {
            ++counts.carried;
            auto parsed = ParseJson(source.output);
            outputs[plan.nodes[static_cast<size_t>(edge.from)].id] =
                parsed && (parsed->is_object() || parsed->is_array()) ? *parsed
                                                                      : json::value(source.output);
        } else if (branch_failed) {
            ++counts.failed;
        } else if (ledger::IsFinished(source.status)) {
            ++counts.dead;
        } else {
            ++counts.pending;
        }
    }
    std::string why;
    (void)c;
    JoinVerdict verdict = DecideJoin(*run.node().config, counts, &why);
    if (verdict == JoinVerdict::kFail) {
        co_return NodeOutcome::Failed(Error(ErrorCode::kFailedPrecondition, why));
    }
    auto text = CanonicalJson(outputs);
    co_return NodeOutcome::Completed(text ? *text : json::serialize(outputs));
}

const NodeType& ForkNode() {
    static const ForkType type;
    return type;
}

const NodeType& JoinNode() {
    static const JoinType type;
    return type;
}

}  // namespace strowger::engine::nodes
