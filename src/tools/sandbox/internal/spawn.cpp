#include "tools/sandbox/internal/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strowger::tools::sandbox::internal {
namespace {

// Steps of the child's setup, reported with errno when one fails.
enum ChildStep : int {
    kStepPdeathsig = 1,
    kStepProcessGroup,
    kStepDescriptors,
    kStepCgroup,
    kStepRlimit,
    kStepChdir,
    kStepExec,
};

const char* StepName(int step) {
    switch (step) {
        case kStepPdeathsig:
            return "prctl(PR_SET_PDEATHSIG)";
        case kStepProcessGroup:
            return "setpgid";
        case kStepDescriptors:
            return "setting up stdin/stdout/stderr";
        case kStepCgroup:
            return "joining the pids cgroup";
        case kStepRlimit:
            return "setrlimit";
        case kStepChdir:
            return "chdir";
        case kStepExec:
            return "exec";
    }
    return "setup";
}

struct ChildLimit {
    int resource;
    struct rlimit limit;
};

// Everything the child reads after fork(), prepared by the parent.
struct ChildSetup {
    const char* program;
    char* const* argv;
    char* const* envp;
    const char* working_dir;  // nullptr = keep
    const ChildLimit* limits;
    size_t limit_count;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    int report_fd;
    int cgroup_procs_fd;
    bool new_process_group;
    bool die_with_parent;
    pid_t parent_pid;
};

[[noreturn]] void ChildFail(int report_fd, int step) {
    int message[2] = {step, errno};
    ssize_t ignored = write(report_fd, message, sizeof message);
    (void)ignored;
    _exit(127);
}

// Runs in the forked child: async-signal-safe calls only (no allocation, no locks).
[[noreturn]] void RunChild(const ChildSetup& s) {
    struct sigaction default_action;
    std::memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &default_action, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);

    // Above 2 first: when the parent runs with 0..2 closed, a pipe end may be one of them.
    int report = fcntl(s.report_fd, F_DUPFD_CLOEXEC, 3);
    if (report < 0) ChildFail(s.report_fd, kStepDescriptors);
    int cgroup_procs = -1;
    if (s.cgroup_procs_fd >= 0) {
        cgroup_procs = fcntl(s.cgroup_procs_fd, F_DUPFD_CLOEXEC, 3);
        if (cgroup_procs < 0) ChildFail(report, kStepDescriptors);
    }
    if (s.die_with_parent) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(report, kStepPdeathsig);
        if (getppid() != s.parent_pid) _exit(127);  // the parent is already gone
    }
    if (s.new_process_group && setpgid(0, 0) != 0) ChildFail(report, kStepProcessGroup);
    int in = fcntl(s.stdin_fd, F_DUPFD_CLOEXEC, 3);
    int out = fcntl(s.stdout_fd, F_DUPFD_CLOEXEC, 3);
    int err = fcntl(s.stderr_fd, F_DUPFD_CLOEXEC, 3);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
        ChildFail(report, kStepDescriptors);
    }
    // Before the rlimits and exec: the child's own processes are counted from the start.
    if (cgroup_procs >= 0 && write(cgroup_procs, "0", 1) != 1) {
        ChildFail(report, kStepCgroup);
    }
    for (size_t i = 0; i < s.limit_count; ++i) {
        if (setrlimit(s.limits[i].resource, &s.limits[i].limit) != 0) {
            ChildFail(report, kStepRlimit);
        }
    }
    if (s.working_dir != nullptr && chdir(s.working_dir) != 0) ChildFail(report, kStepChdir);
    // Nothing but 0..2 survives exec (the report pipe is close-on-exec and stays until then).
    if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) != 0) {
        long max_fd = sysconf(_SC_OPEN_MAX);
        if (max_fd < 0 || max_fd > 65536) max_fd = 65536;
        for (int fd = 3; fd < max_fd; ++fd) {
            if (fd != report) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
    execve(s.program, s.argv, s.envp);
    ChildFail(report, kStepExec);
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
    std::vector<char*> pointers;
    pointers.reserve(strings.size() + 1);
    for (const auto& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
    pointers.push_back(nullptr);
    return pointers;
}

Status MakePipe(UniqueFd& read_end, UniqueFd& write_end) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return InternalError(std::string("sandbox: pipe2: ") + std::strerror(errno));
    }
    read_end.Reset(fds[0]);
    write_end.Reset(fds[1]);
    return OkStatus();
}

void SetNonBlocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

std::unexpected<Error> ChildSetupError(const ExecPlan& plan, int step, int error_number) {
    std::string message = "sandbox: cannot start \"" + plan.program + "\": " + StepName(step) +
                          " failed: " + std::strerror(error_number);
    if (step == kStepExec && (error_number == ENOENT || error_number == ENOTDIR)) {
        return NotFoundError(std::move(message));
    }
    if (error_number == EACCES || error_number == EPERM) {
        return PermissionDeniedError(std::move(message));
    }
    return FailedPreconditionError(std::move(message));
}

}  // namespace

void UniqueFd::Reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
}

SpawnedChild::SpawnedChild(SpawnedChild&& other) noexcept
    : pid(other.ReleasePid()),
      pidfd(std::move(other.pidfd)),
      stdin_fd(std::move(other.stdin_fd)),
      stdout_fd(std::move(other.stdout_fd)),
      stderr_fd(std::move(other.stderr_fd)) {}

SpawnedChild& SpawnedChild::operator=(SpawnedChild&& other) noexcept {
    if (this != &other) {
        KillAndReap();
        pid = other.ReleasePid();
        pidfd = std::move(other.pidfd);
        stdin_fd = std::move(other.stdin_fd);
        stdout_fd = std::move(other.stdout_fd);
        stderr_fd = std::move(other.stderr_fd);
    }
    return *this;
}

SpawnedChild::~SpawnedChild() {
    KillAndReap();
}

void SpawnedChild::KillAndReap() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
}

Result<SpawnedChild> Spawn(const ExecPlan& plan) {
    if (plan.argv.empty()) return InvalidArgumentError("sandbox: empty argv");
    std::vector<char*> argv = CStrings(plan.argv);
    std::vector<char*> envp = CStrings(plan.env);
    std::vector<ChildLimit> limits;
    for (const auto& [resource, value] : plan.rlimits) {
        struct rlimit current;
        if (getrlimit(resource, &current) != 0) continue;
        rlim_t wanted = value < 0 ? RLIM_INFINITY : static_cast<rlim_t>(value);
        if (current.rlim_max != RLIM_INFINITY &&
            (wanted == RLIM_INFINITY || wanted > current.rlim_max))
            wanted = current.rlim_max;
        limits.push_back({resource, {wanted, wanted}});
    }

    UniqueFd stdin_read, stdin_write, stdout_read, stdout_write, stderr_read, stderr_write;
    UniqueFd report_read, report_write;
    STROWGER_TRY(MakePipe(stdin_read, stdin_write));
    STROWGER_TRY(MakePipe(stdout_read, stdout_write));
    STROWGER_TRY(MakePipe(stderr_read, stderr_write));
    STROWGER_TRY(MakePipe(report_read, report_write));

    ChildSetup setup{};
    setup.program = plan.program.c_str();
    setup.argv = argv.data();
    setup.envp = envp.data();
    setup.working_dir = plan.working_dir.empty() ? nullptr : plan.working_dir.c_str();
    setup.limits = limits.data();
    setup.limit_count = limits.size();
    setup.stdin_fd = stdin_read.get();
    setup.stdout_fd = stdout_write.get();
    setup.stderr_fd = stderr_write.get();
    setup.report_fd = report_write.get();
    setup.cgroup_procs_fd = plan.cgroup_procs_fd;
    setup.new_process_group = plan.process_group == ProcessGroup::kNew;
    setup.die_with_parent = plan.die_with_parent == DieWithParent::kYes;
    setup.parent_pid = getpid();

    pid_t pid = fork();
    if (pid < 0) return InternalError(std::string("sandbox: fork: ") + std::strerror(errno));
    if (pid == 0) RunChild(setup);

    stdin_read.Reset();
    stdout_write.Reset();
    stderr_write.Reset();
    report_write.Reset();
    // EOF = the child exec'd (the pipe is close-on-exec); two ints = a setup step failed.
    int message[2] = {0, 0};
    size_t got = 0;
    while (got < sizeof message) {
        ssize_t n =
            read(report_read.get(), reinterpret_cast<char*>(message) + got, sizeof message - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    if (got > 0) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return ChildSetupError(plan, message[0], message[1]);
    }

    SpawnedChild child;
    child.pid = pid;
    child.pidfd.Reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
    SetNonBlocking(stdin_write.get());
    SetNonBlocking(stdout_read.get());
    SetNonBlocking(stderr_read.get());
    child.stdin_fd = std::move(stdin_write);
    child.stdout_fd = std::move(stdout_read);
    child.stderr_fd = std::move(stderr_read);
    return child;
}

ssize_t WriteNoSigpipe(int fd, const char* data, size_t size) {
    // SIGPIPE for a pipe write goes to the writing thread: block it here, and consume it if
    // this write raised it, so the process-wide disposition stays untouched.
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    sigset_t pending;
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    ssize_t n = write(fd, data, size);
    int error_number = errno;
    if (n < 0 && error_number == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
    return n < 0 ? -error_number : n;
}

std::string FindExecutable(const std::string& name, const std::string& path_list) {
    if (name.empty()) return {};
    if (name.find('/') != std::string::npos) return name;
    size_t start = 0;
    while (start <= path_list.size()) {
        size_t end = path_list.find(':', start);
        if (end == std::string::npos) end = path_list.size();
        std::string dir = path_list.substr(start, end - start);
        if (!dir.empty() && dir[0] == '/') {
            std::string candidate = dir + "/" + name;
            struct stat st;
            if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                access(candidate.c_str(), X_OK) == 0) {
                return candidate;
            }
        }
        start = end + 1;
    }
    return {};
}

}  // namespace strowger::tools::sandbox::internal
