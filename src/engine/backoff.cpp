#include "engine/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace strowger::engine {

int64_t BackoffDelayMs(const model::BackoffSpec& spec, int64_t failures, Random& random) {
    double delay =
        static_cast<double>(spec.initial_delay_ms) *
        std::pow(spec.multiplier, static_cast<double>(std::max<int64_t>(0, failures - 1)));
    delay = std::min(delay, static_cast<double>(spec.max_delay_ms));
    if (spec.jitter > 0) delay *= 1.0 - spec.jitter * random.NextDouble();
    return std::max<int64_t>(0, static_cast<int64_t>(std::llround(delay)));
}

}  // namespace strowger::engine
