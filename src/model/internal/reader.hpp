// Private to the model module: the reader that walks a parsed workflow (or agent) file,
// collecting diagnostics with file:line:column and field path. loader.cpp reads the linear
// form and agents; loader_dag.cpp the DAG form and typed inputs.
#pragma once

#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/yaml.hpp"
#include "model/diagnostic.hpp"
#include "model/fields.hpp"
#include "model/workflow.hpp"

namespace strowger::model::internal {

namespace fs = std::filesystem;

using fields::kErrorModes;
using fields::kModes;
using fields::kSafetyClasses;

// Collects diagnostics while walking a yaml-cpp tree of one file.
class Reader {
  public:
    Reader(std::string file, Workflow& workflow, std::vector<Diagnostic>& diagnostics)
        : file_(std::move(file)), workflow_(workflow), diagnostics_(diagnostics) {}

    SourcePos Pos(const YamlNode& node) const {
        return SourcePos{file_, node.line(), node.column()};
    }

    void Error(const YamlNode& node, const std::string& path, std::string message) {
        diagnostics_.push_back({Diagnostic::Severity::kError, Pos(node), path, std::move(message)});
    }
    void Error(SourcePos pos, const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kError, std::move(pos), path, std::move(message)});
    }
    void Warn(const YamlNode& node, const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kWarning, Pos(node), path, std::move(message)});
    }

    void Record(const std::string& path, const YamlNode& node) {
        workflow_.positions.Record(path, Pos(node));
    }

    static std::string KindName(const YamlNode& node) {
        switch (node.kind()) {
            case YamlNode::Kind::kNull:
                return "null";
            case YamlNode::Kind::kSequence:
                return "a list";
            case YamlNode::Kind::kMap:
                return "a mapping";
            case YamlNode::Kind::kScalar:
                return node.Tag() == "!" ? "a string" : Quote(node.Scalar());
            default:
                return "nothing";
        }
    }

    // Iterates a mapping, reporting duplicate keys and keys outside `known` (with a
    // suggestion). Calls visit(key, value, path) for each known key.
    template <typename Visit>
    void ForEachField(const YamlNode& map, const std::string& path,
                      const std::vector<std::string_view>& known, Visit visit) {
        // Known fields seen, by their index in `known` (a set of strings per mapping cost two
        // allocations a field in a large workflow); unknown ones in a set, rarely used.
        std::vector<bool> seen_known(known.size(), false);
        std::set<std::string, std::less<>> seen_unknown;
        const auto pairs = WithMergedKeys(map, path);
        for (const auto& [key_node, value] : pairs) {
            std::string key(key_node.Scalar());
            // Extension fields (Docker Compose's `x-`, for anchors to merge from) and an
            // editor's `$schema` are the writer's, not Strowger's: ignored.
            if (key_node.IsScalar() && (key.starts_with("x-") || key == "$schema")) continue;
            std::string field_path = path.empty() ? key : path + "." + key;
            if (!key_node.IsScalar()) {
                Error(key_node, path, "field names must be strings");
                continue;
            }
            auto known_at = std::find(known.begin(), known.end(), key);
            bool duplicate = false;
            if (known_at != known.end()) {
                auto index = static_cast<size_t>(known_at - known.begin());
                duplicate = seen_known[index];
                seen_known[index] = true;
            } else {
                duplicate = !seen_unknown.insert(key).second;
            }
            if (duplicate) {
                Error(key_node, field_path, "duplicate field " + Quote(key));
                continue;
            }
            if (known_at == known.end() && (key.starts_with("/*") || key.starts_with("//"))) {
                // A JSON file with C-style comments: YAML reads the comment into the key.
                Error(key_node, path,
                      "comments are not allowed in JSON (" + Quote(key.substr(0, 2)) +
                          " starts one here); remove the comment, or write the file as YAML "
                          "and use # comments");
                continue;
            }
            if (known_at == known.end()) {
                std::string message = "unknown field " + Quote(key);
                std::string suggestion = ClosestMatch(key, known);
                if (!suggestion.empty()) message += " (did you mean \"" + suggestion + "\"?)";
                Error(key_node, field_path, std::move(message));
                continue;
            }
            Record(field_path, value);
            visit(key, value, field_path);
        }
    }

    // A mapping's pairs with YAML merge keys applied (`<<: *defaults`, `<<: [*a, *b]`): the
    // pairs written in the mapping, then those of each merged mapping whose key is not written
    // there nor in an earlier merged mapping (YAML 1.1's merge type).
    std::vector<std::pair<YamlNode, YamlNode>> WithMergedKeys(const YamlNode& map,
                                                              const std::string& path) {
        std::vector<std::pair<YamlNode, YamlNode>> pairs;
        std::vector<YamlNode> merged;
        pairs.reserve(map.size());
        for (size_t i = 0; i < map.size(); ++i) {
            const YamlNode key = map.Key(i);
            if (key.IsScalar() && key.Tag() != "!" && key.Scalar() == "<<") {
                merged.push_back(map.Value(i));
            } else {
                pairs.emplace_back(key, map.Value(i));
            }
        }
        if (merged.empty()) return pairs;
        std::set<std::string, std::less<>> have;
        for (const auto& [key, value] : pairs) {
            if (key.IsScalar()) have.emplace(key.Scalar());
        }
        auto merge = [&](const YamlNode& source) {
            if (!source.IsMap()) {
                Error(source, path.empty() ? "<<" : path + ".<<",
                      "a merge key (<<) takes a mapping or a list of mappings, got " +
                          KindName(source));
                return;
            }
            for (const auto& [key, value] : WithMergedKeys(source, path)) {
                if (!key.IsScalar() || !have.emplace(key.Scalar()).second) continue;
                pairs.emplace_back(key, value);
            }
        };
        for (const YamlNode& source : merged) {
            if (source.IsSequence()) {
                for (size_t i = 0; i < source.size(); ++i) merge(source[i]);
            } else {
                merge(source);
            }
        }
        return pairs;
    }

    // A scalar as text that is valid UTF-8 (invalid sequences become U+FFFD, with a warning),
    // so that a name is one string in the plan, the ledger and the store's columns.
    std::string Text(const YamlNode& node, const std::string& path) {
        std::string_view scalar = node.Scalar();
        if (IsValidUtf8(scalar)) return std::string(scalar);
        Warn(node, path, "not valid UTF-8: each invalid byte sequence is replaced by U+FFFD");
        return ToValidUtf8(scalar);
    }
    // A mapping's key as text ("" if it is not a scalar).
    std::string KeyText(const YamlNode& key, const std::string& parent_path) {
        return key.IsScalar() ? Text(key, parent_path) : std::string();
    }

    bool ExpectMap(const YamlNode& node, const std::string& path) {
        if (node.IsMap()) return true;
        Error(node, path, "expected a mapping, got " + KindName(node));
        return false;
    }

    std::optional<std::string> String(const YamlNode& node, const std::string& path) {
        if (node.IsNull()) return std::string();
        if (!node.IsScalar()) {
            Error(node, path, "expected a string, got " + KindName(node));
            return std::nullopt;
        }
        return Text(node, path);
    }

    // An integer >= min. Accepts plain decimal scalars (YAML or JSON numbers) only.
    std::optional<int64_t> Integer(const YamlNode& node, const std::string& path, int64_t min,
                                   std::string_view what, int64_t max = INT64_MAX) {
        if (!node.IsScalar() || node.Tag() == "!") {
            Error(node, path, "expected " + std::string(what) + ", got " + KindName(node));
            return std::nullopt;
        }
        const std::string_view text = node.Scalar();
        int64_t value = 0;
        const char* begin = text.data();
        if (!text.empty() && text[0] == '+') ++begin;
        auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
        if (ec == std::errc::result_out_of_range) {
            Error(node, path, "number " + Excerpt(text) + " is too large");
            return std::nullopt;
        }
        if (ec != std::errc() || end != text.data() + text.size()) {
            Error(node, path, "expected " + std::string(what) + ", got " + Quote(text));
            return std::nullopt;
        }
        if (value < min) {
            Error(node, path, "must be " + std::string(what) + ", got " + Excerpt(text));
            return std::nullopt;
        }
        if (value > max) {
            Error(node, path, "must be at most " + std::to_string(max) + ", got " + Excerpt(text));
            return std::nullopt;
        }
        return value;
    }

    std::optional<double> Number(const YamlNode& node, const std::string& path, double min,
                                 bool min_exclusive, std::string_view what) {
        if (!node.IsScalar() || node.Tag() == "!") {
            Error(node, path, "expected " + std::string(what) + ", got " + KindName(node));
            return std::nullopt;
        }
        const std::string_view text = node.Scalar();
        double value = 0;
        auto [end, ec] = std::from_chars(text.data() + (text.starts_with('+') ? 1 : 0),
                                         text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
            Error(node, path, "expected " + std::string(what) + ", got " + Quote(text));
            return std::nullopt;
        }
        if (value < min || (min_exclusive && value == min)) {
            Error(node, path, "must be " + std::string(what) + ", got " + Excerpt(text));
            return std::nullopt;
        }
        return value;
    }

    std::optional<bool> Bool(const YamlNode& node, const std::string& path) {
        if (node.IsScalar() && node.Tag() != "!") {
            const std::string_view text = node.Scalar();
            if (text == "true" || text == "True") return true;
            if (text == "false" || text == "False") return false;
        }
        Error(node, path, "expected true or false, got " + KindName(node));
        return std::nullopt;
    }

    std::optional<std::vector<std::string>> StringList(const YamlNode& node,
                                                       const std::string& path) {
        if (node.IsNull()) return std::vector<std::string>{};
        if (!node.IsSequence()) {
            Error(node, path, "expected a list of strings, got " + KindName(node));
            return std::nullopt;
        }
        std::vector<std::string> out;
        for (size_t i = 0; i < node.size(); ++i) {
            std::string item_path = path + "[" + std::to_string(i) + "]";
            if (!node[i].IsScalar()) {
                Error(node[i], item_path, "expected a string, got " + KindName(node[i]));
                continue;
            }
            Record(item_path, node[i]);
            out.push_back(Text(node[i], item_path));
        }
        return out;
    }

    template <size_t N>
    std::optional<std::string> OneOf(const YamlNode& node, const std::string& path,
                                     std::string_view what, const std::string_view (&values)[N]) {
        auto text = String(node, path);
        if (!text) return std::nullopt;
        for (auto v : values) {
            if (v == *text) return text;
        }
        std::string message =
            "unknown " + std::string(what) + " " + Quote(*text) + " (expected one of ";
        for (size_t i = 0; i < N; ++i) {
            if (i > 0) message += ", ";
            message += values[i];
        }
        message += ")";
        Error(node, path, std::move(message));
        return std::nullopt;
    }

    void ReadLimits(const YamlNode& node, const std::string& path, AgentLimits& limits) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path, fields::kAgentLimits,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "max_cost_usd") {
                             limits.max_cost_usd = Number(value, p, 0, true, "a positive number");
                         } else {
                             auto v = Integer(value, p, 1, "a positive integer");
                             if (key == "max_tokens") limits.max_tokens = v;
                             if (key == "max_tool_calls") limits.max_tool_calls = v;
                             if (key == "max_tokens_per_hour") limits.max_tokens_per_hour = v;
                         }
                     });
    }

    void ReadAgent(const YamlNode& node, const std::string& path, AgentSpec& agent) {
        agent.pos = Pos(node);
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path, fields::kAgent,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "name") {
                             if (auto v = String(value, p)) agent.name = *v;
                         } else if (key == "id") {
                             if (auto v = String(value, p)) agent.id = *v;
                         } else if (key == "description") {
                             if (auto v = String(value, p)) agent.description = *v;
                         } else if (key == "model") {
                             if (auto v = String(value, p)) agent.model = *v;
                         } else if (key == "system_prompt") {
                             if (auto v = String(value, p)) agent.system_prompt = *v;
                         } else if (key == "tools") {
                             if (auto v = StringList(value, p)) agent.tools = *v;
                         } else if (key == "max_turns") {
                             if (auto v = Integer(value, p, 1, "a positive integer"))
                                 agent.max_turns = *v;
                         } else if (key == "temperature") {
                             agent.temperature = Number(value, p, 0, false, "a number >= 0");
                         } else if (key == "max_output_tokens") {
                             agent.max_output_tokens = Integer(value, p, 1, "a positive integer");
                         } else if (key == "limits") {
                             ReadLimits(value, p, agent.limits);
                         } else if (key == "base_dir") {
                             if (auto v = String(value, p)) agent.base_dir = *v;
                         } else if (key == "require_approval") {
                             if (auto v = StringList(value, p)) agent.require_approval = *v;
                         } else if (key == "network") {
                             if (auto v = Bool(value, p)) agent.network = *v;
                         } else if (key == "http_hosts") {
                             if (auto v = StringList(value, p)) agent.http_hosts = *v;
                         } else if (key == "private_addresses") {
                             if (auto v = Bool(value, p)) agent.private_addresses = *v;
                         } else if (key == "sandbox") {
                             ReadSandbox(value, p, agent.sandbox);
                         }
                     });
    }

    void ReadSandbox(const YamlNode& node, const std::string& path, SandboxSettings& sandbox) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path, fields::kSandbox,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         auto v = Integer(value, p, 1, "a positive integer");
                         if (key == "cpu_seconds") sandbox.cpu_seconds = v;
                         if (key == "memory_mb") sandbox.memory_mb = v;
                         if (key == "max_processes") sandbox.max_processes = v;
                         if (key == "max_open_files") sandbox.max_open_files = v;
                         if (key == "max_file_size_mb") sandbox.max_file_size_mb = v;
                         if (key == "timeout_secs") sandbox.timeout_secs = v;
                         if (key == "max_output_kb") sandbox.max_output_kb = v;
                     });
    }

    void ReadRunLimits(const YamlNode& node, const std::string& path, RunLimits& limits) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path, fields::kRunLimits,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "max_cost_usd") {
                             limits.max_cost_usd = Number(value, p, 0, true, "a positive number");
                         } else {
                             auto v = Integer(value, p, 1, "a positive integer");
                             if (key == "max_tokens") limits.max_tokens = v;
                             if (key == "max_tool_calls") limits.max_tool_calls = v;
                         }
                     });
    }

    void ReadMcpServers(const YamlNode& node, const std::string& path,
                        const std::string& base_dir) {
        if (!ExpectMap(node, path)) return;
        std::set<std::string> seen;
        for (size_t i = 0; i < node.size(); ++i) {
            const YamlNode name_node = node.Key(i);
            std::string name = KeyText(name_node, path);
            std::string server_path = path + "." + name;
            if (!seen.insert(name).second) {
                Error(name_node, server_path, "duplicate MCP server " + Quote(name));
                continue;
            }
            if (name.empty() || name.find('/') != std::string::npos) {
                Error(name_node, server_path,
                      "an MCP server name must be non-empty and have no '/'");
                continue;
            }
            Record(server_path, name_node);
            McpServerSpec server;
            server.name = name;
            server.base_dir = base_dir;
            server.pos = Pos(name_node);
            const YamlNode spec = node.Value(i);
            if (!ExpectMap(spec, server_path)) continue;
            ForEachField(spec, server_path, fields::kMcpServer,
                         [&](const std::string& key, const YamlNode& value, const std::string& p) {
                             if (key == "command") {
                                 if (auto v = String(value, p)) server.command = *v;
                             } else if (key == "base_dir") {
                                 if (auto v = String(value, p)) server.base_dir = *v;
                             } else if (key == "args") {
                                 if (auto v = StringList(value, p)) server.args = *v;
                             } else if (key == "env") {
                                 if (!ExpectMap(value, p)) return;
                                 for (size_t e = 0; e < value.size(); ++e) {
                                     std::string variable = KeyText(value.Key(e), p);
                                     if (auto v = String(value.Value(e), p + "." + variable)) {
                                         server.env[variable] = *v;
                                     }
                                 }
                             } else if (key == "sandboxed") {
                                 if (auto v = Bool(value, p)) server.sandboxed = *v;
                             } else if (key == "network") {
                                 if (auto v = Bool(value, p)) server.network = *v;
                             } else if (key == "safety") {
                                 if (auto v = OneOf(value, p, "safety class", kSafetyClasses))
                                     server.safety = *v;
                             } else if (key == "tools") {
                                 if (!ExpectMap(value, p)) return;
                                 for (size_t t = 0; t < value.size(); ++t) {
                                     const YamlNode tool = value.Value(t);
                                     std::string tool_name = KeyText(value.Key(t), p);
                                     std::string tool_path = p + "." + tool_name;
                                     McpToolSettings settings;
                                     if (!ExpectMap(tool, tool_path)) continue;
                                     ForEachField(tool, tool_path, fields::kMcpTool,
                                                  [&](const std::string& k, const YamlNode& v2,
                                                      const std::string& p2) {
                                                      if (k == "safety") {
                                                          if (auto v = OneOf(v2, p2, "safety class",
                                                                             kSafetyClasses))
                                                              settings.safety = *v;
                                                      } else if (auto v = Bool(v2, p2)) {
                                                          settings.require_approval = *v;
                                                      }
                                                  });
                                     server.tools[tool_name] = settings;
                                 }
                             }
                         });
            if (server.command.empty()) {
                Error(spec, server_path + ".command", "an MCP server needs a command");
            }
            workflow_.mcp_servers.push_back(std::move(server));
        }
    }

    void ReadBackoff(const YamlNode& node, const std::string& path, BackoffSpec& backoff) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path, fields::kBackoff,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "initial_delay_ms") {
                             if (auto v = Integer(value, p, 0, "an integer >= 0", kMaxDurationMs))
                                 backoff.initial_delay_ms = *v;
                         } else if (key == "max_delay_ms") {
                             if (auto v = Integer(value, p, 0, "an integer >= 0", kMaxDurationMs))
                                 backoff.max_delay_ms = *v;
                         } else if (key == "multiplier") {
                             if (auto v = Number(value, p, 1, false, "a number >= 1"))
                                 backoff.multiplier = *v;
                         } else if (key == "jitter") {
                             if (auto v = Number(value, p, 0, false, "a number between 0 and 1")) {
                                 if (*v > 1) {
                                     Error(value, p,
                                           "must be a number between 0 and 1, got " +
                                               Excerpt(value.Scalar()));
                                 } else {
                                     backoff.jitter = *v;
                                 }
                             }
                         }
                     });
        if (backoff.max_delay_ms < backoff.initial_delay_ms) {
            Error(node, path + ".max_delay_ms", "must be >= initial_delay_ms");
        }
    }

    void ReadStep(const YamlNode& node, const std::string& path, StepSpec& step) {
        if (!ExpectMap(node, path)) return;
        std::optional<int64_t> timeout_secs;
        std::optional<int64_t> timeout_ms;
        ForEachField(node, path, fields::kStep,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "name") {
                             if (auto v = String(value, p)) step.name = *v;
                         } else if (key == "agent_name" || key == "agent") {
                             if (auto v = String(value, p)) step.agent_name = *v;
                         } else if (key == "agent_id") {
                             if (auto v = String(value, p)) step.agent_id = *v;
                         } else if (key == "prompt") {
                             if (auto v = String(value, p)) step.prompt = *v;
                         } else if (key == "mode") {
                             if (auto v = OneOf(value, p, "mode", kModes)) {
                                 if (*v == "sequential") step.mode = StepMode::kSequential;
                                 if (*v == "fan_out") step.mode = StepMode::kFanOut;
                                 if (*v == "collect") step.mode = StepMode::kCollect;
                                 if (*v == "conditional") step.mode = StepMode::kConditional;
                                 if (*v == "loop") step.mode = StepMode::kLoop;
                             }
                         } else if (key == "timeout_secs") {
                             timeout_secs =
                                 Integer(value, p, 1, "a positive integer", kMaxDurationMs / 1000);
                         } else if (key == "timeout_ms") {
                             timeout_ms =
                                 Integer(value, p, 1, "a positive integer", kMaxDurationMs);
                         } else if (key == "error_mode") {
                             if (auto v = OneOf(value, p, "error_mode", kErrorModes)) {
                                 if (*v == "fail") step.error_mode = ErrorMode::kFail;
                                 if (*v == "skip") step.error_mode = ErrorMode::kSkip;
                                 if (*v == "retry") step.error_mode = ErrorMode::kRetry;
                             }
                         } else if (key == "max_retries") {
                             if (auto v = Integer(value, p, 0, "an integer >= 0"))
                                 step.max_retries = *v;
                         } else if (key == "output_var") {
                             if (auto v = String(value, p)) step.output_var = *v;
                         } else if (key == "condition") {
                             if (auto v = String(value, p)) step.condition = *v;
                         } else if (key == "max_iterations") {
                             if (auto v = Integer(value, p, 1, "a positive integer"))
                                 step.max_iterations = *v;
                         } else if (key == "until") {
                             if (auto v = String(value, p)) step.until = *v;
                         } else if (key == "retry") {
                             ReadBackoff(value, p, step.retry);
                         } else if (key == "depends_on") {
                             step.has_depends_on = true;
                             if (value.IsScalar()) {
                                 step.depends_on = {Text(value, p)};
                             } else if (auto v = StringList(value, p)) {
                                 step.depends_on = *v;
                             }
                         }
                     });
        if (timeout_secs && timeout_ms) {
            Error(workflow_.PositionOf(path + ".timeout_ms"), path + ".timeout_ms",
                  "give timeout_secs or timeout_ms, not both");
        } else if (timeout_secs) {
            step.timeout_ms = *timeout_secs * 1000;
        } else if (timeout_ms) {
            step.timeout_ms = *timeout_ms;
        }
    }

    void ReadAgentsField(const YamlNode& node, const std::string& path,
                         const std::string& base_dir) {
        if (node.IsNull()) return;
        if (node.IsMap()) {
            // name -> agent
            std::set<std::string> seen;
            for (size_t i = 0; i < node.size(); ++i) {
                const YamlNode key = node.Key(i);
                const YamlNode value = node.Value(i);
                std::string name = KeyText(key, path);
                std::string agent_path = path + "." + name;
                if (!seen.insert(name).second) {
                    Error(key, agent_path, "duplicate agent " + Quote(name));
                    continue;
                }
                Record(agent_path, key);
                AgentSpec agent;
                agent.name = name;
                agent.base_dir = base_dir;
                ReadAgent(value, agent_path, agent);
                if (agent.name != name) {
                    Error(
                        value.Find("name"), agent_path + ".name",
                        "agent name " + Quote(agent.name) + " differs from its key " + Quote(name));
                    agent.name = name;
                }
                agent.pos = Pos(key);
                workflow_.agents.push_back(std::move(agent));
            }
        } else if (node.IsSequence()) {
            for (size_t i = 0; i < node.size(); ++i) {
                std::string agent_path = path + "[" + std::to_string(i) + "]";
                AgentSpec agent;
                agent.base_dir = base_dir;
                ReadAgent(node[i], agent_path, agent);
                if (agent.name.empty()) {
                    Error(node[i], agent_path + ".name", "an agent needs a name");
                    continue;
                }
                workflow_.positions.Record(path + "." + agent.name, Pos(node[i]));
                workflow_.agents.push_back(std::move(agent));
            }
        } else {
            Error(node, path, "expected a mapping of agents, got " + KindName(node));
        }
    }

    void ReadWorkflow(const YamlNode& root) {
        if (!root.IsMap()) {
            Error(root, "", "a workflow file must be a mapping, got " + KindName(root));
            return;
        }
        bool have_steps = false;
        bool have_nodes = false;
        ForEachField(root, "", fields::kWorkflow,
                     [&](const std::string& key, const YamlNode& value, const std::string& p) {
                         if (key == "name") {
                             if (auto v = String(value, p)) workflow_.name = *v;
                         } else if (key == "description") {
                             if (auto v = String(value, p)) workflow_.description = *v;
                         } else if (key == "agents") {
                             ReadAgentsField(value, "agents", workflow_.base_dir);
                         } else if (key == "steps") {
                             have_steps = true;
                             if (!value.IsSequence()) {
                                 Error(value, p,
                                       "expected a list of steps, got " + KindName(value));
                                 return;
                             }
                             workflow_.steps.reserve(value.size());
                             for (size_t i = 0; i < value.size(); ++i) {
                                 std::string step_path = "steps[" + std::to_string(i) + "]";
                                 Record(step_path, value[i]);
                                 StepSpec step;
                                 ReadStep(value[i], step_path, step);
                                 workflow_.steps.push_back(std::move(step));
                             }
                         } else if (key == "nodes") {
                             have_nodes = true;
                             ReadNodes(value, p);
                         } else if (key == "edges") {
                             ReadEdges(value, p);
                         } else if (key == "inputs") {
                             ReadInputs(value, p);
                         } else if (key == "output") {
                             if (auto v = String(value, p)) workflow_.output = *v;
                         } else if (key == "default_model") {
                             if (auto v = String(value, p)) workflow_.default_model = *v;
                         } else if (key == "base_dir") {
                             // What a pinned DAG snapshot records: the directory the workflow's
                             // relative paths (scripted model files, subworkflows) were resolved
                             // against.
                             if (auto v = String(value, p)) workflow_.base_dir = *v;
                         } else if (key == "policies") {
                             ReadPolicies(value, p);
                         } else if (key == "metadata") {
                             workflow_.metadata = ToJson(value, p);
                         } else if (key == "schema_version" || key == "workflow_id" ||
                                    key == "mode" || key == "version") {
                             // CMDC's envelope (LibreFang's `version` too): kept in the snapshot.
                             if (!value.IsScalar()) return;
                             std::string text = Text(value, p);
                             if (key == "schema_version") workflow_.schema_version = text;
                             if (key == "workflow_id") workflow_.workflow_id = text;
                             if (key == "mode") workflow_.mode = text;
                             if (key == "version") workflow_.version = text;
                         } else if (key == "mcp_servers") {
                             ReadMcpServers(value, p, workflow_.base_dir);
                         } else if (key == "limits") {
                             ReadRunLimits(value, p, workflow_.limits);
                         } else if (key == "workspace") {
                             if (auto v = String(value, p)) workflow_.workspace = *v;
                         } else if (key == "session") {
                             if (auto v = Bool(value, p)) workflow_.session = *v;
                         }
                         // id, created_at: accepted for LibreFang compatibility, unused.
                     });
        workflow_.dag = have_nodes;
        if (have_steps && have_nodes) {
            Error(root.Find("nodes"), "nodes",
                  "a workflow has either steps (the linear form) or nodes and edges (the DAG "
                  "form), not both");
        } else if (have_nodes) {
            if (workflow_.nodes.empty()) {
                Error(root.Find("nodes"), "nodes", "a workflow needs at least one node");
            }
        } else if (!have_steps && root.IsMap()) {
            Error(root, "steps", "a workflow needs a list of steps (or nodes and edges)");
        } else if (have_steps && workflow_.steps.empty()) {
            Error(root.Find("steps"), "steps", "a workflow needs at least one step");
        }
        if (!have_nodes && !workflow_.edges.empty()) {
            Error(root.Find("edges"), "edges", "edges belong to the DAG form: it needs nodes");
        }
        if (workflow_.name.empty()) {
            // CMDC's WorkflowSpec names itself by workflow_id.
            if (have_nodes && !workflow_.workflow_id.empty()) {
                workflow_.name = workflow_.workflow_id;
            } else {
                Error(root, "name", "a workflow needs a name");
            }
        }
    }

    // ---- The DAG form and typed inputs (loader_dag.cpp). ----
    void ReadNodes(const YamlNode& node, const std::string& path);
    void ReadEdges(const YamlNode& node, const std::string& path);
    void ReadInputs(const YamlNode& node, const std::string& path);
    void ReadPolicy(const YamlNode& node, const std::string& path, PolicySpec& policy);
    void ReadPolicies(const YamlNode& node, const std::string& path);
    // A YAML value as JSON: YAML 1.2's core schema types plain scalars (null, true/false,
    // integers, floats), a quoted scalar is a string; every field's position is recorded
    // under `path` ("nodes[2].config.rules[0].pattern").
    boost::json::value ToJson(const YamlNode& node, const std::string& path);

  private:
    std::string file_;
    Workflow& workflow_;
    std::vector<Diagnostic>& diagnostics_;
};

}  // namespace strowger::model::internal
