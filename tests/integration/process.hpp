// Child processes for the integration tests: start a program with a given environment and its
// output in files, wait for it with a timeout, signal it, and poll for a condition.
//
// Nothing here sleeps to synchronise: Wait and WaitFor poll (every 10 ms) for something that
// can be observed — a child's exit, a row in the store — and give up at a deadline.
//
// Thread-safety: the functions are reentrant; a pid must be waited for by one thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace strowger::testing {

// How a child ended.
struct ExitStatus {
    int code = -1;   // the exit code if the child exited, else -1
    int signal = 0;  // the signal that killed it, else 0

    bool Exited() const { return signal == 0 && code >= 0; }
    // "exit 3" or "signal 9", for failure messages.
    std::string ToString() const;
};

struct SpawnOptions {
    std::vector<std::string> args;  // args[0] is the program: a path, or a name found on $PATH
    // The child's whole environment ("NAME=value"); nothing is inherited.
    std::vector<std::string> env;
    std::string stdout_file;  // created or truncated; "" = /dev/null
    std::string stderr_file;  // created or truncated; "" = /dev/null
    std::string working_dir;  // "" = the test's own
};

// Starts the child with stdin from /dev/null. Returns its pid, or -1 (and adds a test failure
// naming the reason) if it could not be started.
pid_t Spawn(const SpawnOptions& options);

// Waits for the child to end, reaping it. nullopt if it is still running after `timeout`.
std::optional<ExitStatus> Wait(pid_t pid, std::chrono::milliseconds timeout);

// Sends `signal` to the child; false if it does not exist (any more).
bool Kill(pid_t pid, int signal);

// Polls `condition` every 10 ms until it returns true (returns true) or `timeout` passes
// (returns false after one last check).
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace strowger::testing
