// The cron job scheduler (issue 16, item 4; docs/formats/agents_cron_state_v1.md).
//
// Jobs and their next fire time live in the store; in memory, a min-heap of (next fire, job)
// and one asio steady timer armed to the earliest — no fixed tick, no scan of every job. A due
// fire is recorded (with the job's next fire time, atomically) before its run starts, and the
// run is started through the Launcher with the idempotency key `cron/<job>/<scheduled micros>`:
// a crash between the two is finished at the next start with the same key, so a fire is never
// lost nor doubled. Missed fires (more than `misfire_grace` late) follow the job's policy:
// coalesce | skip | all (at most `max_catch_up`). Overlap skip | allow. `max_failures` failed
// fires in a row disable a job.
//
// Thread-safety: everything on the daemon's one executor.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "automation/agents.hpp"
#include "automation/cron_spec.hpp"
#include "automation/launcher.hpp"
#include "automation/schedule.hpp"
#include "core/asio.hpp"
#include "core/clock.hpp"
#include "core/random.hpp"
#include "store/store.hpp"

namespace strowger::automation {

class CronScheduler {
  public:
    struct Options {
        std::chrono::seconds misfire_grace{60};
        int64_t max_failures = 5;
        int64_t max_catch_up = 100;
        // Tests with a fake clock drive FireDue themselves.
        bool run_timer = true;
        // Test only: called after a fire is recorded and before its run starts (the crash
        // tests kill the process there).
        std::function<void(const store::CronJob&, const store::CronFire&)> after_record;
    };
    // `wait` tells when a fire's run stops (the daemon's; null: fires count as completed once
    // started).
    CronScheduler(Executor executor, std::shared_ptr<store::Store> store, Launcher& launcher,
                  std::function<Awaitable<Result<RunEnd>>(std::string)> wait, Clock& clock,
                  Random& random, Options options);
    ~CronScheduler();

    // Loads the jobs, finishes the fires a crash left (recorded: started with their key;
    // started: watched), applies misfire policies and arms the timer.
    Awaitable<Status> Start();
    void Stop();

    // Checks and stores a job (a new one, or replacing spec.job_id). kInvalidArgument with the
    // field for a bad schedule or action; kNotFound for an agent turn of an unknown agent (if
    // `agent_known` says so).
    Awaitable<Result<store::CronJob>> Put(CronJobSpec spec);
    Awaitable<Status> Delete(std::string job_id);
    Awaitable<Result<store::CronJob>> SetEnabled(std::string job_id, bool enabled);
    std::optional<store::CronJob> Get(const std::string& job_id) const;
    std::vector<store::CronJob> List() const;
    // Whether a fire of the job is running now.
    bool Running(const std::string& job_id) const;

    // Fires every job due at clock.Now() (the timer's work; tests call it after moving a fake
    // clock). Each fire runs by itself: FireDue returns once they are under way.
    Awaitable<void> FireDue();
    // The earliest next fire of an enabled job.
    std::optional<SystemTime> NextDue();
    size_t size() const { return jobs_.size(); }
    // Fires whose run has not stopped yet.
    size_t InFlight() const { return watching_; }

    // How late fires started their run (now - scheduled, once the fire is recorded), for the
    // benchmark.
    std::vector<std::chrono::microseconds>& lateness() { return lateness_; }

    // Says whether an agent exists (set by the daemon).
    std::function<bool(const std::string&)> agent_known;

  private:
    struct Entry {
        store::CronJob job;
        Schedule schedule;
        uint64_t generation = 0;
        int64_t running = 0;  // fires whose run has not stopped
    };
    struct Due {
        SystemTime at;
        uint64_t generation;
        std::string job_id;
        bool operator>(const Due& other) const { return at > other.at; }
    };

    void Enqueue(Entry& entry);
    Awaitable<void> Loop();
    void Rearm();
    Awaitable<void> Misfire(std::string job_id);
    Awaitable<void> Fire(std::string job_id, SystemTime scheduled, SystemTime next, bool catch_up,
                         int64_t missed);
    Awaitable<void> StartFire(store::CronFire fire);
    Awaitable<void> Watch(store::CronFire fire);
    Awaitable<void> Finished(store::CronFire fire, bool failed, std::string status,
                             std::string reason);
    SystemTime NextAfter(const Entry& entry, SystemTime after) const;

    Executor executor_;
    std::shared_ptr<store::Store> store_;
    Launcher& launcher_;
    std::function<Awaitable<Result<RunEnd>>(std::string)> wait_;
    Clock& clock_;
    Random& random_;
    Options options_;
    std::map<std::string, Entry> jobs_;
    std::priority_queue<Due, std::vector<Due>, std::greater<>> heap_;
    std::unique_ptr<asio::steady_timer> timer_;
    bool stopped_ = false;
    bool firing_ = false;
    size_t watching_ = 0;
    std::vector<std::chrono::microseconds> lateness_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The idempotency key of a fire.
std::string CronFireKey(const std::string& job_id, SystemTime scheduled);

}  // namespace strowger::automation
