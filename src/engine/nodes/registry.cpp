// Every node type, in one table: adding a type is its file, one line here, and its golden
// case (docs/design/dag.md).
#include <utility>

#include "engine/nodes/types.hpp"

namespace strowger::engine {
namespace {

struct Entry {
    std::string_view name;  // as written in a workflow
    const NodeType& (*type)();
};

constexpr Entry kTypes[] = {
    {"agent", nodes::AgentNode},
    {"aggregator", nodes::AggregatorNode},
    {"router", nodes::RouterNode},
    {"condition", nodes::ConditionNode},
    {"fork", nodes::ForkNode},
    {"join", nodes::JoinNode},
    {"human_task", nodes::HumanTaskNode},
    {"gate", nodes::GateNode},
    {"eval_gate", nodes::EvalGateNode},
    {"debate", nodes::DebateNode},
    {"hierarchy", nodes::HierarchyNode},
    {"tool", nodes::ToolNode},
    {"for_each", nodes::ForEachNode},
    {"subworkflow", nodes::SubworkflowNode},
};

// CMDC normalises these to human_task.
constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
    {"human_approval", "human_task"},
    {"approval", "human_task"},
};

class Registry final : public model::NodeTypeRegistry {
  public:
    const model::NodeTypeInfo* Find(std::string_view name) const override {
        for (const auto& [alias, real] : kAliases) {
            if (alias == name) name = real;
        }
        for (const auto& entry : kTypes) {
            if (entry.name == name) return &entry.type();
        }
        return nullptr;
    }
    std::vector<std::string_view> Names() const override {
        std::vector<std::string_view> names;
        for (const auto& entry : kTypes) names.push_back(entry.name);
        return names;
    }
};

}  // namespace

const model::NodeTypeRegistry& NodeTypes() {
    static const Registry registry;
    return registry;
}

}  // namespace strowger::engine
