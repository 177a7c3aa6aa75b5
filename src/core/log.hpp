// Logging (spdlog) to stderr, with secret redaction.
//
// Secrets never reach logs or the ledger: every value read from an environment variable whose
// name looks like a key (…_KEY, …_TOKEN, …_SECRET, …PASSWORD) is registered with the redactor,
// as are the API keys and credential-bearing extra headers of the providers file; Redact()
// replaces any registered value and any match of a configured pattern with "[REDACTED]".
//
// Redaction applies to whole texts (an assembled answer, an error message, an event's field),
// never to pieces of one: a value cut in two is no longer found.
//
// Thread-safety: all functions are thread-safe.
#pragma once

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace strowger {

// Sets up the default logger on stderr; `level` is trace|debug|info|warn|error|off. Every
// message goes through RedactingSink.
void InitLogging(std::string_view level);
// A sink that writes to `inner` each message with its secrets redacted (Redact), whoever
// formatted it.
std::shared_ptr<spdlog::sinks::sink> RedactingSink(std::shared_ptr<spdlog::sinks::sink> inner);

// Adds a literal secret value (ignored if shorter than 6 bytes: too likely a false match).
void RegisterSecret(std::string_view secret);
// Adds a regular expression whose matches are secrets, e.g. "sk-[A-Za-z0-9]{20,}". The syntax
// is RE2's (https://github.com/google/re2/wiki/Syntax), not ECMAScript's: matching takes time
// linear in the text whatever the pattern, so there are no backreferences or lookarounds.
// Returns false if the pattern does not compile (or is too large).
bool RegisterSecretPattern(std::string_view pattern);
// Registers the values of secret-looking environment variables.
void RegisterEnvironmentSecrets();
// `text` with every secret replaced by "[REDACTED]".
std::string Redact(std::string_view text);
// True if any secret is registered (lets hot paths skip Redact()).
bool HaveSecrets();
// True if `text` contains a registered value or a match of a pattern (Redact would change it).
bool ContainsSecret(std::string_view text);

}  // namespace strowger
