#include "model/loader.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/yaml.hpp"
#include "model/internal/reader.hpp"

namespace strowger::model {
namespace {

namespace fs = std::filesystem;
using internal::Reader;

// Through core's ParseYamlTree (ParseYaml's compact twin: a workflow of 100,000 steps would
// take 350 MB as yaml-cpp nodes), which refuses deep nesting and alias bombs before anything
// walks the tree. Its node bound grows with the file: a file cannot hold more nodes than bytes
// without aliases, and a workflow of 200,000 steps (or its pinned definition) has millions.
std::optional<YamlTree> Parse(std::string_view text, const std::string& file,
                              std::vector<Diagnostic>& diagnostics) {
    YamlLimits limits;
    limits.max_nodes = std::max<int64_t>(limits.max_nodes, static_cast<int64_t>(text.size()));
    auto tree = ParseYamlTree(text, limits);
    if (!tree) {
        const YamlError& error = tree.error();
        diagnostics.push_back({Diagnostic::Severity::kError,
                               SourcePos{file, error.line, error.column}, "", error.message});
        return std::nullopt;
    }
    return std::move(*tree);
}

std::optional<std::string> ReadFile(const std::string& path, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = std::string("cannot read file: ") + std::strerror(errno);
        return std::nullopt;
    }
    // Read into one string of the file's size (a stream buffer's copy would double a large
    // file's footprint).
    std::string text;
    std::error_code ec;
    if (auto size = fs::file_size(path, ec); !ec) text.reserve(size);
    char chunk[64 * 1024];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
        text.append(chunk, static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) {
        error = std::string("cannot read file: ") + std::strerror(errno);
        return std::nullopt;
    }
    return text;
}

// Whether the workflow names agent `name`: a step's agent_name or agent_id, or any string of a
// DAG node's config equal to it (agent_id, a debate's participants, ...).
bool Uses(const Workflow& workflow, const std::string& name) {
    for (const auto& step : workflow.steps) {
        if (step.agent_name == name || step.agent_id == name) return true;
    }
    const std::string quoted = boost::json::serialize(boost::json::value(name));
    for (const auto& node : workflow.nodes) {
        if (boost::json::serialize(node.config).find(quoted) != std::string::npos) return true;
    }
    return false;
}

// Loads the agent files of `dir`. A broken file whose agent the workflow does not name is a
// warning (it should not fail every workflow next to it); one it names is an error.
void LoadAgentDir(const std::string& dir, Workflow& workflow,
                  std::vector<Diagnostic>& all_diagnostics) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        auto ext = entry.path().extension().string();
        if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
        std::vector<Diagnostic> diagnostics;
        struct Flush {
            std::vector<Diagnostic>& from;
            std::vector<Diagnostic>& to;
            bool used;
            ~Flush() {
                for (auto& d : from) {
                    if (!used && d.severity == Diagnostic::Severity::kError) {
                        d.severity = Diagnostic::Severity::kWarning;
                        d.message = "unused agent file: " + d.message;
                    }
                    to.push_back(std::move(d));
                }
            }
        } flush{diagnostics, all_diagnostics, Uses(workflow, ToValidUtf8(file.stem().string()))};
        std::string error;
        auto text = ReadFile(file.string(), error);
        if (!text) {
            diagnostics.push_back(
                {Diagnostic::Severity::kError, SourcePos{file.string()}, "", error});
            continue;
        }
        auto tree = Parse(*text, file.string(), diagnostics);
        if (!tree) continue;
        const YamlNode root = tree->root();
        Reader reader(file.string(), workflow, diagnostics);
        AgentSpec agent;
        std::string stem = file.stem().string();
        agent.name = ToValidUtf8(stem);
        agent.base_dir = dir;
        std::string path = "agents." + agent.name;
        if (agent.name != stem) {
            diagnostics.push_back(
                {Diagnostic::Severity::kWarning, SourcePos{file.string()}, path,
                 "the file name is not valid UTF-8: each invalid byte sequence is replaced by "
                 "U+FFFD in the agent's name"});
        }
        reader.ReadAgent(root, path, agent);
        agent.pos = reader.Pos(root);
        if (const auto* existing = workflow.FindAgentByName(agent.name)) {
            // Inline definitions win over agent files of the same name.
            (void)existing;
            continue;
        }
        workflow.positions.Record("agents." + agent.name, agent.pos);
        workflow.agents.push_back(std::move(agent));
    }
}

}  // namespace

LoadResult LoadWorkflowText(std::string_view text, const std::string& file_name,
                            const std::string& base_dir, const LoadOptions& options) {
    LoadResult result;
    result.workflow.source_file = file_name;
    result.workflow.base_dir = base_dir;
    auto tree = Parse(text, file_name, result.diagnostics);
    if (!tree) return result;
    Reader reader(file_name, result.workflow, result.diagnostics);
    reader.ReadWorkflow(tree->root());
    if (options.sibling_agents && !base_dir.empty()) {
        LoadAgentDir((fs::path(base_dir) / "agents").string(), result.workflow, result.diagnostics);
    }
    for (const auto& dir : options.agent_dirs) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec)) {
            result.diagnostics.push_back({Diagnostic::Severity::kError, SourcePos{dir}, "",
                                          "agents directory does not exist"});
            continue;
        }
        LoadAgentDir(dir, result.workflow, result.diagnostics);
    }
    return result;
}

LoadResult LoadWorkflowFile(const std::string& path, const LoadOptions& options) {
    std::string error;
    auto text = ReadFile(path, error);
    if (!text) {
        LoadResult result;
        result.workflow.source_file = path;
        result.diagnostics.push_back({Diagnostic::Severity::kError, SourcePos{path}, "", error});
        return result;
    }
    std::string base_dir = fs::path(path).parent_path().string();
    if (base_dir.empty()) base_dir = ".";
    return LoadWorkflowText(*text, path, base_dir, options);
}

}  // namespace strowger::model
