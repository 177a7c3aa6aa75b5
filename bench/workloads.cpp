// strowger_bench: end-to-end workloads through the real engine, for docs/performance.md.
//
//   strowger_bench W1  [--runs 1000] [--steps 10] [--concurrency 0] [--store memory:|sqlite:PATH]
//   strowger_bench W3  [--runs 10000] [--steps 3] [--latency-ms 1000] [--provider scripted|openai]
//                      [--store ...] [--mock PATH-to-strowger_mock_model_server]
//                      [--threads N] [--http-thread N]
//   strowger_bench W4  [--runs 1000] [--steps 10] [--concurrency 100] [--latency-ms 0]
//                      [--provider openai] [--http-thread 1]
//   strowger_bench RESUME [--runs 10000] [--steps 3] --store sqlite:PATH
//   strowger_bench W2  [--form linear|dag] [--runs 1000] [--concurrency 100] [--store ...]
//   strowger_bench DAG100 [--runs 100] [--concurrency 0] [--store ...] [--form linear|dag]
//   strowger_bench HUMAN [--runs 100000] [--concurrency 1000] --store sqlite:PATH
//   strowger_bench CONNECT [--runs 10000]
//
// CONNECT is the kernel's share of W3 over HTTP alone: --runs loopback TCP connections, one
// request-sized write each, against a bare accept loop (connect_floor.cpp).
//
// RESUME: a child process starts the runs, waits until every one is in the middle of its
// first model call (committed node.started), and exits without cleanup — a crash. The parent
// then resumes every interrupted run from the store and reports how long until all of them
// are executing again (run.resumed committed) and until all have completed (the interrupted
// attempt is retried; the scripted model answers attempt 2 at once).
//
// W2 is 1 -> 8 parallel -> join -> 1 with an instant scripted model, 100 runs in flight: the
// linear form's fan_out/collect or the DAG form's fork/join (--form); runs per second. DAG100
// is CMDC's benchmark shape, a layered DAG of 10 layers of 10 agent nodes, each node depending
// on every node of the layer before; with --form linear the same 100 calls as a chain, so the
// difference per node is what scheduling a graph costs. HUMAN: a child process starts the runs
// (--concurrency at a time), each of which stops waiting in a human_task with a 1 s timeout,
// and reports its resident memory once all are waiting; then it exits (the restart) and the
// parent fires every due timer (FindDueRuns + resume) and reports how long that took.
//
// W1 measures steps per second with an instant scripted provider. W3 starts every run at
// once against a slow model and reports the wall time and the resident memory per run in
// flight (peak RSS during the run minus RSS before it, divided by the number of runs). With
// --provider openai the model is the loopback mock server, started as a separate process so
// its memory is not counted. W4 is W1 over HTTP: 1,000 runs of 10 steps against the mock with
// no latency, 100 runs in flight (--concurrency), steps per second. With the openai provider
// the HTTP client's sockets live on an I/O thread of their own (--http-thread 0: on the
// engine's thread). Results are printed as one JSON object, with the CPU time of the bench
// (cpu_s) and of the mock (mock_cpu_s), and for all-at-once runs when every run had committed
// its k-th model request and response.
#include <malloc.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <sys/types.h>

#include "connect_floor.hpp"
#include "core/json.hpp"
#include "engine/engine.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "providers/http/http_client.hpp"
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
    std::string provider;  // "" = the workload's: openai for W4, else scripted
    std::string store = "memory:";
    std::string mock;  // path of strowger_mock_model_server
    // --http-thread N: the HTTP client's sockets on N I/O threads of their own; 0 = on the
    // engine's thread, as the CLI has them.
    int64_t http_threads = 0;
    // --threads N: the engine's io_context (runs, and the HTTP client unless --http-thread) is
    // run by N threads; 1 = one thread and no strands, as in the CLI.
    int64_t threads = 1;
    // --sign 0: the engines make no signed checkpoints (as before they existed); 1 (default):
    // they sign with a key made for the process, as the CLI does with the store's.
    int64_t sign = 1;
    // W2 / DAG100: "linear" (steps) or "dag" (nodes + edges).
    std::string form = "dag";
};

// The bench's ledger key: one per process, shared by the crashing child and the resumer.
std::shared_ptr<const SigningKey> BenchKey() {
    static std::shared_ptr<const SigningKey> key =
        std::make_shared<const SigningKey>(*SigningKey::Generate());
    return key;
}

// Signs checkpoints (and verifies them on every read) like the CLI, unless --sign 0.
void AddSigner(const Flags& flags, engine::EngineOptions& options, Executor executor,
               std::shared_ptr<store::Store> store) {
    if (flags.sign == 0) return;
    options.signer =
        audit::CheckpointSigner::Create(std::move(executor), std::move(store), BenchKey());
}

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

// W2's shape, 1 -> 8 parallel -> join -> 1, in either form: 10 model calls per run.
std::string WriteFanOutWorkflow(const fs::path& dir, const std::string& form,
                                const std::string& model) {
    fs::create_directories(dir);
    std::ofstream(dir / "script.yaml") << "rules:\n  - {reply_template: \"${step} ok\"}\n";
    std::ostringstream flow;
    flow << "name: w2\n";
    if (form == "linear") {
        flow << "agents:\n  a: {model: \"" << model << "\"}\nsteps:\n"
             << "  - {name: first, agent_name: a, prompt: \"Plan {{input}}\"}\n";
        for (int i = 1; i <= 8; ++i) {
            flow << "  - {name: p" << i << ", agent_name: a, prompt: \"Part " << i
                 << " of {{input}}\", mode: fan_out}\n";
        }
        flow << "  - {name: gather, agent_name: a, prompt: unused, mode: collect}\n"
             << "  - {name: last, agent_name: a, prompt: \"Sum up {{input}}\"}\n";
    } else {
        flow << "default_model: \"" << model << "\"\nnodes:\n"
             << "  - {id: first, type: agent, config: {prompt: \"Plan {{input}}\"}}\n"
             << "  - {id: split, type: fork}\n";
        for (int i = 1; i <= 8; ++i) {
            flow << "  - {id: p" << i << ", type: agent, config: {prompt: \"Part " << i
                 << " of {{input}}\", upstream: false}}\n";
        }
        flow << "  - {id: join, type: join, config: {mode: all}}\n"
             << "  - {id: last, type: agent, config: {prompt: \"Sum up {{input}}\", upstream: "
                "false}}\nedges:\n  - {from: first, to: split}\n";
        for (int i = 1; i <= 8; ++i) {
            flow << "  - {from: split, to: p" << i << "}\n  - {from: p" << i << ", to: join}\n";
        }
        flow << "  - {from: join, to: last}\n";
    }
    std::ofstream(dir / "flow.yaml") << flow.str();
    return (dir / "flow.yaml").string();
}

// DAG100: 10 layers of 10 agent nodes, every node of a layer depending on every node of the
// layer before (900 edges); --form linear: the same 100 calls as a chain of steps.
std::string WriteLayeredWorkflow(const fs::path& dir, const std::string& form,
                                 const std::string& model) {
    constexpr int kLayers = 10, kWidth = 10;
    if (form == "linear") return WriteWorkflow(dir, kLayers * kWidth, model, 0);
    fs::create_directories(dir);
    std::ofstream(dir / "script.yaml") << "rules:\n  - {reply_template: \"${step} ok\"}\n";
    std::ostringstream flow;
    flow << "name: dag100\ndefault_model: \"" << model << "\"\nnodes:\n";
    for (int l = 0; l < kLayers; ++l) {
        for (int n = 0; n < kWidth; ++n) {
            flow << "  - {id: l" << l << "n" << n << ", type: agent, config: {prompt: \"Node " << l
                 << "." << n << "\", upstream: false}}\n";
        }
    }
    flow << "edges:\n";
    for (int l = 1; l < kLayers; ++l) {
        for (int from = 0; from < kWidth; ++from) {
            for (int to = 0; to < kWidth; ++to) {
                flow << "  - {from: l" << l - 1 << "n" << from << ", to: l" << l << "n" << to
                     << "}\n";
            }
        }
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
    bool WantsData() const override { return false; }
    int64_t count = 0;

  private:
    ledger::EventType type_;
};

// When every run has committed its k-th model request / response (k = 1..steps), in seconds
// since `t0`: shows whether time is lost starting calls, in the calls, or after them.
class WaveObserver : public engine::Observer {
  public:
    WaveObserver(int64_t runs, int64_t steps)
        : runs_(runs), requests(steps, 0), responses(steps, 0) {}
    // Called on the runs' executors: from several threads with --threads N.
    void OnEvent(const ledger::Event& event) override {
        if (event.type == ledger::EventType::kLlmRequest) {
            Mark(++request_count_, requests);
        } else if (event.type == ledger::EventType::kLlmResponse) {
            int64_t count = ++response_count_;
            if (count == 1 && on_first_response) on_first_response();
            Mark(count, responses);
        }
    }
    bool WantsData() const override { return false; }
    // Called at the first model response: every run has started its first call by then.
    std::function<void()> on_first_response;
    std::chrono::steady_clock::time_point t0;

  private:
    void Mark(int64_t count, std::vector<double>& waves) {
        if (runs_ <= 0 || count % runs_ != 0) return;
        auto wave = static_cast<size_t>(count / runs_) - 1;
        std::lock_guard lock(mutex_);
        if (wave < waves.size()) {
            waves[wave] =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
    }
    int64_t runs_;
    std::atomic<int64_t> request_count_{0};
    std::atomic<int64_t> response_count_{0};
    std::mutex mutex_;

  public:
    std::vector<double> requests;
    std::vector<double> responses;
};

// malloc's bytes in use: small blocks (with their headers) and mmap'd large ones.
size_t HeapInUse() {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

double CpuSeconds(const rusage& usage) {
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

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

    BenchKey();  // made before the fork: the child signs with the key the parent verifies with
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
        AddSigner(flags, options, io.get_executor(), *store);
        engine::Engine engine(io.get_executor(), *store, registry, options);
        CountingObserver started(ledger::EventType::kNodeStarted);
        engine.AddObserver(&started);
        for (int64_t i = 0; i < runs; ++i) {
            engine.StartRun({compiled.plan, "input " + std::to_string(i), {}, {}},
                            [](Result<engine::RunOutcome>) {});
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
    AddSigner(flags, options, io.get_executor(), *store);
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
                engine.ResumeRun(record.run_id, "restart", {}, [&](Result<engine::RunOutcome> r) {
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

// HUMAN: runs waiting for people hold nothing in memory, and their durable timers fire after a
// restart. The child starts `runs` runs, `concurrency` at a time, of a workflow whose human_task
// times out after 1 s, and reports its RSS once every run is waiting; it then exits without
// cleanup (the restart). The parent finds the due runs and resumes them all at once; it
// reports how long until every timer had fired and every run completed.
int Human(const Flags& flags) {
    RaiseFileLimit();
    int64_t runs = flags.runs > 0 ? flags.runs : 100000;
    int64_t concurrency = flags.concurrency > 0 ? flags.concurrency : 1000;
    if (flags.store.rfind("sqlite:", 0) != 0) {
        std::cerr << "HUMAN needs --store sqlite:PATH\n";
        return 2;
    }
    fs::path dir = fs::temp_directory_path() / ("strowger-bench-human-" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "script.yaml") << "rules:\n  - {reply_template: \"${step} ok\"}\n";
    std::ofstream(dir / "flow.yaml")
        << "name: human\ndefault_model: \"scripted:script.yaml\"\nnodes:\n"
           "  - {id: review, type: human_task, config: {title: \"Review {{input}}\", timeout_ms: "
           "1000, on_timeout: proceed_with_default, default_output: \"late\"}}\n"
           "  - {id: after, type: agent, config: {prompt: \"After {{input}}\"}}\n"
           "edges:\n  - {from: review, to: after, signal: timeout}\n";
    const std::string flow = (dir / "flow.yaml").string();
    int report[2];
    if (pipe(report) != 0) return 1;
    BenchKey();  // made before the fork: the child signs with the key the parent verifies with

    pid_t child = fork();
    if (child == 0) {
        close(report[0]);
        asio::io_context io(1);
        providers::ProviderRegistry registry(io.get_executor());
        providers::RegisterBuiltinProviders(registry);
        auto compiled = model::Compile(model::LoadWorkflowFile(flow).workflow,
                                       engine::CompileOptionsFor(registry));
        auto store = store::OpenStoreBlocking(flags.store);
        if (!compiled.ok() || !store) std::_Exit(3);
        engine::EngineOptions options;
        options.single_threaded_executor = true;
        AddSigner(flags, options, io.get_executor(), *store);
        engine::Engine engine(io.get_executor(), *store, registry, options);
        const int64_t rss_before = RssKb();
        int64_t started = 0, waiting = 0;
        std::function<void()> start_one = [&] {
            if (started >= runs) return;
            ++started;
            engine.StartRun({compiled.plan, "item " + std::to_string(started), {}, {}},
                            [&](Result<engine::RunOutcome> r) {
                                if (r && r->status == ledger::RunStatus::kWaiting) ++waiting;
                                start_one();
                            });
        };
        auto t0 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < concurrency; ++i) start_one();
        io.run();
        // Signing is asynchronous: flush it, as the CLI does before exiting.
        asio::co_spawn(io, engine.FlushCheckpoints(), asio::detached);
        io.restart();
        io.run();
        double start_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        malloc_trim(0);
        json::object out;
        out["started_s"] = start_s;
        out["waiting"] = waiting;
        out["rss_before_kb"] = rss_before;
        out["rss_all_waiting_kb"] = RssKb();
        out["rss_peak_kb"] = PeakRssKb();
        std::string text = json::serialize(out);
        if (write(report[1], text.data(), text.size()) < 0) std::_Exit(4);
        std::_Exit(0);  // the restart: nothing is closed
    }
    close(report[1]);
    std::string child_report;
    char buffer[4096];
    for (ssize_t n; (n = read(report[0], buffer, sizeof buffer)) > 0;)
        child_report.append(buffer, n);
    close(report[0]);
    int status = 0;
    waitpid(child, &status, 0);
    auto parsed = ParseJson(child_report);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !parsed || !parsed->is_object()) {
        std::cerr << "the child failed\n";
        return 1;
    }
    // Every timer is due a second after its run was created.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));

    asio::io_context io(1);
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);
    auto store = store::OpenStoreBlocking(flags.store);
    if (!store) return 1;
    engine::EngineOptions options;
    options.single_threaded_executor = true;
    AddSigner(flags, options, io.get_executor(), *store);
    engine::Engine engine(io.get_executor(), *store, registry, options);
    CountingObserver fired(ledger::EventType::kHumanTaskCompleted);
    engine.AddObserver(&fired);
    auto t0 = std::chrono::steady_clock::now();
    double fired_s = 0;
    int64_t due = 0, completed = 0;
    std::string first_error;
    asio::co_spawn(
        io,
        [&]() -> Awaitable<void> {
            auto found = co_await (*store)->FindDueRuns(Clock::Real().Now(), 0);
            if (!found) co_return;
            due = static_cast<int64_t>(found->size());
            for (const auto& record : *found) {
                engine.ResumeRun(record.run_id, "timer", {}, [&](Result<engine::RunOutcome> r) {
                    if (r && r->status == ledger::RunStatus::kCompleted) {
                        ++completed;
                    } else if (first_error.empty()) {
                        first_error = r ? r->error : r.error().message();
                    }
                });
            }
        },
        asio::detached);
    while (io.run_one()) {
        if (fired_s == 0 && fired.count >= runs) {
            fired_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
    }
    double done_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::error_code ec;
    fs::remove_all(dir, ec);
    json::object out = parsed->get_object();
    out["workload"] = "HUMAN";
    out["store"] = flags.store;
    out["runs"] = runs;
    out["concurrency"] = concurrency;
    out["due_after_restart"] = due;
    out["all_timers_fired_s"] = fired_s;
    out["completed"] = completed;
    out["all_completed_s"] = done_s;
    if (!first_error.empty()) out["first_error"] = first_error;
    std::cout << json::serialize(out) << std::endl;
    return completed == runs ? 0 : 1;
}

int Run(const Flags& flags) {
    if (flags.workload == "RESUME") return Resume(flags);
    RaiseFileLimit();
    if (flags.workload == "CONNECT") return ConnectFloor(flags.runs > 0 ? flags.runs : 10000);
    if (flags.workload == "HUMAN") return Human(flags);
    bool w2 = flags.workload == "W2";
    bool dag100 = flags.workload == "DAG100";
    if (flags.workload != "W1" && flags.workload != "W3" && flags.workload != "W4" && !w2 &&
        !dag100) {
        std::cerr << "unknown workload " << flags.workload << "\n";
        return 2;
    }
    if ((w2 || dag100) && flags.form != "linear" && flags.form != "dag") {
        std::cerr << "--form is linear or dag\n";
        return 2;
    }
    // W1 and W4 are throughput (10 instant steps per run; W4 over HTTP), W3 is concurrency;
    // W2 and DAG100 are throughput of graphs (model calls per run: 10 and 100).
    bool w3 = flags.workload == "W3";
    bool w4 = flags.workload == "W4";
    int64_t runs = flags.runs > 0 ? flags.runs : (w3 ? 10000 : dag100 ? 100 : 1000);
    int64_t steps = w2 ? 10 : dag100 ? 100 : flags.steps > 0 ? flags.steps : (w3 ? 3 : 10);
    int64_t latency = flags.latency_ms >= 0 ? flags.latency_ms : (w3 ? 1000 : 0);
    std::string provider = !flags.provider.empty() ? flags.provider : (w4 ? "openai" : "scripted");
    // W4 keeps 100 runs in flight (so at most 100 calls and connections): enough to keep the
    // engine, the HTTP thread and the mock busy on two cores without a 1,000-connection burst.
    int64_t concurrency = flags.concurrency > 0 ? flags.concurrency : (w4 || w2 ? 100 : runs);
    fs::path dir = fs::temp_directory_path() / ("strowger-bench-" + std::to_string(getpid()));

    fs::create_directories(dir);
    pid_t mock_pid = 0;
    std::string model = "scripted:script.yaml";
    if (provider == "openai") {
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

    const int threads = static_cast<int>(std::max<int64_t>(1, flags.threads));
    asio::io_context io(threads);
    // Runs io on `threads` threads (this one included) until it runs out of work.
    auto run_io = [&io, threads] {
        std::vector<std::thread> helpers;
        for (int i = 1; i < threads; ++i) helpers.emplace_back([&io] { io.run(); });
        io.run();
        for (auto& helper : helpers) helper.join();
    };
    // The HTTP client: with --http-thread 0 (the default) on the engine's thread, which runs
    // everything (single_threaded_executor: no strands); with --http-thread N > 0 on N I/O
    // threads of its own, which connect, send, read and parse while the engine's thread runs
    // the runs. Its pool keeps as many idle connections as there are calls in flight: with the
    // default (256 per host) a wave of 10,000 answers would close and reopen thousands.
    asio::io_context http_io(static_cast<int>(std::max<int64_t>(1, flags.http_threads)));
    auto http_work = asio::make_work_guard(http_io);
    std::vector<std::thread> http_thread;
    std::shared_ptr<http::HttpClient> http_client;
    if (provider == "openai") {
        http::HttpClientOptions http_options;
        http_options.max_idle_connections_per_host = static_cast<size_t>(concurrency);
        http_options.single_threaded_executor =
            flags.http_threads > 0 ? flags.http_threads == 1 : threads == 1;
        auto created = http::HttpClient::Create(
            flags.http_threads > 0 ? http_io.get_executor() : io.get_executor(), http_options);
        if (!created) {
            std::cerr << "http client: " << created.error().message() << "\n";
            return 1;
        }
        http_client = std::move(*created);
        for (int64_t i = 0; i < flags.http_threads; ++i) {
            http_thread.emplace_back([&http_io] { http_io.run(); });
        }
    }
    struct StopHttp {
        asio::io_context& io;
        std::vector<std::thread>& threads;
        std::shared_ptr<http::HttpClient>& client;
        ~StopHttp() {
            client.reset();
            io.stop();
            for (auto& thread : threads) thread.join();
        }
    } stop_http{http_io, http_thread, http_client};

    providers::ProviderRegistry registry(io.get_executor());
    if (http_client) {
        providers::RegisterBuiltinProviders(registry, providers::DefaultProvidersConfig(),
                                            http_client);
    } else {
        providers::RegisterBuiltinProviders(registry);
    }
    auto loaded = model::LoadWorkflowFile(w2       ? WriteFanOutWorkflow(dir, flags.form, model)
                                          : dag100 ? WriteLayeredWorkflow(dir, flags.form, model)
                                                   : WriteWorkflow(dir, steps, model, latency));
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
    options.single_threaded_executor = threads == 1;  // else a strand per run
    AddSigner(flags, options, io.get_executor(), *store);
    engine::Engine engine(io.get_executor(), *store, registry, options);

    // Warm-up: one run, so allocator pools, connections and caches exist before measuring.
    std::atomic<int64_t> done{0}, completed{0};
    engine.StartRun({compiled.plan, "warm-up", {}, {}}, [](Result<engine::RunOutcome>) {});
    run_io();
    io.restart();

    // Peak resident memory while the runs are in flight, above what the process held before.
    int64_t rss_before = std::max(RssKb(), PeakRssKb());
    // The heap's bytes in use (malloc's view: live blocks with their headers, not the holes
    // between them), to tell what runs hold from what the allocator keeps around it.
    const size_t heap_before = HeapInUse();
    std::atomic<int64_t> started{0};
    std::function<void()> start_one;
    // Runs are started the way a server starting many would: not awaited, the outcome handed
    // to a handler (StartRun with an OutcomeHandler).
    auto on_done = [&](Result<engine::RunOutcome> r) {
        ++done;
        if (r && r->status == ledger::RunStatus::kCompleted) ++completed;
        start_one();
    };
    start_one = [&] {
        int64_t number = ++started;
        if (number > runs) return;
        engine.StartRun({compiled.plan, "input " + std::to_string(number), {}, {}}, on_done);
    };
    // While every run waits on its first model call, the memory is what waiting runs cost,
    // before their ledgers grow. Sampled halfway through the first step; over HTTP when the
    // first answer arrives instead (starting 10,000 calls over new connections takes a good part
    // of the first step: halfway, not every run has its connection yet).
    int64_t rss_waiting = 0;
    size_t heap_waiting = 0;
    auto sample_waiting = [&] {
        rss_waiting = RssKb();
        heap_waiting = HeapInUse();
        if (std::getenv("STROWGER_BENCH_MALLOC_INFO")) malloc_info(0, stderr);
        // For heaptrack: what is still allocated at exit is what waiting runs hold.
        if (std::getenv("STROWGER_BENCH_EXIT_WHEN_WAITING")) {
            if (mock_pid > 0) kill(mock_pid, SIGTERM);
            std::_Exit(0);
        }
    };
    bool over_http = provider == "openai";
    asio::steady_timer probe(io);
    if (latency > 0 && !over_http) {
        probe.expires_after(std::chrono::milliseconds(latency / 2));
        probe.async_wait([&](boost::system::error_code ec) {
            if (!ec) sample_waiting();
        });
    }
    WaveObserver waves(concurrency == runs ? runs : 0, steps);
    if (latency > 0 && over_http) waves.on_first_response = sample_waiting;
    engine.AddObserver(&waves);
    rusage cpu_before{};
    getrusage(RUSAGE_SELF, &cpu_before);
    auto t0 = std::chrono::steady_clock::now();
    waves.t0 = t0;
    for (int64_t i = 0; i < concurrency && i < runs; ++i) start_one();
    run_io();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t rss_peak = PeakRssKb();
    rusage cpu_after{};
    getrusage(RUSAGE_SELF, &cpu_after);

    double mock_cpu = -1;
    if (mock_pid > 0) {
        kill(mock_pid, SIGTERM);
        rusage mock_usage{};
        if (wait4(mock_pid, nullptr, 0, &mock_usage) == mock_pid) mock_cpu = CpuSeconds(mock_usage);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);

    json::object out;
    out["workload"] = flags.workload;
    out["provider"] = provider;
    out["store"] = flags.store;
    out["runs"] = runs;
    out["steps_per_run"] = steps;
    out["latency_ms"] = latency;
    out["concurrency"] = concurrency;
    out["completed"] = completed.load();
    out["wall_s"] = wall;
    out["steps_per_s"] = static_cast<double>(runs * steps) / wall;
    if (w2 || dag100) {
        out["form"] = flags.form;
        out["runs_per_s"] = static_cast<double>(runs) / wall;
        out["us_per_node"] = wall * 1e6 / static_cast<double>(runs * steps);
    }
    out["cpu_s"] = CpuSeconds(cpu_after) - CpuSeconds(cpu_before);
    if (mock_cpu >= 0) out["mock_cpu_s"] = mock_cpu;  // its whole life, warm-up included
    if (concurrency == runs && !w2 && !dag100) {
        json::array requests, responses;
        for (double t : waves.requests) requests.push_back(t);
        for (double t : waves.responses) responses.push_back(t);
        out["all_requests_committed_s"] = std::move(requests);
        out["all_responses_committed_s"] = std::move(responses);
    }
    out["rss_before_kb"] = rss_before;
    out["rss_peak_kb"] = rss_peak;
    out["rss_per_run_bytes"] =
        static_cast<double>(rss_peak - rss_before) * 1024.0 / static_cast<double>(concurrency);
    if (rss_waiting > 0) {
        out["rss_waiting_kb"] = rss_waiting;
        out["rss_per_waiting_run_bytes"] = static_cast<double>(rss_waiting - rss_before) * 1024.0 /
                                           static_cast<double>(concurrency);
        out["heap_per_waiting_run_bytes"] =
            (static_cast<double>(heap_waiting) - static_cast<double>(heap_before)) /
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
        std::cerr << "usage: strowger_bench W1|W2|W3|W4|DAG100|HUMAN|RESUME|CONNECT [--runs N] "
                     "[--steps N] "
                     "[--concurrency N] [--latency-ms N] [--provider scripted|openai] "
                     "[--store URL] [--mock PATH] [--http-thread N] [--threads N] [--sign 0|1] "
                     "[--form linear|dag]\n"
                     "       strowger_bench CONNECT [--runs N]\n";
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
        else if (flag == "--http-thread")
            flags.http_threads = std::stoll(value);
        else if (flag == "--threads")
            flags.threads = std::stoll(value);
        else if (flag == "--sign")
            flags.sign = std::stoll(value);
        else if (flag == "--form")
            flags.form = value;
        else {
            std::cerr << "unknown flag " << flag << "\n";
            return 2;
        }
    }
    return strowger::bench::Run(flags);
}
