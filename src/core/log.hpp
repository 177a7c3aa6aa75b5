// Logging (spdlog) to stderr, with secret redaction.
//
// Secrets never reach logs or the ledger: every value read from an environment variable whose
// name looks like a key (…_KEY, …_TOKEN, …_SECRET, …PASSWORD) is registered with the redactor,
// as are values a provider config marks secret; Redact() replaces any registered value and any
// configured pattern with "[REDACTED]".
//
// Thread-safety: all functions are thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace strowger {

// Sets up the default logger on stderr; `level` is trace|debug|info|warn|error|off.
void InitLogging(std::string_view level);

// Adds a literal secret value (ignored if shorter than 6 bytes: too likely a false match).
void RegisterSecret(std::string_view secret);
// Adds a regular expression (ECMAScript) whose matches are secrets, e.g. "sk-[A-Za-z0-9]{20,}".
// Returns false if the pattern does not compile.
bool RegisterSecretPattern(std::string_view pattern);
// Registers the values of secret-looking environment variables.
void RegisterEnvironmentSecrets();
// `text` with every secret replaced by "[REDACTED]".
std::string Redact(std::string_view text);
// True if any secret is registered (lets hot paths skip Redact()).
bool HaveSecrets();

}  // namespace strowger
