// The hash chain and its verification: every kind of tampering is caught at the right place.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/json.hpp"
#include "core/sha256.hpp"
#include "ledger/chain.hpp"
#include "ledger/event.hpp"
#include "ledger/run_state.hpp"

namespace strowger::ledger {
namespace {

constexpr char kRun[] = "01JD3M6K9Q3V8C6Y2W5T0R1N7H";

std::vector<std::string> MakeChain(int n) {
    ChainHead head;
    std::vector<std::string> lines;
    lines.push_back(Seal(head, kRun, FromUnixMicros(1),
                         {{}, 0, RunCreated{"wf", std::string(64, 'a'), "in", {}, {}}})
                        .encoded);
    for (int i = 1; i < n; ++i) {
        lines.push_back(
            Seal(head, kRun, FromUnixMicros(1 + i), {"step", i, NodeStarted{}}).encoded);
    }
    return lines;
}

TEST(ChainTest, SealedEventsVerify) {
    auto lines = MakeChain(5);
    auto report = VerifyChain(kRun, lines, ChainHead{5, DecodeEvent(lines.back())->hash});
    EXPECT_TRUE(report.ok());
    EXPECT_EQ(report.events, 5);
}

TEST(ChainTest, HashIsSha256OfPrevHashAndEventWithoutHash) {
    ChainHead head;
    Event e = Seal(head, kRun, FromUnixMicros(1700000000000000), {{}, 0, RunCompleted{"done"}});
    EXPECT_EQ(DecodeEvent(e.encoded)->prev_hash, std::string(64, '0'));
    std::string without_hash =
        R"({"data":{"output":"done"},"prev_hash":")" + std::string(64, '0') +
        R"(","run_id":"01JD3M6K9Q3V8C6Y2W5T0R1N7H","seq":1,"time":"2023-11-14T22:13:20.000000Z","type":"run.completed","v":1})";
    EXPECT_EQ(e.hash, Sha256Hex(std::string(64, '0') + without_hash));
    // The stored line is the same object with "hash" in its sorted place.
    auto parsed = json::parse(e.encoded).as_object();
    EXPECT_EQ(parsed["hash"].as_string(), e.hash);
    parsed.erase("hash");
    EXPECT_EQ(*CanonicalJson(parsed), without_hash);
}

TEST(ChainTest, SealSaysWhereTheHashPrevHashAndRunIdAre) {
    ChainHead head;
    Event first = Seal(head, kRun, FromUnixMicros(1), {"step \"1\"", 1, NodeStarted{}});
    Event second = Seal(head, kRun, FromUnixMicros(2), {"step", 1, RunCompleted{"a \"quoted\""}});
    for (const Event* e : {&first, &second}) {
        ASSERT_GT(e->hash_at, 0u);
        EXPECT_EQ(e->encoded.substr(e->hash_at, 64), e->hash);
        ASSERT_GT(e->prev_hash_at, 0u);
        ASSERT_GT(e->run_id_at, 0u);
        EXPECT_EQ(e->encoded.substr(e->run_id_at, std::string(kRun).size()), kRun);
    }
    EXPECT_EQ(first.encoded.substr(first.prev_hash_at, 64), std::string(64, '0'));
    EXPECT_EQ(second.encoded.substr(second.prev_hash_at, 64), first.hash);
    // A decoded event does not say.
    auto decoded = DecodeEvent(second.encoded);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->hash_at, 0u);
}

// Sealing into a used event (the engine reuses a thread's events' buffers) gives what sealing
// into a new one gives, whatever the event held before.
TEST(ChainTest, SealIntoAUsedEventIsSealingIntoANewOne) {
    const NewEvent events[] = {
        {"a-rather-long-step-name", 3,
         LlmRequest{"scripted", "m", "sys", std::string(300, 'p'), 1}},
        {{}, 0, RunStarted{}},
        {"s", 1, UnknownPayload{"custom\\type", R"({"x":1})"}},
        {"s", 1, NodeStarted{}},
    };
    for (bool keep_data : {false, true}) {
        ChainHead fresh_head, reused_head;
        Event reused;
        for (const NewEvent& event : events) {
            Event fresh = Seal(fresh_head, kRun, FromUnixMicros(7), event, keep_data);
            SealInto(reused, reused_head, kRun, FromUnixMicros(7), event, keep_data);
            EXPECT_EQ(reused.encoded, fresh.encoded);
            EXPECT_EQ(reused.hash, fresh.hash);
            EXPECT_EQ(reused.type_name, fresh.type_name);
            EXPECT_EQ(reused.node, fresh.node);
            EXPECT_EQ(reused.attempt, fresh.attempt);
            EXPECT_EQ(reused.data, fresh.data);
            EXPECT_EQ(reused.rebuildable, fresh.rebuildable);
            EXPECT_EQ(reused.digest, fresh.digest);
            EXPECT_EQ(reused.hash_at, fresh.hash_at);
            EXPECT_EQ(reused.prev_hash_at, fresh.prev_hash_at);
            EXPECT_EQ(reused.run_id_at, fresh.run_id_at);
            EXPECT_EQ(reused_head.hash, fresh_head.hash);
        }
    }
}

// Lines are written in one pass when no header string needs escaping, through the JSON
// writer otherwise: both are the canonical encoding of the same object.
TEST(EventTest, EncodedLinesAreCanonicalWithAndWithoutEscapes) {
    const std::string hash(64, 'c'), prev(64, 'd');
    struct Case {
        std::string node, type, run_id;
        int64_t attempt;
        std::string hash;
    };
    const Case cases[] = {
        {"step", "node.started", kRun, 1, hash},  {"", "run.completed", kRun, 0, hash},
        {"step", "node.started", kRun, 12, ""},   {"st\"ep", "node.started", kRun, 1, hash},
        {"step", "custom\\type", kRun, 1, hash},  {"step", "node.started", "run\nid", 1, hash},
        {"sté p", "node.started", kRun, 1, hash},
    };
    for (const Case& c : cases) {
        const std::string data = R"({"a":"x\"y","b":1})";
        std::string line = EncodeEvent(42, c.run_id, FromUnixMicros(1700000000123456), c.type,
                                       c.node, c.attempt, data, prev, c.hash);
        json::object expected;
        if (c.attempt > 0) expected["attempt"] = c.attempt;
        expected["data"] = json::parse(data);
        if (!c.hash.empty()) expected["hash"] = c.hash;
        if (!c.node.empty()) expected["node"] = c.node;
        expected["prev_hash"] = prev;
        expected["run_id"] = c.run_id;
        expected["seq"] = 42;
        expected["time"] = "2023-11-14T22:13:20.123456Z";
        expected["type"] = c.type;
        expected["v"] = 1;
        EXPECT_EQ(line, *CanonicalJson(expected)) << c.node << " " << c.type;
    }
}

// Seal says when its line is the canonical encoding of the event's fields with type and node
// as they are (a store may rebuild it from them), and gives the hash in binary.
TEST(ChainTest, SealSaysWhenItsLineCanBeRebuiltFromTheFields) {
    ChainHead head;
    Event plain = Seal(head, kRun, FromUnixMicros(1), {"step-1", 2, NodeStarted{}});
    Event run_level = Seal(head, kRun, FromUnixMicros(2), {{}, 0, RunCompleted{"a \"quoted\""}});
    Event quoted = Seal(head, kRun, FromUnixMicros(3), {"step \"1\"", 1, NodeStarted{}});
    Event control = Seal(head, kRun, FromUnixMicros(4), {"step\x01", 1, NodeStarted{}});
    Event unknown =
        Seal(head, kRun, FromUnixMicros(5), {"s", 1, UnknownPayload{"custom\\type", "{}"}});
    EXPECT_TRUE(plain.rebuildable);
    EXPECT_TRUE(run_level.rebuildable);  // escapes in the data object do not matter
    EXPECT_FALSE(quoted.rebuildable);
    EXPECT_FALSE(control.rebuildable);
    EXPECT_FALSE(unknown.rebuildable);
    for (const Event* e : {&plain, &run_level, &quoted, &control, &unknown}) {
        std::string hex;
        for (unsigned char byte : e->digest) {
            hex += "0123456789abcdef"[byte >> 4];
            hex += "0123456789abcdef"[byte & 15];
        }
        EXPECT_EQ(hex, e->hash);
    }
    // Rebuilt from the fields, the line is the one sealed.
    for (const Event* e : {&plain, &run_level}) {
        auto decoded = DecodeEvent(e->encoded);
        ASSERT_TRUE(decoded.has_value());
        EXPECT_EQ(EncodeEvent(e->seq, kRun, e->time, e->type_name, e->node, e->attempt,
                              decoded->data, decoded->prev_hash, e->hash),
                  e->encoded);
        EXPECT_FALSE(decoded->rebuildable);  // a decoded event does not say
    }
}

TEST(ChainTest, FlippedByteIsAHashMismatchAtThatEvent) {
    auto lines = MakeChain(5);
    auto pos = lines[2].find("\"node\":\"step\"");
    lines[2][pos + 9] = 'X';  // "stXp"
    auto report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 3);
    EXPECT_EQ(report.issue->reason, "hash mismatch");
}

TEST(ChainTest, DeletedEventIsAGap) {
    auto lines = MakeChain(5);
    lines.erase(lines.begin() + 2);
    auto report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 3);
    EXPECT_EQ(report.issue->reason, "gap");
}

TEST(ChainTest, DeletedFirstEventIsAGapAtOne) {
    auto lines = MakeChain(3);
    lines.erase(lines.begin());
    auto report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 1);
    EXPECT_EQ(report.issue->reason, "gap");
}

TEST(ChainTest, SwappedEventsAreAReorder) {
    auto lines = MakeChain(5);
    std::swap(lines[1], lines[3]);
    auto report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 2);
    EXPECT_EQ(report.issue->reason, "gap");  // seq 4 found where 2 was expected
    std::swap(lines[1], lines[3]);
    std::swap(lines[2], lines[3]);  // ..., 2, 4, 3, 5
    report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 3);
    EXPECT_EQ(report.issue->reason, "gap");
    lines = MakeChain(5);
    std::swap(lines[3], lines[2]);   // 1, 2, 4, 3, 5 read as 1, 2, 4 -> gap at 3; and a
    lines.erase(lines.begin() + 2);  // repeated seq: 1, 2, 3, 3
    lines.insert(lines.begin() + 3, lines[2]);
    report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 4);
    EXPECT_EQ(report.issue->reason, "reorder");
}

TEST(ChainTest, RecomputedHashWithoutRelinkingIsAPrevHashMismatch) {
    // An attacker who edits event 2 and recomputes its hash still breaks event 3's link.
    auto lines = MakeChain(4);
    auto e = *DecodeEvent(lines[1]);  // Seal leaves data/run_id/prev_hash to the line
    std::string body = EncodeEvent(e.seq, e.run_id, e.time, e.type_name, "other", e.attempt, e.data,
                                   e.prev_hash, {});
    std::string hash = Sha256Hex(e.prev_hash, body);
    lines[1] = EncodeEvent(e.seq, e.run_id, e.time, e.type_name, "other", e.attempt, e.data,
                           e.prev_hash, hash);
    auto report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 3);
    EXPECT_EQ(report.issue->reason, "prev_hash mismatch");
}

TEST(ChainTest, TruncatedTailIsCaughtAgainstTheRecordedHead) {
    auto lines = MakeChain(5);
    ChainHead head{5, DecodeEvent(lines.back())->hash};
    lines.resize(3);
    auto report = VerifyChain(kRun, lines, head);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 4);
    EXPECT_EQ(report.issue->reason, "truncated");
}

TEST(ChainTest, NonCanonicalBytesAreMalformed) {
    auto lines = MakeChain(2);
    lines[1].insert(1, " ");
    auto report = VerifyChain(kRun, lines);
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.issue->seq, 2);
    EXPECT_EQ(report.issue->reason, "malformed");
}

TEST(EventTest, PayloadsRoundTrip) {
    std::vector<Payload> payloads = {
        RunCreated{"wf", std::string(64, 'b'), "in\n\"q\"", "key-1", "01JD3M6K9Q3V8C6Y2W5T0R1N7H"},
        RunPaused{"operator", "alice"},
        RunFailed{"Step 'x' failed: boom", "unavailable", "x"},
        LlmRequest{"openai", "gpt-4o-mini", "sys", "prompt", 2},
        LlmResponse{"out", {{"c1", "shell", "{\"command\":\"ls\"}"}}, 10, 20, 1234, 50, "stop", 2},
        ToolCall{"c1", "shell", "{}", "r/n/1/1", "destructive", 1},
        ToolResult{"c1", "ok", true, 12},
        HumanTaskCreated{"n/1/1", "tool_approval", "Approve shell", "c1", "shell", "{}"},
        HumanTaskDecided{"n/1/1", "approve", "alice", "fine", ""},
        BudgetExceeded{"step", "tokens", "2100", "2000"},
        NodeIterationCompleted{3, "it", 1, 2, 3},
        NodeCompleted{"final", 4, 5, 6, 2},
        NodeRetryScheduled{"boom", "unavailable", 200, FromUnixMicros(1700000000000000), 2},
        NodeSkipped{"error", "b is down"},
        RunRetried{"summary", {"summary", "publish"}, "alice"},
        LlmRetried{2, 1, "openai: HTTP 429: slow down", "resource_exhausted", 429, 1500},
        LlmRetried{1, 3, "openai: connection reset", "unavailable", 0, 800},
        SubworkflowStarted{"01JD3M6K9Q3V8C6Y2W5T0R1N7H", "child", std::string(64, 'c'), 2},
        SubworkflowStarted{"01JD3M6K9Q3V8C6Y2W5T0R1N7J", "child", std::string(64, 'c'), -1, 80,
                           1500000000},
    };
    for (const auto& payload : payloads) {
        std::string data = EncodePayload(payload);
        EXPECT_EQ(*CanonicalJson(json::parse(data)), data) << "not canonical: " << data;
        auto decoded = DecodePayload(TypeOf(payload), EventTypeName(TypeOf(payload)), data);
        ASSERT_TRUE(decoded.has_value());
        EXPECT_EQ(EncodePayload(*decoded), data);
    }
}

TEST(EventTest, SubworkflowStartedRecordsTheChildsCapsAndReplaysThem) {
    SubworkflowStarted started{"c1", "child", "sha", 3, 80, 1500000000};
    EXPECT_EQ(EncodePayload(started),
              R"({"child_run_id":"c1","definition_sha256":"sha","index":3,"max_cost_usd":"1.5",)"
              R"("max_tokens":80,"workflow":"child"})");
    // Without budgets (and in ledgers from before caps were recorded): no caps.
    EXPECT_EQ(EncodePayload(SubworkflowStarted{"c2", "child", "sha", -1}),
              R"({"child_run_id":"c2","definition_sha256":"sha","workflow":"child"})");
    RunState state(1);
    state.Apply(FromUnixMicros(1), -1, {{}, 0, RunCreated{"wf", "sha", "in", {}, {}}});
    state.Apply(FromUnixMicros(2), 0, {"fan", 0, started});
    state.Apply(FromUnixMicros(3), 0, {"fan", 0, SubworkflowStarted{"c4", "child", "sha", -1, 5}});
    ASSERT_NE(state.nodes[0].notes.get(), nullptr);
    const NodeNotes& notes = *state.nodes[0].notes.get();
    const NodeNotes::ItemChild* item = notes.ItemChildOf(3);
    ASSERT_NE(item, nullptr);
    EXPECT_EQ(item->caps.max_tokens, 80);
    EXPECT_EQ(item->caps.max_cost_nano_usd, 1500000000);
    EXPECT_EQ(notes.child_run_id, "c4");
    EXPECT_EQ(notes.child_caps.max_tokens, 5);
    EXPECT_FALSE(notes.child_caps.max_cost_nano_usd.has_value());
}

TEST(EventTest, RetriedCallsHaveTheirErrorRedactedAndNoStatusWhenNotHttp) {
    Payload retried = LlmRetried{1, 2, "bad key sk-123", "unauthenticated", 0, 10};
    ForEachText(retried, [](std::string& text) { text = "[redacted]"; });
    EXPECT_EQ(EncodePayload(retried),
              R"({"code":"unauthenticated","delay_ms":10,"error":"[redacted]","try":2,"turn":1})");
    EXPECT_EQ(EventTypeName(TypeOf(retried)), "llm.retried");
}

TEST(EventTest, EveryTypeHasANameThatRoundTrips) {
    for (int t = 0; t < static_cast<int>(EventType::kUnknown); ++t) {
        auto type = static_cast<EventType>(t);
        std::string_view name = EventTypeName(type);
        EXPECT_FALSE(name.empty()) << t;
        EXPECT_NE(name, "unknown") << t;
        EXPECT_EQ(EventTypeFromName(name), type) << name;
    }
}

TEST(EventTest, UsdAmountsAreExactDecimalStrings) {
    EXPECT_EQ(FormatUsd(0), "0.0");
    EXPECT_EQ(FormatUsd(420000), "0.00042");
    EXPECT_EQ(FormatUsd(1500000000), "1.5");
    EXPECT_EQ(FormatUsd(1), "0.000000001");
    EXPECT_EQ(FormatUsd(-420000), "-0.00042");
    EXPECT_EQ(FormatUsd(12000000000), "12.0");
    EXPECT_EQ(FormatUsd(INT64_MAX), "9223372036.854775807");
    EXPECT_EQ(FormatUsd(INT64_MIN), "-9223372036.854775808");
    for (int64_t amount : {int64_t{0}, int64_t{7}, int64_t{-1}, int64_t{123456789012}}) {
        EXPECT_EQ(*ParseUsd(FormatUsd(amount)), amount) << amount;
    }
    EXPECT_EQ(*ParseUsd("0.00042"), 420000);
    EXPECT_EQ(*ParseUsd("12"), 12000000000);
    EXPECT_FALSE(ParseUsd("1.0000000001").has_value());
}

TEST(RunStateTest, InterruptedNodeIsRunningAndRetryWaitingKeepsItsDueTime) {
    RunState state(2);
    state.Apply(FromUnixMicros(1), -1, {{}, 0, RunCreated{"wf", "sha", "in", {}, {}}});
    state.Apply(FromUnixMicros(2), -1, {{}, 0, RunStarted{}});
    state.Apply(FromUnixMicros(3), 0, {"a", 1, NodeStarted{}});
    EXPECT_EQ(state.nodes[0].status, NodeStatus::kRunning);
    EXPECT_EQ(state.status, RunStatus::kRunning);
    state.Apply(FromUnixMicros(4), 0,
                {"a", 1, NodeRetryScheduled{"x", "unavailable", 5, FromUnixMicros(9), 0}});
    EXPECT_EQ(state.nodes[0].status, NodeStatus::kRetryWaiting);
    EXPECT_EQ(ToUnixMicros(state.nodes[0].retry_due()), 9);
    EXPECT_EQ(state.nodes[0].failures_in_iteration, 1);
    state.Apply(FromUnixMicros(5), -1, {{}, 0, RunCancelled{"test", {}}});
    EXPECT_EQ(state.nodes[0].status, NodeStatus::kCancelled);
    EXPECT_EQ(state.nodes[1].status, NodeStatus::kPending);
    EXPECT_TRUE(IsTerminal(state.status));
}

// A loop's attempts count the tries of one iteration. Ledgers written before that rule
// numbered every try of the node; both replay to the same counts.
TEST(RunStateTest, ALoopCountsTheTriesOfEachIterationInEitherNumbering) {
    for (bool old_numbering : {false, true}) {
        SCOPED_TRACE(old_numbering ? "attempts continue across iterations" : "per iteration");
        RunState state(1);
        int64_t t = 0;
        auto apply = [&](int64_t attempt, Payload payload) {
            state.Apply(FromUnixMicros(++t), 0, {"loop", attempt, std::move(payload)});
        };
        state.Apply(FromUnixMicros(++t), -1, {{}, 0, RunCreated{"wf", "sha", "in", {}, {}}});
        // Iteration 1 succeeds; iteration 2 fails once, then succeeds.
        apply(1, NodeStarted{1});
        apply(1, NodeIterationCompleted{1, "one", 0, 0, 0});
        const int64_t second = old_numbering ? 2 : 1;
        apply(second, NodeStarted{2});
        apply(second, NodeRetryScheduled{"x", "unavailable", 1, FromUnixMicros(9), 2});
        apply(second + 1, NodeStarted{2});
        EXPECT_EQ(state.nodes[0].AttemptsInIteration(), 2);
        apply(second + 1, NodeIterationCompleted{2, "two", 0, 0, 0});
        ASSERT_EQ(state.steps.size(), 2u);
        EXPECT_EQ(state.steps[0].attempts, 1);
        EXPECT_EQ(state.steps[1].attempts, 2);
        EXPECT_EQ(state.nodes[0].FirstAttemptOfNextIteration(), 1);
    }
}

TEST(RunStateTest, AReopenedLoopNumbersItsAttemptsPastEveryEarlierOne) {
    const std::vector<std::string> names = {"loop"};
    RunState state(1);
    state.node_names = &names;
    int64_t t = 0;
    auto apply = [&](int64_t attempt, Payload payload) {
        state.Apply(FromUnixMicros(++t), 0, {"loop", attempt, std::move(payload)});
    };
    state.Apply(FromUnixMicros(++t), -1, {{}, 0, RunCreated{"wf", "sha", "in", {}, {}}});
    // Iteration 1 needs three tries; iteration 2 fails on its first.
    apply(1, NodeStarted{1});
    apply(1, NodeRetryScheduled{"x", "unavailable", 1, FromUnixMicros(9), 1});
    apply(2, NodeStarted{1});
    apply(2, NodeRetryScheduled{"x", "unavailable", 1, FromUnixMicros(9), 1});
    apply(3, NodeStarted{1});
    apply(3, NodeIterationCompleted{1, "one", 0, 0, 0});
    apply(1, NodeStarted{2});
    apply(1, NodeFailed{"broken", "unavailable"});
    state.Apply(FromUnixMicros(++t), -1, {{}, 0, RunFailed{"broken", "unavailable", "loop"}});
    state.Apply(FromUnixMicros(++t), -1, {{}, 0, RunRetried{"", {"loop"}, "me"}});
    EXPECT_EQ(state.nodes[0].status, NodeStatus::kPending);
    EXPECT_EQ(state.nodes[0].FirstAttemptOfNextIteration(), 4);
    // Reopened again before the loop started again (an earlier step failed): the base stays.
    state.Apply(FromUnixMicros(++t), -1, {{}, 0, RunFailed{"earlier", "unavailable", "x"}});
    state.Apply(FromUnixMicros(++t), -1, {{}, 0, RunRetried{"", {"loop"}, "me"}});
    EXPECT_EQ(state.nodes[0].FirstAttemptOfNextIteration(), 4);
    apply(4, NodeStarted{1});
    EXPECT_EQ(state.nodes[0].AttemptsInIteration(), 1);
}

}  // namespace
}  // namespace strowger::ledger
