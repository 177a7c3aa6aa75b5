#include "store/memory/memory_store.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <tuple>
#include <utility>

#include "core/strings.hpp"

namespace strowger::store {
namespace {

constexpr char kZeroHash[] = "0000000000000000000000000000000000000000000000000000000000000000";

bool TypeMatches(const std::vector<std::string>& types, std::string_view type) {
    if (types.empty()) return true;
    for (const auto& t : types) {
        if (t == type || (EndsWith(t, ".") && StartsWith(type, t))) return true;
    }
    return false;
}

}  // namespace

Status MemoryStore::CheckFits(std::string_view run_id, std::span<const ledger::Event> events) {
    for (size_t i = 1; i < events.size(); ++i) {
        if (events[i].seq != events[i - 1].seq + 1) {
            return InvalidArgumentError("run " + std::string(run_id) + ": events not consecutive");
        }
    }
    for (const auto& event : events) {
        if (event.type_name.size() > UINT16_MAX || event.node.size() > UINT16_MAX) {
            return InvalidArgumentError("event type or node name too long for the in-memory store");
        }
        if (event.encoded.empty() ||
            event.type_name.size() + event.node.size() + event.encoded.size() > UINT32_MAX) {
            return MakeError(ErrorCode::kResourceExhausted,
                             "run " + std::string(run_id) +
                                 ": event empty or too large for the in-memory store");
        }
    }
    return OkStatus();
}

std::string_view MemoryStore::TypeOf(const RunData& data, size_t index) const {
    const Slot& slot = data.slots[index];
    return std::string_view(arena_.At(slot.bytes), slot.type_size);
}

std::string_view MemoryStore::NodeOf(const RunData& data, size_t index) const {
    const Slot& slot = data.slots[index];
    return std::string_view(arena_.At(slot.bytes) + slot.type_size, slot.node_size);
}

std::string_view MemoryStore::KeptLine(const RunData& data, size_t index) const {
    const Slot& slot = data.slots[index];
    return std::string_view(arena_.At(slot.bytes) + slot.type_size + slot.node_size,
                            slot.line_size);
}

void MemoryStore::AddSlot(RunData& data, Slot slot, std::string_view type, std::string_view node,
                          std::initializer_list<std::string_view> line) {
    size_t line_size = 0;
    for (std::string_view part : line) line_size += part.size();
    slot.type_size = static_cast<uint16_t>(type.size());
    slot.node_size = static_cast<uint16_t>(node.size());
    slot.line_size = static_cast<uint32_t>(line_size);
    // Added first: if the allocation below throws, there is nothing to give back.
    Slot& added = data.slots.Add(arena_, slot);
    char* at = nullptr;
    try {
        added.bytes = arena_.Allocate(type.size() + node.size() + line_size, &at);
    } catch (...) {
        data.slots.RemoveLast();
        throw;
    }
    auto append = [&at](std::string_view part) {
        if (part.empty()) return;
        std::memcpy(at, part.data(), part.size());
        at += part.size();
    };
    append(type);
    append(node);
    for (std::string_view part : line) append(part);
}

void MemoryStore::Release(RunData& data) {
    for (const Slot& slot : data.slots) {
        arena_.Free(slot.bytes, slot.type_size + slot.node_size + size_t{slot.line_size});
    }
    data.slots.Release(arena_);
}

MemoryStore::Slot& MemoryStore::SlotList::Add(Arena& arena, const Slot& slot) {
    if (settled_ != nullptr) {
        growing_.reserve(settled_size_ + 1);
        growing_.assign(settled_, settled_ + settled_size_);
        Release(arena);
    }
    return growing_.emplace_back(slot);
}

void MemoryStore::SlotList::RemoveLast() {
    growing_.pop_back();
}

void MemoryStore::SlotList::Settle(Arena& arena) {
    if (settled_ != nullptr || growing_.empty()) return;
    char* at = nullptr;
    settled_at_ = arena.Allocate(growing_.size() * sizeof(Slot), &at, alignof(Slot));
    std::memcpy(at, growing_.data(), growing_.size() * sizeof(Slot));
    settled_ = reinterpret_cast<const Slot*>(at);
    settled_size_ = static_cast<uint32_t>(growing_.size());
    std::vector<Slot>().swap(growing_);
}

void MemoryStore::SlotList::Release(Arena& arena) {
    if (settled_ == nullptr) return;
    arena.Free(settled_at_, settled_size_ * sizeof(Slot));
    settled_ = nullptr;
    settled_size_ = 0;
}

std::string_view MemoryStore::PreviousHash(const RunData& data, size_t index,
                                           HexHash& buffer) const {
    if (index == 0) return std::string_view(kZeroHash, 64);
    const Slot& slot = data.slots[index - 1];
    if (slot.prev_hash_at == kCompact) {
        HexEncode(reinterpret_cast<const unsigned char*>(CompactTail(data, index - 1)), 32,
                  buffer.data());
        return std::string_view(buffer.data(), 64);
    }
    if (slot.hash_at == kKept) return {};
    return KeptLine(data, index - 1).substr(slot.hash_at, 64);
}

namespace {

// Where the value of the top-level string member `key` (`,"key":"` with its quotes) starts
// in `line`, searching back from `before`; npos if it is not there. Top-level: the last
// occurrence, as the members asked for come after "data" and every member after them is a
// number or an escaped string, where `,"key":"` cannot occur. The search is short: these
// members are near the end of a line.
size_t ValueAt(std::string_view line, std::string_view key,
               size_t before = std::string_view::npos) {
    size_t at = line.rfind(key, before);
    return at == std::string_view::npos ? at : at + key.size();
}

// `at` (from ValueAt) starts a string value equal to `value`.
bool ValueIs(std::string_view line, size_t at, std::string_view value) {
    return at != std::string_view::npos && at + value.size() < line.size() &&
           line.substr(at, value.size()) == value && line[at + value.size()] == '"';
}

// Lowercase hex digits' values; 0x10 for anything else (uppercase is not the canonical form).
// A table, not comparisons: hashes are random, and a branch per digit mispredicts half the
// time.
constexpr std::array<uint8_t, 256> kHexValues = [] {
    std::array<uint8_t, 256> table{};
    for (auto& v : table) v = 0x10;
    for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = static_cast<uint8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) {
        table[static_cast<size_t>(c)] = static_cast<uint8_t>(c - 'a' + 10);
    }
    return table;
}();

// The 64 hex digits at `hex` as 32 bytes into `out`; false if one is not a lowercase digit.
// Scalar: GCC's vectorised form of this loop spills to the stack and is slower.
__attribute__((optimize("no-tree-vectorize"))) bool DecodeHash(const char* hex, char* out) {
    unsigned invalid = 0;
    for (size_t i = 0; i < 32; ++i) {
        unsigned high = kHexValues[static_cast<unsigned char>(hex[2 * i])];
        unsigned low = kHexValues[static_cast<unsigned char>(hex[2 * i + 1])];
        invalid |= high | low;
        out[i] = static_cast<char>((high << 4) | (low & 15));
    }
    return (invalid & 0x10) == 0;
}

// Appends the members of a compact line after its data object up to its hash's closing quote
// excluded: `,"hash":"`. And after the hash: everything to the end of the line.
void AppendAfterHash(std::string& out, std::string_view node, std::string_view prev_hash,
                     std::string_view run_id, int64_t seq, SystemTime time, std::string_view type) {
    out += '"';
    if (!node.empty()) {
        out += R"(,"node":")";
        out += node;
        out += '"';
    }
    out += R"(,"prev_hash":")";
    out += prev_hash;
    out += R"(","run_id":")";
    out += run_id;
    out += R"(","seq":)";
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, seq).ptr;
    out.append(digits, static_cast<size_t>(end - digits));
    out += R"(,"time":")";
    char formatted[kRfc3339Size];
    FormatRfc3339To(formatted, time);
    out.append(formatted, kRfc3339Size);
    out += R"(","type":")";
    out += type;
    out += R"(","v":1})";
}

// `{"attempt":N,"data":` or `{"data":`: a compact line's start, written into `buffer`.
using StartBuffer = char[48];
std::string_view LineStart(int64_t attempt, StartBuffer& buffer) {
    constexpr std::string_view kAttempt = R"({"attempt":)", kData = R"("data":)";
    char* p = buffer;
    if (attempt > 0) {
        p = std::copy(kAttempt.begin(), kAttempt.end(), p);
        p = std::to_chars(p, p + 24, attempt).ptr;
        *p++ = ',';
    } else {
        *p++ = '{';
    }
    p = std::copy(kData.begin(), kData.end(), p);
    return std::string_view(buffer, static_cast<size_t>(p - buffer));
}

constexpr std::string_view kHashKey = R"(,"hash":")";

}  // namespace

bool MemoryStore::HashIs(const RunData& data, size_t index, std::string_view hash) const {
    if (hash.size() != 64) return false;
    if (index == 0) return hash == std::string_view(kZeroHash, 64);
    const Slot& slot = data.slots[index - 1];
    if (slot.prev_hash_at == kCompact) {
        char binary[32];
        return DecodeHash(hash.data(), binary) &&
               std::memcmp(binary, CompactTail(data, index - 1), 32) == 0;
    }
    if (slot.hash_at == kKept) return false;
    return KeptLine(data, index - 1).substr(slot.hash_at, 64) == hash;
}

const char* MemoryStore::CompactTail(const RunData& data, size_t index) const {
    const Slot& slot = data.slots[index];
    return arena_.At(slot.bytes) + slot.type_size + slot.node_size + slot.line_size - kCompactTail;
}

bool MemoryStore::SealedForRebuild(const RunData& data, std::string_view run_id,
                                   const ledger::Event& event) const {
    // Seal says the line is the canonical encoding of the event's header fields, with type and
    // node as they are: left to check is that it was sealed with the run id and previous hash
    // Rebuild will use (its seq was checked by the caller).
    if (!event.rebuildable) return false;
    const std::string_view line = event.encoded;
    const size_t run_at = event.run_id_at, prev_at = event.prev_hash_at;
    if (run_at + run_id.size() >= line.size() || line[run_at + run_id.size()] != '"' ||
        line.compare(run_at, run_id.size(), run_id) != 0 || prev_at + 64 > line.size()) {
        return false;
    }
    HexHash buffer;
    const std::string_view previous = PreviousHash(data, data.slots.size(), buffer);
    return previous.size() == 64 && line.compare(prev_at, 64, previous) == 0;
}

bool MemoryStore::PackCompact(RunData& data, std::string_view run_id, const ledger::Event& event) {
    // The line must be exactly what Rebuild writes from what is kept: the event's own header
    // fields (type and node without escapes) around the line's data object and hash.
    const std::string_view line = event.encoded;
    const size_t index = data.slots.size();
    const size_t hash_at = event.hash_at;
    if (hash_at < kHashKey.size() || hash_at + 64 > line.size() || event.attempt < 0 ||
        event.seq != static_cast<int64_t>(index) + 1 || event.type_name.size() > 64 ||
        event.node.size() > 64 || run_id.size() > 64 ||
        line.substr(hash_at - kHashKey.size(), kHashKey.size()) != kHashKey) {
        return false;
    }
    const size_t data_end = hash_at - kHashKey.size();
    StartBuffer start_buffer;
    const std::string_view start = LineStart(event.attempt, start_buffer);
    const size_t data_at = start.size();
    if (data_end < data_at) return false;
    Tail tail;
    if (SealedForRebuild(data, run_id, event)) {
        std::memcpy(tail.hash, event.digest.data(), sizeof tail.hash);
    } else {
        // The parts around data and the hash must be what Rebuild writes.
        if (line.substr(0, data_at) != start) return false;
        HexHash buffer;
        const std::string_view previous = PreviousHash(data, index, buffer);
        if (previous.size() != 64) return false;
        thread_local std::string expected;
        expected.clear();
        AppendAfterHash(expected, event.node, previous, run_id, event.seq, event.time,
                        event.type_name);
        if (line.substr(hash_at + 64) != expected) return false;
        if (!DecodeHash(line.data() + hash_at, tail.hash)) return false;
    }
    tail.time = event.time.time_since_epoch().count();
    tail.attempt = event.attempt;
    // A type or node that needs escaping is not what the line says (it has the escaped form).
    const std::string_view data_json = line.substr(data_at, data_end - data_at);
    Slot slot;
    slot.prev_hash_at = kCompact;
    AddSlot(data, slot, event.type_name, event.node,
            {data_json, std::string_view(reinterpret_cast<const char*>(&tail), kCompactTail)});
    return true;
}

void MemoryStore::Pack(RunData& data, std::string_view run_id, const ledger::Event& event) {
    const std::string_view line = event.encoded;
    const size_t index = data.slots.size();
    if (PackCompact(data, run_id, event)) return;
    HexHash buffer;
    const std::string_view previous = PreviousHash(data, index, buffer);
    constexpr size_t npos = std::string_view::npos;
    // Where the values are: as Seal reported them, or found. (Either way only bytes equal to
    // what is put back are left out, so the line reads back exactly.)
    size_t prev_found, hash_at, run_at;
    if (event.hash_at != 0) {
        hash_at = event.hash_at;
        prev_found = event.prev_hash_at != 0 ? event.prev_hash_at : npos;
        run_at = event.run_id_at != 0 ? event.run_id_at : npos;
    } else {
        // Sorted members: ... "hash", "node", "prev_hash", "run_id", "seq", "time", "type", "v".
        prev_found = ValueAt(line, R"(,"prev_hash":")");
        hash_at = ValueAt(line, R"(,"hash":")", prev_found == npos ? npos : prev_found - 14);
        run_at = ValueAt(line, R"(,"run_id":")");
    }
    size_t prev_at =
        previous.size() == 64 && ValueIs(line, prev_found, previous) ? prev_found : npos;
    if (run_id.empty() || !ValueIs(line, run_at, run_id) ||
        (prev_at != npos && run_at < prev_at + 64)) {
        run_at = npos;
    }
    Slot slot;
    // Its own hash, where the next line finds the value it may leave out (nothing is left out
    // before it: "hash" precedes "prev_hash" and "run_id").
    if (hash_at != npos && hash_at + 64 < line.size() && line[hash_at + 64] == '"' &&
        (prev_at == npos || hash_at + 64 <= prev_at) &&
        (run_at == npos || hash_at + 64 <= run_at)) {
        slot.hash_at = static_cast<uint32_t>(hash_at);
    }
    // The line without the parts left out: [0, prev) [prev + 64, run) [run + n, end).
    std::string_view before_prev, before_run;
    size_t kept_from = 0;
    if (prev_at != std::string_view::npos) {
        before_prev = line.substr(0, prev_at);
        kept_from = prev_at + 64;
        slot.prev_hash_at = static_cast<uint32_t>(prev_at);
    }
    if (run_at != std::string_view::npos) {
        before_run = line.substr(kept_from, run_at - kept_from);
        slot.run_id_at = static_cast<uint32_t>(run_at);
        kept_from = run_at + run_id.size();
    }
    AddSlot(data, slot, event.type_name, event.node,
            {before_prev, before_run, line.substr(kept_from)});
}

StoredEvent MemoryStore::Unpack(const RunData& data, std::string_view run_id_of_data,
                                size_t index) const {
    const Slot& slot = data.slots[index];
    const std::string_view kept = KeptLine(data, index);
    StoredEvent event;
    event.seq = static_cast<int64_t>(index) + 1;
    event.type = std::string(TypeOf(data, index));
    event.node = std::string(NodeOf(data, index));
    HexHash buffer;
    if (slot.prev_hash_at == kCompact) {
        Rebuild(data, run_id_of_data, index, event);
        return event;
    }
    if (slot.prev_hash_at == kKept && slot.run_id_at == kKept) {
        event.encoded = std::string(kept);
        return event;
    }
    std::string_view previous =
        slot.prev_hash_at == kKept ? std::string_view() : PreviousHash(data, index, buffer);
    std::string_view run_id = slot.run_id_at == kKept ? std::string_view() : run_id_of_data;
    std::string& line = event.encoded;
    line.reserve(kept.size() + previous.size() + run_id.size());
    size_t from = 0;  // in `kept`
    if (slot.prev_hash_at != kKept) {
        line.append(kept.substr(0, slot.prev_hash_at));
        line.append(previous);
        from = slot.prev_hash_at;
    }
    if (slot.run_id_at != kKept) {
        // run_id_at counts the restored prev_hash; `kept` does not hold it.
        size_t at = slot.run_id_at - (slot.prev_hash_at != kKept ? 64 : 0);
        line.append(kept.substr(from, at - from));
        line.append(run_id);
        from = at;
    }
    line.append(kept.substr(from));
    return event;
}

void MemoryStore::Rebuild(const RunData& data, std::string_view run_id, size_t index,
                          StoredEvent& event) const {
    const std::string_view data_json =
        KeptLine(data, index).substr(0, data.slots[index].line_size - kCompactTail);
    Tail tail;
    std::memcpy(&tail, CompactTail(data, index), kCompactTail);
    HexHash previous_buffer, hash;
    std::string_view previous = PreviousHash(data, index, previous_buffer);
    HexEncode(reinterpret_cast<const unsigned char*>(tail.hash), 32, hash.data());
    std::string& line = event.encoded;
    line.reserve(data_json.size() + run_id.size() + event.type.size() + event.node.size() + 220);
    StartBuffer start_buffer;
    line += LineStart(tail.attempt, start_buffer);
    line += data_json;
    line += kHashKey;
    line.append(hash.data(), 64);
    AppendAfterHash(line, event.node, previous, run_id, static_cast<int64_t>(index) + 1,
                    SystemTime(SystemTime::duration(tail.time)), event.type);
}

void MemoryStore::SetHead(RunData& data, const ledger::Event& last) const {
    data.record.head_seq = last.seq;
    // The hash the next line follows is the head's, unless the last line does not say it. (A
    // sealed line kept compact holds its own hash.)
    if ((last.rebuildable && data.slots.back().prev_hash_at == kCompact) ||
        HashIs(data, data.slots.size(), last.hash)) {
        if (data.record.extra) data.record.extra->head_hash.clear();
    } else {
        data.record.MakeExtra().head_hash = last.hash;
    }
}

std::string MemoryStore::HeadHash(const RunData& data) const {
    const std::string& kept = data.record.extras().head_hash;
    if (!kept.empty() || data.slots.empty()) return kept;
    HexHash buffer;
    return std::string(PreviousHash(data, data.slots.size(), buffer));
}

RunRecord MemoryStore::ToRunRecord(const std::string& run_id, const RunData& data) const {
    const Record& r = data.record;
    RunRecord record;
    record.run_id = run_id;
    record.workflow = *r.workflow;
    record.status = r.status;
    record.definition_sha256 = *r.definition_sha256;
    record.idempotency_key = r.extras().idempotency_key;
    record.created_at = r.created_at;
    record.updated_at = r.updated_at;
    record.head = {r.head_seq, HeadHash(data)};
    if (r.owner) record.owner = *r.owner;
    record.lease_until = r.lease_until;
    record.checkpoint_seq = r.checkpoint_seq;
    record.wake_at = r.extras().wake_at;
    return record;
}

MemoryStore::RunData* MemoryStore::Find(std::string_view run_id) {
    if (last_found_ != nullptr && last_found_->first == run_id) return &last_found_->second;
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return nullptr;
    last_found_ = &*it;
    return &it->second;
}

template <typename Keep>
std::vector<MemoryStore::Runs::iterator> MemoryStore::ByRunId(Keep keep) {
    std::vector<Runs::iterator> sorted;
    for (auto it = runs_.begin(); it != runs_.end(); ++it) {
        if (keep(*it)) sorted.push_back(it);
    }
    std::sort(sorted.begin(), sorted.end(), [](auto a, auto b) { return a->first < b->first; });
    return sorted;
}

size_t MemoryStore::KeptBytesForTest(const std::string& run_id) {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return 0;
    size_t kept = 0;
    for (const Slot& slot : it->second.slots) {
        kept += slot.type_size + slot.node_size + size_t{slot.line_size};
    }
    return kept + it->second.slots.settled_bytes();
}

size_t MemoryStore::KeptBytesForTest() {
    std::lock_guard lock(mutex_);
    return arena_.live_bytes();
}

const std::string* MemoryStore::Intern(const std::string& name) {
    return &*names_.insert(name).first;
}

Awaitable<Result<CreateRunResult>> MemoryStore::CreateRun(NewRun run) {
    std::lock_guard lock(mutex_);
    if (!run.idempotency_key.empty()) {
        auto it = idempotency_.find(run.idempotency_key);
        if (it != idempotency_.end()) co_return CreateRunResult{it->second, false};
    }
    if (runs_.count(run.run_id)) co_return AlreadyExistsError("run " + run.run_id + " exists");
    if (run.events.empty() || run.events.front().seq != 1) {
        co_return InvalidArgumentError("a new run's events must start at seq 1");
    }
    STROWGER_CO_TRY(CheckFits(run.run_id, run.events));
    RunData data;
    data.record.workflow = Intern(run.workflow);
    data.record.status = run.status;
    data.record.definition_sha256 = Intern(run.definition_sha256);
    if (!run.idempotency_key.empty()) data.record.MakeExtra().idempotency_key = run.idempotency_key;
    data.record.created_at = run.events.front().time;
    data.record.updated_at = run.events.back().time;
    if (!run.owner.empty()) data.record.owner = Intern(run.owner);
    data.record.lease_until = run.lease_until;
    if (!definitions_.contains(run.definition_sha256)) {
        definitions_.emplace(run.definition_sha256,
                             run.definition_json ? *run.definition_json : std::string());
    }
    try {
        for (const auto& event : run.events) Pack(data, run.run_id, event);
    } catch (...) {
        Release(data);
        throw;
    }
    SetHead(data, run.events.back());
    if (ledger::IsTerminal(run.status)) data.slots.Settle(arena_);
    if (!run.idempotency_key.empty()) idempotency_[run.idempotency_key] = run.run_id;
    last_found_ = &*runs_.emplace(run.run_id, std::move(data)).first;
    co_return CreateRunResult{run.run_id, true};
}

Awaitable<Result<void>> MemoryStore::AppendEvents(std::string run_id,
                                                  std::vector<ledger::Event> events,
                                                  RunStatus status_after) {
    co_return AppendEventsAtOnce(run_id, events, status_after);
}

Result<void> MemoryStore::AppendEventsAtOnce(std::string_view run_id,
                                             std::span<const ledger::Event> events,
                                             RunStatus status_after) {
    std::lock_guard lock(mutex_);
    RunData* found = Find(run_id);
    if (found == nullptr) return NotFoundError("no run " + std::string(run_id));
    if (events.empty()) return OkStatus();
    RunData& data = *found;
    if (events.front().seq != data.record.head_seq + 1) {
        return MakeError(ErrorCode::kAborted, "run " + std::string(run_id) +
                                                  " head moved: expected seq " +
                                                  std::to_string(data.record.head_seq + 1) +
                                                  ", got " + std::to_string(events.front().seq));
    }
    STROWGER_TRY(CheckFits(run_id, events));
    data.record.updated_at = events.back().time;
    data.record.status = status_after;
    for (const auto& event : events) Pack(data, run_id, event);
    SetHead(data, events.back());
    if (ledger::IsTerminal(status_after)) {
        // Nothing more is likely to be appended.
        data.slots.Settle(arena_);
    }
    return OkStatus();
}

Awaitable<Result<std::vector<StoredEvent>>> MemoryStore::ReadEvents(std::string run_id,
                                                                    EventQuery query) {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) co_return NotFoundError("no run " + run_id);
    const RunData& data = it->second;
    std::vector<StoredEvent> out;
    for (size_t i = static_cast<size_t>(std::max<int64_t>(query.after_seq, 0));
         i < data.slots.size(); ++i) {
        if (!TypeMatches(query.types, TypeOf(data, i))) continue;
        out.push_back(Unpack(data, run_id, i));
        if (query.limit > 0 && static_cast<int64_t>(out.size()) >= query.limit) break;
    }
    co_return out;
}

Awaitable<Result<RunRecord>> MemoryStore::GetRun(std::string run_id) {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) co_return NotFoundError("no run " + run_id);
    co_return ToRunRecord(it->first, it->second);
}

Awaitable<Result<RunPage>> MemoryStore::ListRuns(RunFilter filter) {
    std::lock_guard lock(mutex_);
    RunPage page;
    const std::vector<Runs::iterator> listed = ByRunId([&](const auto& entry) {
        const Record& record = entry.second.record;
        return (filter.before_run_id.empty() || entry.first < filter.before_run_id) &&
               (filter.workflow.empty() || *record.workflow == filter.workflow) &&
               (filter.statuses.empty() || std::find(filter.statuses.begin(), filter.statuses.end(),
                                                     record.status) != filter.statuses.end());
    });
    for (auto at = listed.rbegin(); at != listed.rend(); ++at) {
        if (filter.limit > 0 && static_cast<int64_t>(page.runs.size()) >= filter.limit) {
            page.next_cursor = page.runs.back().run_id;
            break;
        }
        page.runs.push_back(ToRunRecord((*at)->first, (*at)->second));
    }
    co_return page;
}

Awaitable<Result<std::string>> MemoryStore::GetDefinition(std::string sha256) {
    std::lock_guard lock(mutex_);
    auto it = definitions_.find(sha256);
    if (it == definitions_.end()) co_return NotFoundError("no definition " + sha256);
    co_return it->second;
}

Awaitable<Result<std::string>> MemoryStore::FindByIdempotencyKey(std::string key) {
    std::lock_guard lock(mutex_);
    auto it = idempotency_.find(key);
    if (it == idempotency_.end()) co_return NotFoundError("no run with idempotency key " + key);
    co_return it->second;
}

Awaitable<Result<bool>> MemoryStore::TryLease(std::string run_id, std::string owner,
                                              SystemTime until) {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) co_return NotFoundError("no run " + run_id);
    Record& record = it->second.record;
    auto now = std::chrono::system_clock::now();
    if (record.owner && *record.owner != owner && record.lease_until > now) co_return false;
    record.owner = owner.empty() ? nullptr : Intern(owner);
    record.lease_until = until;
    co_return true;
}

Awaitable<Result<void>> MemoryStore::RenewLeases(std::string owner, SystemTime until) {
    std::lock_guard lock(mutex_);
    for (auto& [id, data] : runs_) {
        if (data.record.owner && *data.record.owner == owner) data.record.lease_until = until;
    }
    co_return OkStatus();
}

Awaitable<Result<void>> MemoryStore::ReleaseLease(std::string run_id, std::string owner) {
    std::lock_guard lock(mutex_);
    RunData* data = Find(run_id);
    if (data != nullptr && data->record.owner && *data->record.owner == owner) {
        data->record.owner = nullptr;
        data->record.lease_until = {};
    }
    co_return OkStatus();
}

Awaitable<Result<std::vector<RunRecord>>> MemoryStore::FindClaimable(
    std::vector<RunStatus> statuses, SystemTime now, int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<RunRecord> out;
    const std::vector<Runs::iterator> claimable = ByRunId([&](const auto& entry) {
        const Record& record = entry.second.record;
        return std::find(statuses.begin(), statuses.end(), record.status) != statuses.end() &&
               !(record.owner && record.lease_until > now);
    });
    for (auto it : claimable) {
        out.push_back(ToRunRecord(it->first, it->second));
        if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    }
    co_return out;
}

Awaitable<Result<void>> MemoryStore::RequestControl(ControlRequest request) {
    std::lock_guard lock(mutex_);
    if (!runs_.count(request.run_id)) co_return NotFoundError("no run " + request.run_id);
    control_.push_back(std::move(request));
    co_return OkStatus();
}

Awaitable<Result<std::vector<ControlRequest>>> MemoryStore::TakeControlRequests(
    std::vector<std::string> run_ids) {
    std::lock_guard lock(mutex_);
    std::vector<ControlRequest> taken;
    auto keep =
        std::stable_partition(control_.begin(), control_.end(), [&](const ControlRequest& r) {
            return std::find(run_ids.begin(), run_ids.end(), r.run_id) == run_ids.end();
        });
    taken.assign(std::make_move_iterator(keep), std::make_move_iterator(control_.end()));
    control_.erase(keep, control_.end());
    co_return taken;
}

Awaitable<Result<int64_t>> MemoryStore::PruneTerminalRuns(int64_t keep) {
    std::lock_guard lock(mutex_);
    std::vector<Runs::iterator> terminal =
        ByRunId([](const auto& entry) { return ledger::IsTerminal(entry.second.record.status); });
    // All but the newest `keep`.
    const size_t doomed =
        terminal.size() - std::min<size_t>(terminal.size(), std::max<int64_t>(keep, 0));
    for (size_t i = 0; i < doomed; ++i) EraseRun(terminal[i]);
    co_return static_cast<int64_t>(doomed);
}

void MemoryStore::EraseRun(Runs::iterator run) {
    const auto& key = run->second.record.extras().idempotency_key;
    if (!key.empty()) idempotency_.erase(key);
    Release(run->second);
    checkpoints_.erase(run->first);
    annotations_.erase(run->first);
    if (last_found_ == &*run) last_found_ = nullptr;
    runs_.erase(run);
}

Awaitable<Result<void>> MemoryStore::RecordUsage(std::string key, SystemTime time, int64_t tokens) {
    std::lock_guard lock(mutex_);
    auto& records = usage_[key];
    std::erase_if(records, [&](const auto& r) { return r.first < time - std::chrono::hours(24); });
    records.emplace_back(time, tokens);
    co_return OkStatus();
}

Awaitable<Result<int64_t>> MemoryStore::UsageSince(std::string key, SystemTime since) {
    std::lock_guard lock(mutex_);
    int64_t total = 0;
    auto it = usage_.find(key);
    if (it != usage_.end()) {
        for (const auto& [time, tokens] : it->second) {
            if (time >= since) total += tokens;
        }
    }
    co_return total;
}

Awaitable<Result<void>> MemoryStore::SetWakeAt(std::string run_id, SystemTime due) {
    std::lock_guard lock(mutex_);
    RunData* data = Find(run_id);
    if (data == nullptr) co_return NotFoundError("no run " + run_id);
    if (data->record.extra || due != SystemTime{}) data->record.MakeExtra().wake_at = due;
    co_return OkStatus();
}

Awaitable<Result<std::vector<RunRecord>>> MemoryStore::FindDueRuns(SystemTime now, int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<SystemTime, Runs::iterator>> due;
    for (auto it = runs_.begin(); it != runs_.end(); ++it) {
        const Record& r = it->second.record;
        const SystemTime wake_at = r.extras().wake_at;
        if (r.status == RunStatus::kWaiting && wake_at != SystemTime{} && wake_at <= now &&
            !(r.owner && r.lease_until > now)) {
            due.emplace_back(wake_at, it);
        }
    }
    std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second->first < b.second->first;
    });
    std::vector<RunRecord> out;
    for (const auto& [time, it] : due) {
        out.push_back(ToRunRecord(it->first, it->second));
        if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    }
    co_return out;
}

Awaitable<Result<void>> MemoryStore::AppendCheckpointBatch(ledger::CheckpointBatch batch) {
    std::lock_guard lock(mutex_);
    const auto expected = static_cast<int64_t>(batches_.size()) + 1;
    if (batch.batch_seq != expected) {
        co_return MakeError(ErrorCode::kAborted, "checkpoint batch log moved: expected batch " +
                                                     std::to_string(expected) + ", got " +
                                                     std::to_string(batch.batch_seq));
    }
    for (size_t i = 0; i < batch.leaves.size(); ++i) {
        const auto& leaf = batch.leaves[i];
        RunData* data = Find(leaf.run_id);
        if (data == nullptr) continue;
        auto& rows = checkpoints_[leaf.run_id];
        StoredCheckpoint row{leaf.run_id, leaf.seq, leaf.head, batch.batch_seq,
                             static_cast<int64_t>(i)};
        auto at = std::upper_bound(rows.begin(), rows.end(), row, [](const auto& a, const auto& b) {
            return std::tie(a.seq, a.batch_seq) < std::tie(b.seq, b.batch_seq);
        });
        rows.insert(at, std::move(row));
        data->record.checkpoint_seq = std::max(data->record.checkpoint_seq, leaf.seq);
    }
    batches_.push_back(std::move(batch));
    co_return OkStatus();
}

Awaitable<Result<std::optional<ledger::CheckpointBatch>>> MemoryStore::LastCheckpointBatch() {
    std::lock_guard lock(mutex_);
    if (batches_.empty()) co_return std::optional<ledger::CheckpointBatch>();
    co_return std::optional<ledger::CheckpointBatch>(batches_.back());
}

Awaitable<Result<std::vector<ledger::CheckpointBatch>>> MemoryStore::ReadCheckpointBatches(
    int64_t first, int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<ledger::CheckpointBatch> out;
    for (int64_t seq = std::max<int64_t>(first, 1);
         seq <= static_cast<int64_t>(batches_.size()) &&
         (limit <= 0 || static_cast<int64_t>(out.size()) < limit);
         ++seq) {
        out.push_back(batches_[static_cast<size_t>(seq - 1)]);
    }
    co_return out;
}

Awaitable<Result<std::vector<StoredCheckpoint>>> MemoryStore::ReadCheckpoints(std::string run_id) {
    std::lock_guard lock(mutex_);
    auto it = checkpoints_.find(run_id);
    if (it == checkpoints_.end()) co_return std::vector<StoredCheckpoint>();
    co_return it->second;
}

Awaitable<Result<std::vector<RunRecord>>> MemoryStore::FindUnsignedStops(std::string after_run_id,
                                                                         int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<RunRecord> out;
    const std::vector<Runs::iterator> unsigned_stops = ByRunId([&](const auto& entry) {
        const Record& record = entry.second.record;
        return entry.first > after_run_id && ledger::IsStop(record.status) &&
               record.checkpoint_seq < record.head_seq;
    });
    for (auto it : unsigned_stops) {
        out.push_back(ToRunRecord(it->first, it->second));
        if (limit > 0 && static_cast<int64_t>(out.size()) >= limit) break;
    }
    co_return out;
}

}  // namespace strowger::store
