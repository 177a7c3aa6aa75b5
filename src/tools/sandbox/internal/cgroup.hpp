// Per-run pids cgroups: how the sandbox caps the number of processes when it runs as root
// (RLIMIT_NPROC does not apply to uid 0). Private to tools/sandbox/.
//
// Detect() finds the pids controller (cgroup v1 "pids" hierarchy, or cgroup v2 with "pids" in
// our cgroup's subtree_control) and checks that we may create a child cgroup under our own
// cgroup and set pids.max in it. Each run gets "<our cgroup>/strowger-<pid>-<n>": the child
// process joins it before exec, so bwrap and everything under it are counted; the directory is
// removed once the tree is gone. Directories left by a crashed strowger process (its pid no
// longer exists) are removed by the next Detect().
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/result.hpp"
#include "tools/sandbox/internal/spawn.hpp"

namespace strowger::tools::sandbox::internal {

struct CgroupLease {
    std::string path;   // the cgroup directory
    UniqueFd procs_fd;  // its cgroup.procs, open for writing (for ExecPlan::cgroup_procs_fd)
};

class PidsCgroups {
  public:
    // nullptr if no pids controller is writable by us (the reason is logged at debug level).
    static std::shared_ptr<PidsCgroups> Detect();

    const std::string& base() const { return base_; }

    // A new cgroup allowing at most `max_pids` tasks (processes and threads).
    Result<CgroupLease> Create(int64_t max_pids);

    // SIGKILLs every task still in the cgroup at `path` and tries to remove it: true once the
    // directory is gone (or never existed), false while tasks are still exiting.
    bool KillAndRemove(const std::string& path);

    // Gives up waiting for `path` to empty; it is retried by later Create calls.
    void Abandon(std::string path);

  private:
    explicit PidsCgroups(std::string base) : base_(std::move(base)) {}
    void RetryAbandoned();

    std::string base_;
    std::atomic<uint64_t> counter_{0};
    std::mutex mutex_;
    std::vector<std::string> abandoned_;  // GUARDED_BY(mutex_)
};

// Removes the cgroup at `path` once its last task has gone (tasks of a killed PID namespace exit
// asynchronously, within milliseconds), killing stragglers; after `grace`, or if the awaiting
// coroutine is cancelled or destroyed, the removal is left to a later Create. Never throws.
inline constexpr std::chrono::milliseconds kCgroupGrace = std::chrono::seconds(5);
Awaitable<void> RemoveWhenEmpty(std::shared_ptr<PidsCgroups> cgroups, std::string path,
                                std::chrono::milliseconds grace = kCgroupGrace);

}  // namespace strowger::tools::sandbox::internal
