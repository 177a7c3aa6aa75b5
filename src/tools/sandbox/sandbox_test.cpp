// The bubblewrap sandbox, with real processes: confinement (network, filesystem, environment),
// limits (processes, memory, CPU, file size, output, wall time), cancellation, concurrency and
// the long-lived Process. Nothing sleeps to synchronise: the sandboxed scripts signal progress
// through files in the workspace, and "the tree is dead" is observed through a file lock that
// only a live process can hold.
#include "tools/sandbox/sandbox.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include "testing/test_util.hpp"
#include "tools/sandbox/internal/bwrap_args.hpp"

namespace strowger::tools::sandbox {
namespace {

namespace fs = std::filesystem;
using testing::RunSync;
using testing::TempDir;

class SandboxTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto created = CreateBubblewrapSandbox(io_.get_executor());
        ASSERT_TRUE(created) << created.error().ToString();
        sandbox_ = *created;
        workspace_ = dir_.path() / "workspace";
        fs::create_directories(workspace_);
    }

    SandboxSpec Shell(const std::string& script) const {
        SandboxSpec spec;
        spec.argv = {"sh", "-c", script};
        spec.workspace = workspace_;
        spec.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", workspace_.string()}};
        spec.limits.wall_timeout_ms = 30'000;
        return spec;
    }

    Result<SandboxResult> Run(SandboxSpec spec, Deadline deadline = Deadline::Never()) {
        return RunSync(sandbox_->Run(std::move(spec), deadline), std::chrono::seconds(60));
    }

    // True if no live process holds `path` locked (a dead process's flock is released).
    static bool Unlocked(const fs::path& path) {
        int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return false;
        bool free = flock(fd, LOCK_EX | LOCK_NB) == 0;
        close(fd);
        return free;
    }

    static size_t OpenDescriptors() {
        size_t count = 0;
        for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++count;
        return count;
    }

    asio::io_context io_;
    TempDir dir_;
    fs::path workspace_;
    std::shared_ptr<Sandbox> sandbox_;
};

// A TCP listener on 127.0.0.1 (host network namespace); connections complete in the backlog.
class LoopbackListener {
  public:
    LoopbackListener() {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        listen(fd_, 16);
        socklen_t length = sizeof address;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
    }
    ~LoopbackListener() { close(fd_); }
    int port() const { return port_; }

  private:
    int fd_ = -1;
    int port_ = 0;
};

std::string ConnectScript(int port) {
    return "python3 -c \"import socket; socket.create_connection(('127.0.0.1', " +
           std::to_string(port) + "), timeout=5); print('connected')\"";
}

TEST_F(SandboxTest, RunsCommandWithStdinAndCapturesBothStreams) {
    SandboxSpec spec = Shell("cat; echo oops >&2; exit 3");
    spec.stdin_data = "hello from stdin";
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->exit_code, 3);
    EXPECT_EQ(result->signal, 0);
    EXPECT_EQ(result->stdout_data, "hello from stdin");
    EXPECT_EQ(result->stderr_data, "oops\n");
    EXPECT_FALSE(result->timed_out);
    EXPECT_FALSE(result->output_truncated);
}

TEST_F(SandboxTest, LargeStdinIsFedWhileOutputIsRead) {
    // More than a pipe buffer each way: a sequential writer/reader would deadlock.
    SandboxSpec spec = Shell("cat");
    spec.stdin_data = std::string(1 << 20, 'x');
    spec.limits.max_output_bytes = 2 << 20;
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_EQ(result->stdout_data.size(), size_t{1} << 20);
}

TEST_F(SandboxTest, CommandNotReadingStdinDoesNotHang) {
    SandboxSpec spec = Shell("echo done");
    spec.stdin_data = std::string(4 << 20, 'x');
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_EQ(result->stdout_data, "done\n");
}

TEST_F(SandboxTest, NetworkIsBlockedUnlessGranted) {
    LoopbackListener listener;
    auto blocked = Run(Shell(ConnectScript(listener.port())));
    ASSERT_TRUE(blocked) << blocked.error().ToString();
    EXPECT_NE(blocked->exit_code, 0) << blocked->stdout_data;
    EXPECT_NE(blocked->stderr_data.find("Connection refused"), std::string::npos)
        << blocked->stderr_data;

    SandboxSpec granted = Shell(ConnectScript(listener.port()));
    granted.network = true;
    auto allowed = Run(std::move(granted));
    ASSERT_TRUE(allowed) << allowed.error().ToString();
    EXPECT_EQ(allowed->exit_code, 0) << allowed->stderr_data;
    EXPECT_EQ(allowed->stdout_data, "connected\n");
}

TEST_F(SandboxTest, OnlyTheWorkspaceIsWritable) {
    const char* home = std::getenv("HOME");
    std::string host_home = home ? home : "/root";
    auto result = Run(Shell(
        "for target in /etc/strowger-x /usr/strowger-x /strowger-x /dev/strowger-x " + host_home +
        "/strowger-x /var/strowger-x; do "
        "  if touch \"$target\" 2>/dev/null; then echo \"wrote $target\"; fi; "
        "done; "
        "echo private > /tmp/strowger-private && echo private > /var/tmp/strowger-private2 && "
        "echo inside > in-workspace && echo ok"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->stdout_data, "ok\n") << result->stderr_data;
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_EQ(testing::ReadFileOrDie((workspace_ / "in-workspace").string()), "inside\n");
    // /tmp inside is private: nothing reached the host's /tmp or $HOME.
    EXPECT_FALSE(fs::exists("/tmp/strowger-private"));
    EXPECT_FALSE(fs::exists("/var/tmp/strowger-private2"));
    EXPECT_FALSE(fs::exists(host_home + "/strowger-x"));
    EXPECT_FALSE(fs::exists("/etc/strowger-x"));
}

TEST_F(SandboxTest, HostHomeAndRunAreNotVisible) {
    auto result =
        Run(Shell("ls /root /home /run 2>&1 | head -3; test -e /run/docker.sock; echo $?"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_NE(result->stdout_data.find("No such file"), std::string::npos) << result->stdout_data;
}

TEST_F(SandboxTest, RootOnlyHostFilesAreMasked) {
    if (geteuid() != 0 || !fs::exists("/etc/shadow")) GTEST_SKIP() << "needs root and /etc/shadow";
    auto result = Run(Shell("cat /etc/shadow 2>/dev/null | wc -c"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->stdout_data, "0\n");
}

TEST_F(SandboxTest, SymlinkOutOfTheWorkspaceCannotBeWrittenThrough) {
    std::string outside = dir_.Write("outside.txt", "original\n");
    fs::create_symlink(outside, workspace_ / "to-outside");
    fs::create_symlink("/etc/passwd", workspace_ / "to-passwd");
    std::string passwd_before = testing::ReadFileOrDie("/etc/passwd");
    auto result = Run(Shell("echo pwned > to-outside; echo pwned > to-passwd; echo status=$?"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->stdout_data, "status=2\n") << result->stderr_data;
    EXPECT_NE(result->stderr_data.find("Read-only file system"), std::string::npos)
        << result->stderr_data;
    // The first write landed in the sandbox's private /tmp, not in the host file.
    EXPECT_EQ(testing::ReadFileOrDie(outside), "original\n");
    EXPECT_EQ(testing::ReadFileOrDie("/etc/passwd"), passwd_before);
}

TEST_F(SandboxTest, EnvironmentIsScrubbed) {
    setenv("STROWGER_TEST_SECRET", "hunter2-must-not-leak", 1);
    SandboxSpec spec = Shell("env; cat /proc/1/environ /proc/self/environ | tr '\\0' '\\n'");
    spec.env["GIVEN"] = "yes";
    auto result = Run(std::move(spec));
    unsetenv("STROWGER_TEST_SECRET");
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_EQ(result->stdout_data.find("hunter2"), std::string::npos) << result->stdout_data;
    EXPECT_NE(result->stdout_data.find("GIVEN=yes"), std::string::npos);
}

TEST_F(SandboxTest, NoCapabilitiesAndNoNestedUserNamespaces) {
    auto result = Run(Shell("grep CapEff /proc/self/status; unshare -U true && echo nested"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_NE(result->stdout_data.find("CapEff:\t0000000000000000"), std::string::npos)
        << result->stdout_data;
    EXPECT_EQ(result->stdout_data.find("nested"), std::string::npos);
}

TEST_F(SandboxTest, ProcessCountIsLimited) {
    if (DetectProcessLimitEnforcement() == ProcessLimitEnforcement::kNone) {
        GTEST_SKIP() << "no process limit on this host (root without a writable pids cgroup)";
    }
    SandboxSpec spec = Shell(
        "n=0; for i in $(seq 1 100); do sleep 30 & n=$((n+1)); echo $n > started; done; echo all");
    spec.limits.max_processes = 20;
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_NE(result->exit_code, 0);
    EXPECT_FALSE(result->timed_out);
    EXPECT_EQ(result->stdout_data.find("all"), std::string::npos);
    EXPECT_NE(result->stderr_data.find("fork"), std::string::npos) << result->stderr_data;
    int started = std::stoi(testing::ReadFileOrDie((workspace_ / "started").string()));
    EXPECT_LT(started, 20);
}

TEST_F(SandboxTest, ForkBombIsContainedAndTheHostStaysUsable) {
    if (DetectProcessLimitEnforcement() == ProcessLimitEnforcement::kNone) {
        GTEST_SKIP() << "no process limit on this host (root without a writable pids cgroup)";
    }
    SandboxSpec bomb = Shell("bomb() { bomb | bomb & }; bomb; sleep 20");
    bomb.limits.max_processes = 32;
    bomb.limits.wall_timeout_ms = 3000;
    SandboxSpec probe = Shell("echo still-fine");
    auto both =
        [](std::shared_ptr<Sandbox> sandbox, SandboxSpec a,
           SandboxSpec b) -> Awaitable<std::pair<Result<SandboxResult>, Result<SandboxResult>>> {
        using namespace asio::experimental::awaitable_operators;
        auto bomb_run = sandbox->Run(std::move(a), Deadline::Never());
        auto probe_run = sandbox->Run(std::move(b), Deadline::Never());
        auto together = std::move(bomb_run) && std::move(probe_run);
        auto [first, second] = co_await std::move(together);
        co_return std::make_pair(std::move(first), std::move(second));
    };
    auto started = std::chrono::steady_clock::now();
    auto [bombed, probed] =
        RunSync(both(sandbox_, std::move(bomb), std::move(probe)), std::chrono::seconds(60));
    ASSERT_TRUE(bombed) << bombed.error().ToString();
    EXPECT_TRUE(bombed->timed_out || bombed->exit_code != 0);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
    ASSERT_TRUE(probed) << probed.error().ToString();
    EXPECT_EQ(probed->stdout_data, "still-fine\n");
    auto after = Run(Shell("echo after"));
    ASSERT_TRUE(after) << after.error().ToString();
    EXPECT_EQ(after->stdout_data, "after\n");
}

TEST_F(SandboxTest, MemoryHogFailsToAllocate) {
    SandboxSpec spec = Shell("python3 -c 'x = bytearray(1 << 30); print(len(x))'");
    spec.limits.memory_bytes = 256 << 20;
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_NE(result->exit_code, 0);
    EXPECT_NE(result->stderr_data.find("MemoryError"), std::string::npos) << result->stderr_data;
}

TEST_F(SandboxTest, CpuLimitKillsABusyLoop) {
    SandboxSpec spec = Shell("while :; do :; done");
    spec.limits.cpu_seconds = 1;
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_FALSE(result->timed_out);
    // bwrap reports a command killed by a signal as 128 + the signal (SIGXCPU or SIGKILL).
    EXPECT_TRUE(result->exit_code == 128 + SIGXCPU || result->exit_code == 128 + SIGKILL)
        << result->exit_code;
}

TEST_F(SandboxTest, FileSizeLimitStopsLargeWrites) {
    SandboxSpec spec = Shell("head -c 4000000 /dev/zero > big");
    spec.limits.max_file_size_bytes = 1 << 20;
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_NE(result->exit_code, 0);
    EXPECT_LE(fs::file_size(workspace_ / "big"), uintmax_t{1} << 20);
}

TEST_F(SandboxTest, WallTimeoutKillsGrandchildren) {
    // The grandchild holds a lock while it lives and would write `late` after 2 s.
    SandboxSpec spec = Shell(
        "(exec 9>lock; flock 9; touch ready; sleep 2; echo late > late) & "
        "while [ ! -e ready ]; do sleep 0.01; done; sleep 30");
    spec.limits.wall_timeout_ms = 1000;
    auto started = std::chrono::steady_clock::now();
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_TRUE(result->timed_out);
    EXPECT_EQ(result->signal, SIGKILL);
    EXPECT_EQ(result->exit_code, -1);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
    ASSERT_TRUE(fs::exists(workspace_ / "ready"));
    // When Run returns the whole tree is gone: the lock is free, so nobody can write `late`.
    EXPECT_TRUE(Unlocked(workspace_ / "lock"));
    EXPECT_FALSE(fs::exists(workspace_ / "late"));
}

TEST_F(SandboxTest, DeadlineKillsTheTree) {
    auto result = Run(Shell("sleep 30"), Deadline::After(std::chrono::milliseconds(300)));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_TRUE(result->timed_out);
}

TEST_F(SandboxTest, BackgroundProcessesDieWhenTheCommandExits) {
    auto result =
        Run(Shell("(exec 9>lock; flock 9; touch ready; sleep 30) & "
                  "while [ ! -e ready ]; do sleep 0.01; done; echo main-done"));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_FALSE(result->timed_out);
    EXPECT_EQ(result->stdout_data, "main-done\n");
    EXPECT_TRUE(Unlocked(workspace_ / "lock"));
}

TEST_F(SandboxTest, OutputIsCappedAndTheChildKeepsRunning) {
    SandboxSpec spec = Shell("head -c 300000 /dev/zero | tr '\\0' a; echo finished >&2");
    spec.limits.max_output_bytes = 1000;
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_EQ(result->stdout_data, std::string(1000, 'a'));
    EXPECT_TRUE(result->output_truncated);
    EXPECT_TRUE(result->stdout_truncated);
    EXPECT_FALSE(result->stderr_truncated);
    EXPECT_EQ(result->stderr_data, "finished\n");
}

TEST_F(SandboxTest, ConcurrentRunsAreIndependent) {
    constexpr int kRuns = 8;
    auto all = [](std::shared_ptr<Sandbox> sandbox,
                  std::vector<SandboxSpec> specs) -> Awaitable<std::vector<Result<SandboxResult>>> {
        auto executor = co_await asio::this_coro::executor;
        std::vector<std::optional<Result<SandboxResult>>> results(specs.size());
        asio::steady_timer done(executor, asio::steady_timer::time_point::max());
        size_t remaining = specs.size();
        for (size_t i = 0; i < specs.size(); ++i) {
            asio::co_spawn(executor, sandbox->Run(std::move(specs[i]), Deadline::Never()),
                           [&, i](std::exception_ptr, Result<SandboxResult> result) {
                               results[i] = std::move(result);
                               if (--remaining == 0) done.cancel();
                           });
        }
        co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
        std::vector<Result<SandboxResult>> out;
        for (auto& r : results) out.push_back(std::move(*r));
        co_return out;
    };
    std::vector<SandboxSpec> specs;
    for (int i = 0; i < kRuns; ++i) {
        specs.push_back(Shell("echo run-" + std::to_string(i) + " > out-" + std::to_string(i) +
                              "; cat out-" + std::to_string(i)));
    }
    auto results = RunSync(all(sandbox_, std::move(specs)), std::chrono::seconds(60));
    ASSERT_EQ(results.size(), size_t{kRuns});
    for (int i = 0; i < kRuns; ++i) {
        ASSERT_TRUE(results[i]) << results[i].error().ToString();
        EXPECT_EQ(results[i]->stdout_data, "run-" + std::to_string(i) + "\n");
    }
}

TEST_F(SandboxTest, CancellationKillsTheTreeAndReturnsCancelled) {
    asio::cancellation_signal signal;
    std::optional<Result<SandboxResult>> result;
    SandboxSpec spec = Shell("(exec 9>lock; flock 9; touch ready; sleep 30) & sleep 30");
    asio::co_spawn(io_, sandbox_->Run(std::move(spec), Deadline::Never()),
                   asio::bind_cancellation_slot(signal.slot(),
                                                [&](std::exception_ptr, Result<SandboxResult> r) {
                                                    result = std::move(r);
                                                }));
    // Cancel once the grandchild holds its lock (polled, not slept for).
    asio::steady_timer poll(io_);
    std::function<void()> check = [&] {
        if (fs::exists(workspace_ / "ready")) {
            signal.emit(asio::cancellation_type::terminal);
            return;
        }
        poll.expires_after(std::chrono::milliseconds(10));
        poll.async_wait([&](boost::system::error_code) { check(); });
    };
    check();
    auto started = std::chrono::steady_clock::now();
    while (!result && std::chrono::steady_clock::now() - started < std::chrono::seconds(30)) {
        io_.run_one_for(std::chrono::seconds(1));
    }
    ASSERT_TRUE(result.has_value());
    ASSERT_FALSE(*result);
    EXPECT_EQ(result->error().code(), ErrorCode::kCancelled);
    EXPECT_TRUE(Unlocked(workspace_ / "lock"));
}

TEST_F(SandboxTest, NoDescriptorsOrZombiesAreLeft) {
    testing::ReleaseFinishedIoContexts();
    size_t before = OpenDescriptors();
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(Run(Shell("echo hi")));
        ASSERT_TRUE(Run(Shell("sleep 30"), Deadline::After(std::chrono::milliseconds(100))));
    }
    testing::ReleaseFinishedIoContexts();  // the harness's, not the sandbox's
    EXPECT_EQ(OpenDescriptors(), before);
    int status = 0;
    EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST_F(SandboxTest, InvalidSpecsAreRejected) {
    SandboxSpec missing = Shell("true");
    missing.workspace = dir_.path() / "does-not-exist";
    auto r1 = Run(std::move(missing));
    ASSERT_FALSE(r1);
    EXPECT_EQ(r1.error().code(), ErrorCode::kNotFound);

    SandboxSpec relative = Shell("true");
    relative.workspace = "relative/dir";
    auto r2 = Run(std::move(relative));
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().code(), ErrorCode::kInvalidArgument);

    SandboxSpec root = Shell("true");
    root.workspace = "/";
    auto r3 = Run(std::move(root));
    ASSERT_FALSE(r3);
    EXPECT_EQ(r3.error().code(), ErrorCode::kInvalidArgument);

    SandboxSpec empty = Shell("true");
    empty.argv.clear();
    auto r4 = Run(std::move(empty));
    ASSERT_FALSE(r4);
    EXPECT_EQ(r4.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SandboxTest, UnknownCommandIsAProcessFailure) {
    SandboxSpec spec = Shell("");
    spec.argv = {"strowger-no-such-command"};
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_NE(result->exit_code, 0);
    EXPECT_NE(result->stderr_data.find("strowger-no-such-command"), std::string::npos);
}

TEST_F(SandboxTest, ReadOnlyPathsAreVisibleButNotWritable) {
    TempDir tools_dir;
    tools_dir.Write("tool.sh", "echo from-tool\n");
    SandboxSpec spec = Shell("sh " + (tools_dir.path() / "tool.sh").string() + "; echo x >> " +
                             (tools_dir.path() / "tool.sh").string() + " || echo read-only");
    spec.read_only_paths = {tools_dir.path()};
    auto result = Run(std::move(spec));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->stdout_data, "from-tool\nread-only\n") << result->stderr_data;
}

TEST(BwrapArgvTest, NetworkOnlyWhenGranted) {
    internal::HostLayout layout;
    layout.read_only_dirs = {"/usr"};
    internal::BwrapInvocation invocation;
    invocation.bwrap = "/usr/bin/bwrap";
    invocation.command = {"sh", "-c", "true"};
    invocation.binds.push_back({"/w", "/w", true});
    invocation.working_dir = "/w";
    auto args = internal::BwrapArgv(layout, invocation);
    auto has = [&args](const std::string& arg) {
        return std::find(args.begin(), args.end(), arg) != args.end();
    };
    EXPECT_TRUE(has("--unshare-all"));
    EXPECT_TRUE(has("--die-with-parent"));
    EXPECT_TRUE(has("--new-session"));
    EXPECT_FALSE(has("--share-net"));
    EXPECT_EQ(args.back(), "true");
    invocation.network = true;
    args = internal::BwrapArgv(layout, invocation);
    EXPECT_TRUE(has("--share-net"));
}

class ProcessTest : public ::testing::Test {
  protected:
    // Runs `awaitable` on io_ (where the Process's pipes live) until it completes.
    template <typename T>
    T Await(Awaitable<T> awaitable) {
        std::optional<T> result;
        asio::co_spawn(io_, std::move(awaitable),
                       [&](std::exception_ptr, T value) { result = std::move(value); });
        auto started = std::chrono::steady_clock::now();
        while (!result && std::chrono::steady_clock::now() - started < std::chrono::seconds(30)) {
            io_.run_one_for(std::chrono::milliseconds(100));
        }
        if (!result) {
            ADD_FAILURE() << "did not complete within 30 s";
            return T{};
        }
        return std::move(*result);
    }

    Awaitable<std::string> ReadLine(Process& process) {
        std::string line;
        while (line.find('\n') == std::string::npos) {
            auto chunk = co_await process.Read();
            if (!chunk) co_return line + "<" + chunk.error().ToString() + ">";
            line += *chunk;
        }
        co_return line;
    }

    asio::io_context io_;
    TempDir dir_;
};

TEST_F(ProcessTest, SandboxedEchoRoundTripAndKill) {
    ProcessSpec spec;
    spec.argv = {"sh", "-c", "echo started >&2; cat"};
    spec.env = {{"PATH", "/usr/bin:/bin"}};
    spec.working_dir = dir_.path();
    spec.writable_dir = dir_.path();
    auto process = StartProcess(io_.get_executor(), spec);
    ASSERT_TRUE(process) << process.error().ToString();
    Process& p = **process;
    auto exchange = [&]() -> Awaitable<std::string> {
        auto written = co_await p.Write("ping\n");
        if (!written) co_return written.error().ToString();
        co_return co_await ReadLine(p);
    };
    EXPECT_EQ(Await(exchange()), "ping\n");
    EXPECT_FALSE(p.Exited());
    p.Kill();
    auto eof = Await(p.Read());
    ASSERT_FALSE(eof);
    EXPECT_EQ(eof.error().code(), ErrorCode::kUnavailable);
    // The watcher reaps it on the process's executor.
    auto started = std::chrono::steady_clock::now();
    while (!p.Exited() && std::chrono::steady_clock::now() - started < std::chrono::seconds(10)) {
        io_.run_one_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(p.Exited());
    EXPECT_NE(p.StderrTail().find("started"), std::string::npos);
}

TEST_F(ProcessTest, DirectProcessExitsAndReportsEof) {
    ProcessSpec spec;
    spec.argv = {"sh", "-c", "read line; echo \"got $line\"; echo bye >&2"};
    spec.env = {{"PATH", "/usr/bin:/bin"}};
    spec.working_dir = dir_.path();
    spec.sandboxed = false;
    auto process = StartProcess(io_.get_executor(), spec);
    ASSERT_TRUE(process) << process.error().ToString();
    Process& p = **process;
    auto exchange = [&]() -> Awaitable<std::string> {
        auto written = co_await p.Write("x\n");
        if (!written) co_return written.error().ToString();
        co_return co_await ReadLine(p);
    };
    EXPECT_EQ(Await(exchange()), "got x\n");
    auto eof = Await(p.Read());
    ASSERT_FALSE(eof);
    EXPECT_EQ(eof.error().code(), ErrorCode::kUnavailable);
    auto started = std::chrono::steady_clock::now();
    while ((!p.Exited() || p.StderrTail().empty()) &&
           std::chrono::steady_clock::now() - started < std::chrono::seconds(10)) {
        io_.run_one_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(p.Exited());
    EXPECT_EQ(p.StderrTail(), "bye\n");
}

TEST_F(ProcessTest, MissingProgramIsNotFound) {
    ProcessSpec spec;
    spec.argv = {"strowger-no-such-program"};
    spec.env = {{"PATH", "/usr/bin:/bin"}};
    spec.sandboxed = false;
    auto process = StartProcess(io_.get_executor(), spec);
    ASSERT_FALSE(process);
    EXPECT_EQ(process.error().code(), ErrorCode::kNotFound);
}

TEST_F(ProcessTest, DestroyingTheProcessKillsItsTree) {
    ProcessSpec spec;
    spec.argv = {"sh", "-c", "(exec 9>lock; flock 9; touch ready; sleep 30) & cat"};
    spec.env = {{"PATH", "/usr/bin:/bin"}};
    spec.working_dir = dir_.path();
    spec.writable_dir = dir_.path();
    {
        auto process = StartProcess(io_.get_executor(), spec);
        ASSERT_TRUE(process) << process.error().ToString();
        auto started = std::chrono::steady_clock::now();
        while (!fs::exists(dir_.path() / "ready") &&
               std::chrono::steady_clock::now() - started < std::chrono::seconds(10)) {
            io_.run_one_for(std::chrono::milliseconds(10));
        }
        ASSERT_TRUE(fs::exists(dir_.path() / "ready"));
    }
    // Run the watchers until they have reaped bwrap; the namespace dies with it.
    io_.run_for(std::chrono::milliseconds(10));
    auto started = std::chrono::steady_clock::now();
    bool unlocked = false;
    while (!unlocked && std::chrono::steady_clock::now() - started < std::chrono::seconds(10)) {
        io_.run_one_for(std::chrono::milliseconds(10));
        int fd = open((dir_.path() / "lock").c_str(), O_RDONLY | O_CLOEXEC);
        unlocked = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;
        if (fd >= 0) close(fd);
    }
    EXPECT_TRUE(unlocked);
}

}  // namespace
}  // namespace strowger::tools::sandbox
