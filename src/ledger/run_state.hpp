// The state of a run, as a pure function of its ledger.
//
// RunState::Apply is the only code that changes a run's state: the engine applies each event
// it appends, and resume/inspection replay stored events through the same function, so the
// state a crashed run is rebuilt to is exactly the state it had (docs/design/engine.md).
//
// Nodes are addressed by their index in the plan; callers map `Event::node` names to indices.
//
// Thread-safety: none; a RunState has one owner (the run's strand).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ledger/chain.hpp"
#include "ledger/event.hpp"

namespace strowger::ledger {

// Persisted by name (RunStatusName). Do not rename.
enum class RunStatus {
    kPending,
    kRunning,
    kPaused,
    kWaiting,
    kCompleted,
    kFailed,
    kCancelled,
    kNeedsReconciliation,
};
std::string_view RunStatusName(RunStatus status);
// Unknown names map to kPending; `ok` (if given) says whether the name was known.
RunStatus RunStatusFromName(std::string_view name, bool* ok = nullptr);
bool IsTerminal(RunStatus status);

// kCancelled: the node was running (or waiting to retry) when the run ended — cancelled, or
// failed because another node failed.
// kWaiting: the node waits for a human decision (a human task it opened).
enum class NodeStatus {
    kPending,
    kRunning,
    kRetryWaiting,
    kCompleted,
    kSkipped,
    kFailed,
    kCancelled,
    kWaiting,
};
std::string_view NodeStatusName(NodeStatus status);
inline bool IsFinished(NodeStatus s) {
    return s == NodeStatus::kCompleted || s == NodeStatus::kSkipped || s == NodeStatus::kFailed ||
           s == NodeStatus::kCancelled;
}

// One tool call of an agent turn, as the ledger tells it.
struct ToolCallState {
    std::string call_id;
    std::string tool;
    std::string arguments;
    std::string safety;  // set once tool.call was appended (the call started)
    bool started = false;
    bool finished = false;
    std::string result;
    bool is_error = false;
    std::string task_id;  // its approval task, if it needed one
};

// One model turn of the current attempt: what the model said and the tools it called.
struct TurnState {
    int64_t turn = 1;
    std::string content;
    std::vector<ToolCallState> calls;
    int64_t tokens_in = 0;
    int64_t tokens_out = 0;
};

// A unique_ptr that copies what it points to, so a struct holding one stays copyable.
template <typename T>
class ClonePtr {
  public:
    ClonePtr() = default;
    ClonePtr(const ClonePtr& other)
        : ptr_(other.ptr_ ? std::make_unique<T>(*other.ptr_) : nullptr) {}
    ClonePtr(ClonePtr&&) noexcept = default;
    ClonePtr& operator=(const ClonePtr& other) {
        if (this != &other) ptr_ = other.ptr_ ? std::make_unique<T>(*other.ptr_) : nullptr;
        return *this;
    }
    ClonePtr& operator=(ClonePtr&&) noexcept = default;
    ~ClonePtr() = default;

    const T* get() const { return ptr_.get(); }
    T* get() { return ptr_.get(); }
    T& GetOrCreate() {
        if (!ptr_) ptr_ = std::make_unique<T>();
        return *ptr_;
    }

  private:
    std::unique_ptr<T> ptr_;
};

// What a node rarely has (a failure, a skip, a wait for a human or a retry): apart, so a run's
// nodes are small while they wait on a model (W3 holds every node of 10,000 runs).
struct NodeNotes {
    std::string error;
    std::string error_code;
    std::string skip_reason;
    std::string waiting_task;  // the human task the node waits for (kWaiting)
    SystemTime retry_due{};    // kRetryWaiting: when the next attempt is due
    // The DAG form.
    std::string signal;         // what the node completed with (router branch, condition, ...)
    std::string cancel_reason;  // node.cancelled
    // Answers of labelled model calls, over every attempt (NodeRun::Ask reuses them).
    std::vector<std::pair<std::string, std::string>> answers;
    // for_each: the items that finished, in ledger order over every attempt (an item that
    // failed in one attempt may complete in a later one).
    struct Item {
        int64_t index = 0;
        std::string output;  // or the error, if it failed
        bool failed = false;
    };
    std::vector<Item> items;
    // A child run's caps as subworkflow.started recorded them (none: no budget, or a ledger
    // from before they were recorded).
    struct ChildCaps {
        std::optional<int64_t> max_tokens;
        std::optional<int64_t> max_cost_nano_usd;
    };
    std::string child_run_id;    // subworkflow
    bool child_charged = false;  // subworkflow.ended: the child's usage is in this run's totals
    ChildCaps child_caps;
    // A for_each over a subworkflow: each item's child, and whether it was charged.
    struct ItemChild {
        int64_t index = 0;
        std::string child_run_id;
        bool charged = false;
        ChildCaps caps;
    };
    std::vector<ItemChild> item_children;
    // Loops: the highest attempt any iteration recorded (kept only past 1), and the number a
    // reopened loop's attempts start after (`runs retry`: (iteration, attempt) never repeats).
    int64_t max_attempt = 0;
    int64_t attempt_base = 0;
    ItemChild* ItemChildOf(int64_t index) {
        for (auto& c : item_children) {
            if (c.index == index) return &c;
        }
        return nullptr;
    }
    const ItemChild* ItemChildOf(int64_t index) const {
        return const_cast<NodeNotes*>(this)->ItemChildOf(index);
    }
};

struct NodeState {
    NodeStatus status = NodeStatus::kPending;
    int64_t attempt = 0;    // last attempt started (loops: of the current iteration)
    int64_t iteration = 0;  // loops: current iteration, from 1
    // Loops: the attempt number `iteration` started with (1; after `runs retry`, higher; in
    // ledgers older than the per-iteration count, the node's running count).
    int64_t iteration_first_attempt = 1;
    int64_t iterations_done = 0;
    int64_t failures_in_iteration = 0;  // retry_scheduled events since the iteration began
    std::string output;     // completed: the node's output; loop in progress: last iteration's
    std::string prompt;     // last prompt sent
    int64_t tokens_in = 0;  // of the completed attempt (loops: all iterations)
    int64_t tokens_out = 0;
    int64_t duration_ms = 0;
    SystemTime started_at{};
    // The agent conversation of the current attempt (empty until the model answers).
    std::vector<TurnState> turns;
    ClonePtr<NodeNotes> notes;  // null until one is set
    // Spent by this step over all its attempts, for its agent's budgets.
    int64_t spent_tokens = 0;
    int64_t spent_cost_nano_usd = 0;
    int64_t spent_tool_calls = 0;

    // Attempts made in the current iteration; for a node without iterations (its
    // iteration_first_attempt stays 1), its attempt number.
    int64_t AttemptsInIteration() const { return attempt - iteration_first_attempt + 1; }
    // Loops: the attempt number a new iteration starts with.
    int64_t FirstAttemptOfNextIteration() const {
        return (notes.get() ? notes.get()->attempt_base : 0) + 1;
    }

    const std::string& error() const { return notes.get() ? notes.get()->error : kNoNote; }
    const std::string& error_code() const {
        return notes.get() ? notes.get()->error_code : kNoNote;
    }
    const std::string& skip_reason() const {
        return notes.get() ? notes.get()->skip_reason : kNoNote;
    }
    const std::string& waiting_task() const {
        return notes.get() ? notes.get()->waiting_task : kNoNote;
    }
    SystemTime retry_due() const { return notes.get() ? notes.get()->retry_due : SystemTime{}; }
    const std::string& signal() const { return notes.get() ? notes.get()->signal : kNoNote; }
    // The answer an earlier call labelled `label` got, or null.
    const std::string* Answer(std::string_view label) const {
        if (!notes.get()) return nullptr;
        for (const auto& [l, answer] : notes.get()->answers) {
            if (l == label) return &answer;
        }
        return nullptr;
    }
    inline static const std::string kNoNote;
};

// One entry of the run's step results (LibreFang's StepResult): one per agent execution that
// completed; loops add one per iteration, named "<name> (iter k)".
struct StepResult {
    int node_index = -1;
    std::string step_name;
    std::string prompt;
    std::string output;
    int64_t input_tokens = 0;
    int64_t output_tokens = 0;
    int64_t duration_ms = 0;
    int64_t attempts = 1;
};

// A decision a human must make (human_task.created), and what they decided.
struct HumanTask {
    std::string task_id;
    std::string kind;  // "tool_approval" | "reconciliation" | "task"
    int node_index = -1;
    std::string title;
    std::string call_id;
    std::string tool;
    std::string arguments;
    SystemTime created_at{};
    std::string decision;  // "" while open, else "approve" | "reject" (last, for a task)
    std::string actor;
    std::string comment;
    std::string output;
    // A human_task node's task (kind "task").
    std::shared_ptr<const TaskDetails> details;
    struct Decision {
        std::string action;  // approve | reject | request_changes | progress
        std::string actor;
        std::string comment;
        std::string idempotency_key;
        SystemTime time{};
    };
    std::vector<Decision> decisions;
    bool completed = false;  // human_task.completed
    std::string signal;      // what it completed with
    bool open() const { return kind == "task" ? !completed : decision.empty(); }
    // Distinct actors who approved (a quorum counts them).
    size_t Approvals() const;
    // Whether a decision with this idempotency key is recorded.
    bool HasDecision(std::string_view idempotency_key) const;
};

class RunState {
  public:
    explicit RunState(size_t node_count = 0) : nodes(node_count) {}

    // Applies one event. `node_index` is the plan index of `event.node` (-1 for run events).
    // `time` is the event's time.
    void Apply(SystemTime time, int node_index, const NewEvent& event);

  private:
    // At the run's end, nodes still in flight are marked cancelled.
    void CloseInFlightNodes();
    // Before the first step result: room for one per node (a linear run's count), not a
    // vector grown five times over ten steps. Not before: a run waiting on its first call
    // has none.
    void ReserveSteps() {
        if (steps.capacity() == 0) steps.reserve(nodes.size());
    }

  public:
    // What a run rarely has: apart, like NodeNotes, so a waiting run's state is small.
    struct Notes {
        std::string idempotency_key;
        std::string rerun_of;
        std::string error;
        std::string error_code;
        std::string failed_node;
        std::string cancel_reason;
        // A child run's caps: its parent's budgets left when it started (run.created).
        std::optional<int64_t> cap_max_tokens;
        std::optional<int64_t> cap_max_cost_nano_usd;
    };
    const std::string& Note(std::string Notes::*field) const {
        return notes.get() ? notes.get()->*field : NodeState::kNoNote;
    }
    const std::string& idempotency_key() const { return Note(&Notes::idempotency_key); }
    const std::string& rerun_of() const { return Note(&Notes::rerun_of); }
    const std::string& error() const { return Note(&Notes::error); }
    const std::string& error_code() const { return Note(&Notes::error_code); }
    const std::string& failed_node() const { return Note(&Notes::failed_node); }
    const std::string& cancel_reason() const { return Note(&Notes::cancel_reason); }
    std::optional<int64_t> cap_max_tokens() const {
        return notes.get() ? notes.get()->cap_max_tokens : std::nullopt;
    }
    std::optional<int64_t> cap_max_cost_nano_usd() const {
        return notes.get() ? notes.get()->cap_max_cost_nano_usd : std::nullopt;
    }

    std::string run_id;
    std::string workflow;
    std::string definition_sha256;
    std::string input;
    RunStatus status = RunStatus::kPending;
    std::string output;
    ClonePtr<Notes> notes;  // null until one is set
    SystemTime created_at{};
    SystemTime started_at{};  // first run.started
    SystemTime updated_at{};
    SystemTime ended_at{};
    ChainHead head;
    std::vector<NodeState> nodes;
    std::vector<StepResult> steps;
    // Node names by index (the plan's), for events that name several nodes (run.retried).
    // Owned by the plan, which outlives the state; may be null when no such event applies.
    const std::vector<std::string>* node_names = nullptr;
    int64_t tokens_in = 0;  // all model calls, including failed attempts
    int64_t tokens_out = 0;
    int64_t cost_nano_usd = 0;
    int64_t model_calls = 0;
    int64_t tool_calls = 0;
    std::vector<HumanTask> tasks;

    HumanTask* FindTask(std::string_view task_id);
    const HumanTask* FindTask(std::string_view task_id) const;
    // Open tasks, oldest first.
    std::vector<const HumanTask*> OpenTasks() const;
    // The earliest due time of an open task's timeout (a durable timer), if any.
    std::optional<SystemTime> WakeAt() const;
};

}  // namespace strowger::ledger
