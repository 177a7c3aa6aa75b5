// The agent loop's conversation (docs/design/dag.md: the agent loop moves here from run.cpp,
// piece by piece): the messages an agent node's model call is sent.
#include <algorithm>

#include "engine/internal/run.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"

namespace strowger::engine::internal {

using model::PlanNode;

namespace {

// The pool key of an agent node in mode pool, or null.
const std::string* PoolKey(const PlanNode& node) {
    const auto* config =
        dynamic_cast<const nodes::Config<nodes::AgentNodeConfig>*>(node.config.get());
    if (config == nullptr || config->value.mode != "pool") return nullptr;
    return &config->value.pool_key;
}

}  // namespace

// A pooled node's earlier turns: the exchanges (prompt, answer) of the nodes of its pool
// upstream of it, in the order they completed. Upstream only, so the conversation is fixed
// before the node starts and the same when rebuilt from the ledger on resume.
void Run::AppendPoolTurns(const PlanNode& node, std::vector<providers::Message>& messages) const {
    const std::string* key = PoolKey(node);
    if (key == nullptr) return;
    std::vector<char> upstream(plan_.nodes.size(), 0);
    std::vector<int> stack = {node.index};
    while (!stack.empty()) {
        const PlanNode& at = plan_.nodes[static_cast<size_t>(stack.back())];
        stack.pop_back();
        for (int e : at.in_edges) {
            const int from = plan_.edges[static_cast<size_t>(e)].from;
            if (upstream[static_cast<size_t>(from)]) continue;
            upstream[static_cast<size_t>(from)] = 1;
            stack.push_back(from);
        }
    }
    for (const auto& step : state_.steps) {
        if (step.node_index < 0 || !upstream[static_cast<size_t>(step.node_index)]) continue;
        const std::string* other = PoolKey(plan_.nodes[static_cast<size_t>(step.node_index)]);
        if (other == nullptr || *other != *key) continue;
        messages.push_back({providers::Role::kUser, step.prompt, {}, {}, {}});
        messages.push_back({providers::Role::kAssistant, step.output, {}, {}, {}});
    }
}

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
    if (plan_.dag) AppendPoolTurns(node, messages);
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
