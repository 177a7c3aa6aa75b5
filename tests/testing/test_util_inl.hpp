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
