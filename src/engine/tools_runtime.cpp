// The engine's side of tools: resolving an agent's tool allowlist to tools (starting MCP
// servers once per definition), and recording human decisions on waiting runs.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

#include <boost/json.hpp>
#include "core/checked_math.hpp"
#include "core/strings.hpp"
#include "engine/internal/engine_impl.hpp"

#include "core/json.hpp"
#include "engine/internal/run.hpp"

namespace strowger::engine {
namespace {

constexpr auto kMcpStartTimeout = std::chrono::seconds(120);

tools::ToolGrants GrantsFor(const model::AgentSpec& agent, const tools::SandboxLimits& defaults) {
    tools::ToolGrants grants;
    grants.network = agent.network;
    grants.http_hosts = agent.http_hosts;
    grants.private_addresses = agent.private_addresses;
    grants.sandbox = defaults;
    const auto& s = agent.sandbox;
    // The workflow's numbers are any positive int64: the conversions saturate.
    if (s.cpu_seconds) grants.sandbox.cpu_seconds = *s.cpu_seconds;
    if (s.memory_mb) grants.sandbox.memory_bytes = SaturatingMul(*s.memory_mb, int64_t{1} << 20);
    if (s.max_processes) grants.sandbox.max_processes = *s.max_processes;
    if (s.max_open_files) grants.sandbox.max_open_files = *s.max_open_files;
    if (s.max_file_size_mb) {
        grants.sandbox.max_file_size_bytes = SaturatingMul(*s.max_file_size_mb, int64_t{1} << 20);
    }
    if (s.timeout_secs) grants.sandbox.wall_timeout_ms = SaturatingMul(*s.timeout_secs, 1000);
    if (s.max_output_kb) {
        grants.sandbox.max_output_bytes = SaturatingMul(*s.max_output_kb, int64_t{1} << 10);
    }
    return grants;
}

// Function names the model sees: OpenAI allows [A-Za-z0-9_-]{1,64}, so "server/tool" is sent
// as "server__tool" and mapped back when the model calls it.
std::string ModelFacingName(const std::string& name) {
    std::string out = name;
    auto slash = out.find('/');
    if (slash != std::string::npos) out.replace(slash, 1, "__");
    return out;
}

tools::mcp::McpServerSpec ToClientSpec(const model::McpServerSpec& server) {
    tools::mcp::McpServerSpec spec;
    spec.name = server.name;
    spec.command = server.command;
    spec.args = server.args;
    spec.env = server.env;
    spec.working_dir = server.base_dir.empty() ? std::filesystem::current_path()
                                               : std::filesystem::path(server.base_dir);
    spec.sandboxed = server.sandboxed;
    spec.network = server.network;
    spec.default_safety =
        tools::SafetyClassFromName(server.safety).value_or(tools::SafetyClass::kDestructive);
    for (const auto& [tool, settings] : server.tools) {
        if (auto safety = tools::SafetyClassFromName(settings.safety))
            spec.tool_safety[tool] = *safety;
    }
    return spec;
}

}  // namespace

Awaitable<Result<std::shared_ptr<tools::mcp::McpClient>>> Engine::Impl::McpClientFor(
    std::string definition_sha256, model::McpServerSpec server) {
    const std::string key = definition_sha256 + "/" + server.name;
    auto executor = co_await asio::this_coro::executor;
    while (true) {
        std::shared_ptr<McpSlot> slot;
        std::shared_ptr<asio::steady_timer> waiter;
        {
            std::lock_guard lock(mutex_);
            auto& entry = mcp_[key];
            if (!entry) entry = std::make_shared<McpSlot>();
            slot = entry;
            if (slot->client) co_return slot->client;
            if (slot->error) co_return std::unexpected(*slot->error);
            if (slot->starting) {
                waiter = std::make_shared<asio::steady_timer>(executor);
                waiter->expires_at(asio::steady_timer::time_point::max());
                slot->waiters.push_back(waiter);
            } else {
                slot->starting = true;
            }
        }
        if (waiter) {
            // Another run is starting this server: wait for it, then look again.
            co_await waiter->async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        auto deadline = Deadline::After(kMcpStartTimeout);
        auto started =
            co_await tools::mcp::StartMcpClient(executor_, ToClientSpec(server), deadline);
        // Not `started ? co_await ... : ...`: GCC 12 never resumes a co_await inside a
        // conditional expression here (the run hung at its first MCP tool).
        Result<std::vector<tools::mcp::McpToolInfo>> listed;
        if (started) {
            auto tools_listed = co_await (*started)->ListTools(deadline);
            listed = std::move(tools_listed);
        }
        std::vector<std::shared_ptr<asio::steady_timer>> waiters;
        {
            std::lock_guard lock(mutex_);
            slot->starting = false;
            if (started && listed) {
                slot->client = *started;
                slot->tools = std::move(*listed);
            } else {
                slot->error = (started ? listed.error() : started.error())
                                  .WithPrefix("MCP server '" + server.name + "': ");
                if (started) (*started)->Shutdown();
            }
            waiters.swap(slot->waiters);
        }
        for (auto& timer : waiters) {
            asio::post(timer->get_executor(), [timer] { timer->cancel(); });
        }
    }
}

void Engine::Impl::StopMcpServers() {
    std::lock_guard lock(mutex_);
    for (auto& [key, slot] : mcp_) {
        if (slot->client) slot->client->Shutdown();
    }
    mcp_.clear();
}

Awaitable<Result<internal::AgentTool>> Engine::Impl::ToolNamed(
    std::shared_ptr<internal::PlanRuntime> runtime, std::string name) {
    const model::Plan& plan = *runtime->plan;
    internal::AgentTool entry;
    entry.name = name;
    auto slash = name.find('/');
    if (slash == std::string::npos) {
        entry.tool = options_.tools ? options_.tools->Find(name) : nullptr;
        if (!entry.tool) {
            std::string message = "tool '" + name + "' is not available in this process";
            if (auto why = options_.unavailable_tools.find(name);
                why != options_.unavailable_tools.end()) {
                message += ": " + why->second;
            }
            co_return FailedPreconditionError(std::move(message));
        }
        entry.safety = entry.tool->safety();
        co_return entry;
    }
    std::string server_name = name.substr(0, slash);
    std::string tool_name = name.substr(slash + 1);
    const model::McpServerSpec* server = nullptr;
    for (const auto& s : plan.mcp_servers) {
        if (s.name == server_name) server = &s;
    }
    if (server == nullptr) co_return NotFoundError("no MCP server '" + server_name + "'");
    STROWGER_CO_ASSIGN_OR_RETURN(auto client,
                                 co_await McpClientFor(plan.definition_sha256, *server));
    std::vector<tools::mcp::McpToolInfo> available;
    {
        std::lock_guard lock(mutex_);
        available = mcp_[plan.definition_sha256 + "/" + server_name]->tools;
    }
    auto info = std::find_if(available.begin(), available.end(),
                             [&](const auto& t) { return t.name == tool_name; });
    if (info == available.end()) {
        std::vector<std::string> names;
        for (const auto& t : available) names.push_back(t.name);
        co_return NotFoundError("MCP server '" + server_name + "' has no tool '" + tool_name +
                                "' (it has: " + Join(names, ", ") + ")");
    }
    entry.tool = tools::mcp::MakeMcpTool(client, *info);
    entry.safety = entry.tool->safety();
    if (auto it = server->tools.find(tool_name); it != server->tools.end()) {
        entry.require_approval = it->second.require_approval;
    }
    co_return entry;
}

tools::ToolGrants Engine::Impl::DefaultGrants() const {
    return GrantsFor(model::AgentSpec{}, options_.default_sandbox);
}

Awaitable<Result<std::shared_ptr<const internal::AgentToolSet>>> Engine::Impl::ToolsFor(
    std::shared_ptr<internal::PlanRuntime> runtime, int agent) {
    {
        std::lock_guard lock(runtime->mutex);
        if (runtime->tool_sets.size() > static_cast<size_t>(agent) &&
            runtime->tool_sets[static_cast<size_t>(agent)]) {
            co_return runtime->tool_sets[static_cast<size_t>(agent)];
        }
    }
    const model::Plan& plan = *runtime->plan;
    const model::AgentSpec& spec = plan.agents[static_cast<size_t>(agent)];
    auto set = std::make_shared<internal::AgentToolSet>();
    set->grants = GrantsFor(spec, options_.default_sandbox);
    for (const auto& name : spec.tools) {
        bool approval = std::find(spec.require_approval.begin(), spec.require_approval.end(),
                                  name) != spec.require_approval.end();
        STROWGER_CO_ASSIGN_OR_RETURN(internal::AgentTool entry, co_await ToolNamed(runtime, name));
        entry.require_approval = entry.require_approval || approval;
        providers::ToolSpec model_spec = entry.tool->spec();
        model_spec.name = ModelFacingName(name);
        set->specs.push_back(std::move(model_spec));
        set->tools.push_back(std::move(entry));
    }
    std::lock_guard lock(runtime->mutex);
    if (runtime->tool_sets.size() <= static_cast<size_t>(agent)) {
        runtime->tool_sets.resize(plan.agents.size());
    }
    auto& slot = runtime->tool_sets[static_cast<size_t>(agent)];
    if (!slot) slot = set;
    co_return slot;
}

Awaitable<Result<std::string>> Engine::Impl::DecideLeased(std::string run_id, std::string task_id,
                                                          std::string decision, std::string actor,
                                                          std::string comment, std::string output,
                                                          std::string idempotency_key) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto loaded, co_await Load(run_id));
    auto open = loaded.state.OpenTasks();
    const ledger::HumanTask* task = nullptr;
    if (task_id.empty()) {
        if (open.empty()) {
            co_return FailedPreconditionError(
                "run " + run_id + " is " + std::string(ledger::RunStatusName(loaded.state.status)) +
                " and waits for no decision (see `strowger runs show " + run_id + "`)");
        }
        if (open.size() != 1) {
            std::vector<std::string> ids;
            for (const auto* t : open) ids.push_back(t->task_id);
            co_return FailedPreconditionError(
                "run " + run_id + " has " + std::to_string(open.size()) + " open tasks; name one" +
                (ids.empty() ? "" : ": " + Join(ids, ", ")));
        }
        task = open.front();
    } else {
        // A decision already recorded under this key is that decision, even once the task
        // closed (a retried request).
        if (const ledger::HumanTask* any = loaded.state.FindTask(task_id);
            any != nullptr && any->HasDecision(idempotency_key)) {
            co_return any->task_id;
        }
        for (const auto* t : open) {
            if (t->task_id == task_id) task = t;
        }
        if (task == nullptr) {
            co_return NotFoundError("run " + run_id + " has no open task '" + task_id + "'");
        }
    }
    if (task->HasDecision(idempotency_key)) co_return task->task_id;
    if (!output.empty() && task->kind != "reconciliation") {
        co_return InvalidArgumentError("an output can only be given for a reconciliation task");
    }
    if (task->kind != "task" && decision != "approve" && decision != "reject") {
        co_return InvalidArgumentError("task " + task->task_id + " takes approve or reject, not " +
                                       decision);
    }
    std::string id = task->task_id;
    const std::string node = task->node_index >= 0
                                 ? loaded.plan->nodes[static_cast<size_t>(task->node_index)].id
                                 : std::string();
    ledger::NewEvent event{
        node, 0, ledger::HumanTaskDecided{id, decision, actor, comment, output, idempotency_key}};
    STROWGER_CO_TRY(co_await AppendIdle(loaded, std::move(event)));
    if (task->kind != "task" || decision == "progress") co_return id;
    // A human_task's task: a terminal decision, or the quorum's last approval, completes it.
    const ledger::HumanTask* now = loaded.state.FindTask(id);
    const int64_t required = now->details ? now->details->required_count : 1;
    std::string signal;
    if (decision == "reject") {
        signal = "rejected";
    } else if (decision == "request_changes") {
        signal = "request_changes";
    } else if (static_cast<int64_t>(now->Approvals()) >= required) {
        signal = "approved";
    }
    if (signal.empty()) co_return id;
    json::array approvals;
    for (const auto& d : now->decisions) {
        if (d.action == "approve") approvals.emplace_back(d.actor);
    }
    json::object result{{"decision", signal},
                        {"actor", actor},
                        {"comment", comment},
                        {"approvals", std::move(approvals)}};
    auto text = CanonicalJson(result);
    ledger::NewEvent completed{
        node, 0,
        ledger::HumanTaskCompleted{id, signal, text ? *text : json::serialize(result), "decided"}};
    STROWGER_CO_TRY(co_await AppendIdle(loaded, std::move(completed)));
    co_return id;
}

Awaitable<Result<std::string>> Engine::Decide(std::string run_id, std::string task_id,
                                              std::string decision, std::string actor,
                                              std::string comment, std::string output,
                                              std::string idempotency_key) {
    if (decision != "approve" && decision != "reject" && decision != "request_changes" &&
        decision != "progress") {
        co_return InvalidArgumentError(
            "decision must be approve, reject, request_changes or progress, not \"" + decision +
            "\"");
    }
    // Another decider (a quorum's other approver) holds the run only for a moment: wait a
    // little for it, but not for a run executing here or in another process.
    asio::steady_timer backoff(co_await asio::this_coro::executor);
    for (int tries = 0; !co_await impl_->Claim(run_id, Impl::ClaimKind::kIdle); ++tries) {
        if (impl_->Find(run_id) || tries >= 60) {
            co_return FailedPreconditionError("run " + run_id +
                                              " is executing; decide its tasks once it waits");
        }
        backoff.expires_after(std::chrono::milliseconds(50));
        co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    Impl::ClaimGuard claim(impl_.get(), run_id);
    bool leased = false;
    for (int tries = 0; tries < 60 && !leased; ++tries) {
        auto until = impl_->clock_.Now() + impl_->options_.lease_duration;
        STROWGER_CO_ASSIGN_OR_RETURN(
            leased, co_await impl_->store_->TryLease(run_id, impl_->options_.owner, until));
        if (leased) break;
        STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await impl_->store_->GetRun(run_id));
        if (record.status == ledger::RunStatus::kRunning) break;
        backoff.expires_after(std::chrono::milliseconds(50));
        co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (!leased)
        co_return MakeError(ErrorCode::kAborted, "run " + run_id + " is executing elsewhere");
    auto decided = co_await impl_->DecideLeased(run_id, std::move(task_id), std::move(decision),
                                                std::move(actor), std::move(comment),
                                                std::move(output), std::move(idempotency_key));
    (void)co_await impl_->store_->ReleaseLease(run_id, impl_->options_.owner);
    co_return decided;
}

}  // namespace strowger::engine
