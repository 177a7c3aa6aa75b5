// The sandbox: how any external process runs (shell tool, command: provider, MCP servers).
// tools/sandbox/ is the only code that forks or execs.
//
// BubblewrapSandbox runs argv inside bwrap (Debian's bubblewrap): the system read-only, the
// run's workspace the only writable directory, a private /tmp, no network unless granted, new
// session and PID namespace (killing bwrap kills the whole tree), dies with the engine
// (--die-with-parent), rlimits on CPU, address space, open files and file size, a process-count
// limit, a wall timeout that kills the whole tree, and capped output. The environment is
// scrubbed: only variables listed in the spec reach the process.
//
// What the process sees (tools/sandbox/internal/bwrap_args.hpp): /usr, /etc, /opt and the
// /bin, /lib* entries read-only; new /dev (read-only, with the usual device nodes) and /proc;
// private tmpfs mounts on /tmp and /dev/shm of at most max_file_size_bytes each; the workspace
// (read-write) and read_only_paths at their host paths; nothing else (no /home, /root, /run,
// /var, /sys). No capabilities, no nested user namespaces, its own network namespace (only a
// loopback) unless network is granted. When strowger runs as root, files under /etc that other
// users may not read (/etc/shadow, private keys) are masked.
//
// Run forks on a small blocking pool (tools/sandbox/blocking.hpp), never on the caller's
// thread, and returns only once the whole tree is gone (bwrap reaped, pipes drained, the pids
// cgroup, if any, empty and removed).
//
// Thread-safety: Run may be called concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/asio.hpp"
#include "core/deadline.hpp"
#include "core/result.hpp"
#include "tools/tool.hpp"

namespace strowger::tools::sandbox {

struct SandboxSpec {
    std::vector<std::string> argv;  // argv[0] is looked up in PATH inside the sandbox
    std::string stdin_data;
    std::filesystem::path workspace;         // bind-mounted read-write, the working dir
    std::map<std::string, std::string> env;  // the complete environment
    bool network = false;
    SandboxLimits limits;
    // Extra read-only bind mounts (host path -> same path inside), e.g. a tool's install dir.
    std::vector<std::filesystem::path> read_only_paths;
};

struct SandboxResult {
    // The command's exit status as bwrap reports it: a command killed by signal N (SIGXCPU at
    // the CPU limit, SIGXFSZ at the file size limit, SIGKILL) gives 128 + N. -1 when bwrap
    // itself was killed (timeout, deadline): then `signal` says by what.
    int exit_code = -1;
    int signal = 0;
    std::string stdout_data;
    std::string stderr_data;
    bool timed_out = false;         // the wall timeout (or deadline) killed the tree
    bool output_truncated = false;  // stdout or stderr exceeded max_output_bytes
    bool stdout_truncated = false;  // which of the two did
    bool stderr_truncated = false;
};

class Sandbox {
  public:
    virtual ~Sandbox() = default;
    // Runs to completion. Errors are for the sandbox itself failing (bwrap missing, spawn
    // failed); the process's own failure is in SandboxResult. Cancellation kills the tree.
    virtual Awaitable<Result<SandboxResult>> Run(SandboxSpec spec, Deadline deadline) = 0;
};

// A long-lived child with pipes, for MCP stdio servers: started in the sandbox (or directly
// when `sandboxed` is false, in its own process group), stdin/stdout as a byte stream. Killing
// it (or destroying it) kills its process tree (for a direct child: its process group).
// Background work on the executor given to StartProcess keeps the stderr tail and reaps the
// child; its pipes live on that executor too.
//
// Thread-safety: one Read and one Write may be pending at a time, from coroutines on that
// executor; the Process must outlive them. Kill, Exited and StderrTail may be called from any
// thread.
class Process {
  public:
    virtual ~Process() = default;
    // Writes all of `data` to the child's stdin.
    virtual Awaitable<Status> Write(std::string data) = 0;
    // Reads what is available from stdout (at least one byte); kUnavailable at EOF.
    virtual Awaitable<Result<std::string>> Read() = 0;
    // The child's stderr so far (capped), for error messages.
    virtual std::string StderrTail() const = 0;
    virtual void Kill() = 0;
    virtual bool Exited() const = 0;
};

struct ProcessSpec {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;  // the complete environment
    std::filesystem::path working_dir;
    bool sandboxed = true;
    bool network = false;  // when sandboxed
    SandboxLimits limits;  // when sandboxed (wall_timeout_ms and max_output_bytes unused)
    std::vector<std::filesystem::path> read_only_paths;
    std::filesystem::path writable_dir;  // when sandboxed: the only writable directory
};

// How SandboxLimits::max_processes is enforced on this host (decided once per process):
//  * kPidsCgroup: a pids cgroup per run (pids.max), when the pids controller is writable by us
//    (typically as root). Counts bwrap's own two processes too, so pids.max = max_processes + 2.
//  * kRlimitInUserNamespace: not root and no writable cgroup: the command runs under
//    `prlimit --nproc`, set inside the sandbox's own user namespace, where the kernel counts only
//    the sandbox's processes.
//  * kNone: root without a writable pids cgroup (RLIMIT_NPROC does not bind uid 0); logged as a
//    warning when the sandbox is created.
enum class ProcessLimitEnforcement { kPidsCgroup, kRlimitInUserNamespace, kNone };
ProcessLimitEnforcement DetectProcessLimitEnforcement();
std::string_view ProcessLimitEnforcementName(ProcessLimitEnforcement enforcement);

// Creates the bubblewrap sandbox; kFailedPrecondition if bwrap is not installed or user
// namespaces are not available (the message says which).
Result<std::shared_ptr<Sandbox>> CreateBubblewrapSandbox(Executor executor);

// Starts a long-lived child process (see Process). Forks on the calling thread (the child's
// PR_SET_PDEATHSIG is tied to it: call it from a thread that lives as long as the child should).
// kNotFound if a direct command is not in the spec's PATH; the sandbox's errors otherwise.
Result<std::unique_ptr<Process>> StartProcess(Executor executor, ProcessSpec spec);

}  // namespace strowger::tools::sandbox
