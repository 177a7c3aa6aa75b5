// The one way Strowger spells Asio: `asio::awaitable<Result<T>>` for every async API.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace strowger {
namespace asio = boost::asio;
using Executor = asio::any_io_executor;
template <typename T>
using Awaitable = asio::awaitable<T>;
// `co_await op(..., kUseTuple)` gives (error_code, results...) instead of throwing.
inline constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
}  // namespace strowger
