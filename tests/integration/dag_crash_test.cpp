// Multi-agent DAG nodes killed mid-flight (issue 18): `strowger run` is killed with SIGKILL
// while a debate is in its second round and while a hierarchy's workers are in flight, then
// `strowger runs resume --all` finishes the run. Every sub-call whose answer was committed
// before the kill (by its label) must not be asked again; the call in flight is asked again.
//
// The scripted model hangs on one call while the node's first attempt runs (`attempt: 1`),
// so the kill lands with that call open and the others answered; the resumed attempt (2)
// gets an answer. A fork killed with a branch in flight and its join waiting, behind a random
// router, is resumed the same way; and `runs retry --node` re-runs a node and what is
// downstream of it, nothing else.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "core/sha256.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"

namespace strowger::testing {
namespace {

using std::chrono::seconds;
using Events = std::vector<LedgerEvent>;

// Requests and responses per sub-call label.
struct Calls {
    std::map<std::string, int> requests;
    std::map<std::string, int> responses;
};

Calls CallsOf(const Events& events) {
    Calls calls;
    for (const auto& e : events) {
        std::string label(JsonString(e.data, "label"));
        if (label.empty()) continue;
        if (e.type == "llm.request") ++calls.requests[label];
        if (e.type == "llm.response") ++calls.responses[label];
    }
    return calls;
}

class DagCrashTest : public ::testing::Test {
  protected:
    // Starts `strowger run`, waits until the ledger has a request for `hung` and a response
    // for each of `answered`, and kills the process. Returns the ledger it left.
    Events RunAndKill(const std::string& input, const std::string& hung,
                      const std::vector<std::string>& answered) {
        auto child = env_.Start({"run", "workflow.yaml", "--input", input});
        bool reached = false;
        WaitFor(
            [&] {
                if (run_id_.empty()) {
                    auto ids = env_.RunIds();
                    if (ids.size() == 1) run_id_ = ids[0];
                }
                if (run_id_.empty()) return false;
                Calls calls = CallsOf(env_.Events(run_id_));
                reached = calls.requests[hung] == 1;
                for (const auto& label : answered) reached = reached && calls.responses[label] == 1;
                return reached;
            },
            seconds(20));
        EXPECT_TRUE(reached) << "never got to the kill point; ledger: "
                             << Describe(env_.Events(run_id_)) << "\nstderr: " << child->Stderr();
        EXPECT_TRUE(child->Signal(SIGKILL));
        EXPECT_EQ(child->Wait(seconds(10)).status.signal, SIGKILL);
        EXPECT_NE(env_.RunStatus(run_id_), "completed");
        return env_.Events(run_id_);
    }

    // `runs resume --all` to the end; returns the whole ledger.
    Events ResumeAll() {
        auto result = env_.Run({"runs", "resume", "--all"});
        EXPECT_EQ(result.exit_code(), 0) << result.status.ToString() << "\n" << result.err;
        EXPECT_EQ(result.out, "resumed 1 runs: 1 completed, 0 failed, 0 other\n") << result.err;
        EXPECT_EQ(env_.RunStatus(run_id_), "completed");
        return env_.Events(run_id_);
    }

    // Each call answered before the kill was asked once in the whole ledger; the hung call
    // twice (killed, then again) with one answer; every label of `all` answered exactly once.
    void CheckNothingAskedTwice(const Events& killed, const Events& end, const std::string& hung,
                                const std::vector<std::string>& all) {
        Calls before = CallsOf(killed);
        Calls after = CallsOf(end);
        EXPECT_EQ(before.responses.count(hung), 0u) << hung << " was answered before the kill";
        for (const auto& [label, count] : before.responses) {
            EXPECT_EQ(count, 1) << label;
            EXPECT_EQ(after.requests[label], 1) << label << " was asked again after the resume";
        }
        EXPECT_EQ(after.requests[hung], 2) << Describe(end);
        for (const auto& label : all) {
            EXPECT_EQ(after.responses[label], 1) << label << "; ledger: " << Describe(end);
        }
        EXPECT_EQ(after.responses.size(), all.size()) << Describe(end);
        EXPECT_EQ(CountEvents(end, "run.resumed"), 1);
    }

    CliEnvironment env_;
    std::string run_id_;
};

TEST_F(DagCrashTest, DebateKilledMidRoundDoesNotReargueFinishedCalls) {
    env_.Write("workflow.yaml", R"(name: debate_crash
default_model: "scripted:script.yaml"
agents:
  Alice: {model: "scripted:script.yaml", system_prompt: "You argue for Python."}
  Bob: {model: "scripted:script.yaml", system_prompt: "You argue for Rust."}
  Judge: {model: "scripted:script.yaml", system_prompt: "You judge."}
nodes:
  - id: debate
    type: debate
    config: {topic: "{{input}}", debaters: [Alice, Bob], judge: Judge, max_rounds: 3}
edges: []
)");
    // Round 2: Alice answers, Bob hangs in the first attempt.
    env_.Write("script.yaml", R"(rules:
  - {when: {agent: Bob, prompt_contains: "round 2 of 3", attempt: 1}, hang: true}
  - {when: {agent: Judge}, reply_template: "verdict after: ${prompt}"}
  - {reply_template: "${agent} argues"}
)");
    Events killed =
        RunAndKill("Which language?", "round2/debater:Bob",
                   {"round1/debater:Alice", "round1/debater:Bob", "round2/debater:Alice"});
    Events end = ResumeAll();
    CheckNothingAskedTwice(
        killed, end, "round2/debater:Bob",
        {"round1/debater:Alice", "round1/debater:Bob", "round2/debater:Alice", "round2/debater:Bob",
         "round3/debater:Alice", "round3/debater:Bob", "round3/judge"});
    // The judge saw every argument, the replayed ones included.
    const LedgerEvent* completed = FindEvent(end, "node.completed", "debate");
    ASSERT_NE(completed, nullptr);
    std::string output(JsonString(completed->data, "output"));
    EXPECT_NE(output.find("### Round 2 — Alice\nAlice argues\n\n### Round 2 — Bob\nBob argues"),
              std::string::npos)
        << output;
}

TEST_F(DagCrashTest, HierarchyKilledWithWorkersInFlightDoesNotRedoFinishedTasks) {
    env_.Write("workflow.yaml", R"(name: hierarchy_crash
default_model: "scripted:script.yaml"
agents:
  Lead: {model: "scripted:script.yaml", system_prompt: "You plan."}
  Ann: {model: "scripted:script.yaml", system_prompt: "You work."}
  Ben: {model: "scripted:script.yaml", system_prompt: "You work."}
  Editor: {model: "scripted:script.yaml", system_prompt: "You merge."}
nodes:
  - id: team
    type: hierarchy
    config: {goal: "{{input}}", manager: Lead, workers: [Ann, Ben], synthesizer: Editor,
             max_parallel: 2}
edges: []
)");
    // Four tasks, two at once: Ann's task 3 hangs in the first attempt; Ben goes on to task 4.
    env_.Write("script.yaml", R"(rules:
  - {when: {agent: Lead}, reply: "[\"one\", \"two\", \"three\", \"four\"]"}
  - {when: {agent: Ann, prompt_contains: "three", attempt: 1}, hang: true}
  - {when: {agent: Editor}, reply_template: "merged: ${prompt}"}
  - {reply_template: "${agent} did it"}
)");
    Events killed =
        RunAndKill("Ship it", "task3/worker:Ann",
                   {"manager", "task1/worker:Ann", "task2/worker:Ben", "task4/worker:Ben"});
    Events end = ResumeAll();
    CheckNothingAskedTwice(killed, end, "task3/worker:Ann",
                           {"manager", "task1/worker:Ann", "task2/worker:Ben", "task3/worker:Ann",
                            "task4/worker:Ben", "synthesizer"});
    const LedgerEvent* completed = FindEvent(end, "node.completed", "team");
    ASSERT_NE(completed, nullptr);
    EXPECT_NE(std::string(JsonString(completed->data, "output")).find("### Task 4 — Ben"),
              std::string::npos);
}

// A fork's branches in flight and its join waiting: killed with two branches finished and the
// third's model call open, behind a random router. The resume runs only the open branch again,
// follows the router's recorded choice, and the join fires once.
TEST_F(DagCrashTest, ForkKilledWithABranchInFlightAndTheJoinWaitingRerunsOnlyThatBranch) {
    env_.Write("workflow.yaml", R"(name: fork_crash
default_model: "scripted:script.yaml"
nodes:
  - {id: pick, type: router, config: {strategy: random, branches: [fast, careful]}}
  - {id: fast, type: agent, config: {prompt: "Fast {{input}}"}}
  - {id: careful, type: agent, config: {prompt: "Careful {{input}}"}}
  - {id: split, type: fork}
  - {id: b1, type: agent, config: {prompt: "B1 {{input}}", upstream: false}}
  - {id: b2, type: agent, config: {prompt: "B2 {{input}}", upstream: false}}
  - {id: b3, type: agent, config: {prompt: "B3 {{input}}", upstream: false}}
  - {id: join, type: join, config: {mode: all}}
  - {id: report, type: agent, config: {prompt: "Report {{input}}"}}
edges:
  - {from: pick, to: fast, branch: fast}
  - {from: pick, to: careful, branch: careful}
  - {from: fast, to: split}
  - {from: careful, to: split}
  - {from: split, to: b1}
  - {from: split, to: b2}
  - {from: split, to: b3}
  - {from: b1, to: join}
  - {from: b2, to: join}
  - {from: b3, to: join}
  - {from: join, to: report}
)");
    env_.Write("script.yaml", R"(rules:
  - {when: {step: b2, attempt: 1}, hang: true}
  - {reply_template: "${step} done"}
)");
    auto child = env_.Start({"run", "workflow.yaml", "--input", "go"});
    auto count = [](const Events& events, const std::string& type, const std::string& node) {
        return CountEvents(events, type, node);
    };
    bool reached = false;
    WaitFor(
        [&] {
            if (run_id_.empty()) {
                auto ids = env_.RunIds();
                if (ids.size() == 1) run_id_ = ids[0];
            }
            if (run_id_.empty()) return false;
            Events events = env_.Events(run_id_);
            reached = count(events, "node.completed", "b1") == 1 &&
                      count(events, "node.completed", "b3") == 1 &&
                      count(events, "llm.request", "b2") == 1;
            return reached;
        },
        seconds(20));
    ASSERT_TRUE(reached) << Describe(env_.Events(run_id_)) << "\nstderr: " << child->Stderr();
    EXPECT_TRUE(child->Signal(SIGKILL));
    EXPECT_EQ(child->Wait(seconds(10)).status.signal, SIGKILL);
    Events killed = env_.Events(run_id_);
    EXPECT_EQ(count(killed, "node.completed", "join"), 0) << "the join must still be waiting";
    const LedgerEvent* decided = FindEvent(killed, "router.decided", "pick");
    ASSERT_NE(decided, nullptr) << Describe(killed);
    const std::string branch(JsonString(decided->data, "branch"));
    ASSERT_TRUE(branch == "fast" || branch == "careful") << decided->line;
    const std::string other = branch == "fast" ? "careful" : "fast";

    Events end = ResumeAll();
    EXPECT_EQ(CountEvents(end, "router.decided"), 1) << Describe(end);
    EXPECT_EQ(count(end, "node.completed", branch), 1);
    EXPECT_EQ(count(end, "node.completed", other), 0);
    EXPECT_EQ(count(end, "node.started", other), 0);
    for (const char* node : {"split", "b1", "b3", branch.c_str()}) {
        EXPECT_EQ(count(end, "node.started", node), count(killed, "node.started", node)) << node;
        EXPECT_EQ(count(end, "llm.request", node), count(killed, "llm.request", node)) << node;
        EXPECT_EQ(count(end, "node.completed", node), 1) << node;
    }
    EXPECT_EQ(count(end, "llm.request", "b2"), 2) << Describe(end);
    EXPECT_EQ(count(end, "node.completed", "b2"), 1);
    EXPECT_EQ(count(end, "node.completed", "join"), 1);
    EXPECT_EQ(count(end, "node.completed", "report"), 1);
    const LedgerEvent* joined = FindEvent(end, "node.completed", "join");
    ASSERT_NE(joined, nullptr);
    const std::string output(JsonString(joined->data, "output"));
    for (const char* reply : {"b1 done", "b2 done", "b3 done"}) {
        EXPECT_NE(output.find(reply), std::string::npos) << output;
    }
}

// `runs retry --node N` on a finished graph: N and everything downstream of it run again, in
// a new attempt; the nodes upstream and beside it keep their outputs.
TEST_F(DagCrashTest, RetryOfANodeRerunsItAndEverythingDownstreamOnly) {
    env_.Write("workflow.yaml", R"(name: fork_retry
default_model: "scripted:script.yaml"
nodes:
  - {id: start, type: agent, config: {prompt: "Start {{input}}"}}
  - {id: split, type: fork}
  - {id: b1, type: agent, config: {prompt: "B1 {{input}}"}}
  - {id: b2, type: agent, config: {prompt: "B2 {{input}}"}}
  - {id: join, type: join, config: {mode: all}}
  - {id: report, type: agent, config: {prompt: "Report {{input}}"}}
edges:
  - {from: start, to: split}
  - {from: split, to: b1}
  - {from: split, to: b2}
  - {from: b1, to: join}
  - {from: b2, to: join}
  - {from: join, to: report}
)");
    env_.Write("script.yaml", "rules:\n  - {reply_template: \"${step}#${attempt}\"}\n");
    auto first = env_.Run({"run", "workflow.yaml", "--input", "go"});
    ASSERT_EQ(first.exit_code(), 0) << first.err;
    run_id_ = env_.RunIds().at(0);
    auto unknown = env_.Run({"runs", "retry", run_id_, "--node", "nope"});
    EXPECT_EQ(unknown.exit_code(), 2) << unknown.err;
    EXPECT_NE(unknown.err.find("nope"), std::string::npos) << unknown.err;

    auto retried = env_.Run({"runs", "retry", run_id_, "--node", "b1"});
    EXPECT_EQ(retried.exit_code(), 0) << retried.err;
    EXPECT_EQ(retried.out, "report#2\n");
    Events events = env_.Events(run_id_);
    const LedgerEvent* retry = FindEvent(events, "run.retried");
    ASSERT_NE(retry, nullptr) << Describe(events);
    EXPECT_EQ(JsonString(retry->data, "from_step"), "b1");
    EXPECT_EQ(json::serialize(retry->data.at("cleared")), R"(["b1","join","report"])");
    for (const char* node : {"start", "split", "b2"}) {
        EXPECT_EQ(CountEvents(events, "node.started", node), 1) << node << Describe(events);
    }
    for (const char* node : {"b1", "join", "report"}) {
        EXPECT_EQ(CountEvents(events, "node.started", node), 2) << node << Describe(events);
    }
    EXPECT_EQ(env_.RunStatus(run_id_), "completed");
    auto audit = env_.Run({"audit", "verify", run_id_});
    EXPECT_EQ(audit.exit_code(), 0) << audit.out;
}

// An agent in mode subagent killed with one subagent call answered and another in flight: the
// resumed node asks the lead again (the tool calls had no results), but the answered task is
// not asked of the subagent again (its answer is recorded under its label); the open one is.
TEST_F(DagCrashTest, SubagentCallsAnsweredBeforeAKillAreNotAskedAgain) {
    env_.Write("workflow.yaml", R"(name: subagent_crash
agents:
  lead: {model: "scripted:script.yaml", system_prompt: "You lead."}
  researcher: {model: "scripted:script.yaml", system_prompt: "You research."}
nodes:
  - {id: report, type: agent, config: {agent: lead, mode: subagent, subagents: [researcher], prompt: "Report on {{input}}"}}
edges: []
)");
    env_.Write("script.yaml", R"(rules:
  - when: {agent: lead}
    times: 1
    tool_calls:
      - {name: agent_researcher, arguments: {task: "facts on tides"}}
      - {name: agent_researcher, arguments: {task: "facts on moons"}}
  - {when: {agent: researcher, prompt_contains: "moons", attempt: 1}, hang: true}
  - {when: {agent: researcher}, reply_template: "researched: ${prompt}"}
  - {when: {agent: lead}, reply_template: "final: ${prompt}"}
)");
    const std::string tides = "subagent:researcher:" + Sha256Hex("facts on tides").substr(0, 12);
    const std::string moons = "subagent:researcher:" + Sha256Hex("facts on moons").substr(0, 12);
    Events killed = RunAndKill("the sea", moons, {tides});
    EXPECT_EQ(CountEvents(killed, "tool.call", "report"), 2);
    EXPECT_EQ(CountEvents(killed, "tool.result", "report"), 0);
    Events end = ResumeAll();
    CheckNothingAskedTwice(killed, end, moons, {tides, moons});
    const LedgerEvent* completed = FindEvent(end, "node.completed", "report");
    ASSERT_NE(completed, nullptr) << Describe(end);
    EXPECT_EQ(std::string(JsonString(completed->data, "output")),
              "final: researched: facts on moons");
}

}  // namespace
}  // namespace strowger::testing
