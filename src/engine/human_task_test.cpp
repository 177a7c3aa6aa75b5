// A DAG's human_task through the engine on a real SQLite store: a quorum of distinct actors,
// a decision's idempotency key, decisions from two processes at once (two engines, each with
// its own connection, on two threads), and the durable timer: armed in one engine, found due
// and fired by another after a restart, never before its time.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <thread>

#include "engine/engine.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "store/store.hpp"
#include "testing/test_util.hpp"

namespace strowger::engine {
namespace {

using ledger::RunStatus;
using namespace std::chrono_literals;

// Real time shifted by an offset the test sets: "after the restart, a minute later".
class ShiftedClock : public Clock {
  public:
    SystemTime Now() const override {
        return std::chrono::system_clock::now() + std::chrono::milliseconds(offset_ms_.load());
    }
    SteadyTime SteadyNow() const override {
        return std::chrono::steady_clock::now() + std::chrono::milliseconds(offset_ms_.load());
    }
    void Advance(std::chrono::milliseconds by) { offset_ms_ += by.count(); }

  private:
    std::atomic<int64_t> offset_ms_ = 0;
};

constexpr const char* kWorkflow = R"(name: approval
default_model: "scripted:script.yaml"
nodes:
  - {id: draft, type: agent, config: {prompt: "Draft {{input}}"}}
  - id: review
    type: human_task
    config:
      title: "Review {{draft}}"
      assignee_refs: [legal]
      approval_mode: quorum
      required_count: 2
      timeout_ms: 60000
      on_timeout: proceed_with_default
      default_output: "nobody answered"
  - {id: publish, type: agent, config: {prompt: "Publish {{input}}", upstream: false}}
  - {id: revise, type: agent, config: {prompt: "Revise {{input}}", upstream: false}}
  - {id: expire, type: agent, config: {prompt: "Expired: {{input}}", upstream: false}}
edges:
  - {from: draft, to: review}
  - {from: review, to: publish, signal: approved}
  - {from: review, to: revise, signal: rejected}
  - {from: review, to: expire, signal: timeout}
)";

// One process's view of the store: its own connection, registry, engine and thread of work.
struct Process {
    explicit Process(const std::string& store_url, Clock& clock) : registry(io.get_executor()) {
        providers::RegisterBuiltinProviders(registry);
        auto opened = store::OpenStoreBlocking(store_url);
        EXPECT_TRUE(opened.has_value()) << opened.error().message();
        store = *opened;
        engine =
            std::make_unique<Engine>(io.get_executor(), store, registry, EngineOptions{}, clock);
    }
    template <typename T>
    std::optional<T> Run(Awaitable<T> awaitable) {
        return testing::RunOn(io, std::move(awaitable));
    }
    asio::io_context io;
    providers::ProviderRegistry registry;
    std::shared_ptr<store::Store> store;
    std::unique_ptr<Engine> engine;
};

class HumanTaskTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_.Write("script.yaml", "rules:\n  - {reply_template: \"${step} done\"}\n");
        auto loaded = model::LoadWorkflowFile(dir_.Write("flow.yaml", kWorkflow));
        ASSERT_TRUE(loaded.ok()) << loaded.diagnostics[0].ToString();
        asio::io_context io;
        providers::ProviderRegistry registry(io.get_executor());
        providers::RegisterBuiltinProviders(registry);
        auto compiled = model::Compile(loaded.workflow, CompileOptionsFor(registry));
        ASSERT_TRUE(compiled.ok()) << compiled.diagnostics[0].ToString();
        plan_ = compiled.plan;
        url_ = "sqlite:" + (dir_.path() / "runs.db").string();
    }

    // Starts a run in a process of its own, which ends with the run waiting for people.
    std::string StartWaitingRun() {
        Process process(url_, clock_);
        auto outcome = process.Run(process.engine->StartRun({plan_, "the memo", {}, {}}));
        EXPECT_TRUE(outcome && *outcome)
            << (outcome && !*outcome ? outcome->error().message() : "no outcome");
        if (!outcome || !*outcome) return "";
        EXPECT_EQ((*outcome)->status, RunStatus::kWaiting);
        return (*outcome)->run_id;
    }

    std::vector<store::StoredEvent> Events(Process& process, const std::string& run_id) {
        auto events = process.Run(process.store->ReadEvents(run_id, store::EventQuery{}));
        EXPECT_TRUE(events && *events);
        return events && *events ? **events : std::vector<store::StoredEvent>{};
    }
    static int Count(const std::vector<store::StoredEvent>& events, const std::string& type,
                     const std::string& node = {}) {
        int n = 0;
        for (const auto& e : events) n += e.type == type && (node.empty() || e.node == node);
        return n;
    }

    testing::TempDir dir_;
    ShiftedClock clock_;
    std::shared_ptr<const model::Plan> plan_;
    std::string url_;
};

TEST_F(HumanTaskTest, AQuorumNeedsDistinctActorsAndThenTheRunGoesOnAlongApproved) {
    std::string run_id = StartWaitingRun();
    ASSERT_FALSE(run_id.empty());
    Process process(url_, clock_);
    Engine& engine = *process.engine;
    auto first = process.Run(engine.Decide(run_id, "review", "approve", "alice", "fine", ""));
    ASSERT_TRUE(first && *first) << (first && !*first ? first->error().message() : "");
    // The same actor again does not make a quorum of two.
    auto again = process.Run(engine.Decide(run_id, "review", "approve", "alice", "still", ""));
    ASSERT_TRUE(again.has_value());
    auto record = process.Run(process.store->GetRun(run_id));
    ASSERT_TRUE(record && *record);
    EXPECT_EQ((*record)->status, RunStatus::kWaiting);

    auto second = process.Run(engine.Decide(run_id, "review", "approve", "bob", "ok", ""));
    ASSERT_TRUE(second && *second) << (second && !*second ? second->error().message() : "");
    // Three sinks, two pruned: the run's output is an object of the one that ran.
    auto outcome = process.Run(engine.ResumeRun(run_id, "decided", "bob"));
    ASSERT_TRUE(outcome && *outcome) << (outcome && !*outcome ? outcome->error().message() : "");
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted) << (*outcome)->error;
    EXPECT_EQ((*outcome)->output, R"({"publish":"publish done"})") << (*outcome)->error;

    auto events = Events(process, run_id);
    EXPECT_EQ(Count(events, "llm.request", "draft"), 1);  // not redone after the wait
    EXPECT_EQ(Count(events, "llm.request", "publish"), 1);
    EXPECT_EQ(Count(events, "llm.request", "revise"), 0);
    EXPECT_EQ(Count(events, "llm.request", "expire"), 0);
    EXPECT_EQ(Count(events, "human_task.completed", "review"), 1);
    EXPECT_EQ(Count(events, "node.skipped"), 2);  // revise and expire, pruned
}

TEST_F(HumanTaskTest, ADecisionsIdempotencyKeyUsedTwiceRecordsOneDecision) {
    std::string run_id = StartWaitingRun();
    ASSERT_FALSE(run_id.empty());
    Process process(url_, clock_);
    for (int i = 0; i < 2; ++i) {
        auto decided = process.Run(
            process.engine->Decide(run_id, "review", "progress", "alice", "halfway", "", "key-1"));
        ASSERT_TRUE(decided && *decided)
            << (decided && !*decided ? decided->error().message() : "");
    }
    auto other = process.Run(
        process.engine->Decide(run_id, "review", "progress", "alice", "later", "", "key-2"));
    ASSERT_TRUE(other && *other);
    auto events = Events(process, run_id);
    EXPECT_EQ(Count(events, "human_task.decided", "review"), 2);
    EXPECT_EQ(Count(events, "human_task.completed", "review"), 0);  // progress is not an end
}

TEST_F(HumanTaskTest, QuorumDecisionsFromTwoProcessesAtOnceAreBothRecorded) {
    std::string run_id = StartWaitingRun();
    ASSERT_FALSE(run_id.empty());
    std::atomic<int> ready = 0;
    std::vector<std::string> errors(2);
    auto decide = [&](int i) {
        Process process(url_, clock_);
        ++ready;
        while (ready.load() < 2) std::this_thread::yield();  // a start line, not a wait
        auto decided = process.Run(process.engine->Decide(run_id, "review", "approve",
                                                          i == 0 ? "alice" : "bob", "yes", ""));
        if (!decided)
            errors[i] = "no outcome";
        else if (!*decided)
            errors[i] = decided->error().message();
    };
    std::thread a(decide, 0), b(decide, 1);
    a.join();
    b.join();
    EXPECT_EQ(errors[0], "");
    EXPECT_EQ(errors[1], "");

    Process process(url_, clock_);
    auto events = Events(process, run_id);
    EXPECT_EQ(Count(events, "human_task.decided", "review"), 2);
    EXPECT_EQ(Count(events, "human_task.completed", "review"), 1);
    auto verified = process.Run(process.engine->VerifyRun(run_id));
    ASSERT_TRUE(verified && *verified);
    EXPECT_TRUE((*verified)->ok());
    auto outcome = process.Run(process.engine->ResumeRun(run_id, "decided", "ops"));
    ASSERT_TRUE(outcome && *outcome) << (outcome && !*outcome ? outcome->error().message() : "");
    EXPECT_EQ((*outcome)->output, R"({"publish":"publish done"})") << (*outcome)->error;
}

TEST_F(HumanTaskTest, TheTimerFiresAfterARestartOnlyOnceDue) {
    std::string run_id = StartWaitingRun();
    ASSERT_FALSE(run_id.empty());
    Process process(url_, clock_);
    auto record = process.Run(process.store->GetRun(run_id));
    ASSERT_TRUE(record && *record);
    const SystemTime due = (*record)->wake_at;
    EXPECT_GT(due, clock_.Now() + 59s);
    EXPECT_LE(due, clock_.Now() + 60s);

    // A minute minus a second later: not due, and a resume leaves it waiting.
    auto early = process.Run(process.store->FindDueRuns(due - 1s, 0));
    ASSERT_TRUE(early && *early);
    EXPECT_TRUE((*early)->empty());

    // Restarted past the due time: the new process finds it and the default applies.
    clock_.Advance(61s);
    Process restarted(url_, clock_);
    auto found = restarted.Run(restarted.store->FindDueRuns(clock_.Now(), 0));
    ASSERT_TRUE(found && *found);
    ASSERT_EQ((*found)->size(), 1u);
    EXPECT_EQ((*found)->front().run_id, run_id);
    auto outcome = restarted.Run(restarted.engine->ResumeRun(run_id, "timer", ""));
    ASSERT_TRUE(outcome && *outcome) << (outcome && !*outcome ? outcome->error().message() : "");
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted) << (*outcome)->error;
    EXPECT_EQ((*outcome)->output, R"({"expire":"expire done"})");

    auto events = Events(restarted, run_id);
    EXPECT_EQ(Count(events, "llm.request", "draft"), 1);
    EXPECT_EQ(Count(events, "llm.request", "expire"), 1);
    EXPECT_EQ(Count(events, "llm.request", "publish"), 0);
    // Nothing is due any more.
    auto after = restarted.Run(restarted.store->FindDueRuns(clock_.Now() + 1h, 0));
    ASSERT_TRUE(after && *after);
    EXPECT_TRUE((*after)->empty());
}

}  // namespace
}  // namespace strowger::engine
