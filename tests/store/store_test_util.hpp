// Helpers shared by the store tests: real sealed chains, run ids that sort by creation, and
// NewRun builders.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "ledger/chain.hpp"
#include "ledger/event.hpp"
#include "store/memory/memory_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store.hpp"

namespace strowger {
// Makes gtest print error codes by name.
inline void PrintTo(ErrorCode code, std::ostream* out) {
    *out << ErrorCodeName(code);
}
}  // namespace strowger

namespace strowger::store::fixtures {

// Event times: whole seconds after a fixed instant, so every store keeps them exactly.
inline SystemTime TimeAt(int64_t second) {
    return FromUnixMicros(int64_t{1'790'000'000} * 1'000'000 + second * 1'000'000);
}

// 26 characters like a ULID; ids of larger `n` sort later, i.e. are "newer".
inline std::string RunIdFor(int n) {
    char text[32];
    std::snprintf(text, sizeof text, "01HZ%022d", n);
    return text;
}

// A run's hash chain as a test builds it, with real ledger::Seal.
class TestChain {
  public:
    explicit TestChain(std::string run_id) : run_id_(std::move(run_id)) {}

    ledger::Event Next(ledger::Payload payload, std::string node = "", int64_t attempt = 0) {
        ledger::NewEvent event;
        event.node = std::move(node);
        event.attempt = attempt;
        event.payload = std::move(payload);
        return ledger::Seal(head_, run_id_, TimeAt(head_.seq + 1), event);
    }

    // `count` node events, alternating node.started / node.completed on "step1", "step2"...
    std::vector<ledger::Event> NodeEvents(int count) {
        std::vector<ledger::Event> events;
        for (int i = 0; i < count; ++i, ++node_events_) {
            std::string node = "step" + std::to_string(node_events_ / 2 + 1);
            if (node_events_ % 2 == 0) {
                events.push_back(Next(ledger::NodeStarted{}, node, 1));
            } else {
                ledger::NodeCompleted completed;
                completed.output = "output of " + node;
                events.push_back(Next(completed, node, 1));
            }
        }
        return events;
    }

    const std::string& run_id() const { return run_id_; }
    const ledger::ChainHead& head() const { return head_; }

  private:
    std::string run_id_;
    ledger::ChainHead head_;
    int node_events_ = 0;
};

// A new run whose ledger is one run.created event sealed on `chain`.
inline NewRun MakeNewRun(TestChain& chain, std::string workflow = "wf",
                         std::string idempotency_key = "", RunStatus status = RunStatus::kPending) {
    NewRun run;
    run.run_id = chain.run_id();
    run.workflow = workflow;
    run.definition_sha256 = "sha256-of-" + workflow;
    run.definition_json = std::make_shared<const std::string>("{\"name\":\"" + workflow + "\"}");
    run.idempotency_key = idempotency_key;
    run.status = status;
    ledger::RunCreated created;
    created.workflow = workflow;
    created.definition_sha256 = run.definition_sha256;
    created.input = "input";
    created.idempotency_key = idempotency_key;
    run.events.push_back(chain.Next(created));
    return run;
}

inline std::vector<std::string> Lines(const std::vector<ledger::Event>& events) {
    std::vector<std::string> lines;
    for (const auto& event : events) lines.push_back(event.encoded);
    return lines;
}

inline std::vector<std::string> Lines(const std::vector<StoredEvent>& events) {
    std::vector<std::string> lines;
    for (const auto& event : events) lines.push_back(event.encoded);
    return lines;
}

inline std::vector<std::string> RunIds(const std::vector<RunRecord>& runs) {
    std::vector<std::string> ids;
    for (const auto& run : runs) ids.push_back(run.run_id);
    return ids;
}

// Starts `operation` on `io`; its result lands in `*out` when it completes.
template <typename T>
void Spawn(asio::io_context& io, asio::awaitable<T> operation, std::optional<T>* out) {
    asio::co_spawn(io, std::move(operation), [out](std::exception_ptr error, T value) {
        if (error) std::rethrow_exception(error);
        out->emplace(std::move(value));
    });
}

// The error code of a Result, or kOk.
template <typename T>
ErrorCode CodeOf(const Result<T>& result) {
    return result ? ErrorCode::kOk : result.error().code();
}

}  // namespace strowger::store::fixtures

// The stores the TEST_P suites run against: the in-memory store and SQLite (a fresh file in
// the test's directory).
namespace strowger::store {

struct Backend {
    std::string name;
    std::function<std::shared_ptr<Store>(const std::filesystem::path& dir)> open;
};

inline void PrintTo(const Backend& backend, std::ostream* out) {
    *out << backend.name;
}

inline std::vector<Backend> Backends() {
    return {
        {"Memory", [](const std::filesystem::path&) { return std::make_shared<MemoryStore>(); }},
        {"Sqlite",
         [](const std::filesystem::path& dir) -> std::shared_ptr<Store> {
             auto store = SqliteStore::OpenBlocking((dir / "store.db").string());
             EXPECT_TRUE(store.has_value()) << store.error().ToString();
             return store ? *store : nullptr;
         }},
    };
}

inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
    return info.param.name;
}

}  // namespace strowger::store
