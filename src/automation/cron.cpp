#include "automation/cron.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <spdlog/spdlog.h>

#include "core/ids.hpp"
#include "core/strings.hpp"

namespace strowger::automation {
namespace {

// Counting missed fires stops here (the count says "at least").
constexpr int64_t kMaxMissedCounted = 100'000;

Result<json::object> CheckAction(const json::value& value, const std::string& agent,
                                 const std::function<bool(const std::string&)>& agent_known) {
    const auto* o = value.if_object();
    if (o == nullptr) return InvalidArgumentError("action: expected an object with \"kind\"");
    std::string kind(JsonString(*o, "kind"));
    json::object action = *o;
    if (kind == "agent_turn") {
        const auto* message = o->if_contains("message");
        if (message == nullptr || !message->is_string() || message->as_string().empty()) {
            return InvalidArgumentError("action.message: an agent turn needs a message");
        }
        std::string mode(JsonString(*o, "session_mode"));
        if (!mode.empty() && mode != "persistent" && mode != "new") {
            return InvalidArgumentError(
                "action.session_mode: expected \"persistent\" or \"new\", "
                "not \"" +
                mode + "\"");
        }
        if (const auto* t = o->if_contains("timeout_secs");
            t != nullptr && !t->is_null() && (!t->is_int64() || t->as_int64() < 1)) {
            return InvalidArgumentError("action.timeout_secs: expected a positive whole number");
        }
        if (const auto* m = o->if_contains("model_override");
            m != nullptr && !m->is_null() && !m->is_string()) {
            return InvalidArgumentError("action.model_override: expected a string");
        }
        if (agent.empty()) return InvalidArgumentError("agent_id: an agent turn needs an agent");
        if (agent_known && !agent_known(agent)) {
            return NotFoundError("agent_id: no agent named " + agent);
        }
        return action;
    }
    if (kind == "workflow_run") {
        const auto* id = o->if_contains("workflow_id");
        if (id == nullptr || !id->is_string() || id->as_string().empty()) {
            return InvalidArgumentError("action.workflow_id: a workflow run needs a workflow_id");
        }
        return action;
    }
    return InvalidArgumentError("action.kind: expected \"agent_turn\" or \"workflow_run\", not \"" +
                                kind + "\"");
}

}  // namespace

Result<CronJobSpec> CronSpecFromJson(const json::object& body, CronJobSpec base) {
    auto text = [&](const char* field, std::string& out) -> Status {
        if (const auto* v = body.if_contains(field)) {
            if (!v->is_string())
                return InvalidArgumentError(std::string(field) + ": expected a string");
            out = std::string(v->as_string());
        }
        return OkStatus();
    };
    STROWGER_TRY(text("agent_id", base.agent));
    STROWGER_TRY(text("name", base.name));
    if (const auto* v = body.if_contains("schedule")) {
        base.schedule = *v;
        const auto* tz = body.if_contains("tz");
        if (tz != nullptr && v->is_object() && !v->as_object().contains("tz")) {
            base.schedule.as_object()["tz"] = *tz;
        } else if (tz != nullptr && v->is_string() && !StartsWith(v->as_string(), "every ") &&
                   !StartsWith(v->as_string(), "at ")) {
            // A cron expression as a string, with its zone beside it (the CLI's --tz).
            base.schedule = json::object{{"kind", "cron"}, {"expr", *v}, {"tz", *tz}};
        }
    }
    if (const auto* v = body.if_contains("action")) base.action = *v;
    if (const auto* v = body.if_contains("message")) {
        // An agent turn, flat: {"message": ..., "session_mode": ..., "model_override": ...,
        // "timeout_secs": ...}.
        json::object action{{"kind", "agent_turn"}, {"message", *v}};
        for (const char* field : {"session_mode", "model_override", "timeout_secs"}) {
            if (const auto* f = body.if_contains(field)) action[field] = *f;
        }
        base.action = action;
    } else if (const auto* w = body.if_contains("workflow_id")) {
        // A workflow run, flat: {"workflow_id": ..., "input": ...}.
        json::object action{{"kind", "workflow_run"}, {"workflow_id", *w}};
        if (const auto* input = body.if_contains("input")) action["input"] = *input;
        base.action = action;
    }
    STROWGER_TRY(text("misfire", base.misfire));
    STROWGER_TRY(text("overlap", base.overlap));
    if (const auto* v = body.if_contains("enabled")) {
        if (!v->is_bool()) return InvalidArgumentError("enabled: expected true or false");
        base.enabled = v->as_bool();
    }
    if (base.schedule.is_null()) return InvalidArgumentError("schedule: required");
    if (base.action.is_null()) {
        return InvalidArgumentError("action: required (or message, or workflow_id)");
    }
    return base;
}

Result<CronJobSpec> CheckCronSpec(CronJobSpec spec, SystemTime now) {
    auto schedule = Schedule::FromJson(spec.schedule, now);
    if (!schedule) {
        // A spec string's errors name no field: the field is the schedule.
        if (spec.schedule.is_string())
            return std::unexpected(schedule.error().WithPrefix("schedule: "));
        return std::unexpected(schedule.error());
    }
    STROWGER_ASSIGN_OR_RETURN(auto action, CheckAction(spec.action, spec.agent, nullptr));
    if (spec.misfire != "coalesce" && spec.misfire != "skip" && spec.misfire != "all") {
        return InvalidArgumentError("misfire: expected \"coalesce\", \"skip\" or \"all\", not \"" +
                                    spec.misfire + "\"");
    }
    if (spec.overlap != "skip" && spec.overlap != "allow") {
        return InvalidArgumentError("overlap: expected \"skip\" or \"allow\", not \"" +
                                    spec.overlap + "\"");
    }
    if (spec.name.empty()) return InvalidArgumentError("name: a cron job needs a name");
    spec.schedule = schedule->ToJson();
    spec.action = std::move(action);
    return spec;
}

std::string CronFireKey(const std::string& job_id, SystemTime scheduled) {
    return "cron/" + job_id + "/" + std::to_string(ToUnixMicros(scheduled));
}

CronScheduler::CronScheduler(Executor executor, std::shared_ptr<store::Store> store,
                             Launcher& launcher,
                             std::function<Awaitable<Result<RunEnd>>(std::string)> wait,
                             Clock& clock, Random& random, Options options)
    : executor_(executor),
      store_(std::move(store)),
      launcher_(launcher),
      wait_(std::move(wait)),
      clock_(clock),
      random_(random),
      options_(options),
      timer_(std::make_unique<asio::steady_timer>(executor)) {}

CronScheduler::~CronScheduler() {
    *alive_ = false;
    Stop();
}

void CronScheduler::Stop() {
    stopped_ = true;
    if (timer_) timer_->cancel();
}

SystemTime CronScheduler::NextAfter(const Entry& entry, SystemTime after) const {
    return entry.schedule.NextAfter(after, entry.job.created_at).value_or(SystemTime{});
}

void CronScheduler::Enqueue(Entry& entry) {
    ++entry.generation;
    if (!entry.job.enabled || entry.job.next_fire_at == SystemTime{}) return;
    const bool earliest = heap_.empty() || entry.job.next_fire_at < heap_.top().at;
    heap_.push({entry.job.next_fire_at, entry.generation, entry.job.job_id});
    if (earliest) Rearm();
}

void CronScheduler::Rearm() {
    if (timer_ && !firing_) timer_->cancel();
}

std::optional<SystemTime> CronScheduler::NextDue() {
    while (!heap_.empty()) {
        const Due& top = heap_.top();
        auto it = jobs_.find(top.job_id);
        if (it == jobs_.end() || it->second.generation != top.generation) {
            heap_.pop();  // stale: the job changed or was deleted
            continue;
        }
        return top.at;
    }
    return std::nullopt;
}

Awaitable<Status> CronScheduler::Start() {
    STROWGER_CO_ASSIGN_OR_RETURN(auto jobs, co_await store_->ListCronJobs());
    for (auto& job : jobs) {
        auto parsed = ParseJson(job.schedule);
        // Checked as of the job's creation (an `at` job's time was ahead then).
        Result<automation::Schedule> schedule =
            parsed ? Schedule::FromJson(*parsed, job.created_at - std::chrono::seconds(1))
                   : Result<automation::Schedule>(std::unexpected(parsed.error()));
        if (!schedule) {
            spdlog::error("cron job {}: stored schedule {} does not parse: {}", job.job_id,
                          job.schedule, schedule.error().message());
            continue;
        }
        Entry entry{std::move(job), std::move(*schedule), 0, 0};
        std::string id = entry.job.job_id;
        auto [it, inserted] = jobs_.emplace(id, std::move(entry));
        Enqueue(it->second);
    }
    // Fires a crash left: recorded ones start now (same key: at most one run), started ones are
    // watched until their run stops.
    STROWGER_CO_ASSIGN_OR_RETURN(auto open, co_await store_->ListOpenCronFires());
    for (auto& fire : open) {
        auto it = jobs_.find(fire.job_id);
        if (it == jobs_.end()) continue;
        if (fire.status == "recorded") {
            co_await StartFire(std::move(fire));
        } else {
            ++it->second.running;
            ++watching_;
            asio::co_spawn(executor_, Watch(std::move(fire)), asio::detached);
        }
    }
    co_await FireDue();
    if (options_.run_timer) asio::co_spawn(executor_, Loop(), asio::detached);
    co_return OkStatus();
}

Awaitable<void> CronScheduler::Loop() {
    auto alive = alive_;
    while (*alive && !stopped_) {
        auto next = NextDue();
        auto delay = std::chrono::hours(24) + std::chrono::nanoseconds(0);
        if (next) {
            delay = std::max(
                std::chrono::nanoseconds(0),
                std::chrono::duration_cast<std::chrono::nanoseconds>(*next - clock_.Now()));
        }
        timer_->expires_after(delay);
        co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
        if (!*alive || stopped_) co_return;
        co_await FireDue();
    }
}

Awaitable<void> CronScheduler::FireDue() {
    if (firing_) co_return;
    firing_ = true;
    auto alive = alive_;
    while (*alive && !stopped_) {
        auto next = NextDue();
        const SystemTime now = clock_.Now();
        if (!next || *next > now) break;
        Due due = heap_.top();
        heap_.pop();
        auto it = jobs_.find(due.job_id);
        if (it == jobs_.end()) continue;
        ++it->second.generation;  // this fire is taken; Fire enqueues the next
        // Each fire goes on by itself: fires due together are recorded concurrently (the
        // SQLite store commits them in one transaction), and none waits for another's run.
        if (now - due.at > options_.misfire_grace) {
            asio::co_spawn(executor_, Misfire(due.job_id), asio::detached);
            continue;
        }
        Entry& entry = it->second;
        SystemTime following = NextAfter(entry, std::max(due.at, now));
        asio::co_spawn(executor_, Fire(due.job_id, due.at, following, false, 1), asio::detached);
    }
    firing_ = false;
}

// The fires a job missed while no daemon ran (or the process stood still), by its policy.
Awaitable<void> CronScheduler::Misfire(std::string job_id) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) co_return;
    const SystemTime now = clock_.Now();
    std::vector<SystemTime> missed;
    int64_t count = 0;
    SystemTime latest{};
    for (SystemTime t = it->second.job.next_fire_at; t != SystemTime{} && t <= now;
         t = NextAfter(it->second, t)) {
        if (static_cast<int64_t>(missed.size()) <= options_.max_catch_up) missed.push_back(t);
        latest = t;
        if (++count >= kMaxMissedCounted) break;
    }
    if (missed.empty()) co_return;
    const std::string policy = it->second.job.misfire;
    const SystemTime after_now = NextAfter(it->second, now);
    if (policy == "all") {
        const size_t fired = std::min<size_t>(missed.size(), options_.max_catch_up);
        for (size_t i = 0; i < fired; ++i) {
            // Each fire moves next_fire_at to the following missed time: a crash in between
            // goes on from there.
            SystemTime next = i + 1 < missed.size() ? missed[i + 1] : after_now;
            co_await Fire(job_id, missed[i], next, true, 1);
            if (!jobs_.contains(job_id)) co_return;
        }
        if (count > static_cast<int64_t>(fired)) {
            store::CronFire skipped;
            skipped.job_id = job_id;
            skipped.scheduled_at = missed[fired];
            skipped.recorded_at = now;
            skipped.status = "skipped";
            skipped.reason =
                "misfire: more than " + std::to_string(options_.max_catch_up) + " missed fires";
            skipped.catch_up = true;
            skipped.missed = count - static_cast<int64_t>(fired);
            auto& entry = jobs_.at(job_id);
            entry.job.next_fire_at = after_now;
            if (auto r = co_await store_->RecordCronFire(skipped, entry.job); !r) {
                spdlog::warn("cron job {}: {}", job_id, r.error().message());
            }
            Enqueue(jobs_.at(job_id));
        }
        co_return;
    }
    if (policy == "skip") {
        store::CronFire skipped;
        skipped.job_id = job_id;
        skipped.scheduled_at = missed.front();
        skipped.recorded_at = now;
        skipped.status = "skipped";
        skipped.reason = "misfire";
        skipped.catch_up = true;
        skipped.missed = count;
        auto& entry = it->second;
        entry.job.next_fire_at = after_now;
        entry.job.updated_at = now;
        if (auto r = co_await store_->RecordCronFire(skipped, entry.job); !r) {
            spdlog::warn("cron job {}: {}", job_id, r.error().message());
        }
        if (auto again = jobs_.find(job_id); again != jobs_.end()) Enqueue(again->second);
        co_return;
    }
    // coalesce: one catch-up fire for the latest missed time.
    co_await Fire(job_id, latest, after_now, true, count);
}

Awaitable<void> CronScheduler::Fire(std::string job_id, SystemTime scheduled, SystemTime next,
                                    bool catch_up, int64_t missed) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end() || !it->second.job.enabled) co_return;
    Entry& entry = it->second;
    const SystemTime now = clock_.Now();
    store::CronFire fire;
    fire.job_id = job_id;
    fire.scheduled_at = scheduled;
    fire.recorded_at = now;
    fire.catch_up = catch_up;
    fire.missed = missed;
    store::CronJob job = entry.job;
    job.next_fire_at = next;
    job.last_fire_at = scheduled;
    job.updated_at = now;
    const bool overlapping = job.overlap == "skip" && entry.running > 0;
    if (overlapping) {
        fire.status = "skipped";
        fire.reason = "overlap: the previous fire's run " + job.last_run_id + " is still running";
    }
    auto recorded = co_await store_->RecordCronFire(fire, job);
    it = jobs_.find(job_id);
    if (it == jobs_.end()) co_return;
    if (!recorded) {
        if (recorded.error().code() != ErrorCode::kAlreadyExists) {
            spdlog::warn("cron job {}: cannot record its fire at {}: {}", job_id,
                         FormatRfc3339(scheduled), recorded.error().message());
            // Try again at the next time.
        }
        it->second.job.next_fire_at = next;
        Enqueue(it->second);
        co_return;
    }
    it->second.job = job;
    Enqueue(it->second);
    if (overlapping) co_return;
    if (options_.after_record) options_.after_record(job, fire);
    co_await StartFire(std::move(fire));
}

Awaitable<void> CronScheduler::StartFire(store::CronFire fire) {
    auto it = jobs_.find(fire.job_id);
    if (it == jobs_.end()) co_return;
    const store::CronJob job = it->second.job;
    if (!fire.catch_up) {
        // How late the fire starts its run (recorded and about to call the launcher).
        lateness_.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
            clock_.Now() - fire.scheduled_at));
    }
    Origin origin;
    origin.kind = "cron";
    origin.id = job.job_id;
    origin.fire_id = CronFireKey(job.job_id, fire.scheduled_at);
    const std::string key = origin.fire_id;
    auto parsed = ParseJson(job.action);
    Result<std::string> run_id = InvalidArgumentError("action: not a JSON object");
    if (parsed && parsed->is_object()) {
        const auto& action = parsed->as_object();
        if (JsonString(action, "kind") == "workflow_run") {
            json::value input = action.contains("input") ? action.at("input") : json::value("");
            std::string workflow(JsonString(action, "workflow_id"));
            run_id = co_await launcher_.StartWorkflow(std::move(workflow), std::move(input), origin,
                                                      key);
        } else {
            AgentMessage message;
            message.agent = job.agent;
            message.text = std::string(JsonString(action, "message"));
            message.session_mode = std::string(JsonString(action, "session_mode"));
            message.channel = "cron";
            message.model_override = std::string(JsonString(action, "model_override"));
            message.timeout = std::chrono::seconds(JsonInt(action, "timeout_secs"));
            message.origin = origin;
            run_id = co_await launcher_.SendToAgent(std::move(message), key);
        }
    }
    if (!run_id) {
        // Named, not built inside co_await (GCC 12 frees such temporaries twice).
        std::string status = "failed";
        std::string reason = "cannot start: " + run_id.error().message();
        co_await Finished(std::move(fire), true, std::move(status), std::move(reason));
        co_return;
    }
    it = jobs_.find(fire.job_id);
    if (it == jobs_.end()) co_return;
    fire.status = "started";
    fire.run_id = *run_id;
    it->second.job.fire_count += 1;
    it->second.job.last_run_id = *run_id;
    it->second.job.last_status = "running";
    ++it->second.running;
    if (auto r = co_await store_->UpdateCronFire(fire, it->second.job); !r) {
        spdlog::warn("cron job {}: {}", fire.job_id, r.error().message());
    }
    ++watching_;
    asio::co_spawn(executor_, Watch(std::move(fire)), asio::detached);
}

Awaitable<void> CronScheduler::Watch(store::CronFire fire) {
    auto alive = alive_;
    Result<RunEnd> end = RunEnd{ledger::RunStatus::kCompleted, "", ""};
    if (wait_) {
        std::string run_id = fire.run_id;
        end = co_await wait_(std::move(run_id));
    }
    if (!*alive) co_return;
    if (watching_ > 0) --watching_;
    if (auto it = jobs_.find(fire.job_id); it != jobs_.end() && it->second.running > 0) {
        --it->second.running;
    }
    bool failed = true;
    std::string status = "failed";
    std::string reason;
    if (!end) {
        reason = end.error().message();
    } else {
        failed = end->status == ledger::RunStatus::kFailed ||
                 end->status == ledger::RunStatus::kCancelled;
        if (failed) {
            reason =
                end->error.empty() ? std::string(ledger::RunStatusName(end->status)) : end->error;
        } else {
            status = "completed";
        }
    }
    co_await Finished(std::move(fire), failed, std::move(status), std::move(reason));
}

Awaitable<void> CronScheduler::Finished(store::CronFire fire, bool failed, std::string status,
                                        std::string reason) {
    auto it = jobs_.find(fire.job_id);
    if (it == jobs_.end()) co_return;
    store::CronJob& job = it->second.job;
    fire.status = status;
    fire.reason = reason;
    job.last_status = status;
    if (failed) {
        job.consecutive_failures += 1;
        if (job.consecutive_failures >= options_.max_failures && job.enabled) {
            job.enabled = false;
            job.disabled_reason = std::to_string(job.consecutive_failures) +
                                  " consecutive failures (last: " + reason + ")";
            spdlog::warn("cron job {} ({}) disabled: {}", job.job_id, job.name,
                         job.disabled_reason);
            Enqueue(it->second);
        }
    } else {
        job.consecutive_failures = 0;
    }
    job.updated_at = clock_.Now();
    store::CronJob copy = job;
    if (auto r = co_await store_->UpdateCronFire(fire, copy); !r) {
        spdlog::warn("cron job {}: {}", fire.job_id, r.error().message());
    }
}

Awaitable<Result<store::CronJob>> CronScheduler::Put(CronJobSpec spec) {
    const SystemTime now = clock_.Now();
    STROWGER_CO_ASSIGN_OR_RETURN(spec, CheckCronSpec(std::move(spec), now));
    STROWGER_CO_ASSIGN_OR_RETURN(auto schedule, Schedule::FromJson(spec.schedule, now));
    STROWGER_CO_ASSIGN_OR_RETURN(auto action, CheckAction(spec.action, spec.agent, agent_known));
    store::CronJob job;
    if (!spec.job_id.empty()) {
        if (auto it = jobs_.find(spec.job_id); it != jobs_.end()) job = it->second.job;
    }
    const bool is_new = job.job_id.empty();
    if (is_new) {
        job.job_id = spec.job_id.empty() ? "cron_" + NewRunId(clock_, random_) : spec.job_id;
        job.created_at = now;
    }
    job.name = spec.name;
    job.agent = spec.agent;
    job.schedule = JsonText(schedule.ToJson());
    job.action = JsonText(action);
    job.misfire = spec.misfire;
    job.overlap = spec.overlap;
    job.origin = spec.origin;
    job.updated_at = now;
    if (spec.enabled && !job.enabled) {
        job.consecutive_failures = 0;
        job.disabled_reason.clear();
    }
    job.enabled = spec.enabled;
    job.next_fire_at = schedule.NextAfter(now, job.created_at).value_or(SystemTime{});
    STROWGER_CO_TRY(co_await store_->PutCronJob(job));
    auto [it, inserted] = jobs_.try_emplace(job.job_id, Entry{job, schedule, 0, 0});
    if (!inserted) {
        it->second.job = job;
        it->second.schedule = schedule;
    }
    Enqueue(it->second);
    co_return job;
}

Awaitable<Status> CronScheduler::Delete(std::string job_id) {
    STROWGER_CO_TRY(co_await store_->DeleteCronJob(job_id));
    jobs_.erase(job_id);  // its heap entries are stale now
    co_return OkStatus();
}

Awaitable<Result<store::CronJob>> CronScheduler::SetEnabled(std::string job_id, bool enabled) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) co_return NotFoundError("no cron job " + job_id);
    store::CronJob job = it->second.job;
    const SystemTime now = clock_.Now();
    job.enabled = enabled;
    job.updated_at = now;
    if (enabled) {
        job.consecutive_failures = 0;
        job.disabled_reason.clear();
        job.next_fire_at = NextAfter(it->second, now);
    }
    STROWGER_CO_TRY(co_await store_->PutCronJob(job));
    it = jobs_.find(job_id);
    if (it == jobs_.end()) co_return NotFoundError("no cron job " + job_id);
    it->second.job = job;
    Enqueue(it->second);
    co_return job;
}

std::optional<store::CronJob> CronScheduler::Get(const std::string& job_id) const {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return std::nullopt;
    return it->second.job;
}

std::vector<store::CronJob> CronScheduler::List() const {
    std::vector<store::CronJob> out;
    out.reserve(jobs_.size());
    for (const auto& [id, entry] : jobs_) out.push_back(entry.job);
    return out;
}

bool CronScheduler::Running(const std::string& job_id) const {
    auto it = jobs_.find(job_id);
    return it != jobs_.end() && it->second.running > 0;
}

}  // namespace strowger::automation
