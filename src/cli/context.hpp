// What the store-backed subcommands share: an io_context run by this thread, the providers,
// the store and an engine over them, and a way to run one coroutine to completion.
#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>
#include <optional>
#include <string>

#include "cli/common.hpp"
#include "engine/engine.hpp"
#include "providers/provider.hpp"
#include "store/store.hpp"

namespace strowger::cli {

class Context {
  public:
    // Opens the store named by `store_flag` (else $STROWGER_STORE, else the default file).
    static Result<std::unique_ptr<Context>> Open(const std::string& store_flag);

    asio::io_context& io() { return io_; }
    store::Store& store() { return *store_; }
    engine::Engine& engine() { return *engine_; }
    providers::ProviderRegistry& registry() { return *registry_; }

    // Runs `awaitable` on io() until it completes.
    template <typename T>
    T Await(Awaitable<T> awaitable) {
        std::optional<T> result;
        std::exception_ptr error;
        asio::co_spawn(io_, std::move(awaitable), [&](std::exception_ptr e, T value) {
            error = e;
            if (!e) result.emplace(std::move(value));
        });
        io_.restart();
        io_.run();
        if (error) std::rethrow_exception(error);
        return std::move(*result);
    }

  private:
    Context() : io_(1) {}

    asio::io_context io_;
    std::unique_ptr<providers::ProviderRegistry> registry_;
    std::shared_ptr<store::Store> store_;
    std::unique_ptr<engine::Engine> engine_;
};

// $USER (or "unknown"): who is recorded as the actor of a pause, cancel or retry by default.
std::string DefaultActor();

// Runs `start` (a run-executing engine call) with live progress, signals and lease renewal,
// prints the outcome like `strowger run` does, and returns the exit code.
int ExecuteWithProgress(Context& context, Awaitable<Result<engine::RunOutcome>> start,
                        const std::string& progress_mode, bool json_output);

}  // namespace strowger::cli
