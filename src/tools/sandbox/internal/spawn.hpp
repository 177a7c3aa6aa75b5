// Fork and exec for the sandbox (the only place in Strowger that forks). Private to
// tools/sandbox/.
//
// Spawn builds everything the child needs before fork(), so the child runs only
// async-signal-safe system calls (the parent is multi-threaded): reset signal dispositions and
// mask, optionally join a cgroup and a new process group, set rlimits, wire the pipes to
// 0/1/2, close every other descriptor, exec. A failure in the child before exec is reported
// back through a close-on-exec pipe, so Spawn returns either a running child or an error that
// names the failed step.
//
// Thread-safety: all functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace strowger::tools::sandbox::internal {

// Owns a file descriptor.
class UniqueFd {
  public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { Reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) Reset(other.Release());
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    int Release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void Reset(int fd = -1);

  private:
    int fd_ = -1;
};

enum class ProcessGroup { kInherit, kNew };
enum class DieWithParent { kNo, kYes };

struct ExecPlan {
    std::string program;  // the file to execve (a path; no PATH search here)
    std::vector<std::string> argv;
    std::vector<std::string> env;  // "NAME=value": the complete environment
    std::string working_dir;       // "" = the parent's
    // (resource, limit) pairs, set as soft and hard limit (lowered to the current hard limit
    // when that is smaller, since raising it needs privileges).
    std::vector<std::pair<int, int64_t>> rlimits;
    int cgroup_procs_fd = -1;  // >= 0: the child writes "0" to it (joins the cgroup) first
    ProcessGroup process_group = ProcessGroup::kInherit;
    // PR_SET_PDEATHSIG(SIGKILL): the child dies with the thread that spawned it.
    DieWithParent die_with_parent = DieWithParent::kYes;
};

// A started child. Until ReleasePid() hands it to an owner that reaps it, destroying this kills
// the child and reaps it (blocking: it dies at once), so no path leaves a zombie behind.
struct SpawnedChild {
    SpawnedChild() = default;
    SpawnedChild(SpawnedChild&& other) noexcept;
    SpawnedChild& operator=(SpawnedChild&& other) noexcept;
    ~SpawnedChild();
    pid_t ReleasePid() { return std::exchange(pid, -1); }

    pid_t pid = -1;
    UniqueFd pidfd;  // invalid when pidfd_open is unavailable (Linux < 5.3)
    // The parent's ends: non-blocking and close-on-exec.
    UniqueFd stdin_fd;
    UniqueFd stdout_fd;
    UniqueFd stderr_fd;

  private:
    void KillAndReap();
};

// Starts `plan`. Blocks only until the child has exec'd or failed to (microseconds to a few
// milliseconds). kInternal if a pipe or fork fails; kNotFound / kPermissionDenied /
// kFailedPrecondition for an exec or setup step that failed in the child (the message names
// the step and the errno).
Result<SpawnedChild> Spawn(const ExecPlan& plan);

// write(2) that never raises SIGPIPE in the process: a closed read end is reported as -EPIPE.
// Returns the bytes written or -errno.
ssize_t WriteNoSigpipe(int fd, const char* data, size_t size);

// Finds `name` in the colon-separated `path_list` (absolute directories only) as an executable
// file; a name containing '/' is returned as is. "" if not found.
std::string FindExecutable(const std::string& name, const std::string& path_list);

}  // namespace strowger::tools::sandbox::internal
