// Reading a run around its stop: the stop is committed before the run (or the engine, for a run
// executing nowhere) hears of it and hands its head to the checkpoint signer, and a reader may
// come in between (a daemon's `POST /api/workflows/{id}/run?wait=true` polls the run's row on
// the same executor). That read must verify: the stop is pending, not "unsigned" — the engine
// announces the checkpoint to the signer before the append (CheckpointSigner::Expect).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>
#include <vector>

#include "audit/signer.hpp"
#include "core/ed25519.hpp"
#include "engine/engine.hpp"
#include "ledger/checkpoint.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "store/memory/memory_store.hpp"
#include "testing/test_util.hpp"

namespace strowger::engine {
namespace {

// Commits an append; for a stop, reads the run back through the engine before the run is told
// the append is done.
class ReadBackStore final : public store::MemoryStore {
  public:
    bool AppendsAtOnce() const override { return false; }
    Awaitable<Result<void>> AppendEvents(std::string run_id, std::vector<ledger::Event> events,
                                         ledger::RunStatus status) override {
        auto appended = MemoryStore::AppendEventsAtOnce(run_id, events, status);
        if (appended && engine != nullptr && ledger::IsStop(status)) {
            auto loaded = co_await engine->LoadRun(run_id);
            reads.push_back(loaded ? std::string("ok") : loaded.error().message());
        }
        co_return appended;
    }

    Engine* engine = nullptr;
    std::vector<std::string> reads;
};

TEST(CheckpointReadTest, ARunReadBetweenItsStopsCommitAndItsSigningVerifies) {
    asio::io_context io(1);
    testing::TempDir dir;
    dir.Write("script.yaml", "default: done\n");
    auto loaded = model::LoadWorkflowFile(
        dir.Write("flow.yaml",
                  "name: t\nagents:\n  w: {model: \"scripted:script.yaml\"}\n"
                  "steps:\n  - {name: a, agent_name: w}\n"));
    ASSERT_TRUE(loaded.ok());
    auto compiled = model::Compile(loaded.workflow);
    ASSERT_TRUE(compiled.ok());

    auto key = SigningKey::Generate();
    ASSERT_TRUE(key.has_value());
    auto store = std::make_shared<ReadBackStore>();
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);
    EngineOptions options;
    options.single_threaded_executor = true;
    options.signer = audit::CheckpointSigner::Create(
        io.get_executor(), store, std::make_shared<const SigningKey>(std::move(*key)));
    Engine engine(io.get_executor(), store, registry, options);
    store->engine = &engine;

    auto outcome = testing::RunOn(io, engine.StartRun({compiled.plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, ledger::RunStatus::kCompleted);
    EXPECT_EQ(store->reads, std::vector<std::string>{"ok"});

    // Once the signer has stored the stop's checkpoint, a reader verifies it as signed.
    auto flushed = testing::RunOn(io, engine.FlushCheckpoints());
    ASSERT_TRUE(flushed && *flushed);
    store->engine = nullptr;
    auto verified = testing::RunOn(io, engine.VerifyRun((*outcome)->run_id));
    ASSERT_TRUE(verified && *verified);
    EXPECT_FALSE((*verified)->finding.has_value()) << (*verified)->finding->Describe();
}

TEST(CheckpointReadTest, ARunStoppedByAnIdleAppendVerifiesWhenReadBeforeItsSigning) {
    // A waiting run cancelled from outside: the engine claims it (it executes nowhere) and
    // appends run.cancelled itself; a read between that commit and the signing must verify.
    asio::io_context io(1);
    testing::TempDir dir;
    auto loaded =
        model::LoadWorkflowFile(dir.Write("flow.yaml",
                                          "name: t\nnodes:\n  - id: review\n    type: human_task\n"
                                          "    config: {title: Review, assignee_refs: [legal]}\n"));
    ASSERT_TRUE(loaded.ok()) << loaded.diagnostics[0].ToString();
    providers::ProviderRegistry registry(io.get_executor());
    providers::RegisterBuiltinProviders(registry);
    auto compiled = model::Compile(loaded.workflow, CompileOptionsFor(registry));
    ASSERT_TRUE(compiled.ok()) << compiled.diagnostics[0].ToString();

    auto key = SigningKey::Generate();
    ASSERT_TRUE(key.has_value());
    auto store = std::make_shared<ReadBackStore>();
    EngineOptions options;
    options.single_threaded_executor = true;
    options.signer = audit::CheckpointSigner::Create(
        io.get_executor(), store, std::make_shared<const SigningKey>(std::move(*key)));
    Engine engine(io.get_executor(), store, registry, options);
    store->engine = &engine;

    auto outcome = testing::RunOn(io, engine.StartRun({compiled.plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    ASSERT_EQ((*outcome)->status, ledger::RunStatus::kWaiting);
    auto cancelled = testing::RunOn(
        io, engine.Control((*outcome)->run_id, store::ControlAction::kCancel, "no", "ops"));
    ASSERT_TRUE(cancelled && *cancelled)
        << (cancelled && !*cancelled ? cancelled->error().message() : "");
    // One read at the waiting stop, one at the cancellation: both verify.
    EXPECT_EQ(store->reads, (std::vector<std::string>{"ok", "ok"}));

    auto flushed = testing::RunOn(io, engine.FlushCheckpoints());
    ASSERT_TRUE(flushed && *flushed);
    store->engine = nullptr;
    auto verified = testing::RunOn(io, engine.VerifyRun((*outcome)->run_id));
    ASSERT_TRUE(verified && *verified);
    EXPECT_FALSE((*verified)->finding.has_value()) << (*verified)->finding->Describe();
}

}  // namespace
}  // namespace strowger::engine
