// The SQLite store's internals, shared by its source files: the writer queue's requests, and
// SqliteStore::Impl with its Write (a job on the writer thread, inside the batch transaction)
// and Read (a job on a read-pool thread, inside a read transaction). Not for other modules.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "store/sqlite/sqlite_connection.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace strowger::store {

namespace sqlite_internal {

using sqlite::Connection;

template <typename T>
using Job = std::move_only_function<Result<T>(Connection&)>;

// Posts `result` to `handler` on the executor `work` tracks. Completion handlers are never
// called inline: the caller's coroutine resumes on its own executor.
template <typename Handler, typename Work, typename T>
void PostResult(Handler handler, Work work, Result<T> result) {
    auto executor = work.get_executor();
    asio::post(executor, [handler = std::move(handler), result = std::move(result)]() mutable {
        std::move(handler)(std::move(result));
    });
}

// One queued write request: the job to apply and the coroutine waiting for its result.
class WriteOp {
  public:
    virtual ~WriteOp() = default;
    // Runs the job inside the batch transaction; the result is kept for Complete.
    virtual Status Apply(Connection& db) = 0;
    // Replaces the kept result with `error`.
    virtual void Fail(Error error) = 0;
    // Sends the kept result to the waiting coroutine. Called once (or Deliver is).
    virtual void Complete() = 0;
    // The executor the waiting coroutine resumes on.
    virtual Executor executor() const = 0;
    // Hands the kept result to the waiting coroutine at once: only on executor(). Called once.
    virtual void Deliver() = 0;
};

// Completes `ops` in order with one post per run of consecutive ops that resume on the same
// executor (a batch's waiters mostly share the engine's), instead of one post each: the writer
// thread wakes the engine's thread once per batch, not once per request.
void CompleteAll(std::vector<std::unique_ptr<WriteOp>>& ops);

template <typename T, typename Handler>
class WriteOpImpl final : public WriteOp {
  public:
    WriteOpImpl(Job<T> job, Handler handler)
        : job_(std::move(job)),
          handler_(std::move(handler)),
          work_(asio::make_work_guard(handler_)) {}

    Status Apply(Connection& db) override {
        result_ = job_(db);
        if (result_) return OkStatus();
        return std::unexpected(result_.error());
    }
    void Fail(Error error) override { result_ = std::unexpected(std::move(error)); }
    void Complete() override {
        PostResult(std::move(handler_), std::move(work_), std::move(result_));
    }
    Executor executor() const override { return work_.get_executor(); }
    void Deliver() override {
        std::move(handler_)(std::move(result_));
        work_.reset();
    }

  private:
    Job<T> job_;
    Handler handler_;
    asio::executor_work_guard<asio::associated_executor_t<Handler>> work_;
    Result<T> result_{std::unexpect, ErrorCode::kInternal, "write request was not applied"};
};

}  // namespace sqlite_internal

struct SqliteStore::Impl {
    template <typename T>
    using Job = sqlite_internal::Job<T>;
    using WriteOp = sqlite_internal::WriteOp;
    using Connection = sqlite::Connection;

    Impl(std::string path_in, SqliteOptions options_in)
        : path(std::move(path_in)), options(options_in) {}

    Status Setup();
    Status Migrate();
    Status MigrateInTransaction();
    void Start();
    void Close();

    template <typename T>
    Awaitable<Result<T>> Write(Job<T> job);
    template <typename T>
    Awaitable<Result<T>> Read(Job<T> job);

    void Enqueue(std::unique_ptr<WriteOp> op);
    void WriterLoop();
    void RunBatch(std::vector<std::unique_ptr<WriteOp>>& batch);
    Error Poison(const Error& cause);
    void MaybeCheckpoint();
    template <typename T>
    Result<T> RunRead(Job<T>& job);

    // Called by SQLite after each commit with the number of frames in the WAL.
    static int WalHook(void* arg, sqlite3* db, const char* database, int frames);

    Error ClosedError() const {
        return Error(ErrorCode::kFailedPrecondition, "store " + path + " is closed");
    }

    const std::string path;
    const SqliteOptions options;
    const std::string host = LocalHostName();

    // The writer's connection: used by Setup, then only by the writer thread.
    std::unique_ptr<Connection> writer;
    int64_t wal_frames = 0;  // writer thread only; set by WalHook after each commit
    std::thread writer_thread;

    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::unique_ptr<WriteOp>> queue;  // GUARDED_BY(mutex)
    bool stopping = false;                       // GUARDED_BY(mutex)
    bool held = false;                           // GUARDED_BY(mutex)
    std::optional<Error> poisoned;               // GUARDED_BY(mutex)
    std::atomic<bool> inject_commit_failure{false};

    std::mutex readers_mutex;
    std::vector<std::unique_ptr<Connection>> idle_readers;  // GUARDED_BY(readers_mutex)
    bool reads_closed = false;                              // GUARDED_BY(readers_mutex)
    std::optional<asio::thread_pool> read_pool;

    std::once_flag close_once;

    std::atomic<int64_t> write_requests{0};
    std::atomic<int64_t> transactions{0};
    std::atomic<int64_t> largest_batch{0};
    std::atomic<int64_t> queued{0};
    std::atomic<int64_t> checkpoints{0};
};

template <typename T>
Awaitable<Result<T>> SqliteStore::Impl::Write(Job<T> job) {
    auto initiation = [this](auto handler, Job<T> pending) {
        Enqueue(std::make_unique<sqlite_internal::WriteOpImpl<T, decltype(handler)>>(
            std::move(pending), std::move(handler)));
    };
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<T>)>(
        std::move(initiation), asio::use_awaitable, std::move(job));
}

template <typename T>
Awaitable<Result<T>> SqliteStore::Impl::Read(Job<T> job) {
    auto initiation = [this](auto handler, Job<T> pending) {
        auto work = asio::make_work_guard(handler);
        std::lock_guard lock(readers_mutex);
        if (reads_closed) {
            sqlite_internal::PostResult(std::move(handler), std::move(work),
                                        Result<T>(std::unexpected(ClosedError())));
            return;
        }
        asio::post(*read_pool, [this, handler = std::move(handler), work = std::move(work),
                                pending = std::move(pending)]() mutable {
            Result<T> result = RunRead<T>(pending);
            sqlite_internal::PostResult(std::move(handler), std::move(work), std::move(result));
        });
    };
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result<T>)>(
        std::move(initiation), asio::use_awaitable, std::move(job));
}

template <typename T>
Result<T> SqliteStore::Impl::RunRead(Job<T>& job) {
    std::unique_ptr<Connection> connection;
    {
        std::lock_guard lock(readers_mutex);
        if (!idle_readers.empty()) {
            connection = std::move(idle_readers.back());
            idle_readers.pop_back();
        }
    }
    if (!connection) {
        // Cannot happen while there is one connection per pool thread; stay correct anyway.
        auto opened = Connection::Open(path, Connection::Role::kReader, options.busy_timeout);
        if (!opened) return std::unexpected(std::move(opened).error());
        connection = std::move(*opened);
    }
    Result<T> result = [&]() -> Result<T> {
        STROWGER_TRY(connection->Exec("BEGIN"));
        return job(*connection);
    }();
    if (connection->InTransaction()) (void)connection->Exec("COMMIT");
    std::lock_guard lock(readers_mutex);
    idle_readers.push_back(std::move(connection));
    return result;
}

}  // namespace strowger::store
