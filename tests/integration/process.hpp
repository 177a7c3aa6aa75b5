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
    int columns = 0;          // TerminalProcess: the terminal's width (0: the pty's default)
};

// Starts the child with stdin from /dev/null. Returns its pid, or -1 (and adds a test failure
// naming the reason) if it could not be started.
pid_t Spawn(const SpawnOptions& options);

// Waits for the child to end, reaping it. nullopt if it is still running after `timeout`.
std::optional<ExitStatus> Wait(pid_t pid, std::chrono::milliseconds timeout);

// A child whose stdin, stdout and stderr are one pseudo-terminal, as when a person runs it:
// what it prints is read from the terminal's master side, and Type() is what the person
// types. If it is still running when the object dies, it is killed (SIGKILL) and reaped.
class TerminalProcess {
  public:
    // Starts options.args on a new pseudo-terminal (options.stdout_file/stderr_file unused).
    // pid() is -1 (and a test failure is added) if it could not be started.
    explicit TerminalProcess(const SpawnOptions& options);
    ~TerminalProcess();
    TerminalProcess(const TerminalProcess&) = delete;
    TerminalProcess& operator=(const TerminalProcess&) = delete;

    pid_t pid() const { return pid_; }
    // Reads the terminal until everything printed since the last successful ReadUntil
    // contains `text`; false (with what was read so far in transcript()) after `timeout`.
    bool ReadUntil(const std::string& text, std::chrono::milliseconds timeout);
    // Writes `text` to the terminal, as typed.
    void Type(const std::string& text);
    // Resizes the terminal to `columns` (24 rows), as a person dragging its window.
    void Resize(int columns);
    // Reads the terminal until the child exits; its status (code -1 after `timeout`, when the
    // child is killed).
    ExitStatus Wait(std::chrono::milliseconds timeout);
    // Everything the child printed so far.
    const std::string& transcript() const { return transcript_; }

  private:
    // Appends what is available within `timeout` to transcript_; false at end of output.
    bool ReadSome(std::chrono::milliseconds timeout);

    pid_t pid_ = -1;
    int master_ = -1;
    size_t consumed_ = 0;  // transcript_ up to here was matched by a ReadUntil
    std::string transcript_;
    std::optional<ExitStatus> status_;
};

// Sends `signal` to the child; false if it does not exist (any more).
bool Kill(pid_t pid, int signal);

// Polls `condition` every 10 ms until it returns true (returns true) or `timeout` passes
// (returns false after one last check).
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace strowger::testing
