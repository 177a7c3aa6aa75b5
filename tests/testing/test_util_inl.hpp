#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <exception>
#include <optional>

namespace strowger::testing {

template <typename T>
T RunSync(asio::awaitable<T> awaitable, std::chrono::seconds timeout) {
    asio::io_context io;
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

}  // namespace strowger::testing
