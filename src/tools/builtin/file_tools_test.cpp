// read_file, write_file, list_dir and grep: results, argument errors and confinement to the
// workspace (".." escapes, absolute paths, symlinks and hard links that lead outside).
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/json.hpp"
#include "testing/test_util.hpp"
#include "tools/builtin/builtin_tools.hpp"

namespace strowger::tools::builtin {
namespace {

namespace fs = std::filesystem;
using testing::RunSync;
using testing::TempDir;

class FileToolsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        workspace_ = dir_.path() / "ws";
        fs::create_directories(workspace_);
        outside_ = dir_.Write("outside/secret.txt", "outside secret\n");
        context_.workspace = workspace_;
        context_.idempotency_key = "run/node/1/1";
    }

    std::string Write(const std::string& name, const std::string& content) {
        auto path = workspace_ / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << content;
        return path.string();
    }

    Result<ToolResult> Call(const std::shared_ptr<Tool>& tool, const std::string& arguments) {
        return RunSync(tool->Call(arguments, context_));
    }

    static std::string Json(std::initializer_list<std::pair<std::string, json::value>> fields) {
        json::object object;
        for (const auto& [key, value] : fields) object[key] = value;
        return json::serialize(object);
    }

    TempDir dir_;
    fs::path workspace_;
    std::string outside_;
    ToolContext context_;
    std::shared_ptr<Tool> read_ = MakeReadFileTool();
    std::shared_ptr<Tool> write_ = MakeWriteFileTool();
    std::shared_ptr<Tool> list_ = MakeListDirTool();
    std::shared_ptr<Tool> grep_ = MakeGrepTool();
};

void ExpectCode(const Result<ToolResult>& result, ErrorCode code, std::string_view fragment = {}) {
    ASSERT_FALSE(result) << "unexpected success: " << result->content;
    EXPECT_EQ(result.error().code(), code) << result.error().ToString();
    if (!fragment.empty()) {
        EXPECT_NE(result.error().message().find(fragment), std::string::npos)
            << result.error().message();
    }
}

TEST_F(FileToolsTest, SpecsAndSafetyClasses) {
    EXPECT_EQ(read_->spec().name, "read_file");
    EXPECT_EQ(read_->safety(), SafetyClass::kReadOnly);
    EXPECT_EQ(write_->spec().name, "write_file");
    EXPECT_EQ(write_->safety(), SafetyClass::kIdempotentWrite);
    EXPECT_EQ(list_->spec().name, "list_dir");
    EXPECT_EQ(list_->safety(), SafetyClass::kReadOnly);
    EXPECT_EQ(grep_->spec().name, "grep");
    EXPECT_EQ(grep_->safety(), SafetyClass::kReadOnly);
    for (const auto& tool : {read_, write_, list_, grep_}) {
        auto schema = ParseJson(tool->spec().parameters_schema);
        ASSERT_TRUE(schema) << tool->spec().name;
        EXPECT_EQ(JsonString(schema->as_object(), "type"), "object");
        EXPECT_FALSE(tool->spec().description.empty());
    }
}

TEST_F(FileToolsTest, RegisterBuiltinToolsRegistersEveryBuiltinName) {
    asio::io_context io;  // outlives the registry, which holds the HTTP client
    ToolRegistry registry;
    auto sandbox = sandbox::CreateBubblewrapSandbox(io.get_executor());
    ASSERT_TRUE(sandbox) << sandbox.error().ToString();
    auto client = http::HttpClient::Create(io.get_executor());
    ASSERT_TRUE(client) << client.error().ToString();
    RegisterBuiltinTools(registry, *sandbox, *client);
    auto names = registry.Names();
    auto expected = BuiltinToolNames();
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(names, expected);
    EXPECT_EQ(registry.Find("shell")->safety(), SafetyClass::kDestructive);
    EXPECT_EQ(registry.Find("http_request")->safety(), SafetyClass::kDestructive);
}

TEST_F(FileToolsTest, ReadsRelativeAndAbsolutePathsInside) {
    Write("notes/a.txt", "alpha\n");
    auto relative = Call(read_, Json({{"path", "notes/a.txt"}}));
    ASSERT_TRUE(relative) << relative.error().ToString();
    EXPECT_EQ(relative->content, "alpha\n");
    EXPECT_FALSE(relative->is_error);
    auto absolute = Call(read_, Json({{"path", (workspace_ / "notes/a.txt").c_str()}}));
    ASSERT_TRUE(absolute) << absolute.error().ToString();
    EXPECT_EQ(absolute->content, "alpha\n");
    auto dotted = Call(read_, Json({{"path", "./notes/../notes/a.txt"}}));
    ASSERT_TRUE(dotted) << dotted.error().ToString();
    EXPECT_EQ(dotted->content, "alpha\n");
}

TEST_F(FileToolsTest, ReadRefusesEscapes) {
    ExpectCode(Call(read_, Json({{"path", "../outside/secret.txt"}})), ErrorCode::kPermissionDenied,
               "outside the workspace");
    ExpectCode(Call(read_, Json({{"path", "a/../../outside/secret.txt"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(read_, Json({{"path", "/etc/passwd"}})), ErrorCode::kPermissionDenied,
               "outside the workspace");
    ExpectCode(Call(read_, Json({{"path", outside_.c_str()}})), ErrorCode::kPermissionDenied);
}

TEST_F(FileToolsTest, ReadRefusesSymlinksLeadingOutside) {
    fs::create_symlink("/etc/passwd", workspace_ / "passwd");
    fs::create_symlink(outside_, workspace_ / "secret");
    fs::create_symlink("../outside", workspace_ / "dir-link");
    fs::create_symlink("/etc", workspace_ / "etc");
    ExpectCode(Call(read_, Json({{"path", "passwd"}})), ErrorCode::kPermissionDenied, "passwd");
    ExpectCode(Call(read_, Json({{"path", "secret"}})), ErrorCode::kPermissionDenied);
    ExpectCode(Call(read_, Json({{"path", "dir-link/secret.txt"}})), ErrorCode::kPermissionDenied);
    ExpectCode(Call(read_, Json({{"path", "etc/passwd"}})), ErrorCode::kPermissionDenied);
}

TEST_F(FileToolsTest, ReadFollowsSymlinksThatStayInside) {
    Write("real/file.txt", "inside\n");
    fs::create_symlink("real/file.txt", workspace_ / "alias");
    fs::create_symlink("real", workspace_ / "real-dir");
    auto via_file = Call(read_, Json({{"path", "alias"}}));
    ASSERT_TRUE(via_file) << via_file.error().ToString();
    EXPECT_EQ(via_file->content, "inside\n");
    auto via_dir = Call(read_, Json({{"path", "real-dir/file.txt"}}));
    ASSERT_TRUE(via_dir) << via_dir.error().ToString();
    EXPECT_EQ(via_dir->content, "inside\n");
}

TEST_F(FileToolsTest, ReadErrors) {
    fs::create_directories(workspace_ / "sub");
    ExpectCode(Call(read_, Json({{"path", "missing.txt"}})), ErrorCode::kNotFound, "missing.txt");
    ExpectCode(Call(read_, Json({{"path", "sub"}})), ErrorCode::kFailedPrecondition, "list_dir");
    ASSERT_EQ(mkfifo((workspace_ / "fifo").c_str(), 0644), 0);
    ExpectCode(Call(read_, Json({{"path", "fifo"}})), ErrorCode::kFailedPrecondition,
               "not a regular file");
    ExpectCode(Call(read_, "{}"), ErrorCode::kInvalidArgument, "\"path\" is required");
    ExpectCode(Call(read_, R"({"path": 3})"), ErrorCode::kInvalidArgument,
               "\"path\" must be a string");
    ExpectCode(Call(read_, R"({"path": "a", "mode": "x"})"), ErrorCode::kInvalidArgument,
               "unknown field \"mode\"");
    ExpectCode(Call(read_, "{not json"), ErrorCode::kInvalidArgument, "not valid JSON");
    ExpectCode(Call(read_, "[1]"), ErrorCode::kInvalidArgument, "JSON object");
    ExpectCode(Call(read_, R"({"path": ""})"), ErrorCode::kInvalidArgument, "empty");
}

TEST_F(FileToolsTest, ReadCutsLargeFiles) {
    Write("big.txt", std::string(kMaxReadBytes + 1000, 'z'));
    auto result = Call(read_, Json({{"path", "big.txt"}}));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content.substr(0, kMaxReadBytes), std::string(kMaxReadBytes, 'z'));
    EXPECT_NE(result->content.find("truncated"), std::string::npos);
}

TEST_F(FileToolsTest, WriteCreatesParentsAndReplaces) {
    auto first = Call(write_, Json({{"path", "deep/er/file.txt"}, {"content", "one"}}));
    ASSERT_TRUE(first) << first.error().ToString();
    EXPECT_EQ(first->content, "wrote 3 bytes to deep/er/file.txt");
    auto second = Call(write_, Json({{"path", "deep/er/file.txt"}, {"content", "two!"}}));
    ASSERT_TRUE(second) << second.error().ToString();
    EXPECT_EQ(testing::ReadFileOrDie((workspace_ / "deep/er/file.txt").string()), "two!");
}

TEST_F(FileToolsTest, WriteRefusesEscapesAndLeavesOutsideFilesAlone) {
    fs::create_symlink(outside_, workspace_ / "to-secret");
    fs::create_symlink(dir_.path() / "outside" / "new.txt", workspace_ / "dangling");
    fs::create_symlink(dir_.path() / "outside", workspace_ / "out-dir");
    ExpectCode(Call(write_, Json({{"path", "to-secret"}, {"content", "pwned"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(write_, Json({{"path", "dangling"}, {"content", "pwned"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(write_, Json({{"path", "out-dir/created.txt"}, {"content", "pwned"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(write_, Json({{"path", "out-dir/sub/created.txt"}, {"content", "pwned"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(write_, Json({{"path", "../escape.txt"}, {"content", "pwned"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(write_, Json({{"path", "/tmp/strowger-escape.txt"}, {"content", "pwned"}})),
               ErrorCode::kPermissionDenied);
    EXPECT_EQ(testing::ReadFileOrDie(outside_), "outside secret\n");
    EXPECT_FALSE(fs::exists(dir_.path() / "outside" / "new.txt"));
    EXPECT_FALSE(fs::exists(dir_.path() / "outside" / "created.txt"));
    EXPECT_FALSE(fs::exists(dir_.path() / "outside" / "sub"));
    EXPECT_FALSE(fs::exists(dir_.path() / "escape.txt"));
    EXPECT_FALSE(fs::exists("/tmp/strowger-escape.txt"));
}

TEST_F(FileToolsTest, WriteRefusesHardLinks) {
    ASSERT_EQ(link(outside_.c_str(), (workspace_ / "hard").c_str()), 0);
    ExpectCode(Call(write_, Json({{"path", "hard"}, {"content", "pwned"}})),
               ErrorCode::kPermissionDenied, "hard links");
    EXPECT_EQ(testing::ReadFileOrDie(outside_), "outside secret\n");
}

TEST_F(FileToolsTest, WriteArgumentErrors) {
    ExpectCode(Call(write_, Json({{"path", "a.txt"}})), ErrorCode::kInvalidArgument,
               "\"content\" is required");
    ExpectCode(Call(write_, Json({{"path", "."}, {"content", "x"}})), ErrorCode::kInvalidArgument,
               "workspace itself");
    context_.grants.sandbox.max_file_size_bytes = 4;
    ExpectCode(Call(write_, Json({{"path", "a.txt"}, {"content", "12345"}})),
               ErrorCode::kInvalidArgument, "\"content\"");
    fs::create_directories(workspace_ / "adir");
    context_.grants.sandbox.max_file_size_bytes = 1 << 20;
    ExpectCode(Call(write_, Json({{"path", "adir"}, {"content", "x"}})),
               ErrorCode::kFailedPrecondition);
}

TEST_F(FileToolsTest, ListDirShowsEntries) {
    Write("b.txt", "12345");
    Write("a/inner.txt", "x");
    fs::create_symlink("b.txt", workspace_ / "c-link");
    auto result = Call(list_, "{}");
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "a/\nb.txt  (5 bytes)\nc-link -> b.txt\n");
    auto sub = Call(list_, Json({{"path", "a"}}));
    ASSERT_TRUE(sub) << sub.error().ToString();
    EXPECT_EQ(sub->content, "inner.txt  (1 bytes)\n");
    fs::create_directories(workspace_ / "empty");
    auto empty = Call(list_, Json({{"path", "empty"}}));
    ASSERT_TRUE(empty);
    EXPECT_EQ(empty->content, "(empty directory)\n");
}

TEST_F(FileToolsTest, ListDirRefusesOutside) {
    fs::create_symlink(dir_.path() / "outside", workspace_ / "out");
    ExpectCode(Call(list_, Json({{"path", ".."}})), ErrorCode::kPermissionDenied);
    ExpectCode(Call(list_, Json({{"path", "/etc"}})), ErrorCode::kPermissionDenied);
    ExpectCode(Call(list_, Json({{"path", "out"}})), ErrorCode::kPermissionDenied);
    ExpectCode(Call(list_, Json({{"path", "nope"}})), ErrorCode::kNotFound);
}

TEST_F(FileToolsTest, GrepFindsMatchingLines) {
    Write("src/main.cpp", "int main() {\n  return 42;\n}\n");
    Write("src/util.cpp", "// return nothing\nvoid f() {}\n");
    Write("README", "no code here\n");
    Write("bin.dat", std::string("return\0binary", 13));
    auto result = Call(grep_, Json({{"pattern", "return \\d+|return nothing"}}));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "src/main.cpp:2:   return 42;\nsrc/util.cpp:1: // return nothing\n");
    auto scoped = Call(grep_, Json({{"pattern", "return"}, {"path", "src/util.cpp"}}));
    ASSERT_TRUE(scoped) << scoped.error().ToString();
    EXPECT_EQ(scoped->content, "src/util.cpp:1: // return nothing\n");
    auto none = Call(grep_, Json({{"pattern", "zebra"}}));
    ASSERT_TRUE(none);
    EXPECT_EQ(none->content, "no matches\n");
}

TEST_F(FileToolsTest, GrepStopsAtMaxMatches) {
    std::string many;
    for (int i = 0; i < 50; ++i) many += "hit " + std::to_string(i) + "\n";
    Write("many.txt", many);
    auto result = Call(grep_, Json({{"pattern", "hit"}, {"max_matches", 3}}));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content,
              "many.txt:1: hit 0\nmany.txt:2: hit 1\nmany.txt:3: hit 2\n[grep: stopped at 3 "
              "matches]\n");
    ExpectCode(Call(grep_, Json({{"pattern", "hit"}, {"max_matches", 0}})),
               ErrorCode::kInvalidArgument, "\"max_matches\" must be between 1 and 1000");
    ExpectCode(Call(grep_, Json({{"pattern", "hit"}, {"max_matches", "3"}})),
               ErrorCode::kInvalidArgument, "\"max_matches\" must be an integer");
}

TEST_F(FileToolsTest, GrepDoesNotFollowSymlinksOutOrAcceptBadPatterns) {
    fs::create_symlink(outside_, workspace_ / "secret-link");
    fs::create_symlink(dir_.path() / "outside", workspace_ / "outside-dir");
    auto result = Call(grep_, Json({{"pattern", "secret"}}));
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "no matches\n");
    ExpectCode(Call(grep_, Json({{"pattern", "secret"}, {"path", "secret-link"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(grep_, Json({{"pattern", "("}})), ErrorCode::kInvalidArgument,
               "not a valid regular expression");
    ExpectCode(Call(grep_, Json({{"pattern", "x"}, {"path", "../outside"}})),
               ErrorCode::kPermissionDenied);
    ExpectCode(Call(grep_, "{}"), ErrorCode::kInvalidArgument, "\"pattern\" is required");
}

TEST_F(FileToolsTest, NoWorkspaceIsAFailedPrecondition) {
    context_.workspace.clear();
    ExpectCode(Call(read_, Json({{"path", "a"}})), ErrorCode::kFailedPrecondition);
}

}  // namespace
}  // namespace strowger::tools::builtin
