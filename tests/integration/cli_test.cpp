// The strowger command line from outside: the real binary started as a child process on
// workflows written into a temporary directory (scripted models, so no network), its exit
// codes and output checked exactly, and the store's SQLite file read to check the ledger.
#include <gtest/gtest.h>

#include <signal.h>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "testing/mock_model_server.hpp"

namespace strowger::testing {
namespace {

using std::chrono::seconds;

// Every step answers "<step>(<prompt>)", so an output shows the whole chain that made it.
constexpr char kEchoScript[] = R"y(rules:
  - {reply_template: "${step}(${prompt})"}
)y";

// Three sequential steps; with input "hi" the output is kThreeStepsOutput.
constexpr char kThreeSteps[] = R"y(name: three
agents:
  writer: {model: "scripted:script.yaml", system_prompt: "You write."}
steps:
  - {name: a, agent_name: writer, prompt: "A {{input}}"}
  - {name: b, agent_name: writer, prompt: "B {{input}}"}
  - {name: c, agent_name: writer, prompt: "C {{input}}"}
)y";
constexpr char kThreeStepsOutput[] = "c(C b(B a(A hi)))";

// A fan-out of three between a first and a last step (the plan tests' subject).
constexpr char kFanOut[] = R"y(name: fan-out-collect
agents:
  writer: {model: "scripted:script.yaml", system_prompt: "You write."}
steps:
  - {name: prepare, agent_name: writer, prompt: "Prepare {{input}}"}
  - {name: slow, agent_name: writer, prompt: "A {{input}}", mode: fan_out, output_var: a}
  - {name: medium, agent_name: writer, prompt: "B {{input}}", mode: fan_out}
  - {name: fast, agent_name: writer, prompt: "C {{input}}", mode: fan_out}
  - {name: gather, mode: collect}
  - {name: synthesize, agent_name: writer, prompt: "Synthesize:\n{{input}}\nFirst was: {{a}}"}
)y";

// Four errors: an unknown agent, a duplicate name, an unknown mode, a negative timeout.
constexpr char kInvalid[] = R"y(name: bad
agents:
  writer: {model: "scripted:script.yaml"}
steps:
  - {name: a, agent_name: nobody, prompt: "A {{input}}"}
  - {name: a, agent_name: writer, mode: sideways}
  - {name: c, agent_name: writer, timeout_secs: -3}
)y";
constexpr char kInvalidDiagnostics[] =
    "bad.yaml:5:27: steps[0].agent_name: Agent not found for step 'a': no agent named "
    "\"nobody\"\n"
    "bad.yaml:6:12: steps[1].name: duplicate step name \"a\" (first used by steps[0] at line 5)\n"
    "bad.yaml:6:41: steps[1].mode: unknown mode \"sideways\" (expected one of sequential, "
    "fan_out, collect, conditional, loop)\n"
    "bad.yaml:7:49: steps[2].timeout_secs: must be a positive integer, got -3\n";

std::vector<std::string> Types(const std::vector<LedgerEvent>& events) {
    std::vector<std::string> types;
    for (const auto& event : events) types.push_back(event.ToString());
    return types;
}

// The ledger of an uninterrupted kThreeSteps run.
const std::vector<std::string> kThreeStepsLedger = {
    "run.created",      "run.started",        "node.started a#1", "llm.request a#1",
    "llm.response a#1", "node.completed a#1", "node.started b#1", "llm.request b#1",
    "llm.response b#1", "node.completed b#1", "node.started c#1", "llm.request c#1",
    "llm.response c#1", "node.completed c#1", "run.completed",
};

json::value ParseOrFail(const std::string& text) {
    auto parsed = ParseJson(text);
    EXPECT_TRUE(parsed.has_value()) << "not JSON: " << text;
    return parsed ? *parsed : json::value();
}

std::string String(const json::value& value, std::string_view key) {
    return value.is_object() ? std::string(JsonString(value.get_object(), key)) : "";
}

int64_t Int(const json::value& value, std::string_view key) {
    return value.is_object() ? JsonInt(value.get_object(), key) : -1;
}

std::string DataString(const LedgerEvent* event, std::string_view key) {
    return event ? std::string(JsonString(event->data, key)) : "<no event>";
}

class CliTest : public ::testing::Test {
  protected:
    // Writes the workflow as workflow.yaml and the scripted replies as script.yaml.
    void WriteWorkflow(const std::string& workflow, const std::string& script = kEchoScript) {
        env_.Write("workflow.yaml", workflow);
        env_.Write("script.yaml", script);
    }

    // Runs kThreeSteps on "hi" to completion; returns the run id.
    std::string CompletedRun() {
        WriteWorkflow(kThreeSteps);
        auto before = env_.RunIds();
        auto result = env_.Run({"run", "workflow.yaml", "--input", "hi"});
        EXPECT_EQ(result.exit_code(), 0) << result.err;
        auto after = env_.RunIds();
        EXPECT_EQ(after.size(), before.size() + 1);
        return after.empty() ? "" : after.back();
    }

    // Starts `strowger run workflow.yaml -i hi` and waits until `node`'s first attempt has
    // started according to the store; returns the run id ("" on timeout).
    std::string StartAndWaitForNode(std::unique_ptr<ChildProcess>& child, const std::string& node) {
        child = env_.Start({"run", "workflow.yaml", "--input", "hi"});
        std::string run_id = env_.WaitForOnlyRun();
        bool started =
            WaitFor([&] { return FindEvent(env_.Events(run_id), "node.started", node) != nullptr; },
                    seconds(10));
        EXPECT_TRUE(started) << "node " << node << " never started; stderr: " << child->Stderr();
        return started ? run_id : "";
    }

    CliEnvironment env_;
};

// --- run ---------------------------------------------------------------------------------------

using RunCommandTest = CliTest;

TEST_F(RunCommandTest, CompletedRunPrintsTheOutput) {
    WriteWorkflow(kThreeSteps);
    auto result = env_.Run({"run", "workflow.yaml", "--input", "hi"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.out, std::string(kThreeStepsOutput) + "\n");
    EXPECT_EQ(result.err, "");

    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(env_.RunStatus(ids[0]), "completed");
    auto events = env_.Events(ids[0]);
    EXPECT_EQ(Types(events), kThreeStepsLedger);
    EXPECT_EQ(DataString(FindEvent(events, "run.created"), "input"), "hi");
    EXPECT_EQ(DataString(FindEvent(events, "run.completed"), "output"), kThreeStepsOutput);
}

TEST_F(RunCommandTest, FailedRunNamesTheStep) {
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b}, error: "upstream exploded"}
  - {reply_template: "${step}(${prompt})"}
)y");
    auto result = env_.Run({"run", "workflow.yaml", "--input", "hi"});
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(result.exit_code(), 1);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, "strowger: run " + run_id +
                              " failed: Step 'b' failed: upstream exploded\n" +
                              "strowger: once the cause is fixed, `strowger runs retry " + run_id +
                              "` continues from the failed step\n");

    EXPECT_EQ(env_.RunStatus(run_id), "failed");
    auto events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.failed");
    EXPECT_EQ(DataString(&events.back(), "error"), "Step 'b' failed: upstream exploded");
    EXPECT_EQ(CountEvents(events, "node.failed", "b"), 1);
    EXPECT_EQ(CountEvents(events, "node.started", "c"), 0) << Describe(events);
}

TEST_F(RunCommandTest, MaxConcurrentNodesFromTheEnvironmentSerialisesAFanOut) {
    env_.Write("script.yaml", "latency_ms: 20\nrules:\n  - {reply_template: \"${step}\"}\n");
    env_.Write("fan.yaml", kFanOut);
    env_.SetEnv("STROWGER_MAX_CONCURRENT_NODES", "1");
    auto result = env_.Run({"run", "fan.yaml", "--input", "hi"});
    ASSERT_EQ(result.exit_code(), 0) << result.err;
    auto events = env_.Events(env_.WaitForOnlyRun());
    // One node at a time: every node.started follows the previous node's node.completed.
    int in_flight = 0, most = 0;
    for (const auto& event : events) {
        if (event.type == "node.started") most = std::max(most, ++in_flight);
        if (event.type == "node.completed") --in_flight;
    }
    EXPECT_EQ(most, 1) << Describe(events);
    EXPECT_EQ(CountEvents(events, "node.completed", "fast"), 1);

    // A value that is not a whole number is refused before anything runs.
    env_.SetEnv("STROWGER_MAX_CONCURRENT_NODES", "two");
    auto refused = env_.Run({"run", "fan.yaml", "--input", "hi"});
    EXPECT_NE(refused.exit_code(), 0);
    EXPECT_EQ(refused.out, "");
    EXPECT_NE(refused.err.find("STROWGER_MAX_CONCURRENT_NODES: expected a whole number >= 0"),
              std::string::npos)
        << refused.err;
}

TEST_F(RunCommandTest, InvalidWorkflowIsAUsageErrorWithPositions) {
    env_.Write("script.yaml", kEchoScript);
    env_.Write("bad.yaml", kInvalid);
    auto result = env_.Run({"run", "bad.yaml", "--input", "hi"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, kInvalidDiagnostics);
    EXPECT_TRUE(env_.RunIds().empty());
}

TEST_F(RunCommandTest, MissingInputFileIsAUsageError) {
    WriteWorkflow(kThreeSteps);
    auto result = env_.Run({"run", "workflow.yaml", "--input-file", "missing.txt"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, "strowger: missing.txt: cannot read input file\n");
    EXPECT_TRUE(env_.RunIds().empty());
}

TEST_F(RunCommandTest, SigintCancelsAHangingStep) {
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b}, hang: true}
  - {reply_template: "${step}(${prompt})"}
)y");
    std::unique_ptr<ChildProcess> child;
    std::string run_id = StartAndWaitForNode(child, "b");
    ASSERT_FALSE(run_id.empty());
    ASSERT_TRUE(child->Signal(SIGINT));
    auto result = child->Wait(seconds(10));
    EXPECT_EQ(result.exit_code(), 4) << result.status.ToString() << "\n" << result.err;
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, "strowger: run " + run_id + " cancelled (`strowger runs retry " + run_id +
                              "` reopens it)\n");

    EXPECT_EQ(env_.RunStatus(run_id), "cancelled");
    auto events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.cancelled") << Describe(events);
    EXPECT_EQ(DataString(&events.back(), "reason"), "interrupted (SIGINT)");
    EXPECT_EQ(CountEvents(events, "node.completed", "b"), 0);
    EXPECT_EQ(CountEvents(events, "node.started", "c"), 0);
}

TEST_F(RunCommandTest, JsonPrintsTheRunRecord) {
    WriteWorkflow(R"y(name: json-record
agents:
  writer: {model: "scripted:script.yaml"}
steps:
  - {name: a, agent_name: writer, prompt: "A {{input}}"}
  - {name: b, agent_name: writer, prompt: "B {{input}}", error_mode: retry,
     retry: {initial_delay_ms: 1, max_delay_ms: 1}}
  - {name: c, agent_name: writer, prompt: "C {{input}}"}
)y",
                  R"y(rules:
  - {when: {step: b, attempt: 1}, error: "first try fails"}
  - {reply_template: "${step}(${prompt})"}
)y");
    auto result = env_.Run({"run", "workflow.yaml", "--input", "hi", "--json"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    std::string run_id = env_.WaitForOnlyRun();
    auto record = ParseOrFail(result.out);
    ASSERT_TRUE(record.is_object());
    EXPECT_EQ(String(record, "run_id"), run_id);
    EXPECT_EQ(String(record, "workflow"), "json-record");
    EXPECT_EQ(String(record, "status"), "completed");
    EXPECT_EQ(String(record, "input"), "hi");
    EXPECT_EQ(String(record, "output"), kThreeStepsOutput);
    EXPECT_TRUE(record.get_object().at("error").is_null());
    EXPECT_EQ(Int(record, "events"), static_cast<int64_t>(env_.Events(run_id).size()));

    const auto* steps = JsonArray(record.get_object(), "step_results");
    ASSERT_NE(steps, nullptr);
    ASSERT_EQ(steps->size(), 3u);
    struct Expected {
        std::string name, prompt, output;
        int64_t attempts;
    };
    std::vector<Expected> expected = {
        {"a", "A hi", "a(A hi)", 1},
        {"b", "B a(A hi)", "b(B a(A hi))", 2},
        {"c", "C b(B a(A hi))", kThreeStepsOutput, 1},
    };
    for (size_t i = 0; i < expected.size(); ++i) {
        SCOPED_TRACE(expected[i].name);
        EXPECT_EQ(String((*steps)[i], "step_name"), expected[i].name);
        EXPECT_EQ(String((*steps)[i], "agent_name"), "writer");
        EXPECT_EQ(String((*steps)[i], "prompt"), expected[i].prompt);
        EXPECT_EQ(String((*steps)[i], "output"), expected[i].output);
        EXPECT_EQ(Int((*steps)[i], "attempts"), expected[i].attempts);
    }
}

// --- validate and plan -------------------------------------------------------------------------

using ValidateCommandTest = CliTest;

TEST_F(ValidateCommandTest, ValidFilesAreOk) {
    env_.Write("script.yaml", kEchoScript);
    env_.Write("three.yaml", kThreeSteps);
    env_.Write("fan.yaml", kFanOut);
    auto result = env_.Run({"validate", "three.yaml", "fan.yaml"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.out, "three.yaml: ok (3 steps, 1 agents)\nfan.yaml: ok (6 steps, 1 agents)\n");
    EXPECT_EQ(result.err, "");
}

TEST_F(ValidateCommandTest, EveryErrorIsListedAtOnce) {
    env_.Write("script.yaml", kEchoScript);
    env_.Write("three.yaml", kThreeSteps);
    env_.Write("bad.yaml", kInvalid);
    auto result = env_.Run({"validate", "bad.yaml", "three.yaml"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.out, "three.yaml: ok (3 steps, 1 agents)\n");
    EXPECT_EQ(result.err, kInvalidDiagnostics);
}

class PlanCommandTest : public CliTest {
  protected:
    void SetUp() override {
        env_.Write("script.yaml", kEchoScript);
        env_.Write("fan.yaml", kFanOut);
    }

    std::string Plan(const std::string& format) {
        auto result = env_.Run({"plan", "fan.yaml", "--format", format});
        EXPECT_EQ(result.exit_code(), 0) << result.err;
        EXPECT_EQ(result.err, "");
        return result.out;
    }
};

TEST_F(PlanCommandTest, TextShowsLayersAndPrompts) {
    auto lines = Lines(Plan("text"));
    for (const std::string expected : {
             "workflow: fan-out-collect",
             "layer 1:",
             "  prepare [sequential] agent=writer (scripted:script.yaml) timeout=120s "
             "on_error=fail",
             "layer 2 (concurrent):",
             "  slow [fan_out] agent=writer (scripted:script.yaml) timeout=120s on_error=fail "
             "-> {{a}}",
             "layer 3:",
             "  gather [collect]",
             "    after: slow, medium, fast",
             "layer 4:",
             "      | First was: {{a}}",
             "output: synthesize",
         }) {
        EXPECT_NE(std::find(lines.begin(), lines.end(), expected), lines.end())
            << "missing line \"" << expected << "\"";
    }
    EXPECT_TRUE(env_.RunIds().empty());  // a plan calls no model and creates no run
}

TEST_F(PlanCommandTest, JsonHasNodesDependenciesAndLayers) {
    auto plan = ParseOrFail(Plan("json"));
    ASSERT_TRUE(plan.is_object());
    EXPECT_EQ(String(plan, "workflow"), "fan-out-collect");
    EXPECT_EQ(String(plan, "output"), "synthesize");
    const auto* nodes = JsonArray(plan.get_object(), "nodes");
    ASSERT_NE(nodes, nullptr);
    std::vector<std::string> ids;
    std::vector<int64_t> layers;
    for (const auto& node : *nodes) {
        ids.push_back(String(node, "id"));
        layers.push_back(Int(node, "layer"));
    }
    EXPECT_EQ(ids, (std::vector<std::string>{"prepare", "slow", "medium", "fast", "gather",
                                             "synthesize"}));
    EXPECT_EQ(layers, (std::vector<int64_t>{1, 2, 2, 2, 3, 4}));
    EXPECT_EQ(String((*nodes)[4], "mode"), "collect");
    EXPECT_EQ(json::serialize((*nodes)[4].at("deps")), R"(["slow","medium","fast"])");
    EXPECT_EQ(json::serialize(plan.at("layers")),
              R"([["prepare"],["slow","medium","fast"],["gather"],["synthesize"]])");
}

TEST_F(PlanCommandTest, DotHasEveryEdge) {
    std::string dot = Plan("dot");
    EXPECT_TRUE(dot.starts_with("digraph \"fan-out-collect\" {\n")) << dot;
    EXPECT_TRUE(dot.ends_with("}\n")) << dot;
    std::vector<std::string> edges;
    for (const auto& line : Lines(dot)) {
        if (line.find(" -> ") != std::string::npos) edges.push_back(line);
    }
    EXPECT_EQ(edges, (std::vector<std::string>{
                         R"(  "__input" -> "prepare";)",
                         R"(  "prepare" -> "slow";)",
                         R"(  "prepare" -> "medium";)",
                         R"(  "prepare" -> "fast";)",
                         R"(  "slow" -> "gather";)",
                         R"(  "medium" -> "gather";)",
                         R"(  "fast" -> "gather";)",
                         R"(  "gather" -> "synthesize";)",
                     }));
    EXPECT_NE(dot.find(R"("gather" [label="gather)"), std::string::npos) << dot;
}

TEST_F(PlanCommandTest, MermaidHasEveryEdge) {
    std::string mermaid = Plan("mermaid");
    EXPECT_TRUE(mermaid.starts_with("flowchart TD\n")) << mermaid;
    auto lines = Lines(mermaid);
    for (const std::string expected : {
             R"(  n0["prepare<br/>writer"])",
             R"(  n4["gather<br/>collect"])",
         }) {
        EXPECT_NE(std::find(lines.begin(), lines.end(), expected), lines.end())
            << "missing \"" << expected << "\" in\n"
            << mermaid;
    }
    std::vector<std::string> edges;
    for (const auto& line : lines) {
        if (line.find(" --> ") != std::string::npos) edges.push_back(line);
    }
    EXPECT_EQ(edges, (std::vector<std::string>{
                         "  input --> n0",
                         "  n0 --> n1",
                         "  n0 --> n2",
                         "  n0 --> n3",
                         "  n1 --> n4",
                         "  n2 --> n4",
                         "  n3 --> n4",
                         "  n4 --> n5",
                     }));
}

TEST_F(PlanCommandTest, InvalidWorkflowIsAUsageError) {
    env_.Write("bad.yaml", kInvalid);
    auto result = env_.Run({"plan", "bad.yaml", "--format", "dot"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, kInvalidDiagnostics);
}

// --- runs list | show | events -----------------------------------------------------------------

// A store with three runs, oldest first: completed ("x"), failed ("y"), completed ("z").
class RunsCommandTest : public CliTest {
  protected:
    void SetUp() override {
        env_.Write("script.yaml", kEchoScript);
        env_.Write("three.yaml", kThreeSteps);
        env_.Write("failing.yaml", R"y(name: failing
agents:
  writer: {model: "scripted:fail.yaml"}
steps:
  - {name: only, agent_name: writer}
)y");
        env_.Write("fail.yaml", "rules:\n  - {error: \"no luck\"}\n");
        ASSERT_EQ(env_.Run({"run", "three.yaml", "-i", "x"}).exit_code(), 0);
        ASSERT_EQ(env_.Run({"run", "failing.yaml", "-i", "y"}).exit_code(), 1);
        ASSERT_EQ(env_.Run({"run", "three.yaml", "-i", "z"}).exit_code(), 0);
        runs_ = env_.RunIds();
        ASSERT_EQ(runs_.size(), 3u);
    }

    std::vector<std::string> runs_;  // oldest first
};

TEST_F(RunsCommandTest, ListShowsEveryRunNewestFirst) {
    auto result = env_.Run({"runs", "list", "--json"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    auto list = ParseOrFail(result.out);
    ASSERT_TRUE(list.is_object());
    const auto* runs = JsonArray(list.get_object(), "runs");
    ASSERT_NE(runs, nullptr);
    ASSERT_EQ(runs->size(), 3u);
    EXPECT_EQ(String((*runs)[0], "run_id"), runs_[2]);
    EXPECT_EQ(String((*runs)[1], "run_id"), runs_[1]);
    EXPECT_EQ(String((*runs)[2], "run_id"), runs_[0]);
    EXPECT_EQ(String((*runs)[0], "status"), "completed");
    EXPECT_EQ(String((*runs)[1], "status"), "failed");
    EXPECT_EQ(String((*runs)[1], "workflow"), "failing");
    EXPECT_EQ(String((*runs)[2], "workflow"), "three");
    EXPECT_EQ(Int((*runs)[2], "events"), 15);
    EXPECT_EQ(String(list, "next_cursor"), "");

    auto text = env_.Run({"runs", "list"});
    EXPECT_EQ(text.exit_code(), 0);
    auto lines = Lines(text.out);
    ASSERT_EQ(lines.size(), 4u) << text.out;
    EXPECT_TRUE(lines[0].starts_with("RUN ")) << lines[0];
    EXPECT_TRUE(lines[1].starts_with(runs_[2])) << lines[1];
    EXPECT_NE(lines[2].find("failed"), std::string::npos) << lines[2];
}

TEST_F(RunsCommandTest, ListFiltersByStatus) {
    auto failed = env_.Run({"runs", "list", "--status", "failed", "--json"});
    EXPECT_EQ(failed.exit_code(), 0) << failed.err;
    auto list = ParseOrFail(failed.out);
    const auto* runs = list.is_object() ? JsonArray(list.get_object(), "runs") : nullptr;
    ASSERT_NE(runs, nullptr);
    ASSERT_EQ(runs->size(), 1u);
    EXPECT_EQ(String((*runs)[0], "run_id"), runs_[1]);

    auto completed = env_.Run({"runs", "list", "--status", "completed"});
    EXPECT_EQ(completed.exit_code(), 0);
    auto lines = Lines(completed.out);
    ASSERT_EQ(lines.size(), 3u) << completed.out;
    EXPECT_TRUE(lines[1].starts_with(runs_[2] + "  completed")) << lines[1];
    EXPECT_TRUE(lines[2].starts_with(runs_[0] + "  completed")) << lines[2];

    auto bogus = env_.Run({"runs", "list", "--status", "bogus"});
    EXPECT_EQ(bogus.exit_code(), 2);
    EXPECT_TRUE(bogus.err.starts_with("strowger: --status: unknown status \"bogus\"")) << bogus.err;
}

TEST_F(RunsCommandTest, ShowPrintsStepsAndOutput) {
    auto result = env_.Run({"runs", "show", runs_[0]});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    auto lines = Lines(result.out);
    EXPECT_EQ(lines.at(0), "run:        " + runs_[0]);
    EXPECT_EQ(lines.at(2), "status:     completed");
    EXPECT_NE(std::find(lines.begin(), lines.end(), "input:      x"), lines.end()) << result.out;
    int steps = 0;
    for (const auto& line : lines) {
        for (const std::string step : {"a ", "b ", "c "}) {
            if (line.starts_with(step)) {
                ++steps;
                EXPECT_NE(line.find(" completed     1 "), std::string::npos) << line;
            }
        }
    }
    EXPECT_EQ(steps, 3) << result.out;
    EXPECT_TRUE(result.out.ends_with("output:\nc(C b(B a(A x)))\n")) << result.out;

    auto json_result = env_.Run({"runs", "show", runs_[1], "--json"});
    EXPECT_EQ(json_result.exit_code(), 0) << json_result.err;
    auto record = ParseOrFail(json_result.out);
    EXPECT_EQ(String(record, "run_id"), runs_[1]);
    EXPECT_EQ(String(record, "status"), "failed");
    EXPECT_EQ(String(record, "error"), "Step 'only' failed: no luck");
    EXPECT_EQ(String(record, "input"), "y");

    auto missing = env_.Run({"runs", "show", "01NOSUCHRUN0000000000000000"});
    EXPECT_EQ(missing.exit_code(), 2);
    EXPECT_EQ(missing.out, "");
    EXPECT_TRUE(missing.err.starts_with("strowger: ")) << missing.err;
}

TEST_F(RunsCommandTest, EventsFiltersByTypeAndSequence) {
    auto stored = env_.Events(runs_[0]);
    ASSERT_EQ(stored.size(), 15u);

    auto all = env_.Run({"runs", "events", runs_[0], "--json"});
    EXPECT_EQ(all.exit_code(), 0) << all.err;
    auto lines = Lines(all.out);
    ASSERT_EQ(lines.size(), stored.size());
    for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i], stored[i].line);

    auto completed = env_.Run({"runs", "events", runs_[0], "--json", "--type", "node.completed"});
    EXPECT_EQ(completed.exit_code(), 0) << completed.err;
    std::vector<std::string> nodes;
    for (const auto& line : Lines(completed.out)) {
        auto event = ParseOrFail(line);
        EXPECT_EQ(String(event, "type"), "node.completed");
        nodes.push_back(String(event, "node"));
    }
    EXPECT_EQ(nodes, (std::vector<std::string>{"a", "b", "c"}));

    auto prefix = env_.Run({"runs", "events", runs_[0], "--json", "--type", "node."});
    EXPECT_EQ(Lines(prefix.out).size(), 6u) << prefix.out;  // started + completed, 3 nodes

    auto after = env_.Run({"runs", "events", runs_[0], "--json", "--after", "13"});
    EXPECT_EQ(after.exit_code(), 0) << after.err;
    EXPECT_EQ(after.out, stored[13].line + "\n" + stored[14].line + "\n");

    auto text = env_.Run({"runs", "events", runs_[0], "--type", "run.created"});
    EXPECT_EQ(text.exit_code(), 0) << text.err;
    auto text_lines = Lines(text.out);
    ASSERT_EQ(text_lines.size(), 1u) << text.out;
    EXPECT_TRUE(text_lines[0].starts_with("1     ")) << text_lines[0];
    EXPECT_NE(text_lines[0].find("run.created"), std::string::npos);
    EXPECT_TRUE(text_lines[0].ends_with("input: x")) << text_lines[0];
}

// --- the examples against an OpenAI-compatible endpoint -----------------------------------------

struct ExampleCase {
    const char* file;
    std::vector<std::string> input;  // the run's input flags
};

class ExampleOverHttpTest : public CliTest, public ::testing::WithParamInterface<ExampleCase> {};

// Each example of examples/ runs with `--model openai:...` against the loopback mock model server
// (as it would against api.openai.com with OPENAI_BASE_URL unset): every model call of the ledger
// is one HTTP request, labelled with its step, and the run's output is the last model answer.
TEST_P(ExampleOverHttpTest, RunsToTheEndWithOneRequestPerModelCall) {
    auto mock = MockModelServer::Start({});
    ASSERT_TRUE(mock) << mock.error().ToString();
    env_.SetEnv("OPENAI_BASE_URL", (*mock)->base_url());
    env_.SetEnv("OPENAI_API_KEY", "sk-example-test");
    std::vector<std::string> args = {"run", SourceDir() + "/examples/" + GetParam().file, "--model",
                                     "openai:gpt-4o-mini"};
    args.insert(args.end(), GetParam().input.begin(), GetParam().input.end());
    auto result = env_.Run(args, seconds(60));
    ASSERT_EQ(result.exit_code(), 0) << result.err;

    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    int64_t calls = CountEvents(events, "llm.request");
    EXPECT_GE(calls, 2) << Describe(events);
    EXPECT_EQ((*mock)->requests(), calls);
    std::set<std::string> nodes;
    for (const auto& event : events) {
        if (event.type == "llm.request") nodes.insert(event.node);
    }
    for (const auto& node : nodes) {
        EXPECT_EQ((*mock)->requests_for_node(node), CountEvents(events, "llm.request", node))
            << node;
    }
    for (const auto& request : (*mock)->recorded_requests()) {
        EXPECT_EQ(request.Header("Authorization"), "Bearer sk-example-test");
        EXPECT_NE(request.body.find("\"model\":\"gpt-4o-mini\""), std::string::npos)
            << request.body;
    }
    const LedgerEvent* last_response = nullptr;
    for (const auto& event : events) {
        if (event.type == "llm.response") last_response = &event;
    }
    ASSERT_NE(last_response, nullptr);
    EXPECT_EQ(result.out, DataString(last_response, "content") + "\n");
    EXPECT_EQ(env_.Run({"audit", "verify", run_id}).exit_code(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Examples, ExampleOverHttpTest,
    ::testing::Values(ExampleCase{"code-review.json",
                                  {"--input-file", SourceDir() + "/examples/inputs/user_lookup.c"}},
                      ExampleCase{"research-and-write.json", {"--input", "solid-state batteries"}},
                      ExampleCase{"brainstorm.json", {"--input", "a note-taking app"}},
                      ExampleCase{"iterative-refinement.json",
                                  {"--input", "a haiku about durability"}}),
    [](const auto& test) {
        std::string name = test.param.file;
        name = name.substr(0, name.find('.'));
        std::erase(name, '-');
        return name;
    });

// --- cross-process control ---------------------------------------------------------------------

using ControlTest = CliTest;

TEST_F(ControlTest, PauseStopsAtTheNextStepAndResumeFinishes) {
    // Step a takes three seconds, so the pause request (polled every 200 ms by the process
    // executing the run) arrives while it is still running, however slowly `runs pause`
    // starts on a loaded machine (half a second was not always enough under ASan).
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: a}, latency_ms: 3000, reply_template: "${step}(${prompt})"}
  - {reply_template: "${step}(${prompt})"}
)y");
    std::unique_ptr<ChildProcess> child;
    std::string run_id = StartAndWaitForNode(child, "a");
    ASSERT_FALSE(run_id.empty());

    auto pause = env_.Run({"runs", "pause", run_id});
    EXPECT_EQ(pause.exit_code(), 0) << pause.err;
    EXPECT_EQ(pause.out, "run " + run_id +
                             ": pause requested; the process executing it applies it at the next "
                             "step boundary\n");
    auto paused = child->Wait(seconds(10));
    EXPECT_EQ(paused.exit_code(), 3) << paused.status.ToString() << "\n" << paused.err;
    EXPECT_EQ(paused.out, "");
    EXPECT_EQ(paused.err, "strowger: run " + run_id +
                              " is paused; continue it with `strowger runs resume " + run_id +
                              "`\n");
    EXPECT_EQ(env_.RunStatus(run_id), "paused");
    auto events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.paused") << Describe(events);
    EXPECT_EQ(DataString(&events.back(), "reason"), "paused by operator");
    EXPECT_EQ(DataString(&events.back(), "actor"), "integration");
    EXPECT_EQ(CountEvents(events, "node.completed", "a"), 1);
    EXPECT_EQ(CountEvents(events, "node.started", "b"), 0) << Describe(events);

    auto resumed = env_.Run({"runs", "resume", run_id});
    EXPECT_EQ(resumed.exit_code(), 0) << resumed.err;
    EXPECT_EQ(resumed.out, std::string(kThreeStepsOutput) + "\n");
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    events = env_.Events(run_id);
    for (const std::string node : {"a", "b", "c"}) {
        EXPECT_EQ(CountEvents(events, "node.started", node), 1) << node << ": " << Describe(events);
        EXPECT_EQ(CountEvents(events, "node.completed", node), 1) << node;
    }
    const auto* resume_event = FindEvent(events, "run.resumed");
    EXPECT_EQ(DataString(resume_event, "reason"), "operator");
    EXPECT_EQ(events.back().type, "run.completed");
    EXPECT_EQ(DataString(&events.back(), "output"), kThreeStepsOutput);
}

TEST_F(ControlTest, CancelAbortsAHangingStepInAnotherProcess) {
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b}, hang: true}
  - {reply_template: "${step}(${prompt})"}
)y");
    std::unique_ptr<ChildProcess> child;
    std::string run_id = StartAndWaitForNode(child, "b");
    ASSERT_FALSE(run_id.empty());

    auto cancel =
        env_.Run({"runs", "cancel", run_id, "--reason", "no longer needed", "--actor", "alice"});
    EXPECT_EQ(cancel.exit_code(), 0) << cancel.err;
    EXPECT_EQ(cancel.out, "run " + run_id +
                              ": cancel requested; the process executing it applies it at once\n");
    // "At once": within the executing process's poll interval, far below this bound.
    auto cancelled = child->Wait(seconds(5));
    EXPECT_EQ(cancelled.exit_code(), 4) << cancelled.status.ToString() << "\n" << cancelled.err;
    EXPECT_EQ(cancelled.err, "strowger: run " + run_id + " cancelled (`strowger runs retry " +
                                 run_id + "` reopens it)\n");
    EXPECT_EQ(env_.RunStatus(run_id), "cancelled");
    auto events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.cancelled") << Describe(events);
    EXPECT_EQ(DataString(&events.back(), "reason"), "no longer needed");
    EXPECT_EQ(DataString(&events.back(), "actor"), "alice");
    EXPECT_EQ(CountEvents(events, "node.completed", "b"), 0);
}

TEST_F(ControlTest, PauseAndCancelOfARunNobodyExecutesAreAppliedDirectly) {
    // A run whose process died (kill -9) while step a hung: nobody executes it any more.
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: a}, hang: true}
  - {reply_template: "${step}(${prompt})"}
)y");
    std::unique_ptr<ChildProcess> child;
    std::string run_id = StartAndWaitForNode(child, "a");
    ASSERT_FALSE(run_id.empty());
    ASSERT_TRUE(child->Signal(SIGKILL));
    EXPECT_EQ(child->Wait(seconds(10)).status.signal, SIGKILL);

    auto pause = env_.Run({"runs", "pause", run_id, "--reason", "maintenance"});
    EXPECT_EQ(pause.exit_code(), 0) << pause.err;
    EXPECT_EQ(pause.out, "run " + run_id + ": paused\n");
    EXPECT_EQ(env_.RunStatus(run_id), "paused");
    auto events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.paused");
    EXPECT_EQ(DataString(&events.back(), "reason"), "maintenance");
    EXPECT_EQ(DataString(&events.back(), "actor"), "integration");

    auto cancel = env_.Run({"runs", "cancel", run_id, "--actor", "bob"});
    EXPECT_EQ(cancel.exit_code(), 0) << cancel.err;
    EXPECT_EQ(cancel.out, "run " + run_id + ": cancelled\n");
    EXPECT_EQ(env_.RunStatus(run_id), "cancelled");
    events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.cancelled");
    EXPECT_EQ(DataString(&events.back(), "reason"), "cancelled by operator");
    EXPECT_EQ(DataString(&events.back(), "actor"), "bob");

    // A cancelled run is final.
    auto resume = env_.Run({"runs", "resume", run_id});
    EXPECT_EQ(resume.exit_code(), 2);
    EXPECT_EQ(resume.err,
              "strowger: run " + run_id + " is cancelled; only unfinished runs can be resumed\n");
    EXPECT_EQ(env_.Events(run_id).size(), events.size());
    auto audit = env_.Run({"audit", "verify", run_id});
    EXPECT_EQ(audit.exit_code(), 0) << audit.out;
}

// --- idempotency, retry, rerun -----------------------------------------------------------------

using RetryTest = CliTest;

TEST_F(RetryTest, IdempotencyKeyReturnsTheExistingRun) {
    WriteWorkflow(kThreeSteps);
    auto first = env_.Run({"run", "workflow.yaml", "-i", "hi", "--idempotency-key", "nightly-1"});
    EXPECT_EQ(first.exit_code(), 0) << first.err;
    EXPECT_EQ(first.out, std::string(kThreeStepsOutput) + "\n");
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);

    auto second = env_.Run({"run", "workflow.yaml", "-i", "hi", "--idempotency-key", "nightly-1"});
    EXPECT_EQ(second.exit_code(), 0) << second.err;
    EXPECT_EQ(second.out, std::string(kThreeStepsOutput) + "\n");  // the same run's output
    EXPECT_EQ(second.err, "strowger: idempotency key already used by run " + run_id +
                              " (completed); not started again\n");
    EXPECT_EQ(env_.RunIds(), std::vector<std::string>{run_id});
    EXPECT_EQ(env_.Events(run_id).size(), events.size());
    EXPECT_EQ(DataString(FindEvent(events, "run.created"), "idempotency_key"), "nightly-1");
}

TEST_F(RetryTest, RetryContinuesFromTheFailedStep) {
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b, attempt: 1}, error: "flaky upstream"}
  - {reply_template: "${step}(${prompt})"}
)y");
    auto failed = env_.Run({"run", "workflow.yaml", "-i", "hi"});
    EXPECT_EQ(failed.exit_code(), 1);
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(env_.RunStatus(run_id), "failed");

    auto retried = env_.Run({"runs", "retry", run_id});
    EXPECT_EQ(retried.exit_code(), 0) << retried.err;
    EXPECT_EQ(retried.out, std::string(kThreeStepsOutput) + "\n");
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    auto events = env_.Events(run_id);
    EXPECT_EQ(CountEvents(events, "node.started", "a"), 1) << Describe(events);
    EXPECT_EQ(CountEvents(events, "node.started", "b"), 2);
    EXPECT_EQ(CountEvents(events, "node.started", "c"), 1);
    const auto* retry = FindEvent(events, "run.retried");
    ASSERT_NE(retry, nullptr) << Describe(events);
    EXPECT_EQ(json::serialize(retry->data.at("cleared")), R"(["b"])");
    EXPECT_FALSE(retry->data.contains("from_step"));
    EXPECT_EQ(DataString(retry, "actor"), "integration");
    const LedgerEvent* second_b = nullptr;
    for (const auto& event : events) {
        if (event.type == "node.completed" && event.node == "b") second_b = &event;
    }
    ASSERT_NE(second_b, nullptr);
    EXPECT_EQ(second_b->attempt, 2);  // attempt numbers continue
    EXPECT_EQ(events.back().type, "run.completed");
    EXPECT_EQ(env_.RunIds().size(), 1u);
}

TEST_F(RetryTest, RetryFromAStepRerunsItAndEveryStepAfterIt) {
    std::string run_id = CompletedRun();
    auto before = env_.Events(run_id);

    auto retried = env_.Run({"runs", "retry", run_id, "--step", "b"});
    EXPECT_EQ(retried.exit_code(), 0) << retried.err;
    EXPECT_EQ(retried.out, std::string(kThreeStepsOutput) + "\n");
    auto events = env_.Events(run_id);
    ASSERT_GT(events.size(), before.size());
    const auto* retry = FindEvent(events, "run.retried");
    ASSERT_NE(retry, nullptr);
    EXPECT_EQ(retry->seq, static_cast<int64_t>(before.size()) + 1);
    EXPECT_EQ(DataString(retry, "from_step"), "b");
    EXPECT_EQ(json::serialize(retry->data.at("cleared")), R"(["b","c"])");
    EXPECT_EQ(CountEvents(events, "node.started", "a"), 1) << Describe(events);
    EXPECT_EQ(CountEvents(events, "node.started", "b"), 2);
    EXPECT_EQ(CountEvents(events, "node.started", "c"), 2);
    std::vector<std::string> after_retry;
    for (const auto& event : events) {
        if (event.seq > retry->seq && event.type == "node.started") {
            after_retry.push_back(event.ToString());
        }
    }
    EXPECT_EQ(after_retry, (std::vector<std::string>{"node.started b#2", "node.started c#2"}));
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    auto audit = env_.Run({"audit", "verify", run_id});
    EXPECT_EQ(audit.exit_code(), 0) << audit.out;
}

TEST_F(RetryTest, RerunCreatesANewRunWithTheSameInput) {
    std::string original = CompletedRun();
    auto rerun = env_.Run({"runs", "rerun", original});
    EXPECT_EQ(rerun.exit_code(), 0) << rerun.err;
    EXPECT_EQ(rerun.out, std::string(kThreeStepsOutput) + "\n");
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 2u);
    ASSERT_EQ(ids[0], original);
    const std::string& copy = ids[1];
    EXPECT_EQ(env_.RunStatus(copy), "completed");

    auto original_events = env_.Events(original);
    const auto* original_created = FindEvent(original_events, "run.created");
    auto copy_events = env_.Events(copy);
    const auto* created = FindEvent(copy_events, "run.created");
    ASSERT_NE(created, nullptr);
    ASSERT_NE(original_created, nullptr);
    EXPECT_EQ(DataString(created, "rerun_of"), original);
    EXPECT_EQ(DataString(created, "input"), "hi");
    EXPECT_EQ(DataString(created, "definition_sha256"),
              DataString(original_created, "definition_sha256"));
    EXPECT_EQ(Types(copy_events), kThreeStepsLedger);
}

// --- approvals on a terminal --------------------------------------------------------------------

// An agent that wants to write a file, which needs a human's approval, then reports.
constexpr char kApprovalWorkflow[] = R"y(name: note
agents:
  clerk:
    model: "scripted:script.yaml"
    tools: [write_file]
    require_approval: [write_file]
steps:
  - {name: write, agent_name: clerk, prompt: "Note {{input}}"}
)y";
constexpr char kApprovalScript[] = R"y(rules:
  - when: {prompt_contains: Note}
    tool_calls: [{name: write_file, arguments: {path: note.txt, content: "noted"}}]
  - {reply_template: "done: ${prompt}"}
)y";

// The end of what a terminal showed (the live status line redraws often), for failure messages.
std::string Tail(const TerminalProcess& terminal) {
    const std::string& all = terminal.transcript();
    return all.size() <= 1500 ? all : "..." + all.substr(all.size() - 1500);
}

class TerminalApprovalTest : public CliTest {
  protected:
    void SetUp() override { WriteWorkflow(kApprovalWorkflow, kApprovalScript); }

    // `strowger run` on a terminal, up to its question about the write_file call.
    std::unique_ptr<TerminalProcess> RunUntilAsked() {
        auto terminal = env_.StartInTerminal({"run", "workflow.yaml", "--input", "hi"});
        EXPECT_TRUE(terminal->ReadUntil("Allow this call?", seconds(20))) << Tail(*terminal);
        return terminal;
    }

    std::filesystem::path NotePath(const std::string& run_id) const {
        return env_.dir() / "workspaces" / run_id / "note.txt";
    }
};

// On a terminal the live status line is redrawn on a timer; the command still ends with the run.
TEST_F(CliTest, OnATerminalTheLiveDisplayShowsTheStepsAndEndsWithTheRun) {
    WriteWorkflow(kThreeSteps);
    auto terminal = env_.StartInTerminal({"run", "workflow.yaml", "--input", "hi"});
    auto status = terminal->Wait(seconds(20));
    EXPECT_EQ(status.ToString(), "exit 0") << Tail(*terminal);
    for (const char* line : {"▶ a", "✓ b", "✓ c", kThreeStepsOutput}) {
        EXPECT_NE(terminal->transcript().find(line), std::string::npos) << line << "\n"
                                                                        << Tail(*terminal);
    }
}

TEST_F(TerminalApprovalTest, AnApprovedCallRunsAndTheRunCompletes) {
    auto terminal = RunUntilAsked();
    // The question shows what would run.
    EXPECT_NE(terminal->transcript().find("tool:      write_file"), std::string::npos)
        << Tail(*terminal);
    EXPECT_NE(terminal->transcript().find("\"path\":\"note.txt\""), std::string::npos);
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_FALSE(std::filesystem::exists(NotePath(run_id)));  // nothing ran before the answer
    terminal->Type("y\n");
    ASSERT_TRUE(terminal->ReadUntil("comment (optional):", seconds(10))) << Tail(*terminal);
    terminal->Type("checked the path\n");
    auto status = terminal->Wait(seconds(20));
    EXPECT_EQ(status.ToString(), "exit 0") << Tail(*terminal);

    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    std::ifstream note(NotePath(run_id));
    std::string content((std::istreambuf_iterator<char>(note)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, "noted");
    auto events = env_.Events(run_id);
    const auto* decided = FindEvent(events, "human_task.decided");
    ASSERT_NE(decided, nullptr) << Describe(events);
    EXPECT_EQ(DataString(decided, "decision"), "approve");
    EXPECT_EQ(DataString(decided, "actor"), "integration");  // $USER
    EXPECT_EQ(DataString(decided, "comment"), "checked the path");
    const auto* call = FindEvent(events, "tool.call");
    ASSERT_NE(call, nullptr) << Describe(events);
    EXPECT_GT(call->seq, decided->seq);
    EXPECT_EQ(CountEvents(events, "tool.call"), 1);
    EXPECT_EQ(DataString(&events.back(), "output").rfind("done: ", 0), 0u) << Describe(events);
    EXPECT_EQ(env_.Run({"audit", "verify", run_id}).exit_code(), 0);
}

TEST_F(TerminalApprovalTest, ARejectedCallNeverRunsAndTheAgentIsTold) {
    auto terminal = RunUntilAsked();
    terminal->Type("n\n");
    ASSERT_TRUE(terminal->ReadUntil("comment (optional):", seconds(10))) << Tail(*terminal);
    terminal->Type("not today\n");
    auto status = terminal->Wait(seconds(20));
    EXPECT_EQ(status.ToString(), "exit 0") << Tail(*terminal);

    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_FALSE(std::filesystem::exists(NotePath(run_id)));
    auto events = env_.Events(run_id);
    EXPECT_EQ(DataString(FindEvent(events, "human_task.decided"), "decision"), "reject");
    EXPECT_EQ(CountEvents(events, "tool.call"), 0) << Describe(events);
    // The refusal, with who and why, is the call's result, which the agent's next turn got.
    const std::string refusal = "error: a human rejected this call (integration: not today)";
    EXPECT_EQ(DataString(FindEvent(events, "tool.result"), "content"), refusal) << Describe(events);
    EXPECT_EQ(DataString(&events.back(), "output"), "done: " + refusal);
}

TEST_F(TerminalApprovalTest, DecidingLaterLeavesTheRunWaitingForApprove) {
    auto terminal = RunUntilAsked();
    terminal->Type("s\n");
    auto status = terminal->Wait(seconds(20));
    EXPECT_EQ(status.ToString(), "exit 3") << Tail(*terminal);
    EXPECT_TRUE(terminal->ReadUntil("strowger approve", seconds(1))) << Tail(*terminal);

    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(env_.RunStatus(run_id), "waiting");
    EXPECT_EQ(CountEvents(env_.Events(run_id), "human_task.decided"), 0);
    auto approved = env_.Run({"approve", run_id, "--comment", "later"});
    EXPECT_EQ(approved.exit_code(), 0) << approved.err;
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    EXPECT_TRUE(std::filesystem::exists(NotePath(run_id)));
}

// --- secrets -----------------------------------------------------------------------------------

class SecretsTest : public CliTest {
  protected:
    static constexpr char kSecret[] = "sk-test-SECRET-123456";

    void SetUp() override {
        env_.SetEnv("OPENAI_API_KEY", kSecret);
        WriteWorkflow(kThreeSteps);
        auto result =
            env_.Run({"run", "workflow.yaml", "--input", std::string("key=") + kSecret + " end"});
        EXPECT_EQ(result.exit_code(), 0) << result.err;
        EXPECT_EQ(result.out.find(kSecret), std::string::npos) << result.out;
        run_id_ = env_.WaitForOnlyRun();
        events_ = env_.Events(run_id_);
        ASSERT_EQ(events_.size(), 15u);
    }

    std::string run_id_;
    std::vector<LedgerEvent> events_;
};

TEST_F(SecretsTest, ModelTrafficAndOutputsAreRedacted) {
    for (const auto& event : events_) {
        if (event.type == "run.created") continue;  // see NoEventContainsTheApiKey
        EXPECT_EQ(event.line.find(kSecret), std::string::npos) << event.line;
    }
    EXPECT_EQ(DataString(FindEvent(events_, "llm.request", "a"), "prompt"), "A key=[REDACTED] end");
    EXPECT_EQ(DataString(FindEvent(events_, "llm.response", "a"), "content"),
              "a(A key=[REDACTED] end)");
    EXPECT_EQ(DataString(&events_.back(), "output"), "c(C b(B a(A key=[REDACTED] end)))");
}

// The run input is stored in run.created; a secret in it must not reach the ledger there either
// (`runs events --json` and `audit export` would hand it to anyone who reads them).
TEST_F(SecretsTest, NoEventContainsTheApiKey) {
    for (const auto& event : events_) {
        EXPECT_EQ(event.line.find(kSecret), std::string::npos) << event.line;
    }
    EXPECT_EQ(DataString(FindEvent(events_, "run.created"), "input"), "key=[REDACTED] end");
}

// --- bad input: store URLs, workflows, terminals --------------------------------------------

// The top-level entries of the test's directory (but the harness's out/): what a command wrote.
std::set<std::string> Entries(const CliEnvironment& env) {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(env.dir())) {
        std::string name = entry.path().filename().string();
        if (name != "out") names.insert(name);
    }
    return names;
}

bool HasControlBytes(const std::string& text) {
    return std::any_of(text.begin(), text.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && u != '\n' && u != '\t' && u != '\r') || u == 0x7f;
    });
}

using StoreUrlTest = CliTest;

// `--store sqlite:x.db` has no directory part: x.db is in the working directory (it aborted
// with "filesystem_error: cannot make absolute path" after creating the file).
TEST_F(StoreUrlTest, AFileNameAloneIsAFileInTheWorkingDirectory) {
    WriteWorkflow(kThreeSteps);
    for (const std::string url : {"sqlite:x.db", "sqlite:y.db?synchronous=full"}) {
        SCOPED_TRACE(url);
        auto result = env_.Run({"run", "workflow.yaml", "--input", "hi", "--store", url});
        EXPECT_EQ(result.exit_code(), 0) << result.err;
        EXPECT_EQ(result.out, std::string(kThreeStepsOutput) + "\n");
        EXPECT_EQ(result.err, "");
        auto listed = env_.Run({"runs", "list", "--json", "--store", url});
        EXPECT_EQ(listed.exit_code(), 0) << listed.err;
        auto record = ParseOrFail(listed.out);
        const auto* runs = record.is_object() ? JsonArray(record.get_object(), "runs") : nullptr;
        ASSERT_NE(runs, nullptr);
        ASSERT_EQ(runs->size(), 1u);
        EXPECT_EQ(String((*runs)[0], "status"), "completed");
    }
    EXPECT_TRUE(std::filesystem::is_regular_file(env_.dir() / "x.db"));
    EXPECT_TRUE(std::filesystem::is_regular_file(env_.dir() / "y.db"));
    EXPECT_FALSE(std::filesystem::exists(env_.store_path()));  // not the default store
}

TEST_F(StoreUrlTest, BadStoreUrlsAreRefusedBeforeAnythingIsWritten) {
    WriteWorkflow(kThreeSteps);
    const auto before = Entries(env_);
    struct Case {
        std::string url, message;
    };
    for (const Case& c : std::vector<Case>{
             {"sqlite:sub/",
              "/sub/ is a directory: name a file in it, e.g. sqlite:sub/strowger.db"},
             {"sqlite:.", " is a directory: name a file in it, e.g. sqlite:./strowger.db"},
             {"sqlite:", "has no path (expected sqlite:PATH)"},
             {"sqlite:x.db?cache=shared", "unknown parameter \"cache\""},
             {"bogus:x.db", "unknown store URL \"bogus:x.db\""},
         }) {
        SCOPED_TRACE(c.url);
        auto result = env_.Run({"run", "workflow.yaml", "--input", "hi", "--store", c.url});
        EXPECT_EQ(result.exit_code(), 5);
        EXPECT_EQ(result.out, "");
        EXPECT_TRUE(result.err.starts_with("strowger: cannot open store " + c.url + ": "))
            << result.err;
        EXPECT_NE(result.err.find(c.message), std::string::npos) << result.err;
        EXPECT_EQ(Entries(env_), before);
    }
}

using BadWorkflowTest = CliTest;

// Deep nesting and alias bombs, in the workflow or in an agent file, are refused with their
// position by validate and by run, and run writes nothing (no store file, no run).
TEST_F(BadWorkflowTest, DeepNestingAndAliasBombsAreRefusedWithTheirPosition) {
    env_.Write("script.yaml", kEchoScript);
    env_.Write("deep.yaml", "name: deep\nsteps: " + std::string(100'000, '[') +
                                std::string(100'000, ']') + "\n");
    std::string bomb = "x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int level = 1; level <= 9; ++level) {
        std::string prev = "*x" + std::to_string(level - 1);
        bomb += "x" + std::to_string(level) + ": &x" + std::to_string(level) + " [";
        for (int i = 0; i < 10; ++i) bomb += (i ? ", " : "") + prev;
        bomb += "]\n";
    }
    env_.Write("bomb.yaml", "name: bomb\n" + bomb + "steps: *x9\n");
    env_.Write("flows/agents/writer.yaml", "model: \"scripted:../script.yaml\"\n" + bomb);
    env_.Write("flows/flow.yaml", "name: f\nsteps:\n  - {name: a, agent_name: writer}\n");
    const auto before = Entries(env_);
    struct Case {
        std::string file, message;
    };
    for (const Case& c : std::vector<Case>{
             {"deep.yaml", "deep.yaml:2:"},
             {"bomb.yaml", "bomb.yaml:2:30: too many nodes once aliases are expanded (more than "},
             {"flows/flow.yaml",
              "flows/agents/writer.yaml:2:30: too many nodes once aliases are "
              "expanded (more than "},
         }) {
        SCOPED_TRACE(c.file);
        auto validated = env_.Run({"validate", c.file});
        EXPECT_EQ(validated.exit_code(), 2);
        EXPECT_TRUE(validated.err.starts_with(c.message)) << validated.err;
        if (c.file == "deep.yaml") {
            EXPECT_NE(validated.err.find(": nested deeper than 64 levels\n"), std::string::npos)
                << validated.err;
        }
        auto run = env_.Run({"run", c.file, "--input", "hi"});
        EXPECT_EQ(run.exit_code(), 2);
        EXPECT_EQ(run.err, validated.err);
        EXPECT_EQ(Entries(env_), before);  // no store file
    }
}

// A binary file gives a few short printable lines (a 256 KB file gave a 377 KB message).
TEST_F(BadWorkflowTest, ABinaryFileGivesAShortPrintableMessage) {
    env_.Write("script.yaml", kEchoScript);
    std::string binary = "name: ";
    uint32_t state = 12345;
    while (binary.size() < 256 * 1024) {
        state = state * 1103515245 + 12345;
        char c = static_cast<char>(state >> 24);
        // Bytes of every kind, NUL and ESC included, but nothing YAML reads as syntax.
        if (c == '\n' || c == ':' || c == '#' || c == '"' || c == '\'' || c == '\\' || c == '[' ||
            c == '{' || c == '&' || c == '*' || c == '!' || c == '|' || c == '>' || c == '%' ||
            c == '@' || c == '`' || c == ',' || c == ']' || c == '}' || c == '-' || c == '?') {
            continue;
        }
        binary += c;
    }
    env_.Write("binary.yaml", binary);
    const auto before = Entries(env_);
    auto validated = env_.Run({"validate", "binary.yaml"});
    EXPECT_EQ(validated.exit_code(), 2);
    EXPECT_EQ(validated.out, "");
    EXPECT_LT(validated.err.size(), 4096u) << validated.err.substr(0, 500);
    EXPECT_TRUE(validated.err.starts_with("binary.yaml:")) << validated.err.substr(0, 500);
    EXPECT_EQ(validated.err.find('\0'), std::string::npos);
    EXPECT_FALSE(HasControlBytes(validated.err)) << validated.err.substr(0, 500);
    auto run = env_.Run({"run", "binary.yaml", "--input", "hi"});
    EXPECT_EQ(run.exit_code(), 2);
    EXPECT_EQ(run.err, validated.err);
    EXPECT_EQ(Entries(env_), before);
}

// A step name that is not UTF-8 becomes one spelling (U+FFFD for the bad byte) in the plan, the
// ledger lines and the store's node column; validate names the field in a warning.
TEST_F(BadWorkflowTest, NamesThatAreNotUtf8HaveOneSpellingEverywhere) {
    WriteWorkflow(
        "name: latin1\nagents:\n  writer: {model: \"scripted:script.yaml\"}\n"
        "steps:\n  - {name: \"caf\xe9\", agent_name: writer, prompt: \"A {{input}}\"}\n");
    const std::string repaired = "caf\xef\xbf\xbd";
    auto validated = env_.Run({"validate", "workflow.yaml"});
    EXPECT_EQ(validated.exit_code(), 0) << validated.err;
    EXPECT_EQ(validated.err,
              "workflow.yaml:5:12: warning: steps[0].name: not valid UTF-8: each invalid byte "
              "sequence is replaced by U+FFFD\n");

    auto run = env_.Run({"run", "workflow.yaml", "--input", "hi"});
    EXPECT_EQ(run.exit_code(), 0) << run.err;
    EXPECT_EQ(run.out, repaired + "(A hi)\n");
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(QueryColumn(env_.store_path(), "SELECT DISTINCT node FROM events WHERE node != ''"),
              std::vector<std::string>{repaired});
    auto events = env_.Events(run_id);
    const auto* started = FindEvent(events, "node.started");
    ASSERT_NE(started, nullptr) << Describe(events);
    EXPECT_EQ(started->node, repaired);
    EXPECT_EQ(String(ParseOrFail(started->line), "node"), repaired);

    auto plan = env_.Run({"plan", "workflow.yaml", "--format", "json"});
    EXPECT_EQ(plan.exit_code(), 0) << plan.err;
    EXPECT_NE(plan.out.find("\"" + repaired + "\""), std::string::npos) << plan.out;
}

// A model's reply of terminal controls (clear the screen, set the window title).
constexpr char kControlReply[] = "\x1b[2J\x1b]0;pwned\x07X";
constexpr char kControlReplyEscaped[] = "\\x1b[2J\\x1b]0;pwned\\x07X";

class TerminalEscapeTest : public CliTest {
  protected:
    void SetUp() override {
        WriteWorkflow(
            "name: esc\nagents:\n  writer: {model: \"scripted:script.yaml\"}\n"
            "steps:\n  - {name: \"a\\e[31m\", agent_name: writer, prompt: \"A {{input}}\"}\n",
            "rules:\n  - {reply: \"\\e[2J\\e]0;pwned\\aX\"}\n");
    }

    // Runs `strowger args...` on a pseudo-terminal to its end; what the terminal showed.
    std::string OnTerminal(const std::vector<std::string>& args) {
        auto terminal = env_.StartInTerminal(args);
        auto status = terminal->Wait(seconds(20));
        EXPECT_EQ(status.ToString(), "exit 0") << terminal->transcript();
        return terminal->transcript();
    }
};

// On a terminal, nothing a model wrote reaches the screen as a control sequence: not the
// output, not the live display (the step's name has one too), not `runs show`/`runs events`.
TEST_F(TerminalEscapeTest, ModelTextNeverReachesATerminalRaw) {
    std::string run = OnTerminal({"run", "workflow.yaml", "--input", "hi", "--progress", "always"});
    EXPECT_EQ(run.find("\x1b[2J"), std::string::npos) << run;
    EXPECT_EQ(run.find("\x1b]0;"), std::string::npos) << run;
    EXPECT_EQ(run.find("\x1b[31m"), std::string::npos) << run;
    EXPECT_EQ(run.find('\x07'), std::string::npos) << run;
    EXPECT_NE(run.find(kControlReplyEscaped), std::string::npos) << run;
    EXPECT_NE(run.find("a\\x1b[31m"), std::string::npos) << run;  // the live display
    std::string run_id = env_.WaitForOnlyRun();

    // Our own display: no escape sequence at all without the live status line.
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"run", "workflow.yaml", "--input", "hi", "--progress", "never"},
             {"runs", "show", run_id},
             {"runs", "events", run_id},
             {"runs", "list"}}) {
        SCOPED_TRACE(args[0] + " " + args[1]);
        std::string shown = OnTerminal(args);
        EXPECT_EQ(shown.find('\x1b'), std::string::npos) << shown;
        EXPECT_EQ(shown.find('\x07'), std::string::npos) << shown;
    }
    EXPECT_NE(OnTerminal({"runs", "show", run_id}).find(kControlReplyEscaped), std::string::npos);
}

// --json keeps the exact text (JSON-escaped), on a terminal too; so does a pipe.
TEST_F(TerminalEscapeTest, JsonAndPipesKeepTheExactBytes) {
    std::string json =
        OnTerminal({"run", "workflow.yaml", "--input", "hi", "--json", "--progress", "never"});
    EXPECT_NE(json.find("\\u001b[2J\\u001b]0;pwned\\u0007X"), std::string::npos) << json;
    std::string run_id = env_.WaitForOnlyRun();
    auto record = ParseOrFail(Lines(env_.Run({"runs", "show", run_id, "--json"}).out).at(0));
    EXPECT_EQ(String(record, "output"), kControlReply);

    // `strowger run f.yaml > out.txt`: the workflow's output, byte for byte.
    auto piped = env_.Run({"run", "workflow.yaml", "--input", "hi"});
    EXPECT_EQ(piped.exit_code(), 0) << piped.err;
    EXPECT_EQ(piped.out, std::string(kControlReply) + "\n");
    // A report for a person is escaped wherever it goes.
    auto shown = env_.Run({"runs", "show", run_id});
    EXPECT_EQ(shown.out.find('\x1b'), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find(kControlReplyEscaped), std::string::npos) << shown.out;
    auto events = env_.Run({"runs", "events", run_id, "--json"});
    EXPECT_NE(events.out.find("\\u001b[2J"), std::string::npos) << events.out;
}

// stderr is escaped whatever it is: a step's error quoting a model.
TEST_F(TerminalEscapeTest, ErrorsOnStderrAreEscaped) {
    env_.Write("script.yaml", "rules:\n  - {error: \"\\e[2Jboom\\e]0;pwned\\a\"}\n");
    auto result = env_.Run({"run", "workflow.yaml", "--input", "hi"});
    EXPECT_EQ(result.exit_code(), 1);
    EXPECT_EQ(result.err.find('\x1b'), std::string::npos) << result.err;
    EXPECT_NE(result.err.find("\\x1b[2Jboom\\x1b]0;pwned\\x07"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace strowger::testing
