// A problem found in a workflow file, with the position and field path that caused it.
#pragma once

#include <string>
#include <vector>

#include "model/workflow.hpp"

namespace strowger::model {

struct Diagnostic {
    enum class Severity { kError, kWarning };
    Severity severity = Severity::kError;
    SourcePos pos;
    std::string path;  // field path, e.g. "steps[2].mode"; empty for the whole file
    std::string message;

    // "flow.yaml:12:7: steps[2].mode: unknown mode ..." (warnings: "...: warning: ...").
    std::string ToString() const;
};

bool HasErrors(const std::vector<Diagnostic>& diagnostics);

}  // namespace strowger::model
