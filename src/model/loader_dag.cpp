// Reading the DAG form (CMDC's WorkflowSpec: nodes, edges, policies) and typed inputs. The
// shape of each node's `config` is its type's to check (model::Compile, through the node type
// registry); here it is read as JSON with every field's position kept.
#include <boost/json.hpp>

#include "model/inputs.hpp"
#include "model/internal/reader.hpp"

namespace strowger::model::internal {

namespace {

using fields::kBackoffKinds;
using fields::kInputTypes;
using fields::kOnErrors;

// YAML 1.2's core schema for a plain scalar.
boost::json::value PlainScalar(std::string_view text) {
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
        return nullptr;
    }
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    {
        std::string_view digits = text;
        if (digits.starts_with('+')) digits.remove_prefix(1);
        int64_t integer = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), integer);
        if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty()) {
            return integer;
        }
    }
    // CMDC's examples write 100_000: an integer with digit separators.
    if (text.find('_') != std::string_view::npos) {
        std::string compact;
        for (char c : text) {
            if (c != '_') compact += c;
        }
        int64_t integer = 0;
        auto [end, ec] = std::from_chars(compact.data(), compact.data() + compact.size(), integer);
        if (ec == std::errc() && end == compact.data() + compact.size() && !compact.empty() &&
            text.front() != '_' && text.back() != '_') {
            return integer;
        }
    }
    double number = 0;
    std::string_view digits = text;
    if (digits.starts_with('+')) digits.remove_prefix(1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
    if (ec == std::errc() && end == digits.data() + digits.size() && std::isfinite(number) &&
        digits.find_first_not_of("0123456789+-.eE") == std::string_view::npos) {
        return number;
    }
    return boost::json::string(text);
}

}  // namespace

boost::json::value Reader::ToJson(const YamlNode& node, const std::string& path) {
    Record(path, node);
    if (node.IsMap()) {
        boost::json::object object;
        for (size_t i = 0; i < node.size(); ++i) {
            const YamlNode key = node.Key(i);
            if (!key.IsScalar()) {
                Error(key, path, "field names must be strings");
                continue;
            }
            std::string name = Text(key, path);
            if (object.contains(name)) {
                Error(key, path + "." + name, "duplicate field " + Quote(name));
                continue;
            }
            object[name] = ToJson(node.Value(i), path + "." + name);
        }
        return object;
    }
    if (node.IsSequence()) {
        boost::json::array array;
        array.reserve(node.size());
        for (size_t i = 0; i < node.size(); ++i) {
            array.push_back(ToJson(node[i], path + "[" + std::to_string(i) + "]"));
        }
        return array;
    }
    if (node.IsScalar()) {
        if (node.Tag() == "!") return boost::json::string(Text(node, path));
        return PlainScalar(Text(node, path));
    }
    return nullptr;
}

void Reader::ReadPolicy(const YamlNode& node, const std::string& path, PolicySpec& policy) {
    if (!ExpectMap(node, path)) return;
    ForEachField(
        node, path, fields::kPolicy,
        [&](const std::string& key, const YamlNode& value, const std::string& p) {
            if (key == "retries") {
                policy.retries = Integer(value, p, 0, "a whole number >= 0");
            } else if (key == "timeout_ms") {
                policy.timeout_ms = Integer(value, p, 1, "a whole number >= 1", kMaxDurationMs);
            } else if (key == "initial_delay_ms") {
                policy.initial_delay_ms =
                    Integer(value, p, 0, "a whole number >= 0", kMaxDurationMs);
            } else if (key == "max_delay_ms") {
                policy.max_delay_ms = Integer(value, p, 0, "a whole number >= 0", kMaxDurationMs);
            } else if (key == "backoff") {
                if (auto v = OneOf(value, p, "backoff", kBackoffKinds)) {
                    policy.backoff = *v == "constant" ? BackoffKind::kConstant
                                     : *v == "linear" ? BackoffKind::kLinear
                                                      : BackoffKind::kExponential;
                }
            } else if (key == "on_error") {
                if (auto v = OneOf(value, p, "on_error", kOnErrors)) {
                    for (size_t i = 0; i < std::size(kOnErrors); ++i) {
                        if (kOnErrors[i] == *v) policy.on_error = static_cast<OnError>(i);
                    }
                }
            } else if (key == "fallback_output") {
                // A structured fallback is kept as its JSON text.
                if (value.IsScalar()) {
                    policy.fallback_output = Text(value, p);
                } else {
                    auto json = ToJson(value, p);
                    auto text = CanonicalJson(json);
                    policy.fallback_output = text ? *text : boost::json::serialize(json);
                }
            } else if (key == "signal") {
                if (auto v = String(value, p)) policy.signal = *v;
            }
        });
    if (policy.on_error == OnError::kFallback && !policy.fallback_output) {
        Error(node, path + ".on_error", "on_error: fallback needs a fallback_output");
    }
    if (policy.on_error == OnError::kEmitSignal && policy.signal.empty()) {
        Error(node, path + ".on_error", "on_error: emit_signal needs a signal");
    }
}

void Reader::ReadPolicies(const YamlNode& node, const std::string& path) {
    if (!ExpectMap(node, path)) return;
    ForEachField(node, path, fields::kPolicies,
                 [&](const std::string&, const YamlNode& value, const std::string& p) {
                     ReadPolicy(value, p, workflow_.default_policy);
                 });
}

void Reader::ReadNodes(const YamlNode& node, const std::string& path) {
    if (!node.IsSequence()) {
        Error(node, path, "expected a list of nodes, got " + KindName(node));
        return;
    }
    workflow_.nodes.reserve(node.size());
    for (size_t i = 0; i < node.size(); ++i) {
        std::string node_path = path + "[" + std::to_string(i) + "]";
        Record(node_path, node[i]);
        if (!ExpectMap(node[i], node_path)) continue;
        NodeSpec spec;
        bool have_id = false, have_type = false;
        ForEachField(node[i], node_path, fields::kNode,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "id") {
                             have_id = true;
                             if (auto v = String(value, p)) spec.id = *v;
                         } else if (key == "type") {
                             have_type = true;
                             if (auto v = String(value, p)) spec.type = *v;
                         } else if (key == "config") {
                             if (!value.IsMap() && !value.IsNull()) {
                                 Error(value, p, "expected a mapping, got " + KindName(value));
                                 return;
                             }
                             spec.config = ToJson(value, p);
                         } else if (key == "policy") {
                             ReadPolicy(value, p, spec.policy);
                         }
                         // label, metadata: for designers; not interpreted.
                     });
        if (!have_id || spec.id.empty()) Error(node[i], node_path + ".id", "a node needs an id");
        if (!have_type || spec.type.empty()) {
            Error(node[i], node_path + ".type", "a node needs a type");
        }
        if (spec.config.is_null()) spec.config = boost::json::object();
        workflow_.nodes.push_back(std::move(spec));
    }
}

void Reader::ReadEdges(const YamlNode& node, const std::string& path) {
    if (!node.IsSequence()) {
        Error(node, path, "expected a list of edges, got " + KindName(node));
        return;
    }
    workflow_.edges.reserve(node.size());
    for (size_t i = 0; i < node.size(); ++i) {
        std::string edge_path = path + "[" + std::to_string(i) + "]";
        Record(edge_path, node[i]);
        if (!ExpectMap(node[i], edge_path)) continue;
        EdgeSpec edge;
        ForEachField(node[i], edge_path, fields::kEdge,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "metadata") {
                             edge.metadata = ToJson(value, p);
                             return;
                         }
                         auto v = String(value, p);
                         if (!v) return;
                         if (key == "from") edge.from = *v;
                         if (key == "to") edge.to = *v;
                         if (key == "branch") edge.branch = *v;
                         if (key == "signal") edge.signal = *v;
                         if (key == "label") edge.label = *v;
                     });
        if (edge.from.empty()) Error(node[i], edge_path + ".from", "an edge needs a from node");
        if (edge.to.empty()) Error(node[i], edge_path + ".to", "an edge needs a to node");
        if (!edge.branch.empty() && !edge.signal.empty() && edge.branch != edge.signal) {
            Error(node[i], edge_path + ".signal",
                  "an edge carries on one branch or signal: " + Quote(edge.branch) + " and " +
                      Quote(edge.signal) + " differ");
        }
        workflow_.edges.push_back(std::move(edge));
    }
}

void Reader::ReadInputs(const YamlNode& node, const std::string& path) {
    // A list of inputs with `name`, or a mapping name -> input.
    auto read_one = [&](const YamlNode& value, const std::string& p, std::string name) {
        InputSpec input;
        input.name = std::move(name);
        if (!ExpectMap(value, p)) return;
        ForEachField(value, p, fields::kInput,
                     [&](const std::string& key, const YamlNode& v, const std::string& fp) {
                         if (key == "name") {
                             if (auto text = String(v, fp)) input.name = *text;
                         } else if (key == "type") {
                             if (auto text = OneOf(v, fp, "input type", kInputTypes)) {
                                 input.type = *text;
                             }
                         } else if (key == "required") {
                             if (auto b = Bool(v, fp)) input.required = *b;
                         } else if (key == "default") {
                             input.default_value = ToJson(v, fp);
                         } else if (key == "description") {
                             if (auto text = String(v, fp)) input.description = *text;
                         }
                     });
        if (input.name.empty()) {
            Error(value, p + ".name", "an input needs a name");
            return;
        }
        if (input.default_value && !input.default_value->is_null() &&
            !MatchesInputType(*input.default_value, input.type)) {
            Error(value, p + ".default",
                  "the default of input " + Quote(input.name) + " is not a " + input.type);
        }
        for (const auto& other : workflow_.inputs) {
            if (other.name == input.name) {
                Error(value, p + ".name", "duplicate input " + Quote(input.name));
                return;
            }
        }
        workflow_.inputs.push_back(std::move(input));
    };
    if (node.IsSequence()) {
        for (size_t i = 0; i < node.size(); ++i) {
            std::string p = path + "[" + std::to_string(i) + "]";
            Record(p, node[i]);
            read_one(node[i], p, "");
        }
    } else if (node.IsMap()) {
        for (size_t i = 0; i < node.size(); ++i) {
            std::string name = KeyText(node.Key(i), path);
            std::string p = path + "." + name;
            Record(p, node.Value(i));
            read_one(node.Value(i), p, name);
        }
    } else {
        Error(node, path, "expected a list or a mapping of inputs, got " + KindName(node));
    }
}

}  // namespace strowger::model::internal
