// API tokens (docs/formats/daemon_state_v1.md, "API tokens"): made from 32 random bytes, shown
// once, stored as their SHA-256, compared in constant time.
//
// TokenRegistry keeps the store's tokens in memory for Authenticate (every request); it is
// refreshed from the store after each change made through it and by Refresh (the daemon
// calls it periodically, so a token revoked with `strowger token revoke` on the store stops
// working within the refresh interval).
//
// Thread-safety: all methods on one executor (the daemon's).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/router.hpp"
#include "core/clock.hpp"
#include "store/store.hpp"

namespace strowger::api {

// "stg_" + 43 characters of base64url (32 bytes from the OS's random source).
std::string NewTokenText();
// Lowercase hex SHA-256 of a token's text.
std::string TokenHash(std::string_view token);
// Whether a == b, in time that depends only on their lengths (CRYPTO_memcmp).
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// kInvalidArgument unless `name` is 1-64 of [A-Za-z0-9._-].
Status CheckTokenName(std::string_view name);

// The file the first admin token is written to and the local CLI reads: $STROWGER_TOKEN_FILE,
// else $XDG_CONFIG_HOME/strowger/token, else ~/.config/strowger/token.
std::string DefaultTokenFile();
// Writes `token` + "\n" to `path` with mode 0600 (creating its directory 0700).
Status WriteTokenFileBlocking(const std::string& path, const std::string& token);
// The token in `path` (trimmed); kNotFound if there is no such file.
Result<std::string> ReadTokenFileBlocking(const std::string& path);

class TokenRegistry {
  public:
    explicit TokenRegistry(std::shared_ptr<store::Store> store, Clock& clock = Clock::Real());

    // Reads the store's tokens.
    Awaitable<Status> Refresh();
    // Who `token` is, comparing its hash with every live token's in constant time (no early
    // exit); nullopt if none matches.
    std::optional<Identity> Authenticate(std::string_view token) const;

    struct Created {
        store::ApiToken record;
        std::string token;  // the text, shown once
    };
    // kInvalidArgument for a bad name or role, kAlreadyExists for a used name.
    Awaitable<Result<Created>> Create(std::string name, std::string role, std::string created_by);
    Awaitable<Status> Revoke(std::string name);
    const std::vector<store::ApiToken>& tokens() const { return tokens_; }
    // Live tokens.
    size_t live() const;

  private:
    std::shared_ptr<store::Store> store_;
    Clock& clock_;
    std::vector<store::ApiToken> tokens_;
    // The live tokens' hashes in binary, with their identities.
    struct Live {
        std::string digest;  // 32 bytes
        Identity identity;
    };
    std::vector<Live> live_;
    void Index();
};

}  // namespace strowger::api
