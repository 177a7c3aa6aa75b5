#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "core/json.hpp"
#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "model/internal/compile_common.hpp"
#include "model/plan.hpp"

namespace strowger::model {
namespace {

std::string StepPath(size_t i);

}  // namespace

namespace internal {

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

void CheckAgent(const Workflow& workflow, const CompileOptions& options, const AgentSpec& agent,
                const std::string& path, std::vector<Diagnostic>& diagnostics) {
    auto Error = [&](const std::string& at, std::string message) {
        diagnostics.push_back(
            {Diagnostic::Severity::kError, workflow.PositionOf(at), at, std::move(message)});
    };
    std::vector<std::string_view> names(options.known_tools.begin(), options.known_tools.end());
    for (const auto& server : workflow.mcp_servers) names.push_back(server.name);
    for (size_t i = 0; i < agent.tools.size(); ++i) {
        const std::string& tool = agent.tools[i];
        std::string tool_path = path + ".tools[" + std::to_string(i) + "]";
        auto slash = tool.find('/');
        if (slash != std::string::npos) {
            std::string server = tool.substr(0, slash);
            if (!workflow.FindMcpServer(server)) {
                std::vector<std::string_view> servers;
                for (const auto& s : workflow.mcp_servers) servers.push_back(s.name);
                std::string message =
                    "unknown MCP server " + Quote(server) + " in tool " + Quote(tool);
                std::string suggestion = ClosestMatch(server, servers);
                if (!suggestion.empty()) message += " (did you mean " + Quote(suggestion) + "?)";
                Error(tool_path, std::move(message));
            } else if (slash + 1 >= tool.size()) {
                Error(tool_path, Quote(tool) + " names no tool of the server");
            }
            continue;
        }
        if (options.known_tools.empty()) continue;
        if (std::find(options.known_tools.begin(), options.known_tools.end(), tool) ==
            options.known_tools.end()) {
            std::string message = "unknown tool " + Quote(tool) + " (expected one of " +
                                  Join(options.known_tools, ", ") + ", or <mcp_server>/<tool>)";
            std::string suggestion = ClosestMatch(tool, names);
            if (!suggestion.empty())
                message =
                    "unknown tool " + Quote(tool) + " (did you mean " + Quote(suggestion) + "?)";
            Error(tool_path, std::move(message));
        }
    }
    for (size_t i = 0; i < agent.require_approval.size(); ++i) {
        const std::string& tool = agent.require_approval[i];
        if (std::find(agent.tools.begin(), agent.tools.end(), tool) == agent.tools.end()) {
            Error(path + ".require_approval[" + std::to_string(i) + "]",
                  Quote(tool) + " is not one of the agent's tools");
        }
    }
    for (const auto& host : agent.http_hosts) {
        if (host.empty() || host.find_first_of(" /:") != std::string::npos) {
            Error(path + ".http_hosts",
                  Quote(host) + " is not a host name (e.g. api.github.com or *.example.org)");
        }
    }
    if (agent.model.empty()) {
        Error(path, "agent " + Quote(agent.name) + " needs a model (provider:model)");
        return;
    }
    auto colon = agent.model.find(':');
    std::string provider = agent.model.substr(0, colon);
    if (colon == std::string::npos || colon + 1 >= agent.model.size()) {
        Error(path + ".model", "model " + Quote(agent.model) +
                                   " must be written provider:model, e.g. openai:gpt-4o-mini");
    } else if (!options.known_providers.empty() &&
               std::find(options.known_providers.begin(), options.known_providers.end(),
                         provider) == options.known_providers.end()) {
        Error(path + ".model", "unknown provider " + Quote(provider) + " (expected one of " +
                                   Join(options.known_providers, ", ") + ")");
    }
}

}  // namespace internal

namespace {

using namespace internal;

std::string StepPath(size_t i) {
    return "steps[" + std::to_string(i) + "]";
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
        plan->session = workflow_.session;
        CheckAgents(*plan);
        BuildNodes(*plan);
        if (plan->nodes.size() != workflow_.steps.size()) return nullptr;
        // Wired and checked for cycles even after errors (an unknown dependency is left out),
        // so one validation shows every problem; a plan only comes out of an error-free file.
        WireLinear(*plan);
        WireDependsOn(*plan);
        const bool acyclic = CheckAcyclic(*plan);
        if (HasErrors(diagnostics_) || !acyclic) return nullptr;
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

    void CheckAgents(Plan& plan) {
        for (const auto& agent : workflow_.agents) {
            internal::CheckAgent(workflow_, options_, agent, "agents." + agent.name, diagnostics_);
            plan.agents.push_back(agent);
        }
    }

    void BuildNodes(Plan& plan) {
        plan.nodes.reserve(workflow_.steps.size());
        // Views of the workflow's step names, which outlive this.
        std::unordered_map<std::string_view, size_t> first_index;
        first_index.reserve(workflow_.steps.size());
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
                Error(path + ".name", "duplicate step name " + Quote(step.name) +
                                          " (first used by " + StepPath(it->second) + " at line " +
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
                    std::string message = "Agent not found for step " + Quote(step.name, '\'');
                    std::string wanted = !step.agent_name.empty() ? step.agent_name : step.agent_id;
                    if (wanted.empty()) {
                        message += " (give agent_name or agent_id)";
                    } else {
                        std::vector<std::string_view> names;
                        for (const auto& a : workflow_.agents) names.push_back(a.name);
                        std::string suggestion = ClosestMatch(wanted, names);
                        message += ": no agent named " + Quote(wanted);
                        if (!suggestion.empty())
                            message += " (did you mean " + Quote(suggestion) + "?)";
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
        bool any = std::any_of(workflow_.steps.begin(), workflow_.steps.end(),
                               [](const StepSpec& step) { return step.has_depends_on; });
        if (!any) return;
        std::unordered_map<std::string_view, int> by_name;
        by_name.reserve(plan.nodes.size());
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
                    std::string message = "unknown step " + Quote(name);
                    std::string suggestion = ClosestMatch(name, names);
                    if (!suggestion.empty())
                        message += " (did you mean " + Quote(suggestion) + "?)";
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
            cycle += Excerpt(plan.nodes[static_cast<size_t>(walk[k])].id) + " -> ";
        }
        cycle += Excerpt(plan.nodes[static_cast<size_t>(current)].id);
        Error(StepPath(static_cast<size_t>(current)) + ".depends_on", "dependency cycle: " + cycle);
        return false;
    }

    // Which nodes are ancestors of which, in the graph as wired before variable reads add
    // edges, in memory linear in the plan: sets of ancestors would take n²/2 entries for n
    // sequential steps. Two summaries answer most questions at once, and a search pruned by
    // them answers the rest:
    //   * every node listed before covered_[v] is an ancestor of v (for a sequential chain,
    //     every node before v);
    //   * no ancestor of v is listed after highest_[v] (for the linear form, v - 1).
    class Ancestry {
      public:
        Ancestry(const Plan& plan, const std::vector<int>& order) : plan_(plan) {
            size_t n = plan.nodes.size();
            covered_.assign(n, 0);
            highest_.assign(n, -1);
            position_.assign(n, 0);
            deps_.resize(n);
            visited_.assign(n, -1);
            for (size_t k = 0; k < order.size(); ++k) {
                int v = order[k];
                const auto& deps = plan.nodes[static_cast<size_t>(v)].deps;
                position_[static_cast<size_t>(v)] = static_cast<int>(k);
                deps_[static_cast<size_t>(v)] = deps.size();
                std::vector<int> sorted(deps.begin(), deps.end());
                std::sort(sorted.begin(), sorted.end());
                int covered = 0;
                int highest = -1;
                for (int d : sorted) {
                    covered = std::max(covered, covered_[static_cast<size_t>(d)]);
                    highest = std::max({highest, d, highest_[static_cast<size_t>(d)]});
                }
                // Each dependency is an ancestor too: extend the prefix over consecutive ones.
                for (int d : sorted) {
                    if (d == covered) ++covered;
                }
                covered_[static_cast<size_t>(v)] = covered;
                highest_[static_cast<size_t>(v)] = highest;
            }
        }

        // Whether `a` is an ancestor of `b` (a != b).
        bool IsAncestor(int a, int b) {
            if (Certain(a, b)) return true;
            if (Impossible(a, b)) return false;
            ++search_;
            std::vector<int> stack = {b};
            visited_[static_cast<size_t>(b)] = search_;
            while (!stack.empty()) {
                int current = stack.back();
                stack.pop_back();
                const auto& deps = plan_.nodes[static_cast<size_t>(current)].deps;
                for (size_t k = 0; k < deps_[static_cast<size_t>(current)]; ++k) {
                    int d = deps[k];
                    if (d == a || Certain(a, d)) return true;
                    if (visited_[static_cast<size_t>(d)] == search_ || Impossible(a, d)) continue;
                    visited_[static_cast<size_t>(d)] = search_;
                    stack.push_back(d);
                }
            }
            return false;
        }

        int covered(int v) const { return covered_[static_cast<size_t>(v)]; }

      private:
        bool Certain(int a, int b) const { return a < covered_[static_cast<size_t>(b)]; }
        bool Impossible(int a, int b) const {
            return a > highest_[static_cast<size_t>(b)] ||
                   position_[static_cast<size_t>(a)] >= position_[static_cast<size_t>(b)];
        }

        const Plan& plan_;
        std::vector<int> covered_;
        std::vector<int> highest_;
        std::vector<int> position_;  // in a topological order
        std::vector<size_t> deps_;   // how many of a node's deps were wired before
        std::vector<int> visited_;   // by search number
        int search_ = 0;
    };

    void ResolveVariables(Plan& plan) {
        Ancestry ancestry(plan, order_);
        // Setters of each variable, latest first, shared by every placeholder reading it.
        std::map<std::string, std::shared_ptr<std::vector<int>>, std::less<>> setters;
        for (auto it = plan.nodes.rbegin(); it != plan.nodes.rend(); ++it) {
            if (it->output_var.empty()) continue;
            auto& list = setters[it->output_var];
            if (!list) list = std::make_shared<std::vector<int>>();
            list->push_back(it->index);
        }
        std::set<std::string, std::less<>> used;
        std::vector<int> added_for(plan.nodes.size(), -1);  // edges added by variable reads
        for (auto& node : plan.nodes) {
            const int v = node.index;
            for (auto& segment : node.prompt.mutable_segments()) {
                input_use_.Note(segment, node.inputs.empty());
                if (segment.kind != Template::Segment::Kind::kVariable) continue;
                used.insert(segment.text);
                auto found = setters.find(segment.text);
                if (found != setters.end()) {
                    const auto& all = *found->second;
                    // Setters earlier in the list, latest first.
                    auto first = std::partition_point(all.begin(), all.end(),
                                                      [&](int setter) { return setter >= v; });
                    segment.sources =
                        SourceList(found->second, static_cast<size_t>(first - all.begin()));
                }
                if (segment.sources.empty() && FindInput(segment.text)) {
                    // A typed input: {{amount}} is {{run.input.amount}}.
                    segment.kind = Template::Segment::Kind::kRunInput;
                    segment.path.insert(segment.path.begin(), segment.text);
                    input_use_.NoteInput(segment.text);
                    continue;
                }
                if (segment.sources.empty()) {
                    std::string path = StepPath(static_cast<size_t>(v)) + ".prompt";
                    bool later = found != setters.end();
                    Warn(path, "{{" + segment.text + "}} is not set by an earlier step" +
                                   (later ? " (a later step sets it)" : "") +
                                   "; it stays as written");
                    continue;
                }
                // A variable read must see its setters finished: depend on them if the wiring
                // does not already make them ancestors. Setters listed before covered(v) are
                // ancestors (so none of them depends on this step): only later ones are checked.
                for (int source : segment.sources) {
                    if (source < ancestry.covered(v)) break;
                    if (ancestry.IsAncestor(v, source)) {
                        Error(StepPath(static_cast<size_t>(v)) + ".prompt",
                              "{{" + segment.text + "}} reads step " +
                                  Quote(plan.nodes[static_cast<size_t>(source)].id, '\'') +
                                  ", which depends on this step");
                        continue;
                    }
                    if (added_for[static_cast<size_t>(source)] != v &&
                        !ancestry.IsAncestor(source, v)) {
                        node.deps.push_back(source);
                        plan.nodes[static_cast<size_t>(source)].dependents.push_back(v);
                        added_for[static_cast<size_t>(source)] = v;
                    }
                }
            }
        }
        for (const auto& node : plan.nodes) {
            if (!node.output_var.empty() && !used.count(node.output_var)) {
                Warn(StepPath(static_cast<size_t>(node.index)) + ".output_var",
                     "variable " + Quote(node.output_var) + " is never used");
            }
        }
    }

    const InputSpec* FindInput(std::string_view name) const {
        for (const auto& input : workflow_.inputs) {
            if (input.name == name) return &input;
        }
        return nullptr;
    }

    void Finish(Plan& plan) {
        input_use_.Report(workflow_, diagnostics_);
        plan.output_node = static_cast<int>(plan.nodes.size()) - 1;
        plan.inputs = workflow_.inputs;
        FinishPlan(workflow_, order_, plan);
    }

    const Workflow& workflow_;
    const CompileOptions& options_;
    std::vector<Diagnostic>& diagnostics_;
    std::vector<int> order_;
    InputUse input_use_;
};

}  // namespace

namespace internal {

void InputUse::Note(const Template::Segment& segment, bool input_is_run_input) {
    using Kind = Template::Segment::Kind;
    if (segment.kind == Kind::kRunInput || (segment.kind == Kind::kInput && input_is_run_input)) {
        if (segment.path.empty()) {
            all_ = true;
        } else {
            used_.insert(segment.path.front());
        }
    }
}

void InputUse::Report(const Workflow& workflow, std::vector<Diagnostic>& diagnostics) const {
    if (all_) return;
    for (size_t i = 0; i < workflow.inputs.size(); ++i) {
        const InputSpec& input = workflow.inputs[i];
        if (used_.count(input.name)) continue;
        std::string path = "inputs";
        if (workflow.positions.Find("inputs[" + std::to_string(i) + "]")) {
            path = "inputs[" + std::to_string(i) + "]";
        } else if (workflow.positions.Find("inputs." + input.name)) {
            path = "inputs." + input.name;
        }
        diagnostics.push_back({Diagnostic::Severity::kWarning, workflow.PositionOf(path), path,
                               "input " + Quote(input.name) + " is never read by a template"});
    }
}

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
std::string SnapshotDouble(double value) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    std::string text(buf, end);
    if (text.find_first_of(".eE") == std::string::npos) text += ".0";
    return text;
}

void AppendSnapshot(std::string& out, const json::value& value) {
    if (value.is_double()) {
        out += SnapshotDouble(value.get_double());
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

void FinishPlan(const Workflow& workflow, const std::vector<int>& order, Plan& plan) {
    // Layers: longest path from a root, computed in Kahn's (topological) order.
    int max_layer = 0;
    for (int index : order) {
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
    plan.node_ids.clear();
    for (const auto& node : plan.nodes) plan.node_ids.push_back(node.id);
    if (plan.definition_json.empty()) plan.definition_json = SnapshotJson(workflow);
    plan.definition_sha256 = Sha256Hex(plan.definition_json);
}

json::object CommonSnapshot(const Workflow& workflow) {
    json::object root;
    root["name"] = workflow.name;
    root["description"] = workflow.description;
    json::object agents;
    for (const auto& agent : workflow.agents) agents[agent.name] = AgentJson(agent);
    root["agents"] = std::move(agents);
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
    if (workflow.session) root["session"] = true;  // only when set: other hashes stay
    // Typed inputs: only when declared, so a workflow without them keeps its hash.
    if (!workflow.inputs.empty()) {
        json::array inputs;
        for (const auto& input : workflow.inputs) {
            json::object o;
            o["name"] = input.name;
            o["type"] = input.type;
            if (input.required) o["required"] = true;
            if (input.default_value) o["default"] = *input.default_value;
            if (!input.description.empty()) o["description"] = input.description;
            inputs.push_back(std::move(o));
        }
        root["inputs"] = std::move(inputs);
    }
    return root;
}

}  // namespace internal

namespace {

// A step of the snapshot, as AppendSnapshot would write it as a JSON object (keys sorted), but
// written directly: as JSON values, the steps took more memory and time than the rest of
// compiling (2.5 KB a step).
void AppendStepSnapshot(std::string& out, const StepSpec& step) {
    JsonWriter w(out);
    w.BeginObject();
    if (!step.agent_id.empty()) w.Field("agent_id", step.agent_id);
    if (!step.agent_name.empty()) w.Field("agent_name", step.agent_name);
    if (!step.condition.empty()) w.Field("condition", step.condition);
    if (step.has_depends_on) {
        w.Key("depends_on").BeginArray();
        for (const auto& d : step.depends_on) w.String(d);
        w.EndArray();
    }
    w.Field("error_mode", ErrorModeName(step.error_mode));
    w.Field("max_iterations", step.max_iterations);
    w.Field("max_retries", step.max_retries);
    w.Field("mode", StepModeName(step.mode));
    w.Field("name", step.name);
    if (!step.output_var.empty()) w.Field("output_var", step.output_var);
    w.Field("prompt", step.prompt);
    w.Key("retry").BeginObject();
    w.Field("initial_delay_ms", step.retry.initial_delay_ms);
    w.Key("jitter").Raw(SnapshotDouble(step.retry.jitter));
    w.Field("max_delay_ms", step.retry.max_delay_ms);
    w.Key("multiplier").Raw(SnapshotDouble(step.retry.multiplier));
    w.EndObject();
    w.Field("timeout_ms", step.timeout_ms);
    if (!step.until.empty()) w.Field("until", step.until);
    w.EndObject();
}

}  // namespace

std::string_view NodeKindName(NodeKind kind) {
    switch (kind) {
        case NodeKind::kAgent:
            return "agent";
        case NodeKind::kCollect:
            return "collect";
        case NodeKind::kTyped:
            return "typed";
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
    if (workflow.dag) {
        result.plan = CompileDag(workflow, options, result.diagnostics);
        if (HasErrors(result.diagnostics)) result.plan.reset();
        return result;
    }
    Compiler compiler(workflow, options, result.diagnostics);
    result.plan = compiler.Run();
    return result;
}

std::string SnapshotJson(const Workflow& workflow) {
    if (workflow.dag) return DagSnapshotJson(workflow, {});
    json::object root = CommonSnapshot(workflow);
    // The steps are written one at a time, below: as one tree of JSON values they took more
    // memory than the rest of compiling (2.5 KB a step).
    root["steps"] = nullptr;
    // AppendSnapshot(root) with the steps array written in place of its placeholder.
    std::vector<const json::key_value_pair*> members;
    for (const auto& m : root) members.push_back(&m);
    std::sort(members.begin(), members.end(), [](auto* x, auto* y) { return x->key() < y->key(); });
    std::string out = "{";
    size_t estimate = out.size();
    for (const auto& step : workflow.steps) {
        estimate += 256 + step.name.size() + step.agent_name.size() + step.agent_id.size() +
                    step.prompt.size() + step.output_var.size() + step.condition.size() +
                    step.until.size() + 8 * step.depends_on.size();
        for (const auto& d : step.depends_on) estimate += d.size();
    }
    out.reserve(estimate);
    for (size_t i = 0; i < members.size(); ++i) {
        if (i) out += ',';
        AppendJsonString(out, members[i]->key());
        out += ':';
        if (members[i]->key() != "steps") {
            AppendSnapshot(out, members[i]->value());
            continue;
        }
        out += '[';
        for (size_t k = 0; k < workflow.steps.size(); ++k) {
            if (k) out += ',';
            AppendStepSnapshot(out, workflow.steps[k]);
        }
        out += ']';
    }
    out += '}';
    return out;
}

}  // namespace strowger::model
