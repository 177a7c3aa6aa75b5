// The daemon's automation::Launcher (see DaemonLauncher in internal/service.hpp).
#include <boost/json.hpp>

#include "api/internal/service.hpp"

namespace strowger::api::internal {
namespace {

// A start's problem response as an error of the matching code.
Error ErrorFromProblem(const Response& response) {
    std::string detail = "status " + std::to_string(response.status);
    if (auto parsed = ParseJson(response.body); parsed && parsed->is_object()) {
        detail = std::string(JsonString(parsed->as_object(), "detail", detail));
    }
    ErrorCode code = ErrorCode::kInternal;
    switch (response.status) {
        case 400:
            code = ErrorCode::kInvalidArgument;
            break;
        case 404:
            code = ErrorCode::kNotFound;
            break;
        case 409:
            code = ErrorCode::kFailedPrecondition;
            break;
        case 503:
            code = ErrorCode::kUnavailable;
            break;
        default:
            break;
    }
    return Error(code, std::move(detail));
}

}  // namespace

Awaitable<Result<std::string>> DaemonLauncher::StartWorkflow(std::string workflow,
                                                             json::value input,
                                                             automation::Origin origin,
                                                             std::string idempotency_key) {
    const WorkflowRegistry::Entry* entry = service_.workflows.Find(workflow);
    if (!entry) co_return NotFoundError("no workflow \"" + workflow + "\"");
    StartArgs args;
    args.workflow = entry;
    args.version = &entry->latest();
    if (input.is_string()) {
        args.input = std::string(input.as_string());
    } else {
        args.input = CompactJson(input);
        args.input_json = true;
    }
    args.idempotency_key = idempotency_key;
    args.trigger_source = origin.kind;
    json::object described;
    described["kind"] = origin.kind;
    described["id"] = origin.id;
    if (!origin.fire_id.empty()) described["fire_id"] = origin.fire_id;
    described["depth"] = origin.depth;
    json::object metadata;
    metadata["origin"] = std::move(described);
    args.metadata = CompactJson(metadata);
    args.actor = origin.kind + ":" + origin.id;
    // The run's events carry the start's depth (the bus sees the key in run.created).
    bus_.ExpectStart(idempotency_key, origin.depth);
    Service::Started started;
    Response response = co_await StartFromRegistry(&service_, std::move(args), &started);
    if (response.status != 200 && response.status != 202) {
        co_return std::unexpected(ErrorFromProblem(response));
    }
    if (started.run_id.empty()) {
        if (auto parsed = ParseJson(response.body); parsed && parsed->is_object()) {
            started.run_id = std::string(JsonString(parsed->as_object(), "run_id"));
        }
    }
    // A start that named an existing run (a fire completed after a restart): its further
    // events still carry the depth.
    if (started.existing) {
        bus_.TakeExpectedDepth(idempotency_key);
        bus_.SetRunDepth(started.run_id, origin.depth);
    }
    co_return started.run_id;
}

Awaitable<Result<std::string>> DaemonLauncher::SendToAgent(automation::AgentMessage message,
                                                           std::string idempotency_key) {
    if (agent_turns) {
        co_return co_await agent_turns->SendToAgent(std::move(message), std::move(idempotency_key));
    }
    co_return UnavailableError("cannot send to agent \"" + message.agent +
                               "\": this daemon runs no standing agents (agent turns are not "
                               "available); target a workflow instead");
}

}  // namespace strowger::api::internal
