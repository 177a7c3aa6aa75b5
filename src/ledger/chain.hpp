// The hash chain: sealing new events onto a run's chain, and verifying a stored chain.
//
// Thread-safety: ChainHead is a plain value owned by whoever appends to the run (the run's
// single writer). VerifyChain is reentrant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/event.hpp"

namespace strowger::ledger {

// The last event of a chain: what the next event links to.
struct ChainHead {
    int64_t seq = 0;
    std::string hash = std::string(kGenesisHash);
};

// Turns `event` into the next stored event of `run_id`'s chain and advances `head`.
// With `keep_data`, the sealed event's `data` holds the encoded payload too (for observers);
// otherwise it is left empty (the payload is inside `encoded`).
Event Seal(ChainHead& head, std::string_view run_id, SystemTime time, const NewEvent& event,
           bool keep_data = false);
// The same into `out`, whose strings' buffers are reused (every field is overwritten).
void SealInto(Event& out, ChainHead& head, std::string_view run_id, SystemTime time,
              const NewEvent& event, bool keep_data = false);

struct VerifyIssue {
    int64_t seq = 0;     // first bad sequence number (for truncation: the first missing one)
    std::string reason;  // "gap", "reorder", "prev_hash mismatch", "hash mismatch",
                         // "malformed", "truncated", "wrong run"
    std::string detail;
};

struct VerifyReport {
    int64_t events = 0;
    ChainHead head;  // of the verified prefix
    std::optional<VerifyIssue> issue;
    bool ok() const { return !issue.has_value(); }
};

// Verifies stored event lines in storage order. `expected_head`, if given, is the head the
// store recorded when it last appended; a chain that ends early is reported "truncated".
// With `decoded`, the events of the verified prefix are appended to it, decoded.
VerifyReport VerifyChain(std::string_view run_id, const std::vector<std::string>& lines,
                         const std::optional<ChainHead>& expected_head = std::nullopt,
                         std::vector<Event>* decoded = nullptr);

// Verifies one more stored line of `run_id`'s chain after `head` (as VerifyChain does for each
// line) and advances `head` past it; the issue if it does not follow. With `decoded`, the
// event is put there.
std::optional<VerifyIssue> VerifyNext(ChainHead& head, std::string_view run_id,
                                      std::string_view line, Event* decoded = nullptr);

}  // namespace strowger::ledger
