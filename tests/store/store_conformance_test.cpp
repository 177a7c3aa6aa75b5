// The Store contract (src/store/store.hpp), run against every implementation. A new backend
// (PostgreSQL) joins by adding a factory to Factories().
#include <gtest/gtest.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ledger/chain.hpp"
#include "store/memory/memory_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store_test_util.hpp"
#include "testing/test_util.hpp"

namespace strowger::store {
namespace {

using fixtures::CodeOf;
using fixtures::Lines;
using fixtures::MakeNewRun;
using fixtures::RunIdFor;
using fixtures::RunIds;
using fixtures::TestChain;
using std::chrono::hours;
using std::chrono::seconds;
using strowger::testing::RunSync;

struct StoreFactory {
    std::string name;
    // Opens a fresh, empty store keeping its files (if any) under `dir`.
    std::function<std::shared_ptr<Store>(const std::filesystem::path& dir)> open;
};

void PrintTo(const StoreFactory& factory, std::ostream* out) {
    *out << factory.name;
}

std::shared_ptr<Store> OpenSqlite(const std::filesystem::path& dir, SqliteSync sync) {
    SqliteOptions options;
    options.synchronous = sync;
    auto store = SqliteStore::OpenBlocking((dir / "store.db").string(), options);
    EXPECT_TRUE(store.has_value()) << store.error().ToString();
    return store ? *store : nullptr;
}

std::vector<StoreFactory> Factories() {
    return {
        {"Memory", [](const std::filesystem::path&) { return std::make_shared<MemoryStore>(); }},
        {"Sqlite",
         [](const std::filesystem::path& dir) { return OpenSqlite(dir, SqliteSync::kNormal); }},
        {"SqliteFull",
         [](const std::filesystem::path& dir) { return OpenSqlite(dir, SqliteSync::kFull); }},
    };
}

// Now, to the second: the contract compares leases with the real clock.
SystemTime Now() {
    return std::chrono::floor<seconds>(std::chrono::system_clock::now());
}

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
  protected:
    void SetUp() override {
        store_ = GetParam().open(dir_.path());
        ASSERT_NE(store_, nullptr);
    }

    // Creates a run with just its run.created event; returns its chain.
    TestChain Create(int n, std::string workflow = "wf", RunStatus status = RunStatus::kPending,
                     std::string idempotency_key = "") {
        TestChain chain(RunIdFor(n));
        auto created =
            RunSync(store_->CreateRun(MakeNewRun(chain, workflow, idempotency_key, status)));
        EXPECT_TRUE(created.has_value()) << created.error().ToString();
        return chain;
    }

    Status Append(TestChain& chain, int count, RunStatus status = RunStatus::kRunning) {
        return RunSync(store_->AppendEvents(chain.run_id(), chain.NodeEvents(count), status));
    }

    strowger::testing::TempDir dir_;
    std::shared_ptr<Store> store_;  // declared after dir_: closed before the files go
};

TEST_P(StoreConformanceTest, CreatedRunReadsBackIdenticalLinesInOrder) {
    TestChain chain(RunIdFor(1));
    NewRun run = MakeNewRun(chain, "review", "", RunStatus::kRunning);
    run.events.push_back(chain.Next(ledger::RunStarted{}));
    std::vector<std::string> expected = Lines(run.events);

    auto created = RunSync(store_->CreateRun(run));
    ASSERT_TRUE(created.has_value()) << created.error().ToString();
    EXPECT_TRUE(created->created);
    EXPECT_EQ(created->run_id, chain.run_id());

    auto more = chain.NodeEvents(4);
    for (const auto& line : Lines(more)) expected.push_back(line);
    ASSERT_TRUE(RunSync(store_->AppendEvents(chain.run_id(), more, RunStatus::kWaiting)));

    auto events = RunSync(store_->ReadEvents(chain.run_id(), EventQuery{}));
    ASSERT_TRUE(events.has_value()) << events.error().ToString();
    EXPECT_EQ(Lines(*events), expected);
    for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].seq, int64_t(i + 1));
    EXPECT_EQ((*events)[0].type, "run.created");
    EXPECT_EQ((*events)[0].node, "");
    EXPECT_EQ((*events)[2].type, "node.started");
    EXPECT_EQ((*events)[2].node, "step1");
    EXPECT_TRUE(ledger::VerifyChain(chain.run_id(), Lines(*events), chain.head()).ok());

    auto record = RunSync(store_->GetRun(chain.run_id()));
    ASSERT_TRUE(record.has_value()) << record.error().ToString();
    EXPECT_EQ(record->run_id, chain.run_id());
    EXPECT_EQ(record->workflow, "review");
    EXPECT_EQ(record->status, RunStatus::kWaiting);
    EXPECT_EQ(record->definition_sha256, "sha256-of-review");
    EXPECT_EQ(record->idempotency_key, "");
    EXPECT_EQ(record->created_at, fixtures::TimeAt(1));
    EXPECT_EQ(record->updated_at, fixtures::TimeAt(6));
    EXPECT_EQ(record->head.seq, 6);
    EXPECT_EQ(record->head.hash, chain.head().hash);
    EXPECT_EQ(record->owner, "");
}

// A store keeps lines as they came, whatever they say: a chain broken by a wrong prev_hash or a
// foreign run id reads back broken (audit verify must see it), and a payload that repeats the
// header's values is not mistaken for the header.
TEST_P(StoreConformanceTest, LinesThatBreakTheChainReadBackExactly) {
    TestChain chain(RunIdFor(7));
    NewRun run = MakeNewRun(chain);
    std::vector<std::string> expected = Lines(run.events);
    ASSERT_TRUE(RunSync(store_->CreateRun(run)).has_value());

    ledger::ChainHead head = chain.head();
    std::vector<ledger::Event> events;
    auto seal = [&](std::string_view run_id, ledger::Payload payload) {
        ledger::NewEvent event{"step1", 1, std::move(payload)};
        events.push_back(ledger::Seal(head, run_id, fixtures::TimeAt(head.seq + 1), event));
    };
    // The header's values inside the payload, before the header's own members.
    seal(chain.run_id(),
         ledger::UnknownPayload{"custom.echo", "{\"x\":{\"prev_hash\":\"" + head.hash +
                                                   "\",\"run_id\":\"" + chain.run_id() + "\"}}"});
    seal(chain.run_id(), ledger::NodeStarted{});
    head.hash = std::string(64, 'f');  // the next line names a hash that is not the last one's
    seal(chain.run_id(), ledger::NodeStarted{});
    seal("01HZ-another-run", ledger::NodeStarted{});  // a line of another run
    seal(chain.run_id(), ledger::NodeStarted{});      // back to normal after the breaks
    {
        // A line changed after sealing: the offsets Seal gave no longer point at its values.
        ledger::ChainHead other = head;
        ledger::Event changed = ledger::Seal(
            other, chain.run_id(), fixtures::TimeAt(head.seq + 1),
            ledger::NewEvent{"a-much-longer-step-name", 2, ledger::NodeCompleted{"x", 1, 2, 3, 0}});
        seal(chain.run_id(), ledger::NodeStarted{});
        events.back().encoded = changed.encoded;
        events.back().rebuildable = false;  // what Seal said of its line is void
        head = other;
    }
    head.hash.clear();  // an empty prev_hash
    seal(chain.run_id(), ledger::NodeStarted{});
    // Lines a compact store must keep as they are: header values not in their canonical form,
    // and a payload whose own members look like the header's. (An edited line is no longer
    // the one Seal said could be rebuilt.)
    auto edit = [&](std::string_view from, std::string_view to) {
        events.back().rebuildable = false;
        std::string& line = events.back().encoded;
        size_t at = line.rfind(from);
        ASSERT_NE(at, std::string::npos) << line;
        line.replace(at, from.size(), to);
    };
    seal(chain.run_id(), ledger::NodeStarted{});
    edit(R"("hash":")" + events.back().hash.substr(0, 2), R"("hash":"AB)");  // uppercase hex
    seal(chain.run_id(), ledger::NodeStarted{});
    edit(R"("time":"2026-)", R"("time":"0000-)");  // year 0: canonical still
    seal(chain.run_id(), ledger::NodeStarted{});
    edit(R"(-09-)", R"(-13-)");  // no month 13
    seal(chain.run_id(), ledger::NodeStarted{});
    edit(R"({"attempt":1,)", R"({"attempt":01,)");
    seal(chain.run_id(), ledger::NodeStarted{});
    edit(R"("seq":)", R"("seq":0)");
    seal(chain.run_id(), ledger::NodeStarted{});
    edit(R"(,"v":1})", R"(,"v":1} )");
    seal(chain.run_id(),
         ledger::UnknownPayload{"custom.nested", R"({"a":{"b":1},"hash":")" + std::string(64, 'a') +
                                                     R"(","node":"x","seq":1})"});
    {
        ledger::NewEvent quoted{"step\"with\\escapes", 1, ledger::NodeStarted{}};
        events.push_back(
            ledger::Seal(head, chain.run_id(), fixtures::TimeAt(head.seq + 1), quoted));
    }
    for (const auto& line : Lines(events)) expected.push_back(line);
    ASSERT_TRUE(RunSync(store_->AppendEvents(chain.run_id(), events, RunStatus::kRunning)));

    auto read = RunSync(store_->ReadEvents(chain.run_id(), EventQuery{}));
    ASSERT_TRUE(read.has_value()) << read.error().ToString();
    EXPECT_EQ(Lines(*read), expected);
    EXPECT_FALSE(ledger::VerifyChain(chain.run_id(), Lines(*read), std::nullopt).ok());
    // From the middle too: a line read alone is the same line.
    for (int64_t after = 1; after < static_cast<int64_t>(expected.size()); ++after) {
        EventQuery query;
        query.after_seq = after;
        query.limit = 1;
        auto one = RunSync(store_->ReadEvents(chain.run_id(), query));
        ASSERT_TRUE(one.has_value());
        ASSERT_EQ(one->size(), 1u);
        EXPECT_EQ(one->front().encoded, expected[static_cast<size_t>(after)]);
    }
}

// The in-memory store keeps a canonical line as its data and a 48-byte tail; a line it cannot
// rebuild byte for byte (here: each names a hash that is not the previous line's) in full.
TEST(MemoryStoreTest, KeepsCanonicalLinesCompactAndOthersInFull) {
    auto store = std::make_shared<MemoryStore>();
    TestChain chain(RunIdFor(1));
    ASSERT_TRUE(RunSync(store->CreateRun(MakeNewRun(chain))).has_value());
    auto events = chain.NodeEvents(20);
    ASSERT_TRUE(RunSync(store->AppendEvents(chain.run_id(), events, RunStatus::kRunning)));
    size_t text = 0, compact = 0;
    for (const auto& line : Lines(*RunSync(store->ReadEvents(chain.run_id(), EventQuery{})))) {
        text += line.size();
    }
    for (const auto& event : events) {
        compact += event.data.size() + event.type_name.size() + event.node.size() + 48;
    }
    size_t kept = store->KeptBytesForTest(chain.run_id());
    EXPECT_LT(kept, text * 2 / 5);
    EXPECT_GE(kept, compact);

    TestChain broken(RunIdFor(2));
    ASSERT_TRUE(RunSync(store->CreateRun(MakeNewRun(broken))).has_value());
    ledger::ChainHead head = broken.head();
    std::vector<ledger::Event> unchained;
    for (int i = 0; i < 20; ++i) {
        head.hash = std::string(64, 'e');
        unchained.push_back(ledger::Seal(head, broken.run_id(), fixtures::TimeAt(head.seq + 1),
                                         ledger::NewEvent{"s", 1, ledger::NodeStarted{}}));
    }
    ASSERT_TRUE(RunSync(store->AppendEvents(broken.run_id(), unchained, RunStatus::kRunning)));
    size_t unchained_text = 0;
    for (const auto& event : unchained) unchained_text += event.encoded.size();
    EXPECT_GT(store->KeptBytesForTest(broken.run_id()), unchained_text * 3 / 4);
}

// A finished run's slots move off the heap; appending to it again (a retry) moves them back,
// and every line reads back as appended.
TEST(MemoryStoreTest, ARunAppendedToAfterItFinishedReadsBackWhole) {
    auto store = std::make_shared<MemoryStore>();
    TestChain chain(RunIdFor(1));
    NewRun created = MakeNewRun(chain);
    std::vector<ledger::Event> all = created.events;
    ASSERT_TRUE(RunSync(store->CreateRun(std::move(created))).has_value());
    for (RunStatus status : {RunStatus::kFailed, RunStatus::kRunning, RunStatus::kCompleted}) {
        auto events = chain.NodeEvents(7);
        all.insert(all.end(), events.begin(), events.end());
        ASSERT_TRUE(RunSync(store->AppendEvents(chain.run_id(), events, status)));
        auto read = RunSync(store->ReadEvents(chain.run_id(), EventQuery{}));
        ASSERT_TRUE(read.has_value());
        ASSERT_EQ(read->size(), all.size());
        for (size_t i = 0; i < all.size(); ++i) {
            EXPECT_EQ((*read)[i].encoded, all[i].encoded) << "seq " << i + 1;
        }
    }
    auto record = RunSync(store->GetRun(chain.run_id()));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->head.hash, chain.head().hash);
}

// Pruned runs give their events' memory back; the runs left read back whole.
TEST(MemoryStoreTest, PruningGivesBackWhatThePrunedRunsKept) {
    auto store = std::make_shared<MemoryStore>();
    std::vector<TestChain> chains;
    for (int i = 1; i <= 3; ++i) {
        chains.emplace_back(RunIdFor(i));
        TestChain& chain = chains.back();
        ASSERT_TRUE(RunSync(store->CreateRun(MakeNewRun(chain))).has_value());
        ASSERT_TRUE(
            RunSync(store->AppendEvents(chain.run_id(), chain.NodeEvents(40),
                                        i == 1 ? RunStatus::kRunning : RunStatus::kCompleted)));
    }
    const size_t active = store->KeptBytesForTest(RunIdFor(1));
    EXPECT_EQ(store->KeptBytesForTest(),
              active + store->KeptBytesForTest(RunIdFor(2)) + store->KeptBytesForTest(RunIdFor(3)));
    auto before = Lines(*RunSync(store->ReadEvents(RunIdFor(1), EventQuery{})));
    // Run 3 was the last one appended to: pruning it must not leave it findable.
    auto pruned = RunSync(store->PruneTerminalRuns(0));
    ASSERT_TRUE(pruned.has_value());
    EXPECT_EQ(*pruned, 2);
    EXPECT_EQ(store->KeptBytesForTest(), active);
    EXPECT_EQ(CodeOf(RunSync(
                  store->AppendEvents(RunIdFor(3), chains[2].NodeEvents(1), RunStatus::kRunning))),
              ErrorCode::kNotFound);
    EXPECT_EQ(Lines(*RunSync(store->ReadEvents(RunIdFor(1), EventQuery{}))), before);
    ASSERT_TRUE(
        RunSync(store->AppendEvents(RunIdFor(1), chains[0].NodeEvents(2), RunStatus::kCompleted)));
    EXPECT_EQ(RunSync(store->PruneTerminalRuns(0)).value_or(-1), 1);
    EXPECT_EQ(store->KeptBytesForTest(), 0u);
}

TEST_P(StoreConformanceTest, UsageSumsByKeyFromATimeOn) {
    auto now = std::chrono::system_clock::now();
    ASSERT_TRUE(RunSync(store_->RecordUsage("writer", now - std::chrono::minutes(90), 1000)));
    ASSERT_TRUE(RunSync(store_->RecordUsage("writer", now - std::chrono::minutes(30), 200)));
    ASSERT_TRUE(RunSync(store_->RecordUsage("writer", now, 30)));
    ASSERT_TRUE(RunSync(store_->RecordUsage("reviewer", now, 7)));
    auto last_hour = RunSync(store_->UsageSince("writer", now - std::chrono::hours(1)));
    ASSERT_TRUE(last_hour.has_value());
    EXPECT_EQ(*last_hour, 230);
    EXPECT_EQ(*RunSync(store_->UsageSince("writer", now - std::chrono::hours(2))), 1230);
    EXPECT_EQ(*RunSync(store_->UsageSince("reviewer", now - std::chrono::hours(1))), 7);
    EXPECT_EQ(*RunSync(store_->UsageSince("nobody", now - std::chrono::hours(1))), 0);
}

TEST_P(StoreConformanceTest, CreateRunWithAnExistingIdFailsWithAlreadyExists) {
    TestChain chain = Create(1);
    TestChain again(RunIdFor(1));
    auto created = RunSync(store_->CreateRun(MakeNewRun(again, "other")));
    EXPECT_EQ(CodeOf(created), ErrorCode::kAlreadyExists);
    auto record = RunSync(store_->GetRun(chain.run_id()));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->workflow, "wf");
}

TEST_P(StoreConformanceTest, CreateRunNeedsEventsFromSeqOne) {
    TestChain chain(RunIdFor(1));
    NewRun empty = MakeNewRun(chain);
    empty.events.clear();
    EXPECT_EQ(CodeOf(RunSync(store_->CreateRun(empty))), ErrorCode::kInvalidArgument);

    NewRun late = MakeNewRun(chain);
    late.events[0] = chain.Next(ledger::RunStarted{});  // seq 3
    EXPECT_EQ(CodeOf(RunSync(store_->CreateRun(late))), ErrorCode::kInvalidArgument);
    EXPECT_EQ(CodeOf(RunSync(store_->GetRun(chain.run_id()))), ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, StaleAppendFailsWithAbortedAndWritesNothing) {
    TestChain chain = Create(1);
    TestChain rival = chain;  // another writer that saw the same head
    ASSERT_TRUE(Append(chain, 2, RunStatus::kRunning));

    auto stale =
        RunSync(store_->AppendEvents(chain.run_id(), rival.NodeEvents(1), RunStatus::kFailed));
    EXPECT_EQ(CodeOf(stale), ErrorCode::kAborted);

    TestChain gap = chain;
    gap.NodeEvents(1);  // skip seq 4
    auto skipped =
        RunSync(store_->AppendEvents(chain.run_id(), gap.NodeEvents(1), RunStatus::kFailed));
    EXPECT_EQ(CodeOf(skipped), ErrorCode::kAborted);

    auto events = RunSync(store_->ReadEvents(chain.run_id(), EventQuery{}));
    ASSERT_TRUE(events.has_value());
    EXPECT_EQ(events->size(), 3u);
    EXPECT_TRUE(ledger::VerifyChain(chain.run_id(), Lines(*events), chain.head()).ok());
    auto record = RunSync(store_->GetRun(chain.run_id()));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->head.seq, 3);
    EXPECT_EQ(record->head.hash, chain.head().hash);
    EXPECT_EQ(record->status, RunStatus::kRunning);
}

TEST_P(StoreConformanceTest, UnknownRunIsNotFound) {
    TestChain ghost(RunIdFor(9));
    ghost.NodeEvents(1);
    EXPECT_EQ(CodeOf(RunSync(
                  store_->AppendEvents(ghost.run_id(), ghost.NodeEvents(1), RunStatus::kRunning))),
              ErrorCode::kNotFound);
    EXPECT_EQ(CodeOf(RunSync(store_->ReadEvents(ghost.run_id(), EventQuery{}))),
              ErrorCode::kNotFound);
    EXPECT_EQ(CodeOf(RunSync(store_->GetRun(ghost.run_id()))), ErrorCode::kNotFound);
    EXPECT_EQ(CodeOf(RunSync(store_->TryLease(ghost.run_id(), "a", Now() + hours(1)))),
              ErrorCode::kNotFound);
    ControlRequest request;
    request.run_id = ghost.run_id();
    EXPECT_EQ(CodeOf(RunSync(store_->RequestControl(request))), ErrorCode::kNotFound);
    EXPECT_EQ(CodeOf(RunSync(store_->GetDefinition("no-such-sha"))), ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, ReadEventsHonoursAfterSeqLimitAndTypes) {
    TestChain chain = Create(1);
    ASSERT_TRUE(Append(chain, 6));  // seq 2..7: started, completed, started, ...

    EventQuery after;
    after.after_seq = 4;
    auto tail = RunSync(store_->ReadEvents(chain.run_id(), after));
    ASSERT_TRUE(tail.has_value());
    ASSERT_EQ(tail->size(), 3u);
    EXPECT_EQ(tail->front().seq, 5);

    EventQuery limited;
    limited.after_seq = 1;
    limited.limit = 2;
    auto page = RunSync(store_->ReadEvents(chain.run_id(), limited));
    ASSERT_TRUE(page.has_value());
    ASSERT_EQ(page->size(), 2u);
    EXPECT_EQ(page->front().seq, 2);
    EXPECT_EQ(page->back().seq, 3);

    EventQuery exact;
    exact.types = {"node.completed"};
    auto completed = RunSync(store_->ReadEvents(chain.run_id(), exact));
    ASSERT_TRUE(completed.has_value());
    ASSERT_EQ(completed->size(), 3u);
    for (const auto& event : *completed) EXPECT_EQ(event.type, "node.completed");

    EventQuery prefix;
    prefix.types = {"run.", "node.started"};
    prefix.limit = 2;
    auto mixed = RunSync(store_->ReadEvents(chain.run_id(), prefix));
    ASSERT_TRUE(mixed.has_value());
    ASSERT_EQ(mixed->size(), 2u);
    EXPECT_EQ((*mixed)[0].type, "run.created");
    EXPECT_EQ((*mixed)[1].type, "node.started");
    EXPECT_EQ((*mixed)[1].seq, 2);
}

TEST_P(StoreConformanceTest, IdempotencyKeyReturnsTheExistingRun) {
    TestChain first = Create(1, "wf", RunStatus::kPending, "key-1");
    TestChain second(RunIdFor(2));
    auto again = RunSync(store_->CreateRun(MakeNewRun(second, "wf", "key-1")));
    ASSERT_TRUE(again.has_value()) << again.error().ToString();
    EXPECT_FALSE(again->created);
    EXPECT_EQ(again->run_id, first.run_id());
    EXPECT_EQ(CodeOf(RunSync(store_->GetRun(second.run_id()))), ErrorCode::kNotFound);

    auto found = RunSync(store_->FindByIdempotencyKey("key-1"));
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(*found, first.run_id());
    auto record = RunSync(store_->GetRun(first.run_id()));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->idempotency_key, "key-1");
    EXPECT_EQ(CodeOf(RunSync(store_->FindByIdempotencyKey("key-2"))), ErrorCode::kNotFound);
    EXPECT_EQ(CodeOf(RunSync(store_->FindByIdempotencyKey(""))), ErrorCode::kNotFound);

    // Runs without a key do not collide with each other.
    Create(3);
    Create(4);
    EXPECT_TRUE(RunSync(store_->GetRun(RunIdFor(4))).has_value());
}

TEST_P(StoreConformanceTest, ListRunsNewestFirstWithFiltersAndCursor) {
    Create(1, "alpha", RunStatus::kCompleted);
    Create(2, "beta", RunStatus::kRunning);
    Create(3, "alpha", RunStatus::kFailed);
    Create(4, "alpha", RunStatus::kRunning);
    Create(5, "beta", RunStatus::kCompleted);
    Create(6, "alpha", RunStatus::kPending);
    Create(7, "alpha", RunStatus::kCompleted);

    RunFilter all;
    auto everything = RunSync(store_->ListRuns(all));
    ASSERT_TRUE(everything.has_value());
    EXPECT_EQ(RunIds(everything->runs),
              (std::vector<std::string>{RunIdFor(7), RunIdFor(6), RunIdFor(5), RunIdFor(4),
                                        RunIdFor(3), RunIdFor(2), RunIdFor(1)}));
    EXPECT_EQ(everything->next_cursor, "");

    RunFilter finished;
    finished.statuses = {RunStatus::kCompleted, RunStatus::kFailed};
    auto done = RunSync(store_->ListRuns(finished));
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(RunIds(done->runs),
              (std::vector<std::string>{RunIdFor(7), RunIdFor(5), RunIdFor(3), RunIdFor(1)}));

    RunFilter alpha;
    alpha.workflow = "alpha";
    alpha.limit = 2;
    auto first = RunSync(store_->ListRuns(alpha));
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(RunIds(first->runs), (std::vector<std::string>{RunIdFor(7), RunIdFor(6)}));
    EXPECT_EQ(first->next_cursor, RunIdFor(6));
    alpha.before_run_id = first->next_cursor;
    auto second = RunSync(store_->ListRuns(alpha));
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(RunIds(second->runs), (std::vector<std::string>{RunIdFor(4), RunIdFor(3)}));
    EXPECT_EQ(second->next_cursor, RunIdFor(3));
    alpha.before_run_id = second->next_cursor;
    auto third = RunSync(store_->ListRuns(alpha));
    ASSERT_TRUE(third.has_value());
    EXPECT_EQ(RunIds(third->runs), (std::vector<std::string>{RunIdFor(1)}));
    EXPECT_EQ(third->next_cursor, "");

    RunFilter both;
    both.workflow = "alpha";
    both.statuses = {RunStatus::kRunning};
    auto running_alpha = RunSync(store_->ListRuns(both));
    ASSERT_TRUE(running_alpha.has_value());
    EXPECT_EQ(RunIds(running_alpha->runs), (std::vector<std::string>{RunIdFor(4)}));

    RunFilter exact_page;  // as many runs as the limit: no next page
    exact_page.workflow = "beta";
    exact_page.limit = 2;
    auto beta = RunSync(store_->ListRuns(exact_page));
    ASSERT_TRUE(beta.has_value());
    EXPECT_EQ(RunIds(beta->runs), (std::vector<std::string>{RunIdFor(5), RunIdFor(2)}));
    EXPECT_EQ(beta->next_cursor, "");
}

TEST_P(StoreConformanceTest, DefinitionSnapshotIsStoredOncePerSha) {
    TestChain first(RunIdFor(1));
    NewRun run = MakeNewRun(first, "wf");
    run.definition_sha256 = "abc123";
    run.definition_json = std::make_shared<const std::string>("{\"version\":1}");
    ASSERT_TRUE(RunSync(store_->CreateRun(run)).has_value());

    TestChain second(RunIdFor(2));
    NewRun same = MakeNewRun(second, "wf");
    same.definition_sha256 = "abc123";
    same.definition_json = std::make_shared<const std::string>("{\"ignored\":true}");
    ASSERT_TRUE(RunSync(store_->CreateRun(same)).has_value());

    auto definition = RunSync(store_->GetDefinition("abc123"));
    ASSERT_TRUE(definition.has_value());
    EXPECT_EQ(*definition, "{\"version\":1}");
    EXPECT_EQ(CodeOf(RunSync(store_->GetDefinition("abc124"))), ErrorCode::kNotFound);
}

TEST_P(StoreConformanceTest, LeasesAreExclusiveUntilReleasedOrExpired) {
    TestChain run = Create(1);
    TestChain other = Create(2);
    std::string id = run.run_id();
    SystemTime now = Now();

    EXPECT_EQ(RunSync(store_->TryLease(id, "worker-a", now + hours(1))), true);
    EXPECT_EQ(RunSync(store_->TryLease(id, "worker-b", now + hours(1))), false);
    EXPECT_EQ(RunSync(store_->TryLease(id, "worker-a", now + hours(2))), true);  // holder
    auto record = RunSync(store_->GetRun(id));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->owner, "worker-a");
    EXPECT_EQ(record->lease_until, now + hours(2));

    EXPECT_EQ(RunSync(store_->TryLease(other.run_id(), "worker-b", now + hours(1))), true);
    ASSERT_TRUE(RunSync(store_->RenewLeases("worker-a", now + hours(3))));
    record = RunSync(store_->GetRun(id));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->lease_until, now + hours(3));
    auto untouched = RunSync(store_->GetRun(other.run_id()));
    ASSERT_TRUE(untouched.has_value());
    EXPECT_EQ(untouched->owner, "worker-b");
    EXPECT_EQ(untouched->lease_until, now + hours(1));

    // Only the holder can release.
    ASSERT_TRUE(RunSync(store_->ReleaseLease(id, "worker-b")));
    record = RunSync(store_->GetRun(id));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->owner, "worker-a");
    ASSERT_TRUE(RunSync(store_->ReleaseLease(id, "worker-a")));
    record = RunSync(store_->GetRun(id));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->owner, "");
    EXPECT_EQ(RunSync(store_->TryLease(id, "worker-b", now + hours(1))), true);

    // An expired lease is free for anyone.
    EXPECT_EQ(RunSync(store_->TryLease(id, "worker-b", now - seconds(1))), true);
    EXPECT_EQ(RunSync(store_->TryLease(id, "worker-c", now + hours(1))), true);
    record = RunSync(store_->GetRun(id));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->owner, "worker-c");

    ASSERT_TRUE(RunSync(store_->ReleaseLease(RunIdFor(99), "worker-c")));  // no such run: no-op
}

TEST_P(StoreConformanceTest, CreateRunCanLeaseTheNewRun) {
    TestChain chain(RunIdFor(1));
    NewRun run = MakeNewRun(chain);
    run.owner = "worker-a";
    run.lease_until = Now() + hours(1);
    ASSERT_TRUE(RunSync(store_->CreateRun(run)).has_value());
    auto record = RunSync(store_->GetRun(chain.run_id()));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->owner, "worker-a");
    EXPECT_EQ(record->lease_until, run.lease_until);
    EXPECT_EQ(RunSync(store_->TryLease(chain.run_id(), "worker-b", Now() + hours(1))), false);
}

TEST_P(StoreConformanceTest, FindClaimableSkipsLiveLeasesOldestFirst) {
    SystemTime now = Now();
    Create(1, "wf", RunStatus::kPending);
    Create(2, "wf", RunStatus::kRunning);
    Create(3, "wf", RunStatus::kRunning);
    Create(4, "wf", RunStatus::kCompleted);
    Create(5, "wf", RunStatus::kPaused);
    Create(6, "wf", RunStatus::kWaiting);
    ASSERT_EQ(RunSync(store_->TryLease(RunIdFor(2), "worker-a", now + hours(1))), true);
    ASSERT_EQ(RunSync(store_->TryLease(RunIdFor(3), "worker-a", now - seconds(5))), true);

    std::vector<RunStatus> active = {RunStatus::kPending, RunStatus::kRunning, RunStatus::kWaiting};
    auto claimable = RunSync(store_->FindClaimable(active, now, 10));
    ASSERT_TRUE(claimable.has_value());
    EXPECT_EQ(RunIds(*claimable),
              (std::vector<std::string>{RunIdFor(1), RunIdFor(3), RunIdFor(6)}));

    auto limited = RunSync(store_->FindClaimable(active, now, 2));
    ASSERT_TRUE(limited.has_value());
    EXPECT_EQ(RunIds(*limited), (std::vector<std::string>{RunIdFor(1), RunIdFor(3)}));

    std::vector<RunStatus> paused = {RunStatus::kPaused};
    auto only_paused = RunSync(store_->FindClaimable(paused, now, 10));
    ASSERT_TRUE(only_paused.has_value());
    EXPECT_EQ(RunIds(*only_paused), (std::vector<std::string>{RunIdFor(5)}));

    // Later, run 2's lease has expired too.
    auto later = RunSync(store_->FindClaimable(active, now + hours(2), 10));
    ASSERT_TRUE(later.has_value());
    EXPECT_EQ(RunIds(*later),
              (std::vector<std::string>{RunIdFor(1), RunIdFor(2), RunIdFor(3), RunIdFor(6)}));
    // Finding does not lease.
    auto record = RunSync(store_->GetRun(RunIdFor(1)));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->owner, "");
}

TEST_P(StoreConformanceTest, ControlRequestsAreTakenOnce) {
    TestChain a = Create(1);
    TestChain b = Create(2);
    ControlRequest cancel;
    cancel.run_id = a.run_id();
    cancel.action = ControlAction::kCancel;
    cancel.reason = "operator";
    cancel.actor = "alice";
    ControlRequest pause_b;
    pause_b.run_id = b.run_id();
    pause_b.action = ControlAction::kPause;
    pause_b.reason = "maintenance";
    pause_b.actor = "bob";
    ControlRequest pause_a = pause_b;
    pause_a.run_id = a.run_id();
    ASSERT_TRUE(RunSync(store_->RequestControl(cancel)));
    ASSERT_TRUE(RunSync(store_->RequestControl(pause_b)));
    ASSERT_TRUE(RunSync(store_->RequestControl(pause_a)));

    std::vector<std::string> only_a = {a.run_id()};
    auto taken = RunSync(store_->TakeControlRequests(only_a));
    ASSERT_TRUE(taken.has_value());
    ASSERT_EQ(taken->size(), 2u);
    EXPECT_EQ((*taken)[0].run_id, a.run_id());
    EXPECT_EQ((*taken)[0].action, ControlAction::kCancel);
    EXPECT_EQ((*taken)[0].reason, "operator");
    EXPECT_EQ((*taken)[0].actor, "alice");
    EXPECT_EQ((*taken)[1].action, ControlAction::kPause);

    auto again = RunSync(store_->TakeControlRequests(only_a));
    ASSERT_TRUE(again.has_value());
    EXPECT_TRUE(again->empty());

    std::vector<std::string> both = {a.run_id(), b.run_id()};
    auto rest = RunSync(store_->TakeControlRequests(both));
    ASSERT_TRUE(rest.has_value());
    ASSERT_EQ(rest->size(), 1u);
    EXPECT_EQ((*rest)[0].run_id, b.run_id());
    EXPECT_EQ((*rest)[0].action, ControlAction::kPause);
    EXPECT_EQ((*rest)[0].actor, "bob");

    auto none = RunSync(store_->TakeControlRequests(std::vector<std::string>()));
    ASSERT_TRUE(none.has_value());
    EXPECT_TRUE(none->empty());
}

TEST_P(StoreConformanceTest, PruneKeepsNewestTerminalRunsAndNeverActiveOnes) {
    Create(1, "wf", RunStatus::kCompleted, "key-1");
    Create(2, "wf", RunStatus::kPending);
    Create(3, "wf", RunStatus::kFailed);
    Create(4, "wf", RunStatus::kRunning);
    Create(5, "wf", RunStatus::kCancelled);
    Create(6, "wf", RunStatus::kPaused);
    Create(7, "wf", RunStatus::kCompleted);
    Create(8, "wf", RunStatus::kWaiting);
    Create(9, "wf", RunStatus::kNeedsReconciliation);

    auto pruned = RunSync(store_->PruneTerminalRuns(1));
    ASSERT_TRUE(pruned.has_value());
    EXPECT_EQ(*pruned, 3);
    auto left = RunSync(store_->ListRuns(RunFilter{}));
    ASSERT_TRUE(left.has_value());
    EXPECT_EQ(RunIds(left->runs),
              (std::vector<std::string>{RunIdFor(9), RunIdFor(8), RunIdFor(7), RunIdFor(6),
                                        RunIdFor(4), RunIdFor(2)}));
    EXPECT_EQ(CodeOf(RunSync(store_->ReadEvents(RunIdFor(1), EventQuery{}))), ErrorCode::kNotFound);
    EXPECT_EQ(CodeOf(RunSync(store_->FindByIdempotencyKey("key-1"))), ErrorCode::kNotFound);

    pruned = RunSync(store_->PruneTerminalRuns(0));
    ASSERT_TRUE(pruned.has_value());
    EXPECT_EQ(*pruned, 1);
    pruned = RunSync(store_->PruneTerminalRuns(0));
    ASSERT_TRUE(pruned.has_value());
    EXPECT_EQ(*pruned, 0);
    left = RunSync(store_->ListRuns(RunFilter{}));
    ASSERT_TRUE(left.has_value());
    EXPECT_EQ(left->runs.size(), 5u);
    // A pruned run's id and key can be used again.
    Create(1, "wf", RunStatus::kPending, "key-1");
    EXPECT_EQ(RunSync(store_->FindByIdempotencyKey("key-1")), RunIdFor(1));
}

TEST_P(StoreConformanceTest, CheckpointBatchesChainAndRaiseEachRunsCheckpointSeq) {
    TestChain a = Create(1, "wf", RunStatus::kRunning);
    TestChain b = Create(2, "wf", RunStatus::kRunning);
    ASSERT_TRUE(Append(a, 3, RunStatus::kCompleted).has_value());
    ASSERT_TRUE(Append(b, 2, RunStatus::kWaiting).has_value());
    auto none = RunSync(store_->LastCheckpointBatch());
    ASSERT_TRUE(none.has_value());
    EXPECT_FALSE(none->has_value());
    // Both stops are unsigned, oldest first; a cursor skips past a run.
    auto unsigned_stops = RunSync(store_->FindUnsignedStops("", 10));
    ASSERT_TRUE(unsigned_stops.has_value());
    EXPECT_EQ(RunIds(*unsigned_stops), (std::vector<std::string>{RunIdFor(1), RunIdFor(2)}));
    unsigned_stops = RunSync(store_->FindUnsignedStops(RunIdFor(1), 10));
    EXPECT_EQ(RunIds(*unsigned_stops), (std::vector<std::string>{RunIdFor(2)}));

    ledger::CheckpointBatch first;
    first.batch_seq = 1;
    first.prev_hash = std::string(ledger::kGenesisHash);
    first.key_id = "0123456789abcdef";
    first.signed_at = fixtures::TimeAt(10);
    first.signature = std::string(128, '5');
    first.leaves = {{a.run_id(), 4, a.head().hash},
                    {b.run_id(), 1, "not-checked-by-the-store"},
                    {"no-such-run", 7, std::string(64, '7')}};
    first.root = ledger::ComputeRoot(first.leaves);
    ASSERT_TRUE(RunSync(store_->AppendCheckpointBatch(first)).has_value());
    // Not the next in the log: refused, nothing written.
    ledger::CheckpointBatch stale = first;
    stale.leaves = {{b.run_id(), 3, b.head().hash}};
    EXPECT_EQ(CodeOf(RunSync(store_->AppendCheckpointBatch(stale))), ErrorCode::kAborted);
    ledger::CheckpointBatch second = stale;
    second.batch_seq = 2;
    second.prev_hash = ledger::BatchHash(first);
    second.recovered = true;
    ASSERT_TRUE(RunSync(store_->AppendCheckpointBatch(second)).has_value());

    auto last = RunSync(store_->LastCheckpointBatch());
    ASSERT_TRUE(last.has_value() && last->has_value());
    EXPECT_EQ((*last)->batch_seq, 2);
    EXPECT_TRUE((*last)->recovered);
    EXPECT_EQ((*last)->leaves, second.leaves);
    auto batches = RunSync(store_->ReadCheckpointBatches(1, 10));
    ASSERT_TRUE(batches.has_value());
    ASSERT_EQ(batches->size(), 2u);
    EXPECT_EQ(ledger::BatchHash((*batches)[0]), ledger::BatchHash(first));
    EXPECT_EQ((*batches)[0].leaves, first.leaves);  // the missing run's leaf is kept in the log
    EXPECT_EQ((*batches)[0].signed_at, fixtures::TimeAt(10));
    EXPECT_EQ(RunSync(store_->ReadCheckpointBatches(2, 10))->size(), 1u);

    auto rows = RunSync(store_->ReadCheckpoints(b.run_id()));
    ASSERT_TRUE(rows.has_value());
    ASSERT_EQ(rows->size(), 2u);
    EXPECT_EQ((*rows)[0].seq, 1);
    EXPECT_EQ((*rows)[0].batch_seq, 1);
    EXPECT_EQ((*rows)[0].leaf_index, 1);
    EXPECT_EQ((*rows)[1].seq, 3);
    EXPECT_EQ((*rows)[1].batch_seq, 2);
    EXPECT_EQ((*rows)[1].head, b.head().hash);
    EXPECT_TRUE(RunSync(store_->ReadCheckpoints("no-such-run"))->empty());
    EXPECT_EQ(RunSync(store_->GetRun(a.run_id()))->checkpoint_seq, 4);
    EXPECT_EQ(RunSync(store_->GetRun(b.run_id()))->checkpoint_seq, 3);
    EXPECT_TRUE(RunSync(store_->FindUnsignedStops("", 10))->empty());

    // Pruning a run drops its rows; the signed log keeps its leaves.
    ASSERT_TRUE(RunSync(store_->PruneTerminalRuns(0)).has_value());
    EXPECT_TRUE(RunSync(store_->ReadCheckpoints(a.run_id()))->empty());
    EXPECT_EQ(RunSync(store_->ReadCheckpointBatches(1, 10))->size(), 2u);
}

// Appends `count` single-event batches to `chain`'s run, one after another.
Awaitable<void> AppendMany(std::shared_ptr<Store> store, TestChain chain, int count,
                           Status* outcome) {
    for (int i = 0; i < count; ++i) {
        auto events = chain.NodeEvents(1);
        auto appended =
            co_await store->AppendEvents(chain.run_id(), std::move(events), RunStatus::kRunning);
        if (!appended) {
            *outcome = appended;
            co_return;
        }
    }
}

TEST_P(StoreConformanceTest, ConcurrentAppendsToManyRunsAllLand) {
    constexpr int kRuns = 24;
    constexpr int kAppends = 20;
    std::vector<TestChain> chains;
    for (int r = 1; r <= kRuns; ++r) chains.push_back(Create(r));

    std::vector<Status> outcomes(kRuns);
    {
        asio::thread_pool callers(3);
        for (int r = 0; r < kRuns; ++r) {
            asio::co_spawn(callers, AppendMany(store_, chains[r], kAppends, &outcomes[r]),
                           asio::detached);
        }
        callers.join();
    }
    for (int r = 0; r < kRuns; ++r) {
        ASSERT_TRUE(outcomes[r]) << outcomes[r].error().ToString();
        auto events = RunSync(store_->ReadEvents(chains[r].run_id(), EventQuery{}));
        ASSERT_TRUE(events.has_value());
        ASSERT_EQ(events->size(), size_t(1 + kAppends));
        auto record = RunSync(store_->GetRun(chains[r].run_id()));
        ASSERT_TRUE(record.has_value());
        EXPECT_EQ(record->head.seq, 1 + kAppends);
        auto report = ledger::VerifyChain(chains[r].run_id(), Lines(*events), record->head);
        EXPECT_TRUE(report.ok()) << report.issue->reason;
    }
}

Awaitable<Status> AppendOnce(std::shared_ptr<Store> store, std::string run_id,
                             std::vector<ledger::Event> events) {
    co_return co_await store->AppendEvents(std::move(run_id), std::move(events),
                                           RunStatus::kRunning);
}

TEST_P(StoreConformanceTest, AppendsToOneRunApplyInTheOrderMade) {
    TestChain chain = Create(1);
    asio::io_context io;
    std::vector<std::optional<Status>> results(4);
    // Four appends in flight at once, each continuing the one before.
    for (auto& result : results) {
        fixtures::Spawn(io, AppendOnce(store_, chain.run_id(), chain.NodeEvents(1)), &result);
    }
    io.run();
    for (const auto& result : results) {
        ASSERT_TRUE(result.has_value());
        EXPECT_TRUE(*result) << result->error().ToString();
    }
    auto events = RunSync(store_->ReadEvents(chain.run_id(), EventQuery{}));
    ASSERT_TRUE(events.has_value());
    EXPECT_EQ(events->size(), 5u);
    EXPECT_TRUE(ledger::VerifyChain(chain.run_id(), Lines(*events), chain.head()).ok());
}

Awaitable<bool> ResumesOnTheCallersThread(std::shared_ptr<Store> store, TestChain chain) {
    auto caller = std::this_thread::get_id();
    auto events = chain.NodeEvents(1);
    auto appended =
        co_await store->AppendEvents(chain.run_id(), std::move(events), RunStatus::kRunning);
    bool same = appended.has_value() && std::this_thread::get_id() == caller;
    auto record = co_await store->GetRun(chain.run_id());
    same = same && record.has_value() && std::this_thread::get_id() == caller;
    co_return same;
}

TEST_P(StoreConformanceTest, CompletesOnTheCallersExecutor) {
    TestChain chain = Create(1);
    EXPECT_TRUE(RunSync(ResumesOnTheCallersThread(store_, chain)));
}

std::string FactoryName(const ::testing::TestParamInfo<StoreFactory>& factory) {
    return factory.param.name;
}

// "store/" in every name, so `ctest -R store` selects this binary's tests.
INSTANTIATE_TEST_SUITE_P(store, StoreConformanceTest, ::testing::ValuesIn(Factories()),
                         FactoryName);

}  // namespace
}  // namespace strowger::store
