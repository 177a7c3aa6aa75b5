#include "integration/process.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace strowger::testing {
namespace {

constexpr std::chrono::milliseconds kPollInterval{10};

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
    std::vector<char*> pointers;
    pointers.reserve(strings.size() + 1);
    for (const auto& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
    pointers.push_back(nullptr);
    return pointers;
}

// posix_spawnp of options.args with `actions`, options.env, default signal handling and an
// empty signal mask (whatever the test runner set: a blocked SIGINT would make the Ctrl-C test
// meaningless), plus `extra_flags`. The pid, or -1 after adding a test failure.
pid_t SpawnWith(const SpawnOptions& options, posix_spawn_file_actions_t& actions,
                short extra_flags) {
    if (!options.working_dir.empty()) {
        posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
    }
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, static_cast<short>(POSIX_SPAWN_SETSIGMASK |
                                                             POSIX_SPAWN_SETSIGDEF | extra_flags));
    auto argv = Pointers(options.args);
    auto envp = Pointers(options.env);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) {
        ADD_FAILURE() << "cannot start " << options.args[0] << ": " << std::strerror(rc);
        return -1;
    }
    return pid;
}

ExitStatus FromWaitStatus(int status) {
    ExitStatus result;
    if (WIFEXITED(status)) result.code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
    return result;
}

}  // namespace

std::string ExitStatus::ToString() const {
    return signal != 0 ? "signal " + std::to_string(signal) : "exit " + std::to_string(code);
}

pid_t Spawn(const SpawnOptions& options) {
    if (options.args.empty()) {
        ADD_FAILURE() << "Spawn: no program";
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    constexpr int kOutFlags = O_WRONLY | O_CREAT | O_TRUNC;
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(
        &actions, STDOUT_FILENO,
        options.stdout_file.empty() ? "/dev/null" : options.stdout_file.c_str(), kOutFlags, 0644);
    posix_spawn_file_actions_addopen(
        &actions, STDERR_FILENO,
        options.stderr_file.empty() ? "/dev/null" : options.stderr_file.c_str(), kOutFlags, 0644);
    pid_t pid = SpawnWith(options, actions, 0);
    posix_spawn_file_actions_destroy(&actions);
    return pid;
}

std::optional<ExitStatus> Wait(pid_t pid, std::chrono::milliseconds timeout) {
    std::optional<ExitStatus> result;
    WaitFor(
        [&] {
            int status = 0;
            pid_t reaped = waitpid(pid, &status, WNOHANG);
            if (reaped == pid) {
                result = FromWaitStatus(status);
                return true;
            }
            if (reaped < 0 && errno != EINTR) {
                ADD_FAILURE() << "waitpid(" << pid << "): " << std::strerror(errno);
                result = ExitStatus{};
                return true;
            }
            return false;
        },
        timeout);
    return result;
}

TerminalProcess::TerminalProcess(const SpawnOptions& options) {
    int slave = -1;
    winsize size{};
    size.ws_row = 24;
    size.ws_col = static_cast<unsigned short>(options.columns);
    if (options.args.empty() ||
        openpty(&master_, &slave, nullptr, nullptr, options.columns > 0 ? &size : nullptr) != 0) {
        ADD_FAILURE() << "TerminalProcess: no program, or openpty failed: " << std::strerror(errno);
        return;
    }
    fcntl(master_, F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        posix_spawn_file_actions_adddup2(&actions, slave, fd);
    }
    posix_spawn_file_actions_addclose(&actions, master_);
    pid_ = SpawnWith(options, actions, POSIX_SPAWN_SETSID);
    posix_spawn_file_actions_destroy(&actions);
    close(slave);
}

void TerminalProcess::Resize(int columns) {
    winsize size{};
    size.ws_row = 24;
    size.ws_col = static_cast<unsigned short>(columns);
    if (ioctl(master_, TIOCSWINSZ, &size) != 0) {
        ADD_FAILURE() << "TIOCSWINSZ: " << std::strerror(errno);
    }
    if (pid_ > 0) kill(pid_, SIGWINCH);
}

TerminalProcess::~TerminalProcess() {
    if (pid_ > 0 && !status_) {
        kill(pid_, SIGKILL);
        Wait(std::chrono::seconds(10));
    }
    if (master_ >= 0) close(master_);
}

bool TerminalProcess::ReadSome(std::chrono::milliseconds timeout) {
    pollfd fd{master_, POLLIN, 0};
    int ready = poll(&fd, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) return ready == 0 || errno == EINTR;
    char buffer[4096];
    ssize_t n = read(master_, buffer, sizeof buffer);
    if (n <= 0) return n < 0 && errno == EINTR;  // EIO: every slave side is closed
    transcript_.append(buffer, static_cast<size_t>(n));
    return true;
}

bool TerminalProcess::ReadUntil(const std::string& text, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (size_t at = transcript_.find(text, consumed_); at != std::string::npos) {
            consumed_ = at + text.size();
            return true;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || master_ < 0 || !ReadSome(std::min(left, kPollInterval * 10))) {
            return transcript_.find(text, consumed_) != std::string::npos;
        }
    }
}

void TerminalProcess::Type(const std::string& text) {
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = write(master_, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ADD_FAILURE() << "cannot type on the terminal: " << std::strerror(errno);
            return;
        }
        done += static_cast<size_t>(n);
    }
}

ExitStatus TerminalProcess::Wait(std::chrono::milliseconds timeout) {
    if (status_) return *status_;
    if (pid_ <= 0) return ExitStatus{};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // Keep reading, so a child that prints a lot is never blocked on a full terminal.
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto status = testing::Wait(pid_, std::chrono::milliseconds(0))) {
            status_ = status;
            // What it printed last is still in the terminal's buffer.
            while (true) {
                pollfd fd{master_, POLLIN, 0};
                if (poll(&fd, 1, 0) <= 0 || (fd.revents & POLLIN) == 0) break;
                if (!ReadSome(std::chrono::milliseconds(0))) break;
            }
            return *status_;
        }
        ReadSome(kPollInterval);
    }
    ADD_FAILURE() << "terminal child " << pid_ << " still running after " << timeout.count()
                  << " ms; killed. The end of what it printed:\n"
                  << transcript_.substr(transcript_.size() > 1500 ? transcript_.size() - 1500 : 0);
    kill(pid_, SIGKILL);
    status_ = testing::Wait(pid_, std::chrono::seconds(10)).value_or(ExitStatus{});
    status_->code = -1;
    return *status_;
}

bool Kill(pid_t pid, int signal) {
    return pid > 0 && kill(pid, signal) == 0;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(kPollInterval);
    }
    return condition();
}

}  // namespace strowger::testing
