// Private to the API module: standing agents and cron jobs in the daemon (`serve --agents DIR`;
// docs/formats/agents_cron_state_v1.md). Routes in routes_agents.cpp and routes_cron.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/internal/service.hpp"
#include "automation/agents.hpp"
#include "automation/cron.hpp"
#include "automation/launcher.hpp"

namespace strowger::api::internal {

// What cron jobs start runs through: agent turns through AgentTurns; workflows through the
// daemon's Launcher (`workflows`, the DaemonLauncher triggers and webhooks use: trigger_source,
// origin metadata and the depth its bus events carry), else through the registry directly.
class StandingLauncher final : public automation::Launcher {
  public:
    StandingLauncher(Service& service, automation::AgentTurns& turns)
        : service_(service), turns_(turns) {}
    Awaitable<Result<std::string>> StartWorkflow(std::string workflow, json::value input,
                                                 automation::Origin origin,
                                                 std::string idempotency_key) override;
    Awaitable<Result<std::string>> SendToAgent(automation::AgentMessage message,
                                               std::string idempotency_key) override;
    automation::Launcher* workflows = nullptr;  // set by the daemon

  private:
    Service& service_;
    automation::AgentTurns& turns_;
};

struct Standing {
    Standing(Service& service, std::string agents_dir, model::CompileOptions compile);
    // Loads the manifests of --agents DIR, finishes the turns a previous process left, starts
    // the cron scheduler (missed fires, fires a crash left) and turns manifests' [[cron]]
    // entries into jobs. Manifest problems are returned (and logged), not fatal.
    Awaitable<Result<std::vector<std::string>>> Start();
    // SIGHUP: reads --agents DIR again. New and changed agents replace their definitions,
    // removed ones go (their manifest cron jobs deleted); a file with an error is reported and
    // its agents keep their previous definition. Returns the problems.
    Awaitable<std::vector<std::string>> Reload();
    void Stop();

    Service& service;
    std::string agents_dir;
    model::CompileOptions compile;
    automation::AgentTurns turns;
    StandingLauncher launcher;
    automation::CronScheduler cron;

  private:
    std::vector<std::string> LoadAgents();
    Awaitable<void> SyncManifestCron(std::vector<std::string>& problems);
};

void AddAgentRoutes(Router& router, Service& service, Standing& standing);
void AddCronRoutes(Router& router, Service& service, Standing& standing);

}  // namespace strowger::api::internal
