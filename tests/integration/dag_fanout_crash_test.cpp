// DAG node types killed mid-flight (issue 18's crash tests), through the binary:
// * a for_each that has finished some items and not others: `strowger runs resume` finishes
//   the run, and no item that had completed before the kill is asked again (its labelled
//   llm.request appears once in the whole ledger);
// * a subworkflow whose child run is half done: resuming the parent re-attaches to the same
//   child (no second child run), which does not redo its finished node.
// * a for_each over a subworkflow with a budget: the resumed parent holds the caps of the
//   children it re-attaches to, so an item started meanwhile gets only what is free;
// * a tool node that needs approval: the run waits before any tool.call; `strowger approve`
//   runs the call once and the run goes on; `strowger reject` fails the node.
// The scripted provider answers by prompt after a latency, so each kill lands where meant.
#include <gtest/gtest.h>

#include <signal.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"

namespace strowger::testing {
namespace {

using std::chrono::seconds;
using Events = std::vector<LedgerEvent>;

constexpr char kWorkflow[] = R"(name: fan
default_model: "scripted:script.yaml"
nodes:
  - {id: plan, type: agent, config: {prompt: "Plan {{input}}"}}
  - id: each
    type: for_each
    config:
      items: "{{plan.items}}"
      max_parallel: 2
      node: {type: agent, config: {prompt: "Work on {{item}} #{{index}}"}}
  - {id: done, type: agent, config: {prompt: "Done: {{each}}", upstream: false}}
edges:
  - {from: plan, to: each}
  - {from: each, to: done}
output: done
)";

constexpr char kScript[] = R"(rules:
  - {when: {step: plan}, reply: "{\"items\": [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"]}"}
  - {when: {step: each}, reply_template: "did ${prompt}", latency_ms: 300}
  - {reply_template: "${prompt}"}
)";

bool Has(const Events& events, const std::string& type, const std::string& node) {
    return FindEvent(events, type, node) != nullptr;
}

int64_t ItemsCompleted(const Events& events) {
    return CountEvents(events, "for_each.item_completed", "each");
}

// llm.request events by label, of node `each`.
std::map<std::string, int> RequestsByLabel(const Events& events) {
    std::map<std::string, int> counts;
    for (const auto& event : events) {
        if (event.type == "llm.request" && event.node == "each") {
            ++counts[std::string(JsonString(event.data, "label"))];
        }
    }
    return counts;
}

std::set<std::string> CompletedLabels(const Events& events) {
    std::set<std::string> labels;
    for (const auto& event : events) {
        if (event.type == "for_each.item_completed" && event.node == "each") {
            labels.insert("item " + std::to_string(JsonInt(event.data, "index")));
        }
    }
    return labels;
}

TEST(DagCrashTest, ForEachResumedAfterKillRunsOnlyUnfinishedItems) {
    // The uninterrupted run, for the output every interrupted one must end with.
    std::string expected;
    {
        CliEnvironment env;
        env.Write("workflow.yaml", kWorkflow);
        env.Write("script.yaml", kScript);
        auto result = env.Run({"run", "workflow.yaml", "--input", "x"});
        ASSERT_EQ(result.exit_code(), 0) << result.err;
        expected = result.out;
        ASSERT_NE(expected.find("did Work on f #5"), std::string::npos) << expected;
    }

    CliEnvironment env;
    env.Write("workflow.yaml", kWorkflow);
    env.Write("script.yaml", kScript);
    auto child = env.Start({"run", "workflow.yaml", "--input", "x"});
    std::string run_id;
    bool reached = false;
    WaitFor(
        [&] {
            if (run_id.empty()) {
                auto ids = env.RunIds();
                if (ids.size() == 1) run_id = ids[0];
            }
            if (run_id.empty()) return false;
            auto events = env.Events(run_id);
            reached = ItemsCompleted(events) >= 2 && ItemsCompleted(events) < 6;
            return reached || CountEvents(events, "run.completed") > 0;
        },
        seconds(20));
    ASSERT_TRUE(reached) << Describe(env.Events(run_id)) << "\n" << child->Stderr();
    ASSERT_TRUE(child->Signal(SIGKILL));
    EXPECT_EQ(child->Wait(seconds(10)).status.signal, SIGKILL);

    const Events killed = env.Events(run_id);
    const std::set<std::string> done_before = CompletedLabels(killed);
    ASSERT_GE(done_before.size(), 2u) << Describe(killed);
    ASSERT_LT(done_before.size(), 6u) << Describe(killed);
    EXPECT_NE(env.RunStatus(run_id), "completed");

    auto resumed = env.Run({"runs", "resume", run_id});
    EXPECT_EQ(resumed.exit_code(), 0) << resumed.err;
    EXPECT_EQ(resumed.out, expected) << resumed.err;

    const Events events = env.Events(run_id);
    EXPECT_EQ(env.RunStatus(run_id), "completed") << Describe(events);
    // Every item finished exactly once over both processes.
    EXPECT_EQ(ItemsCompleted(events), 6) << Describe(events);
    EXPECT_EQ(CompletedLabels(events).size(), 6u);
    // No item completed before the kill was asked again; an item in flight at the kill was
    // asked at most once more.
    auto requests = RequestsByLabel(events);
    for (int i = 0; i < 6; ++i) {
        const std::string label = "item " + std::to_string(i);
        if (done_before.contains(label)) {
            EXPECT_EQ(requests[label], 1) << label << " ran again: " << Describe(events);
        } else {
            EXPECT_GE(requests[label], 1) << label;
            EXPECT_LE(requests[label], 2) << label;
        }
    }
    // The node was attempted again (attempt 2) after the kill, and plan was not re-run.
    EXPECT_EQ(CountEvents(events, "llm.request", "plan"), 1);
    auto audit = env.Run({"audit", "verify", run_id});
    EXPECT_EQ(audit.exit_code(), 0) << audit.out << audit.err;
}

constexpr char kParent[] = R"(name: parent
default_model: "scripted:script.yaml"
nodes:
  - {id: start, type: agent, config: {prompt: "Start {{input}}"}}
  - {id: child, type: subworkflow, config: {workflow: child.yaml}}
  - {id: finish, type: agent, config: {prompt: "Finish {{input}}"}}
edges:
  - {from: start, to: child}
  - {from: child, to: finish}
output: finish
)";

constexpr char kChild[] = R"(name: child
default_model: "scripted:script.yaml"
nodes:
  - {id: quick, type: agent, config: {prompt: "Quick {{input}}"}}
  - {id: slow, type: agent, config: {prompt: "Slow {{input}}"}}
edges:
  - {from: quick, to: slow}
)";

constexpr char kChildScript[] = R"yaml(rules:
  - {when: {step: slow}, reply_template: "slow(${prompt})", latency_ms: 1500}
  - {reply_template: "${step}(${prompt})"}
)yaml";

TEST(DagCrashTest, SubworkflowResumedAfterKillReattachesToTheSameChild) {
    std::string expected;
    {
        CliEnvironment env;
        env.Write("workflow.yaml", kParent);
        env.Write("child.yaml", kChild);
        env.Write("script.yaml", kChildScript);
        auto result = env.Run({"run", "workflow.yaml", "--input", "x"});
        ASSERT_EQ(result.exit_code(), 0) << result.err;
        expected = result.out;
    }
    CliEnvironment env;
    env.Write("workflow.yaml", kParent);
    env.Write("child.yaml", kChild);
    env.Write("script.yaml", kChildScript);
    auto child = env.Start({"run", "workflow.yaml", "--input", "x"});
    std::string parent_id, child_id;
    bool reached = false;
    WaitFor(
        [&] {
            auto ids = env.RunIds();
            if (ids.size() < 2) return false;
            parent_id = ids[0];
            child_id = ids[1];
            auto events = env.Events(child_id);
            reached = Has(events, "llm.request", "slow");
            return reached;
        },
        seconds(20));
    ASSERT_TRUE(reached) << child->Stderr();
    ASSERT_TRUE(child->Signal(SIGKILL));
    EXPECT_EQ(child->Wait(seconds(10)).status.signal, SIGKILL);
    EXPECT_NE(env.RunStatus(parent_id), "completed");
    EXPECT_NE(env.RunStatus(child_id), "completed");

    // The parent recorded the child's id before the child existed; the child names its parent.
    const Events parent_before = env.Events(parent_id);
    const LedgerEvent* started = FindEvent(parent_before, "subworkflow.started", "child");
    ASSERT_NE(started, nullptr) << Describe(parent_before);
    EXPECT_EQ(JsonString(started->data, "child_run_id"), child_id);
    const Events child_before = env.Events(child_id);
    ASSERT_FALSE(child_before.empty());
    EXPECT_EQ(JsonString(child_before.front().data, "parent_run"), parent_id);
    EXPECT_EQ(JsonString(child_before.front().data, "parent_node"), "child");

    auto resumed = env.Run({"runs", "resume", parent_id});
    EXPECT_EQ(resumed.exit_code(), 0) << resumed.err;
    EXPECT_EQ(resumed.out, expected) << resumed.err;

    EXPECT_EQ(env.RunIds().size(), 2u) << "a second child run was started";
    EXPECT_EQ(env.RunStatus(parent_id), "completed");
    EXPECT_EQ(env.RunStatus(child_id), "completed");
    const Events child_events = env.Events(child_id);
    EXPECT_EQ(CountEvents(child_events, "llm.request", "quick"), 1) << Describe(child_events);
    EXPECT_EQ(CountEvents(child_events, "node.completed", "slow"), 1) << Describe(child_events);
    const Events parent_events = env.Events(parent_id);
    EXPECT_EQ(CountEvents(parent_events, "subworkflow.started"), 1) << Describe(parent_events);
    EXPECT_EQ(CountEvents(parent_events, "llm.request", "start"), 1) << Describe(parent_events);

    // `runs show` of the parent names the child run.
    auto show = env.Run({"runs", "show", parent_id, "--json"});
    EXPECT_EQ(show.exit_code(), 0) << show.err;
    auto record = ParseJson(show.out);
    ASSERT_TRUE(record && record->is_object()) << show.out;
    std::string named;
    if (const auto* nodes = JsonArray(record->get_object(), "nodes")) {
        for (const auto& node : *nodes) {
            if (JsonString(node.get_object(), "id") == "child") {
                named = std::string(JsonString(node.get_object(), "child_run"));
            }
        }
    }
    EXPECT_EQ(named, child_id) << show.out;
    for (const auto& id : {parent_id, child_id}) {
        auto audit = env.Run({"audit", "verify", id});
        EXPECT_EQ(audit.exit_code(), 0) << audit.out << audit.err;
    }
}

// Budgets across a kill: a for_each's children in flight hold their caps of the parent's
// budget (recorded in subworkflow.started); a resumed parent re-attaches to them and holds the
// same caps, so an item started while one of them still runs gets only what is free.
constexpr char kBudgetParent[] = R"(name: fan
default_model: "scripted:script.yaml"
limits: {max_tokens: 240}
nodes:
  - id: each
    type: for_each
    config:
      items: ["a", "b", "c"]
      workflow: child.yaml
      max_parallel: 2
      fail_strategy: wait_all
)";

constexpr char kBudgetChild[] = R"(name: child
default_model: "scripted:script.yaml"
nodes:
  - {id: c1, type: agent, config: {prompt: "One {{input}}"}}
  - {id: c2, type: agent, config: {prompt: "Two {{input}}"}}
  - {id: slow, type: agent, config: {prompt: "Slow {{run.input}}", upstream: false}}
edges:
  - {from: c1, to: c2}
  - {from: c2, to: slow}
)";

// Item a's last call takes 0.6 s, item b's 2.5 s: after the resume, a's child ends while b's
// still runs, and item c starts then.
constexpr char kBudgetScript[] = R"(rules:
  - {when: {step: slow, prompt_contains: "Slow a"}, reply: ok, latency_ms: 600, usage: {input_tokens: 30, output_tokens: 10}}
  - {when: {step: slow, prompt_contains: "Slow b"}, reply: ok, latency_ms: 2500, usage: {input_tokens: 30, output_tokens: 10}}
  - {reply: ok, usage: {input_tokens: 30, output_tokens: 10}}
)";

TEST(DagCrashTest, AResumedParentHoldsTheCapsOfTheChildrenItReattachesTo) {
    CliEnvironment env;
    env.Write("workflow.yaml", kBudgetParent);
    env.Write("child.yaml", kBudgetChild);
    env.Write("script.yaml", kBudgetScript);
    auto process = env.Start({"run", "workflow.yaml", "--input", "x"});
    std::vector<std::string> ids;
    bool reached = false;
    WaitFor(
        [&] {
            ids = env.RunIds();
            if (ids.size() < 3) return false;
            // Both children are in their last call.
            reached = Has(env.Events(ids[1]), "llm.request", "slow") &&
                      Has(env.Events(ids[2]), "llm.request", "slow");
            return reached;
        },
        seconds(20));
    ASSERT_TRUE(reached) << process->Stderr();
    ASSERT_TRUE(process->Signal(SIGKILL));
    EXPECT_EQ(process->Wait(seconds(10)).status.signal, SIGKILL);
    const std::string parent_id = ids[0];
    const Events before = env.Events(parent_id);
    ASSERT_EQ(CountEvents(before, "subworkflow.started", "each"), 2) << Describe(before);
    for (const auto& e : before) {
        if (e.type != "subworkflow.started") continue;
        EXPECT_EQ(JsonInt(e.data, "max_tokens"), 120) << e.line;
    }

    auto resumed = env.Run({"runs", "resume", parent_id});
    // Item c found nothing free (a's 120 spent, b's 120 held): it started no child.
    EXPECT_EQ(resumed.exit_code(), 1) << resumed.out << resumed.err;
    EXPECT_EQ(env.RunIds().size(), 3u) << "item c started a child with budget the others held";
    const Events events = env.Events(parent_id);
    EXPECT_EQ(CountEvents(events, "subworkflow.started", "each"), 2) << Describe(events);
    int64_t charged = 0;
    for (const auto& e : events) {
        if (e.type == "subworkflow.ended") {
            charged += JsonInt(e.data, "tokens_in") + JsonInt(e.data, "tokens_out");
        }
    }
    EXPECT_EQ(charged, 240) << Describe(events);
    const LedgerEvent* failed_item = nullptr;
    for (const auto& e : events) {
        if (e.type == "for_each.item_completed" && JsonInt(e.data, "index") == 2) failed_item = &e;
    }
    ASSERT_NE(failed_item, nullptr) << Describe(events);
    EXPECT_NE(JsonString(failed_item->data, "error").find("budget exceeded"), std::string::npos)
        << failed_item->line;
    auto audit = env.Run({"audit", "verify", "--all"});
    EXPECT_EQ(audit.exit_code(), 0) << audit.out << audit.err;
}

constexpr char kApproval[] = R"(name: approval
default_model: "scripted:script.yaml"
nodes:
  - {id: draft, type: agent, config: {prompt: "Draft {{input}}"}}
  - {id: publish, type: tool, config: {tool_name: write_file, require_approval: true, args: {path: "out/{{run.input}}.md", content: "{{draft}}"}}}
  - {id: notify, type: agent, config: {prompt: "Notify {{publish}}", upstream: false}}
edges:
  - {from: draft, to: publish}
  - {from: publish, to: notify}
output: notify
)";

constexpr char kEchoScript[] = R"yaml(rules:
  - {reply_template: "${step}: ${prompt}"}
)yaml";

TEST(DagToolTest, ApprovedToolNodeRunsOnceAndRejectedFails) {
    for (const std::string decision : {"approve", "reject"}) {
        CliEnvironment env;
        env.Write("workflow.yaml", kApproval);
        env.Write("script.yaml", kEchoScript);
        auto waiting = env.Run({"run", "workflow.yaml", "--input", "notes"});
        EXPECT_EQ(waiting.exit_code(), 3) << waiting.out << waiting.err;
        auto ids = env.RunIds();
        ASSERT_EQ(ids.size(), 1u);
        const std::string run_id = ids[0];
        EXPECT_EQ(env.RunStatus(run_id), "waiting");
        Events events = env.Events(run_id);
        const LedgerEvent* task = FindEvent(events, "human_task.created", "publish");
        ASSERT_NE(task, nullptr) << Describe(events);
        EXPECT_EQ(JsonString(task->data, "task_id"), "publish/1/1");
        EXPECT_EQ(JsonString(task->data, "kind"), "tool_approval");
        EXPECT_EQ(CountEvents(events, "tool.call"), 0);

        auto decided = decision == "approve" ? env.Run({"approve", run_id})
                                             : env.Run({"reject", run_id, "--reason", "no"});
        events = env.Events(run_id);
        if (decision == "approve") {
            EXPECT_EQ(decided.exit_code(), 0) << decided.err;
            EXPECT_EQ(decided.out, "notify: Notify wrote 18 bytes to out/notes.md\n")
                << decided.err;
            EXPECT_EQ(env.RunStatus(run_id), "completed");
            EXPECT_EQ(CountEvents(events, "tool.call", "publish"), 1) << Describe(events);
            const LedgerEvent* call = FindEvent(events, "tool.call", "publish");
            EXPECT_EQ(JsonString(call->data, "idempotency_key"), run_id + "/publish/1/1");
            EXPECT_EQ(JsonString(call->data, "safety"), "idempotent_write");
            EXPECT_EQ(CountEvents(events, "tool.result", "publish"), 1);
        } else {
            EXPECT_NE(decided.exit_code(), 0) << decided.out << decided.err;
            EXPECT_EQ(env.RunStatus(run_id), "failed");
            EXPECT_EQ(CountEvents(events, "tool.call"), 0) << Describe(events);
            const LedgerEvent* failed = FindEvent(events, "node.failed", "publish");
            ASSERT_NE(failed, nullptr) << Describe(events);
            EXPECT_NE(JsonString(failed->data, "error")
                          .find("a human rejected the call of "
                                "write_file"),
                      std::string_view::npos);
        }
        auto audit = env.Run({"audit", "verify", run_id});
        EXPECT_EQ(audit.exit_code(), 0) << audit.out << audit.err;
    }
}

}  // namespace
}  // namespace strowger::testing
