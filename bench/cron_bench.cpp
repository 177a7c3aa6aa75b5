// CRON: 100,000 cron jobs scheduled in one CronScheduler (docs/performance.md): the memory they
// take (RSS before and after loading them from the store) and how late fires start (p50, p99,
// max of now - scheduled time, measured when the timer's fire begins).
//
// usage: strowger_cron_bench [JOBS=100000] [SECONDS=60] [STORE=memory:]
// Each job is `every 3600 s` with its due time spread over the hour from 20 s after the start
// (about JOBS / 3600 fires a second, evenly); 1,000 of them are due at the same instant (a burst).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "automation/cron.hpp"
#include "store/store.hpp"

using namespace strowger;

namespace {

double RssMiB() {
    std::ifstream statm("/proc/self/statm");
    long pages = 0, resident = 0;
    statm >> pages >> resident;
    return static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0);
}

class NullLauncher final : public automation::Launcher {
  public:
    Awaitable<Result<std::string>> StartWorkflow(std::string, json::value, automation::Origin,
                                                 std::string key) override {
        co_return key;
    }
    Awaitable<Result<std::string>> SendToAgent(automation::AgentMessage, std::string key) override {
        ++started;
        co_return key;
    }
    int64_t started = 0;
};

}  // namespace

int main(int argc, char** argv) {
    const int64_t jobs = argc > 1 ? std::stoll(argv[1]) : 100'000;
    const int64_t seconds = argc > 2 ? std::stoll(argv[2]) : 60;
    const std::string url = argc > 3 ? argv[3] : "memory:";
    auto store = store::OpenStoreBlocking(url);
    if (!store) {
        std::cerr << store.error().message() << "\n";
        return 1;
    }
    asio::io_context io;
    const double rss_empty = RssMiB();
    // The jobs, as a daemon that made them earlier left them in the store: written concurrently
    // (the SQLite store commits them in batches), due from `base` on, far enough ahead that
    // writing them does not make the first fires late.
    const SystemTime base = Clock::Real().Now() + std::chrono::seconds(20);
    {
        int64_t written = 0;
        for (int64_t i = 0; i < jobs; ++i) {
            store::CronJob job;
            job.job_id = "cron_" + std::to_string(1'000'000 + i);
            job.name = "job" + std::to_string(i);
            job.agent = "ops";
            job.schedule = R"({"kind":"every","every_secs":3600})";
            job.action = R"({"kind":"agent_turn","message":"check"})";
            // Due times spread over the hour after `base`; the first 1,000 all at `base` (a
            // burst).
            auto offset = i < 1000 ? std::chrono::milliseconds(0)
                                   : std::chrono::milliseconds(1000 + (i * 3'600'000) / jobs);
            job.next_fire_at = base + offset;
            job.created_at = job.next_fire_at - std::chrono::hours(1);
            job.updated_at = job.created_at;
            asio::co_spawn(
                io,
                [&, job = std::move(job)]() mutable -> Awaitable<void> {
                    (void)co_await (*store)->PutCronJob(std::move(job));
                    ++written;
                },
                asio::detached);
        }
        io.run();
        io.restart();
        if (written != jobs) return 1;
        if (Clock::Real().Now() > base - std::chrono::seconds(2)) {
            std::cerr << "writing the jobs took too long: the first fires are late\n";
        }
    }
    const double rss_stored = RssMiB();
    NullLauncher launcher;
    automation::CronScheduler::Options options;
    automation::CronScheduler cron(io.get_executor(), *store, launcher, nullptr, Clock::Real(),
                                   Random::Real(), options);
    auto load_start = std::chrono::steady_clock::now();
    bool started = false;
    asio::co_spawn(
        io,
        [&]() -> Awaitable<void> {
            auto s = co_await cron.Start();
            if (!s) std::cerr << s.error().message() << "\n";
            started = true;
        },
        asio::detached);
    while (!started) io.run_one();
    auto load_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start)
            .count();
    const double rss_loaded = RssMiB();
    io.run_for(std::chrono::seconds(seconds));
    cron.Stop();
    auto lateness = cron.lateness();
    std::sort(lateness.begin(), lateness.end());
    auto pct = [&](double p) {
        if (lateness.empty()) return 0.0;
        size_t i = std::min(lateness.size() - 1, static_cast<size_t>(p * lateness.size()));
        return static_cast<double>(lateness[i].count()) / 1000.0;
    };
    std::printf("CRON jobs=%lld store=%s seconds=%lld\n", static_cast<long long>(jobs), url.c_str(),
                static_cast<long long>(seconds));
    std::printf(
        "  load %.0f ms; RSS empty %.1f MiB, jobs in the store %.1f MiB, scheduled %.1f MiB "
        "(scheduler: %.1f MiB, %.0f bytes a job)\n",
        load_ms, rss_empty, rss_stored, rss_loaded, rss_loaded - rss_stored,
        (rss_loaded - rss_stored) * 1024 * 1024 / static_cast<double>(jobs));
    std::printf("  fires %zu (started %lld); lateness p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                lateness.size(), static_cast<long long>(launcher.started), pct(0.50), pct(0.99),
                lateness.empty() ? 0.0 : static_cast<double>(lateness.back().count()) / 1000.0);
    return 0;
}
