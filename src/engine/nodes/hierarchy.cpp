// `hierarchy`: a manager splits a goal into tasks, workers do them, a synthesizer combines the
// answers (issue 18, CMDC-style multi-agent). The manager answers a JSON list of tasks (static
// `tasks` skip it); `worker_assign` gives each task to one worker in turn (round_robin) or to
// two (pairwise, both answers going to the synthesizer); at most `max_parallel` workers run at
// once. The output is the synthesizer's answer, else the workers' answers joined. Every call is
// a labelled sub-call (manager, task2/worker:Coder, synthesizer): a hierarchy resumed after a
// crash asks again only the calls that had not answered. Errors name the part:
// "hierarchy failed: manager | worker | synthesizer: <reason>".
#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/nodes/ask_all.hpp"
#include "engine/nodes/config.hpp"
#include "engine/nodes/types.hpp"
#include "model/plan.hpp"

namespace strowger::engine::nodes {
namespace {

constexpr size_t kMaxTasks = 100;

struct HierarchyConfig {
    model::Template goal;
    int manager = -1;
    std::vector<std::string> tasks;  // static tasks (no manager)
    std::vector<int> workers;
    int synthesizer = -1;
    bool pairwise = false;
    int64_t max_parallel = 4;
};

// The manager's answer as a list of tasks: a JSON array of strings (or of objects, each taken
// as its "task" / "description" / "title" field, else its JSON), optionally in a ``` fence.
Result<std::vector<std::string>> ParseTasks(std::string_view answer) {
    std::string_view text = Trim(answer);
    if (StartsWith(text, "```")) {
        size_t start = text.find('\n');
        size_t end = text.rfind("```");
        if (start != std::string_view::npos && end != std::string_view::npos && end > start) {
            text = Trim(text.substr(start + 1, end - start - 1));
        }
    }
    const auto bad = [&](std::string why) -> Result<std::vector<std::string>> {
        return std::unexpected(Error(
            ErrorCode::kInvalidArgument,
            why + " (the answer was " + model::Quote(CapForMessage(Trim(answer), 200)) + ")"));
    };
    auto parsed = ParseJson(text);
    if (!parsed || !parsed->is_array()) return bad("expected a JSON list of tasks");
    std::vector<std::string> tasks;
    for (const auto& item : parsed->get_array()) {
        std::string task;
        if (item.is_string()) {
            task = std::string(item.get_string());
        } else if (item.is_object()) {
            for (std::string_view key : {"task", "description", "title"}) {
                if (const auto* v = item.get_object().if_contains(key); v && v->is_string()) {
                    task = std::string(v->get_string());
                    break;
                }
            }
            if (task.empty()) task = JsonText(item);
        } else {
            return bad("a task is not text");
        }
        if (Trim(task).empty()) return bad("a task is empty");
        tasks.push_back(std::move(task));
    }
    if (tasks.empty()) return bad("the list of tasks is empty");
    if (tasks.size() > kMaxTasks) {
        return bad("more than " + std::to_string(kMaxTasks) + " tasks");
    }
    return tasks;
}

class HierarchyType final : public NodeType {
  public:
    std::string_view name() const override { return "hierarchy"; }
    std::string_view summary() const override {
        return "a manager splits the goal into tasks (or static tasks), workers do them, a "
               "synthesizer combines their answers";
    }
    json::object ConfigSchema() const override {
        return json::parse(R"({"type":"object","required":["goal","workers"],
            "properties":{"goal":{"type":"string"},
            "manager":{"oneOf":[{"type":"string"},{"type":"object"}]},
            "tasks":{"type":"array","minItems":1,"maxItems":100,"items":{"type":"string"}},
            "workers":{"type":"array","minItems":1,
                "items":{"oneOf":[{"type":"string"},{"type":"object"}]}},
            "synthesizer":{"oneOf":[{"type":"string"},{"type":"object"}]},
            "worker_assign":{"enum":["round_robin","pairwise"],"default":"round_robin"},
            "max_parallel":{"type":"integer","minimum":1,"default":4},
            "output_key":{"type":"string"}},"additionalProperties":false})")
            .as_object();
    }

    std::shared_ptr<const model::NodeConfig> Compile(
        model::NodeCompileContext& context) const override {
        CheckFields(context, {"goal", "manager", "tasks", "workers", "synthesizer", "worker_assign",
                              "max_parallel", "output_key"});
        auto config = std::make_shared<Config<HierarchyConfig>>();
        HierarchyConfig& c = config->value;
        if (auto goal = RequiredString(context, "goal")) {
            c.goal = context.ParseTemplate(*goal, "goal");
        }
        const json::value* manager = Field(context, "manager");
        if (Field(context, "tasks") != nullptr) {
            if (auto tasks = StringList(context, "tasks")) {
                if (tasks->empty() || tasks->size() > kMaxTasks) {
                    context.Error("tasks", "expected 1 to " + std::to_string(kMaxTasks) + " tasks");
                }
                for (size_t i = 0; i < tasks->size(); ++i) {
                    if (Trim((*tasks)[i]).empty()) {
                        context.Error("tasks[" + std::to_string(i) + "]", "a task is empty");
                    }
                }
                c.tasks = std::move(*tasks);
            }
            if (manager != nullptr) {
                context.Error("manager", "give a manager or static tasks, not both");
            }
        } else if (manager != nullptr) {
            c.manager = context.ResolveAgent(*manager, "manager");
        } else {
            context.Error("",
                          "a hierarchy needs a manager (an agent splitting the goal into "
                          "tasks) or static tasks");
        }
        const json::value* workers = Field(context, "workers");
        if (workers == nullptr || !workers->is_array() || workers->get_array().empty()) {
            context.Error("workers", "a hierarchy needs workers (a list of agents)");
        } else {
            for (size_t i = 0; i < workers->get_array().size(); ++i) {
                std::string at = "workers[" + std::to_string(i) + "]";
                int agent = context.ResolveAgent(workers->get_array()[i], at);
                if (agent < 0) continue;
                // A worker's name labels its calls (agents' names are unique in a plan).
                if (std::find(c.workers.begin(), c.workers.end(), agent) != c.workers.end()) {
                    context.Error(at, "this worker is listed twice");
                    continue;
                }
                c.workers.push_back(agent);
            }
        }
        if (const json::value* synthesizer = Field(context, "synthesizer")) {
            c.synthesizer = context.ResolveAgent(*synthesizer, "synthesizer");
        }
        if (Field(context, "worker_assign") != nullptr) {
            auto assign = OneOf(context, "worker_assign", {"round_robin", "pairwise"});
            c.pairwise = assign && *assign == "pairwise";
            if (c.pairwise && workers != nullptr && workers->is_array() &&
                workers->get_array().size() < 2) {
                context.Error("worker_assign", "pairwise needs at least two workers");
            }
        }
        if (Field(context, "max_parallel") != nullptr) {
            if (auto n = Integer(context, "max_parallel", 1)) c.max_parallel = *n;
        }
        return config;
    }

    Awaitable<NodeOutcome> Execute(NodeRun& run) const override {
        const auto& c = run.config<Config<HierarchyConfig>>().value;
        const std::string goal = run.Render(c.goal);
        std::vector<std::string> tasks = c.tasks;
        if (tasks.empty()) {
            std::string prompt =
                "Split this goal into tasks for " + std::to_string(c.workers.size()) +
                " worker(s). Answer with a JSON list of tasks (strings) only.\n\nGoal:\n" + goal;
            auto answer = co_await run.Ask(c.manager, "manager", std::move(prompt));
            if (!answer) co_return SubCallFailure("hierarchy", "manager", answer.error());
            auto parsed = ParseTasks(*answer);
            if (!parsed) co_return SubCallFailure("hierarchy", "manager", parsed.error());
            tasks = std::move(*parsed);
        }
        // Who does what: round robin, or each task to two neighbouring workers.
        struct Assignment {
            size_t task = 0;
            int worker = -1;
        };
        std::vector<Assignment> assignments;
        const size_t w = c.workers.size();
        for (size_t i = 0; i < tasks.size(); ++i) {
            if (c.pairwise) {
                assignments.push_back({i, c.workers[(2 * i) % w]});
                assignments.push_back({i, c.workers[(2 * i + 1) % w]});
            } else {
                assignments.push_back({i, c.workers[i % w]});
            }
        }
        std::vector<AskCall> calls;
        for (const auto& a : assignments) {
            std::string prompt = "Goal:\n" + goal + "\n\nYour task (" + std::to_string(a.task + 1) +
                                 " of " + std::to_string(tasks.size()) + "):\n" + tasks[a.task];
            calls.push_back(
                {a.worker,
                 "task" + std::to_string(a.task + 1) + "/worker:" + AgentName(run.plan(), a.worker),
                 std::move(prompt)});
        }
        auto answers = co_await AskAll(run, std::move(calls), static_cast<size_t>(c.max_parallel));
        for (auto& answer : answers) {
            if (!answer) co_return SubCallFailure("hierarchy", "worker", answer.error());
        }
        std::string output;
        if (c.synthesizer >= 0) {
            std::string prompt = "Goal:\n" + goal +
                                 "\n\nCombine the workers' results into one "
                                 "answer.";
            for (size_t k = 0; k < assignments.size(); ++k) {
                const auto& a = assignments[k];
                prompt += "\n\n### Task " + std::to_string(a.task + 1) + " — " +
                          AgentName(run.plan(), a.worker) + "\n" + tasks[a.task] + "\n\nResult:\n" +
                          *answers[k];
            }
            auto answer = co_await run.Ask(c.synthesizer, "synthesizer", std::move(prompt));
            if (!answer) co_return SubCallFailure("hierarchy", "synthesizer", answer.error());
            output = std::move(*answer);
        } else {
            for (size_t k = 0; k < answers.size(); ++k) {
                if (k > 0) output += model::kCollectSeparator;
                output += *answers[k];
            }
        }
        NodeOutcome outcome = NodeOutcome::Completed(std::move(output));
        json::array listed;
        for (const auto& task : tasks) listed.emplace_back(task);
        if (auto text = CanonicalJson(json::object{{"tasks", std::move(listed)}})) {
            outcome.detail = std::move(*text);
        }
        co_return outcome;
    }
};

}  // namespace

const NodeType& HierarchyNode() {
    static const HierarchyType type;
    return type;
}

}  // namespace strowger::engine::nodes
