// strowger_bench: end-to-end workloads through the real engine, for docs/performance.md.
//
//   strowger_bench W1  [--runs 1000] [--steps 10] [--concurrency 0] [--store memory:|sqlite:PATH]
//   strowger_bench W3  [--runs 10000] [--steps 3] [--latency-ms 1000] [--provider scripted|openai]
//                      [--store ...] [--mock PATH-to-strowger_mock_model_server]
//   strowger_bench RESUME [--runs 10000] [--steps 3] --store sqlite:PATH
//
// RESUME: a child process starts the runs, waits until every one is in the middle of its
// first model call (committed node.started), and exits without cleanup — a crash. The parent
// then resumes every interrupted run from the store and reports how long until all of them
// are executing again (run.resumed committed) and until all have completed (the interrupted
// attempt is retried; the scripted model answers attempt 2 at once).
//
// W1 measures steps per second with an instant scripted provider. W3 starts every run at
// once against a slow model and reports the wall time and the resident memory per run in
// flight (peak RSS during the run minus RSS before it, divided by the number of runs). With
// --provider openai the model is the loopback mock server, started as a separate process so
// its memory is not counted. Results are printed as one JSON object.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include <sys/types.h>

#include "core/json.hpp"
#include "engine/engine.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "store/store.hpp"

extern char** environ;

namespace strowger::bench {
namespace {

namespace fs = std::filesystem;

struct Flags {
    std::string workload;
    int64_t runs = -1;
    int64_t steps = -1;
    int64_t concurrency = 0;  // 0 = all at once
    int64_t latency_ms = -1;
    std::string provider = "scripted";
    std::string store = "memory:";
    std::string mock;  // path of strowger_mock_model_server
};

int64_t RssKb() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
    }
    return 0;
}

// The process's resident-memory high-water mark (kernel-maintained, no sampling needed).
int64_t PeakRssKb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

void RaiseFileLimit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

// A workflow of `steps` sequential steps, written to `dir`.
std::string WriteWorkflow(const fs::path& dir, int64_t steps, const std::string& model,
                          int64_t latency_ms) {
    fs::create_directories(dir);
    std::ofstream(dir / "script.yaml")
        << "latency_ms: " << latency_ms << "\nrules:\n  - {reply_template: \"${step} ok\"}\n";
    std::ostringstream flow;
    flow << "name: bench\nagents:\n  a: {model: \"" << model
         << "\", system_prompt: \"You are a benchmark.\"}\nsteps:\n";
    for (int64_t i = 1; i <= steps; ++i) {
        flow << "  - {name: s" << i << ", agent_name: a, prompt: \"Step " << i
             << " of {{input}}\", timeout_secs: 60}\n";
    }
    std::ofstream(dir / "flow.yaml") << flow.str();
    return (dir / "flow.yaml").string();
}

// Starts the mock model server; returns its pid and sets `port`.
pid_t StartMock(const std::string& path, int64_t latency_ms, const fs::path& dir, int& port) {
    std::string port_file = (dir / "mock.port").string();
    std::string latency = std::to_string(latency_ms);
    std::vector<std::string> args = {path,    "--port",      "0",      "--latency-ms",
                                     latency, "--port-file", port_file};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
        std::cerr << "cannot start " << path << "\n";
        std::exit(1);
    }
    for (int i = 0; i < 500 && !fs::exists(port_file); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(port_file);
    in >> port;
    if (port <= 0) {
        std::cerr << "mock server did not report its port\n";
        std::exit(1);
    }
    return pid;
}

// Counts committed events of one type.
class CountingObserver : public engine::Observer {
  public:
    explicit CountingObserver(ledger::EventType type) : type_(type) {}
    void OnEvent(const ledger::Event& event) override {
        if (event.type == type_) ++count;
    }
    int64_t count = 0;

  private:
    ledger::EventType type_;
};

int Resume(const Flags& flags) {
    RaiseFileLimit();
    int64_t runs = flags.runs > 0 ? flags.runs : 10000;
    int64_t steps = flags.steps > 0 ? flags.steps : 3;
    if (flags.store.rfind("sqlite:", 0) != 0) {
        std::cerr << "RESUME needs --store sqlite:PATH\n";
        return 2;
    }
    fs::path dir =
        fs::temp_directory_path() / ("strowger-bench-resume-" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::string flow = WriteWorkflow(dir, steps, "scripted:script.yaml", 0);
    // Attempt 1 hangs (it is the one the crash interrupts); later attempts answer at once.
    std::ofstream(dir / "script.yaml") << "rules:\n  - {when: {step: s1, attempt: 1}, hang: "
                                          "true}\n  - {reply_template: \"${step} ok\"}\n";

    pid_t child = fork();
    if (child == 0) {
        asio::io_context io(1);
        providers::ProviderRegistry registry(io.get_executor());
        providers::RegisterBuiltinProviders(registry);
        auto compiled = model::Compile(model::LoadWorkflowFile(flow).workflow,
                                       engine::CompileOptionsFor(registry));
        auto store = store::OpenStoreBlocking(flags.store);
        if (!compiled.ok() || !store) std::_Exit(3);
        engine::EngineOptions options;
        options.single_threaded_executor = true;
        engine::Engine engine(io.get_executor(), *store, registry, options);
        CountingObserver started(ledger::EventType::kNodeStarted);
        engine.AddObserver(&started);
        for (int64_t i = 0; i < runs; ++i) {
            asio::co_spawn(io,
                           engine.StartRun({compiled.plan, "input " + std::to_string(i), {}, {}}),
                           asio::detached);
        }
        while (started.count < runs) io.run_one();
        std::_Exit(0);  // the crash: nothing is closed, every run is mid-call
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::cerr << "the crashing child failed\n";
        return 1;
    }

    asio::io_context io(1);
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);
    auto store = store::OpenStoreBlocking(flags.store);
    if (!store) return 1;
    engine::EngineOptions options;
    options.single_threaded_executor = true;
    engine::Engine engine(io.get_executor(), *store, registry, options);
    CountingObserver resumed(ledger::EventType::kRunResumed);
    engine.AddObserver(&resumed);
    auto t0 = std::chrono::steady_clock::now();
    double resumed_s = 0;
    int64_t completed = 0;
    asio::co_spawn(
        io,
        [&]() -> Awaitable<void> {
            std::vector<ledger::RunStatus> statuses = {ledger::RunStatus::kRunning,
                                                       ledger::RunStatus::kPending};
            auto claimable = co_await (*store)->FindClaimable(statuses, Clock::Real().Now(), 0);
            if (!claimable) co_return;
            for (const auto& record : *claimable) {
                asio::co_spawn(co_await asio::this_coro::executor, engine.ResumeRun(record.run_id),
                               [&](std::exception_ptr, Result<engine::RunOutcome> r) {
                                   if (r && r->status == ledger::RunStatus::kCompleted) ++completed;
                               });
            }
        },
        asio::detached);
    while (io.run_one()) {
        if (resumed_s == 0 && resumed.count >= runs) {
            resumed_s =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
    }
    double done_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::error_code ec;
    fs::remove_all(dir, ec);
    json::object out;
    out["workload"] = "RESUME";
    out["store"] = flags.store;
    out["runs"] = runs;
    out["steps_per_run"] = steps;
    out["resumed_s"] = resumed_s;
    out["completed"] = completed;
    out["all_completed_s"] = done_s;
    std::cout << json::serialize(out) << std::endl;
    return completed == runs ? 0 : 1;
}

int Run(const Flags& flags) {
    if (flags.workload == "RESUME") return Resume(flags);
    RaiseFileLimit();
    bool w1 = flags.workload == "W1";
    int64_t runs = flags.runs > 0 ? flags.runs : (w1 ? 1000 : 10000);
    int64_t steps = flags.steps > 0 ? flags.steps : (w1 ? 10 : 3);
    int64_t latency = flags.latency_ms >= 0 ? flags.latency_ms : (w1 ? 0 : 1000);
    fs::path dir = fs::temp_directory_path() / ("strowger-bench-" + std::to_string(getpid()));

    fs::create_directories(dir);
    pid_t mock_pid = 0;
    std::string model = "scripted:script.yaml";
    if (flags.provider == "openai") {
        int port = 0;
        std::string mock = flags.mock;
        if (mock.empty()) {
            mock = (fs::path(fs::read_symlink("/proc/self/exe")).parent_path() /
                    "strowger_mock_model_server")
                       .string();
        }
        mock_pid = StartMock(mock, latency, dir, port);
        setenv("OPENAI_BASE_URL", ("http://127.0.0.1:" + std::to_string(port) + "/v1").c_str(), 1);
        setenv("OPENAI_API_KEY", "bench-key-not-secret", 1);
        model = "openai:bench-model";
    }

    asio::io_context io(1);
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);
    auto loaded = model::LoadWorkflowFile(WriteWorkflow(dir, steps, model, latency));
    auto compiled = model::Compile(loaded.workflow, engine::CompileOptionsFor(registry));
    if (!compiled.ok()) {
        for (const auto& d : compiled.diagnostics) std::cerr << d.ToString() << "\n";
        return 1;
    }
    auto store = store::OpenStoreBlocking(flags.store);
    if (!store) {
        std::cerr << "store: " << store.error().message() << "\n";
        return 1;
    }
    engine::EngineOptions options;
    options.single_threaded_executor = true;  // io is run by this thread alone
    engine::Engine engine(io.get_executor(), *store, registry, options);

    // Warm-up: one run, so allocator pools, connections and caches exist before measuring.
    int64_t done = 0, completed = 0;
    asio::co_spawn(io, engine.StartRun({compiled.plan, "warm-up", {}, {}}),
                   [&](std::exception_ptr, Result<engine::RunOutcome>) {});
    io.run();
    io.restart();

    // Peak resident memory while the runs are in flight, above what the process held before.
    int64_t rss_before = std::max(RssKb(), PeakRssKb());
    int64_t concurrency = flags.concurrency > 0 ? flags.concurrency : runs;
    int64_t started = 0;
    std::function<void()> start_one;
    auto on_done = [&](std::exception_ptr e, Result<engine::RunOutcome> r) {
        ++done;
        if (!e && r && r->status == ledger::RunStatus::kCompleted) ++completed;
        if (started < runs) start_one();
    };
    start_one = [&] {
        ++started;
        asio::co_spawn(io,
                       engine.StartRun({compiled.plan, "input " + std::to_string(started), {}, {}}),
                       on_done);
    };
    // Halfway through the first step every run is waiting on its first model call: the
    // memory then is what waiting runs cost, before their ledgers grow.
    int64_t rss_waiting = 0;
    asio::steady_timer probe(io);
    if (latency > 0) {
        probe.expires_after(std::chrono::milliseconds(latency / 2));
        probe.async_wait([&](boost::system::error_code ec) {
            if (ec) return;
            rss_waiting = RssKb();
            // For heaptrack: what is still allocated at exit is what waiting runs hold.
            if (std::getenv("STROWGER_BENCH_EXIT_WHEN_WAITING")) std::_Exit(0);
        });
    }
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < concurrency && started < runs; ++i) start_one();
    io.run();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t rss_peak = PeakRssKb();

    if (mock_pid > 0) {
        kill(mock_pid, SIGTERM);
        waitpid(mock_pid, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);

    json::object out;
    out["workload"] = flags.workload;
    out["provider"] = flags.provider;
    out["store"] = flags.store;
    out["runs"] = runs;
    out["steps_per_run"] = steps;
    out["latency_ms"] = latency;
    out["concurrency"] = concurrency;
    out["completed"] = completed;
    out["wall_s"] = wall;
    out["steps_per_s"] = static_cast<double>(runs * steps) / wall;
    out["rss_before_kb"] = rss_before;
    out["rss_peak_kb"] = rss_peak;
    out["rss_per_run_bytes"] =
        static_cast<double>(rss_peak - rss_before) * 1024.0 / static_cast<double>(concurrency);
    if (rss_waiting > 0) {
        out["rss_waiting_kb"] = rss_waiting;
        out["rss_per_waiting_run_bytes"] = static_cast<double>(rss_waiting - rss_before) * 1024.0 /
                                           static_cast<double>(concurrency);
    }
    std::cout << json::serialize(out) << std::endl;
    return completed == runs ? 0 : 1;
}

}  // namespace
}  // namespace strowger::bench

int main(int argc, char** argv) {
    strowger::bench::Flags flags;
    if (argc < 2) {
        std::cerr << "usage: strowger_bench W1|W3|RESUME [--runs N] [--steps N] [--concurrency N] "
                     "[--latency-ms N] "
                     "[--provider scripted|openai] [--store URL] [--mock PATH]\n";
        return 2;
    }
    flags.workload = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        std::string value = argv[i + 1];
        if (flag == "--runs")
            flags.runs = std::stoll(value);
        else if (flag == "--steps")
            flags.steps = std::stoll(value);
        else if (flag == "--concurrency")
            flags.concurrency = std::stoll(value);
        else if (flag == "--latency-ms")
            flags.latency_ms = std::stoll(value);
        else if (flag == "--provider")
            flags.provider = value;
        else if (flag == "--store")
            flags.store = value;
        else if (flag == "--mock")
            flags.mock = value;
        else {
            std::cerr << "unknown flag " << flag << "\n";
            return 2;
        }
    }
    return strowger::bench::Run(flags);
}
