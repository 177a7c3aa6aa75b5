#include "core/sha256.hpp"

#include <openssl/evp.h>

#include <cstdlib>

namespace strowger {
namespace {

// One reusable context per thread: creating an EVP context per hash costs more than hashing
// a ledger event.
EVP_MD_CTX* ThreadContext() {
    thread_local struct Holder {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        ~Holder() { EVP_MD_CTX_free(ctx); }
    } holder;
    return holder.ctx;
}

}  // namespace

std::string Sha256Hex(std::string_view a, std::string_view b) {
    static const EVP_MD* md = EVP_sha256();
    EVP_MD_CTX* ctx = ThreadContext();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestInit_ex(ctx, md, nullptr) != 1 || EVP_DigestUpdate(ctx, a.data(), a.size()) != 1 ||
        (!b.empty() && EVP_DigestUpdate(ctx, b.data(), b.size()) != 1) ||
        EVP_DigestFinal_ex(ctx, digest, &length) != 1) {
        std::abort();  // OpenSSL's SHA-256 does not fail on valid input: a broken invariant.
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(2 * length, '0');
    for (unsigned int i = 0; i < length; ++i) {
        out[2 * i] = kHex[digest[i] >> 4];
        out[2 * i + 1] = kHex[digest[i] & 15];
    }
    return out;
}

}  // namespace strowger
