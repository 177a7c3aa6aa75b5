#include "tools/builtin/workspace_files.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace strowger::tools::builtin {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Components(const std::string& relative) {
    std::vector<std::string> parts;
    for (const auto& part : fs::path(relative)) {
        if (!part.empty() && part != ".") parts.push_back(part.string());
    }
    return parts;
}

bool IsWithin(const fs::path& path, const fs::path& dir) {
    auto p = path.begin();
    for (auto d = dir.begin(); d != dir.end(); ++d, ++p) {
        if (d->empty()) continue;
        if (p == path.end() || *p != *d) return false;
    }
    return true;
}

}  // namespace

FileDescriptor::~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
}

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) close(fd_);
        fd_ = other.Release();
    }
    return *this;
}

Result<Workspace> Workspace::Open(std::string_view tool, const fs::path& root) {
    std::string name(tool);
    if (root.empty() || !root.is_absolute()) {
        return FailedPreconditionError(name + ": the call has no workspace");
    }
    int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return FailedPreconditionError(name + ": workspace " + root.string() + ": " +
                                       std::strerror(errno));
    }
    return Workspace(std::move(name), root.lexically_normal(),
                     std::make_shared<FileDescriptor>(fd));
}

Result<std::string> Workspace::Relative(std::string_view path) const {
    if (path.empty()) return InvalidArgumentError(tool_ + ": \"path\" must not be empty");
    if (path.find('\0') != std::string_view::npos) {
        return InvalidArgumentError(tool_ + ": \"path\" must not contain NUL bytes");
    }
    fs::path given(path);
    fs::path relative;
    if (given.is_absolute()) {
        fs::path normal = given.lexically_normal();
        std::error_code ec;
        fs::path canonical_root = fs::canonical(root_, ec);
        if (IsWithin(normal, root_)) {
            relative = normal.lexically_relative(root_);
        } else if (!ec && IsWithin(normal, canonical_root)) {
            relative = normal.lexically_relative(canonical_root);
        } else {
            return PermissionDeniedError(tool_ + ": \"" + std::string(path) +
                                         "\" is outside the workspace (use a path relative to "
                                         "it)");
        }
    } else {
        relative = given.lexically_normal();
    }
    std::string text = relative.string();
    while (text.size() > 1 && text.back() == '/') text.pop_back();
    if (text.empty()) text = ".";
    if (text == ".." || text.rfind("../", 0) == 0) {
        return PermissionDeniedError(tool_ + ": \"" + std::string(path) +
                                     "\" leads outside the workspace");
    }
    return text;
}

Result<FileDescriptor> Workspace::OpenBeneath(const std::string& relative, int flags,
                                              mode_t mode) const {
    struct open_how how;
    std::memset(&how, 0, sizeof how);
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = -1;
    // EAGAIN: a concurrent rename raced the ".." check; worth a few retries, not a loop.
    for (int attempt = 0; attempt < 8; ++attempt) {
        fd = syscall(SYS_openat2, fd_->get(), relative.c_str(), &how, sizeof how);
        if (fd >= 0 || (errno != EINTR && errno != EAGAIN)) break;
    }
    if (fd < 0 && errno == ENOSYS) return WalkOpen(relative, flags, mode);
    if (fd < 0) return std::unexpected(FileError(relative, errno));
    return FileDescriptor(static_cast<int>(fd));
}

Result<FileDescriptor> Workspace::WalkOpen(const std::string& relative, int flags,
                                           mode_t mode) const {
    auto parts = Components(relative);
    FileDescriptor current(fcntl(fd_->get(), F_DUPFD_CLOEXEC, 3));
    if (current.get() < 0) return std::unexpected(FileError(relative, errno));
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
        int next =
            openat(current.get(), parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) return std::unexpected(FileError(relative, errno == ENOTDIR ? ELOOP : errno));
        current = FileDescriptor(next);
    }
    const char* last = parts.empty() ? "." : parts.back().c_str();
    int fd = openat(current.get(), last, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return std::unexpected(FileError(relative, errno));
    return FileDescriptor(fd);
}

Status Workspace::MakeParents(const std::string& relative) const {
    auto parts = Components(relative);
    std::string prefix;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
        std::string parent = prefix.empty() ? "." : prefix;
        prefix = prefix.empty() ? parts[i] : prefix + "/" + parts[i];
        if (OpenBeneath(prefix, O_PATH | O_DIRECTORY)) continue;
        STROWGER_ASSIGN_OR_RETURN(auto parent_fd, OpenBeneath(parent, O_PATH | O_DIRECTORY));
        // A single name relative to a directory inside the workspace: mkdirat cannot leave it
        // (and does not follow a symlink in the last component).
        if (mkdirat(parent_fd.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST) {
            return std::unexpected(FileError(prefix, errno));
        }
        STROWGER_TRY(OpenBeneath(prefix, O_PATH | O_DIRECTORY));
    }
    return OkStatus();
}

Error Workspace::FileError(const std::string& relative, int error_number) const {
    std::string where = tool_ + ": \"" + relative + "\"";
    switch (error_number) {
        case EXDEV:
            return Error(ErrorCode::kPermissionDenied,
                         where + " leads outside the workspace (through \"..\" or a symlink)");
        case ELOOP:
            return Error(ErrorCode::kPermissionDenied,
                         where + ": refusing to follow a symlink here");
        case ENOENT:
            return Error(ErrorCode::kNotFound, where + " does not exist");
        case ENOTDIR:
            return Error(ErrorCode::kFailedPrecondition,
                         where + ": a component of the path is not a directory");
        case EISDIR:
            return Error(ErrorCode::kFailedPrecondition, where + " is a directory");
        case EACCES:
        case EPERM:
        case EROFS:
            return Error(ErrorCode::kPermissionDenied, where + ": " + std::strerror(error_number));
        case ENXIO:
        case ETXTBSY:
            return Error(ErrorCode::kFailedPrecondition, where + " is not a regular file");
        case EFBIG:
        case ENOSPC:
        case EDQUOT:
            return Error(ErrorCode::kResourceExhausted, where + ": " + std::strerror(error_number));
        default:
            return Error(ErrorCode::kInternal, where + ": " + std::strerror(error_number));
    }
}

}  // namespace strowger::tools::builtin
