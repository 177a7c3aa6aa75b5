#include "model/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/strings.hpp"

namespace strowger::model {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kModes[] = {"sequential", "fan_out", "collect", "conditional", "loop"};
constexpr std::string_view kErrorModes[] = {"fail", "skip", "retry"};
constexpr std::string_view kSafetyClasses[] = {"read_only", "idempotent_write", "destructive"};

// Collects diagnostics while walking a yaml-cpp tree of one file.
class Reader {
  public:
    Reader(std::string file, Workflow& workflow, std::vector<Diagnostic>& diagnostics)
        : file_(std::move(file)), workflow_(workflow), diagnostics_(diagnostics) {}

    SourcePos Pos(const YAML::Node& node) const {
        const auto mark = node.Mark();
        if (mark.line < 0) return SourcePos{file_, 0, 0};
        return SourcePos{file_, mark.line + 1, mark.column + 1};
    }

    void Error(const YAML::Node& node, const std::string& path, std::string message) {
        diagnostics_.push_back({Diagnostic::Severity::kError, Pos(node), path, std::move(message)});
    }
    void Error(SourcePos pos, const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kError, std::move(pos), path, std::move(message)});
    }
    void Warn(const YAML::Node& node, const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kWarning, Pos(node), path, std::move(message)});
    }

    void Record(const std::string& path, const YAML::Node& node) {
        workflow_.positions.emplace(path, Pos(node));
    }

    static std::string KindName(const YAML::Node& node) {
        switch (node.Type()) {
            case YAML::NodeType::Null:
                return "null";
            case YAML::NodeType::Sequence:
                return "a list";
            case YAML::NodeType::Map:
                return "a mapping";
            case YAML::NodeType::Scalar:
                return node.Tag() == "!" ? "a string" : "\"" + node.Scalar() + "\"";
            default:
                return "nothing";
        }
    }

    // Iterates a mapping, reporting duplicate keys and keys outside `known` (with a
    // suggestion). Calls visit(key, value, path) for each known key.
    template <typename Visit>
    void ForEachField(const YAML::Node& map, const std::string& path,
                      const std::vector<std::string_view>& known, Visit visit) {
        std::set<std::string> seen;
        for (auto it = map.begin(); it != map.end(); ++it) {
            const YAML::Node key_node = it->first;  // a copy: `it->` yields a temporary proxy
            std::string key = key_node.IsScalar() ? key_node.Scalar() : std::string();
            std::string field_path = path.empty() ? key : path + "." + key;
            if (!key_node.IsScalar()) {
                Error(key_node, path, "field names must be strings");
                continue;
            }
            if (!seen.insert(key).second) {
                Error(key_node, field_path, "duplicate field \"" + key + "\"");
                continue;
            }
            if (std::find(known.begin(), known.end(), key) == known.end()) {
                std::string message = "unknown field \"" + key + "\"";
                std::string suggestion = ClosestMatch(key, known);
                if (!suggestion.empty()) message += " (did you mean \"" + suggestion + "\"?)";
                Error(key_node, field_path, std::move(message));
                continue;
            }
            Record(field_path, it->second);
            visit(key, it->second, field_path);
        }
    }

    bool ExpectMap(const YAML::Node& node, const std::string& path) {
        if (node.IsMap()) return true;
        Error(node, path, "expected a mapping, got " + KindName(node));
        return false;
    }

    std::optional<std::string> String(const YAML::Node& node, const std::string& path) {
        if (node.IsNull()) return std::string();
        if (!node.IsScalar()) {
            Error(node, path, "expected a string, got " + KindName(node));
            return std::nullopt;
        }
        return node.Scalar();
    }

    // An integer >= min. Accepts plain decimal scalars (YAML or JSON numbers) only.
    std::optional<int64_t> Integer(const YAML::Node& node, const std::string& path, int64_t min,
                                   std::string_view what) {
        if (!node.IsScalar() || node.Tag() == "!") {
            Error(node, path, "expected " + std::string(what) + ", got " + KindName(node));
            return std::nullopt;
        }
        const std::string& text = node.Scalar();
        int64_t value = 0;
        const char* begin = text.data();
        if (!text.empty() && text[0] == '+') ++begin;
        auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
        if (ec == std::errc::result_out_of_range) {
            Error(node, path, "number " + text + " is too large");
            return std::nullopt;
        }
        if (ec != std::errc() || end != text.data() + text.size()) {
            Error(node, path, "expected " + std::string(what) + ", got \"" + text + "\"");
            return std::nullopt;
        }
        if (value < min) {
            Error(node, path, "must be " + std::string(what) + ", got " + text);
            return std::nullopt;
        }
        return value;
    }

    std::optional<double> Number(const YAML::Node& node, const std::string& path, double min,
                                 bool min_exclusive, std::string_view what) {
        if (!node.IsScalar() || node.Tag() == "!") {
            Error(node, path, "expected " + std::string(what) + ", got " + KindName(node));
            return std::nullopt;
        }
        const std::string& text = node.Scalar();
        double value = 0;
        auto [end, ec] = std::from_chars(text.data() + (text.starts_with('+') ? 1 : 0),
                                         text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) {
            Error(node, path, "expected " + std::string(what) + ", got \"" + text + "\"");
            return std::nullopt;
        }
        if (value < min || (min_exclusive && value == min)) {
            Error(node, path, "must be " + std::string(what) + ", got " + text);
            return std::nullopt;
        }
        return value;
    }

    std::optional<bool> Bool(const YAML::Node& node, const std::string& path) {
        if (node.IsScalar() && node.Tag() != "!") {
            const std::string& text = node.Scalar();
            if (text == "true" || text == "True") return true;
            if (text == "false" || text == "False") return false;
        }
        Error(node, path, "expected true or false, got " + KindName(node));
        return std::nullopt;
    }

    std::optional<std::vector<std::string>> StringList(const YAML::Node& node,
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
            out.push_back(node[i].Scalar());
        }
        return out;
    }

    template <size_t N>
    std::optional<std::string> OneOf(const YAML::Node& node, const std::string& path,
                                     std::string_view what, const std::string_view (&values)[N]) {
        auto text = String(node, path);
        if (!text) return std::nullopt;
        for (auto v : values) {
            if (v == *text) return text;
        }
        std::string message =
            "unknown " + std::string(what) + " \"" + *text + "\" (expected one of ";
        for (size_t i = 0; i < N; ++i) {
            if (i > 0) message += ", ";
            message += values[i];
        }
        message += ")";
        Error(node, path, std::move(message));
        return std::nullopt;
    }

    void ReadLimits(const YAML::Node& node, const std::string& path, AgentLimits& limits) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path,
                     {"max_tokens", "max_cost_usd", "max_tool_calls", "max_tokens_per_hour"},
                     [&](const std::string& key, const YAML::Node& value, const std::string& p) {
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

    void ReadAgent(const YAML::Node& node, const std::string& path, AgentSpec& agent) {
        agent.pos = Pos(node);
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path,
                     {"name", "id", "description", "model", "system_prompt", "tools", "max_turns",
                      "temperature", "max_output_tokens", "limits", "base_dir", "require_approval",
                      "network", "http_hosts", "private_addresses", "sandbox"},
                     [&](const std::string& key, const YAML::Node& value, const std::string& p) {
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

    void ReadSandbox(const YAML::Node& node, const std::string& path, SandboxSettings& sandbox) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path,
                     {"cpu_seconds", "memory_mb", "max_processes", "max_open_files",
                      "max_file_size_mb", "timeout_secs", "max_output_kb"},
                     [&](const std::string& key, const YAML::Node& value, const std::string& p) {
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

    void ReadRunLimits(const YAML::Node& node, const std::string& path, RunLimits& limits) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path, {"max_tokens", "max_cost_usd", "max_tool_calls"},
                     [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                         if (key == "max_cost_usd") {
                             limits.max_cost_usd = Number(value, p, 0, true, "a positive number");
                         } else {
                             auto v = Integer(value, p, 1, "a positive integer");
                             if (key == "max_tokens") limits.max_tokens = v;
                             if (key == "max_tool_calls") limits.max_tool_calls = v;
                         }
                     });
    }

    void ReadMcpServers(const YAML::Node& node, const std::string& path,
                        const std::string& base_dir) {
        if (!ExpectMap(node, path)) return;
        std::set<std::string> seen;
        for (auto it = node.begin(); it != node.end(); ++it) {
            std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
            std::string server_path = path + "." + name;
            if (!seen.insert(name).second) {
                Error(it->first, server_path, "duplicate MCP server \"" + name + "\"");
                continue;
            }
            if (name.empty() || name.find('/') != std::string::npos) {
                Error(it->first, server_path,
                      "an MCP server name must be non-empty and have no '/'");
                continue;
            }
            Record(server_path, it->first);
            McpServerSpec server;
            server.name = name;
            server.base_dir = base_dir;
            server.pos = Pos(it->first);
            const YAML::Node spec = it->second;
            if (!ExpectMap(spec, server_path)) continue;
            ForEachField(
                spec, server_path,
                {"command", "args", "env", "sandboxed", "network", "safety", "tools", "base_dir"},
                [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                    if (key == "command") {
                        if (auto v = String(value, p)) server.command = *v;
                    } else if (key == "base_dir") {
                        if (auto v = String(value, p)) server.base_dir = *v;
                    } else if (key == "args") {
                        if (auto v = StringList(value, p)) server.args = *v;
                    } else if (key == "env") {
                        if (!ExpectMap(value, p)) return;
                        for (auto e = value.begin(); e != value.end(); ++e) {
                            if (auto v = String(e->second, p + "." + e->first.Scalar())) {
                                server.env[e->first.Scalar()] = *v;
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
                        for (auto t = value.begin(); t != value.end(); ++t) {
                            std::string tool_path = p + "." + t->first.Scalar();
                            McpToolSettings settings;
                            if (!ExpectMap(t->second, tool_path)) continue;
                            ForEachField(
                                t->second, tool_path, {"safety", "require_approval"},
                                [&](const std::string& k, const YAML::Node& v2,
                                    const std::string& p2) {
                                    if (k == "safety") {
                                        if (auto v = OneOf(v2, p2, "safety class", kSafetyClasses))
                                            settings.safety = *v;
                                    } else if (auto v = Bool(v2, p2)) {
                                        settings.require_approval = *v;
                                    }
                                });
                            server.tools[t->first.Scalar()] = settings;
                        }
                    }
                });
            if (server.command.empty()) {
                Error(spec, server_path + ".command", "an MCP server needs a command");
            }
            workflow_.mcp_servers.push_back(std::move(server));
        }
    }

    void ReadBackoff(const YAML::Node& node, const std::string& path, BackoffSpec& backoff) {
        if (!ExpectMap(node, path)) return;
        ForEachField(node, path, {"initial_delay_ms", "max_delay_ms", "multiplier", "jitter"},
                     [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                         if (key == "initial_delay_ms") {
                             if (auto v = Integer(value, p, 0, "an integer >= 0"))
                                 backoff.initial_delay_ms = *v;
                         } else if (key == "max_delay_ms") {
                             if (auto v = Integer(value, p, 0, "an integer >= 0"))
                                 backoff.max_delay_ms = *v;
                         } else if (key == "multiplier") {
                             if (auto v = Number(value, p, 1, false, "a number >= 1"))
                                 backoff.multiplier = *v;
                         } else if (key == "jitter") {
                             if (auto v = Number(value, p, 0, false, "a number between 0 and 1")) {
                                 if (*v > 1) {
                                     Error(
                                         value, p,
                                         "must be a number between 0 and 1, got " + value.Scalar());
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

    void ReadStep(const YAML::Node& node, const std::string& path, StepSpec& step) {
        step.pos = Pos(node);
        if (!ExpectMap(node, path)) return;
        std::optional<int64_t> timeout_secs;
        std::optional<int64_t> timeout_ms;
        ForEachField(node, path,
                     {"name", "agent_name", "agent_id", "agent", "prompt", "mode", "timeout_secs",
                      "timeout_ms", "error_mode", "max_retries", "output_var", "condition",
                      "max_iterations", "until", "retry", "depends_on"},
                     [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                         if (key == "name") {
                             if (auto v = String(value, p)) step.name = *v;
                         } else if (key == "agent_name" || key == "agent") {
                             step.agent_pos = Pos(value);
                             if (auto v = String(value, p)) step.agent_name = *v;
                         } else if (key == "agent_id") {
                             step.agent_pos = Pos(value);
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
                             timeout_secs = Integer(value, p, 1, "a positive integer");
                         } else if (key == "timeout_ms") {
                             timeout_ms = Integer(value, p, 1, "a positive integer");
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
                                 step.depends_on = {value.Scalar()};
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

    void ReadAgentsField(const YAML::Node& node, const std::string& path,
                         const std::string& base_dir) {
        if (node.IsNull()) return;
        if (node.IsMap()) {
            // name -> agent
            std::set<std::string> seen;
            for (auto it = node.begin(); it != node.end(); ++it) {
                std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
                std::string agent_path = path + "." + name;
                if (!seen.insert(name).second) {
                    Error(it->first, agent_path, "duplicate agent \"" + name + "\"");
                    continue;
                }
                Record(agent_path, it->first);
                AgentSpec agent;
                agent.name = name;
                agent.base_dir = base_dir;
                ReadAgent(it->second, agent_path, agent);
                if (agent.name != name) {
                    Error(
                        it->second["name"], agent_path + ".name",
                        "agent name \"" + agent.name + "\" differs from its key \"" + name + "\"");
                    agent.name = name;
                }
                agent.pos = Pos(it->first);
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
                workflow_.positions.emplace(path + "." + agent.name, Pos(node[i]));
                workflow_.agents.push_back(std::move(agent));
            }
        } else {
            Error(node, path, "expected a mapping of agents, got " + KindName(node));
        }
    }

    void ReadWorkflow(const YAML::Node& root) {
        if (!root.IsMap()) {
            Error(root, "", "a workflow file must be a mapping, got " + KindName(root));
            return;
        }
        bool have_steps = false;
        ForEachField(
            root, "",
            {"name", "description", "agents", "steps", "nodes", "edges", "id", "version",
             "created_at", "mcp_servers", "limits", "workspace"},
            [&](const std::string& key, const YAML::Node& value, const std::string& p) {
                if (key == "name") {
                    if (auto v = String(value, p)) workflow_.name = *v;
                } else if (key == "description") {
                    if (auto v = String(value, p)) workflow_.description = *v;
                } else if (key == "agents") {
                    ReadAgentsField(value, "agents", workflow_.base_dir);
                } else if (key == "steps") {
                    have_steps = true;
                    if (!value.IsSequence()) {
                        Error(value, p, "expected a list of steps, got " + KindName(value));
                        return;
                    }
                    for (size_t i = 0; i < value.size(); ++i) {
                        std::string step_path = "steps[" + std::to_string(i) + "]";
                        Record(step_path, value[i]);
                        StepSpec step;
                        ReadStep(value[i], step_path, step);
                        workflow_.steps.push_back(std::move(step));
                    }
                } else if (key == "mcp_servers") {
                    ReadMcpServers(value, p, workflow_.base_dir);
                } else if (key == "limits") {
                    ReadRunLimits(value, p, workflow_.limits);
                } else if (key == "workspace") {
                    if (auto v = String(value, p)) workflow_.workspace = *v;
                } else if (key == "nodes" || key == "edges") {
                    // TODO(#5): the DAG form compiles into the same Plan (plan.hpp).
                    Error(value, p,
                          "the DAG form (nodes + edges) is not supported by this version yet; "
                          "write the workflow as steps (depends_on makes them a DAG)");
                }
                // id, version, created_at: accepted for LibreFang compatibility, unused.
            });
        if (!have_steps && root.IsMap()) {
            Error(root, "steps", "a workflow needs a list of steps");
        } else if (have_steps && workflow_.steps.empty()) {
            Error(root["steps"], "steps", "a workflow needs at least one step");
        }
        if (workflow_.name.empty()) {
            Error(root, "name", "a workflow needs a name");
        }
    }

  private:
    std::string file_;
    Workflow& workflow_;
    std::vector<Diagnostic>& diagnostics_;
};

std::optional<YAML::Node> ParseYaml(std::string_view text, const std::string& file,
                                    std::vector<Diagnostic>& diagnostics) {
    try {
        return YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        diagnostics.push_back({Diagnostic::Severity::kError,
                               SourcePos{file, e.mark.line + 1, e.mark.column + 1}, "",
                               "syntax error: " + e.msg});
        return std::nullopt;
    }
}

std::optional<std::string> ReadFile(const std::string& path, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = std::string("cannot read file: ") + std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

void LoadAgentDir(const std::string& dir, Workflow& workflow,
                  std::vector<Diagnostic>& diagnostics) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        auto ext = entry.path().extension().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
        std::string error;
        auto text = ReadFile(file.string(), error);
        if (!text) {
            diagnostics.push_back(
                {Diagnostic::Severity::kError, SourcePos{file.string()}, "", error});
            continue;
        }
        auto root = ParseYaml(*text, file.string(), diagnostics);
        if (!root) continue;
        Reader reader(file.string(), workflow, diagnostics);
        AgentSpec agent;
        agent.name = file.stem().string();
        agent.base_dir = dir;
        std::string path = "agents." + agent.name;
        reader.ReadAgent(*root, path, agent);
        agent.pos = reader.Pos(*root);
        if (const auto* existing = workflow.FindAgentByName(agent.name)) {
            // Inline definitions win over agent files of the same name.
            (void)existing;
            continue;
        }
        workflow.positions.emplace("agents." + agent.name, agent.pos);
        workflow.agents.push_back(std::move(agent));
    }
}

}  // namespace

LoadResult LoadWorkflowText(std::string_view text, const std::string& file_name,
                            const std::string& base_dir, const LoadOptions& options) {
    LoadResult result;
    result.workflow.source_file = file_name;
    result.workflow.base_dir = base_dir;
    auto root = ParseYaml(text, file_name, result.diagnostics);
    if (!root) return result;
    Reader reader(file_name, result.workflow, result.diagnostics);
    reader.ReadWorkflow(*root);
    if (options.sibling_agents && !base_dir.empty()) {
        LoadAgentDir((fs::path(base_dir) / "agents").string(), result.workflow, result.diagnostics);
    }
    for (const auto& dir : options.agent_dirs) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            result.diagnostics.push_back({Diagnostic::Severity::kError, SourcePos{dir}, "",
                                          "agents directory does not exist"});
            continue;
        }
        LoadAgentDir(dir, result.workflow, result.diagnostics);
    }
    return result;
}

LoadResult LoadWorkflowFile(const std::string& path, const LoadOptions& options) {
    std::string error;
    auto text = ReadFile(path, error);
    if (!text) {
        LoadResult result;
        result.workflow.source_file = path;
        result.diagnostics.push_back({Diagnostic::Severity::kError, SourcePos{path}, "", error});
        return result;
    }
    std::string base_dir = fs::path(path).parent_path().string();
    if (base_dir.empty()) base_dir = ".";
    return LoadWorkflowText(*text, path, base_dir, options);
}

}  // namespace strowger::model
