// Anchors: a run's (or the batch log's) head written down outside the store by an operator
// (`strowger audit anchor`), so a later rewrite or truncation shows
// (docs/formats/checkpoint_v1.md).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace strowger::audit {

struct Anchor {
    enum class Kind { kRun, kBatches };
    Kind kind = Kind::kRun;
    std::string run_id;  // kRun
    int64_t seq = 0;     // the run's event seq, or the batch_seq
    std::string hash;    // the event's hash, or the batch's hash
    SystemTime time{};
    int line = 0;  // in the file it was read from
};

std::string FormatAnchor(const Anchor& anchor);
// Every anchor line of `text`; lines not starting with "strowger-anchor " are ignored. A
// malformed anchor line is an error naming `file` and its line.
Result<std::vector<Anchor>> ParseAnchors(std::string_view text, std::string_view file);

}  // namespace strowger::audit
