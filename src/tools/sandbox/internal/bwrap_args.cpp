#include "tools/sandbox/internal/bwrap_args.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

namespace strowger::tools::sandbox::internal {
namespace {

namespace fs = std::filesystem;

bool OthersMayRead(const fs::directory_entry& entry, bool directory) {
    struct stat st;
    if (lstat(entry.path().c_str(), &st) != 0) return true;
    if (directory) return (st.st_mode & S_IROTH) && (st.st_mode & S_IXOTH);
    return (st.st_mode & S_IROTH) != 0;
}

void ScanPrivate(const fs::path& dir, int depth, HostLayout& layout) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const auto& entry = *it;
        std::error_code type_ec;
        auto status = entry.symlink_status(type_ec);
        if (type_ec) continue;
        if (fs::is_directory(status)) {
            if (!OthersMayRead(entry, true)) {
                layout.masked_dirs.push_back(entry.path().string());
            } else if (depth > 0) {
                ScanPrivate(entry.path(), depth - 1, layout);
            }
        } else if (fs::is_regular_file(status) && !OthersMayRead(entry, false)) {
            layout.masked_files.push_back(entry.path().string());
        }
    }
}

}  // namespace

HostLayout DetectHostLayout(MaskPrivateFiles mask_private) {
    HostLayout layout;
    for (const char* dir :
         {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"}) {
        std::error_code ec;
        auto status = fs::symlink_status(dir, ec);
        if (ec) continue;
        if (fs::is_symlink(status)) {
            auto target = fs::read_symlink(dir, ec);
            if (!ec) layout.symlinks.emplace_back(dir, target.string());
        } else if (fs::is_directory(status)) {
            layout.read_only_dirs.emplace_back(dir);
        }
    }
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status("/etc/resolv.conf", ec))) {
        auto target = fs::canonical("/etc/resolv.conf", ec);
        if (!ec && target.string().rfind("/etc/", 0) != 0) {
            layout.resolv_conf_target = target.string();
        }
    }
    if (mask_private == MaskPrivateFiles::kYes) ScanPrivate("/etc", 4, layout);
    return layout;
}

std::vector<std::string> BwrapArgv(const HostLayout& layout, const BwrapInvocation& invocation) {
    std::vector<std::string> args = {invocation.bwrap,   "--unshare-all",     "--unshare-user",
                                     "--disable-userns", "--die-with-parent", "--new-session"};
    if (invocation.network) args.push_back("--share-net");
    if (invocation.drop_capabilities) {
        args.insert(args.end(), {"--cap-drop", "ALL"});
    }
    for (const auto& dir : layout.read_only_dirs) args.insert(args.end(), {"--ro-bind", dir, dir});
    for (const auto& [path, target] : layout.symlinks) {
        args.insert(args.end(), {"--symlink", target, path});
    }
    if (invocation.network && !layout.resolv_conf_target.empty()) {
        args.insert(args.end(),
                    {"--ro-bind-try", layout.resolv_conf_target, layout.resolv_conf_target});
    }
    for (const auto& file : layout.masked_files) {
        args.insert(args.end(), {"--ro-bind-try", "/dev/null", file});
    }
    for (const auto& dir : layout.masked_dirs) {
        args.insert(args.end(), {"--perms", "0000", "--tmpfs", dir, "--remount-ro", dir});
    }
    // The private tmpfs mounts are the only writable places besides the workspace; their size
    // is capped, since tmpfs pages are memory that RLIMIT_AS does not count.
    auto sized_tmpfs = [&](const char* path) {
        if (invocation.tmp_size_bytes > 0) {
            args.insert(args.end(), {"--size", std::to_string(invocation.tmp_size_bytes)});
        }
        args.insert(args.end(), {"--tmpfs", path});
    };
    args.insert(args.end(), {"--dev", "/dev"});
    sized_tmpfs("/dev/shm");
    args.insert(args.end(), {"--remount-ro", "/dev", "--proc", "/proc"});
    sized_tmpfs("/tmp");
    args.insert(args.end(), {"--dir", "/var", "--symlink", "../tmp", "/var/tmp"});
    for (const auto& bind : invocation.binds) {
        args.insert(args.end(), {bind.writable ? "--bind" : "--ro-bind", bind.source, bind.target});
    }
    // bwrap's root is a tmpfs of its own: read-only, or it would be an unbounded scratch space.
    args.insert(args.end(), {"--remount-ro", "/"});
    if (!invocation.working_dir.empty())
        args.insert(args.end(), {"--chdir", invocation.working_dir});
    args.push_back("--");
    if (!invocation.prlimit.empty()) {
        args.insert(args.end(), {invocation.prlimit,
                                 "--nproc=" + std::to_string(invocation.max_processes), "--"});
    }
    args.insert(args.end(), invocation.command.begin(), invocation.command.end());
    return args;
}

}  // namespace strowger::tools::sandbox::internal
