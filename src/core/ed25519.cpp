#include "core/ed25519.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/sha256.hpp"
#include "core/strings.hpp"

namespace strowger {

namespace {

struct PkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
struct MdCtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string BioText(BIO* bio) {
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

std::string IdOf(const std::array<unsigned char, 32>& raw) {
    return Sha256Hex(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()))
        .substr(0, 16);
}

Pkey PublicPkey(const std::array<unsigned char, 32>& raw) {
    return Pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw.data(), raw.size()));
}

Pkey PrivatePkey(const std::array<unsigned char, 32>& seed) {
    return Pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
}

bool RawPublic(EVP_PKEY* key, std::array<unsigned char, 32>& raw) {
    size_t size = raw.size();
    return EVP_PKEY_get_raw_public_key(key, raw.data(), &size) == 1 && size == raw.size();
}

Result<std::string> ReadSmallFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError(path + ": cannot read: " + std::strerror(errno));
    std::ostringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    if (text.size() > 64 * 1024) return InvalidArgumentError(path + ": not a key file (too large)");
    return text;
}

int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

Result<VerifyingKey> VerifyingKey::FromPem(std::string_view pem) {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return InternalError("out of memory");
    Pkey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        Bio again(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
        key.reset(PEM_read_bio_PrivateKey(again.get(), nullptr, nullptr, nullptr));
    }
    if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
        return InvalidArgumentError("not an Ed25519 key in PEM form");
    }
    VerifyingKey out;
    if (!RawPublic(key.get(), out.raw_)) return InvalidArgumentError("unreadable Ed25519 key");
    out.id_ = IdOf(out.raw_);
    return out;
}

VerifyingKey VerifyingKey::FromRaw(const std::array<unsigned char, 32>& raw) {
    VerifyingKey out;
    out.raw_ = raw;
    out.id_ = IdOf(raw);
    return out;
}

Result<VerifyingKey> VerifyingKey::ReadFileBlocking(const std::string& path) {
    STROWGER_ASSIGN_OR_RETURN(auto text, ReadSmallFile(path));
    auto key = FromPem(text);
    if (!key) return std::unexpected(key.error().WithPrefix(path + ": "));
    return key;
}

std::string VerifyingKey::Pem() const {
    Pkey key = PublicPkey(raw_);
    Bio bio(BIO_new(BIO_s_mem()));
    if (!key || !bio || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) return {};
    return BioText(bio.get());
}

bool VerifyingKey::Verify(std::string_view message, std::string_view signature_hex) const {
    if (signature_hex.size() != 128) return false;
    unsigned char signature[64];
    for (size_t i = 0; i < 64; ++i) {
        int high = HexValue(signature_hex[2 * i]), low = HexValue(signature_hex[2 * i + 1]);
        if (high < 0 || low < 0) return false;
        signature[i] = static_cast<unsigned char>(high * 16 + low);
    }
    Pkey key = PublicPkey(raw_);
    MdCtx ctx(EVP_MD_CTX_new());
    if (!key || !ctx) return false;
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) return false;
    return EVP_DigestVerify(ctx.get(), signature, sizeof signature,
                            reinterpret_cast<const unsigned char*>(message.data()),
                            message.size()) == 1;
}

Result<SigningKey> SigningKey::Generate() {
    SigningKey out;
    if (RAND_bytes(out.seed_.data(), static_cast<int>(out.seed_.size())) != 1) {
        return InternalError("cannot get random bytes for a key");
    }
    Pkey key = PrivatePkey(out.seed_);
    std::array<unsigned char, 32> raw;
    if (!key || !RawPublic(key.get(), raw)) return InternalError("cannot make an Ed25519 key");
    out.public_ = VerifyingKey::FromRaw(raw);
    return out;
}

Result<SigningKey> SigningKey::FromPem(std::string_view pem) {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return InternalError("out of memory");
    Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519) {
        return InvalidArgumentError("not an Ed25519 private key in PEM form");
    }
    SigningKey out;
    size_t size = out.seed_.size();
    std::array<unsigned char, 32> raw;
    if (EVP_PKEY_get_raw_private_key(key.get(), out.seed_.data(), &size) != 1 ||
        size != out.seed_.size() || !RawPublic(key.get(), raw)) {
        return InvalidArgumentError("unreadable Ed25519 private key");
    }
    out.public_ = VerifyingKey::FromRaw(raw);
    return out;
}

Result<SigningKey> SigningKey::LoadOrCreateBlocking(const std::string& path) {
    struct stat info;
    if (::stat(path.c_str(), &info) != 0) {
        if (errno != ENOENT) {
            return UnavailableError(path + ": cannot read the ledger key: " + std::strerror(errno));
        }
        STROWGER_ASSIGN_OR_RETURN(auto created, Generate());
        std::string pem = created.PrivatePem();
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            size_t written = 0;
            while (written < pem.size()) {
                ssize_t n = ::write(fd, pem.data() + written, pem.size() - written);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                written += static_cast<size_t>(n);
            }
            bool ok = written == pem.size() && ::fsync(fd) == 0;
            ::close(fd);
            if (!ok) {
                ::unlink(path.c_str());
                return UnavailableError(path + ": cannot write the ledger key");
            }
            return created;
        }
        if (errno != EEXIST) {
            return UnavailableError(path +
                                    ": cannot create the ledger key: " + std::strerror(errno));
        }
        // Another process created it first: use theirs.
        if (::stat(path.c_str(), &info) != 0) {
            return UnavailableError(path + ": cannot read the ledger key: " + std::strerror(errno));
        }
    }
    if ((info.st_mode & 077) != 0) {
        return FailedPreconditionError(path +
                                       ": the ledger key may be read or written by others "
                                       "(mode " +
                                       [&] {
                                           char mode[8];
                                           std::snprintf(mode, sizeof mode, "%03o",
                                                         info.st_mode & 0777);
                                           return std::string(mode);
                                       }() +
                                       "); make it 0600 (chmod 600 " + path + ")");
    }
    STROWGER_ASSIGN_OR_RETURN(auto text, ReadSmallFile(path));
    auto key = FromPem(text);
    if (!key) return std::unexpected(key.error().WithPrefix(path + ": "));
    return key;
}

std::string SigningKey::PrivatePem() const {
    Pkey key = PrivatePkey(seed_);
    Bio bio(BIO_new(BIO_s_mem()));
    if (!key || !bio ||
        PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
            1) {
        return {};
    }
    return BioText(bio.get());
}

std::string SigningKey::Sign(std::string_view message) const {
    Pkey key = PrivatePkey(seed_);
    MdCtx ctx(EVP_MD_CTX_new());
    unsigned char signature[64];
    size_t size = sizeof signature;
    if (!key || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), signature, &size,
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1 ||
        size != sizeof signature) {
        return {};
    }
    std::string hex(128, '0');
    HexEncode(signature, sizeof signature, hex.data());
    return hex;
}

}  // namespace strowger
