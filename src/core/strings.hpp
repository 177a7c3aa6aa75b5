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
// Length of the valid UTF-8 sequence at text[i] (1 to 4), or 0 if the bytes there are not one
// (truncated, overlong, a surrogate or past U+10FFFF).
size_t Utf8SequenceLength(std::string_view text, size_t i);
// First `max_bytes` bytes on a UTF-8 boundary, with "…" appended if cut; newlines shown as ⏎.
std::string Preview(std::string_view text, size_t max_bytes);

// Text quoted from input or from a server's answer inside a message (an error, a log line):
// at most `max_bytes` of it (cut on a UTF-8 boundary), with control characters and invalid
// UTF-8 escaped (EscapeControl), and "… (N bytes in all)" appended when it was cut. Keeps a
// 5 MB HTTP body or a binary file from becoming a 5 MB message.
inline constexpr size_t kMessageQuoteBytes = 2048;
std::string CapForMessage(std::string_view text, size_t max_bytes = kMessageQuoteBytes);

// `text` safe to print on a terminal: C0 control characters other than newline and tab, DEL,
// C1 controls (U+0080–U+009F) and bytes that are not UTF-8 are written as \xNN (so an ESC
// sequence in a model's reply cannot clear the screen or set the window title). Newlines and
// tabs are kept unless `newlines` is kEscape (then \\n, \\t). Valid UTF-8 is kept as is.
enum class Newlines { kKeep, kEscape };
std::string EscapeControl(std::string_view text, Newlines newlines = Newlines::kKeep);

}  // namespace strowger
