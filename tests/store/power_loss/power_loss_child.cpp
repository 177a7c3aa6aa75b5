// The power-loss test's load (power_loss_test.cpp spawns it and kills it with SIGKILL).
//
//   power_loss_child STORE_URL FLOW_YAML IN_FLIGHT MAX_RUNS
//
// Registers the fault VFS (fault_vfs.hpp) as the default, so the real SQLite store keeps every
// unsynced write in this process's memory; opens STORE_URL ("sqlite:PATH?synchronous=..."),
// resumes every run a previous crash left running or pending, and starts new runs of FLOW_YAML
// (a W1-like chain of instant scripted steps) so that IN_FLIGHT execute at once, until MAX_RUNS
// have been started. Every event the engine reports committed (Observer::OnEvent runs after
// the commit returned) is written to stdout as one line "<run_id> <seq>" with one write(2):
// that line is the acknowledgement the test holds the store to. Before them it writes
// "# resumed N", the number of interrupted runs it found. Exits 0 when every run has
// ended, 3 on a setup error (on stderr).
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

// Writes "<run_id> <seq>\n" for every committed event.
class AckObserver : public engine::Observer {
  public:
    void OnEvent(const ledger::Event& event) override {
        std::string line = event.run_id + " " + std::to_string(event.seq) + "\n";
        size_t done = 0;
        while (done < line.size()) {
            ssize_t n = ::write(STDOUT_FILENO, line.data() + done, line.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) std::_Exit(4);  // the test stopped reading
            done += static_cast<size_t>(n);
        }
    }
    bool WantsData() const override { return false; }
};

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
    if (auto error = RegisterFaultVfs(/*make_default=*/true); !error.empty()) return Fail(error);

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

    int64_t started = 0;
    std::function<void()> start_one;
    auto on_done = [&](Result<engine::RunOutcome>) { start_one(); };
    start_one = [&] {
        if (started >= max_runs) return;
        ++started;
        engine.StartRun({compiled.plan, "input " + std::to_string(started), {}, {}}, on_done);
    };

    // Runs a crash interrupted (their owner's pid is dead, so their leases count as expired).
    std::vector<ledger::RunStatus> statuses = {ledger::RunStatus::kRunning,
                                               ledger::RunStatus::kPending};
    auto claimable = [&]() -> Result<std::vector<store::RunRecord>> {
        std::optional<Result<std::vector<store::RunRecord>>> out;
        asio::co_spawn(
            io,
            [&]() -> Awaitable<void> {
                out = co_await (*store)->FindClaimable(statuses, Clock::Real().Now(), 0);
            },
            asio::detached);
        while (!out && io.run_one() > 0) {
        }
        io.restart();
        if (!out) return InternalError("FindClaimable did not finish");
        return std::move(*out);
    }();
    if (!claimable) return Fail(claimable.error().message());
    // Says how many runs it resumes: "# resumed N" (the test counts them).
    std::string resumed = "# resumed " + std::to_string(claimable->size()) + "\n";
    if (::write(STDOUT_FILENO, resumed.data(), resumed.size()) !=
        static_cast<ssize_t>(resumed.size())) {
        return Fail("cannot write to stdout");
    }
    for (const auto& record : *claimable) {
        engine.ResumeRun(record.run_id, "restart", "power-loss-test", on_done);
    }
    const int64_t fresh = std::max<int64_t>(0, in_flight - static_cast<int64_t>(claimable->size()));
    for (int64_t i = 0; i < fresh; ++i) start_one();
    io.run();
    std::cerr << "power_loss_child: every run ended (" << started << " started, "
              << claimable->size() << " resumed)\n";
    return 0;
}

}  // namespace
}  // namespace strowger::testing

int main(int argc, char** argv) {
    return strowger::testing::Main(argc, argv);
}
