#include "engine/nodes/config.hpp"

#include "core/json.hpp"
#include "core/strings.hpp"
#include "model/diagnostic.hpp"

namespace strowger::engine::nodes {

void CheckFields(model::NodeCompileContext& context,
                 std::initializer_list<std::string_view> known) {
    std::vector<std::string_view> names(known.begin(), known.end());
    for (const auto& [key, value] : context.config()) {
        if (std::find(names.begin(), names.end(), key) != names.end()) continue;
        if (key == "definition") continue;  // a pinned child definition (subworkflow)
        std::string message = "unknown field " + model::Quote(key);
        std::string suggestion = ClosestMatch(key, names);
        if (!suggestion.empty()) message += " (did you mean " + model::Quote(suggestion) + "?)";
        context.Error(std::string(key), std::move(message));
    }
}

const json::value* Field(const model::NodeCompileContext& context, std::string_view field) {
    return context.config().if_contains(field);
}

std::string Text(const json::value& value) {
    return JsonText(value);
}

std::optional<std::string> String(model::NodeCompileContext& context, std::string_view field,
                                  bool scalars) {
    const json::value* value = Field(context, field);
    if (value == nullptr || value->is_null()) return std::nullopt;
    if (value->is_string()) return std::string(value->get_string());
    if (scalars && (value->is_number() || value->is_bool())) return json::serialize(*value);
    context.Error(std::string(field), "expected a string");
    return std::nullopt;
}

std::optional<std::string> RequiredString(model::NodeCompileContext& context,
                                          std::string_view field) {
    if (Field(context, field) == nullptr) {
        context.Error(
            "", "a " + std::string(context.spec().type) + " node needs " + std::string(field));
        return std::nullopt;
    }
    return String(context, field);
}

std::optional<std::string> OneOf(model::NodeCompileContext& context, std::string_view field,
                                 std::initializer_list<std::string_view> values) {
    auto text = String(context, field);
    if (!text) return std::nullopt;
    for (auto v : values) {
        if (v == *text) return text;
    }
    std::string message =
        "unknown " + std::string(field) + " " + model::Quote(*text) + " (expected one of ";
    bool first = true;
    for (auto v : values) {
        if (!first) message += ", ";
        first = false;
        message += v;
    }
    context.Error(std::string(field), message + ")");
    return std::nullopt;
}

std::optional<int64_t> Integer(model::NodeCompileContext& context, std::string_view field,
                               int64_t min, int64_t max) {
    const json::value* value = Field(context, field);
    if (value == nullptr || value->is_null()) return std::nullopt;
    if (!value->is_int64() || value->get_int64() < min || value->get_int64() > max) {
        context.Error(std::string(field),
                      max == INT64_MAX ? "expected a whole number >= " + std::to_string(min)
                                       : "expected a whole number from " + std::to_string(min) +
                                             " to " + std::to_string(max));
        return std::nullopt;
    }
    return value->get_int64();
}

std::optional<bool> Bool(model::NodeCompileContext& context, std::string_view field) {
    const json::value* value = Field(context, field);
    if (value == nullptr || value->is_null()) return std::nullopt;
    if (!value->is_bool()) {
        context.Error(std::string(field), "expected true or false");
        return std::nullopt;
    }
    return value->get_bool();
}

std::optional<std::vector<std::string>> StringList(model::NodeCompileContext& context,
                                                   std::string_view field) {
    const json::value* value = Field(context, field);
    if (value == nullptr || value->is_null()) return std::nullopt;
    if (!value->is_array()) {
        context.Error(std::string(field), "expected a list of strings");
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < value->get_array().size(); ++i) {
        const auto& item = value->get_array()[i];
        if (!item.is_string()) {
            context.Error(std::string(field) + "[" + std::to_string(i) + "]", "expected a string");
            return std::nullopt;
        }
        out.emplace_back(item.get_string());
    }
    return out;
}

}  // namespace strowger::engine::nodes
