// Validation and compilation of workflow files: every error class, with its exact message,
// position and field path.
#include <gtest/gtest.h>

#include <algorithm>

#include "model/loader.hpp"
#include "model/plan.hpp"
#include "model/plan_format.hpp"
#include "model/schema.hpp"

namespace strowger::model {
namespace {

// Loads + compiles `text` as flow.yaml; returns every diagnostic as "line:col: path: message".
std::vector<std::string> Check(const std::string& text, const std::string& file = "flow.yaml",
                               std::vector<std::string> known_tools = {}) {
    LoadOptions options;
    options.sibling_agents = false;
    auto loaded = LoadWorkflowText(text, file, "", options);
    CompileOptions compile_options;
    compile_options.known_providers = {"openai", "scripted"};
    compile_options.known_tools = std::move(known_tools);
    auto compiled = Compile(loaded.workflow, compile_options);
    std::vector<std::string> out;
    for (const auto* list : {&loaded.diagnostics, &compiled.diagnostics}) {
        for (const auto& d : *list) out.push_back(d.ToString());
    }
    return out;
}

std::shared_ptr<const Plan> CompileOk(const std::string& text) {
    LoadOptions options;
    options.sibling_agents = false;
    auto loaded = LoadWorkflowText(text, "flow.yaml", "", options);
    EXPECT_TRUE(loaded.ok());
    auto compiled = Compile(loaded.workflow);
    EXPECT_TRUE(compiled.ok());
    for (const auto& d : compiled.diagnostics) {
        if (d.severity == Diagnostic::Severity::kError) ADD_FAILURE() << d.ToString();
    }
    return compiled.plan;
}

const char* kAgents = "name: demo\nagents:\n  w: {model: \"openai:gpt-4o-mini\"}\n";

TEST(ValidateTest, UnknownModeNamesPositionFieldAndChoices) {
    auto d = Check(std::string(kAgents) +
                   "steps:\n"
                   "  - {name: a, agent_name: w}\n"
                   "  - {name: b, agent_name: w}\n"
                   "  - name: c\n"
                   "    agent_name: w\n"
                   "    mode: fanout\n");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0],
              "flow.yaml:9:11: steps[2].mode: unknown mode \"fanout\" (expected one of sequential, "
              "fan_out, collect, conditional, loop)");
}

TEST(ValidateTest, UnknownAgentUsesLibreFangMessage) {
    auto d = Check(std::string(kAgents) + "steps:\n  - {name: review, agent_name: reviewer}\n");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0],
              "flow.yaml:5:32: steps[0].agent_name: Agent not found for step 'review': no agent "
              "named \"reviewer\"");
}

TEST(ValidateTest, UnknownAgentSuggestsCloseName) {
    auto d = Check(
        "name: x\nagents:\n  writer: {model: \"openai:m\"}\nsteps:\n  - {name: s, agent_name: "
        "writr}\n");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_NE(d[0].find("Agent not found for step 's'"), std::string::npos);
    EXPECT_NE(d[0].find("(did you mean \"writer\"?)"), std::string::npos);
}

TEST(ValidateTest, StepWithoutAgent) {
    auto d = Check(std::string(kAgents) + "steps:\n  - {name: lonely}\n");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(
        d[0],
        "flow.yaml:5:5: steps[0]: Agent not found for step 'lonely' (give agent_name or agent_id)");
}

TEST(ValidateTest, DuplicateStepNames) {
    auto d = Check(std::string(kAgents) +
                   "steps:\n"
                   "  - {name: a, agent_name: w}\n"
                   "  - {name: a, agent_name: w}\n");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0],
              "flow.yaml:6:12: steps[1].name: duplicate step name \"a\" (first used by steps[0] at "
              "line 5)");
}

// Timeouts and retry delays are at most a year: near 2^63 they overflowed (timeout_secs *
// 1000 at load, the timer when armed).
TEST(ValidateTest, TimeoutsAndDelaysAreAtMostAYear) {
    auto d = Check(std::string(kAgents) +
                   "steps:\n"
                   "  - {name: a, agent_name: w, timeout_secs: 9223372036854775807}\n"
                   "  - {name: b, agent_name: w, timeout_ms: 31536000001}\n"
                   "  - {name: c, agent_name: w, retry: {max_delay_ms: 31536000001}}\n"
                   "  - {name: d, agent_name: w, timeout_secs: 31536000}\n");
    ASSERT_EQ(d.size(), 3u) << d[0];
    EXPECT_NE(d[0].find("steps[0].timeout_secs: must be at most 31536000, got "
                        "9223372036854775807"),
              std::string::npos)
        << d[0];
    EXPECT_NE(d[1].find("steps[1].timeout_ms: must be at most 31536000000, got 31536000001"),
              std::string::npos)
        << d[1];
    EXPECT_NE(d[2].find("max_delay_ms: must be at most 31536000000, got 31536000001"),
              std::string::npos)
        << d[2];
}

TEST(ValidateTest, BadNumbers) {
    auto d = Check(std::string(kAgents) +
                   "steps:\n"
                   "  - name: a\n"
                   "    agent_name: w\n"
                   "    timeout_secs: -5\n"
                   "    max_retries: \"3\"\n"
                   "    max_iterations: 0\n"
                   "  - {name: b, agent_name: w, timeout_secs: 1.5}\n"
                   "  - {name: c, agent_name: w, timeout_secs: 99999999999999999999}\n");
    ASSERT_EQ(d.size(), 5u);
    EXPECT_EQ(d[0], "flow.yaml:7:19: steps[0].timeout_secs: must be a positive integer, got -5");
    EXPECT_EQ(d[1], "flow.yaml:8:18: steps[0].max_retries: expected an integer >= 0, got a string");
    EXPECT_EQ(d[2], "flow.yaml:9:21: steps[0].max_iterations: must be a positive integer, got 0");
    EXPECT_EQ(d[3],
              "flow.yaml:10:44: steps[1].timeout_secs: expected a positive integer, got \"1.5\"");
    EXPECT_EQ(d[4],
              "flow.yaml:11:44: steps[2].timeout_secs: number 99999999999999999999 is too large");
}

TEST(ValidateTest, UnknownFieldsSuggestTheRightOne) {
    auto d = Check(
        "name: x\n"
        "agents:\n"
        "  w: {model: \"openai:m\", system_promt: hi}\n"
        "stepz: []\n"
        "steps:\n"
        "  - {name: a, agent_name: w, promt: hi, output_variable: v, zzz: 1}\n");
    ASSERT_EQ(d.size(), 5u);
    EXPECT_EQ(d[0],
              "flow.yaml:3:26: agents.w.system_promt: unknown field \"system_promt\" (did you mean "
              "\"system_prompt\"?)");
    EXPECT_EQ(d[1], "flow.yaml:4:1: stepz: unknown field \"stepz\" (did you mean \"steps\"?)");
    EXPECT_EQ(d[2],
              "flow.yaml:6:30: steps[0].promt: unknown field \"promt\" (did you mean \"prompt\"?)");
    EXPECT_EQ(d[3],
              "flow.yaml:6:41: steps[0].output_variable: unknown field \"output_variable\" (did "
              "you mean \"output_var\"?)");
    EXPECT_EQ(d[4], "flow.yaml:6:61: steps[0].zzz: unknown field \"zzz\"");
}

TEST(ValidateTest, CommentsInJsonAreNamedAsSuch) {
    // A comment YAML reads into a key.
    auto d = Check(
        "{\"name\": \"x\",\n"
        " /* the agents */ \"agents\": {\"w\": {\"model\": \"openai:m\"}},\n"
        " \"steps\": [{\"name\": \"a\", \"agent_name\": \"w\", \"prompt\": \"hi\"}]}\n");
    ASSERT_GE(d.size(), 1u);
    EXPECT_EQ(
        d[0],
        "flow.yaml:2:2: comments are not allowed in JSON (\"/*\" starts one here); remove the "
        "comment, or write the file as YAML and use # comments");
    for (const auto& line : d) EXPECT_EQ(line.find("unknown field"), std::string::npos) << line;
    // A comment that breaks the syntax: the error says where the comment is.
    d = Check(
        "{\"name\": \"x\",\n"
        " \"agents\": {\"w\": {\"model\": \"openai:m\"}},\n"
        " \"steps\": [{\"name\": \"a\", \"agent_name\": \"w\", // why\n"
        "   \"prompt\": \"hi // not a comment\"}]}\n");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_NE(d[0].find("syntax error"), std::string::npos) << d[0];
    EXPECT_NE(d[0].find("(line 3 has \"//\": comments are not allowed in JSON; remove the "
                        "comment, or write the file as YAML and use # comments)"),
              std::string::npos)
        << d[0];
}

TEST(ValidateTest, EveryProblemIsReportedAtOnce) {
    auto d = Check(std::string(kAgents) +
                   "steps:\n"
                   "  - {name: a, agent_name: nobody, mode: fanout}\n"
                   "  - {name: a, agent_name: w, error_mode: explode}\n");
    ASSERT_EQ(d.size(), 4u);
    EXPECT_NE(d[0].find("unknown mode \"fanout\""), std::string::npos);
    EXPECT_NE(d[1].find("unknown error_mode \"explode\" (expected one of fail, skip, retry)"),
              std::string::npos);
    EXPECT_NE(d[2].find("Agent not found for step 'a'"), std::string::npos);
    EXPECT_NE(d[3].find("duplicate step name \"a\""), std::string::npos);
}

TEST(ValidateTest, JsonFilesGetLineAndColumnToo) {
    auto d = Check(
        "{\n"
        "  \"name\": \"j\",\n"
        "  \"agents\": {\"w\": {\"model\": \"openai:m\"}},\n"
        "  \"steps\": [\n"
        "    {\"name\": \"s\", \"agent_name\": \"w\", \"mode\": \"fanout\"}\n"
        "  ]\n"
        "}\n",
        "flow.json");
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0],
              "flow.json:5:46: steps[0].mode: unknown mode \"fanout\" (expected one of sequential, "
              "fan_out, collect, conditional, loop)");
}

TEST(ValidateTest, SyntaxErrorHasAPosition) {
    auto d = Check("name: x\nsteps:\n  - {name: a, agent_name: w\n");
    ASSERT_FALSE(d.empty());
    EXPECT_EQ(d[0].rfind("flow.yaml:4:1: syntax error: ", 0), 0u) << d[0];
}

TEST(ValidateTest, DependsOnUnknownStepAndCycles) {
    auto unknown = Check(std::string(kAgents) +
                         "steps:\n"
                         "  - {name: a, agent_name: w}\n"
                         "  - {name: b, agent_name: w, depends_on: [aa]}\n");
    ASSERT_EQ(unknown.size(), 1u);
    EXPECT_EQ(unknown[0],
              "flow.yaml:6:43: steps[1].depends_on[0]: unknown step \"aa\" (did you mean \"a\"?)");
    auto cycle = Check(std::string(kAgents) +
                       "steps:\n"
                       "  - {name: a, agent_name: w, depends_on: [b]}\n"
                       "  - {name: b, agent_name: w, depends_on: [a]}\n");
    ASSERT_EQ(cycle.size(), 1u);
    EXPECT_NE(cycle[0].find("dependency cycle: "), std::string::npos) << cycle[0];
}

TEST(ValidateTest, ModelMustNameAKnownProvider) {
    auto d = Check(
        "name: x\nagents:\n  w: {model: \"gpt4\"}\n  v: {model: \"acme:big\"}\nsteps:\n  - {name: "
        "a, agent_name: w}\n  - {name: b, agent_name: v}\n");
    ASSERT_EQ(d.size(), 2u);
    EXPECT_EQ(d[0],
              "flow.yaml:3:14: agents.w.model: model \"gpt4\" must be written provider:model, e.g. "
              "openai:gpt-4o-mini");
    EXPECT_EQ(d[1],
              "flow.yaml:4:14: agents.v.model: unknown provider \"acme\" (expected one of openai, "
              "scripted)");
}

TEST(ValidateTest, WarningsForVariablesAndModes) {
    auto d =
        Check(std::string(kAgents) +
              "steps:\n"
              "  - {name: a, agent_name: w, output_var: unused}\n"
              "  - {name: b, agent_name: w, prompt: \"{{later}}\"}\n"
              "  - {name: c, agent_name: w, output_var: later, mode: fan_out, error_mode: skip}\n"
              "  - {name: d, agent_name: w, condition: x}\n");
    ASSERT_EQ(d.size(), 4u);
    EXPECT_EQ(d[0],
              "flow.yaml:7:76: warning: steps[2].error_mode: error_mode skip does not apply to "
              "fan_out steps: a failing fan-out step fails the run");
    EXPECT_EQ(
        d[1],
        "flow.yaml:8:41: warning: steps[3].condition: condition is only used by mode conditional");
    EXPECT_EQ(d[2],
              "flow.yaml:6:38: warning: steps[1].prompt: {{later}} is not set by an earlier step "
              "(a later step sets it); it stays as written");
    EXPECT_EQ(d[3],
              "flow.yaml:5:42: warning: steps[0].output_var: variable \"unused\" is never used");
}

TEST(ValidateTest, WorkflowNeedsNameAndSteps) {
    auto d = Check("description: nothing\n");
    ASSERT_EQ(d.size(), 2u);
    EXPECT_EQ(d[0], "flow.yaml:1:1: steps: a workflow needs a list of steps (or nodes and edges)");
    EXPECT_EQ(d[1], "flow.yaml:1:1: name: a workflow needs a name");
}

TEST(CompileTest, LinearFormBecomesStagesOfTheDag) {
    auto plan = CompileOk(std::string(kAgents) +
                          "steps:\n"
                          "  - {name: a, agent_name: w}\n"
                          "  - {name: f1, agent_name: w, mode: fan_out}\n"
                          "  - {name: f2, agent_name: w, mode: fan_out}\n"
                          "  - {name: g, agent_name: w, mode: collect}\n"
                          "  - {name: z, agent_name: w}\n");
    ASSERT_TRUE(plan);
    ASSERT_EQ(plan->nodes.size(), 5u);
    EXPECT_EQ(plan->nodes[1].deps, std::vector<int>{0});
    EXPECT_EQ(plan->nodes[2].deps, std::vector<int>{0});
    EXPECT_EQ(plan->nodes[2].inputs, std::vector<int>{0});
    EXPECT_EQ(plan->nodes[3].deps, (std::vector<int>{1, 2}));
    EXPECT_EQ(plan->nodes[3].inputs, (std::vector<int>{1, 2}));
    EXPECT_EQ(plan->nodes[3].kind, NodeKind::kCollect);
    EXPECT_EQ(plan->nodes[4].inputs, std::vector<int>{3});
    ASSERT_EQ(plan->layers.size(), 4u);
    EXPECT_EQ(plan->layers[1], (std::vector<int>{1, 2}));
    EXPECT_EQ(plan->output_node, 4);
    EXPECT_EQ(plan->definition_sha256.size(), 64u);
}

TEST(CompileTest, RetryAttemptsAndDefaultsFollowLibreFang) {
    auto plan = CompileOk(std::string(kAgents) +
                          "steps:\n"
                          "  - {name: a, agent_name: w, error_mode: retry}\n"
                          "  - {name: b, agent_name: w, error_mode: retry, max_retries: 0}\n"
                          "  - {name: c, agent_name: w, mode: loop}\n");
    ASSERT_TRUE(plan);
    EXPECT_EQ(plan->nodes[0].max_attempts, 4);
    EXPECT_EQ(plan->nodes[0].timeout_ms, 120000);
    EXPECT_EQ(plan->nodes[0].prompt.source(), "{{input}}");
    EXPECT_EQ(plan->nodes[1].max_attempts, 1);
    EXPECT_EQ(plan->nodes[2].max_iterations, 5);
    EXPECT_EQ(plan->nodes[2].until, "");
}

TEST(ValidateTest, ToolsApprovalsMcpServersAndLimits) {
    std::string text = R"(name: t
agents:
  a:
    model: "openai:x"
    tools: [shel, read_file, nope/echo, fs/read]
    require_approval: [write_file]
    limits: {max_tokens: 0, max_cost_usd: -1}
mcp_servers:
  fs: {command: npx, safety: dangerous, tools: {read: {safety: read_only}}}
  "a/b": {command: x}
limits: {max_tool_calls: 0}
steps:
  - {name: s, agent_name: a}
)";
    std::vector<std::string> expected = {
        "flow.yaml:5:13: agents.a.tools[0]: unknown tool \"shel\" (did you mean \"shell\"?)",
        "flow.yaml:5:30: agents.a.tools[2]: unknown MCP server \"nope\" in tool \"nope/echo\"",
        "flow.yaml:6:24: agents.a.require_approval[0]: \"write_file\" is not one of the agent's "
        "tools",
        "flow.yaml:7:26: agents.a.limits.max_tokens: must be a positive integer, got 0",
        "flow.yaml:7:43: agents.a.limits.max_cost_usd: must be a positive number, got -1",
        "flow.yaml:9:30: mcp_servers.fs.safety: unknown safety class \"dangerous\" (expected one "
        "of read_only, idempotent_write, destructive)",
        "flow.yaml:10:3: mcp_servers.a/b: an MCP server name must be non-empty and have no '/'",
        "flow.yaml:11:26: limits.max_tool_calls: must be a positive integer, got 0",
    };
    // (Loader errors come before compiler errors; `validate` sorts them by position.)
    auto got = Check(text, "flow.yaml", {"shell", "read_file", "write_file"});
    std::sort(got.begin(), got.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(got, expected);
}

TEST(CompileTest, PlanCarriesMcpServersRunLimitsAndAnAbsoluteWorkspace) {
    LoadOptions options;
    options.sibling_agents = false;
    auto loaded = LoadWorkflowText(R"(name: t
workspace: ws
limits: {max_tokens: 1000, max_cost_usd: 0.5, max_tool_calls: 7}
mcp_servers:
  fs: {command: npx, args: [-y, server], sandboxed: true, network: false, safety: read_only}
agents:
  a: {model: "openai:x", tools: [fs/read, shell], require_approval: [shell]}
steps:
  - {name: s, agent_name: a}
)",
                                   "/srv/flows/flow.yaml", "/srv/flows", options);
    ASSERT_TRUE(loaded.ok()) << loaded.diagnostics[0].ToString();
    CompileOptions compile_options;
    compile_options.known_tools = {"shell"};
    auto compiled = Compile(loaded.workflow, compile_options);
    ASSERT_TRUE(compiled.ok()) << compiled.diagnostics[0].ToString();
    const Plan& plan = *compiled.plan;
    EXPECT_EQ(plan.workspace, "/srv/flows/ws");
    EXPECT_EQ(plan.limits.max_tokens, 1000);
    EXPECT_EQ(plan.limits.max_cost_usd, 0.5);
    EXPECT_EQ(plan.limits.max_tool_calls, 7);
    ASSERT_EQ(plan.mcp_servers.size(), 1u);
    EXPECT_EQ(plan.mcp_servers[0].name, "fs");
    EXPECT_EQ(plan.mcp_servers[0].args, (std::vector<std::string>{"-y", "server"}));
    EXPECT_TRUE(plan.mcp_servers[0].sandboxed);
    EXPECT_FALSE(plan.mcp_servers[0].network);
    EXPECT_EQ(plan.mcp_servers[0].safety, "read_only");
    EXPECT_EQ(plan.mcp_servers[0].base_dir, "/srv/flows");
    // The pinned snapshot compiles back to the same plan fields and definition.
    LoadOptions snapshot_options;
    snapshot_options.sibling_agents = false;
    auto reloaded = LoadWorkflowText(plan.definition_json, "<snapshot>", "", snapshot_options);
    ASSERT_TRUE(reloaded.ok()) << reloaded.diagnostics[0].ToString();
    auto recompiled = Compile(reloaded.workflow);
    ASSERT_TRUE(recompiled.ok()) << recompiled.diagnostics[0].ToString();
    EXPECT_EQ(recompiled.plan->definition_sha256, plan.definition_sha256);
    EXPECT_EQ(recompiled.plan->workspace, "/srv/flows/ws");
    EXPECT_EQ(recompiled.plan->limits.max_cost_usd, 0.5);
    ASSERT_EQ(recompiled.plan->mcp_servers.size(), 1u);
    EXPECT_EQ(recompiled.plan->mcp_servers[0].base_dir, "/srv/flows");
    EXPECT_EQ(recompiled.plan->agents[0].require_approval, std::vector<std::string>{"shell"});
}

TEST(CompileTest, SnapshotRoundTripsToTheSameDefinition) {
    auto plan = CompileOk(std::string(kAgents) +
                          "steps:\n"
                          "  - {name: a, agent_name: w, prompt: \"Hi {{input}}\", output_var: v, "
                          "retry: {jitter: 0.5}}\n"
                          "  - {name: b, agent_name: w, mode: loop, until: OK, max_iterations: 3, "
                          "prompt: \"{{v}}\"}\n");
    ASSERT_TRUE(plan);
    LoadOptions options;
    options.sibling_agents = false;
    auto reloaded = LoadWorkflowText(plan->definition_json, "<snapshot>", "", options);
    ASSERT_TRUE(reloaded.ok()) << reloaded.diagnostics[0].ToString();
    auto recompiled = Compile(reloaded.workflow);
    ASSERT_TRUE(recompiled.ok());
    EXPECT_EQ(recompiled.plan->definition_json, plan->definition_json);
    EXPECT_EQ(recompiled.plan->definition_sha256, plan->definition_sha256);
}

TEST(CompileTest, LibreFangHttpBodyLoadsVerbatim) {
    // The POST /api/workflows body of the reference document, agents supplied separately.
    std::string body = R"({
  "name": "my-pipeline",
  "description": "Description of the workflow",
  "steps": [
    {
      "name": "step-1",
      "agent_name": "researcher",
      "prompt": "Research: {{input}}",
      "mode": "sequential",
      "timeout_secs": 120,
      "error_mode": "fail",
      "output_var": "research"
    }
  ]
})";
    LoadOptions options;
    options.sibling_agents = false;
    auto loaded = LoadWorkflowText(body, "body.json", "", options);
    ASSERT_TRUE(loaded.ok());
    loaded.workflow.agents.push_back(
        AgentSpec{.name = "researcher", .model = "openai:gpt-4o-mini"});
    auto compiled = Compile(loaded.workflow);
    ASSERT_TRUE(compiled.ok());
    EXPECT_EQ(compiled.plan->nodes[0].timeout_ms, 120000);
    EXPECT_EQ(compiled.plan->nodes[0].output_var, "research");
}

TEST(PlanFormatTest, DotAndMermaidShowEveryEdge) {
    auto plan = CompileOk(std::string(kAgents) +
                          "steps:\n"
                          "  - {name: a, agent_name: w}\n"
                          "  - {name: b, agent_name: w, mode: fan_out}\n"
                          "  - {name: c, agent_name: w, mode: fan_out}\n");
    ASSERT_TRUE(plan);
    std::string dot = FormatPlan(*plan, PlanFormat::kDot);
    EXPECT_NE(dot.find("\"a\" -> \"b\";"), std::string::npos);
    EXPECT_NE(dot.find("\"a\" -> \"c\";"), std::string::npos);
    std::string mermaid = FormatPlan(*plan, PlanFormat::kMermaid);
    EXPECT_NE(mermaid.find("n0 --> n1"), std::string::npos);
    EXPECT_NE(mermaid.find("n0 --> n2"), std::string::npos);
    std::string text = FormatPlan(*plan, PlanFormat::kText, std::string("INPUT"));
    EXPECT_NE(text.find("layer 2 (concurrent):"), std::string::npos);
    EXPECT_NE(text.find("| INPUT"), std::string::npos);
}

// --- Large workflows: compile time and memory linear in the steps ------------------------------

std::string SequentialSteps(int n, const std::string& step_fields) {
    std::string text = std::string(kAgents) + "steps:\n";
    for (int i = 0; i < n; ++i) {
        text += "  - {name: s" + std::to_string(i) + ", agent_name: w" + step_fields + "}\n";
    }
    return text;
}

// Each of 20,000 steps sets {{draft}} and reads the one before: the refinement loop written
// out. Ancestor sets made this quadratic (4,000 steps: 394 MB); it must just finish.
TEST(CompileTest, TwentyThousandStepsThatEachReadThePreviousOnesVariable) {
    constexpr int kSteps = 20'000;
    auto plan =
        CompileOk(SequentialSteps(kSteps, ", prompt: \"Improve {{draft}}\", output_var: draft"));
    ASSERT_TRUE(plan);
    ASSERT_EQ(plan->nodes.size(), static_cast<size_t>(kSteps));
    const PlanNode& last = plan->nodes.back();
    // Its setters are already its ancestors: no edge is added.
    EXPECT_EQ(last.deps, std::vector<int>{kSteps - 2});
    const auto& segments = last.prompt.segments();
    ASSERT_EQ(segments.size(), 2u);
    const SourceList& sources = segments[1].sources;
    ASSERT_EQ(sources.size(), static_cast<size_t>(kSteps - 1));  // every earlier step, latest first
    EXPECT_EQ(sources[0], kSteps - 2);
    EXPECT_EQ(sources[sources.size() - 1], 0);
    EXPECT_TRUE(plan->nodes[0].prompt.segments()[1].sources.empty());
    EXPECT_EQ(plan->layers.size(), static_cast<size_t>(kSteps));
}

// Twenty thousand fan-out steps reading a variable set before the fan-out, then one collect.
TEST(CompileTest, TwentyThousandFanOutStepsReadingOneVariable) {
    constexpr int kSteps = 20'000;
    std::string text =
        std::string(kAgents) + "steps:\n  - {name: first, agent_name: w, " + "output_var: topic}\n";
    for (int i = 0; i < kSteps; ++i) {
        text += "  - {name: f" + std::to_string(i) +
                ", agent_name: w, mode: fan_out, prompt: \"{{topic}} {{input}}\"}\n";
    }
    text += "  - {name: all, mode: collect}\n";
    auto plan = CompileOk(text);
    ASSERT_TRUE(plan);
    ASSERT_EQ(plan->nodes.size(), static_cast<size_t>(kSteps + 2));
    EXPECT_EQ(plan->nodes[kSteps].deps, std::vector<int>{0});
    EXPECT_EQ(plan->nodes.back().deps.size(), static_cast<size_t>(kSteps));
    EXPECT_EQ(plan->layers.size(), 3u);
}

// Reads whose setters the wiring does not already make ancestors get an edge; a read of a step
// that depends on the reader is an error (the diagnostics the ancestor sets gave).
TEST(CompileTest, VariableReadsAddEdgesOnlyWhereTheWiringDoesNot) {
    auto plan = CompileOk(std::string(kAgents) +
                          "steps:\n"
                          "  - {name: a, agent_name: w, output_var: x}\n"
                          "  - {name: f1, agent_name: w, mode: fan_out, output_var: y}\n"
                          "  - {name: f2, agent_name: w, mode: fan_out, prompt: \"{{y}} {{x}} "
                          "{{y}}\"}\n"
                          "  - {name: d, agent_name: w, depends_on: [a], prompt: \"{{y}}\"}\n"
                          "  - {name: e, agent_name: w, prompt: \"{{x}} {{y}}\"}\n");
    ASSERT_TRUE(plan);
    // f2 and f1 are siblings: reading {{y}} makes f2 wait for f1 (once); a is an ancestor.
    EXPECT_EQ(plan->nodes[2].deps, (std::vector<int>{0, 1}));
    // d depends on a only; {{y}} adds f1.
    EXPECT_EQ(plan->nodes[3].deps, (std::vector<int>{0, 1}));
    // e follows d. f1 became d's dependency through a variable read, after the wiring: the
    // read of {{y}} still adds it (as the ancestor sets did), while a is an ancestor already.
    EXPECT_EQ(plan->nodes[4].deps, (std::vector<int>{3, 1}));
    EXPECT_EQ(plan->nodes[4].prompt.segments()[0].sources.ToVector(), std::vector<int>{0});

    auto cycle = Check(std::string(kAgents) +
                       "steps:\n"
                       "  - {name: a, agent_name: w, output_var: x, depends_on: [c]}\n"
                       "  - {name: b, agent_name: w, depends_on: []}\n"
                       "  - {name: c, agent_name: w, prompt: \"{{x}}\", depends_on: [b]}\n");
    ASSERT_EQ(cycle.size(), 1u);
    EXPECT_EQ(cycle[0],
              "flow.yaml:7:38: steps[2].prompt: {{x}} reads step 'a', which depends on this step");
}

// --- Bad input: bounded parsing, short printable messages, one spelling of each name ---------

TEST(ValidateTest, DeepNestingIsRefusedWithItsPosition) {
    std::string deep =
        "name: deep\nsteps: " + std::string(100'000, '[') + std::string(100'000, ']') + "\n";
    auto d = Check(deep);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].rfind("flow.yaml:2:", 0), 0u) << d[0];
    EXPECT_NE(d[0].find(": nested deeper than 64 levels"), std::string::npos) << d[0];
}

TEST(ValidateTest, AliasBombIsRefused) {
    std::string text = "name: bomb\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int level = 1; level <= 9; ++level) {
        std::string prev = "*x" + std::to_string(level - 1);
        text += "x" + std::to_string(level) + ": &x" + std::to_string(level) + " [";
        for (int i = 0; i < 10; ++i) text += (i ? ", " : "") + prev;
        text += "]\n";
    }
    text += "steps: *x9\n";
    auto d = Check(text);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_NE(d[0].find("too many nodes once aliases are expanded"), std::string::npos) << d[0];
    EXPECT_EQ(d[0].rfind("flow.yaml:", 0), 0u) << d[0];
}

// Every diagnostic is one line of printable text of bounded length, whatever it quotes.
void ExpectShortAndPrintable(const std::vector<std::string>& diagnostics, size_t max_bytes) {
    ASSERT_FALSE(diagnostics.empty());
    for (const auto& d : diagnostics) {
        EXPECT_LE(d.size(), max_bytes) << d.substr(0, 200);
        for (char c : d) {
            auto u = static_cast<unsigned char>(c);
            ASSERT_TRUE(u >= 0x20 && u != 0x7f) << "byte " << int(u) << " in " << d.substr(0, 200);
        }
    }
}

TEST(ValidateTest, MessagesQuoteAtMostAFewHundredBytesOfInputEscaped) {
    // A binary file: a scalar of 256 KB with NULs, ESCs and bytes that are not UTF-8.
    std::string binary;
    for (int i = 0; i < 256 * 1024; ++i) binary += static_cast<char>((i * 7919) % 256);
    binary[0] = 'x';
    ExpectShortAndPrintable(Check(binary), 1024);

    // A megabyte name used twice, a megabyte mode, a name of terminal controls, and an unknown
    // field (a YAML key is at most 1,024 characters) of them.
    std::string huge(1 << 20, 'n');
    std::string controls = "\\e[2J\\e]0;pwned\\a\\nb";
    auto d = Check(std::string(kAgents) + "steps:\n  - {name: \"" + huge +
                   "\", agent_name: w}\n  - {name: \"" + huge + "\", agent_name: w, mode: \"" +
                   huge + "\"}\n  - {name: \"" + controls + "\", agent_name: nobody, \"" +
                   controls + std::string(900, 'k') + "\": 1}\n");
    ExpectShortAndPrintable(d, 1024);
    std::string all;
    for (const auto& line : d) all += line + "\n";
    EXPECT_NE(all.find("duplicate step name \"nnnn"), std::string::npos) << all.substr(0, 500);
    EXPECT_NE(all.find("(1048576 bytes in all)"), std::string::npos);
    EXPECT_NE(all.find("Agent not found for step '\\x1b[2J\\x1b]0;pwned\\x07\\nb'"),
              std::string::npos)
        << all;
    // The unknown field's name is in the path too: capped there as well.
    EXPECT_NE(all.find(".\\x1b[2J\\x1b]0;pwned\\x07\\nbkkkk"), std::string::npos) << all;
    EXPECT_NE(all.find(": unknown field \"\\x1b[2J"), std::string::npos) << all;
}

TEST(ValidateTest, NamesThatAreNotUtf8AreRepairedWithAWarning) {
    LoadOptions options;
    options.sibling_agents = false;
    auto loaded = LoadWorkflowText(std::string(kAgents) +
                                       "steps:\n"
                                       "  - {name: \"caf\xe9\", agent_name: w, output_var: v}\n"
                                       "  - {name: b, agent_name: w, depends_on: [\"caf\xe9\"], "
                                       "prompt: \"{{v}}\"}\n",
                                   "flow.yaml", "", options);
    ASSERT_TRUE(loaded.ok());
    std::vector<std::string> warnings;
    for (const auto& d : loaded.diagnostics) warnings.push_back(d.ToString());
    EXPECT_EQ(warnings, (std::vector<std::string>{
                            "flow.yaml:5:12: warning: steps[0].name: not valid UTF-8: each invalid "
                            "byte sequence is replaced by U+FFFD",
                            "flow.yaml:6:43: warning: steps[1].depends_on[0]: not valid UTF-8: "
                            "each invalid byte sequence is replaced by U+FFFD",
                        }));
    auto compiled = Compile(loaded.workflow);
    ASSERT_TRUE(compiled.ok());
    EXPECT_EQ(compiled.plan->nodes[0].id, "caf\xef\xbf\xbd");
    EXPECT_EQ(compiled.plan->nodes[1].deps, std::vector<int>{0});
    // The pinned definition has the same name, so a resumed run's plan agrees.
    EXPECT_NE(compiled.plan->definition_json.find("\"name\":\"caf\xef\xbf\xbd\""),
              std::string::npos);
}

// The snapshot is hashed to pin runs: its bytes must not change (a step with every field).
TEST(CompileTest, SnapshotOfAStepIsStable) {
    auto plan =
        CompileOk(std::string(kAgents) +
                  "steps:\n"
                  "  - {name: a, agent_name: w, output_var: v}\n"
                  "  - {name: \"b \\\"q\\\"\", agent_id: w, prompt: \"P {{v}}\", mode: loop, "
                  "until: DONE, max_iterations: 2, condition: c, error_mode: retry, "
                  "max_retries: 1, timeout_ms: 1500, depends_on: [a], "
                  "retry: {initial_delay_ms: 5, max_delay_ms: 50, multiplier: 1.5, "
                  "jitter: 0}}\n");
    ASSERT_TRUE(plan);
    std::string steps = plan->definition_json.substr(plan->definition_json.find("\"steps\":"));
    EXPECT_EQ(steps.substr(0, steps.find("]}") + 2),
              "\"steps\":[{\"agent_name\":\"w\",\"error_mode\":\"fail\",\"max_iterations\":5,"
              "\"max_retries\":3,\"mode\":\"sequential\",\"name\":\"a\",\"output_var\":\"v\","
              "\"prompt\":\"{{input}}\",\"retry\":{\"initial_delay_ms\":100,\"jitter\":0.2,"
              "\"max_delay_ms\":2000,\"multiplier\":2.0},\"timeout_ms\":120000},"
              "{\"agent_id\":\"w\",\"condition\":\"c\",\"depends_on\":[\"a\"],"
              "\"error_mode\":\"retry\",\"max_iterations\":2,\"max_retries\":1,\"mode\":\"loop\","
              "\"name\":\"b \\\"q\\\"\",\"prompt\":\"P {{v}}\",\"retry\":{\"initial_delay_ms\":5,"
              "\"jitter\":0.0,\"max_delay_ms\":50,\"multiplier\":1.5},\"timeout_ms\":1500,"
              "\"until\":\"DONE\"}]}");
}

}  // namespace
}  // namespace strowger::model

namespace strowger::model {
namespace {

// The schema is generated from the loader's field tables: every field has a type there.
TEST(WorkflowSchemaTest, EveryFieldOfTheLoaderHasASchemaType) {
    EXPECT_EQ(FieldsWithoutSchemaType(), "");
    std::string schema = WorkflowJsonSchema();
    EXPECT_NE(schema.find("\"depends_on\""), std::string::npos);
    EXPECT_NE(schema.find("\"^x-\""), std::string::npos);
}

}  // namespace
}  // namespace strowger::model
