// SHA-256 (OpenSSL), hex encoded.
#pragma once

#include <string>
#include <string_view>

namespace strowger {

// Lowercase hex SHA-256 of the concatenation of `a` and `b` (b may be empty).
std::string Sha256Hex(std::string_view a, std::string_view b = {});

// Writes the 64 lowercase hex digits of SHA-256(a || b || c) to `out` (no allocation).
void Sha256HexTo(std::string_view a, std::string_view b, std::string_view c, char* out);

}  // namespace strowger
