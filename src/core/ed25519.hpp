// Ed25519 keys (OpenSSL): the ledger's signing key (docs/design/audit.md).
//
// A SigningKey holds a private key; a VerifyingKey only the public half, which is what an
// auditor gets (`strowger audit pubkey`). Keys are files in PEM (PKCS#8 for the private key,
// SubjectPublicKeyInfo for the public one), the forms `openssl pkey` reads and writes.
//
// Thread-safety: a key is immutable once made; Sign and Verify may be called concurrently.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace strowger {

class VerifyingKey {
  public:
    // From a PEM public key (or a PEM private key, whose public half it takes).
    static Result<VerifyingKey> FromPem(std::string_view pem);
    static Result<VerifyingKey> ReadFileBlocking(const std::string& path);

    // The 32 raw bytes of the public key.
    const std::array<unsigned char, 32>& raw() const { return raw_; }
    // First 16 hex digits of SHA-256 of raw(): how signatures name their key.
    const std::string& id() const { return id_; }
    std::string Pem() const;
    // True if `signature_hex` (128 hex digits) is this key's signature of `message`.
    bool Verify(std::string_view message, std::string_view signature_hex) const;

    // From the 32 raw bytes of a public key.
    static VerifyingKey FromRaw(const std::array<unsigned char, 32>& raw);

  private:
    std::array<unsigned char, 32> raw_{};
    std::string id_;
};

class SigningKey {
  public:
    // A new random key.
    static Result<SigningKey> Generate();
    static Result<SigningKey> FromPem(std::string_view pem);
    // Reads the key at `path`, or creates it there (mode 0600, created exclusively, so two
    // processes starting at once end with one key) if the file does not exist. Refuses a key
    // file that others may read or write.
    static Result<SigningKey> LoadOrCreateBlocking(const std::string& path);

    const VerifyingKey& verifying_key() const { return public_; }
    // PKCS#8 PEM of the private key.
    std::string PrivatePem() const;
    // The Ed25519 signature of `message`, 128 hex digits.
    std::string Sign(std::string_view message) const;

  private:
    std::array<unsigned char, 32> seed_{};
    VerifyingKey public_;
};

}  // namespace strowger
