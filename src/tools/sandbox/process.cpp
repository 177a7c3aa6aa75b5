// StartProcess: a long-lived child (an MCP stdio server), sandboxed in bwrap or started directly
// in its own process group. Two detached coroutines on the given executor keep the tail of its
// stderr and reap it when it exits; they share state with the Process, so the Process may be
// destroyed first (that kills the tree; the watcher then reaps it).
#include <signal.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>

#include "tools/sandbox/internal/child.hpp"
#include "tools/sandbox/internal/host.hpp"
#include "tools/sandbox/sandbox.hpp"

namespace strowger::tools::sandbox {
namespace {

constexpr size_t kStderrTailBytes = 16 << 10;
constexpr size_t kReadChunkBytes = 64 << 10;

// What the watchers and the Process share.
struct ProcessState {
    ProcessState(const Executor& executor, internal::SpawnedChild& spawned)
        : child(executor, spawned.ReleasePid(), std::move(spawned.pidfd),
                internal::ProcessGroup::kNew),
          stderr_pipe(executor, spawned.stderr_fd.Release()) {}

    void KillTree() {
        child.Kill(SIGKILL);
        if (cgroup) cgroups->KillAndRemove(cgroup->path);
    }

    internal::ChildHandle child;
    asio::posix::stream_descriptor stderr_pipe;
    std::array<char, 4096> chunk;
    std::atomic<bool> exited{false};
    // Set before the watchers start, read-only afterwards.
    std::shared_ptr<internal::PidsCgroups> cgroups;
    std::optional<internal::CgroupLease> cgroup;

    mutable std::mutex mutex;
    std::string stderr_tail;  // GUARDED_BY(mutex)
};

Awaitable<void> KeepStderrTail(std::shared_ptr<ProcessState> state) {
    co_await asio::this_coro::throw_if_cancelled(false);
    for (;;) {
        auto [ec, n] =
            co_await state->stderr_pipe.async_read_some(asio::buffer(state->chunk), kUseTuple);
        if (n > 0) {
            std::lock_guard lock(state->mutex);
            state->stderr_tail.append(state->chunk.data(), n);
            if (state->stderr_tail.size() > kStderrTailBytes) {
                state->stderr_tail.erase(0, state->stderr_tail.size() - kStderrTailBytes);
            }
        }
        if (ec) co_return;
    }
}

Awaitable<void> ReapWhenExited(std::shared_ptr<ProcessState> state) {
    co_await state->child.WaitExit();
    if (!state->child.Reaped()) co_return;  // cancelled: ~ChildHandle reaps
    state->exited = true;
    if (state->cgroup) {
        state->cgroup->procs_fd.Reset();
        co_await internal::RemoveWhenEmpty(state->cgroups, state->cgroup->path);
    }
}

class ChildProcess final : public Process {
  public:
    ChildProcess(const Executor& executor, internal::SpawnedChild& spawned)
        : state_(std::make_shared<ProcessState>(executor, spawned)),
          stdin_pipe_(executor, spawned.stdin_fd.Release()),
          stdout_pipe_(executor, spawned.stdout_fd.Release()) {}

    ~ChildProcess() override { state_->KillTree(); }

    void StartWatchers(const Executor& executor) {
        asio::co_spawn(executor, KeepStderrTail(state_), asio::detached);
        asio::co_spawn(executor, ReapWhenExited(state_), asio::detached);
    }
    ProcessState& state() { return *state_; }

    Awaitable<Status> Write(std::string data) override {
        co_await asio::this_coro::throw_if_cancelled(false);
        size_t offset = 0;
        while (offset < data.size()) {
            ssize_t n = internal::WriteNoSigpipe(stdin_pipe_.native_handle(), data.data() + offset,
                                                 data.size() - offset);
            if (n > 0) {
                offset += static_cast<size_t>(n);
            } else if (n == -EAGAIN) {
                auto [ec] = co_await stdin_pipe_.async_wait(
                    asio::posix::descriptor_base::wait_write, kUseTuple);
                if (ec == asio::error::operation_aborted) {
                    co_return CancelledError("process: write cancelled");
                }
            } else if (n != -EINTR) {
                co_return UnavailableError("process: the child closed its stdin" + Tail());
            }
        }
        co_return OkStatus();
    }

    Awaitable<Result<std::string>> Read() override {
        co_await asio::this_coro::throw_if_cancelled(false);
        std::string buffer(kReadChunkBytes, '\0');
        auto [ec, n] = co_await stdout_pipe_.async_read_some(asio::buffer(buffer), kUseTuple);
        if (n > 0) {
            buffer.resize(n);
            co_return buffer;
        }
        if (ec == asio::error::operation_aborted)
            co_return CancelledError("process: read cancelled");
        co_return UnavailableError("process: the child closed its stdout" + Tail());
    }

    std::string StderrTail() const override {
        std::lock_guard lock(state_->mutex);
        return state_->stderr_tail;
    }

    void Kill() override { state_->KillTree(); }

    bool Exited() const override { return state_->exited; }

  private:
    std::string Tail() const {
        std::string tail = StderrTail();
        if (tail.size() > 1024) tail.erase(0, tail.size() - 1024);
        return tail.empty() ? std::string() : "; stderr: " + tail;
    }

    std::shared_ptr<ProcessState> state_;
    asio::posix::stream_descriptor stdin_pipe_;
    asio::posix::stream_descriptor stdout_pipe_;
};

Result<internal::PreparedExec> PrepareDirectExec(const ProcessSpec& spec) {
    if (spec.argv.empty() || spec.argv[0].empty()) {
        return InvalidArgumentError("process: empty command");
    }
    auto path = spec.env.find("PATH");
    const char* own_path = std::getenv("PATH");
    std::string search = path != spec.env.end() ? path->second : (own_path ? own_path : "");
    internal::PreparedExec prepared;
    internal::ExecPlan& plan = prepared.plan;
    plan.program = internal::FindExecutable(spec.argv[0], search + ":/usr/local/bin:/usr/bin:/bin");
    if (plan.program.empty()) {
        return NotFoundError("process: \"" + spec.argv[0] + "\" not found in PATH");
    }
    plan.argv = spec.argv;
    plan.env = internal::EnvironmentStrings(spec.env);
    plan.working_dir = spec.working_dir.string();
    plan.process_group = internal::ProcessGroup::kNew;
    plan.die_with_parent = internal::DieWithParent::kYes;
    return prepared;
}

}  // namespace

Result<std::unique_ptr<Process>> StartProcess(Executor executor, ProcessSpec spec) {
    internal::PreparedExec prepared;
    if (spec.sandboxed) {
        internal::SandboxedCommand command;
        command.argv = spec.argv;
        command.env = spec.env;
        command.working_dir = spec.working_dir;
        command.writable_dir = spec.writable_dir;
        command.read_only_paths = spec.read_only_paths;
        command.network = spec.network;
        command.limits = spec.limits;
        STROWGER_ASSIGN_OR_RETURN(prepared,
                                  internal::PrepareSandboxedExec(*internal::Host(), command));
    } else {
        STROWGER_ASSIGN_OR_RETURN(prepared, PrepareDirectExec(spec));
    }
    STROWGER_ASSIGN_OR_RETURN(auto spawned, internal::Spawn(prepared.plan));
    auto process = std::make_unique<ChildProcess>(executor, spawned);
    if (prepared.cgroup) {
        process->state().cgroups = internal::Host()->cgroups;
        process->state().cgroup = std::move(prepared.cgroup);
    }
    process->StartWatchers(executor);
    return std::unique_ptr<Process>(std::move(process));
}

}  // namespace strowger::tools::sandbox
