// SQLite-only behaviour: persistence across reopen, group commit, poisoning, dead-owner
// leases, crash durability, schema versions and store URLs.
#include <gtest/gtest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ledger/chain.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store_test_util.hpp"
#include "testing/test_util.hpp"

// What schema version 4 ("daemon state") and 5 (standing agents and cron jobs) added, to
// make files of earlier versions.
#define DROP_DAEMON_STATE                                                         \
    "DROP TABLE workflows; DROP TABLE workflow_versions; DROP TABLE api_tokens; " \
    "DROP TABLE retention_policies; DROP TABLE run_annotations; " DROP_AUTOMATION
// What schema version 5 ("automation") added.
#define DROP_AUTOMATION                                                                       \
    "DROP TABLE triggers; DROP TABLE trigger_fires; DROP TABLE memory; DROP TABLE webhooks; " \
    "DROP TABLE webhook_deliveries; " DROP_AGENTS_CRON
// What schema version 6 (standing agents and cron jobs) added.
#define DROP_AGENTS_CRON                                             \
    "DROP TABLE agent_sessions; DROP TABLE agent_session_messages; " \
    "DROP TABLE agent_turns; DROP TABLE cron_jobs; DROP TABLE cron_fires; "

namespace strowger::store {

void PrintTo(SqliteSync sync, std::ostream* out) {
    *out << (sync == SqliteSync::kFull ? "full" : "normal");
}

namespace {

using fixtures::CodeOf;
using fixtures::Lines;
using fixtures::MakeNewRun;
using fixtures::RunIdFor;
using fixtures::Spawn;
using fixtures::TestChain;
using std::chrono::hours;
using std::chrono::seconds;
using strowger::testing::RunSync;

SystemTime WallNow() {
    return std::chrono::system_clock::now();
}

// Runs SQL on the file directly, as another program would.
void ExecRaw(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    EXPECT_EQ(rc, SQLITE_OK) << (message ? message : "");
    sqlite3_free(message);
    sqlite3_close(db);
}

// The first column of the first row of `sql`, as an integer (-1 if none).
int64_t QueryInt(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    int64_t value = -1;
    if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
        sqlite3_stmt* statement = nullptr;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
            sqlite3_step(statement) == SQLITE_ROW) {
            value = sqlite3_column_int64(statement, 0);
        }
        sqlite3_finalize(statement);
    }
    sqlite3_close(db);
    return value;
}

std::string IntegrityCheck(const std::string& path) {
    sqlite3* db = nullptr;
    std::string result = "cannot open";
    if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
        sqlite3_stmt* statement = nullptr;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &statement, nullptr) ==
                SQLITE_OK &&
            sqlite3_step(statement) == SQLITE_ROW) {
            result = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
        }
        sqlite3_finalize(statement);
    }
    sqlite3_close(db);
    return result;
}

// Every SQLite test runs with synchronous=normal and with synchronous=full.
class SqliteStoreTest : public ::testing::TestWithParam<SqliteSync> {
  protected:
    void SetUp() override { Open(); }

    SqliteOptions Options() const {
        SqliteOptions options;
        options.synchronous = GetParam();
        return options;
    }

    void Open() { Open(Options()); }
    void Open(SqliteOptions options) {
        store_.reset();
        auto opened = SqliteStore::OpenBlocking(path_, options);
        ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
        store_ = *opened;
    }

    TestChain Create(int n, RunStatus status = RunStatus::kPending, std::string key = "") {
        TestChain chain(RunIdFor(n));
        auto created = RunSync(store_->CreateRun(MakeNewRun(chain, "wf", key, status)));
        EXPECT_TRUE(created.has_value()) << created.error().ToString();
        return chain;
    }

    strowger::testing::TempDir dir_;
    std::string path_ = (dir_.path() / "store.db").string();
    std::shared_ptr<SqliteStore> store_;
};

TEST_P(SqliteStoreTest, ReopenKeepsEverything) {
    TestChain first = Create(1, RunStatus::kPending, "key-1");
    TestChain second = Create(2);
    ASSERT_TRUE(
        RunSync(store_->AppendEvents(second.run_id(), second.NodeEvents(3), RunStatus::kWaiting)));
    SystemTime until = std::chrono::floor<std::chrono::seconds>(WallNow()) + hours(1);
    ASSERT_EQ(RunSync(store_->TryLease(second.run_id(), "worker-a", until)), true);
    ControlRequest cancel;
    cancel.run_id = first.run_id();
    cancel.reason = "operator";
    ASSERT_TRUE(RunSync(store_->RequestControl(cancel)));
    auto before = RunSync(store_->ReadEvents(second.run_id(), EventQuery{}));
    ASSERT_TRUE(before.has_value());

    store_->CloseBlocking();
    EXPECT_EQ(CodeOf(RunSync(store_->GetRun(first.run_id()))), ErrorCode::kFailedPrecondition);
    EXPECT_EQ(CodeOf(RunSync(store_->AppendEvents(second.run_id(), second.NodeEvents(1),
                                                  RunStatus::kRunning))),
              ErrorCode::kFailedPrecondition);
    Open();

    auto after = RunSync(store_->ReadEvents(second.run_id(), EventQuery{}));
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(Lines(*after), Lines(*before));
    auto record = RunSync(store_->GetRun(second.run_id()));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->status, RunStatus::kWaiting);
    EXPECT_EQ(record->head.seq, 4);
    EXPECT_EQ(record->owner, "worker-a");
    EXPECT_EQ(record->lease_until, until);
    EXPECT_EQ(RunSync(store_->FindByIdempotencyKey("key-1")), first.run_id());
    EXPECT_EQ(RunSync(store_->GetDefinition("sha256-of-wf")), "{\"name\":\"wf\"}");
    std::vector<std::string> ids = {first.run_id()};
    auto requests = RunSync(store_->TakeControlRequests(ids));
    ASSERT_TRUE(requests.has_value());
    ASSERT_EQ(requests->size(), 1u);
    EXPECT_EQ((*requests)[0].reason, "operator");
    // The chain continues where it stopped (the chain that was refused above is discarded).
    TestChain resumed(second.run_id());
    resumed.NodeEvents(4);
    ASSERT_TRUE(
        RunSync(store_->AppendEvents(second.run_id(), resumed.NodeEvents(1), RunStatus::kRunning)));
}

TEST_P(SqliteStoreTest, HeldRequestsCommitInOneTransaction) {
    constexpr int kRuns = 50;
    std::vector<TestChain> chains;
    for (int r = 1; r <= kRuns; ++r) chains.push_back(Create(r));
    SqliteStats before = store_->stats();

    asio::io_context io;
    std::vector<std::optional<Status>> results(kRuns);
    store_->HoldWriterForTest();
    for (int r = 0; r < kRuns; ++r) {
        Spawn(
            io,
            store_->AppendEvents(chains[r].run_id(), chains[r].NodeEvents(1), RunStatus::kRunning),
            &results[r]);
    }
    io.poll();  // every coroutine has now made its request
    EXPECT_EQ(store_->stats().queued, kRuns);
    store_->ReleaseWriterForTest();
    io.run();

    for (const auto& result : results) {
        ASSERT_TRUE(result.has_value());
        EXPECT_TRUE(*result) << result->error().ToString();
    }
    SqliteStats after = store_->stats();
    EXPECT_EQ(after.write_requests - before.write_requests, kRuns);
    EXPECT_EQ(after.transactions - before.transactions, 1);
    EXPECT_GE(after.largest_batch, kRuns);
    EXPECT_EQ(after.queued, 0);
}

// Appends once and reports whether it resumed on `io`'s thread.
Awaitable<bool> AppendAndCheckWhere(std::shared_ptr<Store> store, TestChain chain,
                                    asio::io_context& io) {
    auto appended =
        co_await store->AppendEvents(chain.run_id(), chain.NodeEvents(1), RunStatus::kRunning);
    co_return appended.has_value() && io.get_executor().running_in_this_thread();
}

TEST_P(SqliteStoreTest, ABatchsWaitersResumeEachOnItsOwnExecutor) {
    // A batch's results are handed back with one post per run of waiters on the same
    // executor; waiters on other executors (in between, too) still resume on their own.
    constexpr int kRuns = 40;
    std::vector<TestChain> chains;
    for (int r = 1; r <= kRuns; ++r) chains.push_back(Create(r));
    asio::io_context first;
    asio::io_context second;
    std::vector<std::optional<bool>> results(kRuns);
    store_->HoldWriterForTest();
    for (int r = 0; r < kRuns; ++r) {
        // Runs of several on one, then the other: A A A B B A A A B B ...
        asio::io_context& io = r % 5 < 3 ? first : second;
        Spawn(io, AppendAndCheckWhere(store_, chains[r], io), &results[r]);
    }
    first.poll();
    second.poll();
    EXPECT_EQ(store_->stats().queued, kRuns);
    store_->ReleaseWriterForTest();
    std::thread other([&] { second.run(); });
    first.run();
    other.join();
    for (int r = 0; r < kRuns; ++r) {
        ASSERT_TRUE(results[r].has_value()) << r;
        EXPECT_TRUE(*results[r]) << "append " << r << " failed or resumed elsewhere";
    }
    for (int r = 0; r < kRuns; ++r) {
        auto events = RunSync(store_->ReadEvents(chains[r].run_id(), EventQuery{}));
        ASSERT_TRUE(events);
        // run.created, then the one appended event.
        EXPECT_EQ(events->size(), static_cast<size_t>(chains[r].head().seq) + 1) << r;
    }
}

Awaitable<Status> AppendMany(std::shared_ptr<Store> store, TestChain chain, int count) {
    for (int i = 0; i < count; ++i) {
        auto events = chain.NodeEvents(1);
        auto appended =
            co_await store->AppendEvents(chain.run_id(), std::move(events), RunStatus::kRunning);
        if (!appended) co_return appended;
    }
    co_return OkStatus();
}

TEST_P(SqliteStoreTest, ConcurrentRunsShareCommits) {
    // With synchronous=full every transaction costs an fsync; concurrent runs must share them.
    constexpr int kRuns = 32;
    constexpr int kAppends = 25;
    std::vector<TestChain> chains;
    for (int r = 1; r <= kRuns; ++r) chains.push_back(Create(r));
    SqliteStats before = store_->stats();

    asio::io_context io;
    std::vector<std::optional<Status>> results(kRuns);
    auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < kRuns; ++r) Spawn(io, AppendMany(store_, chains[r], kAppends), &results[r]);
    io.run();
    auto elapsed = std::chrono::steady_clock::now() - start;

    for (const auto& result : results) {
        ASSERT_TRUE(result.has_value());
        EXPECT_TRUE(*result) << result->error().ToString();
    }
    SqliteStats after = store_->stats();
    int64_t requests = after.write_requests - before.write_requests;
    int64_t transactions = after.transactions - before.transactions;
    EXPECT_EQ(requests, kRuns * kAppends);
    EXPECT_LT(transactions, requests);
    RecordProperty("requests", std::to_string(requests));
    RecordProperty("transactions", std::to_string(transactions));
    std::printf(
        "[ stats    ] synchronous=%s: %lld appends from %d runs in %lld transactions, "
        "%.1f ms, largest batch %lld\n",
        GetParam() == SqliteSync::kFull ? "full" : "normal", static_cast<long long>(requests),
        kRuns, static_cast<long long>(transactions),
        std::chrono::duration<double, std::milli>(elapsed).count(),
        static_cast<long long>(after.largest_batch));
}

TEST_P(SqliteStoreTest, OneFailingRequestDoesNotFailItsBatch) {
    TestChain a = Create(1);
    TestChain b = Create(2);
    TestChain c = Create(3);
    TestChain stale_b = b;
    ASSERT_TRUE(RunSync(store_->AppendEvents(b.run_id(), b.NodeEvents(1), RunStatus::kRunning)));
    TestChain duplicate(RunIdFor(1));
    TestChain fresh(RunIdFor(4));
    SqliteStats before = store_->stats();

    asio::io_context io;
    std::optional<Status> good_a, stale, unknown, good_c;
    std::optional<Result<CreateRunResult>> dup, created;
    std::optional<Result<bool>> lease_unknown;
    store_->HoldWriterForTest();
    Spawn(io, store_->AppendEvents(a.run_id(), a.NodeEvents(2), RunStatus::kRunning), &good_a);
    Spawn(io, store_->AppendEvents(b.run_id(), stale_b.NodeEvents(1), RunStatus::kFailed), &stale);
    TestChain ghost(RunIdFor(99));
    Spawn(io, store_->AppendEvents(ghost.run_id(), ghost.NodeEvents(1), RunStatus::kRunning),
          &unknown);
    Spawn(io, store_->CreateRun(MakeNewRun(duplicate, "dup")), &dup);
    Spawn(io, store_->TryLease(RunIdFor(98), "worker", WallNow() + hours(1)), &lease_unknown);
    Spawn(io, store_->AppendEvents(c.run_id(), c.NodeEvents(1), RunStatus::kCompleted), &good_c);
    Spawn(io, store_->CreateRun(MakeNewRun(fresh, "fresh")), &created);
    io.poll();
    ASSERT_EQ(store_->stats().queued, 7);
    store_->ReleaseWriterForTest();
    io.run();

    EXPECT_TRUE(*good_a);
    EXPECT_EQ(CodeOf(*stale), ErrorCode::kAborted);
    EXPECT_EQ(CodeOf(*unknown), ErrorCode::kNotFound);
    EXPECT_EQ(CodeOf(*dup), ErrorCode::kAlreadyExists);
    EXPECT_EQ(CodeOf(*lease_unknown), ErrorCode::kNotFound);
    EXPECT_TRUE(*good_c);
    ASSERT_TRUE(created->has_value());
    EXPECT_TRUE((*created)->created);
    EXPECT_EQ(store_->stats().transactions - before.transactions, 1);

    auto events_a = RunSync(store_->ReadEvents(a.run_id(), EventQuery{}));
    ASSERT_TRUE(events_a.has_value());
    EXPECT_TRUE(ledger::VerifyChain(a.run_id(), Lines(*events_a), a.head()).ok());
    EXPECT_EQ(events_a->size(), 3u);
    auto record_b = RunSync(store_->GetRun(b.run_id()));
    ASSERT_TRUE(record_b.has_value());
    EXPECT_EQ(record_b->head.seq, 2);
    EXPECT_EQ(record_b->status, RunStatus::kRunning);
    auto record_c = RunSync(store_->GetRun(c.run_id()));
    ASSERT_TRUE(record_c.has_value());
    EXPECT_EQ(record_c->status, RunStatus::kCompleted);
    auto record_1 = RunSync(store_->GetRun(RunIdFor(1)));
    ASSERT_TRUE(record_1.has_value());
    EXPECT_EQ(record_1->workflow, "wf");
    EXPECT_TRUE(RunSync(store_->GetRun(fresh.run_id())).has_value());
}

TEST_P(SqliteStoreTest, FailedCommitPoisonsTheStoreUntilReopened) {
    TestChain a = Create(1);
    TestChain b = Create(2);
    TestChain stale_b = b;
    ASSERT_TRUE(RunSync(store_->AppendEvents(b.run_id(), b.NodeEvents(1), RunStatus::kRunning)));

    // One batch: a good append and one that fails on its own, then a failing COMMIT.
    TestChain lost_a = a;
    asio::io_context io;
    std::optional<Status> good, stale;
    store_->HoldWriterForTest();
    Spawn(io, store_->AppendEvents(a.run_id(), lost_a.NodeEvents(1), RunStatus::kRunning), &good);
    Spawn(io, store_->AppendEvents(b.run_id(), stale_b.NodeEvents(1), RunStatus::kRunning), &stale);
    io.poll();
    store_->InjectCommitFailureForTest();
    store_->ReleaseWriterForTest();
    io.run();
    EXPECT_EQ(CodeOf(*good), ErrorCode::kDataLoss);
    EXPECT_NE(good->error().message().find("store must be reopened"), std::string::npos)
        << good->error().message();
    EXPECT_EQ(CodeOf(*stale), ErrorCode::kAborted);

    // Every later write is refused, whatever it is.
    auto again = RunSync(store_->AppendEvents(a.run_id(), a.NodeEvents(1), RunStatus::kRunning));
    EXPECT_EQ(CodeOf(again), ErrorCode::kDataLoss);
    EXPECT_NE(again.error().message().find("store must be reopened"), std::string::npos);
    TestChain other(RunIdFor(3));
    EXPECT_EQ(CodeOf(RunSync(store_->CreateRun(MakeNewRun(other)))), ErrorCode::kDataLoss);
    EXPECT_EQ(CodeOf(RunSync(store_->TryLease(a.run_id(), "w", WallNow() + hours(1)))),
              ErrorCode::kDataLoss);
    EXPECT_EQ(CodeOf(RunSync(store_->PruneTerminalRuns(0))), ErrorCode::kDataLoss);

    // Reads still work, and show the rolled-back batch did not land.
    auto record = RunSync(store_->GetRun(a.run_id()));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->head.seq, 1);

    Open();  // a new store on the same file is healthy
    auto events = RunSync(store_->ReadEvents(a.run_id(), EventQuery{}));
    ASSERT_TRUE(events.has_value());
    ASSERT_EQ(events->size(), 1u);
    TestChain retry(a.run_id());
    MakeNewRun(retry);  // the same run.created event Create() sealed: the stored head
    EXPECT_TRUE(
        RunSync(store_->AppendEvents(a.run_id(), retry.NodeEvents(2), RunStatus::kRunning)));
}

TEST_P(SqliteStoreTest, TwoStoresShareOneFile) {
    // As `strowger serve` and a `strowger run` on the same machine: two writers, one file.
    auto second = SqliteStore::OpenBlocking(path_, Options());
    ASSERT_TRUE(second.has_value()) << second.error().ToString();
    constexpr int kRunsEach = 8;
    constexpr int kAppends = 10;
    std::vector<TestChain> chains;
    for (int r = 1; r <= 2 * kRunsEach; ++r) chains.push_back(Create(r));

    asio::io_context io;
    std::vector<std::optional<Status>> results(chains.size());
    for (size_t i = 0; i < chains.size(); ++i) {
        std::shared_ptr<Store> store = i % 2 == 0 ? std::shared_ptr<Store>(store_) : *second;
        Spawn(io, AppendMany(store, chains[i], kAppends), &results[i]);
    }
    io.run();
    for (const auto& result : results) {
        ASSERT_TRUE(result.has_value());
        EXPECT_TRUE(*result) << result->error().ToString();
    }
    for (const auto& chain : chains) {
        auto record = RunSync((*second)->GetRun(chain.run_id()));
        ASSERT_TRUE(record.has_value());
        EXPECT_EQ(record->head.seq, 1 + kAppends);
        auto events = RunSync(store_->ReadEvents(chain.run_id(), EventQuery{}));
        ASSERT_TRUE(events.has_value());
        EXPECT_TRUE(ledger::VerifyChain(chain.run_id(), Lines(*events), record->head).ok());
    }
    // A lease taken through one is seen by the other.
    SystemTime until = WallNow() + hours(1);
    EXPECT_EQ(RunSync(store_->TryLease(chains[0].run_id(), "worker-a", until)), true);
    EXPECT_EQ(RunSync((*second)->TryLease(chains[0].run_id(), "worker-b", until)), false);
}

TEST_P(SqliteStoreTest, LeaseOfADeadLocalProcessIsClaimableAtOnce) {
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) _exit(0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);  // reaped: the pid no longer exists
    std::string host = LocalHostName();
    ASSERT_FALSE(host.empty());
    std::string dead = host + ":" + std::to_string(child) + ":42";
    std::string alive = host + ":" + std::to_string(getpid()) + ":7";
    std::string remote = "some-other-host.example:" + std::to_string(child) + ":42";
    EXPECT_TRUE(IsDeadLocalOwner(dead, host));
    EXPECT_FALSE(IsDeadLocalOwner(alive, host));
    EXPECT_FALSE(IsDeadLocalOwner(remote, host));
    EXPECT_FALSE(IsDeadLocalOwner("worker-a", host));
    EXPECT_FALSE(IsDeadLocalOwner(host + ":notapid:1", host));
    EXPECT_FALSE(IsDeadLocalOwner(host + ":" + std::to_string(child) + ":", host));

    SystemTime until = WallNow() + hours(1);
    for (int n = 1; n <= 3; ++n) {
        TestChain chain(RunIdFor(n));
        NewRun run = MakeNewRun(chain, "wf", "", RunStatus::kRunning);
        run.owner = n == 1 ? dead : n == 2 ? alive : remote;
        run.lease_until = until;
        ASSERT_TRUE(RunSync(store_->CreateRun(run)).has_value());
    }
    std::vector<RunStatus> running = {RunStatus::kRunning};
    auto claimable = RunSync(store_->FindClaimable(running, WallNow(), 10));
    ASSERT_TRUE(claimable.has_value());
    EXPECT_EQ(fixtures::RunIds(*claimable), (std::vector<std::string>{RunIdFor(1)}));

    EXPECT_EQ(RunSync(store_->TryLease(RunIdFor(1), "resumer", until)), true);
    EXPECT_EQ(RunSync(store_->TryLease(RunIdFor(2), "resumer", until)), false);
    EXPECT_EQ(RunSync(store_->TryLease(RunIdFor(3), "resumer", until)), false);

    // The same for durable timers: a waiting run whose timer is due while a process killed
    // between the run's waiting stop and its lease release still "holds" it (a daemon killed
    // right after the stop: serve_test's KillNineWhileWaiting, in the CI rehearsal).
    for (int n = 4; n <= 6; ++n) {
        TestChain chain(RunIdFor(n));
        NewRun run = MakeNewRun(chain, "wf", "", RunStatus::kWaiting);
        run.owner = n == 4 ? dead : n == 5 ? alive : remote;
        run.lease_until = until;
        ASSERT_TRUE(RunSync(store_->CreateRun(run)).has_value());
        ASSERT_TRUE(RunSync(store_->SetWakeAt(RunIdFor(n), WallNow() - seconds(1))).has_value());
    }
    auto due = RunSync(store_->FindDueRuns(WallNow(), 0));
    ASSERT_TRUE(due.has_value());
    EXPECT_EQ(fixtures::RunIds(*due), (std::vector<std::string>{RunIdFor(4)}));
    due = RunSync(store_->FindDueRuns(WallNow(), 1));
    ASSERT_TRUE(due.has_value());
    EXPECT_EQ(fixtures::RunIds(*due), (std::vector<std::string>{RunIdFor(4)}));
}

// ---- Crash durability: a child appends and acknowledges, then is killed. ----

constexpr int kCrashRuns = 4;

void Acknowledge(int fd, int run, int64_t seq) {
    char line[64];
    int length = std::snprintf(line, sizeof line, "%d %lld\n", run, static_cast<long long>(seq));
    // Short writes to a pipe are atomic, so the parent never sees half a line.
    if (write(fd, line, static_cast<size_t>(length)) != length) _exit(6);
}

Awaitable<void> AppendAndAcknowledge(std::shared_ptr<SqliteStore> store, int run, int fd) {
    TestChain chain(RunIdFor(run));
    NewRun created_run = MakeNewRun(chain, "crash");
    auto created = co_await store->CreateRun(std::move(created_run));
    if (!created) _exit(4);
    Acknowledge(fd, run, 1);
    for (int i = 0; i < 1'000'000; ++i) {
        auto events = chain.NodeEvents(1);
        int64_t seq = chain.head().seq;
        auto appended =
            co_await store->AppendEvents(chain.run_id(), std::move(events), RunStatus::kRunning);
        if (!appended) _exit(5);
        Acknowledge(fd, run, seq);
    }
}

[[noreturn]] void RunCrashChild(const std::string& path, SqliteSync sync, int fd) {
    SqliteOptions options;
    options.synchronous = sync;
    auto store = SqliteStore::OpenBlocking(path, options);
    if (!store) _exit(3);
    asio::io_context io;
    for (int run = 1; run <= kCrashRuns; ++run) {
        asio::co_spawn(io, AppendAndAcknowledge(*store, run, fd), asio::detached);
    }
    io.run();
    _exit(0);
}

void KillMidAppendAndCheck(const std::string& path, SqliteSync sync) {
    constexpr int kKillAfter = 600;  // acknowledgements
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        close(fds[0]);
        RunCrashChild(path, sync, fds[1]);
    }
    close(fds[1]);
    FILE* acks = fdopen(fds[0], "r");
    ASSERT_NE(acks, nullptr);
    std::map<int, int64_t> acked;  // run -> highest acknowledged seq
    int count = 0;
    char line[64];
    auto read_ack = [&] {
        if (std::fgets(line, sizeof line, acks) == nullptr) return false;
        int run = 0;
        long long seq = 0;
        if (std::sscanf(line, "%d %lld", &run, &seq) == 2) {
            acked[run] = std::max<int64_t>(acked[run], seq);
            ++count;
        }
        return true;
    };
    while (count < kKillAfter && read_ack()) {
    }
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    while (read_ack()) {  // acknowledgements written before the kill
    }
    std::fclose(acks);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    ASSERT_GE(count, kKillAfter);

    EXPECT_EQ(IntegrityCheck(path), "ok");
    SqliteOptions options;
    options.synchronous = sync;
    auto reopened = SqliteStore::OpenBlocking(path, options);
    ASSERT_TRUE(reopened.has_value()) << reopened.error().ToString();
    std::shared_ptr<SqliteStore> store = *reopened;
    for (const auto& [run, seq] : acked) {
        auto record = RunSync(store->GetRun(RunIdFor(run)));
        ASSERT_TRUE(record.has_value()) << record.error().ToString();
        EXPECT_GE(record->head.seq, seq) << "run " << run << " lost acknowledged events";
        auto events = RunSync(store->ReadEvents(RunIdFor(run), EventQuery{}));
        ASSERT_TRUE(events.has_value());
        auto report = ledger::VerifyChain(RunIdFor(run), Lines(*events), record->head);
        EXPECT_TRUE(report.ok()) << report.issue->reason << " at " << report.issue->seq;
    }
}

TEST_P(SqliteStoreTest, KillNineKeepsAcknowledgedEvents) {
    store_.reset();  // the child opens its own store; no threads may run across fork
    KillMidAppendAndCheck(path_, GetParam());
}

// ---- Opening ----

TEST_P(SqliteStoreTest, OpenRefusesANewerSchema) {
    store_.reset();
    ExecRaw(path_, "PRAGMA user_version=99");
    auto opened = SqliteStore::OpenBlocking(path_);
    ASSERT_FALSE(opened.has_value());
    EXPECT_EQ(opened.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(opened.error().message().find(path_), std::string::npos) << opened.error().message();
    EXPECT_NE(opened.error().message().find("99"), std::string::npos);
}

TEST_P(SqliteStoreTest, AVersionOneFileMigratesAndKeepsItsRuns) {
    // A store written before signed checkpoints (schema version 1), with one finished run.
    TestChain chain(RunIdFor(1));
    ASSERT_TRUE(
        RunSync(store_->CreateRun(MakeNewRun(chain, "wf", "", RunStatus::kCompleted))).has_value());
    store_.reset();
    ExecRaw(path_,
            "DROP INDEX runs_by_wake_at; ALTER TABLE runs DROP COLUMN wake_at; "
            "DROP TABLE checkpoints; DROP TABLE checkpoint_batches; DROP INDEX runs_unsigned; "
            "ALTER TABLE runs DROP COLUMN checkpoint_seq; " DROP_DAEMON_STATE
            "PRAGMA user_version=1");
    auto reopened = SqliteStore::OpenBlocking(path_, Options());
    ASSERT_TRUE(reopened.has_value()) << reopened.error().ToString();
    std::shared_ptr<SqliteStore> store = *reopened;
    auto record = RunSync(store->GetRun(RunIdFor(1)));
    ASSERT_TRUE(record.has_value()) << record.error().ToString();
    EXPECT_EQ(record->checkpoint_seq, 0);
    // Its stop is unsigned until a process signs it.
    EXPECT_EQ(fixtures::RunIds(*RunSync(store->FindUnsignedStops("", 10))),
              std::vector<std::string>{RunIdFor(1)});
    auto version = QueryInt(path_, "PRAGMA user_version");
    EXPECT_EQ(version, 6);
}

TEST_P(SqliteStoreTest, AVersionThreeFileGetsTheDaemonStateTables) {
    TestChain chain(RunIdFor(1));
    ASSERT_TRUE(
        RunSync(store_->CreateRun(MakeNewRun(chain, "wf", "", RunStatus::kCompleted))).has_value());
    store_.reset();
    ExecRaw(path_, DROP_DAEMON_STATE "PRAGMA user_version=3");
    auto reopened = SqliteStore::OpenBlocking(path_, Options());
    ASSERT_TRUE(reopened.has_value()) << reopened.error().ToString();
    std::shared_ptr<SqliteStore> store = *reopened;
    EXPECT_EQ(QueryInt(path_, "PRAGMA user_version"), 6);
    ASSERT_TRUE(RunSync(store->PutRetentionPolicy({"", 1, 1})).has_value());
    ASSERT_TRUE(RunSync(store->PutRunAnnotation({RunIdFor(1), "wf_1", 1, "api", "{}", "", ""}))
                    .has_value());
    EXPECT_EQ(RunSync(store->GetRunAnnotation(RunIdFor(1)))->workflow_id, "wf_1");
}

TEST_P(SqliteStoreTest, AVersionFourFileGetsTheAutomationTables) {
    TestChain chain(RunIdFor(1));
    ASSERT_TRUE(
        RunSync(store_->CreateRun(MakeNewRun(chain, "wf", "", RunStatus::kCompleted))).has_value());
    store_.reset();
    ExecRaw(path_, DROP_AUTOMATION "PRAGMA user_version=4");
    auto reopened = SqliteStore::OpenBlocking(path_, Options());
    ASSERT_TRUE(reopened.has_value()) << reopened.error().ToString();
    std::shared_ptr<SqliteStore> store = *reopened;
    EXPECT_EQ(QueryInt(path_, "PRAGMA user_version"), 6);
    MemoryEntry entry{"global", "k", "1", {}};
    ASSERT_TRUE(RunSync(store->PutMemory(entry)).has_value());
    EXPECT_EQ(RunSync(store->GetMemory("global", "k"))->value, "1");
    EXPECT_EQ(RunSync(store->GetRun(RunIdFor(1)))->workflow, "wf");
}

TEST_P(SqliteStoreTest, OpenRefusesAForeignDatabase) {
    std::string foreign = (dir_.path() / "foreign.db").string();
    ExecRaw(foreign, "CREATE TABLE notes (text TEXT)");
    auto opened = SqliteStore::OpenBlocking(foreign);
    ASSERT_FALSE(opened.has_value());
    EXPECT_EQ(opened.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(opened.error().message().find(foreign), std::string::npos);
}

TEST_P(SqliteStoreTest, CloseLetsQueuedWritesFinish) {
    constexpr int kRuns = 10;
    std::vector<TestChain> chains;
    for (int r = 1; r <= kRuns; ++r) chains.push_back(Create(r));
    asio::io_context io;
    std::vector<std::optional<Status>> results(kRuns);
    store_->HoldWriterForTest();
    for (int r = 0; r < kRuns; ++r) {
        Spawn(io,
              store_->AppendEvents(chains[r].run_id(), chains[r].NodeEvents(2),
                                   RunStatus::kCompleted),
              &results[r]);
    }
    io.poll();
    ASSERT_EQ(store_->stats().queued, kRuns);
    store_->CloseBlocking();  // overrides the hold; returns once the queue is drained
    io.run();
    for (const auto& result : results) {
        ASSERT_TRUE(result.has_value());
        EXPECT_TRUE(*result) << result->error().ToString();
    }
    EXPECT_EQ(CodeOf(RunSync(store_->PruneTerminalRuns(0))), ErrorCode::kFailedPrecondition);
    EXPECT_EQ(CodeOf(RunSync(store_->ListRuns(RunFilter{}))), ErrorCode::kFailedPrecondition);
    Open();
    for (const auto& chain : chains) {
        auto record = RunSync(store_->GetRun(chain.run_id()));
        ASSERT_TRUE(record.has_value());
        EXPECT_EQ(record->head.seq, 3);
        EXPECT_EQ(record->status, RunStatus::kCompleted);
    }
}

TEST_P(SqliteStoreTest, PollingForControlRequestsCostsNoWriteTransaction) {
    TestChain chain = Create(1);
    std::vector<std::string> ids = {chain.run_id()};
    int64_t before = store_->stats().transactions;
    for (int i = 0; i < 5; ++i) {
        auto taken = RunSync(store_->TakeControlRequests(ids));
        ASSERT_TRUE(taken.has_value());
        EXPECT_TRUE(taken->empty());
    }
    EXPECT_EQ(store_->stats().transactions, before);
}

TEST_P(SqliteStoreTest, WriterCheckpointsTheWal) {
    SqliteOptions options = Options();
    options.checkpoint_frames = 4;
    Open(options);
    TestChain chain = Create(1);
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(RunSync(
            store_->AppendEvents(chain.run_id(), chain.NodeEvents(1), RunStatus::kRunning)));
    }
    EXPECT_GT(store_->stats().checkpoints, 0);
}

TEST_P(SqliteStoreTest, UrlGivesPathAndSynchronous) {
    auto plain = ParseSqliteUrl("sqlite:data/strowger.db");
    ASSERT_TRUE(plain.has_value());
    EXPECT_EQ(plain->path, "data/strowger.db");
    EXPECT_EQ(plain->options.synchronous, SqliteSync::kFull);  // power-loss safe by default

    auto full = ParseSqliteUrl("sqlite:/var/lib/s.db?synchronous=full");
    ASSERT_TRUE(full.has_value());
    EXPECT_EQ(full->path, "/var/lib/s.db");
    EXPECT_EQ(full->options.synchronous, SqliteSync::kFull);

    auto normal = ParseSqliteUrl("sqlite:s.db?synchronous=NORMAL");
    ASSERT_TRUE(normal.has_value());
    EXPECT_EQ(normal->options.synchronous, SqliteSync::kNormal);

    EXPECT_EQ(CodeOf(ParseSqliteUrl("sqlite:s.db?synchronous=off")), ErrorCode::kInvalidArgument);
    EXPECT_EQ(CodeOf(ParseSqliteUrl("sqlite:s.db?cache=shared")), ErrorCode::kInvalidArgument);
    EXPECT_EQ(CodeOf(ParseSqliteUrl("sqlite:")), ErrorCode::kInvalidArgument);
    EXPECT_EQ(CodeOf(ParseSqliteUrl("sqlite:?synchronous=full")), ErrorCode::kInvalidArgument);
    EXPECT_EQ(CodeOf(ParseSqliteUrl("postgres://x")), ErrorCode::kInvalidArgument);
}

TEST_P(SqliteStoreTest, OpenStoreCreatesParentDirectoriesRelativeToCwd) {
    strowger::testing::TempDir dir;
    auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    std::string url = "sqlite:state/nested/strowger.db?synchronous=";
    url += GetParam() == SqliteSync::kFull ? "full" : "normal";
    auto store = OpenStoreBlocking(url);
    std::filesystem::current_path(cwd);
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "state" / "nested" / "strowger.db"));
    TestChain chain(RunIdFor(1));
    auto created = RunSync((*store)->CreateRun(MakeNewRun(chain)));
    EXPECT_TRUE(created.has_value());
}

TEST_P(SqliteStoreTest, OpenStoreErrorsNameThePath) {
    strowger::testing::TempDir dir;
    std::string file = dir.Write("not-a-dir", "x");
    auto under_file = OpenStoreBlocking("sqlite:" + file + "/strowger.db");
    ASSERT_FALSE(under_file.has_value());
    EXPECT_EQ(under_file.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(under_file.error().message().find(file), std::string::npos)
        << under_file.error().message();

    std::string directory = dir.path().string();
    auto on_directory = OpenStoreBlocking("sqlite:" + directory);
    ASSERT_FALSE(on_directory.has_value());
    EXPECT_EQ(on_directory.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(on_directory.error().message().find(directory), std::string::npos)
        << on_directory.error().message();

    std::string garbage = dir.Write("garbage.db", std::string(8192, 'g'));
    auto on_garbage = OpenStoreBlocking("sqlite:" + garbage);
    ASSERT_FALSE(on_garbage.has_value());
    EXPECT_EQ(on_garbage.error().code(), ErrorCode::kDataLoss);
    EXPECT_NE(on_garbage.error().message().find(garbage), std::string::npos)
        << on_garbage.error().message();

    EXPECT_EQ(CodeOf(OpenStoreBlocking("sqlite:")), ErrorCode::kInvalidArgument);
}

std::string SyncName(const ::testing::TestParamInfo<SqliteSync>& sync) {
    return sync.param == SqliteSync::kFull ? "full" : "normal";
}

// "store/" in every name, so `ctest -R store` selects this binary's tests.
INSTANTIATE_TEST_SUITE_P(store, SqliteStoreTest,
                         ::testing::Values(SqliteSync::kNormal, SqliteSync::kFull), SyncName);

}  // namespace
}  // namespace strowger::store
