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

// An engine with a checkpoint signer over a ReadBackStore, on one thread.
class CheckpointReadTest : public ::testing::Test {
  protected:
    void SetUp() override {
        providers::RegisterBuiltinProviders(registry_);
        auto key = SigningKey::Generate();
        ASSERT_TRUE(key.has_value());
        EngineOptions options;
        options.single_threaded_executor = true;
        options.signer = audit::CheckpointSigner::Create(
            io_.get_executor(), store_, std::make_shared<const SigningKey>(std::move(*key)));
        engine_ = std::make_unique<Engine>(io_.get_executor(), store_, registry_, options);
        store_->engine = engine_.get();
    }

    // `flow` (YAML) compiled; null after a failed assertion.
    std::shared_ptr<const model::Plan> Compile(const std::string& flow) {
        auto loaded = model::LoadWorkflowFile(dir_.Write("flow.yaml", flow));
        EXPECT_TRUE(loaded.ok()) << loaded.diagnostics[0].ToString();
        if (!loaded.ok()) return nullptr;
        auto compiled = model::Compile(loaded.workflow, CompileOptionsFor(registry_));
        EXPECT_TRUE(compiled.ok()) << compiled.diagnostics[0].ToString();
        return compiled.ok() ? compiled.plan : nullptr;
    }

    // Once the signer has stored the stop's checkpoint, a reader verifies it as signed.
    void ExpectVerifiesOnceSigned(const std::string& run_id) {
        auto flushed = testing::RunOn(io_, engine_->FlushCheckpoints());
        ASSERT_TRUE(flushed && *flushed);
        store_->engine = nullptr;
        auto verified = testing::RunOn(io_, engine_->VerifyRun(run_id));
        ASSERT_TRUE(verified && *verified);
        EXPECT_FALSE((*verified)->finding.has_value()) << (*verified)->finding->Describe();
    }

    asio::io_context io_{1};
    testing::TempDir dir_;
    providers::ProviderRegistry registry_{io_.get_executor()};
    std::shared_ptr<ReadBackStore> store_ = std::make_shared<ReadBackStore>();
    std::unique_ptr<Engine> engine_;
};

TEST_F(CheckpointReadTest, ARunReadBetweenItsStopsCommitAndItsSigningVerifies) {
    dir_.Write("script.yaml", "default: done\n");
    auto plan = Compile(
        "name: t\nagents:\n  w: {model: \"scripted:script.yaml\"}\n"
        "steps:\n  - {name: a, agent_name: w}\n");
    ASSERT_NE(plan, nullptr);
    auto outcome = testing::RunOn(io_, engine_->StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, ledger::RunStatus::kCompleted);
    EXPECT_EQ(store_->reads, std::vector<std::string>{"ok"});
    ExpectVerifiesOnceSigned((*outcome)->run_id);
}

TEST_F(CheckpointReadTest, ARunStoppedByAnIdleAppendVerifiesWhenReadBeforeItsSigning) {
    // A waiting run cancelled from outside: the engine claims it (it executes nowhere) and
    // appends run.cancelled itself; a read between that commit and the signing must verify.
    auto plan = Compile(
        "name: t\nnodes:\n  - id: review\n    type: human_task\n"
        "    config: {title: Review, assignee_refs: [legal]}\n");
    ASSERT_NE(plan, nullptr);
    auto outcome = testing::RunOn(io_, engine_->StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    ASSERT_EQ((*outcome)->status, ledger::RunStatus::kWaiting);
    auto cancelled = testing::RunOn(
        io_, engine_->Control((*outcome)->run_id, store::ControlAction::kCancel, "no", "ops"));
    ASSERT_TRUE(cancelled && *cancelled)
        << (cancelled && !*cancelled ? cancelled->error().message() : "");
    // One read at the waiting stop, one at the cancellation: both verify.
    EXPECT_EQ(store_->reads, (std::vector<std::string>{"ok", "ok"}));
    ExpectVerifiesOnceSigned((*outcome)->run_id);
}

}  // namespace
}  // namespace strowger::engine
