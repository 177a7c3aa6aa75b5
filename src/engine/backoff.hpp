// Delay before the next retry attempt (exponential with jitter; model::BackoffSpec).
#pragma once

#include <cstdint>

#include "core/random.hpp"
#include "model/workflow.hpp"

namespace strowger::engine {

// Delay after the `failures`-th failure (1 = first): min(max, initial * multiplier^(failures-1)),
// then reduced by a random fraction of up to `jitter` ("equal jitter" keeps delays from
// collapsing to zero while still spreading retries of many runs apart).
int64_t BackoffDelayMs(const model::BackoffSpec& spec, int64_t failures, Random& random);

}  // namespace strowger::engine
