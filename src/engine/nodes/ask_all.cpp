#include "engine/nodes/ask_all.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <memory>

namespace strowger::engine::nodes {
namespace {

struct Shared {
    explicit Shared(const Executor& executor) : done(executor) {}
    std::vector<AskCall> calls;
    std::vector<Result<std::string>> results;
    size_t next = 0;
    size_t running = 0;
    bool stop = false;
    asio::steady_timer done;
};

Awaitable<void> Lane(NodeRun& run, std::shared_ptr<Shared> shared) {
    while (!shared->stop && shared->next < shared->calls.size()) {
        const size_t i = shared->next++;
        AskCall& call = shared->calls[i];
        auto answer = co_await run.Ask(call.agent, call.label, std::move(call.prompt));
        if (!answer) shared->stop = true;
        shared->results[i] = std::move(answer);
    }
}

}  // namespace

Awaitable<std::vector<Result<std::string>>> AskAll(NodeRun& run, std::vector<AskCall> calls,
                                                   size_t max_parallel) {
    auto executor = co_await asio::this_coro::executor;
    auto shared = std::make_shared<Shared>(executor);
    shared->results.assign(calls.size(), std::unexpected(Error(ErrorCode::kCancelled, "not run")));
    shared->calls = std::move(calls);
    const size_t lanes = std::min(std::max<size_t>(max_parallel, 1), shared->calls.size());
    if (lanes == 0) co_return std::move(shared->results);
    shared->done.expires_at(asio::steady_timer::time_point::max());
    auto signals = std::make_shared<std::vector<asio::cancellation_signal>>(lanes);
    shared->running = lanes;
    for (size_t k = 0; k < lanes; ++k) {
        asio::co_spawn(executor, Lane(run, shared),
                       asio::bind_cancellation_slot((*signals)[k].slot(),
                                                    [shared, signals](std::exception_ptr) {
                                                        if (--shared->running == 0) {
                                                            shared->done.cancel();
                                                        }
                                                    }));
    }
    // Wait for every lane; if the node is cancelled meanwhile (timeout, run cancel, a join
    // firing), pass the cancellation on and keep waiting until they have all stopped.
    while (shared->running > 0) {
        co_await shared->done.async_wait(asio::as_tuple(asio::use_awaitable));
        if (shared->running > 0) {
            shared->stop = true;
            for (auto& signal : *signals) signal.emit(asio::cancellation_type::terminal);
            co_await asio::this_coro::reset_cancellation_state();
        }
    }
    co_return std::move(shared->results);
}

NodeOutcome SubCallFailure(std::string_view type, std::string_view part, const Error& error) {
    return NodeOutcome::Failed(Error(
        error.code(),
        std::string(type) + " failed: " + std::string(part) + ": " + std::string(error.message())));
}

std::string AgentName(const model::Plan& plan, int agent) {
    if (agent >= 0 && static_cast<size_t>(agent) < plan.agents.size() &&
        !plan.agents[static_cast<size_t>(agent)].name.empty()) {
        return plan.agents[static_cast<size_t>(agent)].name;
    }
    return "agent" + std::to_string(agent);
}

}  // namespace strowger::engine::nodes
