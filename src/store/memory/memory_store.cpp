#include "store/memory/memory_store.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/strings.hpp"

namespace strowger::store {
namespace {

bool TypeMatches(const std::vector<std::string>& types, const std::string& type) {
    if (types.empty()) return true;
    for (const auto& t : types) {
        if (t == type || (EndsWith(t, ".") && StartsWith(type, t))) return true;
    }
    return false;
}

}  // namespace

MemoryStore::Bytes::Bytes(Bytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)) {}

MemoryStore::Bytes& MemoryStore::Bytes::operator=(Bytes&& other) noexcept {
    if (this != &other) {
        std::free(data_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
}

MemoryStore::Bytes::~Bytes() {
    std::free(data_);
}

void MemoryStore::Bytes::Resize(size_t capacity) {
    void* grown = std::realloc(data_, capacity);
    if (grown == nullptr) throw std::bad_alloc();
    data_ = static_cast<char*>(grown);
    capacity_ = capacity;
}

void MemoryStore::Bytes::Reserve(size_t needed) {
    if (needed > capacity_) Resize(std::max(needed, capacity_ * 3 / 2));
}

void MemoryStore::Bytes::Append(std::string_view bytes) {
    if (bytes.empty()) return;
    std::memcpy(data_ + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
}

void MemoryStore::Bytes::ShrinkToFit() {
    if (size_ == capacity_) return;
    if (size_ == 0) {
        std::free(std::exchange(data_, nullptr));
        capacity_ = 0;
        return;
    }
    Resize(size_);
}

Status MemoryStore::CheckFits(std::string_view run_id, const RunData& data,
                              const std::vector<ledger::Event>& events) {
    for (size_t i = 1; i < events.size(); ++i) {
        if (events[i].seq != events[i - 1].seq + 1) {
            return InvalidArgumentError("run " + std::string(run_id) + ": events not consecutive");
        }
    }
    size_t total = data.bytes.size();
    for (const auto& event : events) {
        if (event.type_name.size() > UINT16_MAX || event.node.size() > UINT16_MAX) {
            return InvalidArgumentError("event type or node name too long for the in-memory store");
        }
        total += event.type_name.size() + event.node.size() + event.encoded.size();
    }
    if (total > UINT32_MAX) {
        return MakeError(
            ErrorCode::kResourceExhausted,
            "run " + std::string(run_id) + ": ledger too large for the in-memory store");
    }
    return OkStatus();
}

std::string_view MemoryStore::KeptLine(const RunData& data, size_t index) {
    const Slot& slot = data.slots[index];
    return std::string_view(data.bytes.data(), data.bytes.size())
        .substr(slot.offset + slot.type_size + slot.node_size, slot.line_size);
}

std::string_view MemoryStore::PreviousHash(const RunData& data, size_t index) {
    static constexpr char kZeros[] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    if (index == 0) return std::string_view(kZeros, 64);
    const Slot& slot = data.slots[index - 1];
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

}  // namespace

void MemoryStore::Pack(RunData& data, std::string_view run_id, const ledger::Event& event) {
    const std::string_view line = event.encoded;
    const size_t index = data.slots.size();
    const std::string_view previous = PreviousHash(data, index);
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
    slot.offset = static_cast<uint32_t>(data.bytes.size());
    slot.type_size = static_cast<uint16_t>(event.type_name.size());
    slot.node_size = static_cast<uint16_t>(event.node.size());
    auto& bytes = data.bytes;
    bytes.Reserve(bytes.size() + event.type_name.size() + event.node.size() + line.size());
    bytes.Append(event.type_name);
    bytes.Append(event.node);
    // The line without the parts left out: [0, prev) [prev + 64, run) [run + n, end).
    size_t kept_from = 0;
    if (prev_at != std::string_view::npos) {
        bytes.Append(line.substr(0, prev_at));
        kept_from = prev_at + 64;
        slot.prev_hash_at = static_cast<uint32_t>(prev_at);
    }
    if (run_at != std::string_view::npos) {
        bytes.Append(line.substr(kept_from, run_at - kept_from));
        slot.run_id_at = static_cast<uint32_t>(run_at);
        kept_from = run_at + run_id.size();
    }
    bytes.Append(line.substr(kept_from));
    slot.line_size =
        static_cast<uint32_t>(bytes.size() - slot.offset - slot.type_size - slot.node_size);
    data.slots.push_back(slot);
}

StoredEvent MemoryStore::Unpack(const RunData& data, std::string_view run_id_of_data,
                                size_t index) {
    const Slot& slot = data.slots[index];
    std::string_view bytes(data.bytes.data(), data.bytes.size());
    const std::string_view kept = KeptLine(data, index);
    StoredEvent event;
    event.seq = static_cast<int64_t>(index) + 1;
    event.type = std::string(bytes.substr(slot.offset, slot.type_size));
    event.node = std::string(bytes.substr(slot.offset + slot.type_size, slot.node_size));
    if (slot.prev_hash_at == kKept && slot.run_id_at == kKept) {
        event.encoded = std::string(kept);
        return event;
    }
    std::string_view previous =
        slot.prev_hash_at == kKept ? std::string_view() : PreviousHash(data, index);
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

void MemoryStore::SetHead(RunData& data, const ledger::Event& last) {
    data.record.head_seq = last.seq;
    // The hash the next line follows is the head's, unless the last line does not say it.
    if (PreviousHash(data, data.slots.size()) == last.hash) {
        data.record.head_hash.clear();
    } else {
        data.record.head_hash = last.hash;
    }
}

std::string_view MemoryStore::HeadHash(const RunData& data) {
    if (!data.record.head_hash.empty() || data.slots.empty()) return data.record.head_hash;
    return PreviousHash(data, data.slots.size());
}

RunRecord MemoryStore::ToRunRecord(const std::string& run_id, const RunData& data) {
    const Record& r = data.record;
    RunRecord record;
    record.run_id = run_id;
    record.workflow = *r.workflow;
    record.status = r.status;
    record.definition_sha256 = *r.definition_sha256;
    record.idempotency_key = r.idempotency_key;
    record.created_at = r.created_at;
    record.updated_at = r.updated_at;
    record.head = {r.head_seq, std::string(HeadHash(data))};
    if (r.owner) record.owner = *r.owner;
    record.lease_until = r.lease_until;
    return record;
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
    RunData data;
    STROWGER_CO_TRY(CheckFits(run.run_id, data, run.events));
    data.record.workflow = Intern(run.workflow);
    data.record.status = run.status;
    data.record.definition_sha256 = Intern(run.definition_sha256);
    data.record.idempotency_key = run.idempotency_key;
    data.record.created_at = run.events.front().time;
    data.record.updated_at = run.events.back().time;
    if (!run.owner.empty()) data.record.owner = Intern(run.owner);
    data.record.lease_until = run.lease_until;
    definitions_.emplace(run.definition_sha256, std::move(run.definition_json));
    for (const auto& event : run.events) Pack(data, run.run_id, event);
    SetHead(data, run.events.back());
    if (!run.idempotency_key.empty()) idempotency_[run.idempotency_key] = run.run_id;
    runs_.emplace(run.run_id, std::move(data));
    co_return CreateRunResult{run.run_id, true};
}

Awaitable<Result<void>> MemoryStore::AppendEvents(std::string run_id,
                                                  std::vector<ledger::Event> events,
                                                  RunStatus status_after) {
    std::lock_guard lock(mutex_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) co_return NotFoundError("no run " + run_id);
    if (events.empty()) co_return OkStatus();
    RunData& data = it->second;
    if (events.front().seq != data.record.head_seq + 1) {
        co_return MakeError(ErrorCode::kAborted, "run " + run_id + " head moved: expected seq " +
                                                     std::to_string(data.record.head_seq + 1) +
                                                     ", got " + std::to_string(events.front().seq));
    }
    STROWGER_CO_TRY(CheckFits(run_id, data, events));
    data.record.updated_at = events.back().time;
    data.record.status = status_after;
    for (const auto& event : events) Pack(data, run_id, event);
    SetHead(data, events.back());
    if (ledger::IsTerminal(status_after)) {
        // Nothing more will be appended: give back what the buffers' growth left unused.
        data.bytes.ShrinkToFit();
        data.slots.shrink_to_fit();
    }
    co_return OkStatus();
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
        const Slot& slot = data.slots[i];
        std::string type(data.bytes.data() + slot.offset, slot.type_size);
        if (!TypeMatches(query.types, type)) continue;
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
    auto begin =
        filter.before_run_id.empty() ? runs_.end() : runs_.lower_bound(filter.before_run_id);
    for (auto it = std::make_reverse_iterator(begin); it != runs_.rend(); ++it) {
        const Record& record = it->second.record;
        if (!filter.workflow.empty() && *record.workflow != filter.workflow) continue;
        if (!filter.statuses.empty() && std::find(filter.statuses.begin(), filter.statuses.end(),
                                                  record.status) == filter.statuses.end()) {
            continue;
        }
        if (filter.limit > 0 && static_cast<int64_t>(page.runs.size()) >= filter.limit) {
            page.next_cursor = page.runs.back().run_id;
            break;
        }
        page.runs.push_back(ToRunRecord(it->first, it->second));
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
    auto it = runs_.find(run_id);
    if (it != runs_.end() && it->second.record.owner && *it->second.record.owner == owner) {
        it->second.record.owner = nullptr;
        it->second.record.lease_until = {};
    }
    co_return OkStatus();
}

Awaitable<Result<std::vector<RunRecord>>> MemoryStore::FindClaimable(
    std::vector<RunStatus> statuses, SystemTime now, int64_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<RunRecord> out;
    for (const auto& [id, data] : runs_) {
        const Record& record = data.record;
        if (std::find(statuses.begin(), statuses.end(), record.status) == statuses.end()) continue;
        if (record.owner && record.lease_until > now) continue;
        out.push_back(ToRunRecord(id, data));
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
    int64_t seen = 0;
    std::vector<std::string> doomed;
    for (auto it = runs_.rbegin(); it != runs_.rend(); ++it) {
        if (!ledger::IsTerminal(it->second.record.status)) continue;
        if (++seen > keep) doomed.push_back(it->first);
    }
    for (const auto& id : doomed) {
        const auto& key = runs_[id].record.idempotency_key;
        if (!key.empty()) idempotency_.erase(key);
        runs_.erase(id);
    }
    co_return static_cast<int64_t>(doomed.size());
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

}  // namespace strowger::store
