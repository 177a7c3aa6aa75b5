// The parent's asynchronous view of a spawned child: its exit (through a pidfd, or a polling
// timer where pidfd_open is missing) and a kill that can never hit a recycled pid. Private to
// tools/sandbox/.
//
// Thread-safety: Kill, Reaped and WaitStatus may be called from any thread; WaitExit from one
// coroutine at a time.
#pragma once

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>

#include <mutex>
#include <optional>

#include "core/asio.hpp"
#include "tools/sandbox/internal/spawn.hpp"

namespace strowger::tools::sandbox::internal {

class ChildHandle {
  public:
    // `group`: the child leads its own process group; Kill signals the whole group.
    ChildHandle(Executor executor, pid_t pid, UniqueFd pidfd, ProcessGroup group);
    // Kills and reaps (blocking) a child not reaped yet: after SIGKILL that takes microseconds.
    ~ChildHandle();
    ChildHandle(const ChildHandle&) = delete;
    ChildHandle& operator=(const ChildHandle&) = delete;

    pid_t pid() const { return pid_; }

    // Sends `signal` to the child (and its process group) unless it was already reaped.
    void Kill(int signal);
    // Reaps the child if it has exited; true once reaped.
    bool TryReap();
    bool Reaped() const;
    // The waitpid status; meaningful once reaped (ECHILD -> nullopt: someone else reaped it).
    std::optional<int> WaitStatus() const;

    // Returns once the child is reaped, or early (not reaped) if the awaiting coroutine is
    // cancelled. Never throws.
    Awaitable<void> WaitExit();

  private:
    const pid_t pid_;
    const ProcessGroup group_;
    asio::posix::stream_descriptor pidfd_;  // not open without pidfd support
    asio::steady_timer poll_timer_;
    mutable std::mutex mutex_;
    bool reaped_ = false;        // GUARDED_BY(mutex_)
    std::optional<int> status_;  // GUARDED_BY(mutex_)
};

// "exit 3", "signal 9 (Killed)" for messages.
std::string DescribeWaitStatus(std::optional<int> status);

}  // namespace strowger::tools::sandbox::internal
