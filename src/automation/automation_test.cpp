// The automation module on its own: every trigger pattern against events that should and
// should not match, the bus's descriptions of ledger events, the trigger engine's limits
// (max_fires, cooldown on a fake clock, the per-event cap, recursion depth), durable fires
// completed after a crash, the indexed matching against the plain one, the memory tools, and
// webhook signatures, replay window and duplicate deliveries.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "automation/bus.hpp"
#include "automation/memory.hpp"
#include "automation/triggers.hpp"
#include "automation/webhooks.hpp"
#include "core/json.hpp"
#include "store/memory/memory_store.hpp"
#include "testing/test_util.hpp"

namespace strowger::automation {
namespace {

class FakeClock : public Clock {
  public:
    SystemTime Now() const override {
        return SystemTime(std::chrono::seconds(1'800'000'000)) + offset;
    }
    SteadyTime SteadyNow() const override { return SteadyTime(std::chrono::hours(1)) + offset; }
    std::chrono::milliseconds offset{0};
};

class FakeLauncher : public Launcher {
  public:
    struct Call {
        std::string target;  // "workflow:<w>" or "agent:<a>"
        std::string text;
        Origin origin;
        std::string key;
    };
    Awaitable<Result<std::string>> StartWorkflow(std::string workflow, json::value input,
                                                 Origin origin, std::string key) override {
        co_return Start("workflow:" + workflow,
                        input.is_string() ? std::string(input.as_string()) : CompactJson(input),
                        origin, key);
    }
    Awaitable<Result<std::string>> SendToAgent(AgentMessage message, std::string key) override {
        if (message.agent == "missing") co_return NotFoundError("no agent missing");
        co_return Start("agent:" + message.agent, message.text, message.origin, key);
    }
    Result<std::string> Start(std::string target, std::string text, Origin origin,
                              std::string key) {
        if (!key.empty()) {
            if (auto it = by_key.find(key); it != by_key.end()) return it->second;
        }
        std::string run = "run_" + std::to_string(calls.size() + 1);
        calls.push_back({std::move(target), std::move(text), origin, key});
        if (!key.empty()) by_key[key] = run;
        return run;
    }
    std::vector<Call> calls;
    std::map<std::string, std::string> by_key;
};

BusEvent Event(EventKind kind, std::string type, std::string description) {
    BusEvent e;
    e.kind = kind;
    e.type = std::move(type);
    e.description = std::move(description);
    static int n = 0;
    e.id = "ev" + std::to_string(++n);
    e.subject = e.id;
    return e;
}

BusEvent Spawned(std::string agent) {
    BusEvent e = Event(EventKind::kLifecycle, "agent_spawned",
                       "Agent '" + agent + "' (id: run1) was spawned");
    e.agent = std::move(agent);
    return e;
}

BusEvent MemoryUpdateOf(std::string key) {
    BusEvent e = MemoryEvent(MemoryUpdate{"global", key, "created", "1", ""});
    static int n = 0;
    e.id = "mem" + std::to_string(++n);
    return e;
}

Pattern P(std::string_view json_text) {
    auto value = ParseJson(json_text);
    EXPECT_TRUE(value.has_value());
    auto pattern = ParsePattern(*value);
    EXPECT_TRUE(pattern.has_value()) << json_text << ": " << pattern.error().message();
    return pattern ? *pattern : Pattern{};
}

TEST(PatternTest, EveryPatternMatchesWhatItShouldAndNothingElse) {
    BusEvent spawned = Spawned("coder-1");
    BusEvent terminated =
        Event(EventKind::kLifecycle, "agent_terminated", "Agent r terminated: completed");
    BusEvent crashed =
        Event(EventKind::kLifecycle, "agent_crashed", "Agent r crashed: out of memory");
    BusEvent run_done =
        Event(EventKind::kLifecycle, "run_completed", "Run r of workflow 'w' completed");
    BusEvent quota =
        Event(EventKind::kSystem, "quota_exceeded", "Quota warning: agent 'a', tokens at 100.0%");
    BusEvent started = Event(EventKind::kSystem, "daemon_started", "Daemon started");
    BusEvent memory = MemoryUpdateOf("config.model");
    BusEvent tool =
        Event(EventKind::kTool, "tool_failed", "Tool 'shell' failed (12ms): ERROR: boom");
    BusEvent posted = Event(EventKind::kTask, "task_posted", "Task t posted in run r: review");
    BusEvent claimed = Event(EventKind::kTask, "task_claimed", "Task t claimed by ann: approve");
    BusEvent completed = Event(EventKind::kTask, "task_completed", "Task t completed: approved");
    const std::vector<const BusEvent*> all = {&spawned, &terminated, &crashed,  &run_done,
                                              &quota,   &started,    &memory,   &tool,
                                              &posted,  &claimed,    &completed};
    struct Case {
        std::string pattern;
        std::vector<const BusEvent*> matches;
    };
    const std::vector<Case> cases = {
        {R"("all")", all},
        {R"("lifecycle")", {&spawned, &terminated, &crashed, &run_done}},
        {R"({"agent_spawned":{"name_pattern":"coder"}})", {&spawned}},
        {R"({"agent_spawned":{"name_pattern":"*"}})", {&spawned}},
        {R"({"agent_spawned":{"name_pattern":"writer"}})", {}},
        {R"("agent_terminated")", {&terminated, &crashed}},
        {R"("system")", {&quota, &started}},
        {R"({"system_keyword":{"keyword":"QUOTA"}})", {&quota}},
        {R"("memory_update")", {&memory}},
        {R"({"memory_key_pattern":{"key_pattern":"config"}})", {&memory}},
        {R"({"memory_key_pattern":{"key_pattern":"*"}})", {&memory}},
        {R"({"memory_key_pattern":{"key_pattern":"secret"}})", {}},
        {R"({"content_match":{"substring":"error"}})", {&tool}},
        {R"({"content_match":{"substring":"Out Of Memory"}})", {&crashed}},
        {R"("task_posted")", {&posted}},
        {R"("task_claimed")", {&claimed}},
        {R"("task_completed")", {&completed}},
    };
    for (const auto& c : cases) {
        Pattern pattern = P(c.pattern);
        for (const BusEvent* event : all) {
            bool expected = std::find(c.matches.begin(), c.matches.end(), event) != c.matches.end();
            EXPECT_EQ(Matches(pattern, *event), expected)
                << c.pattern << " on " << event->type << ": " << event->description;
        }
        // The JSON form round-trips.
        auto again = ParsePattern(PatternJson(pattern));
        ASSERT_TRUE(again.has_value());
        EXPECT_EQ(again->kind, pattern.kind);
        EXPECT_EQ(again->arg, pattern.arg);
    }
}

TEST(PatternTest, BadPatternsSayWhatIsWrong) {
    auto error = [](std::string_view text) {
        auto value = ParseJson(text);
        EXPECT_TRUE(value.has_value());
        auto parsed = ParsePattern(*value);
        EXPECT_FALSE(parsed.has_value()) << text;
        return parsed ? std::string() : parsed.error().message();
    };
    EXPECT_NE(error(R"("everything")").find("unknown pattern \"everything\""), std::string::npos);
    EXPECT_NE(error(R"("agent_spawned")").find("object form"), std::string::npos);
    EXPECT_NE(error(R"({"agent_spawned":{}})").find("pattern.agent_spawned.name_pattern"),
              std::string::npos);
    EXPECT_NE(error(R"({"content_match":{"substring":""}})").find("non-empty"), std::string::npos);
    EXPECT_NE(error(R"(42)").find("expected a pattern name"), std::string::npos);
    EXPECT_NE(error(R"({"lifecycle":{"x":1}})").find("takes no arguments"), std::string::npos);
}

TEST(PatternTest, PromptTemplateReplacesEveryEventPlaceholder) {
    EXPECT_EQ(RenderPrompt("ALERT: {{event}}. Again: {{event}}", "Daemon started"),
              "ALERT: Daemon started. Again: Daemon started");
    EXPECT_EQ(RenderPrompt("no placeholder", "x"), "no placeholder");
}

ledger::Event LedgerEvent(std::string run, int64_t seq, ledger::EventType type, std::string data,
                          std::string node = "") {
    ledger::Event e;
    e.run_id = std::move(run);
    e.seq = seq;
    e.type = type;
    e.data = std::move(data);
    e.node = std::move(node);
    return e;
}

TEST(BusTest, LedgerEventsAreDescribedInTheReferenceStyle) {
    FakeClock clock;
    EventBus bus(clock);
    std::vector<BusEvent> seen;
    bus.Subscribe([&](const BusEvent& e) { seen.push_back(e); });
    BusFeeder feeder(bus);
    using ledger::EventType;
    bus.ExpectStart("trigger:t1:e1", 2);
    feeder.OnEvent(LedgerEvent("R1", 1, EventType::kRunCreated,
                               R"({"workflow":"agent:coder","idempotency_key":"trigger:t1:e1"})"));
    feeder.OnEvent(LedgerEvent("R1", 2, EventType::kToolCall,
                               R"({"call_id":"c1","tool":"web_search","arguments":"{}"})", "a"));
    feeder.OnEvent(LedgerEvent(
        "R1", 3, EventType::kToolResult,
        R"({"call_id":"c1","content":"3 results","is_error":false,"duration_ms":450})", "a"));
    feeder.OnEvent(LedgerEvent("R1", 4, EventType::kBudgetExceeded,
                               R"({"scope":"run","limit":"tokens","used":"120","max":"100"})",
                               "a"));
    feeder.OnEvent(LedgerEvent("R1", 5, EventType::kRunFailed,
                               R"({"error":"out of memory","code":"internal"})"));
    feeder.OnEvent(LedgerEvent("R2", 1, EventType::kRunCreated, R"({"workflow":"triage"})"));
    feeder.OnEvent(LedgerEvent("R2", 2, EventType::kHumanTaskCreated,
                               R"({"task_id":"T1","kind":"tool_approval","title":"approve shell"})",
                               "n"));
    feeder.OnEvent(LedgerEvent("R2", 3, EventType::kHumanTaskDecided,
                               R"({"task_id":"T1","decision":"approve","actor":"ann"})", "n"));
    feeder.OnEvent(LedgerEvent("R2", 4, EventType::kLlmRetried,
                               R"({"try":1,"error":"connection refused","code":"unavailable"})",
                               "n"));
    feeder.OnEvent(LedgerEvent("R2", 5, EventType::kRunCompleted, R"({"output":"done"})"));
    std::vector<std::string> lines;
    for (const auto& e : seen) {
        lines.push_back(std::string(EventKindName(e.kind)) + "/" + e.type + "/" +
                        std::to_string(e.depth) + ": " + e.description);
    }
    std::vector<std::string> expected = {
        "lifecycle/agent_spawned/2: Agent 'coder' (id: R1) was spawned",
        "tool/tool_succeeded/2: Tool 'web_search' succeeded (450ms): 3 results",
        "system/quota_exceeded/2: Quota warning: agent 'coder', tokens at 100.0% (120 of 100, "
        "scope run)",
        "lifecycle/agent_crashed/2: Agent R1 crashed: out of memory",
        "lifecycle/run_created/0: Run R2 of workflow 'triage' was created",
        "task/task_posted/0: Task T1 posted in run R2: approve shell",
        "task/task_claimed/0: Task T1 claimed by ann: approve",
        "task/task_completed/0: Task T1 completed: approve",
        "system/provider_unreachable/0: Provider unreachable: run R2, node 'n' (try 1): connection "
        "refused",
        "lifecycle/run_completed/0: Run R2 of workflow 'triage' completed: done",
    };
    EXPECT_EQ(lines, expected);
    EXPECT_EQ(seen[0].id, "R1:1");
    EXPECT_EQ(seen[0].agent, "coder");
    EXPECT_EQ(bus.Recent(2).back().description, "Run R2 of workflow 'triage' completed: done");
    EXPECT_EQ(bus.Recent(2).size(), 2u);
}

class TriggerEngineTest : public ::testing::Test {
  protected:
    TriggerEngineTest()
        : store_(std::make_shared<store::MemoryStore>()),
          random_(Random::Seeded(7)),
          engine_(io_.get_executor(), store_, clock_, *random_) {
        engine_.SetLauncher(&launcher_);
    }

    store::TriggerRecord Create(std::string_view pattern, int64_t max_fires = 0,
                                int64_t cooldown = 0, std::string agent = "ops") {
        TriggerChange change;
        change.agent_id = agent;
        change.pattern = P(pattern);
        change.max_fires = max_fires;
        change.cooldown_secs = cooldown;
        change.prompt_template = "Saw: {{event}}";
        auto created = Run(engine_.Create(change));
        EXPECT_TRUE(created.has_value()) << created.error().message();
        return created ? *created : store::TriggerRecord{};
    }
    template <typename T>
    T Run(Awaitable<T> awaitable) {
        auto result = strowger::testing::RunOn(io_, std::move(awaitable));
        EXPECT_TRUE(result.has_value());
        return std::move(*result);
    }
    // Delivers `event` and lets every fire it caused complete.
    void Deliver(const BusEvent& event) {
        engine_.OnEvent(event);
        io_.restart();
        io_.run();
    }

    asio::io_context io_;
    FakeClock clock_;
    std::shared_ptr<store::MemoryStore> store_;
    std::unique_ptr<Random> random_;
    FakeLauncher launcher_;
    TriggerEngine engine_;
};

TEST_F(TriggerEngineTest, AFireStartsTheTargetWithTheRenderedPromptAndIsCountedOnce) {
    auto trigger = Create(R"({"agent_spawned":{"name_pattern":"coder"}})");
    BusEvent event = Spawned("coder");
    event.depth = 1;
    Deliver(event);
    ASSERT_EQ(launcher_.calls.size(), 1u);
    EXPECT_EQ(launcher_.calls[0].target, "agent:ops");
    EXPECT_EQ(launcher_.calls[0].text, "Saw: Agent 'coder' (id: run1) was spawned");
    EXPECT_EQ(launcher_.calls[0].key, "trigger:" + trigger.trigger_id + ":" + event.id);
    EXPECT_EQ(launcher_.calls[0].origin.kind, "trigger");
    EXPECT_EQ(launcher_.calls[0].origin.depth, 2);
    EXPECT_EQ(engine_.Find(trigger.trigger_id)->fire_count, 1);
    EXPECT_EQ((*Run(store_->ListTriggers()))[0].fire_count, 1);
    // The same event again (a redelivery) fires nothing: (trigger, event) is recorded.
    Deliver(event);
    EXPECT_EQ(launcher_.calls.size(), 1u);
    Deliver(Spawned("writer"));
    EXPECT_EQ(launcher_.calls.size(), 1u);
    auto fires = Run(store_->ListTriggerFires(trigger.trigger_id, 0));
    ASSERT_TRUE(fires.has_value());
    ASSERT_EQ(fires->size(), 1u);
    EXPECT_EQ((*fires)[0].status, "started");
    EXPECT_EQ((*fires)[0].run_id, "run_1");
}

TEST_F(TriggerEngineTest, AWorkflowTargetGetsThePromptAsInput) {
    TriggerChange change;
    change.workflow_id = "triage";
    change.pattern = P(R"("system")");
    change.cooldown_secs = 0;
    ASSERT_TRUE(Run(engine_.Create(change)).has_value());
    Deliver(Event(EventKind::kSystem, "daemon_started", "Daemon started"));
    ASSERT_EQ(launcher_.calls.size(), 1u);
    EXPECT_EQ(launcher_.calls[0].target, "workflow:triage");
    EXPECT_EQ(launcher_.calls[0].text, "Event: Daemon started");
}

TEST_F(TriggerEngineTest, MaxFiresDisablesTheTriggerAndFailedStartsDoNotCount) {
    auto trigger = Create(R"("all")", 2);
    Deliver(Event(EventKind::kSystem, "x", "one"));
    Deliver(Event(EventKind::kSystem, "x", "two"));
    Deliver(Event(EventKind::kSystem, "x", "three"));
    EXPECT_EQ(launcher_.calls.size(), 2u);
    EXPECT_EQ(engine_.Find(trigger.trigger_id)->fire_count, 2);
    EXPECT_FALSE(engine_.Find(trigger.trigger_id)->enabled);
    EXPECT_FALSE((*Run(store_->ListTriggers()))[0].enabled);
    // A start that fails is recorded as failed and not counted.
    auto broken = Create(R"("all")", 0, 0, "missing");
    Deliver(Event(EventKind::kSystem, "x", "four"));
    EXPECT_EQ(engine_.Find(broken.trigger_id)->fire_count, 0);
    EXPECT_EQ(engine_.fires_failed(), 1);
    auto fires = Run(store_->ListTriggerFires(broken.trigger_id, 0));
    ASSERT_EQ(fires->size(), 1u);
    EXPECT_EQ((*fires)[0].status, "failed");
    EXPECT_NE((*fires)[0].error.find("no agent missing"), std::string::npos);
}

TEST_F(TriggerEngineTest, CooldownIsPerTriggerAndSubjectOnTheClock) {
    Create(R"("system")", 0, 5);
    auto quota = [](std::string subject) {
        BusEvent e = Event(EventKind::kSystem, "quota_exceeded", "Quota warning");
        e.subject = std::move(subject);
        return e;
    };
    Deliver(quota("agent-a"));
    Deliver(quota("agent-a"));  // within 5 s: cooled down
    Deliver(quota("agent-b"));  // another subject
    EXPECT_EQ(launcher_.calls.size(), 2u);
    clock_.offset += std::chrono::milliseconds(4999);
    Deliver(quota("agent-a"));
    EXPECT_EQ(launcher_.calls.size(), 2u);
    clock_.offset += std::chrono::milliseconds(1);
    Deliver(quota("agent-a"));
    EXPECT_EQ(launcher_.calls.size(), 3u);
}

TEST_F(TriggerEngineTest, AtMostTenTriggersFirePerEvent) {
    for (int i = 0; i < 12; ++i) Create(R"({"content_match":{"substring":"disk"}})");
    Deliver(Event(EventKind::kNode, "node_failed", "Node 'n' failed: DISK full"));
    EXPECT_EQ(launcher_.calls.size(), 10u);
    EXPECT_EQ(engine_.fires_started(), 10);
}

TEST_F(TriggerEngineTest, EventsAtTheRecursionLimitFireNothing) {
    Create(R"("all")");
    BusEvent deep = Event(EventKind::kSystem, "x", "deep");
    deep.depth = 5;
    Deliver(deep);
    EXPECT_TRUE(launcher_.calls.empty());
    deep = Event(EventKind::kSystem, "x", "almost");
    deep.depth = 4;
    Deliver(deep);
    ASSERT_EQ(launcher_.calls.size(), 1u);
    EXPECT_EQ(launcher_.calls[0].origin.depth, 5);
}

TEST_F(TriggerEngineTest, DisabledTriggersDoNotFireAndUpdatesReindex) {
    auto trigger = Create(R"("memory_update")");
    TriggerChange off;
    off.enabled = false;
    ASSERT_TRUE(Run(engine_.Update(trigger.trigger_id, off)).has_value());
    Deliver(MemoryUpdateOf("k"));
    EXPECT_TRUE(launcher_.calls.empty());
    TriggerChange on;
    on.enabled = true;
    on.pattern = P(R"({"memory_key_pattern":{"key_pattern":"conf"}})");
    ASSERT_TRUE(Run(engine_.Update(trigger.trigger_id, on)).has_value());
    Deliver(MemoryUpdateOf("other"));
    EXPECT_TRUE(launcher_.calls.empty());
    Deliver(MemoryUpdateOf("config"));
    EXPECT_EQ(launcher_.calls.size(), 1u);
    ASSERT_TRUE(Run(engine_.Delete(trigger.trigger_id)).has_value());
    Deliver(MemoryUpdateOf("config2"));
    EXPECT_EQ(launcher_.calls.size(), 1u);
    EXPECT_EQ(Run(engine_.Delete(trigger.trigger_id)).error().code(), ErrorCode::kNotFound);
}

TEST_F(TriggerEngineTest, APendingFireACrashLeftStartsExactlyOnceOnRecovery) {
    auto trigger = Create(R"("all")");
    // The crash: the fire is recorded, then the process dies before its start.
    engine_.SetAfterRecordHook([this](const store::TriggerFire&) { engine_.SetLauncher(nullptr); });
    Deliver(Event(EventKind::kSystem, "x", "before the crash"));
    // (Without a launcher the start failed; put the record back to pending as the crash left it.)
    auto fires = *Run(store_->ListTriggerFires(trigger.trigger_id, 0));
    ASSERT_EQ(fires.size(), 1u);
    ASSERT_TRUE(launcher_.calls.empty());
    // A fresh store and engine over what the crash left: the record, pending.
    auto store = std::make_shared<store::MemoryStore>();
    ASSERT_TRUE(Run(store->PutTrigger(*engine_.Find(trigger.trigger_id))).has_value());
    store::TriggerFire pending = fires[0];
    ASSERT_TRUE(Run(store->RecordTriggerFire(pending)).has_value());
    TriggerEngine restarted(io_.get_executor(), store, clock_, *random_);
    restarted.SetLauncher(&launcher_);
    ASSERT_TRUE(Run(restarted.Load()).has_value());
    auto recovered = Run(restarted.Recover());
    ASSERT_TRUE(recovered.has_value());
    EXPECT_EQ(*recovered, 1);
    ASSERT_EQ(launcher_.calls.size(), 1u);
    EXPECT_EQ(launcher_.calls[0].key, pending.idempotency_key);
    EXPECT_EQ(restarted.Find(trigger.trigger_id)->fire_count, 1);
    // Recovering again (another restart) starts nothing more.
    EXPECT_EQ(*Run(restarted.Recover()), 0);
    EXPECT_EQ(launcher_.calls.size(), 1u);
    // A crash after the start but before the completion: the start is repeated with the same
    // key and names the same run.
    ASSERT_TRUE(Run(store->RecordTriggerFire([&] {
                    store::TriggerFire again = pending;
                    again.fire_id = "fire_2";
                    again.event_id = "other-event";
                    again.idempotency_key = pending.idempotency_key;
                    return again;
                }()))
                    .has_value());
    EXPECT_EQ(*Run(restarted.Recover()), 1);
    EXPECT_EQ(launcher_.calls.size(), 1u);
    auto stored = *Run(store->ListTriggerFires(trigger.trigger_id, 0));
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[0].run_id, stored[1].run_id);
}

TEST_F(TriggerEngineTest, IndexedMatchingAgreesWithThePlainMatcher) {
    const std::vector<std::string> patterns = {
        R"("all")", R"("lifecycle")", R"({"agent_spawned":{"name_pattern":"cod"}})",
        R"({"agent_spawned":{"name_pattern":"*"}})", R"("agent_terminated")", R"("system")",
        R"({"system_keyword":{"keyword":"Quota"}})", R"("memory_update")",
        R"({"memory_key_pattern":{"key_pattern":"conf"}})",
        R"({"content_match":{"substring":"FAIL"}})", R"("task_posted")", R"("task_claimed")",
        R"("task_completed")",
        // Overlapping keys: one a suffix, a prefix or inside another.
        R"({"content_match":{"substring":"ail"}})", R"({"content_match":{"substring":"a"}})",
        R"({"content_match":{"substring":"x crashed"}})",
        R"({"content_match":{"substring":"zzz"}})",
        R"({"memory_key_pattern":{"key_pattern":"config"}})",
        R"({"memory_key_pattern":{"key_pattern":"fig"}})",
        R"({"agent_spawned":{"name_pattern":"coder"}})",
        R"({"agent_spawned":{"name_pattern":"r"}})"};
    for (const auto& p : patterns) Create(p);
    std::vector<BusEvent> events = {
        Spawned("coder"),
        Spawned("writer"),
        Event(EventKind::kLifecycle, "agent_crashed", "Agent x crashed: fail"),
        Event(EventKind::kSystem, "quota_exceeded", "quota warning"),
        MemoryUpdateOf("config"),
        MemoryUpdateOf("x"),
        Event(EventKind::kTask, "task_claimed", "Task claimed"),
        Event(EventKind::kTool, "tool_failed", "Tool 'x' failed")};
    for (const auto& event : events) {
        std::vector<const store::TriggerRecord*> indexed;
        engine_.Match(event, indexed);
        std::vector<std::string> got, want;
        for (const auto* t : indexed) got.push_back(t->trigger_id);
        for (const auto& t : engine_.List("")) {
            if (Matches(*engine_.PatternOf(t.trigger_id), event)) want.push_back(t.trigger_id);
        }
        EXPECT_EQ(got, want) << event.description;
        EXPECT_FALSE(got.empty());
    }
}

TEST(MemoryToolsTest, ToolsSetGetListAndDeleteAndEveryChangeIsAnEvent) {
    asio::io_context io;
    auto store = std::make_shared<store::MemoryStore>();
    auto memory = std::make_shared<MemoryService>();
    memory->Attach(store);
    std::vector<MemoryUpdate> updates;
    memory->SetListener([&](const MemoryUpdate& u) { updates.push_back(u); });
    tools::ToolRegistry registry;
    RegisterMemoryTools(registry, memory);
    for (const char* name : {"memory_get", "memory_set", "memory_list", "memory_delete"}) {
        ASSERT_NE(registry.Find(name), nullptr) << name;
    }
    EXPECT_EQ(registry.Find("memory_set")->safety(), tools::SafetyClass::kIdempotentWrite);
    EXPECT_EQ(registry.Find("memory_delete")->safety(), tools::SafetyClass::kIdempotentWrite);
    EXPECT_EQ(registry.Find("memory_get")->safety(), tools::SafetyClass::kReadOnly);
    tools::ToolContext context;
    context.run_id = "RUN1";
    auto call = [&](const char* tool, std::string args) {
        auto result = strowger::testing::RunOn(io, registry.Find(tool)->Call(args, context));
        EXPECT_TRUE(result.has_value());
        return *result;
    };
    EXPECT_EQ(call("memory_set", R"({"key":"config","value":{"model":"x"}})")->content,
              "ok: created global config");
    EXPECT_EQ(call("memory_set", R"({"key":"config","value":{"model":"x"}})")->content,
              "ok: unchanged global config");
    EXPECT_EQ(call("memory_get", R"({"key":"config"})")->content, R"({"model":"x"})");
    EXPECT_EQ(call("memory_set", R"({"namespace":"run","key":"n","value":1})")->content,
              "ok: created run:RUN1 n");
    EXPECT_EQ(call("memory_list", R"({"namespace":"run:RUN1"})")->content,
              R"({"namespace":"run:RUN1","entries":[{"key":"n","value":1}]})");
    EXPECT_EQ(call("memory_delete", R"({"key":"config"})")->content, "ok: deleted global config");
    EXPECT_EQ(call("memory_delete", R"({"key":"config"})")->content,
              "ok: no key \"config\" in global");
    EXPECT_EQ(call("memory_get", R"({"key":"config"})")->content,
              "not found: no key \"config\" in global");
    auto bad = call("memory_set", R"({"namespace":"team","key":"k","value":1})");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message().find("namespace"), std::string::npos);
    auto missing = call("memory_set", R"({"key":"k"})");
    ASSERT_FALSE(missing.has_value());
    EXPECT_NE(missing.error().message().find("\"value\" is required"), std::string::npos);
    ASSERT_EQ(updates.size(), 3u);  // created, created (run), deleted; not the unchanged set
    EXPECT_EQ(updates[0].kind, "created");
    EXPECT_EQ(updates[0].run_id, "RUN1");
    EXPECT_EQ(updates[2].kind, "deleted");
    EXPECT_EQ(MemoryEvent(updates[0]).description,
              "Memory Created on key 'config' in namespace global");
    EXPECT_EQ(MemoryEvent(MemoryUpdate{"agent:coder", "k", "updated", "", ""}).description,
              "Memory Updated on key 'k' for agent coder");
}

class WebhookTest : public ::testing::Test {
  protected:
    WebhookTest()
        : store_(std::make_shared<store::MemoryStore>()),
          bus_(clock_),
          random_(Random::Seeded(3)),
          hooks_(store_, bus_, clock_, *random_) {
        hooks_.SetLauncher(&launcher_);
        bus_.Subscribe([this](const BusEvent& e) { events_.push_back(e); });
    }
    template <typename T>
    T Run(Awaitable<T> awaitable) {
        auto result = strowger::testing::RunOn(io_, std::move(awaitable));
        EXPECT_TRUE(result.has_value());
        return std::move(*result);
    }
    Delivery Signed(std::string hook, std::string body, std::string secret, std::string id) {
        Delivery d;
        d.hook = std::move(hook);
        d.body = std::move(body);
        d.signature = SignWebhook(secret, d.body);
        d.timestamp = std::to_string(
            std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch())
                .count());
        d.delivery_id = std::move(id);
        d.remote = "127.0.0.1:1";
        return d;
    }

    asio::io_context io_;
    FakeClock clock_;
    std::shared_ptr<store::MemoryStore> store_;
    EventBus bus_;
    std::unique_ptr<Random> random_;
    FakeLauncher launcher_;
    WebhookService hooks_;
    std::vector<BusEvent> events_;
};

TEST_F(WebhookTest, SignaturesAreGitHubsHmacSha256) {
    // The example from GitHub's documentation on validating deliveries.
    EXPECT_EQ(SignWebhook("It's a Secret to Everybody", "Hello, World!"),
              "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    EXPECT_TRUE(VerifyWebhookSignature(
        "It's a Secret to Everybody", "Hello, World!",
        "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"));
    EXPECT_FALSE(VerifyWebhookSignature(
        "It's a Secret to Everybody", "Hello, World?",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"));
    EXPECT_FALSE(VerifyWebhookSignature("s", "b", "sha256="));
}

TEST_F(WebhookTest, AGoodDeliveryStartsTheWorkflowOnceAndBadOnesAreRejectedAndRecorded) {
    auto hook = Run(hooks_.Create(store::WebhookRecord{"gh", "", "triage", true, "admin", {}}));
    ASSERT_TRUE(hook.has_value());
    EXPECT_EQ(hook->secret.size(), 64u);
    const std::string secret = hook->secret;
    auto good = Run(hooks_.Receive(Signed("gh", R"({"issue":7})", secret, "d1")));
    ASSERT_TRUE(good.has_value()) << good.error().message();
    EXPECT_EQ(good->status, "started");
    ASSERT_EQ(launcher_.calls.size(), 1u);
    EXPECT_EQ(launcher_.calls[0].target, "workflow:triage");
    EXPECT_EQ(launcher_.calls[0].text, R"({"issue":7})");
    EXPECT_EQ(launcher_.calls[0].key, "hook:gh:d1");
    EXPECT_EQ(launcher_.calls[0].origin.kind, "webhook");
    // The same delivery again: a duplicate, nothing starts.
    auto again = Run(hooks_.Receive(Signed("gh", R"({"issue":7})", secret, "d1")));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->status, "duplicate");
    EXPECT_EQ(again->run_id, good->run_id);
    EXPECT_EQ(launcher_.calls.size(), 1u);
    // A crash between a delivery's record and its start: the redelivery starts it, once.
    ASSERT_TRUE(Run(store_->RecordWebhookDelivery("gh", "d9", clock_.Now())).has_value());
    auto redelivered = Run(hooks_.Receive(Signed("gh", R"({"issue":9})", secret, "d9")));
    ASSERT_TRUE(redelivered.has_value());
    EXPECT_EQ(redelivered->status, "duplicate");
    ASSERT_EQ(launcher_.calls.size(), 2u);
    EXPECT_EQ(launcher_.calls[1].key, "hook:gh:d9");
    EXPECT_EQ(redelivered->run_id, "run_2");
    EXPECT_EQ(Run(hooks_.Receive(Signed("gh", R"({"issue":9})", secret, "d9")))->run_id, "run_2");
    EXPECT_EQ(launcher_.calls.size(), 2u);
    // A bad signature.
    Delivery forged = Signed("gh", R"({"issue":8})", "not-the-secret-at-all", "d2");
    auto bad = Run(hooks_.Receive(forged));
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code(), ErrorCode::kUnauthenticated);
    // A replay outside the window, correctly signed.
    Delivery old = Signed("gh", R"({"issue":9})", secret, "d3");
    clock_.offset += std::chrono::seconds(301);
    auto replay = Run(hooks_.Receive(old));
    ASSERT_FALSE(replay.has_value());
    EXPECT_NE(replay.error().message().find("replay window"), std::string::npos);
    // No timestamp at all.
    Delivery bare = Signed("gh", "{}", secret, "d4");
    bare.timestamp.clear();
    EXPECT_EQ(Run(hooks_.Receive(bare)).error().code(), ErrorCode::kUnauthenticated);
    EXPECT_EQ(launcher_.calls.size(), 2u);
    EXPECT_EQ(hooks_.rejected(), 3);
    ASSERT_EQ(events_.size(), 3u);
    EXPECT_EQ(events_[0].type, "webhook_rejected");
    EXPECT_EQ(events_[0].description,
              "Webhook 'gh' rejected a delivery from 127.0.0.1:1: bad signature");
    EXPECT_EQ(Run(hooks_.Receive(Signed("nope", "{}", secret, ""))).error().code(),
              ErrorCode::kNotFound);
}

TEST_F(WebhookTest, AnEventHookPostsOnTheBus) {
    auto hook = Run(hooks_.Create(
        store::WebhookRecord{"ping", "0123456789abcdef0123", "", false, "admin", {}}));
    ASSERT_TRUE(hook.has_value());
    Delivery d = Signed("ping", "zen", hook->secret, "");
    d.timestamp.clear();  // not required for this hook
    auto received = Run(hooks_.Receive(d));
    ASSERT_TRUE(received.has_value()) << received.error().message();
    EXPECT_EQ(received->status, "accepted");
    ASSERT_EQ(events_.size(), 1u);
    EXPECT_EQ(events_[0].type, "webhook");
    EXPECT_EQ(events_[0].description, "Webhook 'ping' received: zen");
    EXPECT_TRUE(launcher_.calls.empty());
    EXPECT_EQ(
        Run(hooks_.Create(store::WebhookRecord{"bad name", "", "", true, "", {}})).error().code(),
        ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace strowger::automation
