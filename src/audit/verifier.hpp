// Verifying signed checkpoints and the batch log (docs/design/audit.md).
//
// The hash chain itself is ledger::VerifyChain's; the engine combines both in every read of a
// run (Engine::VerifyRun), and `strowger audit verify` reports what they find.
//
// Thread-safety: a CheckpointVerifier may be used from any thread (its cache is locked).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/ed25519.hpp"
#include "core/result.hpp"
#include "ledger/checkpoint.hpp"
#include "store/store.hpp"

namespace strowger::audit {

// What is wrong with a run's record or the batch log: the first problem found.
struct Finding {
    int64_t seq = 0;     // the run's event (or the batch, for the batch log); 0: none
    std::string reason;  // "hash mismatch", "checkpoint mismatch", "unsigned stop", ...
    std::string detail;
    // "at seq 14: hash mismatch (stored 3f2a…, computed 9b1c…)"
    std::string Describe(std::string_view unit = "seq") const;
};

class CheckpointVerifier {
  public:
    // Null `key`: signatures are not checked (CheckRun and CheckBatch find nothing).
    explicit CheckpointVerifier(std::shared_ptr<const VerifyingKey> key);

    const VerifyingKey* key() const { return key_.get(); }

    // A batch is fine if its key is this verifier's, its signature verifies and its root is
    // the Merkle root of its leaves. Cached by batch.
    std::optional<Finding> CheckBatch(const ledger::CheckpointBatch& batch);

    // Checks a run's checkpoint rows against its chain, already verified: `hashes[i]` is the
    // hash of event i + 1. Every row must be a leaf of a sound batch and name the hash the
    // chain has at its seq; a run at a stop must have its head covered, unless
    // `pending(head leaf)` says this process will sign it (its batch is on its way); it is
    // asked before the checkpoints are read.
    Awaitable<Result<std::optional<Finding>>> CheckRun(
        store::Store& store, store::RunRecord record, std::vector<std::string> hashes,
        std::function<bool(const ledger::CheckpointLeaf&)> pending);

  private:
    struct Cached {
        std::string signature;
        std::optional<Finding> finding;
        std::vector<ledger::CheckpointLeaf> leaves;
    };
    // The batch, fetched and checked (cached).
    Awaitable<Result<std::shared_ptr<const Cached>>> Batch(store::Store& store, int64_t batch_seq);
    std::shared_ptr<const Cached> Check(const ledger::CheckpointBatch& batch);

    std::shared_ptr<const VerifyingKey> key_;
    std::mutex mutex_;
    std::map<int64_t, std::shared_ptr<const Cached>> cache_;  // GUARDED_BY(mutex_)
    std::deque<int64_t> order_;                               // GUARDED_BY(mutex_): eviction
};

// Walks the store's whole batch log: sequence numbers from 1 without gaps, each batch naming
// the previous one's hash, each batch sound (CheckBatch). `on_batch` sees every batch, in
// order, until the first finding.
struct BatchLogReport {
    int64_t batches = 0;
    int64_t leaves = 0;
    std::string head;                // the last batch's hash
    std::optional<Finding> finding;  // seq = batch_seq
};
Awaitable<Result<BatchLogReport>> VerifyBatchLog(
    store::Store& store, CheckpointVerifier& verifier,
    std::function<void(const ledger::CheckpointBatch&)> on_batch);

}  // namespace strowger::audit
