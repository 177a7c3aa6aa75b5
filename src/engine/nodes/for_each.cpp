// `for_each`: dynamic fan-out (Argo's withItems, Conductor's dynamic fork, LangGraph's Send).
// `items` is a template yielding a JSON array (or a literal list); each item runs `node` (an
// inline agent node: its prompt sees {{item}}, {{item.field}} and {{index}}) with at most
// `max_parallel` items at once. Each item is durable on its own: its model call is labelled
// "item <index>" (an answer recorded before a crash is not asked again) and its end is
// for_each.item_completed, so a resumed or retried node runs only the items without a
// completed record. The output is the JSON array of the items' outputs in item order;
// `fail_strategy` is the join's: fail_fast (the first failure cancels the rest and fails the
// node), wait_all (every item runs, then any failure fails the node), tolerate (a failed
// item's slot is null; the node fails only if every item failed).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/nodes/child_input.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

constexpr std::string_view kItemAgentFields[] = {"model", "system_prompt", "temperature",
                                                 "max_output_tokens", "limits"};

struct ForEachConfig {
    model::Template items;
    std::optional<std::string> literal_items;  // items given as a list
    int agent = -1;
    model::Template prompt;
    std::optional<ChildInput> workflow;  // items run this child workflow instead of an agent
    int64_t max_parallel = 4;
    int64_t max_items = 10'000;
    std::string fail_strategy = "fail_fast";
};

// One item's slot: done once for_each.item_completed recorded it.
struct Slot {
    bool done = false;
    bool failed = false;
    std::string output;
    std::optional<Error> error;
};

// What the item workers share with the node's coroutine.
struct Shared {
    explicit Shared(const Executor& executor) : done(executor) {
        done.expires_at(asio::steady_timer::time_point::max());
    }
    std::vector<Slot> slots;
    size_t next = 0;
    size_t running = 0;
    bool stop = false;           // no new items (fail_fast failure, or the node stopping)
    bool stopped = false;        // the node is stopping: nothing more may be recorded
    bool record_failed = false;  // a Record returned false (the run is stopping)
    asio::steady_timer done;     // cancelled when the last worker ends
    std::vector<asio::cancellation_signal> signals;  // by worker
};

std::string ItemText(const json::value& item) {
    return item.is_string() ? std::string(item.get_string()) : JsonText(item);
}

// Item `i` as a child run of `workflow` (its input: the mapping, else the item).
// `slots`: how many items run at once (the children share the node's budget).
Awaitable<Result<std::string>> RunItemChild(NodeRun& run, const ChildInput& workflow,
                                            const std::map<std::string, std::string>& extras,
                                            size_t i, size_t slots) {
    auto child = co_await run.RunChild(workflow.child,
                                       RenderChildInput(run, workflow, extras.at("item"), extras),
                                       static_cast<int64_t>(i), static_cast<int64_t>(slots));
    if (!child) co_return std::unexpected(child.error());
    if (child->status != ledger::RunStatus::kCompleted) {
        co_return std::unexpected(ChildFailure(*child, workflow.file));
    }
    co_return std::move(child->output);
}

Awaitable<void> Work(NodeRun& run, const ForEachConfig& c, const json::array& items,
                     std::shared_ptr<Shared> shared, size_t worker) {
    while (!shared->stop) {
        while (shared->next < shared->slots.size() && shared->slots[shared->next].done) {
            ++shared->next;
        }
        if (shared->next >= shared->slots.size()) break;
        const size_t i = shared->next++;
        std::map<std::string, std::string> extras{{"item", ItemText(items[i])},
                                                  {"index", std::to_string(i)}};
        // (No conditional expression around co_await: GCC 12 miscompiles it.)
        Result<std::string> answer = std::unexpected(CancelledError("not run"));
        if (c.workflow) {
            answer = co_await RunItemChild(run, *c.workflow, extras, i, shared->signals.size());
        } else {
            answer = co_await run.Ask(c.agent, "item " + std::to_string(i),
                                      run.Render(c.prompt, extras));
        }
        if (shared->stopped || (shared->stop && !answer)) break;  // cancelled: not recorded
        ledger::ItemCompleted completed;
        completed.index = static_cast<int64_t>(i);
        if (answer) {
            completed.output = *answer;
        } else {
            completed.failed = true;
            completed.error = answer.error().message();
        }
        std::vector<ledger::Payload> events;
        events.push_back(std::move(completed));
        if (!co_await run.Record(std::move(events))) {
            shared->record_failed = true;
            shared->stop = true;
            break;
        }
        Slot& slot = shared->slots[i];
        slot.done = true;
        if (answer) {
            slot.output = std::move(*answer);
        } else {
            slot.failed = true;
            slot.error = answer.error();
            if (c.fail_strategy == "fail_fast") {
                shared->stop = true;
                for (size_t w = 0; w < shared->signals.size(); ++w) {
                    if (w != worker) shared->signals[w].emit(asio::cancellation_type::terminal);
                }
            }
        }
    }
}

class ForEachType final : public NodeType {
  public:
    std::string_view name() const override { return "for_each"; }
    std::string_view summary() const override {
        return "dynamic fan-out: one agent call or child run per item of a JSON array, at most "
               "max_parallel at once, each durable; the outputs as a JSON array";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["items"],"properties":{
            "items":{"description":"a template yielding a JSON array, or a list",
                     "oneOf":[{"type":"string"},{"type":"array"}]},
            "node":{"type":"object","properties":{"type":{"enum":["agent"]},
                    "config":{"type":"object"}},"additionalProperties":false},
            "workflow":{"type":"string","description":"a workflow file each item runs as a child run"},
            "input_mapping":{"type":"object","additionalProperties":{"type":"string"}},
            "definition":{"type":"object","description":"the pinned child, written by Strowger"},
            "max_parallel":{"type":"integer","minimum":1,"default":4},
            "max_items":{"type":"integer","minimum":1,"default":10000},
            "fail_strategy":{"enum":["fail_fast","wait_all","tolerate"],"default":"fail_fast"},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }

    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"items", "node", "workflow", "input_mapping", "definition",
                              "max_parallel", "max_items", "fail_strategy", "output_key"});
        auto config = std::make_shared<Config<ForEachConfig>>();
        ForEachConfig& c = config->value;
        const json::value* items = Field(context, "items");
        if (items == nullptr) {
            context.Error("items",
                          "a for_each needs items (a template yielding a JSON array, "
                          "e.g. \"{{plan.tasks}}\", or a list)");
        } else if (items->is_string()) {
            c.items = context.ParseTemplate(items->get_string(), "items");
        } else if (items->is_array()) {
            c.literal_items = JsonText(*items);
        } else {
            context.Error("items", "expected a template yielding a JSON array, or a list");
        }
        const json::value* node = Field(context, "node");
        if (Field(context, "workflow") != nullptr) {
            // Each item runs the child workflow: {{item}} / {{index}} in input_mapping.
            if (node != nullptr) context.Error("node", "give node or workflow, not both");
            c.workflow.emplace();
            if (!CompileChildInput(context, *c.workflow, {"item", "index"})) return nullptr;
        } else if (node == nullptr || !node->is_object()) {
            context.Error("node",
                          "a for_each needs node: {type: agent, config: {prompt: ...}}, or "
                          "workflow: a file each item runs as a child run");
            return nullptr;
        } else {
            CompileItemNode(context, node->get_object(), c);
        }
        if (auto n = Integer(context, "max_parallel", 1)) c.max_parallel = *n;
        if (auto n = Integer(context, "max_items", 1)) c.max_items = *n;
        c.fail_strategy = OneOf(context, "fail_strategy", {"fail_fast", "wait_all", "tolerate"})
                              .value_or("fail_fast");
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<ForEachConfig>>().value;
        const std::string text = c.literal_items ? *c.literal_items : run.Render(c.items);
        auto parsed = ParseJson(text);
        if (!parsed || !parsed->is_array()) {
            co_return NodeOutcome::Failed(
                Error(ErrorCode::kInvalidArgument,
                      "items is not a JSON array: " + CapForMessage(text, 200),
                      ErrorDetails{0, -1, -1, "items"}));
        }
        const json::array& items = parsed->get_array();
        if (static_cast<int64_t>(items.size()) > c.max_items) {
            co_return NodeOutcome::Failed(Error(ErrorCode::kInvalidArgument,
                                                std::to_string(items.size()) +
                                                    " items, more than max_items " +
                                                    std::to_string(c.max_items),
                                                ErrorDetails{0, -1, -1, "items"}));
        }
        auto shared = std::make_shared<Shared>(co_await asio::this_coro::executor);
        shared->slots.resize(items.size());
        // What earlier attempts finished (the last record of an item wins); a failed item
        // runs again.
        if (const ledger::NodeNotes* notes = run.state().notes.get()) {
            for (const auto& item : notes->items) {
                if (item.index < 0 || static_cast<size_t>(item.index) >= items.size()) continue;
                Slot& slot = shared->slots[static_cast<size_t>(item.index)];
                slot.done = !item.failed;
                slot.output = item.failed ? std::string() : item.output;
            }
        }
        size_t todo = 0;
        for (const auto& slot : shared->slots) todo += slot.done ? 0 : 1;
        const size_t workers = std::min(todo, static_cast<size_t>(c.max_parallel));
        shared->signals = std::vector<asio::cancellation_signal>(workers);
        shared->running = workers;
        for (size_t w = 0; w < workers; ++w) {
            asio::co_spawn(shared->done.get_executor(), Work(run, c, items, shared, w),
                           asio::bind_cancellation_slot(shared->signals[w].slot(),
                                                        [shared](std::exception_ptr) {
                                                            if (--shared->running == 0) {
                                                                shared->done.cancel();
                                                            }
                                                        }));
        }
        // Wait for the workers; if this node is interrupted (timeout, cancel, a join), pass
        // it on and wait until they have all stopped.
        while (shared->running > 0) {
            co_await shared->done.async_wait(asio::as_tuple(asio::use_awaitable));
            if (shared->running > 0) {
                shared->stop = true;
                shared->stopped = true;
                for (auto& signal : shared->signals) signal.emit(asio::cancellation_type::terminal);
                co_await asio::this_coro::reset_cancellation_state();
            }
        }
        if (shared->stopped || shared->record_failed) co_return NodeOutcome::Stopped();

        json::array outputs;
        std::vector<std::string> failures;
        const Error* first = nullptr;
        size_t completed = 0;
        for (size_t i = 0; i < shared->slots.size(); ++i) {
            const Slot& slot = shared->slots[i];
            if (slot.done && !slot.failed) {
                ++completed;
                auto value = ParseJson(slot.output);
                outputs.push_back(value && (value->is_object() || value->is_array())
                                      ? *value
                                      : json::value(slot.output));
            } else {
                outputs.emplace_back(nullptr);
            }
            if (slot.failed) {
                failures.push_back(std::to_string(i));
                if (first == nullptr && slot.error) first = &*slot.error;
            }
        }
        const bool fail =
            c.fail_strategy == "tolerate" ? !items.empty() && completed == 0 : !failures.empty();
        if (fail) {
            std::string message = std::string("item") + (failures.size() == 1 ? " " : "s ") +
                                  Join(failures, ", ") + " failed";
            if (first != nullptr) message += ": " + first->message();
            co_return NodeOutcome::Failed(Error(first ? first->code() : ErrorCode::kAborted,
                                                std::move(message),
                                                ErrorDetails{0, -1, -1, "item_failed"}));
        }
        NodeOutcome outcome = NodeOutcome::Completed(JsonText(json::value(std::move(outputs))));
        if (!failures.empty()) {
            json::array failed;
            for (const auto& f : failures) failed.emplace_back(std::stoll(f));
            outcome.detail = JsonText(json::value(json::object{{"failed_items", failed}}));
        }
        co_return outcome;
    }

  private:
    static void CompileItemNode(model::NodeCompileContext& context, const json::object& node,
                                ForEachConfig& c) {
        for (const auto& [key, unused] : node) {
            if (key != "type" && key != "config") {
                context.Error("node." + std::string(key),
                              "unknown field (node has type and "
                              "config)");
            }
        }
        if (const auto* type = node.if_contains("type");
            type != nullptr && !(type->is_string() && type->get_string() == "agent")) {
            context.Error("node.type", "a for_each item runs an agent node (type agent)");
            return;
        }
        static const json::object kEmpty;
        const json::object* config = &kEmpty;
        if (const auto* value = node.if_contains("config")) {
            if (!value->is_object()) {
                context.Error("node.config", "expected a mapping");
                return;
            }
            config = &value->get_object();
        }
        std::string prompt = "{{item}}";
        json::object own;
        for (const auto& [key, value] : *config) {
            const std::string at = "node.config." + std::string(key);
            if (key == "prompt") {
                if (!value.is_string()) {
                    context.Error(at, "expected a template");
                } else {
                    prompt = std::string(value.get_string());
                }
            } else if (key == "agent") {
                c.agent = context.ResolveAgent(value, at);
            } else if (std::find(std::begin(kItemAgentFields), std::end(kItemAgentFields), key) !=
                       std::end(kItemAgentFields)) {
                own[key] = value;
            } else {
                context.Error(at,
                              "unknown field of an item's agent node (prompt, agent, model, "
                              "system_prompt, temperature, max_output_tokens, limits): an "
                              "item makes one model call, without tools");
            }
        }
        if (!own.empty()) {
            if (c.agent >= 0)
                context.Error("node.config.agent",
                              "give agent, or the agent's "
                              "own fields, not both");
            own["name"] = context.spec().id + "/item";
            c.agent = context.ResolveAgent(own, "node.config");
        } else if (!config->contains("agent")) {
            c.agent = context.DefaultAgent("node");
        }
        c.prompt = context.ParseTemplate(prompt, "node.config.prompt", {"item", "index"});
    }
};

}  // namespace

const NodeType& ForEachNode() {
    static const ForEachType type;
    return type;
}

}  // namespace strowger::engine::nodes
