// A DAG node type, as the engine executes it (docs/design/dag.md "Node types").
//
// Each type is one file in this directory: a class deriving from NodeType (its config schema
// and preflight come from model::NodeTypeInfo, its execution is Execute), registered in
// registry.cpp. Execute runs one attempt of a node through NodeRun, the node's narrow view
// of its run; it never touches the run's state or the store directly.
//
// Thread-safety: node types are immutable singletons. Execute runs on the run's executor.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/random.hpp"
#include "core/result.hpp"
#include "ledger/event.hpp"
#include "ledger/run_state.hpp"
#include "model/node_type.hpp"
#include "model/plan.hpp"

namespace strowger::engine {

// What one attempt of a node decided.
struct NodeOutcome {
    enum class Kind {
        kCompleted,  // with `output` and, optionally, `signal`
        kFailed,     // with `error` (the node's policy decides what it means)
        kWaiting,    // for a human (the node recorded its task); the run stops here
        kStopped,    // the run is stopping (cancel, pause, store failure): nothing to record
    };
    Kind kind = Kind::kCompleted;
    std::string output;
    std::string signal;
    std::string detail;  // JSON: how the node decided (a vote's counts), in node.completed
    Error error;

    static NodeOutcome Completed(std::string output, std::string signal = {}) {
        NodeOutcome outcome;
        outcome.output = std::move(output);
        outcome.signal = std::move(signal);
        return outcome;
    }
    static NodeOutcome Failed(Error error) {
        NodeOutcome outcome;
        outcome.kind = Kind::kFailed;
        outcome.error = std::move(error);
        return outcome;
    }
    static NodeOutcome Waiting() {
        NodeOutcome outcome;
        outcome.kind = Kind::kWaiting;
        return outcome;
    }
    static NodeOutcome Stopped() {
        NodeOutcome outcome;
        outcome.kind = Kind::kStopped;
        return outcome;
    }
};

// The node's view of its run while one attempt executes.
class NodeRun {
  public:
    virtual ~NodeRun() = default;

    virtual const model::Plan& plan() const = 0;
    virtual const model::PlanNode& node() const = 0;
    template <typename Config>
    const Config& config() const {
        return static_cast<const Config&>(*node().config);
    }
    virtual int64_t attempt() const = 0;
    // This node's state as replayed from the ledger (what earlier attempts recorded).
    virtual const ledger::NodeState& state() const = 0;
    virtual const ledger::RunState& run_state() const = 0;

    // The outputs of the sources of this node's carrying edges, in edge order.
    struct Upstream {
        int node = -1;
        std::string id;
        std::string output;
    };
    virtual std::vector<Upstream> Upstreams() const = 0;
    // {{input}}: the upstream outputs joined with "\n\n---\n\n" (one: as it is; none: the
    // run's input).
    virtual std::string Input() const = 0;
    virtual const std::string& RunInput() const = 0;
    // The output of node `index` ("" if it has none).
    virtual std::string OutputOf(int index) const = 0;
    // Renders a template of this node's config, single-pass; `extras` are the values of its
    // kExtra placeholders ({{item}}, {{index}}).
    virtual std::string Render(const model::Template& text,
                               const std::map<std::string, std::string>& extras = {}) const = 0;

    // Appends events about this node (stamped with its attempt) and waits for their commit;
    // false if the run is stopping (then return NodeOutcome::Stopped()).
    virtual Awaitable<bool> Record(std::vector<ledger::Payload> payloads) = 0;
    // One model call as agent `agent` (an index into plan().agents), charged to this node's
    // budgets and recorded as llm.request / llm.response under `label`. A response an
    // earlier attempt of this node recorded under the same label is returned as it was,
    // without calling the model (a crash mid-debate does not re-argue finished rounds).
    virtual Awaitable<Result<std::string>> Ask(int agent, std::string label,
                                               std::string prompt) = 0;

    // One call of tool `tool` (a built-in, or "<server>/<tool>" of a declared MCP server) with
    // `arguments` (JSON text), the way an agent's tool calls run: a human approves it first
    // when `require_approval` or its MCP server says so (human_task.created, kind
    // tool_approval: then Waiting; a rejection fails); tool.call (its safety class and
    // idempotency key "<run>/<node>/<attempt>/1") is committed before the tool starts, in the
    // run's workspace and sandbox (default grants), and tool.result after. A crash between the
    // two is reconciled as for an agent: a new attempt if the tool is read_only or
    // idempotent_write, else a reconciliation task. Completed with the tool's content, or
    // Failed (the call's error, or the tool's own failure report).
    virtual Awaitable<NodeOutcome> CallTool(std::string tool, std::string arguments,
                                            bool require_approval) = 0;

    // Runs `plan` with `input` as this node's child run in the same store: the first time it
    // records subworkflow.started with the child's new id (before the child is created, and
    // its run.created names this run and node); a later attempt re-attaches to that child
    // (read if it ended, resumed if not). A run whose token or cost budget is spent starts no
    // child; a child is created with a share of what this run has left as its caps — what
    // is not held by other children in flight, split among the `slots` children this node
    // runs together — and this run holds those caps until the child ends; what it spent is
    // charged to this run once when it ends (subworkflow.ended).
    struct ChildResult {
        std::string run_id;
        ledger::RunStatus status = ledger::RunStatus::kPending;
        std::string output;
        std::string error;
    };
    // `item` >= 0: the child of that for_each item (each item has its own); -1: the node's.
    virtual Awaitable<Result<ChildResult>> RunChild(std::shared_ptr<const model::Plan> plan,
                                                    std::string input, int64_t item,
                                                    int64_t slots) = 0;

    // A durable timer: the run is resumed at `due` by whatever process executes runs then
    // (the store's wake_at). False if the run is stopping.
    virtual Awaitable<bool> ArmTimer(SystemTime due) = 0;

    virtual Random& random() = 0;
    virtual SystemTime Now() const = 0;
};

class NodeType : public model::NodeTypeInfo {
  public:
    // One attempt of a node of this type.
    virtual Awaitable<NodeOutcome> Execute(NodeRun& run) const = 0;
};

// Every node type, by name and alias (registry.cpp).
const model::NodeTypeRegistry& NodeTypes();

inline const NodeType& AsNodeType(const model::NodeTypeInfo& info) {
    // Every NodeTypeInfo the compiler has came from NodeTypes().
    return static_cast<const NodeType&>(info);
}

}  // namespace strowger::engine
