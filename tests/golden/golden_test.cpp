// Runs every case under tests/golden/ (see README.md there).
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/json.hpp"
#include "engine/engine.hpp"
#include "engine/nodes/node_type.hpp"
#include "engine/run_view.hpp"
#include "ledger/chain.hpp"
#include "model/inputs.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "store/memory/memory_store.hpp"
#include "testing/test_util.hpp"
#include "tools/builtin/builtin_tools.hpp"

namespace strowger {
namespace {

namespace fs = std::filesystem;

fs::path GoldenDir() {
    return fs::path(testing::SourceDir()) / "tests" / "golden";
}

std::vector<std::string> CaseNames() {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(GoldenDir(), ec)) {
        if (entry.is_directory()) names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

// The parts of a run a golden file pins down (timing-dependent fields are left out).
json::object Normalise(const model::Plan& plan, const ledger::RunState& state,
                       const std::vector<store::StoredEvent>& events) {
    json::object record = engine::RunRecordJson(&plan, state);
    json::object out;
    out["status"] = record["status"];
    out["output"] = record["output"];
    out["error"] = record["error"];
    json::array steps;
    for (auto& step : record["step_results"].as_array()) {
        json::object s;
        for (const char* key : {"step_name", "agent_name", "prompt", "output", "attempts"}) {
            if (step.as_object().contains(key)) s[key] = step.as_object()[key];
        }
        steps.push_back(std::move(s));
    }
    out["step_results"] = std::move(steps);
    out["nodes"] = record["nodes"];
    // A subworkflow's child run id is new every run.
    for (auto& node : out["nodes"].as_array()) {
        if (auto* child = node.as_object().if_contains("child_run")) *child = "(child run id)";
    }
    json::array sequence;
    for (const auto& event : events) {
        auto decoded = ledger::DecodeEvent(event.encoded);
        std::string line = event.type;
        if (decoded && !decoded->node.empty()) {
            line += " " + decoded->node + "#" + std::to_string(decoded->attempt);
        }
        // A sub-call of a node that makes several (docs/design/dag.md "Sub-calls").
        if (decoded && (event.type == "llm.request" || event.type == "llm.response")) {
            auto data = ParseJson(decoded->data);
            if (data && data->is_object()) {
                std::string label(JsonString(data->get_object(), "label"));
                if (!label.empty()) line += " [" + label + "]";
            }
        }
        sequence.emplace_back(line);
    }
    out["events"] = std::move(sequence);
    return out;
}

// Pretty JSON with one array element / member per line, stable for diffs.
void Pretty(std::string& out, const json::value& value, int indent) {
    std::string pad(static_cast<size_t>(indent) * 2, ' ');
    std::string inner(static_cast<size_t>(indent + 1) * 2, ' ');
    if (value.is_object() && !value.get_object().empty()) {
        out += "{\n";
        bool first = true;
        for (const auto& member : value.get_object()) {
            if (!first) out += ",\n";
            first = false;
            out += inner;
            AppendJsonString(out, member.key());
            out += ": ";
            Pretty(out, member.value(), indent + 1);
        }
        out += "\n" + pad + "}";
    } else if (value.is_array() && !value.get_array().empty()) {
        out += "[\n";
        bool first = true;
        for (const auto& element : value.get_array()) {
            if (!first) out += ",\n";
            first = false;
            out += inner;
            Pretty(out, element, indent + 1);
        }
        out += "\n" + pad + "]";
    } else {
        out += json::serialize(value);
    }
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesExpected) {
    fs::path dir = GoldenDir() / GetParam();
    YAML::Node spec = YAML::LoadFile((dir / "case.yaml").string());
    std::string input = spec["input"] ? spec["input"].as<std::string>() : std::string();
    // A case may run a workflow from elsewhere (the examples) with a model override.
    fs::path workflow_file =
        spec["workflow"] ? dir / spec["workflow"].as<std::string>() : dir / "workflow.yaml";

    asio::io_context io;
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);
    auto loaded = model::LoadWorkflowFile(workflow_file.string());
    ASSERT_TRUE(loaded.ok()) << (loaded.diagnostics.empty() ? ""
                                                            : loaded.diagnostics[0].ToString());
    if (spec["model"]) {
        for (auto& agent : loaded.workflow.agents) {
            agent.model = spec["model"].as<std::string>();
            agent.base_dir = dir.string();
        }
    }
    auto compile_options = engine::CompileOptionsFor(registry);
    if (spec["model"]) {
        // As --model: also the DAG form's default model.
        compile_options.default_model = spec["model"].as<std::string>();
        compile_options.default_model_dir = dir.string();
    }
    auto compiled = model::Compile(loaded.workflow, compile_options);
    ASSERT_TRUE(compiled.ok()) << (compiled.diagnostics.empty()
                                       ? ""
                                       : compiled.diagnostics[0].ToString());

    auto store = std::make_shared<store::MemoryStore>();
    // The file tools (read_file, write_file, list_dir, grep), in a workspace of the case's
    // own: what tool nodes call offline.
    testing::TempDir workspaces;
    engine::EngineOptions options;
    options.tools = std::make_shared<tools::ToolRegistry>();
    tools::RegisterBuiltinTools(*options.tools, nullptr, nullptr);
    options.workspace_root = workspaces.path();
    engine::Engine engine(io.get_executor(), store, registry, std::move(options));
    engine::StartRequest request;
    request.plan = compiled.plan;
    // Typed inputs are checked and filled as `strowger run` does (case.yaml `set:` is --set).
    model::GivenInput given{input, false, {}};
    if (spec["set"]) {
        for (const auto& set : spec["set"]) given.sets.push_back(set.as<std::string>());
    }
    auto applied = model::ApplyInputs(compiled.plan->inputs, given);
    ASSERT_TRUE(applied.ok()) << applied.Message();
    request.input = applied.input;
    std::optional<Result<engine::RunOutcome>> outcome;
    asio::co_spawn(io, engine.StartRun(request),
                   [&](std::exception_ptr e, Result<engine::RunOutcome> r) {
                       ASSERT_FALSE(e);
                       outcome = std::move(r);
                   });
    io.run_for(std::chrono::seconds(30));
    ASSERT_TRUE(outcome.has_value()) << "run did not finish";
    ASSERT_TRUE(outcome->has_value()) << outcome->error().ToString();
    const std::string run_id = (*outcome)->run_id;

    store::EventQuery all;
    auto events = testing::RunSync(store->ReadEvents(run_id, all));
    ASSERT_TRUE(events.has_value());

    // The chain verifies, against the head the store recorded.
    std::vector<std::string> lines;
    for (const auto& e : *events) lines.push_back(e.encoded);
    auto record = testing::RunSync(store->GetRun(run_id));
    ASSERT_TRUE(record.has_value());
    auto report = ledger::VerifyChain(run_id, lines, record->head);
    EXPECT_TRUE(report.ok()) << report.issue->reason << " at " << report.issue->seq;

    // Replay from the ledger alone gives the same state, at the end and at every prefix.
    auto replayed = engine::ReplayRun(*compiled.plan, *events);
    ASSERT_TRUE(replayed.has_value()) << replayed.error().ToString();
    for (size_t n = 1; n < events->size(); ++n) {
        std::vector<store::StoredEvent> prefix(events->begin(),
                                               events->begin() + static_cast<long>(n));
        EXPECT_TRUE(engine::ReplayRun(*compiled.plan, prefix).has_value()) << "prefix " << n;
    }
    EXPECT_EQ((*outcome)->status, replayed->status);
    EXPECT_EQ((*outcome)->output, replayed->output);

    json::object actual = Normalise(*compiled.plan, *replayed, *events);
    std::string actual_text;
    Pretty(actual_text, actual, 0);
    actual_text += "\n";
    fs::path expected_file = dir / "expected.json";
    if (std::getenv("STROWGER_UPDATE_GOLDEN")) {
        std::ofstream(expected_file) << actual_text;
        GTEST_SKIP() << "updated " << expected_file;
    }
    ASSERT_TRUE(fs::exists(expected_file))
        << "no expected.json; run with STROWGER_UPDATE_GOLDEN=1 and review it";
    std::string expected_text = testing::ReadFileOrDie(expected_file.string());
    EXPECT_EQ(expected_text, actual_text)
        << "case " << GetParam() << " (" << spec["description"].as<std::string>("") << ")";
}

// Issue 18: together the templates of `strowger init` use every node type, and each has its
// golden case.
TEST(Templates, TogetherUseEveryNodeTypeAndEachHasAGoldenCase) {
    fs::path templates = fs::path(testing::SourceDir()) / "templates";
    std::set<std::string> used;
    int count = 0;
    for (const auto& dir : fs::directory_iterator(templates)) {
        if (!dir.is_directory()) continue;
        ++count;
        std::string name = dir.path().filename().string();
        EXPECT_TRUE(fs::exists(dir.path() / (name + ".yaml"))) << name;
        EXPECT_TRUE(fs::exists(GoldenDir() / ("template_" + name) / "expected.json")) << name;
        for (const auto& file : fs::directory_iterator(dir.path())) {
            std::string file_name = file.path().filename().string();
            if (!file_name.ends_with(".yaml") || file_name.ends_with(".replies.yaml")) continue;
            YAML::Node workflow = YAML::LoadFile(file.path().string());
            for (const auto& node : workflow["nodes"]) used.insert(node["type"].as<std::string>());
        }
    }
    EXPECT_GE(count, 5);
    for (std::string_view type : engine::NodeTypes().Names()) {
        EXPECT_TRUE(used.contains(std::string(type))) << "no template uses " << type;
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest, ::testing::ValuesIn(CaseNames()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                             std::string name = param_info.param;
                             for (char& c : name) {
                                 if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                             }
                             return name;
                         });

}  // namespace
}  // namespace strowger
