// Private to the engine: the node types the registry lists (registry.cpp), one per file, and
// the configs the engine reads back outside the type (the agent loop reads an agent node's).
#pragma once

#include <string>
#include <vector>

#include "engine/nodes/node_type.hpp"

namespace strowger::engine::nodes {

const NodeType& AgentNode();
const NodeType& AggregatorNode();
const NodeType& RouterNode();
const NodeType& ConditionNode();
const NodeType& ForkNode();
const NodeType& JoinNode();
const NodeType& HumanTaskNode();
const NodeType& GateNode();
const NodeType& EvalGateNode();
const NodeType& DebateNode();
const NodeType& HierarchyNode();
const NodeType& ToolNode();
const NodeType& ForEachNode();
const NodeType& SubworkflowNode();

// An agent node's config beyond what PlanNode holds (agent, prompt).
struct AgentNodeConfig {
    std::string mode = "standalone";  // standalone | pool | subagent
    std::string pool_key;             // pool: nodes with the same key share a conversation
    std::vector<int> subagents;       // subagent: agents it may call, by plan index
};

}  // namespace strowger::engine::nodes
