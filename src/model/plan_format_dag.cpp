// `strowger plan` for the DAG form: layers, node types, edges with their branches and signals
// (text, JSON, DOT, Mermaid), and CMDC's dry run: with a sample input, the deterministic nodes
// (conditions, rule routers, forks) are evaluated and the path the run would take is shown —
// which nodes would run, which would be pruned, and which cannot be known before a model or a
// person answers. No model is called.
#include <boost/json.hpp>

#include <sstream>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "model/internal/plan_format_dag.hpp"

namespace strowger::model::internal {
namespace {

std::string Quoted(const std::string& text) {
    std::string out;
    AppendJsonString(out, text);
    return out;
}

std::optional<std::string> FieldOf(std::string_view text, const std::vector<std::string>& path) {
    auto parsed = ParseJson(text);
    if (!parsed) return std::nullopt;
    const json::value* at = &*parsed;
    for (const auto& key : path) {
        if (at->is_object()) {
            at = at->get_object().if_contains(key);
        } else if (at->is_array()) {
            size_t i = 0;
            auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), i);
            if (ec != std::errc() || end != key.data() + key.size() ||
                i >= at->get_array().size()) {
                return std::nullopt;
            }
            at = &at->get_array()[i];
        } else {
            return std::nullopt;
        }
        if (at == nullptr) return std::nullopt;
    }
    return JsonText(*at);
}

class DryRunner {
  public:
    DryRunner(const Plan& plan, std::string input)
        : plan_(plan), input_(std::move(input)), nodes_(plan.nodes.size()) {}

    std::vector<DryNode> Run() {
        for (const auto& layer : plan_.layers) {
            for (int index : layer) Decide(index);
        }
        return nodes_;
    }

  private:
    enum class EdgeState { kCarries, kDead, kMaybe };

    EdgeState Edge(int e) const {
        const PlanEdge& edge = plan_.edges[static_cast<size_t>(e)];
        const DryNode& from = nodes_[static_cast<size_t>(edge.from)];
        switch (from.status) {
            case DryStatus::kPruned:
            case DryStatus::kFails:
                return EdgeState::kDead;
            case DryStatus::kUnknown:
                return EdgeState::kMaybe;
            case DryStatus::kRuns:
                if (edge.label.empty()) return EdgeState::kCarries;
                if (!from.signal_known) return EdgeState::kMaybe;
                return from.signal == edge.label ? EdgeState::kCarries : EdgeState::kDead;
        }
        return EdgeState::kMaybe;
    }

    class Context final : public DryRunContext {
      public:
        Context(const DryRunner& runner, int index) : runner_(runner), index_(index) {}
        std::optional<std::string> Input() const override { return runner_.InputOf(index_); }
        std::optional<std::string> Render(const Template& text) const override {
            return runner_.Render(text, index_);
        }

      private:
        const DryRunner& runner_;
        int index_;
    };

    std::optional<std::string> InputOf(int index) const {
        const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
        if (node.in_edges.empty()) return input_;
        std::string joined;
        bool first = true;
        for (int e : node.in_edges) {
            EdgeState state = Edge(e);
            if (state == EdgeState::kMaybe) return std::nullopt;
            if (state == EdgeState::kDead) continue;
            const DryNode& from =
                nodes_[static_cast<size_t>(plan_.edges[static_cast<size_t>(e)].from)];
            if (!from.output_known) return std::nullopt;
            if (!first) joined += kCollectSeparator;
            joined += from.output;
            first = false;
        }
        return joined;
    }

    // nullopt: not knowable; a value (possibly the placeholder as written) otherwise.
    std::optional<std::string> Render(const Template& text, int index) const {
        using Kind = Template::Segment::Kind;
        bool unknown = false;
        std::string scratch;
        std::string out =
            text.Render([&](const Template::Segment& segment) -> std::optional<std::string_view> {
                std::optional<std::string> whole;
                switch (segment.kind) {
                    case Kind::kInput:
                        whole = InputOf(index);
                        if (!whole) unknown = true;
                        break;
                    case Kind::kRunInput:
                        whole = input_;
                        break;
                    case Kind::kNode: {
                        const DryNode& n = nodes_[static_cast<size_t>(segment.node)];
                        if (n.status == DryStatus::kRuns && n.output_known) {
                            whole = n.output;
                        } else if (n.status == DryStatus::kRuns ||
                                   n.status == DryStatus::kUnknown) {
                            unknown = true;
                        }
                        break;
                    }
                    case Kind::kVariable:
                        for (int source : segment.sources) {
                            const DryNode& n = nodes_[static_cast<size_t>(source)];
                            if (n.status == DryStatus::kPruned || n.status == DryStatus::kFails) {
                                continue;
                            }
                            if (n.status == DryStatus::kRuns && n.output_known) {
                                whole = n.output;
                            } else {
                                unknown = true;
                            }
                            break;
                        }
                        break;
                    case Kind::kExtra:
                        unknown = true;
                        break;
                    case Kind::kLiteral:
                        break;
                }
                if (!whole) return std::nullopt;
                if (!segment.path.empty()) {
                    auto field = FieldOf(*whole, segment.path);
                    if (!field) return std::nullopt;
                    whole = std::move(field);
                }
                scratch = std::move(*whole);
                return std::string_view(scratch);
            });
        if (unknown) return std::nullopt;
        return out;
    }

    void Decide(int index) {
        const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
        DryNode& result = nodes_[static_cast<size_t>(index)];
        result.status = DryStatus::kRuns;
        if (!node.in_edges.empty()) {
            bool carries = false, all_dead = true;
            for (int e : node.in_edges) {
                EdgeState state = Edge(e);
                carries = carries || state == EdgeState::kCarries;
                all_dead = all_dead && state == EdgeState::kDead;
            }
            result.status = carries    ? DryStatus::kRuns
                            : all_dead ? DryStatus::kPruned
                                       : DryStatus::kUnknown;
        }
        if (result.status != DryStatus::kRuns) return;
        std::optional<DryOutcome> outcome;
        if (node.type != nullptr && node.config) {
            outcome = node.type->DryRun(*node.config, Context(*this, index));
        }
        if (outcome) {
            if (outcome->fails) {
                result.status = DryStatus::kFails;
            } else {
                result.output = outcome->output;
                result.output_known = outcome->output_known;
                result.signal = outcome->signal;
                result.signal_known = true;
            }
            result.why = outcome->why;
            return;
        }
        // Only running it can tell its output; its signal is known when it emits none.
        const bool emits =
            node.type != nullptr && node.config && !node.type->Signals(*node.config).empty();
        result.signal_known = !emits && node.on_error != OnError::kEmitSignal;
        result.why = node.kind == NodeKind::kAgent ? "its output comes from a model"
                     : emits                       ? "only running it decides its signal"
                                                   : "its output is known only when it runs";
    }

    const Plan& plan_;
    std::string input_;
    std::vector<DryNode> nodes_;
};

std::string Signals(const PlanNode& node) {
    if (node.type == nullptr || !node.config) return "";
    auto signals = node.type->Signals(*node.config);
    return signals.empty() ? "" : Join(signals, ", ");
}

std::string From(const Plan& plan, const PlanNode& node) {
    std::vector<std::string> parts;
    for (int e : node.in_edges) {
        const PlanEdge& edge = plan.edges[static_cast<size_t>(e)];
        std::string part = plan.nodes[static_cast<size_t>(edge.from)].id;
        if (!edge.label.empty()) part += " (on " + Quoted(edge.label) + ")";
        parts.push_back(std::move(part));
    }
    return Join(parts, ", ");
}

std::string OutputName(const Plan& plan) {
    if (plan.output_node >= 0) return plan.nodes[static_cast<size_t>(plan.output_node)].id;
    std::vector<std::string> sinks;
    for (int s : plan.sinks) sinks.push_back(plan.nodes[static_cast<size_t>(s)].id);
    return "a JSON object of the sinks' outputs (" + Join(sinks, ", ") + ")";
}

std::string_view StatusName(DryStatus status) {
    switch (status) {
        case DryStatus::kRuns:
            return "runs";
        case DryStatus::kPruned:
            return "pruned";
        case DryStatus::kUnknown:
            return "unknown";
        case DryStatus::kFails:
            return "fails";
    }
    return "unknown";
}

std::string Ids(const Plan& plan, const std::vector<DryNode>& dry, DryStatus status) {
    std::vector<std::string> ids;
    for (const auto& layer : plan.layers) {
        for (int i : layer) {
            if (dry[static_cast<size_t>(i)].status == status) {
                ids.push_back(plan.nodes[static_cast<size_t>(i)].id);
            }
        }
    }
    return ids.empty() ? "(none)" : Join(ids, ", ");
}

std::string Shape(const PlanNode& node) {
    const std::string& t = node.type_name;
    if (t == "condition" || t == "router") return "diamond";
    if (t == "fork" || t == "join") return "box, style=bold";
    if (t == "human_task") return "hexagon";
    if (t == "gate" || t == "eval_gate") return "octagon";
    return "box, style=rounded";
}

std::string DotEscape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

std::string MermaidEscape(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '"') {
            out += "#quot;";
        } else if (c == '|') {
            out += "#124;";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::vector<DryNode> DryRun(const Plan& plan, const std::string& input) {
    return DryRunner(plan, input).Run();
}

std::string DagText(const Plan& plan, const std::optional<std::string>& input) {
    std::ostringstream out;
    out << "workflow: " << plan.workflow_name << " (a graph: " << plan.nodes.size() << " nodes, "
        << plan.edges.size() << " edges)\n";
    if (!plan.description.empty()) out << "description: " << plan.description << "\n";
    out << "definition: sha256:" << plan.definition_sha256 << "\n";
    if (!plan.inputs.empty()) {
        out << "inputs:\n";
        for (const auto& in : plan.inputs) {
            out << "  " << in.name << ": " << in.type;
            if (in.required) out << ", required";
            if (in.default_value) out << ", default " << json::serialize(*in.default_value);
            if (!in.description.empty()) out << " — " << in.description;
            out << "\n";
        }
    }
    out << "agents:\n";
    for (const auto& agent : plan.agents) {
        out << "  " << agent.name << ": " << agent.model;
        if (!agent.tools.empty()) out << " tools=[" << Join(agent.tools, ", ") << "]";
        out << "\n";
    }
    for (size_t layer = 0; layer < plan.layers.size(); ++layer) {
        const auto& members = plan.layers[layer];
        out << "layer " << layer + 1 << (members.size() > 1 ? " (concurrent)" : "") << ":\n";
        for (int index : members) {
            const PlanNode& node = plan.nodes[static_cast<size_t>(index)];
            out << "  " << node.id << " [" << node.type_name << "]";
            if (const auto* agent = plan.AgentOf(node)) {
                out << " agent=" << agent->name;
            }
            std::string signals = Signals(node);
            if (!signals.empty()) out << " emits: " << signals;
            if (node.on_error != OnError::kFail) {
                out << " on_error=" << OnErrorName(node.on_error);
            }
            if (node.max_attempts > 1) out << " attempts<=" << node.max_attempts;
            if (!node.output_var.empty()) out << " -> {{" << node.output_var << "}}";
            out << "\n";
            out << "    from: "
                << (node.in_edges.empty() ? std::string("the run input") : From(plan, node))
                << "\n";
            if (node.fork >= 0) {
                out << "    branch " << node.branch + 1 << " of fork "
                    << plan.nodes[static_cast<size_t>(node.fork)].id << "\n";
            }
            if (node.kind == NodeKind::kAgent) {
                out << "    prompt:\n";
                for (const auto& line : Split(node.prompt.source(), '\n')) {
                    out << "      | " << line << "\n";
                }
            }
        }
    }
    out << "output: " << OutputName(plan) << "\n";
    if (input) {
        auto dry = DryRun(plan, *input);
        out << "dry run on the input " << *input << " (no model calls):\n";
        for (const auto& layer : plan.layers) {
            for (int index : layer) {
                const DryNode& d = dry[static_cast<size_t>(index)];
                out << "  " << plan.nodes[static_cast<size_t>(index)].id << ": "
                    << StatusName(d.status);
                if (d.status == DryStatus::kRuns && d.signal_known && !d.signal.empty()) {
                    out << ", signal " << Quoted(d.signal);
                }
                if (!d.why.empty() && d.status != DryStatus::kPruned) out << " (" << d.why << ")";
                out << "\n";
            }
        }
        out << "would run: " << Ids(plan, dry, DryStatus::kRuns) << "\n";
        out << "pruned: " << Ids(plan, dry, DryStatus::kPruned) << "\n";
        out << "unknown until run time: " << Ids(plan, dry, DryStatus::kUnknown) << "\n";
        std::string fails = Ids(plan, dry, DryStatus::kFails);
        if (fails != "(none)") out << "would fail: " << fails << "\n";
    }
    return out.str();
}

std::string DagJson(const Plan& plan, const std::optional<std::string>& input) {
    json::object root;
    root["workflow"] = plan.workflow_name;
    root["description"] = plan.description;
    root["definition_sha256"] = plan.definition_sha256;
    root["form"] = "dag";
    json::array inputs;
    for (const auto& in : plan.inputs) {
        json::object i;
        i["name"] = in.name;
        i["type"] = in.type;
        i["required"] = in.required;
        if (in.default_value) i["default"] = *in.default_value;
        i["description"] = in.description;
        inputs.push_back(std::move(i));
    }
    root["inputs"] = std::move(inputs);
    json::array agents;
    for (const auto& agent : plan.agents) {
        agents.push_back(json::object{{"name", agent.name}, {"model", agent.model}});
    }
    root["agents"] = std::move(agents);
    json::array nodes;
    for (const auto& node : plan.nodes) {
        json::object n;
        n["id"] = node.id;
        n["type"] = node.type_name;
        n["layer"] = node.layer + 1;
        if (const auto* agent = plan.AgentOf(node)) n["agent"] = agent->name;
        if (node.kind == NodeKind::kAgent) n["prompt"] = node.prompt.source();
        json::array signals;
        if (node.type != nullptr && node.config) {
            for (auto& s : node.type->Signals(*node.config)) signals.emplace_back(s);
        }
        n["signals"] = std::move(signals);
        n["on_error"] = std::string(OnErrorName(node.on_error));
        n["max_attempts"] = node.max_attempts;
        n["timeout_ms"] = node.timeout_ms;
        if (!node.output_var.empty()) n["output_key"] = node.output_var;
        if (node.fork >= 0) {
            n["fork"] = plan.nodes[static_cast<size_t>(node.fork)].id;
            n["branch"] = node.branch + 1;
        }
        if (node.join >= 0) {
            n[node.type_name == "fork" ? "join" : "fork"] =
                plan.nodes[static_cast<size_t>(node.join)].id;
        }
        nodes.push_back(std::move(n));
    }
    root["nodes"] = std::move(nodes);
    json::array edges;
    for (const auto& edge : plan.edges) {
        json::object e;
        e["from"] = plan.nodes[static_cast<size_t>(edge.from)].id;
        e["to"] = plan.nodes[static_cast<size_t>(edge.to)].id;
        if (!edge.label.empty()) e["signal"] = edge.label;
        edges.push_back(std::move(e));
    }
    root["edges"] = std::move(edges);
    json::array layers;
    for (const auto& layer : plan.layers) {
        json::array ids;
        for (int i : layer) ids.emplace_back(plan.nodes[static_cast<size_t>(i)].id);
        layers.push_back(std::move(ids));
    }
    root["layers"] = std::move(layers);
    if (plan.output_node >= 0) {
        root["output"] = plan.nodes[static_cast<size_t>(plan.output_node)].id;
    } else {
        json::array sinks;
        for (int s : plan.sinks) sinks.emplace_back(plan.nodes[static_cast<size_t>(s)].id);
        root["output"] = nullptr;
        root["sinks"] = std::move(sinks);
    }
    if (input) {
        auto dry = DryRun(plan, *input);
        json::object d;
        d["input"] = *input;
        json::array list;
        json::object by_status{{"runs", json::array()},
                               {"pruned", json::array()},
                               {"unknown", json::array()},
                               {"fails", json::array()}};
        for (const auto& layer : plan.layers) {
            for (int index : layer) {
                const DryNode& node = dry[static_cast<size_t>(index)];
                const std::string& id = plan.nodes[static_cast<size_t>(index)].id;
                json::object n;
                n["id"] = id;
                n["status"] = std::string(StatusName(node.status));
                if (node.status == DryStatus::kRuns && node.signal_known) n["signal"] = node.signal;
                if (node.status == DryStatus::kRuns && node.output_known) n["output"] = node.output;
                if (!node.why.empty()) n["why"] = node.why;
                list.push_back(std::move(n));
                by_status[StatusName(node.status)].as_array().emplace_back(id);
            }
        }
        d["nodes"] = std::move(list);
        for (auto& [key, value] : by_status) d[key] = std::move(value);
        root["dry_run"] = std::move(d);
    }
    return json::serialize(root) + "\n";
}

std::string DagDot(const Plan& plan) {
    std::ostringstream out;
    out << "digraph \"" << DotEscape(plan.workflow_name) << "\" {\n";
    out << "  rankdir=TB;\n";
    out << "  \"__input\" [label=\"input\", shape=ellipse];\n";
    for (const auto& node : plan.nodes) {
        out << "  \"" << DotEscape(node.id) << "\" [label=\"" << DotEscape(node.id) << "\\n"
            << DotEscape(node.type_name) << "\", shape=" << Shape(node) << "];\n";
    }
    for (const auto& node : plan.nodes) {
        if (node.in_edges.empty()) out << "  \"__input\" -> \"" << DotEscape(node.id) << "\";\n";
    }
    for (const auto& edge : plan.edges) {
        out << "  \"" << DotEscape(plan.nodes[static_cast<size_t>(edge.from)].id) << "\" -> \""
            << DotEscape(plan.nodes[static_cast<size_t>(edge.to)].id) << "\"";
        if (!edge.label.empty()) out << " [label=\"" << DotEscape(edge.label) << "\"]";
        out << ";\n";
    }
    out << "}\n";
    return out.str();
}

std::string DagMermaid(const Plan& plan) {
    std::ostringstream out;
    out << "flowchart TD\n";
    out << "  input([input])\n";
    for (const auto& node : plan.nodes) {
        const std::string label = MermaidEscape(node.id) + "<br/>" + node.type_name;
        const std::string& t = node.type_name;
        if (t == "condition" || t == "router") {
            out << "  n" << node.index << "{\"" << label << "\"}\n";
        } else if (t == "human_task") {
            out << "  n" << node.index << "{{\"" << label << "\"}}\n";
        } else {
            out << "  n" << node.index << "[\"" << label << "\"]\n";
        }
    }
    for (const auto& node : plan.nodes) {
        if (node.in_edges.empty()) out << "  input --> n" << node.index << "\n";
    }
    for (const auto& edge : plan.edges) {
        out << "  n" << edge.from << " -->";
        if (!edge.label.empty()) out << "|\"" << MermaidEscape(edge.label) << "\"|";
        out << " n" << edge.to << "\n";
    }
    return out.str();
}

}  // namespace strowger::model::internal
