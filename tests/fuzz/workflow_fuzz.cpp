// Fuzzes the workflow loader and compiler: any bytes as a workflow file (YAML or JSON) through
// model::LoadWorkflowText and model::Compile, the plan's four renderings, and the resolved
// snapshot a run pins: it must load and compile again, to the same snapshot (a resumed run
// compiles its plan from it: engine.cpp, CompileSnapshot).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "model/loader.hpp"
#include "model/plan.hpp"
#include "model/plan_format.hpp"

namespace {

using namespace strowger;

[[noreturn]] void Fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "workflow_fuzz: %s\n%s\n", what, detail.c_str());
    std::abort();
}

model::CompileOptions Options(bool with_tools) {
    model::CompileOptions options;
    options.known_providers = {"scripted", "openai", "ollama", "anthropic", "command"};
    if (with_tools) {
        options.known_tools = {"shell",    "read_file", "write_file",
                               "list_dir", "grep",      "http_request"};
    }
    return options;
}

std::string Diagnostics(const std::vector<model::Diagnostic>& diagnostics) {
    std::string text;
    for (const auto& d : diagnostics) text += d.ToString() + "\n";
    return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    model::LoadOptions load_options;
    load_options.sibling_agents = false;  // no files beside a fuzz input
    auto loaded = model::LoadWorkflowText(text, "fuzz.yaml", "", load_options);
    if (!loaded.ok()) return 0;
    auto compiled = model::Compile(loaded.workflow, Options(/*with_tools=*/true));
    if (!compiled.ok()) return 0;
    for (auto format : {model::PlanFormat::kText, model::PlanFormat::kJson, model::PlanFormat::kDot,
                        model::PlanFormat::kMermaid}) {
        (void)model::FormatPlan(*compiled.plan, format, std::string("input"));
    }

    // What the engine pins and compiles again on resume.
    std::string snapshot = model::SnapshotJson(loaded.workflow);
    auto reloaded = model::LoadWorkflowText(snapshot, "<pinned definition>", "", load_options);
    if (!reloaded.ok()) {
        Fail("the snapshot of a compiled workflow does not load",
             snapshot + "\n" + Diagnostics(reloaded.diagnostics));
    }
    auto recompiled = model::Compile(reloaded.workflow, Options(/*with_tools=*/false));
    if (!recompiled.ok()) {
        Fail("the snapshot of a compiled workflow does not compile",
             snapshot + "\n" + Diagnostics(recompiled.diagnostics));
    }
    std::string again = model::SnapshotJson(reloaded.workflow);
    if (again != snapshot) Fail("the snapshot is not a fixed point", snapshot + "\n" + again);
    return 0;
}
