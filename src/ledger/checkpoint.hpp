// Signed checkpoints (docs/formats/checkpoint_v1.md): the leaves that name a run's head, the
// Merkle tree a batch of them is signed through, and the batch's signed message. Pure: the
// signing itself is the caller's (core/ed25519.hpp), and so is storing.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "ledger/run_state.hpp"

namespace strowger::ledger {

using Digest = std::array<unsigned char, 32>;

// A run's head at `seq`: what a checkpoint vouches for.
struct CheckpointLeaf {
    std::string run_id;
    int64_t seq = 0;
    std::string head;  // the hash of event `seq`
    friend bool operator==(const CheckpointLeaf&, const CheckpointLeaf&) = default;
};

Digest LeafHash(const CheckpointLeaf& leaf);

// One step of a leaf's path to the root: the sibling, and whether it is on the left.
struct PathStep {
    bool sibling_on_left = false;
    Digest sibling{};
};

// The Merkle root over the leaf hashes (carrying an odd last node up unchanged); the leaf
// hash itself for one leaf. `leaf_hashes` must not be empty.
Digest MerkleRoot(const std::vector<Digest>& leaf_hashes);
// The path of leaf `index` to the root.
std::vector<PathStep> MerklePath(const std::vector<Digest>& leaf_hashes, size_t index);
// The root that `leaf_hash` and `path` lead to.
Digest RootFromPath(const Digest& leaf_hash, const std::vector<PathStep>& path);

// A signed batch of checkpoints: one link of the store's batch log.
struct CheckpointBatch {
    int64_t batch_seq = 0;  // from 1
    std::string prev_hash;  // the previous batch's batch_hash; 64 zeros for batch 1
    std::string root;       // hex Merkle root over the leaves
    std::string key_id;
    SystemTime signed_at{};
    bool recovered = false;  // signs stops a crash left unsigned (signed at the next start)
    std::string signature;   // hex Ed25519 signature of Message()
    std::vector<CheckpointLeaf> leaves;
};

std::string BatchMessage(const CheckpointBatch& batch);
// SHA-256 hex of the message and its signature: what the next batch names as prev_hash.
std::string BatchHash(const CheckpointBatch& batch);
// The leaves as stored: "run_id seq head\n" each.
std::string EncodeLeaves(const std::vector<CheckpointLeaf>& leaves);
Result<std::vector<CheckpointLeaf>> DecodeLeaves(std::string_view text);
// The hex root of the batch's leaves (what `root` must be).
std::string ComputeRoot(const std::vector<CheckpointLeaf>& leaves);

// Every how many events a run's head is checkpointed while it executes.
inline constexpr int64_t kCheckpointEvery = 128;
// True if the run's head after an append (from seq `before` to seq `after`, status
// `status_after`) must be checkpointed: the run stopped, or its ledger crossed a multiple of
// kCheckpointEvery.
bool CheckpointDue(int64_t before, int64_t after, RunStatus status_after);
// A status at which a run's last event must be covered by a checkpoint.
bool IsStop(RunStatus status);

}  // namespace strowger::ledger
