#include "tools/sandbox/internal/child.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <boost/asio/as_tuple.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace strowger::tools::sandbox::internal {

ChildHandle::ChildHandle(Executor executor, pid_t pid, UniqueFd pidfd, ProcessGroup group)
    : pid_(pid), group_(group), pidfd_(executor), poll_timer_(executor) {
    if (pidfd) pidfd_.assign(pidfd.Release());
}

ChildHandle::~ChildHandle() {
    std::lock_guard lock(mutex_);
    if (reaped_) return;
    if (group_ == ProcessGroup::kNew) kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
}

void ChildHandle::Kill(int signal) {
    std::lock_guard lock(mutex_);
    // Until we reap it, the pid (and so the process group id) cannot be reused.
    if (reaped_) return;
    if (group_ == ProcessGroup::kNew) kill(-pid_, signal);
    kill(pid_, signal);
}

bool ChildHandle::TryReap() {
    std::lock_guard lock(mutex_);
    if (reaped_) return true;
    int status = 0;
    pid_t got;
    do {
        got = waitpid(pid_, &status, WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == pid_) {
        reaped_ = true;
        status_ = status;
    } else if (got < 0) {
        reaped_ = true;  // ECHILD: reaped elsewhere (SIGCHLD ignored); nothing left to wait for
    }
    return reaped_;
}

bool ChildHandle::Reaped() const {
    std::lock_guard lock(mutex_);
    return reaped_;
}

std::optional<int> ChildHandle::WaitStatus() const {
    std::lock_guard lock(mutex_);
    return status_;
}

Awaitable<void> ChildHandle::WaitExit() {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto poll_interval = std::chrono::milliseconds(1);
    while (!TryReap()) {
        if (pidfd_.is_open()) {
            auto [ec] = co_await pidfd_.async_wait(asio::posix::descriptor_base::wait_read,
                                                   asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
        } else {
            // No pidfd (Linux < 5.3): poll, backing off to 50 ms.
            poll_timer_.expires_after(poll_interval);
            auto [ec] = co_await poll_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            poll_interval = std::min<std::chrono::milliseconds>(poll_interval * 2,
                                                                std::chrono::milliseconds(50));
        }
    }
}

std::string DescribeWaitStatus(std::optional<int> status) {
    if (!status) return "unknown status";
    if (WIFEXITED(*status)) return "exit " + std::to_string(WEXITSTATUS(*status));
    if (WIFSIGNALED(*status)) {
        const char* name = sigabbrev_np(WTERMSIG(*status));
        return "signal " + std::to_string(WTERMSIG(*status)) +
               (name ? std::string(" (SIG") + name + ")" : std::string());
    }
    return "status " + std::to_string(*status);
}

}  // namespace strowger::tools::sandbox::internal
