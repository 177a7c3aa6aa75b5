// What the store-backed subcommands share: an io_context run by this thread, the providers,
// the store and an engine over them, and a way to run one coroutine to completion.
#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <string>

#include "automation/memory.hpp"
#include "cli/common.hpp"
#include "engine/engine.hpp"
#include "providers/provider.hpp"
#include "store/store.hpp"

namespace strowger::cli {

// How a command uses the store's ledger key (docs/design/audit.md).
struct KeyUse {
    // Verify with this public key file instead of the store's key, and sign nothing (an
    // auditor's `audit verify --pubkey FILE`): the private key is never read or created.
    std::string pubkey_file;
};

class Context {
  public:
    // Opens the store named by `store_flag` (else $STROWGER_STORE, else the default file), with
    // the providers configured by `providers_flag` (see SetUpProvidersAndTools), and the
    // store's ledger key (created on first use): the engine signs checkpoints with it and
    // verifies every run it reads.
    static Result<std::unique_ptr<Context>> Open(const std::string& store_flag,
                                                 const std::string& providers_flag = "",
                                                 const KeyUse& key_use = {});
    // The providers and tools, without the store: `run` checks its workflow and input before
    // it opens the store, so that bad input leaves nothing behind. OpenStore completes it.
    static Result<std::unique_ptr<Context>> WithoutStore(const std::string& providers_flag);
    // Opens the store, its ledger key and the engine over it (once). An sqlite: store keeps
    // the workspaces of runs without a workflow `workspace` in the directory of its file.
    Status OpenStore(const std::string& store_flag, const KeyUse& key_use = {});
    // Stores the checkpoints the engine has queued.
    ~Context();

    asio::io_context& io() { return io_; }
    store::Store& store() { return *store_; }
    const std::shared_ptr<store::Store>& shared_store() const { return store_; }
    const std::string& store_url() const { return store_url_; }
    // The key checkpoints are verified with (null: none could be had).
    std::shared_ptr<const VerifyingKey> verifying_key() const { return verifying_key_; }
    // The store's signing key (null with KeyUse::pubkey_file).
    std::shared_ptr<const SigningKey> signing_key() const { return signing_key_; }
    engine::Engine& engine() { return *engine_; }
    providers::ProviderRegistry& registry() { return *registry_; }

    // Runs `awaitable` on io() until it completes. Work that outlives it (an MCP server's read
    // loop, say) stays queued for the next call instead of keeping this one from returning.
    template <typename T>
    T Await(Awaitable<T> awaitable) {
        std::optional<T> result;
        std::exception_ptr error;
        asio::co_spawn(io_, std::move(awaitable), [&](std::exception_ptr e, T value) {
            error = e;
            if (!e) result.emplace(std::move(value));
            io_.stop();
        });
        io_.restart();
        io_.run();
        if (error) std::rethrow_exception(error);
        return std::move(*result);
    }

  private:
    Context() : io_(1) {}

    asio::io_context io_;
    engine::EngineOptions options_;
    std::unique_ptr<providers::ProviderRegistry> registry_;
    std::shared_ptr<store::Store> store_;
    std::shared_ptr<automation::MemoryService> memory_;  // the memory tools' service
    std::string store_url_;
    std::shared_ptr<const SigningKey> signing_key_;
    std::shared_ptr<const VerifyingKey> verifying_key_;
    std::unique_ptr<engine::Engine> engine_;
};

// Registers this process's providers in `registry` (openai/anthropic/ollama configured from
// --providers FILE, $STROWGER_PROVIDERS or the user's providers.yaml; scripted; command: in the
// sandbox) and fills `options.tools` with the built-in tools. The bubblewrap sandbox (shell,
// command:) and the HTTP client (http_request) are created here; when one cannot be, the tools
// that need it are left out and the reason goes to `options.unavailable_tools` (a command: model
// fails to resolve with it). kInvalidArgument for a bad providers file. `executor` must be run
// by one thread (the HTTP clients use no strands).
// It also registers the agent memory's tools (automation/memory.hpp) over a MemoryService that
// is attached to the store once it is open; `memory` (if given) gets that service.
Status SetUpProvidersAndTools(Executor executor, const std::string& providers_flag,
                              providers::ProviderRegistry& registry, engine::EngineOptions& options,
                              std::shared_ptr<automation::MemoryService>* memory = nullptr);

// SetUpProvidersAndTools for commands that only compile workflows (validate, plan): prints
// the error and returns false for a bad providers file.
bool SetUpProvidersOrReport(Executor executor, const std::string& providers_flag,
                            providers::ProviderRegistry& registry);

// A run named on the command line: its full id, `last` (the newest run) or a unique prefix of
// an id. kNotFound for none, kInvalidArgument for a prefix several runs start.
Result<std::string> ResolveRunId(Context& context, const std::string& text);

// $USER (else the OS account): who is recorded as the actor of a pause, cancel or retry by
// default.
std::string DefaultActor();

// Runs `start` (a run-executing engine call) with live progress, signals and lease renewal,
// prints the outcome like `strowger run` does, and returns the exit code.
// `stream_node` (run --stream): that node's model text is printed on stdout as it arrives,
// instead of the output at the end.
int ExecuteWithProgress(Context& context, Awaitable<Result<engine::RunOutcome>> start,
                        const std::string& progress_mode, bool json_output,
                        const std::string& stream_node = "");

// Records a decision on a run's open task (Engine::Decide) and, unless `no_resume` or another
// task still waits, continues the run here with live progress; returns the exit code. Shared
// by approve, reject and tasks decide.
int DecideOnStore(Context& context, const std::string& run_id, const std::string& task_id,
                  const std::string& decision, const std::string& actor, const std::string& comment,
                  const std::string& output, const std::string& idempotency_key, bool no_resume,
                  const std::string& progress, bool json_output);

}  // namespace strowger::cli
