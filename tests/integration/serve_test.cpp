// The daemon's life through the real binary: event streams resumed with Last-Event-ID, kill -9
// mid-run and restart, SIGTERM drain, hot reload of --workflows, limits against bad clients,
// supervision of a crashing run, retention. Model calls go to the loopback mock model, whose
// per-step latencies make the timings; nothing here sleeps to synchronise (it polls what it
// can observe: the store, the daemon's answers, its output).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <fstream>
#include <map>
#include <set>

#include "integration/harness.hpp"
#include "integration/process.hpp"
#include "integration/serve_harness.hpp"
#include "testing/mock_model_server.hpp"

namespace strowger::testing {
namespace {

using namespace std::chrono_literals;
using Events = std::vector<LedgerEvent>;

constexpr char kProviders[] = "providers:\n  openai: {max_retries: 0}\n";

std::string Workflow(const std::string& name, const std::vector<std::string>& steps,
                     const std::string& prompt = "Do") {
    std::string text = "{\"name\": \"" + name +
                       "\", \"agents\": {\"bot\": {\"model\": \"openai:m\"}}, \"steps\": [";
    for (size_t i = 0; i < steps.size(); ++i) {
        if (i > 0) text += ",";
        text += "{\"name\": \"" + steps[i] + "\", \"agent_name\": \"bot\", \"prompt\": \"" +
                prompt + " " + steps[i] + " {{input}}\"}";
    }
    return text + "]}";
}

int64_t Count(const Events& events, const std::string& type, const std::string& node) {
    return CountEvents(events, type, node);
}

class ServeTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto mock = MockModelServer::Start({});
        ASSERT_TRUE(mock.has_value()) << mock.error().message();
        mock_ = std::move(*mock);
        env_.SetEnv("OPENAI_BASE_URL", mock_->base_url());
        env_.SetEnv("OPENAI_API_KEY", "x");
        env_.SetEnv("STROWGER_PROVIDERS", env_.Write("providers.yaml", kProviders));
    }
    void Latency(const std::string& node, int64_t ms) {
        MockRule rule;
        rule.node = node;
        rule.behavior.latency_ms = ms;
        mock_->AddRule(rule);
    }
    std::string Start(ServeProcess& serve, const std::string& workflow, const std::string& input) {
        auto reply =
            serve.Admin("POST", "/api/runs",
                        R"({"workflow":")" + workflow + R"(","input":")" + input + R"("})");
        EXPECT_EQ(reply.status, 202) << reply.Describe();
        return std::string(JsonString(reply.object(), "run_id"));
    }
    std::string WaitStatus(ServeProcess& serve, const std::string& run_id) {
        auto reply = serve.Admin("GET", "/api/runs/" + run_id + "/wait?timeout_ms=30000");
        EXPECT_EQ(reply.status, 200) << reply.Describe();
        return std::string(JsonString(reply.object(), "status"));
    }

    CliEnvironment env_;
    std::unique_ptr<MockModelServer> mock_;
};

TEST_F(ServeTest, EventStreamsResumeWithLastEventIdLosingAndRepeatingNothing) {
    for (const char* step : {"s1", "s2", "s3", "s4"}) Latency(step, 150);
    ServeProcess serve(env_);
    ASSERT_TRUE(serve.ok());
    ASSERT_EQ(
        serve.Admin("POST", "/api/workflows", Workflow("four", {"s1", "s2", "s3", "s4"})).status,
        201);
    std::string run = Start(serve, "four", "stream me please");
    std::vector<std::string> ids;
    std::map<std::string, std::string> lines;
    int deltas = 0;
    std::string last;
    {
        EventStream first(serve.port(), "/api/runs/" + run + "/events",
                          {{"Authorization", "Bearer " + serve.admin_token()}});
        ASSERT_EQ(first.status(), 200);
        while (auto event = first.Next()) {
            if (event->event == "delta") {
                ++deltas;
                continue;
            }
            ASSERT_FALSE(event->id.empty()) << event->event;
            ids.push_back(event->id);
            lines[event->id] = event->data;
            last = event->id;
            if (event->event == "node.completed") break;  // after the first step: go away
        }
    }
    ASSERT_FALSE(last.empty());
    bool ended = false;
    {
        EventStream second(
            serve.port(), "/api/runs/" + run + "/events",
            {{"Authorization", "Bearer " + serve.admin_token()}, {"Last-Event-ID", last}});
        ASSERT_EQ(second.status(), 200);
        while (auto event = second.Next()) {
            if (event->event == "delta") {
                ++deltas;
                continue;
            }
            if (event->event == "end") {
                ended = true;
                break;
            }
            ids.push_back(event->id);
            lines[event->id] = event->data;
        }
    }
    EXPECT_TRUE(ended);
    Events events = env_.Events(run);
    ASSERT_EQ(events.back().type, "run.completed");
    std::vector<std::string> expected;
    for (const auto& event : events) expected.push_back(std::to_string(event.seq));
    EXPECT_EQ(ids, expected);  // each event once, in order, across the reconnect
    for (const auto& event : events) EXPECT_EQ(lines[std::to_string(event.seq)], event.line);
    EXPECT_GT(deltas, 0);  // the model's words as they streamed
}

TEST_F(ServeTest, KillNineMidRunThenRestartResumesEveryRunAndNoFinishedStepRunsAgain) {
    for (const char* step : {"a", "b", "c"}) Latency(step, 400);
    std::vector<std::string> runs;
    std::map<std::string, Events> at_kill;
    {
        ServeProcess serve(env_);
        ASSERT_TRUE(serve.ok());
        ASSERT_EQ(serve.Admin("POST", "/api/workflows", Workflow("abc", {"a", "b", "c"})).status,
                  201);
        for (int i = 0; i < 5; ++i) runs.push_back(Start(serve, "abc", "run " + std::to_string(i)));
        // Every run has finished its first step and not its last.
        ASSERT_TRUE(WaitFor(
            [&] {
                for (const auto& run : runs) {
                    if (Count(env_.Events(run), "node.completed", "a") == 0) return false;
                }
                return true;
            },
            20s));
        ASSERT_TRUE(serve.process().Signal(SIGKILL));
        serve.process().Wait();
        for (const auto& run : runs) {
            at_kill[run] = env_.Events(run);
            EXPECT_EQ(env_.RunStatus(run), "running") << Describe(at_kill[run]);
        }
    }
    ServeProcess again(env_);
    ASSERT_TRUE(again.ok());
    EXPECT_NE(again.process().Stderr().find("5 runs resumed"), std::string::npos)
        << again.process().Stderr();
    for (const auto& run : runs) {
        EXPECT_EQ(WaitStatus(again, run), "completed");
        Events events = env_.Events(run);
        for (const char* step : {"a", "b", "c"}) {
            EXPECT_EQ(Count(events, "node.completed", step), 1) << run << ": " << Describe(events);
            // A step that had finished before the kill was not started again.
            if (Count(at_kill[run], "node.completed", step) == 1) {
                EXPECT_EQ(Count(events, "node.started", step),
                          Count(at_kill[run], "node.started", step))
                    << run << " " << step << ": " << Describe(events);
            }
        }
        const auto* resumed = FindEvent(events, "run.resumed");
        ASSERT_NE(resumed, nullptr) << Describe(events);
        EXPECT_EQ(JsonString(resumed->data, "reason"), "restart");
        auto verify = env_.Run({"audit", "verify", run});
        EXPECT_EQ(verify.exit_code(), 0) << verify.out << verify.err;
    }
}

TEST_F(ServeTest, SigtermLetsTheModelCallFinishExitsZeroAndTheNextStartFinishesTheRun) {
    Latency("long", 1500);
    std::string run;
    {
        ServeProcess serve(env_);
        ASSERT_TRUE(serve.ok());
        ASSERT_EQ(
            serve.Admin("POST", "/api/workflows", Workflow("drain", {"long", "short"})).status,
            201);
        run = Start(serve, "drain", "x");
        ASSERT_TRUE(
            WaitFor([&] { return Count(env_.Events(run), "llm.request", "long") == 1; }, 10s));
        ASSERT_TRUE(serve.process().Signal(SIGTERM));
        // Not accepting any more, while it drains.
        ASSERT_TRUE(WaitFor([&] { return serve.Call("GET", "/healthz").status != 200; }, 5s));
        auto exited = serve.process().Wait(20s);
        EXPECT_EQ(exited.exit_code(), 0) << exited.err;
        Events events = env_.Events(run);
        // The in-flight call finished and was recorded; nothing else started.
        EXPECT_EQ(Count(events, "node.completed", "long"), 1) << Describe(events);
        EXPECT_EQ(Count(events, "node.started", "short"), 0) << Describe(events);
        EXPECT_EQ(events.back().type, "run.paused");
        EXPECT_EQ(JsonString(events.back().data, "reason"), "daemon draining");
    }
    ServeProcess again(env_);
    ASSERT_TRUE(again.ok());
    EXPECT_NE(again.process().Stderr().find("1 runs resumed"), std::string::npos);
    // (It is resumed as the daemon starts: until then its status is still `paused`.)
    EXPECT_TRUE(WaitFor([&] { return env_.RunStatus(run) == "completed"; }, 20s));
    Events events = env_.Events(run);
    EXPECT_EQ(Count(events, "node.started", "long"), 1) << Describe(events);
    EXPECT_EQ(Count(events, "node.completed", "short"), 1) << Describe(events);
}

TEST_F(ServeTest, HotReloadMakesNewVersionsKeepsRunningRunsOnTheirsAndRefusesInvalidFiles) {
    Latency("step", 1200);
    auto dir = env_.dir() / "workflows";
    std::filesystem::create_directories(dir);
    auto write = [&](const std::string& text) {
        std::string tmp = (dir / ".flow.tmp").string();
        {
            std::ofstream out(tmp);
            out << text;
        }
        std::filesystem::rename(tmp, dir / "flow.yaml");  // atomically, as editors do
    };
    write(
        "name: flow\nagents: {bot: {model: \"openai:m\"}}\nsteps:\n  - {name: step, agent_name: "
        "bot, prompt: \"One {{input}}\"}\n");
    ServeProcess serve(env_, {"--workflows", dir.string()});
    ASSERT_TRUE(serve.ok());
    auto version = [&] {
        return JsonInt(serve.Admin("GET", "/api/workflows/flow").object(), "version");
    };
    ASSERT_EQ(version(), 1);
    std::string first = Start(serve, "flow", "a");
    ASSERT_TRUE(
        WaitFor([&] { return Count(env_.Events(first), "llm.request", "step") == 1; }, 10s));
    write(
        "name: flow\nagents: {bot: {model: \"openai:m\"}}\nsteps:\n  - {name: step, agent_name: "
        "bot, prompt: \"Two {{input}}\"}\n");
    ASSERT_TRUE(WaitFor([&] { return version() == 2; }, 10s));
    std::string second = Start(serve, "flow", "b");
    EXPECT_EQ(WaitStatus(serve, first), "completed");
    EXPECT_EQ(WaitStatus(serve, second), "completed");
    EXPECT_EQ(JsonString(FindEvent(env_.Events(first), "llm.request")->data, "prompt"), "One a");
    EXPECT_EQ(JsonString(FindEvent(env_.Events(second), "llm.request")->data, "prompt"), "Two b");
    // An invalid file is reported with its diagnostics and changes nothing.
    write("name: flow\nsteps:\n  - {name: step, agent_name: nobody, prompt: \"Three\"}\n");
    ASSERT_TRUE(WaitFor(
        [&] {
            std::string err = serve.process().Stderr();
            return err.find("flow.yaml:3:") != std::string::npos &&
                   err.find("the previous version stays") != std::string::npos;
        },
        10s))
        << serve.process().Stderr();
    EXPECT_EQ(version(), 2);
    std::string third = Start(serve, "flow", "c");
    EXPECT_EQ(WaitStatus(serve, third), "completed");
    // SIGHUP reloads too: a new file appears without waiting for inotify's word.
    {
        std::ofstream out(dir / "other.yaml");
        out << "name: other\nagents: {bot: {model: \"openai:m\"}}\nsteps:\n  - {name: s, "
               "agent_name: bot, prompt: \"x\"}\n";
    }
    ASSERT_TRUE(serve.process().Signal(SIGHUP));
    ASSERT_TRUE(
        WaitFor([&] { return serve.Admin("GET", "/api/workflows/other").status == 200; }, 10s));
    // A removed file takes its workflow away.
    std::filesystem::remove(dir / "other.yaml");
    ASSERT_TRUE(
        WaitFor([&] { return serve.Admin("GET", "/api/workflows/other").status == 404; }, 10s));
}

// Raw bytes from a bad client.
int Connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    return fd;
}

std::string SendAndRead(uint16_t port, const std::string& bytes) {
    int fd = Connect(port);
    (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    std::string out;
    char buffer[4096];
    ssize_t n;
    while ((n = recv(fd, buffer, sizeof buffer, 0)) > 0) out.append(buffer, static_cast<size_t>(n));
    close(fd);
    return out;
}

TEST_F(ServeTest, SlowAndOversizedRequestsGet4xxAndTheDaemonCarriesOn) {
    ServeProcess serve(env_, {"--header-timeout-ms", "300", "--max-body-bytes", "1000",
                              "--max-header-bytes", "2048", "--max-connections", "64"});
    ASSERT_TRUE(serve.ok());
    std::string slow = SendAndRead(serve.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow:");
    EXPECT_EQ(slow.substr(0, 12), "HTTP/1.1 408") << slow;
    std::string big_header = SendAndRead(
        serve.port(), "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
    EXPECT_EQ(big_header.substr(0, 12), "HTTP/1.1 431") << big_header;
    std::string big_body = SendAndRead(
        serve.port(), "POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
    EXPECT_EQ(big_body.substr(0, 12), "HTTP/1.1 413") << big_body;
    EXPECT_NE(big_body.find("application/problem+json"), std::string::npos);
    std::string garbage = SendAndRead(serve.port(), "NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(garbage.substr(0, 12), "HTTP/1.1 400") << garbage;
    EXPECT_EQ(serve.Call("GET", "/healthz").status, 200);
    EXPECT_EQ(serve.Admin("GET", "/api/runs").status, 200);
}

TEST_F(ServeTest, SupervisionRestartsACrashingRunAndFailsOneThatKeepsCrashing) {
    ServeProcess serve(env_, {"--inject-faults"});
    ASSERT_TRUE(serve.ok());
    ASSERT_EQ(serve.Admin("POST", "/api/workflows", Workflow("sup", {"one", "two"})).status, 201);
    std::vector<std::string> healthy;
    for (int i = 0; i < 4; ++i) healthy.push_back(Start(serve, "sup", "fine " + std::to_string(i)));
    std::string once = Start(serve, "sup", "strowger-inject-fault:once");
    std::string always = Start(serve, "sup", "strowger-inject-fault");
    for (const auto& run : healthy) {
        EXPECT_EQ(WaitStatus(serve, run), "completed");
        EXPECT_EQ(FindEvent(env_.Events(run), "run.resumed"), nullptr);
    }
    EXPECT_EQ(WaitStatus(serve, once), "completed");
    Events once_events = env_.Events(once);
    const auto* restart = FindEvent(once_events, "run.resumed");
    ASSERT_NE(restart, nullptr) << Describe(once_events);
    EXPECT_EQ(std::string(JsonString(restart->data, "reason")).substr(0, 28),
              "supervisor: restart 1 of 3 a")
        << restart->line;
    EXPECT_EQ(JsonString(restart->data, "actor"), "supervisor");
    EXPECT_EQ(Count(once_events, "node.completed", "one"), 1);

    EXPECT_EQ(WaitStatus(serve, always), "failed");
    Events always_events = env_.Events(always);
    EXPECT_EQ(Count(always_events, "run.resumed", ""), 3) << Describe(always_events);
    const auto* failed = FindEvent(always_events, "run.failed");
    ASSERT_NE(failed, nullptr);
    EXPECT_NE(std::string(JsonString(failed->data, "error")).find("failed unexpectedly 4 times"),
              std::string::npos)
        << failed->line;
    EXPECT_EQ(JsonString(failed->data, "code"), "supervisor");
    auto metrics = serve.Admin("GET", "/metrics");
    EXPECT_NE(metrics.body.find("strowger_supervisor_restarts_total 4"), std::string::npos)
        << metrics.body;
    EXPECT_NE(metrics.body.find("strowger_supervisor_failures_total 1"), std::string::npos);
    // The daemon carries on.
    EXPECT_EQ(WaitStatus(serve, Start(serve, "sup", "after")), "completed");
}

TEST_F(ServeTest, RetentionKeepsTheNewestFinishedRunsOfAWorkflow) {
    ServeProcess serve(env_, {"--retention-interval-ms", "100"});
    ASSERT_TRUE(serve.ok());
    ASSERT_EQ(serve.Admin("POST", "/api/workflows", Workflow("kept", {"s"})).status, 201);
    ASSERT_EQ(serve.Admin("POST", "/api/workflows", Workflow("other", {"s"})).status, 201);
    std::vector<std::string> runs;
    for (int i = 0; i < 5; ++i) {
        runs.push_back(Start(serve, "kept", std::to_string(i)));
        EXPECT_EQ(WaitStatus(serve, runs.back()), "completed");
    }
    std::string other = Start(serve, "other", "x");
    EXPECT_EQ(WaitStatus(serve, other), "completed");
    ASSERT_EQ(serve.Admin("PUT", "/api/retention/kept", R"({"keep_count":2})").status, 200);
    ASSERT_TRUE(WaitFor([&] { return env_.RunIds().size() == 3; }, 10s));
    std::vector<std::string> expected = {runs[3], runs[4], other};
    std::sort(expected.begin(), expected.end());
    auto ids = env_.RunIds();
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(ids, expected);
}

TEST_F(ServeTest, AHumanTasksTimerFiresInTheDaemonAfterAKillNineWhileWaiting) {
    const std::string workflow = R"({"name": "gated", "default_model": "openai:m", "nodes": [
        {"id": "draft", "type": "agent", "config": {"prompt": "Draft {{input}}"}},
        {"id": "review", "type": "human_task", "config": {"title": "Review", "timeout_ms": 1500,
         "on_timeout": "proceed_with_default", "default_output": "nobody came"}},
        {"id": "publish", "type": "agent", "config": {"prompt": "Publish {{input}}"}},
        {"id": "expired", "type": "agent", "config": {"prompt": "Expired: {{input}}"}}],
      "edges": [{"from": "draft", "to": "review"},
                {"from": "review", "to": "publish", "signal": "approved"},
                {"from": "review", "to": "expired", "signal": "timeout"}]})";
    std::string run_id;
    {
        ServeProcess serve(env_);
        ASSERT_TRUE(serve.ok());
        ASSERT_EQ(serve.Admin("POST", "/api/workflows", workflow).status, 201);
        run_id = Start(serve, "gated", "memo");
        EXPECT_EQ(WaitStatus(serve, run_id), "waiting");
        ASSERT_TRUE(serve.process().Signal(SIGKILL));
        serve.process().Wait(10s);
    }
    // Restarted (the timer came due while nothing ran, or comes due soon): it fires here.
    ServeProcess serve(env_);
    ASSERT_TRUE(serve.ok());
    // /wait answers at once for a waiting run: poll the store until the timer has fired.
    EXPECT_TRUE(WaitFor([&] { return env_.RunStatus(run_id) == "completed"; }, 20s))
        << env_.RunStatus(run_id);
    auto events = env_.Events(run_id);
    EXPECT_EQ(Count(events, "llm.request", "draft"), 1);
    EXPECT_EQ(Count(events, "llm.request", "expired"), 1);
    EXPECT_EQ(Count(events, "llm.request", "publish"), 0);
    EXPECT_EQ(Count(events, "human_task.completed", "review"), 1);
}

TEST_F(ServeTest, AHumanTasksTimeoutFiresInTheDaemonWithoutADecision) {
    ServeProcess serve(env_);
    ASSERT_TRUE(serve.ok());
    ASSERT_EQ(serve
                  .Admin("POST", "/api/workflows",
                         "name: timed\nnodes:\n  - {id: approve, type: human_task, config: "
                         "{title: Approve, timeout_ms: 300, default_output: went ahead}}\n")
                  .status,
              201);
    std::string run = Start(serve, "timed", "x");
    // The run stops waiting for a decision; its durable timer resumes it in the daemon.
    ASSERT_TRUE(WaitFor([&] { return env_.RunStatus(run) == "completed"; }, 20s))
        << env_.RunStatus(run) << ": " << Describe(env_.Events(run));
    Events events = env_.Events(run);
    EXPECT_EQ(Count(events, "human_task.created", "approve"), 1) << Describe(events);
    const auto* completed = FindEvent(events, "human_task.completed");
    ASSERT_NE(completed, nullptr) << Describe(events);
    EXPECT_EQ(JsonString(completed->data, "reason"), "timeout");
    EXPECT_EQ(Count(events, "human_task.decided", "approve"), 0) << Describe(events);
    const auto* resumed = FindEvent(events, "run.resumed");
    ASSERT_NE(resumed, nullptr) << Describe(events);
    EXPECT_EQ(JsonString(resumed->data, "actor"), "serve");
}

TEST_F(ServeTest, HumanTaskNodesAreListedByAssigneeAndTakeEveryDecisionWithADurableKey) {
    ServeProcess serve(env_);
    ASSERT_TRUE(serve.ok());
    ASSERT_EQ(serve
                  .Admin("POST", "/api/workflows",
                         "name: review\nnodes:\n  - {id: review, type: human_task, config: "
                         "{task_id: review, title: Review, assignee_refs: [alice]}}\n")
                  .status,
              201);
    std::string run = Start(serve, "review", "x");
    ASSERT_TRUE(WaitFor([&] { return env_.RunStatus(run) == "waiting"; }, 20s));
    auto tasks = [&](const std::string& query) {
        auto reply = serve.Admin("GET", "/api/tasks" + query);
        EXPECT_EQ(reply.status, 200) << reply.Describe();
        return reply.object().at("tasks").as_array();
    };
    EXPECT_TRUE(tasks("?assignee=bob").empty());
    auto mine = tasks("?assignee=alice");
    ASSERT_EQ(mine.size(), 1u);
    EXPECT_EQ(JsonString(mine[0].as_object(), "task_id"), "review");
    EXPECT_EQ(boost::json::serialize(mine[0].as_object().at("assignees")), R"(["alice"])");
    EXPECT_EQ(tasks("").size(), 1u);
    const std::string decision =
        R"({"action":"request_changes","comment":"more","idempotency_key":"k1"})";
    auto decided = serve.Admin("POST", "/api/runs/" + run + "/tasks/review/decision", decision);
    EXPECT_EQ(decided.status, 200) << decided.Describe();
    EXPECT_EQ(JsonString(decided.object(), "decision"), "request_changes");
    EXPECT_EQ(WaitStatus(serve, run), "completed");
    Events events = env_.Events(run);
    const auto* recorded = FindEvent(events, "human_task.decided");
    ASSERT_NE(recorded, nullptr) << Describe(events);
    EXPECT_EQ(JsonString(recorded->data, "idempotency_key"), "k1");
    const auto* completed = FindEvent(events, "human_task.completed");
    ASSERT_NE(completed, nullptr) << Describe(events);
    EXPECT_EQ(JsonString(completed->data, "signal"), "request_changes");
    auto unknown =
        serve.Admin("POST", "/api/runs/" + run + "/tasks/review/decision", R"({"action":"maybe"})");
    EXPECT_EQ(unknown.status, 400) << unknown.Describe();
}

}  // namespace
}  // namespace strowger::testing
