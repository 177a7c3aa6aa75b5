// `tool`: one tool call without a model (CMDC's :tool). `tool_name` is a built-in tool or
// "<mcp_server>/<tool>"; `args` a mapping whose string values (at any depth) are templates,
// rendered and sent as the call's JSON arguments; `require_approval` asks a human first. The
// call runs through the agent loop's machinery (NodeRun::CallTool): sandbox, safety class,
// approvals, idempotency key, tool.call committed before it starts and reconciled after a
// crash. The output is the tool's content; a tool's failure is the node's (its policy decides).
#include "core/json.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct ToolConfig {
    std::string tool;
    json::value args = json::object();       // the shape; string values are templates
    std::vector<model::Template> templates;  // the string values, depth-first in order
    bool require_approval = false;
};

// Parses every string of `value` (depth-first, members in order) as a template.
void ParseStrings(model::NodeCompileContext& context, const json::value& value,
                  const std::string& at, std::vector<model::Template>& out) {
    if (value.is_string()) {
        out.push_back(context.ParseTemplate(value.get_string(), at));
    } else if (value.is_object()) {
        for (const auto& [key, member] : value.get_object()) {
            ParseStrings(context, member, at + "." + std::string(key), out);
        }
    } else if (value.is_array()) {
        const auto& array = value.get_array();
        for (size_t i = 0; i < array.size(); ++i) {
            ParseStrings(context, array[i], at + "[" + std::to_string(i) + "]", out);
        }
    }
}

// Replaces every string of `value` with the next rendered template (same order).
void RenderStrings(NodeRun& run, json::value& value, const std::vector<model::Template>& templates,
                   size_t& next) {
    if (value.is_string()) {
        value = run.Render(templates[next++]);
    } else if (value.is_object()) {
        for (auto& member : value.get_object()) RenderStrings(run, member.value(), templates, next);
    } else if (value.is_array()) {
        for (auto& element : value.get_array()) RenderStrings(run, element, templates, next);
    }
}

class ToolType final : public NodeType {
  public:
    std::string_view name() const override { return "tool"; }
    std::string_view summary() const override {
        return "one tool call (built-in or MCP) with templated args, sandboxed and approved as "
               "an agent's";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["tool_name"],"properties":{
            "tool_name":{"type":"string","description":"a built-in tool or <mcp_server>/<tool>"},
            "args":{"type":"object","description":"the call's arguments; strings are templates"},
            "require_approval":{"type":"boolean","default":false},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"tool_name", "args", "require_approval", "output_key"});
        auto config = std::make_shared<Config<ToolConfig>>();
        ToolConfig& c = config->value;
        auto tool = RequiredString(context, "tool_name");
        if (!tool) return nullptr;
        if (!context.KnownTool(*tool)) {
            context.Error("tool_name", "unknown tool " + model::Quote(*tool) +
                                           " (a built-in tool, or <mcp_server>/<tool> of a "
                                           "declared MCP server)");
            return nullptr;
        }
        c.tool = *tool;
        if (const json::value* args = Field(context, "args")) {
            if (!args->is_object()) {
                context.Error("args", "expected a mapping of the tool's arguments");
                return nullptr;
            }
            c.args = *args;
            ParseStrings(context, c.args, "args", c.templates);
        }
        c.require_approval = Bool(context, "require_approval").value_or(false);
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<ToolConfig>>().value;
        json::value args = c.args;
        size_t next = 0;
        RenderStrings(run, args, c.templates, next);
        co_return co_await run.CallTool(c.tool, JsonText(args), c.require_approval);
    }
};

}  // namespace

const NodeType& ToolNode() {
    static const ToolType type;
    return type;
}

}  // namespace strowger::engine::nodes
