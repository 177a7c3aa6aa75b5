// What a cron job is made of, read the same way from the API's body (POST/PUT /api/cron/jobs)
// and from an agent manifest's cron entries (TOML `[[cron]]`, YAML/JSON `cron:`): one field
// list, one reader, one check (docs/formats/agents_cron_state_v1.md).
#pragma once

#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/result.hpp"

namespace strowger::automation {

// What creates or replaces a job (the API's body, a manifest's cron entry).
struct CronJobSpec {
    std::string job_id;  // "" = a new id
    std::string name;
    std::string agent;
    json::value schedule;  // Schedule::FromJson's shapes (or a spec string)
    json::value action;    // {"kind":"agent_turn",...} | {"kind":"workflow_run",...}
    bool enabled = true;
    std::string misfire = "coalesce";
    std::string overlap = "skip";
    std::string origin = "api";
};

// The fields of a cron job. `action` may be given whole, or flat: `message` (with
// `session_mode`, `model_override`, `timeout_secs`) for an agent turn, `workflow_id` (with
// `input`) for a workflow run. A manifest's entry takes all but `agent_id` (its agent is the
// manifest's).
inline constexpr std::string_view kCronJobFields[] = {
    "agent_id",       "name",         "schedule",    "tz",    "action",  "message", "session_mode",
    "model_override", "timeout_secs", "workflow_id", "input", "misfire", "overlap", "enabled"};

// The fields a standing-agent manifest adds to an agent file's (TOML, YAML or JSON alike).
inline constexpr std::string_view kStandingAgentFields[] = {"session_mode", "max_history_tokens",
                                                            "cron"};
inline constexpr int64_t kMinHistoryTokens = 100;

// Applies the fields of `body` to `base` (PUT changes only what it gives). kInvalidArgument
// "field: message" for a field of the wrong type.
Result<CronJobSpec> CronSpecFromJson(const json::object& body, CronJobSpec base);

// Checks a spec as CronScheduler::Put does, without the store or the agents: the schedule
// (at `now`), the action, misfire, overlap, the name. Returns it with its schedule in the
// stored form. kInvalidArgument "field: message" (field as in the body: `schedule.expr`,
// `action.session_mode`, `misfire`, ...).
Result<CronJobSpec> CheckCronSpec(CronJobSpec spec, SystemTime now);

}  // namespace strowger::automation
