#include "audit/anchors.hpp"

#include <charconv>

#include "core/strings.hpp"

namespace strowger::audit {

namespace {

bool IsHexHash(std::string_view text) {
    if (text.size() != 64) return false;
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace

std::string FormatAnchor(const Anchor& anchor) {
    std::string out = "strowger-anchor v1 ";
    if (anchor.kind == Anchor::Kind::kRun) {
        out += "run " + anchor.run_id + " ";
    } else {
        out += "batches ";
    }
    out += std::to_string(anchor.seq) + " " + anchor.hash + " " + FormatRfc3339(anchor.time);
    return out;
}

Result<std::vector<Anchor>> ParseAnchors(std::string_view text, std::string_view file) {
    std::vector<Anchor> anchors;
    int line_number = 0;
    for (const auto& raw : Split(text, '\n')) {
        ++line_number;
        std::string_view line = Trim(raw);
        if (!StartsWith(line, "strowger-anchor ")) continue;
        auto bad = [&](std::string_view why) {
            return InvalidArgumentError(std::string(file) + ":" + std::to_string(line_number) +
                                        ": not an anchor (" + std::string(why) + ")");
        };
        std::vector<std::string> words;
        for (auto& word : Split(line, ' ')) {
            if (!word.empty()) words.push_back(std::move(word));
        }
        if (words.size() < 2 || words[1] != "v1") return bad("unknown version");
        Anchor anchor;
        anchor.line = line_number;
        size_t next = 3;
        if (words.size() >= 3 && words[2] == "run") {
            if (words.size() != 7) return bad("expected: run RUN_ID SEQ HASH TIME");
            anchor.kind = Anchor::Kind::kRun;
            anchor.run_id = words[3];
            next = 4;
        } else if (words.size() >= 3 && words[2] == "batches") {
            if (words.size() != 6) return bad("expected: batches SEQ HASH TIME");
            anchor.kind = Anchor::Kind::kBatches;
        } else {
            return bad("expected \"run\" or \"batches\"");
        }
        std::string_view seq = words[next];
        auto [end, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), anchor.seq);
        if (ec != std::errc() || end != seq.data() + seq.size() || anchor.seq < 0) {
            return bad("bad sequence number");
        }
        anchor.hash = words[next + 1];
        if (!IsHexHash(anchor.hash)) return bad("bad hash");
        auto time = ParseRfc3339(words[next + 2]);
        if (!time) return bad("bad time");
        anchor.time = *time;
        anchors.push_back(std::move(anchor));
    }
    return anchors;
}

}  // namespace strowger::audit
