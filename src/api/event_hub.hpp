// Live events of the runs executing in the daemon: what event streams, waiters and the
// console follow. The hub is an engine observer: it is told of every committed event (and of
// streamed model text) and wakes whoever follows that run or every run.
//
// What a follower reads is the store (the verified ledger, docs/design/audit.md): the hub
// only says *when* to read. For `GET /api/events` it also keeps a ring of recent events of
// every run, numbered in the order they were committed here (ids from 1), so a console can
// page through them and resume its stream with Last-Event-ID while they are in the ring.
//
// Thread-safety: everything on the daemon's one executor (the engine runs there too).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/asio.hpp"
#include "engine/observer.hpp"

namespace strowger::api {

class EventHub final : public engine::Observer {
  public:
    struct Options {
        size_t ring_capacity = 8192;       // ≈ 0.3 KB each
        size_t max_pending_deltas = 1024;  // per follower; the oldest are dropped beyond
        bool deltas = true;                // ask the engine to stream model calls
    };
    EventHub(Executor executor, Options options);

    void OnEvent(const ledger::Event& event) override;
    bool WantsData() const override { return true; }
    bool WantsDeltas() const override { return options_.deltas; }
    void OnDelta(std::string_view run_id, std::string_view node, std::string_view text) override;

    // A recent event of any run, as JSON: {"id", "run_id", "seq", "time", "type", "node",
    // "attempt", "data"}.
    struct Recent {
        uint64_t id = 0;
        std::string run_id;
        std::string type;
        std::string json;
    };
    // Ring entries with id > `after`, oldest first, that `keep` accepts, at most `limit`.
    std::vector<const Recent*> Since(uint64_t after, size_t limit,
                                     const std::function<bool(const Recent&)>& keep) const;
    uint64_t last_id() const { return next_id_ - 1; }
    // The oldest id still in the ring (last_id() + 1 when it is empty).
    uint64_t first_id() const { return ring_.empty() ? next_id_ : ring_.front().id; }

    struct Delta {
        std::string node;
        std::string text;
    };
    // Someone following one run (or every run): woken when something happened there.
    class Follower {
      public:
        explicit Follower(Executor executor) : timer_(executor) {}
        enum class Wake { kSignalled, kTimeout, kCancelled };
        // Waits until signalled (at once if it was since the last wait), `timeout`, or the
        // awaiting coroutine's cancellation.
        Awaitable<Wake> Wait(std::chrono::milliseconds timeout);
        void Signal();
        // Streamed model text not yet taken (transient: not in the ledger).
        std::deque<Delta> deltas;
        size_t dropped_deltas = 0;

      private:
        friend class EventHub;
        asio::steady_timer timer_;
        bool signalled_ = false;
        bool waiting_ = false;
        bool status_only_ = false;  // woken only by events that may change the run's status
        bool wants_deltas_ = false;
    };
    // Follows `run_id` ("" = every run): signalled by each of its events (with `status_only`,
    // only by those that may change the run's status: run.*, human_task.*) and by WakeRun. It
    // stops being told when it is destroyed. Follow before reading what it signals about: a
    // signal between the read and the wait is kept, not lost.
    enum class Only { kAll, kStatus };
    std::shared_ptr<Follower> Follow(const std::string& run_id, bool deltas,
                                     Only only = Only::kAll);
    // Signals the followers of `run_id` (its outcome was handed over).
    void WakeRun(const std::string& run_id);

    size_t followers() const;
    int64_t events_seen() const { return events_seen_; }

  private:
    void Signal(const std::string& run_id, bool status_event, const ledger::Event* delta_source,
                std::string_view node, std::string_view text);

    Executor executor_;
    Options options_;
    std::deque<Recent> ring_;
    uint64_t next_id_ = 1;
    int64_t events_seen_ = 0;
    std::unordered_map<std::string, std::vector<std::weak_ptr<Follower>>> by_run_;
    std::vector<std::weak_ptr<Follower>> all_;
};

}  // namespace strowger::api
