#include "store/sqlite/sqlite_connection.hpp"

#include <utility>

namespace strowger::store::sqlite {

Error SqliteError(int rc, std::string_view what, std::string_view detail) {
    ErrorCode code = ErrorCode::kInternal;
    switch (rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            code = ErrorCode::kUnavailable;
            break;
        case SQLITE_CONSTRAINT:
            code = (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                       ? ErrorCode::kAlreadyExists
                       : ErrorCode::kInvalidArgument;
            break;
        case SQLITE_TOOBIG:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
            code = ErrorCode::kInvalidArgument;
            break;
        case SQLITE_FULL:
        case SQLITE_NOMEM:
            code = ErrorCode::kResourceExhausted;
            break;
        case SQLITE_IOERR:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            code = ErrorCode::kDataLoss;
            break;
        case SQLITE_PERM:
        case SQLITE_READONLY:
        case SQLITE_AUTH:
            code = ErrorCode::kPermissionDenied;
            break;
        case SQLITE_CANTOPEN:
            code = ErrorCode::kUnavailable;
            break;
        default:
            break;
    }
    std::string message(what);
    message += ": ";
    message += detail.empty() ? std::string_view(sqlite3_errstr(rc)) : detail;
    return Error(code, std::move(message));
}

bool IsStorageFailure(int rc) {
    switch (rc & 0xff) {
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
        case SQLITE_CANTOPEN:
        case SQLITE_PROTOCOL:
            return true;
        default:
            return false;
    }
}

Statement::Statement(Statement&& other) noexcept
    : connection_(other.connection_),
      statement_(std::exchange(other.statement_, nullptr)),
      bind_error_(other.bind_error_) {}

Statement::~Statement() {
    if (statement_ == nullptr) return;
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
}

void Statement::Bind(int index, int64_t value) {
    int rc = sqlite3_bind_int64(statement_, index, value);
    if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

void Statement::Bind(int index, std::string_view text) {
    int rc = sqlite3_bind_text64(statement_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

void Statement::BindNull(int index) {
    int rc = sqlite3_bind_null(statement_, index);
    if (rc != SQLITE_OK && bind_error_ == SQLITE_OK) bind_error_ = rc;
}

void Statement::BindTextOrNull(int index, std::string_view text) {
    if (text.empty()) {
        BindNull(index);
    } else {
        Bind(index, text);
    }
}

Result<bool> Statement::Step() {
    if (bind_error_ != SQLITE_OK) {
        return std::unexpected(connection_->Fail(bind_error_, "binding a parameter"));
    }
    int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return std::unexpected(connection_->Fail(rc, sqlite3_sql(statement_)));
}

Status Statement::Run() {
    auto stepped = Step();
    Reset();
    if (!stepped) return std::unexpected(std::move(stepped).error());
    return OkStatus();
}

void Statement::Reset() {
    sqlite3_reset(statement_);
    sqlite3_clear_bindings(statement_);
    bind_error_ = SQLITE_OK;
}

int64_t Statement::Int(int column) const {
    return sqlite3_column_int64(statement_, column);
}

std::string Statement::Text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement_, column));
    if (text == nullptr) return {};
    return std::string(text, static_cast<size_t>(sqlite3_column_bytes(statement_, column)));
}

bool Statement::IsNull(int column) const {
    return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, Role role,
                                                     Millis busy_timeout) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    if (role == Role::kWriter) flags |= SQLITE_OPEN_CREATE;
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close_v2(db);
        return std::unexpected(SqliteError(rc, "cannot open store " + path, detail));
    }
    std::unique_ptr<Connection> connection(new Connection(db, path));
    sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
    if (role == Role::kReader) STROWGER_TRY(connection->Exec("PRAGMA query_only=ON"));
    return connection;
}

Connection::~Connection() {
    for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
    sqlite3_close_v2(db_);
}

Status Connection::Exec(const char* sql) {
    char* message = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
    if (rc == SQLITE_OK) return OkStatus();
    std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    if (IsStorageFailure(rc) && storage_failure_ == SQLITE_OK) storage_failure_ = rc;
    return std::unexpected(SqliteError(rc, std::string(sql) + " on " + path_, detail));
}

Result<Statement> Connection::Prepare(std::string_view sql) {
    auto it = statements_.find(std::string(sql));
    if (it == statements_.end()) {
        sqlite3_stmt* statement = nullptr;
        int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &statement, nullptr);
        if (rc != SQLITE_OK) return std::unexpected(Fail(rc, sql));
        it = statements_.emplace(std::string(sql), statement).first;
    }
    return Statement(this, it->second);
}

Error Connection::Fail(int rc, std::string_view what) {
    if (IsStorageFailure(rc) && storage_failure_ == SQLITE_OK) storage_failure_ = rc;
    return SqliteError(rc, std::string(what) + " on " + path_, sqlite3_errmsg(db_));
}

}  // namespace strowger::store::sqlite
