#include "audit/key.hpp"

#include <cstdlib>
#include <filesystem>

#include "core/strings.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace strowger::audit {

Result<std::string> LedgerKeyPath(const std::string& store_url) {
    if (const char* env = std::getenv("STROWGER_LEDGER_KEY"); env && *env) return std::string(env);
    if (!StartsWith(store_url, "sqlite:")) return std::string();
    STROWGER_ASSIGN_OR_RETURN(auto parsed, store::ParseSqliteUrl(store_url));
    std::error_code ec;
    std::filesystem::path path = std::filesystem::absolute(parsed.path, ec);
    if (ec) return InvalidArgumentError("store path " + parsed.path + ": " + ec.message());
    return path.lexically_normal().string() + ".key";
}

Result<std::shared_ptr<const SigningKey>> LoadLedgerKeyBlocking(const std::string& store_url) {
    STROWGER_ASSIGN_OR_RETURN(auto path, LedgerKeyPath(store_url));
    if (path.empty()) {
        STROWGER_ASSIGN_OR_RETURN(auto key, SigningKey::Generate());
        return std::make_shared<const SigningKey>(std::move(key));
    }
    auto key = SigningKey::LoadOrCreateBlocking(path);
    if (!key) return std::unexpected(key.error().WithPrefix("ledger key: "));
    return std::make_shared<const SigningKey>(std::move(*key));
}

}  // namespace strowger::audit
