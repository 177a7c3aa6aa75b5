#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <vector>

namespace strowger::testing {

// The io_contexts RunSync has finished with, kept until the thread that ran them exits. The
// awaitable's last step may be a post() from another thread (an HTTP client's I/O thread
// completing a call), and Asio's scheduler signals the io_context's condition variable after
// releasing its lock: the handler can run and RunSync return while that thread is still inside
// the signal (ThreadSanitizer: pthread_cond_destroy racing pthread_cond_signal). By the time
// the test's thread exits, its fixtures have joined every I/O thread. Only an io_context that
// ran out of work is kept: one with coroutines still suspended in it (a timeout) is destroyed at
// once, while what those coroutines refer to still exists.
inline std::vector<std::unique_ptr<asio::io_context>>& FinishedIoContexts() {
    thread_local std::vector<std::unique_ptr<asio::io_context>> finished;
    return finished;
}
inline void KeepUntilThreadExit(std::unique_ptr<asio::io_context> io) {
    FinishedIoContexts().push_back(std::move(io));
}
// Destroys the io_contexts kept so far (each holds a few descriptors): for a test that counts
// its process's descriptors, once no other thread can still be signalling them.
inline void ReleaseFinishedIoContexts() {
    FinishedIoContexts().clear();
}

template <typename T>
T RunSync(asio::awaitable<T> awaitable, std::chrono::seconds timeout) {
    auto owned = std::make_unique<asio::io_context>();
    asio::io_context& io = *owned;
    struct Keep {
        std::unique_ptr<asio::io_context>& io;
        ~Keep() {
            if (io->stopped()) KeepUntilThreadExit(std::move(io));
        }
    } keep{owned};
    std::optional<T> result;
    std::exception_ptr error;
    asio::co_spawn(io, std::move(awaitable), [&](std::exception_ptr e, T value) {
        error = e;
        if (!e) result.emplace(std::move(value));
    });
    io.run_for(timeout);
    if (error) std::rethrow_exception(error);
    if (!result) {
        ADD_FAILURE() << "coroutine did not finish within " << timeout.count() << "s";
        return T{};
    }
    return std::move(*result);
}

template <typename T>
std::optional<T> RunOn(asio::io_context& io, asio::awaitable<T> awaitable,
                       std::chrono::seconds timeout) {
    std::optional<T> result;
    asio::co_spawn(io, std::move(awaitable), [&](std::exception_ptr e, T value) {
        EXPECT_FALSE(e);
        result.emplace(std::move(value));
    });
    io.restart();
    io.run_for(timeout);
    return result;
}

}  // namespace strowger::testing
