// Files inside a workspace, opened so that no path a model gives can leave it.
//
// A path is taken relative to the workspace (an absolute path is accepted only if it lies
// inside it) and normalised; a leading ".." is refused. Every open then goes through
// openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) from a descriptor of the workspace, so the
// kernel refuses any "..", absolute symlink or symlink whose target leaves the workspace, at
// every component, including the last one of a file being created. Symlinks that stay inside
// are followed. Without openat2 (Linux < 5.6) each component is opened with O_NOFOLLOW instead,
// and every symlink is refused.
//
// Errors name the tool and the path as the model wrote it:
//   kPermissionDenied  the path leaves the workspace (or a symlink is refused)
//   kNotFound          it does not exist
//   kFailedPrecondition it is not what the tool needs (a directory, not a regular file, ...)
//
// Thread-safety: a Workspace is immutable; its methods may be called concurrently.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace strowger::tools::builtin {

class FileDescriptor {
  public:
    FileDescriptor() = default;
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor();
    FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.Release()) {}
    FileDescriptor& operator=(FileDescriptor&& other) noexcept;
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;

    int get() const { return fd_; }
    int Release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

  private:
    int fd_ = -1;
};

class Workspace {
  public:
    // kFailedPrecondition unless `root` is an absolute path of an existing directory.
    static Result<Workspace> Open(std::string_view tool, const std::filesystem::path& root);

    // The model's `path` as a normalised path relative to the workspace ("." = the workspace).
    Result<std::string> Relative(std::string_view path) const;

    // Opens `relative` (from Relative) with open(2) `flags` (O_CLOEXEC is added).
    Result<FileDescriptor> OpenBeneath(const std::string& relative, int flags,
                                       mode_t mode = 0) const;

    // Creates the missing parent directories of `relative`, each one inside the workspace.
    Status MakeParents(const std::string& relative) const;

    // The error for `error_number` from an operation on `relative`.
    Error FileError(const std::string& relative, int error_number) const;

    const std::string& tool() const { return tool_; }

  private:
    Workspace(std::string tool, std::filesystem::path root, std::shared_ptr<FileDescriptor> fd)
        : tool_(std::move(tool)), root_(std::move(root)), fd_(std::move(fd)) {}
    Result<FileDescriptor> WalkOpen(const std::string& relative, int flags, mode_t mode) const;

    std::string tool_;
    std::filesystem::path root_;
    std::shared_ptr<FileDescriptor> fd_;  // O_PATH | O_DIRECTORY
};

}  // namespace strowger::tools::builtin
