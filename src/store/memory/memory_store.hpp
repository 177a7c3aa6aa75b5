// An in-memory Store, for tests and `--store memory:` (throwaway runs).
//
// Thread-safety: a mutex serialises all methods; they never suspend.
#pragma once

#include <array>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store/memory/arena.hpp"
#include "store/store.hpp"

namespace strowger::store {

class MemoryStore : public Store {
  public:
    MemoryStore() = default;

    Awaitable<Result<CreateRunResult>> CreateRun(NewRun run) override;
    bool AppendsAtOnce() const override { return true; }
    Result<void> AppendEventsAtOnce(std::string_view run_id, std::span<const ledger::Event> events,
                                    RunStatus status_after) override;
    Awaitable<Result<void>> AppendEvents(std::string run_id, std::vector<ledger::Event> events,
                                         RunStatus status_after) override;
    Awaitable<Result<std::vector<StoredEvent>>> ReadEvents(std::string run_id,
                                                           EventQuery query) override;
    Awaitable<Result<RunRecord>> GetRun(std::string run_id) override;
    Awaitable<Result<RunPage>> ListRuns(RunFilter filter) override;
    Awaitable<Result<std::string>> GetDefinition(std::string sha256) override;
    Awaitable<Result<std::string>> FindByIdempotencyKey(std::string key) override;
    Awaitable<Result<bool>> TryLease(std::string run_id, std::string owner,
                                     SystemTime until) override;
    Awaitable<Result<void>> RenewLeases(std::string owner, SystemTime until) override;
    Awaitable<Result<void>> ReleaseLease(std::string run_id, std::string owner) override;
    Awaitable<Result<std::vector<RunRecord>>> FindClaimable(std::vector<RunStatus> statuses,
                                                            SystemTime now, int64_t limit) override;
    Awaitable<Result<void>> RequestControl(ControlRequest request) override;
    Awaitable<Result<std::vector<ControlRequest>>> TakeControlRequests(
        std::vector<std::string> run_ids) override;
    Awaitable<Result<int64_t>> PruneTerminalRuns(int64_t keep) override;
    Awaitable<Result<void>> RecordUsage(std::string key, SystemTime time, int64_t tokens) override;
    Awaitable<Result<int64_t>> UsageSince(std::string key, SystemTime since) override;
    Awaitable<Result<void>> SetWakeAt(std::string run_id, SystemTime due) override;
    Awaitable<Result<std::vector<RunRecord>>> FindDueRuns(SystemTime now, int64_t limit) override;
    Awaitable<Result<void>> AppendCheckpointBatch(ledger::CheckpointBatch batch) override;
    Awaitable<Result<std::optional<ledger::CheckpointBatch>>> LastCheckpointBatch() override;
    Awaitable<Result<std::vector<ledger::CheckpointBatch>>> ReadCheckpointBatches(
        int64_t first, int64_t limit) override;
    Awaitable<Result<std::vector<StoredCheckpoint>>> ReadCheckpoints(std::string run_id) override;
    Awaitable<Result<std::vector<RunRecord>>> FindUnsignedStops(std::string after_run_id,
                                                                int64_t limit) override;

    // The daemon's records (memory_daemon_state.cpp).
    Awaitable<Result<WorkflowVersion>> PutWorkflowVersion(WorkflowVersion version) override;
    Awaitable<Result<std::vector<WorkflowVersion>>> ListWorkflowVersions(
        std::string workflow_id) override;
    Awaitable<Result<void>> DeleteWorkflow(std::string workflow_id, SystemTime at) override;
    Awaitable<Result<void>> PutToken(ApiToken token) override;
    Awaitable<Result<std::vector<ApiToken>>> ListTokens() override;
    Awaitable<Result<void>> RevokeToken(std::string name, SystemTime at) override;
    Awaitable<Result<void>> PutRetentionPolicy(RetentionPolicy policy) override;
    Awaitable<Result<std::vector<RetentionPolicy>>> ListRetentionPolicies() override;
    Awaitable<Result<void>> DeleteRetentionPolicy(std::string workflow) override;
    Awaitable<Result<int64_t>> PruneRuns(PruneRequest request) override;
    Awaitable<Result<void>> PutRunAnnotation(RunAnnotation annotation) override;
    Awaitable<Result<RunAnnotation>> GetRunAnnotation(std::string run_id) override;
    // Automation (memory_automation.cpp).
    Awaitable<Result<void>> PutTrigger(TriggerRecord trigger) override;
    Awaitable<Result<std::vector<TriggerRecord>>> ListTriggers() override;
    Awaitable<Result<void>> DeleteTrigger(std::string trigger_id) override;
    Awaitable<Result<void>> RecordTriggerFire(TriggerFire fire) override;
    Awaitable<Result<TriggerRecord>> CompleteTriggerFire(std::string fire_id, std::string run_id,
                                                         std::string error, SystemTime at) override;
    Awaitable<Result<std::vector<TriggerFire>>> PendingTriggerFires() override;
    Awaitable<Result<std::vector<TriggerFire>>> ListTriggerFires(std::string trigger_id,
                                                                 int64_t limit) override;
    Awaitable<Result<MemoryChange>> PutMemory(MemoryEntry entry) override;
    Awaitable<Result<MemoryEntry>> GetMemory(std::string name_space, std::string key) override;
    Awaitable<Result<std::vector<MemoryEntry>>> ListMemory(std::string name_space,
                                                           std::string prefix,
                                                           int64_t limit) override;
    Awaitable<Result<MemoryChange>> DeleteMemory(std::string name_space, std::string key) override;
    Awaitable<Result<void>> PutWebhook(WebhookRecord hook) override;
    Awaitable<Result<std::vector<WebhookRecord>>> ListWebhooks() override;
    Awaitable<Result<void>> DeleteWebhook(std::string name) override;
    Awaitable<Result<void>> RecordWebhookDelivery(std::string hook, std::string delivery_id,
                                                  SystemTime at) override;
    Awaitable<Result<void>> SetWebhookDeliveryRun(std::string hook, std::string delivery_id,
                                                  std::string run_id) override;

    // Standing agents and cron jobs (memory_agents_cron.cpp).
    Awaitable<Result<AgentSession>> OpenSession(AgentSession session) override;
    Awaitable<Result<AgentSession>> GetSession(std::string session_id) override;
    Awaitable<Result<std::vector<AgentSession>>> ListSessions(std::string agent) override;
    Awaitable<Result<std::vector<SessionMessage>>> ReadSessionMessages(
        std::string session_id) override;
    Awaitable<Result<void>> UpdateSession(SessionUpdate update) override;
    Awaitable<Result<void>> PutAgentTurn(AgentTurn turn) override;
    Awaitable<Result<std::vector<AgentTurn>>> ListAgentTurns() override;
    Awaitable<Result<void>> PutCronJob(CronJob job) override;
    Awaitable<Result<std::vector<CronJob>>> ListCronJobs() override;
    Awaitable<Result<CronJob>> GetCronJob(std::string job_id) override;
    Awaitable<Result<void>> DeleteCronJob(std::string job_id) override;
    Awaitable<Result<void>> RecordCronFire(CronFire fire, CronJob job) override;
    Awaitable<Result<void>> UpdateCronFire(CronFire fire, CronJob job) override;
    Awaitable<Result<std::vector<CronFire>>> ListCronFires(std::string job_id,
                                                           int64_t limit) override;
    Awaitable<Result<std::vector<CronFire>>> ListOpenCronFires() override;

    // Bytes kept for a run's events (with its slots once it is finished), and for all runs'
    // (tests).
    size_t KeptBytesForTest(const std::string& run_id);
    size_t KeptBytesForTest();

  private:
    // A run's events, packed: each one's type, node and stored line back to back in one
    // allocation of the store's arena, found through its slot (slots[seq - 1]). No heap block
    // per event or per run: a benchmark keeps millions of events here.
    //
    // A line's `prev_hash` value is left out when it is the hash in the run's previous line (64
    // zeros for the first), and its `run_id` value when it is the run's id: a quarter of a
    // typical line, put back when the line is read. Any other line is kept as it came, so a
    // broken chain reads back exactly as broken.
    //
    //
    // Most lines are kept *compact*: a line that is exactly what the ledger's canonical
    // encoding writes from its event's header fields — with the previous line's hash, the
    // run's id, its position as seq — is kept as its type, node, data object and a 48-byte
    // Tail; the rest is rebuilt on reading (Rebuild). PackCompact compares the line with what
    // Rebuild would write around its data object and hash before it keeps a line so.
    static constexpr uint32_t kKept = UINT32_MAX;
    static constexpr uint32_t kCompact = UINT32_MAX - 1;  // in Slot::prev_hash_at
    struct Tail {
        char hash[32];    // binary
        int64_t time;     // SystemTime's count
        int64_t attempt;  // 0: the line has none
    };
    static constexpr size_t kCompactTail = sizeof(Tail);
    struct Slot {
        Arena::Ref bytes;        // type, node, line
        uint32_t line_size = 0;  // as kept, without what was left out
        uint16_t type_size = 0;
        uint16_t node_size = 0;
        uint32_t prev_hash_at = kKept;  // where the previous hash goes back in the kept line
        uint32_t run_id_at = kKept;     // where the run id goes back (after prev_hash is back)
        uint32_t hash_at = kKept;       // where the line's own hash is (for the next line)
    };
    // What a RunRecord says of a run, kept small (10,000 waiting runs have one each): the
    // workflow, definition hash and owner point into names_ (few distinct values), the run id
    // is the map's key, and the head's hash is read from the last line where Seal said it is.
    // What few runs have is in `extra`, allocated when one of its fields is first set.
    struct Record {
        struct Extra {
            std::string idempotency_key;
            SystemTime wake_at{};
            std::string head_hash;  // only when the last line does not say where its hash is
        };
        const std::string* workflow = nullptr;
        const std::string* definition_sha256 = nullptr;
        const std::string* owner = nullptr;  // null: no lease
        RunStatus status = RunStatus::kPending;
        SystemTime created_at{};
        SystemTime updated_at{};
        SystemTime lease_until{};
        int64_t head_seq = 0;
        int64_t checkpoint_seq = 0;
        std::unique_ptr<Extra> extra;  // null: all of its fields are empty

        const Extra& extras() const {
            static const Extra kNone;
            return extra ? *extra : kNone;
        }
        Extra& MakeExtra() {
            if (!extra) extra = std::make_unique<Extra>();
            return *extra;
        }
    };
    // A run's slots: in a vector while the run grows; once it is finished, copied into the
    // arena (settled). On the heap they would sit among the short-lived allocations of the
    // runs still going, and the heap would grow by a page every few runs. An append to a
    // settled run (a retry) moves them back into a vector.
    class SlotList {
      public:
        size_t size() const { return settled_ != nullptr ? settled_size_ : growing_.size(); }
        bool empty() const { return size() == 0; }
        const Slot& operator[](size_t i) const { return data()[i]; }
        const Slot& back() const { return data()[size() - 1]; }
        const Slot* begin() const { return data(); }
        const Slot* end() const { return data() + size(); }
        // Appends `slot` and returns it (in the vector).
        Slot& Add(Arena& arena, const Slot& slot);
        void RemoveLast();  // of a growing list
        void Settle(Arena& arena);
        void Release(Arena& arena);  // of the settled copy
        size_t settled_bytes() const { return settled_ != nullptr ? size() * sizeof(Slot) : 0; }

      private:
        const Slot* data() const { return settled_ != nullptr ? settled_ : growing_.data(); }

        std::vector<Slot> growing_;
        const Slot* settled_ = nullptr;
        Arena::Ref settled_at_;
        uint32_t settled_size_ = 0;
    };
    struct RunData {
        Record record;
        SlotList slots;
    };
    // Whether `events` may be packed into `data`: consecutive seqs, names and sizes that fit a
    // slot. Checked before anything changes.
    static Status CheckFits(std::string_view run_id, std::span<const ledger::Event> events);
    // The members below read or write the arena: REQUIRES(mutex_).
    void Pack(RunData& data, std::string_view run_id, const ledger::Event& event);
    // Packs `event` compact if it can be.
    bool PackCompact(RunData& data, std::string_view run_id, const ledger::Event& event);
    // Adds `slot` for the next event: `type`, `node` and the parts of its line as kept, copied
    // into a new allocation (the slot's sizes are set from them).
    void AddSlot(RunData& data, Slot slot, std::string_view type, std::string_view node,
                 std::initializer_list<std::string_view> line);
    // Gives back what a run's events hold.
    void Release(RunData& data);
    // Whether Seal made `event` rebuildable with the run id and previous hash Rebuild uses:
    // then PackCompact need not compare the line with a rebuilt one.
    bool SealedForRebuild(const RunData& data, std::string_view run_id,
                          const ledger::Event& event) const;
    // Whether `hash` is the hash of the line before event `index` (64 zeros for the first).
    bool HashIs(const RunData& data, size_t index, std::string_view hash) const;
    // The Tail of compact event `index` (unaligned: copy it out).
    const char* CompactTail(const RunData& data, size_t index) const;
    // The line of compact event `index`, into event.encoded.
    void Rebuild(const RunData& data, std::string_view run_id, size_t index,
                 StoredEvent& event) const;
    using HexHash = std::array<char, 64>;
    StoredEvent Unpack(const RunData& data, std::string_view run_id, size_t index) const;
    // The head's hash after `last` was packed: kept only if the line does not give it.
    void SetHead(RunData& data, const ledger::Event& last) const;
    std::string HeadHash(const RunData& data) const;
    RunRecord ToRunRecord(const std::string& run_id, const RunData& data) const;
    const std::string* Intern(const std::string& name);  // REQUIRES(mutex_)
    // Event `index`'s type and node, and its line as kept.
    std::string_view TypeOf(const RunData& data, size_t index) const;
    std::string_view NodeOf(const RunData& data, size_t index) const;
    std::string_view KeptLine(const RunData& data, size_t index) const;
    // The previous event's hash as a line kept before it names it (64 zeros before the first;
    // empty if that line does not say where it is) — with index = the number of events, the
    // head's.
    std::string_view PreviousHash(const RunData& data, size_t index, HexHash& buffer) const;

    // Hashed, not ordered: every append finds its run, and run ids share their leading
    // (time) characters, which an ordered map compares again at each level. The few listings
    // sort what they select (ByRunId).
    struct Hash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    using Runs = std::unordered_map<std::string, RunData, Hash, std::equal_to<>>;
    RunData* Find(std::string_view run_id);  // REQUIRES(mutex_); null if none
    // The runs `keep` accepts (called with a runs_ entry), in run id order (ids sort by
    // time): oldest first. Only those are sorted.
    template <typename Keep>
    std::vector<Runs::iterator> ByRunId(Keep keep);  // REQUIRES(mutex_)

    std::mutex mutex_;
    Arena arena_;  // GUARDED_BY(mutex_); before runs_, which refer into it
    Runs runs_;    // GUARDED_BY(mutex_)
    // The run Find found last (appends come in runs of the same run's): its entry in runs_,
    // which stays where it is until erased. Null: none.
    Runs::value_type* last_found_ = nullptr;                    // GUARDED_BY(mutex_)
    std::unordered_map<std::string, std::string> definitions_;  // GUARDED_BY(mutex_)
    std::unordered_map<std::string, std::string> idempotency_;  // GUARDED_BY(mutex_)
    std::unordered_set<std::string> names_;                     // GUARDED_BY(mutex_)
    std::vector<ControlRequest> control_;                       // GUARDED_BY(mutex_)
    std::map<std::string, std::vector<std::pair<SystemTime, int64_t>>>
        usage_;                                     // GUARDED_BY(mutex_)
    std::vector<ledger::CheckpointBatch> batches_;  // GUARDED_BY(mutex_); batch_seq = index + 1
    std::unordered_map<std::string, std::vector<StoredCheckpoint>>
        checkpoints_;  // GUARDED_BY(mutex_); by run
    // Deletes a run and what belongs to it (idempotency key, checkpoints, annotation).
    void EraseRun(Runs::iterator run);  // REQUIRES(mutex_)
    // The daemon's records.
    struct WorkflowEntry {
        std::string origin;
        SystemTime created_at{};
        bool deleted = false;
        std::vector<WorkflowVersion> versions;  // by version, from 1
    };
    std::map<std::string, WorkflowEntry> workflows_;              // GUARDED_BY(mutex_)
    std::map<std::string, ApiToken> tokens_;                      // GUARDED_BY(mutex_)
    std::map<std::string, RetentionPolicy> retention_;            // GUARDED_BY(mutex_)
    std::unordered_map<std::string, RunAnnotation> annotations_;  // GUARDED_BY(mutex_)
    // Automation's records (memory_automation.cpp).
    std::map<std::string, TriggerRecord> triggers_;        // GUARDED_BY(mutex_)
    std::map<std::string, TriggerFire> fires_;             // GUARDED_BY(mutex_); by fire id
    std::set<std::pair<std::string, std::string>> fired_;  // GUARDED_BY(mutex_)
    std::map<std::pair<std::string, std::string>, MemoryEntry> memory_;  // GUARDED_BY(mutex_)
    std::map<std::string, WebhookRecord> webhooks_;                      // GUARDED_BY(mutex_)
    std::map<std::pair<std::string, std::string>, std::pair<SystemTime, std::string>>
        deliveries_;  // GUARDED_BY(mutex_)
    // Standing agents and cron jobs.
    struct SessionEntry {
        AgentSession session;
        std::vector<SessionMessage> messages;
        int64_t last_seq = 0;
    };
    std::map<std::string, SessionEntry> sessions_;  // GUARDED_BY(mutex_)
    std::map<std::string, AgentTurn> turns_;        // GUARDED_BY(mutex_)
    std::map<std::string, CronJob> cron_jobs_;      // GUARDED_BY(mutex_)
    // By job, then scheduled time.
    std::map<std::pair<std::string, int64_t>, CronFire> cron_fires_;  // GUARDED_BY(mutex_)
};

}  // namespace strowger::store
