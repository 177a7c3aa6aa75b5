#include "integration/harness.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace strowger::testing {
namespace {

std::string ReadIfExists(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buffer;
    if (in) buffer << in.rdbuf();
    return buffer.str();
}

// A connection to an existing store file, or null (the file does not exist yet). Opened
// read-write without SQLITE_OPEN_CREATE: a read-only connection cannot always read a WAL
// database whose -shm file it may not create; this one only ever reads unless told to write.
class Db {
  public:
    explicit Db(const std::string& path) {
        if (!std::filesystem::exists(path)) return;
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
            sqlite3_close(db_);
            db_ = nullptr;
            return;
        }
        sqlite3_busy_timeout(db_, 5000);
    }
    ~Db() { sqlite3_close(db_); }
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;

    sqlite3* get() const { return db_; }

    // Rows of `sql` with `text` bound to every '?', each row as its columns' text. Empty if the
    // store or its schema does not exist yet (the binary creates both when it starts).
    std::vector<std::vector<std::string>> Query(const std::string& sql,
                                                const std::vector<std::string>& binds = {}) const {
        std::vector<std::vector<std::string>> rows;
        if (!db_) return rows;
        sqlite3_stmt* statement = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
            return rows;
        }
        for (size_t i = 0; i < binds.size(); ++i) {
            sqlite3_bind_text(statement, static_cast<int>(i + 1), binds[i].c_str(), -1,
                              SQLITE_TRANSIENT);
        }
        while (sqlite3_step(statement) == SQLITE_ROW) {
            auto& row = rows.emplace_back();
            for (int c = 0; c < sqlite3_column_count(statement); ++c) {
                const auto* text = sqlite3_column_text(statement, c);
                row.emplace_back(text ? reinterpret_cast<const char*>(text) : "");
            }
        }
        sqlite3_finalize(statement);
        return rows;
    }

  private:
    sqlite3* db_ = nullptr;
};

}  // namespace

// --- ChildProcess ----------------------------------------------------------------------------

ChildProcess::ChildProcess(pid_t pid, std::string stdout_file, std::string stderr_file)
    : pid_(pid), stdout_file_(std::move(stdout_file)), stderr_file_(std::move(stderr_file)) {}

ChildProcess::~ChildProcess() {
    if (pid_ > 0 && !status_) {
        Kill(pid_, SIGKILL);
        testing::Wait(pid_, std::chrono::seconds(10));
    }
}

CommandResult ChildProcess::Wait(std::chrono::milliseconds timeout) {
    if (!status_ && pid_ > 0) {
        status_ = testing::Wait(pid_, timeout);
        if (!status_) {
            ADD_FAILURE() << "process " << pid_ << " still running after " << timeout.count()
                          << " ms; killing it. stderr so far:\n"
                          << Stderr();
            Kill(pid_, SIGKILL);
            testing::Wait(pid_, std::chrono::seconds(10));
            status_ = ExitStatus{};
        }
    }
    CommandResult result;
    result.status = status_.value_or(ExitStatus{});
    result.out = Stdout();
    result.err = Stderr();
    return result;
}

bool ChildProcess::Signal(int signal) const {
    return !status_ && Kill(pid_, signal);
}

std::string ChildProcess::Stdout() const {
    return ReadIfExists(stdout_file_);
}

std::string ChildProcess::Stderr() const {
    return ReadIfExists(stderr_file_);
}

// --- LedgerEvent -----------------------------------------------------------------------------

std::string LedgerEvent::ToString() const {
    std::string text = type;
    if (!node.empty()) text += " " + node + "#" + std::to_string(attempt);
    return text;
}

// --- CliEnvironment --------------------------------------------------------------------------

CliEnvironment::CliEnvironment() {
    env_["STROWGER_STORE"] = "sqlite:" + store_path();
    env_["HOME"] = dir().string();
    env_["XDG_STATE_HOME"] = (dir() / "state").string();
    env_["USER"] = "integration";
    if (const char* path = std::getenv("PATH")) env_["PATH"] = path;
    std::filesystem::create_directories(dir() / "out");
}

std::string CliEnvironment::store_path() const {
    return (dir() / "s.db").string();
}

std::string CliEnvironment::Write(const std::string& name, const std::string& content) const {
    return dir_.Write(name, content);
}

void CliEnvironment::SetEnv(const std::string& name, const std::string& value) {
    env_[name] = value;
}

std::vector<std::string> CliEnvironment::Environment() const {
    std::vector<std::string> env;
    for (const auto& [name, value] : env_) env.push_back(name + "=" + value);
    return env;
}

std::unique_ptr<ChildProcess> CliEnvironment::StartProgram(const std::vector<std::string>& args) {
    int n = ++commands_;
    SpawnOptions options;
    options.args = args;
    options.env = Environment();
    options.stdout_file = (dir() / "out" / (std::to_string(n) + ".stdout")).string();
    options.stderr_file = (dir() / "out" / (std::to_string(n) + ".stderr")).string();
    options.working_dir = dir().string();
    pid_t pid = Spawn(options);
    return std::make_unique<ChildProcess>(pid, options.stdout_file, options.stderr_file);
}

std::unique_ptr<ChildProcess> CliEnvironment::Start(const std::vector<std::string>& args) {
    std::vector<std::string> full = {StrowgerBinary()};
    full.insert(full.end(), args.begin(), args.end());
    return StartProgram(full);
}

std::unique_ptr<TerminalProcess> CliEnvironment::StartInTerminal(
    const std::vector<std::string>& args, int columns) {
    SpawnOptions options;
    options.args = {StrowgerBinary()};
    options.args.insert(options.args.end(), args.begin(), args.end());
    options.env = Environment();
    options.env.push_back("TERM=dumb");
    options.working_dir = dir().string();
    options.columns = columns;
    return std::make_unique<TerminalProcess>(options);
}

CommandResult CliEnvironment::Run(const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout) {
    return Start(args)->Wait(timeout);
}

CommandResult CliEnvironment::RunProgram(const std::vector<std::string>& args,
                                         std::chrono::milliseconds timeout) {
    return StartProgram(args)->Wait(timeout);
}

std::vector<std::string> CliEnvironment::RunIds() const {
    return QueryColumn(store_path(), "SELECT run_id FROM runs ORDER BY run_id");
}

std::string CliEnvironment::RunStatus(const std::string& run_id) const {
    Db db(store_path());
    auto rows = db.Query("SELECT status FROM runs WHERE run_id = ?", {run_id});
    return rows.empty() ? "" : rows[0][0];
}

std::vector<LedgerEvent> CliEnvironment::Events(const std::string& run_id) const {
    Db db(store_path());
    std::vector<LedgerEvent> events;
    for (auto& row : db.Query(
             "SELECT seq, type, node, line FROM events WHERE run_id = ? ORDER BY seq", {run_id})) {
        LedgerEvent& event = events.emplace_back();
        event.seq = std::stoll(row[0]);
        event.type = row[1];
        event.node = row[2];
        event.line = std::move(row[3]);
        if (auto parsed = ParseJson(event.line); parsed && parsed->is_object()) {
            event.attempt = JsonInt(parsed->get_object(), "attempt");
            if (const auto* data = JsonObject(parsed->get_object(), "data")) event.data = *data;
        }
    }
    return events;
}

std::string CliEnvironment::WaitForOnlyRun(std::chrono::milliseconds timeout) const {
    std::string run_id;
    WaitFor(
        [&] {
            auto ids = RunIds();
            if (ids.size() == 1) run_id = ids[0];
            return !run_id.empty();
        },
        timeout);
    return run_id;
}

// --- Free functions --------------------------------------------------------------------------

int64_t CountEvents(const std::vector<LedgerEvent>& events, const std::string& type,
                    const std::string& node) {
    int64_t count = 0;
    for (const auto& event : events) {
        if (event.type == type && (node.empty() || event.node == node)) ++count;
    }
    return count;
}

const LedgerEvent* FindEvent(const std::vector<LedgerEvent>& events, const std::string& type,
                             const std::string& node) {
    for (const auto& event : events) {
        if (event.type == type && (node.empty() || event.node == node)) return &event;
    }
    return nullptr;
}

std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

std::string Describe(const std::vector<LedgerEvent>& events) {
    std::string text;
    for (const auto& event : events) {
        if (!text.empty()) text += ", ";
        text += event.ToString();
    }
    return text;
}

int ExecSql(const std::string& db_path, const std::string& sql,
            const std::vector<std::string>& binds) {
    Db db(db_path);
    if (!db.get()) {
        ADD_FAILURE() << "cannot open " << db_path;
        return 0;
    }
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
        ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db.get());
        return 0;
    }
    for (size_t i = 0; i < binds.size(); ++i) {
        sqlite3_bind_text(statement, static_cast<int>(i + 1), binds[i].c_str(), -1,
                          SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(statement);
    EXPECT_EQ(rc, SQLITE_DONE) << sql << ": " << sqlite3_errmsg(db.get());
    sqlite3_finalize(statement);
    return sqlite3_changes(db.get());
}

std::vector<std::string> QueryColumn(const std::string& db_path, const std::string& sql) {
    Db db(db_path);
    std::vector<std::string> column;
    for (auto& row : db.Query(sql)) column.push_back(std::move(row[0]));
    return column;
}

}  // namespace strowger::testing
