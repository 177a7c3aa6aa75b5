#include "model/inputs.hpp"

#include <boost/json.hpp>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "model/diagnostic.hpp"
#include "model/internal/compile_common.hpp"

namespace strowger::model {
namespace {

const InputSpec* Find(const std::vector<InputSpec>& inputs, std::string_view name) {
    for (const auto& input : inputs) {
        if (input.name == name) return &input;
    }
    return nullptr;
}

std::string Declared(const std::vector<InputSpec>& inputs) {
    std::string names;
    for (const auto& input : inputs) {
        if (!names.empty()) names += ", ";
        names += input.name;
    }
    return names;
}

std::string KindOf(const json::value& value) {
    switch (value.kind()) {
        case json::kind::string:
            return "a string";
        case json::kind::int64:
        case json::kind::uint64:
        case json::kind::double_:
            return "a number";
        case json::kind::bool_:
            return "a boolean";
        case json::kind::object:
            return "an object";
        case json::kind::array:
            return "an array";
        case json::kind::null:
            return "null";
    }
    return "a value";
}

// A value written as text (--set, or the text input of a one-input workflow), read by type.
std::optional<json::value> ReadTyped(std::string_view text, std::string_view type) {
    if (type == "string") return json::value(json::string(text));
    auto parsed = ParseJson(Trim(text));
    if (!parsed || !MatchesInputType(*parsed, type)) return std::nullopt;
    return std::move(*parsed);
}

}  // namespace

bool MatchesInputType(const json::value& value, std::string_view type) {
    if (type == "string") return value.is_string();
    if (type == "number") return value.is_number();
    if (type == "boolean") return value.is_bool();
    if (type == "object") return value.is_object();
    if (type == "array") return value.is_array();
    return false;
}

std::string AppliedInputs::Message() const {
    std::string out;
    for (const auto& problem : problems) {
        if (!out.empty()) out += "\n";
        out += problem.message;
    }
    return out;
}

AppliedInputs ApplyInputs(const std::vector<InputSpec>& inputs, const GivenInput& given) {
    AppliedInputs result;
    auto problem = [&](std::string input, std::string message) {
        result.problems.push_back({std::move(input), std::move(message)});
    };
    if (inputs.empty()) {
        if (!given.sets.empty()) {
            problem("", "--set " + Quote(given.sets.front()) +
                            ": the workflow declares no inputs (add `inputs:` to it)");
            return result;
        }
        result.input = given.text;
        return result;
    }
    std::vector<std::optional<json::value>> values(inputs.size());
    auto index_of = [&](std::string_view name) {
        return static_cast<size_t>(Find(inputs, name) - inputs.data());
    };
    auto undeclared = [&](std::string_view name, const std::string& how) {
        std::vector<std::string_view> names;
        for (const auto& input : inputs) names.push_back(input.name);
        std::string message = how + "no input named " + Quote(name);
        std::string suggestion = ClosestMatch(name, names);
        if (!suggestion.empty()) message += " (did you mean " + Quote(suggestion) + "?)";
        message += "; the workflow declares " + Declared(inputs);
        problem(std::string(name), std::move(message));
    };
    auto wrong_type = [&](const InputSpec& input, std::string got, const std::string& how) {
        problem(input.name, how + "input " + Quote(input.name) + " must be " +
                                (input.type == "object" || input.type == "array" ? "an " : "a ") +
                                input.type + ", got " + got);
    };
    // The given input: an object by name, else the only input's value.
    if (!given.text.empty()) {
        std::optional<json::value> value;
        if (given.json) {
            auto parsed = ParseJson(given.text);
            if (!parsed) {
                problem("", "the input is not JSON: " + parsed.error().message());
                return result;
            }
            value = std::move(*parsed);
        } else if (auto parsed = ParseJson(given.text); parsed && parsed->is_object()) {
            value = std::move(*parsed);
        }
        if (value && value->is_object()) {
            for (const auto& [key, v] : value->get_object()) {
                const InputSpec* input = Find(inputs, key);
                if (input == nullptr) {
                    undeclared(key, "");
                } else if (v.is_null()) {
                    continue;  // as if not given
                } else if (!MatchesInputType(v, input->type)) {
                    wrong_type(*input, KindOf(v), "");
                } else {
                    values[index_of(key)] = v;
                }
            }
        } else if (inputs.size() == 1) {
            const InputSpec& only = inputs.front();
            if (value) {
                if (MatchesInputType(*value, only.type)) {
                    values[0] = std::move(*value);
                } else {
                    wrong_type(only, KindOf(*value), "");
                }
            } else if (auto typed = ReadTyped(given.text, only.type)) {
                values[0] = std::move(*typed);
            } else {
                wrong_type(only, Quote(CapForMessage(given.text, 64)), "");
            }
        } else {
            problem("", "the workflow declares the inputs " + Declared(inputs) +
                            ": give them as a JSON object (--input-json '{\"" +
                            inputs.front().name + "\": ...}') or with --set name=value");
        }
    }
    for (const auto& set : given.sets) {
        auto eq = set.find('=');
        if (eq == std::string::npos || eq == 0) {
            problem("", "--set " + Quote(set) + ": expected name=value");
            continue;
        }
        std::string name = set.substr(0, eq);
        std::string text = set.substr(eq + 1);
        const InputSpec* input = Find(inputs, name);
        if (input == nullptr) {
            undeclared(name, "--set: ");
            continue;
        }
        if (auto typed = ReadTyped(text, input->type)) {
            values[index_of(name)] = std::move(*typed);
        } else {
            wrong_type(*input, Quote(CapForMessage(text, 64)), "--set: ");
        }
    }
    json::object object;
    for (size_t i = 0; i < inputs.size(); ++i) {
        const InputSpec& input = inputs[i];
        if (!values[i] && input.default_value && !input.default_value->is_null()) {
            values[i] = *input.default_value;
        }
        if (!values[i]) {
            if (input.required) {
                bool reported = false;
                for (const auto& p : result.problems) reported = reported || p.input == input.name;
                if (!reported) {
                    problem(input.name,
                            "input " + Quote(input.name) + " (" + input.type + ") is required" +
                                (input.description.empty() ? "" : ": " + input.description));
                }
            }
            continue;
        }
        object[input.name] = std::move(*values[i]);
    }
    // Keys sorted and numbers in shortest form ("12.5", not "1.25E1"), as the snapshot does.
    if (result.problems.empty()) internal::AppendSnapshot(result.input, object);
    return result;
}

}  // namespace strowger::model
