#include "ledger/checkpoint.hpp"

#include <charconv>
#include <cstring>

#include "core/sha256.hpp"
#include "core/strings.hpp"

namespace strowger::ledger {

namespace {

std::string_view Bytes(const Digest& digest) {
    return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

Digest NodeHash(const Digest& left, const Digest& right) {
    static constexpr char kNodePrefix[1] = {'\x01'};
    Digest out;
    char hex[64];
    std::string pair;
    pair.reserve(64);
    pair.append(Bytes(left));
    pair.append(Bytes(right));
    Sha256HexTo(std::string_view(kNodePrefix, 1), pair, {}, hex, out.data());
    return out;
}

std::string Hex(const Digest& digest) {
    std::string out(64, '0');
    HexEncode(digest.data(), digest.size(), out.data());
    return out;
}

}  // namespace

Digest LeafHash(const CheckpointLeaf& leaf) {
    std::string text;
    text.reserve(leaf.run_id.size() + leaf.head.size() + 48);
    text.push_back('\0');
    text += "strowger checkpoint v1\n";
    text += leaf.run_id;
    text += '\n';
    text += std::to_string(leaf.seq);
    text += '\n';
    text += leaf.head;
    Digest out;
    char hex[64];
    Sha256HexTo(text, {}, {}, hex, out.data());
    return out;
}

Digest MerkleRoot(const std::vector<Digest>& leaf_hashes) {
    std::vector<Digest> level = leaf_hashes;
    while (level.size() > 1) {
        std::vector<Digest> next;
        next.reserve((level.size() + 1) / 2);
        for (size_t i = 0; i + 1 < level.size(); i += 2)
            next.push_back(NodeHash(level[i], level[i + 1]));
        if (level.size() % 2 == 1) next.push_back(level.back());
        level = std::move(next);
    }
    return level.empty() ? Digest{} : level.front();
}

std::vector<PathStep> MerklePath(const std::vector<Digest>& leaf_hashes, size_t index) {
    std::vector<PathStep> path;
    std::vector<Digest> level = leaf_hashes;
    while (level.size() > 1) {
        if (index % 2 == 1) {
            path.push_back({true, level[index - 1]});
        } else if (index + 1 < level.size()) {
            path.push_back({false, level[index + 1]});
        }  // else: carried up, no step
        std::vector<Digest> next;
        next.reserve((level.size() + 1) / 2);
        for (size_t i = 0; i + 1 < level.size(); i += 2)
            next.push_back(NodeHash(level[i], level[i + 1]));
        if (level.size() % 2 == 1) next.push_back(level.back());
        level = std::move(next);
        index /= 2;
    }
    return path;
}

Digest RootFromPath(const Digest& leaf_hash, const std::vector<PathStep>& path) {
    Digest node = leaf_hash;
    for (const auto& step : path) {
        node = step.sibling_on_left ? NodeHash(step.sibling, node) : NodeHash(node, step.sibling);
    }
    return node;
}

std::string BatchMessage(const CheckpointBatch& batch) {
    std::string message = "strowger checkpoint batch v1\n";
    message += "batch " + std::to_string(batch.batch_seq) + "\n";
    message += "prev " + batch.prev_hash + "\n";
    message += "root " + batch.root + "\n";
    message += "leaves " + std::to_string(batch.leaves.size()) + "\n";
    message += "key " + batch.key_id + "\n";
    message += "time " + FormatRfc3339(batch.signed_at) + "\n";
    message += std::string("recovered ") + (batch.recovered ? "1" : "0") + "\n";
    return message;
}

std::string BatchHash(const CheckpointBatch& batch) {
    return Sha256Hex(BatchMessage(batch), "signature " + batch.signature + "\n");
}

std::string EncodeLeaves(const std::vector<CheckpointLeaf>& leaves) {
    std::string out;
    out.reserve(leaves.size() * 100);
    for (const auto& leaf : leaves) {
        out += leaf.run_id;
        out += ' ';
        out += std::to_string(leaf.seq);
        out += ' ';
        out += leaf.head;
        out += '\n';
    }
    return out;
}

Result<std::vector<CheckpointLeaf>> DecodeLeaves(std::string_view text) {
    std::vector<CheckpointLeaf> leaves;
    size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        size_t end = text.find('\n');
        if (end == std::string_view::npos) {
            return DataLossError("checkpoint leaves: line " + std::to_string(line_number) +
                                 " does not end");
        }
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end + 1);
        size_t first = line.find(' ');
        size_t second = first == std::string_view::npos ? first : line.find(' ', first + 1);
        CheckpointLeaf leaf;
        if (second == std::string_view::npos) {
            return DataLossError("checkpoint leaves: line " + std::to_string(line_number) +
                                 " is not \"run_id seq head\"");
        }
        leaf.run_id = std::string(line.substr(0, first));
        std::string_view seq = line.substr(first + 1, second - first - 1);
        auto [ptr, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), leaf.seq);
        if (ec != std::errc() || ptr != seq.data() + seq.size() || leaf.seq < 1) {
            return DataLossError("checkpoint leaves: line " + std::to_string(line_number) +
                                 ": bad seq");
        }
        leaf.head = std::string(line.substr(second + 1));
        leaves.push_back(std::move(leaf));
    }
    return leaves;
}

std::string ComputeRoot(const std::vector<CheckpointLeaf>& leaves) {
    std::vector<Digest> hashes;
    hashes.reserve(leaves.size());
    for (const auto& leaf : leaves) hashes.push_back(LeafHash(leaf));
    return Hex(MerkleRoot(hashes));
}

bool IsStop(RunStatus status) {
    return status != RunStatus::kRunning && status != RunStatus::kPending;
}

bool CheckpointDue(int64_t before, int64_t after, RunStatus status_after) {
    return IsStop(status_after) || after / kCheckpointEvery > before / kCheckpointEvery;
}

}  // namespace strowger::ledger
