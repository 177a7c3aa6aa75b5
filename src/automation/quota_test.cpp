// QuotaWatch: the 85 % budget warnings (run and step scopes, tokens and cost, a child run's
// caps, a standing agent's turn), once each, and nothing for runs without budgets.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "automation/quota.hpp"
#include "ledger/run_state.hpp"

namespace strowger::automation {
namespace {

class StillClock : public Clock {
  public:
    SystemTime Now() const override { return SystemTime(std::chrono::seconds(1'800'000'000)); }
    SteadyTime SteadyNow() const override { return SteadyTime(std::chrono::hours(1)); }
};

ledger::Event Ledger(std::string run, int64_t seq, ledger::EventType type, std::string data,
                     std::string node = "") {
    ledger::Event e;
    e.run_id = std::move(run);
    e.seq = seq;
    e.type = type;
    e.data = std::move(data);
    e.node = std::move(node);
    return e;
}

std::string Response(int64_t in, int64_t out, const std::string& cost = "0") {
    return R"({"content":"x","tokens_in":)" + std::to_string(in) + R"(,"tokens_out":)" +
           std::to_string(out) + R"(,"cost_usd":")" + cost + R"("})";
}

// A plan with run limits and two agent steps, `a` (its own token budget) and `b` (none).
model::Plan TwoSteps(std::optional<int64_t> run_tokens, std::optional<double> run_cost,
                     std::optional<int64_t> step_tokens) {
    model::Plan plan;
    plan.workflow_name = "report";
    plan.limits.max_tokens = run_tokens;
    plan.limits.max_cost_usd = run_cost;
    model::AgentSpec limited;
    limited.name = "writer";
    limited.limits.max_tokens = step_tokens;
    model::AgentSpec free;
    free.name = "editor";
    plan.agents = {limited, free};
    model::PlanNode a;
    a.id = "a";
    a.agent = 0;
    model::PlanNode b;
    b.id = "b";
    b.index = 1;
    b.agent = 1;
    plan.nodes = {a, b};
    return plan;
}

class QuotaWatchTest : public ::testing::Test {
  protected:
    QuotaWatchTest() : bus_(clock_), watch_(bus_) {
        bus_.Subscribe([this](const BusEvent& e) {
            seen_.push_back(std::string(EventKindName(e.kind)) + "/" + e.type + "/" + e.subject +
                            ": " + e.description);
            ids_.push_back(e.id);
        });
    }
    StillClock clock_;
    EventBus bus_;
    QuotaWatch watch_;
    std::vector<std::string> seen_;
    std::vector<std::string> ids_;
};

TEST_F(QuotaWatchTest, RunAndStepBudgetsWarnOnceEachAt85Percent) {
    using ledger::EventType;
    watch_.Watch("R1", TwoSteps(1000, 0.01, 100));
    watch_.OnEvent(Ledger("R1", 1, EventType::kRunCreated, R"({"workflow":"report"})"));
    watch_.OnEvent(Ledger("R1", 2, EventType::kLlmResponse, Response(40, 44), "a"));  // 84 %
    EXPECT_TRUE(seen_.empty());
    watch_.OnEvent(Ledger("R1", 3, EventType::kLlmResponse, Response(1, 0), "a"));  // 85 %
    watch_.OnEvent(Ledger("R1", 4, EventType::kLlmResponse, Response(5, 5), "a"));  // again: no
    // Step b has no budget of its own; the run's tokens (870 of 1,000) and cost cross 85 %.
    watch_.OnEvent(Ledger("R1", 5, EventType::kLlmResponse, Response(700, 75, "0.0086"), "b"));
    watch_.OnEvent(Ledger("R1", 6, EventType::kLlmResponse, Response(10, 10, "0.001"), "b"));
    std::vector<std::string> expected = {
        "system/quota_warning/R1: Quota warning: run R1, step 'a', tokens at 85.0% (85 of 100, "
        "scope step, warned at 85%)",
        "system/quota_warning/R1: Quota warning: run R1, tokens at 87.0% (870 of 1000, scope "
        "run, warned at 85%)",
        "system/quota_warning/R1: Quota warning: run R1, cost_usd at 86.0% (0.0086 of 0.01, "
        "scope run, warned at 85%)",
    };
    EXPECT_EQ(seen_, expected);
    ASSERT_EQ(ids_.size(), 3u);
    EXPECT_EQ(ids_[0], "R1:3:quota_warning:step:tokens:a");
    EXPECT_EQ(ids_[1], "R1:5:quota_warning:run:tokens");
    // The run ends: it is forgotten.
    watch_.OnEvent(Ledger("R1", 7, EventType::kRunCompleted, R"({"output":"x"})"));
    EXPECT_EQ(watch_.watched(), 0u);
}

TEST_F(QuotaWatchTest, AStandingAgentsTurnWarnsWithTheAgentsName) {
    using ledger::EventType;
    model::Plan plan = TwoSteps(std::nullopt, std::nullopt, 100);
    plan.workflow_name = "agent:ops";
    plan.nodes.pop_back();
    watch_.Watch("T1", plan);
    watch_.OnEvent(Ledger("T1", 1, EventType::kRunCreated, R"({"workflow":"agent:ops"})"));
    watch_.OnEvent(Ledger("T1", 2, EventType::kLlmResponse, Response(60, 30), "a"));
    ASSERT_EQ(seen_.size(), 1u);
    EXPECT_EQ(seen_[0],
              "system/quota_warning/ops: Quota warning: agent 'ops', tokens at 90.0% (90 of 100, "
              "scope step, warned at 85%)");
}

TEST_F(QuotaWatchTest, AChildRunsCapsAreWatchedAndUnbudgetedRunsAreNot) {
    using ledger::EventType;
    // No budgets: not watched, nothing published however much it spends.
    watch_.Watch("R0", TwoSteps(std::nullopt, std::nullopt, std::nullopt));
    watch_.OnEvent(Ledger("R0", 1, EventType::kRunCreated, R"({"workflow":"report"})"));
    watch_.OnEvent(Ledger("R0", 2, EventType::kLlmResponse, Response(1'000'000, 1), "a"));
    EXPECT_EQ(watch_.watched(), 0u);
    // A child the engine started: its run.created carries what its parent had left.
    watch_.OnEvent(Ledger("C1", 1, EventType::kRunCreated,
                          R"({"workflow":"child","parent_run":"P","max_tokens":50})"));
    watch_.OnEvent(Ledger("C1", 2, EventType::kLlmResponse, Response(20, 20), "s"));
    EXPECT_TRUE(seen_.empty());
    // A grandchild's totals count when it ends.
    watch_.OnEvent(Ledger("C1", 3, EventType::kSubworkflowEnded,
                          R"({"child_run_id":"G","status":"completed","tokens_in":2,)"
                          R"("tokens_out":1,"cost_usd":"0"})",
                          "s"));
    ASSERT_EQ(seen_.size(), 1u);
    EXPECT_EQ(seen_[0],
              "system/quota_warning/C1: Quota warning: run C1, tokens at 86.0% (43 of 50, scope "
              "run, warned at 85%)");
}

// A run resumed in this process (after a restart) is watched from what its ledger says it
// spent: a budget it had already taken past 85 % is not warned about again, one it crosses
// now is.
TEST_F(QuotaWatchTest, AResumedRunIsWatchedFromWhatItSpentBefore) {
    using ledger::EventType;
    model::Plan plan = TwoSteps(1000, std::nullopt, 100);
    ledger::RunState state(2);
    state.run_id = "R9";
    state.tokens_in = 700;
    state.tokens_out = 100;            // the run: 800 of 1,000 (80 %)
    state.nodes[0].spent_tokens = 90;  // step a: 90 of 100, warned before the restart
    watch_.OnResume(plan, state);
    EXPECT_EQ(watch_.watched(), 1u);
    watch_.OnEvent(Ledger("R9", 20, EventType::kLlmResponse, Response(5, 5), "a"));
    EXPECT_TRUE(seen_.empty());  // step a again: no; the run: 810 (81 %)
    watch_.OnEvent(Ledger("R9", 21, EventType::kLlmResponse, Response(30, 20), "b"));
    std::vector<std::string> expected = {
        "system/quota_warning/R9: Quota warning: run R9, tokens at 86.0% (860 of 1000, scope "
        "run, warned at 85%)"};
    EXPECT_EQ(seen_, expected);
}

// An agent's hourly quota spans its runs: one warning when the last hour's use reaches 85 %,
// none for calls after it within the hour, one again an hour after the first.
TEST_F(QuotaWatchTest, AnAgentsHourlyQuotaWarnsOncePerHourAcrossRuns) {
    const SystemTime t0 = clock_.Now();
    auto use = [&](std::string_view run, std::string_view agent, int64_t used,
                   std::chrono::minutes after) {
        watch_.OnQuotaUse({run, "turn", agent, used, 100, t0 + after});
    };
    use("R1", "ops", 84, std::chrono::minutes(0));
    EXPECT_TRUE(seen_.empty());
    use("R2", "ops", 90, std::chrono::minutes(1));
    use("R3", "ops", 99, std::chrono::minutes(30));
    use("R4", "other", 85, std::chrono::minutes(31));  // another agent: its own quota
    use("R5", "ops", 120, std::chrono::minutes(61));   // an hour after the warning: again
    std::vector<std::string> expected = {
        "system/quota_warning/ops: Quota warning: agent 'ops', tokens at 90.0% (90 of 100 in the "
        "last hour, scope agent_hour, warned at 85%)",
        "system/quota_warning/other: Quota warning: agent 'other', tokens at 85.0% (85 of 100 in "
        "the last hour, scope agent_hour, warned at 85%)",
        "system/quota_warning/ops: Quota warning: agent 'ops', tokens at 120.0% (120 of 100 in "
        "the last hour, scope agent_hour, warned at 85%)",
    };
    EXPECT_EQ(seen_, expected);
    ASSERT_EQ(ids_.size(), 3u);
    EXPECT_EQ(ids_[0], "R2:turn:quota_warning:agent_hour:tokens_per_hour:" +
                           std::to_string(ToUnixMicros(t0 + std::chrono::minutes(1))));
}

}  // namespace
}  // namespace strowger::automation
