// The DAG form's compiler (docs/design/dag.md): nodes and edges into the same Plan as steps.
//
// Checks CMDC's list (stable unique ids, edge references, cycles, router branches that exist
// on edges, fork/join pairing, each node's preflight by its type, isolated nodes) and
// Strowger's (agents, tools, templates, typed inputs), every problem at once, each at the
// file:line:column of the field.
#include <boost/json.hpp>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include "core/json.hpp"
#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "model/internal/compile_common.hpp"
#include "model/loader.hpp"
#include "model/plan.hpp"

namespace strowger::model::internal {
namespace {

std::string NodePath(size_t i) {
    return "nodes[" + std::to_string(i) + "]";
}
std::string EdgePath(size_t i) {
    return "edges[" + std::to_string(i) + "]";
}

// Agent fields an inline agent may have (in a node's config, or as a reference object).
constexpr std::string_view kAgentFields[] = {"name",
                                             "model",
                                             "system_prompt",
                                             "tools",
                                             "require_approval",
                                             "max_turns",
                                             "limits",
                                             "temperature",
                                             "max_output_tokens",
                                             "network",
                                             "http_hosts",
                                             "private_addresses",
                                             "description"};

class DagCompiler;

class Context final : public NodeCompileContext {
  public:
    Context(DagCompiler& compiler, Plan& plan, size_t index, const NodeSpec& spec,
            const json::object& config)
        : NodeCompileContext(spec, config), compiler_(compiler), plan_(plan), index_(index) {}

    PlanNode& plan_node() override { return plan_.nodes[index_]; }
    void Error(const std::string& field, std::string message) override;
    void Warn(const std::string& field, std::string message) override;
    Template ParseTemplate(std::string_view text, const std::string& field,
                           const std::vector<std::string>& extras) override;
    int ResolveAgent(const json::value& reference, const std::string& field) override;
    int DefaultAgent(const std::string& field) override;
    bool KnownTool(std::string_view name) const override;
    std::vector<std::string> OutgoingLabels() const override;
    size_t IncomingEdges() const override { return plan_.nodes[index_].in_edges.size(); }
    std::shared_ptr<const Plan> CompileChild(const std::string& file,
                                             const std::string& field) override;

  private:
    std::string FieldPath(const std::string& field) const {
        std::string path = NodePath(index_) + ".config";
        if (field.empty()) return path;
        return field.front() == '[' ? path + field : path + "." + field;
    }

    DagCompiler& compiler_;
    Plan& plan_;
    size_t index_;
};

class DagCompiler {
  public:
    DagCompiler(const Workflow& workflow, const CompileOptions& options,
                std::vector<Diagnostic>& diagnostics)
        : workflow_(workflow), options_(options), diagnostics_(diagnostics) {}

    std::shared_ptr<Plan> Run() {
        auto plan = std::make_shared<Plan>();
        plan->dag = true;
        plan->workflow_name = workflow_.name;
        plan->description = workflow_.description;
        plan->mcp_servers = workflow_.mcp_servers;
        for (auto& server : plan->mcp_servers) server.base_dir = AbsoluteDir(server.base_dir);
        plan->limits = workflow_.limits;
        plan->workspace = AbsoluteWorkspace(workflow_);
        plan->inputs = workflow_.inputs;
        for (const auto& agent : workflow_.agents) {
            CheckAgent(workflow_, options_, agent, "agents." + agent.name, diagnostics_);
            plan->agents.push_back(agent);
        }
        if (options_.node_types == nullptr) {
            Error("nodes", "node types are not available to this compiler");
            return nullptr;
        }
        // Every check runs even after an error (a cycle, an unknown edge target), so one
        // validation shows every problem; a plan only comes out of an error-free graph.
        BuildNodes(*plan);
        BuildEdges(*plan);
        TopologicalOrder(*plan);
        AnalyseForks(*plan);
        CollectOutputKeys(*plan);
        CompileNodes(*plan);
        CheckEdgeLabels(*plan);
        CheckOutput(*plan);
        CheckInputsUsed();
        if (HasErrors(diagnostics_)) return nullptr;
        plan->definition_json = DagSnapshotJson(workflow_, pins_);
        FinishPlan(workflow_, order_, *plan);
        return plan;
    }

    // ---- What the node types' context reaches. ----

    void Error(const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kError, workflow_.PositionOf(path), path, std::move(message)});
    }
    void Warn(const std::string& path, std::string message) {
        diagnostics_.push_back(
            {Diagnostic::Severity::kWarning, workflow_.PositionOf(path), path, std::move(message)});
    }

    Template ParseTemplate(const Plan& plan, size_t index, std::string_view text,
                           const std::string& path, const std::vector<std::string>& extras) {
        Template parsed = Template::Parse(text);
        for (auto& segment : parsed.mutable_segments()) {
            input_use_.Note(segment, plan.nodes[index].in_edges.empty());
            if (segment.kind == Template::Segment::Kind::kInput ||
                segment.kind == Template::Segment::Kind::kRunInput) {
                continue;
            }
            if (segment.kind != Template::Segment::Kind::kVariable) continue;
            const std::string& name = segment.text;
            if (std::find(extras.begin(), extras.end(), name) != extras.end()) {
                segment.kind = Template::Segment::Kind::kExtra;
                continue;
            }
            if (auto it = by_id_.find(name); it != by_id_.end()) {
                segment.kind = Template::Segment::Kind::kNode;
                segment.node = it->second;
                // {{node}} and {{node.output}} are the output itself.
                if (!segment.path.empty() && segment.path.front() == "output") {
                    segment.path.erase(segment.path.begin());
                }
                if (segment.node == static_cast<int>(index)) {
                    Error(path, "{{" + name + "}} is this node's own output");
                } else if (!IsAncestor(segment.node, static_cast<int>(index))) {
                    Warn(path, "{{" + name + "}} reads node " + Quote(name, '\'') +
                                   ", which does not run before this one: it may be empty");
                }
                used_names_.insert(name);
                continue;
            }
            if (auto it = output_keys_.find(name); it != output_keys_.end()) {
                // The latest ancestor that sets it, latest first in topological order.
                auto list = std::make_shared<std::vector<int>>();
                for (auto at = order_.rbegin(); at != order_.rend(); ++at) {
                    int setter = *at;
                    if (plan.nodes[static_cast<size_t>(setter)].output_var != name) continue;
                    if (IsAncestor(setter, static_cast<int>(index))) list->push_back(setter);
                }
                if (list->empty()) {
                    Warn(path, "{{" + name +
                                   "}} is set (output_key) only by nodes that do not "
                                   "run before this one: it stays as written");
                }
                segment.sources = SourceList(list, 0);
                used_names_.insert(name);
                continue;
            }
            if (auto input = FindInput(name)) {
                segment.kind = Template::Segment::Kind::kRunInput;
                segment.path.insert(segment.path.begin(), input->name);
                input_use_.NoteInput(name);
                continue;
            }
            std::vector<std::string_view> candidates;
            for (const auto& [id, unused] : by_id_) candidates.push_back(id);
            for (const auto& [key, unused] : output_keys_) candidates.push_back(key);
            for (const auto& in : workflow_.inputs) candidates.push_back(in.name);
            std::string message = "{{" + name + "}} names no node, output_key or input";
            std::string suggestion = ClosestMatch(name, candidates);
            if (!suggestion.empty()) message += " (did you mean " + Quote(suggestion) + "?)";
            Error(path, std::move(message));
        }
        return parsed;
    }

    int ResolveAgent(Plan& plan, size_t index, const json::value& reference,
                     const std::string& path) {
        if (reference.is_string()) {
            std::string_view name = reference.get_string();
            for (size_t i = 0; i < plan.agents.size(); ++i) {
                if (plan.agents[i].name == name ||
                    (!plan.agents[i].id.empty() && plan.agents[i].id == name)) {
                    return static_cast<int>(i);
                }
            }
            std::vector<std::string_view> names;
            for (const auto& a : plan.agents) names.push_back(a.name);
            std::string message = "no agent named " + Quote(name);
            std::string suggestion = ClosestMatch(name, names);
            if (!suggestion.empty()) message += " (did you mean " + Quote(suggestion) + "?)";
            Error(path, std::move(message));
            return -1;
        }
        if (!reference.is_object()) {
            Error(path,
                  "expected an agent name or an agent (a mapping with model, "
                  "system_prompt, tools, ...)");
            return -1;
        }
        const json::object& o = reference.get_object();
        // {name: X} alone names an agent of the workflow, or one of the default model.
        bool inline_fields = false;
        for (const auto& [key, value] : o) {
            if (key != "name") inline_fields = true;
        }
        std::string name(JsonString(o, "name"));
        if (!inline_fields && !name.empty()) {
            for (size_t i = 0; i < plan.agents.size(); ++i) {
                if (plan.agents[i].name == name) return static_cast<int>(i);
            }
        }
        AgentSpec agent;
        agent.name = !name.empty() ? name : plan.nodes[index].id + "/" + LastField(path);
        agent.base_dir = workflow_.base_dir;
        agent.pos = workflow_.PositionOf(path);
        for (const auto& [key, value] : o) {
            std::string at = path + "." + std::string(key);
            if (std::find(std::begin(kAgentFields), std::end(kAgentFields), key) ==
                std::end(kAgentFields)) {
                continue;  // the node's own fields (prompt, mode, ...), checked by its type
            }
            ReadAgentField(agent, key, value, at);
        }
        if (agent.model.empty()) {
            agent.model = DefaultModel();
            agent.base_dir = DefaultModelDir();
        }
        if (agent.model.empty()) {
            Error(path, "agent " + Quote(agent.name) +
                            " has no model: give it one, or set the workflow's default_model "
                            "(or run with --model)");
            return -1;
        }
        CheckAgent(workflow_, options_, agent, path, diagnostics_);
        // The same inline agent (by name and fields) is one agent.
        for (size_t i = 0; i < plan.agents.size(); ++i) {
            if (plan.agents[i].name == agent.name) {
                if (AgentJson(plan.agents[i]) == AgentJson(agent)) return static_cast<int>(i);
                agent.name += "#" + std::to_string(plan.agents.size());
            }
        }
        plan.agents.push_back(std::move(agent));
        return static_cast<int>(plan.agents.size() - 1);
    }

    int DefaultAgent(Plan& plan, size_t index, const std::string& path) {
        std::string model = DefaultModel();
        if (model.empty()) {
            Error(path, "node " + Quote(plan.nodes[index].id, '\'') +
                            " names no agent and no model, and the workflow has no "
                            "default_model (or run with --model)");
            return -1;
        }
        std::string name = "default (" + model + ")";
        for (size_t i = 0; i < plan.agents.size(); ++i) {
            if (plan.agents[i].name == name) return static_cast<int>(i);
        }
        AgentSpec agent;
        agent.name = name;
        agent.model = model;
        agent.base_dir = DefaultModelDir();
        CheckAgent(workflow_, options_, agent, path, diagnostics_);
        plan.agents.push_back(std::move(agent));
        return static_cast<int>(plan.agents.size() - 1);
    }

    bool KnownTool(std::string_view name) const {
        auto slash = name.find('/');
        if (slash != std::string_view::npos) {
            return workflow_.FindMcpServer(name.substr(0, slash)) != nullptr &&
                   slash + 1 < name.size();
        }
        return options_.known_tools.empty() ||
               std::find(options_.known_tools.begin(), options_.known_tools.end(), name) !=
                   options_.known_tools.end();
    }

    std::shared_ptr<const Plan> CompileChild(size_t index, const std::string& file,
                                             const std::string& path) {
        const NodeSpec& spec = workflow_.nodes[index];
        // Pinned in this workflow's snapshot: a resumed run never reads the file again.
        std::string text;
        std::string child_file;
        std::string base_dir = workflow_.base_dir;
        if (const json::object* pinned = spec.config.is_object()
                                             ? JsonObject(spec.config.get_object(), "definition")
                                             : nullptr) {
            auto canonical = CanonicalJsonOrSnapshot(*pinned);
            text = canonical;
            child_file = "<pinned definition of node " + spec.id + ">";
        } else {
            std::filesystem::path p(file);
            if (p.is_relative()) p = std::filesystem::path(workflow_.base_dir) / p;
            child_file = p.string();
            base_dir = p.parent_path().string();
            auto loaded = LoadWorkflowFile(child_file);
            for (auto& d : loaded.diagnostics) {
                if (d.severity == Diagnostic::Severity::kError) diagnostics_.push_back(d);
            }
            if (!loaded.ok()) {
                Error(path, "subworkflow " + Quote(file) + " does not load");
                return nullptr;
            }
            auto compiled = Compile(loaded.workflow, options_);
            if (!compiled.ok()) {
                for (auto& d : compiled.diagnostics) {
                    if (d.severity == Diagnostic::Severity::kError) diagnostics_.push_back(d);
                }
                Error(path, "subworkflow " + Quote(file) + " does not compile");
                return nullptr;
            }
            auto parsed = ParseJson(compiled.plan->definition_json);
            if (parsed && parsed->is_object()) pins_[spec.id] = parsed->get_object();
            return compiled.plan;
        }
        LoadOptions load_options;
        load_options.sibling_agents = false;
        auto loaded = LoadWorkflowText(text, child_file, base_dir, load_options);
        if (!loaded.ok()) {
            Error(path, "the pinned subworkflow definition does not load");
            return nullptr;
        }
        auto compiled = Compile(loaded.workflow, options_);
        if (!compiled.ok()) {
            Error(path, "the pinned subworkflow definition does not compile");
            return nullptr;
        }
        if (const json::object* pinned = JsonObject(spec.config.get_object(), "definition")) {
            pins_[spec.id] = *pinned;
        }
        return compiled.plan;
    }

    std::vector<std::string> OutgoingLabels(const Plan& plan, size_t index) const {
        std::vector<std::string> labels;
        for (int e : plan.nodes[index].out_edges) {
            labels.push_back(plan.edges[static_cast<size_t>(e)].label);
        }
        return labels;
    }

  private:
    static std::string LastField(const std::string& path) {
        size_t cut = path.find_last_of(".");
        return cut == std::string::npos ? path : path.substr(cut + 1);
    }

    static std::string CanonicalJsonOrSnapshot(const json::object& object) {
        std::string out;
        AppendSnapshot(out, object);
        return out;
    }

    std::string DefaultModel() const {
        return !options_.default_model.empty() ? options_.default_model : workflow_.default_model;
    }

    std::string DefaultModelDir() const {
        return !options_.default_model.empty() && !options_.default_model_dir.empty()
                   ? options_.default_model_dir
                   : workflow_.base_dir;
    }

    const InputSpec* FindInput(std::string_view name) const {
        for (const auto& input : workflow_.inputs) {
            if (input.name == name) return &input;
        }
        return nullptr;
    }

    void ReadAgentField(AgentSpec& agent, std::string_view key, const json::value& value,
                        const std::string& path) {
        auto string_list = [&](std::vector<std::string>& out) {
            if (!value.is_array()) {
                Error(path, "expected a list of strings");
                return;
            }
            for (const auto& item : value.get_array()) {
                if (!item.is_string()) {
                    Error(path, "expected a list of strings");
                    return;
                }
                out.emplace_back(item.get_string());
            }
        };
        auto text = [&](std::string& out) {
            if (!value.is_string()) {
                Error(path, "expected a string");
                return;
            }
            out = std::string(value.get_string());
        };
        auto positive = [&](const char* what) -> std::optional<int64_t> {
            if (!value.is_int64() || value.get_int64() < 1) {
                Error(path, std::string("expected ") + what);
                return std::nullopt;
            }
            return value.get_int64();
        };
        if (key == "name") return;
        if (key == "model") return text(agent.model);
        if (key == "system_prompt") return text(agent.system_prompt);
        if (key == "description") return text(agent.description);
        if (key == "tools") return string_list(agent.tools);
        if (key == "require_approval") return string_list(agent.require_approval);
        if (key == "http_hosts") return string_list(agent.http_hosts);
        if (key == "max_turns") {
            if (auto v = positive("a whole number >= 1")) agent.max_turns = *v;
            return;
        }
        if (key == "max_output_tokens") {
            if (auto v = positive("a whole number >= 1")) agent.max_output_tokens = *v;
            return;
        }
        if (key == "temperature") {
            if (value.is_number() && value.to_number<double>() >= 0) {
                agent.temperature = value.to_number<double>();
            } else {
                Error(path, "expected a number >= 0");
            }
            return;
        }
        if (key == "network" || key == "private_addresses") {
            if (!value.is_bool()) {
                Error(path, "expected true or false");
                return;
            }
            (key == "network" ? agent.network : agent.private_addresses) = value.get_bool();
            return;
        }
        if (key == "limits") {
            if (!value.is_object()) {
                Error(path, "expected a mapping");
                return;
            }
            for (const auto& [limit, v] : value.get_object()) {
                std::string at = path + "." + std::string(limit);
                if (limit == "max_cost_usd") {
                    if (v.is_number() && v.to_number<double>() > 0) {
                        agent.limits.max_cost_usd = v.to_number<double>();
                    } else {
                        Error(at, "expected a positive number");
                    }
                    continue;
                }
                if (!v.is_int64() || v.get_int64() < 1) {
                    Error(at, "expected a whole number >= 1");
                    continue;
                }
                if (limit == "max_tokens") {
                    agent.limits.max_tokens = v.get_int64();
                } else if (limit == "max_tool_calls") {
                    agent.limits.max_tool_calls = v.get_int64();
                } else if (limit == "max_tokens_per_hour") {
                    agent.limits.max_tokens_per_hour = v.get_int64();
                } else {
                    Error(at, "unknown field " + Quote(limit));
                }
            }
        }
    }

    void BuildNodes(Plan& plan) {
        plan.nodes.reserve(workflow_.nodes.size());
        for (size_t i = 0; i < workflow_.nodes.size(); ++i) {
            const NodeSpec& spec = workflow_.nodes[i];
            std::string path = NodePath(i);
            PlanNode node;
            node.index = static_cast<int>(i);
            node.id = spec.id;
            if (!spec.id.empty()) {
                auto [it, inserted] = by_id_.emplace(spec.id, static_cast<int>(i));
                if (!inserted) {
                    Error(path + ".id", "duplicate node id " + Quote(spec.id) + " (first used by " +
                                            NodePath(static_cast<size_t>(it->second)) + ")");
                }
                if (spec.id.find_first_of(" {}") != std::string::npos) {
                    Error(path + ".id", "a node id cannot contain spaces or braces");
                }
            }
            node.type = options_.node_types->Find(spec.type);
            if (node.type == nullptr && !spec.type.empty()) {
                auto names = options_.node_types->Names();
                std::string message =
                    "unknown node type " + Quote(spec.type) + " (expected one of " +
                    Join(std::vector<std::string>(names.begin(), names.end()), ", ") + ")";
                std::string suggestion = ClosestMatch(spec.type, names);
                if (!suggestion.empty()) {
                    message = "unknown node type " + Quote(spec.type) + " (did you mean " +
                              Quote(suggestion) + "?)";
                }
                Error(path + ".type", std::move(message));
            }
            if (node.type != nullptr) {
                node.type_name = std::string(node.type->name());
                node.kind = node.type_name == "agent" ? NodeKind::kAgent : NodeKind::kTyped;
            }
            ApplyPolicy(node, spec.policy, workflow_.default_policy);
            plan.nodes.push_back(std::move(node));
        }
    }

    static void ApplyPolicy(PlanNode& node, const PolicySpec& own, const PolicySpec& defaults) {
        auto pick = [&](const auto& field) {
            return (own.*field) ? (own.*field) : (defaults.*field);
        };
        auto retries = pick(&PolicySpec::retries);
        node.max_attempts = 1 + (retries ? *retries : 0);
        node.error_mode = node.max_attempts > 1 ? ErrorMode::kRetry : ErrorMode::kFail;
        if (auto timeout = pick(&PolicySpec::timeout_ms)) node.timeout_ms = *timeout;
        BackoffSpec backoff;
        backoff.kind = pick(&PolicySpec::backoff).value_or(BackoffKind::kExponential);
        backoff.initial_delay_ms = pick(&PolicySpec::initial_delay_ms).value_or(100);
        backoff.max_delay_ms = pick(&PolicySpec::max_delay_ms).value_or(2000);
        backoff.multiplier = 2.0;
        backoff.jitter = 0.0;
        node.backoff = backoff;
        const PolicySpec& source = own.on_error ? own : defaults;
        node.on_error = source.on_error.value_or(OnError::kFail);
        if (source.fallback_output) node.fallback_output = *source.fallback_output;
        node.error_signal = source.signal;
        // A node's failure with on_error other than fail does not fail the run.
        node.failure_fails_run = node.on_error == OnError::kFail;
    }

    void BuildEdges(Plan& plan) {
        std::vector<std::string_view> ids;
        for (const auto& node : plan.nodes) ids.push_back(node.id);
        std::set<std::tuple<int, int, std::string>> seen;
        for (size_t i = 0; i < workflow_.edges.size(); ++i) {
            const EdgeSpec& spec = workflow_.edges[i];
            std::string path = EdgePath(i);
            auto find = [&](const std::string& id, const char* field) -> int {
                auto it = by_id_.find(id);
                if (it != by_id_.end()) return it->second;
                if (id.empty()) return -1;
                std::string message = "unknown node " + Quote(id);
                std::string suggestion = ClosestMatch(id, ids);
                if (!suggestion.empty()) message += " (did you mean " + Quote(suggestion) + "?)";
                Error(path + "." + field, std::move(message));
                return -1;
            };
            int from = find(spec.from, "from");
            int to = find(spec.to, "to");
            if (from < 0 || to < 0) continue;
            if (from == to) {
                Error(path + ".to", "a node cannot have an edge to itself");
                continue;
            }
            PlanEdge edge{from, to, !spec.branch.empty() ? spec.branch : spec.signal};
            if (!seen.insert({from, to, edge.label}).second) {
                Warn(path, "the same edge " + Quote(spec.from) + " -> " + Quote(spec.to) +
                               " is written twice");
                continue;
            }
            const int e = static_cast<int>(plan.edges.size());
            plan.edges.push_back(std::move(edge));
            edge_paths_.push_back(path);
            plan.nodes[static_cast<size_t>(from)].out_edges.push_back(e);
            PlanNode& target = plan.nodes[static_cast<size_t>(to)];
            target.in_edges.push_back(e);
            if (std::find(target.deps.begin(), target.deps.end(), from) == target.deps.end()) {
                target.deps.push_back(from);
                target.inputs.push_back(from);
                plan.nodes[static_cast<size_t>(from)].dependents.push_back(to);
            }
        }
        if (plan.nodes.size() > 1) {
            for (const auto& node : plan.nodes) {
                if (node.in_edges.empty() && node.out_edges.empty()) {
                    Warn(NodePath(static_cast<size_t>(node.index)),
                         "node " + Quote(node.id, '\'') + " has no edges: it runs on its own");
                }
            }
        }
        for (const auto& node : plan.nodes) {
            if (node.out_edges.empty()) plan.sinks.push_back(node.index);
        }
    }

    // Kahn's algorithm; on a cycle, reports it as a path of ids.
    bool TopologicalOrder(const Plan& plan) {
        std::vector<int> pending(plan.nodes.size(), 0);
        for (const auto& node : plan.nodes)
            pending[static_cast<size_t>(node.index)] = static_cast<int>(node.deps.size());
        std::deque<int> ready;
        for (const auto& node : plan.nodes) {
            if (node.deps.empty()) ready.push_back(node.index);
        }
        order_.clear();
        while (!ready.empty()) {
            int n = ready.front();
            ready.pop_front();
            order_.push_back(n);
            for (int d : plan.nodes[static_cast<size_t>(n)].dependents) {
                if (--pending[static_cast<size_t>(d)] == 0) ready.push_back(d);
            }
        }
        auto finish_order = [&] {
            position_.assign(plan.nodes.size(), 0);
            for (size_t i = 0; i < order_.size(); ++i)
                position_[static_cast<size_t>(order_[i])] = static_cast<int>(i);
        };
        if (order_.size() == plan.nodes.size()) {
            finish_order();
            return true;
        }
        // Walk back from a node left over until a node repeats: that is a cycle.
        int start = -1;
        for (size_t i = 0; i < pending.size(); ++i) {
            if (pending[i] > 0) {
                start = static_cast<int>(i);
                break;
            }
        }
        std::vector<int> path;
        std::vector<int> seen_at(plan.nodes.size(), -1);
        int at = start;
        while (seen_at[static_cast<size_t>(at)] < 0) {
            seen_at[static_cast<size_t>(at)] = static_cast<int>(path.size());
            path.push_back(at);
            for (int d : plan.nodes[static_cast<size_t>(at)].deps) {
                if (pending[static_cast<size_t>(d)] > 0) {
                    at = d;
                    break;
                }
            }
        }
        std::vector<std::string> cycle;
        for (size_t i = static_cast<size_t>(seen_at[static_cast<size_t>(at)]); i < path.size();
             ++i) {
            cycle.push_back(plan.nodes[static_cast<size_t>(path[i])].id);
        }
        std::reverse(cycle.begin(), cycle.end());
        cycle.push_back(cycle.front());
        Error(NodePath(static_cast<size_t>(at)),
              "the edges make a cycle: " + Join(cycle, " -> ") + " (a workflow is acyclic)");
        // The nodes on or after the cycle last, so that the other checks still run.
        for (size_t i = 0; i < pending.size(); ++i) {
            if (pending[i] > 0) order_.push_back(static_cast<int>(i));
        }
        finish_order();
        return false;
    }

    bool IsAncestor(int a, int b) const {
        if (a == b) return false;
        if (position_[static_cast<size_t>(a)] > position_[static_cast<size_t>(b)]) return false;
        auto key = std::make_pair(a, b);
        if (auto it = ancestor_cache_.find(key); it != ancestor_cache_.end()) return it->second;
        std::vector<bool> seen(plan_->nodes.size(), false);
        std::vector<int> stack = {b};
        bool found = false;
        while (!stack.empty() && !found) {
            int n = stack.back();
            stack.pop_back();
            for (int d : plan_->nodes[static_cast<size_t>(n)].deps) {
                if (d == a) {
                    found = true;
                    break;
                }
                if (!seen[static_cast<size_t>(d)]) {
                    seen[static_cast<size_t>(d)] = true;
                    stack.push_back(d);
                }
            }
        }
        ancestor_cache_[key] = found;
        return found;
    }

    // Fork/join pairing and branch membership (docs/design/dag.md "Fork and join").
    void AnalyseForks(Plan& plan) {
        plan_ = &plan;
        std::vector<int> join_fork(plan.nodes.size(), -1);
        for (auto& fork : plan.nodes) {
            if (fork.type == nullptr || !fork.type->IsFork()) continue;
            const std::string path = NodePath(static_cast<size_t>(fork.index));
            if (fork.out_edges.size() < 2) {
                Warn(path, "fork " + Quote(fork.id, '\'') + " has fewer than two branches");
            }
            // Each branch: the nodes reached from its first edge before a join.
            std::vector<std::set<int>> joins_of_branch;
            std::map<int, int> branch_of;  // node -> branch (within this fork)
            for (size_t b = 0; b < fork.out_edges.size(); ++b) {
                const PlanEdge& first = plan.edges[static_cast<size_t>(fork.out_edges[b])];
                std::set<int> joins;
                std::vector<int> stack = {first.to};
                std::set<int> seen;
                while (!stack.empty()) {
                    int n = stack.back();
                    stack.pop_back();
                    if (!seen.insert(n).second) continue;
                    const PlanNode& node = plan.nodes[static_cast<size_t>(n)];
                    if (node.type != nullptr && node.type->IsJoin()) {
                        joins.insert(n);
                        continue;
                    }
                    if (node.type != nullptr && node.type->IsFork()) {
                        Error(NodePath(static_cast<size_t>(n)),
                              "fork " + Quote(node.id, '\'') + " is nested in a branch of fork " +
                                  Quote(fork.id, '\'') + " (nested forks are not supported)");
                        continue;
                    }
                    auto [it, inserted] = branch_of.emplace(n, static_cast<int>(b));
                    if (!inserted && it->second != static_cast<int>(b)) {
                        Error(NodePath(static_cast<size_t>(n)),
                              "node " + Quote(node.id, '\'') + " is in two branches of fork " +
                                  Quote(fork.id, '\'') + " (branches meet only at its join)");
                    }
                    for (int e : node.out_edges)
                        stack.push_back(plan.edges[static_cast<size_t>(e)].to);
                }
                joins_of_branch.push_back(std::move(joins));
            }
            std::set<int> common = joins_of_branch.empty() ? std::set<int>() : joins_of_branch[0];
            for (const auto& joins : joins_of_branch) {
                std::set<int> both;
                std::set_intersection(common.begin(), common.end(), joins.begin(), joins.end(),
                                      std::inserter(both, both.begin()));
                common = std::move(both);
            }
            if (common.empty()) {
                Error(path,
                      "the branches of fork " + Quote(fork.id, '\'') + " never meet at a join");
                continue;
            }
            if (common.size() > 1) {
                std::vector<std::string> names;
                for (int j : common) names.push_back(plan.nodes[static_cast<size_t>(j)].id);
                Error(path, "fork " + Quote(fork.id, '\'') + " has several joins (" +
                                Join(names, ", ") + "): which one closes it is ambiguous");
                continue;
            }
            int join = *common.begin();
            if (join_fork[static_cast<size_t>(join)] >= 0) {
                Error(
                    NodePath(static_cast<size_t>(join)),
                    "join " + Quote(plan.nodes[static_cast<size_t>(join)].id, '\'') +
                        " closes two forks (" +
                        Quote(plan.nodes[static_cast<size_t>(join_fork[static_cast<size_t>(join)])]
                                  .id,
                              '\'') +
                        " and " + Quote(fork.id, '\'') + ")");
                continue;
            }
            join_fork[static_cast<size_t>(join)] = fork.index;
            fork.join = join;
            plan.nodes[static_cast<size_t>(join)].join = fork.index;
            for (const auto& [n, b] : branch_of) {
                PlanNode& member = plan.nodes[static_cast<size_t>(n)];
                member.fork = fork.index;
                member.branch = b;
            }
            // The join's incoming edges come from the fork's branches.
            const PlanNode& join_node = plan.nodes[static_cast<size_t>(join)];
            for (int e : join_node.in_edges) {
                int from = plan.edges[static_cast<size_t>(e)].from;
                if (from != fork.index && !branch_of.count(from)) {
                    Error(edge_paths_[static_cast<size_t>(e)],
                          "join " + Quote(join_node.id, '\'') + " has an edge from " +
                              Quote(plan.nodes[static_cast<size_t>(from)].id, '\'') +
                              ", which is not in a branch of fork " + Quote(fork.id, '\''));
                }
            }
        }
        for (const auto& node : plan.nodes) {
            if (node.type == nullptr || !node.type->IsJoin()) continue;
            const std::string path = NodePath(static_cast<size_t>(node.index));
            if (node.join < 0) {
                Error(path, "join " + Quote(node.id, '\'') + " closes no fork (a dangling join)");
            }
            if (node.in_edges.size() < 2) {
                Error(path, "join " + Quote(node.id, '\'') +
                                " needs at least two incoming "
                                "branches, it has " +
                                std::to_string(node.in_edges.size()));
            }
        }
    }

    void CollectOutputKeys(Plan& plan) {
        for (size_t i = 0; i < workflow_.nodes.size(); ++i) {
            const auto& config = workflow_.nodes[i].config;
            if (!config.is_object()) continue;
            if (const auto* key = config.get_object().if_contains("output_key")) {
                if (!key->is_string() || key->get_string().empty()) {
                    Error(NodePath(i) + ".config.output_key", "expected a name");
                    continue;
                }
                std::string name(key->get_string());
                if (by_id_.count(name) && by_id_[name] != static_cast<int>(i)) {
                    Error(NodePath(i) + ".config.output_key",
                          "output_key " + Quote(name) + " is also a node id");
                }
                plan.nodes[i].output_var = name;
                output_keys_[name].push_back(static_cast<int>(i));
            }
        }
        // A fork's output_key names what its join gathers (CMDC).
        for (auto& node : plan.nodes) {
            if (node.type != nullptr && node.type->IsFork() && node.join >= 0 &&
                !node.output_var.empty()) {
                PlanNode& join = plan.nodes[static_cast<size_t>(node.join)];
                if (join.output_var.empty()) {
                    join.output_var = node.output_var;
                    output_keys_[join.output_var].push_back(join.index);
                }
            }
        }
    }

    void CompileNodes(Plan& plan) {
        for (int index : order_) {
            PlanNode& node = plan.nodes[static_cast<size_t>(index)];
            if (node.type == nullptr) continue;
            const NodeSpec& spec = workflow_.nodes[static_cast<size_t>(index)];
            static const json::object kEmpty;
            const json::object& config =
                spec.config.is_object() ? spec.config.get_object() : kEmpty;
            Context context(*this, plan, static_cast<size_t>(index), spec, config);
            node.config = node.type->Compile(context);
            if (node.config) signals_[index] = node.type->Signals(*node.config);
        }
    }

    // Labels on edges must be signals their source can emit.
    void CheckEdgeLabels(const Plan& plan) {
        for (size_t e = 0; e < plan.edges.size(); ++e) {
            const PlanEdge& edge = plan.edges[e];
            if (edge.label.empty()) continue;
            const PlanNode& from = plan.nodes[static_cast<size_t>(edge.from)];
            if (!from.config) continue;  // its errors were reported
            const auto& emits = signals_[edge.from];
            if (std::find(emits.begin(), emits.end(), "*") != emits.end()) continue;
            if (std::find(emits.begin(), emits.end(), edge.label) != emits.end()) continue;
            if (!from.error_signal.empty() && from.error_signal == edge.label) continue;
            std::vector<std::string_view> names(emits.begin(), emits.end());
            std::string message = "node " + Quote(from.id, '\'') + " never emits " +
                                  Quote(edge.label) +
                                  (emits.empty() ? std::string(" (it emits no signal)")
                                                 : " (it emits " + Join(emits, ", ") + ")");
            Error(edge_paths_[e] + (workflow_.edges[e].branch.empty() ? ".signal" : ".branch"),
                  std::move(message));
        }
    }

    void CheckOutput(Plan& plan) {
        if (!workflow_.output.empty()) {
            auto it = by_id_.find(workflow_.output);
            if (it == by_id_.end()) {
                Error("output", "unknown node " + Quote(workflow_.output));
            } else {
                plan.output_node = it->second;
            }
        } else if (plan.sinks.size() == 1) {
            plan.output_node = plan.sinks.front();
        } else {
            plan.output_node = -1;  // a JSON object of the sinks' outputs
        }
    }

    void CheckInputsUsed() { input_use_.Report(workflow_, diagnostics_); }

    const Workflow& workflow_;
    const CompileOptions& options_;
    std::vector<Diagnostic>& diagnostics_;
    const Plan* plan_ = nullptr;
    std::map<std::string, int, std::less<>> by_id_;
    std::map<std::string, std::vector<int>, std::less<>> output_keys_;
    std::vector<std::string> edge_paths_;
    std::vector<int> order_;
    std::vector<int> position_;
    mutable std::map<std::pair<int, int>, bool> ancestor_cache_;
    std::map<int, std::vector<std::string>> signals_;
    InputUse input_use_;
    std::set<std::string, std::less<>> used_names_;
    std::map<std::string, json::object> pins_;
};

void Context::Error(const std::string& field, std::string message) {
    compiler_.Error(FieldPath(field), std::move(message));
}
void Context::Warn(const std::string& field, std::string message) {
    compiler_.Warn(FieldPath(field), std::move(message));
}
Template Context::ParseTemplate(std::string_view text, const std::string& field,
                                const std::vector<std::string>& extras) {
    return compiler_.ParseTemplate(plan_, index_, text, FieldPath(field), extras);
}
int Context::ResolveAgent(const json::value& reference, const std::string& field) {
    return compiler_.ResolveAgent(plan_, index_, reference, FieldPath(field));
}
int Context::DefaultAgent(const std::string& field) {
    return compiler_.DefaultAgent(plan_, index_, FieldPath(field));
}
bool Context::KnownTool(std::string_view name) const {
    return compiler_.KnownTool(name);
}
std::vector<std::string> Context::OutgoingLabels() const {
    return compiler_.OutgoingLabels(plan_, index_);
}
std::shared_ptr<const Plan> Context::CompileChild(const std::string& file,
                                                  const std::string& field) {
    return compiler_.CompileChild(index_, file, FieldPath(field));
}

json::object PolicyJson(const PolicySpec& policy) {
    json::object o;
    if (policy.retries) o["retries"] = *policy.retries;
    if (policy.timeout_ms) o["timeout_ms"] = *policy.timeout_ms;
    if (policy.backoff) o["backoff"] = std::string(BackoffKindName(*policy.backoff));
    if (policy.initial_delay_ms) o["initial_delay_ms"] = *policy.initial_delay_ms;
    if (policy.max_delay_ms) o["max_delay_ms"] = *policy.max_delay_ms;
    if (policy.on_error) o["on_error"] = std::string(OnErrorName(*policy.on_error));
    if (policy.fallback_output) o["fallback_output"] = *policy.fallback_output;
    if (!policy.signal.empty()) o["signal"] = policy.signal;
    return o;
}

}  // namespace

std::shared_ptr<Plan> CompileDag(const Workflow& workflow, const CompileOptions& options,
                                 std::vector<Diagnostic>& diagnostics) {
    DagCompiler compiler(workflow, options, diagnostics);
    return compiler.Run();
}

std::string DagSnapshotJson(const Workflow& workflow,
                            const std::map<std::string, json::object>& pins) {
    json::object root = CommonSnapshot(workflow);
    json::array nodes;
    for (const auto& node : workflow.nodes) {
        json::object o;
        o["id"] = node.id;
        o["type"] = node.type;
        json::value config = node.config.is_object() ? node.config : json::value(json::object());
        if (auto pin = pins.find(node.id); pin != pins.end()) {
            config.get_object()["definition"] = pin->second;
        }
        o["config"] = std::move(config);
        json::object policy = PolicyJson(node.policy);
        if (!policy.empty()) o["policy"] = std::move(policy);
        nodes.push_back(std::move(o));
    }
    root["nodes"] = std::move(nodes);
    json::array edges;
    for (const auto& edge : workflow.edges) {
        json::object o;
        o["from"] = edge.from;
        o["to"] = edge.to;
        if (!edge.branch.empty()) o["branch"] = edge.branch;
        if (!edge.signal.empty()) o["signal"] = edge.signal;
        if (!edge.label.empty()) o["label"] = edge.label;
        edges.push_back(std::move(o));
    }
    root["edges"] = std::move(edges);
    if (!workflow.output.empty()) root["output"] = workflow.output;
    if (!workflow.default_model.empty()) root["default_model"] = workflow.default_model;
    // Inline agents and the default model resolve relative model files against it, also when
    // the run is resumed from this snapshot in another directory.
    root["base_dir"] = AbsoluteDir(workflow.base_dir);
    json::object defaults = PolicyJson(workflow.default_policy);
    if (!defaults.empty()) root["policies"] = json::object{{"default", std::move(defaults)}};
    if (!workflow.schema_version.empty()) root["schema_version"] = workflow.schema_version;
    if (!workflow.workflow_id.empty()) root["workflow_id"] = workflow.workflow_id;
    if (!workflow.version.empty()) root["version"] = workflow.version;
    if (!workflow.mode.empty()) root["mode"] = workflow.mode;
    if (!workflow.metadata.is_null()) root["metadata"] = workflow.metadata;
    std::string out;
    AppendSnapshot(out, root);
    return out;
}

}  // namespace strowger::model::internal
