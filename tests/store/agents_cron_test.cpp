// Standing agents' sessions and cron jobs (docs/formats/agents_cron_state_v1.md) against every
// store: persistent sessions one per (agent, channel), messages appended and compacted with
// their turn finished atomically, cron jobs, fires recorded once, open fires after a crash.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/memory/memory_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store_test_util.hpp"
#include "testing/test_util.hpp"

namespace strowger::store {
namespace {

using strowger::testing::RunSync;

SystemTime At(int64_t second) {
    return FromUnixMicros(1'800'000'000'000'000 + second * 1'000'000);
}

class AgentsCronStoreTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        store_ = GetParam().open(dir_.path());
        ASSERT_NE(store_, nullptr);
    }
    static AgentSession Session(std::string id, std::string agent, std::string channel,
                                std::string mode = "persistent") {
        AgentSession s;
        s.session_id = std::move(id);
        s.agent = std::move(agent);
        s.channel = std::move(channel);
        s.mode = std::move(mode);
        s.created_at = At(1);
        s.updated_at = At(1);
        return s;
    }
    static CronJob Job(std::string id) {
        CronJob j;
        j.job_id = std::move(id);
        j.name = "morning";
        j.agent = "ops";
        j.schedule = R"({"kind":"cron","expr":"0 8 * * *"})";
        j.action = R"({"kind":"agent_turn","message":"hi"})";
        j.created_at = At(0);
        j.updated_at = At(0);
        j.next_fire_at = At(100);
        return j;
    }
    static CronFire Fire(std::string job, int64_t second) {
        CronFire f;
        f.job_id = std::move(job);
        f.scheduled_at = At(second);
        f.recorded_at = At(second + 1);
        return f;
    }

    strowger::testing::TempDir dir_;
    std::shared_ptr<Store> store_;
};

TEST_P(AgentsCronStoreTest, PersistentSessionsAreOnePerAgentAndChannel) {
    auto first = RunSync(store_->OpenSession(Session("ses_1", "ops", "api")));
    ASSERT_TRUE(first.has_value()) << first.error().ToString();
    EXPECT_EQ(first->session_id, "ses_1");
    auto again = RunSync(store_->OpenSession(Session("ses_2", "ops", "api")));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->session_id, "ses_1");
    EXPECT_EQ(RunSync(store_->OpenSession(Session("ses_3", "ops", "cron")))->session_id, "ses_3");
    EXPECT_EQ(RunSync(store_->OpenSession(Session("ses_4", "ops", "cron", "new")))->session_id,
              "ses_4");
    EXPECT_EQ(RunSync(store_->OpenSession(Session("ses_5", "dev", "api")))->session_id, "ses_5");
    EXPECT_EQ(RunSync(store_->ListSessions("ops"))->size(), 3u);
    EXPECT_EQ(RunSync(store_->ListSessions(""))->size(), 4u);
    EXPECT_EQ(RunSync(store_->GetSession("ses_4"))->mode, "new");
    EXPECT_EQ(RunSync(store_->GetSession("ses_9")).error().code(), ErrorCode::kNotFound);
}

TEST_P(AgentsCronStoreTest, ATurnIsFoldedIntoItsSessionOnceAndCompactionDropsTheOldest) {
    ASSERT_TRUE(RunSync(store_->OpenSession(Session("ses_1", "ops", "api"))).has_value());
    ASSERT_TRUE(RunSync(store_->PutAgentTurn({"run_1", "ses_1", "ops", "hello", false, At(2)}))
                    .has_value());
    ASSERT_EQ(RunSync(store_->ListAgentTurns())->size(), 1u);
    SessionUpdate update;
    update.session_id = "ses_1";
    update.finish_run_id = "run_1";
    update.append = {{0, "user", "hello", 2, "run_1"}, {0, "assistant", "hi there", 2, "run_1"}};
    update.at = At(3);
    ASSERT_TRUE(RunSync(store_->UpdateSession(update)).has_value());
    EXPECT_TRUE(RunSync(store_->ListAgentTurns())->empty());
    auto messages = RunSync(store_->ReadSessionMessages("ses_1"));
    ASSERT_EQ(messages->size(), 2u);
    EXPECT_EQ((*messages)[0].seq, 1);
    EXPECT_EQ((*messages)[1].content, "hi there");
    EXPECT_EQ((*messages)[1].run_id, "run_1");

    SessionUpdate compact;
    compact.session_id = "ses_1";
    compact.drop_through = 2;
    compact.set_summary = true;
    compact.summary = "user: hello";
    compact.append = {{0, "user", "next", 1, "run_2"}};
    compact.at = At(4);
    ASSERT_TRUE(RunSync(store_->UpdateSession(compact)).has_value());
    messages = RunSync(store_->ReadSessionMessages("ses_1"));
    ASSERT_EQ(messages->size(), 1u);
    EXPECT_EQ((*messages)[0].seq, 3);  // numbers are never reused
    EXPECT_EQ(RunSync(store_->GetSession("ses_1"))->summary, "user: hello");
    EXPECT_EQ(RunSync(store_->GetSession("ses_1"))->updated_at, At(4));
    SessionUpdate missing;
    missing.session_id = "ses_9";
    EXPECT_EQ(RunSync(store_->UpdateSession(missing)).error().code(), ErrorCode::kNotFound);
}

TEST_P(AgentsCronStoreTest, CronJobsAreStoredReplacedAndDeletedWithTheirFires) {
    CronJob job = Job("cron_1");
    ASSERT_TRUE(RunSync(store_->PutCronJob(job)).has_value());
    ASSERT_TRUE(RunSync(store_->PutCronJob(Job("cron_2"))).has_value());
    auto got = RunSync(store_->GetCronJob("cron_1"));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->schedule, job.schedule);
    EXPECT_EQ(got->next_fire_at, At(100));
    EXPECT_EQ(got->last_fire_at, SystemTime{});
    EXPECT_TRUE(got->enabled);
    job.enabled = false;
    job.disabled_reason = "5 consecutive failures";
    job.consecutive_failures = 5;
    ASSERT_TRUE(RunSync(store_->PutCronJob(job)).has_value());
    got = RunSync(store_->GetCronJob("cron_1"));
    EXPECT_FALSE(got->enabled);
    EXPECT_EQ(got->disabled_reason, "5 consecutive failures");
    EXPECT_EQ(got->consecutive_failures, 5);
    EXPECT_EQ(RunSync(store_->ListCronJobs())->size(), 2u);

    job.next_fire_at = At(200);
    ASSERT_TRUE(RunSync(store_->RecordCronFire(Fire("cron_1", 100), job)).has_value());
    ASSERT_TRUE(RunSync(store_->DeleteCronJob("cron_1")).has_value());
    EXPECT_EQ(RunSync(store_->GetCronJob("cron_1")).error().code(), ErrorCode::kNotFound);
    EXPECT_EQ(RunSync(store_->DeleteCronJob("cron_1")).error().code(), ErrorCode::kNotFound);
    EXPECT_TRUE(RunSync(store_->ListCronFires("cron_1", 0))->empty());
    EXPECT_EQ(RunSync(store_->ListCronJobs())->size(), 1u);
}

TEST_P(AgentsCronStoreTest, AFireIsRecordedOnceWithItsJobAndOpenFiresAreFound) {
    CronJob job = Job("cron_1");
    ASSERT_TRUE(RunSync(store_->PutCronJob(job)).has_value());
    job.next_fire_at = At(200);
    ASSERT_TRUE(RunSync(store_->RecordCronFire(Fire("cron_1", 100), job)).has_value());
    EXPECT_EQ(RunSync(store_->GetCronJob("cron_1"))->next_fire_at, At(200));
    // The same (job, scheduled time) again: refused, and the job is not changed.
    CronJob other = job;
    other.next_fire_at = At(999);
    EXPECT_EQ(RunSync(store_->RecordCronFire(Fire("cron_1", 100), other)).error().code(),
              ErrorCode::kAlreadyExists);
    EXPECT_EQ(RunSync(store_->GetCronJob("cron_1"))->next_fire_at, At(200));
    // A deleted job records nothing.
    EXPECT_EQ(RunSync(store_->RecordCronFire(Fire("cron_9", 100), Job("cron_9"))).error().code(),
              ErrorCode::kNotFound);

    ASSERT_TRUE(RunSync(store_->RecordCronFire(Fire("cron_1", 200), job)).has_value());
    auto open = RunSync(store_->ListOpenCronFires());
    ASSERT_EQ(open->size(), 2u);
    EXPECT_EQ((*open)[0].scheduled_at, At(100));

    CronFire started = Fire("cron_1", 100);
    started.status = "completed";
    started.run_id = "run_1";
    job.fire_count = 1;
    job.last_run_id = "run_1";
    ASSERT_TRUE(RunSync(store_->UpdateCronFire(started, job)).has_value());
    open = RunSync(store_->ListOpenCronFires());
    ASSERT_EQ(open->size(), 1u);
    EXPECT_EQ((*open)[0].scheduled_at, At(200));
    EXPECT_EQ(RunSync(store_->GetCronJob("cron_1"))->last_run_id, "run_1");
    EXPECT_EQ(RunSync(store_->UpdateCronFire(Fire("cron_1", 300), job)).error().code(),
              ErrorCode::kNotFound);

    CronFire skipped = Fire("cron_1", 300);
    skipped.status = "skipped";
    skipped.reason = "misfire";
    skipped.catch_up = true;
    skipped.missed = 7;
    ASSERT_TRUE(RunSync(store_->RecordCronFire(skipped, job)).has_value());
    auto fires = RunSync(store_->ListCronFires("cron_1", 0));
    ASSERT_EQ(fires->size(), 3u);
    EXPECT_EQ((*fires)[0].scheduled_at, At(300));  // newest first
    EXPECT_EQ((*fires)[0].missed, 7);
    EXPECT_TRUE((*fires)[0].catch_up);
    EXPECT_EQ((*fires)[0].reason, "misfire");
    EXPECT_EQ((*fires)[2].run_id, "run_1");
    EXPECT_EQ(RunSync(store_->ListCronFires("cron_1", 2))->size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(store, AgentsCronStoreTest, ::testing::ValuesIn(Backends()), BackendName);

}  // namespace
}  // namespace strowger::store
