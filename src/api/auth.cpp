#include "api/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/sha256.hpp"
#include "core/strings.hpp"

namespace strowger::api {
namespace {

std::string Base64Url(const unsigned char* data, size_t size) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t n = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
        for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
    }
    if (size - i == 1) {
        uint32_t n = uint32_t{data[i]} << 16;
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
    } else if (size - i == 2) {
        uint32_t n = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
        out += kAlphabet[(n >> 18) & 63];
        out += kAlphabet[(n >> 12) & 63];
        out += kAlphabet[(n >> 6) & 63];
    }
    return out;
}

std::string Digest(std::string_view token) {
    char hex[64];
    unsigned char digest[32];
    Sha256HexTo(token, {}, {}, hex, digest);
    return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

int HexNibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// The 32 bytes of a stored hex hash ("" if it is not 64 hex digits).
std::string FromHex(std::string_view hex) {
    if (hex.size() != 64) return {};
    std::string out(32, '\0');
    for (size_t i = 0; i < 32; ++i) {
        int high = HexNibble(hex[2 * i]);
        int low = HexNibble(hex[2 * i + 1]);
        if (high < 0 || low < 0) return {};
        out[i] = static_cast<char>(high * 16 + low);
    }
    return out;
}

}  // namespace

std::string NewTokenText() {
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1) std::abort();  // no randomness: nothing is safe
    return "stg_" + Base64Url(bytes, sizeof bytes);
}

std::string TokenHash(std::string_view token) {
    return Sha256Hex(token);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Status CheckTokenName(std::string_view name) {
    bool ok = !name.empty() && name.size() <= 64;
    for (char c : name) {
        ok =
            ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
    }
    if (!ok) {
        return InvalidArgumentError("a token name is 1 to 64 characters of A-Z a-z 0-9 . _ -");
    }
    return OkStatus();
}

std::string DefaultTokenFile() {
    if (const char* file = std::getenv("STROWGER_TOKEN_FILE"); file && *file) return file;
    std::filesystem::path dir;
    if (const char* config = std::getenv("XDG_CONFIG_HOME"); config && *config) {
        dir = std::filesystem::path(config) / "strowger";
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        dir = std::filesystem::path(home) / ".config" / "strowger";
    } else {
        dir = ".strowger";
    }
    return (dir / "token").string();
}

Status WriteTokenFileBlocking(const std::string& path, const std::string& token) {
    std::filesystem::path file(path);
    std::error_code ec;
    if (file.has_parent_path()) {
        std::filesystem::create_directories(file.parent_path(), ec);
        if (ec) {
            return UnavailableError("cannot create " + file.parent_path().string() + ": " +
                                    ec.message());
        }
    }
    std::filesystem::remove(file, ec);
    // Created 0600 from the start: the token is never readable by others, not even briefly.
    const mode_t old_mask = umask(077);
    {
        std::ofstream out(path, std::ios::trunc);
        out << token << "\n";
        out.close();
        umask(old_mask);
        if (!out) return UnavailableError("cannot write the token file " + path);
    }
    if (chmod(path.c_str(), 0600) != 0) {
        return UnavailableError("cannot make " + path + " private (chmod 0600)");
    }
    return OkStatus();
}

Result<std::string> ReadTokenFileBlocking(const std::string& path) {
    std::ifstream in(path);
    if (!in) return NotFoundError("no token file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return std::string(Trim(text.str()));
}

TokenRegistry::TokenRegistry(std::shared_ptr<store::Store> store, Clock& clock)
    : store_(std::move(store)), clock_(clock) {}

void TokenRegistry::Index() {
    live_.clear();
    for (const auto& token : tokens_) {
        if (!token.live()) continue;
        bool known = false;
        Role role = RoleFromName(token.role, &known);
        std::string digest = FromHex(token.token_sha256);
        if (!known || digest.empty()) continue;
        live_.push_back(Live{std::move(digest), Identity{token.name, role}});
    }
}

Awaitable<Status> TokenRegistry::Refresh() {
    STROWGER_CO_ASSIGN_OR_RETURN(auto tokens, co_await store_->ListTokens());
    tokens_ = std::move(tokens);
    Index();
    co_return OkStatus();
}

std::optional<Identity> TokenRegistry::Authenticate(std::string_view token) const {
    const std::string digest = Digest(token);
    // Every live token is compared, each in constant time, and the loop does not stop at a
    // match: the time taken says nothing of which token (or how much of one) matched.
    const Live* found = nullptr;
    for (const auto& live : live_) {
        bool equal = ConstantTimeEquals(digest, live.digest);
        found = equal ? &live : found;
    }
    if (!found) return std::nullopt;
    return found->identity;
}

Awaitable<Result<TokenRegistry::Created>> TokenRegistry::Create(std::string name, std::string role,
                                                                std::string created_by) {
    STROWGER_CO_TRY(CheckTokenName(name));
    bool known = false;
    RoleFromName(role, &known);
    if (!known) {
        co_return InvalidArgumentError("unknown role \"" + role +
                                       "\" (expected viewer, operator, approver or admin)");
    }
    Created created;
    created.token = NewTokenText();
    created.record.name = std::move(name);
    created.record.role = std::move(role);
    created.record.token_sha256 = TokenHash(created.token);
    created.record.created_by = std::move(created_by);
    created.record.created_at = clock_.Now();
    store::ApiToken record = created.record;
    STROWGER_CO_TRY(co_await store_->PutToken(std::move(record)));
    STROWGER_CO_TRY(co_await Refresh());
    co_return created;
}

Awaitable<Status> TokenRegistry::Revoke(std::string name) {
    STROWGER_CO_TRY(co_await store_->RevokeToken(name, clock_.Now()));
    co_return co_await Refresh();
}

size_t TokenRegistry::live() const {
    return live_.size();
}

}  // namespace strowger::api
