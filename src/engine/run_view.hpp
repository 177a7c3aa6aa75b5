// The run record: a run's state as JSON, for `strowger run --json`, `runs show --json` and the
// daemon API. Field names follow LibreFang's WorkflowRun/StepResult where they overlap
// (`step_results`, `step_name`, `agent_name`, `input_tokens`, `output_tokens`, `duration_ms`).
#pragma once

#include <boost/json/object.hpp>

#include "core/json.hpp"
#include "ledger/run_state.hpp"
#include "model/plan.hpp"

namespace strowger::engine {

// `plan` may be null (definition unavailable): agent names are then omitted.
json::object RunRecordJson(const model::Plan* plan, const ledger::RunState& state);

// Duration between two times in milliseconds (0 if either is unset).
int64_t MillisBetween(SystemTime from, SystemTime to);

}  // namespace strowger::engine
