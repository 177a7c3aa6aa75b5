#include "model/diagnostic.hpp"

namespace strowger::model {

std::string Diagnostic::ToString() const {
    std::string out = pos.file;
    if (pos.line > 0) {
        out += ':' + std::to_string(pos.line) + ':' + std::to_string(pos.column);
    }
    out += ": ";
    if (severity == Severity::kWarning) out += "warning: ";
    if (!path.empty()) out += path + ": ";
    out += message;
    return out;
}

bool HasErrors(const std::vector<Diagnostic>& diagnostics) {
    for (const auto& d : diagnostics) {
        if (d.severity == Diagnostic::Severity::kError) return true;
    }
    return false;
}

}  // namespace strowger::model
