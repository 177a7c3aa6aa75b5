// The trigger engine's evaluation cost per event (issue 16): 10,000 enabled triggers of every
// pattern kind (most keyed, with distinct keys, as a fleet's would be), and a stream of bus
// events of every kind published through the EventBus with the engine subscribed. Prints the
// cost per event of the whole path (publish, candidates, limits) and of matching alone, and
// how many fires the stream caused (started through a launcher that does nothing).
//
//   strowger_trigger_bench [--triggers N] [--events N]
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "automation/bus.hpp"
#include "automation/triggers.hpp"
#include "store/memory/memory_store.hpp"

using namespace strowger;
using namespace strowger::automation;

namespace {

class NullLauncher : public Launcher {
  public:
    Awaitable<Result<std::string>> StartWorkflow(std::string, json::value, Origin,
                                                 std::string) override {
        co_return std::string("run");
    }
    Awaitable<Result<std::string>> SendToAgent(AgentMessage, std::string) override {
        co_return std::string("run");
    }
};

template <typename T>
T Await(asio::io_context& io, Awaitable<T> awaitable) {
    std::optional<T> out;
    asio::co_spawn(io, std::move(awaitable),
                   [&](std::exception_ptr, T value) { out = std::move(value); });
    io.restart();
    io.run();
    return std::move(*out);
}

}  // namespace

int main(int argc, char** argv) {
    int triggers = 10'000;
    int events = 50'000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--triggers") == 0) triggers = std::atoi(argv[i + 1]);
        if (std::strcmp(argv[i], "--events") == 0) events = std::atoi(argv[i + 1]);
    }
    asio::io_context io(1);
    auto store = std::make_shared<store::MemoryStore>();
    auto random = Random::Seeded(1);
    TriggerEngine engine(io.get_executor(), store, Clock::Real(), *random);
    NullLauncher launcher;
    engine.SetLauncher(&launcher);
    // The mix: a few unkeyed triggers of each plain kind, the rest keyed with distinct keys.
    const char* plain[] = {"\"all\"",          "\"lifecycle\"",     "\"agent_terminated\"",
                           "\"system\"",       "\"memory_update\"", "\"task_posted\"",
                           "\"task_claimed\"", "\"task_completed\""};
    int made = 0;
    for (const char* p : plain) {
        for (int i = 0; i < 2 && made < triggers; ++i, ++made) {
            TriggerChange change;
            change.workflow_id = "wf";
            change.pattern = *ParsePattern(*ParseJson(p));
            Await(io, engine.Create(change));
        }
    }
    const char* keyed[] = {"agent_spawned", "system_keyword", "memory_key_pattern",
                           "content_match"};
    const char* field[] = {"name_pattern", "keyword", "key_pattern", "substring"};
    for (int i = 0; made < triggers; ++i, ++made) {
        int k = i % 4;
        std::string pattern = std::string("{\"") + keyed[k] + "\":{\"" + field[k] + "\":\"key-" +
                              std::to_string(i) + "-x\"}}";
        TriggerChange change;
        change.agent_id = "agent-" + std::to_string(i % 100);
        change.pattern = *ParsePattern(*ParseJson(pattern));
        Await(io, engine.Create(change));
    }
    EventBus bus(Clock::Real(), 0);
    bus.Subscribe([&](const BusEvent& e) { engine.OnEvent(e); });
    // Events of every kind; a few of them hit a keyed trigger.
    std::vector<BusEvent> stream;
    for (int i = 0; i < 1000; ++i) {
        BusEvent e;
        e.run_id = "01JD3M6K9Q3V8C6Y2W5T0R" + std::to_string(1000 + i);
        e.subject = e.run_id;
        switch (i % 6) {
            case 0:
                e.kind = EventKind::kNode;
                e.type = "node_completed";
                e.description =
                    "Node 'draft' of run " + e.run_id + " completed (1200ms): the answer is 42";
                break;
            case 1:
                e.kind = EventKind::kTool;
                e.type = "tool_succeeded";
                e.description = "Tool 'web_search' succeeded (450ms): 3 results for strowger";
                break;
            case 2:
                e.kind = EventKind::kLifecycle;
                e.type = "agent_spawned";
                e.agent = i % 60 == 2 ? "key-" + std::to_string(i) + "-x" : "coder";
                e.description = "Agent '" + e.agent + "' (id: " + e.run_id + ") was spawned";
                break;
            case 3:
                e.kind = EventKind::kMemory;
                e.type = "memory_update";
                e.key = "notes.today";
                e.description = "Memory Updated on key 'notes.today' for agent coder";
                break;
            case 4:
                e.kind = EventKind::kSystem;
                e.type = "quota_exceeded";
                e.description = "Quota warning: agent 'coder', tokens at 100.0% (120 of 100)";
                break;
            default:
                e.kind = EventKind::kLifecycle;
                e.type = "run_completed";
                e.description = "Run " + e.run_id + " of workflow 'triage' completed: done";
                break;
        }
        stream.push_back(std::move(e));
    }
    // Matching alone (what every event costs before limits).
    std::vector<const store::TriggerRecord*> matched;
    size_t total_matched = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < events; ++i) {
        matched.clear();
        engine.Match(stream[static_cast<size_t>(i) % stream.size()], matched);
        total_matched += matched.size();
    }
    auto t1 = std::chrono::steady_clock::now();
    auto match_end = t1;
    // For comparison, LibreFang's way: every trigger's pattern tried on every event.
    std::vector<Pattern> patterns;
    for (const auto& t : engine.List("")) patterns.push_back(*engine.PatternOf(t.trigger_id));
    size_t scanned_matches = 0;
    const int scan_events = std::min(events, 5000);
    auto s0 = std::chrono::steady_clock::now();
    for (int i = 0; i < scan_events; ++i) {
        const BusEvent& e = stream[static_cast<size_t>(i) % stream.size()];
        for (const auto& p : patterns) scanned_matches += Matches(p, e) ? 1 : 0;
    }
    auto s1 = std::chrono::steady_clock::now();
    // The whole path: the bus hands each event to the engine, which applies the limits and
    // fires (the fires' records and starts run afterwards, on the io_context).
    std::vector<BusEvent> prepared;
    prepared.reserve(static_cast<size_t>(events));
    for (int i = 0; i < events; ++i) {
        prepared.push_back(stream[static_cast<size_t>(i) % stream.size()]);
        prepared.back().id = "e" + std::to_string(i);
    }
    t1 = std::chrono::steady_clock::now();
    for (auto& e : prepared) bus.Publish(std::move(e));
    auto t2 = std::chrono::steady_clock::now();
    io.restart();
    io.run();
    auto per = [&](auto a, auto b) {
        return std::chrono::duration<double, std::micro>(b - a).count() / events;
    };
    double seconds = std::chrono::duration<double>(t2 - t1).count();
    std::printf("triggers %d, events %d\n", triggers, events);
    std::printf("match only:    %.3f us/event (%.1f matches/event before limits)\n",
                per(t0, match_end), static_cast<double>(total_matched) / events);
    std::printf("scan (LibreFang's way): %.3f us/event (%.1f matches/event)\n",
                std::chrono::duration<double, std::micro>(s1 - s0).count() / scan_events,
                static_cast<double>(scanned_matches) / scan_events);
    std::printf("publish+fire:  %.3f us/event (%.0f events/s on one core)\n", per(t1, t2),
                events / seconds);
    std::printf("fires started: %lld, failed %lld\n",
                static_cast<long long>(engine.fires_started()),
                static_cast<long long>(engine.fires_failed()));
    return 0;
}
