// BubblewrapSandbox::Run: one bwrap process tree, supervised on the caller's executor.
//
// Life of a run: PrepareSandboxedExec builds the bwrap command line (and a pids cgroup), Spawn
// forks and execs it, then Supervise pumps stdin/stdout/stderr and waits for the exit, racing
// a timer at min(deadline, wall timeout) and the caller's cancellation. If the race is lost,
// bwrap is SIGKILLed (with every task in its cgroup): bwrap's PID 1 in the sandbox has
// PR_SET_PDEATHSIG, and when a PID namespace's init dies the kernel kills the whole namespace.
// Run returns only after bwrap is reaped, the pipes have drained, and the cgroup (if any) is
// empty and removed: the tree is gone when Run returns.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/thread_pool.hpp>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/log.hpp"
#include "tools/sandbox/blocking.hpp"
#include "tools/sandbox/internal/child.hpp"
#include "tools/sandbox/internal/host.hpp"
#include "tools/sandbox/sandbox.hpp"

namespace strowger::tools::sandbox {
namespace {

using namespace asio::experimental::awaitable_operators;
using internal::ChildHandle;

// After a kill, how long the pipes may take to reach EOF (a process outside the sandbox that
// inherited a pipe end, e.g. a concurrent fork elsewhere in the process, cannot hold us).
constexpr auto kDrainGrace = std::chrono::seconds(2);

// Keeps the first `limit` bytes.
struct CappedOutput {
    explicit CappedOutput(size_t cap) : limit(cap) {}
    void Append(const char* data, size_t size) {
        size_t room = data_room();
        buffer.append(data, std::min(room, size));
        if (size > room) truncated = true;
    }
    size_t data_room() const { return limit > buffer.size() ? limit - buffer.size() : 0; }

    size_t limit;
    std::string buffer;
    bool truncated = false;
};

struct OutputStream {
    OutputStream(const Executor& executor, internal::UniqueFd fd, size_t cap)
        : pipe(executor, fd.Release()), output(cap) {}
    asio::posix::stream_descriptor pipe;
    CappedOutput output;
    bool eof = false;
    std::array<char, 16384> chunk;
};

// Everything one run needs while it is supervised; lives on the heap, owned by Supervise.
struct RunSession {
    RunSession(const Executor& executor, internal::SpawnedChild spawned, std::string input,
               size_t output_cap)
        : child(executor, spawned.ReleasePid(), std::move(spawned.pidfd),
                internal::ProcessGroup::kNew),
          stdin_pipe(executor, spawned.stdin_fd.Release()),
          stdin_data(std::move(input)),
          out(executor, std::move(spawned.stdout_fd), output_cap),
          err(executor, std::move(spawned.stderr_fd), output_cap),
          timer(executor) {}

    ChildHandle child;
    asio::posix::stream_descriptor stdin_pipe;
    std::string stdin_data;
    size_t stdin_offset = 0;
    OutputStream out;
    OutputStream err;
    asio::steady_timer timer;
    bool timer_fired = false;
    std::shared_ptr<internal::PidsCgroups> cgroups;
    std::optional<internal::CgroupLease> cgroup;

    bool Finished() const { return child.Reaped() && out.eof && err.eof; }
};

Awaitable<void> ReadOutput(OutputStream* stream) {
    co_await asio::this_coro::throw_if_cancelled(false);
    while (!stream->eof) {
        auto [ec, n] =
            co_await stream->pipe.async_read_some(asio::buffer(stream->chunk), kUseTuple);
        stream->output.Append(stream->chunk.data(), n);
        if (ec == asio::error::operation_aborted) co_return;
        if (ec) stream->eof = true;  // EOF, or the pipe is unusable: nothing more will come
    }
}

Awaitable<void> WriteInput(RunSession* s) {
    co_await asio::this_coro::throw_if_cancelled(false);
    int fd = s->stdin_pipe.native_handle();
    while (s->stdin_offset < s->stdin_data.size()) {
        ssize_t n = internal::WriteNoSigpipe(fd, s->stdin_data.data() + s->stdin_offset,
                                             s->stdin_data.size() - s->stdin_offset);
        if (n > 0) {
            s->stdin_offset += static_cast<size_t>(n);
        } else if (n == -EAGAIN) {
            auto [ec] = co_await s->stdin_pipe.async_wait(asio::posix::descriptor_base::wait_write,
                                                          kUseTuple);
            if (ec == asio::error::operation_aborted) co_return;
        } else if (n != -EINTR) {
            break;  // EPIPE: the child does not read its input (any more)
        }
    }
    boost::system::error_code ignored;
    s->stdin_pipe.close(ignored);  // EOF for the child
}

Awaitable<void> WaitExit(RunSession* s) {
    co_await s->child.WaitExit();
}

Awaitable<void> Pump(RunSession* s) {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto all = ReadOutput(&s->out) && ReadOutput(&s->err) && WriteInput(s) && WaitExit(s);
    co_await std::move(all);
}

Awaitable<void> WaitTimer(asio::steady_timer* timer, bool* fired) {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto [ec] = co_await timer->async_wait(kUseTuple);
    if (!ec) *fired = true;
}

Awaitable<void> Drain(RunSession* s) {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto both = ReadOutput(&s->out) && ReadOutput(&s->err);
    co_await std::move(both);
}

Awaitable<void> ReleaseCgroup(RunSession* s) {
    if (!s->cgroup) co_return;
    s->cgroup->procs_fd.Reset();
    co_await internal::RemoveWhenEmpty(s->cgroups, s->cgroup->path);
    s->cgroup.reset();
}

SandboxResult MakeResult(RunSession& s, bool killed) {
    SandboxResult result;
    auto status = s.child.WaitStatus();
    if (status && WIFEXITED(*status)) {
        result.exit_code = WEXITSTATUS(*status);
    } else if (status && WIFSIGNALED(*status)) {
        result.signal = WTERMSIG(*status);
    }
    result.timed_out = killed && s.timer_fired;
    result.stdout_truncated = s.out.output.truncated;
    result.stderr_truncated = s.err.output.truncated;
    result.output_truncated = result.stdout_truncated || result.stderr_truncated;
    result.stdout_data = std::move(s.out.output.buffer);
    result.stderr_data = std::move(s.err.output.buffer);
    return result;
}

Awaitable<Result<SandboxResult>> Supervise(std::unique_ptr<RunSession> s, Deadline deadline,
                                           int64_t wall_timeout_ms) {
    co_await asio::this_coro::throw_if_cancelled(false);
    Deadline stop = deadline;
    if (wall_timeout_ms > 0) {
        stop = stop.Min(Deadline::After(std::chrono::milliseconds(wall_timeout_ms)));
    }
    s->timer.expires_at(stop.IsNever() ? asio::steady_timer::time_point::max() : stop.time());
    // Cancelled while the child was being spawned: operations started now would not see it.
    bool cancelled =
        (co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none;
    if (!cancelled) {
        auto race = Pump(s.get()) || WaitTimer(&s->timer, &s->timer_fired);
        co_await std::move(race);
        cancelled = (co_await asio::this_coro::cancellation_state).cancelled() !=
                    asio::cancellation_type::none;
    }
    bool killed = !s->Finished();
    if (killed) {
        s->child.Kill(SIGKILL);
        if (s->cgroup) s->cgroups->KillAndRemove(s->cgroup->path);
        co_await asio::this_coro::reset_cancellation_state();
        co_await s->child.WaitExit();
        s->timer.expires_after(kDrainGrace);
        bool grace_over = false;
        auto drain = Drain(s.get()) || WaitTimer(&s->timer, &grace_over);
        co_await std::move(drain);
    }
    boost::system::error_code ignored;
    s->stdin_pipe.close(ignored);
    co_await ReleaseCgroup(s.get());
    if (!s->child.Reaped()) s->child.Kill(SIGKILL);  // reaped (blocking) by ~ChildHandle
    if (cancelled && killed) {
        co_return CancelledError("sandbox: run cancelled; its process tree was killed");
    }
    co_return MakeResult(*s, killed);
}

// A spawned bwrap with its cgroup, handed from the blocking pool to Supervise.
struct StartedRun {
    internal::SpawnedChild child;
    std::optional<internal::CgroupLease> cgroup;
    std::string stdin_data;
};

// Validates the spec, builds the bwrap command line and cgroup, and forks (blocking).
Result<StartedRun> StartBlocking(const internal::SandboxHost& host, SandboxSpec spec) {
    if (spec.workspace.empty()) return InvalidArgumentError("sandbox: no workspace given");
    internal::SandboxedCommand command;
    command.argv = std::move(spec.argv);
    command.env = std::move(spec.env);
    command.writable_dir = std::move(spec.workspace);
    command.read_only_paths = std::move(spec.read_only_paths);
    command.network = spec.network;
    command.limits = spec.limits;
    STROWGER_ASSIGN_OR_RETURN(auto prepared, internal::PrepareSandboxedExec(host, command));
    StartedRun started;
    STROWGER_ASSIGN_OR_RETURN(started.child, internal::Spawn(prepared.plan));
    started.cgroup = std::move(prepared.cgroup);
    started.stdin_data = std::move(spec.stdin_data);
    return started;
}

class BubblewrapSandbox final : public Sandbox {
  public:
    explicit BubblewrapSandbox(std::shared_ptr<const internal::SandboxHost> host)
        : host_(std::move(host)) {}

    Awaitable<Result<SandboxResult>> Run(SandboxSpec spec, Deadline deadline) override {
        co_await asio::this_coro::throw_if_cancelled(false);
        auto executor = co_await asio::this_coro::executor;
        int64_t wall_timeout_ms = spec.limits.wall_timeout_ms;
        size_t cap = spec.limits.max_output_bytes > 0
                         ? static_cast<size_t>(spec.limits.max_output_bytes)
                         : std::numeric_limits<size_t>::max();
        // fork() copies the page tables of the whole process: not on the caller's I/O thread.
        auto start = [host = host_, spec = std::move(spec)]() mutable {
            return StartBlocking(*host, std::move(spec));
        };
        auto started = co_await RunBlocking(std::move(start));
        if (!started) co_return std::unexpected(std::move(started).error());
        auto session = std::make_unique<RunSession>(executor, std::move(started->child),
                                                    std::move(started->stdin_data), cap);
        if (started->cgroup) {
            session->cgroups = host_->cgroups;
            session->cgroup = std::move(started->cgroup);
        }
        co_return co_await Supervise(std::move(session), deadline, wall_timeout_ms);
    }

  private:
    std::shared_ptr<const internal::SandboxHost> host_;
};

// Runs `true` in the sandbox once, so a host without user namespaces fails here with bwrap's
// own explanation rather than on every call. Blocking (milliseconds).
Status ProbeBlocking(const internal::SandboxHost& host) {
    internal::SandboxedCommand command;
    command.argv = {"true"};
    command.env = {{"PATH", "/usr/bin:/bin"}};
    command.working_dir = "/";
    STROWGER_ASSIGN_OR_RETURN(auto prepared, internal::PrepareSandboxedExec(host, command));
    STROWGER_ASSIGN_OR_RETURN(auto spawned, internal::Spawn(prepared.plan));
    spawned.stdin_fd.Reset();
    std::string errors;
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool out_open = true, err_open = true;
    while ((out_open || err_open) && std::chrono::steady_clock::now() < give_up) {
        struct pollfd fds[2] = {{spawned.stdout_fd.get(), POLLIN, 0},
                                {spawned.stderr_fd.get(), POLLIN, 0}};
        if (poll(fds, 2, 100) < 0 && errno != EINTR) break;
        char chunk[4096];
        if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(spawned.stdout_fd.get(), chunk, sizeof chunk);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) out_open = false;
        }
        if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(spawned.stderr_fd.get(), chunk, sizeof chunk);
            if (n > 0 && errors.size() < 4096) errors.append(chunk, static_cast<size_t>(n));
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) err_open = false;
        }
    }
    int status = 0;
    pid_t pid = spawned.ReleasePid();
    if (out_open || err_open) kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (prepared.cgroup) {
        prepared.cgroup->procs_fd.Reset();
        if (!host.cgroups->KillAndRemove(prepared.cgroup->path)) {
            host.cgroups->Abandon(prepared.cgroup->path);
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return OkStatus();
    while (!errors.empty() && errors.back() == '\n') errors.pop_back();
    return FailedPreconditionError(
        "sandbox: bubblewrap cannot create its namespaces on this host (" +
        (errors.empty() ? internal::DescribeWaitStatus(status) : errors) +
        "); it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
        "user.max_user_namespaces > 0) or a container that allows them");
}

}  // namespace

Executor BlockingExecutor() {
    static asio::thread_pool pool(2);
    return pool.get_executor();
}

ProcessLimitEnforcement DetectProcessLimitEnforcement() {
    return internal::Host()->enforcement;
}

std::string_view ProcessLimitEnforcementName(ProcessLimitEnforcement enforcement) {
    switch (enforcement) {
        case ProcessLimitEnforcement::kPidsCgroup:
            return "pids_cgroup";
        case ProcessLimitEnforcement::kRlimitInUserNamespace:
            return "rlimit_in_user_namespace";
        case ProcessLimitEnforcement::kNone:
            return "none";
    }
    return "none";
}

Result<std::shared_ptr<Sandbox>> CreateBubblewrapSandbox(Executor executor) {
    (void)executor;  // runs use the executor of the coroutine awaiting them
    auto host = internal::Host();
    if (host->bwrap.empty()) {
        return FailedPreconditionError(
            "sandbox: bubblewrap (bwrap) is not installed; install the \"bubblewrap\" package");
    }
    static const Status probe = ProbeBlocking(*host);
    if (!probe) return std::unexpected(probe.error());
    if (host->enforcement == ProcessLimitEnforcement::kNone) {
        static std::once_flag warned;
        std::call_once(warned, [] {
            spdlog::warn(
                "sandbox: running as root without a writable pids cgroup: the process-count "
                "limit is not enforced (RLIMIT_NPROC does not apply to root)");
        });
    }
    return std::shared_ptr<Sandbox>(std::make_shared<BubblewrapSandbox>(std::move(host)));
}

}  // namespace strowger::tools::sandbox
