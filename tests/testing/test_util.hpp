// Helpers for tests: temporary directories, running coroutines to completion, file I/O.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "core/asio.hpp"

namespace strowger::testing {

// How long a test waits for something that should happen at once (a reply, a stream's end).
inline constexpr std::chrono::seconds kWait{10};

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    // Writes `content` to `name` inside the directory (creating parents); returns the path.
    std::string Write(const std::string& name, const std::string& content) const;

  private:
    std::filesystem::path path_;
};

std::string ReadFileOrDie(const std::string& path);

// Directory of the source tree (from $STROWGER_SOURCE_DIR, set by CTest).
std::string SourceDir();
// Path of the built strowger binary (from $STROWGER_BINARY, set by CTest).
std::string StrowgerBinary();

// Runs `awaitable` on a fresh io_context until it completes; fails the test (and returns a
// default value) if it does not finish within `timeout`.
template <typename T>
T RunSync(asio::awaitable<T> awaitable, std::chrono::seconds timeout = std::chrono::seconds(30));

// Runs `awaitable` on `io` (restarted first, so it may have run before) until it completes or
// `timeout` passes; nullopt if it did not complete. An exception is a test failure.
template <typename T>
std::optional<T> RunOn(asio::io_context& io, asio::awaitable<T> awaitable,
                       std::chrono::seconds timeout = std::chrono::seconds(20));

}  // namespace strowger::testing

#include "testing/test_util_inl.hpp"
