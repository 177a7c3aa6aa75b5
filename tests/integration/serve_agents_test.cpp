// Standing agents and cron jobs through a real `strowger serve --agents DIR` on port 0, with the
// mock model (openai:test-model): a message is one durable turn (its ledger verified by the
// daemon's read), sessions fed back as history, the precedence job > manifest > persistent
// (cron too), a session kept under max_history_tokens (session.compacted in the ledger),
// [SILENT], a TOML manifest's [[cron]] firing, and the agent and cron CLI commands.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <csignal>
#include <filesystem>
#include <thread>

#include "core/clock.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "integration/serve_harness.hpp"
#include "testing/mock_model_server.hpp"

namespace strowger::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kProviders[] = "providers:\n  openai: {max_retries: 0}\n";

class ServeAgentsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        MockModelServer::Options options;
        options.reply = "pong";
        auto mock = MockModelServer::Start(options);
        ASSERT_TRUE(mock.has_value()) << mock.error().message();
        mock_ = std::move(*mock);
        env_.SetEnv("OPENAI_BASE_URL", mock_->base_url());
        env_.SetEnv("OPENAI_API_KEY", "x");
        env_.SetEnv("STROWGER_PROVIDERS", env_.Write("providers.yaml", kProviders));
    }
    void Start(const std::string& cron_at, std::vector<std::string> extra = {}) {
        env_.Write("agents/ops.toml", R"(name = "ops"
description = "operations"
max_history_tokens = 200

[model]
provider = "openai"
model = "test-model"
system_prompt = "You are ops."

[[cron]]
name = "soon"
schedule = "at )" + cron_at + R"("
message = "[SILENT] health check"
session_mode = "new"
)");
        env_.Write("agents/fresh.toml", R"(name = "fresh"
session_mode = "new"
model = "openai:test-model"

[[cron]]
name = "hourly"
schedule = "0 * * * *"
message = "check"
session_mode = "persistent"
)");
        env_.Write("agents/helper.yaml", "model: openai:test-model\nsystem_prompt: helps\n");
        std::vector<std::string> args = {"--agents", (env_.dir() / "agents").string()};
        args.insert(args.end(), extra.begin(), extra.end());
        serve_ = std::make_unique<ServeProcess>(env_, args);
        ASSERT_TRUE(serve_->ok());
    }
    json::object Send(const std::string& agent, const std::string& body, int status = 200) {
        auto reply = serve_->Admin("POST", "/api/agents/" + agent + "/message?wait=true", body);
        EXPECT_EQ(reply.status, status) << reply.body;
        return reply.body.empty() || reply.status >= 300 ? json::object() : reply.object();
    }
    json::array Sessions(const std::string& agent) {
        auto reply = serve_->Admin("GET", "/api/agents/" + agent + "/sessions");
        EXPECT_EQ(reply.status, 200) << reply.body;
        return json::parse(reply.body).as_array();
    }
    static std::string In(int seconds) {
        return FormatRfc3339(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    }

    CliEnvironment env_;
    std::unique_ptr<MockModelServer> mock_;
    std::unique_ptr<ServeProcess> serve_;
};

TEST_F(ServeAgentsTest, AMessageIsOneDurableTurnAndItsSessionFeedsTheNext) {
    Start(In(300));
    auto agents = serve_->Admin("GET", "/api/agents");
    ASSERT_EQ(agents.status, 200) << agents.body;
    EXPECT_EQ(json::parse(agents.body).as_array().size(), 3u) << agents.body;

    auto first = Send("ops", R"({"message":"hello one"})");
    EXPECT_EQ(JsonString(first, "response"), "pong");
    EXPECT_EQ(JsonString(first, "status"), "completed");
    std::string run_id(JsonString(first, "run_id"));
    // The turn is a run like any other: its ledger verifies (every read does) and says so.
    auto run = serve_->Admin("GET", "/api/runs/" + run_id);
    ASSERT_EQ(run.status, 200) << run.body;
    EXPECT_NE(run.body.find("agent:ops"), std::string::npos) << run.body;
    auto verified = env_.Run({"audit", "verify", run_id, "--store", "sqlite:" + env_.store_path()});
    EXPECT_EQ(verified.exit_code(), 0) << verified.out << verified.err;
    auto events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.front().type, "run.created");
    EXPECT_EQ(events.back().type, "run.completed");

    Send("ops", R"({"message":"hello two"})");
    // The second call's conversation had the first exchange before its message.
    auto requests = mock_->recorded_requests();
    ASSERT_GE(requests.size(), 2u);
    const std::string& body = requests.back().body;
    EXPECT_NE(body.find("You are ops."), std::string::npos) << body;
    EXPECT_NE(body.find("hello one"), std::string::npos) << body;
    EXPECT_LT(body.find("hello one"), body.find("hello two")) << body;

    auto sessions = Sessions("ops");
    ASSERT_EQ(sessions.size(), 1u);
    const auto& session = sessions[0].as_object();
    EXPECT_EQ(JsonString(session, "channel"), "api");
    EXPECT_EQ(JsonString(session, "mode"), "persistent");
    EXPECT_EQ(JsonInt(session, "message_count"), 4);

    // The YAML agent file answers too.
    EXPECT_EQ(JsonString(Send("helper", R"({"message":"hi"})"), "response"), "pong");
    // Unknown agent, no message.
    Send("nobody", R"({"message":"hi"})", 404);
    Send("ops", R"({})", 400);
}

TEST_F(ServeAgentsTest, SessionModePrecedenceIsJobThenManifestThenPersistent) {
    Start(In(4));
    // Message > manifest: ops is persistent, a message asking for new gets its own session.
    Send("ops", R"({"message":"a"})");
    Send("ops", R"({"message":"b","session_mode":"new"})");
    // Manifest > persistent: fresh says new, so every message has its own session.
    Send("fresh", R"({"message":"c"})");
    Send("fresh", R"({"message":"d"})");
    auto fresh = Sessions("fresh");
    ASSERT_EQ(fresh.size(), 2u);
    for (const auto& s : fresh) EXPECT_EQ(JsonString(s.as_object(), "mode"), "new");
    // Job > manifest, for cron too: ops's [[cron]] entry says new (the manifest persistent).
    std::string job_id = "cron_ops_soon";
    json::object status;
    for (int i = 0; i < 200; ++i) {
        auto reply = serve_->Admin("GET", "/api/cron/jobs/" + job_id + "/status");
        ASSERT_EQ(reply.status, 200) << reply.body;
        status = reply.object();
        if (JsonString(status, "last_status") == "completed") break;
        std::this_thread::sleep_for(100ms);  // polling a daemon's state, not synchronising
    }
    EXPECT_EQ(JsonInt(status, "fire_count"), 1) << json::serialize(status);
    EXPECT_EQ(JsonString(status, "last_status"), "completed");
    auto ops = Sessions("ops");
    int persistent = 0, fresh_api = 0, cron_new = 0;
    for (const auto& v : ops) {
        const auto& s = v.as_object();
        if (JsonString(s, "mode") == "persistent") ++persistent;
        if (JsonString(s, "mode") == "new" && JsonString(s, "channel") == "api") ++fresh_api;
        if (JsonString(s, "mode") == "new" && JsonString(s, "channel") == "cron") {
            ++cron_new;
            // [SILENT]: the reply is not in the session.
            EXPECT_EQ(JsonInt(s, "message_count"), 0);
        }
    }
    EXPECT_EQ(persistent, 1);
    EXPECT_EQ(fresh_api, 1);
    EXPECT_EQ(cron_new, 1);
    // The fired turn's ledger has the reply.
    std::string fired(JsonString(status, "last_run_id"));
    auto events = env_.Events(fired);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.completed");
    EXPECT_EQ(JsonString(events.back().data, "output"), "pong");
    // fresh's job says persistent (its manifest new): it is listed with its schedule.
    auto job = serve_->Admin("GET", "/api/cron/jobs/cron_fresh_hourly");
    ASSERT_EQ(job.status, 200) << job.body;
    EXPECT_NE(job.body.find("\"session_mode\":\"persistent\""), std::string::npos) << job.body;
    EXPECT_NE(job.body.find("\"expr\":\"0 * * * *\""), std::string::npos) << job.body;
}

TEST_F(ServeAgentsTest, ASessionStaysUnderMaxHistoryTokensAndSilentRepliesStayOut) {
    Start(In(300));
    std::string long_text(300, 'x');  // 75 tokens a message
    std::vector<std::string> runs;
    for (int i = 0; i < 5; ++i) {
        auto reply =
            Send("ops", "{\"message\":\"turn " + std::to_string(i) + " " + long_text + "\"}");
        runs.emplace_back(JsonString(reply, "run_id"));
    }
    // ops's bound is 200 tokens: the third turn on needed compaction, recorded in its ledger.
    int compacted = 0;
    for (const auto& run : runs) {
        for (const auto& e : env_.Events(run)) {
            if (e.type != "session.compacted") continue;
            ++compacted;
            EXPECT_EQ(JsonInt(e.data, "max_history_tokens"), 200);
            EXPECT_GT(JsonInt(e.data, "dropped_messages"), 0);
            EXPECT_LE(JsonInt(e.data, "kept_tokens") + 76, 200) << e.line;
        }
    }
    EXPECT_GE(compacted, 2);
    auto sessions = Sessions("ops");
    ASSERT_EQ(sessions.size(), 1u);
    const auto& session = sessions[0].as_object();
    // The summary folds the dropped turns, bounded by a quarter of the bound (200 chars).
    std::string summary(JsonString(session, "summary"));
    EXPECT_NE(summary.find("user: turn "), std::string::npos) << json::serialize(session);
    EXPECT_LE(summary.size(), 200u) << summary;
    // What the last turn was given stayed under the bound: its request had no "turn 0".
    auto requests = mock_->recorded_requests();
    EXPECT_EQ(requests.back().body.find("\"content\":\"turn 0"), std::string::npos);

    // [SILENT]: the turn runs (reply in the ledger, tokens metered) but the session keeps
    // neither the message nor the reply.
    auto silent = Send("ops", R"({"message":"[SILENT] quiet check"})");
    EXPECT_EQ(JsonString(silent, "response"), "pong");
    EXPECT_TRUE(JsonBool(silent, "silent"));
    std::string silent_run(JsonString(silent, "run_id"));
    auto after = Sessions("ops")[0].as_object();
    EXPECT_EQ(json::serialize(after).find("quiet check"), std::string::npos);
    EXPECT_EQ(json::serialize(after).find(silent_run), std::string::npos);
    // A turn after it sees the last non-silent exchange, not the silent one.
    Send("ops", R"({"message":"loud"})");
    after = Sessions("ops")[0].as_object();
    EXPECT_NE(json::serialize(after).find("loud"), std::string::npos);
    EXPECT_EQ(json::serialize(after).find("quiet check"), std::string::npos);
    auto events = env_.Events(std::string(JsonString(silent, "run_id")));
    bool metered = false;
    for (const auto& e : events) {
        if (e.type == "llm.response" && JsonInt(e.data, "tokens_in") > 0) metered = true;
    }
    EXPECT_TRUE(metered);
    EXPECT_EQ(JsonString(events.back().data, "output"), "pong");
}

TEST_F(ServeAgentsTest, AgentAndCronCommands) {
    Start(In(300));
    auto run = [&](std::vector<std::string> args) {
        args.push_back("--server");
        args.push_back(serve_->url());
        return env_.Run(args);
    };
    auto sent = run({"agent", "send", "ops", "hello"});
    EXPECT_EQ(sent.exit_code(), 0) << sent.err;
    EXPECT_EQ(sent.out, "pong\n");
    auto list = run({"agent", "list"});
    EXPECT_EQ(list.exit_code(), 0) << list.err;
    EXPECT_NE(list.out.find("ops\topenai:test-model\tpersistent\t200 tokens\t1 cron"),
              std::string::npos)
        << list.out;
    auto sessions = run({"agent", "sessions", "ops"});
    EXPECT_EQ(sessions.exit_code(), 0);
    EXPECT_NE(sessions.out.find("\tapi\tpersistent\t2 messages"), std::string::npos)
        << sessions.out;
    EXPECT_EQ(run({"agent", "send", "nobody", "x"}).exit_code(), 2);

    auto created = run({"cron", "create", "ops", "0 8 * * *", "morning brief", "--name", "brief",
                        "--tz", "Europe/Berlin"});
    ASSERT_EQ(created.exit_code(), 0) << created.err;
    std::string id = created.out.substr(0, created.out.find('\t'));
    EXPECT_EQ(id.substr(0, 5), "cron_");
    auto bad = run({"cron", "create", "ops", "0 25 * * *", "x"});
    EXPECT_EQ(bad.exit_code(), 2);
    EXPECT_NE(bad.err.find("field 2 (hour): 25 is out of range 0-23"), std::string::npos)
        << bad.err;
    auto jobs = run({"cron", "list"});
    EXPECT_NE(jobs.out.find(id + "\tbrief\tops\t0 8 * * * (Europe/Berlin)\tenabled"),
              std::string::npos)
        << jobs.out;
    auto json_list = run({"cron", "list", "--json"});
    EXPECT_EQ(json::parse(json_list.out).as_object().at("total").as_int64(), 3);
    EXPECT_EQ(run({"cron", "disable", id}).out, "disabled " + id + "\n");
    auto status = run({"cron", "status", id});
    EXPECT_NE(status.out.find("enabled:      no"), std::string::npos) << status.out;
    EXPECT_EQ(run({"cron", "enable", id}).out, "enabled " + id + "\n");
    status = run({"cron", "status", id});
    EXPECT_NE(status.out.find("enabled:      yes"), std::string::npos) << status.out;
    EXPECT_EQ(run({"cron", "delete", id}).out, "removed " + id + "\n");
    EXPECT_EQ(run({"cron", "status", id}).exit_code(), 2);
}

TEST_F(ServeAgentsTest, ASessionsHistoryIsDeletedThroughTheApiAndTheCliDurablyWithABusEvent) {
    Start(In(300));
    Send("ops", R"({"message":"hello one"})");
    Send("ops", R"({"message":"hello two"})");
    Send("ops", R"({"message":"elsewhere","channel":"slack"})");
    ASSERT_EQ(Sessions("ops").size(), 2u);
    EXPECT_EQ(serve_->Admin("DELETE", "/api/agents/nobody/sessions").status, 404);
    EXPECT_EQ(serve_->Admin("DELETE", "/api/agents/ops/sessions/ses_nothing").status, 404);
    // Only the api channel's session.
    auto reset = serve_->Admin("DELETE", "/api/agents/ops/sessions?channel=api");
    ASSERT_EQ(reset.status, 200) << reset.body;
    EXPECT_EQ(JsonString(reset.object(), "status"), "reset");
    EXPECT_EQ(JsonInt(reset.object(), "messages_deleted"), 4);
    const auto& reset_sessions = reset.object().at("sessions").as_array();
    ASSERT_EQ(reset_sessions.size(), 1u);
    std::string api_session(JsonString(reset_sessions[0].as_object(), "session_id"));
    for (const auto& v : Sessions("ops")) {
        const auto& s = v.as_object();
        EXPECT_EQ(JsonInt(s, "message_count"), JsonString(s, "channel") == "api" ? 0 : 2)
            << json::serialize(s);
    }
    // The bus has the reset, so a trigger can react to it.
    auto bus = serve_->Admin("GET", "/api/automation/events?limit=1000");
    EXPECT_NE(bus.body.find("\"type\":\"session_reset\""), std::string::npos) << bus.body;
    EXPECT_NE(bus.body.find("Agent 'ops' session " + api_session +
                            " (channel api) was reset by admin: 4 messages deleted"),
              std::string::npos)
        << bus.body;

    // Durable: after a restart the session is still empty, and the next turn starts afresh
    // (its request has nothing of the deleted exchange) in the same session.
    serve_.reset();
    serve_ = std::make_unique<ServeProcess>(
        env_, std::vector<std::string>{"--agents", (env_.dir() / "agents").string()});
    ASSERT_TRUE(serve_->ok());
    for (const auto& v : Sessions("ops")) {
        if (JsonString(v.as_object(), "channel") == "api") {
            EXPECT_EQ(JsonInt(v.as_object(), "message_count"), 0);
        }
    }
    auto after = Send("ops", R"({"message":"fresh start"})");
    EXPECT_EQ(JsonString(after, "session_id"), api_session);
    const std::string body = mock_->recorded_requests().back().body;
    EXPECT_NE(body.find("fresh start"), std::string::npos) << body;
    EXPECT_EQ(body.find("hello one"), std::string::npos) << body;

    // The CLI: one session by id, then all of them.
    auto run = [&](std::vector<std::string> args) {
        args.push_back("--server");
        args.push_back(serve_->url());
        return env_.Run(args);
    };
    auto one = run({"agent", "reset", "ops", "--session", api_session});
    EXPECT_EQ(one.exit_code(), 0) << one.err;
    EXPECT_EQ(one.out, "reset " + api_session + "\tapi\t2 messages deleted\n");
    auto all = run({"agent", "reset", "ops"});
    EXPECT_EQ(all.exit_code(), 0) << all.err;
    EXPECT_NE(all.out.find("\tslack\t2 messages deleted\n"), std::string::npos) << all.out;
    for (const auto& v : Sessions("ops")) EXPECT_EQ(JsonInt(v.as_object(), "message_count"), 0);
    EXPECT_EQ(run({"agent", "reset", "nobody"}).exit_code(), 2);
}

// The YAML manifests take the standing-agent fields the TOML ones do (one reader), bad values
// are reported as file:line:column field, and SIGHUP reloads --agents: new and changed agents
// replace the old definition, removed ones go with their cron jobs, an invalid file keeps the
// previous version.
TEST_F(ServeAgentsTest, YamlManifestsTakeTheStandingFieldsAndSighupReloadsTheAgents) {
    Start(In(300), {"--log-level", "info"});  // info: each reload's summary line
    auto agent = [&](const std::string& name) {
        auto reply = serve_->Admin("GET", "/api/agents");
        json::value agents = json::parse(reply.body);
        for (const auto& v : agents.as_array()) {
            if (JsonString(v.as_object(), "name") == name) return v.as_object();
        }
        return json::object();
    };
    ASSERT_FALSE(agent("fresh").empty());
    // A reload logs one line when it is done (agents and their jobs).
    auto reloaded = [&](size_t times) {
        return WaitFor(
            [&] {
                std::string err = serve_->process().Stderr();
                size_t n = 0;
                for (size_t at = err.find("reload of --agents"); at != std::string::npos;
                     at = err.find("reload of --agents", at + 1)) {
                    ++n;
                }
                return n >= times;
            },
            10s);
    };
    env_.Write("agents/writer.yaml", R"(model: openai:test-model
description: first
session_mode: new
max_history_tokens: 300
cron:
  - name: nightly
    schedule: "0 3 * * *"
    tz: Europe/Berlin
    message: "[SILENT] tidy up"
    session_mode: persistent
    timeout_secs: 60
  - name: report
    schedule: every 2h
    workflow_id: weekly
    input: {scope: all}
    misfire: skip
)");
    std::filesystem::remove(env_.dir() / "agents" / "fresh.toml");
    ASSERT_TRUE(serve_->process().Signal(SIGHUP));
    ASSERT_TRUE(reloaded(1)) << serve_->process().Stderr();
    ASSERT_FALSE(agent("writer").empty());
    EXPECT_TRUE(agent("fresh").empty());
    auto writer = agent("writer");
    EXPECT_EQ(JsonString(writer, "session_mode"), "new");
    EXPECT_EQ(JsonInt(writer, "max_history_tokens"), 300);
    EXPECT_EQ(JsonInt(writer, "cron_jobs"), 2);
    auto nightly = serve_->Admin("GET", "/api/cron/jobs/cron_writer_nightly");
    ASSERT_EQ(nightly.status, 200) << nightly.body;
    const auto& job = nightly.object();
    EXPECT_EQ(JsonString(job.at("schedule").as_object(), "expr"), "0 3 * * *");
    EXPECT_EQ(JsonString(job.at("schedule").as_object(), "tz"), "Europe/Berlin");
    EXPECT_EQ(json::serialize(job.at("action")),
              R"({"kind":"agent_turn","message":"[SILENT] tidy up","session_mode":"persistent",)"
              R"("timeout_secs":60})");
    auto report = serve_->Admin("GET", "/api/cron/jobs/cron_writer_report");
    ASSERT_EQ(report.status, 200) << report.body;
    EXPECT_EQ(json::serialize(report.object().at("action")),
              R"({"kind":"workflow_run","workflow_id":"weekly","input":{"scope":"all"}})");
    EXPECT_EQ(JsonString(report.object(), "misfire"), "skip");
    // fresh's file is gone: its agent and its manifest job went with it.
    EXPECT_EQ(serve_->Admin("GET", "/api/cron/jobs/cron_fresh_hourly").status, 404);
    EXPECT_EQ(serve_->Admin("POST", "/api/agents/fresh/message", R"({"message":"x"})").status, 404);
    // The new agent answers.
    EXPECT_EQ(JsonString(Send("writer", R"({"message":"hi"})"), "response"), "pong");

    // An invalid version: every problem reported with file:line:column and field; the agent
    // keeps its previous definition and jobs.
    env_.Write("agents/writer.yaml", R"(model: openai:test-model
description: second
max_history_tokens: 5
cron:
  - name: nightly
    schedule: "0 25 * * *"
    message: tidy
  - name: other
    schedule: "@daily"
    message: hi
    colour: red
  - name: third
    schedule: "@daily"
    message: hi
    session_mode: sometimes
)");
    ASSERT_TRUE(serve_->process().Signal(SIGHUP));
    std::string file = (env_.dir() / "agents" / "writer.yaml").string();
    ASSERT_TRUE(reloaded(2)) << serve_->process().Stderr();
    std::string err = serve_->process().Stderr();
    EXPECT_NE(err.find(file + ":3:21: max_history_tokens: must be at least 100, not 5"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(file + ":6:15: cron[0].schedule: field 2 (hour): 25 is out of range 0-23"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(file + ":11:13: cron[1].colour: unknown field"), std::string::npos) << err;
    EXPECT_NE(err.find(file + ":15:19: cron[2].session_mode: expected \"persistent\" or "
                              "\"new\", not \"sometimes\""),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("agent writer keeps its previous definition"), std::string::npos) << err;
    EXPECT_EQ(JsonString(agent("writer"), "description"), "first");
    EXPECT_EQ(JsonInt(agent("writer"), "max_history_tokens"), 300);
    EXPECT_EQ(serve_->Admin("GET", "/api/cron/jobs/cron_writer_nightly").status, 200);

    // A valid change replaces it: one job changed, one gone.
    env_.Write("agents/writer.yaml", R"(model: openai:test-model
description: third
cron:
  - name: nightly
    schedule: "0 4 * * *"
    message: tidy
)");
    ASSERT_TRUE(serve_->process().Signal(SIGHUP));
    ASSERT_TRUE(reloaded(3)) << serve_->process().Stderr();
    EXPECT_EQ(JsonString(agent("writer"), "description"), "third");
    EXPECT_EQ(JsonInt(agent("writer"), "max_history_tokens"), 8000);
    EXPECT_EQ(JsonString(agent("writer"), "session_mode"), "persistent");
    EXPECT_EQ(serve_->Admin("GET", "/api/cron/jobs/cron_writer_report").status, 404);
    nightly = serve_->Admin("GET", "/api/cron/jobs/cron_writer_nightly");
    EXPECT_NE(nightly.body.find("\"expr\":\"0 4 * * *\""), std::string::npos) << nightly.body;
}

// A cron job whose action starts a workflow, through the daemon: the run exists, says it was
// started by cron (trigger_source, origin metadata with the fire and its depth), and a trigger
// on its events fires at the next depth.
TEST_F(ServeAgentsTest, ACronJobStartsAWorkflowRunThatSaysItCameFromCron) {
    Start(In(300));
    std::string workflow = R"({"name": "weekly", "agents": {"bot": {"model": "openai:test-model"}},
        "steps": [{"name": "s", "agent_name": "bot", "prompt": "Report {{input}}"}]})";
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", workflow).status, 201);
    // Runs of weekly at depth 0 (cron's) fire a trigger; its run is at depth 1.
    auto trigger = serve_->Admin("POST", "/api/triggers",
                                 R"({"workflow_id":"weekly","max_fires":1,
                                     "pattern":{"content_match":{"substring":"of workflow 'weekly' was created"}}})");
    ASSERT_EQ(trigger.status, 201) << trigger.body;
    auto created = serve_->Admin(
        "POST", "/api/cron/jobs",
        R"({"name":"weekly-report","schedule":{"kind":"at","at":")" + In(2) +
            R"("},"action":{"kind":"workflow_run","workflow_id":"weekly","input":"sales"}})");
    ASSERT_EQ(created.status, 201) << created.body;
    std::string job_id(JsonString(created.object(), "job_id"));
    json::object status;
    ASSERT_TRUE(WaitFor(
        [&] {
            status = serve_->Admin("GET", "/api/cron/jobs/" + job_id + "/status").object();
            return JsonString(status, "last_status") == "completed";
        },
        30s))
        << json::serialize(status);
    EXPECT_EQ(JsonInt(status, "fire_count"), 1);
    std::string run_id(JsonString(status, "last_run_id"));
    auto run = serve_->Admin("GET", "/api/runs/" + run_id);
    ASSERT_EQ(run.status, 200) << run.body;
    const auto& detail = run.object().at("run").as_object();
    EXPECT_EQ(JsonString(detail, "workflow"), "weekly") << run.body;
    EXPECT_EQ(JsonString(detail, "status"), "completed") << run.body;
    EXPECT_NE(run.body.find("\"trigger_source\":\"cron\""), std::string::npos) << run.body;
    // The origin, stored with the run: the job, its fire and the depth.
    auto events = env_.Events(run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(JsonString(events.front().data, "input"), "sales");
    EXPECT_EQ(JsonString(events.front().data, "actor"), "cron:" + job_id);
    auto metadata = QueryColumn(
        env_.store_path(), "SELECT metadata FROM run_annotations WHERE run_id = '" + run_id + "'");
    ASSERT_EQ(metadata.size(), 1u);
    auto origin = json::parse(metadata[0]).as_object().at("origin").as_object();
    EXPECT_EQ(JsonString(origin, "kind"), "cron");
    EXPECT_EQ(JsonString(origin, "id"), job_id);
    EXPECT_NE(std::string(JsonString(origin, "fire_id")).find("cron/" + job_id + "/"),
              std::string::npos);
    EXPECT_EQ(JsonInt(origin, "depth", -1), 0);
    // The bus saw its creation at depth 0; the trigger's run is at depth 1.
    auto fires = serve_->Admin(
        "GET",
        "/api/triggers/" + std::string(JsonString(trigger.object(), "trigger_id")) + "/fires");
    ASSERT_EQ(fires.status, 200) << fires.body;
    const auto& list = fires.object().at("fires").as_array();
    ASSERT_EQ(list.size(), 1u) << fires.body;
    EXPECT_EQ(JsonInt(list[0].as_object(), "depth"), 1);
}

// A daemon killed after recording a cron fire and before starting its run (--inject-faults: a
// job named strowger-inject-crash gets SIGKILL there): the next start runs that fire exactly
// once.
TEST_F(ServeAgentsTest, AKillBetweenAFiresRecordAndItsRunStartsItOnceAtTheNextStart) {
    Start(In(300), {"--inject-faults"});
    auto created = serve_->Admin(
        "POST", "/api/cron/jobs",
        R"({"agent_id":"ops","name":"strowger-inject-crash","schedule":{"kind":"at","at":")" +
            In(2) + R"("},"action":{"kind":"agent_turn","message":"tick","session_mode":"new"}})");
    ASSERT_EQ(created.status, 201) << created.body;
    std::string job_id(JsonString(created.object(), "job_id"));
    auto died = serve_->process().Wait(20s);
    EXPECT_EQ(died.status.signal, SIGKILL) << died.status.ToString() << died.err;
    auto fires = QueryColumn(env_.store_path(),
                             "SELECT status FROM cron_fires WHERE job_id = '" + job_id + "'");
    ASSERT_EQ(fires, std::vector<std::string>{"recorded"});
    auto turns = [&] {
        return QueryColumn(env_.store_path(),
                           "SELECT run_id FROM runs WHERE workflow = 'agent:ops'");
    };
    EXPECT_TRUE(turns().empty());

    serve_.reset();
    serve_ = std::make_unique<ServeProcess>(
        env_, std::vector<std::string>{"--agents", (env_.dir() / "agents").string()});
    ASSERT_TRUE(serve_->ok());
    json::object status;
    for (int i = 0; i < 200; ++i) {
        status = serve_->Admin("GET", "/api/cron/jobs/" + job_id + "/status").object();
        if (JsonString(status, "last_status") == "completed") break;
        std::this_thread::sleep_for(100ms);  // polling a daemon's state, not synchronising
    }
    EXPECT_EQ(JsonString(status, "last_status"), "completed") << json::serialize(status);
    EXPECT_EQ(JsonInt(status, "fire_count"), 1);
    EXPECT_EQ(turns().size(), 1u);
    // A third start changes nothing.
    serve_.reset();
    serve_ = std::make_unique<ServeProcess>(
        env_, std::vector<std::string>{"--agents", (env_.dir() / "agents").string()});
    ASSERT_TRUE(serve_->ok());
    status = serve_->Admin("GET", "/api/cron/jobs/" + job_id + "/status").object();
    EXPECT_EQ(JsonInt(status, "fire_count"), 1);
    EXPECT_EQ(turns().size(), 1u);
    EXPECT_EQ(QueryColumn(env_.store_path(),
                          "SELECT status FROM cron_fires WHERE job_id = '" + job_id + "'"),
              std::vector<std::string>{"completed"});
}

}  // namespace
}  // namespace strowger::testing
