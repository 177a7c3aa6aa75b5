// `agent`: an LLM agent (CMDC's :agent). Its config is the agent loop's node: a prompt, the
// agent (a name from `agents:`, an inline agent in the config, or the workflow's
// default_model), and the mode. Executed by the run's agent loop (tools, approvals, budgets,
// max_turns, parked calls), not by Execute: the upstream outputs are appended to its prompt
// as a labelled section (CMDC's dep_results).
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

constexpr std::string_view kInlineAgentFields[] = {
    "model",       "system_prompt",     "tools",   "require_approval", "max_turns",        "limits",
    "temperature", "max_output_tokens", "network", "http_hosts",       "private_addresses"};

class AgentType final : public NodeType {
  public:
    std::string_view name() const override { return "agent"; }
    std::string_view summary() const override {
        return "an LLM agent: the prompt with the upstream outputs appended, its tools and limits";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","properties":{
            "prompt":{"type":"string","default":"{{input}}"},
            "agent":{"description":"a name from agents:, or an inline agent",
                     "oneOf":[{"type":"string"},{"type":"object"}]},
            "model":{"type":"string"},"system_prompt":{"type":"string"},
            "tools":{"type":"array","items":{"type":"string"}},
            "require_approval":{"type":"array","items":{"type":"string"}},
            "max_turns":{"type":"integer","minimum":1},"limits":{"type":"object"},
            "temperature":{"type":"number","minimum":0},
            "max_output_tokens":{"type":"integer","minimum":1},
            "network":{"type":"boolean"},"http_hosts":{"type":"array","items":{"type":"string"}},
            "private_addresses":{"type":"boolean"},
            "mode":{"enum":["standalone","pool","subagent"],"default":"standalone"},
            "pool_key":{"type":"string"},
            "subagents":{"type":"array","items":{"oneOf":[{"type":"string"},{"type":"object"}]}},
            "upstream":{"type":"boolean","default":true},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }

    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"prompt", "agent", "model", "system_prompt", "tools",
                              "require_approval", "max_turns", "limits", "temperature",
                              "max_output_tokens", "network", "http_hosts", "private_addresses",
                              "mode", "pool_key", "subagents", "upstream", "output_key", "name"});
        model::PlanNode& node = context.plan_node();
        auto config = std::make_shared<Config<AgentNodeConfig>>();
        AgentNodeConfig& c = config->value;
        std::string prompt = String(context, "prompt").value_or("{{input}}");
        node.prompt = context.ParseTemplate(prompt, "prompt");
        bool inline_agent = false;
        for (auto field : kInlineAgentFields) {
            if (Field(context, field) != nullptr) inline_agent = true;
        }
        if (const json::value* agent = Field(context, "agent")) {
            if (inline_agent) {
                context.Error("agent",
                              "give agent, or the agent's own fields (model, "
                              "system_prompt, ...), not both");
            }
            node.agent = context.ResolveAgent(*agent, "agent");
        } else if (inline_agent) {
            json::object own;
            for (auto field : kInlineAgentFields) {
                if (const json::value* v = Field(context, field)) own[field] = *v;
            }
            own["name"] = context.spec().id;
            node.agent = context.ResolveAgent(own, "");
        } else {
            node.agent = context.DefaultAgent("");
        }
        node.upstream_section = Bool(context, "upstream").value_or(true);
        c.mode = OneOf(context, "mode", {"standalone", "pool", "subagent"}).value_or("standalone");
        c.pool_key = String(context, "pool_key").value_or(context.spec().id);
        if (Field(context, "pool_key") != nullptr && c.mode != "pool") {
            context.Warn("pool_key", "pool_key is only used by mode pool");
        }
        if (const json::value* subagents = Field(context, "subagents")) {
            if (c.mode != "subagent") {
                context.Error("subagents", "subagents are for mode subagent");
            } else if (!subagents->is_array()) {
                context.Error("subagents", "expected a list of agents");
            } else {
                for (size_t i = 0; i < subagents->get_array().size(); ++i) {
                    int agent = context.ResolveAgent(subagents->get_array()[i],
                                                     "subagents[" + std::to_string(i) + "]");
                    if (agent >= 0) c.subagents.push_back(agent);
                }
            }
        } else if (c.mode == "subagent") {
            context.Error("mode", "mode subagent needs subagents: the agents it may call");
        }
        if (node.agent < 0) return nullptr;
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun&) const override {
        // Agent nodes run through the run's agent loop (NodeKind::kAgent).
        co_return NodeOutcome::Failed(Error(ErrorCode::kInternal, "agent nodes run as agents"));
    }
};

}  // namespace

const NodeType& AgentNode() {
    static const AgentType type;
    return type;
}

}  // namespace strowger::engine::nodes
