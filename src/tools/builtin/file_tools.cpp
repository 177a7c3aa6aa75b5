// read_file, write_file, list_dir and grep. Each Call parses its arguments and runs the whole
// file system part as one blocking function on the blocking pool.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/regex.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "tools/builtin/arguments.hpp"
#include "tools/builtin/builtin_tools.hpp"
#include "tools/builtin/workspace_files.hpp"
#include "tools/sandbox/blocking.hpp"

namespace strowger::tools::builtin {
namespace {

constexpr size_t kMaxListEntries = 1000;
constexpr int64_t kDefaultMaxMatches = 100;
constexpr int64_t kMaxMatches = 1000;
constexpr size_t kGrepMaxFiles = 20000;
constexpr size_t kGrepMaxFileBytes = size_t{4} << 20;
constexpr size_t kGrepMaxTotalBytes = size_t{64} << 20;
constexpr size_t kGrepMaxLineBytes = 4096;
constexpr size_t kGrepShownLineBytes = 300;

class BuiltinTool : public Tool {
  public:
    BuiltinTool(std::string name, std::string description, std::string schema, SafetyClass safety)
        : spec_{std::move(name), std::move(description), std::move(schema)}, safety_(safety) {}
    const providers::ToolSpec& spec() const override { return spec_; }
    SafetyClass safety() const override { return safety_; }

  private:
    providers::ToolSpec spec_;
    SafetyClass safety_;
};

// Reads `fd` until EOF or `limit` bytes.
Result<std::string> ReadUpTo(int fd, size_t limit, const Workspace& workspace,
                             const std::string& relative) {
    std::string content;
    char buffer[65536];
    while (content.size() < limit) {
        ssize_t n = read(fd, buffer, std::min(sizeof buffer, limit - content.size()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(workspace.FileError(relative, errno));
        if (n == 0) break;
        content.append(buffer, static_cast<size_t>(n));
    }
    return content;
}

Result<ToolResult> ReadFileBlocking(const std::string& arguments, const ToolContext& context) {
    STROWGER_ASSIGN_OR_RETURN(auto args, Arguments::Parse("read_file", arguments, {"path"}));
    STROWGER_ASSIGN_OR_RETURN(std::string path, args.RequiredString("path"));
    STROWGER_ASSIGN_OR_RETURN(auto workspace, Workspace::Open("read_file", context.workspace));
    STROWGER_ASSIGN_OR_RETURN(std::string relative, workspace.Relative(path));
    // O_NONBLOCK: opening a FIFO must not block; it is then refused as not a regular file.
    STROWGER_ASSIGN_OR_RETURN(auto fd,
                              workspace.OpenBeneath(relative, O_RDONLY | O_NOCTTY | O_NONBLOCK));
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return std::unexpected(workspace.FileError(relative, errno));
    if (S_ISDIR(st.st_mode)) {
        return FailedPreconditionError("read_file: \"" + relative +
                                       "\" is a directory (use list_dir)");
    }
    if (!S_ISREG(st.st_mode)) {
        return FailedPreconditionError("read_file: \"" + relative + "\" is not a regular file");
    }
    STROWGER_ASSIGN_OR_RETURN(std::string content,
                              ReadUpTo(fd.get(), kMaxReadBytes, workspace, relative));
    ToolResult result;
    result.content = ToValidUtf8(content);
    if (static_cast<uint64_t>(st.st_size) > content.size()) {
        result.content += "\n[read_file: truncated; showing the first " +
                          std::to_string(content.size()) + " of " + std::to_string(st.st_size) +
                          " bytes]";
    }
    return result;
}

Result<ToolResult> WriteFileBlocking(const std::string& arguments, const ToolContext& context) {
    STROWGER_ASSIGN_OR_RETURN(auto args,
                              Arguments::Parse("write_file", arguments, {"path", "content"}));
    STROWGER_ASSIGN_OR_RETURN(std::string path, args.RequiredString("path"));
    STROWGER_ASSIGN_OR_RETURN(std::string content, args.RequiredString("content"));
    int64_t cap = context.grants.sandbox.max_file_size_bytes;
    if (cap > 0 && static_cast<int64_t>(content.size()) > cap) {
        return InvalidArgumentError("write_file: \"content\" is " + std::to_string(content.size()) +
                                    " bytes; the limit is " + std::to_string(cap));
    }
    STROWGER_ASSIGN_OR_RETURN(auto workspace, Workspace::Open("write_file", context.workspace));
    STROWGER_ASSIGN_OR_RETURN(std::string relative, workspace.Relative(path));
    if (relative == ".") {
        return InvalidArgumentError("write_file: \"path\" names the workspace itself");
    }
    STROWGER_TRY(workspace.MakeParents(relative));
    STROWGER_ASSIGN_OR_RETURN(
        auto fd, workspace.OpenBeneath(relative, O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK, 0644));
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return std::unexpected(workspace.FileError(relative, errno));
    if (!S_ISREG(st.st_mode)) {
        return FailedPreconditionError("write_file: \"" + relative + "\" is not a regular file");
    }
    if (st.st_nlink > 1) {
        // A hard link may be the same file as one outside the workspace.
        return PermissionDeniedError("write_file: \"" + relative +
                                     "\" has other hard links; refusing to write through it");
    }
    if (ftruncate(fd.get(), 0) != 0) return std::unexpected(workspace.FileError(relative, errno));
    size_t written = 0;
    while (written < content.size()) {
        ssize_t n = write(fd.get(), content.data() + written, content.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::unexpected(workspace.FileError(relative, errno));
        written += static_cast<size_t>(n);
    }
    ToolResult result;
    result.content = "wrote " + std::to_string(written) + " bytes to " + relative;
    return result;
}

struct DirEntry {
    std::string name;
    std::string line;
};

Result<ToolResult> ListDirBlocking(const std::string& arguments, const ToolContext& context) {
    STROWGER_ASSIGN_OR_RETURN(auto args, Arguments::Parse("list_dir", arguments, {"path"}));
    STROWGER_ASSIGN_OR_RETURN(auto path, args.OptionalString("path"));
    STROWGER_ASSIGN_OR_RETURN(auto workspace, Workspace::Open("list_dir", context.workspace));
    STROWGER_ASSIGN_OR_RETURN(std::string relative, workspace.Relative(path.value_or(".")));
    STROWGER_ASSIGN_OR_RETURN(auto fd, workspace.OpenBeneath(relative, O_RDONLY | O_DIRECTORY));
    int dir_fd = fd.get();
    DIR* dir = fdopendir(fd.Release());
    if (dir == nullptr) return std::unexpected(workspace.FileError(relative, errno));
    std::vector<DirEntry> entries;
    size_t total = 0;
    while (struct dirent* entry = readdir(dir)) {
        std::string name = entry->d_name;
        if (name == "." || name == "..") continue;
        ++total;
        if (entries.size() >= kMaxListEntries) continue;
        struct stat st;
        std::string line = name;
        if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISDIR(st.st_mode)) {
                line += "/";
            } else if (S_ISLNK(st.st_mode)) {
                char target[4096];
                ssize_t n = readlinkat(dir_fd, name.c_str(), target, sizeof target - 1);
                line += " -> " + (n >= 0 ? std::string(target, static_cast<size_t>(n)) : "?");
            } else if (S_ISREG(st.st_mode)) {
                line += "  (" + std::to_string(st.st_size) + " bytes)";
            }
        }
        entries.push_back({std::move(name), std::move(line)});
    }
    closedir(dir);
    std::sort(entries.begin(), entries.end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    ToolResult result;
    for (const auto& entry : entries) result.content += ToValidUtf8(entry.line) + "\n";
    if (total > entries.size()) {
        result.content += "[list_dir: showing " + std::to_string(entries.size()) + " of " +
                          std::to_string(total) + " entries]\n";
    }
    if (result.content.empty()) result.content = "(empty directory)\n";
    return result;
}

struct GrepState {
    const boost::regex* pattern;
    size_t max_matches;
    std::vector<std::string> matches;
    size_t files = 0;
    size_t bytes = 0;
    bool stopped = false;  // a scan limit was hit
    std::string limit_note;
};

bool MatchesFull(GrepState& state) {
    return state.matches.size() >= state.max_matches;
}

// Scans one open regular file; `shown` is its path relative to the workspace.
Status GrepFile(int fd, const std::string& shown, GrepState& state) {
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return OkStatus();
    if (static_cast<size_t>(st.st_size) > kGrepMaxFileBytes) return OkStatus();
    if (++state.files > kGrepMaxFiles || state.bytes + st.st_size > kGrepMaxTotalBytes) {
        state.stopped = true;
        state.limit_note = "search stopped after " + std::to_string(state.files - 1) + " files / " +
                           std::to_string(state.bytes) + " bytes";
        return OkStatus();
    }
    std::string content;
    content.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < content.size()) {
        ssize_t n = read(fd, content.data() + got, content.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    content.resize(got);
    state.bytes += got;
    // Binary files (a NUL in the first 8 KiB) are skipped, as grep -I does.
    if (content.find('\0') < std::min<size_t>(content.size(), 8192)) return OkStatus();
    size_t line_number = 0;
    size_t start = 0;
    while (start < content.size() && !MatchesFull(state)) {
        size_t end = content.find('\n', start);
        if (end == std::string::npos) end = content.size();
        ++line_number;
        std::string_view line(content.data() + start, std::min(end - start, kGrepMaxLineBytes));
        bool matched = false;
        try {
            matched = boost::regex_search(line.begin(), line.end(), *state.pattern);
        } catch (const std::exception& e) {
            return InvalidArgumentError(
                std::string("grep: \"pattern\" is too expensive to match (") + e.what() + ")");
        }
        if (matched) {
            std::string text(line.substr(0, kGrepShownLineBytes));
            if (!text.empty() && text.back() == '\r') text.pop_back();
            state.matches.push_back(shown + ":" + std::to_string(line_number) + ": " +
                                    ToValidUtf8(text));
        }
        start = end + 1;
    }
    return OkStatus();
}

// Walks `dir_fd` (owned) depth first in name order; symlinks are never followed.
Status GrepDirectory(int dir_fd, const std::string& shown, GrepState& state, int depth) {
    DIR* dir = fdopendir(dir_fd);
    if (dir == nullptr) {
        close(dir_fd);
        return OkStatus();
    }
    std::vector<std::string> names;
    while (struct dirent* entry = readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != ".." && name != ".git") names.push_back(std::move(name));
    }
    std::sort(names.begin(), names.end());
    Status status = OkStatus();
    for (const auto& name : names) {
        if (MatchesFull(state) || state.stopped) break;
        std::string child = shown == "." ? name : shown + "/" + name;
        struct stat st;
        if (fstatat(dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISDIR(st.st_mode) && depth < 64) {
            int sub =
                openat(dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) status = GrepDirectory(sub, child, state, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            int file = openat(dirfd(dir), name.c_str(),
                              O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
            if (file >= 0) {
                status = GrepFile(file, child, state);
                close(file);
            }
        }
        if (!status) break;
    }
    closedir(dir);
    return status;
}

Result<ToolResult> GrepBlocking(const std::string& arguments, const ToolContext& context) {
    STROWGER_ASSIGN_OR_RETURN(
        auto args, Arguments::Parse("grep", arguments, {"pattern", "path", "max_matches"}));
    STROWGER_ASSIGN_OR_RETURN(std::string pattern_text, args.RequiredString("pattern"));
    STROWGER_ASSIGN_OR_RETURN(auto path, args.OptionalString("path"));
    STROWGER_ASSIGN_OR_RETURN(auto max_matches, args.OptionalInt("max_matches", 1, kMaxMatches));
    if (pattern_text.empty()) return InvalidArgumentError("grep: \"pattern\" must not be empty");
    boost::regex pattern;
    try {
        pattern.assign(pattern_text, boost::regex::perl);
    } catch (const std::exception& e) {
        return InvalidArgumentError("grep: \"pattern\" is not a valid regular expression: " +
                                    std::string(e.what()));
    }
    STROWGER_ASSIGN_OR_RETURN(auto workspace, Workspace::Open("grep", context.workspace));
    STROWGER_ASSIGN_OR_RETURN(std::string relative, workspace.Relative(path.value_or(".")));
    STROWGER_ASSIGN_OR_RETURN(auto fd,
                              workspace.OpenBeneath(relative, O_RDONLY | O_NONBLOCK | O_NOCTTY));
    struct stat st;
    if (fstat(fd.get(), &st) != 0) return std::unexpected(workspace.FileError(relative, errno));
    GrepState state;
    state.pattern = &pattern;
    state.max_matches = static_cast<size_t>(max_matches.value_or(kDefaultMaxMatches));
    if (S_ISDIR(st.st_mode)) {
        STROWGER_TRY(GrepDirectory(fd.Release(), relative, state, 0));
    } else {
        STROWGER_TRY(GrepFile(fd.get(), relative, state));
    }
    ToolResult result;
    for (const auto& match : state.matches) result.content += match + "\n";
    if (state.matches.empty()) result.content = "no matches\n";
    if (MatchesFull(state)) {
        result.content += "[grep: stopped at " + std::to_string(state.max_matches) + " matches]\n";
    } else if (state.stopped) {
        result.content += "[grep: " + state.limit_note + "]\n";
    }
    return result;
}

class ReadFileTool final : public BuiltinTool {
  public:
    ReadFileTool()
        : BuiltinTool("read_file",
                      "Read a text file from the workspace. The path is relative to the "
                      "workspace. Files longer than 1 MiB are cut (a note says so).",
                      R"({"type":"object","properties":{"path":{"type":"string","description":)"
                      R"("File path relative to the workspace"}},"required":["path"],)"
                      R"("additionalProperties":false})",
                      SafetyClass::kReadOnly) {}
    Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) override {
        return sandbox::RunBlocking(
            [arguments = std::move(arguments), context = std::move(context)] {
                return ReadFileBlocking(arguments, context);
            });
    }
};

class WriteFileTool final : public BuiltinTool {
  public:
    WriteFileTool()
        : BuiltinTool("write_file",
                      "Create or overwrite a file in the workspace with the given content, "
                      "creating parent directories as needed. The path is relative to the "
                      "workspace.",
                      R"({"type":"object","properties":{"path":{"type":"string","description":)"
                      R"("File path relative to the workspace"},"content":{"type":"string",)"
                      R"("description":"The complete new content of the file"}},)"
                      R"("required":["path","content"],"additionalProperties":false})",
                      SafetyClass::kIdempotentWrite) {}
    Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) override {
        return sandbox::RunBlocking(
            [arguments = std::move(arguments), context = std::move(context)] {
                return WriteFileBlocking(arguments, context);
            });
    }
};

class ListDirTool final : public BuiltinTool {
  public:
    ListDirTool()
        : BuiltinTool("list_dir",
                      "List the entries of a directory in the workspace: directories end with "
                      "\"/\", files show their size, symlinks their target. The path defaults "
                      "to the workspace itself.",
                      R"({"type":"object","properties":{"path":{"type":"string","description":)"
                      R"("Directory path relative to the workspace, default \".\""}},)"
                      R"("additionalProperties":false})",
                      SafetyClass::kReadOnly) {}
    Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) override {
        return sandbox::RunBlocking(
            [arguments = std::move(arguments), context = std::move(context)] {
                return ListDirBlocking(arguments, context);
            });
    }
};

class GrepTool final : public BuiltinTool {
  public:
    GrepTool()
        : BuiltinTool(
              "grep",
              "Search files in the workspace for lines matching a regular expression (Perl "
              "syntax). Searches the file or, recursively, the directory at `path` (default: "
              "the whole workspace; binary files, symlinks and .git are skipped) and returns "
              "matching lines as \"file:line: text\".",
              R"({"type":"object","properties":{"pattern":{"type":"string","description":)"
              R"("Perl-syntax regular expression"},"path":{"type":"string","description":)"
              R"("File or directory relative to the workspace, default \".\""},)"
              R"("max_matches":{"type":"integer","minimum":1,"maximum":1000,"description":)"
              R"("Stop after this many matching lines, default 100"}},)"
              R"("required":["pattern"],"additionalProperties":false})",
              SafetyClass::kReadOnly) {}
    Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) override {
        return sandbox::RunBlocking(
            [arguments = std::move(arguments), context = std::move(context)] {
                return GrepBlocking(arguments, context);
            });
    }
};

}  // namespace

std::shared_ptr<Tool> MakeReadFileTool() {
    return std::make_shared<ReadFileTool>();
}
std::shared_ptr<Tool> MakeWriteFileTool() {
    return std::make_shared<WriteFileTool>();
}
std::shared_ptr<Tool> MakeListDirTool() {
    return std::make_shared<ListDirTool>();
}
std::shared_ptr<Tool> MakeGrepTool() {
    return std::make_shared<GrepTool>();
}

}  // namespace strowger::tools::builtin
