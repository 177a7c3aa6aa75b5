// The daemon's records (docs/formats/daemon_state_v1.md) against every store: the workflow
// registry and its versions, API tokens, retention policies and pruning, run annotations.
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

using fixtures::MakeNewRun;
using fixtures::RunIdFor;
using fixtures::TestChain;
using fixtures::TimeAt;
using strowger::testing::RunSync;

class DaemonStateTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        store_ = GetParam().open(dir_.path());
        ASSERT_NE(store_, nullptr);
    }

    static WorkflowVersion Version(const std::string& id, const std::string& name,
                                   const std::string& sha, int64_t second = 1) {
        WorkflowVersion v;
        v.workflow_id = id;
        v.name = name;
        v.description = "about " + name;
        v.definition_sha256 = sha;
        v.source = "{\"name\":\"" + name + "\"}";
        v.source_format = "json";
        v.origin = "api";
        v.actor = "admin";
        v.created_at = TimeAt(second);
        return v;
    }

    // A run of `workflow` with `events` events (the last at TimeAt(events)) in `status`.
    std::string MakeRun(int n, const std::string& workflow, RunStatus status, int events = 1) {
        TestChain chain(RunIdFor(n));
        auto created = RunSync(store_->CreateRun(MakeNewRun(chain, workflow, "", status)));
        EXPECT_TRUE(created.has_value()) << created.error().ToString();
        if (events > 1) {
            EXPECT_TRUE(
                RunSync(store_->AppendEvents(chain.run_id(), chain.NodeEvents(events - 1), status))
                    .has_value());
        }
        return chain.run_id();
    }

    std::vector<std::string> Remaining() {
        RunFilter filter;
        filter.limit = 0;
        auto page = RunSync(store_->ListRuns(filter));
        EXPECT_TRUE(page.has_value());
        std::vector<std::string> ids =
            fixtures::RunIds(page ? page->runs : std::vector<RunRecord>{});
        std::sort(ids.begin(), ids.end());
        return ids;
    }

    strowger::testing::TempDir dir_;
    std::shared_ptr<Store> store_;
};

TEST_P(DaemonStateTest, WorkflowVersionsAreNumberedAndAnUnchangedDefinitionAddsNone) {
    auto first = RunSync(store_->PutWorkflowVersion(Version("wf_a", "alpha", "sha1", 1)));
    ASSERT_TRUE(first.has_value()) << first.error().ToString();
    EXPECT_EQ(first->version, 1);
    auto same = RunSync(store_->PutWorkflowVersion(Version("wf_a", "alpha", "sha1", 2)));
    ASSERT_TRUE(same.has_value());
    EXPECT_EQ(same->version, 1);
    EXPECT_EQ(same->created_at, TimeAt(1));  // the stored one
    auto second = RunSync(store_->PutWorkflowVersion(Version("wf_a", "alpha2", "sha2", 3)));
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->version, 2);
    ASSERT_TRUE(RunSync(store_->PutWorkflowVersion(Version("wf_b", "beta", "sha3", 4))));

    auto all = RunSync(store_->ListWorkflowVersions(""));
    ASSERT_TRUE(all.has_value()) << all.error().ToString();
    ASSERT_EQ(all->size(), 3u);
    EXPECT_EQ((*all)[0].workflow_id, "wf_a");
    EXPECT_EQ((*all)[0].version, 1);
    EXPECT_EQ((*all)[0].name, "alpha");
    EXPECT_EQ((*all)[0].description, "about alpha");
    EXPECT_EQ((*all)[0].source, "{\"name\":\"alpha\"}");
    EXPECT_EQ((*all)[0].source_format, "json");
    EXPECT_EQ((*all)[0].origin, "api");
    EXPECT_EQ((*all)[0].actor, "admin");
    EXPECT_EQ((*all)[1].version, 2);
    EXPECT_EQ((*all)[1].definition_sha256, "sha2");
    EXPECT_EQ((*all)[2].workflow_id, "wf_b");

    auto one = RunSync(store_->ListWorkflowVersions("wf_b"));
    ASSERT_TRUE(one.has_value());
    ASSERT_EQ(one->size(), 1u);
    EXPECT_EQ((*one)[0].name, "beta");
}

TEST_P(DaemonStateTest, ADeletedWorkflowIsNotListedNorChanged) {
    ASSERT_TRUE(RunSync(store_->PutWorkflowVersion(Version("wf_a", "alpha", "sha1"))));
    ASSERT_TRUE(RunSync(store_->DeleteWorkflow("wf_a", TimeAt(5))));
    EXPECT_TRUE(RunSync(store_->ListWorkflowVersions(""))->empty());
    EXPECT_TRUE(RunSync(store_->ListWorkflowVersions("wf_a"))->empty());
    auto again = RunSync(store_->DeleteWorkflow("wf_a", TimeAt(6)));
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
    auto put = RunSync(store_->PutWorkflowVersion(Version("wf_a", "alpha", "sha2")));
    ASSERT_FALSE(put.has_value());
    EXPECT_EQ(put.error().code(), ErrorCode::kNotFound);
    auto missing = RunSync(store_->DeleteWorkflow("wf_none", TimeAt(6)));
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST_P(DaemonStateTest, TokensAreUniqueByNameAndHashAndRevokedForGood) {
    ApiToken admin{"admin", "admin", std::string(64, 'a'), "serve", TimeAt(1), {}};
    ApiToken ci{"ci", "operator", std::string(64, 'b'), "admin", TimeAt(2), {}};
    ASSERT_TRUE(RunSync(store_->PutToken(admin)));
    ASSERT_TRUE(RunSync(store_->PutToken(ci)));
    ApiToken same_name = ci;
    same_name.token_sha256 = std::string(64, 'c');
    auto dup = RunSync(store_->PutToken(same_name));
    ASSERT_FALSE(dup.has_value());
    EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
    ApiToken same_hash = ci;
    same_hash.name = "other";
    auto dup_hash = RunSync(store_->PutToken(same_hash));
    ASSERT_FALSE(dup_hash.has_value());
    EXPECT_EQ(dup_hash.error().code(), ErrorCode::kAlreadyExists);

    ASSERT_TRUE(RunSync(store_->RevokeToken("ci", TimeAt(9))));
    ASSERT_TRUE(RunSync(store_->RevokeToken("ci", TimeAt(10))));  // no change
    auto tokens = RunSync(store_->ListTokens());
    ASSERT_TRUE(tokens.has_value());
    ASSERT_EQ(tokens->size(), 2u);
    EXPECT_EQ((*tokens)[0].name, "admin");
    EXPECT_TRUE((*tokens)[0].live());
    EXPECT_EQ((*tokens)[0].role, "admin");
    EXPECT_EQ((*tokens)[0].token_sha256, std::string(64, 'a'));
    EXPECT_EQ((*tokens)[0].created_by, "serve");
    EXPECT_EQ((*tokens)[0].created_at, TimeAt(1));
    EXPECT_EQ((*tokens)[1].name, "ci");
    EXPECT_FALSE((*tokens)[1].live());
    EXPECT_EQ((*tokens)[1].revoked_at, TimeAt(9));
    auto missing = RunSync(store_->RevokeToken("nobody", TimeAt(9)));
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST_P(DaemonStateTest, RetentionPoliciesAreReplacedAndDeleted) {
    ASSERT_TRUE(RunSync(store_->PutRetentionPolicy({"", 30, 0})));
    ASSERT_TRUE(RunSync(store_->PutRetentionPolicy({"nightly", 0, 5})));
    ASSERT_TRUE(RunSync(store_->PutRetentionPolicy({"nightly", 7, 10})));
    auto policies = RunSync(store_->ListRetentionPolicies());
    ASSERT_TRUE(policies.has_value());
    ASSERT_EQ(policies->size(), 2u);
    EXPECT_EQ((*policies)[0].workflow, "");
    EXPECT_EQ((*policies)[0].keep_days, 30);
    EXPECT_EQ((*policies)[1].workflow, "nightly");
    EXPECT_EQ((*policies)[1].keep_days, 7);
    EXPECT_EQ((*policies)[1].keep_count, 10);
    ASSERT_TRUE(RunSync(store_->DeleteRetentionPolicy("nightly")));
    auto missing = RunSync(store_->DeleteRetentionPolicy("nightly"));
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
    EXPECT_EQ(RunSync(store_->ListRetentionPolicies())->size(), 1u);
}

TEST_P(DaemonStateTest, PruneKeepsTheNewestFinishedRunsOfEachWorkflowAndNeverUnfinishedOnes) {
    std::vector<std::string> a, b;
    for (int i = 1; i <= 4; ++i) a.push_back(MakeRun(i, "a", RunStatus::kCompleted));
    for (int i = 5; i <= 7; ++i) b.push_back(MakeRun(i, "b", RunStatus::kFailed));
    std::string waiting = MakeRun(8, "a", RunStatus::kWaiting);
    std::string running = MakeRun(9, "b", RunStatus::kRunning);
    std::string paused = MakeRun(10, "a", RunStatus::kPaused);
    ASSERT_TRUE(RunSync(store_->PutRunAnnotation({a[0], "wf_a", 1, "api", "{}", "h", "x"})));

    PruneRequest request;
    request.keep_count = 2;
    auto pruned = RunSync(store_->PruneRuns(request));
    ASSERT_TRUE(pruned.has_value()) << pruned.error().ToString();
    EXPECT_EQ(*pruned, 3);  // a[0], a[1], b[0]
    std::vector<std::string> expected = {a[2], a[3], b[1], b[2], waiting, running, paused};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(Remaining(), expected);
    // The annotation went with its run.
    auto annotation = RunSync(store_->GetRunAnnotation(a[0]));
    ASSERT_FALSE(annotation.has_value());
    EXPECT_EQ(annotation.error().code(), ErrorCode::kNotFound);
}

TEST_P(DaemonStateTest, PruneByWorkflowExceptionsAgeAndSliceSize) {
    std::string old_a = MakeRun(1, "a", RunStatus::kCompleted, 1);   // updated at TimeAt(1)
    std::string new_a = MakeRun(2, "a", RunStatus::kCompleted, 5);   // TimeAt(5)
    std::string old_b = MakeRun(3, "b", RunStatus::kCancelled, 1);   // TimeAt(1)
    std::string old_c = MakeRun(4, "c", RunStatus::kCompleted, 1);   // TimeAt(1)
    std::string old_c2 = MakeRun(5, "c", RunStatus::kCompleted, 1);  // TimeAt(1)

    // Only workflow "a", by age.
    PruneRequest only_a;
    only_a.workflow = "a";
    only_a.finished_before = TimeAt(3);
    EXPECT_EQ(*RunSync(store_->PruneRuns(only_a)), 1);
    // Every workflow but "b", by age, one at a time (oldest first).
    PruneRequest others;
    others.except = {"b"};
    others.finished_before = TimeAt(3);
    others.max_runs = 1;
    EXPECT_EQ(*RunSync(store_->PruneRuns(others)), 1);
    std::vector<std::string> expected = {new_a, old_b, old_c2};
    EXPECT_EQ(Remaining(), expected);
    EXPECT_EQ(*RunSync(store_->PruneRuns(others)), 1);
    EXPECT_EQ(*RunSync(store_->PruneRuns(others)), 0);
    expected = {new_a, old_b};
    EXPECT_EQ(Remaining(), expected);
    // No limits: nothing.
    EXPECT_EQ(*RunSync(store_->PruneRuns(PruneRequest{})), 0);
}

TEST_P(DaemonStateTest, RunAnnotationsBelongToExistingRuns) {
    std::string run = MakeRun(1, "a", RunStatus::kRunning);
    RunAnnotation annotation{run, "wf_a", 3, "webhook", R"({"tenant":"t1"})", "abc", "ci"};
    ASSERT_TRUE(RunSync(store_->PutRunAnnotation(annotation)));
    auto read = RunSync(store_->GetRunAnnotation(run));
    ASSERT_TRUE(read.has_value()) << read.error().ToString();
    EXPECT_EQ(read->workflow_id, "wf_a");
    EXPECT_EQ(read->workflow_version, 3);
    EXPECT_EQ(read->trigger_source, "webhook");
    EXPECT_EQ(read->metadata, R"({"tenant":"t1"})");
    EXPECT_EQ(read->request_sha256, "abc");
    EXPECT_EQ(read->actor, "ci");
    auto orphan = RunSync(store_->PutRunAnnotation({RunIdFor(99), "wf_a", 1, "api", "{}", "", ""}));
    ASSERT_FALSE(orphan.has_value());
    EXPECT_EQ(orphan.error().code(), ErrorCode::kNotFound);
    auto missing = RunSync(store_->GetRunAnnotation(RunIdFor(98)));
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(store, DaemonStateTest, ::testing::ValuesIn(Backends()), BackendName);

}  // namespace
}  // namespace strowger::store
