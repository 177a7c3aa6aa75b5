// The daemon's workflow registry (docs/formats/daemon_state_v1.md, "Workflows"): every version
// of every workflow it was given through the API or found in `--workflows DIR`, compiled once
// and kept in memory; the store keeps them across restarts.
//
// A new version is made only by a definition that compiles; an invalid one is reported with its
// diagnostics (file, line:column, field path) and never replaces a good version. A run is
// pinned to the definition of the version it started with (its snapshot and SHA-256 are in the
// run's ledger), so changing a workflow never changes a running run.
//
// Thread-safety: one executor (the daemon's).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/random.hpp"
#include "model/diagnostic.hpp"
#include "model/plan.hpp"
#include "providers/provider.hpp"
#include "store/store.hpp"

namespace strowger::api {

class WorkflowRegistry {
  public:
    struct Options {
        // Agent directories for definitions that name agents they do not define (LibreFang's
        // bodies refer to agents by name): `<workflows dir>/agents` when there is one.
        std::vector<std::string> agent_dirs;
        // Where relative paths of definitions submitted through the API resolve (scripted
        // model files): the --workflows directory, else the daemon's working directory.
        std::string base_dir;
    };

    struct Version {
        store::WorkflowVersion record;
        std::shared_ptr<const model::Plan> plan;  // null if it no longer compiles
        std::string error;                        // why not
    };
    struct Entry {
        std::string id;
        std::string origin;
        std::vector<Version> versions;  // by version number, from 1
        const Version& latest() const { return versions.back(); }
        const std::string& name() const { return latest().record.name; }
        // Version `number` (0 = the latest), or null.
        const Version* Find(int64_t number) const;
    };
    struct Compiled {
        std::shared_ptr<const model::Plan> plan;  // null if there are errors
        std::vector<model::Diagnostic> diagnostics;
        std::string format;  // "json" | "yaml"
    };

    WorkflowRegistry(std::shared_ptr<store::Store> store, providers::ProviderRegistry& providers,
                     Options options, Clock& clock = Clock::Real(),
                     Random& random = Random::Real());

    // Validates and compiles a definition, as `strowger validate` would (models resolved too).
    Compiled Compile(std::string_view text, const std::string& file_name,
                     const std::string& base_dir) const;

    // Reads every version of every live workflow from the store and compiles it.
    Awaitable<Status> Load();

    // By id, else by name; null if none.
    const Entry* Find(std::string_view id_or_name) const;
    // Every live workflow, by id (ids sort by creation time).
    std::vector<const Entry*> List() const;

    // A new workflow from `text`. kInvalidArgument if it does not compile (diagnostics in
    // `compiled`), kAlreadyExists if a live workflow has its name.
    Awaitable<Result<const Entry*>> Create(std::string text, std::string actor, Compiled& compiled);
    // A new version of workflow `id` (none if the definition did not change). kNotFound,
    // kInvalidArgument (diagnostics in `compiled`), kAlreadyExists (the new name is taken).
    Awaitable<Result<const Entry*>> Update(std::string id, std::string text, std::string actor,
                                           Compiled& compiled);
    Awaitable<Status> Delete(std::string id);

    // Brings the registry in line with the workflow files (*.yaml, *.yml, *.json) of `dir`: a
    // new or changed valid file becomes a new version of its workflow, a removed file deletes
    // its workflow, an invalid file is reported and changes nothing.
    struct SyncReport {
        int added = 0;
        int updated = 0;
        int removed = 0;
        int unchanged = 0;
        struct Invalid {
            std::string file;
            std::vector<model::Diagnostic> diagnostics;
        };
        std::vector<Invalid> invalid;
    };
    Awaitable<SyncReport> SyncDirectory(std::string dir);

  private:
    Version CompileStored(const store::WorkflowVersion& record) const;
    // A name other than `except_id`'s that `name` would collide with.
    bool NameTaken(const std::string& name, const std::string& except_id) const;
    // Stores `compiled` as the next version of `id` (new if `origin` is set).
    Awaitable<Result<const Entry*>> Put(std::string id, std::string origin, std::string text,
                                        std::string actor, const Compiled& compiled);

    std::shared_ptr<store::Store> store_;
    providers::ProviderRegistry& providers_;
    Options options_;
    Clock& clock_;
    Random& random_;
    std::map<std::string, Entry, std::less<>> entries_;  // live workflows by id
};

// "wf_" + a ULID.
std::string NewWorkflowId(const Clock& clock, Random& random);

}  // namespace strowger::api
