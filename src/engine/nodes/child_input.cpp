#include "engine/nodes/child_input.hpp"

#include "core/json.hpp"
#include "engine/nodes/config.hpp"

namespace strowger::engine::nodes {

bool CompileChildInput(model::NodeCompileContext& context, ChildInput& c,
                       const std::vector<std::string>& variables) {
    auto file = RequiredString(context, "workflow");
    if (!file) return false;
    c.file = *file;
    c.child = context.CompileChild(*file, "workflow");
    if (!c.child) return false;
    const json::value* mapping = Field(context, "input_mapping");
    if (mapping == nullptr) return true;
    if (!mapping->is_object()) {
        context.Error("input_mapping", "expected a mapping of the child's inputs to templates");
        return false;
    }
    c.has_mapping = true;
    for (const auto& [key, value] : mapping->get_object()) {
        const std::string at = "input_mapping." + std::string(key);
        ChildInput::Mapping m;
        m.name = std::string(key);
        bool declared = c.child->inputs.empty();
        for (const auto& input : c.child->inputs) {
            if (input.name == key) {
                declared = true;
                m.type = input.type;
            }
        }
        if (!declared) {
            context.Error(at, "the child workflow declares no input " + model::Quote(key));
            continue;
        }
        if (!value.is_string() && !value.is_number() && !value.is_bool()) {
            context.Error(at, "expected a template");
            continue;
        }
        m.value = context.ParseTemplate(Text(value), at, variables);
        c.mapping.push_back(std::move(m));
    }
    return true;
}

std::string RenderChildInput(NodeRun& run, const ChildInput& c, std::string fallback,
                             const std::map<std::string, std::string>& extras) {
    if (!c.has_mapping) return fallback;
    json::object object;
    for (const auto& m : c.mapping) {
        std::string text = run.Render(m.value, extras);
        std::optional<json::value> parsed;
        if (m.type != "string") {
            if (auto value = ParseJson(text)) parsed = std::move(*value);
        }
        object[m.name] = parsed ? *parsed : json::value(text);
    }
    return JsonText(json::value(std::move(object)));
}

Error ChildFailure(const NodeRun::ChildResult& child, const std::string& file) {
    return Error(ErrorCode::kAborted,
                 "child run " + child.run_id + " (" + file + ") " +
                     std::string(ledger::RunStatusName(child.status)) +
                     (child.error.empty() ? "" : ": " + child.error),
                 ErrorDetails{0, -1, -1, "child_failed"});
}

}  // namespace strowger::engine::nodes
