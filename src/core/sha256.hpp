// SHA-256 (OpenSSL), hex encoded.
#pragma once

#include <string>
#include <string_view>

namespace strowger {

// Lowercase hex SHA-256 of the concatenation of `a` and `b` (b may be empty).
std::string Sha256Hex(std::string_view a, std::string_view b = {});

}  // namespace strowger
