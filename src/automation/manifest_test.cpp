// The standing-agent fields of a manifest (session_mode, max_history_tokens, cron entries),
// read by one reader for every format and checked as the API checks a cron job: values, the
// flat agent-turn and workflow-run forms, and errors naming file:line:column and field.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <string>
#include <vector>

#include "automation/agents.hpp"
#include "automation/cron_spec.hpp"

namespace strowger::automation {
namespace {

const SystemTime kNow = SystemTime(std::chrono::seconds(1'800'000'000));

std::vector<std::string> Errors(const ManifestSet& set) {
    std::vector<std::string> out;
    for (const auto& d : set.diagnostics) out.push_back(d.ToString());
    return out;
}

TEST(ManifestTest, TomlCronEntriesBecomeTheJobsTheApiWouldMake) {
    auto set = ParseTomlManifest(R"(name = "ops"
model = "openai:m"
session_mode = "new"
max_history_tokens = 500

[[cron]]
name = "brief"
schedule = "0 8 * * *"
tz = "Europe/Berlin"
message = "[SILENT] brief me"
session_mode = "persistent"
timeout_secs = 30

[[cron]]
name = "report"
schedule = "every 2h"
workflow_id = "weekly"
input = { scope = "all" }
overlap = "allow"
)",
                                 "ops.toml", kNow);
    ASSERT_TRUE(set.ok()) << ::testing::PrintToString(Errors(set));
    ASSERT_EQ(set.agents.size(), 1u);
    const AgentManifest& m = set.agents[0];
    EXPECT_EQ(m.session_mode, "new");
    EXPECT_EQ(m.max_history_tokens, 500);
    ASSERT_EQ(m.cron.size(), 2u);
    EXPECT_EQ(m.cron[0].spec.name, "brief");
    EXPECT_EQ(m.cron[0].spec.agent, "ops");
    EXPECT_EQ(JsonText(m.cron[0].spec.action),
              R"({"kind":"agent_turn","message":"[SILENT] brief me","session_mode":"persistent",)"
              R"("timeout_secs":30})");
    EXPECT_EQ(JsonString(m.cron[0].spec.schedule.as_object(), "tz"), "Europe/Berlin");
    EXPECT_EQ(m.cron[0].pos.line, 6);
    EXPECT_EQ(JsonText(m.cron[1].spec.action),
              R"({"kind":"workflow_run","workflow_id":"weekly","input":{"scope":"all"}})");
    EXPECT_EQ(m.cron[1].spec.overlap, "allow");
    // The same body through the API's reader and check gives the same job.
    auto api = CronSpecFromJson(
        json::parse(R"({"agent_id":"ops","name":"report","schedule":"every 2h",)"
                    R"("workflow_id":"weekly","input":{"scope":"all"},"overlap":"allow"})")
            .as_object(),
        CronJobSpec{});
    ASSERT_TRUE(api.has_value()) << api.error().message();
    auto checked = CheckCronSpec(*api, kNow);
    ASSERT_TRUE(checked.has_value()) << checked.error().message();
    EXPECT_EQ(JsonText(checked->action), JsonText(m.cron[1].spec.action));
    EXPECT_EQ(JsonText(checked->schedule), JsonText(m.cron[1].spec.schedule));
}

TEST(ManifestTest, BadValuesNameTheFileLineColumnAndField) {
    auto set = ParseTomlManifest(R"(model = "openai:m"
session_mode = "sometimes"
max_history_tokens = 5

[[cron]]
name = "a"
schedule = "0 25 * * *"
message = "x"

[[cron]]
name = "b"
schedule = "@daily"
message = "x"
colour = "red"

[[cron]]
name = "c"
schedule = "@daily"
message = "x"
misfire = "later"

[[cron]]
schedule = "@daily"
workflow_id = "w"
)",
                                 "bad.toml", kNow);
    EXPECT_FALSE(set.ok());
    EXPECT_TRUE(set.agents.empty());
    std::vector<std::string> expected = {
        R"(bad.toml:2:16: session_mode: expected "persistent" or "new", not "sometimes")",
        "bad.toml:3:22: max_history_tokens: must be at least 100, not 5",
        "bad.toml:7:12: cron[0].schedule: field 2 (hour): 25 is out of range 0-23",
        "bad.toml:14:10: cron[1].colour: unknown field",
        R"(bad.toml:20:11: cron[2].misfire: expected "coalesce", "skip" or "all", not "later")",
        "bad.toml:22:1: cron[3].name: a cron entry needs a name",
    };
    EXPECT_EQ(Errors(set), expected);
}

}  // namespace
}  // namespace strowger::automation
