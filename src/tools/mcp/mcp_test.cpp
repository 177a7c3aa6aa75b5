// McpClient against the real npm servers (@modelcontextprotocol/server-everything and
// server-filesystem, pinned in tests/mcp_servers/package-lock.json and installed into the build
// tree by the first test that needs them: tests/testing/mcp_servers.hpp) and a scriptable fake
// server (testdata/).
#include "tools/mcp/mcp_client.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "testing/mcp_servers.hpp"
#include "testing/test_util.hpp"

namespace strowger::tools::mcp {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

// ASSERT_* for coroutines: records the failure and ends the test coroutine.
#define CO_ASSERT_TRUE(condition)                             \
    do {                                                      \
        if (!(condition)) {                                   \
            ADD_FAILURE() << "expected true: " << #condition; \
            co_return;                                        \
        }                                                     \
    } while (false)
#define CO_ASSERT_OK(result)                                                        \
    do {                                                                            \
        if (!(result)) {                                                            \
            ADD_FAILURE() << #result << " failed: " << (result).error().ToString(); \
            co_return;                                                              \
        }                                                                           \
    } while (false)

// Runs `body` (given the io_context's executor for the clients) on a strand of an io_context
// served by `threads` threads, and stops everything left (servers included) when it is done.
void RunTest(std::function<Awaitable<void>(Executor)> body, int threads = 1,
             std::chrono::seconds timeout = 120s) {
    asio::io_context io(threads);
    std::atomic<bool> done = false;
    std::exception_ptr failure;
    auto strand = asio::make_strand(io);
    asio::co_spawn(strand, body(io.get_executor()), [&](std::exception_ptr e) {
        failure = e;
        done = true;
        io.stop();
    });
    std::vector<std::thread> workers;
    for (int i = 1; i < threads; ++i) workers.emplace_back([&] { io.run_for(timeout); });
    io.run_for(timeout);
    io.stop();
    for (auto& worker : workers) worker.join();
    if (failure) std::rethrow_exception(failure);
    EXPECT_TRUE(done) << "the test coroutine did not finish within " << timeout.count() << "s";
}

McpServerSpec FakeServer(std::string mode, std::string name = "fake") {
    McpServerSpec spec;
    spec.name = std::move(name);
    spec.command = testing::FindInPath("node");
    spec.args = {STROWGER_MCP_FAKE_SERVER, std::move(mode)};
    return spec;
}

// The fake server, recording each process it starts in `starts_file` (see the script), with
// `later_mode` (if not empty) from its second start on.
McpServerSpec CountedFakeServer(const fs::path& starts_file, std::string mode,
                                std::string later_mode = "", std::string name = "fake") {
    McpServerSpec spec = FakeServer(std::move(mode), std::move(name));
    if (!later_mode.empty()) spec.args.push_back(std::move(later_mode));
    spec.env["FAKE_MCP_STARTS_FILE"] = starts_file.string();
    return spec;
}

// A clock whose steady time moves only when told to: the restart window in tests.
class ManualClock : public Clock {
  public:
    SystemTime Now() const override { return std::chrono::system_clock::now(); }
    SteadyTime SteadyNow() const override {
        return base_ + std::chrono::nanoseconds(offset_.load());
    }
    void Advance(std::chrono::nanoseconds by) { offset_ += by.count(); }

  private:
    const SteadyTime base_ = std::chrono::steady_clock::now();
    std::atomic<int64_t> offset_ = 0;
};

// Copies what the default logger writes while it lives (create and read it outside RunTest).
class LogCapture {
  public:
    LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
        spdlog::default_logger()->sinks().push_back(sink_);
    }
    ~LogCapture() {
        auto& sinks = spdlog::default_logger()->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    std::string text() const { return stream_.str(); }

  private:
    std::ostringstream stream_;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

size_t Count(const std::string& text, const std::string& part) {
    size_t count = 0;
    for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
        ++count;
    }
    return count;
}

std::vector<std::string> ToolNames(const std::vector<McpToolInfo>& tools) {
    std::vector<std::string> names;
    for (const McpToolInfo& tool : tools) names.push_back(tool.name);
    return names;
}

Deadline StartDeadline() {
    return Deadline::After(60s);
}

Deadline CallDeadline() {
    return Deadline::After(30s);
}

struct Outcomes {
    std::vector<std::size_t> completion_order;
    std::vector<Result<ToolResult>> results;  // in the order of the calls
};

// Makes all `calls` (tool, arguments) at once and waits for every one.
Awaitable<Outcomes> CallConcurrently(std::shared_ptr<McpClient> client,
                                     std::vector<std::pair<std::string, std::string>> calls,
                                     Deadline deadline) {
    Executor executor = co_await asio::this_coro::executor;
    using Op = decltype(asio::co_spawn(executor, std::declval<Awaitable<Result<ToolResult>>>(),
                                       asio::deferred));
    std::vector<Op> ops;
    for (auto& [tool, arguments] : calls) {
        ops.push_back(asio::co_spawn(executor, client->CallTool(tool, arguments, "", deadline),
                                     asio::deferred));
    }
    auto [order, exceptions, results] =
        co_await asio::experimental::make_parallel_group(std::move(ops))
            .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    for (const auto& exception : exceptions) EXPECT_FALSE(exception);
    Outcomes outcomes;
    outcomes.completion_order = std::move(order);
    outcomes.results = std::move(results);
    co_return outcomes;
}

std::string Arguments(json::object arguments) {
    return json::serialize(arguments);
}

// The non-empty lines of `file` (none if it does not exist).
std::vector<std::string> Lines(const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) lines.push_back(line);
    }
    return lines;
}

// Waits until `file` has `count` lines, checking every 10 ms for up to 20 s; false if it never
// does. (The condition is what the test waits for; the interval only bounds the polling.)
Awaitable<bool> WaitForLines(fs::path file, size_t count) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto give_up = std::chrono::steady_clock::now() + 20s;
    while (Lines(file).size() < count) {
        if (std::chrono::steady_clock::now() > give_up) co_return false;
        timer.expires_after(10ms);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return true;
}

// ---------------------------------------------------------------------------------------------
// The real servers from npm.

class NpmServerTest : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        static Result<fs::path> installed = testing::InstallMcpTestServers();
        bin_ = installed;
    }
    void SetUp() override { ASSERT_TRUE(bin_.has_value()) << bin_.error().ToString(); }

    static McpServerSpec Everything() {
        McpServerSpec spec;
        spec.name = "everything";
        spec.command = (*bin_ / "mcp-server-everything").string();
        spec.args = {"stdio"};
        return spec;
    }
    static McpServerSpec Filesystem(const fs::path& root) {
        McpServerSpec spec;
        spec.name = "files";
        spec.command = (*bin_ / "mcp-server-filesystem").string();
        spec.args = {root.string()};
        return spec;
    }

    static inline Result<fs::path> bin_ = std::unexpected(Error());
};

TEST_F(NpmServerTest, ListsTheEverythingServersTools) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto tools = co_await (*client)->ListTools(CallDeadline());
        CO_ASSERT_OK(tools);
        std::vector<std::string> names;
        const McpToolInfo* echo = nullptr;
        for (const McpToolInfo& tool : *tools) {
            names.push_back(tool.name);
            if (tool.name == "echo") echo = &tool;
        }
        EXPECT_THAT(names, IsSupersetOf({"echo", "get-sum", "get-tiny-image",
                                         "trigger-long-running-operation"}));
        CO_ASSERT_TRUE(echo != nullptr);
        EXPECT_EQ(echo->description, "Echoes back the input string");
        auto schema = ParseJson(echo->input_schema);
        CO_ASSERT_OK(schema);
        const json::object& object = schema->as_object();
        EXPECT_EQ(object.at("type"), "object");
        EXPECT_EQ(object.at("properties").at("message").at("type"), "string");
        EXPECT_EQ(object.at("required"), json::array({"message"}));
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, EchoAndGetSumReturnExactText) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        std::string echo_arguments = Arguments({{"message", "hello, wörld"}});
        auto echo = co_await (*client)->CallTool("echo", echo_arguments, "r/n/1/1", CallDeadline());
        CO_ASSERT_OK(echo);
        EXPECT_EQ(echo->content, "Echo: hello, wörld");
        EXPECT_FALSE(echo->is_error);

        auto sum = co_await (*client)->CallTool("get-sum", R"({"a": 2, "b": 3.5})", "r/n/1/2",
                                                CallDeadline());
        CO_ASSERT_OK(sum);
        EXPECT_EQ(sum->content, "The sum of 2 and 3.5 is 5.5.");
        EXPECT_FALSE(sum->is_error);
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, ImageAndResourceBlocksAreSummarized) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        // An empty argument text means no arguments.
        auto image = co_await (*client)->CallTool("get-tiny-image", "", "", CallDeadline());
        CO_ASSERT_OK(image);
        EXPECT_THAT(image->content, HasSubstr("[image: image/png]"));
        EXPECT_LT(image->content.size(), 1000u) << "the image data must not reach the model";

        auto resource = co_await (*client)->CallTool("get-resource-reference",
                                                     R"({"resourceType": "Text", "resourceId": 1})",
                                                     "", CallDeadline());
        CO_ASSERT_OK(resource);
        EXPECT_EQ(resource->content,
                  "Returning resource reference for Resource 1:\n"
                  "[resource: demo://resource/dynamic/text/1]\n"
                  "You can access this resource using the URI: demo://resource/dynamic/text/1");
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, UnknownToolAndSchemaViolationAreToolErrors) {
    // This server (TypeScript SDK 1.32) reports both as isError results, not JSON-RPC errors;
    // the fake server covers the JSON-RPC error path (JsonRpcErrorIsAnErrorResult).
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto unknown = co_await (*client)->CallTool("no-such-tool", "{}", "", CallDeadline());
        CO_ASSERT_OK(unknown);
        EXPECT_TRUE(unknown->is_error);
        EXPECT_THAT(unknown->content, HasSubstr("Tool no-such-tool not found"));

        auto invalid =
            co_await (*client)->CallTool("get-sum", R"({"a": "two"})", "", CallDeadline());
        CO_ASSERT_OK(invalid);
        EXPECT_TRUE(invalid->is_error);
        EXPECT_THAT(invalid->content, HasSubstr("Input validation error"));
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, ArgumentsThatAreNotAJsonObjectAreRejected) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        for (std::string arguments : {"{\"message\": ", "[\"hi\"]", "\"hi\"", "42"}) {
            auto result = co_await (*client)->CallTool("echo", arguments, "", CallDeadline());
            CO_ASSERT_TRUE(!result);
            EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument) << arguments;
            EXPECT_THAT(result.error().message(), HasSubstr("MCP server 'everything'"));
        }
        // The server is still fine.
        auto echo =
            co_await (*client)->CallTool("echo", R"({"message": "ok"})", "", CallDeadline());
        CO_ASSERT_OK(echo);
        EXPECT_EQ(echo->content, "Echo: ok");
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, ConcurrentCallsAreMatchedToTheirResponses) {
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = Everything();
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            std::vector<std::pair<std::string, std::string>> calls;
            calls.emplace_back("trigger-long-running-operation", R"({"duration": 2, "steps": 2})");
            for (int i = 0; i < 24; ++i) {
                if (i % 3 == 0) {
                    calls.emplace_back("get-sum", Arguments({{"a", i}, {"b", 1000}}));
                } else {
                    calls.emplace_back("echo",
                                       Arguments({{"message", "call " + std::to_string(i)}}));
                }
            }
            Outcomes outcomes = co_await CallConcurrently(*client, calls, CallDeadline());
            CO_ASSERT_TRUE(outcomes.results.size() == calls.size());
            CO_ASSERT_OK(outcomes.results[0]);
            EXPECT_EQ(outcomes.results[0]->content,
                      "Long running operation completed. Duration: 2 seconds, Steps: 2.");
            for (int i = 0; i < 24; ++i) {
                const Result<ToolResult>& result = outcomes.results[i + 1];
                CO_ASSERT_OK(result);
                std::string expected = i % 3 == 0
                                           ? "The sum of " + std::to_string(i) + " and 1000 is " +
                                                 std::to_string(i + 1000) + "."
                                           : "Echo: call " + std::to_string(i);
                EXPECT_EQ(result->content, expected);
            }
            // The slow call did not hold up the others.
            EXPECT_EQ(outcomes.completion_order.back(), 0u);
            (*client)->Shutdown();
        },
        /*threads=*/2);
}

TEST_F(NpmServerTest, DeadlineExpiresOnASlowToolAndTheClientGoesOn) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto start = std::chrono::steady_clock::now();
        auto slow = co_await (*client)->CallTool("trigger-long-running-operation",
                                                 R"({"duration": 20, "steps": 4})", "",
                                                 Deadline::After(500ms));
        auto elapsed = std::chrono::steady_clock::now() - start;
        CO_ASSERT_TRUE(!slow);
        EXPECT_EQ(slow.error().code(), ErrorCode::kDeadlineExceeded);
        EXPECT_THAT(slow.error().message(), HasSubstr("MCP server 'everything'"));
        EXPECT_GE(elapsed, 500ms);
        EXPECT_LT(elapsed, 5s);

        auto echo =
            co_await (*client)->CallTool("echo", R"({"message": "after"})", "", CallDeadline());
        CO_ASSERT_OK(echo);
        EXPECT_EQ(echo->content, "Echo: after");
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, McpToolAdaptsAServerToolToTheToolInterface) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        spec.default_safety = SafetyClass::kIdempotentWrite;
        spec.tool_safety["echo"] = SafetyClass::kReadOnly;
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto tools = co_await (*client)->ListTools(CallDeadline());
        CO_ASSERT_OK(tools);
        std::map<std::string, std::shared_ptr<Tool>> adapted;
        for (const McpToolInfo& info : *tools) {
            std::shared_ptr<Tool> tool = MakeMcpTool(*client, info);
            EXPECT_EQ(tool->spec().description, info.description);
            EXPECT_EQ(tool->spec().parameters_schema, info.input_schema);
            adapted[tool->spec().name] = tool;
        }
        CO_ASSERT_TRUE(adapted.contains("everything/echo"));
        CO_ASSERT_TRUE(adapted.contains("everything/get-sum"));
        EXPECT_EQ(adapted["everything/echo"]->safety(), SafetyClass::kReadOnly);
        EXPECT_EQ(adapted["everything/get-sum"]->safety(), SafetyClass::kIdempotentWrite);

        ToolContext context;
        context.idempotency_key = "run-1/agent/1/1";
        context.deadline = CallDeadline();
        auto result =
            co_await adapted["everything/echo"]->Call(R"({"message": "via Tool"})", context);
        CO_ASSERT_OK(result);
        EXPECT_EQ(result->content, "Echo: via Tool");
        (*client)->Shutdown();
    });
}

// The server dies (kill -9) while a call is in flight: that call fails at once and is not
// retried; the next call starts the server again (a new process) and succeeds.
TEST_F(NpmServerTest, KilledMidCallFailsTheCallInFlightAndTheNextCallRestartsTheServer) {
    testing::TempDir dir;
    const fs::path pid_file = dir.path() / "server.pids";
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        // The same server, through a shell that appends its pid (exec keeps it) for the kill,
        // one line per start.
        spec.args = {"-c",
                     "echo $$ >> '" + pid_file.string() + "'; exec '" + spec.command + "' stdio"};
        spec.command = "/bin/sh";
        auto started = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(started);
        std::shared_ptr<McpClient> client = *started;
        Deadline deadline = CallDeadline();

        std::optional<Result<ToolResult>> long_result;
        asio::steady_timer long_done(executor, asio::steady_timer::time_point::max());
        std::string long_tool = "trigger-long-running-operation";
        std::string long_arguments = R"({"duration": 60, "steps": 1})";
        auto long_call = client->CallTool(long_tool, long_arguments, "", deadline);
        asio::co_spawn(executor, std::move(long_call),
                       [&](std::exception_ptr, Result<ToolResult> result) {
                           long_result.emplace(std::move(result));
                           long_done.cancel();
                       });
        // The server answers calls concurrently: once a later echo is back, the long call has
        // reached it and is running.
        std::string echo_tool = "echo";
        std::string echo_arguments = Arguments({{"message", "still here"}});
        auto echo = co_await client->CallTool(echo_tool, echo_arguments, "", deadline);
        CO_ASSERT_OK(echo);
        EXPECT_EQ(echo->content, "Echo: still here");
        CO_ASSERT_TRUE(!long_result.has_value());

        std::vector<std::string> pids = Lines(pid_file);
        CO_ASSERT_TRUE(pids.size() == 1u);
        pid_t pid = std::stoi(pids[0]);
        CO_ASSERT_TRUE(pid > 0);
        CO_ASSERT_TRUE(::kill(pid, SIGKILL) == 0);
        if (!long_result) co_await long_done.async_wait(asio::as_tuple(asio::use_awaitable));
        CO_ASSERT_TRUE(long_result.has_value());
        CO_ASSERT_TRUE(!*long_result);
        EXPECT_EQ(long_result->error().code(), ErrorCode::kUnavailable);
        EXPECT_THAT(long_result->error().message(), HasSubstr("MCP server 'everything' exited"));
        // Well before the call's own deadline: the exit is noticed, not waited out.
        EXPECT_GT(deadline.Remaining(), 20s);
        // The failed call was not retried: no second process yet.
        EXPECT_EQ(Lines(pid_file).size(), 1u);

        std::string after_arguments = Arguments({{"message", "back again"}});
        auto later = co_await client->CallTool(echo_tool, after_arguments, "", CallDeadline());
        CO_ASSERT_OK(later);
        EXPECT_EQ(later->content, "Echo: back again");
        EXPECT_FALSE(later->is_error);
        // A new process served it, and the client refreshed its tool list.
        pids = Lines(pid_file);
        CO_ASSERT_TRUE(pids.size() == 2u);
        pid_t new_pid = std::stoi(pids[1]);
        EXPECT_NE(new_pid, pid);
        EXPECT_EQ(::kill(new_pid, 0), 0) << "the restarted server is running";
        std::vector<std::string> names;
        for (const McpToolInfo& tool : client->LastToolList()) names.push_back(tool.name);
        EXPECT_THAT(names, IsSupersetOf({"echo", "get-sum", "trigger-long-running-operation"}));
        client->Shutdown();
    });
}

TEST_F(NpmServerTest, ShutdownStopsTheServerAndFailsLaterCalls) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        (*client)->Shutdown();
        auto echo =
            co_await (*client)->CallTool("echo", R"({"message": "late"})", "", CallDeadline());
        CO_ASSERT_TRUE(!echo);
        EXPECT_EQ(echo.error().code(), ErrorCode::kUnavailable);
        EXPECT_THAT(echo.error().message(), HasSubstr("MCP server 'everything' was shut down"));
        auto tools = co_await (*client)->ListTools(CallDeadline());
        CO_ASSERT_TRUE(!tools);
        EXPECT_EQ(tools.error().code(), ErrorCode::kUnavailable);
    });
}

TEST_F(NpmServerTest, ServerGetsOnlyTheScrubbedEnvironmentAndItsOwnVariables) {
    ::setenv("STROWGER_MCP_TEST_LEAK", "must not reach the server", 1);
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Everything();
        spec.env["STROWGER_MCP_TEST_VAR"] = "declared";
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto env = co_await (*client)->CallTool("get-env", "{}", "", CallDeadline());
        CO_ASSERT_OK(env);
        EXPECT_THAT(env->content, HasSubstr(R"("STROWGER_MCP_TEST_VAR": "declared")"));
        EXPECT_THAT(env->content, HasSubstr(R"("PATH")"));
        EXPECT_THAT(env->content, ::testing::Not(HasSubstr("STROWGER_MCP_TEST_LEAK")));
        (*client)->Shutdown();
    });
    ::unsetenv("STROWGER_MCP_TEST_LEAK");
}

TEST_F(NpmServerTest, RunsInsideTheSandbox) {
    {
        asio::io_context io;
        auto sandbox = sandbox::CreateBubblewrapSandbox(io.get_executor());
        if (!sandbox && sandbox.error().code() == ErrorCode::kFailedPrecondition) {
            GTEST_SKIP() << sandbox.error().message();
        }
    }
    strowger::testing::TempDir workspace;
    workspace.Write("inside.txt", "visible in the sandbox");
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Filesystem(workspace.path());
        spec.sandboxed = true;
        spec.working_dir = workspace.path();
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        std::string write_arguments = Arguments(
            {{"path", (workspace.path() / "written.txt").string()}, {"content", "from inside"}});
        auto write =
            co_await (*client)->CallTool("write_file", write_arguments, "", CallDeadline());
        CO_ASSERT_OK(write);
        EXPECT_FALSE(write->is_error) << write->content;
        EXPECT_EQ(strowger::testing::ReadFileOrDie((workspace.path() / "written.txt").string()),
                  "from inside");
        std::string read_arguments =
            Arguments({{"path", (workspace.path() / "inside.txt").string()}});
        auto read = co_await (*client)->CallTool("read_file", read_arguments, "", CallDeadline());
        CO_ASSERT_OK(read);
        EXPECT_EQ(read->content, "visible in the sandbox");
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, FilesystemServerReadsAndListsItsAllowedRoot) {
    strowger::testing::TempDir root;
    root.Write("notes/a.txt", "hello file\nsecond line\n");
    root.Write("notes/b.md", "# B\n");
    fs::create_directories(root.path() / "notes" / "sub");
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Filesystem(root.path());
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto tools = co_await (*client)->ListTools(CallDeadline());
        CO_ASSERT_OK(tools);
        std::vector<std::string> names;
        for (const McpToolInfo& tool : *tools) names.push_back(tool.name);
        EXPECT_THAT(names, IsSupersetOf({"read_file", "list_directory", "write_file"}));

        std::string read_arguments =
            Arguments({{"path", (root.path() / "notes" / "a.txt").string()}});
        auto read = co_await (*client)->CallTool("read_file", read_arguments, "", CallDeadline());
        CO_ASSERT_OK(read);
        EXPECT_FALSE(read->is_error);
        EXPECT_EQ(read->content, "hello file\nsecond line\n");

        std::string list_arguments = Arguments({{"path", (root.path() / "notes").string()}});
        auto list =
            co_await (*client)->CallTool("list_directory", list_arguments, "", CallDeadline());
        CO_ASSERT_OK(list);
        EXPECT_FALSE(list->is_error);
        std::vector<std::string> lines;
        std::stringstream stream(list->content);
        for (std::string line; std::getline(stream, line);) lines.push_back(line);
        std::sort(lines.begin(), lines.end());
        EXPECT_THAT(lines, ElementsAre("[DIR] sub", "[FILE] a.txt", "[FILE] b.md"));
        (*client)->Shutdown();
    });
}

TEST_F(NpmServerTest, FilesystemServerRefusesPathsOutsideItsRoot) {
    strowger::testing::TempDir root;
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = Filesystem(root.path());
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto outside = co_await (*client)->CallTool("read_file", R"({"path": "/etc/hostname"})", "",
                                                    CallDeadline());
        CO_ASSERT_OK(outside);
        EXPECT_TRUE(outside->is_error);
        EXPECT_THAT(outside->content, HasSubstr("Access denied"));

        std::string missing_arguments =
            Arguments({{"path", (root.path() / "missing.txt").string()}});
        auto missing =
            co_await (*client)->CallTool("read_file", missing_arguments, "", CallDeadline());
        CO_ASSERT_OK(missing);
        EXPECT_TRUE(missing->is_error);
        EXPECT_THAT(missing->content, HasSubstr("ENOENT"));
        (*client)->Shutdown();
    });
}

// ---------------------------------------------------------------------------------------------
// The fake server: behaviours the real servers do not show on demand.

TEST(McpFakeServerTest, ServerExitingMidCallFailsEveryPendingCallAndTheServerComesBack) {
    testing::TempDir dir;
    const fs::path starts = dir.path() / "starts";
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = CountedFakeServer(starts, "exit-on-call", "", "crashy");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto tools = co_await (*client)->ListTools(CallDeadline());
        CO_ASSERT_OK(tools);
        EXPECT_EQ(tools->size(), 6u);

        std::vector<std::pair<std::string, std::string>> calls(3, {"echo", R"({"message":"x"})"});
        Outcomes outcomes = co_await CallConcurrently(*client, calls, CallDeadline());
        for (const Result<ToolResult>& result : outcomes.results) {
            CO_ASSERT_TRUE(!result);
            EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
            EXPECT_THAT(result.error().message(), HasSubstr("MCP server 'crashy' exited: "));
            EXPECT_THAT(result.error().message(), HasSubstr("the fake server gave up"));
        }
        // None of the three was retried.
        EXPECT_EQ(Lines(starts).size(), 1u);
        // The next request starts the server again.
        auto tools_again = co_await (*client)->ListTools(CallDeadline());
        CO_ASSERT_OK(tools_again);
        EXPECT_EQ(tools_again->size(), 6u);
        EXPECT_EQ(tools_again->back().name, "start-2");
        EXPECT_EQ(Lines(starts).size(), 2u);
        (*client)->Shutdown();
    });
}

// ---------------------------------------------------------------------------------------------
// Restarting a server that exited.

TEST(McpRestartTest, ConcurrentCallsDuringARestartStartOneServer) {
    testing::TempDir dir;
    const fs::path starts = dir.path() / "starts";
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = CountedFakeServer(starts, "normal");
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            auto first = co_await (*client)->CallTool("pid", "", "", CallDeadline());
            CO_ASSERT_OK(first);
            auto crash = co_await (*client)->CallTool("crash", "", "", CallDeadline());
            CO_ASSERT_TRUE(!crash);
            EXPECT_EQ(crash.error().code(), ErrorCode::kUnavailable);
            EXPECT_THAT(crash.error().message(), HasSubstr("MCP server 'fake' exited: "));
            EXPECT_THAT(crash.error().message(), HasSubstr("fake server: crashing on request"));
            EXPECT_EQ(Lines(starts).size(), 1u);

            // All eight find the server dead; the first starts a restart, the rest join it.
            std::vector<std::pair<std::string, std::string>> calls(8, {"pid", ""});
            Outcomes outcomes = co_await CallConcurrently(*client, calls, CallDeadline());
            std::vector<std::string> pids = Lines(starts);
            CO_ASSERT_TRUE(pids.size() == 2u);
            EXPECT_EQ(pids[0], first->content);
            EXPECT_NE(pids[1], pids[0]);
            for (const Result<ToolResult>& result : outcomes.results) {
                CO_ASSERT_OK(result);
                EXPECT_EQ(result->content, pids[1]);
            }
            (*client)->Shutdown();
        },
        /*threads=*/2, 60s);
}

TEST(McpRestartTest, RestartRefreshesTheToolList) {
    testing::TempDir dir;
    const fs::path starts = dir.path() / "starts";
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = CountedFakeServer(starts, "normal");
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            EXPECT_TRUE((*client)->LastToolList().empty());
            auto tools = co_await (*client)->ListTools(CallDeadline());
            CO_ASSERT_OK(tools);
            EXPECT_EQ(tools->back().name, "start-1");
            EXPECT_EQ(ToolNames((*client)->LastToolList()),
                      std::vector<std::string>({"a", "b", "c", "d", "e", "start-1"}));
            auto one = co_await (*client)->CallTool("start-1", "", "", CallDeadline());
            CO_ASSERT_OK(one);
            EXPECT_EQ(one->content, "start 1");
            auto crash = co_await (*client)->CallTool("crash", "", "", CallDeadline());
            CO_ASSERT_TRUE(!crash);

            // The tool is gone from the restarted server: its own error, as for any unknown tool.
            auto gone = co_await (*client)->CallTool("start-1", "", "", CallDeadline());
            CO_ASSERT_TRUE(!gone);
            EXPECT_EQ(gone.error().code(), ErrorCode::kInvalidArgument);
            EXPECT_THAT(gone.error().message(), HasSubstr("Unknown tool: start-1"));
            EXPECT_EQ(Lines(starts).size(), 2u);
            // The restart listed the new server's tools before the call.
            EXPECT_EQ(ToolNames((*client)->LastToolList()),
                      std::vector<std::string>({"a", "b", "c", "d", "e", "start-2"}));
            auto two = co_await (*client)->CallTool("start-2", "", "", CallDeadline());
            CO_ASSERT_OK(two);
            EXPECT_EQ(two->content, "start 2");
            (*client)->Shutdown();
        },
        /*threads=*/1, 60s);
}

// A server that exits on every call: each crash but the fourth within the window is followed by a
// restart; the fourth is not, until the window has passed (measured by a fake clock).
TEST(McpRestartTest, RestartLimitStopsAServerThatKeepsCrashing) {
    testing::TempDir dir;
    const fs::path starts = dir.path() / "starts";
    ManualClock clock;
    LogCapture log;
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = CountedFakeServer(starts, "exit-on-call", "", "crashy");
            spec.env["FAKE_MCP_SECRET"] = "hunter2-do-not-log";
            spec.restart_window = 5s;
            spec.clock = &clock;
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            std::string arguments = Arguments({{"message", "argument-do-not-log"}});
            // The first process and three restarts, each crashing on its call.
            for (size_t call = 1; call <= 4; ++call) {
                auto result = co_await (*client)->CallTool("echo", arguments, "", CallDeadline());
                CO_ASSERT_TRUE(!result);
                EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
                EXPECT_THAT(result.error().message(), HasSubstr("MCP server 'crashy' exited: "));
                EXPECT_THAT(result.error().message(), HasSubstr("the fake server gave up"));
                EXPECT_EQ(Lines(starts).size(), call);
            }
            // The fourth exit in the window: no restart, for calls and listing alike.
            std::string refusal = "MCP server 'crashy' exited 4 times in 5s; not restarting: ";
            for (int attempt = 0; attempt < 2; ++attempt) {
                auto start = std::chrono::steady_clock::now();
                auto refused = co_await (*client)->CallTool("echo", arguments, "", CallDeadline());
                CO_ASSERT_TRUE(!refused);
                EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
                EXPECT_THAT(refused.error().message(), HasSubstr(refusal));
                EXPECT_THAT(refused.error().message(), HasSubstr("the fake server gave up"));
                EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "fails fast";
            }
            auto listed = co_await (*client)->ListTools(CallDeadline());
            CO_ASSERT_TRUE(!listed);
            EXPECT_THAT(listed.error().message(), HasSubstr(refusal));
            EXPECT_EQ(Lines(starts).size(), 4u) << "1 start + 3 restarts";

            // Just short of the window after the restarts: still refused.
            clock.Advance(5s - 1ms);
            auto still = co_await (*client)->CallTool("echo", arguments, "", CallDeadline());
            CO_ASSERT_TRUE(!still);
            EXPECT_THAT(still.error().message(), HasSubstr(refusal));
            EXPECT_EQ(Lines(starts).size(), 4u);
            // The window has passed: the server is restarted (and lists its tools).
            clock.Advance(1ms);
            auto back = co_await (*client)->ListTools(CallDeadline());
            CO_ASSERT_OK(back);
            EXPECT_EQ(back->back().name, "start-5");
            EXPECT_EQ(Lines(starts).size(), 5u);
            (*client)->Shutdown();
        },
        /*threads=*/1, 90s);
    std::string logged = log.text();
    for (int k = 1; k <= 3; ++k) {
        EXPECT_THAT(logged, HasSubstr("MCP server 'crashy' exited; restarting (restart " +
                                      std::to_string(k) + " of 3 in 5s)"));
    }
    EXPECT_EQ(Count(logged, "exited; restarting (restart 1 of 3 in 5s)"), 2u)
        << "once in the first window, once after it: " << logged;
    EXPECT_THAT(logged, Not(HasSubstr("restart 4 of")));
    EXPECT_THAT(logged, Not(HasSubstr("hunter2-do-not-log")));
    EXPECT_THAT(logged, Not(HasSubstr("argument-do-not-log")));
    EXPECT_THAT(logged, Not(HasSubstr(STROWGER_MCP_FAKE_SERVER)));
}

// The restarted server dies at start: every call waiting for that restart gets its error, and
// failed restarts count towards the limit.
TEST(McpRestartTest, AFailedRestartFailsEveryCallWaitingForIt) {
    testing::TempDir dir;
    const fs::path starts = dir.path() / "starts";
    ManualClock clock;
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = CountedFakeServer(starts, "normal", "exit-at-start");
            spec.clock = &clock;
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            auto crash = co_await (*client)->CallTool("crash", "", "", CallDeadline());
            CO_ASSERT_TRUE(!crash);
            EXPECT_THAT(crash.error().message(), HasSubstr("crashing on request"));

            std::vector<std::pair<std::string, std::string>> calls(6, {"echo", "{}"});
            Outcomes outcomes = co_await CallConcurrently(*client, calls, CallDeadline());
            EXPECT_EQ(Lines(starts).size(), 2u) << "one restart for all six calls";
            for (const Result<ToolResult>& result : outcomes.results) {
                CO_ASSERT_TRUE(!result);
                EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
                EXPECT_THAT(result.error().message(), HasSubstr("MCP server 'fake' exited: "));
                EXPECT_THAT(result.error().message(), HasSubstr("missing configuration"));
                EXPECT_EQ(result.error().message(), outcomes.results[0].error().message());
            }
            // Each later call tries again, up to the limit.
            for (size_t started = 3; started <= 4; ++started) {
                auto again = co_await (*client)->CallTool("echo", "{}", "", CallDeadline());
                CO_ASSERT_TRUE(!again);
                EXPECT_THAT(again.error().message(), HasSubstr("missing configuration"));
                EXPECT_EQ(Lines(starts).size(), started);
            }
            auto refused = co_await (*client)->CallTool("echo", "{}", "", CallDeadline());
            CO_ASSERT_TRUE(!refused);
            EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
            EXPECT_THAT(refused.error().message(),
                        HasSubstr("MCP server 'fake' exited 4 times in 60s; not restarting: "));
            EXPECT_THAT(refused.error().message(), HasSubstr("missing configuration"));
            EXPECT_EQ(Lines(starts).size(), 4u);
            (*client)->Shutdown();
        },
        /*threads=*/2, 60s);
}

TEST(McpRestartTest, NoRestartAfterShutdown) {
    testing::TempDir dir;
    const fs::path starts = dir.path() / "starts";
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = CountedFakeServer(starts, "normal");
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            auto crash = co_await (*client)->CallTool("crash", "", "", CallDeadline());
            CO_ASSERT_TRUE(!crash);
            (*client)->Shutdown();
            auto echo =
                co_await (*client)->CallTool("echo", R"({"message": "x"})", "", CallDeadline());
            CO_ASSERT_TRUE(!echo);
            EXPECT_EQ(echo.error().code(), ErrorCode::kUnavailable);
            EXPECT_THAT(echo.error().message(), HasSubstr("MCP server 'fake' was shut down"));
            auto tools = co_await (*client)->ListTools(CallDeadline());
            CO_ASSERT_TRUE(!tools);
            EXPECT_THAT(tools.error().message(), HasSubstr("MCP server 'fake' was shut down"));
            EXPECT_EQ(Lines(starts).size(), 1u);
        },
        /*threads=*/1, 60s);
}

// Shutdown while a restart waits for a server that never answers: the waiting call fails at
// once (not at its deadline) and nothing is started again.
TEST(McpRestartTest, ShutdownDuringARestartFailsTheWaitingCalls) {
    testing::TempDir dir;
    const fs::path starts = dir.path() / "starts";
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = CountedFakeServer(starts, "normal", "silent");
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            auto crash = co_await (*client)->CallTool("crash", "", "", CallDeadline());
            CO_ASSERT_TRUE(!crash);

            std::optional<Result<ToolResult>> waiting;
            asio::steady_timer waiting_done(executor, asio::steady_timer::time_point::max());
            auto start = std::chrono::steady_clock::now();
            auto call = (*client)->CallTool("echo", R"({"message": "x"})", "", CallDeadline());
            asio::co_spawn(executor, std::move(call),
                           [&](std::exception_ptr, Result<ToolResult> result) {
                               waiting.emplace(std::move(result));
                               waiting_done.cancel();
                           });
            // The restarted server is running (and will never answer the handshake).
            bool restarted = co_await WaitForLines(starts, 2);
            CO_ASSERT_TRUE(restarted);
            CO_ASSERT_TRUE(!waiting.has_value());
            (*client)->Shutdown();
            if (!waiting) co_await waiting_done.async_wait(asio::as_tuple(asio::use_awaitable));
            CO_ASSERT_TRUE(waiting.has_value());
            CO_ASSERT_TRUE(!*waiting);
            EXPECT_EQ(waiting->error().code(), ErrorCode::kUnavailable);
            EXPECT_THAT(waiting->error().message(), HasSubstr("MCP server 'fake' was shut down"));
            EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
            auto later = co_await (*client)->CallTool("echo", "{}", "", CallDeadline());
            CO_ASSERT_TRUE(!later);
            EXPECT_THAT(later.error().message(), HasSubstr("was shut down"));
            EXPECT_EQ(Lines(starts).size(), 2u);
        },
        /*threads=*/1, 60s);
}

TEST(McpFakeServerTest, ListToolsFollowsNextCursor) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("normal");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto tools = co_await (*client)->ListTools(CallDeadline());
        CO_ASSERT_OK(tools);
        std::vector<std::string> names;
        for (const McpToolInfo& tool : *tools) names.push_back(tool.name);
        EXPECT_THAT(names, ElementsAre("a", "b", "c", "d", "e"));
        EXPECT_EQ(tools->back().description, "tool e");
        EXPECT_EQ(tools->back().input_schema,
                  R"({"type":"object","properties":{"message":{"type":"string"}}})");
        (*client)->Shutdown();
    });
}

TEST(McpFakeServerTest, ServerToClientRequestsAreAnswered) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("normal");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        // The server pings us and asks for sampling (which we do not offer) mid-call.
        auto asked = co_await (*client)->CallTool("ask", "{}", "", CallDeadline());
        CO_ASSERT_OK(asked);
        EXPECT_EQ(asked->content, "ping={} sampling=-32601");
        (*client)->Shutdown();
    });
}

TEST(McpFakeServerTest, JsonRpcErrorIsAnErrorResult) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("normal");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto unknown = co_await (*client)->CallTool("nope", "{}", "", CallDeadline());
        CO_ASSERT_TRUE(!unknown);
        EXPECT_EQ(unknown.error().code(), ErrorCode::kInvalidArgument);
        EXPECT_THAT(unknown.error().message(), HasSubstr("MCP server 'fake'"));
        EXPECT_THAT(unknown.error().message(), HasSubstr("Unknown tool: nope"));
        EXPECT_THAT(unknown.error().message(), HasSubstr("-32602"));

        auto failed = co_await (*client)->CallTool("fail", "{}", "", CallDeadline());
        CO_ASSERT_OK(failed);
        EXPECT_TRUE(failed->is_error);
        EXPECT_EQ(failed->content, "it went wrong");
        (*client)->Shutdown();
    });
}

TEST(McpFakeServerTest, IdempotencyKeyGoesInMeta) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("normal");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto meta = co_await (*client)->CallTool("meta", "{}", "run-7/review/2/3", CallDeadline());
        CO_ASSERT_OK(meta);
        EXPECT_EQ(
            meta->content,
            R"({"strowger/idempotency_key":"run-7/review/2/3","idempotencyKey":"run-7/review/2/3"})");

        McpToolInfo info;
        info.name = "meta";
        std::shared_ptr<Tool> tool = MakeMcpTool(*client, info);
        EXPECT_EQ(tool->spec().name, "fake/meta");
        EXPECT_EQ(tool->safety(), SafetyClass::kDestructive);
        ToolContext context;
        context.idempotency_key = "run-8/n/1/1";
        auto through_tool = co_await tool->Call("", context);
        CO_ASSERT_OK(through_tool);
        EXPECT_THAT(through_tool->content,
                    HasSubstr(R"("strowger/idempotency_key":"run-8/n/1/1")"));
        (*client)->Shutdown();
    });
}

TEST(McpFakeServerTest, ResponsesArriveOutOfOrder) {
    RunTest(
        [&](Executor executor) -> Awaitable<void> {
            McpServerSpec spec = FakeServer("normal");
            auto client = co_await StartMcpClient(executor, spec, StartDeadline());
            CO_ASSERT_OK(client);
            std::vector<std::pair<std::string, std::string>> calls;
            for (int i = 0; i < 5; ++i) {
                calls.emplace_back("slow", Arguments({{"ms", 100 + 150 * (4 - i)},
                                                      {"message", "m" + std::to_string(i)}}));
            }
            Outcomes outcomes = co_await CallConcurrently(*client, calls, CallDeadline());
            for (int i = 0; i < 5; ++i) {
                CO_ASSERT_OK(outcomes.results[i]);
                EXPECT_EQ(outcomes.results[i]->content, "m" + std::to_string(i));
            }
            EXPECT_THAT(outcomes.completion_order, ElementsAre(4, 3, 2, 1, 0));
            (*client)->Shutdown();
        },
        /*threads=*/2);
}

TEST(McpFakeServerTest, LateResponseAfterTheDeadlineIsDropped) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("normal");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        auto late = co_await (*client)->CallTool("slow", R"({"ms": 600, "message": "first"})", "",
                                                 Deadline::After(100ms));
        CO_ASSERT_TRUE(!late);
        EXPECT_EQ(late.error().code(), ErrorCode::kDeadlineExceeded);
        // The first call's answer arrives while this one waits; it must not be taken for it.
        auto second = co_await (*client)->CallTool("slow", R"({"ms": 1000, "message": "second"})",
                                                   "", CallDeadline());
        CO_ASSERT_OK(second);
        EXPECT_EQ(second->content, "second");
        // The server was told about the initialization and the abandoned request.
        auto seen = co_await (*client)->CallTool("seen", "", "", CallDeadline());
        CO_ASSERT_OK(seen);
        EXPECT_EQ(seen->content, R"(["notifications/initialized","notifications/cancelled"])");
        (*client)->Shutdown();
    });
}

TEST(McpFakeServerTest, CancellingACallTellsTheServer) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("normal");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        // The timer wins the race; the call is cancelled through Asio's cancellation slot.
        asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
        auto raced = co_await (
            (*client)->CallTool("slow", R"({"ms": 5000, "message": "x"})", "", CallDeadline()) ||
            timer.async_wait(asio::use_awaitable));
        EXPECT_EQ(raced.index(), 1u);
        auto seen = co_await (*client)->CallTool("seen", "", "", CallDeadline());
        CO_ASSERT_OK(seen);
        EXPECT_EQ(seen->content, R"(["notifications/initialized","notifications/cancelled"])");
        (*client)->Shutdown();
    });
}

TEST(McpFakeServerTest, LargeResponsesUpToTheLimitPassAndBiggerOnesFail) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("normal");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_OK(client);
        std::string big_arguments = Arguments({{"bytes", 4 << 20}});
        auto big = co_await (*client)->CallTool("huge", big_arguments, "", CallDeadline());
        CO_ASSERT_OK(big);
        EXPECT_EQ(big->content.size(), size_t{4} << 20);

        std::string huge_arguments = Arguments({{"bytes", 9 << 20}});
        auto huge = co_await (*client)->CallTool("huge", huge_arguments, "", CallDeadline());
        CO_ASSERT_TRUE(!huge);
        EXPECT_EQ(huge.error().code(), ErrorCode::kResourceExhausted);
        EXPECT_THAT(huge.error().message(), HasSubstr("8 MiB"));

        std::string request_arguments = Arguments({{"message", std::string(9 << 20, 'y')}});
        auto request = co_await (*client)->CallTool("echo", request_arguments, "", CallDeadline());
        CO_ASSERT_TRUE(!request);
        EXPECT_EQ(request.error().code(), ErrorCode::kResourceExhausted);

        // The session survived both.
        auto echo = co_await (*client)->CallTool("echo", R"({"message": "still here"})", "",
                                                 CallDeadline());
        CO_ASSERT_OK(echo);
        EXPECT_EQ(echo->content, "still here");
        (*client)->Shutdown();
    });
}

TEST(McpFakeServerTest, StartFailsOnAnUnsupportedProtocolVersion) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("bad-version");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_TRUE(!client);
        EXPECT_EQ(client.error().code(), ErrorCode::kFailedPrecondition);
        EXPECT_THAT(client.error().message(), HasSubstr("1999-01-01"));
    });
}

TEST(McpFakeServerTest, StartFailsWhenTheServerExits) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("exit-at-start");
        auto client = co_await StartMcpClient(executor, spec, StartDeadline());
        CO_ASSERT_TRUE(!client);
        EXPECT_EQ(client.error().code(), ErrorCode::kUnavailable);
        EXPECT_THAT(client.error().message(), HasSubstr("MCP server 'fake' exited: "));
        EXPECT_THAT(client.error().message(), HasSubstr("missing configuration"));
    });
}

TEST(McpFakeServerTest, StartFailsAtTheDeadlineWhenTheServerNeverAnswers) {
    RunTest([&](Executor executor) -> Awaitable<void> {
        McpServerSpec spec = FakeServer("silent");
        auto start = std::chrono::steady_clock::now();
        auto client = co_await StartMcpClient(executor, spec, Deadline::After(700ms));
        CO_ASSERT_TRUE(!client);
        EXPECT_EQ(client.error().code(), ErrorCode::kDeadlineExceeded);
        EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    });
}

}  // namespace
}  // namespace strowger::tools::mcp
