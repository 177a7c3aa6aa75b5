#include "model/diagnostic.hpp"

#include "core/strings.hpp"

namespace strowger::model {

std::string Excerpt(std::string_view text) {
    return EscapeControl(CapForMessage(text, kQuoteBytes), Newlines::kEscape);
}

std::string Quote(std::string_view text, char mark) {
    return mark + Excerpt(text) + mark;
}

std::string Diagnostic::ToString() const {
    // Idempotent on text that was escaped already (a Quote): it adds no backslashes.
    auto shown = [](std::string_view text, size_t max_bytes) {
        return EscapeControl(CapForMessage(text, max_bytes), Newlines::kEscape);
    };
    std::string out = shown(pos.file, 1024);
    if (pos.line > 0) {
        out += ':' + std::to_string(pos.line) + ':' + std::to_string(pos.column);
    }
    out += ": ";
    if (severity == Severity::kWarning) out += "warning: ";
    if (!path.empty()) out += shown(path, kQuoteBytes) + ": ";
    out += shown(message, kMessageBytes);
    return out;
}

bool HasErrors(const std::vector<Diagnostic>& diagnostics) {
    for (const auto& d : diagnostics) {
        if (d.severity == Diagnostic::Severity::kError) return true;
    }
    return false;
}

}  // namespace strowger::model
