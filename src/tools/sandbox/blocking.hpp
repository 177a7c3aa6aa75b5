// A small thread pool shared by the tools for blocking work: forking and exec'ing sandboxed
// processes, and the file system calls of the file tools. Keeps it off the I/O threads.
//
// Thread-safety: all functions are thread-safe.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <type_traits>

#include "core/asio.hpp"

namespace strowger::tools::sandbox {

// The pool (two threads, alive until the process exits).
Executor BlockingExecutor();

template <typename F>
Awaitable<std::invoke_result_t<F&>> CallInline(F work) {
    co_return work();
}

// Runs `work()` on BlockingExecutor(); the awaiting coroutine resumes on its own executor.
// `work` is held by value in the spawned coroutine's frame until it has run, and runs to the
// end even if the awaiting coroutine is cancelled. Its result type must be default-constructible.
// Call it with a named `work` (GCC 12 frees a prvalue argument inside co_await twice).
template <typename F>
Awaitable<std::invoke_result_t<F&>> RunBlocking(F work) {
    return asio::co_spawn(BlockingExecutor(), CallInline(std::move(work)), asio::use_awaitable);
}

}  // namespace strowger::tools::sandbox
