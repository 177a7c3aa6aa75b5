// The bwrap command line: what the sandboxed process sees of the host. Private to
// tools/sandbox/; a pure function of its inputs so tests can read the exact arguments.
//
// Mounted: the system directories read-only (/usr, /etc, /opt and the /bin, /sbin, /lib*
// entries, recreated as symlinks where the host has merged /usr), a new read-only /dev (with the
// usual device nodes) and a new /proc, private size-limited tmpfs mounts on /tmp and /dev/shm
// (/var/tmp points to /tmp), the caller's bind mounts (at most one writable: the workspace),
// and the rest of the root read-only. Nothing else of the host exists inside: no /home, /root,
// /run (no host daemon sockets), /var or /sys.
//
// When we run as root the sandboxed process is uid 0 (without capabilities) and could read
// root-only files, so files and directories under /etc that "other" users may not read are
// masked (/dev/null or an empty read-only tmpfs), as a non-root user would see them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace strowger::tools::sandbox::internal {

// What of the host is mounted; detected once.
struct HostLayout {
    std::vector<std::string> read_only_dirs;                    // bound at the same path
    std::vector<std::pair<std::string, std::string>> symlinks;  // path -> target
    // /etc/resolv.conf's target when it lies outside /etc (systemd-resolved), for --share-net.
    std::string resolv_conf_target;
    std::vector<std::string> masked_files;
    std::vector<std::string> masked_dirs;
};

// `mask_private` scans /etc for files others may not read (for root; see above).
enum class MaskPrivateFiles { kNo, kYes };
HostLayout DetectHostLayout(MaskPrivateFiles mask_private);

struct BindMount {
    std::string source;  // host path
    std::string target;  // path inside
    bool writable = false;
};

struct BwrapInvocation {
    std::string bwrap;                 // path of the bwrap binary
    std::vector<std::string> command;  // argv inside the sandbox
    std::string working_dir;           // --chdir; "" = none
    std::vector<BindMount> binds;      // after the system mounts, in order
    bool network = false;
    bool drop_capabilities = false;  // --cap-drop ALL (meaningful when we are root)
    int64_t tmp_size_bytes = 0;      // 0 = no --size
    // "" = none; else the command runs under `prlimit --nproc=<max_processes>`, which makes the
    // kernel count the sandbox's processes in its own user namespace (non-root only).
    std::string prlimit;
    int64_t max_processes = 0;
};

std::vector<std::string> BwrapArgv(const HostLayout& layout, const BwrapInvocation& invocation);

}  // namespace strowger::tools::sandbox::internal
