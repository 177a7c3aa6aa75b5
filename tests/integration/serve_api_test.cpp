// `strowger serve` through HTTP: every route's success and error answers, each recorded and
// validated against the daemon's own OpenAPI document (validate_openapi.py, with Debian's
// python3-jsonschema), and authentication on every route (no token, a too-low role, a revoked
// token, a token in the query string).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fstream>
#include <set>

#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "integration/serve_harness.hpp"
#include "testing/mock_model_server.hpp"

namespace strowger::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kHello[] = R"({"name": "hello", "description": "says hello",
  "agents": {"bot": {"model": "openai:test-model"}},
  "steps": [{"name": "greet", "agent_name": "bot", "prompt": "Hello {{input}}"},
            {"name": "polish", "agent_name": "bot", "prompt": "Polish {{input}}"}]})";
constexpr char kSlow[] = R"({"name": "slow",
  "agents": {"bot": {"model": "openai:test-model"}},
  "steps": [{"name": "slow_step", "agent_name": "bot", "prompt": "Slowly {{input}}"},
            {"name": "after", "agent_name": "bot", "prompt": "After {{input}}"}]})";
constexpr char kFailing[] = R"({"name": "failing",
  "agents": {"bot": {"model": "openai:test-model"}},
  "steps": [{"name": "boom", "agent_name": "bot", "prompt": "Boom {{input}}"}]})";
constexpr char kInvalid[] = R"({"name": "broken",
  "steps": [{"name": "s", "agent_name": "nobody", "prompt": "x"}]})";
constexpr char kProviders[] = "providers:\n  openai: {max_retries: 0}\n";

class ServeApiTest : public ::testing::Test {
  protected:
    void SetUp() override {
        MockModelServer::Options options;
        auto mock = MockModelServer::Start(options);
        ASSERT_TRUE(mock.has_value()) << mock.error().message();
        mock_ = std::move(*mock);
        MockRule slow;
        slow.node = "slow_step";
        slow.behavior.latency_ms = 1500;
        mock_->AddRule(slow);
        slow.node = "after";
        mock_->AddRule(slow);
        MockRule boom;
        boom.node = "boom";
        boom.behavior.status = 400;
        boom.behavior.error_message = "the model refuses";
        mock_->AddRule(boom);
        env_.SetEnv("OPENAI_BASE_URL", mock_->base_url());
        env_.SetEnv("OPENAI_API_KEY", "x");
        env_.SetEnv("STROWGER_PROVIDERS", env_.Write("providers.yaml", kProviders));
        std::string script = env_.Write("scripts/approve.yaml", R"(default: "looked"
rules:
  - when: {prompt_contains: "Look "}
    tool_calls:
      - {name: read_file, arguments: {path: "notes.txt"}}
)");
        approval_ = R"({"name": "approval",
  "agents": {"reader": {"model": "scripted:)" +
                    script + R"(", "tools": ["read_file"], "require_approval": ["read_file"]}},
  "steps": [{"name": "look", "agent_name": "reader", "prompt": "Look {{input}}"}]})";
    }

    // A request, recorded for the OpenAPI check.
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
    // Expects `status`; the reply.
    HttpReply Expect(int status, const std::string& method, const std::string& target,
                     const std::string& body = "", const std::string& token = "-",
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
        HttpReply reply = Call(method, target, body, token, std::move(headers));
        EXPECT_EQ(reply.status, status) << method << " " << target << ": " << reply.Describe();
        if (status >= 400) {
            EXPECT_EQ(reply.Header("content-type"), "application/problem+json")
                << method << " " << target;
            EXPECT_EQ(JsonInt(reply.object(), "status"), status) << reply.body;
        }
        return reply;
    }
    std::string Field(const HttpReply& reply, const std::string& name) {
        return std::string(JsonString(reply.object(), name));
    }
    // Waits until the run ends or stops; its status.
    std::string WaitStatus(const std::string& run_id) {
        auto reply = Expect(200, "GET", "/api/runs/" + run_id + "/wait?timeout_ms=20000");
        return Field(reply, "status");
    }

    CliEnvironment env_;
    std::unique_ptr<MockModelServer> mock_;
    std::unique_ptr<ServeProcess> serve_;
    std::string approval_;
    std::string recorded_;
};

TEST_F(ServeApiTest, EveryRouteAnswersAsTheOpenApiDocumentSays) {
    env_.Write("agents/bot.toml", "name = \"bot\"\nmodel = \"openai:test-model\"\n");
    serve_ = std::make_unique<ServeProcess>(
        env_, std::vector<std::string>{"--agents", (env_.dir() / "agents").string()});
    ASSERT_TRUE(serve_->ok());
    ASSERT_EQ(serve_->admin_token().substr(0, 4), "stg_");

    // ---- Health, metrics, the document ----
    Expect(200, "GET", "/healthz", "", "");
    Expect(400, "GET", "/healthz?token=abc", "", "");
    Expect(200, "GET", "/readyz", "", "");
    Expect(400, "GET", "/readyz?access_token=abc", "", "");
    auto metrics = Expect(200, "GET", "/metrics");
    EXPECT_NE(metrics.body.find("strowger_up 1"), std::string::npos);
    Expect(401, "GET", "/metrics", "", "");
    Expect(200, "GET", "/api/openapi.json");
    Expect(401, "GET", "/api/openapi.json", "", "");

    // ---- Tokens ----
    auto viewer = Expect(201, "POST", "/api/tokens", R"({"name":"watcher","role":"viewer"})");
    std::string viewer_token = Field(viewer, "token");
    Expect(409, "POST", "/api/tokens", R"({"name":"watcher","role":"viewer"})");
    Expect(400, "POST", "/api/tokens", R"({"name":"x","role":"king"})");
    Expect(400, "POST", "/api/tokens", R"({"name":"has space","role":"viewer"})");
    Expect(200, "GET", "/api/tokens");
    Expect(403, "GET", "/api/tokens", "", viewer_token);
    Expect(201, "POST", "/api/tokens", R"({"name":"temp","role":"operator"})");
    Expect(200, "DELETE", "/api/tokens/temp");
    Expect(404, "DELETE", "/api/tokens/nobody");

    // ---- Workflows ----
    auto created = Expect(201, "POST", "/api/workflows", kHello);
    std::string hello = Field(created, "workflow_id");
    EXPECT_EQ(hello.substr(0, 3), "wf_");
    auto invalid = Expect(422, "POST", "/api/workflows", kInvalid);
    ASSERT_TRUE(invalid.object().contains("errors")) << invalid.body;
    const auto& error = invalid.object().at("errors").as_array().at(0).as_object();
    EXPECT_EQ(JsonString(error, "field"), "steps[0].agent_name");
    EXPECT_GT(JsonInt(error, "line"), 0);
    Expect(409, "POST", "/api/workflows", kHello);
    Expect(400, "POST", "/api/workflows?api_key=x", kHello);
    std::string slow = Field(Expect(201, "POST", "/api/workflows", kSlow), "workflow_id");
    Expect(201, "POST", "/api/workflows", kFailing);
    Expect(201, "POST", "/api/workflows", approval_);
    Expect(200, "GET", "/api/workflows");
    Expect(401, "GET", "/api/workflows", "", "");
    auto detail = Expect(200, "GET", "/api/workflows/" + hello);
    EXPECT_EQ(Field(detail, "name"), "hello");
    Expect(200, "GET", "/api/workflows/hello");  // by name
    Expect(404, "GET", "/api/workflows/nope");
    std::string hello_v2 = kHello;
    hello_v2.replace(hello_v2.find("Hello {{input}}"), 15, "Hi {{input}}");
    auto updated = Expect(200, "PUT", "/api/workflows/" + hello, hello_v2);
    EXPECT_EQ(JsonInt(updated.object(), "version"), 2);
    EXPECT_TRUE(JsonBool(updated.object(), "changed"));
    auto same = Expect(200, "PUT", "/api/workflows/" + hello, hello_v2);
    EXPECT_FALSE(JsonBool(same.object(), "changed"));
    Expect(422, "PUT", "/api/workflows/" + hello, kInvalid);
    Expect(404, "PUT", "/api/workflows/nope", kHello);
    auto dry = Expect(200, "POST", "/api/workflows/" + hello + "/dry-run", R"({"input":"x"})");
    EXPECT_NE(Field(dry, "text").find("Hi x"), std::string::npos) << dry.body;
    Expect(404, "POST", "/api/workflows/nope/dry-run", "{}");
    Expect(400, "POST", "/api/workflows/" + hello + "/dry-run", "[1]");

    // LibreFang's run: 202 {run_id}; wait=true: 200 with the output, or 422 with the failure.
    auto started = Expect(202, "POST", "/api/workflows/" + hello + "/run", R"({"input":"bob"})");
    EXPECT_FALSE(Field(started, "run_id").empty());
    auto waited =
        Expect(200, "POST", "/api/workflows/" + hello + "/run?wait=true", R"({"input":"ann"})");
    EXPECT_EQ(Field(waited, "status"), "completed");
    EXPECT_EQ(Field(waited, "output").substr(0, 6), "echo: ");
    EXPECT_EQ(waited.object().at("step_results").as_array().size(), 2u);
    std::string hello_run = Field(waited, "run_id");
    auto failed = Expect(422, "POST", "/api/workflows/failing/run?wait=true", R"({"input":"x"})");
    EXPECT_EQ(Field(failed, "run_status"), "failed");
    std::string failed_run = Field(failed, "run_id");
    auto not_yet = Expect(202, "POST", "/api/workflows/" + slow + "/run?wait=true&timeout_ms=50",
                          R"({"input":"s"})");
    EXPECT_EQ(Field(not_yet, "status"), "running");
    Expect(404, "POST", "/api/workflows/nope/run", "{}");
    Expect(200, "GET", "/api/workflows/" + hello + "/runs");
    Expect(404, "GET", "/api/workflows/nope/runs");
    auto record = Expect(200, "GET", "/api/workflows/runs/" + hello_run);
    EXPECT_EQ(Field(record, "status"), "completed");
    Expect(404, "GET", "/api/workflows/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ");

    // LibreFang's run controls on a slow run.
    std::string lf_run = Field(
        Expect(202, "POST", "/api/workflows/" + slow + "/run", R"({"input":"lf"})"), "run_id");
    Expect(202, "POST", "/api/workflows/runs/" + lf_run + "/pause", R"({"reason":"lunch"})");
    EXPECT_EQ(WaitStatus(lf_run), "paused");
    Expect(202, "POST", "/api/workflows/runs/" + lf_run + "/resume", "{}");
    Expect(202, "POST", "/api/workflows/runs/" + lf_run + "/cancel", "{}");
    EXPECT_EQ(WaitStatus(lf_run), "cancelled");
    Expect(409, "POST", "/api/workflows/runs/" + lf_run + "/pause", "{}");
    Expect(409, "POST", "/api/workflows/runs/" + lf_run + "/cancel", "{}");
    Expect(409, "POST", "/api/workflows/runs/" + lf_run + "/resume", "{}");
    Expect(202, "POST", "/api/workflows/runs/" + hello_run + "/rerun", "{}");
    Expect(404, "POST", "/api/workflows/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/rerun", "{}");

    std::string doomed = Field(Expect(201, "POST", "/api/workflows",
                                      R"({"name":"doomed","agents":{"b":{"model":"openai:m"}},
                                          "steps":[{"name":"s","agent_name":"b","prompt":"x"}]})"),
                               "workflow_id");
    auto removed = Expect(200, "DELETE", "/api/workflows/" + doomed);
    EXPECT_EQ(Field(removed, "status"), "removed");
    Expect(404, "DELETE", "/api/workflows/" + doomed);

    // ---- Runs ----
    std::string start = R"({"workflow":"hello","input":{"n":1},"idempotency_key":"k-1",
                            "trigger_source":"ci","metadata":{"tenant":"t1"}})";
    auto first = Expect(202, "POST", "/api/runs", start);
    std::string run = Field(first, "run_id");
    EXPECT_EQ(JsonInt(first.object(), "workflow_version"), 2);
    auto again = Expect(200, "POST", "/api/runs", start);
    EXPECT_EQ(Field(again, "run_id"), run);
    EXPECT_TRUE(JsonBool(again.object(), "existing"));
    auto header_again = Expect(200, "POST", "/api/runs", R"({"workflow":"hello","input":{"n":1}})",
                               "-", {{"Idempotency-Key", "k-1"}});
    EXPECT_EQ(Field(header_again, "run_id"), run);
    Expect(409, "POST", "/api/runs",
           R"({"workflow":"hello","input":"other","idempotency_key":"k-1"})");
    Expect(400, "POST", "/api/runs", R"({"input":"no workflow"})");
    Expect(404, "POST", "/api/runs", R"({"workflow":"nope"})");
    Expect(404, "POST", "/api/runs", R"({"workflow":"hello","version":9})");
    Expect(202, "POST", "/api/runs", R"({"workflow":"hello","version":1,"input":"v1"})");
    EXPECT_EQ(WaitStatus(run), "completed");
    auto listed = Expect(200, "GET", "/api/runs?workflow=hello&status=completed&limit=2");
    EXPECT_EQ(listed.object().at("runs").as_array().size(), 2u);
    EXPECT_TRUE(listed.object().at("next_cursor").is_string());
    auto by_source = Expect(200, "GET", "/api/runs?trigger_source=ci");
    ASSERT_EQ(by_source.object().at("runs").as_array().size(), 1u);
    Expect(200, "GET", "/api/runs?since=2000-01-01T00:00:00Z&cursor=" + run);
    Expect(400, "GET", "/api/runs?status=sleeping");
    Expect(400, "GET", "/api/runs?limit=0");
    auto status = Expect(200, "GET", "/api/runs/" + run);
    const auto& run_object = status.object().at("run").as_object();
    EXPECT_EQ(JsonString(run_object, "trigger_source"), "ci");
    EXPECT_EQ(JsonString(run_object, "input"), R"({"n":1})");
    EXPECT_EQ(status.object().at("events").as_array().size(),
              static_cast<size_t>(JsonInt(run_object, "events")));
    Expect(404, "GET", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ");
    Expect(200, "GET", "/api/runs/" + run + "/wait");
    Expect(404, "GET", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/wait");
    Expect(400, "GET", "/api/runs/" + run + "/wait?timeout_ms=x");
    auto events = Expect(200, "GET", "/api/runs/" + run + "/events?type=node.&after=2&limit=3");
    EXPECT_EQ(events.object().at("events").as_array().size(), 3u);
    Expect(400, "GET", "/api/runs/" + run + "/events?after=-1");
    Expect(404, "GET", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/events");
    auto all = Expect(200, "GET", "/api/events?type=run.completed&limit=5");
    EXPECT_FALSE(all.object().at("events").as_array().empty());
    Expect(400, "GET", "/api/events?limit=0");

    // Control of a slow run: pause (applies at the next step boundary), resume, cancel.
    std::string slow_run =
        Field(Expect(202, "POST", "/api/runs", R"({"workflow":"slow","input":"p"})"), "run_id");
    Expect(202, "GET", "/api/runs/" + slow_run + "/wait?timeout_ms=10");
    Expect(202, "POST", "/api/runs/" + slow_run + "/pause", R"({"reason":"checking"})");
    EXPECT_EQ(WaitStatus(slow_run), "paused");
    Expect(202, "POST", "/api/runs/" + slow_run + "/resume", R"({"reason":"checked"})");
    Expect(409, "POST", "/api/runs/" + slow_run + "/resume", "{}");  // executing already
    Expect(202, "POST", "/api/runs/" + slow_run + "/cancel", R"({"reason":"enough"})");
    EXPECT_EQ(WaitStatus(slow_run), "cancelled");
    Expect(409, "POST", "/api/runs/" + slow_run + "/pause", "{}");
    Expect(409, "POST", "/api/runs/" + slow_run + "/cancel", "{}");
    Expect(404, "POST", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/cancel", "{}");

    // Retry and rerun.
    Expect(202, "POST", "/api/runs/" + failed_run + "/retry", "{}");
    EXPECT_EQ(WaitStatus(failed_run), "failed");               // the model still refuses
    Expect(409, "POST", "/api/runs/" + run + "/retry", "{}");  // completed: name a step
    Expect(202, "POST", "/api/runs/" + run + "/nodes/polish/retry", "{}");
    EXPECT_EQ(WaitStatus(run), "completed");
    Expect(404, "POST", "/api/runs/" + run + "/nodes/nope/retry", "{}");
    auto rerun = Expect(202, "POST", "/api/runs/" + run + "/rerun", "{}");
    EXPECT_EQ(Field(rerun, "rerun_of"), run);
    EXPECT_EQ(WaitStatus(Field(rerun, "run_id")), "completed");
    Expect(404, "POST", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/rerun", "{}");

    // Human tasks.
    std::string waiting = Field(
        Expect(202, "POST", "/api/runs", R"({"workflow":"approval","input":"here"})"), "run_id");
    EXPECT_EQ(WaitStatus(waiting), "waiting");
    auto tasks = Expect(200, "GET", "/api/tasks?assignee=someone");
    ASSERT_EQ(tasks.object().at("tasks").as_array().size(), 1u) << tasks.body;
    const auto& task = tasks.object().at("tasks").as_array()[0].as_object();
    std::string task_id(JsonString(task, "task_id"));
    EXPECT_EQ(JsonString(task, "tool"), "read_file");
    Expect(404, "GET", "/api/tasks?run_id=01ZZZZZZZZZZZZZZZZZZZZZZZZ");
    // A second waiting run: one run per page, both found by following the cursor.
    std::string waiting2 = Field(
        Expect(202, "POST", "/api/runs", R"({"workflow":"approval","input":"there"})"), "run_id");
    EXPECT_EQ(WaitStatus(waiting2), "waiting");
    std::set<std::string> paged;
    std::string cursor;
    for (int page = 0; page < 3; ++page) {
        auto reply =
            Expect(200, "GET", "/api/tasks?limit=1" + (cursor.empty() ? "" : "&cursor=" + cursor));
        for (const auto& t : reply.object().at("tasks").as_array()) {
            paged.insert(std::string(JsonString(t.as_object(), "run_id")));
        }
        cursor = Field(reply, "next_cursor");
        if (cursor.empty()) break;
    }
    EXPECT_EQ(paged, (std::set<std::string>{waiting, waiting2}));
    EXPECT_TRUE(cursor.empty());
    Expect(400, "GET", "/api/tasks?limit=0");
    Expect(202, "POST", "/api/runs/" + waiting2 + "/cancel", "{}");
    EXPECT_EQ(WaitStatus(waiting2), "cancelled");
    std::string encoded_task = task_id;  // "look/1/1": one path segment, its '/' escaped
    for (size_t at = 0; (at = encoded_task.find('/', at)) != std::string::npos;) {
        encoded_task.replace(at, 1, "%2F");
    }
    std::string decision_path = "/api/runs/" + waiting + "/tasks/" + encoded_task + "/decision";
    Expect(400, "POST", decision_path, R"({"action":"maybe"})");
    std::string approver = serve_->MakeToken("alice", "approver");
    std::string op = serve_->MakeToken("bob", "operator");
    Expect(403, "POST", decision_path, R"({"action":"approve"})", op);
    auto decided =
        Expect(200, "POST", decision_path,
               R"({"action":"approve","comment":"fine","idempotency_key":"d-1"})", approver);
    EXPECT_EQ(Field(decided, "actor"), "alice");
    auto replay =
        Expect(200, "POST", decision_path,
               R"({"action":"approve","comment":"fine","idempotency_key":"d-1"})", approver);
    EXPECT_EQ(replay.body, decided.body);
    Expect(409, "POST", decision_path, R"({"action":"reject","idempotency_key":"d-1"})", approver);
    Expect(409, "POST", decision_path, R"({"action":"approve"})", approver);
    EXPECT_EQ(WaitStatus(waiting), "completed");
    // The decision's actor is the token's name, in the ledger.
    bool found = false;
    for (const auto& event : env_.Events(waiting)) {
        if (event.type == "human_task.decided") {
            EXPECT_EQ(JsonString(event.data, "actor"), "alice");
            found = true;
        }
    }
    EXPECT_TRUE(found);

    // ---- Retention ----
    Expect(200, "GET", "/api/retention");
    Expect(401, "GET", "/api/retention", "", "");
    auto policy = Expect(200, "PUT", "/api/retention/hello", R"({"keep_count":100})");
    EXPECT_EQ(JsonInt(policy.object(), "keep_count"), 100);
    Expect(200, "PUT", "/api/retention/*", R"({"keep_days":30})");
    Expect(400, "PUT", "/api/retention/hello", R"({})");
    Expect(400, "PUT", "/api/retention/hello", R"({"keep_days":-1})");
    Expect(200, "DELETE", "/api/retention/hello");
    auto prune = Expect(200, "POST", "/api/runs/prune", R"({"keep":1000,"dry_run":true})");
    EXPECT_EQ(JsonInt(prune.object(), "deleted"), 0);
    Expect(400, "POST", "/api/runs/prune", R"({})");
    Expect(400, "POST", "/api/runs/prune", R"({"keep":-1})");
    Expect(404, "DELETE", "/api/retention/hello");

    // ---- Standing agents and cron jobs ----
    Expect(200, "GET", "/api/agents");
    Expect(401, "GET", "/api/agents", "", "");
    Expect(202, "POST", "/api/agents/bot/message", R"({"message":"hi"})");
    Expect(200, "POST", "/api/agents/bot/message?wait=true", R"({"message":"hi again"})");
    Expect(404, "POST", "/api/agents/nobody/message", R"({"message":"hi"})");
    Expect(400, "POST", "/api/agents/bot/message", R"({"message":""})");
    Expect(200, "GET", "/api/agents/bot/sessions");
    Expect(404, "GET", "/api/agents/nobody/sessions");
    auto bot_sessions = Expect(200, "GET", "/api/agents/bot/sessions");
    ASSERT_FALSE(bot_sessions.json.as_array().empty());
    std::string bot_session(JsonString(bot_sessions.json.as_array()[0].as_object(), "session_id"));
    Expect(200, "DELETE", "/api/agents/bot/sessions/" + bot_session);
    auto reset = Expect(200, "DELETE", "/api/agents/bot/sessions?channel=api");
    EXPECT_EQ(Field(reset, "status"), "reset");
    Expect(404, "DELETE", "/api/agents/nobody/sessions");
    Expect(404, "DELETE", "/api/agents/bot/sessions/ses_nothing");
    Expect(403, "DELETE", "/api/agents/bot/sessions", "", viewer_token);
    auto job = Expect(201, "POST", "/api/cron/jobs",
                      R"({"agent_id":"bot","name":"brief","schedule":{"kind":"cron",)"
                      R"("expr":"0 8 * * *","tz":"Europe/Berlin"},)"
                      R"("action":{"kind":"agent_turn","message":"brief me"}})");
    std::string job_id = Field(job, "job_id");
    Expect(400, "POST", "/api/cron/jobs",
           R"({"agent_id":"bot","name":"x","schedule":"0 25 * * *",)"
           R"("action":{"kind":"agent_turn","message":"m"}})");
    Expect(404, "POST", "/api/cron/jobs",
           R"({"agent_id":"nobody","name":"x","schedule":"@daily",)"
           R"("action":{"kind":"agent_turn","message":"m"}})");
    Expect(200, "GET", "/api/cron/jobs");
    Expect(401, "GET", "/api/cron/jobs", "", "");
    Expect(200, "GET", "/api/cron/jobs/" + job_id);
    Expect(404, "GET", "/api/cron/jobs/cron_nothing");
    Expect(200, "PUT", "/api/cron/jobs/" + job_id, R"({"schedule":"every 2h","misfire":"all"})");
    Expect(400, "PUT", "/api/cron/jobs/" + job_id, R"({"overlap":"sometimes"})");
    Expect(404, "PUT", "/api/cron/jobs/cron_nothing", R"({"name":"x"})");
    Expect(200, "PUT", "/api/cron/jobs/" + job_id + "/enable", R"({"enabled":false})");
    Expect(400, "PUT", "/api/cron/jobs/" + job_id + "/enable", R"({"enabled":"no"})");
    Expect(404, "PUT", "/api/cron/jobs/cron_nothing/enable", R"({"enabled":true})");
    Expect(200, "GET", "/api/cron/jobs/" + job_id + "/status");
    Expect(404, "GET", "/api/cron/jobs/cron_nothing/status");
    Expect(200, "DELETE", "/api/cron/jobs/" + job_id);
    Expect(404, "DELETE", "/api/cron/jobs/" + job_id);

    // ---- Routing errors ----
    Expect(404, "GET", "/api/nothing");
    Expect(405, "PATCH", "/api/runs", "{}");

    // ---- Audit ----
    auto audited =
        Expect(200, "POST", "/api/audit/verify", R"({"run_ids":[")" + hello_run + R"("]})");
    EXPECT_TRUE(JsonBool(audited.object(), "ok")) << audited.body;
    ASSERT_EQ(audited.object().at("runs").as_array().size(), 1u);
    EXPECT_EQ(JsonString(audited.object().at("runs").as_array()[0].as_object(), "result"), "ok");
    auto page = Expect(200, "POST", "/api/audit/verify", R"({"all":true,"limit":1})");
    EXPECT_EQ(page.object().at("runs").as_array().size(), 1u);
    EXPECT_FALSE(Field(page, "next_cursor").empty());
    auto unknown =
        Expect(200, "POST", "/api/audit/verify", R"({"run_ids":["01ZZZZZZZZZZZZZZZZZZZZZZZZ"]})");
    EXPECT_FALSE(JsonBool(unknown.object(), "ok"));
    Expect(400, "POST", "/api/audit/verify", R"({})");
    Expect(400, "POST", "/api/audit/verify", R"({"all":true,"run_ids":["x"]})");
    Expect(400, "POST", "/api/audit/verify", R"({"run_ids":[1]})");
    Expect(400, "POST", "/api/audit/verify", R"({"all":true,"limit":0})");
    Expect(400, "POST", "/api/audit/verify", R"({"all":true,"anchors":"strowger-anchor x"})");
    auto anchors =
        Expect(200, "POST", "/api/audit/anchor", R"({"run_ids":[")" + hello_run + R"("]})");
    ASSERT_EQ(anchors.object().at("anchors").as_array().size(), 2u) << anchors.body;
    std::string anchor_text;
    for (const auto& a : anchors.object().at("anchors").as_array()) {
        anchor_text += std::string(a.as_string()) + "\n";
    }
    json::object with_anchors;
    with_anchors["all"] = true;
    with_anchors["anchors"] = anchor_text;
    auto anchored = Expect(200, "POST", "/api/audit/verify", json::serialize(with_anchors));
    EXPECT_TRUE(JsonBool(anchored.object(), "ok")) << anchored.body;
    Expect(400, "POST", "/api/audit/anchor", R"({"run_ids":"x"})");
    auto pem = Expect(200, "GET", "/api/audit/pubkey");
    EXPECT_EQ(pem.body.substr(0, 26), "-----BEGIN PUBLIC KEY-----");
    Expect(401, "GET", "/api/audit/pubkey", "", "");
    auto exported = Expect(200, "GET", "/api/runs/" + hello_run + "/export");
    EXPECT_EQ(exported.Header("content-type"), "application/x-ndjson");
    EXPECT_NE(exported.body.find("\"type\":\"run.created\""), std::string::npos);
    Expect(404, "GET", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/export");
    auto definition = Expect(200, "GET", "/api/runs/" + hello_run + "/definition");
    EXPECT_EQ(Field(definition, "name"), "hello");
    Expect(404, "GET", "/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/definition");

    // ---- The check ----
    auto document = Call("GET", "/api/openapi.json");
    ASSERT_EQ(document.status, 200);
    std::string openapi = env_.Write("openapi.json", document.body);
    std::string responses = env_.Write("responses.jsonl", recorded_);
    // Automation's routes are covered by serve_automation_test.
    auto check = env_.RunProgram({"python3", SourceDir() + "/tests/integration/validate_openapi.py",
                                  openapi, responses, "--skip-tags", "triggers,memory,hooks"});
    EXPECT_EQ(check.exit_code(), 0) << check.out << check.err;
}

// Every route that needs a token refuses a request without one (401), with a revoked one
// (401), with one in the query string (400), and — for routes above viewer — with a viewer's
// (403); the same request with an admin token gets past authentication.
TEST_F(ServeApiTest, EveryRouteChecksItsTokenAndRole) {
    serve_ = std::make_unique<ServeProcess>(env_);
    ASSERT_TRUE(serve_->ok());
    std::string viewer = serve_->MakeToken("viewer", "viewer");
    std::string revoked = serve_->MakeToken("gone", "admin");
    ASSERT_EQ(serve_->Admin("DELETE", "/api/tokens/gone").status, 200);
    auto document = serve_->Admin("GET", "/api/openapi.json");
    ASSERT_EQ(document.status, 200);
    int checked = 0;
    for (const auto& [path, item] : document.object().at("paths").as_object()) {
        for (const auto& [method_lower, op_value] : item.as_object()) {
            const auto& op = op_value.as_object();
            std::string method(method_lower);
            for (auto& c : method) c = static_cast<char>(std::toupper(c));
            std::string target(path);
            // Path parameters: any value (authentication comes before the lookup).
            while (target.find('{') != std::string::npos) {
                target.replace(target.find('{'), target.find('}') - target.find('{') + 1, "x1");
            }
            std::string where = method + " " + target;
            std::string role(JsonString(op, "x-strowger-role"));
            std::string body = method == "GET" || method == "DELETE" ? "" : "{}";
            if (role.empty()) {  // public
                EXPECT_NE(serve_->Call(method, target, body).status, 401) << where;
                continue;
            }
            ++checked;
            auto none = serve_->Call(method, target, body);
            EXPECT_EQ(none.status, 401) << where << ": " << none.Describe();
            EXPECT_EQ(none.Header("www-authenticate").substr(0, 6), "Bearer") << where;
            EXPECT_EQ(serve_->Call(method, target, body, "stg_" + std::string(43, 'A')).status, 401)
                << where;
            EXPECT_EQ(serve_->Call(method, target, body, revoked).status, 401) << where;
            auto in_url =
                serve_->Call(method, target + "?access_token=" + serve_->admin_token(), body);
            EXPECT_EQ(in_url.status, 400) << where << ": " << in_url.Describe();
            auto as_viewer = serve_->Call(method, target, body, viewer);
            if (role == "viewer") {
                EXPECT_NE(as_viewer.status, 401) << where;
                EXPECT_NE(as_viewer.status, 403) << where;
            } else {
                EXPECT_EQ(as_viewer.status, 403) << where << ": " << as_viewer.Describe();
            }
            auto as_admin = serve_->Admin(method, target, body);
            EXPECT_NE(as_admin.status, 401) << where;
            EXPECT_NE(as_admin.status, 403) << where;
        }
    }
    EXPECT_GT(checked, 25);
}

}  // namespace
}  // namespace strowger::testing
