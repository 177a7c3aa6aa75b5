// What the compiler knows of a DAG node type (docs/design/dag.md).
//
// A node type is one file under src/engine/nodes/: its config schema, its preflight (Compile,
// here) and its execution (the engine's NodeType, which extends NodeTypeInfo). The model does
// not depend on the engine: Compile receives the engine's registry through
// CompileOptions::node_types.
//
// Thread-safety: node types are immutable singletons; a NodeCompileContext is used by one
// compile.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/template.hpp"

namespace strowger::model {

struct NodeSpec;
struct PlanNode;
struct Plan;

// A node type's config once compiled: the type's own struct, which the engine reads back.
class NodeConfig {
  public:
    virtual ~NodeConfig() = default;
};

// The compiler, as a node type sees it while it checks one node.
class NodeCompileContext {
  public:
    virtual ~NodeCompileContext() = default;

    const NodeSpec& spec() const { return spec_; }
    const boost::json::object& config() const { return config_; }
    // The plan entry the type fills (agent, prompt, output_key...).
    virtual PlanNode& plan_node() = 0;

    // Problems with the config; `field` is relative to it ("rules[0].pattern"; "" = config).
    virtual void Error(const std::string& field, std::string message) = 0;
    virtual void Warn(const std::string& field, std::string message) = 0;

    // A template from the config: parsed, its placeholders resolved against the run's input,
    // the workflow's typed inputs, other nodes and output keys (unknown names are reported
    // at `field`). `extras` are names the node itself supplies when it renders ({{item}}).
    virtual Template ParseTemplate(std::string_view text, const std::string& field,
                                   const std::vector<std::string>& extras = {}) = 0;
    // An agent: a name from the workflow's agents, or an inline agent (a mapping with
    // `model`, `system_prompt`, `tools`, `max_turns`, ...; `name` optional). Returns its
    // index in the plan's agents, or -1 after reporting why.
    virtual int ResolveAgent(const boost::json::value& reference, const std::string& field) = 0;
    // An agent made of the workflow's `default_model` (or the run's --model): for agent
    // nodes that name neither an agent nor a model. -1 after reporting.
    virtual int DefaultAgent(const std::string& field) = 0;
    // Whether `name` is a tool the engine has (a built-in, or "<server>/<tool>" of a declared
    // MCP server).
    virtual bool KnownTool(std::string_view name) const = 0;
    // The labels (branch or signal) of this node's outgoing edges; "" for an edge without.
    virtual std::vector<std::string> OutgoingLabels() const = 0;
    virtual size_t IncomingEdges() const = 0;
    // Another workflow, compiled with the same options: from `file` (relative to this
    // workflow's directory) the first time, from the definition pinned in this workflow's
    // snapshot (Pin) afterwards. Null after reporting.
    virtual std::shared_ptr<const Plan> CompileChild(const std::string& file,
                                                     const std::string& field) = 0;

  protected:
    NodeCompileContext(const NodeSpec& spec, const boost::json::object& config)
        : spec_(spec), config_(config) {}

  private:
    const NodeSpec& spec_;
    const boost::json::object& config_;
};

// CMDC's dry run (`strowger plan --input`): what the plan knows of a node before run time.
class DryRunContext {
  public:
    virtual ~DryRunContext() = default;
    // The node's {{input}}; nullopt when it is not knowable (a model's answer upstream).
    virtual std::optional<std::string> Input() const = 0;
    // A template of the node rendered with the sample input and the values known so far;
    // nullopt when it reads one that is not knowable.
    virtual std::optional<std::string> Render(const Template& text) const = 0;
};

// What a node would do, decided without calling a model.
struct DryOutcome {
    bool fails = false;  // the node would fail (`why`)
    std::string output;  // its output, when it completes
    bool output_known = true;
    std::string signal;  // its signal ("" none)
    std::string why;     // one line: what decided it ("left 250000 gte right 100000")
};

class NodeTypeInfo {
  public:
    virtual ~NodeTypeInfo() = default;
    virtual std::string_view name() const = 0;
    // One line, for `strowger plan` and the docs.
    virtual std::string_view summary() const = 0;
    // JSON Schema (2020-12) of the node's `config`.
    virtual boost::json::object ConfigSchema() const = 0;
    // Checks the config (every problem at once) and returns what the engine keeps; null once
    // an error was reported.
    virtual std::shared_ptr<const NodeConfig> Compile(NodeCompileContext& context) const = 0;
    // The signals a compiled node may complete with, for edge checks ("*": any).
    virtual std::vector<std::string> Signals(const NodeConfig&) const { return {}; }
    // The outcome when it is deterministic given `context` (a condition, a rule router, a
    // gate's checks); nullopt when only running it can tell (a model's answer, a person's
    // decision, a random draw).
    virtual std::optional<DryOutcome> DryRun(const NodeConfig&, const DryRunContext&) const {
        return std::nullopt;
    }
    virtual bool IsFork() const { return false; }
    virtual bool IsJoin() const { return false; }
};

class NodeTypeRegistry {
  public:
    virtual ~NodeTypeRegistry() = default;
    // By name or alias (human_approval and approval are human_task); null if unknown.
    virtual const NodeTypeInfo* Find(std::string_view name) const = 0;
    // Every type's name (aliases excluded), in registration order.
    virtual std::vector<std::string_view> Names() const = 0;
};

}  // namespace strowger::model
