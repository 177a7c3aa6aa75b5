// Reading workflow files (YAML or JSON, one schema: SPEC §3 and docs/formats/workflow.md).
//
// The loader reports every problem it finds, each with file, line:column and field path, and
// keeps going so that one run of `strowger validate` shows them all. It checks shape and
// types (unknown fields with did-you-mean, bad numbers, unknown modes); cross-references
// (agents, variables, dependencies) are checked by Validate().
//
// Thread-safety: reentrant.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/diagnostic.hpp"
#include "model/workflow.hpp"

namespace strowger::model {

struct LoadOptions {
    // Extra directories of agent files (`--agents DIR`), after `agents/` beside the workflow.
    std::vector<std::string> agent_dirs;
    // Whether to read `agents/*.{yaml,yml,json}` beside the workflow file.
    bool sibling_agents = true;
};

struct LoadResult {
    Workflow workflow;
    std::vector<Diagnostic> diagnostics;
    bool ok() const { return !HasErrors(diagnostics); }
};

// Reads and parses `path`, then the agent files (see LoadOptions).
LoadResult LoadWorkflowFile(const std::string& path, const LoadOptions& options = {});

// Parses `text` as if read from `file_name`; relative paths resolve against `base_dir`.
LoadResult LoadWorkflowText(std::string_view text, const std::string& file_name,
                            const std::string& base_dir, const LoadOptions& options = {});

}  // namespace strowger::model
