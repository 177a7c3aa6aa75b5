// The compiled, immutable plan of a workflow: a DAG of nodes.
//
// Both ways of writing a workflow compile to this one structure: the linear `steps` form
// (LibreFang semantics) and, in a later version, the `nodes` + `edges` form. A node runs when
// every node in `deps` has finished (completed, skipped or failed-and-tolerated). What it
// reads is data, not position in a list:
//
//   * `{{input}}` = the effective outputs of `inputs`, joined with "\n\n---\n\n" (one input:
//     its output unchanged; none: the run input);
//   * the effective output of a node is its output if it completed, or its own effective
//     input if it was skipped — so a skipped step leaves `{{input}}` unchanged downstream;
//   * `{{name}}` = the output of the latest node in the variable's `sources` that completed.
//
// The linear form maps onto this as: every step depends on all nodes of the previous stage (a
// stage is one step, or a group of consecutive fan_out steps); its input is the last node of
// the previous stage; a collect step's inputs are the fan-out group before it.
//
// Thread-safety: immutable after Compile; share it as std::shared_ptr<const Plan>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/diagnostic.hpp"
#include "model/node_type.hpp"
#include "model/template.hpp"
#include "model/workflow.hpp"

namespace strowger::model {

// kAgent: the agent loop (linear steps and DAG `agent` nodes); kCollect: the linear form's
// collect; kTyped: a DAG node executed by its type (engine/nodes/, docs/design/dag.md).
enum class NodeKind { kAgent, kCollect, kTyped };
std::string_view NodeKindName(NodeKind kind);

inline constexpr std::string_view kCollectSeparator = "\n\n---\n\n";

struct PlanNode {
    int index = 0;
    std::string id;  // unique within the plan: the step name
    NodeKind kind = NodeKind::kAgent;
    StepMode mode = StepMode::kSequential;  // the linear-form mode it came from
    int agent = -1;                         // index into Plan::agents; -1 for collect
    Template prompt;

    std::vector<int> deps;        // must finish before this node starts
    std::vector<int> inputs;      // form {{input}}; empty = the run input
    std::vector<int> dependents;  // reverse of deps

    // Gate (mode conditional): run only if {{input}} contains `condition`, ignoring case.
    bool conditional = false;
    std::string condition;

    // Loop (mode loop): up to max_iterations, stopping early once the output contains
    // `until` (ignoring case); each iteration's output is the next one's {{input}}.
    bool loop = false;
    int64_t max_iterations = 1;
    std::string until;

    ErrorMode error_mode = ErrorMode::kFail;
    int64_t max_attempts = 1;  // 1 + max_retries when error_mode is retry
    BackoffSpec backoff;
    int64_t timeout_ms = 120'000;
    // A fan-out step's failure fails the run whatever its error_mode says (LibreFang).
    bool failure_fails_run = true;

    std::string output_var;  // linear: output_var; DAG: config.output_key
    int layer = 0;           // longest path from a root, for display

    // ---- The DAG form (docs/design/dag.md). ----
    const NodeTypeInfo* type = nullptr;  // every DAG node, agents included
    std::string type_name;               // its name, as persisted
    std::shared_ptr<const NodeConfig> config;
    std::vector<int> in_edges;  // into Plan::edges, in the order the edges were written
    std::vector<int> out_edges;
    OnError on_error = OnError::kFail;  // policy.on_error (linear: from error_mode)
    std::string fallback_output;        // on_error fallback
    std::string error_signal;           // on_error emit_signal
    // An agent node appends the upstream outputs to its prompt (CMDC's dep_results).
    bool upstream_section = false;
    // Fork regions: a node inside a fork's branch has the fork's index and which of the
    // fork's outgoing edges begins its branch; a fork knows its join and a join its fork.
    int fork = -1;
    int branch = -1;
    int join = -1;
};

// An edge of the DAG form: carries from `from` to `to` when `from` completed with no label,
// or with a signal equal to `label`.
struct PlanEdge {
    int from = -1;
    int to = -1;
    std::string label;
};

struct Plan {
    std::string workflow_name;
    std::string description;
    std::vector<AgentSpec> agents;
    std::vector<McpServerSpec> mcp_servers;
    RunLimits limits;
    std::string workspace;              // absolute, or "" for a directory per run
    bool dag = false;                   // written as nodes + edges
    bool session = false;               // Workflow::session: agents get the input's history
    std::vector<PlanNode> nodes;        // in the order of the steps (or nodes)
    std::vector<PlanEdge> edges;        // the DAG form's
    std::vector<int> sinks;             // DAG nodes without outgoing edges
    std::vector<InputSpec> inputs;      // typed inputs (both forms)
    std::vector<std::string> node_ids;  // nodes[i].id, for name lookups by index
    int output_node = -1;  // its effective output is the run's output (-1, DAG: the sinks')
    std::vector<std::vector<int>> layers;
    // The resolved workflow as canonical JSON, and its SHA-256: what a run is pinned to.
    std::string definition_json;
    std::string definition_sha256;

    const PlanNode* FindNode(std::string_view id) const;
    // `index` and every node that depends on it, directly or not (ascending).
    std::vector<int> WithDescendants(int index) const;
    const AgentSpec* AgentOf(const PlanNode& node) const {
        return node.agent >= 0 ? &agents[static_cast<size_t>(node.agent)] : nullptr;
    }
};

struct CompileOptions {
    // The node types of the DAG form (the engine's registry). Null: a DAG workflow is an
    // error ("node types are not available").
    const NodeTypeRegistry* node_types = nullptr;
    // The model of agent nodes that name none (`strowger run --model`); else the workflow's
    // default_model.
    std::string default_model;
    // Where a relative path in `default_model` (scripted:FILE) is read from: the current
    // directory for --model; "" = the workflow's directory.
    std::string default_model_dir;
    // Provider names an agent's model may use ("openai", "scripted", ...). Empty: no check.
    std::vector<std::string> known_providers;
    // Built-in tool names an agent may list ("shell", "read_file", ...); MCP tools are
    // "<server>/<tool>" of a declared server. Empty: tool names are not checked.
    std::vector<std::string> known_tools;
};

struct CompileResult {
    std::shared_ptr<const Plan> plan;  // null if there are errors
    std::vector<Diagnostic> diagnostics;
    bool ok() const { return plan != nullptr; }
};

// Validates `workflow` (every problem at once) and, if there are no errors, compiles it.
CompileResult Compile(const Workflow& workflow, const CompileOptions& options = {});

// The resolved workflow (agents inlined, defaults explicit) as a JSON document that
// LoadWorkflowText reads back to an equivalent workflow. Deterministic for equal workflows.
std::string SnapshotJson(const Workflow& workflow);

}  // namespace strowger::model
