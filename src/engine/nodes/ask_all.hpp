// Several labelled model calls of one node at once (docs/design/dag.md "Sub-calls"): a
// debate's round, a hierarchy's workers. Each goes through NodeRun::Ask, so each is recorded
// and replayed on its own; at most `max_parallel` are in flight.
#pragma once

#include <string>
#include <vector>

#include "engine/nodes/node_type.hpp"

namespace strowger::engine::nodes {

struct AskCall {
    int agent = -1;
    std::string label;
    std::string prompt;
};

// The answers in call order. After the first failure no further call starts (those get a
// kCancelled "not run"); when the node is cancelled the calls in flight are cancelled and
// awaited before this returns.
Awaitable<std::vector<Result<std::string>>> AskAll(NodeRun& run, std::vector<AskCall> calls,
                                                   size_t max_parallel);

// The node fails with "<type> failed: <part>: <error>" (a debate's or a hierarchy's sub-call).
NodeOutcome SubCallFailure(std::string_view type, std::string_view part, const Error& error);

// The name to show for agent `agent` of the plan (its name, else "agent<index>").
std::string AgentName(const model::Plan& plan, int agent);

}  // namespace strowger::engine::nodes
