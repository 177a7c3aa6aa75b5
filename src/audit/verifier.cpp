#include "audit/verifier.hpp"

#include <algorithm>

namespace strowger::audit {

namespace {

constexpr size_t kCachedBatches = 32;

std::string Short(std::string_view hash) {
    return std::string(hash.substr(0, 12)) + "\xE2\x80\xA6";
}

}  // namespace

std::string Finding::Describe(std::string_view unit) const {
    std::string out;
    if (seq > 0) out = "at " + std::string(unit) + " " + std::to_string(seq) + ": ";
    out += reason;
    if (!detail.empty()) out += " (" + detail + ")";
    return out;
}

CheckpointVerifier::CheckpointVerifier(std::shared_ptr<const VerifyingKey> key)
    : key_(std::move(key)) {}

std::shared_ptr<const CheckpointVerifier::Cached> CheckpointVerifier::Check(
    const ledger::CheckpointBatch& batch) {
    auto cached = std::make_shared<Cached>();
    cached->signature = batch.signature;
    cached->leaves = batch.leaves;
    const std::string batch_name = "batch " + std::to_string(batch.batch_seq);
    if (batch.key_id != key_->id()) {
        cached->finding = Finding{batch.batch_seq, "unknown key",
                                  batch_name + " is signed by key " + batch.key_id +
                                      ", not this store's key " + key_->id()};
    } else if (!key_->Verify(ledger::BatchMessage(batch), batch.signature)) {
        cached->finding =
            Finding{batch.batch_seq, "bad signature", batch_name + "'s signature does not verify"};
    } else if (batch.leaves.empty() || ledger::ComputeRoot(batch.leaves) != batch.root) {
        cached->finding = Finding{batch.batch_seq, "root mismatch",
                                  batch_name + "'s leaves do not make its signed root"};
    }
    return cached;
}

std::optional<Finding> CheckpointVerifier::CheckBatch(const ledger::CheckpointBatch& batch) {
    if (!key_) return std::nullopt;
    {
        std::lock_guard lock(mutex_);
        auto it = cache_.find(batch.batch_seq);
        if (it != cache_.end() && it->second->signature == batch.signature &&
            it->second->leaves == batch.leaves) {
            return it->second->finding;
        }
    }
    auto cached = Check(batch);
    std::lock_guard lock(mutex_);
    if (!cache_.count(batch.batch_seq)) order_.push_back(batch.batch_seq);
    cache_[batch.batch_seq] = cached;
    while (order_.size() > kCachedBatches) {
        cache_.erase(order_.front());
        order_.pop_front();
    }
    return cached->finding;
}

Awaitable<Result<std::shared_ptr<const CheckpointVerifier::Cached>>> CheckpointVerifier::Batch(
    store::Store& store, int64_t batch_seq) {
    {
        std::lock_guard lock(mutex_);
        auto it = cache_.find(batch_seq);
        if (it != cache_.end()) co_return it->second;
    }
    auto batches = co_await store.ReadCheckpointBatches(batch_seq, 1);
    if (!batches) co_return std::unexpected(batches.error());
    if (batches->empty() || batches->front().batch_seq != batch_seq) {
        co_return std::shared_ptr<const Cached>();
    }
    CheckBatch(batches->front());
    std::lock_guard lock(mutex_);
    auto it = cache_.find(batch_seq);
    if (it != cache_.end()) co_return it->second;
    co_return Check(batches->front());
}

Awaitable<Result<std::optional<Finding>>> CheckpointVerifier::CheckRun(
    store::Store& store, store::RunRecord record, std::vector<std::string> hashes,
    std::function<bool(const ledger::CheckpointLeaf&)> pending) {
    using Found = std::optional<Finding>;
    if (!key_) co_return Found();
    const auto length = static_cast<int64_t>(hashes.size());
    // Asked before the checkpoints are read: a leaf stops being pending when its batch is
    // stored, so asked after, a batch stored in between would be in neither.
    const bool at_stop = ledger::IsStop(record.status) && length > 0;
    const bool head_pending =
        at_stop && pending && pending(ledger::CheckpointLeaf{record.run_id, length, hashes.back()});
    auto rows = co_await store.ReadCheckpoints(record.run_id);
    if (!rows) co_return std::unexpected(rows.error());
    int64_t covered = 0;
    std::optional<int64_t> head_now;  // the record's head, reread once if needed
    for (const auto& row : *rows) {
        if (row.seq > length) {
            // A live run may have appended and signed more since its events were read: a row
            // past the read prefix is a truncation only if the stored head does not reach it.
            if (!head_now) {
                auto now = co_await store.GetRun(record.run_id);
                if (!now) co_return std::unexpected(now.error());
                head_now = now->head.seq;
            }
            if (*head_now >= row.seq && *head_now > record.head.seq) continue;
            co_return Finding{row.seq, "truncated",
                              "batch " + std::to_string(row.batch_seq) + " signed seq " +
                                  std::to_string(row.seq) + "; the ledger ends at seq " +
                                  std::to_string(length)};
        }
        if (row.seq < 1 || hashes[static_cast<size_t>(row.seq - 1)] != row.head) {
            co_return Finding{row.seq, "checkpoint mismatch",
                              "batch " + std::to_string(row.batch_seq) + " signed head " +
                                  Short(row.head) + ", the ledger has " +
                                  Short(row.seq >= 1 ? hashes[static_cast<size_t>(row.seq - 1)]
                                                     : std::string("nothing"))};
        }
        auto batch = co_await Batch(store, row.batch_seq);
        if (!batch) co_return std::unexpected(batch.error());
        if (!*batch) {
            co_return Finding{row.seq, "checkpoint batch missing",
                              "batch " + std::to_string(row.batch_seq) + " is not in the store"};
        }
        if ((*batch)->finding) {
            Finding finding = *(*batch)->finding;
            finding.seq = row.seq;
            co_return finding;
        }
        const auto& leaves = (*batch)->leaves;
        ledger::CheckpointLeaf leaf{record.run_id, row.seq, row.head};
        if (row.leaf_index < 0 || row.leaf_index >= static_cast<int64_t>(leaves.size()) ||
            !(leaves[static_cast<size_t>(row.leaf_index)] == leaf)) {
            co_return Finding{row.seq, "checkpoint not signed",
                              "batch " + std::to_string(row.batch_seq) + " does not list it"};
        }
        covered = std::max(covered, row.seq);
    }
    if (record.checkpoint_seq > covered) {
        co_return Finding{record.checkpoint_seq, "checkpoints missing",
                          "the run records a signed checkpoint at seq " +
                              std::to_string(record.checkpoint_seq) + "; none is stored"};
    }
    if (at_stop && covered < length) {
        if (!head_pending) {
            co_return Finding{length, "unsigned stop",
                              "the run is " + std::string(ledger::RunStatusName(record.status)) +
                                  " at seq " + std::to_string(length) +
                                  " and no signed checkpoint covers it"};
        }
    }
    co_return Found();
}

Awaitable<Result<BatchLogReport>> VerifyBatchLog(
    store::Store& store, CheckpointVerifier& verifier,
    std::function<void(const ledger::CheckpointBatch&)> on_batch) {
    BatchLogReport report;
    report.head = std::string(ledger::kGenesisHash);
    int64_t next = 1;
    while (true) {
        auto page = co_await store.ReadCheckpointBatches(next, 64);
        if (!page) co_return std::unexpected(page.error());
        if (page->empty()) break;
        for (const auto& batch : *page) {
            if (batch.batch_seq != next) {
                report.finding = Finding{next, "gap",
                                         "batch " + std::to_string(next) + " is missing (found " +
                                             std::to_string(batch.batch_seq) + ")"};
                co_return report;
            }
            if (batch.prev_hash != report.head) {
                report.finding = Finding{
                    batch.batch_seq, "prev_hash mismatch",
                    "it does not name batch " + std::to_string(batch.batch_seq - 1) + "'s hash"};
                co_return report;
            }
            if (auto finding = verifier.CheckBatch(batch)) {
                report.finding = std::move(finding);
                co_return report;
            }
            if (on_batch) on_batch(batch);
            report.head = ledger::BatchHash(batch);
            ++report.batches;
            report.leaves += static_cast<int64_t>(batch.leaves.size());
            ++next;
        }
    }
    co_return report;
}

}  // namespace strowger::audit
