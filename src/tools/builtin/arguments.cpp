#include "tools/builtin/arguments.hpp"

#include <boost/json.hpp>

namespace strowger::tools::builtin {

Result<Arguments> Arguments::Parse(std::string_view tool, std::string_view text,
                                   std::initializer_list<std::string_view> allowed) {
    std::string name(tool);
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        return Arguments(std::move(name), json::object());
    }
    auto parsed = ParseJson(text);
    if (!parsed) {
        return InvalidArgumentError(name + ": arguments are not valid JSON (" +
                                    parsed.error().message() + ")");
    }
    if (!parsed->is_object()) {
        return InvalidArgumentError(name + ": arguments must be a JSON object");
    }
    for (const auto& entry : parsed->get_object()) {
        bool known = false;
        for (auto field : allowed) known = known || entry.key() == field;
        if (!known) {
            std::string expected;
            for (auto field : allowed) {
                expected += (expected.empty() ? "\"" : ", \"") + std::string(field) + "\"";
            }
            return InvalidArgumentError(name + ": unknown field \"" + std::string(entry.key()) +
                                        "\" (expected " + expected + ")");
        }
    }
    return Arguments(std::move(name), std::move(parsed->get_object()));
}

std::unexpected<Error> Arguments::Invalid(std::string_view field, std::string_view problem) const {
    return InvalidArgumentError(tool_ + ": \"" + std::string(field) + "\" " + std::string(problem));
}

Result<std::string> Arguments::RequiredString(std::string_view field) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->value().is_null()) return Invalid(field, "is required");
    if (!it->value().is_string()) return Invalid(field, "must be a string");
    return std::string(it->value().get_string());
}

Result<std::optional<std::string>> Arguments::OptionalString(std::string_view field) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->value().is_null()) return std::optional<std::string>();
    if (!it->value().is_string()) return Invalid(field, "must be a string");
    return std::optional<std::string>(std::string(it->value().get_string()));
}

Result<std::optional<int64_t>> Arguments::OptionalInt(std::string_view field, int64_t min,
                                                      int64_t max) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->value().is_null()) return std::optional<int64_t>();
    const json::value& value = it->value();
    std::optional<int64_t> number;
    if (value.is_int64()) {
        number = value.get_int64();
    } else if (value.is_uint64() && value.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
        number = static_cast<int64_t>(value.get_uint64());
    } else if (value.is_double() && value.get_double() == static_cast<double>(static_cast<int64_t>(
                                                              value.get_double()))) {
        number = static_cast<int64_t>(value.get_double());
    }
    if (!number) return Invalid(field, "must be an integer");
    if (*number < min || *number > max) {
        return Invalid(field,
                       "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return number;
}

Result<std::optional<json::object>> Arguments::OptionalStringMap(std::string_view field) const {
    auto it = object_.find(field);
    if (it == object_.end() || it->value().is_null()) return std::optional<json::object>();
    if (!it->value().is_object()) return Invalid(field, "must be an object of strings");
    for (const auto& entry : it->value().get_object()) {
        if (!entry.value().is_string()) {
            return Invalid(field, "must be an object of strings (\"" + std::string(entry.key()) +
                                      "\" is not a string)");
        }
    }
    return std::optional<json::object>(it->value().get_object());
}

}  // namespace strowger::tools::builtin
