// The agent loop's conversation (docs/design/dag.md: the agent loop moves here from run.cpp,
// piece by piece): the messages an agent node's model call is sent.
#include "engine/internal/run.hpp"

namespace strowger::engine::internal {

using model::PlanNode;

std::vector<providers::Message> Run::Conversation(const PlanNode& node,
                                                  const std::string& prompt) const {
    const auto* agent = plan_.AgentOf(node);
    const auto& ns = state_.nodes[static_cast<size_t>(node.index)];
    size_t count = 2;  // system and user
    for (const auto& turn : ns.turns) count += 1 + turn.calls.size();
    std::vector<providers::Message> messages;
    messages.reserve(count);
    if (!agent->system_prompt.empty()) {
        messages.push_back({providers::Role::kSystem, agent->system_prompt, {}, {}, {}});
    }
    messages.push_back({providers::Role::kUser, prompt, {}, {}, {}});
    for (const auto& turn : ns.turns) {
        providers::Message assistant{providers::Role::kAssistant, turn.content, {}, {}, {}};
        for (const auto& call : turn.calls) {
            std::string facing = call.tool;
            if (auto slash = facing.find('/'); slash != std::string::npos)
                facing.replace(slash, 1, "__");
            assistant.tool_calls.push_back({call.call_id, facing, call.arguments});
        }
        messages.push_back(std::move(assistant));
        for (const auto& call : turn.calls) {
            if (!call.finished) continue;
            messages.push_back({providers::Role::kTool, call.result, {}, call.call_id, call.tool});
        }
    }
    return messages;
}

}  // namespace strowger::engine::internal
