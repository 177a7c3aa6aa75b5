// DAG node types killed mid-flight (issue 18's crash tests): `strowger run` is killed with
// SIGKILL while a for_each has finished some items and not others; `strowger runs resume`
// then finishes the run, and no item that had completed before the kill is asked again (its
// labelled llm.request appears once in the whole ledger). The scripted provider answers each
// item by its prompt after a latency, so the kill lands between two items.
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

}  // namespace
}  // namespace strowger::testing
