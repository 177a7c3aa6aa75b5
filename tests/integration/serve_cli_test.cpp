// The client commands against a real daemon: `workflow list|create|get|delete|run`, `token`,
// `tasks list`, and the --server forms of `runs`, `approve`, `reject` and `run`, each checked
// against what the same command prints on the store (same output, same exit code) where the
// store form exists. The daemon and the local commands share one SQLite store, so both forms
// look at the same runs.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "automation/webhooks.hpp"
#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "integration/serve_harness.hpp"
#include "testing/mock_model_server.hpp"

namespace strowger::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kProviders[] = "providers:\n  openai: {max_retries: 0}\n";
constexpr char kFlow[] = R"({"name": "flow", "agents": {"bot": {"model": "openai:m"}},
  "steps": [{"name": "draft", "agent_name": "bot", "prompt": "Draft {{input}}"},
            {"name": "polish", "agent_name": "bot", "prompt": "Polish {{input}}"}]})";
constexpr char kSlow[] = R"({"name": "slow", "agents": {"bot": {"model": "openai:m"}},
  "steps": [{"name": "wait1", "agent_name": "bot", "prompt": "One {{input}}"},
            {"name": "wait2", "agent_name": "bot", "prompt": "Two {{input}}"}]})";
constexpr char kFailing[] = R"({"name": "failing", "agents": {"bot": {"model": "openai:m"}},
  "steps": [{"name": "boom", "agent_name": "bot", "prompt": "Boom"}]})";

class ServeCliTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto mock = MockModelServer::Start({});
        ASSERT_TRUE(mock.has_value()) << mock.error().message();
        mock_ = std::move(*mock);
        for (const char* node : {"wait1", "wait2"}) {
            MockRule slow;
            slow.node = node;
            slow.behavior.latency_ms = 1200;
            mock_->AddRule(slow);
        }
        MockRule boom;
        boom.node = "boom";
        boom.behavior.status = 400;
        mock_->AddRule(boom);
        env_.SetEnv("OPENAI_BASE_URL", mock_->base_url());
        env_.SetEnv("OPENAI_API_KEY", "x");
        env_.SetEnv("STROWGER_PROVIDERS", env_.Write("providers.yaml", kProviders));
        serve_ = std::make_unique<ServeProcess>(env_);
        ASSERT_TRUE(serve_->ok());
        server_ = serve_->url();
        local_ = "sqlite:" + env_.store_path();
    }

    // `strowger ARGS --server URL` (through the daemon).
    CommandResult Remote(std::vector<std::string> args) {
        args.push_back("--server");
        args.push_back(server_);
        return env_.Run(args);
    }
    // `strowger ARGS --store sqlite:...` (the same store, directly).
    CommandResult Local(std::vector<std::string> args) {
        args.push_back("--store");
        args.push_back(local_);
        return env_.Run(args);
    }
    void ExpectSame(const std::vector<std::string>& args) {
        auto remote = Remote(args);
        auto local = Local(args);
        std::string what;
        for (const auto& a : args) what += a + " ";
        EXPECT_EQ(remote.exit_code(), local.exit_code()) << what << "\n" << remote.err << local.err;
        EXPECT_EQ(remote.out, local.out) << what;
        EXPECT_EQ(remote.err, local.err) << what;
    }
    // The run's status once it stops; otherwise what the daemon answered (for the failure
    // message).
    std::string WaitStatus(const std::string& run_id) {
        auto reply = serve_->Admin("GET", "/api/runs/" + run_id + "/wait?timeout_ms=30000");
        std::string status(JsonString(reply.object(), "status"));
        return status.empty() ? "no status: " + reply.Describe() : status;
    }

    CliEnvironment env_;
    std::unique_ptr<MockModelServer> mock_;
    std::unique_ptr<ServeProcess> serve_;
    std::string server_;
    std::string local_;
};

TEST_F(ServeCliTest, WorkflowCommandsRegisterListGetRunAndDelete) {
    std::string file = env_.Write("flow.json", kFlow);
    auto created = Remote({"workflow", "create", file});
    ASSERT_EQ(created.exit_code(), 0) << created.err;
    std::string id = created.out.substr(0, created.out.find('\n'));
    EXPECT_EQ(id.substr(0, 3), "wf_");
    auto again = Remote({"workflow", "create", file});
    EXPECT_EQ(again.exit_code(), 2);
    EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;
    auto invalid = Remote(
        {"workflow", "create",
         env_.Write("bad.json",
                    R"({"name":"bad","steps":[{"name":"s","agent_name":"x","prompt":"p"}]})")});
    EXPECT_EQ(invalid.exit_code(), 2);
    EXPECT_NE(invalid.err.find("steps[0].agent_name (line 1:"), std::string::npos) << invalid.err;
    auto list = Remote({"workflow", "list"});
    EXPECT_EQ(list.exit_code(), 0);
    EXPECT_NE(list.out.find(id), std::string::npos);
    EXPECT_NE(list.out.find("flow"), std::string::npos);
    auto get = Remote({"workflow", "get", id});
    EXPECT_EQ(get.exit_code(), 0);
    EXPECT_NE(get.out.find("\"name\":\"flow\""), std::string::npos);
    auto run = Remote({"workflow", "run", id, "the input"});
    EXPECT_EQ(run.exit_code(), 0) << run.err;
    EXPECT_EQ(run.out.substr(0, 6), "echo: ");
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", kFailing).status, 201);
    auto failed = Remote({"workflow", "run", "failing", "x"});
    EXPECT_EQ(failed.exit_code(), 1);
    EXPECT_NE(failed.err.find("failed"), std::string::npos) << failed.err;
    auto removed = Remote({"workflow", "delete", id});
    EXPECT_EQ(removed.exit_code(), 0);
    EXPECT_EQ(Remote({"workflow", "get", id}).exit_code(), 2);
    // Without a daemon to talk to.
    auto none = env_.Run({"workflow", "list"});
    EXPECT_EQ(none.exit_code(), 2);
}

TEST_F(ServeCliTest, RunsCommandsThroughTheDaemonPrintWhatTheyPrintOnTheStore) {
    // `run FILE --server`: registered, started, followed; the output as `run` prints it.
    std::string file = env_.Write("flow.json", kFlow);
    auto submitted = Remote({"run", file, "--input", "hello", "--progress", "always"});
    ASSERT_EQ(submitted.exit_code(), 0) << submitted.err;
    auto here = env_.Run({"run", file, "--input", "hello", "--store",
                          "sqlite:" + (env_.dir() / "other.db").string()});
    EXPECT_EQ(submitted.out, here.out);
    EXPECT_NE(submitted.err.find("✓ draft"), std::string::npos) << submitted.err;  // live lines
    auto runs = env_.RunIds();
    ASSERT_EQ(runs.size(), 1u);
    std::string run = runs[0];
    // Submitting the same file again: the same workflow (no new version), a new run.
    auto second = Remote({"run", file, "--input", "again", "--json", "--progress", "never"});
    ASSERT_EQ(second.exit_code(), 0) << second.err;
    auto record = ParseJson(second.out);
    ASSERT_TRUE(record && record->is_object()) << second.out;
    EXPECT_EQ(JsonString(record->as_object(), "status"), "completed");
    EXPECT_FALSE(record->as_object().contains("open_tasks"));

    ExpectSame({"runs", "list"});
    ExpectSame({"runs", "list", "--json", "--limit", "1"});
    ExpectSame({"runs", "list", "--status", "failed"});
    ExpectSame({"runs", "show", run});
    ExpectSame({"runs", "show", run, "--json"});
    ExpectSame({"runs", "events", run});
    ExpectSame(
        {"runs", "events", run, "--json", "--type", "node.", "--after", "2", "--limit", "3"});
    ExpectSame({"runs", "events", run, "--follow"});
    ExpectSame({"runs", "show", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"});
    ExpectSame({"runs", "list", "--status", "sleeping"});

    // retry / rerun through the daemon: followed to the end, the output printed.
    auto retried = Remote({"runs", "retry", run, "--step", "polish", "--progress", "never"});
    EXPECT_EQ(retried.exit_code(), 0) << retried.err;
    EXPECT_EQ(retried.out, submitted.out);
    auto rerun = Remote({"runs", "rerun", run, "--progress", "never"});
    EXPECT_EQ(rerun.exit_code(), 0) << rerun.err;
    EXPECT_EQ(rerun.out, submitted.out);
    auto not_failed = Remote({"runs", "retry", run});
    auto not_failed_local = Local({"runs", "retry", run});
    EXPECT_EQ(not_failed.exit_code(), not_failed_local.exit_code());

    // pause, resume, cancel of a slow run executing in the daemon.
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", kSlow).status, 201);
    auto start = serve_->Admin("POST", "/api/runs", R"({"workflow":"slow","input":"s"})");
    std::string slow(JsonString(start.object(), "run_id"));
    auto paused = Remote({"runs", "pause", slow, "--reason", "lunch"});
    EXPECT_EQ(paused.exit_code(), 0) << paused.err;
    EXPECT_EQ(paused.out, "run " + slow + ": paused\n");
    EXPECT_EQ(WaitStatus(slow), "paused");
    auto resumed = Remote({"runs", "resume", slow, "--progress", "never"});
    EXPECT_EQ(resumed.exit_code(), 0) << resumed.err;
    EXPECT_EQ(resumed.out.substr(0, 6), "echo: ");
    auto start2 = serve_->Admin("POST", "/api/runs", R"({"workflow":"slow","input":"t"})");
    std::string slow2(JsonString(start2.object(), "run_id"));
    auto cancelled = Remote({"runs", "cancel", slow2});
    EXPECT_EQ(cancelled.exit_code(), 0);
    EXPECT_EQ(WaitStatus(slow2), "cancelled");
    auto ended = Remote({"runs", "cancel", slow2});
    auto ended_local = Local({"runs", "cancel", slow2});
    EXPECT_EQ(ended.exit_code(), ended_local.exit_code());
    EXPECT_EQ(ended.err, ended_local.err);
    // The actor of a mutation made through the daemon is the token's name.
    for (const auto& event : env_.Events(slow)) {
        if (event.type == "run.paused") {
            EXPECT_EQ(JsonString(event.data, "actor"), "admin");
        }
    }
    // runs prune through the daemon: the same count, then the deletion.
    ExpectSame({"runs", "prune", "--keep", "1", "--dry-run"});
    auto dry = Remote({"runs", "prune", "--keep", "1", "--dry-run"});
    EXPECT_NE(dry.out.find("would delete "), std::string::npos) << dry.out << dry.err;
    const size_t before = env_.RunIds().size();
    auto pruned = Remote({"runs", "prune", "--keep", "1", "--yes"});
    EXPECT_EQ(pruned.exit_code(), 0) << pruned.err;
    EXPECT_EQ(pruned.out.substr(0, 8), "deleted ") << pruned.out;
    EXPECT_LT(env_.RunIds().size(), before);
    EXPECT_EQ(env_.RunStatus(slow2), "cancelled");  // the newest finished run is kept
}

TEST_F(ServeCliTest, TasksApproveAndRejectThroughTheDaemon) {
    std::string script = env_.Write("scripts/approve.yaml", R"(default: "looked"
rules:
  - when: {prompt_contains: "Look "}
    tool_calls:
      - {name: read_file, arguments: {path: "notes.txt"}}
)");
    std::string approval = R"({"name": "approval", "agents": {"reader": {"model": "scripted:)" +
                           script +
                           R"(", "tools": ["read_file"], "require_approval": ["read_file"]}},
      "steps": [{"name": "look", "agent_name": "reader", "prompt": "Look {{input}}"}]})";
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", approval).status, 201);
    auto waiting = Remote({"workflow", "run", "approval", "here"});
    EXPECT_EQ(waiting.exit_code(), 3) << waiting.err;  // waits for a human
    std::string first = env_.WaitForOnlyRun();
    ASSERT_FALSE(first.empty());
    ExpectSame({"tasks", "list"});
    ExpectSame({"tasks", "list", "--json"});
    auto tasks = Remote({"tasks", "list"});
    EXPECT_NE(tasks.out.find("look/1/1"), std::string::npos) << tasks.out;
    auto approved = Remote({"approve", first, "--comment", "ok", "--progress", "never"});
    EXPECT_EQ(approved.exit_code(), 0) << approved.err;
    EXPECT_EQ(approved.out, "looked\n");
    EXPECT_NE(approved.err.find("task look/1/1 approved by admin"), std::string::npos)
        << approved.err;
    auto twice = Remote({"approve", first});
    EXPECT_EQ(twice.exit_code(), 2);

    auto second = serve_->Admin("POST", "/api/runs", R"({"workflow":"approval","input":"there"})");
    std::string run(JsonString(second.object(), "run_id"));
    EXPECT_EQ(WaitStatus(run), "waiting");
    auto rejected = Remote({"reject", run, "look/1/1", "--reason", "no", "--progress", "never"});
    EXPECT_EQ(rejected.exit_code(), 0) << rejected.err;
    EXPECT_NE(rejected.err.find("rejected by admin"), std::string::npos);
    for (const auto& event : env_.Events(run)) {
        if (event.type == "human_task.decided") {
            EXPECT_EQ(JsonString(event.data, "decision"), "reject");
            EXPECT_EQ(JsonString(event.data, "actor"), "admin");
        }
    }
}

// `audit verify|export|pubkey|anchor --server`: the daemon's /api/audit routes print what the
// store forms print, for sound runs and for a run whose ledger was edited in the store behind
// the daemon's back (caught through the API as it is on the store, and not exported).
TEST_F(ServeCliTest, AuditCommandsThroughTheDaemonPrintWhatTheyPrintOnTheStore) {
    std::string file = env_.Write("flow.json", kFlow);
    for (const char* input : {"one", "two"}) {
        auto run = Remote({"run", file, "--input", input, "--progress", "never"});
        ASSERT_EQ(run.exit_code(), 0) << run.err;
    }
    auto runs = env_.RunIds();
    ASSERT_EQ(runs.size(), 2u);
    ExpectSame({"audit", "verify", "--all"});
    ExpectSame({"audit", "verify", runs[0], runs[1]});
    ExpectSame({"audit", "verify", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"});
    ExpectSame({"audit", "pubkey"});
    auto pubkey = Remote({"audit", "pubkey"});
    EXPECT_EQ(pubkey.out.substr(0, 26), "-----BEGIN PUBLIC KEY-----") << pubkey.out;
    ExpectSame({"audit", "export", runs[0]});
    auto read = [this](const std::string& name) {
        std::ifstream in(env_.dir() / name, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    };
    auto exported = Remote({"audit", "export", runs[0], "-o", (env_.dir() / "r.jsonl").string(),
                            "--definition", (env_.dir() / "r.def.json").string()});
    ASSERT_EQ(exported.exit_code(), 0) << exported.err;
    auto local = Local({"audit", "export", runs[0], "-o", (env_.dir() / "l.jsonl").string(),
                        "--definition", (env_.dir() / "l.def.json").string()});
    ASSERT_EQ(local.exit_code(), 0) << local.err;
    EXPECT_EQ(read("r.jsonl"), read("l.jsonl"));
    EXPECT_EQ(read("r.def.json"), read("l.def.json"));
    EXPECT_NE(read("r.jsonl").find("\"checkpoint\""), std::string::npos);

    // Anchors made through the daemon verify on the store, and the other way round.
    auto anchored = Remote({"audit", "anchor", "--all"});
    ASSERT_EQ(anchored.exit_code(), 0) << anchored.err;
    EXPECT_EQ(std::count(anchored.out.begin(), anchored.out.end(), '\n'), 3) << anchored.out;
    std::string anchors = env_.Write("anchors.log", anchored.out);
    ExpectSame({"audit", "verify", "--all", "--anchors", anchors});
    EXPECT_EQ(Local({"audit", "verify", "--all", "--anchors", anchors}).exit_code(), 0);

    // One output rewritten in the store, behind the daemon's back.
    auto events = env_.Events(runs[1]);
    std::string line;
    int64_t seq = 0;
    for (const auto& event : events) {
        if (event.type == "node.completed") {
            line = event.line;
            seq = event.seq;
            break;
        }
    }
    ASSERT_GT(seq, 0);
    size_t at = line.find("echo: ");
    ASSERT_NE(at, std::string::npos) << line;
    line.replace(at, 6, "fake: ");
    ASSERT_EQ(ExecSql(env_.store_path(), "UPDATE events SET line = ? WHERE run_id = ? AND seq = ?",
                      {line, runs[1], std::to_string(seq)}),
              1);
    auto broken = Remote({"audit", "verify", "--all", "--anchors", anchors});
    EXPECT_EQ(broken.exit_code(), 1) << broken.out << broken.err;
    EXPECT_NE(
        broken.out.find(runs[1] + ": BROKEN at seq " + std::to_string(seq) + ": hash mismatch"),
        std::string::npos)
        << broken.out;
    EXPECT_NE(broken.out.find(runs[0] + ": ok ("), std::string::npos) << broken.out;
    ExpectSame({"audit", "verify", "--all", "--anchors", anchors});
    ExpectSame({"audit", "verify", runs[1]});
    auto refused = Remote({"audit", "anchor", runs[1]});
    EXPECT_EQ(refused.exit_code(), 1);
    EXPECT_NE(refused.err.find("not anchored: ledger does not verify"), std::string::npos)
        << refused.err;
    auto not_exported = Remote({"audit", "export", runs[1]});
    EXPECT_EQ(not_exported.exit_code(), 5) << not_exported.err;
    EXPECT_NE(not_exported.err.find("hash mismatch"), std::string::npos) << not_exported.err;
    EXPECT_EQ(not_exported.out, "");
}

TEST_F(ServeCliTest, TokenCommandsThroughTheDaemonAndOnTheStore) {
    auto created = Remote({"token", "create", "ci", "--role", "operator"});
    ASSERT_EQ(created.exit_code(), 0) << created.err;
    std::string token = created.out.substr(0, created.out.find('\n'));
    EXPECT_EQ(token.substr(0, 4), "stg_");
    EXPECT_EQ(serve_->Call("GET", "/api/runs", "", token).status, 200);
    auto list = Remote({"token", "list"});
    EXPECT_EQ(list.exit_code(), 0);
    EXPECT_NE(list.out.find("ci "), std::string::npos) << list.out;
    EXPECT_EQ(list.out.find(token), std::string::npos);  // never the text
    auto revoked = Remote({"token", "revoke", "ci"});
    EXPECT_EQ(revoked.exit_code(), 0);
    EXPECT_EQ(revoked.out, "revoked ci\n");
    EXPECT_EQ(serve_->Call("GET", "/api/runs", "", token).status, 401);
    // On the store directly; the daemon sees the new token within its refresh interval.
    auto local = Local({"token", "create", "ops", "--role", "viewer"});
    ASSERT_EQ(local.exit_code(), 0) << local.err;
    std::string ops = local.out.substr(0, local.out.find('\n'));
    EXPECT_TRUE(
        WaitFor([&] { return serve_->Call("GET", "/api/runs", "", ops).status == 200; }, 10s));
    EXPECT_EQ(serve_->Call("POST", "/api/runs", "{}", ops).status, 403);
    ASSERT_EQ(Local({"token", "revoke", "ops"}).exit_code(), 0);
    EXPECT_TRUE(
        WaitFor([&] { return serve_->Call("GET", "/api/runs", "", ops).status == 401; }, 10s));
    auto listed = Local({"token", "list"});
    EXPECT_NE(listed.out.find("ops"), std::string::npos);
    // A wrong token: the command says so.
    env_.SetEnv("STROWGER_TOKEN", "stg_wrong");
    auto refused = Remote({"runs", "list"});
    EXPECT_EQ(refused.exit_code(), 5);
    EXPECT_NE(refused.err.find("not valid"), std::string::npos) << refused.err;
}

TEST_F(ServeCliTest, HookCommandsCreateListAndDeleteSignedWebhooks) {
    ASSERT_EQ(serve_->Admin("POST", "/api/workflows", kFlow).status, 201);
    // The daemon makes the secret and it is printed once.
    auto created = Remote({"hook", "create", "gh", "--workflow", "flow", "--no-timestamp"});
    ASSERT_EQ(created.exit_code(), 0) << created.err;
    auto lines = Lines(created.out);
    ASSERT_EQ(lines.size(), 2u) << created.out;
    EXPECT_EQ(lines[0], "hook gh: POST " + server_ + "/api/hooks/gh");
    const std::string prefix = "secret (shown once): ";
    ASSERT_EQ(lines[1].rfind(prefix, 0), 0u) << lines[1];
    const std::string secret = lines[1].substr(prefix.size());
    EXPECT_GE(secret.size(), 16u);
    // A delivery signed with it starts the workflow (no timestamp: as GitHub sends it).
    const std::string body = R"({"ref":"main"})";
    auto delivered = serve_->Call("POST", "/api/hooks/gh", body, "",
                                  {{"X-Hub-Signature-256", automation::SignWebhook(secret, body)},
                                   {"Content-Type", "application/json"}});
    EXPECT_EQ(delivered.status, 202) << delivered.body;
    // A secret from the environment, never on the command line; a timestamp required.
    env_.SetEnv("HOOK_SECRET", "0123456789abcdef-from-env");
    auto from_env = Remote({"hook", "create", "ci", "--secret-env", "HOOK_SECRET", "--json"});
    ASSERT_EQ(from_env.exit_code(), 0) << from_env.err;
    EXPECT_NE(from_env.out.find("\"secret\":\"0123456789abcdef-from-env\""), std::string::npos)
        << from_env.out;
    auto unsigned_delivery = serve_->Call("POST", "/api/hooks/ci", "x", "", {});
    EXPECT_EQ(unsigned_delivery.status, 401);
    auto unset = Remote({"hook", "create", "cd", "--secret-env", "NOT_SET_ANYWHERE"});
    EXPECT_EQ(unset.exit_code(), 2);
    EXPECT_EQ(unset.err, "strowger: --secret-env: $NOT_SET_ANYWHERE is not set\n");
    auto taken = Remote({"hook", "create", "gh"});
    EXPECT_EQ(taken.exit_code(), 2) << taken.err;

    auto list = Remote({"hook", "list"});
    ASSERT_EQ(list.exit_code(), 0) << list.err;
    auto rows = Lines(list.out);
    ASSERT_EQ(rows.size(), 3u) << list.out;
    EXPECT_EQ(rows[0].rfind("NAME", 0), 0u);
    EXPECT_EQ(list.out.find(secret), std::string::npos);  // never shown again
    bool gh = false;
    bool ci = false;
    for (const auto& row : rows) {
        if (row.rfind("gh ", 0) == 0) {
            gh = true;
            EXPECT_NE(row.find(" no "), std::string::npos) << row;
            EXPECT_NE(row.find("/api/hooks/gh"), std::string::npos) << row;
        }
        if (row.rfind("ci ", 0) == 0) {
            ci = true;
            EXPECT_NE(row.find("(events only)"), std::string::npos) << row;
            EXPECT_NE(row.find("required"), std::string::npos) << row;
        }
    }
    EXPECT_TRUE(gh && ci) << list.out;

    EXPECT_EQ(Remote({"hook", "delete", "ci"}).exit_code(), 0);
    auto gone = Remote({"hook", "delete", "ci"});
    EXPECT_EQ(gone.exit_code(), 2) << gone.err;
    EXPECT_EQ(Lines(Remote({"hook", "list"}).out).size(), 2u);
    // Without a daemon to talk to.
    auto none = env_.Run({"hook", "list"});
    EXPECT_EQ(none.exit_code(), 2);
    EXPECT_EQ(none.err, "strowger: hook commands need a daemon: --server URL or STROWGER_SERVER\n");
}

}  // namespace
}  // namespace strowger::testing
