// A thin RAII layer over one SQLite connection, private to the SQLite store.
//
// This is the adapter where SQLite's result codes become Errors (SqliteError); nothing above
// it sees an SQLite code. A Connection caches its prepared statements by SQL text; a Statement
// is a handle to one of them that resets and unbinds it when it dies, so callers prepare,
// bind and step in one scope and never finalize.
//
// Thread-safety: a Connection (and its Statements) is used by one thread at a time; the store
// gives each thread its own (SQLITE_OPEN_NOMUTEX).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace strowger::store::sqlite {

// The Error for SQLite result code `rc`: busy/locked → kUnavailable, unique or primary-key
// constraint → kAlreadyExists, other constraints and oversized values → kInvalidArgument,
// disk full → kResourceExhausted, I/O error or corruption → kDataLoss, permissions and
// read-only files → kPermissionDenied, anything else → kInternal. The message is
// "<what>: <SQLite's message>".
Error SqliteError(int rc, std::string_view what, std::string_view detail);

// True for codes that mean the storage under the database cannot be trusted any more (I/O
// error, disk full, corruption, file vanished): the writer poisons the store after these.
bool IsStorageFailure(int rc);

class Connection;

// A prepared statement borrowed from a Connection's cache; reset and unbound on destruction.
// Text is bound with SQLITE_TRANSIENT (copied), so arguments may be temporaries.
class Statement {
  public:
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;
    Statement(const Statement&) = delete;
    ~Statement();

    // Parameters are 1-based. A failed bind is reported by the next Step.
    void Bind(int index, int64_t value);
    void Bind(int index, std::string_view text);
    void BindNull(int index);
    // NULL for "", else the text.
    void BindTextOrNull(int index, std::string_view text);

    // Advances: true if a row is available, false when done.
    Result<bool> Step();
    // Steps a statement that returns no rows (INSERT, UPDATE, DELETE), then resets it so it
    // can be bound and run again.
    Status Run();
    // Resets the statement and its bindings, to run it again in the same scope.
    void Reset();

    int64_t Int(int column) const;
    // "" for NULL.
    std::string Text(int column) const;
    bool IsNull(int column) const;

  private:
    friend class Connection;
    Statement(Connection* connection, sqlite3_stmt* statement)
        : connection_(connection), statement_(statement) {}

    Connection* connection_;
    sqlite3_stmt* statement_;
    int bind_error_ = SQLITE_OK;
};

class Connection {
  public:
    enum class Role { kWriter, kReader };

    // Opens `path` (absolute). The writer may create the file; readers are query_only.
    static Result<std::unique_ptr<Connection>> Open(const std::string& path, Role role,
                                                    Millis busy_timeout);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs SQL that returns no rows (may be several statements).
    Status Exec(const char* sql);
    // The cached statement for `sql`, preparing it on first use.
    Result<Statement> Prepare(std::string_view sql);

    bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

    // The first storage failure (IsStorageFailure) any call reported since the last
    // ClearStorageFailure, or SQLITE_OK. The writer checks it after each request.
    int storage_failure() const { return storage_failure_; }
    void ClearStorageFailure() { storage_failure_ = SQLITE_OK; }

    // Converts `rc` to an Error naming this database, recording storage failures.
    Error Fail(int rc, std::string_view what);

    sqlite3* handle() { return db_; }
    const std::string& path() const { return path_; }

  private:
    Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

    sqlite3* db_;
    std::string path_;
    std::unordered_map<std::string, sqlite3_stmt*> statements_;
    int storage_failure_ = SQLITE_OK;
};

}  // namespace strowger::store::sqlite
