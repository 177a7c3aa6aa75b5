// What a node that runs another workflow file as a child run shares (`subworkflow`, and
// `for_each` with `workflow`): the child compiled and pinned with the parent, its input from
// `input_mapping` templates (the child's typed inputs as a JSON object) or given, and the
// error a child that did not complete fails its node (or item) with.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/nodes/node_type.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {

struct ChildInput {
    struct Mapping {
        std::string name;
        std::string type = "string";  // the child's declared type, if it declares the input
        model::Template value;
    };
    std::shared_ptr<const model::Plan> child;
    std::string file;
    std::vector<Mapping> mapping;
    bool has_mapping = false;
};

// Compiles config `workflow` (required) and `input_mapping` (optional; its templates may use
// `variables` besides the usual ones). False if `workflow` is missing or does not compile.
bool CompileChildInput(model::NodeCompileContext& context, ChildInput& c,
                       const std::vector<std::string>& variables = {});

// The child's input: the mapping rendered (with `extras`) as a JSON object, else `fallback`.
std::string RenderChildInput(NodeRun& run, const ChildInput& c, std::string fallback,
                             const std::map<std::string, std::string>& extras = {});

// "child run <id> (<file>) failed: <its error>" (kAborted, code child_failed).
Error ChildFailure(const NodeRun::ChildResult& child, const std::string& file);

}  // namespace strowger::engine::nodes
