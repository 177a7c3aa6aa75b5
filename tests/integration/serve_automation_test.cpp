// Automation (issue 16, part A) through a real `strowger serve`: every trigger, memory, webhook
// and bus route against the daemon's own OpenAPI document; a trigger fired by a memory change
// starting a workflow run; recursion stopping at depth 5; a kill -9 between a fire's record
// and its start (the restart starts it exactly once); signed webhooks (good, bad, replayed,
// duplicate); the memory tools through a real agent run, in the daemon and in `strowger run`;
// and the trigger and memory CLI commands.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <csignal>
#include <set>

#include "automation/webhooks.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "integration/serve_harness.hpp"

namespace strowger::testing {
namespace {

using namespace std::chrono_literals;

// A workflow that answers at once (its input echoed by the scripted model).
std::string EchoWorkflow(CliEnvironment& env, const std::string& name) {
    std::string script = env.Write("scripts/echo.yaml", "default: \"done\"\n");
    return R"({"name": ")" + name + R"(", "agents": {"bot": {"model": "scripted:)" + script +
           R"("}}, "steps": [{"name": "s", "agent_name": "bot", "prompt": "Got {{input}}"}]})";
}

class ServeAutomationTest : public ::testing::Test {
  protected:
    HttpReply Call(const std::string& method, const std::string& target,
                   const std::string& body = "", std::string token = "-",
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
        if (token == "-") token = serve_->admin_token();
        HttpReply reply = serve_->Call(method, target, body, token, std::move(headers));
        json::object record;
        record["method"] = method;
        record["path"] = target.substr(0, target.find('?'));
        record["status"] = reply.status;
        record["content_type"] = reply.Header("content-type");
        record["body"] = reply.body;
        recorded_ += json::serialize(record) + "\n";
        return reply;
    }
    HttpReply Expect(int status, const std::string& method, const std::string& target,
                     const std::string& body = "", const std::string& token = "-",
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
        HttpReply reply = Call(method, target, body, token, std::move(headers));
        EXPECT_EQ(reply.status, status) << method << " " << target << ": " << reply.Describe();
        if (status >= 400) {
            EXPECT_EQ(reply.Header("content-type"), "application/problem+json")
                << method << " " << target;
        }
        return reply;
    }
    std::string Field(const HttpReply& reply, const std::string& name) {
        return std::string(JsonString(reply.object(), name));
    }
    // The runs of `workflow` (any status).
    std::vector<std::string> Runs(const std::string& workflow) {
        auto reply = serve_->Admin("GET", "/api/runs?workflow=" + workflow + "&limit=100");
        std::vector<std::string> ids;
        if (reply.status != 200) return ids;
        for (const auto& run : reply.object().at("runs").as_array()) {
            ids.emplace_back(JsonString(run.as_object(), "run_id"));
        }
        return ids;
    }
    json::array Fires(const std::string& trigger) {
        auto reply = serve_->Admin("GET", "/api/triggers/" + trigger + "/fires");
        EXPECT_EQ(reply.status, 200) << reply.Describe();
        return reply.status == 200 ? reply.object().at("fires").as_array() : json::array();
    }
    std::vector<std::pair<std::string, std::string>> Signed(const std::string& secret,
                                                            const std::string& body,
                                                            const std::string& delivery,
                                                            int64_t skew_seconds = 0) {
        int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
        std::vector<std::pair<std::string, std::string>> headers = {
            {"X-Hub-Signature-256", automation::SignWebhook(secret, body)},
            {"X-Strowger-Timestamp", std::to_string(now + skew_seconds)},
            {"Content-Type", "application/json"}};
        if (!delivery.empty()) headers.emplace_back("X-GitHub-Delivery", delivery);
        return headers;
    }
    void CheckAgainstOpenApi() {
        auto document = Call("GET", "/api/openapi.json");
        ASSERT_EQ(document.status, 200);
        std::string openapi = env_.Write("openapi.json", document.body);
        std::string responses = env_.Write("responses.jsonl", recorded_);
        auto check =
            env_.RunProgram({"python3", SourceDir() + "/tests/integration/validate_openapi.py",
                             openapi, responses, "--only-tags", "triggers,memory,hooks"});
        EXPECT_EQ(check.exit_code(), 0) << check.out << check.err;
    }

    CliEnvironment env_;
    std::unique_ptr<ServeProcess> serve_;
    std::string recorded_;
};

TEST_F(ServeAutomationTest, EveryAutomationRouteAnswersAsTheOpenApiDocumentSays) {
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    Expect(201, "POST", "/api/workflows", EchoWorkflow(env_, "notify"));

    // ---- Triggers ----
    auto created = Expect(201, "POST", "/api/triggers",
                          R"({"agent_id":"ops","pattern":"lifecycle",
                              "prompt_template":"A lifecycle event occurred: {{event}}","max_fires":0})");
    std::string id = Field(created, "trigger_id");
    EXPECT_EQ(Field(created, "agent_id"), "ops");
    auto to_workflow = Expect(
        201, "POST", "/api/triggers",
        R"({"workflow_id":"notify","pattern":{"content_match":{"substring":"never-said"}}})");
    std::string workflow_trigger = Field(to_workflow, "trigger_id");
    Expect(400, "POST", "/api/triggers", R"({"agent_id":"ops","pattern":"everything"})");
    Expect(400, "POST", "/api/triggers", R"({"agent_id":"ops"})");
    Expect(400, "POST", "/api/triggers", R"({"pattern":"all"})");
    Expect(400, "POST", "/api/triggers", R"({"agent_id":"ops","pattern":"all","max_fires":-1})");
    Expect(400, "POST", "/api/triggers", R"({"agent_id":"ops","pattern":"all","colour":1})");
    Expect(400, "POST", "/api/triggers", R"({"workflow_id":"nope","pattern":"all"})");
    Expect(400, "GET", "/api/triggers?access_token=x");
    auto list = Expect(200, "GET", "/api/triggers");
    ASSERT_TRUE(list.json.is_array());
    EXPECT_EQ(list.json.as_array().size(), 2u);
    auto of_ops = Expect(200, "GET", "/api/triggers?agent_id=ops");
    ASSERT_EQ(of_ops.json.as_array().size(), 1u);
    const auto& first = of_ops.json.as_array()[0].as_object();
    EXPECT_EQ(JsonString(first, "id"), id);
    EXPECT_EQ(first.at("pattern"), json::value("lifecycle"));
    EXPECT_EQ(JsonInt(first, "fire_count"), 0);
    EXPECT_TRUE(JsonBool(first, "enabled"));
    auto got = Expect(200, "GET", "/api/triggers/" + workflow_trigger);
    EXPECT_EQ(json::serialize(got.object().at("pattern")),
              R"({"content_match":{"substring":"never-said"}})");
    Expect(404, "GET", "/api/triggers/trg_nope");
    auto disabled = Expect(200, "PUT", "/api/triggers/" + id, R"({"enabled":false})");
    EXPECT_EQ(Field(disabled, "status"), "updated");
    EXPECT_FALSE(JsonBool(disabled.object(), "enabled"));
    Expect(400, "PUT", "/api/triggers/" + id, R"({})");
    Expect(404, "PUT", "/api/triggers/trg_nope", R"({"enabled":true})");
    auto patched = Expect(200, "PATCH", "/api/triggers/" + id,
                          R"({"max_fires":3,"cooldown_secs":0,"prompt_template":"P {{event}}"})");
    EXPECT_EQ(JsonInt(patched.object(), "max_fires"), 3);
    EXPECT_EQ(Field(patched, "prompt_template"), "P {{event}}");
    Expect(400, "PATCH", "/api/triggers/" + id, R"({"pattern":{"agent_spawned":{}}})");
    Expect(200, "GET", "/api/triggers/" + id + "/fires");
    Expect(404, "GET", "/api/triggers/trg_nope/fires");
    auto removed = Expect(200, "DELETE", "/api/triggers/" + id);
    EXPECT_EQ(Field(removed, "status"), "removed");
    Expect(404, "DELETE", "/api/triggers/" + id);

    // ---- Memory ----
    auto set = Expect(200, "PUT", "/api/memory/global/config", R"({"value":{"model":"x"}})");
    EXPECT_EQ(Field(set, "change"), "created");
    EXPECT_EQ(Field(Expect(200, "PUT", "/api/memory/global/config", R"({"value":{"model":"x"}})"),
                    "change"),
              "unchanged");
    Expect(200, "PUT", "/api/memory/agent:coder/notes", R"({"value":"remember"})");
    Expect(400, "PUT", "/api/memory/team/notes", R"({"value":1})");
    Expect(400, "PUT", "/api/memory/global/config", R"({})");
    auto read = Expect(200, "GET", "/api/memory/global/config");
    EXPECT_EQ(json::serialize(read.object().at("value")), R"({"model":"x"})");
    Expect(404, "GET", "/api/memory/global/nothing");
    auto keys = Expect(200, "GET", "/api/memory/agent:coder");
    EXPECT_EQ(keys.object().at("entries").as_array().size(), 1u);
    Expect(200, "GET", "/api/memory/global?prefix=con&limit=10");
    Expect(400, "GET", "/api/memory/global?limit=0");
    Expect(200, "DELETE", "/api/memory/global/config");
    Expect(404, "DELETE", "/api/memory/global/config");

    // ---- Webhooks ----
    auto hook = Expect(201, "POST", "/api/hooks", R"({"name":"gh","workflow":"notify"})");
    std::string secret = Field(hook, "secret");
    EXPECT_EQ(secret.size(), 64u);
    Expect(409, "POST", "/api/hooks", R"({"name":"gh"})");
    Expect(400, "POST", "/api/hooks", R"({"name":"bad name"})");
    Expect(400, "POST", "/api/hooks", R"({"name":"x","workflow":"nope"})");
    Expect(401, "GET", "/api/hooks", "", "");
    auto hooks = Expect(200, "GET", "/api/hooks");
    EXPECT_EQ(hooks.body.find(secret), std::string::npos);  // never shown again
    Expect(201, "POST", "/api/hooks",
           R"({"name":"ping","secret":"0123456789abcdef-ping","require_timestamp":false})");
    std::string body = R"({"issue":7})";
    auto delivered = Expect(202, "POST", "/api/hooks/gh", body, "", Signed(secret, body, "d-1"));
    EXPECT_EQ(Field(delivered, "status"), "started");
    EXPECT_FALSE(Field(delivered, "run_id").empty());
    auto duplicate = Expect(200, "POST", "/api/hooks/gh", body, "", Signed(secret, body, "d-1"));
    EXPECT_EQ(Field(duplicate, "status"), "duplicate");
    EXPECT_EQ(Field(duplicate, "run_id"), Field(delivered, "run_id"));
    EXPECT_EQ(Runs("notify").size(), 1u);
    Expect(401, "POST", "/api/hooks/gh", body, "", Signed("wrong-secret-0123456789", body, "d-2"));
    Expect(401, "POST", "/api/hooks/gh", body, "", Signed(secret, body, "d-3", -600));
    Expect(401, "POST", "/api/hooks/gh", body, "");
    Expect(404, "POST", "/api/hooks/nope", body, "", Signed(secret, body, "d-4"));
    auto event_hook = Expect(202, "POST", "/api/hooks/ping", "zen", "",
                             Signed("0123456789abcdef-ping", "zen", ""));
    EXPECT_EQ(Field(event_hook, "status"), "accepted");
    Expect(200, "DELETE", "/api/hooks/ping");
    Expect(404, "DELETE", "/api/hooks/ping");

    // ---- The bus ----
    auto events = Expect(200, "GET", "/api/automation/events?limit=1000");
    std::set<std::string> types;
    std::string rejected;
    for (const auto& e : events.object().at("events").as_array()) {
        types.insert(std::string(JsonString(e.as_object(), "type")));
        if (JsonString(e.as_object(), "type") == "webhook_rejected" && rejected.empty()) {
            rejected = std::string(JsonString(e.as_object(), "description"));
        }
    }
    for (const char* type :
         {"daemon_started", "memory_update", "webhook_rejected", "webhook", "run_created"}) {
        EXPECT_TRUE(types.contains(type)) << type << " in " << events.body;
    }
    EXPECT_NE(rejected.find("Webhook 'gh' rejected a delivery from 127.0.0.1"), std::string::npos)
        << rejected;
    EXPECT_NE(serve_->process().Stderr().find("rejected: bad signature"), std::string::npos);
    Expect(400, "GET", "/api/automation/events?limit=0");

    CheckAgainstOpenApi();
}

TEST_F(ServeAutomationTest, AMemoryChangeFiresATriggerThatStartsAWorkflowRunAndCountsOnce) {
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", EchoWorkflow(env_, "notify")).status, 201);
    auto created = serve_->Admin("POST", "/api/triggers",
                                 R"({"workflow_id":"notify","max_fires":1,
                                     "pattern":{"memory_key_pattern":{"key_pattern":"alert"}},
                                     "prompt_template":"Look: {{event}}"})");
    ASSERT_EQ(created.status, 201) << created.Describe();
    std::string trigger(JsonString(created.object(), "trigger_id"));
    // Not matching: another key.
    ASSERT_EQ(serve_->Admin("PUT", "/api/memory/global/other", R"({"value":1})").status, 200);
    ASSERT_EQ(serve_->Admin("PUT", "/api/memory/global/alert.disk", R"({"value":"full"})").status,
              200);
    ASSERT_TRUE(WaitFor([&] { return Runs("notify").size() == 1; }, 10s));
    std::string run = Runs("notify")[0];
    auto waited = serve_->Admin("GET", "/api/runs/" + run + "/wait?timeout_ms=10000");
    EXPECT_EQ(JsonString(waited.object(), "status"), "completed") << waited.Describe();
    auto detail = serve_->Admin("GET", "/api/runs/" + run);
    EXPECT_NE(detail.body.find("Look: Memory Created on key 'alert.disk' in namespace global"),
              std::string::npos)
        << detail.body;
    auto fires = Fires(trigger);
    ASSERT_EQ(fires.size(), 1u);
    EXPECT_EQ(JsonString(fires[0].as_object(), "status"), "started");
    EXPECT_EQ(JsonString(fires[0].as_object(), "run_id"), run);
    auto after = serve_->Admin("GET", "/api/triggers/" + trigger);
    EXPECT_EQ(JsonInt(after.object(), "fire_count"), 1);
    EXPECT_FALSE(JsonBool(after.object(), "enabled"));  // max_fires reached
    // Disabled now: a further match fires nothing.
    ASSERT_EQ(serve_->Admin("PUT", "/api/memory/global/alert.cpu", R"({"value":"hot"})").status,
              200);
    // The run's annotation names the trigger.
    auto annotated = serve_->Admin("GET", "/api/runs/" + run);
    EXPECT_NE(annotated.body.find("\"trigger_source\":\"trigger\""), std::string::npos)
        << annotated.body;
    EXPECT_EQ(Runs("notify").size(), 1u);
}

TEST_F(ServeAutomationTest, TriggerFiredRunsStopCausingFiresAtDepthFive) {
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", EchoWorkflow(env_, "loop")).status, 201);
    // Every run of `loop` being created fires the trigger, which creates a run of `loop`.
    auto created = serve_->Admin("POST", "/api/triggers",
                                 R"({"workflow_id":"loop","cooldown_secs":0,
                                     "pattern":{"content_match":{"substring":"of workflow 'loop' was created"}}})");
    ASSERT_EQ(created.status, 201) << created.Describe();
    std::string trigger(JsonString(created.object(), "trigger_id"));
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows/loop/run", R"({"input":"go"})").status, 202);
    // The first run (depth 0) and five fired ones (depths 1..5); the fifth's events fire none.
    ASSERT_TRUE(WaitFor([&] { return Runs("loop").size() >= 6; }, 20s)) << Runs("loop").size();
    ASSERT_TRUE(WaitFor(
        [&] {
            auto reply = serve_->Admin("GET", "/api/automation/events?limit=1000");
            int created_at_five = 0;
            for (const auto& e : reply.object().at("events").as_array()) {
                if (JsonString(e.as_object(), "type") == "run_created" &&
                    JsonInt(e.as_object(), "depth") == 5) {
                    ++created_at_five;
                }
            }
            return created_at_five == 1;
        },
        10s));
    // Nothing more comes: the runs all finish and no seventh appears.
    for (const auto& run : Runs("loop")) {
        serve_->Admin("GET", "/api/runs/" + run + "/wait?timeout_ms=10000");
    }
    EXPECT_EQ(Runs("loop").size(), 6u);
    auto fires = Fires(trigger);
    ASSERT_EQ(fires.size(), 5u);
    std::set<int64_t> depths;
    for (const auto& f : fires) depths.insert(JsonInt(f.as_object(), "depth"));
    EXPECT_EQ(depths, (std::set<int64_t>{1, 2, 3, 4, 5}));
}

TEST_F(ServeAutomationTest, AKillNineBetweenAFiresRecordAndItsStartStartsItExactlyOnceOnRestart) {
    std::string trigger;
    {
        env_.SetEnv("STROWGER_TEST_KILL_AFTER_FIRE_RECORD", "1");
        ServeProcess serve(env_);
        ASSERT_TRUE(serve.ok());
        ASSERT_EQ(serve.Admin("POST", "/api/workflows", EchoWorkflow(env_, "notify")).status, 201);
        auto created = serve.Admin("POST", "/api/triggers",
                                   R"({"workflow_id":"notify","pattern":"memory_update"})");
        ASSERT_EQ(created.status, 201) << created.Describe();
        trigger = std::string(JsonString(created.object(), "trigger_id"));
        // The change is stored and answered; then the fire is recorded and the daemon dies.
        serve.Admin("PUT", "/api/memory/global/k", R"({"value":1})");
        auto ended = serve.process().Wait(10s);
        EXPECT_EQ(ended.status.signal, SIGKILL) << ended.status.ToString() << ended.err;
    }
    env_.SetEnv("STROWGER_TEST_KILL_AFTER_FIRE_RECORD", "0");
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    EXPECT_NE(serve_->process().Stderr().find("completing fire"), std::string::npos)
        << serve_->process().Stderr();
    ASSERT_TRUE(WaitFor([&] { return Runs("notify").size() == 1; }, 10s));
    auto fires = Fires(trigger);
    ASSERT_EQ(fires.size(), 1u);
    EXPECT_EQ(JsonString(fires[0].as_object(), "status"), "started");
    EXPECT_EQ(JsonInt(serve_->Admin("GET", "/api/triggers/" + trigger).object(), "fire_count"), 1);
    // Another restart starts nothing more.
    serve_.reset();
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    auto waited = serve_->Admin("GET", "/api/runs/" + Runs("notify")[0] + "/wait?timeout_ms=10000");
    EXPECT_EQ(JsonString(waited.object(), "status"), "completed");
    EXPECT_EQ(Runs("notify").size(), 1u);
    EXPECT_EQ(JsonInt(serve_->Admin("GET", "/api/triggers/" + trigger).object(), "fire_count"), 1);
}

constexpr char kRememberScript[] = R"(default: "remembered"
rules:
  - when: {prompt_contains: "Remember"}
    times: 1
    tool_calls:
      - {name: memory_set, arguments: {key: color, value: blue}}
  - times: 1
    tool_calls:
      - {name: memory_get, arguments: {key: color}}
)";

std::string RememberWorkflow(CliEnvironment& env) {
    std::string script = env.Write("scripts/remember.yaml", kRememberScript);
    return R"({"name": "remember", "agents": {"keeper": {"model": "scripted:)" + script +
           R"(", "tools": ["memory_set", "memory_get"]}},
  "steps": [{"name": "keep", "agent_name": "keeper", "prompt": "Remember {{input}}"}]})";
}

TEST_F(ServeAutomationTest, AnAgentUsesTheMemoryToolsInTheDaemonAndInStrowgerRun) {
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", RememberWorkflow(env_)).status, 201);
    auto done = serve_->Admin("POST", "/api/workflows/remember/run?wait=true", R"({"input":"x"})");
    ASSERT_EQ(done.status, 200) << done.Describe();
    EXPECT_EQ(JsonString(done.object(), "output"), "remembered");
    std::string run(JsonString(done.object(), "run_id"));
    auto value = serve_->Admin("GET", "/api/memory/global/color");
    ASSERT_EQ(value.status, 200) << value.Describe();
    EXPECT_EQ(value.object().at("value"), json::value("blue"));
    // The ledger shows both calls and what memory_get read.
    auto events = env_.Events(run);
    EXPECT_EQ(CountEvents(events, "tool.call"), 2) << Describe(events);
    bool read_blue = false;
    for (const auto& e : events) {
        if (e.type == "tool.result" && JsonString(e.data, "content") == "\"blue\"")
            read_blue = true;
    }
    EXPECT_TRUE(read_blue) << Describe(events);
    const LedgerEvent* call = FindEvent(events, "tool.call");
    ASSERT_NE(call, nullptr);
    EXPECT_EQ(JsonString(call->data, "safety"), "idempotent_write");
    // The change was a bus event of that run.
    auto bus = serve_->Admin("GET", "/api/automation/events?limit=1000");
    EXPECT_NE(bus.body.find("Memory Created on key 'color' in namespace global"), std::string::npos)
        << bus.body;
    serve_.reset();

    // The same workflow with `strowger run` on a store of its own: the tools use that store.
    std::string file = env_.Write("remember.json", RememberWorkflow(env_));
    std::string store = "sqlite:" + (env_.dir() / "other.db").string();
    auto ran = env_.Run({"run", file, "--input", "y", "--store", store});
    EXPECT_EQ(ran.exit_code(), 0) << ran.out << ran.err;
    auto got = env_.Run({"memory", "get", "color", "--store", store});
    EXPECT_EQ(got.exit_code(), 0) << got.err;
    EXPECT_EQ(got.out, "\"blue\"\n");
}

TEST_F(ServeAutomationTest, TriggerAndMemoryCommandsWorkAgainstTheDaemon) {
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    env_.SetEnv("STROWGER_SERVER", serve_->url());
    env_.SetEnv("STROWGER_TOKEN", serve_->admin_token());
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", EchoWorkflow(env_, "notify")).status, 201);
    auto created =
        env_.Run({"trigger", "create", "ops", R"({"agent_spawned":{"name_pattern":"coder"}})",
                  "--prompt", "New: {{event}}", "--max-fires", "1"});
    ASSERT_EQ(created.exit_code(), 0) << created.err;
    std::string id = created.out.substr(0, created.out.find('\n'));
    EXPECT_EQ(id.substr(0, 4), "trg_");
    auto to_workflow = env_.Run(
        {"trigger", "create", "ops", "lifecycle", "--workflow", "notify", "--cooldown", "60"});
    ASSERT_EQ(to_workflow.exit_code(), 0) << to_workflow.err;
    auto bad = env_.Run({"trigger", "create", "ops", R"({"agent_spawned":{}})"});
    EXPECT_NE(bad.exit_code(), 0);
    EXPECT_NE(bad.err.find("pattern.agent_spawned.name_pattern"), std::string::npos) << bad.err;
    auto list = env_.Run({"trigger", "list", "--agent-id", "ops"});
    ASSERT_EQ(list.exit_code(), 0) << list.err;
    EXPECT_NE(list.out.find(id), std::string::npos) << list.out;
    EXPECT_NE(list.out.find(R"({"agent_spawned":{"name_pattern":"coder"}})"), std::string::npos);
    EXPECT_NE(list.out.find("0/1"), std::string::npos) << list.out;
    auto got = env_.Run({"trigger", "get", id});
    ASSERT_EQ(got.exit_code(), 0);
    EXPECT_NE(got.out.find("\"prompt_template\":\"New: {{event}}\""), std::string::npos) << got.out;
    EXPECT_EQ(env_.Run({"trigger", "disable", id}).out, "disabled " + id + "\n");
    EXPECT_NE(env_.Run({"trigger", "get", id}).out.find("\"enabled\":false"), std::string::npos);
    EXPECT_EQ(env_.Run({"trigger", "enable", id}).out, "enabled " + id + "\n");
    EXPECT_EQ(env_.Run({"trigger", "delete", id}).out, "removed " + id + "\n");
    auto gone = env_.Run({"trigger", "get", id});
    EXPECT_NE(gone.exit_code(), 0);
    EXPECT_NE(gone.err.find("Trigger not found"), std::string::npos) << gone.err;

    EXPECT_EQ(env_.Run({"memory", "set", "greeting", "hello"}).out, "created global greeting\n");
    EXPECT_EQ(env_.Run({"memory", "set", "n", "42", "-n", "agent:coder"}).out,
              "created agent:coder n\n");
    EXPECT_EQ(env_.Run({"memory", "get", "greeting"}).out, "\"hello\"\n");
    EXPECT_EQ(env_.Run({"memory", "list", "-n", "agent:coder"}).out, "n\t42\n");
    auto listed = env_.Run({"memory", "list", "--json"});
    EXPECT_NE(listed.out.find("\"key\":\"greeting\""), std::string::npos) << listed.out;
    EXPECT_EQ(env_.Run({"memory", "delete", "greeting"}).out, "deleted global greeting\n");
    auto missing = env_.Run({"memory", "get", "greeting"});
    EXPECT_NE(missing.exit_code(), 0);
    auto bad_ns = env_.Run({"memory", "set", "k", "1", "-n", "team"});
    EXPECT_NE(bad_ns.exit_code(), 0);
    EXPECT_NE(bad_ns.err.find("namespace"), std::string::npos) << bad_ns.err;
}

// LibreFang's quota warning at 85 %: a run's token budget and a standing agent's step budget,
// each crossing 85 % once, publish one quota_warning each; a trigger on it starts a run.
TEST_F(ServeAutomationTest, ABudgetPast85PercentIsOneQuotaWarningThatTriggersMatch) {
    std::string script = env_.Write("scripts/spend.yaml", R"(default: "small"
rules:
  - when: {step: big}
    reply: "big"
    usage: {input_tokens: 50, output_tokens: 40}
  - when: {step: turn}
    reply: "turned"
    usage: {input_tokens: 60, output_tokens: 30}
  - reply: "small"
    usage: {input_tokens: 1, output_tokens: 1}
)");
    env_.Write("agents/saver.yaml", "model: scripted:" + script + "\nlimits: {max_tokens: 100}\n");
    serve_ = std::make_unique<ServeProcess>(
        env_, std::vector<std::string>{"--agents", (env_.dir() / "agents").string()});
    ASSERT_TRUE(serve_->ok());
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", EchoWorkflow(env_, "notify")).status, 201);
    std::string spender = R"({"name": "spender", "limits": {"max_tokens": 100},
      "agents": {"bot": {"model": "scripted:)" +
                          script + R"("}},
      "steps": [{"name": "big", "agent_name": "bot", "prompt": "a"},
                {"name": "more", "agent_name": "bot", "prompt": "b"},
                {"name": "last", "agent_name": "bot", "prompt": "c"}]})";
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", spender).status, 201);
    auto trigger = serve_->Admin("POST", "/api/triggers",
                                 R"({"workflow_id":"notify","cooldown_secs":0,
                                     "pattern":{"system_keyword":{"keyword":"QUOTA WARNING"}},
                                     "prompt_template":"Warned: {{event}}"})");
    ASSERT_EQ(trigger.status, 201) << trigger.Describe();
    std::string trigger_id(JsonString(trigger.object(), "trigger_id"));

    // 90 tokens, then 2 and 2: 94 of 100, so one warning and no budget.exceeded.
    auto done = serve_->Admin("POST", "/api/workflows/spender/run?wait=true", R"({"input":"x"})");
    ASSERT_EQ(done.status, 200) << done.Describe();
    EXPECT_EQ(JsonString(done.object(), "status"), "completed");
    std::string run(JsonString(done.object(), "run_id"));
    ASSERT_TRUE(WaitFor([&] { return Runs("notify").size() == 1; }, 10s));
    std::string warned = Runs("notify")[0];
    serve_->Admin("GET", "/api/runs/" + warned + "/wait?timeout_ms=10000");
    auto detail = serve_->Admin("GET", "/api/runs/" + warned);
    EXPECT_NE(detail.body.find("Warned: Quota warning: run " + run +
                               ", tokens at 90.0% (90 of 100, scope run, warned at 85%)"),
              std::string::npos)
        << detail.body;

    // A standing agent's turn: its agent's step budget (90 of 100).
    auto turn = serve_->Admin("POST", "/api/agents/saver/message?wait=true", R"({"message":"go"})");
    ASSERT_EQ(turn.status, 200) << turn.Describe();
    ASSERT_TRUE(WaitFor([&] { return Runs("notify").size() == 2; }, 10s));
    auto bus = serve_->Admin("GET", "/api/automation/events?limit=1000");
    std::vector<std::string> warnings;
    for (const auto& e : bus.object().at("events").as_array()) {
        if (JsonString(e.as_object(), "type") != "quota_warning") continue;
        EXPECT_EQ(JsonString(e.as_object(), "kind"), "system");
        warnings.emplace_back(JsonString(e.as_object(), "description"));
    }
    ASSERT_EQ(warnings.size(), 2u) << bus.body;
    EXPECT_EQ(warnings[1],
              "Quota warning: agent 'saver', tokens at 90.0% (90 of 100, scope step, warned at "
              "85%)");
    EXPECT_EQ(Fires(trigger_id).size(), 2u);
    // No budget was exceeded: no quota_exceeded.
    EXPECT_EQ(bus.body.find("quota_exceeded"), std::string::npos);
}

// LibreFang's quota: a standing agent's hourly token quota (max_tokens_per_hour) spans its
// turns. Three turns of 30 tokens reach 90 % of 100: one quota_warning (scope agent_hour); a
// fourth turn (the hour's use still under the quota before it) takes it to 120 % without a
// second warning; a fifth is refused by the quota (quota_exceeded).
TEST_F(ServeAutomationTest, AnAgentsHourlyQuotaWarnsOnceAt85PercentAcrossItsTurns) {
    std::string script = env_.Write("scripts/turns.yaml", R"(rules:
  - reply: "done"
    usage: {input_tokens: 20, output_tokens: 10}
)");
    env_.Write("agents/hourly.yaml",
               "model: scripted:" + script + "\nlimits: {max_tokens_per_hour: 100}\n");
    serve_ = std::make_unique<ServeProcess>(
        env_, std::vector<std::string>{"--agents", (env_.dir() / "agents").string()});
    ASSERT_TRUE(serve_->ok());
    auto warnings = [&] {
        std::vector<std::string> found;
        auto bus = serve_->Admin("GET", "/api/automation/events?limit=1000");
        for (const auto& e : bus.object().at("events").as_array()) {
            std::string type(JsonString(e.as_object(), "type"));
            if (type == "quota_warning" || type == "quota_exceeded") {
                found.push_back(type + ": " +
                                std::string(JsonString(e.as_object(), "description")));
            }
        }
        return found;
    };
    for (int turn = 1; turn <= 4; ++turn) {
        auto sent =
            serve_->Admin("POST", "/api/agents/hourly/message?wait=true", R"({"message":"go"})");
        ASSERT_EQ(sent.status, 200) << turn << ": " << sent.Describe();
        EXPECT_EQ(JsonString(sent.object(), "status"), "completed") << turn << ": " << sent.body;
        if (turn == 2) {
            EXPECT_TRUE(warnings().empty());
        }
    }
    std::vector<std::string> expected = {
        "quota_warning: Quota warning: agent 'hourly', tokens at 90.0% (90 of 100 in the last "
        "hour, scope agent_hour, warned at 85%)"};
    EXPECT_EQ(warnings(), expected);
    auto refused =
        serve_->Admin("POST", "/api/agents/hourly/message?wait=true", R"({"message":"go"})");
    EXPECT_EQ(refused.status, 422) << refused.Describe();
    EXPECT_NE(refused.body.find("budget exceeded: tokens_per_hour 120 >= 100 (agent hourly, last "
                                "hour)"),
              std::string::npos)
        << refused.body;
    ASSERT_TRUE(WaitFor([&] { return warnings().size() == 2; }, 10s));
    EXPECT_TRUE(
        warnings()[1].starts_with("quota_exceeded: Quota warning: agent 'hourly', "
                                  "tokens_per_hour at 100.0% (120 of 100"))
        << warnings()[1];
}

}  // namespace
}  // namespace strowger::testing
