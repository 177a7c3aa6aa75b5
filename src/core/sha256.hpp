// SHA-256 (OpenSSL), hex encoded.
#pragma once

#include <string>
#include <string_view>

namespace strowger {

// Lowercase hex SHA-256 of the concatenation of `a` and `b` (b may be empty).
std::string Sha256Hex(std::string_view a, std::string_view b = {});

// Writes the 64 lowercase hex digits of SHA-256(a || b || c) to `out` (no allocation).
// The digest of a + b + c as 64 lowercase hex digits at `out`, and in binary at `digest` (32
// bytes) if not null.
void Sha256HexTo(std::string_view a, std::string_view b, std::string_view c, char* out,
                 unsigned char* digest = nullptr);

}  // namespace strowger
