// The join's rule (docs/design/dag.md "Fork and join"), shared by the scheduler (when a join
// can decide) and the join type (what it decides).
#pragma once

#include <string>

#include "model/node_type.hpp"

namespace strowger::engine::nodes {

// The join's incoming branches as they stand.
struct JoinCounts {
    int total = 0;
    int carried = 0;  // completed, their edge carries
    int failed = 0;   // a node of the branch failed
    int dead = 0;     // pruned or skipped (not by failure), or cancelled
    int pending = 0;  // still running or to run
};

enum class JoinVerdict { kWait, kFire, kFail };

// What `join` (a compiled join config) decides now; `why` gets the reason of a kFail.
JoinVerdict DecideJoin(const model::NodeConfig& join, const JoinCounts& counts, std::string* why);

}  // namespace strowger::engine::nodes
