#include "ledger/chain.hpp"

#include "core/sha256.hpp"

namespace strowger::ledger {

Event Seal(ChainHead& head, std::string_view run_id, SystemTime time, const NewEvent& event,
           bool keep_data) {
    Event sealed;
    SealInto(sealed, head, run_id, time, event, keep_data);
    return sealed;
}

void SealInto(Event& sealed, ChainHead& head, std::string_view run_id, SystemTime time,
              const NewEvent& event, bool keep_data) {
    sealed.seq = head.seq + 1;
    sealed.run_id.clear();
    sealed.prev_hash.clear();
    sealed.time = time;
    sealed.type = TypeOf(event.payload);
    if (sealed.type == EventType::kUnknown) {
        sealed.type_name = std::get<UnknownPayload>(event.payload).type;
    } else {
        sealed.type_name = EventTypeName(sealed.type);
    }
    sealed.node = event.node;
    sealed.attempt = event.attempt;
    // The payload goes through a per-thread scratch buffer straight into the line. One
    // encoding serves both the stored line and the hash: "hash" is written in its sorted place
    // as a placeholder, and the digest covers everything around it (this runs per event).
    thread_local std::string data;
    data.clear();
    AppendPayload(data, event.payload);
    EventOffsets offsets;
    sealed.encoded.clear();
    AppendEventWithHashSlot(sealed.encoded, sealed.seq, run_id, time, sealed.type_name, sealed.node,
                            sealed.attempt, data, head.hash, &offsets);
    const size_t slot = offsets.hash;
    sealed.hash_at = sealed.prev_hash_at = sealed.run_id_at = 0;
    if (sealed.encoded.size() <= UINT32_MAX) {
        sealed.hash_at = static_cast<uint32_t>(offsets.hash);
        sealed.prev_hash_at = static_cast<uint32_t>(offsets.prev_hash);
        sealed.run_id_at = static_cast<uint32_t>(offsets.run_id);
    }
    std::string_view line(sealed.encoded);
    constexpr size_t kMemberPrefix = 9;  // ,"hash":"
    Sha256HexTo(head.hash, line.substr(0, slot - kMemberPrefix), line.substr(slot + 65),
                sealed.encoded.data() + slot, sealed.digest.data());
    // Written in one pass: every header value where the offsets say (unless past 4 GiB).
    sealed.rebuildable = offsets.plain && sealed.hash_at != 0;
    sealed.hash.assign(sealed.encoded, slot, 64);
    if (keep_data) {
        sealed.data = data;
    } else {
        sealed.data.clear();
    }
    head.seq = sealed.seq;
    head.hash = sealed.hash;
}

std::optional<VerifyIssue> VerifyNext(ChainHead& head, std::string_view run_id,
                                      std::string_view line, Event* out) {
    int64_t expected_seq = head.seq + 1;
    auto decoded = DecodeEvent(line);
    if (!decoded) return VerifyIssue{expected_seq, "malformed", decoded.error().message()};
    const Event& event = *decoded;
    if (event.run_id != run_id) {
        return VerifyIssue{event.seq, "wrong run", "event belongs to run " + event.run_id};
    }
    if (event.seq <= head.seq) {
        return VerifyIssue{expected_seq, "reorder",
                           "expected seq " + std::to_string(expected_seq) + ", found " +
                               std::to_string(event.seq)};
    }
    if (event.seq != expected_seq) {
        return VerifyIssue{expected_seq, "gap",
                           "expected seq " + std::to_string(expected_seq) + ", found " +
                               std::to_string(event.seq)};
    }
    if (event.prev_hash != head.hash) {
        return VerifyIssue{event.seq, "prev_hash mismatch",
                           "prev_hash does not match the hash of seq " + std::to_string(head.seq)};
    }
    std::string body = EncodeEvent(event.seq, event.run_id, event.time, event.type_name, event.node,
                                   event.attempt, event.data, event.prev_hash, {});
    std::string actual = Sha256Hex(event.prev_hash, body);
    if (actual != event.hash) {
        return VerifyIssue{event.seq, "hash mismatch",
                           "stored " + event.hash.substr(0, 12) + "\xE2\x80\xA6, computed " +
                               actual.substr(0, 12) + "\xE2\x80\xA6"};
    }
    head.seq = event.seq;
    head.hash = event.hash;
    if (out != nullptr) *out = std::move(*decoded);
    return std::nullopt;
}

VerifyReport VerifyChain(std::string_view run_id, const std::vector<std::string>& lines,
                         const std::optional<ChainHead>& expected_head,
                         std::vector<Event>* decoded_events) {
    VerifyReport report;
    for (const auto& line : lines) {
        Event event;
        if (auto issue = VerifyNext(report.head, run_id, line,
                                    decoded_events != nullptr ? &event : nullptr)) {
            report.issue = std::move(issue);
            return report;
        }
        ++report.events;
        if (decoded_events != nullptr) decoded_events->push_back(std::move(event));
    }
    if (expected_head) {
        if (expected_head->seq > report.head.seq) {
            report.issue =
                VerifyIssue{report.head.seq + 1, "truncated",
                            "the store recorded " + std::to_string(expected_head->seq) +
                                " events; the chain ends at " + std::to_string(report.head.seq)};
        } else if (expected_head->seq == report.head.seq &&
                   expected_head->hash != report.head.hash) {
            report.issue = VerifyIssue{report.head.seq, "hash mismatch",
                                       "the chain's last hash differs from the recorded head"};
        } else if (expected_head->seq < report.head.seq) {
            report.issue =
                VerifyIssue{expected_head->seq + 1, "malformed", "events after the recorded head"};
        }
    }
    return report;
}

}  // namespace strowger::ledger
