// The power-loss test's load (power_loss_test.cpp spawns it and kills it with SIGKILL).
//
//   power_loss_child STORE_URL FLOW_YAML IN_FLIGHT MAX_RUNS
//
// Registers the fault VFS (fault_vfs.hpp) as the default, so the real SQLite store keeps every
// unsynced write in this process's memory; opens STORE_URL ("sqlite:PATH?synchronous=..."),
// resumes every run a previous crash left running or pending, and starts new runs of FLOW_YAML
// (a W1-like chain of instant scripted steps) so that IN_FLIGHT execute at once, until MAX_RUNS
// have been started. Every event the engine reports committed (Observer::OnEvent runs after
// the commit returned) is written to stdout as one line "<run_id> <seq> <type> <node>" with
// one write(2): that line is the acknowledgement the test holds the store to. Before them it
// writes "# resumed N", the number of interrupted runs it found, and among them
// "# database synced" whenever a checkpoint was made durable in the database file. Exits 0
// when every run has ended, 3 on a setup error (on stderr).
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "audit/key.hpp"
#include "audit/signer.hpp"
#include "engine/engine.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "store/power_loss/fault_vfs.hpp"
#include "store/store.hpp"

namespace strowger::testing {
namespace {

// One line to stdout with one write(2): lines shorter than PIPE_BUF from several threads never
// interleave.
void WriteLine(const std::string& line) {
    size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::write(STDOUT_FILENO, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) std::_Exit(4);  // the test stopped reading
        done += static_cast<size_t>(n);
    }
}

// Writes "<run_id> <seq> <type> <node>\n" for every committed event ("-" for no node).
class AckObserver : public engine::Observer {
  public:
    int64_t acknowledged = 0;
    void OnEvent(const ledger::Event& event) override {
        ++acknowledged;
        WriteLine(event.run_id + " " + std::to_string(event.seq) + " " +
                  std::string(ledger::EventTypeName(event.type)) + " " +
                  (event.node.empty() ? std::string("-") : event.node) + "\n");
    }
    bool WantsData() const override { return false; }
};

// A checkpoint reached the database file and was synced (on the store's writer thread).
void OnDatabaseSynced(const char*) {
    WriteLine("# database synced\n");
}

int Fail(const std::string& what) {
    std::cerr << "power_loss_child: " << what << "\n";
    return 3;
}

int Main(int argc, char** argv) {
    if (argc != 5) return Fail("usage: STORE_URL FLOW_YAML IN_FLIGHT MAX_RUNS");
    const std::string url = argv[1];
    const std::string flow = argv[2];
    const int64_t in_flight = std::atoll(argv[3]);
    const int64_t max_runs = std::atoll(argv[4]);
    if (auto error = RegisterFaultVfs(/*make_default=*/true, OnDatabaseSynced); !error.empty()) {
        return Fail(error);
    }

    asio::io_context io(1);
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);
    auto loaded = model::LoadWorkflowFile(flow);
    if (!loaded.ok()) return Fail("cannot load " + flow);
    auto compiled = model::Compile(loaded.workflow, engine::CompileOptionsFor(registry));
    if (!compiled.ok()) return Fail("cannot compile " + flow);
    auto store = store::OpenStoreBlocking(url);
    if (!store) return Fail(store.error().message());
    auto key = audit::LoadLedgerKeyBlocking(url);
    if (!key) return Fail(key.error().message());

    engine::EngineOptions options;
    options.single_threaded_executor = true;
    options.signer = audit::CheckpointSigner::Create(io.get_executor(), *store, *key);
    engine::Engine engine(io.get_executor(), *store, registry, options);
    AckObserver acks;
    engine.AddObserver(&acks);

    int64_t started = 0, ended = 0;
    std::function<void()> start_one;
    auto on_done = [&](Result<engine::RunOutcome> outcome) {
        ++ended;
        if (!outcome) std::cerr << "power_loss_child: " << outcome.error().message() << "\n";
        start_one();
    };
    start_one = [&] {
        if (started >= max_runs) return;
        ++started;
        engine.StartRun({compiled.plan, "input " + std::to_string(started), {}, {}}, on_done);
    };

    // Resumes the runs a crash interrupted (their owner's pid is dead, so their leases count as
    // expired), then tops up with new runs. All from one coroutine on `io`, run once: a
    // run_one() loop before run() could see the io_context stopped by the store's thread
    // releasing its work guard after our restart().
    std::optional<Error> setup_error;
    int64_t resumed = 0;
    asio::co_spawn(
        io,
        [&]() -> Awaitable<void> {
            std::vector<ledger::RunStatus> statuses = {ledger::RunStatus::kRunning,
                                                       ledger::RunStatus::kPending};
            auto claimable = co_await (*store)->FindClaimable(statuses, Clock::Real().Now(), 0);
            if (!claimable) {
                setup_error = claimable.error();
                co_return;
            }
            resumed = static_cast<int64_t>(claimable->size());
            WriteLine("# resumed " + std::to_string(resumed) + "\n");
            for (const auto& record : *claimable) {
                engine.ResumeRun(record.run_id, "restart", "power-loss-test", on_done);
            }
            for (int64_t i = resumed; i < in_flight; ++i) start_one();
        },
        asio::detached);
    io.run();
    if (setup_error) return Fail(setup_error->message());
    std::cerr << "power_loss_child: every run ended (" << started << " started, " << resumed
              << " resumed, " << acks.acknowledged << " events acknowledged, " << ended
              << " outcomes)\n";
    return 0;
}

}  // namespace
}  // namespace strowger::testing

int main(int argc, char** argv) {
    return strowger::testing::Main(argc, argv);
}
