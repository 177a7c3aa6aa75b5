// Private to the model module: `strowger plan` for the DAG form (plan_format_dag.cpp), and
// CMDC's dry run.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/plan.hpp"

namespace strowger::model::internal {

// What the dry run knows of a node: it runs, it is pruned, it fails (a rule router with no
// match), or it depends on something only run time tells (a model's answer, a decision).
enum class DryStatus { kRuns, kPruned, kUnknown, kFails };
struct DryNode {
    DryStatus status = DryStatus::kUnknown;
    std::string output;
    bool output_known = false;
    std::string signal;
    bool signal_known = false;
    std::string why;
};

// Every node's fate with `input` as the run input, by plan index; no model is called.
std::vector<DryNode> DryRun(const Plan& plan, const std::string& input);

std::string DagText(const Plan& plan, const std::optional<std::string>& input);
std::string DagJson(const Plan& plan, const std::optional<std::string>& input);
std::string DagDot(const Plan& plan);
std::string DagMermaid(const Plan& plan);

}  // namespace strowger::model::internal
