#include "api/workflow_registry.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "core/ids.hpp"
#include "core/strings.hpp"
#include "engine/engine.hpp"
#include "model/loader.hpp"

namespace strowger::api {
namespace {

constexpr std::string_view kFileOrigin = "file:";

std::string FormatOf(std::string_view text) {
    auto trimmed = Trim(text);
    return !trimmed.empty() && (trimmed.front() == '{' || trimmed.front() == '[') ? "json" : "yaml";
}

bool IsWorkflowFile(const std::filesystem::path& path) {
    auto ext = path.extension().string();
    return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

Result<std::string> ReadFileBlocking(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError("cannot read " + path.string());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

std::string NewWorkflowId(const Clock& clock, Random& random) {
    return "wf_" + NewRunId(clock, random);
}

const WorkflowRegistry::Version* WorkflowRegistry::Entry::Find(int64_t number) const {
    if (number == 0) return versions.empty() ? nullptr : &versions.back();
    for (const auto& v : versions) {
        if (v.record.version == number) return &v;
    }
    return nullptr;
}

WorkflowRegistry::WorkflowRegistry(std::shared_ptr<store::Store> store,
                                   providers::ProviderRegistry& providers, Options options,
                                   Clock& clock, Random& random)
    : store_(std::move(store)),
      providers_(providers),
      options_(std::move(options)),
      clock_(clock),
      random_(random) {}

WorkflowRegistry::Compiled WorkflowRegistry::Compile(std::string_view text,
                                                     const std::string& file_name,
                                                     const std::string& base_dir) const {
    Compiled result;
    result.format = FormatOf(text);
    model::LoadOptions load;
    load.agent_dirs = options_.agent_dirs;
    auto loaded = model::LoadWorkflowText(text, file_name, base_dir, load);
    result.diagnostics = loaded.diagnostics;
    auto compiled = model::Compile(loaded.workflow, engine::CompileOptionsFor(providers_));
    result.diagnostics.insert(result.diagnostics.end(), compiled.diagnostics.begin(),
                              compiled.diagnostics.end());
    // Each model resolved now (as `strowger validate` does), so a missing scripted file is
    // reported with its position instead of failing the first step of a run.
    for (const auto& agent : loaded.workflow.agents) {
        if (agent.model.find(':') == std::string::npos) continue;
        auto resolved = providers_.Resolve(agent.model, agent.base_dir);
        if (!resolved && !StartsWith(resolved.error().message(), "unknown provider")) {
            std::string path = "agents." + agent.name + ".model";
            result.diagnostics.push_back({model::Diagnostic::Severity::kError,
                                          loaded.workflow.PositionOf(path), path,
                                          resolved.error().message()});
        }
    }
    std::stable_sort(
        result.diagnostics.begin(), result.diagnostics.end(), [](const auto& x, const auto& y) {
            return std::tie(x.pos.line, x.pos.column) < std::tie(y.pos.line, y.pos.column);
        });
    if (loaded.ok() && !model::HasErrors(result.diagnostics)) result.plan = compiled.plan;
    return result;
}

WorkflowRegistry::Version WorkflowRegistry::CompileStored(
    const store::WorkflowVersion& record) const {
    Version version;
    version.record = record;
    std::string file_name = "workflow." + record.source_format;
    std::string base_dir = options_.base_dir;
    if (StartsWith(record.origin, kFileOrigin)) {
        file_name = record.origin.substr(kFileOrigin.size());
        base_dir = std::filesystem::path(file_name).parent_path().string();
    }
    auto compiled = Compile(record.source, file_name, base_dir);
    if (!compiled.plan) {
        for (const auto& d : compiled.diagnostics) {
            if (d.severity == model::Diagnostic::Severity::kError) {
                version.error = d.ToString();
                break;
            }
        }
        if (version.error.empty()) version.error = "does not compile";
    } else {
        // Should the same text resolve differently now (an agent file changed), runs of this
        // version get what it compiles to today; each run's ledger pins what it ran.
        version.plan = compiled.plan;
    }
    return version;
}

Awaitable<Status> WorkflowRegistry::Load() {
    STROWGER_CO_ASSIGN_OR_RETURN(auto versions, co_await store_->ListWorkflowVersions(""));
    entries_.clear();
    for (const auto& record : versions) {
        Entry& entry = entries_[record.workflow_id];
        entry.id = record.workflow_id;
        entry.origin = record.origin;
        entry.versions.push_back(CompileStored(record));
    }
    co_return OkStatus();
}

const WorkflowRegistry::Entry* WorkflowRegistry::Find(std::string_view id_or_name) const {
    if (auto it = entries_.find(id_or_name); it != entries_.end()) return &it->second;
    for (const auto& [id, entry] : entries_) {
        if (entry.name() == id_or_name) return &entry;
    }
    return nullptr;
}

std::vector<const WorkflowRegistry::Entry*> WorkflowRegistry::List() const {
    std::vector<const Entry*> out;
    for (const auto& [id, entry] : entries_) out.push_back(&entry);
    return out;
}

bool WorkflowRegistry::NameTaken(const std::string& name, const std::string& except_id) const {
    for (const auto& [id, entry] : entries_) {
        if (id != except_id && entry.name() == name) return true;
    }
    return false;
}

Awaitable<Result<const WorkflowRegistry::Entry*>> WorkflowRegistry::Put(std::string id,
                                                                        std::string origin,
                                                                        std::string text,
                                                                        std::string actor,
                                                                        const Compiled& compiled) {
    store::WorkflowVersion record;
    record.workflow_id = id;
    record.name = compiled.plan->workflow_name;
    record.description = compiled.plan->description;
    record.definition_sha256 = compiled.plan->definition_sha256;
    record.source = std::move(text);
    record.source_format = compiled.format;
    record.origin = std::move(origin);
    record.actor = std::move(actor);
    record.created_at = clock_.Now();
    STROWGER_CO_ASSIGN_OR_RETURN(auto stored, co_await store_->PutWorkflowVersion(record));
    Entry& entry = entries_[id];
    entry.id = id;
    entry.origin = stored.origin;
    if (entry.versions.empty() || entry.versions.back().record.version != stored.version) {
        Version version;
        version.record = std::move(stored);
        version.plan = compiled.plan;
        entry.versions.push_back(std::move(version));
    }
    co_return &entry;
}

Awaitable<Result<const WorkflowRegistry::Entry*>> WorkflowRegistry::Create(std::string text,
                                                                           std::string actor,
                                                                           Compiled& compiled) {
    compiled = Compile(text, "workflow." + FormatOf(text), options_.base_dir);
    if (!compiled.plan) co_return InvalidArgumentError("the workflow definition is not valid");
    if (NameTaken(compiled.plan->workflow_name, "")) {
        co_return AlreadyExistsError("a workflow named \"" + compiled.plan->workflow_name +
                                     "\" exists");
    }
    co_return co_await Put(NewWorkflowId(clock_, random_), "api", std::move(text), std::move(actor),
                           compiled);
}

Awaitable<Result<const WorkflowRegistry::Entry*>> WorkflowRegistry::Update(std::string id,
                                                                           std::string text,
                                                                           std::string actor,
                                                                           Compiled& compiled) {
    auto it = entries_.find(id);
    if (it == entries_.end()) co_return NotFoundError("no workflow " + id);
    if (StartsWith(it->second.origin, kFileOrigin)) {
        co_return FailedPreconditionError("workflow " + id + " comes from " +
                                          it->second.origin.substr(kFileOrigin.size()) +
                                          "; change the file instead");
    }
    compiled = Compile(text, "workflow." + FormatOf(text), options_.base_dir);
    if (!compiled.plan) co_return InvalidArgumentError("the workflow definition is not valid");
    if (NameTaken(compiled.plan->workflow_name, id)) {
        co_return AlreadyExistsError("a workflow named \"" + compiled.plan->workflow_name +
                                     "\" exists");
    }
    co_return co_await Put(std::move(id), "api", std::move(text), std::move(actor), compiled);
}

Awaitable<Status> WorkflowRegistry::Delete(std::string id) {
    if (entries_.find(id) == entries_.end()) co_return NotFoundError("no workflow " + id);
    STROWGER_CO_TRY(co_await store_->DeleteWorkflow(id, clock_.Now()));
    entries_.erase(id);
    co_return OkStatus();
}

Awaitable<WorkflowRegistry::SyncReport> WorkflowRegistry::SyncDirectory(std::string dir) {
    SyncReport report;
    std::error_code ec;
    std::filesystem::path root = std::filesystem::absolute(dir, ec).lexically_normal();
    std::vector<std::filesystem::path> files;
    for (auto it = std::filesystem::directory_iterator(root, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && IsWorkflowFile(it->path())) files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    std::set<std::string> present;
    for (const auto& file : files) {
        std::string origin = std::string(kFileOrigin) + file.string();
        present.insert(origin);
        auto text = ReadFileBlocking(file);
        if (!text) continue;  // removed meanwhile: the next sync sees it gone
        std::string id;
        for (const auto& [entry_id, entry] : entries_) {
            if (entry.origin == origin) id = entry_id;
        }
        Compiled compiled = Compile(*text, file.string(), root.string());
        if (!compiled.plan) {
            std::vector<model::Diagnostic> errors;
            for (auto& d : compiled.diagnostics) {
                if (d.severity == model::Diagnostic::Severity::kError) errors.push_back(d);
            }
            report.invalid.push_back({file.string(), std::move(errors)});
            continue;
        }
        if (NameTaken(compiled.plan->workflow_name, id)) {
            model::Diagnostic taken;
            taken.pos.file = file.string();
            taken.pos.line = 1;
            taken.pos.column = 1;
            taken.path = "name";
            taken.message = "a workflow named \"" + compiled.plan->workflow_name +
                            "\" exists already; this file was not loaded";
            report.invalid.push_back({file.string(), {taken}});
            continue;
        }
        const bool is_new = id.empty();
        const size_t before = is_new ? 0 : entries_[id].versions.size();
        if (is_new) id = NewWorkflowId(clock_, random_);
        auto put = co_await Put(id, origin, std::move(*text), "file", compiled);
        if (!put) {
            model::Diagnostic failed;
            failed.pos.file = file.string();
            failed.message = "cannot store: " + put.error().message();
            report.invalid.push_back({file.string(), {failed}});
            continue;
        }
        if (is_new) {
            ++report.added;
        } else if ((*put)->versions.size() > before) {
            ++report.updated;
        } else {
            ++report.unchanged;
        }
    }
    std::vector<std::string> gone;
    for (const auto& [id, entry] : entries_) {
        if (StartsWith(entry.origin, kFileOrigin) &&
            std::filesystem::path(entry.origin.substr(kFileOrigin.size())).parent_path() == root &&
            present.count(entry.origin) == 0) {
            gone.push_back(id);
        }
    }
    for (const auto& id : gone) {
        if (co_await Delete(id)) ++report.removed;
    }
    co_return report;
}

}  // namespace strowger::api
