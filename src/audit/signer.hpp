// Signs checkpoints in batches (docs/design/audit.md, docs/formats/checkpoint_v1.md).
//
// The engine Adds a leaf — a run's head — when a run stops or its ledger crosses a multiple
// of ledger::kCheckpointEvery events. Leaves wait a few milliseconds (or until 1,024 wait);
// then one Ed25519 signature covers them all through a Merkle root, and the batch is appended
// to the store's batch log. An Ed25519 signature costs ≈ 55 µs; one per run would halve W1.
//
// A crash between a stop's commit and its batch's loses the leaf: RecoverUnsignedStops signs
// such stops at the next start, after the caller has verified each run's chain, in a batch
// marked `recovered`.
//
// Thread-safety: Add and Pending may be called from any thread; Flush and
// RecoverUnsignedStops from any coroutine. Batches are signed and appended one at a time on
// the signer's own strand.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/ed25519.hpp"
#include "core/result.hpp"
#include "ledger/checkpoint.hpp"
#include "store/store.hpp"

namespace strowger::audit {

struct SignerOptions {
    std::chrono::milliseconds delay{2};  // how long a leaf may wait for others
    size_t max_leaves = 1024;            // leaves per batch, at most
};

class CheckpointSigner : public std::enable_shared_from_this<CheckpointSigner> {
  public:
    static std::shared_ptr<CheckpointSigner> Create(Executor executor,
                                                    std::shared_ptr<store::Store> store,
                                                    std::shared_ptr<const SigningKey> key,
                                                    Clock& clock = Clock::Real(),
                                                    SignerOptions options = {});

    const SigningKey& key() const { return *key_; }

    // Announces a leaf whose append is about to be committed: from now on Pending(leaf) is
    // true, so a reader that sees the committed stop before Add does not call it unsigned.
    // Every Expect is followed by Add (the append committed) or Forget (it failed).
    void Expect(ledger::CheckpointLeaf leaf);
    void Forget(const ledger::CheckpointLeaf& leaf);
    // Queues a leaf (ending its Expect, if any); it is signed and stored soon after.
    void Add(ledger::CheckpointLeaf leaf);
    // True if `leaf` is expected or was added here and its batch is not stored yet (it will
    // be). Ask before reading the checkpoints: a leaf stops being pending once its batch is
    // stored, so a reader that asks after its read may miss both.
    bool Pending(const ledger::CheckpointLeaf& leaf) const;
    // Signs and stores every leaf added before the call. The error of a batch the store
    // refused (its leaves are dropped: the runs' stops stay unsigned until recovered).
    Awaitable<Status> Flush();

    // Signs, in `recovered` batches, the heads of runs at a stop that no checkpoint covers —
    // each only if `verified(record)` says its ledger verifies (otherwise it is left unsigned:
    // `audit verify` reports it). Returns how many were signed.
    using VerifyFn = std::function<Awaitable<Result<bool>>(store::RunRecord)>;
    Awaitable<Result<int64_t>> RecoverUnsignedStops(VerifyFn verified);

    // True if some leaf added here is not stored yet.
    bool HasPending() const;
    // Batches appended by this signer (for tests and stats).
    int64_t batches_signed() const;

  private:
    CheckpointSigner(Executor executor, std::shared_ptr<store::Store> store,
                     std::shared_ptr<const SigningKey> key, Clock& clock, SignerOptions options);
    // Signs and appends leaves until none wait (on strand_).
    Awaitable<void> Drain(std::shared_ptr<CheckpointSigner> self);
    // Signs `leaves` on top of the store's last batch and appends them (retrying when another
    // process appended first).
    Awaitable<Status> SignAndAppend(std::vector<ledger::CheckpointLeaf> leaves, bool recovered);
    void Schedule();  // REQUIRES(mutex_): starts Drain after `delay` unless it runs or is due

    Executor executor_;
    asio::strand<Executor> strand_;
    std::shared_ptr<store::Store> store_;
    std::shared_ptr<const SigningKey> key_;
    Clock& clock_;
    SignerOptions options_;

    mutable std::mutex mutex_;
    std::vector<ledger::CheckpointLeaf> expected_;  // GUARDED_BY(mutex_): appends in flight
    std::deque<ledger::CheckpointLeaf> waiting_;    // GUARDED_BY(mutex_)
    std::vector<ledger::CheckpointLeaf> signing_;   // GUARDED_BY(mutex_): taken, not stored yet
    uint64_t added_ = 0;                            // GUARDED_BY(mutex_)
    uint64_t done_ = 0;                             // GUARDED_BY(mutex_): leaves stored or dropped
    bool draining_ = false;                         // GUARDED_BY(mutex_)
    std::optional<Error> last_error_;               // GUARDED_BY(mutex_)
    // Flush callers waiting for `done_` to reach their mark.
    struct Waiter {
        uint64_t mark;
        std::shared_ptr<asio::steady_timer> timer;
    };
    std::vector<Waiter> waiters_;  // GUARDED_BY(mutex_)
    std::unique_ptr<asio::steady_timer> delay_timer_;
    // The batch log's last link as this signer last saw it (refreshed on a conflict).
    int64_t last_batch_seq_ = -1;  // -1: not read yet (strand_ only)
    std::string last_batch_hash_;
    int64_t batches_signed_ = 0;       // strand_ only; read under mutex_ via a copy
    int64_t batches_signed_copy_ = 0;  // GUARDED_BY(mutex_)
};

}  // namespace strowger::audit
