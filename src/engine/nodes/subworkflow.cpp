// `subworkflow`: another workflow file run as a child run (CMDC's :subworkflow). `workflow` is
// the file, relative to this workflow's directory: compiled with this one and pinned in its
// snapshot (a resumed run never reads the file again). `input_mapping` (name -> template)
// fills the child's typed inputs as a JSON object (a value that parses as JSON is sent as
// JSON when the child declares that input as number, boolean, object or array); without it
// the child's input is this node's input. The child runs in the same store, linked both ways
// (its run.created names this run and node; this node records subworkflow.started with the
// child's id before the child exists), and a re-attempt re-attaches to that child. The
// child's output is the node's output; its failure, the node's.
#include "core/json.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct Mapping {
    std::string name;
    std::string type = "string";  // the child's declared type, if it declares the input
    model::Template value;
};

struct SubworkflowConfig {
    std::shared_ptr<const model::Plan> child;
    std::string file;
    std::vector<Mapping> mapping;
    bool has_mapping = false;
};

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
        auto config = std::make_shared<Config<SubworkflowConfig>>();
        SubworkflowConfig& c = config->value;
        auto file = RequiredString(context, "workflow");
        if (!file) return nullptr;
        c.file = *file;
        c.child = context.CompileChild(*file, "workflow");
        if (!c.child) return nullptr;
        if (const json::value* mapping = Field(context, "input_mapping")) {
            if (!mapping->is_object()) {
                context.Error("input_mapping",
                              "expected a mapping of the child's inputs to "
                              "templates");
                return nullptr;
            }
            c.has_mapping = true;
            for (const auto& [key, value] : mapping->get_object()) {
                const std::string at = "input_mapping." + std::string(key);
                Mapping m;
                m.name = std::string(key);
                bool declared = c.child->inputs.empty();
                for (const auto& input : c.child->inputs) {
                    if (input.name == key) {
                        declared = true;
                        m.type = input.type;
                    }
                }
                if (!declared) {
                    context.Error(at, "the child workflow declares no input " + model::Quote(key));
                    continue;
                }
                if (!value.is_string() && !value.is_number() && !value.is_bool()) {
                    context.Error(at, "expected a template");
                    continue;
                }
                m.value = context.ParseTemplate(Text(value), at);
                c.mapping.push_back(std::move(m));
            }
        }
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<SubworkflowConfig>>().value;
        std::string input;
        if (c.has_mapping) {
            json::object object;
            for (const auto& m : c.mapping) {
                std::string text = run.Render(m.value);
                std::optional<json::value> parsed;
                if (m.type != "string") {
                    if (auto value = ParseJson(text)) parsed = std::move(*value);
                }
                object[m.name] = parsed ? *parsed : json::value(text);
            }
            input = JsonText(json::value(std::move(object)));
        } else {
            input = run.Input();
        }
        auto child = co_await run.RunChild(c.child, std::move(input));
        if (!child) co_return NodeOutcome::Failed(child.error());
        if (child->status != ledger::RunStatus::kCompleted) {
            co_return NodeOutcome::Failed(
                Error(ErrorCode::kAborted,
                      "child run " + child->run_id + " (" + c.file + ") " +
                          std::string(ledger::RunStatusName(child->status)) +
                          (child->error.empty() ? "" : ": " + child->error),
                      ErrorDetails{0, -1, -1, "child_failed"}));
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
