// The integration tests' view of Strowger from outside: a private directory with its own
// store, the real `strowger` binary started as a child process in it, and the store's SQLite
// file read directly (as an auditor or another process would) to see what the runs did.
//
// Thread-safety: none; one test thread uses a CliEnvironment.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "integration/process.hpp"
#include "testing/test_util.hpp"

namespace strowger::testing {

// What a finished command printed and how it ended.
struct CommandResult {
    ExitStatus status;
    std::string out;
    std::string err;

    // The exit code, or -1 if a signal ended the command (or it timed out).
    int exit_code() const { return status.code; }
};

// A strowger (or other) process started by CliEnvironment::Start. If it is still running when
// the object dies, it is killed (SIGKILL) and reaped, so a failed test leaves no orphan.
class ChildProcess {
  public:
    ChildProcess(pid_t pid, std::string stdout_file, std::string stderr_file);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    // True until the child has been reaped by Wait.
    bool running() const { return !status_; }
    // Waits for the child to end and returns what it printed. If it is still running after
    // `timeout`, adds a test failure, kills it, and returns status code -1.
    CommandResult Wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    bool Signal(int signal) const;
    // What it has printed so far.
    std::string Stdout() const;
    std::string Stderr() const;

  private:
    pid_t pid_;
    std::string stdout_file_;
    std::string stderr_file_;
    std::optional<ExitStatus> status_;
};

// One event of a run's ledger as stored: the indexed columns plus the parsed line.
struct LedgerEvent {
    int64_t seq = 0;
    std::string type;
    std::string node;
    int64_t attempt = 0;  // 0 when the event has none
    json::object data;    // empty if the line does not parse
    std::string line;     // the canonical line, as stored

    // "node.started flaky#2", for failure messages.
    std::string ToString() const;
};

// A temporary directory holding a store (s.db), the workflow files a test writes, and the
// output of every command; the environment the binary runs with (nothing inherited but PATH):
//   STROWGER_STORE=sqlite:<dir>/s.db  HOME=<dir>  XDG_STATE_HOME=<dir>/state  USER=integration
class CliEnvironment {
  public:
    CliEnvironment();

    const std::filesystem::path& dir() const { return dir_.path(); }
    std::string store_path() const;
    // Writes `content` to `name` inside the directory; returns the absolute path.
    std::string Write(const std::string& name, const std::string& content) const;
    // Adds or replaces a variable of the children's environment.
    void SetEnv(const std::string& name, const std::string& value);

    // Runs `strowger <args...>` in dir() and waits for it.
    CommandResult Run(const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Runs any program (args[0], looked up on $PATH) in dir() with the same environment.
    CommandResult RunProgram(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));
    // Starts `strowger <args...>` in dir() without waiting.
    std::unique_ptr<ChildProcess> Start(const std::vector<std::string>& args);
    // Starts `strowger <args...>` in dir() on a pseudo-terminal (stdin, stdout and stderr), as
    // a person at a terminal would.
    // `columns`: the terminal's width (0: the pty's default).
    std::unique_ptr<TerminalProcess> StartInTerminal(const std::vector<std::string>& args,
                                                     int columns = 0);

    // --- The store, read with the SQLite C API (an empty answer while it does not exist). ---
    // Every run id, oldest first.
    std::vector<std::string> RunIds() const;
    // The run's status column ("running", "completed", ...), "" if there is no such run.
    std::string RunStatus(const std::string& run_id) const;
    // The run's ledger in seq order.
    std::vector<LedgerEvent> Events(const std::string& run_id) const;
    // Waits until the store holds exactly one run and returns its id ("" on timeout).
    std::string WaitForOnlyRun(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  private:
    std::unique_ptr<ChildProcess> StartProgram(const std::vector<std::string>& args);
    std::vector<std::string> Environment() const;

    TempDir dir_;
    std::map<std::string, std::string> env_;
    int commands_ = 0;
};

// Helpers over a ledger.
int64_t CountEvents(const std::vector<LedgerEvent>& events, const std::string& type,
                    const std::string& node = "");
// The first event of `type` (and `node`, if given), or null.
const LedgerEvent* FindEvent(const std::vector<LedgerEvent>& events, const std::string& type,
                             const std::string& node = "");
// "run.created, run.started, node.started a#1, ..." for failure messages.
std::string Describe(const std::vector<LedgerEvent>& events);

// A command's output split into lines (without their '\n').
std::vector<std::string> Lines(const std::string& text);

// Runs one SQL statement on the store file directly (not through Strowger), as a tamperer
// would, with `binds` bound to its '?' in order. Adds a test failure if it fails; returns the
// number of rows changed.
int ExecSql(const std::string& db_path, const std::string& sql,
            const std::vector<std::string>& binds = {});
// The first column of every row of `sql`, as text.
std::vector<std::string> QueryColumn(const std::string& db_path, const std::string& sql);

}  // namespace strowger::testing
