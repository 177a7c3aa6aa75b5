// One labelled model call as an agent, charged to a node: what typed DAG nodes ask (a debate's
// arguments, a hierarchy's workers, a for_each item, a router's or gate's judge) and what an
// agent in mode `subagent` gets when it calls one of its subagents as a tool.
//
// A subagent call (docs/formats/workflow.md, "agent"): the agent node's model sees one tool
// per agent of `config.subagents`, named `agent_<name>`, taking {"task": "..."}. Calling it is
// an ordinary tool call (tool.call committed first, tool.result after, read_only) whose
// execution is a child conversation of one model call as that agent — its own model, system
// prompt and per-step limits — recorded under the node as llm.request / llm.response labelled
// `subagent:<name>:<12 hex of SHA-256 of the task>` and charged to the node's and the run's
// budgets. Subagents answer; they do not call tools or further subagents (depth 1). After a
// crash the answer recorded under that label is returned without asking again.
#include "core/json.hpp"
#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "engine/internal/run.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"

namespace strowger::engine::internal {

using model::PlanNode;

namespace {

constexpr char kTaskSchema[] =
    R"({"type":"object","properties":{"task":{"type":"string","description":"what the )"
    R"(subagent should do, with everything it needs to know"}},"required":["task"]})";

class SubagentTool final : public tools::Tool {
  public:
    SubagentTool(std::weak_ptr<Run> run, int node, int agent, std::string agent_name,
                 providers::ToolSpec spec)
        : run_(std::move(run)),
          node_(node),
          agent_(agent),
          agent_name_(std::move(agent_name)),
          spec_(std::move(spec)) {}

    const providers::ToolSpec& spec() const override { return spec_; }
    tools::SafetyClass safety() const override { return tools::SafetyClass::kReadOnly; }

    Awaitable<Result<tools::ToolResult>> Call(std::string arguments,
                                              tools::ToolContext context) override {
        auto parsed = ParseJson(arguments);
        const json::object* object =
            parsed && parsed->is_object() ? &parsed->get_object() : nullptr;
        const json::value* task = object ? object->if_contains("task") : nullptr;
        if (task == nullptr || !task->is_string() || task->get_string().empty()) {
            co_return tools::ToolResult{"error: expected {\"task\": \"...\"}", true};
        }
        std::shared_ptr<Run> run = run_.lock();
        if (!run) co_return std::unexpected(CancelledError("the run is stopping"));
        std::string text(task->get_string());
        std::string label = "subagent:" + agent_name_ + ":" + Sha256Hex(text).substr(0, 12);
        auto answer = co_await run->AskAgent(node_, agent_, std::move(label), std::move(text),
                                             context.deadline);
        if (!answer) {
            if (answer.error().code() == ErrorCode::kCancelled) {
                co_return std::unexpected(answer.error());
            }
            co_return tools::ToolResult{"error: " + answer.error().message(), true};
        }
        co_return tools::ToolResult{std::move(*answer), false};
    }

  private:
    std::weak_ptr<Run> run_;
    int node_;
    int agent_;
    std::string agent_name_;
    providers::ToolSpec spec_;
};

}  // namespace

std::optional<Error> Run::OverBudgetFor(int index, const model::AgentSpec& agent) const {
    const auto& ns = state_.nodes[static_cast<size_t>(index)];
    const RunBudget limits = Budget();
    auto usd = [](double dollars) { return SaturatingFromDouble(dollars * 1e9 + 0.5); };
    auto over = [](const char* what, int64_t used, int64_t max) -> std::optional<Error> {
        if (used < max) return std::nullopt;
        return Error(ErrorCode::kResourceExhausted,
                     std::string("budget exceeded: ") + what + " " + std::to_string(used) +
                         " >= " + std::to_string(max),
                     ErrorDetails{0, -1, -1, "budget_exceeded"});
    };
    if (agent.limits.max_tokens) {
        if (auto e = over("tokens", ns.spent_tokens, *agent.limits.max_tokens)) return e;
    }
    if (agent.limits.max_cost_usd) {
        if (auto e =
                over("cost (nano-USD)", ns.spent_cost_nano_usd, usd(*agent.limits.max_cost_usd))) {
            return e;
        }
    }
    if (limits.max_tokens) {
        const int64_t used = SaturatingAdd(state_.tokens_in, state_.tokens_out);
        if (auto e = over("run tokens", used, *limits.max_tokens)) return e;
    }
    if (limits.max_cost_nano_usd) {
        if (auto e = over("run cost (nano-USD)", state_.cost_nano_usd, *limits.max_cost_nano_usd)) {
            return e;
        }
    }
    return std::nullopt;
}

Awaitable<Result<std::string>> Run::AskAgent(int index, int agent, std::string label,
                                             std::string prompt, Deadline deadline) {
    const PlanNode& node = plan_.nodes[static_cast<size_t>(index)];
    if (const std::string* answer = state_.nodes[static_cast<size_t>(index)].Answer(label)) {
        co_return *answer;
    }
    const auto& model = runtime_->models[static_cast<size_t>(agent)];
    if (!model) co_return std::unexpected(model.error());
    const model::AgentSpec& spec = plan_.agents[static_cast<size_t>(agent)];
    // Budgets: the run's, and the agent's per step (this node's spending).
    if (auto over = OverBudgetFor(index, spec)) co_return std::unexpected(*over);
    const int64_t attempt = state_.nodes[static_cast<size_t>(index)].attempt;
    {
        std::vector<ledger::NewEvent> request;
        request.push_back(
            {node.id, attempt,
             ledger::LlmRequest{model->provider_name, model->model, {}, prompt, 1, label}});
        if (!co_await Append(std::move(request), index) || NodeStopped(index)) {
            co_return CancelledError("the run is stopping");
        }
    }
    providers::CompletionRequest call;
    call.model = model->model;
    if (!spec.system_prompt.empty()) {
        call.messages.push_back({providers::Role::kSystem, spec.system_prompt, {}, {}, {}});
    }
    call.messages.push_back({providers::Role::kUser, prompt, {}, {}, {}});
    call.temperature = spec.temperature;
    call.max_output_tokens = spec.max_output_tokens;
    call.run_id = state_.run_id;
    call.node = node.id;
    call.agent = spec.name;
    call.attempt = attempt;
    call.turn = 1;
    const auto started = engine_->clock_.SteadyNow();
    auto completion = co_await model->provider->Complete(std::move(call), deadline);
    if (NodeStopped(index)) co_return CancelledError("the run is stopping");
    if (!completion) co_return std::unexpected(completion.error());
    const int64_t latency_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(engine_->clock_.SteadyNow() - started)
            .count();
    std::string content = ToValidUtf8(completion->content);
    ledger::LlmResponse response{content,
                                 {},
                                 completion->usage.input_tokens,
                                 completion->usage.output_tokens,
                                 model->pricing.CostNanoUsd(completion->usage),
                                 latency_ms,
                                 completion->finish_reason,
                                 1,
                                 std::move(label)};
    std::vector<ledger::NewEvent> recorded;
    recorded.push_back({node.id, attempt, std::move(response)});
    if (!co_await Append(std::move(recorded), index) || NodeStopped(index)) {
        co_return CancelledError("the run is stopping");
    }
    co_return content;
}

std::shared_ptr<const AgentToolSet> Run::WithSubagents(const PlanNode& node,
                                                       std::shared_ptr<const AgentToolSet> tools) {
    const auto* config =
        dynamic_cast<const nodes::Config<nodes::AgentNodeConfig>*>(node.config.get());
    if (config == nullptr || config->value.mode != "subagent") return tools;
    auto set = tools ? std::make_shared<AgentToolSet>(*tools) : std::make_shared<AgentToolSet>();
    for (int agent : config->value.subagents) {
        const model::AgentSpec& spec = plan_.agents[static_cast<size_t>(agent)];
        providers::ToolSpec tool_spec;
        tool_spec.name = SubagentToolName(spec.name);
        tool_spec.description =
            "Ask agent " + spec.name + " to do a task and return its answer" +
            (spec.description.empty() ? std::string(".") : ": " + spec.description);
        tool_spec.parameters_schema = kTaskSchema;
        AgentTool entry;
        entry.name = tool_spec.name;
        entry.tool = std::make_shared<SubagentTool>(weak_from_this(), node.index, agent, spec.name,
                                                    tool_spec);
        entry.safety = tools::SafetyClass::kReadOnly;
        set->specs.push_back(std::move(tool_spec));
        set->tools.push_back(std::move(entry));
    }
    return set;
}

std::string SubagentToolName(std::string_view agent) {
    std::string name = "agent_";
    for (char c : agent) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-';
        name.push_back(ok ? c : '_');
    }
    return name.substr(0, 64);
}

}  // namespace strowger::engine::internal
