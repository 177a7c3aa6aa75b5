#include "engine/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace strowger::engine {

int64_t BackoffDelayMs(const model::BackoffSpec& spec, int64_t failures, Random& random) {
    const auto k = static_cast<double>(std::max<int64_t>(1, failures));
    double delay = static_cast<double>(spec.initial_delay_ms);
    switch (spec.kind) {
        case model::BackoffKind::kConstant:
            break;
        case model::BackoffKind::kLinear:
            delay *= k;
            break;
        case model::BackoffKind::kExponential:
            delay *= std::pow(spec.multiplier, k - 1);
            break;
    }
    delay = std::min(delay, static_cast<double>(spec.max_delay_ms));
    if (spec.jitter > 0) delay *= 1.0 - spec.jitter * random.NextDouble();
    return std::max<int64_t>(0, static_cast<int64_t>(std::llround(delay)));
}

}  // namespace strowger::engine
