#include <cstdlib>
#include <filesystem>

#include "core/strings.hpp"
#include "store/memory/memory_store.hpp"
#include "store/store.hpp"

namespace strowger::store {

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
    if (StartsWith(url, "sqlite:")) {
        return UnimplementedError("the sqlite store is not built yet");  // TODO(#3)
    }
    if (StartsWith(url, "postgres://") || StartsWith(url, "postgresql://")) {
        return UnimplementedError("the PostgreSQL store is not available in this version");
    }
    return InvalidArgumentError("unknown store URL \"" + url +
                                "\" (expected memory:, sqlite:PATH or postgres://...)");
}

}  // namespace strowger::store
