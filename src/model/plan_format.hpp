// Renderings of a Plan for `strowger plan`: text, JSON, Graphviz DOT and Mermaid.
#pragma once

#include <optional>
#include <string>

#include "model/plan.hpp"

namespace strowger::model {

enum class PlanFormat { kText, kJson, kDot, kMermaid };

// `input`, when given, is substituted for {{input}} in the prompts of nodes that read the run
// input; every other placeholder is shown as written.
std::string FormatPlan(const Plan& plan, PlanFormat format,
                       const std::optional<std::string>& input = std::nullopt);

}  // namespace strowger::model
