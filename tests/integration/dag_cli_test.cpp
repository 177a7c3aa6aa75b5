// The DAG form and typed inputs through the real binary: --input-json and --set checked
// against `inputs:` before anything is stored, validate's counts and its every-problem-at-once
// report for graphs, and human tasks (quorum, assignees, progress notes, idempotency keys)
// decided from the command line.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "integration/harness.hpp"

namespace strowger::testing {
namespace {

constexpr char kEchoScript[] = R"y(rules:
  - {reply_template: "${step}(${prompt})"}
)y";

// The linear form with typed inputs: `notes` is never read (a warning).
constexpr char kTypedLinear[] = R"y(name: typed
agents:
  writer: {model: "scripted:script.yaml"}
inputs:
  - {name: amount, type: number, required: true, description: "order value in EUR"}
  - {name: customer, type: string, default: anonymous}
  - {name: notes, type: string}
steps:
  - {name: a, agent_name: writer, prompt: "Order {{amount}} for {{run.input.customer}}"}
)y";

// The DAG form: a condition on a typed input routes the run.
constexpr char kTypedDag[] = R"y(name: routed
default_model: "scripted:script.yaml"
inputs:
  amount: {type: number, required: true}
  region: {type: string, default: eu}
nodes:
  - {id: risk, type: condition, config: {left: "{{amount}}", operator: gte, right: 100_000}}
  - {id: legal, type: agent, config: {prompt: "Legal review of {{amount}} in {{region}}", upstream: false}}
  - {id: auto, type: agent, config: {prompt: "Auto report for {{run.input.amount}}", upstream: false}}
edges:
  - {from: risk, to: legal, signal: "true"}
  - {from: risk, to: auto, signal: "false"}
)y";

// Three problems at once: a cycle, an edge to an unknown node, a bad operator.
constexpr char kBrokenDag[] = R"y(name: broken
default_model: "scripted:script.yaml"
nodes:
  - {id: a, type: agent}
  - {id: b, type: agent}
  - {id: c, type: condition, config: {left: "{{input}}", operator: sideways, right: x}}
edges:
  - {from: a, to: b}
  - {from: b, to: a}
  - {from: b, to: nowhere}
  - {from: a, to: c}
)y";

// A human task that needs two distinct approvers.
constexpr char kQuorum[] = R"y(name: quorum
default_model: "scripted:script.yaml"
nodes:
  - {id: draft, type: agent, config: {prompt: "Draft {{input}}"}}
  - id: legal
    type: human_task
    config: {title: "Legal review", assignee_refs: ["role:legal"], approval_mode: quorum, required_count: 2}
  - {id: publish, type: agent, config: {prompt: "Publish", upstream: false}}
  - {id: revise, type: agent, config: {prompt: "Revise", upstream: false}}
edges:
  - {from: draft, to: legal}
  - {from: legal, to: publish, signal: approved}
  - {from: legal, to: revise, signal: request_changes}
)y";

std::string DataString(const LedgerEvent* event, std::string_view key) {
    return event ? std::string(JsonString(event->data, key)) : "<no event>";
}

class DagCliTest : public ::testing::Test {
  protected:
    void SetUp() override { env_.Write("script.yaml", kEchoScript); }

    bool StoreExists() const { return std::filesystem::exists(env_.store_path()); }

    CliEnvironment env_;
};

// --- typed inputs ------------------------------------------------------------------------------

TEST_F(DagCliTest, SetFillsTypedInputsAndDefaultsInTheLinearForm) {
    env_.Write("typed.yaml", kTypedLinear);
    auto result = env_.Run({"run", "typed.yaml", "--set", "amount=120000"});
    ASSERT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.out, "a(Order 120000 for anonymous)\n");
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(DataString(FindEvent(env_.Events(ids[0]), "run.created"), "input"),
              R"({"amount":120000,"customer":"anonymous"})");

    auto json = env_.Run({"run", "typed.yaml", "--input-json",
                          R"({"customer": "ACME", "amount": 12.5})", "--set", "customer=Initech"});
    ASSERT_EQ(json.exit_code(), 0) << json.err;
    EXPECT_EQ(json.out, "a(Order 12.5 for Initech)\n");
}

TEST_F(DagCliTest, BadInputsAreRefusedBeforeAnythingIsStored) {
    env_.Write("typed.yaml", kTypedLinear);
    auto missing = env_.Run({"run", "typed.yaml"});
    EXPECT_EQ(missing.exit_code(), 2);
    EXPECT_EQ(missing.err, "strowger: input \"amount\" (number) is required: order value in EUR\n");
    auto wrong = env_.Run({"run", "typed.yaml", "--input-json",
                           R"({"amount": "lots", "custmer": "x"})", "--set", "notes"});
    EXPECT_EQ(wrong.exit_code(), 2);
    EXPECT_EQ(wrong.err,
              "strowger: input \"amount\" must be a number, got a string\n"
              "strowger: no input named \"custmer\" (did you mean \"customer\"?); the workflow "
              "declares amount, customer, notes\n"
              "strowger: --set \"notes\": expected name=value\n");
    auto typed = env_.Run({"run", "typed.yaml", "--set", "amount=lots"});
    EXPECT_EQ(typed.exit_code(), 2);
    EXPECT_EQ(typed.err, "strowger: --set: input \"amount\" must be a number, got \"lots\"\n");
    EXPECT_FALSE(StoreExists()) << "a refused input left a store behind";
    EXPECT_TRUE(env_.RunIds().empty());
}

TEST_F(DagCliTest, ValidateWarnsAboutUnusedInputsAndChecksAGivenInput) {
    env_.Write("typed.yaml", kTypedLinear);
    auto result = env_.Run({"validate", "typed.yaml"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.out, "typed.yaml: ok (1 steps, 1 agents, 3 inputs)\n");
    EXPECT_NE(
        result.err.find("typed.yaml:7:5: warning: inputs[2]: input \"notes\" is never read by a "
                        "template"),
        std::string::npos)
        << result.err;
    auto bad = env_.Run({"validate", "typed.yaml", "--set", "amount=x"});
    EXPECT_EQ(bad.exit_code(), 2);
    EXPECT_NE(bad.err.find("input \"amount\" must be a number"), std::string::npos) << bad.err;
}

TEST_F(DagCliTest, TypedInputsRouteADag) {
    env_.Write("routed.yaml", kTypedDag);
    auto big = env_.Run({"run", "routed.yaml", "--set", "amount=250000"});
    ASSERT_EQ(big.exit_code(), 0) << big.err;
    EXPECT_EQ(big.out, R"j({"legal":"legal(Legal review of 250000 in eu)"})j"
                       "\n");  // sinks
    auto small =
        env_.Run({"run", "routed.yaml", "--input-json", R"({"amount": 99, "region": "us"})"});
    ASSERT_EQ(small.exit_code(), 0) << small.err;
    EXPECT_EQ(small.out, R"j({"auto":"auto(Auto report for 99)"})j"
                         "\n");
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 2u);
    auto events = env_.Events(ids[1]);
    EXPECT_EQ(DataString(FindEvent(events, "node.skipped", "legal"), "reason"), "pruned");
}

// --- validate ----------------------------------------------------------------------------------

TEST_F(DagCliTest, ValidateCountsNodesAndEdges) {
    env_.Write("routed.yaml", kTypedDag);
    env_.Write("quorum.yaml", kQuorum);
    auto result = env_.Run({"validate", "routed.yaml", "quorum.yaml"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.out,
              "routed.yaml: ok (3 nodes, 2 edges, 1 agents, 2 inputs)\n"
              "quorum.yaml: ok (4 nodes, 3 edges, 1 agents)\n");
}

TEST_F(DagCliTest, ValidateReportsEveryGraphProblemAtOnce) {
    env_.Write("broken.yaml", kBrokenDag);
    auto result = env_.Run({"validate", "broken.yaml"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.out, "");
    EXPECT_NE(result.err.find("broken.yaml:4:5: nodes[0]: the edges make a cycle: b -> a -> b"),
              std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find(
                  "broken.yaml:6:68: nodes[2].config.operator: unknown operator \"sideways\""),
              std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find("broken.yaml:10:19: edges[2].to: unknown node \"nowhere\""),
              std::string::npos)
        << result.err;
}

// Timeouts and retry delays are at most a year: near 2^63 they overflowed arming a timer.
TEST_F(DagCliTest, ValidateRefusesTimeoutsAndDelaysOverAYear) {
    env_.Write("replies.yaml", "default: ok\n");
    env_.Write("long.yaml",
               "name: long\ndefault_model: \"scripted:replies.yaml\"\nnodes:\n"
               "  - {id: a, type: agent, config: {prompt: hi}, policy: {timeout_ms: "
               "9223372036854775807, initial_delay_ms: 31536000001}}\n"
               "  - {id: h, type: human_task, config: {title: t, timeout_ms: 31536000001}}\n"
               "edges:\n  - {from: a, to: h}\n");
    auto result = env_.Run({"validate", "long.yaml"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_NE(result.err.find("long.yaml:4:69: nodes[0].policy.timeout_ms: must be at most "
                              "31536000000, got 9223372036854775807"),
              std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find("nodes[0].policy.initial_delay_ms: must be at most 31536000000, "
                              "got 31536000001"),
              std::string::npos)
        << result.err;
    EXPECT_NE(result.err.find("nodes[1].config.timeout_ms: expected a whole number from 1 to "
                              "31536000000"),
              std::string::npos)
        << result.err;
}

// --- human tasks -------------------------------------------------------------------------------

TEST_F(DagCliTest, AQuorumIsDecidedByTwoActorsThroughTheCli) {
    env_.Write("quorum.yaml", kQuorum);
    auto waiting = env_.Run({"run", "quorum.yaml", "--input", "the contract"});
    ASSERT_EQ(waiting.exit_code(), 3) << waiting.err;
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 1u);
    const std::string run = ids[0];

    auto mine = env_.Run({"tasks", "list", "--assignee", "role:legal", "--json"});
    ASSERT_EQ(mine.exit_code(), 0) << mine.err;
    auto listed = ParseJson(mine.out);
    ASSERT_TRUE(listed.has_value()) << mine.out;
    const auto& tasks = listed->as_object().at("tasks").as_array();
    ASSERT_EQ(tasks.size(), 1u) << mine.out;
    EXPECT_EQ(tasks[0].as_object().at("task_id").as_string(), "legal");
    EXPECT_EQ(tasks[0].as_object().at("approval_mode").as_string(), "quorum");
    EXPECT_EQ(tasks[0].as_object().at("required_count").as_int64(), 2);
    auto others = env_.Run({"tasks", "list", "--assignee", "role:finance", "--json"});
    ASSERT_EQ(others.exit_code(), 0) << others.err;
    EXPECT_EQ(others.out, "{\"tasks\":[]}\n");

    // One approval, sent twice with one key: recorded once; the run still waits.
    for (int i = 0; i < 2; ++i) {
        auto first = env_.Run({"tasks", "decide", run, "legal", "--action", "approve", "--actor",
                               "ana", "--comment", "fine by me", "--idempotency-key", "ana-1"});
        EXPECT_EQ(first.exit_code(), 3) << first.err;
        EXPECT_NE(first.err.find("task legal (1 of 2 approvals)"), std::string::npos) << first.err;
    }
    auto note = env_.Run({"tasks", "decide", run, "legal", "--action", "progress", "--actor", "bob",
                          "--comment", "reading clause 4"});
    EXPECT_EQ(note.exit_code(), 3) << note.err;
    EXPECT_EQ(env_.RunStatus(run), "waiting");

    auto second = env_.Run({"approve", run, "legal", "--actor", "bob"});
    ASSERT_EQ(second.exit_code(), 0) << second.err;
    EXPECT_EQ(second.out, R"j({"publish":"publish(Publish)"})j"
                          "\n");  // revise pruned
    EXPECT_EQ(env_.RunStatus(run), "completed");

    auto events = env_.Events(run);
    EXPECT_EQ(CountEvents(events, "human_task.decided"), 3) << Describe(events);
    const LedgerEvent* completed = FindEvent(events, "human_task.completed");
    ASSERT_NE(completed, nullptr) << Describe(events);
    EXPECT_EQ(DataString(completed, "signal"), "approved");
    auto output = ParseJson(DataString(completed, "output"));
    ASSERT_TRUE(output.has_value());
    EXPECT_EQ(json::serialize(output->as_object().at("approvals")), R"(["ana","bob"])");
    EXPECT_EQ(DataString(FindEvent(events, "node.skipped", "revise"), "reason"), "pruned");
}

TEST_F(DagCliTest, RequestChangesTakesItsOwnEdge) {
    env_.Write("quorum.yaml", kQuorum);
    ASSERT_EQ(env_.Run({"run", "quorum.yaml", "--input", "x"}).exit_code(), 3);
    const std::string run = env_.RunIds().at(0);
    auto bad = env_.Run({"tasks", "decide", run, "legal", "--action", "shrug"});
    EXPECT_EQ(bad.exit_code(), 2);
    auto sent_back = env_.Run({"tasks", "decide", run, "legal", "--action", "request_changes",
                               "--actor", "ana", "--comment", "clause 4"});
    ASSERT_EQ(sent_back.exit_code(), 0) << sent_back.err;
    EXPECT_EQ(sent_back.out, R"j({"revise":"revise(Revise)"})j"
                             "\n");
    auto events = env_.Events(run);
    EXPECT_EQ(DataString(FindEvent(events, "human_task.completed"), "signal"), "request_changes");
    EXPECT_EQ(DataString(FindEvent(events, "node.skipped", "publish"), "reason"), "pruned");
}

// --- plan and the dry run ---------------------------------------------------------------------

TEST_F(DagCliTest, PlanShowsLayersSignalsAndTheDryRunPath) {
    env_.Write("routed.yaml", kTypedDag);
    auto text = env_.Run({"plan", "routed.yaml", "--set", "amount=250000"});
    ASSERT_EQ(text.exit_code(), 0) << text.err;
    EXPECT_NE(text.out.find("layer 1:\n  risk [condition] emits: true, false\n"), std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("    from: risk (on \"true\")\n"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("output: a JSON object of the sinks' outputs (legal, auto)"),
              std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("  risk: runs, signal \"true\" (250000 gte 100000)\n"),
              std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("would run: risk, legal\npruned: auto\nunknown until run time: "
                            "(none)\n"),
              std::string::npos)
        << text.out;
    EXPECT_TRUE(env_.RunIds().empty()) << "plan stored a run";

    auto json =
        env_.Run({"plan", "routed.yaml", "--format", "json", "--input-json", R"({"amount": 5})"});
    ASSERT_EQ(json.exit_code(), 0) << json.err;
    auto parsed = ParseJson(json.out);
    ASSERT_TRUE(parsed.has_value()) << json.out;
    const auto& dry = parsed->as_object().at("dry_run").as_object();
    EXPECT_EQ(json::serialize(dry.at("runs")), R"(["risk","auto"])");
    EXPECT_EQ(json::serialize(dry.at("pruned")), R"(["legal"])");
    EXPECT_EQ(dry.at("input").as_string(), R"({"amount":5,"region":"eu"})");
    EXPECT_EQ(json::serialize(parsed->as_object().at("edges")),
              R"([{"from":"risk","to":"legal","signal":"true"},)"
              R"({"from":"risk","to":"auto","signal":"false"}])");

    auto missing = env_.Run({"plan", "routed.yaml", "--set", "region=us"});
    EXPECT_EQ(missing.exit_code(), 2);
    EXPECT_EQ(missing.err, "strowger: input \"amount\" (number) is required\n");
}

TEST_F(DagCliTest, PlanLeavesWhatAModelOrAPersonDecidesUnknown) {
    env_.Write("quorum.yaml", kQuorum);
    auto text = env_.Run({"plan", "quorum.yaml", "--input", "the contract"});
    ASSERT_EQ(text.exit_code(), 0) << text.err;
    EXPECT_NE(text.out.find("would run: draft, legal\npruned: (none)\nunknown until run time: "
                            "publish, revise\n"),
              std::string::npos)
        << text.out;
    auto dot = env_.Run({"plan", "quorum.yaml", "--format", "dot"});
    ASSERT_EQ(dot.exit_code(), 0) << dot.err;
    EXPECT_NE(dot.out.find("\"legal\" -> \"publish\" [label=\"approved\"];"), std::string::npos)
        << dot.out;
    EXPECT_NE(dot.out.find("shape=hexagon"), std::string::npos) << dot.out;
    auto mermaid = env_.Run({"plan", "quorum.yaml", "--format", "mermaid"});
    ASSERT_EQ(mermaid.exit_code(), 0) << mermaid.err;
    EXPECT_NE(mermaid.out.find("  n1 -->|\"request_changes\"| n3\n"), std::string::npos)
        << mermaid.out;
}

// --- init --------------------------------------------------------------------------------------

TEST_F(DagCliTest, InitWritesARunnableTemplate) {
    auto list = env_.Run({"init", "--list"});
    ASSERT_EQ(list.exit_code(), 0) << list.err;
    for (const char* name : {"contract_review", "debate_review", "order_delay_diagnosis",
                             "rag_release_gate", "ticket_triage"}) {
        EXPECT_NE(("\n" + list.out).find(std::string("\n") + name + " "), std::string::npos)
            << name << " in:\n"
            << list.out;
    }
    auto init = env_.Run({"init", "--template", "ticket_triage", "triage"});
    ASSERT_EQ(init.exit_code(), 0) << init.err;
    EXPECT_TRUE(std::filesystem::exists(env_.dir() / "triage" / "ticket_triage.yaml"));
    EXPECT_TRUE(std::filesystem::exists(env_.dir() / "triage" / "ticket_triage.replies.yaml"));
    // The child workflow its subworkflow node runs.
    EXPECT_TRUE(std::filesystem::exists(env_.dir() / "triage" / "polish_reply.yaml"));
    auto run =
        env_.Run({"run", "triage/ticket_triage.yaml", "--set", "ticket=The app crashes on start"});
    ASSERT_EQ(run.exit_code(), 0) << run.err;
    EXPECT_EQ(run.out,
              "Hello! Polish this reply to the customer; keep it under 80 words:\n\nDraft: please "
              "update to 4.2.1, which fixes the crash on start.\n");
    auto again = env_.Run({"init", "--template", "ticket_triage", "triage"});
    EXPECT_EQ(again.exit_code(), 2);
    EXPECT_NE(again.err.find("exists; use --force"), std::string::npos) << again.err;
    // A tool node reads the data file written beside the workflow (workspace: ".").
    auto delay = env_.Run({"init", "--template", "order_delay_diagnosis", "delay"});
    ASSERT_EQ(delay.exit_code(), 0) << delay.err;
    EXPECT_NE(delay.out.find("delay_playbook.md"), std::string::npos) << delay.out;
    auto diagnosis = env_.Run({"run", "delay/order_delay_diagnosis.yaml", "--set", "order_id=SO-7",
                               "--set", "days_late=1"});
    ASSERT_EQ(diagnosis.exit_code(), 0) << diagnosis.err;
    EXPECT_NE(diagnosis.out.find("We are sorry"), std::string::npos) << diagnosis.out;
    auto typo = env_.Run({"init", "--template", "ticket_triag"});
    EXPECT_EQ(typo.exit_code(), 2);
    EXPECT_NE(typo.err.find("(did you mean \"ticket_triage\"?)"), std::string::npos) << typo.err;
}

// --- subworkflow budgets -----------------------------------------------------------------------

// usage.yaml: every call costs 40 tokens; child.yaml: a chain of three calls on it.
void WriteThreeCallChildTo(CliEnvironment& env) {
    env.Write("usage.yaml", R"(rules:
  - {reply_template: "[${step}] ok", usage: {input_tokens: 30, output_tokens: 10}}
)");
    env.Write("child.yaml", R"(name: child
default_model: "scripted:usage.yaml"
nodes:
  - {id: c1, type: agent, config: {prompt: "one {{input}}"}}
  - {id: c2, type: agent, config: {prompt: "two {{input}}"}}
  - {id: c3, type: agent, config: {prompt: "three {{input}}"}}
edges:
  - {from: c1, to: c2}
  - {from: c2, to: c3}
)");
}

// A child run spends from its parent's budgets: it is created with what the parent has left
// (run.created max_tokens), stops when that is spent, and what it spent is charged to the
// parent once (subworkflow.ended), so the parent's totals include it.
TEST_F(DagCliTest, ASubworkflowSpendsFromItsParentsBudgets) {
    WriteThreeCallChildTo(env_);
    auto parent = [&](int max_tokens) {
        return "name: parent\ndefault_model: \"scripted:usage.yaml\"\nlimits: {max_tokens: " +
               std::to_string(max_tokens) + R"(}
nodes:
  - {id: plan, type: agent, config: {prompt: "Plan {{input}}"}}
  - {id: research, type: subworkflow, config: {workflow: child.yaml}}
edges:
  - {from: plan, to: research}
)";
    };
    auto tokens = [](const LedgerEvent* e) {
        return e ? JsonInt(e->data, "tokens_in") + JsonInt(e->data, "tokens_out") : -1;
    };

    // Enough for everything: the parent's totals are its own call's plus its child's three.
    env_.Write("rich.yaml", parent(1000));
    auto rich = env_.Run({"run", "rich.yaml", "--input", "x", "--json"});
    ASSERT_EQ(rich.exit_code(), 0) << rich.err;
    auto record = ParseJson(rich.out);
    ASSERT_TRUE(record && record->is_object()) << rich.out;
    EXPECT_EQ(JsonInt(record->as_object(), "input_tokens"), 4 * 30) << rich.out;
    EXPECT_EQ(JsonInt(record->as_object(), "output_tokens"), 4 * 10) << rich.out;
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 2u);  // parent, then child (ULIDs sort by creation)
    auto parent_events = env_.Events(ids[0]);
    const LedgerEvent* ended = FindEvent(parent_events, "subworkflow.ended", "research");
    ASSERT_NE(ended, nullptr) << Describe(parent_events);
    EXPECT_EQ(tokens(ended), 120);
    EXPECT_EQ(DataString(ended, "child_run_id"), ids[1]);
    EXPECT_EQ(DataString(ended, "status"), "completed");
    auto child_events = env_.Events(ids[1]);
    ASSERT_FALSE(child_events.empty());
    EXPECT_EQ(JsonInt(child_events[0].data, "max_tokens"), 1000 - 40) << child_events[0].line;

    // 100 tokens: the plan spends 40, the child may spend 60: its third call is refused.
    env_.Write("poor.yaml", parent(100));
    auto poor = env_.Run({"run", "poor.yaml", "--input", "x", "--json"});
    EXPECT_EQ(poor.exit_code(), 1) << poor.err;
    ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 4u);
    child_events = env_.Events(ids[3]);
    EXPECT_EQ(JsonInt(child_events[0].data, "max_tokens"), 60) << child_events[0].line;
    EXPECT_EQ(CountEvents(child_events, "llm.response"), 2) << Describe(child_events);
    const LedgerEvent* exceeded = FindEvent(child_events, "budget.exceeded");
    ASSERT_NE(exceeded, nullptr) << Describe(child_events);
    EXPECT_EQ(DataString(exceeded, "scope"), "run");
    parent_events = env_.Events(ids[2]);
    ended = FindEvent(parent_events, "subworkflow.ended", "research");
    ASSERT_NE(ended, nullptr) << Describe(parent_events);
    EXPECT_EQ(tokens(ended), 80);
    EXPECT_EQ(DataString(ended, "status"), "failed");
    record = ParseJson(poor.out);
    ASSERT_TRUE(record && record->is_object()) << poor.out;
    EXPECT_EQ(JsonInt(record->as_object(), "input_tokens") +
                  JsonInt(record->as_object(), "output_tokens"),
              120);
    auto audit = env_.Run({"audit", "verify", "--all"});
    EXPECT_EQ(audit.exit_code(), 0) << audit.out;
}

// Children a for_each runs together share what the parent has left: each is capped at an
// equal share (held by the parent while it runs, recorded in subworkflow.started), so together
// they cannot spend more than the parent's budget. Before, each got all of it: three children
// of 3 × 40 tokens spent 360 against a budget of 240.
TEST_F(DagCliTest, ChildrenInFlightShareTheParentsBudget) {
    WriteThreeCallChildTo(env_);
    env_.Write("fan.yaml", R"(name: fan
default_model: "scripted:usage.yaml"
limits: {max_tokens: 240}
nodes:
  - id: each
    type: for_each
    config: {items: ["a", "b", "c"], workflow: child.yaml, max_parallel: 3}
)");
    auto run = env_.Run({"run", "fan.yaml", "--input", "x", "--json"});
    EXPECT_EQ(run.exit_code(), 1) << run.out << run.err;
    auto record = ParseJson(run.out);
    ASSERT_TRUE(record && record->is_object()) << run.out;
    // Each child was capped at 80: two calls (the third is refused at 80 spent).
    EXPECT_EQ(JsonInt(record->as_object(), "input_tokens") +
                  JsonInt(record->as_object(), "output_tokens"),
              240)
        << run.out;
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 4u);  // the parent, then its three children
    auto parent_events = env_.Events(ids[0]);
    int started = 0;
    for (const auto& e : parent_events) {
        if (e.type != "subworkflow.started") continue;
        ++started;
        EXPECT_EQ(JsonInt(e.data, "max_tokens"), 80) << e.line;
    }
    EXPECT_EQ(started, 3) << Describe(parent_events);
    for (size_t i = 1; i < ids.size(); ++i) {
        auto child_events = env_.Events(ids[i]);
        ASSERT_FALSE(child_events.empty());
        EXPECT_EQ(JsonInt(child_events[0].data, "max_tokens"), 80) << child_events[0].line;
        EXPECT_EQ(CountEvents(child_events, "llm.response"), 2) << Describe(child_events);
        EXPECT_NE(FindEvent(child_events, "budget.exceeded"), nullptr) << Describe(child_events);
    }

    // Two at a time over three items, with room for both: the first two get 120 each and
    // finish (3 calls, 120 tokens); the third starts when one ends, with what is free then —
    // nothing (120 spent, 120 held) — so it starts no child and fails for the budget.
    env_.Write("pair.yaml", R"(name: pair
default_model: "scripted:usage.yaml"
limits: {max_tokens: 240}
nodes:
  - id: each
    type: for_each
    config: {items: ["a", "b", "c"], workflow: child.yaml, max_parallel: 2}
)");
    auto pair = env_.Run({"run", "pair.yaml", "--input", "x", "--json"});
    EXPECT_EQ(pair.exit_code(), 1) << pair.out << pair.err;
    record = ParseJson(pair.out);
    ASSERT_TRUE(record && record->is_object()) << pair.out;
    EXPECT_EQ(JsonInt(record->as_object(), "input_tokens") +
                  JsonInt(record->as_object(), "output_tokens"),
              240)
        << pair.out;
    ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 4u + 3u) << "two more children and their parent";
    parent_events = env_.Events(ids[4]);
    started = 0;
    for (const auto& e : parent_events) {
        if (e.type != "subworkflow.started") continue;
        ++started;
        EXPECT_EQ(JsonInt(e.data, "max_tokens"), 120) << e.line;
    }
    EXPECT_EQ(started, 2) << Describe(parent_events);
    EXPECT_NE(pair.out.find("budget exceeded"), std::string::npos) << pair.out;
    auto audit = env_.Run({"audit", "verify", "--all"});
    EXPECT_EQ(audit.exit_code(), 0) << audit.out;
}

}  // namespace
}  // namespace strowger::testing
