// `subworkflow`: another workflow file run as a child run (CMDC's :subworkflow). `workflow` is
// the file, relative to this workflow's directory: compiled with this one and pinned in its
// snapshot (a resumed run never reads the file again). `input_mapping` (name -> template)
// fills the child's typed inputs as a JSON object (a value that parses as JSON is sent as
// JSON when the child declares that input as number, boolean, object or array); without it
// the child's input is this node's input. The child runs in the same store, linked both ways
// (its run.created names this run and node; this node records subworkflow.started with the
// child's id before the child exists), and a re-attempt re-attaches to that child. The
// child's output is the node's output; its failure, the node's.
#include "engine/nodes/child_input.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"

namespace strowger::engine::nodes {
namespace {

class SubworkflowType final : public NodeType {
  public:
    std::string_view name() const override { return "subworkflow"; }
    std::string_view summary() const override {
        return "another workflow file as a child run (pinned, linked both ways); its output "
               "is the node's";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["workflow"],"properties":{
            "workflow":{"type":"string","description":"a workflow file, relative to this one"},
            "input_mapping":{"type":"object","additionalProperties":{"type":"string"}},
            "definition":{"type":"object","description":"the pinned child, written by Strowger"},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"workflow", "input_mapping", "definition", "output_key"});
        auto config = std::make_shared<Config<ChildInput>>();
        if (!CompileChildInput(context, config->value)) return nullptr;
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<ChildInput>>().value;
        auto child = co_await run.RunChild(c.child, RenderChildInput(run, c, run.Input()), -1, 1);
        if (!child) co_return NodeOutcome::Failed(child.error());
        if (child->status != ledger::RunStatus::kCompleted) {
            co_return NodeOutcome::Failed(ChildFailure(*child, c.file));
        }
        co_return NodeOutcome::Completed(std::move(child->output));
    }
};

}  // namespace

const NodeType& SubworkflowNode() {
    static const SubworkflowType type;
    return type;
}

}  // namespace strowger::engine::nodes
