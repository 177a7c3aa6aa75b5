// A problem found in a workflow file, with the position and field path that caused it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/workflow.hpp"

namespace strowger::model {

struct Diagnostic {
    enum class Severity { kError, kWarning };
    Severity severity = Severity::kError;
    SourcePos pos;
    std::string path;  // field path, e.g. "steps[2].mode"; empty for the whole file
    std::string message;

    // "flow.yaml:12:7: steps[2].mode: unknown mode ..." (warnings: "...: warning: ..."): one
    // line, safe to print on a terminal. The file name and the path are capped and escaped
    // (CapForMessage, newlines as \n), and so is the message, at kMessageBytes.
    std::string ToString() const;

    static constexpr size_t kMessageBytes = 8192;
};

// Text from a workflow file (a name, a value), quoted in a diagnostic's message: between
// `mark`s, at most kQuoteBytes of it, with control characters, newlines and bytes that
// are not UTF-8 escaped (CapForMessage), so a binary file or a megabyte scalar makes a short,
// printable message.
inline constexpr size_t kQuoteBytes = 256;
std::string Quote(std::string_view text, char mark = '"');
// The same without the quotes.
std::string Excerpt(std::string_view text);

bool HasErrors(const std::vector<Diagnostic>& diagnostics);

}  // namespace strowger::model
