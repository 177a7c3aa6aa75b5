#include "tools/sandbox/internal/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/log.hpp"
#include "core/strings.hpp"

namespace strowger::tools::sandbox::internal {
namespace {

struct Hierarchy {
    std::string mount_point;
    std::string mount_root;
    bool v2 = false;
};

// The pids hierarchy from /proc/self/mountinfo: a v1 "cgroup" mount whose super options
// include "pids", else the "cgroup2" mount.
std::optional<Hierarchy> FindHierarchy() {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    std::optional<Hierarchy> v2;
    while (std::getline(in, line)) {
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        std::istringstream head(line.substr(0, dash));
        std::string id, parent, device, root, mount_point;
        head >> id >> parent >> device >> root >> mount_point;
        std::istringstream tail(line.substr(dash + 3));
        std::string fstype, source, options;
        tail >> fstype >> source >> options;
        if (fstype == "cgroup") {
            for (const auto& option : Split(options, ',')) {
                if (option == "pids") return Hierarchy{mount_point, root, false};
            }
        } else if (fstype == "cgroup2" && !v2) {
            v2 = Hierarchy{mount_point, root, true};
        }
    }
    return v2;
}

// Our cgroup path in the hierarchy, from /proc/self/cgroup.
std::optional<std::string> OwnCgroup(bool v2) {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        auto first = line.find(':');
        auto second = first == std::string::npos ? first : line.find(':', first + 1);
        if (second == std::string::npos) continue;
        std::string controllers = line.substr(first + 1, second - first - 1);
        std::string path = line.substr(second + 1);
        if (v2) {
            if (line.compare(0, first, "0") == 0 && controllers.empty()) return path;
        } else {
            for (const auto& c : Split(controllers, ',')) {
                if (c == "pids") return path;
            }
        }
    }
    return std::nullopt;
}

bool WriteFile(const std::string& path, std::string_view text) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = write(fd, text.data(), text.size());
    close(fd);
    return n == static_cast<ssize_t>(text.size());
}

std::string ReadSmallFile(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

bool ProcessAlive(pid_t pid) {
    return kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace

std::shared_ptr<PidsCgroups> PidsCgroups::Detect() {
    auto hierarchy = FindHierarchy();
    if (!hierarchy) {
        spdlog::debug("sandbox: no pids cgroup hierarchy mounted");
        return nullptr;
    }
    auto own = OwnCgroup(hierarchy->v2);
    if (!own) {
        spdlog::debug("sandbox: our pids cgroup is not in /proc/self/cgroup");
        return nullptr;
    }
    // With a cgroup namespace or a container mount, the mount's root is a prefix of our path.
    std::string relative = *own;
    if (hierarchy->mount_root != "/" && StartsWith(relative, hierarchy->mount_root)) {
        relative = relative.substr(hierarchy->mount_root.size());
    }
    std::string base = hierarchy->mount_point;
    if (!relative.empty() && relative != "/") base += relative;
    if (hierarchy->v2) {
        // v2 only limits children when "pids" is enabled for our cgroup's subtree.
        bool enabled = false;
        for (const auto& c :
             Split(std::string(Trim(ReadSmallFile(base + "/cgroup.subtree_control"))), ' ')) {
            if (c == "pids") enabled = true;
        }
        if (!enabled) {
            spdlog::debug("sandbox: pids not enabled in {}/cgroup.subtree_control", base);
            return nullptr;
        }
    }
    if (access(base.c_str(), W_OK) != 0) {
        spdlog::debug("sandbox: {} is not writable", base);
        return nullptr;
    }
    std::shared_ptr<PidsCgroups> cgroups(new PidsCgroups(base));
    // Leftovers of strowger processes that died before removing their cgroups.
    if (DIR* dir = opendir(base.c_str())) {
        std::vector<std::string> stale;
        while (struct dirent* entry = readdir(dir)) {
            std::string name = entry->d_name;
            if (!StartsWith(name, "strowger-")) continue;
            pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + 9));
            if (owner > 0 && owner != getpid() && !ProcessAlive(owner)) stale.push_back(name);
        }
        closedir(dir);
        for (const auto& name : stale) cgroups->KillAndRemove(base + "/" + name);
    }
    auto probe = cgroups->Create(8);
    if (!probe) {
        spdlog::debug("sandbox: cannot create a pids cgroup: {}", probe.error().message());
        return nullptr;
    }
    probe->procs_fd.Reset();
    rmdir(probe->path.c_str());
    return cgroups;
}

Result<CgroupLease> PidsCgroups::Create(int64_t max_pids) {
    RetryAbandoned();
    CgroupLease lease;
    lease.path = base_ + "/strowger-" + std::to_string(getpid()) + "-" +
                 std::to_string(counter_.fetch_add(1, std::memory_order_relaxed));
    if (mkdir(lease.path.c_str(), 0755) != 0) {
        return InternalError("sandbox: mkdir " + lease.path + ": " + std::strerror(errno));
    }
    if (!WriteFile(lease.path + "/pids.max", std::to_string(max_pids))) {
        int error_number = errno;
        rmdir(lease.path.c_str());
        return InternalError("sandbox: cannot set " + lease.path +
                             "/pids.max: " + std::strerror(error_number));
    }
    lease.procs_fd.Reset(open((lease.path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!lease.procs_fd) {
        int error_number = errno;
        rmdir(lease.path.c_str());
        return InternalError("sandbox: cannot open " + lease.path +
                             "/cgroup.procs: " + std::strerror(error_number));
    }
    return lease;
}

bool PidsCgroups::KillAndRemove(const std::string& path) {
    if (rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
    // Every pid listed is in our cgroup right now, so it is one of ours: no pid-reuse risk.
    std::ifstream procs(path + "/cgroup.procs");
    pid_t pid = 0;
    while (procs >> pid) {
        if (pid > 0) kill(pid, SIGKILL);
    }
    return rmdir(path.c_str()) == 0 || errno == ENOENT;
}

void PidsCgroups::Abandon(std::string path) {
    std::lock_guard lock(mutex_);
    abandoned_.push_back(std::move(path));
}

void PidsCgroups::RetryAbandoned() {
    std::vector<std::string> paths;
    {
        std::lock_guard lock(mutex_);
        if (abandoned_.empty()) return;
        paths.swap(abandoned_);
    }
    std::vector<std::string> remaining;
    for (auto& path : paths) {
        if (!KillAndRemove(path)) remaining.push_back(std::move(path));
    }
    if (remaining.empty()) return;
    std::lock_guard lock(mutex_);
    for (auto& path : remaining) abandoned_.push_back(std::move(path));
}

Awaitable<void> RemoveWhenEmpty(std::shared_ptr<PidsCgroups> cgroups, std::string path,
                                std::chrono::milliseconds grace) {
    // Hands the path over to Abandon unless it was removed, however this coroutine ends.
    struct Removal {
        ~Removal() {
            if (!removed) cgroups->Abandon(path);
        }
        std::shared_ptr<PidsCgroups>& cgroups;
        std::string& path;
        bool removed = false;
    } removal{cgroups, path};
    co_await asio::this_coro::throw_if_cancelled(false);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto give_up = std::chrono::steady_clock::now() + grace;
    auto interval = std::chrono::milliseconds(1);
    while (!(removal.removed = cgroups->KillAndRemove(path))) {
        if (std::chrono::steady_clock::now() >= give_up) {
            spdlog::warn("sandbox: {} still has tasks; removing it later", path);
            co_return;
        }
        timer.expires_after(interval);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        interval = std::min<std::chrono::milliseconds>(interval * 2, std::chrono::milliseconds(50));
    }
}

}  // namespace strowger::tools::sandbox::internal
