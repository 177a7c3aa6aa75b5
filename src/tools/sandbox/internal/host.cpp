#include "tools/sandbox/internal/host.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <system_error>

#include "core/strings.hpp"

namespace strowger::tools::sandbox::internal {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<const SandboxHost> DetectHost() {
    auto host = std::make_shared<SandboxHost>();
    host->root = geteuid() == 0;
    const char* path_env = std::getenv("PATH");
    std::string path = std::string(path_env ? path_env : "") + ":/usr/local/bin:/usr/bin:/bin";
    host->bwrap = FindExecutable("bwrap", path);
    host->prlimit = FindExecutable("prlimit", "/usr/bin:/bin");
    host->layout = DetectHostLayout(host->root ? MaskPrivateFiles::kYes : MaskPrivateFiles::kNo);
    host->cgroups = PidsCgroups::Detect();
    if (host->cgroups) {
        host->enforcement = ProcessLimitEnforcement::kPidsCgroup;
    } else if (!host->root && !host->prlimit.empty()) {
        host->enforcement = ProcessLimitEnforcement::kRlimitInUserNamespace;
    }
    return host;
}

bool IsWithin(const fs::path& path, const fs::path& dir) {
    auto p = path.begin();
    for (auto d = dir.begin(); d != dir.end(); ++d, ++p) {
        if (d->empty()) continue;  // trailing separator
        if (p == path.end() || *p != *d) return false;
    }
    return true;
}

bool IsSystemPath(const fs::path& path) {
    if (path == "/") return true;
    for (const char* system : {"/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                               "/libx32", "/proc", "/sys", "/dev", "/boot"}) {
        if (IsWithin(path, system)) return true;
    }
    return false;
}

// The canonical host path of the absolute `path` (which must exist).
Result<fs::path> ResolveHostPath(const fs::path& path, std::string_view what) {
    if (!path.is_absolute()) {
        return InvalidArgumentError("sandbox: " + std::string(what) + " \"" + path.string() +
                                    "\" is not an absolute path");
    }
    std::error_code ec;
    fs::path canonical = fs::canonical(path, ec);
    if (ec) {
        return NotFoundError("sandbox: " + std::string(what) + " \"" + path.string() +
                             "\": " + ec.message());
    }
    return canonical;
}

}  // namespace

std::shared_ptr<const SandboxHost> Host() {
    static const std::shared_ptr<const SandboxHost> host = DetectHost();
    return host;
}

std::vector<std::string> EnvironmentStrings(const std::map<std::string, std::string>& env) {
    std::vector<std::string> strings;
    strings.reserve(env.size());
    for (const auto& [name, value] : env) strings.push_back(name + "=" + value);
    return strings;
}

Result<PreparedExec> PrepareSandboxedExec(const SandboxHost& host,
                                          const SandboxedCommand& command) {
    if (host.bwrap.empty()) {
        return FailedPreconditionError(
            "sandbox: bubblewrap (bwrap) is not installed; install the \"bubblewrap\" package");
    }
    if (command.argv.empty() || command.argv[0].empty()) {
        return InvalidArgumentError("sandbox: empty command");
    }
    BwrapInvocation invocation;
    invocation.bwrap = host.bwrap;
    invocation.command = command.argv;
    invocation.network = command.network;
    invocation.drop_capabilities = host.root;
    const SandboxLimits& limits = command.limits;
    if (limits.max_file_size_bytes > 0) invocation.tmp_size_bytes = limits.max_file_size_bytes;

    fs::path writable_target;
    if (!command.writable_dir.empty()) {
        STROWGER_ASSIGN_OR_RETURN(fs::path source,
                                  ResolveHostPath(command.writable_dir, "workspace"));
        if (!fs::is_directory(source)) {
            return InvalidArgumentError("sandbox: workspace \"" + command.writable_dir.string() +
                                        "\" is not a directory");
        }
        writable_target = command.writable_dir.lexically_normal();
        if (IsSystemPath(source) || IsSystemPath(writable_target)) {
            return InvalidArgumentError("sandbox: workspace \"" + command.writable_dir.string() +
                                        "\" is a system directory");
        }
        invocation.binds.push_back({source.string(), writable_target.string(), true});
    }
    for (const auto& path : command.read_only_paths) {
        STROWGER_ASSIGN_OR_RETURN(fs::path source, ResolveHostPath(path, "read-only path"));
        invocation.binds.push_back({source.string(), path.lexically_normal().string(), false});
    }
    fs::path working_dir = command.working_dir.empty() ? writable_target : command.working_dir;
    if (!working_dir.empty()) {
        STROWGER_ASSIGN_OR_RETURN(fs::path source,
                                  ResolveHostPath(working_dir, "working directory"));
        working_dir = working_dir.lexically_normal();
        bool visible = !writable_target.empty() && IsWithin(working_dir, writable_target);
        for (const auto& path : command.read_only_paths) {
            if (IsWithin(working_dir, path.lexically_normal())) visible = true;
        }
        if (!visible && !IsSystemPath(working_dir)) {
            invocation.binds.push_back({source.string(), working_dir.string(), false});
        }
        invocation.working_dir = working_dir.string();
    }

    PreparedExec prepared;
    if (limits.max_processes > 0) {
        if (host.enforcement == ProcessLimitEnforcement::kPidsCgroup) {
            // bwrap itself and its init process (PID 1) are in the cgroup too.
            STROWGER_ASSIGN_OR_RETURN(prepared.cgroup,
                                      host.cgroups->Create(limits.max_processes + 2));
        } else if (host.enforcement == ProcessLimitEnforcement::kRlimitInUserNamespace) {
            invocation.prlimit = host.prlimit;
            invocation.max_processes = limits.max_processes + 1;  // bwrap's PID 1 is counted
        }
    }

    ExecPlan& plan = prepared.plan;
    plan.program = host.bwrap;
    plan.argv = BwrapArgv(host.layout, invocation);
    // bwrap gets the command's environment and nothing else: its PID 1 inside is a fork of it,
    // and /proc/1/environ shows the environment bwrap was started with (--clearenv or not).
    plan.env = EnvironmentStrings(command.env);
    auto limit = [&plan](int resource, int64_t value) {
        if (value > 0) plan.rlimits.emplace_back(resource, value);
    };
    limit(RLIMIT_CPU, limits.cpu_seconds);
    limit(RLIMIT_AS, limits.memory_bytes);
    limit(RLIMIT_NOFILE, limits.max_open_files);
    limit(RLIMIT_FSIZE, limits.max_file_size_bytes);
    plan.rlimits.emplace_back(RLIMIT_CORE, 0);
    if (prepared.cgroup) plan.cgroup_procs_fd = prepared.cgroup->procs_fd.get();
    plan.process_group = ProcessGroup::kNew;
    plan.die_with_parent = DieWithParent::kYes;
    return prepared;
}

}  // namespace strowger::tools::sandbox::internal
