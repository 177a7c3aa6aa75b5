#include "api/event_hub.hpp"

#include <boost/asio/as_tuple.hpp>

#include "core/json.hpp"

namespace strowger::api {

EventHub::EventHub(Executor executor, Options options)
    : executor_(std::move(executor)), options_(options) {}

Awaitable<EventHub::Follower::Wake> EventHub::Follower::Wait(std::chrono::milliseconds timeout) {
    if (signalled_) {
        signalled_ = false;
        co_return Wake::kSignalled;
    }
    waiting_ = true;
    timer_.expires_after(timeout);
    auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    waiting_ = false;
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) co_return Wake::kCancelled;
    if (signalled_) {
        signalled_ = false;
        co_return Wake::kSignalled;
    }
    co_return ec ? Wake::kSignalled : Wake::kTimeout;
}

void EventHub::Follower::Signal() {
    signalled_ = true;
    if (waiting_) timer_.cancel();
}

void EventHub::OnEvent(const ledger::Event& event) {
    ++events_seen_;
    Recent recent;
    recent.id = next_id_++;
    recent.run_id = event.run_id;
    recent.type = event.type_name;
    recent.json.reserve(160 + event.data.size());
    JsonWriter w(recent.json);
    w.BeginObject()
        .Field("id", static_cast<int64_t>(recent.id))
        .Field("run_id", event.run_id)
        .Field("seq", event.seq)
        .Field("time", FormatRfc3339(event.time))
        .Field("type", event.type_name);
    if (!event.node.empty()) w.Field("node", event.node).Field("attempt", event.attempt);
    w.Key("data").Raw(event.data.empty() ? std::string_view("{}") : std::string_view(event.data));
    w.EndObject();
    ring_.push_back(std::move(recent));
    if (ring_.size() > options_.ring_capacity) ring_.pop_front();
    const bool status_event = event.type_name.compare(0, 4, "run.") == 0 ||
                              event.type_name.compare(0, 11, "human_task.") == 0;
    Signal(event.run_id, status_event, nullptr, {}, {});
}

void EventHub::OnDelta(std::string_view run_id, std::string_view node, std::string_view text) {
    Signal(std::string(run_id), false, nullptr, node, text);
}

void EventHub::WakeRun(const std::string& run_id) {
    Signal(run_id, true, nullptr, {}, {});
}

void EventHub::Signal(const std::string& run_id, bool status_event, const ledger::Event*,
                      std::string_view node, std::string_view text) {
    const bool delta = !node.empty() || !text.empty();
    auto tell = [&](std::vector<std::weak_ptr<Follower>>& followers) {
        size_t live = 0;
        for (size_t i = 0; i < followers.size(); ++i) {
            auto follower = followers[i].lock();
            if (!follower) continue;
            followers[live++] = followers[i];
            if (delta) {
                if (!follower->wants_deltas_) continue;
                follower->deltas.push_back(Delta{std::string(node), std::string(text)});
                if (follower->deltas.size() > options_.max_pending_deltas) {
                    follower->deltas.pop_front();
                    ++follower->dropped_deltas;
                }
            } else if (follower->status_only_ && !status_event) {
                continue;
            }
            follower->Signal();
        }
        followers.resize(live);
    };
    if (auto it = by_run_.find(run_id); it != by_run_.end()) {
        tell(it->second);
        if (it->second.empty()) by_run_.erase(it);
    }
    if (!all_.empty()) tell(all_);
}

std::vector<const EventHub::Recent*> EventHub::Since(
    uint64_t after, size_t limit, const std::function<bool(const Recent&)>& keep) const {
    std::vector<const Recent*> out;
    if (ring_.empty() || after >= ring_.back().id) return out;
    size_t start = after < ring_.front().id ? 0 : static_cast<size_t>(after - ring_.front().id + 1);
    for (size_t i = start; i < ring_.size() && (limit == 0 || out.size() < limit); ++i) {
        if (!keep || keep(ring_[i])) out.push_back(&ring_[i]);
    }
    return out;
}

std::shared_ptr<EventHub::Follower> EventHub::Follow(const std::string& run_id, bool deltas,
                                                     Only only) {
    auto follower = std::make_shared<Follower>(executor_);
    follower->wants_deltas_ = deltas;
    follower->status_only_ = only == Only::kStatus;
    if (run_id.empty()) {
        all_.push_back(follower);
    } else {
        by_run_[run_id].push_back(follower);
    }
    return follower;
}

size_t EventHub::followers() const {
    size_t count = 0;
    for (const auto& [run, followers] : by_run_) {
        for (const auto& f : followers) count += f.expired() ? 0 : 1;
    }
    for (const auto& f : all_) count += f.expired() ? 0 : 1;
    return count;
}

}  // namespace strowger::api
