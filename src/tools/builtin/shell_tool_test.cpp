// The shell tool in the real sandbox: output format, environment, grants and limits.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "core/json.hpp"
#include "testing/test_util.hpp"
#include "tools/builtin/builtin_tools.hpp"

namespace strowger::tools::builtin {
namespace {

namespace fs = std::filesystem;
using testing::RunSync;
using testing::TempDir;

class ShellToolTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto sandbox = sandbox::CreateBubblewrapSandbox(io_.get_executor());
        ASSERT_TRUE(sandbox) << sandbox.error().ToString();
        shell_ = MakeShellTool(*sandbox);
        context_.workspace = dir_.path();
        context_.idempotency_key = "run-1/build/2/3";
        context_.grants.sandbox.wall_timeout_ms = 30'000;
    }

    Result<ToolResult> Run(const std::string& command) {
        json::object args;
        args["command"] = command;
        return RunSync(shell_->Call(json::serialize(args), context_), std::chrono::seconds(60));
    }

    asio::io_context io_;
    TempDir dir_;
    std::shared_ptr<Tool> shell_;
    ToolContext context_;
};

TEST_F(ShellToolTest, ReportsExitCodeAndBothStreams) {
    auto ok = Run("echo hello; echo note >&2");
    ASSERT_TRUE(ok) << ok.error().ToString();
    EXPECT_FALSE(ok->is_error);
    EXPECT_EQ(ok->content, "exit code: 0\nstdout:\nhello\nstderr:\nnote\n");
    auto failed = Run("echo partial; exit 4");
    ASSERT_TRUE(failed) << failed.error().ToString();
    EXPECT_TRUE(failed->is_error);
    EXPECT_EQ(failed->content, "exit code: 4\nstdout:\npartial\nstderr:\n(empty)\n");
}

TEST_F(ShellToolTest, RunsInTheWorkspaceWithAScrubbedEnvironment) {
    setenv("STROWGER_SHELL_TEST_SECRET", "do-not-leak-me", 1);
    auto result =
        Run("pwd; echo \"$HOME\"; echo \"$STROWGER_IDEMPOTENCY_KEY\"; env | sort | cut -d= -f1");
    unsetenv("STROWGER_SHELL_TEST_SECRET");
    ASSERT_TRUE(result) << result.error().ToString();
    std::string ws = dir_.path().string();
    std::string expected_names = "HOME\nLANG\nPATH\nPWD\nSTROWGER_IDEMPOTENCY_KEY\n";
    EXPECT_EQ(result->content, "exit code: 0\nstdout:\n" + ws + "\n" + ws + "\nrun-1/build/2/3\n" +
                                   expected_names + "stderr:\n(empty)\n");
}

TEST_F(ShellToolTest, NetworkFollowsTheGrant) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(listen(listener, 4), 0);
    socklen_t length = sizeof address;
    getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    std::string command = "bash -c 'exec 3<>/dev/tcp/127.0.0.1/" +
                          std::to_string(ntohs(address.sin_port)) + "' && echo connected";
    auto blocked = Run(command);
    ASSERT_TRUE(blocked) << blocked.error().ToString();
    EXPECT_TRUE(blocked->is_error);
    EXPECT_EQ(blocked->content.find("connected\n"), std::string::npos);
    context_.grants.network = true;
    auto granted = Run(command);
    ASSERT_TRUE(granted) << granted.error().ToString();
    EXPECT_FALSE(granted->is_error) << granted->content;
    EXPECT_NE(granted->content.find("stdout:\nconnected\n"), std::string::npos);
    close(listener);
}

TEST_F(ShellToolTest, TimeoutIsAnErrorResult) {
    context_.grants.sandbox.wall_timeout_ms = 300;
    auto result = Run("sleep 30");
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_TRUE(result->is_error);
    EXPECT_EQ(result->content.rfind("timed out: the process tree was killed", 0), 0u)
        << result->content;
}

TEST_F(ShellToolTest, TruncationIsNoted) {
    context_.grants.sandbox.max_output_bytes = 10;
    auto result = Run("seq 1 1000");
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_NE(result->content.find("stdout (truncated to the first 10 bytes):\n1\n2\n3\n4\n5\n"),
              std::string::npos)
        << result->content;
}

TEST_F(ShellToolTest, CannotWriteThroughASymlinkOutOfTheWorkspace) {
    fs::create_symlink("/etc/passwd", dir_.path() / "passwd");
    auto result = Run("echo pwned >> passwd");
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_TRUE(result->is_error);
    EXPECT_NE(result->content.find("Read-only file system"), std::string::npos);
}

TEST_F(ShellToolTest, CpuLimitIsExplained) {
    context_.grants.sandbox.cpu_seconds = 1;
    auto result = Run("while :; do :; done");
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_TRUE(result->is_error);
    EXPECT_NE(result->content.find("(killed by SIG"), std::string::npos) << result->content;
}

TEST_F(ShellToolTest, ArgumentErrors) {
    auto missing = RunSync(shell_->Call("{}", context_));
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(missing.error().message(), "shell: \"command\" is required");
    auto blank = Run("   ");
    ASSERT_FALSE(blank);
    EXPECT_EQ(blank.error().code(), ErrorCode::kInvalidArgument);
    context_.workspace = dir_.path() / "missing";
    auto no_workspace = Run("true");
    ASSERT_FALSE(no_workspace);
    EXPECT_EQ(no_workspace.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace strowger::tools::builtin
