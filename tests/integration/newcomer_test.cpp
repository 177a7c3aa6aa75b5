// Issue 14, a newcomer's first hour: each defect a new user met, through the real binary —
// SIGTERM leaves a run resumable, idempotency conflicts, the approval prompt, input limits,
// exit codes and global options anywhere, did-you-mean for commands and options, the live
// display at 80 and 50 columns, loader leniencies (merge keys, x-*, $schema), every problem
// at once, and the shell and editor integration (version, completion, schema, man).
#include <gtest/gtest.h>

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "testing/mock_model_server.hpp"
#include "testing/test_util.hpp"

namespace strowger::testing {
namespace {

using std::chrono::seconds;

constexpr char kEchoScript[] = R"y(rules:
  - {reply_template: "${step}(${prompt})"}
)y";

constexpr char kThreeSteps[] = R"y(name: three
agents:
  writer: {model: "scripted:script.yaml", system_prompt: "You write."}
steps:
  - {name: a, agent_name: writer, prompt: "A {{input}}"}
  - {name: b, agent_name: writer, prompt: "B {{input}}"}
  - {name: c, agent_name: writer, prompt: "C {{input}}"}
)y";
constexpr char kThreeStepsOutput[] = "c(C b(B a(A hi)))";

std::string DataString(const LedgerEvent* event, std::string_view key) {
    return event ? std::string(JsonString(event->data, key)) : "<no event>";
}

bool Contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// The end of what a terminal showed, for failure messages.
std::string Tail(const TerminalProcess& terminal) {
    const std::string& all = terminal.transcript();
    return all.size() <= 1500 ? all : "..." + all.substr(all.size() - 1500);
}

class NewcomerTest : public ::testing::Test {
  protected:
    void WriteWorkflow(const std::string& workflow, const std::string& script = kEchoScript) {
        env_.Write("workflow.yaml", workflow);
        env_.Write("script.yaml", script);
    }

    CliEnvironment env_;
};

// --- 13: SIGTERM pauses, Ctrl-C cancels ----------------------------------------------------

TEST_F(NewcomerTest, SigtermLeavesTheRunResumableWithExit3AndAHint) {
    // b answers after 300 ms: SIGTERM arrives while it is in flight; the call finishes and
    // the run pauses before c.
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b}, reply_template: "${step}(${prompt})", latency_ms: 300}
  - {reply_template: "${step}(${prompt})"}
)y");
    auto child = env_.Start({"run", "workflow.yaml", "--input", "hi"});
    std::string run_id = env_.WaitForOnlyRun();
    ASSERT_FALSE(run_id.empty());
    ASSERT_TRUE(WaitFor(
        [&] { return FindEvent(env_.Events(run_id), "llm.request", "b") != nullptr; }, seconds(10)))
        << child->Stderr();
    ASSERT_TRUE(child->Signal(SIGTERM));
    auto result = child->Wait(seconds(20));
    EXPECT_EQ(result.exit_code(), 3) << result.status.ToString() << "\n" << result.err;
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, "strowger: run " + run_id +
                              " was interrupted (SIGTERM) and paused at a step boundary; "
                              "continue it with `strowger runs resume " +
                              run_id + "`\n");
    EXPECT_EQ(env_.RunStatus(run_id), "paused");
    auto events = env_.Events(run_id);
    EXPECT_EQ(events.back().type, "run.paused") << Describe(events);
    EXPECT_EQ(DataString(&events.back(), "reason"), "interrupted (SIGTERM)");
    EXPECT_EQ(CountEvents(events, "node.completed", "b"), 1) << Describe(events);
    EXPECT_EQ(CountEvents(events, "node.started", "c"), 0) << Describe(events);

    auto resumed = env_.Run({"runs", "resume", run_id});
    EXPECT_EQ(resumed.exit_code(), 0) << resumed.err;
    EXPECT_EQ(resumed.out, std::string(kThreeStepsOutput) + "\n");
    EXPECT_EQ(env_.RunStatus(run_id), "completed");
}

TEST_F(NewcomerTest, CancelSaysRetryCanReopenItAndRetryDoes) {
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b}, hang: true, times: 1}
  - {reply_template: "${step}(${prompt})"}
)y");
    auto child = env_.Start({"run", "workflow.yaml", "--input", "hi"});
    std::string run_id = env_.WaitForOnlyRun();
    ASSERT_TRUE(
        WaitFor([&] { return FindEvent(env_.Events(run_id), "llm.request", "b") != nullptr; },
                seconds(10)));
    ASSERT_TRUE(child->Signal(SIGINT));
    auto result = child->Wait(seconds(10));
    EXPECT_EQ(result.exit_code(), 4) << result.err;
    EXPECT_EQ(result.err, "strowger: run " + run_id + " cancelled (`strowger runs retry " + run_id +
                              "` reopens it)\n");
    auto help = env_.Run({"runs", "cancel", "--help"});
    EXPECT_FALSE(Contains(help.out, "final")) << help.out;
    EXPECT_TRUE(Contains(help.out, "runs retry")) << help.out;
}

// --- 4: idempotency keys -------------------------------------------------------------------

TEST_F(NewcomerTest, AnIdempotencyKeyReturnsTheSameRunOrIsAConflictNamingIt) {
    WriteWorkflow(kThreeSteps);
    auto first = env_.Run({"run", "workflow.yaml", "-i", "hi", "--idempotency-key", "k1"});
    ASSERT_EQ(first.exit_code(), 0) << first.err;
    std::string run_id = env_.WaitForOnlyRun();

    auto same = env_.Run({"run", "workflow.yaml", "-i", "hi", "--idempotency-key", "k1"});
    EXPECT_EQ(same.exit_code(), 0) << same.err;
    EXPECT_EQ(same.out, std::string(kThreeStepsOutput) + "\n");
    EXPECT_EQ(same.err, "strowger: idempotency key already used by run " + run_id +
                            " (completed); not started again\n");

    auto other_input = env_.Run({"run", "workflow.yaml", "-i", "ho", "--idempotency-key", "k1"});
    EXPECT_EQ(other_input.exit_code(), 2);
    EXPECT_EQ(other_input.out, "");
    EXPECT_EQ(other_input.err, "strowger: idempotency key \"k1\" was used by run " + run_id +
                                   " with another input; use another key (see `strowger runs "
                                   "show " +
                                   run_id + "`)\n");

    env_.Write("other.yaml", std::string(kThreeSteps) + "  - {name: d, agent_name: writer}\n");
    auto other_flow = env_.Run({"run", "other.yaml", "-i", "hi", "--idempotency-key", "k1"});
    EXPECT_EQ(other_flow.exit_code(), 2);
    EXPECT_TRUE(Contains(other_flow.err, "was used by run " + run_id + " with another workflow"))
        << other_flow.err;
    EXPECT_EQ(env_.RunIds(), std::vector<std::string>{run_id});
}

// --- 3: input limits -----------------------------------------------------------------------

TEST_F(NewcomerTest, ADirectoryAsInputFileIsAnError) {
    WriteWorkflow(kThreeSteps);
    std::filesystem::create_directory(env_.dir() / "inputs");
    auto result = env_.Run({"run", "workflow.yaml", "--input-file", "inputs"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.err, "strowger: inputs: is a directory; --input-file reads one file\n");
    EXPECT_TRUE(env_.RunIds().empty());
}

TEST_F(NewcomerTest, AnInputOverTheLimitIsRefusedAndTheLimitIsConfigurable) {
    WriteWorkflow(kThreeSteps);
    env_.Write("big.txt", std::string(2000, 'x'));
    auto refused =
        env_.Run({"run", "workflow.yaml", "--input-file", "big.txt", "--max-input-bytes", "1000"});
    EXPECT_EQ(refused.exit_code(), 2);
    EXPECT_EQ(refused.err,
              "strowger: big.txt is larger than the input limit of 1000 bytes (raise it with "
              "--max-input-bytes or $STROWGER_MAX_INPUT_BYTES)\n");
    EXPECT_TRUE(env_.RunIds().empty());
    env_.SetEnv("STROWGER_MAX_INPUT_BYTES", "1999");
    EXPECT_EQ(env_.Run({"run", "workflow.yaml", "--input-file", "big.txt"}).exit_code(), 2);
    env_.SetEnv("STROWGER_MAX_INPUT_BYTES", "2000");
    auto accepted = env_.Run({"run", "workflow.yaml", "--input-file", "big.txt"});
    EXPECT_EQ(accepted.exit_code(), 0) << accepted.err;
    // The default (10 MiB) refuses a larger file.
    env_.SetEnv("STROWGER_MAX_INPUT_BYTES", "");
    {
        std::ofstream huge(env_.dir() / "huge.txt", std::ios::binary);
        std::string block(1 << 20, 'y');
        for (int i = 0; i < 11; ++i) huge << block;
    }
    auto huge = env_.Run({"run", "workflow.yaml", "--input-file", "huge.txt"});
    EXPECT_EQ(huge.exit_code(), 2);
    EXPECT_TRUE(Contains(huge.err, "input limit of 10485760 bytes")) << huge.err;
}

TEST_F(NewcomerTest, InvalidUtf8InputIsAccepectedWithAWarning) {
    WriteWorkflow(kThreeSteps);
    env_.Write("latin1.txt", "caf\xe9");
    auto result = env_.Run({"run", "workflow.yaml", "--input-file", "latin1.txt"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.err,
              "strowger: warning: the input is not valid UTF-8; invalid bytes are stored as "
              "U+FFFD\n");
}

// --- 6: exit codes, global options anywhere -----------------------------------------------

TEST_F(NewcomerTest, ABadProvidersFileIsAUsageErrorEverywhereAndMayFollowTheCommand) {
    WriteWorkflow(kThreeSteps);
    env_.Write("providers.yaml", "openai: [not, a, mapping]\n");
    auto run = env_.Run({"run", "workflow.yaml", "-i", "hi", "--providers", "providers.yaml"});
    EXPECT_EQ(run.exit_code(), 2) << run.err;
    EXPECT_FALSE(Contains(run.err, "were not expected")) << run.err;
    auto validate = env_.Run({"validate", "workflow.yaml", "--providers", "providers.yaml"});
    EXPECT_EQ(validate.exit_code(), 2) << validate.err;
    auto before = env_.Run({"--providers", "providers.yaml", "run", "workflow.yaml", "-i", "hi"});
    EXPECT_EQ(before.exit_code(), 2) << before.err;
    EXPECT_EQ(before.err, run.err);
    EXPECT_TRUE(env_.RunIds().empty());
    // --log-level after a nested subcommand.
    auto list = env_.Run({"runs", "list", "--log-level", "error"});
    EXPECT_EQ(list.exit_code(), 0) << list.err;
}

// --- 8: unknown commands and options, version, help ----------------------------------------

TEST_F(NewcomerTest, AnUnknownCommandGetsADidYouMean) {
    auto result = env_.Run({"runz", "list"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.err,
              "strowger: unknown command \"runz\"; did you mean \"runs\"? (see `strowger "
              "--help`)\n");
    WriteWorkflow(kThreeSteps);
    auto option = env_.Run({"run", "workflow.yaml", "--inptu", "x"});
    EXPECT_EQ(option.exit_code(), 2);
    EXPECT_TRUE(Contains(option.err, "did you mean --input?")) << option.err;
}

TEST_F(NewcomerTest, VersionNamesTheCommit) {
    auto flag = env_.Run({"--version"});
    auto command = env_.Run({"version"});
    EXPECT_EQ(flag.exit_code(), 0);
    EXPECT_EQ(command.exit_code(), 0) << command.err;
    EXPECT_EQ(flag.out, command.out);
    EXPECT_EQ(command.out.rfind("strowger 0.1.0 (commit ", 0), 0u) << command.out;
    EXPECT_FALSE(Contains(command.out, "(commit )")) << command.out;
}

TEST_F(NewcomerTest, SubcommandHelpShowsItsOwnExamplesNotTheParents) {
    auto root = env_.Run({"--help"});
    EXPECT_TRUE(Contains(root.out, "strowger audit verify --all")) << root.out;
    for (std::vector<std::string> args : {std::vector<std::string>{"runs", "show", "--help"},
                                          {"runs", "list", "--help"},
                                          {"audit", "verify", "--help"}}) {
        auto help = env_.Run(args);
        EXPECT_EQ(help.exit_code(), 0);
        EXPECT_FALSE(Contains(help.out, "strowger plan flow.yaml --format mermaid"))
            << args[0] << " " << args[1] << ":\n"
            << help.out;
    }
}

// --- 2: the approval prompt ----------------------------------------------------------------

constexpr char kApprovalWorkflow[] = R"y(name: approve-writes
agents:
  scribe:
    model: "scripted:script.yaml"
    tools: [write_file]
    require_approval: [write_file]
steps:
  - {name: note, agent_name: scribe, prompt: "Note {{input}}"}
)y";
constexpr char kApprovalScript[] = R"y(rules:
  - when: {prompt_contains: Note}
    tool_calls: [{name: write_file, arguments: {path: note.txt, content: "noted"}}]
  - {reply_template: "done: ${prompt}"}
)y";

TEST_F(NewcomerTest, TheApprovalPromptAsksAgainUntilTheAnswerIsClear) {
    WriteWorkflow(kApprovalWorkflow, kApprovalScript);
    auto terminal = env_.StartInTerminal({"run", "workflow.yaml", "--input", "hi"});
    ASSERT_TRUE(terminal->ReadUntil("Allow this call?", seconds(20))) << Tail(*terminal);
    for (const char* unclear : {"maybe", "ok", "sure"}) {
        terminal->Type(std::string(unclear) + "\n");
        ASSERT_TRUE(terminal->ReadUntil("Please answer y (yes), n (no) or s (skip):", seconds(10)))
            << unclear << "\n"
            << Tail(*terminal);
    }
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_EQ(CountEvents(env_.Events(run_id), "human_task.decided"), 0);
    terminal->Type("yes\n");
    ASSERT_TRUE(terminal->ReadUntil("comment (optional):", seconds(10))) << Tail(*terminal);
    terminal->Type("\n");
    EXPECT_EQ(terminal->Wait(seconds(20)).ToString(), "exit 0") << Tail(*terminal);
    EXPECT_EQ(DataString(FindEvent(env_.Events(run_id), "human_task.decided"), "decision"),
              "approve");
}

// --- 9: every problem at once --------------------------------------------------------------

TEST_F(NewcomerTest, ValidateReportsACycleTogetherWithAnUnknownDependency) {
    WriteWorkflow(R"y(name: tangled
agents:
  writer: {model: "scripted:script.yaml"}
steps:
  - {name: a, agent_name: writer, prompt: "A", depends_on: [b]}
  - {name: c, agent_name: writer, prompt: "C", depends_on: [a]}
  - {name: b, agent_name: writer, prompt: "B", depends_on: [c]}
  - {name: d, agent_name: writer, prompt: "D", depends_on: [zzz]}
)y");
    auto result = env_.Run({"validate", "workflow.yaml"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_TRUE(Contains(result.err, "steps[3].depends_on[0]: unknown step \"zzz\"")) << result.err;
    EXPECT_TRUE(Contains(result.err, "dependency cycle: ")) << result.err;
}

// --- 10: YAML merge keys, x-* and $schema --------------------------------------------------

TEST_F(NewcomerTest, MergeKeysExtensionFieldsAndSchemaAreAccepted) {
    WriteWorkflow(R"y($schema: ./workflow.schema.json
name: merged
x-defaults: &defaults
  model: "scripted:script.yaml"
  system_prompt: "You write."
x-step: &step {agent_name: writer}
agents:
  writer:
    <<: *defaults
    x-note: kept for humans
  critic:
    <<: [*defaults]
    system_prompt: "You criticise."
steps:
  - {<<: *step, name: a, prompt: "A {{input}}"}
  - {<<: *step, name: b, agent_name: critic, prompt: "B {{input}}"}
)y");
    auto validate = env_.Run({"validate", "workflow.yaml"});
    EXPECT_EQ(validate.exit_code(), 0) << validate.err;
    EXPECT_EQ(validate.err, "");
    auto run = env_.Run({"run", "workflow.yaml", "-i", "hi"});
    EXPECT_EQ(run.exit_code(), 0) << run.err;
    EXPECT_EQ(run.out, "b(B a(A hi))\n");
    // A merged key that is not a field is still an unknown field, with its position.
    env_.Write("bad.yaml", R"y(name: merged
x-defaults: &defaults {model: "scripted:script.yaml", temprature: 2}
agents:
  writer: {<<: *defaults}
steps:
  - {name: a, agent_name: writer, prompt: "A"}
)y");
    auto bad = env_.Run({"validate", "bad.yaml"});
    EXPECT_EQ(bad.exit_code(), 2);
    EXPECT_TRUE(Contains(bad.err, "bad.yaml:2:")) << bad.err;
    EXPECT_TRUE(Contains(bad.err, "did you mean \"temperature\"")) << bad.err;
}

// --- 7: the environment is checked before the run exists -----------------------------------

TEST_F(NewcomerTest, AMissingApiKeyIsNamedOnceBeforeARunIsCreated) {
    WriteWorkflow(R"y(name: remote
agents:
  writer: {model: "openai:gpt-4o-mini"}
  critic: {model: "openai:gpt-4o-mini"}
steps:
  - {name: a, agent_name: writer, prompt: "A"}
  - {name: b, agent_name: critic, prompt: "B"}
)y");
    auto result = env_.Run({"run", "workflow.yaml", "-i", "hi"});
    EXPECT_EQ(result.exit_code(), 2);
    EXPECT_EQ(result.err,
              "strowger: OPENAI_API_KEY is not set (needed by agents writer, critic)\n");
    EXPECT_TRUE(env_.RunIds().empty());
    EXPECT_FALSE(std::filesystem::exists(env_.store_path()));
}

// --- 1: the live display at 80 and 50 columns ----------------------------------------------

// What a terminal shows of `transcript`, `columns` wide: carriage returns, "erase line" and
// wrapping applied (the lines a person would see, trailing blanks dropped).
std::vector<std::string> Screen(const std::string& transcript, size_t columns) {
    std::vector<std::string> lines(1);
    size_t column = 0;
    for (size_t i = 0; i < transcript.size(); ++i) {
        char c = transcript[i];
        if (c == '\r') {
            column = 0;
        } else if (c == '\n') {
            lines.emplace_back();
            column = 0;
        } else if (c == '\033' && transcript.compare(i, 4, "\033[2K") == 0) {
            lines.back().clear();
            i += 3;
        } else {
            if ((static_cast<unsigned char>(c) & 0xC0) == 0x80) {  // continuation byte
                lines.back() += c;
                continue;
            }
            if (column == columns) {  // the terminal wraps
                lines.emplace_back();
                column = 0;
            }
            // Overwrite from `column`: the status line is always redrawn after an erase, so
            // appending is enough here.
            lines.back() += c;
            ++column;
        }
    }
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    return lines;
}

size_t Columns(const std::string& line) {
    size_t count = 0;
    for (char c : line) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return count;
}

class LiveDisplayTest : public NewcomerTest, public ::testing::WithParamInterface<int> {};

TEST_P(LiveDisplayTest, TheStatusLineIsClippedToTheTerminalAndLeavesNoStaleLines) {
    const int columns = GetParam();
    // Long step names and three slow steps in flight at once: an unclipped status line is
    // far wider than 80 columns.
    WriteWorkflow(R"y(name: wide
agents:
  writer: {model: "scripted:script.yaml"}
steps:
  - {name: a_rather_long_step_name_for_research, agent_name: writer, prompt: "A", mode: fan_out}
  - {name: another_long_step_name_for_drafting, agent_name: writer, prompt: "B", mode: fan_out}
  - {name: a_third_long_name_for_the_reviewing, agent_name: writer, prompt: "C", mode: fan_out}
  - {name: gather, mode: collect}
)y",
                  R"y(rules:
  - {reply: "done", latency_ms: 700}
)y");
    auto terminal = env_.StartInTerminal({"run", "workflow.yaml", "-i", "hi"}, columns);
    auto status = terminal->Wait(seconds(30));
    EXPECT_EQ(status.ToString(), "exit 0") << Tail(*terminal);
    ASSERT_TRUE(Contains(terminal->transcript(), "running:")) << Tail(*terminal);
    auto screen = Screen(terminal->transcript(), static_cast<size_t>(columns));
    // What stays on screen: the run's lines and the output, no leftover status line.
    for (const auto& line : screen) {
        EXPECT_LE(Columns(line), static_cast<size_t>(columns)) << line;
        EXPECT_FALSE(Contains(line, "running:")) << "a stale status line: " << line << "\n"
                                                 << Tail(*terminal);
    }
    EXPECT_TRUE(Contains(terminal->transcript(), "…")) << Tail(*terminal);
}

INSTANTIATE_TEST_SUITE_P(Widths, LiveDisplayTest, ::testing::Values(80, 50));

// --- run ids by prefix and `last`; approve on a finished run; the actor without $USER -------

TEST_F(NewcomerTest, RunsAreNamedByAUniquePrefixOrLast) {
    WriteWorkflow(kThreeSteps);
    ASSERT_EQ(env_.Run({"run", "workflow.yaml", "-i", "one"}).exit_code(), 0);
    ASSERT_EQ(env_.Run({"run", "workflow.yaml", "-i", "hi"}).exit_code(), 0);
    auto ids = env_.RunIds();
    ASSERT_EQ(ids.size(), 2u);
    const std::string newest = ids.back();
    auto last = env_.Run({"runs", "show", "last", "--json"});
    EXPECT_EQ(last.exit_code(), 0) << last.err;
    EXPECT_TRUE(Contains(last.out, "\"run_id\":\"" + newest + "\"")) << last.out;
    // The shortest prefix that tells the two apart.
    size_t common = 0;
    while (ids[0][common] == ids[1][common]) ++common;
    auto prefix = env_.Run({"runs", "show", newest.substr(0, common + 1), "--json"});
    EXPECT_EQ(prefix.exit_code(), 0) << prefix.err;
    EXPECT_TRUE(Contains(prefix.out, "\"run_id\":\"" + newest + "\"")) << prefix.out;
    auto ambiguous = env_.Run({"runs", "show", newest.substr(0, common)});
    EXPECT_EQ(ambiguous.exit_code(), 2);
    EXPECT_TRUE(Contains(ambiguous.err, "is ambiguous")) << ambiguous.err;
    auto none = env_.Run({"runs", "show", "ZZZZ"});
    EXPECT_EQ(none.exit_code(), 2);
    EXPECT_EQ(none.err, "strowger: no run ZZZZ\n");
    auto events = env_.Run({"runs", "events", "last"});
    EXPECT_EQ(events.exit_code(), 0) << events.err;
    EXPECT_TRUE(Contains(events.out, "run.completed")) << events.out;

    // audit and tasks take the same names.
    auto verify = env_.Run({"audit", "verify", newest.substr(0, common + 1)});
    EXPECT_EQ(verify.exit_code(), 0) << verify.err;
    EXPECT_TRUE(Contains(verify.out, newest + ": ok")) << verify.out;
    auto verify_last = env_.Run({"audit", "verify", "last"});
    EXPECT_TRUE(Contains(verify_last.out, newest + ": ok")) << verify_last.out;
    auto exported = env_.Run({"audit", "export", "last", "-o", "last.jsonl"});
    EXPECT_EQ(exported.exit_code(), 0) << exported.err;
    auto tasks = env_.Run({"tasks", "list", "--run", "last", "--json"});
    EXPECT_EQ(tasks.exit_code(), 0) << tasks.err;
    auto decide = env_.Run({"tasks", "decide", "last", "t1", "--action", "approve"});
    EXPECT_EQ(decide.exit_code(), 2);
    EXPECT_TRUE(Contains(decide.err, "run " + newest + " ")) << decide.err;

    auto approve = env_.Run({"approve", "last"});
    EXPECT_EQ(approve.exit_code(), 2);
    EXPECT_EQ(approve.err, "strowger: run " + newest +
                               " is completed and waits for no decision (see `strowger runs show " +
                               newest + "`)\n");
}

TEST_F(NewcomerTest, WithoutUserTheActorIsTheOsAccount) {
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b}, hang: true}
  - {reply_template: "${step}(${prompt})"}
)y");
    env_.SetEnv("USER", "");
    auto child = env_.Start({"run", "workflow.yaml", "--input", "hi"});
    std::string run_id = env_.WaitForOnlyRun();
    ASSERT_TRUE(
        WaitFor([&] { return FindEvent(env_.Events(run_id), "llm.request", "b") != nullptr; },
                seconds(10)));
    auto cancel = env_.Run({"runs", "cancel", run_id});
    EXPECT_EQ(cancel.exit_code(), 0) << cancel.err;
    child->Wait(seconds(10));
    auto events = env_.Events(run_id);
    std::string actor = DataString(FindEvent(events, "run.cancelled"), "actor");
    EXPECT_NE(actor, "unknown");
    EXPECT_NE(actor, "");
    EXPECT_EQ(actor, std::string(getpwuid(geteuid())->pw_name)) << Describe(events);
}

// --- the failed run's hint ------------------------------------------------------------------

TEST_F(NewcomerTest, AFailedRunSuggestsRetry) {
    WriteWorkflow(kThreeSteps, R"y(rules:
  - {when: {step: b}, error: "model down", error_code: invalid_argument}
  - {reply_template: "${step}(${prompt})"}
)y");
    auto result = env_.Run({"run", "workflow.yaml", "-i", "hi"});
    EXPECT_EQ(result.exit_code(), 1);
    std::string run_id = env_.WaitForOnlyRun();
    EXPECT_TRUE(Contains(result.err, "`strowger runs retry " + run_id + "`")) << result.err;
}

// --- editor and shell integration ----------------------------------------------------------

TEST_F(NewcomerTest, TheCommittedSchemaIsWhatStrowgerSchemaPrints) {
    auto schema = env_.Run({"schema"});
    ASSERT_EQ(schema.exit_code(), 0) << schema.err;
    std::ifstream committed(SourceDir() + "/docs/schema/workflow.schema.json");
    std::string text((std::istreambuf_iterator<char>(committed)), std::istreambuf_iterator<char>());
    EXPECT_EQ(schema.out, text) << "docs/schema/workflow.schema.json is stale: regenerate it with "
                                   "`strowger schema > docs/schema/workflow.schema.json`";
}

TEST_F(NewcomerTest, EveryShippedWorkflowValidatesAgainstTheSchemaAndABrokenOneFails) {
    auto schema = env_.Run({"schema"});
    ASSERT_EQ(schema.exit_code(), 0);
    std::string schema_file = env_.Write("workflow.schema.json", schema.out);
    std::vector<std::string> files;
    namespace fs = std::filesystem;
    for (const auto& entry : fs::directory_iterator(SourceDir() + "/examples")) {
        auto ext = entry.path().extension();
        if (entry.is_regular_file() && (ext == ".json" || ext == ".yaml")) {
            files.push_back(entry.path().string());
        }
    }
    for (const std::string dir : {"/tests/golden", "/templates"}) {
        for (const auto& entry : fs::directory_iterator(SourceDir() + dir)) {
            fs::path workflow = entry.path() / "workflow.yaml";
            if (fs::exists(workflow)) files.push_back(workflow.string());
        }
    }
    ASSERT_GT(files.size(), 40u);
    // Only what the loader accepts: the schema must not refuse a valid workflow.
    std::vector<std::string> valid;
    for (const auto& file : files) {
        if (env_.Run({"validate", file}).exit_code() == 0) valid.push_back(file);
    }
    ASSERT_GT(valid.size(), 40u);
    std::vector<std::string> args = {
        "/usr/bin/python3", SourceDir() + "/tests/integration/validate_workflows.py", schema_file};
    args.insert(args.end(), valid.begin(), valid.end());
    auto checked = env_.RunProgram(args, seconds(60));
    EXPECT_EQ(checked.exit_code(), 0) << checked.out << checked.err;

    // A misspelt field and a wrong type fail, as they fail `validate`.
    std::string broken = env_.Write("broken.yaml", R"y(name: broken
agents:
  writer: {model: "scripted:script.yaml", temprature: 0.5}
steps:
  - {name: a, agent_name: writer, prompt: "A", max_retries: many}
)y");
    auto refused = env_.RunProgram({"/usr/bin/python3",
                                    SourceDir() + "/tests/integration/validate_workflows.py",
                                    schema_file, broken});
    EXPECT_EQ(refused.exit_code(), 1) << refused.out << refused.err;
    EXPECT_TRUE(Contains(refused.out, "invalid " + broken)) << refused.out;
}

TEST_F(NewcomerTest, BashCompletesCommandsOptionsAndRunIds) {
    WriteWorkflow(kThreeSteps);
    ASSERT_EQ(env_.Run({"run", "workflow.yaml", "-i", "hi"}).exit_code(), 0);
    std::string run_id = env_.WaitForOnlyRun();
    auto script = env_.Run({"completion", "bash"});
    ASSERT_EQ(script.exit_code(), 0) << script.err;
    std::string file = env_.Write("strowger.bash", script.out);
    // `strowger` on the PATH for the script's run-id lookup.
    const std::string bin_dir = std::filesystem::path(StrowgerBinary()).parent_path().string();
    auto complete = [&](const std::string& words) {
        return env_.RunProgram({"bash", "-c",
                                "export PATH=" + bin_dir + ":$PATH; source " + file +
                                    "; COMP_WORDS=(" + words +
                                    "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _strowger; "
                                    "printf '%s\\n' \"${COMPREPLY[@]}\""});
    };
    auto commands = complete("strowger ru");
    EXPECT_EQ(commands.out, "run\nruns\n") << commands.err;
    auto nested = complete("strowger runs sh");
    EXPECT_EQ(nested.out, "show\n") << nested.err;
    auto option = complete("strowger run flow.yaml --inp");
    EXPECT_EQ(option.out, "--input\n--input-file\n--input-json\n") << option.err;
    auto ids = complete("strowger runs show " + run_id.substr(0, 6));
    EXPECT_EQ(ids.out, run_id + "\n") << ids.err;
}

TEST_F(NewcomerTest, ZshLoadsTheCompletionAndCompletesACommand) {
    auto script = env_.Run({"completion", "zsh"});
    ASSERT_EQ(script.exit_code(), 0) << script.err;
    std::string file = env_.Write("_strowger.zsh", script.out);
    // As zsh's bashcompinit calls it (sh emulation); zsh's own matcher then filters the
    // candidates by what was typed, so the script offers the commands of the path typed.
    auto complete = [&](const std::string& words, int cword) {
        return env_.RunProgram({"zsh", "-f", "-c",
                                "autoload -U compinit && compinit -u -D; source " + file +
                                    "; emulate sh -c 'COMP_WORDS=(" + words +
                                    "); COMP_CWORD=" + std::to_string(cword) +
                                    "; _strowger; printf \"%s\\n\" \"${COMPREPLY[@]}\"'"});
    };
    auto top = complete("strowger vali", 1);
    EXPECT_EQ(top.exit_code(), 0) << top.err;
    EXPECT_TRUE(Contains(top.out, "\nvalidate\n")) << top.out << top.err;
    auto nested = complete("strowger runs sh", 2);
    EXPECT_TRUE(Contains(nested.out, "show\n")) << nested.out << nested.err;
    EXPECT_TRUE(Contains(nested.out, "list\n")) << nested.out;
    EXPECT_FALSE(Contains(nested.out, "validate")) << nested.out;
}

TEST_F(NewcomerTest, FishLoadsTheCompletionAndCompletesACommand) {
    auto script = env_.Run({"completion", "fish"});
    ASSERT_EQ(script.exit_code(), 0) << script.err;
    std::string file = env_.Write("strowger.fish", script.out);
    auto result = env_.RunProgram(
        {"fish", "--no-config", "-c", "source " + file + "; complete -C 'strowger vali'"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.out.rfind("validate\t", 0), 0u) << result.out << result.err;
    auto nested = env_.RunProgram(
        {"fish", "--no-config", "-c", "source " + file + "; complete -C 'strowger runs li'"});
    EXPECT_EQ(nested.out.rfind("list\t", 0), 0u) << nested.out << nested.err;
}

TEST_F(NewcomerTest, TheManPageListsEveryCommandAndRendersWithMan) {
    auto page = env_.Run({"man"});
    ASSERT_EQ(page.exit_code(), 0) << page.err;
    EXPECT_EQ(page.out.rfind(".TH STROWGER 1", 0), 0u) << page.out.substr(0, 200);
    for (const char* command : {"strowger run file", "strowger runs show run",
                                "strowger audit verify", "strowger completion shell"}) {
        EXPECT_TRUE(Contains(page.out, std::string(".SS \"") + command)) << command;
    }
    std::string file = env_.Write("strowger.1", page.out);
    auto rendered = env_.RunProgram({"groff", "-man", "-Tutf8", file});
    EXPECT_EQ(rendered.exit_code(), 0) << rendered.err;
    EXPECT_TRUE(Contains(rendered.out, "STROWGER(1)")) << rendered.out.substr(0, 400);
}

// --- 14: the shipped examples validate without a warning -----------------------------------

TEST_F(NewcomerTest, TheShippedExamplesValidateWithoutWarnings) {
    std::vector<std::string> args = {"validate"};
    for (const auto& entry : std::filesystem::directory_iterator(SourceDir() + "/examples")) {
        auto ext = entry.path().extension();
        if (entry.is_regular_file() && (ext == ".json" || ext == ".yaml")) {
            args.push_back(entry.path().string());
        }
    }
    ASSERT_GE(args.size(), 5u);
    auto result = env_.Run(args);
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.err, "");
}

// --- 5: JSON outputs name their format -----------------------------------------------------

TEST_F(NewcomerTest, JsonOutputsNameTheirFormatAndAWaitingRunListsItsTasks) {
    WriteWorkflow(kApprovalWorkflow, kApprovalScript);
    auto run = env_.Run({"run", "workflow.yaml", "-i", "hi", "--json"});
    EXPECT_EQ(run.exit_code(), 3) << run.err;
    auto record = ParseJson(run.out);
    ASSERT_TRUE(record && record->is_object()) << run.out;
    const auto& o = record->get_object();
    EXPECT_EQ(JsonString(o, "format"), "strowger.run_record.v1");
    EXPECT_EQ(JsonString(o, "status"), "waiting");
    ASSERT_TRUE(o.contains("open_tasks")) << run.out;
    ASSERT_EQ(o.at("open_tasks").as_array().size(), 1u) << run.out;
    EXPECT_EQ(JsonString(o.at("open_tasks").as_array()[0].as_object(), "tool"), "write_file");
    auto show = env_.Run({"runs", "show", "last", "--json"});
    EXPECT_EQ(show.out, run.out);

    auto validate = env_.Run({"validate", "workflow.yaml", "missing.yaml", "--json"});
    EXPECT_EQ(validate.exit_code(), 2);
    auto report = ParseJson(validate.out);
    ASSERT_TRUE(report && report->is_object()) << validate.out;
    EXPECT_EQ(JsonString(report->get_object(), "format"), "strowger.validate.v1");
    const auto& files = report->get_object().at("files").as_array();
    ASSERT_EQ(files.size(), 2u);
    EXPECT_TRUE(files[0].as_object().at("ok").as_bool());
    EXPECT_FALSE(files[1].as_object().at("ok").as_bool());
    EXPECT_FALSE(files[1].as_object().at("diagnostics").as_array().empty()) << validate.out;
}

// --- 12: a loop's iterations are not retries -----------------------------------------------

TEST_F(NewcomerTest, ALoopIterationIsAFirstTryNotARetry) {
    WriteWorkflow(R"y(name: looped
agents:
  writer: {model: "scripted:script.yaml"}
steps:
  - {name: refine, agent_name: writer, prompt: "R {{input}}", mode: loop, max_iterations: 3, until: DONE}
)y",
                  R"y(rules:
  - {reply_template: "try ${attempt}"}
)y");
    auto result = env_.Run({"run", "workflow.yaml", "-i", "hi", "--json"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    auto record = ParseJson(result.out);
    ASSERT_TRUE(record && record->is_object()) << result.out;
    EXPECT_EQ(JsonString(record->get_object(), "output"), "try 1") << result.out;
    for (const auto& step : record->get_object().at("step_results").as_array()) {
        EXPECT_EQ(JsonString(step.as_object(), "output"), "try 1") << result.out;
        EXPECT_EQ(JsonInt(step.as_object(), "attempts"), 1) << result.out;
    }
    // The ledger says so too: each iteration's only try is attempt 1.
    std::vector<std::string> starts;
    for (const auto& event : env_.Events(env_.WaitForOnlyRun())) {
        if (event.type != "node.started") continue;
        starts.push_back(std::to_string(JsonInt(event.data, "iteration")) + "." +
                         std::to_string(event.attempt));
    }
    EXPECT_EQ(starts, (std::vector<std::string>{"1.1", "2.1", "3.1"}));
    for (const auto& node : record->get_object().at("nodes").as_array()) {
        EXPECT_EQ(JsonInt(node.as_object(), "attempts"), 1) << result.out;
    }
}

// A loop's tool calls are named by iteration and attempt: each iteration's call gets its own
// idempotency key, and a loop reopened by `runs retry` numbers its attempts past every earlier
// one, so no execution's key or task id is ever reused.
TEST_F(NewcomerTest, ALoopsExecutionsAreNamedByIterationAndAttemptEvenAfterARetry) {
    WriteWorkflow(R"y(name: looped
agents:
  writer: {model: "scripted:script.yaml", tools: [shell]}
steps:
  - {name: refine, agent_name: writer, prompt: "R {{input}}", mode: loop, max_iterations: 2, until: DONE}
)y",
                  R"y(rules:
  - when: {prompt_contains: "R hi"}
    tool_calls: [{name: shell, arguments: {command: "echo key=$STROWGER_IDEMPOTENCY_KEY"}}]
  - when: {prompt_contains: "R one"}
    error: "the model is down"
  - when: {prompt_contains: "key="}
    reply: "one"
)y");
    auto failed = env_.Run({"run", "workflow.yaml", "-i", "hi"});
    ASSERT_EQ(failed.exit_code(), 1) << failed.err;
    const std::string run_id = env_.WaitForOnlyRun();
    // The model is back: iteration 2 calls the tool too.
    std::ofstream(env_.dir() / "script.yaml") << R"y(rules:
  - when: {prompt_contains: "R "}
    tool_calls: [{name: shell, arguments: {command: "echo key=$STROWGER_IDEMPOTENCY_KEY"}}]
  - when: {prompt_contains: "key="}
    reply: "one"
)y";
    auto retried = env_.Run({"runs", "retry", run_id});
    ASSERT_EQ(retried.exit_code(), 0) << retried.err << retried.out;

    std::vector<std::string> starts, keys, seen;
    int64_t iteration = 0;
    for (const auto& event : env_.Events(run_id)) {
        if (event.type == "node.started") {
            iteration = JsonInt(event.data, "iteration");
            starts.push_back(std::to_string(iteration) + "." + std::to_string(event.attempt));
        } else if (event.type == "tool.call") {
            keys.push_back(std::string(JsonString(event.data, "idempotency_key")));
        } else if (event.type == "tool.result") {
            seen.push_back(std::string(JsonString(event.data, "content")));
        }
    }
    // First run: iteration 1 (a tool call), iteration 2 fails. The retry reopens the loop at
    // iteration 1 with attempt 2 (past the 1 both iterations used), then iteration 2.
    EXPECT_EQ(starts, (std::vector<std::string>{"1.1", "2.1", "1.2", "2.2"}));
    const std::string prefix = run_id + "/refine/";
    EXPECT_EQ(keys,
              (std::vector<std::string>{prefix + "1.1/1", prefix + "1.2/1", prefix + "2.2/1"}));
    ASSERT_EQ(seen.size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
        EXPECT_TRUE(Contains(seen[i], "key=" + keys[i] + "\n")) << seen[i];
    }
    auto shown = env_.Run({"runs", "show", run_id});
    EXPECT_TRUE(Contains(shown.out, "completed")) << shown.out;
}

TEST_F(NewcomerTest, AStoreInADirectoryThatDoesNotExistIsATypoNotCreated) {
    WriteWorkflow(kThreeSteps);
    auto result = env_.Run({"run", "workflow.yaml", "-i", "hi", "--store", "sqlite:typo/dir/x.db"});
    EXPECT_EQ(result.exit_code(), 5) << result.err;  // a store error
    EXPECT_TRUE(Contains(result.err, "typo/dir does not exist")) << result.err;
    EXPECT_FALSE(std::filesystem::exists(env_.dir() / "typo"));
}

TEST_F(NewcomerTest, ValidateExplainsADirectoryAndReadsStdin) {
    WriteWorkflow(kThreeSteps);
    std::filesystem::create_directory(env_.dir() / "flows");
    auto dir = env_.Run({"validate", "flows"});
    EXPECT_EQ(dir.exit_code(), 2);
    EXPECT_EQ(dir.err,
              "flows: is a directory: name the workflow files in it (e.g. flows/*.yaml)\n");
    auto piped = env_.RunProgram({"sh", "-c", StrowgerBinary() + " validate - < workflow.yaml"});
    EXPECT_EQ(piped.exit_code(), 0) << piped.err;
    EXPECT_EQ(piped.out, "-: ok (3 steps, 1 agents)\n");
}

TEST_F(NewcomerTest, PruneHasADryRun) {
    WriteWorkflow(kThreeSteps);
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(env_.Run({"run", "workflow.yaml", "-i", "hi"}).exit_code(), 0);
    auto dry = env_.Run({"runs", "prune", "--keep", "1", "--dry-run"});
    EXPECT_EQ(dry.exit_code(), 0) << dry.err;
    EXPECT_EQ(dry.out, "would delete 2 of 3 finished runs (keeping the newest 1)\n");
    EXPECT_EQ(env_.RunIds().size(), 3u);
    auto real = env_.Run({"runs", "prune", "--keep", "1"});
    EXPECT_EQ(real.out, "deleted 2 finished runs\n");
    EXPECT_EQ(env_.RunIds().size(), 1u);
}

// --- run --stream --------------------------------------------------------------------------

TEST_F(NewcomerTest, StreamPrintsTheFinalStepsTextOnce) {
    WriteWorkflow(kThreeSteps);
    auto result = env_.Run({"run", "workflow.yaml", "-i", "hi", "--stream"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_EQ(result.out, std::string(kThreeStepsOutput) + "\n");
}

TEST_F(NewcomerTest, AuditVerifyJsonReportsEachRun) {
    WriteWorkflow(kThreeSteps);
    ASSERT_EQ(env_.Run({"run", "workflow.yaml", "-i", "hi"}).exit_code(), 0);
    std::string run_id = env_.WaitForOnlyRun();
    auto result = env_.Run({"audit", "verify", "--all", "--json"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    auto report = ParseJson(result.out);
    ASSERT_TRUE(report && report->is_object()) << result.out;
    const auto& o = report->get_object();
    EXPECT_EQ(JsonString(o, "format"), "strowger.audit_verify.v1");
    EXPECT_TRUE(o.at("ok").as_bool());
    ASSERT_EQ(o.at("runs").as_array().size(), 1u) << result.out;
    EXPECT_EQ(JsonString(o.at("runs").as_array()[0].as_object(), "run_id"), run_id);
    EXPECT_TRUE(o.at("runs").as_array()[0].as_object().at("ok").as_bool());
}

TEST_F(NewcomerTest, RunsListShowsDurationTokensCostAndModelAndFiltersBySince) {
    WriteWorkflow(kThreeSteps);
    ASSERT_EQ(env_.Run({"run", "workflow.yaml", "-i", "hi"}).exit_code(), 0);
    auto text = env_.Run({"runs", "list"});
    EXPECT_EQ(text.exit_code(), 0) << text.err;
    EXPECT_EQ(text.out.rfind("RUN", 0), 0u);
    for (const char* column : {"DURATION", "TOKENS", "COST", "MODEL", "scripted:"}) {
        EXPECT_TRUE(Contains(text.out, column)) << column << "\n" << text.out;
    }
    auto json = env_.Run({"runs", "list", "--json", "--since", "1h"});
    auto list = ParseJson(json.out);
    ASSERT_TRUE(list && list->is_object()) << json.out;
    EXPECT_EQ(JsonString(list->get_object(), "format"), "strowger.runs_list.v1");
    const auto& runs = list->get_object().at("runs").as_array();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_GT(JsonInt(runs[0].as_object(), "tokens"), 0);
    EXPECT_EQ(JsonString(runs[0].as_object(), "model").rfind("scripted:", 0), 0u) << json.out;
    auto none = env_.Run({"runs", "list", "--json", "--since", "0s"});
    EXPECT_TRUE(Contains(none.out, "\"runs\":[]")) << none.out;
    auto bad = env_.Run({"runs", "list", "--since", "yesterday"});
    EXPECT_EQ(bad.exit_code(), 2);
}

TEST_F(NewcomerTest, ABrokenAgentFileFailsOnlyTheWorkflowsThatUseIt) {
    WriteWorkflow(kThreeSteps);
    std::filesystem::create_directory(env_.dir() / "agents");
    env_.Write("agents/notes.yml", "model: [unclosed\n");
    auto unused = env_.Run({"validate", "workflow.yaml"});
    EXPECT_EQ(unused.exit_code(), 0) << unused.err;
    EXPECT_TRUE(Contains(unused.err, "notes.yml")) << unused.err;
    EXPECT_TRUE(Contains(unused.err, "warning: unused agent file")) << unused.err;
    env_.Write("uses.yaml", R"y(name: uses
steps:
  - {name: a, agent_name: notes, prompt: "A"}
)y");
    auto used = env_.Run({"validate", "uses.yaml"});
    EXPECT_EQ(used.exit_code(), 2) << used.err;
    EXPECT_TRUE(Contains(used.err, "notes.yml")) << used.err;
}

// --- --log-level debug shows the model traffic ---------------------------------------------

TEST_F(NewcomerTest, DebugLoggingShowsEachModelRequestAndItsAnswer) {
    auto mock = MockModelServer::Start({});
    ASSERT_TRUE(mock) << mock.error().ToString();
    env_.SetEnv("OPENAI_BASE_URL", (*mock)->base_url());
    env_.SetEnv("OPENAI_API_KEY", "sk-debug-test-123456");
    WriteWorkflow(R"y(name: remote
agents:
  writer: {model: "openai:gpt-4o-mini"}
steps:
  - {name: a, agent_name: writer, prompt: "A {{input}}"}
)y");
    auto result = env_.Run({"run", "workflow.yaml", "-i", "hi", "--log-level", "debug"});
    EXPECT_EQ(result.exit_code(), 0) << result.err;
    EXPECT_TRUE(Contains(result.err, "http: POST " + (*mock)->base_url() + "/chat/completions"))
        << result.err;
    EXPECT_TRUE(Contains(result.err, "-> 200 (")) << result.err;
    EXPECT_FALSE(Contains(result.err, "sk-debug-test-123456")) << result.err;
}

// A terminal made narrower while the run executes (SIGWINCH): the status lines drawn after it
// fit the new width.
TEST_F(NewcomerTest, TheStatusLineFollowsATerminalResize) {
    WriteWorkflow(R"y(name: wide
agents:
  writer: {model: "scripted:script.yaml"}
steps:
  - {name: a_rather_long_step_name_for_research, agent_name: writer, prompt: "A", mode: fan_out}
  - {name: another_long_step_name_for_drafting, agent_name: writer, prompt: "B", mode: fan_out}
  - {name: gather, mode: collect}
)y",
                  R"y(rules:
  - {reply: "done", latency_ms: 2000}
)y");
    auto terminal = env_.StartInTerminal({"run", "workflow.yaml", "-i", "hi"}, 120);
    ASSERT_TRUE(terminal->ReadUntil("running:", seconds(20))) << Tail(*terminal);
    terminal->Resize(40);
    // Two more redraws: the first may have been drawn before the resize.
    ASSERT_TRUE(terminal->ReadUntil("running:", seconds(5))) << Tail(*terminal);
    const size_t after = terminal->transcript().size();
    ASSERT_TRUE(terminal->ReadUntil("running:", seconds(5))) << Tail(*terminal);
    EXPECT_EQ(terminal->Wait(seconds(20)).ToString(), "exit 0") << Tail(*terminal);
    std::string rest = terminal->transcript().substr(after);
    size_t checked = 0;
    for (size_t at = rest.find("\r\033[2K"); at != std::string::npos;
         at = rest.find("\r\033[2K", at + 1)) {
        size_t end = rest.find_first_of("\r\n", at + 5);
        std::string line = rest.substr(at + 5, end == std::string::npos ? end : end - at - 5);
        if (!Contains(line, "running:")) continue;
        ++checked;
        EXPECT_LT(Columns(line), 40u) << line;
    }
    EXPECT_GT(checked, 0u) << Tail(*terminal);
}

}  // namespace
}  // namespace strowger::testing
