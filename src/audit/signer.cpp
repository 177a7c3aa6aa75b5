#include "audit/signer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include <spdlog/spdlog.h>

namespace strowger::audit {

std::shared_ptr<CheckpointSigner> CheckpointSigner::Create(Executor executor,
                                                           std::shared_ptr<store::Store> store,
                                                           std::shared_ptr<const SigningKey> key,
                                                           Clock& clock, SignerOptions options) {
    return std::shared_ptr<CheckpointSigner>(new CheckpointSigner(
        std::move(executor), std::move(store), std::move(key), clock, options));
}

CheckpointSigner::CheckpointSigner(Executor executor, std::shared_ptr<store::Store> store,
                                   std::shared_ptr<const SigningKey> key, Clock& clock,
                                   SignerOptions options)
    : executor_(executor),
      strand_(asio::make_strand(executor)),
      store_(std::move(store)),
      key_(std::move(key)),
      clock_(clock),
      options_(options),
      delay_timer_(std::make_unique<asio::steady_timer>(strand_)) {}

namespace {

// Removes one element equal to `leaf`, if there is one.
void EraseOne(std::vector<ledger::CheckpointLeaf>& leaves, const ledger::CheckpointLeaf& leaf) {
    auto it = std::find(leaves.begin(), leaves.end(), leaf);
    if (it == leaves.end()) return;
    *it = std::move(leaves.back());
    leaves.pop_back();
}

}  // namespace

void CheckpointSigner::Expect(ledger::CheckpointLeaf leaf) {
    std::lock_guard lock(mutex_);
    expected_.push_back(std::move(leaf));
}

void CheckpointSigner::Forget(const ledger::CheckpointLeaf& leaf) {
    std::lock_guard lock(mutex_);
    EraseOne(expected_, leaf);
}

void CheckpointSigner::Add(ledger::CheckpointLeaf leaf) {
    std::lock_guard lock(mutex_);
    EraseOne(expected_, leaf);
    waiting_.push_back(std::move(leaf));
    ++added_;
    if (!draining_) {
        Schedule();
    } else if (waiting_.size() >= options_.max_leaves) {
        // A full batch waits: do not wait for the delay.
        asio::post(strand_, [self = shared_from_this()] { self->delay_timer_->cancel(); });
    }
}

void CheckpointSigner::Schedule() {
    draining_ = true;
    asio::post(strand_, [self = shared_from_this()] {
        self->delay_timer_->expires_after(self->options_.delay);
        self->delay_timer_->async_wait([self](const boost::system::error_code&) {
            // Expired, or cancelled to hurry: drain either way.
            asio::co_spawn(self->strand_, self->Drain(self), asio::detached);
        });
    });
}

bool CheckpointSigner::Pending(const ledger::CheckpointLeaf& leaf) const {
    std::lock_guard lock(mutex_);
    for (const auto& expected : expected_) {
        if (expected == leaf) return true;
    }
    for (const auto& waiting : waiting_) {
        if (waiting == leaf) return true;
    }
    for (const auto& signing : signing_) {
        if (signing == leaf) return true;
    }
    return false;
}

bool CheckpointSigner::HasPending() const {
    std::lock_guard lock(mutex_);
    return done_ < added_;
}

int64_t CheckpointSigner::batches_signed() const {
    std::lock_guard lock(mutex_);
    return batches_signed_copy_;
}

// `self` keeps the signer alive while the coroutine runs.
Awaitable<void> CheckpointSigner::Drain([[maybe_unused]] std::shared_ptr<CheckpointSigner> self) {
    while (true) {
        std::vector<ledger::CheckpointLeaf> leaves;
        {
            std::lock_guard lock(mutex_);
            if (waiting_.empty()) {
                draining_ = false;
                co_return;
            }
            size_t count = std::min(waiting_.size(), options_.max_leaves);
            leaves.assign(std::make_move_iterator(waiting_.begin()),
                          std::make_move_iterator(waiting_.begin() + static_cast<long>(count)));
            waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<long>(count));
            signing_ = leaves;
        }
        const size_t count = leaves.size();
        Status appended = co_await SignAndAppend(std::move(leaves), false);
        if (!appended) {
            spdlog::error("cannot store signed checkpoints ({} leaves): {}", count,
                          appended.error().ToString());
        }
        std::vector<std::shared_ptr<asio::steady_timer>> wake;
        {
            std::lock_guard lock(mutex_);
            signing_.clear();
            done_ += count;
            batches_signed_copy_ = batches_signed_;
            if (!appended) last_error_ = appended.error();
            std::erase_if(waiters_, [&](const Waiter& waiter) {
                if (waiter.mark > done_) return false;
                wake.push_back(waiter.timer);
                return true;
            });
        }
        for (auto& timer : wake) {
            asio::post(timer->get_executor(), [timer] { timer->cancel(); });
        }
    }
}

Awaitable<Status> CheckpointSigner::SignAndAppend(std::vector<ledger::CheckpointLeaf> leaves,
                                                  bool recovered) {
    for (int tries = 0; tries < 64; ++tries) {
        if (last_batch_seq_ < 0) {
            auto last = co_await store_->LastCheckpointBatch();
            if (!last) co_return std::unexpected(last.error());
            if (last->has_value()) {
                last_batch_seq_ = (*last)->batch_seq;
                last_batch_hash_ = ledger::BatchHash(**last);
            } else {
                last_batch_seq_ = 0;
                last_batch_hash_ = std::string(ledger::kGenesisHash);
            }
        }
        ledger::CheckpointBatch batch;
        batch.batch_seq = last_batch_seq_ + 1;
        batch.prev_hash = last_batch_hash_;
        batch.root = ledger::ComputeRoot(leaves);
        batch.key_id = key_->verifying_key().id();
        batch.signed_at = clock_.Now();
        batch.recovered = recovered;
        batch.leaves = leaves;
        batch.signature = key_->Sign(ledger::BatchMessage(batch));
        if (batch.signature.empty()) co_return InternalError("cannot sign a checkpoint batch");
        const int64_t seq = batch.batch_seq;
        std::string hash = ledger::BatchHash(batch);
        auto appended = co_await store_->AppendCheckpointBatch(std::move(batch));
        if (appended) {
            last_batch_seq_ = seq;
            last_batch_hash_ = std::move(hash);
            ++batches_signed_;
            co_return OkStatus();
        }
        if (appended.error().code() != ErrorCode::kAborted) co_return appended;
        last_batch_seq_ = -1;  // another process appended first: sign on top of it
    }
    co_return UnavailableError("cannot append a checkpoint batch: the batch log keeps moving");
}

Awaitable<Status> CheckpointSigner::Flush() {
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    timer->expires_at(asio::steady_timer::time_point::max());
    {
        std::lock_guard lock(mutex_);
        if (done_ >= added_) {
            if (last_error_) {
                Error error = *last_error_;
                last_error_.reset();
                co_return std::unexpected(std::move(error));
            }
            co_return OkStatus();
        }
        waiters_.push_back({added_, timer});
        if (!draining_) {
            Schedule();
        }
        asio::post(strand_, [self = shared_from_this()] { self->delay_timer_->cancel(); });
    }
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::lock_guard lock(mutex_);
    if (last_error_) {
        Error error = *last_error_;
        last_error_.reset();
        co_return std::unexpected(std::move(error));
    }
    co_return OkStatus();
}

Awaitable<Result<int64_t>> CheckpointSigner::RecoverUnsignedStops(VerifyFn verified) {
    int64_t signed_count = 0;
    std::string after;
    while (true) {
        auto page = co_await store_->FindUnsignedStops(after, 256);
        if (!page) co_return std::unexpected(page.error());
        if (page->empty()) break;
        after = page->back().run_id;
        std::vector<ledger::CheckpointLeaf> leaves;
        for (auto& record : *page) {
            auto ok = co_await verified(record);
            if (!ok) co_return std::unexpected(ok.error());
            if (!*ok) continue;
            leaves.push_back({record.run_id, record.head.seq, record.head.hash});
        }
        if (leaves.empty()) continue;
        const auto count = static_cast<int64_t>(leaves.size());
        Status appended = co_await asio::co_spawn(strand_, SignAndAppend(std::move(leaves), true),
                                                  asio::use_awaitable);
        if (!appended) co_return std::unexpected(appended.error());
        signed_count += count;
    }
    co_return signed_count;
}

}  // namespace strowger::audit
