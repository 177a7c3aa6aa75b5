// `human_task` (also `human_approval`, `approval`): the run waits for people (CMDC's
// :human_task). It records its task (title from a template, assignees, approval_mode single
// or quorum of required_count distinct actors, the due time of timeout_ms) and stops; the run
// holds nothing in memory. Decisions come through Engine::Decide (approve, reject,
// request_changes, progress); a terminal one (or the quorum's last approval) completes the task
// with its signal, and the node completes with the task's output and that signal. When the
// timeout is due (a durable timer: the run record's wake_at), on_timeout applies:
// proceed_with_default (default_signal, default_output), reject, or fail.
#include "core/json.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

struct HumanTaskConfig {
    std::string task_id;
    model::Template title;
    std::string description;
    std::vector<std::string> assignees;
    std::string approval_mode = "single";
    int64_t required_count = 1;
    int64_t timeout_ms = 0;  // 0: none
    std::string on_timeout = "proceed_with_default";
    std::string default_signal = "timeout";
    std::string default_output;
};

class HumanTaskType final : public NodeType {
  public:
    std::string_view name() const override { return "human_task"; }
    std::string_view summary() const override {
        return "waits for people to approve, reject or request changes (quorum, timeout)";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","properties":{
            "task_id":{"type":"string"},"title":{"type":"string"},"description":{"type":"string"},
            "assignee_refs":{"type":"array","items":{"type":"string"}},
            "approval_mode":{"enum":["single","quorum"],"default":"single"},
            "required_count":{"type":"integer","minimum":1},
            "timeout_ms":{"type":"integer","minimum":1,"maximum":31536000000},
            "on_timeout":{"enum":["proceed_with_default","fail","reject"],
                          "default":"proceed_with_default"},
            "default_signal":{"type":"string","default":"timeout"},"default_output":{},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }
    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"task_id", "title", "description", "assignee_refs", "approval_mode",
                              "required_count", "timeout_ms", "on_timeout", "default_signal",
                              "default_output", "output_key"});
        auto config = std::make_shared<Config<HumanTaskConfig>>();
        HumanTaskConfig& c = config->value;
        c.task_id = String(context, "task_id").value_or(context.spec().id);
        c.title = context.ParseTemplate(
            String(context, "title").value_or("Decide on " + context.spec().id), "title");
        c.description = String(context, "description").value_or("");
        c.assignees = StringList(context, "assignee_refs").value_or(std::vector<std::string>{});
        c.approval_mode = OneOf(context, "approval_mode", {"single", "quorum"}).value_or("single");
        c.required_count = Integer(context, "required_count", 1).value_or(1);
        if (c.approval_mode == "single" && c.required_count != 1) {
            context.Warn("required_count", "required_count is for approval_mode quorum");
            c.required_count = 1;
        }
        c.timeout_ms = Integer(context, "timeout_ms", 1, model::kMaxDurationMs).value_or(0);
        c.on_timeout = OneOf(context, "on_timeout", {"proceed_with_default", "fail", "reject"})
                           .value_or("proceed_with_default");
        c.default_signal = String(context, "default_signal").value_or("timeout");
        if (const json::value* output = Field(context, "default_output")) {
            c.default_output = Text(*output);
            if (output->is_object() || output->is_array()) {
                auto canonical = CanonicalJson(*output);
                if (canonical) c.default_output = *canonical;
            }
        }
        if (c.timeout_ms == 0 && Field(context, "on_timeout") != nullptr) {
            context.Warn("on_timeout", "on_timeout applies only with timeout_ms");
        }
        return config;
    }
    std::vector<std::string> Signals(const model::NodeConfig& config) const override {
        const auto& c = static_cast<const Config<HumanTaskConfig>&>(config).value;
        std::vector<std::string> signals = {"approved", "rejected", "request_changes"};
        if (c.timeout_ms > 0 && c.on_timeout == "proceed_with_default") {
            signals.push_back(c.default_signal);
        }
        return signals;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<HumanTaskConfig>>().value;
        const ledger::HumanTask* task = run.run_state().FindTask(c.task_id);
        if (task == nullptr) {
            auto details = std::make_shared<ledger::TaskDetails>();
            details->description = c.description;
            details->assignees = c.assignees;
            details->approval_mode = c.approval_mode;
            details->required_count = c.required_count;
            if (c.timeout_ms > 0) {
                details->due = run.Now() + std::chrono::milliseconds(c.timeout_ms);
                details->on_timeout = c.on_timeout;
                details->default_signal = c.default_signal;
                details->default_output = c.default_output;
                // The timer first, so a crash between the two leaves a timer and no task
                // rather than a waiting task without its timer.
                if (!co_await run.ArmTimer(*details->due)) co_return NodeOutcome::Stopped();
            }
            ledger::HumanTaskCreated created{c.task_id, "task", run.Render(c.title), {},
                                             {},        {},     std::move(details)};
            std::vector<ledger::Payload> events;
            events.push_back(std::move(created));
            if (!co_await run.Record(std::move(events))) co_return NodeOutcome::Stopped();
            co_return NodeOutcome::Waiting();
        }
        if (task->completed) co_return NodeOutcome::Completed(task->output, task->signal);
        const auto* details = task->details.get();
        if (details != nullptr && details->due && *details->due <= run.Now()) {
            if (details->on_timeout == "fail") {
                co_return NodeOutcome::Failed(Error(ErrorCode::kDeadlineExceeded,
                                                    "human task " + c.task_id + " timed out",
                                                    ErrorDetails{0, -1, -1, "task_timeout"}));
            }
            const bool reject = details->on_timeout == "reject";
            ledger::HumanTaskCompleted completed;
            completed.task_id = c.task_id;
            completed.signal = reject ? "rejected" : details->default_signal;
            completed.output =
                reject ? R"({"decision":"rejected","timed_out":true})" : details->default_output;
            completed.reason = "timeout";
            std::string output = completed.output, signal = completed.signal;
            std::vector<ledger::Payload> events;
            events.push_back(std::move(completed));
            if (!co_await run.Record(std::move(events))) co_return NodeOutcome::Stopped();
            co_return NodeOutcome::Completed(std::move(output), std::move(signal));
        }
        co_return NodeOutcome::Waiting();
    }
};

}  // namespace

const NodeType& HumanTaskNode() {
    static const HumanTaskType type;
    return type;
}

}  // namespace strowger::engine::nodes
