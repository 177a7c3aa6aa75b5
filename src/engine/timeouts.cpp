#include "engine/internal/timeouts.hpp"

#include <mutex>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace strowger::engine::internal {

namespace {

// Entries of one timeout length, in due order.
struct List {
    std::chrono::milliseconds length{0};
    Timeouts::Entry* head = nullptr;
    Timeouts::Entry* tail = nullptr;
};

}  // namespace

struct Timeouts::State : std::enable_shared_from_this<Timeouts::State> {
    explicit State(Executor executor) : timer(std::move(executor)) {}

    // All below GUARDED_BY(mutex).
    mutable std::mutex mutex;
    asio::steady_timer timer;
    TimePoint timer_due = TimePoint::max();  // what the timer waits for; max = nothing
    std::vector<std::unique_ptr<List>> lists;
    size_t armed = 0;
    bool closed = false;
    bool idle_check_posted = false;

    List& ListFor(std::chrono::milliseconds length) {
        for (auto& list : lists) {
            if (list->length == length) return *list;
        }
        lists.push_back(std::make_unique<List>());
        lists.back()->length = length;
        return *lists.back();
    }

    void Link(Entry& entry, List& list) {
        // Usually at the tail: same length, armed later.
        Entry* after = list.tail;
        while (after != nullptr && after->due_ > entry.due_) after = after->prev_;
        entry.prev_ = after;
        entry.next_ = after ? after->next_ : list.head;
        if (entry.next_) {
            entry.next_->prev_ = &entry;
        } else {
            list.tail = &entry;
        }
        if (after) {
            after->next_ = &entry;
        } else {
            list.head = &entry;
        }
        entry.list_ = &list;
        ++armed;
    }

    void Unlink(Entry& entry) {
        auto& list = *static_cast<List*>(entry.list_);
        if (entry.prev_) {
            entry.prev_->next_ = entry.next_;
        } else {
            list.head = entry.next_;
        }
        if (entry.next_) {
            entry.next_->prev_ = entry.prev_;
        } else {
            list.tail = entry.prev_;
        }
        entry.prev_ = entry.next_ = nullptr;
        entry.list_ = nullptr;
        --armed;
    }

    // Once nothing is armed the timer must stop waiting, or it would keep the executor busy
    // (an io_context's run() would not return) until it fires. Not at once: a run whose call
    // returned arms its next one within the same handler, and moving the timer costs a system
    // call; the check runs after that handler.
    void MaybeIdle() {
        if (armed != 0 || timer_due == TimePoint::max() || idle_check_posted || closed) return;
        idle_check_posted = true;
        asio::post(timer.get_executor(), [weak = weak_from_this()] {
            auto self = weak.lock();
            if (!self) return;
            std::lock_guard lock(self->mutex);
            self->idle_check_posted = false;
            if (self->armed == 0 && self->timer_due != TimePoint::max()) {
                self->timer_due = TimePoint::max();
                self->timer.cancel();
            }
        });
    }

    void WaitFor(TimePoint due) {
        timer_due = due;
        timer.expires_at(due);
        timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            if (ec) return;  // moved earlier, or shut down
            if (auto self = weak.lock()) self->Expire();
        });
    }

    void Expire() {
        struct Due {
            std::shared_ptr<void> owner;
            FireFn fire;
            uint64_t arm;
            Executor executor;
        };
        std::vector<Due> due;
        {
            std::lock_guard lock(mutex);
            if (closed) return;
            auto now = std::chrono::steady_clock::now();
            TimePoint next = TimePoint::max();
            for (auto& list : lists) {
                while (list->head != nullptr && list->head->due_ <= now) {
                    Entry& entry = *list->head;
                    Unlink(entry);
                    // An owner being destroyed is disarming it: nothing to fire.
                    if (auto owner = entry.owner_.lock()) {
                        due.push_back(
                            {std::move(owner), entry.fire_, entry.arms_, entry.executor_});
                    }
                }
                if (list->head != nullptr) next = std::min(next, list->head->due_);
            }
            timer_due = TimePoint::max();
            if (next != TimePoint::max()) WaitFor(next);
        }
        // (When nothing is left the timer is not waiting: nothing keeps the executor busy.)
        for (auto& d : due) {
            asio::post(d.executor, [owner = std::move(d.owner), fire = d.fire, arm = d.arm] {
                fire(owner.get(), arm);
            });
        }
    }
};

Timeouts::Entry::~Entry() {
    if (state_) Disarm(*this);
}

Timeouts::Timeouts(Executor executor) : state_(std::make_shared<State>(std::move(executor))) {}

Timeouts::~Timeouts() {
    std::lock_guard lock(state_->mutex);
    state_->closed = true;
    state_->timer.cancel();
}

void Timeouts::Arm(Entry& entry, TimePoint due, std::chrono::milliseconds length,
                   const std::shared_ptr<void>& owner, FireFn fire) {
    if (!entry.state_) entry.state_ = state_;
    if (entry.owner_.expired()) entry.owner_ = owner;
    entry.fire_ = fire;
    State& state = *state_;
    std::lock_guard lock(state.mutex);
    if (entry.list_) state.Unlink(entry);
    ++entry.arms_;
    entry.due_ = due;
    state.Link(entry, state.ListFor(length));
    if (due < state.timer_due && !state.closed) state.WaitFor(due);
}

void Timeouts::Disarm(Entry& entry) {
    if (!entry.state_) return;
    State& state = *entry.state_;
    std::lock_guard lock(state.mutex);
    if (!entry.list_) return;
    state.Unlink(entry);
    state.MaybeIdle();
}

size_t Timeouts::ArmedForTest() const {
    std::lock_guard lock(state_->mutex);
    return state_->armed;
}

bool Timeouts::TimerWaitingForTest() const {
    std::lock_guard lock(state_->mutex);
    return state_->timer_due != TimePoint::max();
}

}  // namespace strowger::engine::internal
