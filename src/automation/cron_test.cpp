// The cron scheduler with a fake clock and a test Launcher: missed fires under each misfire
// policy, overlap, five failures disabling a job, a fire recorded before a crash started exactly
// once, and jobs surviving a restart.
#include "automation/cron.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <map>

#include "store/memory/memory_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "testing/test_util.hpp"

namespace strowger::automation {
namespace {

SystemTime At(std::string_view text) {
    return ParseRfc3339(text).value();
}

class CronClock final : public Clock {
  public:
    explicit CronClock(SystemTime now) : now_(now) {}
    SystemTime Now() const override { return now_; }
    SteadyTime SteadyNow() const override { return SteadyTime(now_.time_since_epoch()); }
    void Set(SystemTime now) { now_ = now; }

  private:
    SystemTime now_;
};

// Starts "runs" by remembering them; an idempotency key used before returns the same run (as
// the engine does), so a replayed fire is visible as no new run.
class TestLauncher final : public Launcher {
  public:
    Awaitable<Result<std::string>> StartWorkflow(std::string workflow, json::value input,
                                                 Origin origin, std::string key) override {
        co_return Start("workflow:" + workflow + ":" + JsonText(input), origin, key);
    }
    Awaitable<Result<std::string>> SendToAgent(AgentMessage message, std::string key) override {
        if (fail) co_return UnavailableError("provider down");
        last_session_mode = message.session_mode;
        last_channel = message.channel;
        co_return Start("agent:" + message.agent + ":" + message.text, message.origin, key);
    }
    Result<std::string> Start(std::string what, const Origin& origin, const std::string& key) {
        if (auto it = by_key.find(key); it != by_key.end()) return it->second;
        std::string run = "run_" + std::to_string(runs.size() + 1);
        runs.push_back(what);
        origins.push_back(origin);
        by_key[key] = run;
        return run;
    }
    bool fail = false;
    std::vector<std::string> runs;
    std::vector<Origin> origins;
    std::map<std::string, std::string> by_key;
    std::string last_session_mode;
    std::string last_channel;
};

class CronTest : public ::testing::Test {
  protected:
    CronTest() : clock_(At("2026-12-07T07:59:30Z")) {}

    std::unique_ptr<CronScheduler> Make(
        std::function<Awaitable<Result<RunEnd>>(std::string)> wait = nullptr) {
        CronScheduler::Options options;
        options.run_timer = false;
        auto s = std::make_unique<CronScheduler>(io_.get_executor(), store_, launcher_,
                                                 std::move(wait), clock_, Random::Real(), options);
        return s;
    }
    template <typename T>
    T Run(Awaitable<T> work) {
        std::optional<T> out;
        asio::co_spawn(io_, std::move(work), [&](std::exception_ptr e, T value) {
            if (e) std::rethrow_exception(e);
            out.emplace(std::move(value));
        });
        io_.restart();
        for (int i = 0; i < 100000 && !out; ++i) {
            if (io_.run_one_for(std::chrono::milliseconds(100)) == 0) break;
        }
        EXPECT_TRUE(out.has_value());
        return std::move(*out);
    }
    void Run(Awaitable<void> work) {
        bool done = false;
        asio::co_spawn(io_, std::move(work), [&](std::exception_ptr e) {
            if (e) std::rethrow_exception(e);
            done = true;
        });
        io_.restart();
        for (int i = 0; i < 100000 && !done; ++i) {
            if (io_.run_one_for(std::chrono::milliseconds(100)) == 0) break;
        }
        EXPECT_TRUE(done);
    }
    void Drain() {
        io_.restart();
        io_.poll();
    }

    static CronJobSpec Spec(std::string schedule_json, std::string misfire = "coalesce") {
        CronJobSpec spec;
        spec.name = "morning";
        spec.agent = "ops";
        spec.schedule = ParseJson(schedule_json).value();
        spec.action =
            ParseJson(R"({"kind":"agent_turn","message":"Summarise the alerts"})").value();
        spec.misfire = std::move(misfire);
        return spec;
    }
    std::vector<store::CronFire> Fires(const std::string& job) {
        return Run(store_->ListCronFires(job, 0)).value();
    }

    asio::io_context io_;
    CronClock clock_;
    std::shared_ptr<store::Store> store_ = std::make_shared<store::MemoryStore>();
    TestLauncher launcher_;
};

TEST_F(CronTest, AJobFiresAtItsTimeOnceAndMovesToTheNext) {
    auto cron = Make();
    ASSERT_TRUE(Run(cron->Start()).has_value());
    auto job = Run(cron->Put(Spec(R"({"kind":"cron","expr":"0 8 * * *"})")));
    ASSERT_TRUE(job.has_value()) << job.error().message();
    EXPECT_EQ(FormatRfc3339(job->next_fire_at), "2026-12-07T08:00:00.000000Z");
    EXPECT_EQ(FormatRfc3339(*cron->NextDue()), "2026-12-07T08:00:00.000000Z");
    Run(cron->FireDue());
    Drain();
    EXPECT_TRUE(launcher_.runs.empty());  // not due yet
    clock_.Set(At("2026-12-07T08:00:00.004Z"));
    Run(cron->FireDue());
    Drain();
    Run(cron->FireDue());
    Drain();
    Drain();
    ASSERT_EQ(launcher_.runs.size(), 1u);
    EXPECT_EQ(launcher_.runs[0], "agent:ops:Summarise the alerts");
    EXPECT_EQ(launcher_.origins[0].kind, "cron");
    EXPECT_EQ(launcher_.origins[0].id, job->job_id);
    EXPECT_EQ(launcher_.last_channel, "cron");
    auto stored = Run(store_->GetCronJob(job->job_id)).value();
    EXPECT_EQ(FormatRfc3339(stored.next_fire_at), "2026-12-08T08:00:00.000000Z");
    EXPECT_EQ(stored.fire_count, 1);
    EXPECT_EQ(stored.last_run_id, "run_1");
    EXPECT_EQ(stored.last_status, "completed");
    auto fires = Fires(job->job_id);
    ASSERT_EQ(fires.size(), 1u);
    EXPECT_EQ(fires[0].status, "completed");
    EXPECT_EQ(fires[0].run_id, "run_1");
    EXPECT_FALSE(fires[0].catch_up);
    ASSERT_EQ(cron->lateness().size(), 1u);
    EXPECT_EQ(cron->lateness()[0].count(), 4000);
}

// The daemon was down from 07:59:30 on the 7th to 12:00:30 on the 10th: fires at 08:00 on the
// 7th, 8th, 9th and 10th were missed.
class MisfireTest : public CronTest {
  protected:
    std::string Restart(std::string policy) {
        std::string id;
        {
            auto cron = Make();
            EXPECT_TRUE(Run(cron->Start()).has_value());
            auto job = Run(cron->Put(Spec(R"({"kind":"cron","expr":"0 8 * * *"})", policy)));
            EXPECT_TRUE(job.has_value());
            id = job->job_id;
        }
        clock_.Set(At("2026-12-10T12:00:30Z"));
        cron_ = Make();
        EXPECT_TRUE(Run(cron_->Start()).has_value());
        Drain();
        return id;
    }
    std::unique_ptr<CronScheduler> cron_;
};

TEST_F(MisfireTest, CoalesceFiresOnceForTheLatestMissedTimeAndRecordsIt) {
    std::string id = Restart("coalesce");
    ASSERT_EQ(launcher_.runs.size(), 1u);
    auto fires = Fires(id);
    ASSERT_EQ(fires.size(), 1u);
    EXPECT_EQ(FormatRfc3339(fires[0].scheduled_at), "2026-12-10T08:00:00.000000Z");
    EXPECT_TRUE(fires[0].catch_up);
    EXPECT_EQ(fires[0].missed, 4);
    EXPECT_EQ(fires[0].status, "completed");
    EXPECT_EQ(FormatRfc3339(cron_->Get(id)->next_fire_at), "2026-12-11T08:00:00.000000Z");
    // A second restart does not fire again.
    cron_ = Make();
    ASSERT_TRUE(Run(cron_->Start()).has_value());
    Drain();
    EXPECT_EQ(launcher_.runs.size(), 1u);
}

TEST_F(MisfireTest, SkipFiresNothingAndRecordsTheSkip) {
    std::string id = Restart("skip");
    EXPECT_TRUE(launcher_.runs.empty());
    auto fires = Fires(id);
    ASSERT_EQ(fires.size(), 1u);
    EXPECT_EQ(fires[0].status, "skipped");
    EXPECT_EQ(fires[0].reason, "misfire");
    EXPECT_EQ(fires[0].missed, 4);
    EXPECT_EQ(FormatRfc3339(cron_->Get(id)->next_fire_at), "2026-12-11T08:00:00.000000Z");
}

TEST_F(MisfireTest, AllFiresEachMissedTimeOldestFirst) {
    std::string id = Restart("all");
    ASSERT_EQ(launcher_.runs.size(), 4u);
    auto fires = Fires(id);
    ASSERT_EQ(fires.size(), 4u);
    EXPECT_EQ(FormatRfc3339(fires[3].scheduled_at), "2026-12-07T08:00:00.000000Z");
    EXPECT_EQ(FormatRfc3339(fires[0].scheduled_at), "2026-12-10T08:00:00.000000Z");
    for (const auto& f : fires) {
        EXPECT_TRUE(f.catch_up);
        EXPECT_EQ(f.status, "completed");
    }
    EXPECT_EQ(FormatRfc3339(cron_->Get(id)->next_fire_at), "2026-12-11T08:00:00.000000Z");
}

TEST_F(CronTest, AllIsBoundedAtOneHundredAndTheRestIsRecordedSkipped) {
    std::string id;
    {
        auto cron = Make();
        ASSERT_TRUE(Run(cron->Start()).has_value());
        id = Run(cron->Put(Spec(R"({"kind":"every","every_secs":60})", "all")))->job_id;
    }
    clock_.Set(clock_.Now() + std::chrono::minutes(250) + std::chrono::seconds(10));
    auto cron = Make();
    ASSERT_TRUE(Run(cron->Start()).has_value());
    Drain();
    EXPECT_EQ(launcher_.runs.size(), 100u);
    auto fires = Fires(id);
    ASSERT_EQ(fires.size(), 101u);
    EXPECT_EQ(fires[0].status, "skipped");
    EXPECT_EQ(fires[0].missed, 150);
}

TEST_F(CronTest, OverlapSkipRecordsASkipWhileThePreviousRunIsRunning) {
    asio::steady_timer gate(io_, std::chrono::hours(1));
    auto wait = [&](std::string) -> Awaitable<Result<RunEnd>> {
        co_await gate.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return RunEnd{ledger::RunStatus::kCompleted, "done", ""};
    };
    auto cron = Make(wait);
    ASSERT_TRUE(Run(cron->Start()).has_value());
    auto id = Run(cron->Put(Spec(R"({"kind":"every","every_secs":60})")))->job_id;
    clock_.Set(clock_.Now() + std::chrono::seconds(60));
    Run(cron->FireDue());
    Drain();
    EXPECT_TRUE(cron->Running(id));
    clock_.Set(clock_.Now() + std::chrono::seconds(60));
    Run(cron->FireDue());
    Drain();
    EXPECT_EQ(launcher_.runs.size(), 1u);
    auto fires = Fires(id);
    ASSERT_EQ(fires.size(), 2u);
    EXPECT_EQ(fires[0].status, "skipped");
    EXPECT_EQ(fires[0].reason, "overlap: the previous fire's run run_1 is still running");
    gate.cancel();
    Drain();
    EXPECT_FALSE(cron->Running(id));
    EXPECT_EQ(Fires(id)[1].status, "completed");
    // overlap: allow starts a second run while the first runs.
    CronJobSpec allow = Spec(R"({"kind":"every","every_secs":60})");
    allow.job_id = id;
    allow.overlap = "allow";
    ASSERT_TRUE(Run(cron->Put(allow)).has_value());
    gate.expires_after(std::chrono::hours(1));
    clock_.Set(clock_.Now() + std::chrono::seconds(60));
    Run(cron->FireDue());
    Drain();
    clock_.Set(clock_.Now() + std::chrono::seconds(60));
    Run(cron->FireDue());
    Drain();
    EXPECT_EQ(launcher_.runs.size(), 3u);
    gate.cancel();
    Drain();
}

TEST_F(CronTest, FiveFailuresInARowDisableTheJobVisibly) {
    auto failing = [](std::string) -> Awaitable<Result<RunEnd>> {
        co_return RunEnd{ledger::RunStatus::kFailed, "", "the model said no"};
    };
    auto cron = Make(failing);
    ASSERT_TRUE(Run(cron->Start()).has_value());
    auto id = Run(cron->Put(Spec(R"({"kind":"every","every_secs":60})")))->job_id;
    for (int i = 0; i < 4; ++i) {
        clock_.Set(clock_.Now() + std::chrono::seconds(60));
        Run(cron->FireDue());
        Drain();
        Drain();
    }
    EXPECT_TRUE(cron->Get(id)->enabled);
    EXPECT_EQ(cron->Get(id)->consecutive_failures, 4);
    // The fifth fails to start at all (provider down): a failure too.
    launcher_.fail = true;
    clock_.Set(clock_.Now() + std::chrono::seconds(60));
    Run(cron->FireDue());
    Drain();
    Drain();
    auto job = Run(store_->GetCronJob(id)).value();
    EXPECT_FALSE(job.enabled);
    EXPECT_EQ(job.consecutive_failures, 5);
    EXPECT_EQ(job.disabled_reason, "5 consecutive failures (last: cannot start: provider down)");
    EXPECT_FALSE(cron->NextDue().has_value());
    clock_.Set(clock_.Now() + std::chrono::seconds(600));
    Run(cron->FireDue());
    Drain();
    EXPECT_EQ(Fires(id).size(), 5u);
    // Enabling it again resets the count.
    launcher_.fail = false;
    auto enabled = Run(cron->SetEnabled(id, true));
    ASSERT_TRUE(enabled.has_value());
    EXPECT_EQ(enabled->consecutive_failures, 0);
    EXPECT_EQ(enabled->disabled_reason, "");
    EXPECT_TRUE(cron->NextDue().has_value());
}

TEST_F(CronTest, AFireRecordedBeforeACrashStartsOnceAtTheNextStart) {
    std::string id;
    {
        auto cron = Make();
        ASSERT_TRUE(Run(cron->Start()).has_value());
        id = Run(cron->Put(Spec(R"({"kind":"cron","expr":"0 8 * * *"})")))->job_id;
    }
    // What a process killed between recording the fire and starting its run leaves.
    auto job = Run(store_->GetCronJob(id)).value();
    store::CronFire fire;
    fire.job_id = id;
    fire.scheduled_at = At("2026-12-07T08:00:00Z");
    fire.recorded_at = fire.scheduled_at;
    job.next_fire_at = At("2026-12-08T08:00:00Z");
    ASSERT_TRUE(Run(store_->RecordCronFire(fire, job)).has_value());
    clock_.Set(At("2026-12-07T08:00:05Z"));
    auto cron = Make();
    ASSERT_TRUE(Run(cron->Start()).has_value());
    Drain();
    ASSERT_EQ(launcher_.runs.size(), 1u);
    EXPECT_EQ(Fires(id)[0].status, "completed");
    // The same, when the run had been created before the crash: the key names it, no new run.
    store::CronFire second = fire;
    second.scheduled_at = At("2026-12-08T08:00:00Z");
    ASSERT_TRUE(launcher_.Start("agent:ops:x", {}, CronFireKey(id, second.scheduled_at)));
    job = Run(store_->GetCronJob(id)).value();
    job.next_fire_at = At("2026-12-09T08:00:00Z");
    ASSERT_TRUE(Run(store_->RecordCronFire(second, job)).has_value());
    clock_.Set(At("2026-12-08T08:00:05Z"));
    cron = Make();
    ASSERT_TRUE(Run(cron->Start()).has_value());
    Drain();
    EXPECT_EQ(launcher_.runs.size(), 2u);  // the one made before the "crash", not a third
    auto fires = Fires(id);
    EXPECT_EQ(fires[0].status, "completed");
    EXPECT_EQ(fires[0].run_id, "run_2");
}

TEST_F(CronTest, WorkflowActionsAndBadJobs) {
    auto cron = Make();
    cron->agent_known = [](const std::string& name) { return name == "ops"; };
    ASSERT_TRUE(Run(cron->Start()).has_value());
    CronJobSpec wf;
    wf.name = "nightly";
    wf.schedule = ParseJson(R"({"kind":"every","every_secs":3600})").value();
    wf.action =
        ParseJson(R"({"kind":"workflow_run","workflow_id":"report","input":{"day":"today"}})")
            .value();
    auto job = Run(cron->Put(wf));
    ASSERT_TRUE(job.has_value()) << job.error().message();
    clock_.Set(clock_.Now() + std::chrono::hours(1));
    Run(cron->FireDue());
    Drain();
    Drain();
    ASSERT_EQ(launcher_.runs.size(), 1u);
    EXPECT_EQ(launcher_.runs[0], R"(workflow:report:{"day":"today"})");

    CronJobSpec bad = Spec(R"({"kind":"cron","expr":"0 25 * * *"})");
    EXPECT_EQ(Run(cron->Put(bad)).error().message(),
              "schedule.expr: field 2 (hour): 25 is out of range 0-23");
    bad = Spec(R"({"kind":"cron","expr":"0 8 * * *"})");
    bad.agent = "nobody";
    EXPECT_EQ(Run(cron->Put(bad)).error().code(), ErrorCode::kNotFound);
    bad = Spec(R"({"kind":"cron","expr":"0 8 * * *"})");
    bad.action = ParseJson(R"({"kind":"agent_turn","message":"x","session_mode":"old"})").value();
    EXPECT_EQ(Run(cron->Put(bad)).error().message(),
              "action.session_mode: expected \"persistent\" or \"new\", not \"old\"");
    bad = Spec(R"({"kind":"cron","expr":"0 8 * * *"})", "sometimes");
    EXPECT_EQ(Run(cron->Put(bad)).error().message(),
              "misfire: expected \"coalesce\", \"skip\" or \"all\", not \"sometimes\"");
    bad = Spec(R"({"kind":"cron","expr":"0 8 * * *"})");
    bad.action = ParseJson(R"({"kind":"shell"})").value();
    EXPECT_EQ(Run(cron->Put(bad)).error().message(),
              "action.kind: expected \"agent_turn\" or \"workflow_run\", not \"shell\"");
    EXPECT_EQ(cron->size(), 1u);
}

TEST_F(CronTest, TheJobsSessionModeReachesTheTurn) {
    auto cron = Make();
    ASSERT_TRUE(Run(cron->Start()).has_value());
    CronJobSpec spec = Spec(R"({"kind":"every","every_secs":60})");
    spec.action =
        ParseJson(R"({"kind":"agent_turn","message":"check","session_mode":"new"})").value();
    ASSERT_TRUE(Run(cron->Put(spec)).has_value());
    clock_.Set(clock_.Now() + std::chrono::seconds(60));
    Run(cron->FireDue());
    Drain();
    Drain();
    EXPECT_EQ(launcher_.last_session_mode, "new");
}

}  // namespace
}  // namespace strowger::automation
