// Small string utilities.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace strowger {

// ASCII lower-casing (non-ASCII bytes unchanged).
std::string AsciiLower(std::string_view text);
// Case-insensitive (ASCII) substring test: the semantics of LibreFang's
// `to_lowercase().contains()` for conditions and loop `until`.
bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle);
std::string_view Trim(std::string_view text);
bool StartsWith(std::string_view text, std::string_view prefix);
bool EndsWith(std::string_view text, std::string_view suffix);
std::vector<std::string> Split(std::string_view text, char separator);
std::string Join(const std::vector<std::string>& parts, std::string_view separator);
// Levenshtein distance, for "did you mean" suggestions.
size_t EditDistance(std::string_view a, std::string_view b);
// The candidate closest to `word` if it is close enough to be a likely typo, else "".
std::string ClosestMatch(std::string_view word, const std::vector<std::string_view>& candidates);
// The `n` bytes at `bytes` as 2n lowercase hex digits at `out`: sixteen bytes at a time where
// the CPU allows (a ledger event's hash is hex encoded as it is sealed).
void HexEncode(const unsigned char* bytes, size_t n, char* out);
// First `max_bytes` bytes on a UTF-8 boundary, with "…" appended if cut; newlines shown as ⏎.
std::string Preview(std::string_view text, size_t max_bytes);

}  // namespace strowger
