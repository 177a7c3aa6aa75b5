// Private to the model module: what the linear compiler (compile.cpp) and the DAG compiler
// (compile_dag.cpp) share.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <set>
#include <string>
#include <vector>

#include "model/diagnostic.hpp"
#include "model/plan.hpp"
#include "model/workflow.hpp"

namespace strowger::model::internal {

// `dir` made absolute (against the current directory), normalised; "." if empty.
std::string AbsoluteDir(const std::string& dir);
// The workflow's `workspace`, absolute (relative to the workflow's file); "" if not set.
std::string AbsoluteWorkspace(const Workflow& workflow);
// Checks an agent's model (provider:model, a known provider) and tools; errors at `path`.
void CheckAgent(const Workflow& workflow, const CompileOptions& options, const AgentSpec& agent,
                const std::string& path, std::vector<Diagnostic>& diagnostics);
// The agent as the snapshot writes it.
boost::json::object AgentJson(const AgentSpec& agent);
boost::json::value DoubleValue(double value);
// Appends `value` with object keys sorted and doubles in shortest round-trip form.
void AppendSnapshot(std::string& out, const boost::json::value& value);
// The snapshot's members every form shares (name, description, agents, MCP servers, limits,
// workspace, typed inputs).
boost::json::object CommonSnapshot(const Workflow& workflow);
// Layers (longest path from a root, in `order`, a topological order), node ids, the
// snapshot and its hash.
void FinishPlan(const Workflow& workflow, const std::vector<int>& order, Plan& plan);

// Which typed inputs templates read (for the unused-input warning): `segment` reads the run's
// input when it is {{run.input...}}, or {{input...}} in a node whose input is the run's
// (`input_is_run_input`). {{run.input}} as a whole reads every input.
class InputUse {
  public:
    void Note(const Template::Segment& segment, bool input_is_run_input);
    void NoteInput(const std::string& name) { used_.insert(name); }
    // A warning at `inputs` for each declared input nothing reads.
    void Report(const Workflow& workflow, std::vector<Diagnostic>& diagnostics) const;

  private:
    bool all_ = false;
    std::set<std::string, std::less<>> used_;
};

// The DAG form's compiler (compile_dag.cpp).
std::shared_ptr<Plan> CompileDag(const Workflow& workflow, const CompileOptions& options,
                                 std::vector<Diagnostic>& diagnostics);
// The DAG form's snapshot (compile_dag.cpp): `pins` are what nodes pinned (a subworkflow's
// definition) by node id.
std::string DagSnapshotJson(const Workflow& workflow,
                            const std::map<std::string, boost::json::object>& pins);

}  // namespace strowger::model::internal
