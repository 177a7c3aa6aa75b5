#include "audit/report.hpp"

#include <boost/json.hpp>

#include <set>

#include "core/json.hpp"
#include "core/strings.hpp"

namespace strowger::audit {

std::string ShortHash(std::string_view hash) {
    return std::string(hash.substr(0, 16)) + "\xE2\x80\xA6";
}

Awaitable<Result<BatchLogAudit>> AuditBatchLog(store::Store& store, CheckpointVerifier& verifier,
                                               const std::vector<Anchor>& anchors) {
    BatchLogAudit audit;
    auto log = co_await VerifyBatchLog(store, verifier, [&](const ledger::CheckpointBatch& b) {
        for (const auto& leaf : b.leaves) audit.leaves[leaf.run_id].push_back(leaf);
    });
    if (!log) co_return std::unexpected(log.error());
    audit.batches = log->batches;
    if (log->finding) audit.findings.push_back(log->finding->Describe("batch"));
    for (const auto& anchor : anchors) {
        if (anchor.kind != Anchor::Kind::kBatches) continue;
        auto found = co_await store.ReadCheckpointBatches(anchor.seq, 1);
        if (!found) co_return std::unexpected(found.error());
        const std::string where = "at batch " + std::to_string(anchor.seq) + ": ";
        const std::string line = " (anchors line " + std::to_string(anchor.line) + ")";
        if (found->empty() || found->front().batch_seq != anchor.seq) {
            audit.findings.push_back(where + "truncated before its anchored head" + line);
        } else if (ledger::BatchHash(found->front()) != anchor.hash) {
            audit.findings.push_back(where + "rewritten before its anchored head" + line);
        }
    }
    co_return audit;
}

std::optional<Finding> CheckSignedAndAnchored(std::string_view run_id,
                                              const std::vector<std::string>& hashes,
                                              const SignedLeaves& leaves,
                                              const std::vector<Anchor>& anchors,
                                              int64_t& signed_leaves) {
    signed_leaves = 0;
    auto hash_at = [&](int64_t seq) -> const std::string* {
        if (seq < 1 || seq > static_cast<int64_t>(hashes.size())) return nullptr;
        return &hashes[static_cast<size_t>(seq - 1)];
    };
    const std::string length = std::to_string(hashes.size());
    if (auto it = leaves.find(run_id); it != leaves.end()) {
        for (const auto& leaf : it->second) {
            ++signed_leaves;
            const std::string* hash = hash_at(leaf.seq);
            if (hash == nullptr) {
                return Finding{leaf.seq, "truncated",
                               "the batch log signed seq " + std::to_string(leaf.seq) +
                                   "; the ledger ends at " + length};
            }
            if (*hash != leaf.head) {
                return Finding{leaf.seq, "checkpoint mismatch",
                               "the batch log signed head " + ShortHash(leaf.head) +
                                   ", the ledger has " + ShortHash(*hash)};
            }
        }
    }
    for (const auto& anchor : anchors) {
        if (anchor.kind != Anchor::Kind::kRun || anchor.run_id != run_id) continue;
        const std::string where = " (anchors line " + std::to_string(anchor.line) + ")";
        const std::string* hash = hash_at(anchor.seq);
        if (hash == nullptr) {
            return Finding{anchor.seq, "truncated before its anchored head",
                           "anchored at seq " + std::to_string(anchor.seq) + where +
                               "; the ledger ends at " + length};
        }
        if (*hash != anchor.hash) {
            return Finding{anchor.seq, "rewritten before its anchored head",
                           "anchored " + ShortHash(anchor.hash) + where + ", the ledger has " +
                               ShortHash(*hash)};
        }
    }
    return std::nullopt;
}

MissingRuns FindMissingRuns(const std::vector<std::string>& present, const SignedLeaves& leaves,
                            const std::vector<Anchor>& anchors) {
    MissingRuns missing;
    std::set<std::string_view> stored(present.begin(), present.end());
    for (const auto& anchor : anchors) {
        if (anchor.kind == Anchor::Kind::kRun && !stored.contains(anchor.run_id)) {
            missing.anchored.emplace_back(
                anchor.run_id, "missing (anchored at seq " + std::to_string(anchor.seq) +
                                   ", anchors line " + std::to_string(anchor.line) + ")");
        }
    }
    for (const auto& [run_id, unused] : leaves) {
        if (!stored.contains(run_id)) ++missing.pruned_signed;
    }
    return missing;
}

Awaitable<Result<std::vector<std::string>>> CheckpointExportLines(store::Store& store,
                                                                  std::string run_id) {
    auto rows = co_await store.ReadCheckpoints(run_id);
    if (!rows) co_return std::unexpected(rows.error());
    std::vector<std::string> lines;
    std::map<int64_t, ledger::CheckpointBatch> batches;
    for (const auto& row : *rows) {
        auto it = batches.find(row.batch_seq);
        if (it == batches.end()) {
            auto read = co_await store.ReadCheckpointBatches(row.batch_seq, 1);
            if (!read) co_return std::unexpected(read.error());
            if (read->empty() || read->front().batch_seq != row.batch_seq) {
                co_return DataLossError("run " + run_id + ": checkpoint batch " +
                                        std::to_string(row.batch_seq) + " is missing");
            }
            it = batches.emplace(row.batch_seq, std::move(read->front())).first;
        }
        const auto& batch = it->second;
        std::vector<ledger::Digest> hashes;
        hashes.reserve(batch.leaves.size());
        for (const auto& leaf : batch.leaves) hashes.push_back(ledger::LeafHash(leaf));
        if (row.leaf_index < 0 || row.leaf_index >= static_cast<int64_t>(hashes.size())) {
            co_return DataLossError("run " + run_id + ": checkpoint at seq " +
                                    std::to_string(row.seq) + " is not in batch " +
                                    std::to_string(row.batch_seq));
        }
        json::array path;
        for (const auto& step : ledger::MerklePath(hashes, static_cast<size_t>(row.leaf_index))) {
            std::string hex(64, '0');
            HexEncode(step.sibling.data(), step.sibling.size(), hex.data());
            path.push_back(json::array{step.sibling_on_left ? "L" : "R", json::string(hex)});
        }
        json::object b;
        b["batch_seq"] = batch.batch_seq;
        b["key_id"] = batch.key_id;
        b["leaves"] = static_cast<int64_t>(batch.leaves.size());
        b["prev_hash"] = batch.prev_hash;
        b["recovered"] = batch.recovered;
        b["root"] = batch.root;
        b["signature"] = batch.signature;
        b["signed_at"] = FormatRfc3339(batch.signed_at);
        json::object checkpoint;
        checkpoint["batch"] = std::move(b);
        checkpoint["head"] = row.head;
        checkpoint["index"] = row.leaf_index;
        checkpoint["path"] = std::move(path);
        checkpoint["run_id"] = run_id;
        checkpoint["seq"] = row.seq;
        json::object line;
        line["checkpoint"] = std::move(checkpoint);
        auto text = CanonicalJson(line);
        if (!text) co_return std::unexpected(text.error());
        lines.push_back(std::move(*text));
    }
    co_return lines;
}

Anchor RunAnchor(std::string run_id, int64_t seq, std::string hash, SystemTime time) {
    Anchor anchor;
    anchor.kind = Anchor::Kind::kRun;
    anchor.run_id = std::move(run_id);
    anchor.seq = seq;
    anchor.hash = std::move(hash);
    anchor.time = time;
    return anchor;
}

Awaitable<Result<std::optional<Anchor>>> BatchLogAnchor(store::Store& store, SystemTime time) {
    auto last = co_await store.LastCheckpointBatch();
    if (!last) co_return std::unexpected(last.error());
    if (!last->has_value()) co_return std::optional<Anchor>();
    Anchor anchor;
    anchor.kind = Anchor::Kind::kBatches;
    anchor.seq = (*last)->batch_seq;
    anchor.hash = ledger::BatchHash(**last);
    anchor.time = time;
    co_return std::optional<Anchor>(std::move(anchor));
}

}  // namespace strowger::audit
