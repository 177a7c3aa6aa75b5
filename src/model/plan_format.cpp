#include "model/plan_format.hpp"

#include <boost/json.hpp>

#include <sstream>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "model/internal/plan_format_dag.hpp"

namespace strowger::model {
namespace {

std::string RenderPrompt(const Plan& plan, const PlanNode& node,
                         const std::optional<std::string>& input) {
    (void)plan;
    return node.prompt.Render(
        [&](const Template::Segment& segment) -> std::optional<std::string_view> {
            if (segment.kind == Template::Segment::Kind::kInput && node.inputs.empty() && input) {
                return std::string_view(*input);
            }
            return std::nullopt;
        });
}

std::string Describe(const Plan& plan, const PlanNode& node) {
    std::string out = "[" + std::string(StepModeName(node.mode)) + "]";
    if (const auto* agent = plan.AgentOf(node)) {
        out += " agent=" + agent->name + " (" + agent->model + ")";
    }
    if (node.kind == NodeKind::kAgent) {
        if (node.timeout_ms % 1000 == 0) {
            out += " timeout=" + std::to_string(node.timeout_ms / 1000) + "s";
        } else {
            out += " timeout=" + std::to_string(node.timeout_ms) + "ms";
        }
        out += " on_error=" + std::string(ErrorModeName(node.error_mode));
        if (node.error_mode == ErrorMode::kRetry) {
            out += " attempts<=" + std::to_string(node.max_attempts);
        }
    }
    if (node.conditional) out += " if input contains \"" + node.condition + "\"";
    if (node.loop) {
        out += " loop<=" + std::to_string(node.max_iterations);
        if (!node.until.empty()) out += " until \"" + node.until + "\"";
    }
    if (!node.output_var.empty()) out += " -> {{" + node.output_var + "}}";
    return out;
}

std::string Names(const Plan& plan, const std::vector<int>& indices) {
    std::vector<std::string> names;
    for (int i : indices) names.push_back(plan.nodes[static_cast<size_t>(i)].id);
    return Join(names, ", ");
}

std::string Indent(const std::string& text, const std::string& prefix) {
    std::string out;
    for (const auto& line : Split(text, '\n')) out += prefix + line + "\n";
    return out;
}

std::string DotEscape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') {
            out += "\\n";  // DOT's line break inside a quoted label
            continue;
        }
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

std::string MermaidEscape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '"') {
            out += "#quot;";
        } else {
            out += c;
        }
    }
    return out;
}

std::string Text(const Plan& plan, const std::optional<std::string>& input) {
    std::ostringstream out;
    out << "workflow: " << plan.workflow_name << "\n";
    if (!plan.description.empty()) out << "description: " << plan.description << "\n";
    out << "definition: sha256:" << plan.definition_sha256 << "\n";
    out << "agents:\n";
    for (const auto& agent : plan.agents) {
        out << "  " << agent.name << ": " << agent.model;
        if (!agent.tools.empty()) out << " tools=[" << Join(agent.tools, ", ") << "]";
        if (!agent.require_approval.empty())
            out << " approval=[" << Join(agent.require_approval, ", ") << "]";
        if (agent.network) out << " network";
        out << "\n";
    }
    for (const auto& server : plan.mcp_servers) {
        out << "mcp server " << server.name << ": " << server.command;
        for (const auto& arg : server.args) out << " " << arg;
        if (server.sandboxed) out << " (sandboxed)";
        out << "\n";
    }
    for (size_t layer = 0; layer < plan.layers.size(); ++layer) {
        const auto& members = plan.layers[layer];
        out << "layer " << layer + 1 << (members.size() > 1 ? " (concurrent)" : "") << ":\n";
        for (int index : members) {
            const PlanNode& node = plan.nodes[static_cast<size_t>(index)];
            out << "  " << node.id << " " << Describe(plan, node) << "\n";
            if (!node.deps.empty()) out << "    after: " << Names(plan, node.deps) << "\n";
            if (node.kind == NodeKind::kCollect) {
                out << "    joins: "
                    << (node.inputs.empty() ? "the run input" : Names(plan, node.inputs)) << "\n";
            } else {
                out << "    input: "
                    << (node.inputs.empty() ? "the run input" : Names(plan, node.inputs)) << "\n";
                out << "    prompt:\n" << Indent(RenderPrompt(plan, node, input), "      | ");
            }
        }
    }
    out << "output: " << plan.nodes[static_cast<size_t>(plan.output_node)].id << "\n";
    return out.str();
}

std::string Json(const Plan& plan, const std::optional<std::string>& input) {
    json::object root;
    root["workflow"] = plan.workflow_name;
    root["description"] = plan.description;
    root["definition_sha256"] = plan.definition_sha256;
    json::array agents;
    for (const auto& agent : plan.agents) {
        json::object a;
        a["name"] = agent.name;
        a["model"] = agent.model;
        json::array tools;
        for (const auto& t : agent.tools) tools.emplace_back(t);
        a["tools"] = std::move(tools);
        agents.push_back(std::move(a));
    }
    root["agents"] = std::move(agents);
    json::array nodes;
    auto ids = [&](const std::vector<int>& indices) {
        json::array a;
        for (int i : indices) a.emplace_back(plan.nodes[static_cast<size_t>(i)].id);
        return a;
    };
    for (const auto& node : plan.nodes) {
        json::object n;
        n["id"] = node.id;
        n["kind"] = std::string(NodeKindName(node.kind));
        n["mode"] = std::string(StepModeName(node.mode));
        if (const auto* agent = plan.AgentOf(node)) n["agent"] = agent->name;
        n["deps"] = ids(node.deps);
        n["inputs"] = ids(node.inputs);
        n["layer"] = node.layer + 1;
        if (node.kind == NodeKind::kAgent) {
            n["prompt"] = node.prompt.source();
            if (input && node.inputs.empty())
                n["rendered_prompt"] = RenderPrompt(plan, node, input);
            n["timeout_ms"] = node.timeout_ms;
            n["error_mode"] = std::string(ErrorModeName(node.error_mode));
            n["max_attempts"] = node.max_attempts;
        }
        if (!node.output_var.empty()) n["output_var"] = node.output_var;
        if (node.conditional) n["condition"] = node.condition;
        if (node.loop) {
            n["max_iterations"] = node.max_iterations;
            n["until"] = node.until;
        }
        nodes.push_back(std::move(n));
    }
    root["nodes"] = std::move(nodes);
    json::array layers;
    for (const auto& layer : plan.layers) layers.push_back(ids(layer));
    root["layers"] = std::move(layers);
    root["output"] = plan.nodes[static_cast<size_t>(plan.output_node)].id;
    return json::serialize(root) + "\n";
}

std::string Label(const Plan& plan, const PlanNode& node, const std::string& newline) {
    std::string label = node.id;
    if (const auto* agent = plan.AgentOf(node)) label += newline + agent->name;
    if (node.mode != StepMode::kSequential) label += newline + std::string(StepModeName(node.mode));
    if (node.conditional) label += " \"" + node.condition + "\"";
    if (node.loop) label += " x" + std::to_string(node.max_iterations);
    return label;
}

std::string Dot(const Plan& plan) {
    std::ostringstream out;
    out << "digraph \"" << DotEscape(plan.workflow_name) << "\" {\n";
    out << "  rankdir=TB;\n  node [shape=box, style=rounded];\n";
    out << "  \"__input\" [label=\"input\", shape=ellipse];\n";
    for (const auto& node : plan.nodes) {
        out << "  \"" << DotEscape(node.id) << "\" [label=\"" << DotEscape(Label(plan, node, "\n"))
            << "\"" << (node.kind == NodeKind::kCollect ? ", shape=invhouse" : "") << "];\n";
    }
    for (const auto& node : plan.nodes) {
        if (node.deps.empty()) out << "  \"__input\" -> \"" << DotEscape(node.id) << "\";\n";
        for (int d : node.deps) {
            out << "  \"" << DotEscape(plan.nodes[static_cast<size_t>(d)].id) << "\" -> \""
                << DotEscape(node.id) << "\";\n";
        }
    }
    out << "}\n";
    return out.str();
}

std::string Mermaid(const Plan& plan) {
    std::ostringstream out;
    out << "flowchart TD\n";
    out << "  input([input])\n";
    for (const auto& node : plan.nodes) {
        out << "  n" << node.index << "[\"" << MermaidEscape(Label(plan, node, "<br/>")) << "\"]\n";
    }
    for (const auto& node : plan.nodes) {
        if (node.deps.empty()) out << "  input --> n" << node.index << "\n";
        for (int d : node.deps) out << "  n" << d << " --> n" << node.index << "\n";
    }
    return out.str();
}

}  // namespace

std::string FormatPlan(const Plan& plan, PlanFormat format,
                       const std::optional<std::string>& input) {
    if (plan.dag) {
        switch (format) {
            case PlanFormat::kText:
                return internal::DagText(plan, input);
            case PlanFormat::kJson:
                return internal::DagJson(plan, input);
            case PlanFormat::kDot:
                return internal::DagDot(plan);
            case PlanFormat::kMermaid:
                return internal::DagMermaid(plan);
        }
    }
    switch (format) {
        case PlanFormat::kText:
            return Text(plan, input);
        case PlanFormat::kJson:
            return Json(plan, input);
        case PlanFormat::kDot:
            return Dot(plan);
        case PlanFormat::kMermaid:
            return Mermaid(plan);
    }
    return {};
}

}  // namespace strowger::model
