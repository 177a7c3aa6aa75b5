// The agent loop: tool calls and their ledger events, parallel calls, the allowlist, max_turns,
// approvals (and a crash while waiting), reconciliation after a crash in a destructive call,
// budgets and the hourly quota.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/json.hpp"
#include "core/log.hpp"
#include "engine/engine.hpp"
#include "ledger/chain.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "store/memory/memory_store.hpp"
#include "testing/test_util.hpp"
#include "tools/builtin/builtin_tools.hpp"
#include "tools/tool.hpp"

namespace strowger::engine {
namespace {

using ledger::RunStatus;

// A tool that records its calls; it answers "<name>(<arguments>)" after `latency_ms`, or never
// (until cancelled) when `hang` is set.
class FakeTool : public tools::Tool {
  public:
    FakeTool(std::string name, tools::SafetyClass safety) : safety_(safety) {
        spec_.name = std::move(name);
        spec_.description = "a fake tool for tests";
        spec_.parameters_schema = R"({"type":"object","properties":{}})";
    }
    const providers::ToolSpec& spec() const override { return spec_; }
    tools::SafetyClass safety() const override { return safety_; }
    Awaitable<Result<tools::ToolResult>> Call(std::string arguments,
                                              tools::ToolContext context) override {
        calls.push_back({arguments, context.idempotency_key, context.workspace.string(),
                         context.grants.sandbox});
        ++in_flight;
        max_in_flight = std::max(max_in_flight, in_flight);
        if (hang || latency_ms > 0) {
            asio::steady_timer timer(co_await asio::this_coro::executor);
            timer.expires_after(hang ? std::chrono::hours(1)
                                     : std::chrono::milliseconds(latency_ms));
            auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec) {
                --in_flight;
                co_return CancelledError("cancelled");
            }
        }
        --in_flight;
        co_return tools::ToolResult{spec_.name + "(" + arguments + ")", false};
    }

    struct Seen {
        std::string arguments, idempotency_key, workspace;
        tools::SandboxLimits sandbox;
    };
    std::vector<Seen> calls;
    int in_flight = 0;
    int max_in_flight = 0;
    int64_t latency_ms = 0;
    bool hang = false;

  private:
    providers::ToolSpec spec_;
    tools::SafetyClass safety_;
};

class AgentTest : public ::testing::Test {
  protected:
    void SetUp() override {
        probe_ = std::make_shared<FakeTool>("probe", tools::SafetyClass::kReadOnly);
        deploy_ = std::make_shared<FakeTool>("deploy", tools::SafetyClass::kDestructive);
        registry_->Register(probe_);
        registry_->Register(deploy_);
    }

    std::shared_ptr<const model::Plan> Compile(const std::string& agent, const std::string& steps,
                                               const std::string& script,
                                               const std::string& extra = "") {
        // A file per plan: the registry keeps a scripted provider per file once resolved.
        std::string script_name = "script" + std::to_string(++plans_) + ".yaml";
        dir_.Write(script_name, script);
        std::string path = dir_.Write(
            "flow.yaml", "name: t\n" + extra + "agents:\n  a: {model: \"scripted:" + script_name +
                             "\", " + agent + "}\nsteps:\n" + steps);
        auto loaded = model::LoadWorkflowFile(path);
        EXPECT_TRUE(loaded.ok()) << (loaded.diagnostics.empty() ? ""
                                                                : loaded.diagnostics[0].ToString());
        model::CompileOptions options;
        options.known_tools = {"probe", "deploy", "write_file"};
        auto compiled = model::Compile(loaded.workflow, options);
        EXPECT_TRUE(compiled.ok())
            << (compiled.diagnostics.empty() ? "" : compiled.diagnostics[0].ToString());
        return compiled.plan;
    }

    // What one engine process has: its loop, providers and engine (a test may boot a second
    // one on the same store, as a restart would).
    struct EngineProcess {
        asio::io_context io;
        providers::ProviderRegistry providers{io.get_executor()};
        std::unique_ptr<Engine> engine;
    };
    std::unique_ptr<EngineProcess> Boot() {
        auto process = std::make_unique<EngineProcess>();
        providers::RegisterBuiltinProviders(process->providers);
        process->engine = NewEngine(process->io, process->providers);
        return process;
    }

    std::unique_ptr<Engine> NewEngine(asio::io_context& io,
                                      providers::ProviderRegistry& providers) {
        EngineOptions options;
        options.tools = registry_;
        options.workspace_root = dir_.path() / "workspaces";
        return std::make_unique<Engine>(io.get_executor(), store_, providers, options);
    }

    template <typename T>
    std::optional<T> Run(asio::io_context& io, Awaitable<T> awaitable) {
        return testing::RunOn(io, std::move(awaitable));
    }

    std::vector<ledger::Event> Events(const std::string& run_id) {
        store::EventQuery all;
        auto stored = testing::RunSync(store_->ReadEvents(run_id, all));
        std::vector<ledger::Event> out;
        for (const auto& e : *stored) out.push_back(*ledger::DecodeEvent(e.encoded));
        return out;
    }

    static std::vector<std::string> Types(const std::vector<ledger::Event>& events) {
        std::vector<std::string> out;
        for (const auto& e : events) out.push_back(e.type_name);
        return out;
    }

    static json::object Data(const ledger::Event& e) { return json::parse(e.data).as_object(); }

    testing::TempDir dir_;
    std::shared_ptr<store::MemoryStore> store_ = std::make_shared<store::MemoryStore>();
    std::shared_ptr<tools::ToolRegistry> registry_ = std::make_shared<tools::ToolRegistry>();
    std::shared_ptr<FakeTool> probe_, deploy_;
    int plans_ = 0;
};

TEST_F(AgentTest, ToolCallRoundTripIsRecordedAndTheAnswerComesFromTheLastTurn) {
    auto plan =
        Compile("tools: [probe]", "  - {name: s, agent_name: a, prompt: \"Check {{input}}\"}\n",
                "rules:\n"
                "  - when: {prompt_contains: Check}\n"
                "    tool_calls: [{name: probe, arguments: {path: README.md}}]\n"
                "  - when: {prompt_contains: 'probe('}\n"
                "    reply_template: \"final after ${prompt}\"\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "the repo", {}, {}}));
    ASSERT_TRUE(outcome && *outcome) << (outcome ? (*outcome).error().ToString() : "");
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    EXPECT_EQ((*outcome)->output, "final after probe({\"path\":\"README.md\"})");
    ASSERT_EQ(probe_->calls.size(), 1u);
    EXPECT_EQ(probe_->calls[0].arguments, "{\"path\":\"README.md\"}");
    EXPECT_EQ(probe_->calls[0].idempotency_key, (*outcome)->run_id + "/s/1/1");
    EXPECT_EQ(probe_->calls[0].workspace,
              (dir_.path() / "workspaces" / (*outcome)->run_id).string());
    auto events = Events((*outcome)->run_id);
    std::vector<std::string> expected = {
        "run.created", "run.started", "node.started", "llm.request",    "llm.response", "tool.call",
        "tool.result", "llm.request", "llm.response", "node.completed", "run.completed"};
    EXPECT_EQ(Types(events), expected);
    auto call = Data(events[5]);
    EXPECT_EQ(call["tool"].as_string(), "probe");
    EXPECT_EQ(call["safety"].as_string(), "read_only");
    EXPECT_EQ(call["idempotency_key"].as_string(), (*outcome)->run_id + "/s/1/1");
    EXPECT_EQ(Data(events[6])["content"].as_string(), "probe({\"path\":\"README.md\"})");
    EXPECT_EQ(Data(events[7])["turn"].as_int64(), 2);
    std::vector<std::string> lines;
    for (const auto& e : events) lines.push_back(e.encoded);
    EXPECT_TRUE(ledger::VerifyChain((*outcome)->run_id, lines).ok());
}

TEST_F(AgentTest, SeveralCallsInOneTurnRunInParallel) {
    probe_->latency_ms = 200;
    auto plan = Compile(
        "tools: [probe]", "  - {name: s, agent_name: a, prompt: Go}\n",
        "rules:\n"
        "  - when: {prompt_contains: Go}\n"
        "    tool_calls: [{name: probe, arguments: {n: 1}}, {name: probe, arguments: {n: 2}}, "
        "{name: probe, arguments: {n: 3}}]\n"
        "  - {reply: done}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    EXPECT_EQ(probe_->calls.size(), 3u);
    EXPECT_EQ(probe_->max_in_flight, 3);  // all three were running at once
    // Each call has its own idempotency key.
    EXPECT_EQ(probe_->calls[2].idempotency_key, (*outcome)->run_id + "/s/1/3");
}

TEST_F(AgentTest, AToolOutsideTheAllowlistIsRefusedAndTheAgentGoesOn) {
    auto plan = Compile("tools: [probe]", "  - {name: s, agent_name: a, prompt: Go}\n",
                        "rules:\n"
                        "  - when: {prompt_contains: Go}\n"
                        "    tool_calls: [{name: deploy, arguments: {}}]\n"
                        "  - {reply_template: \"saw: ${prompt}\"}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    EXPECT_EQ((*outcome)->output, "saw: error: tool 'deploy' is not allowed for agent a");
    EXPECT_TRUE(deploy_->calls.empty());
    auto types = Types(Events((*outcome)->run_id));
    EXPECT_EQ(std::count(types.begin(), types.end(), "tool.call"), 0);
    EXPECT_EQ(std::count(types.begin(), types.end(), "tool.result"), 1);
}

TEST_F(AgentTest, AnAgentThatKeepsCallingToolsFailsAtMaxTurns) {
    auto plan =
        Compile("tools: [probe], max_turns: 3", "  - {name: s, agent_name: a, prompt: Go}\n",
                "rules:\n  - {tool_calls: [{name: probe, arguments: {}}]}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kFailed);
    EXPECT_EQ((*outcome)->error,
              "Step 's' failed: the agent did not give a final answer within max_turns (3)");
    EXPECT_EQ(probe_->calls.size(), 2u);  // turns 1 and 2 ran their tools; turn 3 did not
}

TEST_F(AgentTest, ApprovalPausesTheRunDurablyAndAnApprovedCallRunsAfterADecision) {
    auto plan = Compile(
        "tools: [probe, deploy], require_approval: [deploy]",
        "  - {name: ship, agent_name: a, prompt: Ship}\n",
        "rules:\n"
        "  - when: {prompt_contains: Ship}\n"
        "    tool_calls: [{name: probe, arguments: {}}, {name: deploy, arguments: {env: prod}}]\n"
        "  - {reply_template: \"shipped: ${prompt}\"}\n");
    std::string run_id;
    {
        auto process = Boot();
        auto& [io, providers, engine] = *process;
        auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
        ASSERT_TRUE(outcome && *outcome);
        EXPECT_EQ((*outcome)->status, RunStatus::kWaiting);
        run_id = (*outcome)->run_id;
        EXPECT_TRUE(deploy_->calls.empty());
        EXPECT_TRUE(probe_->calls.empty());  // nothing of the turn runs before the decision
    }
    // The process is gone (a crash or an exit while waiting): the task is in the ledger.
    auto record = testing::RunSync(store_->GetRun(run_id));
    EXPECT_EQ(record->status, RunStatus::kWaiting);
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto resumed_early = Run(io, engine->ResumeRun(run_id));
    ASSERT_TRUE(resumed_early);
    ASSERT_FALSE(resumed_early->has_value());
    EXPECT_EQ(resumed_early->error().code(), ErrorCode::kFailedPrecondition);

    auto decided = Run(io, engine->Decide(run_id, "", "approve", "alice", "looks right", ""));
    ASSERT_TRUE(decided && *decided) << (decided ? (*decided).error().ToString() : "");
    EXPECT_EQ(**decided, "ship/1/2");
    auto outcome = Run(io, engine->ResumeRun(run_id, "decided", "alice"));
    ASSERT_TRUE(outcome && *outcome) << (outcome ? (*outcome).error().ToString() : "");
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    ASSERT_EQ(deploy_->calls.size(), 1u);
    EXPECT_EQ(deploy_->calls[0].arguments, "{\"env\":\"prod\"}");
    EXPECT_EQ(probe_->calls.size(), 1u);
    auto events = Events(run_id);
    auto types = Types(events);
    auto created = std::find(types.begin(), types.end(), "human_task.created") - types.begin();
    auto decided_at = std::find(types.begin(), types.end(), "human_task.decided") - types.begin();
    ASSERT_LT(created, static_cast<long>(types.size()));
    ASSERT_LT(decided_at, static_cast<long>(types.size()));
    auto decision = Data(events[static_cast<size_t>(decided_at)]);
    EXPECT_EQ(decision["decision"].as_string(), "approve");
    EXPECT_EQ(decision["actor"].as_string(), "alice");
    EXPECT_EQ(decision["comment"].as_string(), "looks right");
    // The tool ran only after the decision.
    auto first_call = std::find(types.begin(), types.end(), "tool.call") - types.begin();
    EXPECT_GT(first_call, decided_at);
}

TEST_F(AgentTest, ARejectedCallIsReportedToTheAgent) {
    auto plan = Compile("tools: [deploy], require_approval: [deploy]",
                        "  - {name: ship, agent_name: a, prompt: Ship}\n",
                        "rules:\n"
                        "  - when: {prompt_contains: Ship}\n"
                        "    tool_calls: [{name: deploy, arguments: {}}]\n"
                        "  - {reply_template: \"gave up: ${prompt}\"}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto waiting = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(waiting && *waiting);
    ASSERT_EQ((*waiting)->status, RunStatus::kWaiting);
    auto decided =
        Run(io, engine->Decide((*waiting)->run_id, "ship/1/1", "reject", "bob", "not today", ""));
    ASSERT_TRUE(decided && *decided);
    auto outcome = Run(io, engine->ResumeRun((*waiting)->run_id));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    EXPECT_EQ((*outcome)->output, "gave up: error: a human rejected this call (bob: not today)");
    EXPECT_TRUE(deploy_->calls.empty());
}

TEST_F(AgentTest, ACrashDuringADestructiveCallWaitsForReconciliation) {
    deploy_->hang = true;
    auto plan = Compile("tools: [deploy]", "  - {name: ship, agent_name: a, prompt: Ship}\n",
                        "rules:\n"
                        "  - when: {prompt_contains: Ship}\n"
                        "    tool_calls: [{name: deploy, arguments: {}}]\n"
                        "  - {reply: deployed}\n");
    std::string run_id;
    {
        auto process = Boot();
        auto& [io, providers, engine] = *process;
        asio::co_spawn(io, engine->StartRun({plan, "", {}, {}}), asio::detached);
        // Run until the tool is executing, then "crash".
        while (deploy_->in_flight == 0 && io.run_one_for(std::chrono::seconds(5))) {
        }
        ASSERT_EQ(deploy_->in_flight, 1);
        auto page = testing::RunSync(store_->ListRuns({}));
        run_id = page->runs.front().run_id;
        io.stop();
    }
    deploy_->hang = false;
    ASSERT_TRUE(testing::RunSync(
        store_->ReleaseLease(run_id, testing::RunSync(store_->GetRun(run_id))->owner)));
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto resumed = Run(io, engine->ResumeRun(run_id));
    ASSERT_TRUE(resumed && *resumed) << (resumed ? (*resumed).error().ToString() : "");
    EXPECT_EQ((*resumed)->status, RunStatus::kNeedsReconciliation);
    EXPECT_EQ(deploy_->calls.size(), 1u);  // not silently run again
    auto loaded = Run(io, engine->LoadRun(run_id));
    ASSERT_TRUE(loaded && *loaded);
    auto open = (*loaded)->state.OpenTasks();
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0]->kind, "reconciliation");
    EXPECT_EQ(open[0]->task_id, "ship/1/reconcile");

    // Accepting an output completes the step without running anything.
    auto decided = Run(
        io, engine->Decide(run_id, "", "approve", "ops", "deployed by hand", "deployed manually"));
    ASSERT_TRUE(decided && *decided);
    auto outcome = Run(io, engine->ResumeRun(run_id));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    EXPECT_EQ((*outcome)->output, "deployed manually");
    EXPECT_EQ(deploy_->calls.size(), 1u);
}

TEST_F(AgentTest, ACrashDuringAReadOnlyCallIsRetriedAutomatically) {
    probe_->hang = true;
    auto plan = Compile("tools: [probe]", "  - {name: look, agent_name: a, prompt: Look}\n",
                        "rules:\n"
                        "  - when: {prompt_contains: Look}\n"
                        "    tool_calls: [{name: probe, arguments: {}}]\n"
                        "  - {reply: seen}\n");
    std::string run_id;
    {
        auto process = Boot();
        auto& [io, providers, engine] = *process;
        asio::co_spawn(io, engine->StartRun({plan, "", {}, {}}), asio::detached);
        while (probe_->in_flight == 0 && io.run_one_for(std::chrono::seconds(5))) {
        }
        ASSERT_EQ(probe_->in_flight, 1);
        run_id = testing::RunSync(store_->ListRuns({}))->runs.front().run_id;
        io.stop();
    }
    probe_->hang = false;
    probe_->in_flight = 0;
    ASSERT_TRUE(testing::RunSync(
        store_->ReleaseLease(run_id, testing::RunSync(store_->GetRun(run_id))->owner)));
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->ResumeRun(run_id));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    EXPECT_EQ(probe_->calls.size(), 2u);
    EXPECT_EQ(probe_->calls[1].idempotency_key, run_id + "/look/2/1");  // attempt 2
}

TEST_F(AgentTest, StepTokenBudgetFailsTheStepWithoutRetry) {
    auto plan =
        Compile("tools: [probe], limits: {max_tokens: 50}",
                "  - {name: s, agent_name: a, prompt: Go, error_mode: retry, max_retries: 3}\n",
                "rules:\n  - {tool_calls: [{name: probe, arguments: {}}], usage: {input_tokens: "
                "40, output_tokens: 20}}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kFailed);
    EXPECT_EQ((*outcome)->error, "Step 's' failed: budget exceeded: tokens 60 >= 50 (agent a)");
    EXPECT_EQ((*outcome)->error_code, ErrorCode::kResourceExhausted);
    auto events = Events((*outcome)->run_id);
    auto types = Types(events);
    EXPECT_EQ(std::count(types.begin(), types.end(), "node.started"), 1);  // not retried
    auto exceeded = std::find(types.begin(), types.end(), "budget.exceeded") - types.begin();
    ASSERT_LT(exceeded, static_cast<long>(types.size()));
    auto data = Data(events[static_cast<size_t>(exceeded)]);
    EXPECT_EQ(data["scope"].as_string(), "step");
    EXPECT_EQ(data["limit"].as_string(), "tokens");
    EXPECT_EQ(data["used"].as_string(), "60");
    EXPECT_EQ(data["max"].as_string(), "50");
}

TEST_F(AgentTest, ToolCallAndCostBudgetsOfTheStepAndTheRun) {
    auto tool_plan = Compile("tools: [probe], limits: {max_tool_calls: 2}",
                             "  - {name: s, agent_name: a, prompt: Go}\n",
                             "rules:\n  - {tool_calls: [{name: probe, arguments: {}}]}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto tools_outcome = Run(io, engine->StartRun({tool_plan, "", {}, {}}));
    ASSERT_TRUE(tools_outcome && *tools_outcome);
    EXPECT_EQ((*tools_outcome)->status, RunStatus::kFailed)
        << ::testing::PrintToString(Types(Events((*tools_outcome)->run_id)));
    EXPECT_EQ((*tools_outcome)->error,
              "Step 's' failed: budget exceeded: tool_calls 3 > 2 (agent a)");
    EXPECT_EQ(probe_->calls.size(), 2u);
    auto cost_plan = Compile(
        "",
        "  - {name: s, agent_name: a, prompt: Go}\n  - {name: t, agent_name: a, prompt: Go}\n"
        "  - {name: u, agent_name: a, prompt: Go}\n",
        "prices: {input_per_mtok: 1000, output_per_mtok: 1000}\n"
        "rules:\n  - {reply: ok, usage: {input_tokens: 1000, output_tokens: 0}}\n",
        "limits: {max_cost_usd: 1.5}\n");
    // $1 per 1,000 input tokens: step s costs $1; t starts at $1 < $1.5 and reaches $2 (the
    // response that crosses the limit is recorded); u's call is refused before it is made.
    auto cost_outcome = Run(io, engine->StartRun({cost_plan, "", {}, {}}));
    ASSERT_TRUE(cost_outcome && *cost_outcome);
    EXPECT_EQ((*cost_outcome)->status, RunStatus::kFailed);
    EXPECT_EQ((*cost_outcome)->error,
              "Step 'u' failed: budget exceeded: cost_usd 2.0 >= 1.5 (run)");
    auto loaded = Run(io, engine->LoadRun((*cost_outcome)->run_id));
    EXPECT_EQ((*loaded)->state.cost_nano_usd, 2'000'000'000);
    auto events = Events((*cost_outcome)->run_id);
    auto types = Types(events);
    EXPECT_EQ(std::count(types.begin(), types.end(), "llm.response"), 2);
    auto exceeded = std::find(types.begin(), types.end(), "budget.exceeded") - types.begin();
    ASSERT_LT(exceeded, static_cast<long>(types.size()));
    EXPECT_EQ(events[static_cast<size_t>(exceeded)].node, "u");
    EXPECT_EQ(Data(events[static_cast<size_t>(exceeded)])["scope"].as_string(), "run");
}

TEST_F(AgentTest, HourlyQuotaSurvivesANewEngineOnTheSameStore) {
    auto plan =
        Compile("limits: {max_tokens_per_hour: 100}", "  - {name: s, agent_name: a, prompt: Go}\n",
                "rules:\n  - {reply: ok, usage: {input_tokens: 70, output_tokens: 40}}\n");
    {
        auto process = Boot();
        auto& [io, providers, engine] = *process;
        auto first = Run(io, engine->StartRun({plan, "", {}, {}}));
        ASSERT_TRUE(first && *first);
        EXPECT_EQ((*first)->status, RunStatus::kCompleted);  // 110 tokens: over only afterwards
    }
    asio::io_context io;  // "after a restart"
    providers::ProviderRegistry providers(io.get_executor());
    providers::RegisterBuiltinProviders(providers);
    auto engine = NewEngine(io, providers);
    auto second = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(second && *second);
    EXPECT_EQ((*second)->status, RunStatus::kFailed);
    EXPECT_EQ((*second)->error,
              "Step 's' failed: budget exceeded: tokens_per_hour 110 >= 100 (agent a, last hour)");
}

// Budgets hold whatever the counts: the dearest price times the most tokens a call may report,
// five times over, is past int64_t; the sum saturates (it wrapped to a negative cost before,
// and the sixth call went ahead).
TEST_F(AgentTest, ACostBudgetStillStopsARunWhoseCostPassesInt64) {
    std::string steps;
    for (int i = 1; i <= 6; ++i) {
        steps += "  - {name: s" + std::to_string(i) + ", agent_name: a, prompt: Go}\n";
    }
    auto plan = Compile("", steps,
                        "prices: {input_per_mtok: 1000000, output_per_mtok: 1000000}\n"
                        "rules:\n  - {reply: ok, usage: {input_tokens: 1000000000, "
                        "output_tokens: 1000000000}}\n",
                        "limits: {max_cost_usd: 1000000000000}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kFailed);
    EXPECT_EQ((*outcome)->error,
              "Step 's6' failed: budget exceeded: cost_usd 9223372036.854775807 >= "
              "9223372036.854775807 (run)");
    auto loaded = Run(io, engine->LoadRun((*outcome)->run_id));
    ASSERT_TRUE(loaded && *loaded);
    EXPECT_EQ((*loaded)->state.cost_nano_usd, std::numeric_limits<int64_t>::max());
    EXPECT_EQ((*loaded)->state.tokens_in, 5'000'000'000);
    auto types = Types(Events((*outcome)->run_id));
    EXPECT_EQ(std::count(types.begin(), types.end(), "llm.response"), 5);
}

// A provider that reports whatever usage it is given.
class LyingProvider : public providers::Provider {
  public:
    explicit LyingProvider(providers::Usage usage) : usage_(usage) {}
    std::string_view name() const override { return "liar"; }
    Awaitable<Result<providers::Completion>> Complete(providers::CompletionRequest,
                                                      Deadline) override {
        providers::Completion completion;
        completion.content = "ok";
        completion.finish_reason = "stop";
        completion.usage = usage_;
        co_return completion;
    }

  private:
    providers::Usage usage_;
};

TEST_F(AgentTest, UsageOutOfRangeFromAnyProviderIsAProtocolErrorAndNeverRecorded) {
    const std::vector<std::pair<providers::Usage, std::string>> cases = {
        {{-4, 1}, "input_tokens = -4"},
        {{1, std::numeric_limits<int64_t>::max()}, "output_tokens = 9223372036854775807"},
        {{1'000'000'001, 0}, "input_tokens = 1000000001"},
    };
    for (const auto& [usage, what] : cases) {
        auto process = Boot();
        auto& [io, providers, engine] = *process;
        auto liar = std::make_shared<LyingProvider>(usage);
        providers.Register(
            "liar",
            [liar](std::string_view model, std::string_view) -> Result<providers::ResolvedModel> {
                return providers::ResolvedModel{liar, "liar", std::string(model), {1000, 1000}};
            });
        std::string path = dir_.Write("liar.yaml",
                                      "name: t\nlimits: {max_tokens: 100}\nagents:\n"
                                      "  a: {model: \"liar:m\"}\nsteps:\n"
                                      "  - {name: s, agent_name: a, prompt: Go}\n"
                                      "  - {name: t, agent_name: a, prompt: Go}\n");
        auto loaded = model::LoadWorkflowFile(path);
        ASSERT_TRUE(loaded.ok());
        auto compiled = model::Compile(loaded.workflow, {});
        ASSERT_TRUE(compiled.ok());
        auto outcome = Run(io, engine->StartRun({compiled.plan, "", {}, {}}));
        ASSERT_TRUE(outcome && *outcome);
        EXPECT_EQ((*outcome)->status, RunStatus::kFailed) << what;
        EXPECT_EQ((*outcome)->error, "Step 's' failed: liar: usage reports " + what +
                                         " (expected an integer from 0 to 1000000000)");
        EXPECT_EQ((*outcome)->error_code, ErrorCode::kInternal);
        auto types = Types(Events((*outcome)->run_id));
        EXPECT_EQ(std::count(types.begin(), types.end(), "llm.response"), 0) << what;
    }
}

// Redaction is for what is recorded: a tool call whose arguments hold a registered secret is
// refused (it would have run with "[REDACTED]" in place of the key, which is what the ledger
// shows); the other calls of the turn run with their arguments exactly as the model wrote them.
TEST_F(AgentTest, AToolCallWhoseArgumentsHoldASecretIsRefusedNotRunRedacted) {
    registry_->Register(tools::builtin::MakeWriteFileTool());
    const std::string secret = "agent-test-secret-5f0e1d2c3b";
    RegisterSecret(secret);
    auto plan = Compile(
        "tools: [write_file]", "  - {name: s, agent_name: a, prompt: Go}\n",
        "rules:\n"
        "  - when: {prompt_contains: Go}\n"
        "    tool_calls:\n"
        "      - {name: write_file, arguments: {path: key.txt, content: \"key=" +
            secret +
            "\"}}\n"
            "      - {name: write_file, arguments: {path: plain.txt, content: \"no key here\"}}\n"
            "  - {reply: done}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(outcome && *outcome) << (outcome ? (*outcome).error().ToString() : "");
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    const auto workspace = dir_.path() / "workspaces" / (*outcome)->run_id;
    EXPECT_FALSE(std::filesystem::exists(workspace / "key.txt"));  // not "key=[REDACTED]"
    std::ifstream plain(workspace / "plain.txt");
    std::stringstream written;
    written << plain.rdbuf();
    EXPECT_EQ(written.str(), "no key here");

    auto events = Events((*outcome)->run_id);
    std::vector<std::string> expected = {"run.created",  "run.started",    "node.started",
                                         "llm.request",  "llm.response",   "tool.result",
                                         "tool.call",    "tool.result",    "llm.request",
                                         "llm.response", "node.completed", "run.completed"};
    EXPECT_EQ(Types(events), expected);
    auto response = Data(events[4]);
    EXPECT_EQ(response["tool_calls"].as_array()[0].as_object()["arguments"].as_string(),
              "{\"path\":\"key.txt\",\"content\":\"key=[REDACTED]\"}");
    auto refusal = Data(events[5]);
    EXPECT_EQ(refusal["call_id"].as_string(), "call_1_1");
    EXPECT_TRUE(refusal["is_error"].as_bool());
    EXPECT_NE(std::string(refusal["content"].as_string()).find("contain a secret value"),
              std::string::npos);
    EXPECT_EQ(Data(events[6])["arguments"].as_string(),
              "{\"path\":\"plain.txt\",\"content\":\"no key here\"}");
    for (const auto& event : events) {
        EXPECT_EQ(event.encoded.find(secret), std::string::npos) << event.type_name;
    }
}

// A workflow's sandbox numbers may be any positive int64: their conversion to bytes and
// milliseconds saturates (timeout_secs * 1000 wrapped to -1000 ms).
TEST_F(AgentTest, HugeSandboxLimitsSaturateInsteadOfWrapping) {
    const std::string most = "9223372036854775807";
    auto plan = Compile("tools: [probe], sandbox: {timeout_secs: " + most + ", memory_mb: " + most +
                            ", max_file_size_mb: " + most + ", max_output_kb: " + most + "}",
                        "  - {name: s, agent_name: a, prompt: Go}\n",
                        "rules:\n  - when: {prompt_contains: Go}\n"
                        "    tool_calls: [{name: probe, arguments: {}}]\n  - {reply: done}\n");
    auto process = Boot();
    auto& [io, providers, engine] = *process;
    auto outcome = Run(io, engine->StartRun({plan, "", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    ASSERT_EQ(probe_->calls.size(), 1u);
    const tools::SandboxLimits& limits = probe_->calls[0].sandbox;
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    EXPECT_EQ(limits.wall_timeout_ms, kMax);
    EXPECT_EQ(limits.memory_bytes, kMax);
    EXPECT_EQ(limits.max_file_size_bytes, kMax);
    EXPECT_EQ(limits.max_output_bytes, kMax);
}

}  // namespace
}  // namespace strowger::engine
