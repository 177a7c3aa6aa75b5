// Automation's records (docs/formats/automation_state_v1.md) against every store: triggers
// and their fire records (one fire per trigger and event, fire_count counted at completion,
// max_fires disabling), the agent memory, webhooks and their deliveries.
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

using fixtures::TimeAt;
using strowger::testing::RunSync;

class AutomationStateTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        store_ = GetParam().open(dir_.path());
        ASSERT_NE(store_, nullptr);
    }

    static TriggerRecord Trigger(const std::string& id, int64_t max_fires = 0) {
        TriggerRecord t;
        t.trigger_id = id;
        t.agent_id = "ops";
        t.pattern = "\"all\"";
        t.prompt_template = "Event: {{event}}";
        t.max_fires = max_fires;
        t.created_at = TimeAt(1);
        return t;
    }

    static TriggerFire Fire(const std::string& id, const std::string& trigger,
                            const std::string& event) {
        TriggerFire f;
        f.fire_id = id;
        f.trigger_id = trigger;
        f.event_id = event;
        f.target = "{\"agent\":\"ops\"}";
        f.prompt = "Event: x";
        f.depth = 1;
        f.idempotency_key = "trigger:" + trigger + ":" + event;
        f.created_at = TimeAt(2);
        return f;
    }

    strowger::testing::TempDir dir_;
    std::shared_ptr<Store> store_;
};

TEST_P(AutomationStateTest, TriggersArePutListedReplacedAndDeleted) {
    ASSERT_TRUE(RunSync(store_->PutTrigger(Trigger("trg_b"))).has_value());
    ASSERT_TRUE(RunSync(store_->PutTrigger(Trigger("trg_a", 3))).has_value());
    auto listed = RunSync(store_->ListTriggers());
    ASSERT_TRUE(listed.has_value());
    ASSERT_EQ(listed->size(), 2u);
    EXPECT_EQ((*listed)[0].trigger_id, "trg_a");
    EXPECT_EQ((*listed)[0].max_fires, 3);
    EXPECT_EQ((*listed)[0].pattern, "\"all\"");
    EXPECT_EQ((*listed)[0].created_at, TimeAt(1));
    TriggerRecord changed = Trigger("trg_a", 3);
    changed.enabled = false;
    ASSERT_TRUE(RunSync(store_->PutTrigger(changed)).has_value());
    EXPECT_FALSE((*RunSync(store_->ListTriggers()))[0].enabled);
    ASSERT_TRUE(RunSync(store_->DeleteTrigger("trg_a")).has_value());
    EXPECT_EQ(RunSync(store_->DeleteTrigger("trg_a")).error().code(), ErrorCode::kNotFound);
    EXPECT_EQ(RunSync(store_->ListTriggers())->size(), 1u);
}

TEST_P(AutomationStateTest, AnEventFiresATriggerOnceAndCompletionCountsAndDisables) {
    ASSERT_TRUE(RunSync(store_->PutTrigger(Trigger("trg_a", 2))).has_value());
    ASSERT_TRUE(RunSync(store_->RecordTriggerFire(Fire("fire_1", "trg_a", "ev1"))).has_value());
    EXPECT_EQ(RunSync(store_->RecordTriggerFire(Fire("fire_2", "trg_a", "ev1"))).error().code(),
              ErrorCode::kAlreadyExists);
    EXPECT_EQ(RunSync(store_->RecordTriggerFire(Fire("fire_3", "trg_x", "ev1"))).error().code(),
              ErrorCode::kNotFound);
    auto pending = RunSync(store_->PendingTriggerFires());
    ASSERT_TRUE(pending.has_value());
    ASSERT_EQ(pending->size(), 1u);
    EXPECT_EQ((*pending)[0].idempotency_key, "trigger:trg_a:ev1");
    EXPECT_EQ((*pending)[0].depth, 1);
    // Not counted until it happened.
    EXPECT_EQ((*RunSync(store_->ListTriggers()))[0].fire_count, 0);
    auto done = RunSync(store_->CompleteTriggerFire("fire_1", "run_1", "", TimeAt(3)));
    ASSERT_TRUE(done.has_value()) << done.error().ToString();
    EXPECT_EQ(done->fire_count, 1);
    EXPECT_TRUE(done->enabled);
    EXPECT_EQ(RunSync(store_->CompleteTriggerFire("fire_1", "run_1", "", TimeAt(3))).error().code(),
              ErrorCode::kNotFound);
    // A failed start counts nothing.
    ASSERT_TRUE(RunSync(store_->RecordTriggerFire(Fire("fire_4", "trg_a", "ev2"))).has_value());
    auto failed = RunSync(store_->CompleteTriggerFire("fire_4", "", "no agent", TimeAt(4)));
    ASSERT_TRUE(failed.has_value());
    EXPECT_EQ(failed->fire_count, 1);
    ASSERT_TRUE(RunSync(store_->RecordTriggerFire(Fire("fire_5", "trg_a", "ev3"))).has_value());
    auto last = RunSync(store_->CompleteTriggerFire("fire_5", "run_2", "", TimeAt(5)));
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(last->fire_count, 2);
    EXPECT_FALSE(last->enabled);  // max_fires reached
    EXPECT_TRUE(RunSync(store_->PendingTriggerFires())->empty());
    auto fires = RunSync(store_->ListTriggerFires("trg_a", 0));
    ASSERT_TRUE(fires.has_value());
    ASSERT_EQ(fires->size(), 3u);
    EXPECT_EQ((*fires)[0].fire_id, "fire_5");
    EXPECT_EQ((*fires)[0].status, "started");
    EXPECT_EQ((*fires)[0].run_id, "run_2");
    EXPECT_EQ((*fires)[1].status, "failed");
    EXPECT_EQ((*fires)[1].error, "no agent");
    // Deleting the trigger deletes its fires: the same event may fire a new trigger.
    ASSERT_TRUE(RunSync(store_->DeleteTrigger("trg_a")).has_value());
    EXPECT_TRUE(RunSync(store_->ListTriggerFires("trg_a", 0))->empty());
}

TEST_P(AutomationStateTest, MemoryKeysAreSetReadListedAndDeletedByNamespace) {
    auto put = [&](const std::string& ns, const std::string& key, const std::string& value) {
        auto change = RunSync(store_->PutMemory(MemoryEntry{ns, key, value, TimeAt(1)}));
        EXPECT_TRUE(change.has_value());
        return change ? change->kind : std::string();
    };
    EXPECT_EQ(put("global", "config.a", "1"), "created");
    EXPECT_EQ(put("global", "config.a", "1"), "unchanged");
    EXPECT_EQ(put("global", "config.a", "2"), "updated");
    EXPECT_EQ(put("global", "config.b", "\"x\""), "created");
    EXPECT_EQ(put("global", "other", "true"), "created");
    EXPECT_EQ(put("agent:coder", "config.a", "9"), "created");
    auto got = RunSync(store_->GetMemory("global", "config.a"));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->value, "2");
    EXPECT_EQ(RunSync(store_->GetMemory("global", "nope")).error().code(), ErrorCode::kNotFound);
    auto listed = RunSync(store_->ListMemory("global", "config.", 0));
    ASSERT_TRUE(listed.has_value());
    ASSERT_EQ(listed->size(), 2u);
    EXPECT_EQ((*listed)[0].key, "config.a");
    EXPECT_EQ((*listed)[1].key, "config.b");
    EXPECT_EQ(RunSync(store_->ListMemory("global", "", 0))->size(), 3u);
    EXPECT_EQ(RunSync(store_->ListMemory("global", "", 1))->size(), 1u);
    auto deleted = RunSync(store_->DeleteMemory("global", "config.a"));
    ASSERT_TRUE(deleted.has_value());
    EXPECT_EQ(deleted->kind, "deleted");
    EXPECT_EQ(deleted->old_value, "2");
    EXPECT_EQ(RunSync(store_->DeleteMemory("global", "config.a")).error().code(),
              ErrorCode::kNotFound);
    EXPECT_EQ(RunSync(store_->GetMemory("agent:coder", "config.a"))->value, "9");
}

TEST_P(AutomationStateTest, WebhooksAndDeliveriesAreRecordedOnce) {
    WebhookRecord hook{"github", "s3cret", "wf_1", true, "admin", TimeAt(1)};
    ASSERT_TRUE(RunSync(store_->PutWebhook(hook)).has_value());
    EXPECT_EQ(RunSync(store_->PutWebhook(hook)).error().code(), ErrorCode::kAlreadyExists);
    auto hooks = RunSync(store_->ListWebhooks());
    ASSERT_TRUE(hooks.has_value());
    ASSERT_EQ(hooks->size(), 1u);
    EXPECT_EQ((*hooks)[0].secret, "s3cret");
    EXPECT_EQ((*hooks)[0].workflow_id, "wf_1");
    EXPECT_TRUE((*hooks)[0].require_timestamp);
    ASSERT_TRUE(RunSync(store_->RecordWebhookDelivery("github", "d1", TimeAt(2))).has_value());
    EXPECT_EQ(RunSync(store_->RecordWebhookDelivery("github", "d1", TimeAt(3))).error().code(),
              ErrorCode::kAlreadyExists);
    ASSERT_TRUE(RunSync(store_->SetWebhookDeliveryRun("github", "d1", "run_1")).has_value());
    ASSERT_TRUE(RunSync(store_->RecordWebhookDelivery("github", "d2", TimeAt(3))).has_value());
    ASSERT_TRUE(RunSync(store_->DeleteWebhook("github")).has_value());
    EXPECT_EQ(RunSync(store_->DeleteWebhook("github")).error().code(), ErrorCode::kNotFound);
    // Its deliveries went with it.
    ASSERT_TRUE(RunSync(store_->PutWebhook(hook)).has_value());
    EXPECT_TRUE(RunSync(store_->RecordWebhookDelivery("github", "d1", TimeAt(4))).has_value());
}

INSTANTIATE_TEST_SUITE_P(store, AutomationStateTest, ::testing::ValuesIn(Backends()), BackendName);

}  // namespace
}  // namespace strowger::store
