// What an audit checks beyond a verified read of a run (Engine::VerifyRun), shared by
// `strowger audit ...` and the daemon's /api/audit routes so both report the same thing:
// the leaves the batch log signed for a run (found even if its checkpoint rows were deleted),
// operators' anchors, the batch log's own anchors, and a run's checkpoints as export lines
// (docs/formats/checkpoint_v1.md).
//
// Thread-safety: functions of their arguments; the awaitable ones read the store.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/anchors.hpp"
#include "audit/verifier.hpp"
#include "core/asio.hpp"
#include "core/result.hpp"
#include "ledger/checkpoint.hpp"
#include "store/store.hpp"

namespace strowger::audit {

// The leaves the batch log signed, by run.
using SignedLeaves = std::map<std::string, std::vector<ledger::CheckpointLeaf>, std::less<>>;

// The batch log, verified (VerifyBatchLog) and checked against the batch anchors among
// `anchors`; the leaves it signed, by run, for CheckSignedAndAnchored.
struct BatchLogAudit {
    int64_t batches = 0;
    std::vector<std::string> findings;  // "at batch 3: ..." (empty: sound)
    SignedLeaves leaves;
    bool ok() const { return findings.empty(); }
};
Awaitable<Result<BatchLogAudit>> AuditBatchLog(store::Store& store, CheckpointVerifier& verifier,
                                               const std::vector<Anchor>& anchors);

// Checks a run whose chain verified (`hashes[i]` is the hash of event i + 1) against the
// leaves the batch log signed for it and the anchors naming it: the first problem, if any.
// `signed_leaves` gets how many signed leaves it was checked against.
std::optional<Finding> CheckSignedAndAnchored(std::string_view run_id,
                                              const std::vector<std::string>& hashes,
                                              const SignedLeaves& leaves,
                                              const std::vector<Anchor>& anchors,
                                              int64_t& signed_leaves);

// Runs an audit of every run expects to find (anchored or signed) that are not among
// `present`: each anchored one with "missing (anchored at seq 4, anchors line 2)", and the
// number of signed runs no longer stored (pruned).
struct MissingRuns {
    std::vector<std::pair<std::string, std::string>> anchored;  // run id, what is missing
    int64_t pruned_signed = 0;
};
MissingRuns FindMissingRuns(const std::vector<std::string>& present, const SignedLeaves& leaves,
                            const std::vector<Anchor>& anchors);

// The checkpoint lines of a run's export, one canonical JSON object each, with its batch and
// the Merkle path from its leaf to the batch's root.
Awaitable<Result<std::vector<std::string>>> CheckpointExportLines(store::Store& store,
                                                                  std::string run_id);

// The anchor of a run whose verified head is (`seq`, `hash`).
Anchor RunAnchor(std::string run_id, int64_t seq, std::string hash, SystemTime time);
// The anchor of the store's batch log as it stands (none while it is empty).
Awaitable<Result<std::optional<Anchor>>> BatchLogAnchor(store::Store& store, SystemTime time);

// "3f2a9c01b2d4e5f6…": the first 16 hex digits of a hash, for messages.
std::string ShortHash(std::string_view hash);

}  // namespace strowger::audit
