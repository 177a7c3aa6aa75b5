#include "model/schema.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <string_view>

#include "model/fields.hpp"

namespace strowger::model {
namespace {

namespace json = boost::json;

json::value Parse(std::string_view text) {
    return json::parse(text);
}

// A scalar the loader reads as text: YAML writes `version: 1` unquoted, so numbers and
// booleans are text too.
json::value Text() {
    return Parse(R"({"type": ["string", "number", "boolean", "null"]})");
}
json::value Integer(int minimum) {
    json::object o;
    o["type"] = "integer";
    o["minimum"] = minimum;
    return o;
}
json::value Number() {
    return Parse(R"({"type": "number", "minimum": 0})");
}
json::value Bool() {
    return Parse(R"({"type": "boolean"})");
}
json::value Any() {
    return json::object();
}
json::value Ref(std::string_view name) {
    json::object o;
    o["$ref"] = "#/$defs/" + std::string(name);
    return o;
}
json::value StringList() {
    return Parse(R"({"type": "array", "items": {"type": "string"}})");
}
template <size_t N>
json::value Enum(const std::string_view (&values)[N]) {
    json::array items;
    for (auto value : values) items.emplace_back(json::string(value));
    json::object o;
    o["enum"] = std::move(items);
    return o;
}
json::value OneOf(std::initializer_list<json::value> choices) {
    json::object o;
    o["oneOf"] = json::array(choices.begin(), choices.end());
    return o;
}
json::value ArrayOf(json::value items) {
    json::object o;
    o["type"] = "array";
    o["items"] = std::move(items);
    return o;
}
json::value MapOf(json::value values) {
    json::object o;
    o["type"] = "object";
    o["additionalProperties"] = std::move(values);
    return o;
}

using Types = std::map<std::string_view, json::value>;

// Each table with the types of its fields (what the loader's reads accept).
struct Definition {
    std::string_view name;
    const fields::Table* table;
    Types types;
};

std::vector<Definition> Definitions() {
    using namespace fields;
    const json::value text = Text();
    return {
        {"workflow",
         &kWorkflow,
         {{"name", text},
          {"description", text},
          {"agents", OneOf({MapOf(Ref("agent")), ArrayOf(Ref("agent"))})},
          {"steps", ArrayOf(Ref("step"))},
          {"nodes", ArrayOf(Ref("node"))},
          {"edges", ArrayOf(Ref("edge"))},
          {"id", text},
          {"version", text},
          {"created_at", text},
          {"mcp_servers", MapOf(Ref("mcp_server"))},
          {"limits", Ref("run_limits")},
          {"workspace", text},
          {"inputs", OneOf({ArrayOf(Ref("input")), MapOf(Ref("input"))})},
          {"output", text},
          {"default_model", text},
          {"policies", Ref("policies")},
          {"metadata", Any()},
          {"schema_version", text},
          {"workflow_id", text},
          {"mode", text},
          {"base_dir", text},
          {"session", Bool()}}},
        {"agent",
         &kAgent,
         {{"name", text},
          {"id", text},
          {"description", text},
          {"model", text},
          {"system_prompt", text},
          {"tools", StringList()},
          {"max_turns", Integer(1)},
          {"temperature", Number()},
          {"max_output_tokens", Integer(1)},
          {"limits", Ref("agent_limits")},
          {"base_dir", text},
          {"require_approval", StringList()},
          {"network", Bool()},
          {"http_hosts", StringList()},
          {"private_addresses", Bool()},
          {"sandbox", Ref("sandbox")}}},
        {"agent_limits",
         &kAgentLimits,
         {{"max_tokens", Integer(1)},
          {"max_cost_usd", Number()},
          {"max_tool_calls", Integer(1)},
          {"max_tokens_per_hour", Integer(1)}}},
        {"sandbox",
         &kSandbox,
         {{"cpu_seconds", Integer(1)},
          {"memory_mb", Integer(1)},
          {"max_processes", Integer(1)},
          {"max_open_files", Integer(1)},
          {"max_file_size_mb", Integer(1)},
          {"timeout_secs", Integer(1)},
          {"max_output_kb", Integer(1)}}},
        {"run_limits",
         &kRunLimits,
         {{"max_tokens", Integer(1)}, {"max_cost_usd", Number()}, {"max_tool_calls", Integer(1)}}},
        {"mcp_server",
         &kMcpServer,
         {{"command", text},
          {"args", StringList()},
          {"env", MapOf(text)},
          {"sandboxed", Bool()},
          {"network", Bool()},
          {"safety", Enum(kSafetyClasses)},
          {"tools", MapOf(Ref("mcp_tool"))},
          {"base_dir", text}}},
        {"mcp_tool", &kMcpTool, {{"safety", Enum(kSafetyClasses)}, {"require_approval", Bool()}}},
        {"backoff",
         &kBackoff,
         {{"initial_delay_ms", Integer(0)},
          {"max_delay_ms", Integer(0)},
          {"multiplier", Number()},
          {"jitter", Number()}}},
        {"step",
         &kStep,
         {{"name", text},
          {"agent_name", text},
          {"agent_id", text},
          {"agent", text},
          {"prompt", text},
          {"mode", Enum(kModes)},
          {"timeout_secs", Integer(1)},
          {"timeout_ms", Integer(1)},
          {"error_mode", Enum(kErrorModes)},
          {"max_retries", Integer(0)},
          {"output_var", text},
          {"condition", text},
          {"max_iterations", Integer(1)},
          {"until", text},
          {"retry", Ref("backoff")},
          {"depends_on", OneOf({Parse(R"({"type": "string"})"), StringList()})}}},
        {"policy",
         &kPolicy,
         {{"retries", Integer(0)},
          {"timeout_ms", Integer(1)},
          {"backoff", Enum(kBackoffKinds)},
          {"initial_delay_ms", Integer(0)},
          {"max_delay_ms", Integer(0)},
          {"on_error", Enum(kOnErrors)},
          {"fallback_output", Any()},
          {"signal", text}}},
        {"policies", &kPolicies, {{"default", Ref("policy")}}},
        {"node",
         &kNode,
         {{"id", text},
          {"type", text},
          {"config", Parse(R"({"type": ["object", "null"]})")},
          {"policy", Ref("policy")},
          {"label", text},
          {"metadata", Any()}}},
        {"edge",
         &kEdge,
         {{"from", text},
          {"to", text},
          {"branch", text},
          {"signal", text},
          {"label", text},
          {"metadata", Any()}}},
        {"input",
         &kInput,
         {{"name", text},
          {"type", Enum(kInputTypes)},
          {"required", Bool()},
          {"default", Any()},
          {"description", text}}},
    };
}

// One mapping of the file: its table's fields with their types; `$schema` and `x-` fields
// (ignored by the loader) allowed, nothing else.
json::object ObjectSchema(const Definition& definition) {
    json::object properties;
    for (std::string_view field : *definition.table) {
        auto it = definition.types.find(field);
        properties[field] = it != definition.types.end() ? it->second : Any();
    }
    properties["$schema"] = Parse(R"({"type": "string"})");
    json::object o;
    o["type"] = "object";
    o["properties"] = std::move(properties);
    o["patternProperties"] = Parse(R"({"^x-": {}})");
    o["additionalProperties"] = false;
    return o;
}

void Pretty(const json::value& value, std::string& out, int indent) {
    auto newline = [&](int level) {
        out += '\n';
        out.append(static_cast<size_t>(level) * 2, ' ');
    };
    if (value.is_object()) {
        const auto& o = value.get_object();
        if (o.empty()) {
            out += "{}";
            return;
        }
        out += '{';
        bool first = true;
        for (const auto& [key, item] : o) {
            if (!first) out += ',';
            first = false;
            newline(indent + 1);
            out += json::serialize(json::string(key));
            out += ": ";
            Pretty(item, out, indent + 1);
        }
        newline(indent);
        out += '}';
    } else if (value.is_array()) {
        const auto& a = value.get_array();
        bool scalars = std::all_of(a.begin(), a.end(), [](const json::value& v) {
            return !v.is_object() && !v.is_array();
        });
        if (scalars) {  // short lists (enums, type lists) on one line
            out += json::serialize(value);
            return;
        }
        out += '[';
        bool first = true;
        for (const auto& item : a) {
            if (!first) out += ',';
            first = false;
            newline(indent + 1);
            Pretty(item, out, indent + 1);
        }
        newline(indent);
        out += ']';
    } else {
        out += json::serialize(value);
    }
}

}  // namespace

std::string WorkflowJsonSchema() {
    json::object defs;
    json::object root;
    for (const auto& definition : Definitions()) {
        if (definition.name == "workflow") {
            root = ObjectSchema(definition);
        } else {
            defs[definition.name] = ObjectSchema(definition);
        }
    }
    json::object schema;
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema";
    schema["$id"] = "https://strowger.dev/schema/workflow.schema.json";
    schema["title"] = "Strowger workflow";
    schema["description"] =
        "A Strowger workflow file (docs/formats/workflow.md): the linear form (steps) or the "
        "DAG form (nodes and edges). Generated by `strowger schema` from the loader's field "
        "tables.";
    for (auto& [key, value] : root) schema[key] = value;
    schema["$defs"] = std::move(defs);
    std::string out;
    Pretty(schema, out, 0);
    out += '\n';
    return out;
}

std::string FieldsWithoutSchemaType() {
    std::string missing;
    for (const auto& definition : Definitions()) {
        for (std::string_view field : *definition.table) {
            if (!definition.types.contains(field)) {
                missing += std::string(definition.name) + "." + std::string(field) + " ";
            }
        }
        for (const auto& [field, type] : definition.types) {
            if (std::find(definition.table->begin(), definition.table->end(), field) ==
                definition.table->end()) {
                missing += "(not a field) " + std::string(definition.name) + "." +
                           std::string(field) + " ";
            }
        }
    }
    return missing;
}

}  // namespace strowger::model
