// Engine behaviour that golden files cannot express: timing (fan-out really overlaps),
// cancellation, pause/resume, resuming an abandoned run from its ledger, idempotency keys,
// store failures and many concurrent runs.
//
// Just past 1,000 lines: the engine's run-control cases share one fixture (its store, clock
// and scripted registry); the next group of cases to come goes to a file of its own.
#include "engine/engine.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <functional>
#include <map>
#include <set>
#include <string>

#include "core/log.hpp"
#include "ledger/chain.hpp"
#include "model/loader.hpp"
#include "providers/builtin.hpp"
#include "providers/scripted/scripted_provider.hpp"
#include "store/memory/memory_store.hpp"
#include "testing/mock_model_server.hpp"
#include "testing/test_util.hpp"

namespace strowger::engine {
namespace {

using ledger::EventType;
using ledger::RunStatus;

// Calls `on_event` for every committed event (on the engine's thread).
class CallbackObserver : public Observer {
  public:
    std::function<void(const ledger::Event&)> on_event;
    void OnEvent(const ledger::Event& event) override {
        events.push_back(event);
        if (on_event) on_event(event);
    }
    void OnResume(const model::Plan& plan, const ledger::RunState& state) override {
        resumed.push_back({plan.workflow_name, state});
    }
    std::vector<ledger::Event> events;
    std::vector<std::pair<std::string, ledger::RunState>> resumed;  // workflow, replayed state
};

// Records streamed text per node; wants it only if `wants` is set.
class DeltaObserver : public Observer {
  public:
    explicit DeltaObserver(bool wants) : wants_(wants) {}
    bool WantsDeltas() const override { return wants_; }
    void OnDelta(std::string_view run_id, std::string_view node, std::string_view text) override {
        streamed[std::string(node)] += text;
        run_ids.insert(std::string(run_id));
    }
    std::map<std::string, std::string> streamed;
    std::set<std::string> run_ids;

  private:
    bool wants_;
};

class EngineTest : public ::testing::Test {
  protected:
    // Writes a workflow and a script into a temp dir and compiles it.
    std::shared_ptr<const model::Plan> Compile(const std::string& steps,
                                               const std::string& script) {
        dir_.Write("script.yaml", script);
        return CompileFor("scripted:script.yaml", steps);
    }
    // Writes a workflow whose agent `w` uses `model` and compiles it.
    std::shared_ptr<const model::Plan> CompileFor(const std::string& model,
                                                  const std::string& steps) {
        std::string path = dir_.Write(
            "flow.yaml", "name: t\nagents:\n  w: {model: \"" + model + "\"}\nsteps:\n" + steps);
        auto loaded = model::LoadWorkflowFile(path);
        EXPECT_TRUE(loaded.ok()) << (loaded.diagnostics.empty() ? ""
                                                                : loaded.diagnostics[0].ToString());
        auto compiled = model::Compile(loaded.workflow);
        EXPECT_TRUE(compiled.ok())
            << (compiled.diagnostics.empty() ? "" : compiled.diagnostics[0].ToString());
        return compiled.plan;
    }

    std::unique_ptr<providers::ProviderRegistry> NewRegistry() {
        auto registry = std::make_unique<providers::ProviderRegistry>(io_.get_executor());
        providers::RegisterBuiltinProviders(*registry);
        return registry;
    }

    // Runs `awaitable` on io_ until it completes (or 20 s pass).
    template <typename T>
    std::optional<T> Run(Awaitable<T> awaitable) {
        return testing::RunOn(io_, std::move(awaitable));
    }

    std::vector<store::StoredEvent> Events(const std::string& run_id) {
        store::EventQuery all;
        auto events = testing::RunSync(store_->ReadEvents(run_id, all));
        EXPECT_TRUE(events.has_value());
        return events.value_or(std::vector<store::StoredEvent>{});
    }

    // Makes `observer` (added to `engine`) pause every run as its step `node` starts.
    static void PauseWhenStarted(Engine& engine, CallbackObserver& observer, std::string node) {
        observer.on_event = [&engine, node](const ledger::Event& e) {
            if (e.type == EventType::kNodeStarted && e.node == node)
                engine.Pause(e.run_id, "maintenance", "ops");
        };
        engine.AddObserver(&observer);
    }

    // ResumeRun with an outcome handler, run on io_ until the handler has the outcome.
    std::optional<Result<RunOutcome>> ResumeWithHandler(Engine& engine, const std::string& run_id) {
        std::optional<Result<RunOutcome>> outcome;
        engine.ResumeRun(run_id, "operator", "ops",
                         [&](Result<RunOutcome> r) { outcome = std::move(r); });
        io_.restart();
        io_.run_for(std::chrono::seconds(10));
        return outcome;
    }

    static int Count(const std::vector<store::StoredEvent>& events, const std::string& type,
                     const std::string& node) {
        int n = 0;
        for (const auto& e : events) n += (e.type == type && e.node == node) ? 1 : 0;
        return n;
    }

    // Cancels a run at several points of its resume (ACancelRightAfterAResume... below).
    void CancelRightAfterResume(std::shared_ptr<store::Store> store);

    testing::TempDir dir_;
    asio::io_context io_;
    std::shared_ptr<store::MemoryStore> store_ = std::make_shared<store::MemoryStore>();
};

TEST_F(EngineTest, FanOutStepsRunConcurrently) {
    auto plan = Compile(
        "  - {name: a, agent_name: w, mode: fan_out}\n"
        "  - {name: b, agent_name: w, mode: fan_out}\n"
        "  - {name: c, agent_name: w, mode: fan_out}\n",
        "latency_ms: 300\ndefault: ok\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    auto start = std::chrono::steady_clock::now();
    auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
    auto wall = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    // All three calls were in flight together: every start precedes the first response...
    auto events = Events((*outcome)->run_id);
    size_t last_start = 0, first_response = events.size();
    for (size_t i = 0; i < events.size(); ++i) {
        if (events[i].type == "llm.request") last_start = i;
        if (events[i].type == "llm.response" && first_response == events.size()) first_response = i;
    }
    EXPECT_LT(last_start, first_response);
    // ...and the wall time is that of the slowest step, not the sum (900 ms).
    EXPECT_GE(wall, std::chrono::milliseconds(300));
    EXPECT_LT(wall, std::chrono::milliseconds(800));
}

TEST_F(EngineTest, StreamedTextReachesObserversThatAskForIt) {
    auto plan = Compile(
        "  - {name: a, agent_name: w, prompt: \"first\"}\n"
        "  - {name: b, agent_name: w, prompt: \"second\"}\n",
        "rules:\n  - {when: {step: a}, reply: alpha beta}\n  - {when: {step: b}, reply: gamma}\n");
    auto registry = NewRegistry();
    {
        // Nobody asks: the provider gets no sink and nothing is streamed.
        DeltaObserver silent(false);
        Engine engine(io_.get_executor(), store_, *registry);
        engine.AddObserver(&silent);
        auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
        ASSERT_TRUE(outcome && *outcome);
        EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
        EXPECT_TRUE(silent.streamed.empty());
    }
    DeltaObserver live(true);
    DeltaObserver silent(false);
    Engine engine(io_.get_executor(), store_, *registry);
    engine.AddObserver(&live);
    engine.AddObserver(&silent);
    auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    // Every observer hears the deltas once one asks; each node's text is its output.
    std::map<std::string, std::string> expected = {{"a", "alpha beta"}, {"b", "gamma"}};
    EXPECT_EQ(live.streamed, expected);
    EXPECT_EQ(silent.streamed, expected);
    EXPECT_EQ(live.run_ids, std::set<std::string>{(*outcome)->run_id});
}

TEST_F(EngineTest, CancelAbortsTheInFlightModelCall) {
    auto plan = Compile(
        "  - {name: slow, agent_name: w, timeout_secs: 60}\n  - {name: next, agent_name: w}\n",
        "rules:\n  - {when: {step: slow}, hang: true}\ndefault: never\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    CallbackObserver observer;
    observer.on_event = [&](const ledger::Event& e) {
        if (e.type == EventType::kLlmRequest) {
            EXPECT_TRUE(engine.Cancel(e.run_id, "test says stop", "tester"));
        }
    };
    engine.AddObserver(&observer);
    auto start = std::chrono::steady_clock::now();
    auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCancelled);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    auto events = Events((*outcome)->run_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type, "run.cancelled");
    EXPECT_NE(events.back().encoded.find("\"reason\":\"test says stop\""), std::string::npos);
    EXPECT_EQ(Count(events, "node.started", "next"), 0);
    EXPECT_EQ(engine.ActiveRuns(), 0u);
}

TEST_F(EngineTest, PauseTakesEffectAtTheNextStepBoundaryAndResumeContinues) {
    auto plan = Compile(
        "  - {name: one, agent_name: w}\n  - {name: two, agent_name: w}\n  - {name: three, "
        "agent_name: w}\n",
        "latency_ms: 50\nrules:\n  - {reply_template: \"${step} done\"}\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    CallbackObserver observer;
    PauseWhenStarted(engine, observer, "one");
    auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kPaused);
    auto events = Events((*outcome)->run_id);
    EXPECT_EQ(Count(events, "node.completed", "one"), 1);  // the step in flight finished
    EXPECT_EQ(Count(events, "node.started", "two"), 0);    // the next one did not start
    EXPECT_EQ(events.back().type, "run.paused");

    observer.on_event = nullptr;
    EXPECT_TRUE(observer.resumed.empty());
    auto resumed = Run(engine.ResumeRun((*outcome)->run_id, "operator", "ops"));
    ASSERT_TRUE(resumed && *resumed) << (resumed ? (*resumed).error().ToString() : "");
    EXPECT_EQ((*resumed)->status, RunStatus::kCompleted);
    EXPECT_EQ((*resumed)->output, "three done");
    // Observers saw the resumption with what the ledger said the run had spent (step one).
    ASSERT_EQ(observer.resumed.size(), 1u);
    const ledger::RunState& replayed = observer.resumed[0].second;
    EXPECT_EQ(observer.resumed[0].first, plan->workflow_name);
    EXPECT_EQ(replayed.run_id, (*outcome)->run_id);
    EXPECT_EQ(replayed.status, RunStatus::kPaused);
    EXPECT_EQ(replayed.nodes[0].status, ledger::NodeStatus::kCompleted);
    EXPECT_EQ(replayed.model_calls, 1);
    EXPECT_GT(replayed.tokens_in + replayed.tokens_out, 0);
    EXPECT_EQ(replayed.nodes[0].spent_tokens, replayed.tokens_in + replayed.tokens_out);
    events = Events((*outcome)->run_id);
    EXPECT_EQ(Count(events, "node.started", "one"), 1);
    EXPECT_EQ(Count(events, "node.started", "two"), 1);
    EXPECT_EQ(Count(events, "run.resumed", ""), 1);
}

TEST_F(EngineTest, AbandonedRunResumesFromItsLedgerWithoutRedoingFinishedSteps) {
    auto plan = Compile(
        "  - {name: one, agent_name: w, output_var: first}\n"
        "  - {name: two, agent_name: w}\n"
        "  - {name: three, agent_name: w, prompt: \"{{input}} + {{first}}\"}\n",
        "rules:\n"
        "  - {when: {step: one}, reply: ONE}\n"
        "  - {when: {step: two, attempt: 1}, hang: true}\n"
        "  - {when: {step: two}, reply: TWO}\n"
        "  - {when: {step: three}, reply_template: \"${prompt}\"}\n");
    std::string run_id;
    {
        // First "process": runs until step two hangs, then is abandoned mid-call.
        asio::io_context first_io;
        providers::ProviderRegistry registry(first_io.get_executor());
        providers::RegisterBuiltinProviders(registry);
        Engine engine(first_io.get_executor(), store_, registry);
        CallbackObserver observer;
        observer.on_event = [&](const ledger::Event& e) {
            if (e.type == EventType::kLlmRequest && e.node == "two") {
                run_id = e.run_id;
                first_io.stop();  // the process dies here
            }
        };
        engine.AddObserver(&observer);
        asio::co_spawn(first_io, engine.StartRun({plan, "in", {}, {}}), asio::detached);
        first_io.run_for(std::chrono::seconds(10));
        ASSERT_FALSE(run_id.empty());
    }
    // Nothing of the abandoned "process" is left holding the store: the run and the engine's
    // internals did not keep each other alive.
    EXPECT_EQ(store_.use_count(), 1);
    // The same store (the "disk") holds a running run with step two started, not finished.
    auto record = testing::RunSync(store_->GetRun(run_id));
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->status, RunStatus::kRunning);
    ASSERT_TRUE(testing::RunSync(store_->ReleaseLease(run_id, record->owner)).has_value());

    auto registry = NewRegistry();  // a new process: the scripted counters start again
    Engine engine(io_.get_executor(), store_, *registry);
    auto outcome = Run(engine.ResumeRun(run_id));
    ASSERT_TRUE(outcome && *outcome) << (outcome ? (*outcome).error().ToString() : "");
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    auto events = Events(run_id);
    EXPECT_EQ(Count(events, "node.started", "one"), 1);  // never redone
    EXPECT_EQ(Count(events, "node.started", "two"), 2);  // the interrupted attempt and a new one
    // The new attempt continues the numbering: attempt 2.
    int64_t last_attempt = 0;
    for (const auto& e : events) {
        if (e.type == "node.started" && e.node == "two")
            last_attempt = ledger::DecodeEvent(e.encoded)->attempt;
    }
    EXPECT_EQ(last_attempt, 2);
    // Step three still reads the variable set before the "crash", and step two's new output.
    EXPECT_EQ((*outcome)->output, "TWO + ONE");
    std::vector<std::string> lines;
    for (const auto& e : events) lines.push_back(e.encoded);
    EXPECT_TRUE(ledger::VerifyChain(run_id, lines).ok());
}

TEST_F(EngineTest, IdempotencyKeyReturnsTheExistingRun) {
    auto plan = Compile("  - {name: a, agent_name: w}\n", "default: ok\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    auto first = Run(engine.StartRun({plan, "in", "key-42", {}}));
    auto second = Run(engine.StartRun({plan, "other input", "key-42", {}}));
    ASSERT_TRUE(first && *first && second && *second);
    EXPECT_FALSE((*first)->existing);
    EXPECT_TRUE((*second)->existing);
    EXPECT_EQ((*first)->run_id, (*second)->run_id);
    EXPECT_EQ((*second)->status, RunStatus::kCompleted);
    store::RunFilter filter;
    auto page = testing::RunSync(store_->ListRuns(filter));
    ASSERT_TRUE(page.has_value());
    EXPECT_EQ(page->runs.size(), 1u);
}

TEST_F(EngineTest, AQueuedStartKeepsAllItsRequestNames) {
    // StartRun with a handler queues a request naming more than plan and input whole.
    auto plan = Compile("  - {name: a, agent_name: w}\n", "default: ok\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    std::vector<Result<RunOutcome>> outcomes;
    for (std::string input : {"in", "other input"}) {
        StartRequest request{plan, input, "key-7", {}};
        request.actor = "queued-tester";
        engine.StartRun(std::move(request), [&](auto o) { outcomes.push_back(std::move(o)); });
    }
    io_.run_for(std::chrono::seconds(5));
    ASSERT_EQ(outcomes.size(), 2u);
    ASSERT_TRUE(outcomes[0] && outcomes[1]);
    // The idempotency key was kept: one of the two found the other's run.
    EXPECT_NE(outcomes[0]->existing, outcomes[1]->existing);
    EXPECT_EQ(outcomes[0]->run_id, outcomes[1]->run_id);
    EXPECT_NE(Events(outcomes[0]->run_id).front().encoded.find("queued-tester"), std::string::npos);
}

TEST_F(EngineTest, ResumingAFinishedRunIsRefused) {
    auto plan = Compile("  - {name: a, agent_name: w}\n", "default: ok\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    auto resumed = Run(engine.ResumeRun((*outcome)->run_id));
    ASSERT_TRUE(resumed.has_value());
    ASSERT_FALSE(resumed->has_value());
    EXPECT_EQ(resumed->error().code(), ErrorCode::kFailedPrecondition);
}

// A store whose appends start failing after a number of successful calls; it appends at once
// (as the in-memory store does) or only when awaited (as SQLite).
class FailingStore : public store::MemoryStore {
  public:
    FailingStore(int ok_appends, bool at_once) : ok_appends_(ok_appends), at_once_(at_once) {}
    bool AppendsAtOnce() const override { return at_once_; }
    Result<void> AppendEventsAtOnce(std::string_view run_id, std::span<const ledger::Event> events,
                                    RunStatus status) override {
        EXPECT_TRUE(at_once_);
        if (ok_appends_-- <= 0) return UnavailableError("disk on fire");
        return MemoryStore::AppendEventsAtOnce(run_id, events, status);
    }
    Awaitable<Result<void>> AppendEvents(std::string run_id, std::vector<ledger::Event> events,
                                         RunStatus status) override {
        EXPECT_FALSE(at_once_);
        if (ok_appends_-- <= 0) co_return UnavailableError("disk on fire");
        co_return MemoryStore::AppendEventsAtOnce(run_id, events, status);
    }

  private:
    int ok_appends_;
    bool at_once_;
};

TEST_F(EngineTest, StoreFailureStopsTheRunWithoutLosingWhatWasCommitted) {
    auto plan =
        Compile("  - {name: a, agent_name: w}\n  - {name: b, agent_name: w}\n", "default: ok\n");
    auto registry = NewRegistry();
    for (bool at_once : {true, false}) {
        SCOPED_TRACE(at_once ? "appends at once" : "appends when awaited");
        // run.started, a started, a completed
        auto store = std::make_shared<FailingStore>(3, at_once);
        Engine engine(io_.get_executor(), store, *registry);
        auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
        ASSERT_TRUE(outcome && *outcome);
        EXPECT_EQ((*outcome)->error_code, ErrorCode::kUnavailable);
        EXPECT_EQ((*outcome)->status, RunStatus::kRunning);  // still resumable
        store::EventQuery all;
        auto events = testing::RunSync(store->ReadEvents((*outcome)->run_id, all));
        ASSERT_TRUE(events.has_value());
        EXPECT_EQ(events->back().type, "node.completed");
        EXPECT_EQ(events->size(), 6u);  // run.created, run.started, a's four
    }
}

TEST_F(EngineTest, ThousandConcurrentRunsAllComplete) {
    auto plan = Compile(
        "  - {name: a, agent_name: w}\n  - {name: b, agent_name: w, mode: fan_out}\n"
        "  - {name: c, agent_name: w, mode: fan_out}\n  - {name: d, agent_name: w, mode: "
        "collect}\n",
        "latency_ms: 20\nrules:\n  - {reply_template: \"${step}\"}\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    int completed = 0;
    for (int i = 0; i < 1000; ++i) {
        asio::co_spawn(io_, engine.StartRun({plan, "in", {}, {}}),
                       [&](std::exception_ptr e, Result<RunOutcome> r) {
                           ASSERT_FALSE(e);
                           ASSERT_TRUE(r.has_value());
                           EXPECT_EQ(r->output, "b\n\n---\n\nc");
                           ++completed;
                       });
    }
    io_.run_for(std::chrono::seconds(30));
    EXPECT_EQ(completed, 1000);
}

TEST_F(EngineTest, RunsStartedWithAHandlerCompleteAndCanBeCancelled) {
    auto plan = Compile(
        "  - {name: one, agent_name: w, timeout_secs: 60}\n  - {name: two, agent_name: w}\n",
        "latency_ms: 20\nrules:\n  - {when: {prompt_contains: stuck}, hang: true}\n"
        "  - {reply_template: \"${step} of ${prompt}\"}\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    CallbackObserver observer;
    std::string stuck_id;
    observer.on_event = [&](const ledger::Event& e) {
        if (e.type == EventType::kLlmRequest && e.data.find("stuck") != std::string::npos) {
            stuck_id = e.run_id;
            EXPECT_TRUE(engine.Cancel(e.run_id, "test says stop", "tester"));
        }
    };
    engine.AddObserver(&observer);
    std::map<std::string, Result<RunOutcome>> outcomes;
    for (std::string input : {"a", "stuck", "b"}) {
        engine.StartRun({plan, input, {}, {}}, [&, input](Result<RunOutcome> outcome) {
            EXPECT_FALSE(outcomes.contains(input)) << "handler called twice";
            outcomes.emplace(input, std::move(outcome));
        });
    }
    EXPECT_TRUE(outcomes.empty());  // nothing is awaited: StartRun returned at once
    io_.run_for(std::chrono::seconds(20));
    ASSERT_EQ(outcomes.size(), 3u);
    for (std::string input : {"a", "b"}) {
        const auto& outcome = outcomes.at(input);
        ASSERT_TRUE(outcome.has_value()) << outcome.error().ToString();
        EXPECT_EQ(outcome->status, RunStatus::kCompleted);
        EXPECT_EQ(outcome->output, "two of one of " + input);
    }
    const auto& stuck = outcomes.at("stuck");
    ASSERT_TRUE(stuck.has_value());
    EXPECT_EQ(stuck->run_id, stuck_id);
    EXPECT_EQ(stuck->status, RunStatus::kCancelled);
    EXPECT_EQ(Events(stuck_id).back().type, "run.cancelled");
    EXPECT_EQ(engine.ActiveRuns(), 0u);
}

// A provider whose calls the test answers: Start keeps each call (its `done` and whether it
// was cancelled); Complete, the coroutine form, must not be used for sequential steps.
class ManualProvider final : public providers::Provider {
  public:
    struct Call {
        std::string prompt;
        providers::CompletionHandler done;
        bool cancelled = false;
    };
    explicit ManualProvider(Executor executor) : executor_(std::move(executor)) {}
    std::string_view name() const override { return "manual"; }
    Awaitable<Result<providers::Completion>> Complete(providers::CompletionRequest,
                                                      Deadline) override {
        ADD_FAILURE() << "a sequential step's call must use Start";
        co_return InternalError("Complete used");
    }
    std::optional<Result<providers::Completion>> Start(providers::CompletionRequest request,
                                                       Deadline, const Executor& executor,
                                                       asio::cancellation_slot cancel,
                                                       providers::CompletionHandler done) override {
        EXPECT_TRUE(cancel.is_connected());
        auto call = std::make_shared<Call>();
        call->prompt = request.messages.back().content;
        call->done = std::move(done);
        // On cancellation: answer kCancelled from a later handler (the slot's handler must not
        // destroy itself).
        cancel.assign([call, cancel, executor](asio::cancellation_type) mutable {
            call->cancelled = true;
            asio::post(executor, [call, cancel]() mutable {
                cancel.clear();
                if (call->done) std::exchange(call->done, nullptr)(CancelledError("cancelled"));
            });
        });
        calls.push_back(call);
        return std::nullopt;
    }
    // Answers the oldest unanswered call.
    void Answer(std::string content) {
        for (auto& call : calls) {
            if (!call->done) continue;
            providers::Completion completion;
            completion.content = std::move(content);
            completion.finish_reason = "stop";
            asio::post(executor_, [call, completion = std::move(completion)]() mutable {
                std::exchange(call->done, nullptr)(std::move(completion));
            });
            return;
        }
        ADD_FAILURE() << "no call to answer";
    }
    size_t Unanswered() const {
        size_t n = 0;
        for (const auto& call : calls) n += call->done ? 1 : 0;
        return n;
    }
    std::vector<std::shared_ptr<Call>> calls;

  private:
    Executor executor_;
};

// Sequential steps whose calls go to a ManualProvider (registered as "manual").
class ParkedCallTest : public EngineTest {
  protected:
    ParkedCallTest() {
        registry_->Register("manual", [this](std::string_view model, std::string_view) {
            return Result<providers::ResolvedModel>(
                providers::ResolvedModel{provider_, "manual", std::string(model), {}});
        });
        plan_ = CompileFor("manual:m",
                           "  - {name: one, agent_name: w}\n"
                           "  - {name: two, agent_name: w, prompt: \"2: {{input}}\"}\n");
    }
    // Runs io_ until `done` holds (or 10 s of handlers pass).
    void RunUntil(const std::function<bool()>& done) {
        io_.restart();
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!done() && std::chrono::steady_clock::now() < until) {
            io_.run_one_for(std::chrono::milliseconds(100));
        }
        EXPECT_TRUE(done());
    }
    // Starts a run of plan_ on `engine` (its outcome into outcome_) and runs io_ until its
    // first call is parked; returns the run's id.
    std::string StartUntilParked(Engine& engine) {
        engine.AddObserver(&observer_);
        engine.StartRun({plan_, "in", {}, {}},
                        [this](Result<RunOutcome> r) { outcome_ = std::move(r); });
        RunUntil([&] { return provider_->Unanswered() == 1; });
        return observer_.events.empty() ? std::string() : observer_.events.front().run_id;
    }

    std::optional<Result<RunOutcome>> outcome_;
    std::shared_ptr<ManualProvider> provider_ =
        std::make_shared<ManualProvider>(io_.get_executor());
    std::unique_ptr<providers::ProviderRegistry> registry_ = NewRegistry();
    std::shared_ptr<const model::Plan> plan_;
    CallbackObserver observer_;
};

TEST_F(ParkedCallTest, AParkedCallGoesOnWhenAnsweredAndAPauseWaitsForIt) {
    Engine engine(io_.get_executor(), store_, *registry_);
    const std::string run_id = StartUntilParked(engine);
    EXPECT_EQ(provider_->calls[0]->prompt, "in");
    EXPECT_FALSE(outcome_.has_value());
    ASSERT_EQ(engine.ActiveRuns(), 1u);  // parked, and still found by run control
    provider_->Answer("first");
    RunUntil([&] { return provider_->calls.size() == 2; });
    EXPECT_EQ(provider_->calls[1]->prompt, "2: first");
    // Paused while its call is parked: the step finishes with the answer, then the run pauses.
    ASSERT_TRUE(engine.Pause(run_id, "maintenance", "ops"));
    provider_->Answer("second");
    RunUntil([&] { return outcome_.has_value(); });
    ASSERT_TRUE(*outcome_) << outcome_->error().ToString();
    EXPECT_EQ((*outcome_)->status, RunStatus::kPaused);
    auto events = Events(run_id);
    EXPECT_EQ(Count(events, "node.completed", "two"), 1);
    EXPECT_EQ(events.back().type, "run.paused");
    EXPECT_EQ(engine.ActiveRuns(), 0u);
}

TEST_F(ParkedCallTest, CancellingARunCancelsItsParkedCall) {
    Engine engine(io_.get_executor(), store_, *registry_);
    const std::string run_id = StartUntilParked(engine);
    ASSERT_TRUE(engine.Cancel(run_id, "test says stop", "tester"));
    RunUntil([&] { return outcome_.has_value(); });
    EXPECT_TRUE(provider_->calls[0]->cancelled);
    ASSERT_TRUE(*outcome_) << outcome_->error().ToString();
    EXPECT_EQ((*outcome_)->status, RunStatus::kCancelled);
    auto events = Events(run_id);
    EXPECT_EQ(events.back().type, "run.cancelled");
    EXPECT_EQ(Count(events, "node.completed", "one"), 0);
    EXPECT_EQ(provider_->calls.size(), 1u);
    EXPECT_EQ(engine.ActiveRuns(), 0u);
}

// Observers that do not read payloads spare the engine a copy of each; one that does gets them.
TEST_F(EngineTest, PayloadsReachObserversOnlyWhenOneWantsThem) {
    struct HeadersOnly : CallbackObserver {
        bool WantsData() const override { return false; }
    };
    auto plan = Compile("  - {name: one, agent_name: w}\n", "default: ok\n");
    auto registry = NewRegistry();
    for (bool with_data_observer : {false, true}) {
        Engine engine(io_.get_executor(), store_, *registry);
        HeadersOnly headers;
        CallbackObserver full;
        engine.AddObserver(&headers);
        if (with_data_observer) engine.AddObserver(&full);
        auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
        ASSERT_TRUE(outcome && *outcome);
        ASSERT_FALSE(headers.events.empty());
        const ledger::Event* response = nullptr;
        for (const auto& e : headers.events) {
            EXPECT_EQ(e.run_id, (*outcome)->run_id);
            if (e.type == EventType::kLlmResponse) response = &e;
        }
        ASSERT_NE(response, nullptr);
        EXPECT_EQ(response->node, "one");
        if (with_data_observer) {
            EXPECT_NE(response->data.find("\"content\":\"ok\""), std::string::npos);
            EXPECT_EQ(full.events.size(), headers.events.size());
        } else {
            EXPECT_TRUE(response->data.empty());
        }
    }
}

// Over HTTP the parked call is the default Start (a spawned Complete): a cancel reaches the
// request on the wire, and the connection is closed rather than left waiting for the answer.
TEST_F(ParkedCallTest, CancellingARunCancelsItsParkedHttpCallOnTheWire) {
    auto server = testing::MockModelServer::Start({});
    ASSERT_TRUE(server.has_value()) << server.error().ToString();
    testing::MockRule hang;
    hang.behavior.hang = true;
    (*server)->AddRule(hang);
    providers::ProvidersConfig config = providers::DefaultProvidersConfig();
    providers::ProviderSettings openai;
    openai.base_url = (*server)->base_url();
    openai.api_key_env = "";
    config.providers["openai"] = openai;
    providers::ProviderRegistry registry(io_.get_executor());
    providers::RegisterBuiltinProviders(registry, config);
    auto plan =
        CompileFor("openai:gpt-4o-mini", "  - {name: one, agent_name: w, timeout_secs: 60}\n");
    ASSERT_NE(plan, nullptr);

    Engine engine(io_.get_executor(), store_, registry);
    engine.AddObserver(&observer_);
    std::optional<Result<RunOutcome>> outcome;
    engine.StartRun({plan, "in", {}, {}}, [&](Result<RunOutcome> r) { outcome = std::move(r); });
    RunUntil([&] { return (*server)->active_requests() == 1; });
    ASSERT_EQ(engine.ActiveRuns(), 1u);
    ASSERT_TRUE(engine.Cancel(observer_.events.at(0).run_id, "test says stop", "tester"));
    RunUntil([&] { return outcome.has_value(); });
    ASSERT_TRUE(*outcome) << outcome->error().ToString();
    EXPECT_EQ((*outcome)->status, RunStatus::kCancelled);
    EXPECT_TRUE((*server)->WaitForOpenConnectionsAtMost(0, std::chrono::seconds(10)));
    EXPECT_EQ((*server)->requests(), 1);
}

TEST_F(EngineTest, AStartThatFailsReachesTheHandlerLater) {
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    std::optional<Result<RunOutcome>> outcome;
    engine.StartRun({nullptr, "in", {}, {}}, [&](Result<RunOutcome> r) { outcome = std::move(r); });
    EXPECT_FALSE(outcome.has_value());  // posted, not called from inside StartRun
    io_.run_for(std::chrono::seconds(5));
    ASSERT_TRUE(outcome.has_value());
    ASSERT_FALSE(outcome->has_value());
    EXPECT_EQ(outcome->error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(EngineTest, ResumeWithAHandlerContinuesAPausedRunAndRefusesAFinishedOne) {
    auto plan = Compile("  - {name: one, agent_name: w}\n  - {name: two, agent_name: w}\n",
                        "latency_ms: 10\nrules:\n  - {reply_template: \"${step} done\"}\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store_, *registry);
    CallbackObserver observer;
    PauseWhenStarted(engine, observer, "one");
    auto paused = Run(engine.StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(paused && *paused);
    ASSERT_EQ((*paused)->status, RunStatus::kPaused);
    observer.on_event = nullptr;

    const std::string run_id = (*paused)->run_id;
    auto resumed = ResumeWithHandler(engine, run_id);
    ASSERT_TRUE(resumed.has_value());
    ASSERT_TRUE(resumed->has_value()) << resumed->error().ToString();
    EXPECT_EQ((*resumed)->status, RunStatus::kCompleted);
    EXPECT_EQ((*resumed)->output, "two done");
    auto events = Events(run_id);
    EXPECT_EQ(Count(events, "node.started", "one"), 1);
    EXPECT_EQ(Count(events, "run.resumed", ""), 1);

    auto again = ResumeWithHandler(engine, run_id);
    ASSERT_TRUE(again.has_value());
    ASSERT_FALSE(again->has_value());
    EXPECT_EQ(again->error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_EQ(Events(run_id).size(), events.size());  // nothing appended
}

// A cancel that comes while a resume of the same run is loading it (this engine holds the
// lease for both) is handed to the resumed run, or recorded before the resume starts: never
// both appending at the same head. Each round lets the cancel in a few hops later.
void EngineTest::CancelRightAfterResume(std::shared_ptr<store::Store> store) {
    auto plan = Compile("  - {name: one, agent_name: w}\n  - {name: two, agent_name: w}\n",
                        "latency_ms: 20\nrules:\n  - {reply_template: \"${step} done\"}\n");
    auto registry = NewRegistry();
    Engine engine(io_.get_executor(), store, *registry);
    CallbackObserver observer;
    for (int hops = 0; hops < 12; ++hops) {
        SCOPED_TRACE("cancel after " + std::to_string(hops) + " hops");
        PauseWhenStarted(engine, observer, "one");
        auto paused = Run(engine.StartRun({plan, "in", {}, {}}));
        ASSERT_TRUE(paused && *paused);
        ASSERT_EQ((*paused)->status, RunStatus::kPaused);
        observer.on_event = nullptr;
        const std::string run_id = (*paused)->run_id;

        std::optional<Result<RunOutcome>> resumed;
        engine.ResumeRun(run_id, "operator", "ops",
                         [&](Result<RunOutcome> r) { resumed = std::move(r); });
        std::optional<Result<Engine::ControlResult>> cancelled;
        asio::co_spawn(
            io_,
            [&]() -> Awaitable<void> {
                for (int i = 0; i < hops; ++i) co_await asio::post(io_, asio::use_awaitable);
                cancelled =
                    co_await engine.Control(run_id, store::ControlAction::kCancel, "stop", "ops");
            },
            asio::detached);
        io_.restart();
        io_.run_for(std::chrono::seconds(10));

        ASSERT_TRUE(cancelled.has_value());
        ASSERT_TRUE(cancelled->has_value()) << cancelled->error().ToString();
        ASSERT_TRUE(resumed.has_value());
        if (resumed->has_value()) {
            EXPECT_EQ((*resumed)->status, RunStatus::kCancelled);
        } else {
            // Recorded first: the resume found a run that had ended.
            EXPECT_EQ(resumed->error().code(), ErrorCode::kFailedPrecondition)
                << resumed->error().ToString();
        }
        auto record = testing::RunSync(store->GetRun(run_id));
        ASSERT_TRUE(record.has_value());
        EXPECT_EQ(record->status, RunStatus::kCancelled);
        EXPECT_EQ(record->owner, "");  // lease released
        auto events = testing::RunSync(store->ReadEvents(run_id, store::EventQuery{}));
        ASSERT_TRUE(events.has_value());
        EXPECT_EQ(Count(*events, "run.cancelled", ""), 1);
        EXPECT_EQ(Count(*events, "node.completed", "two"), 0);
        auto verified = Run(engine.VerifyRun(run_id));
        ASSERT_TRUE(verified && *verified);
        EXPECT_FALSE((*verified)->finding.has_value());
    }
}

TEST_F(EngineTest, ACancelRightAfterAResumeCancelsTheRunAtWhateverPointItComes) {
    CancelRightAfterResume(store_);
}

TEST_F(EngineTest, ACancelRightAfterAResumeCancelsTheRunOnSqliteToo) {
    auto sqlite = store::OpenStoreBlocking("sqlite:" + (dir_.path() / "runs.db").string());
    ASSERT_TRUE(sqlite.has_value()) << sqlite.error().ToString();
    CancelRightAfterResume(*sqlite);
}

TEST_F(EngineTest, MaxConcurrentRunsQueuesTheRestDurablyAndInOrder) {
    auto plan = Compile("  - {name: a, agent_name: w}\n", "latency_ms: 30\ndefault: done\n");
    auto registry = NewRegistry();
    EngineOptions options;
    options.max_concurrent_runs = 2;
    Engine engine(io_.get_executor(), store_, *registry, options);
    CallbackObserver observer;
    int executing = 0, most = 0, pending_at_first_completion = -1;
    std::vector<std::string> started;  // run ids, in run.started order
    observer.on_event = [&](const ledger::Event& e) {
        if (e.type == EventType::kRunStarted) {
            started.push_back(e.run_id);
            most = std::max(most, ++executing);
        } else if (e.type == EventType::kRunCompleted) {
            --executing;
            if (pending_at_first_completion < 0) {
                store::RunFilter filter;
                filter.statuses = {RunStatus::kPending};
                auto page = testing::RunSync(store_->ListRuns(filter));
                ASSERT_TRUE(page.has_value());
                pending_at_first_completion = static_cast<int>(page->runs.size());
            }
        }
    };
    engine.AddObserver(&observer);
    std::vector<std::string> finished;
    for (int i = 0; i < 6; ++i) {
        asio::co_spawn(io_, engine.StartRun({plan, "in " + std::to_string(i), {}, {}}),
                       [&](std::exception_ptr e, Result<RunOutcome> r) {
                           ASSERT_FALSE(e);
                           ASSERT_TRUE(r.has_value());
                           EXPECT_EQ(r->status, RunStatus::kCompleted);
                           finished.push_back(r->run_id);
                       });
    }
    io_.run_for(std::chrono::seconds(20));
    ASSERT_EQ(finished.size(), 6u);
    EXPECT_EQ(most, 2);
    // While two ran, the other four waited as pending runs in the store.
    EXPECT_EQ(pending_at_first_completion, 4);
    // First come, first served: runs started in the order they were submitted (their input
    // says which), queued or not.
    ASSERT_EQ(started.size(), 6u);
    std::vector<std::string> inputs;
    for (const auto& run_id : started) {
        const std::string created = Events(run_id).front().encoded;
        auto at = created.find("\"input\":\"");
        ASSERT_NE(at, std::string::npos) << created;
        inputs.push_back(created.substr(at + 9, 4));
    }
    EXPECT_EQ(inputs, (std::vector<std::string>{"in 0", "in 1", "in 2", "in 3", "in 4", "in 5"}));
    EXPECT_EQ(engine.ActiveRuns(), 0u);
}

TEST_F(EngineTest, MaxConcurrentNodesLimitsAFanOut) {
    auto plan = Compile(
        "  - {name: a, agent_name: w, mode: fan_out}\n"
        "  - {name: b, agent_name: w, mode: fan_out}\n"
        "  - {name: c, agent_name: w, mode: fan_out}\n"
        "  - {name: d, agent_name: w, mode: fan_out}\n"
        "  - {name: e, agent_name: w, mode: fan_out}\n"
        "  - {name: all, agent_name: w, mode: collect}\n",
        "latency_ms: 30\nrules:\n  - {reply_template: \"${step}\"}\n");
    auto registry = NewRegistry();
    EngineOptions options;
    options.max_concurrent_nodes = 2;
    Engine engine(io_.get_executor(), store_, *registry, options);
    auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
    ASSERT_TRUE(outcome && *outcome);
    EXPECT_EQ((*outcome)->status, RunStatus::kCompleted);
    EXPECT_EQ((*outcome)->output, "a\n\n---\n\nb\n\n---\n\nc\n\n---\n\nd\n\n---\n\ne");
    // In ledger order, never more than two nodes between node.started and node.completed.
    int in_flight = 0, most = 0;
    for (const auto& e : Events((*outcome)->run_id)) {
        if (e.node == "all") continue;  // the collect node calls no model
        if (e.type == "node.started") most = std::max(most, ++in_flight);
        if (e.type == "node.completed") --in_flight;
    }
    EXPECT_EQ(most, 2);
    EXPECT_EQ(in_flight, 0);
}

TEST_F(EngineTest, AQueuedRunCancelledOrPausedEndsWithoutStarting) {
    auto plan = Compile("  - {name: a, agent_name: w}\n", "latency_ms: 100\ndefault: done\n");
    auto registry = NewRegistry();
    EngineOptions options;
    options.max_concurrent_runs = 1;
    Engine engine(io_.get_executor(), store_, *registry, options);
    CallbackObserver observer;
    // When the first run's model answers, the other two are queued: cancel one, pause one.
    bool decided = false;
    std::string paused, cancelled;
    observer.on_event = [&](const ledger::Event& e) {
        if (e.type != EventType::kLlmResponse || decided) return;
        decided = true;
        store::RunFilter filter;
        filter.statuses = {RunStatus::kPending};
        auto page = testing::RunSync(store_->ListRuns(filter));
        ASSERT_TRUE(page.has_value());
        ASSERT_EQ(page->runs.size(), 2u);
        paused = page->runs[0].run_id;
        cancelled = page->runs[1].run_id;
        EXPECT_TRUE(engine.Pause(paused, "later", "tester"));
        EXPECT_TRUE(engine.Cancel(cancelled, "not needed", "tester"));
    };
    engine.AddObserver(&observer);
    std::map<std::string, RunStatus> outcomes;
    for (int i = 0; i < 3; ++i) {
        asio::co_spawn(io_, engine.StartRun({plan, "in", {}, {}}),
                       [&](std::exception_ptr e, Result<RunOutcome> r) {
                           ASSERT_FALSE(e);
                           ASSERT_TRUE(r.has_value());
                           outcomes[r->run_id] = r->status;
                       });
    }
    io_.run_for(std::chrono::seconds(20));
    ASSERT_EQ(outcomes.size(), 3u);
    ASSERT_TRUE(decided);
    for (const auto& [run_id, status] : outcomes) {
        if (run_id != paused && run_id != cancelled) {
            EXPECT_EQ(status, RunStatus::kCompleted);
        }
    }
    EXPECT_EQ(outcomes[cancelled], RunStatus::kCancelled);
    EXPECT_EQ(outcomes[paused], RunStatus::kPaused);
    auto types = [&](const std::string& run_id) {
        std::vector<std::string> out;
        for (const auto& e : Events(run_id)) out.push_back(e.type);
        return out;
    };
    EXPECT_EQ(types(cancelled), (std::vector<std::string>{"run.created", "run.cancelled"}));
    EXPECT_EQ(types(paused), (std::vector<std::string>{"run.created", "run.paused"}));
    // The paused one resumes later and runs normally.
    auto resumed = Run(engine.ResumeRun(paused, "go on", "tester"));
    ASSERT_TRUE(resumed && *resumed);
    EXPECT_EQ((*resumed)->status, RunStatus::kCompleted);
    EXPECT_EQ((*resumed)->output, "done");
}

}  // namespace
}  // namespace strowger::engine

namespace strowger::engine {
namespace {

// A key the model streams in two deltas: what the ledger keeps of the answer is assembled
// before it is redacted, never redacted delta by delta: the text of a streamed answer, the
// failure of a stream cut after the key, and a malformed tool input quoted in an error (where
// the quote's cap fell inside the key, and redacting after the cap left its first half).
TEST_F(EngineTest, AKeySplitAcrossStreamedDeltasIsRedactedInTheLedger) {
    const std::string key = "sk-live-split-0123456789abcdef";
    RegisterSecret(key);
    const std::string first = key.substr(0, 12), second = key.substr(12);
    auto server = testing::MockModelServer::Start({});
    ASSERT_TRUE(server.has_value()) << server.error().ToString();
    testing::MockRule whole;
    whole.node = "whole";
    whole.behavior.stream_deltas = {"the key is " + first, second + " ok"};
    (*server)->AddRule(whole);
    testing::MockRule cut;
    cut.node = "cut";
    cut.behavior.stream_deltas = {"the key is " + first, second + " ok", " and", " more"};
    cut.behavior.stream_cut_after_chunks = 3;
    (*server)->AddRule(cut);
    // An Anthropic tool_use whose input (not JSON: it never closes) arrives in two pieces.
    auto event = [](const std::string& type, const std::string& data) {
        return "event: " + type + "\ndata: " + data + "\n\n";
    };
    auto partial = [&](const std::string& json) {
        return event("content_block_delta",
                     R"({"type":"content_block_delta","index":0,"delta":{"type":)"
                     R"("input_json_delta","partial_json":)" +
                         json + "}}");
    };
    testing::MockRule tool;
    tool.node = "tool";
    tool.behavior.stream_body =
        event("message_start",
              R"({"type":"message_start","message":{"model":"c","usage":{"input_tokens":1}}})") +
        event("content_block_start",
              R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use",)"
              R"("id":"toolu_1","name":"probe","input":{}}})") +
        partial(R"("{\"a\": \")" + std::string(280, 'x') + first + R"(")") +
        partial("\"" + second + "\"") +
        event("content_block_stop", R"({"type":"content_block_stop","index":0})") +
        event("message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},)"
                               R"("usage":{"output_tokens":5}})") +
        event("message_stop", R"({"type":"message_stop"})");
    (*server)->AddRule(tool);

    providers::ProvidersConfig config = providers::DefaultProvidersConfig();
    providers::ProviderSettings settings;
    settings.api_key_env = "";
    settings.retry.max_retries = 0;
    settings.base_url = (*server)->base_url();
    config.providers["openai"] = settings;
    settings.base_url = (*server)->anthropic_base_url();
    config.providers["anthropic"] = settings;
    providers::ProviderRegistry registry(io_.get_executor());
    providers::RegisterBuiltinProviders(registry, config);
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"whole", "openai:gpt-4o-mini"}, {"cut", "openai:gpt-4o-mini"}, {"tool", "anthropic:c"}};
    for (const auto& [node, model] : cases) {
        auto plan = CompileFor(model, "  - {name: " + node + ", agent_name: w, prompt: go}\n");
        ASSERT_NE(plan, nullptr);
        Engine engine(io_.get_executor(), store_, registry);
        DeltaObserver live(true);  // makes the calls stream
        engine.AddObserver(&live);
        auto outcome = Run(engine.StartRun({plan, "in", {}, {}}));
        ASSERT_TRUE(outcome && *outcome);
        EXPECT_EQ((*outcome)->status, node == "whole" ? RunStatus::kCompleted : RunStatus::kFailed)
            << node;
        auto events = Events((*outcome)->run_id);
        ASSERT_GE(events.size(), 2u);
        if (node == "whole") {
            EXPECT_NE(events[4].encoded.find("the key is [REDACTED] ok"), std::string::npos)
                << events[4].encoded;
        } else if (node == "tool") {
            EXPECT_NE(events[4].encoded.find("is not a JSON object"), std::string::npos)
                << events[4].encoded;
        }
        for (const auto& e : events) {
            EXPECT_EQ(e.encoded.find(first), std::string::npos) << node << ": " << e.encoded;
            EXPECT_EQ(e.encoded.find(second), std::string::npos) << node << ": " << e.encoded;
        }
    }
}

}  // namespace
}  // namespace strowger::engine
