#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <set>

#include "core/json.hpp"
#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "model/plan.hpp"

namespace strowger::model {
namespace {

std::string StepPath(size_t i) {
    return "steps[" + std::to_string(i) + "]";
}

// `dir` made absolute (against the current directory), normalised; "." if empty.
std::string AbsoluteDir(const std::string& dir) {
    std::error_code ec;
    auto absolute = std::filesystem::absolute(dir.empty() ? "." : dir, ec);
    return ec ? dir : absolute.lexically_normal().string();
}

// The workflow's `workspace`, absolute (a relative one is relative to the workflow's file);
// "" if not set.
std::string AbsoluteWorkspace(const Workflow& workflow) {
    if (workflow.workspace.empty()) return "";
    std::filesystem::path workspace(workflow.workspace);
    if (workspace.is_relative()) workspace = std::filesystem::path(workflow.base_dir) / workspace;
    return AbsoluteDir(workspace.string());
}

class Compiler {
  public:
    Compiler(const Workflow& workflow, const CompileOptions& options,
             std::vector<Diagnostic>& diagnostics)
        : workflow_(workflow), options_(options), diagnostics_(diagnostics) {}

    std::shared_ptr<Plan> Run() {
        auto plan = std::make_shared<Plan>();
        plan->workflow_name = workflow_.name;
        plan->description = workflow_.description;
        plan->mcp_servers = workflow_.mcp_servers;
        for (auto& server : plan->mcp_servers) server.base_dir = AbsoluteDir(server.base_dir);
        plan->limits = workflow_.limits;
        plan->workspace = AbsoluteWorkspace(workflow_);
        CheckAgents(*plan);
        BuildNodes(*plan);
        if (HasErrors(diagnostics_)) return nullptr;
        WireLinear(*plan);
        WireDependsOn(*plan);
        if (HasErrors(diagnostics_)) return nullptr;
        if (!CheckAcyclic(*plan)) return nullptr;
        ResolveVariables(*plan);
        // Variable reads may have added edges: recompute the order (and dependents).
        if (HasErrors(diagnostics_) || !CheckAcyclic(*plan)) return nullptr;
        Finish(*plan);
        if (HasErrors(diagnostics_)) return nullptr;
        return plan;
    }

  private:
    void Error(const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kError, workflow_.PositionOf(path), path, std::move(message)});
    }
    void Error(SourcePos pos, const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kError, std::move(pos), path, std::move(message)});
    }
    void Warn(const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kWarning, workflow_.PositionOf(path), path, std::move(message)});
    }

    void CheckTools(const AgentSpec& agent, const std::string& path) {
        std::vector<std::string_view> names(options_.known_tools.begin(),
                                            options_.known_tools.end());
        for (const auto& server : workflow_.mcp_servers) names.push_back(server.name);
        for (size_t i = 0; i < agent.tools.size(); ++i) {
            const std::string& tool = agent.tools[i];
            std::string tool_path = path + ".tools[" + std::to_string(i) + "]";
            auto slash = tool.find('/');
            if (slash != std::string::npos) {
                std::string server = tool.substr(0, slash);
                if (!workflow_.FindMcpServer(server)) {
                    std::vector<std::string_view> servers;
                    for (const auto& s : workflow_.mcp_servers) servers.push_back(s.name);
                    std::string message =
                        "unknown MCP server \"" + server + "\" in tool \"" + tool + "\"";
                    std::string suggestion = ClosestMatch(server, servers);
                    if (!suggestion.empty()) message += " (did you mean \"" + suggestion + "\"?)";
                    Error(tool_path, std::move(message));
                } else if (slash + 1 >= tool.size()) {
                    Error(tool_path, "\"" + tool + "\" names no tool of the server");
                }
                continue;
            }
            if (options_.known_tools.empty()) continue;
            if (std::find(options_.known_tools.begin(), options_.known_tools.end(), tool) ==
                options_.known_tools.end()) {
                std::string message = "unknown tool \"" + tool + "\" (expected one of " +
                                      Join(options_.known_tools, ", ") +
                                      ", or <mcp_server>/<tool>)";
                std::string suggestion = ClosestMatch(tool, names);
                if (!suggestion.empty())
                    message =
                        "unknown tool \"" + tool + "\" (did you mean \"" + suggestion + "\"?)";
                Error(tool_path, std::move(message));
            }
        }
        for (size_t i = 0; i < agent.require_approval.size(); ++i) {
            const std::string& tool = agent.require_approval[i];
            if (std::find(agent.tools.begin(), agent.tools.end(), tool) == agent.tools.end()) {
                Error(path + ".require_approval[" + std::to_string(i) + "]",
                      "\"" + tool + "\" is not one of the agent's tools");
            }
        }
        for (const auto& host : agent.http_hosts) {
            if (host.empty() || host.find_first_of(" /:") != std::string::npos) {
                Error(path + ".http_hosts",
                      "\"" + host + "\" is not a host name (e.g. api.github.com or *.example.org)");
            }
        }
    }

    void CheckAgents(Plan& plan) {
        for (const auto& agent : workflow_.agents) {
            std::string path = "agents." + agent.name;
            CheckTools(agent, path);
            if (agent.model.empty()) {
                Error(path, "agent \"" + agent.name + "\" needs a model (provider:model)");
            } else {
                auto colon = agent.model.find(':');
                std::string provider = agent.model.substr(0, colon);
                if (colon == std::string::npos || colon + 1 >= agent.model.size()) {
                    Error(path + ".model", "model \"" + agent.model +
                                               "\" must be written provider:model, e.g. "
                                               "openai:gpt-4o-mini");
                } else if (!options_.known_providers.empty() &&
                           std::find(options_.known_providers.begin(),
                                     options_.known_providers.end(),
                                     provider) == options_.known_providers.end()) {
                    std::vector<std::string_view> names(options_.known_providers.begin(),
                                                        options_.known_providers.end());
                    std::string message = "unknown provider \"" + provider +
                                          "\" (expected one of " +
                                          Join(options_.known_providers, ", ") + ")";
                    Error(path + ".model", std::move(message));
                }
            }
            plan.agents.push_back(agent);
        }
    }

    void BuildNodes(Plan& plan) {
        std::map<std::string, size_t> first_index;
        for (size_t i = 0; i < workflow_.steps.size(); ++i) {
            const StepSpec& step = workflow_.steps[i];
            std::string path = StepPath(i);
            PlanNode node;
            node.index = static_cast<int>(i);
            node.id = step.name;
            node.mode = step.mode;
            node.kind = step.mode == StepMode::kCollect ? NodeKind::kCollect : NodeKind::kAgent;
            node.prompt = Template::Parse(step.prompt);
            node.conditional = step.mode == StepMode::kConditional;
            node.condition = step.condition;
            node.loop = step.mode == StepMode::kLoop;
            node.max_iterations = node.loop ? step.max_iterations : 1;
            node.until = step.until;
            node.error_mode = step.error_mode;
            node.max_attempts = step.error_mode == ErrorMode::kRetry ? step.max_retries + 1 : 1;
            node.backoff = step.retry;
            node.timeout_ms = step.timeout_ms;
            node.output_var = step.output_var;

            if (step.name.empty()) {
                Error(path + ".name", "a step name must not be empty");
            }
            auto [it, inserted] = first_index.emplace(step.name, i);
            if (!inserted) {
                SourcePos first = workflow_.PositionOf(StepPath(it->second));
                Error(path + ".name", "duplicate step name \"" + step.name + "\" (first used by " +
                                          StepPath(it->second) + " at line " +
                                          std::to_string(first.line) + ")");
            }
            if (node.kind == NodeKind::kAgent) {
                if (!step.agent_name.empty() && !step.agent_id.empty()) {
                    Error(path + ".agent_id", "give agent_name or agent_id, not both");
                }
                const AgentSpec* agent = workflow_.ResolveAgent(step);
                if (agent == nullptr) {
                    std::string field = !step.agent_name.empty() ? ".agent_name"
                                        : !step.agent_id.empty() ? ".agent_id"
                                                                 : "";
                    std::string message = "Agent not found for step '" + step.name + "'";
                    std::string wanted = !step.agent_name.empty() ? step.agent_name : step.agent_id;
                    if (wanted.empty()) {
                        message += " (give agent_name or agent_id)";
                    } else {
                        std::vector<std::string_view> names;
                        for (const auto& a : workflow_.agents) names.push_back(a.name);
                        std::string suggestion = ClosestMatch(wanted, names);
                        message += ": no agent named \"" + wanted + "\"";
                        if (!suggestion.empty())
                            message += " (did you mean \"" + suggestion + "\"?)";
                    }
                    Error(path + field, std::move(message));
                } else {
                    node.agent = static_cast<int>(agent - workflow_.agents.data());
                }
            }
            if (step.mode == StepMode::kFanOut) {
                node.failure_fails_run = true;
                if (step.error_mode == ErrorMode::kSkip) {
                    Warn(path + ".error_mode",
                         "error_mode skip does not apply to fan_out steps: a failing fan-out "
                         "step fails the run");
                    node.error_mode = ErrorMode::kFail;
                }
            }
            if (step.mode != StepMode::kConditional && !step.condition.empty()) {
                Warn(path + ".condition", "condition is only used by mode conditional");
            }
            if (step.mode != StepMode::kLoop && !step.until.empty()) {
                Warn(path + ".until", "until is only used by mode loop");
            }
            plan.nodes.push_back(std::move(node));
        }
    }

    // Linear semantics for steps without depends_on (see plan.hpp).
    void WireLinear(Plan& plan) {
        std::vector<int> previous_stage;  // all nodes of the previous stage
        int input_producer = -1;          // whose output is the current {{input}}
        bool previous_was_fan_out = false;
        size_t i = 0;
        while (i < plan.nodes.size()) {
            const StepSpec& step = workflow_.steps[i];
            if (step.has_depends_on) {
                // A DAG step: it forms a stage of its own for the steps after it.
                previous_stage = {static_cast<int>(i)};
                input_producer = static_cast<int>(i);
                previous_was_fan_out = false;
                ++i;
                continue;
            }
            if (step.mode == StepMode::kFanOut) {
                std::vector<int> group;
                while (i < plan.nodes.size() && workflow_.steps[i].mode == StepMode::kFanOut &&
                       !workflow_.steps[i].has_depends_on) {
                    PlanNode& node = plan.nodes[i];
                    node.deps = previous_stage;
                    if (input_producer >= 0) node.inputs = {input_producer};
                    group.push_back(static_cast<int>(i));
                    ++i;
                }
                previous_stage = group;
                input_producer = group.back();
                previous_was_fan_out = true;
                continue;
            }
            PlanNode& node = plan.nodes[i];
            node.deps = previous_stage;
            if (step.mode == StepMode::kCollect) {
                if (previous_was_fan_out) {
                    node.inputs = previous_stage;
                } else {
                    Warn(StepPath(i) + ".mode",
                         "collect does not follow fan_out steps: it passes its input through");
                    if (input_producer >= 0) node.inputs = {input_producer};
                }
            } else if (input_producer >= 0) {
                node.inputs = {input_producer};
            }
            previous_stage = {static_cast<int>(i)};
            input_producer = static_cast<int>(i);
            previous_was_fan_out = false;
            ++i;
        }
    }

    void WireDependsOn(Plan& plan) {
        std::map<std::string, int> by_name;
        for (const auto& node : plan.nodes) by_name.emplace(node.id, node.index);
        std::vector<std::string_view> names;
        for (const auto& node : plan.nodes) names.push_back(node.id);
        for (size_t i = 0; i < workflow_.steps.size(); ++i) {
            const StepSpec& step = workflow_.steps[i];
            if (!step.has_depends_on) continue;
            PlanNode& node = plan.nodes[i];
            node.deps.clear();
            node.inputs.clear();
            for (size_t k = 0; k < step.depends_on.size(); ++k) {
                const std::string& name = step.depends_on[k];
                std::string path = StepPath(i) + ".depends_on[" + std::to_string(k) + "]";
                auto it = by_name.find(name);
                if (it == by_name.end()) {
                    std::string message = "unknown step \"" + name + "\"";
                    std::string suggestion = ClosestMatch(name, names);
                    if (!suggestion.empty()) message += " (did you mean \"" + suggestion + "\"?)";
                    Error(path, std::move(message));
                    continue;
                }
                if (it->second == static_cast<int>(i)) {
                    Error(path, "a step cannot depend on itself");
                    continue;
                }
                if (std::find(node.deps.begin(), node.deps.end(), it->second) == node.deps.end()) {
                    node.deps.push_back(it->second);
                    node.inputs.push_back(it->second);
                }
            }
        }
    }

    bool CheckAcyclic(Plan& plan) {
        // Kahn's algorithm; whatever is left over sits on a cycle.
        size_t n = plan.nodes.size();
        std::vector<int> indegree(n, 0);
        for (auto& node : plan.nodes) node.dependents.clear();
        for (auto& node : plan.nodes) {
            for (int d : node.deps)
                plan.nodes[static_cast<size_t>(d)].dependents.push_back(node.index);
            indegree[static_cast<size_t>(node.index)] = static_cast<int>(node.deps.size());
        }
        std::vector<int> queue;
        for (size_t i = 0; i < n; ++i) {
            if (indegree[i] == 0) queue.push_back(static_cast<int>(i));
        }
        order_.clear();
        while (!queue.empty()) {
            int current = queue.back();
            queue.pop_back();
            order_.push_back(current);
            for (int next : plan.nodes[static_cast<size_t>(current)].dependents) {
                if (--indegree[static_cast<size_t>(next)] == 0) queue.push_back(next);
            }
        }
        if (order_.size() == n) return true;
        // Report one cycle: walk deps from any remaining node until a node repeats.
        int start = -1;
        for (size_t i = 0; i < n; ++i) {
            if (indegree[i] > 0) {
                start = static_cast<int>(i);
                break;
            }
        }
        std::vector<int> walk;
        std::vector<int> seen_at(n, -1);
        int current = start;
        while (seen_at[static_cast<size_t>(current)] < 0) {
            seen_at[static_cast<size_t>(current)] = static_cast<int>(walk.size());
            walk.push_back(current);
            for (int d : plan.nodes[static_cast<size_t>(current)].deps) {
                if (indegree[static_cast<size_t>(d)] > 0) {
                    current = d;
                    break;
                }
            }
        }
        std::string cycle;
        for (size_t k = static_cast<size_t>(seen_at[static_cast<size_t>(current)]); k < walk.size();
             ++k) {
            cycle += plan.nodes[static_cast<size_t>(walk[k])].id + " -> ";
        }
        cycle += plan.nodes[static_cast<size_t>(current)].id;
        Error(StepPath(static_cast<size_t>(current)) + ".depends_on", "dependency cycle: " + cycle);
        return false;
    }

    // Ancestors of every node (plans are small).
    std::vector<std::set<int>> Ancestors(const Plan& plan) {
        std::vector<std::set<int>> ancestors(plan.nodes.size());
        for (int index : order_) {
            auto& mine = ancestors[static_cast<size_t>(index)];
            for (int d : plan.nodes[static_cast<size_t>(index)].deps) {
                mine.insert(d);
                const auto& theirs = ancestors[static_cast<size_t>(d)];
                mine.insert(theirs.begin(), theirs.end());
            }
        }
        return ancestors;
    }

    void ResolveVariables(Plan& plan) {
        auto ancestors = Ancestors(plan);
        std::set<std::string> used;
        for (auto& node : plan.nodes) {
            for (auto& segment : node.prompt.mutable_segments()) {
                if (segment.kind != Template::Segment::Kind::kVariable) continue;
                used.insert(segment.text);
                // Setters earlier in the list, latest first.
                for (int k = node.index - 1; k >= 0; --k) {
                    const PlanNode& setter = plan.nodes[static_cast<size_t>(k)];
                    if (setter.output_var == segment.text) segment.sources.push_back(k);
                }
                if (segment.sources.empty()) {
                    std::string path = StepPath(static_cast<size_t>(node.index)) + ".prompt";
                    bool later = false;
                    for (size_t k = static_cast<size_t>(node.index); k < plan.nodes.size(); ++k) {
                        later = later || plan.nodes[k].output_var == segment.text;
                    }
                    Warn(path, "{{" + segment.text + "}} is not set by an earlier step" +
                                   (later ? " (a later step sets it)" : "") +
                                   "; it stays as written");
                    continue;
                }
                // A variable read must see its setters finished: depend on them if the wiring
                // does not already make them ancestors.
                for (int source : segment.sources) {
                    if (ancestors[static_cast<size_t>(source)].count(node.index)) {
                        Error(StepPath(static_cast<size_t>(node.index)) + ".prompt",
                              "{{" + segment.text + "}} reads step '" +
                                  plan.nodes[static_cast<size_t>(source)].id +
                                  "', which depends on this step");
                        continue;
                    }
                    if (!ancestors[static_cast<size_t>(node.index)].count(source)) {
                        node.deps.push_back(source);
                        plan.nodes[static_cast<size_t>(source)].dependents.push_back(node.index);
                        ancestors[static_cast<size_t>(node.index)].insert(source);
                    }
                }
            }
        }
        for (const auto& node : plan.nodes) {
            if (!node.output_var.empty() && !used.count(node.output_var)) {
                Warn(StepPath(static_cast<size_t>(node.index)) + ".output_var",
                     "variable \"" + node.output_var + "\" is never used");
            }
        }
    }

    void Finish(Plan& plan) {
        // Layers: longest path from a root, computed in Kahn's (topological) order.
        int max_layer = 0;
        for (int index : order_) {
            PlanNode& node = plan.nodes[static_cast<size_t>(index)];
            int layer = 0;
            for (int d : node.deps)
                layer = std::max(layer, plan.nodes[static_cast<size_t>(d)].layer + 1);
            node.layer = layer;
            max_layer = std::max(max_layer, layer);
        }
        plan.layers.assign(static_cast<size_t>(max_layer) + 1, {});
        for (const auto& node : plan.nodes)
            plan.layers[static_cast<size_t>(node.layer)].push_back(node.index);
        plan.output_node = static_cast<int>(plan.nodes.size()) - 1;
        for (const auto& node : plan.nodes) plan.node_ids.push_back(node.id);
        plan.definition_json = SnapshotJson(workflow_);
        plan.definition_sha256 = Sha256Hex(plan.definition_json);
    }

    const Workflow& workflow_;
    const CompileOptions& options_;
    std::vector<Diagnostic>& diagnostics_;
    std::vector<int> order_;
};

json::value DoubleValue(double v) {
    return json::value(v);
}

json::object AgentJson(const AgentSpec& agent) {
    json::object o;
    o["name"] = agent.name;
    if (!agent.id.empty()) o["id"] = agent.id;
    if (!agent.description.empty()) o["description"] = agent.description;
    o["model"] = agent.model;
    o["system_prompt"] = agent.system_prompt;
    json::array tools;
    for (const auto& t : agent.tools) tools.emplace_back(t);
    o["tools"] = std::move(tools);
    o["max_turns"] = agent.max_turns;
    if (!agent.require_approval.empty()) {
        json::array approvals;
        for (const auto& t : agent.require_approval) approvals.emplace_back(t);
        o["require_approval"] = std::move(approvals);
    }
    if (agent.network) o["network"] = true;
    if (!agent.http_hosts.empty()) {
        json::array hosts;
        for (const auto& h : agent.http_hosts) hosts.emplace_back(h);
        o["http_hosts"] = std::move(hosts);
    }
    if (agent.private_addresses) o["private_addresses"] = true;
    json::object sandbox;
    auto put = [&](const char* key, const std::optional<int64_t>& v) {
        if (v) sandbox[key] = *v;
    };
    put("cpu_seconds", agent.sandbox.cpu_seconds);
    put("memory_mb", agent.sandbox.memory_mb);
    put("max_processes", agent.sandbox.max_processes);
    put("max_open_files", agent.sandbox.max_open_files);
    put("max_file_size_mb", agent.sandbox.max_file_size_mb);
    put("timeout_secs", agent.sandbox.timeout_secs);
    put("max_output_kb", agent.sandbox.max_output_kb);
    if (!sandbox.empty()) o["sandbox"] = std::move(sandbox);
    if (agent.temperature) o["temperature"] = DoubleValue(*agent.temperature);
    if (agent.max_output_tokens) o["max_output_tokens"] = *agent.max_output_tokens;
    json::object limits;
    if (agent.limits.max_tokens) limits["max_tokens"] = *agent.limits.max_tokens;
    if (agent.limits.max_cost_usd) limits["max_cost_usd"] = DoubleValue(*agent.limits.max_cost_usd);
    if (agent.limits.max_tool_calls) limits["max_tool_calls"] = *agent.limits.max_tool_calls;
    if (agent.limits.max_tokens_per_hour)
        limits["max_tokens_per_hour"] = *agent.limits.max_tokens_per_hour;
    if (!limits.empty()) o["limits"] = std::move(limits);
    std::error_code ec;
    auto absolute = std::filesystem::absolute(agent.base_dir.empty() ? "." : agent.base_dir, ec);
    o["base_dir"] = ec ? agent.base_dir : absolute.lexically_normal().string();
    return o;
}

// Doubles are written in shortest round-trip form; the snapshot is hashed as bytes, so it
// only needs to be deterministic for this implementation.
void AppendSnapshot(std::string& out, const json::value& value) {
    if (value.is_double()) {
        char buf[64];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value.get_double());
        std::string text(buf, end);
        if (text.find_first_of(".eE") == std::string::npos) text += ".0";
        out += text;
        return;
    }
    if (value.is_object()) {
        std::vector<const json::key_value_pair*> members;
        for (const auto& m : value.get_object()) members.push_back(&m);
        std::sort(members.begin(), members.end(),
                  [](auto* a, auto* b) { return a->key() < b->key(); });
        out += '{';
        for (size_t i = 0; i < members.size(); ++i) {
            if (i) out += ',';
            AppendJsonString(out, members[i]->key());
            out += ':';
            AppendSnapshot(out, members[i]->value());
        }
        out += '}';
        return;
    }
    if (value.is_array()) {
        out += '[';
        bool first = true;
        for (const auto& element : value.get_array()) {
            if (!first) out += ',';
            first = false;
            AppendSnapshot(out, element);
        }
        out += ']';
        return;
    }
    (void)AppendCanonicalJson(out, value);
}

}  // namespace

std::string_view NodeKindName(NodeKind kind) {
    switch (kind) {
        case NodeKind::kAgent:
            return "agent";
        case NodeKind::kCollect:
            return "collect";
    }
    return "agent";
}

const PlanNode* Plan::FindNode(std::string_view id) const {
    for (const auto& node : nodes) {
        if (node.id == id) return &node;
    }
    return nullptr;
}

std::vector<int> Plan::WithDescendants(int index) const {
    std::vector<bool> marked(nodes.size(), false);
    std::vector<int> stack = {index};
    while (!stack.empty()) {
        int current = stack.back();
        stack.pop_back();
        if (marked[static_cast<size_t>(current)]) continue;
        marked[static_cast<size_t>(current)] = true;
        for (int next : nodes[static_cast<size_t>(current)].dependents) stack.push_back(next);
    }
    std::vector<int> out;
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (marked[i]) out.push_back(static_cast<int>(i));
    }
    return out;
}

CompileResult Compile(const Workflow& workflow, const CompileOptions& options) {
    CompileResult result;
    Compiler compiler(workflow, options, result.diagnostics);
    result.plan = compiler.Run();
    return result;
}

std::string SnapshotJson(const Workflow& workflow) {
    json::object root;
    root["name"] = workflow.name;
    root["description"] = workflow.description;
    json::object agents;
    for (const auto& agent : workflow.agents) agents[agent.name] = AgentJson(agent);
    root["agents"] = std::move(agents);
    json::array steps;
    for (const auto& step : workflow.steps) {
        json::object s;
        s["name"] = step.name;
        if (!step.agent_name.empty()) s["agent_name"] = step.agent_name;
        if (!step.agent_id.empty()) s["agent_id"] = step.agent_id;
        s["prompt"] = step.prompt;
        s["mode"] = std::string(StepModeName(step.mode));
        s["timeout_ms"] = step.timeout_ms;
        s["error_mode"] = std::string(ErrorModeName(step.error_mode));
        s["max_retries"] = step.max_retries;
        if (!step.output_var.empty()) s["output_var"] = step.output_var;
        if (!step.condition.empty()) s["condition"] = step.condition;
        s["max_iterations"] = step.max_iterations;
        if (!step.until.empty()) s["until"] = step.until;
        json::object retry;
        retry["initial_delay_ms"] = step.retry.initial_delay_ms;
        retry["max_delay_ms"] = step.retry.max_delay_ms;
        retry["multiplier"] = DoubleValue(step.retry.multiplier);
        retry["jitter"] = DoubleValue(step.retry.jitter);
        s["retry"] = std::move(retry);
        if (step.has_depends_on) {
            json::array deps;
            for (const auto& d : step.depends_on) deps.emplace_back(d);
            s["depends_on"] = std::move(deps);
        }
        steps.push_back(std::move(s));
    }
    root["steps"] = std::move(steps);
    if (!workflow.mcp_servers.empty()) {
        json::object servers;
        for (const auto& server : workflow.mcp_servers) {
            json::object o;
            o["command"] = server.command;
            json::array args;
            for (const auto& a : server.args) args.emplace_back(a);
            o["args"] = std::move(args);
            json::object env;
            for (const auto& [k, v] : server.env) env[k] = v;
            o["env"] = std::move(env);
            o["sandboxed"] = server.sandboxed;
            o["network"] = server.network;
            o["safety"] = server.safety;
            json::object tools;
            for (const auto& [name, settings] : server.tools) {
                json::object t;
                if (!settings.safety.empty()) t["safety"] = settings.safety;
                t["require_approval"] = settings.require_approval;
                tools[name] = std::move(t);
            }
            o["tools"] = std::move(tools);
            o["base_dir"] = AbsoluteDir(server.base_dir);
            servers[server.name] = std::move(o);
        }
        root["mcp_servers"] = std::move(servers);
    }
    json::object limits;
    if (workflow.limits.max_tokens) limits["max_tokens"] = *workflow.limits.max_tokens;
    if (workflow.limits.max_cost_usd)
        limits["max_cost_usd"] = DoubleValue(*workflow.limits.max_cost_usd);
    if (workflow.limits.max_tool_calls) limits["max_tool_calls"] = *workflow.limits.max_tool_calls;
    if (!limits.empty()) root["limits"] = std::move(limits);
    if (!workflow.workspace.empty()) root["workspace"] = AbsoluteWorkspace(workflow);
    std::string out;
    AppendSnapshot(out, root);
    return out;
}

}  // namespace strowger::model
