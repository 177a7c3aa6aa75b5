// What the sandbox knows about the host (detected once per process) and the translation of
// one sandboxed command into an ExecPlan for bwrap. Private to tools/sandbox/.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "tools/sandbox/internal/bwrap_args.hpp"
#include "tools/sandbox/internal/cgroup.hpp"
#include "tools/sandbox/internal/spawn.hpp"
#include "tools/sandbox/sandbox.hpp"

namespace strowger::tools::sandbox::internal {

struct SandboxHost {
    std::string bwrap;    // "" if not installed
    std::string prlimit;  // used for kRlimitInUserNamespace
    bool root = false;
    HostLayout layout;
    std::shared_ptr<PidsCgroups> cgroups;  // null unless kPidsCgroup
    ProcessLimitEnforcement enforcement = ProcessLimitEnforcement::kNone;
};

// Detected on first use; thread-safe.
std::shared_ptr<const SandboxHost> Host();

struct SandboxedCommand {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;
    std::filesystem::path working_dir;   // "" = the writable dir
    std::filesystem::path writable_dir;  // "" = none
    std::vector<std::filesystem::path> read_only_paths;
    bool network = false;
    SandboxLimits limits;
};

struct PreparedExec {
    ExecPlan plan;
    std::optional<CgroupLease> cgroup;
};

// Validates the paths (kInvalidArgument for relative or system paths, kNotFound for missing
// ones) and builds the bwrap invocation, rlimits and cgroup. kFailedPrecondition without bwrap.
Result<PreparedExec> PrepareSandboxedExec(const SandboxHost& host, const SandboxedCommand& command);

// "NAME=value" strings.
std::vector<std::string> EnvironmentStrings(const std::map<std::string, std::string>& env);

}  // namespace strowger::tools::sandbox::internal
