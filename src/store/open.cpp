#include <cstdlib>
#include <filesystem>

#include "core/strings.hpp"
#include "store/memory/memory_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store.hpp"

namespace strowger::store {
namespace {

// "sqlite:PATH[?synchronous=...]": PATH relative to the working directory (a bare file name
// is a file there); its directory is created if missing.
Result<std::shared_ptr<Store>> OpenSqliteStoreBlocking(const std::string& url) {
    STROWGER_ASSIGN_OR_RETURN(auto parsed, ParseSqliteUrl(url));
    std::error_code ec;
    std::filesystem::path path = std::filesystem::absolute(parsed.path, ec);
    if (ec) return InvalidArgumentError("store path " + parsed.path + ": " + ec.message());
    path = path.lexically_normal();
    // Checked before anything is created: "sqlite:data/" would otherwise make data/ and then
    // fail to open it as a database. (An existing directory stays kUnavailable, as SQLite's
    // refusal was.)
    const bool names_directory = !path.has_filename();
    if (names_directory || std::filesystem::is_directory(path, ec)) {
        return MakeError(names_directory ? ErrorCode::kInvalidArgument : ErrorCode::kUnavailable,
                         "store path " + path.string() +
                             " is a directory: name a file in it, e.g. sqlite:" +
                             (std::filesystem::path(parsed.path) / "strowger.db").string());
    }
    if (path.has_parent_path()) {
        std::filesystem::create_directories(path.parent_path(), ec);
        if (ec) {
            bool denied = ec == std::errc::permission_denied ||
                          ec == std::errc::operation_not_permitted ||
                          ec == std::errc::read_only_file_system;
            return MakeError(denied ? ErrorCode::kPermissionDenied : ErrorCode::kFailedPrecondition,
                             "cannot create directory " + path.parent_path().string() +
                                 " for store " + path.string() + ": " + ec.message());
        }
    }
    STROWGER_ASSIGN_OR_RETURN(auto store, SqliteStore::OpenBlocking(path.string(), parsed.options));
    return std::shared_ptr<Store>(std::move(store));
}

}  // namespace

std::string DefaultStoreUrl() {
    if (const char* env = std::getenv("STROWGER_STORE"); env && *env) return env;
    std::filesystem::path dir;
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state) {
        dir = std::filesystem::path(state) / "strowger";
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        dir = std::filesystem::path(home) / ".local" / "state" / "strowger";
    } else {
        dir = ".strowger";
    }
    return "sqlite:" + (dir / "strowger.db").string();
}

Result<std::shared_ptr<Store>> OpenStoreBlocking(const std::string& url) {
    if (url == "memory:" || url == "memory") return std::make_shared<MemoryStore>();
    if (StartsWith(url, "sqlite:")) return OpenSqliteStoreBlocking(url);
    if (StartsWith(url, "postgres://") || StartsWith(url, "postgresql://")) {
        return UnimplementedError("the PostgreSQL store is not available in this version");
    }
    return InvalidArgumentError("unknown store URL \"" + url +
                                "\" (expected memory:, sqlite:PATH or postgres://...)");
}

Result<void> Store::AppendEventsAtOnce(std::string_view run_id, std::span<const ledger::Event>,
                                       RunStatus) {
    return MakeError(ErrorCode::kInternal,
                     "run " + std::string(run_id) + ": this store does not append at once");
}

}  // namespace strowger::store
