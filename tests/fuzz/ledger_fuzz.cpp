// Fuzzes what reads a ledger back: ledger::DecodeEvent, DecodePayload and RunState::Apply, fed
// the way a resume replays a run (engine.cpp, ReplayRun), plus VerifyChain over the same lines.
//
// The input is lines. A line starting with '{' is a stored event (canonical JSON), decoded with
// DecodeEvent; any other line is "<type> <data>", handed to DecodePayload directly, so that the
// fuzzer can reach the reducer without writing the canonical envelope. Every payload decoded must
// also survive its own encoding: Encode(Decode(Encode(p))) == Encode(p), as the engine reads back
// what it wrote.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/chain.hpp"
#include "ledger/event.hpp"
#include "ledger/run_state.hpp"

namespace {

using namespace strowger;

// A plan of this many nodes; the first node names met take their indices.
constexpr size_t kNodes = 6;

struct Replay {
    Replay() : state(kNodes) { state.node_names = &names; }

    // The plan index of `node`, -1 for a run event, or nullopt once the plan is full (ReplayRun
    // refuses an event naming a node the plan does not have).
    std::optional<int> IndexOf(const std::string& node) {
        if (node.empty()) return -1;
        for (size_t i = 0; i < names.size(); ++i) {
            if (names[i] == node) return static_cast<int>(i);
        }
        if (names.size() == kNodes) return std::nullopt;
        names.push_back(node);
        return static_cast<int>(names.size() - 1);
    }

    void Apply(SystemTime time, const std::string& node, int64_t attempt, ledger::Payload payload) {
        std::optional<int> index = IndexOf(node);
        if (!index) return;
        state.Apply(time, *index, ledger::NewEvent{node, attempt, std::move(payload)});
    }

    std::vector<std::string> names;
    ledger::RunState state;
};

void CheckRoundTrip(const ledger::Payload& payload, std::string_view type_name) {
    std::string encoded = ledger::EncodePayload(payload);
    auto again = ledger::DecodePayload(ledger::TypeOf(payload), type_name, encoded);
    if (!again) {
        std::fprintf(stderr, "ledger_fuzz: an encoded %.*s payload does not decode: %s\n%s\n",
                     static_cast<int>(type_name.size()), type_name.data(),
                     again.error().ToString().c_str(), encoded.c_str());
        std::abort();
    }
    std::string reencoded = ledger::EncodePayload(*again);
    if (reencoded != encoded) {
        std::fprintf(stderr, "ledger_fuzz: %.*s payload changes when read back:\n%s\n%s\n",
                     static_cast<int>(type_name.size()), type_name.data(), encoded.c_str(),
                     reencoded.c_str());
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    Replay replay;
    std::vector<std::string> stored;
    const auto time = SystemTime(std::chrono::seconds(1700000000));
    while (!input.empty()) {
        size_t end = input.find('\n');
        std::string_view line = input.substr(0, end);
        input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
        if (line.empty()) continue;
        if (line.front() == '{') {
            stored.emplace_back(line);
            auto event = ledger::DecodeEvent(line);
            if (!event) continue;
            auto payload = ledger::DecodePayload(event->type, event->type_name, event->data);
            if (!payload) continue;
            CheckRoundTrip(*payload, event->type_name);
            replay.Apply(event->time, event->node, event->attempt, std::move(*payload));
            continue;
        }
        // "<type> <data>", or "<type>@<node>#<attempt> <data>" for a node's event.
        size_t space = line.find(' ');
        if (space == std::string_view::npos) continue;
        std::string_view head = line.substr(0, space);
        std::string_view json = line.substr(space + 1);
        std::string node;
        int64_t attempt = 0;
        if (size_t at = head.find('@'); at != std::string_view::npos) {
            std::string_view rest = head.substr(at + 1);
            head = head.substr(0, at);
            size_t hash = rest.find('#');
            node = std::string(rest.substr(0, hash));
            if (hash != std::string_view::npos) {
                for (char c : rest.substr(hash + 1)) {
                    if (c < '0' || c > '9' || attempt > 1000000) break;
                    attempt = attempt * 10 + (c - '0');
                }
            }
        }
        auto payload = ledger::DecodePayload(ledger::EventTypeFromName(head), head, json);
        if (!payload) continue;
        CheckRoundTrip(*payload, head);
        replay.Apply(time, node, attempt, std::move(*payload));
    }
    if (!stored.empty()) (void)ledger::VerifyChain("run", stored, std::nullopt);
    return 0;
}
