// Identifiers.
#pragma once

#include <string>

#include "core/clock.hpp"
#include "core/random.hpp"

namespace strowger {

// A run id: a ULID (26 Crockford base32 characters, 48-bit millisecond time then 80 random
// bits), so ids sort by creation time. Example: "01JD3M6K9Q3V8C6Y2W5T0R1N7H".
std::string NewRunId(const Clock& clock, Random& random);

// True if `text` has the shape of an id produced by NewRunId.
bool LooksLikeRunId(const std::string& text);

}  // namespace strowger
