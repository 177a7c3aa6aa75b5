// Reading a node's config in its type's Compile: typed fields with errors at their path
// (docs/design/dag.md). Each helper reports through the context and returns nullopt (or the
// default) on error, so a type checks every field before it gives up.
#pragma once

#include <boost/json.hpp>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/node_type.hpp"

namespace strowger::engine::nodes {

namespace json = boost::json;

// Reports every config field not in `known` (with a did-you-mean).
void CheckFields(model::NodeCompileContext& context, std::initializer_list<std::string_view> known);

// A string field: nullopt if absent (or, after an error, not a string). Numbers and booleans
// are accepted and written as text when `scalars` is set.
std::optional<std::string> String(model::NodeCompileContext& context, std::string_view field,
                                  bool scalars = false);
// A string field that must be present.
std::optional<std::string> RequiredString(model::NodeCompileContext& context,
                                          std::string_view field);
// One of `values`.
std::optional<std::string> OneOf(model::NodeCompileContext& context, std::string_view field,
                                 std::initializer_list<std::string_view> values);
std::optional<int64_t> Integer(model::NodeCompileContext& context, std::string_view field,
                               int64_t min, int64_t max = INT64_MAX);
std::optional<bool> Bool(model::NodeCompileContext& context, std::string_view field);
// A list of strings.
std::optional<std::vector<std::string>> StringList(model::NodeCompileContext& context,
                                                   std::string_view field);
// The field's raw value, or null.
const json::value* Field(const model::NodeCompileContext& context, std::string_view field);
// A value as text: strings as they are, anything else as compact JSON.
std::string Text(const json::value& value);

// A NodeConfig holding a plain struct.
template <typename T>
struct Config final : model::NodeConfig {
    T value;
};

}  // namespace strowger::engine::nodes
