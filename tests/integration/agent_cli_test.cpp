// Agents with tools end to end (SPEC §4-§6): the real `strowger` binary, started as a child
// process on workflows written into a temporary directory, with real tools (shell in the
// bubblewrap sandbox, the file tools, an MCP server from npm), a real SQLite store read
// directly, and only the model replaced: by the scripted provider, or by the loopback mock
// model server speaking the OpenAI API. Exit codes, output and the ledger are checked exactly.
//
// Nothing sleeps to synchronise: the tests poll the store, the workspace or a terminal for what
// they wait for, with a deadline.
#include <gtest/gtest.h>

#include <signal.h>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "ledger/event.hpp"
#include "testing/mcp_servers.hpp"
#include "testing/mock_model_server.hpp"
#include "testing/test_util.hpp"

namespace strowger::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using Events = std::vector<LedgerEvent>;

// --- Helpers ---------------------------------------------------------------------------------

std::vector<std::string> Types(const Events& events) {
    std::vector<std::string> types;
    for (const auto& event : events) types.push_back(event.ToString());
    return types;
}

std::string Str(const LedgerEvent* event, std::string_view key) {
    return event ? std::string(JsonString(event->data, key)) : "<no event>";
}

// The events of `type` (and `node`, if given), in order.
std::vector<const LedgerEvent*> All(const Events& events, const std::string& type,
                                    const std::string& node = "") {
    std::vector<const LedgerEvent*> found;
    for (const auto& event : events) {
        if (event.type == type && (node.empty() || event.node == node)) found.push_back(&event);
    }
    return found;
}

std::string ReadIfExists(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    if (in) out << in.rdbuf();
    return out.str();
}

json::value ParseOrFail(const std::string& text) {
    auto parsed = ParseJson(text);
    EXPECT_TRUE(parsed.has_value()) << "not JSON: " << text;
    return parsed ? *parsed : json::value();
}

// What the shell tool returns for a command that exited 0 with `out` on stdout and nothing on
// stderr (src/tools/builtin/shell_tool.cpp).
std::string ShellSuccess(const std::string& out) {
    return "exit code: 0\nstdout:\n" + out + "stderr:\n(empty)\n";
}

class AgentCliTest : public ::testing::Test {
  protected:
    // Writes the workflow as workflow.yaml and the scripted replies as script.yaml.
    void WriteWorkflow(const std::string& workflow, const std::string& script) {
        env_.Write("workflow.yaml", workflow);
        env_.Write("script.yaml", script);
    }

    // The directory the tools of `run_id` work in (no `workspace:` in the workflow).
    fs::path WorkspaceOf(const std::string& run_id) const {
        return env_.dir() / "workspaces" / run_id;
    }

    CliEnvironment env_;
};

// --- 1. Built-in tools in the sandbox ----------------------------------------------------------

constexpr char kSandboxFlow[] = R"y(name: sandbox
agents:
  worker:
    model: "scripted:script.yaml"
    system_prompt: "You keep notes."
    tools: [shell, read_file]
steps:
  - {name: work, agent_name: worker, prompt: "Write a note about {{input}}"}
)y";

// Turn 1 runs a shell script that writes note.txt in the workspace, reports what it sees of the
// sandbox (its idempotency key, whether /usr is writable) and tries to write outside the
// workspace; turn 2 reads note.txt back with read_file; turn 3 answers with what it read. Each
// turn is recognised by the last message the model got (the prompt, then a tool result).
constexpr char kSandboxScript[] = R"y(rules:
  - when: {prompt_contains: "Write a note"}
    tool_calls:
      - name: shell
        arguments:
          command: |
            printf 'hello from the sandbox\n' > note.txt
            echo "bytes=$(wc -c < note.txt)"
            echo "key=$STROWGER_IDEMPOTENCY_KEY"
            { touch /usr/strowger-probe; } 2>/dev/null && echo "usr=writable" || echo "usr=read-only"
            { echo escaped > ../../escaped.txt; } 2>/dev/null || true
  - when: {prompt_contains: "key="}
    tool_calls: [{name: read_file, arguments: {path: note.txt}}]
  - when: {prompt_contains: "hello from the sandbox"}
    reply_template: "note: ${prompt}"
)y";
constexpr char kNote[] = "hello from the sandbox\n";

TEST_F(AgentCliTest, BuiltinToolsRunInTheSandboxAndAreRecorded) {
    WriteWorkflow(kSandboxFlow, kSandboxScript);
    auto result = env_.Run({"run", "workflow.yaml", "--input", "tools"});
    std::string run_id = env_.WaitForOnlyRun();
    ASSERT_FALSE(run_id.empty());
    auto events = env_.Events(run_id);
    EXPECT_EQ(result.exit_code(), 0) << result.err << Describe(events);
    EXPECT_EQ(result.out, std::string("note: ") + kNote);
    EXPECT_EQ(result.err, "");

    const std::vector<std::string> expected = {
        "run.created",         "run.started",           "node.started work#1", "llm.request work#1",
        "llm.response work#1", "tool.call work#1",      "tool.result work#1",  "llm.request work#1",
        "llm.response work#1", "tool.call work#1",      "tool.result work#1",  "llm.request work#1",
        "llm.response work#1", "node.completed work#1", "run.completed",
    };
    EXPECT_EQ(Types(events), expected);

    auto calls = All(events, "tool.call");
    auto results = All(events, "tool.result");
    ASSERT_EQ(calls.size(), 2u);
    ASSERT_EQ(results.size(), 2u);
    // The shell call: destructive, committed before it ran, with its idempotency key, which
    // also reached the sandboxed process ($STROWGER_IDEMPOTENCY_KEY).
    EXPECT_EQ(Str(calls[0], "tool"), "shell");
    EXPECT_EQ(Str(calls[0], "safety"), "destructive");
    EXPECT_EQ(Str(calls[0], "idempotency_key"), run_id + "/work/1/1");
    EXPECT_EQ(JsonInt(calls[0]->data, "turn"), 1);
    EXPECT_LT(calls[0]->seq, results[0]->seq);
    EXPECT_EQ(Str(results[0], "call_id"), Str(calls[0], "call_id"));
    EXPECT_EQ(Str(results[0], "content"),
              ShellSuccess("bytes=" + std::to_string(std::string(kNote).size()) +
                           "\nkey=" + run_id + "/work/1/1\nusr=read-only\n"));
    EXPECT_FALSE(JsonBool(results[0]->data, "is_error"));
    // The read_file call: read-only, the second call of the step.
    EXPECT_EQ(Str(calls[1], "tool"), "read_file");
    EXPECT_EQ(Str(calls[1], "safety"), "read_only");
    EXPECT_EQ(Str(calls[1], "arguments"), R"({"path":"note.txt"})");
    EXPECT_EQ(Str(calls[1], "idempotency_key"), run_id + "/work/1/2");
    EXPECT_EQ(JsonInt(calls[1]->data, "turn"), 2);
    EXPECT_EQ(Str(results[1], "content"), kNote);
    // The model saw the tool calls it asked for in its responses.
    auto responses = All(events, "llm.response");
    ASSERT_EQ(responses.size(), 3u);
    const auto* asked = JsonArray(responses[0]->data, "tool_calls");
    ASSERT_NE(asked, nullptr);
    ASSERT_EQ(asked->size(), 1u);
    EXPECT_EQ(JsonString((*asked)[0].as_object(), "name"), "shell");

    // The file exists in the run's workspace on the host; nothing escaped the sandbox.
    EXPECT_EQ(ReadIfExists(WorkspaceOf(run_id) / "note.txt"), kNote);
    EXPECT_FALSE(fs::exists(env_.dir() / "escaped.txt"));
    EXPECT_FALSE(fs::exists("/usr/strowger-probe"));

    auto verify = env_.Run({"audit", "verify", run_id});
    EXPECT_EQ(verify.exit_code(), 0) << verify.out << verify.err;
    EXPECT_TRUE(verify.out.starts_with(run_id + ": ok (" + std::to_string(events.size()) +
                                       " events, 1 signed checkpoints, head "))
        << verify.out;
}

TEST_F(AgentCliTest, ShellHasNoNetworkUnlessTheAgentIsGranted) {
    // Something listening on the host's loopback: a step whose agent has `network: true` can
    // connect to it from the sandbox; one without cannot (its sandbox has its own network).
    auto listener = MockModelServer::Start({});
    ASSERT_TRUE(listener.has_value()) << listener.error().message();
    const std::string probe =
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', " +
        std::to_string((*listener)->port()) +
        "), 5); print('net=ok')\" 2>/dev/null || echo net=blocked";
    WriteWorkflow(R"y(name: network
agents:
  closed: {model: "scripted:script.yaml", tools: [shell]}
  open: {model: "scripted:script.yaml", tools: [shell], network: true}
steps:
  - {name: without, agent_name: closed, prompt: "Probe"}
  - {name: with, agent_name: open, prompt: "Probe"}
)y",
                  "rules:\n"
                  "  - when: {prompt_contains: \"exit code\"}\n"
                  "    reply_template: \"${step} ${prompt}\"\n"
                  "  - tool_calls: [{name: shell, arguments: {command: " +
                      json::serialize(json::value(probe)) + "}}]\n");
    auto result = env_.Run({"run", "workflow.yaml"});
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    EXPECT_EQ(result.exit_code(), 0) << result.err << Describe(events);
    EXPECT_EQ(Str(FindEvent(events, "tool.result", "without"), "content"),
              ShellSuccess("net=blocked\n"));
    EXPECT_EQ(Str(FindEvent(events, "tool.result", "with"), "content"), ShellSuccess("net=ok\n"));
    EXPECT_EQ(result.out, "with " + ShellSuccess("net=ok\n"));
}

// --- 2. The allowlist --------------------------------------------------------------------------

TEST_F(AgentCliTest, ValidateRejectsUnknownToolsAndApprovalsOutsideTheAllowlist) {
    env_.Write("script.yaml", "rules:\n  - {reply: ok}\n");
    env_.Write("bad.yaml", R"y(name: allowlist
agents:
  ops:
    model: "scripted:script.yaml"
    tools: [read_file, shel]
    require_approval: [shell]
steps:
  - {name: s, agent_name: ops, prompt: "Go"}
)y");
    auto result = env_.Run({"validate", "bad.yaml"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err,
              "bad.yaml:5:24: agents.ops.tools[1]: unknown tool \"shel\" (did you mean "
              "\"shell\"?)\n"
              "bad.yaml:6:24: agents.ops.require_approval[0]: \"shell\" is not one of the "
              "agent's tools\n");
    // `run` refuses it the same way, before creating a run.
    auto run = env_.Run({"run", "bad.yaml"});
    EXPECT_EQ(run.exit_code(), 2);
    EXPECT_EQ(run.err, result.err);
    EXPECT_TRUE(env_.RunIds().empty());
}

TEST_F(AgentCliTest, AToolOutsideTheAllowlistIsRefusedAtRunTime) {
    // The model asks for shell, which the agent was not granted: the call never runs (no
    // tool.call, no side effect); the refusal is the tool result the model gets.
    WriteWorkflow(R"y(name: refused
agents:
  reader:
    model: "scripted:script.yaml"
    tools: [read_file]
steps:
  - {name: s, agent_name: reader, prompt: "Go"}
)y",
                  R"y(rules:
  - when: {prompt_contains: "Go"}
    tool_calls: [{name: shell, arguments: {command: "touch pwned.txt"}}]
  - {reply_template: "model saw: ${prompt}"}
)y");
    auto result = env_.Run({"run", "workflow.yaml"});
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    const std::string refusal = "error: tool 'shell' is not allowed for agent reader";
    EXPECT_EQ(result.out, "model saw: " + refusal + "\n");
    auto events = env_.Events(run_id);
    EXPECT_EQ(CountEvents(events, "tool.call"), 0) << Describe(events);
    auto results = All(events, "tool.result");
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(Str(results[0], "content"), refusal);
    EXPECT_TRUE(JsonBool(results[0]->data, "is_error"));
    EXPECT_FALSE(fs::exists(WorkspaceOf(run_id) / "pwned.txt"));
    EXPECT_FALSE(fs::exists(env_.dir() / "pwned.txt"));
}

// --- 3. Approvals ------------------------------------------------------------------------------

// `shell` needs a human's approval. The command appends a line with its idempotency key to
// deployed.txt, so the file shows how often it ran.
constexpr char kDeployFlow[] = R"y(name: deploy
agents:
  ops:
    model: "scripted:script.yaml"
    system_prompt: "You deploy."
    tools: [read_file, shell]
    require_approval: [shell]
steps:
  - {name: deploy, agent_name: ops, prompt: "Deploy {{input}}", error_mode: retry, max_retries: 2}
)y";
constexpr char kDeployScript[] = R"y(rules:
  - when: {prompt_contains: "Deploy "}
    tool_calls:
      - {name: shell, arguments: {command: "echo \"deployed $STROWGER_IDEMPOTENCY_KEY\" | tee -a deployed.txt"}}
  - when: {prompt_contains: "a human rejected"}
    reply_template: "gave up: ${prompt}"
  - when: {prompt_contains: "exit code: 0"}
    reply_template: "done: ${prompt}"
)y";
constexpr char kDeployArguments[] =
    R"({"command":"echo \"deployed $STROWGER_IDEMPOTENCY_KEY\" | tee -a deployed.txt"})";

class ApprovalTest : public AgentCliTest {
  protected:
    // `strowger run` (stdin is not a terminal) stops at the approval: exit 3, the run waits
    // with one open task and nothing of the turn has run. Returns the run id.
    std::string RunUntilWaiting() {
        WriteWorkflow(kDeployFlow, kDeployScript);
        auto result = env_.Run({"run", "workflow.yaml", "--input", "prod"});
        std::string run_id = env_.WaitForOnlyRun();
        EXPECT_EQ(result.exit_code(), 3) << result.err;
        EXPECT_EQ(result.out, "");
        EXPECT_NE(result.err.find("waits for a human decision"), std::string::npos) << result.err;
        EXPECT_NE(result.err.find("strowger approve " + run_id), std::string::npos) << result.err;
        EXPECT_EQ(env_.RunStatus(run_id), "waiting");
        auto events = env_.Events(run_id);
        const std::vector<std::string> expected = {
            "run.created",          "run.started",           "node.started deploy#1",
            "llm.request deploy#1", "llm.response deploy#1", "human_task.created deploy#1",
        };
        EXPECT_EQ(Types(events), expected);
        const auto* task = FindEvent(events, "human_task.created");
        EXPECT_EQ(Str(task, "task_id"), "deploy/1/1");
        EXPECT_EQ(Str(task, "kind"), "tool_approval");
        EXPECT_EQ(Str(task, "tool"), "shell");
        EXPECT_EQ(Str(task, "arguments"), kDeployArguments);
        EXPECT_FALSE(fs::exists(WorkspaceOf(run_id) / "deployed.txt"));
        return run_id;
    }

    // `runs show` lists the open task, with the command the agent wants to run.
    void ExpectShowListsTheTask(const std::string& run_id) {
        auto show = env_.Run({"runs", "show", run_id});
        EXPECT_EQ(show.exit_code(), 0) << show.err;
        auto lines = Lines(show.out);
        EXPECT_EQ(lines.at(2), "status:     waiting");
        auto at = std::find(lines.begin(), lines.end(),
                            "waiting for a human decision (`strowger approve " + run_id +
                                " TASK` or `strowger reject " + run_id + " TASK --reason ...`):");
        ASSERT_NE(at, lines.end()) << show.out;
        ASSERT_GE(lines.end() - at, 4) << show.out;
        EXPECT_EQ(*(at + 1), "  deploy/1/1  Agent ops wants to call shell");
        EXPECT_EQ(*(at + 2), "    tool:      shell");
        EXPECT_EQ(*(at + 3), std::string("    arguments: ") + kDeployArguments);
        bool step_waiting = false;
        for (const auto& line : lines) {
            if (line.starts_with("deploy ") && line.find(" waiting ") != std::string::npos)
                step_waiting = true;
        }
        EXPECT_TRUE(step_waiting) << show.out;

        auto json_show = env_.Run({"runs", "show", run_id, "--json"});
        EXPECT_EQ(json_show.exit_code(), 0) << json_show.err;
        auto record = ParseOrFail(json_show.out);
        ASSERT_TRUE(record.is_object());
        const auto* open = JsonArray(record.get_object(), "open_tasks");
        ASSERT_NE(open, nullptr) << json_show.out;
        ASSERT_EQ(open->size(), 1u);
        const auto& task = (*open)[0].as_object();
        EXPECT_EQ(JsonString(task, "task_id"), "deploy/1/1");
        EXPECT_EQ(JsonString(task, "kind"), "tool_approval");
        EXPECT_EQ(JsonString(task, "step"), "deploy");
        EXPECT_EQ(JsonString(task, "tool"), "shell");
        EXPECT_EQ(JsonString(task, "arguments"), kDeployArguments);
    }

    // After the approval: the decision is in the ledger, the shell ran once, after it.
    void ExpectApprovedAndRanOnce(const std::string& run_id, const std::string& comment) {
        std::string line = "deployed " + run_id + "/deploy/1/1\n";
        EXPECT_EQ(ReadIfExists(WorkspaceOf(run_id) / "deployed.txt"), line);
        EXPECT_EQ(env_.RunStatus(run_id), "completed");
        auto events = env_.Events(run_id);
        const std::vector<std::string> expected = {
            "run.created",
            "run.started",
            "node.started deploy#1",
            "llm.request deploy#1",
            "llm.response deploy#1",
            "human_task.created deploy#1",
            "human_task.decided deploy#0",
            "run.resumed",
            "tool.call deploy#1",
            "tool.result deploy#1",
            "llm.request deploy#1",
            "llm.response deploy#1",
            "node.completed deploy#1",
            "run.completed",
        };
        EXPECT_EQ(Types(events), expected);
        const auto* decided = FindEvent(events, "human_task.decided");
        EXPECT_EQ(Str(decided, "task_id"), "deploy/1/1");
        EXPECT_EQ(Str(decided, "decision"), "approve");
        EXPECT_EQ(Str(decided, "actor"), "integration");  // $USER of the approving process
        EXPECT_EQ(Str(decided, "comment"), comment);
        const auto* call = FindEvent(events, "tool.call");
        EXPECT_EQ(Str(call, "tool"), "shell");
        EXPECT_EQ(Str(call, "idempotency_key"), run_id + "/deploy/1/1");
        EXPECT_EQ(Str(FindEvent(events, "tool.result"), "content"), ShellSuccess(line));
        EXPECT_EQ(Str(FindEvent(events, "run.completed"), "output"), "done: " + ShellSuccess(line));
        auto verify = env_.Run({"audit", "verify", run_id});
        EXPECT_EQ(verify.exit_code(), 0) << verify.out;
    }
};

TEST_F(ApprovalTest, ApproveContinuesTheRunAndTheToolRunsOnceAfterTheDecision) {
    std::string run_id = RunUntilWaiting();
    ASSERT_FALSE(run_id.empty());
    ExpectShowListsTheTask(run_id);
    // Resuming does not get past the task.
    auto resume = env_.Run({"runs", "resume", run_id});
    EXPECT_EQ(resume.exit_code(), 2) << resume.err;
    EXPECT_EQ(resume.err, "strowger: run " + run_id +
                              " waits for a human decision on task deploy/1/1 (`strowger "
                              "approve " +
                              run_id + " deploy/1/1` or `strowger reject`)\n");
    EXPECT_FALSE(fs::exists(WorkspaceOf(run_id) / "deployed.txt"));

    auto approve = env_.Run({"approve", run_id, "--comment", "ok"});
    EXPECT_EQ(approve.exit_code(), 0) << approve.err;
    std::string line = "deployed " + run_id + "/deploy/1/1\n";
    EXPECT_EQ(approve.out, "done: " + ShellSuccess(line));
    EXPECT_EQ(approve.err, "run " + run_id + ": task deploy/1/1 approved by integration\n");
    ExpectApprovedAndRanOnce(run_id, "ok");

    // What a person reads afterwards: `runs show` keeps its columns apart, and `runs events`
    // sums up tool calls, tool results and the task (a decision has no attempt: no "#0").
    auto show = env_.Run({"runs", "show", run_id});
    EXPECT_EQ(show.exit_code(), 0) << show.err;
    bool row = false;
    for (const auto& text : Lines(show.out)) {
        if (!text.starts_with("deploy ")) continue;
        row = true;
        EXPECT_NE(text.find("completed  "), std::string::npos) << text;
        EXPECT_NE(text.find("  1  "), std::string::npos) << text;  // one attempt
        EXPECT_NE(text.find("s     done: "), std::string::npos) << text;
    }
    EXPECT_TRUE(row) << show.out;
    auto events = env_.Run({"runs", "events", run_id});
    EXPECT_EQ(events.exit_code(), 0) << events.err;
    std::map<std::string, std::string> rows;  // type → its row
    for (const auto& text : Lines(events.out)) {
        for (const char* type :
             {"tool.call", "tool.result", "human_task.created", "human_task.decided"}) {
            if (text.find(std::string(" ") + type + " ") != std::string::npos) rows[type] = text;
        }
    }
    EXPECT_NE(rows["tool.call"].find("shell {\"command\":"), std::string::npos) << events.out;
    EXPECT_NE(rows["tool.result"].find("ms exit code: 0"), std::string::npos) << events.out;
    EXPECT_NE(rows["human_task.created"].find("deploy/1/1 tool_approval: Agent ops wants"),
              std::string::npos)
        << events.out;
    EXPECT_NE(rows["human_task.decided"].find("deploy/1/1 approve by integration: ok"),
              std::string::npos)
        << events.out;
    EXPECT_EQ(rows["human_task.decided"].find("#0"), std::string::npos) << events.out;

    // A decided task cannot be decided again, and nothing runs again.
    auto again = env_.Run({"approve", run_id});
    EXPECT_EQ(again.exit_code(), 2) << again.err;
    EXPECT_EQ(ReadIfExists(WorkspaceOf(run_id) / "deployed.txt"), line);
}

// The live display after an approval: the step that started before it shows as done with its
// tokens, not as a step without a model call.
TEST_F(ApprovalTest, TheLiveDisplayAfterApproveShowsTheAgentStepWithItsTokens) {
    std::string run_id = RunUntilWaiting();
    ASSERT_FALSE(run_id.empty());
    auto approve = env_.Run({"approve", run_id, "--progress", "always"});
    EXPECT_EQ(approve.exit_code(), 0) << approve.err;
    bool done_line = false;
    for (const auto& text : Lines(approve.err)) {
        if (!text.starts_with("✓ deploy")) continue;
        done_line = true;
        EXPECT_NE(text.find(" tokens"), std::string::npos) << text;
        EXPECT_EQ(text.find("collect"), std::string::npos) << text;
    }
    EXPECT_TRUE(done_line) << approve.err;
}

TEST_F(ApprovalTest, RejectTellsTheAgentAndTheToolNeverRuns) {
    std::string run_id = RunUntilWaiting();
    ASSERT_FALSE(run_id.empty());
    auto reject = env_.Run({"reject", run_id, "--reason", "no"});
    EXPECT_EQ(reject.exit_code(), 0) << reject.err;
    const std::string refusal = "error: a human rejected this call (integration: no)";
    EXPECT_EQ(reject.out, "gave up: " + refusal + "\n");
    EXPECT_EQ(reject.err, "run " + run_id + ": task deploy/1/1 rejected by integration\n");

    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    auto events = env_.Events(run_id);
    const auto* decided = FindEvent(events, "human_task.decided");
    EXPECT_EQ(Str(decided, "decision"), "reject");
    EXPECT_EQ(Str(decided, "actor"), "integration");
    EXPECT_EQ(Str(decided, "comment"), "no");
    EXPECT_EQ(CountEvents(events, "tool.call"), 0) << Describe(events);
    auto results = All(events, "tool.result");
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(Str(results[0], "content"), refusal);
    EXPECT_TRUE(JsonBool(results[0]->data, "is_error"));
    EXPECT_GT(results[0]->seq, decided->seq);
    EXPECT_EQ(CountEvents(events, "node.started"), 1);
    EXPECT_FALSE(fs::exists(WorkspaceOf(run_id) / "deployed.txt"));
}

// --- 4. Crashes: waiting for a human, and inside a destructive tool call ----------------------

TEST_F(ApprovalTest, KilledWhileAskingOnATerminalTheTaskSurvivesAndApproveCompletes) {
    // On a terminal `strowger run` asks for the decision itself; kill -9 it while it asks.
    WriteWorkflow(kDeployFlow, kDeployScript);
    auto terminal = env_.StartInTerminal({"run", "workflow.yaml", "--input", "prod"});
    ASSERT_GT(terminal->pid(), 0);
    std::string run_id = env_.WaitForOnlyRun(seconds(20));
    ASSERT_FALSE(run_id.empty()) << terminal->transcript();
    // It shows the task (its id) and waits for an answer.
    ASSERT_TRUE(terminal->ReadUntil("deploy/1/1", seconds(20))) << terminal->transcript();
    ASSERT_NE(FindEvent(env_.Events(run_id), "human_task.created"), nullptr)
        << Describe(env_.Events(run_id));
    ASSERT_TRUE(Kill(terminal->pid(), SIGKILL));
    auto killed = terminal->Wait(seconds(10));
    EXPECT_EQ(killed.signal, SIGKILL) << killed.ToString() << "\n" << terminal->transcript();

    // After the crash the task is still open, with its data; nothing of the turn ran.
    EXPECT_EQ(env_.RunStatus(run_id), "waiting");
    auto events = env_.Events(run_id);
    EXPECT_EQ(CountEvents(events, "human_task.decided"), 0) << Describe(events);
    EXPECT_EQ(CountEvents(events, "tool.call"), 0);
    EXPECT_EQ(Str(FindEvent(events, "human_task.created"), "arguments"), kDeployArguments);
    ExpectShowListsTheTask(run_id);

    auto approve = env_.Run({"approve", run_id, "--comment", "after the crash"});
    EXPECT_EQ(approve.exit_code(), 0) << approve.err;
    ExpectApprovedAndRanOnce(run_id, "after the crash");
}

// `shell` (destructive) with no approval: attempt 1's command appends its key to calls.log and
// then blocks; a later attempt's command only appends.
constexpr char kSlowDeployFlow[] = R"y(name: slow-deploy
agents:
  ops:
    model: "scripted:script.yaml"
    tools: [shell]
steps:
  - {name: deploy, agent_name: ops, prompt: "Deploy {{input}}"}
)y";
constexpr char kSlowDeployScript[] = R"y(rules:
  - when: {prompt_contains: "Deploy ", attempt: 1}
    tool_calls:
      - {name: shell, arguments: {command: "echo \"$STROWGER_IDEMPOTENCY_KEY\" >> calls.log; sleep 50"}}
  - when: {prompt_contains: "Deploy "}
    tool_calls:
      - {name: shell, arguments: {command: "echo \"$STROWGER_IDEMPOTENCY_KEY\" >> calls.log"}}
  - when: {prompt_contains: "exit code: 0"}
    reply_template: "deployed (attempt ${attempt})"
)y";

class ReconciliationTest : public AgentCliTest {
  protected:
    // Starts the run, waits until the shell command is running (its line is in calls.log),
    // kills strowger with SIGKILL, and resumes the run: it must wait for a human in
    // needs_reconciliation (exit 3) instead of running the command again. Returns the run id.
    std::string CrashInsideTheToolAndResume() {
        WriteWorkflow(kSlowDeployFlow, kSlowDeployScript);
        auto child = env_.Start({"run", "workflow.yaml", "--input", "prod"});
        std::string run_id = env_.WaitForOnlyRun(seconds(20));
        EXPECT_FALSE(run_id.empty()) << child->Stderr();
        if (run_id.empty()) return "";
        fs::path log = WorkspaceOf(run_id) / "calls.log";
        bool in_call = WaitFor(
            [&] {
                return ReadIfExists(log) == run_id + "/deploy/1/1\n" &&
                       FindEvent(env_.Events(run_id), "tool.call") != nullptr;
            },
            seconds(20));
        EXPECT_TRUE(in_call) << child->Stderr() << Describe(env_.Events(run_id));
        if (!in_call) return "";
        EXPECT_TRUE(child->Signal(SIGKILL));
        auto killed = child->Wait(seconds(10));
        EXPECT_EQ(killed.status.signal, SIGKILL) << killed.status.ToString();

        auto before = env_.Events(run_id);
        EXPECT_EQ(env_.RunStatus(run_id), "running");
        EXPECT_EQ(CountEvents(before, "tool.result"), 0) << Describe(before);

        auto resume = env_.Run({"runs", "resume", run_id});
        EXPECT_EQ(resume.exit_code(), 3) << resume.err;
        EXPECT_NE(resume.err.find("waits for a human decision"), std::string::npos) << resume.err;
        EXPECT_EQ(env_.RunStatus(run_id), "needs_reconciliation");
        auto events = env_.Events(run_id);
        std::vector<std::string> tail;
        for (size_t i = before.size(); i < events.size(); ++i) tail.push_back(events[i].ToString());
        const std::vector<std::string> expected_tail = {"run.resumed",
                                                        "human_task.created deploy#1"};
        EXPECT_EQ(tail, expected_tail);
        const auto* task = FindEvent(events, "human_task.created");
        EXPECT_EQ(Str(task, "task_id"), "deploy/1/reconcile");
        EXPECT_EQ(Str(task, "kind"), "reconciliation");
        // Not run again by the resume.
        EXPECT_EQ(ReadIfExists(log), run_id + "/deploy/1/1\n");

        auto show = env_.Run({"runs", "show", run_id});
        EXPECT_EQ(show.exit_code(), 0) << show.err;
        EXPECT_NE(show.out.find("status:     needs_reconciliation\n"), std::string::npos)
            << show.out;
        EXPECT_NE(show.out.find("\n  deploy/1/reconcile  Step 'deploy' was interrupted after "
                                "calling shell: approve to run it again"),
                  std::string::npos)
            << show.out;
        return run_id;
    }
};

TEST_F(ReconciliationTest, ApproveRunsTheStepAgainExactlyOnce) {
    std::string run_id = CrashInsideTheToolAndResume();
    ASSERT_FALSE(run_id.empty());
    auto approve = env_.Run({"approve", run_id, "--comment", "it did not deploy"});
    EXPECT_EQ(approve.exit_code(), 0) << approve.err;
    EXPECT_EQ(approve.out, "deployed (attempt 2)\n");
    // Attempt 1's command ran once (before the crash), attempt 2's once (after the decision).
    EXPECT_EQ(ReadIfExists(WorkspaceOf(run_id) / "calls.log"),
              run_id + "/deploy/1/1\n" + run_id + "/deploy/2/1\n");
    auto events = env_.Events(run_id);
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    auto calls = All(events, "tool.call");
    ASSERT_EQ(calls.size(), 2u) << Describe(events);
    EXPECT_EQ(Str(calls[0], "idempotency_key"), run_id + "/deploy/1/1");
    EXPECT_EQ(Str(calls[1], "idempotency_key"), run_id + "/deploy/2/1");
    EXPECT_EQ(calls[1]->attempt, 2);
    const auto* decided = FindEvent(events, "human_task.decided");
    EXPECT_EQ(Str(decided, "task_id"), "deploy/1/reconcile");
    EXPECT_EQ(Str(decided, "decision"), "approve");
    EXPECT_EQ(Str(decided, "comment"), "it did not deploy");
    EXPECT_LT(decided->seq, calls[1]->seq);
    EXPECT_EQ(CountEvents(events, "tool.result"), 1);  // attempt 1's never came back
    auto verify = env_.Run({"audit", "verify", run_id});
    EXPECT_EQ(verify.exit_code(), 0) << verify.out;
}

TEST_F(ReconciliationTest, ApproveWithAnOutputAcceptsItWithoutRunningAnything) {
    std::string run_id = CrashInsideTheToolAndResume();
    ASSERT_FALSE(run_id.empty());
    auto approve = env_.Run({"approve", run_id, "--output", "deployed by hand"});
    EXPECT_EQ(approve.exit_code(), 0) << approve.err;
    EXPECT_EQ(approve.out, "deployed by hand\n");
    EXPECT_EQ(ReadIfExists(WorkspaceOf(run_id) / "calls.log"), run_id + "/deploy/1/1\n");
    auto events = env_.Events(run_id);
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    EXPECT_EQ(CountEvents(events, "tool.call"), 1) << Describe(events);
    EXPECT_EQ(CountEvents(events, "node.started"), 1);
    EXPECT_EQ(Str(FindEvent(events, "human_task.decided"), "output"), "deployed by hand");
    EXPECT_EQ(Str(FindEvent(events, "node.completed"), "output"), "deployed by hand");
    EXPECT_EQ(Str(FindEvent(events, "run.completed"), "output"), "deployed by hand");
}

TEST_F(ReconciliationTest, RejectFailsTheStep) {
    std::string run_id = CrashInsideTheToolAndResume();
    ASSERT_FALSE(run_id.empty());
    auto reject = env_.Run({"reject", run_id, "--reason", "rolled back by hand"});
    EXPECT_EQ(reject.exit_code(), 1) << reject.err;
    const std::string error =
        "Step 'deploy' failed: reconciliation rejected by integration: rolled back by hand";
    EXPECT_NE(reject.err.find("strowger: run " + run_id + " failed: " + error + "\n"),
              std::string::npos)
        << reject.err;
    EXPECT_EQ(env_.RunStatus(run_id), "failed");
    auto events = env_.Events(run_id);
    EXPECT_EQ(Str(FindEvent(events, "run.failed"), "error"), error);
    EXPECT_EQ(ReadIfExists(WorkspaceOf(run_id) / "calls.log"), run_id + "/deploy/1/1\n");
    EXPECT_EQ(CountEvents(events, "tool.call"), 1);
}

TEST_F(AgentCliTest, ACrashAfterOnlyReadOnlyCallsIsRetriedWithoutAHuman) {
    // The step's read_file call has finished and the model is thinking (forever, in attempt
    // 1) when the process is killed. Repeating a read-only call is safe, so `runs resume`
    // starts attempt 2 at once, without a reconciliation task.
    env_.Write("ws/data.txt", "payload 42\n");
    WriteWorkflow(R"y(name: read-only-crash
workspace: ws
agents:
  reader: {model: "scripted:script.yaml", tools: [read_file]}
steps:
  - {name: look, agent_name: reader, prompt: "Look"}
)y",
                  R"y(rules:
  - when: {prompt_contains: "Look"}
    tool_calls: [{name: read_file, arguments: {path: data.txt}}]
  - when: {prompt_contains: "payload", attempt: 1}
    hang: true
  - when: {prompt_contains: "payload"}
    reply_template: "read: ${prompt}"
)y");
    auto child = env_.Start({"run", "workflow.yaml"});
    std::string run_id = env_.WaitForOnlyRun(seconds(20));
    ASSERT_FALSE(run_id.empty()) << child->Stderr();
    bool thinking = WaitFor(
        [&] {
            auto events = env_.Events(run_id);
            return CountEvents(events, "tool.result") == 1 &&
                   CountEvents(events, "llm.request") == 2;
        },
        seconds(20));
    ASSERT_TRUE(thinking) << child->Stderr() << Describe(env_.Events(run_id));
    ASSERT_TRUE(child->Signal(SIGKILL));
    EXPECT_EQ(child->Wait(seconds(10)).status.signal, SIGKILL);

    auto resume = env_.Run({"runs", "resume", run_id});
    EXPECT_EQ(resume.exit_code(), 0) << resume.err;
    EXPECT_EQ(resume.out, "read: payload 42\n");
    auto events = env_.Events(run_id);
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    EXPECT_EQ(CountEvents(events, "human_task.created"), 0) << Describe(events);
    auto calls = All(events, "tool.call");
    ASSERT_EQ(calls.size(), 2u) << Describe(events);
    EXPECT_EQ(Str(calls[0], "idempotency_key"), run_id + "/look/1/1");
    EXPECT_EQ(Str(calls[1], "idempotency_key"), run_id + "/look/2/1");
    EXPECT_EQ(CountEvents(events, "node.started"), 2);
    EXPECT_NE(FindEvent(events, "run.resumed"), nullptr);
}

// --- 5. MCP servers through the engine -----------------------------------------------------------

// The `everything` server as a workflow declares it: `node` and the server's script, over
// stdio; echo is declared read-only.
std::string EverythingServer(const std::string& node, const std::string& script) {
    return "mcp_servers:\n"
           "  everything:\n"
           "    command: \"" +
           node + "\"\n    args: [\"" + script +
           "\", stdio]\n"
           "    tools: {echo: {safety: read_only}}\n";
}

TEST_F(AgentCliTest, ValidateRejectsServerToolsTheAgentWasNotGranted) {
    // A tool of an undeclared server, and an approval for a server tool the agent does not
    // have. (Validation does not start servers.)
    env_.Write("script.yaml", "rules:\n  - {reply: ok}\n");
    env_.Write("bad.yaml", "name: mcp-bad\n" + EverythingServer("node", "server.js") + R"y(agents:
  echoer:
    model: "scripted:script.yaml"
    tools: [evrything/echo]
  reader:
    model: "scripted:script.yaml"
    tools: [read_file]
    require_approval: [everything/echo]
steps:
  - {name: a, agent_name: echoer, prompt: "A"}
  - {name: b, agent_name: reader, prompt: "B"}
)y");
    auto validate = env_.Run({"validate", "bad.yaml"});
    EXPECT_EQ(validate.exit_code(), 2);
    EXPECT_EQ(validate.out, "");
    EXPECT_EQ(validate.err,
              "bad.yaml:10:13: agents.echoer.tools[0]: unknown MCP server \"evrything\" in tool "
              "\"evrything/echo\" (did you mean \"everything\"?)\n"
              "bad.yaml:14:24: agents.reader.require_approval[0]: \"everything/echo\" is not one "
              "of the agent's tools\n");
    EXPECT_TRUE(env_.RunIds().empty());
}

// Runs that use the real server from npm (installed like mcp_test's). They caught two hangs:
// a co_await inside a conditional expression that GCC 12 never resumed (the step never
// started), and the MCP connection's read loop keeping `strowger run` from exiting after the
// run had ended.
class McpCliTest : public AgentCliTest {
  protected:
    static void SetUpTestSuite() {
        static Result<fs::path> installed = InstallMcpTestServers();
        bin_ = installed;
    }
    void SetUp() override { ASSERT_TRUE(bin_.has_value()) << bin_.error().ToString(); }

    static std::string Server() {
        return EverythingServer(FindInPath("node"), EverythingServerScript(*bin_).string());
    }

    static inline Result<fs::path> bin_ = std::unexpected(Error());
};

TEST_F(McpCliTest, AGrantedServerToolIsCalledOverStdio) {
    WriteWorkflow("name: mcp\n" + Server() + R"y(agents:
  echoer:
    model: "scripted:script.yaml"
    tools: [everything/echo]
steps:
  - {name: say, agent_name: echoer, prompt: "Say {{input}}"}
)y",
                  // The model calls the tool by its model-facing name ("server__tool").
                  R"y(rules:
  - when: {prompt_contains: "Echo: "}
    reply_template: "the server said: ${prompt}"
  - when: {prompt_contains: "Say "}
    tool_calls: [{name: everything__echo, arguments: {message: "hello over stdio"}}]
  - when: {prompt_contains: "error"}
    reply_template: "failed: ${prompt}"
)y");
    auto result = env_.Run({"run", "workflow.yaml", "--input", "it"}, seconds(60));
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    EXPECT_EQ(result.exit_code(), 0) << result.err << Describe(events);
    EXPECT_EQ(result.out, "the server said: Echo: hello over stdio\n");
    const auto* call = FindEvent(events, "tool.call");
    EXPECT_EQ(Str(call, "tool"), "everything/echo");
    EXPECT_EQ(Str(call, "safety"), "read_only");
    EXPECT_EQ(Str(call, "arguments"), R"({"message":"hello over stdio"})");
    EXPECT_EQ(Str(call, "idempotency_key"), run_id + "/say/1/1");
    const auto* tool_result = FindEvent(events, "tool.result");
    EXPECT_EQ(Str(tool_result, "content"), "Echo: hello over stdio");
    EXPECT_FALSE(tool_result && JsonBool(tool_result->data, "is_error"));
    // The model's call, recorded under the tool's own name.
    const auto* response = FindEvent(events, "llm.response");
    const auto* asked = response ? JsonArray(response->data, "tool_calls") : nullptr;
    ASSERT_NE(asked, nullptr);
    EXPECT_EQ(JsonString((*asked)[0].as_object(), "name"), "everything/echo");
}

// The same server twice, once inside bubblewrap (`sandboxed: true`, no network): its tools work
// through the engine, it sees none of the engine's secrets, and it cannot reach a loopback
// server that the unsandboxed one can.
TEST_F(McpCliTest, ASandboxedServerWorksSeesNoSecretsAndHasNoNetwork) {
    auto mock = MockModelServer::Start({});
    ASSERT_TRUE(mock) << mock.error().ToString();
    const std::string url = "http://127.0.0.1:" + std::to_string((*mock)->port()) + "/v1/models";
    env_.SetEnv("OPENAI_API_KEY", "sk-must-not-leak-42");
    const std::string node = FindInPath("node");
    const std::string script = EverythingServerScript(*bin_).string();
    WriteWorkflow(
        "name: mcp-sandboxed\nmcp_servers:\n"
        "  inside: {command: \"" +
            node + "\", args: [\"" + script +
            "\", stdio], sandboxed: true, network: false}\n"
            "  outside: {command: \"" +
            node + "\", args: [\"" + script + "\", stdio]}\n" +
            R"y(agents:
  fetcher:
    model: "scripted:script.yaml"
    tools: [inside/echo, inside/get-env, inside/gzip-file-as-resource,
            outside/gzip-file-as-resource]
steps:
  - {name: fetch, agent_name: fetcher, prompt: "Fetch {{input}}"}
)y",
        R"y(rules:
  - when: {prompt_contains: "Fetch "}
    tool_calls:
      - {name: inside__echo, arguments: {message: "from the sandbox"}}
      - {name: inside__get-env, arguments: {}}
      - {name: inside__gzip-file-as-resource, arguments: {name: in.gz, data: ")y" +
            url + R"y("}}
      - {name: outside__gzip-file-as-resource, arguments: {name: out.gz, data: ")y" +
            url + R"y("}}
  - {reply: "done"}
)y");
    auto result = env_.Run({"run", "workflow.yaml", "--input", "it"}, seconds(90));
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    ASSERT_EQ(result.exit_code(), 0) << result.err << Describe(events);
    EXPECT_EQ(result.out, "done\n");
    // Each result, by the tool that was called.
    std::map<std::string, std::string> tool_of_call;
    std::map<std::string, const LedgerEvent*> result_of;
    for (const auto& event : events) {
        if (event.type == "tool.call") tool_of_call[Str(&event, "call_id")] = Str(&event, "tool");
        if (event.type == "tool.result") result_of[tool_of_call[Str(&event, "call_id")]] = &event;
    }
    ASSERT_EQ(result_of.size(), 4u) << Describe(events);
    EXPECT_EQ(Str(result_of["inside/echo"], "content"), "Echo: from the sandbox");
    // get-env printed the server's environment: scrubbed, so no key (nor its redacted form).
    const std::string environment = Str(result_of["inside/get-env"], "content");
    EXPECT_NE(environment.find("PATH"), std::string::npos) << environment;
    EXPECT_EQ(environment.find("OPENAI_API_KEY"), std::string::npos) << environment;
    EXPECT_EQ(environment.find("sk-must-not-leak"), std::string::npos) << environment;
    // The loopback server is reachable from outside the sandbox only.
    const auto* outside = result_of["outside/gzip-file-as-resource"];
    EXPECT_FALSE(JsonBool(outside->data, "is_error")) << outside->line;
    const auto* inside = result_of["inside/gzip-file-as-resource"];
    EXPECT_TRUE(JsonBool(inside->data, "is_error")) << inside->line;
    EXPECT_EQ((*mock)->requests(), 1);
    EXPECT_EQ(CountEvents(events, "tool.call"), 4);
}

TEST_F(McpCliTest, AServerToolTheAgentWasNotGrantedIsRefusedAtRunTime) {
    // The agent has everything/echo only; its call of another tool of the same server is
    // refused and never reaches the server.
    WriteWorkflow("name: mcp-refused\n" + Server() + R"y(agents:
  echoer:
    model: "scripted:script.yaml"
    tools: [everything/echo]
steps:
  - {name: add, agent_name: echoer, prompt: "Add"}
)y",
                  R"y(rules:
  - when: {prompt_contains: "Add"}
    tool_calls: [{name: everything__get-sum, arguments: {a: 1, b: 2}}]
  - {reply_template: "model saw: ${prompt}"}
)y");
    auto result = env_.Run({"run", "workflow.yaml"}, seconds(60));
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    const std::string refusal = "error: tool 'everything__get-sum' is not allowed for agent echoer";
    EXPECT_EQ(result.out, "model saw: " + refusal + "\n");
    auto events = env_.Events(run_id);
    EXPECT_EQ(CountEvents(events, "tool.call"), 0) << Describe(events);
    EXPECT_EQ(Str(FindEvent(events, "tool.result"), "content"), refusal);
}

// --- 6. The OpenAI provider's tool-call round trip over the loopback mock ----------------------

TEST_F(AgentCliTest, TriesTheProviderLayerRetriedAreInTheLedgerBeforeTheResponse) {
    auto started = MockModelServer::Start({});
    ASSERT_TRUE(started.has_value()) << started.error().message();
    auto& mock = **started;
    // A 429 asking for a 1 s pause, then a 503, then the answer.
    MockRule limited;
    limited.times = 1;
    limited.behavior.status = 429;
    limited.behavior.retry_after = "1";
    limited.behavior.error_message = "slow down";
    mock.AddRule(limited);
    MockRule unavailable;
    unavailable.times = 1;
    unavailable.behavior.status = 503;
    mock.AddRule(unavailable);
    MockRule answer;
    answer.behavior.reply = "third time lucky";
    mock.AddRule(answer);
    env_.Write("providers.yaml",
               "providers:\n  openai:\n    base_url: " + mock.base_url() +
                   "\n    api_key_env: \"\"\n    max_retries: 3\n"
                   "    retry_initial_delay_ms: 10\n    retry_max_delay_ms: 20\n");
    env_.Write("workflow.yaml", R"y(name: retried
agents:
  writer: {model: "openai:test-model"}
steps:
  - {name: write, agent_name: writer, prompt: "Write."}
)y");
    auto result = env_.Run({"--providers", "providers.yaml", "run", "workflow.yaml"});
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    ASSERT_EQ(result.exit_code(), 0) << result.err << Describe(events);
    EXPECT_EQ(result.out, "third time lucky\n");
    EXPECT_EQ(mock.recorded_requests().size(), 3u);

    // One step attempt, three tries: the two failed ones are recorded, in order, between the
    // request and the response.
    std::vector<std::string> types;
    for (const auto& e : events) {
        if (e.node == "write") types.push_back(e.type);
    }
    EXPECT_EQ(types, (std::vector<std::string>{"node.started", "llm.request", "llm.retried",
                                               "llm.retried", "llm.response", "node.completed"}));
    auto retried = All(events, "llm.retried");
    ASSERT_EQ(retried.size(), 2u) << Describe(events);
    EXPECT_EQ(JsonInt(retried[0]->data, "try"), 1);
    EXPECT_EQ(JsonInt(retried[0]->data, "http_status"), 429);
    EXPECT_EQ(JsonInt(retried[0]->data, "delay_ms"), 1000);  // as Retry-After asked
    EXPECT_NE(Str(retried[0], "error").find("slow down"), std::string::npos) << retried[0]->line;
    EXPECT_EQ(JsonInt(retried[1]->data, "try"), 2);
    EXPECT_EQ(JsonInt(retried[1]->data, "http_status"), 503);
    EXPECT_GE(JsonInt(retried[1]->data, "delay_ms"), 0);
    EXPECT_LE(JsonInt(retried[1]->data, "delay_ms"), 20);
    EXPECT_EQ(JsonInt(retried[1]->data, "turn"), 1);
    // The chain still verifies, and `runs events` says what happened.
    auto verify = env_.Run({"audit", "verify", run_id});
    EXPECT_EQ(verify.exit_code(), 0) << verify.out << verify.err;
    auto listed = env_.Run({"runs", "events", run_id, "--type", "llm.retried"});
    EXPECT_NE(listed.out.find("try 1 failed (HTTP 429), waited 1000ms"), std::string::npos)
        << listed.out;
}

TEST_F(AgentCliTest, OpenAiToolCallRoundTripWithTokensAndCostFromTheProvidersFile) {
    auto started = MockModelServer::Start({});
    ASSERT_TRUE(started.has_value()) << started.error().message();
    auto& mock = **started;
    // First call: the model asks for read_file; second: it answers.
    MockRule ask;
    ask.times = 1;
    ask.behavior.tool_calls = {{"call_read", "read_file", R"({"path":"notes.txt"})"}};
    ask.behavior.prompt_tokens = 1000;
    ask.behavior.completion_tokens = 200;
    mock.AddRule(ask);
    MockRule answer;
    answer.behavior.reply = "The notes say the release is on Friday.";
    answer.behavior.prompt_tokens = 1500;
    answer.behavior.completion_tokens = 50;
    mock.AddRule(answer);

    // USD per million tokens, and the same in nano-USD per token (x 1000).
    constexpr int64_t kInputNanoPerToken = 2500, kOutputNanoPerToken = 10000;
    env_.Write("providers.yaml", "providers:\n  openai:\n    base_url: " + mock.base_url() +
                                     "\n    api_key_env: \"\"\n    max_retries: 0\n"
                                     "    prices:\n      test-model: {input_per_mtok: 2.5, "
                                     "output_per_mtok: 10}\n");
    const std::string notes = "release: Friday\nowner: ops\n";
    env_.Write("ws/notes.txt", notes);
    env_.Write("workflow.yaml", R"y(name: openai-tools
workspace: ws
agents:
  reader:
    model: "openai:test-model"
    system_prompt: "You read notes."
    tools: [read_file]
steps:
  - {name: read, agent_name: reader, prompt: "When is the release?"}
)y");
    auto result = env_.Run({"--providers", "providers.yaml", "run", "workflow.yaml"});
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    EXPECT_EQ(result.exit_code(), 0) << result.err << Describe(events);
    EXPECT_EQ(result.out, answer.behavior.reply + "\n");

    // The model's requests: the first offers read_file; the second carries the assistant's
    // tool call and the tool's result (the file, read from the workflow's workspace).
    auto requests = mock.recorded_requests();
    ASSERT_EQ(requests.size(), 2u);
    auto first = ParseOrFail(requests[0].body);
    ASSERT_TRUE(first.is_object());
    const auto* tools = JsonArray(first.get_object(), "tools");
    ASSERT_NE(tools, nullptr) << requests[0].body;
    ASSERT_EQ(tools->size(), 1u);
    EXPECT_EQ(tools->at(0).at("function").at("name").as_string(), "read_file");
    auto second = ParseOrFail(requests[1].body);
    ASSERT_TRUE(second.is_object());
    const auto* messages = JsonArray(second.get_object(), "messages");
    ASSERT_NE(messages, nullptr) << requests[1].body;
    ASSERT_EQ(messages->size(), 4u) << requests[1].body;  // system, user, assistant, tool
    const auto& assistant = messages->at(2).as_object();
    EXPECT_EQ(JsonString(assistant, "role"), "assistant");
    const auto* asked = JsonArray(assistant, "tool_calls");
    ASSERT_NE(asked, nullptr) << requests[1].body;
    EXPECT_EQ(asked->at(0).at("id").as_string(), "call_read");
    EXPECT_EQ(asked->at(0).at("function").at("name").as_string(), "read_file");
    const auto& tool = messages->at(3).as_object();
    EXPECT_EQ(JsonString(tool, "role"), "tool");
    EXPECT_EQ(JsonString(tool, "tool_call_id"), "call_read");
    EXPECT_EQ(JsonString(tool, "content"), notes);

    // llm.response events carry the tokens the mock reported and their cost at those prices.
    auto responses = All(events, "llm.response");
    ASSERT_EQ(responses.size(), 2u) << Describe(events);
    const std::vector<MockRule> rules = {ask, answer};
    int64_t total_nano = 0;
    for (size_t i = 0; i < 2; ++i) {
        SCOPED_TRACE(i);
        int64_t in = *rules[i].behavior.prompt_tokens, out = *rules[i].behavior.completion_tokens;
        int64_t nano = in * kInputNanoPerToken + out * kOutputNanoPerToken;
        total_nano += nano;
        EXPECT_EQ(JsonInt(responses[i]->data, "tokens_in"), in);
        EXPECT_EQ(JsonInt(responses[i]->data, "tokens_out"), out);
        EXPECT_EQ(Str(responses[i], "cost_usd"), ledger::FormatUsd(nano));
    }
    EXPECT_EQ(Str(FindEvent(events, "tool.result"), "content"), notes);
    EXPECT_EQ(Str(FindEvent(events, "llm.request"), "provider"), "openai");
    EXPECT_EQ(Str(FindEvent(events, "llm.request"), "model"), "test-model");
    auto show = env_.Run({"runs", "show", run_id, "--json"});
    auto record = ParseOrFail(show.out);
    ASSERT_TRUE(record.is_object());
    EXPECT_EQ(JsonString(record.get_object(), "cost_usd"), ledger::FormatUsd(total_nano));
    EXPECT_EQ(JsonInt(record.get_object(), "input_tokens"), 2500);
    EXPECT_EQ(JsonInt(record.get_object(), "output_tokens"), 250);
}

// --- 7. Budgets --------------------------------------------------------------------------------

TEST_F(AgentCliTest, ToolCallBudgetFailsTheStepWithoutRetry) {
    // Each turn asks for one shell call; the budget allows one. The second call is refused
    // before it runs, the step fails (error_mode retry notwithstanding) and so does the run.
    WriteWorkflow(R"y(name: budget
agents:
  counter:
    model: "scripted:script.yaml"
    tools: [shell]
    limits: {max_tool_calls: 1}
steps:
  - {name: count, agent_name: counter, prompt: "Count", error_mode: retry, max_retries: 2,
     retry: {initial_delay_ms: 1, max_delay_ms: 1}}
)y",
                  R"y(rules:
  - when: {prompt_contains: "Count"}
    tool_calls: [{name: shell, arguments: {command: "echo one >> count.log"}}]
  - when: {prompt_contains: "exit code"}
    tool_calls: [{name: shell, arguments: {command: "echo two >> count.log"}}]
)y");
    auto result = env_.Run({"run", "workflow.yaml"});
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    const std::string error =
        "Step 'count' failed: budget exceeded: tool_calls 2 > 1 (agent counter)";
    EXPECT_EQ(result.exit_code(), 1) << result.err << Describe(events);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, "strowger: run " + run_id + " failed: " + error +
                              "\nstrowger: once the cause is fixed, `strowger runs retry " +
                              run_id + "` continues from the failed step\n");
    EXPECT_EQ(env_.RunStatus(run_id), "failed");
    EXPECT_EQ(ReadIfExists(WorkspaceOf(run_id) / "count.log"), "one\n");
    EXPECT_EQ(CountEvents(events, "tool.call"), 1);
    EXPECT_EQ(CountEvents(events, "node.started"), 1) << Describe(events);
    EXPECT_EQ(CountEvents(events, "node.retry_scheduled"), 0);
    const auto* exceeded = FindEvent(events, "budget.exceeded");
    EXPECT_EQ(Str(exceeded, "scope"), "step");
    EXPECT_EQ(Str(exceeded, "limit"), "tool_calls");
    EXPECT_EQ(Str(exceeded, "used"), "2");
    EXPECT_EQ(Str(exceeded, "max"), "1");
    const auto* failed = FindEvent(events, "node.failed");
    ASSERT_NE(failed, nullptr);
    EXPECT_GT(failed->seq, exceeded->seq);
    EXPECT_EQ(Str(FindEvent(events, "run.failed"), "error"), error);
}

TEST_F(AgentCliTest, StepTokenBudgetStopsTheNextModelCall) {
    // 40 + 20 tokens per call against max_tokens 50: the first call (which asks for a tool) is
    // recorded; the call after the tool result is refused before it is made.
    env_.Write("ws/a.txt", "a\n");
    WriteWorkflow(R"y(name: tokens
workspace: ws
agents:
  lister:
    model: "scripted:script.yaml"
    tools: [list_dir]
    limits: {max_tokens: 50}
steps:
  - {name: list, agent_name: lister, prompt: "List", error_mode: retry, max_retries: 1}
)y",
                  R"y(rules:
  - when: {prompt_contains: "List"}
    tool_calls: [{name: list_dir, arguments: {}}]
    usage: {input_tokens: 40, output_tokens: 20}
  - {reply: listed, usage: {input_tokens: 40, output_tokens: 20}}
)y");
    auto result = env_.Run({"run", "workflow.yaml"});
    std::string run_id = env_.WaitForOnlyRun();
    auto events = env_.Events(run_id);
    const std::string error = "Step 'list' failed: budget exceeded: tokens 60 >= 50 (agent lister)";
    EXPECT_EQ(result.exit_code(), 1) << result.err << Describe(events);
    EXPECT_EQ(result.err, "strowger: run " + run_id + " failed: " + error +
                              "\nstrowger: once the cause is fixed, `strowger runs retry " +
                              run_id + "` continues from the failed step\n");
    EXPECT_EQ(CountEvents(events, "llm.response"), 1);
    EXPECT_EQ(CountEvents(events, "tool.result"), 1);
    EXPECT_EQ(CountEvents(events, "node.started"), 1);
    const auto* exceeded = FindEvent(events, "budget.exceeded");
    EXPECT_EQ(Str(exceeded, "scope"), "step");
    EXPECT_EQ(Str(exceeded, "limit"), "tokens");
    EXPECT_EQ(Str(exceeded, "used"), "60");
    EXPECT_EQ(Str(exceeded, "max"), "50");
    EXPECT_EQ(Str(FindEvent(events, "run.failed"), "error"), error);
}

TEST_F(AgentCliTest, HourlyTokenQuotaSurvivesAcrossProcesses) {
    // 70 + 40 tokens per call against a quota of 100 per hour for the agent: the first process's
    // run completes (the call that crosses the quota is recorded); a second process, on the
    // same store, refuses the next call before it is made.
    WriteWorkflow(R"y(name: quota
agents:
  thinker:
    model: "scripted:script.yaml"
    limits: {max_tokens_per_hour: 100}
steps:
  - {name: think, agent_name: thinker, prompt: "Think", error_mode: retry, max_retries: 2,
     retry: {initial_delay_ms: 1, max_delay_ms: 1}}
)y",
                  "rules:\n  - {reply: thought, usage: {input_tokens: 70, output_tokens: 40}}\n");
    auto first = env_.Run({"run", "workflow.yaml"});
    EXPECT_EQ(first.exit_code(), 0) << first.err;
    EXPECT_EQ(first.out, "thought\n");
    auto second = env_.Run({"run", "workflow.yaml"});
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 2u);
    const std::string error =
        "Step 'think' failed: budget exceeded: tokens_per_hour 110 >= 100 (agent thinker, last "
        "hour)";
    EXPECT_EQ(second.exit_code(), 1) << second.err;
    EXPECT_EQ(second.out, "");
    EXPECT_EQ(second.err, "strowger: run " + ids[1] + " failed: " + error +
                              "\nstrowger: once the cause is fixed, `strowger runs retry " +
                              ids[1] + "` continues from the failed step\n");
    auto events = env_.Events(ids[1]);
    EXPECT_EQ(CountEvents(events, "llm.response"), 0) << Describe(events);  // no model call
    EXPECT_EQ(CountEvents(events, "node.started"), 1);                      // not retried
    const auto* exceeded = FindEvent(events, "budget.exceeded");
    EXPECT_EQ(Str(exceeded, "scope"), "agent_hour");
    EXPECT_EQ(Str(exceeded, "limit"), "tokens_per_hour");
    EXPECT_EQ(Str(exceeded, "used"), "110");
    EXPECT_EQ(Str(exceeded, "max"), "100");
    EXPECT_EQ(env_.RunStatus(ids[0]), "completed");
}

// --- 8. examples/agent-with-tools.yaml -------------------------------------------------------

class ExampleTest : public AgentCliTest {
  protected:
    void SetUp() override {
        // The example as shipped, beside its agents/, inputs/ and scripted/ files.
        const fs::path source = fs::path(SourceDir()) / "examples";
        for (const char* file :
             {"agent-with-tools.yaml", "scripted/agent-with-tools.yaml", "inputs/user_lookup.c"}) {
            env_.Write(std::string("examples/") + file, ReadFileOrDie(source / file));
        }
        for (const auto& entry : fs::directory_iterator(source / "agents")) {
            env_.Write("examples/agents/" + entry.path().filename().string(),
                       ReadFileOrDie(entry.path()));
        }
        source_ = ReadFileOrDie(source / "inputs" / "user_lookup.c");
    }

    // "<n>:<text>" of the lines of user_lookup.c containing `what` (grep -n).
    std::string GrepN(const std::string& what) const {
        std::string out;
        auto lines = Lines(source_);
        for (size_t i = 0; i < lines.size(); ++i) {
            if (lines[i].find(what) != std::string::npos)
                out += std::to_string(i + 1) + ":" + lines[i] + "\n";
        }
        return out;
    }

    std::string source_;
};

TEST_F(ExampleTest, ValidatesAndRunsOfflineThroughAnApproval) {
    auto validate = env_.Run({"validate", "examples/agent-with-tools.yaml"});
    EXPECT_EQ(validate.exit_code(), 0) << validate.err;
    EXPECT_TRUE(validate.out.starts_with("examples/agent-with-tools.yaml: ok (2 steps, "))
        << validate.out;
    EXPECT_EQ(validate.err, "");

    const std::vector<std::string> run = {
        "run",     "examples/agent-with-tools.yaml",
        "--input", "user_lookup.c",
        "--model", "scripted:examples/scripted/agent-with-tools.yaml"};
    auto waiting = env_.Run(run);
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(waiting.exit_code(), 3) << waiting.err << Describe(env_.Events(run_id));
    auto events = env_.Events(run_id);
    // The read-only tools ran without asking: list_dir and grep together, then read_file.
    auto calls = All(events, "tool.call");
    ASSERT_EQ(calls.size(), 3u) << Describe(events);
    EXPECT_EQ(Str(calls[0], "tool"), "list_dir");
    EXPECT_EQ(Str(calls[1], "tool"), "grep");
    EXPECT_EQ(Str(calls[2], "tool"), "read_file");
    auto results = All(events, "tool.result");
    ASSERT_EQ(results.size(), 3u);
    EXPECT_NE(Str(results[1], "content").find("user_lookup.c:"), std::string::npos);
    EXPECT_EQ(Str(results[2], "content"), source_);
    const auto* task = FindEvent(events, "human_task.created");
    EXPECT_EQ(Str(task, "tool"), "shell");
    EXPECT_EQ(Str(task, "arguments"), R"({"command":"grep -n 'strlen' user_lookup.c"})");
    const std::string task_id = Str(task, "task_id");
    EXPECT_EQ(task_id, "audit/1/4");

    auto show = env_.Run({"runs", "show", run_id});
    EXPECT_NE(show.out.find("  " + task_id + "  Agent auditor wants to call shell\n"),
              std::string::npos)
        << show.out;

    auto approve = env_.Run({"approve", run_id, task_id, "--comment", "read-only grep"});
    EXPECT_EQ(approve.exit_code(), 0) << approve.err;
    EXPECT_TRUE(approve.out.starts_with("Fix first: the SQL injection at user_lookup.c:8"))
        << approve.out;
    events = env_.Events(run_id);
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
    auto shell = All(events, "tool.result");
    ASSERT_EQ(shell.size(), 4u) << Describe(events);
    // The command ran in the sandbox on the example's workspace (examples/inputs).
    const std::string confirmed = ShellSuccess(GrepN("strlen"));
    EXPECT_EQ(Str(shell[3], "content"), confirmed);
    const auto* audit = FindEvent(events, "node.completed", "audit");
    EXPECT_NE(Str(audit, "output").find("Confirmed:\n" + confirmed), std::string::npos)
        << Str(audit, "output");
    EXPECT_EQ(Str(FindEvent(events, "human_task.decided"), "comment"), "read-only grep");
    auto verify = env_.Run({"audit", "verify", run_id});
    EXPECT_EQ(verify.exit_code(), 0) << verify.out;
}

}  // namespace
}  // namespace strowger::testing
