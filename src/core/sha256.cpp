#include "core/sha256.hpp"

#include <cstring>

#include "core/strings.hpp"

// SHA256_* are deprecated in OpenSSL 3 in favour of EVP, which allocates per digest; they
// remain supported and are what a per-event hash needs.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

namespace strowger {

void Sha256HexTo(std::string_view a, std::string_view b, std::string_view c, char* out,
                 unsigned char* binary) {
    // The low-level API: no allocation and no algorithm lookup per call (EVP_DigestInit_ex
    // allocates per init in OpenSSL 3, which costs more than hashing a ledger event).
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, a.data(), a.size());
    if (!b.empty()) SHA256_Update(&ctx, b.data(), b.size());
    if (!c.empty()) SHA256_Update(&ctx, c.data(), c.size());
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_Final(digest, &ctx);
    if (binary != nullptr) std::memcpy(binary, digest, SHA256_DIGEST_LENGTH);
    HexEncode(digest, SHA256_DIGEST_LENGTH, out);
}

std::string Sha256Hex(std::string_view a, std::string_view b) {
    std::string out(64, '0');
    Sha256HexTo(a, b, {}, out.data());
    return out;
}

}  // namespace strowger
