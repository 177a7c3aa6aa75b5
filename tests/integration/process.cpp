#include "integration/process.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
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
    if (!options.working_dir.empty()) {
        posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
    }
    // The child starts with default signal handling and an empty mask, whatever the test
    // runner set (a blocked SIGINT would make the Ctrl-C test meaningless).
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    auto argv = Pointers(options.args);
    auto envp = Pointers(options.env);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        ADD_FAILURE() << "cannot start " << options.args[0] << ": " << std::strerror(rc);
        return -1;
    }
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
