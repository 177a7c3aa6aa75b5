// Errors as values: Result<T> = std::expected<T, Error>.
//
// Every fallible function in Strowger returns a Result. Error codes follow abseil's canonical
// set; whether an error may be retried is a function of its code (IsRetryable), defined once
// here. Third-party exceptions and error codes are converted to Error at the adapter that
// calls the library; nothing throws across module boundaries.
//
// Thread-safety: Error and Result are plain values.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace strowger {

// Canonical codes (abseil). Persisted in the ledger by name, never by number.
enum class ErrorCode : int {
    kOk = 0,
    kCancelled = 1,
    kUnknown = 2,
    kInvalidArgument = 3,
    kDeadlineExceeded = 4,
    kNotFound = 5,
    kAlreadyExists = 6,
    kPermissionDenied = 7,
    kResourceExhausted = 8,
    kFailedPrecondition = 9,
    kAborted = 10,
    kOutOfRange = 11,
    kUnimplemented = 12,
    kInternal = 13,
    kUnavailable = 14,
    kDataLoss = 15,
    kUnauthenticated = 16,
};

// "invalid_argument", "deadline_exceeded", ...
std::string_view ErrorCodeName(ErrorCode code);
// Inverse of ErrorCodeName; unknown names map to kUnknown.
ErrorCode ErrorCodeFromName(std::string_view name);

// Structured context an error may carry. Zero / empty means "not set".
struct ErrorDetails {
    int http_status = 0;
    int64_t retry_after_ms = -1;  // from a Retry-After header; -1 = none
    int exit_code = -1;           // of a subprocess
    // A stable machine-readable reason within the code, e.g. "budget_exceeded", "timeout",
    // "max_turns". Written to the ledger.
    std::string reason;
};

class Error {
  public:
    Error() = default;
    Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
    Error(ErrorCode code, std::string message, ErrorDetails details)
        : code_(code), message_(std::move(message)), details_(std::move(details)) {}

    ErrorCode code() const { return code_; }
    const std::string& message() const { return message_; }
    const ErrorDetails& details() const { return details_; }
    ErrorDetails& mutable_details() { return details_; }

    // "<code>: <message>" for logs; user-facing texts use message() alone.
    std::string ToString() const;

    // Returns a copy whose message is "<prefix><message>".
    Error WithPrefix(std::string_view prefix) const;

  private:
    ErrorCode code_ = ErrorCode::kUnknown;
    std::string message_;
    ErrorDetails details_;
};

// True for failures that a later attempt may not repeat: unavailable, deadline exceeded,
// aborted, unknown and internal (a malformed or truncated response from a provider is worth
// another try). Budget exhaustion (kResourceExhausted), bad input, permission and
// cancellation are final. A provider's 429 is reported as kUnavailable with http_status 429.
bool IsRetryable(const Error& error);

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline Status OkStatus() {
    return {};
}

inline std::unexpected<Error> MakeError(ErrorCode code, std::string message,
                                        ErrorDetails details = {}) {
    return std::unexpected<Error>(Error(code, std::move(message), std::move(details)));
}
inline std::unexpected<Error> InvalidArgumentError(std::string m) {
    return MakeError(ErrorCode::kInvalidArgument, std::move(m));
}
inline std::unexpected<Error> NotFoundError(std::string m) {
    return MakeError(ErrorCode::kNotFound, std::move(m));
}
inline std::unexpected<Error> AlreadyExistsError(std::string m) {
    return MakeError(ErrorCode::kAlreadyExists, std::move(m));
}
inline std::unexpected<Error> FailedPreconditionError(std::string m) {
    return MakeError(ErrorCode::kFailedPrecondition, std::move(m));
}
inline std::unexpected<Error> InternalError(std::string m) {
    return MakeError(ErrorCode::kInternal, std::move(m));
}
inline std::unexpected<Error> UnavailableError(std::string m) {
    return MakeError(ErrorCode::kUnavailable, std::move(m));
}
inline std::unexpected<Error> DataLossError(std::string m) {
    return MakeError(ErrorCode::kDataLoss, std::move(m));
}
inline std::unexpected<Error> CancelledError(std::string m) {
    return MakeError(ErrorCode::kCancelled, std::move(m));
}
inline std::unexpected<Error> DeadlineExceededError(std::string m) {
    return MakeError(ErrorCode::kDeadlineExceeded, std::move(m));
}
inline std::unexpected<Error> PermissionDeniedError(std::string m) {
    return MakeError(ErrorCode::kPermissionDenied, std::move(m));
}
inline std::unexpected<Error> ResourceExhaustedError(std::string m, std::string reason = {}) {
    ErrorDetails d;
    d.reason = std::move(reason);
    return MakeError(ErrorCode::kResourceExhausted, std::move(m), std::move(d));
}
inline std::unexpected<Error> UnimplementedError(std::string m) {
    return MakeError(ErrorCode::kUnimplemented, std::move(m));
}

}  // namespace strowger

#define STROWGER_CONCAT_INNER(a, b) a##b
#define STROWGER_CONCAT(a, b) STROWGER_CONCAT_INNER(a, b)

// Returns the error of `expr` (a Result) from the enclosing function.
#define STROWGER_TRY(expr)                                                   \
    do {                                                                     \
        auto&& strowger_try_result_ = (expr);                                \
        if (!strowger_try_result_) {                                         \
            return std::unexpected(std::move(strowger_try_result_).error()); \
        }                                                                    \
    } while (false)

// As STROWGER_TRY, inside a coroutine (`expr` may contain co_await).
#define STROWGER_CO_TRY(expr)                                                   \
    do {                                                                        \
        auto strowger_try_result_ = (expr);                                     \
        if (!strowger_try_result_) {                                            \
            co_return std::unexpected(std::move(strowger_try_result_).error()); \
        }                                                                       \
    } while (false)

#define STROWGER_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)        \
    auto tmp = (expr);                                        \
    if (!tmp) return std::unexpected(std::move(tmp).error()); \
    lhs = std::move(*tmp)

// `lhs = value of expr`, or return its error. `lhs` may declare: ASSIGN_OR_RETURN(auto x, F()).
#define STROWGER_ASSIGN_OR_RETURN(lhs, expr) \
    STROWGER_ASSIGN_OR_RETURN_IMPL(STROWGER_CONCAT(strowger_aor_, __LINE__), lhs, expr)

#define STROWGER_CO_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)        \
    auto tmp = (expr);                                           \
    if (!tmp) co_return std::unexpected(std::move(tmp).error()); \
    lhs = std::move(*tmp)

// As STROWGER_ASSIGN_OR_RETURN, inside a coroutine.
#define STROWGER_CO_ASSIGN_OR_RETURN(lhs, expr) \
    STROWGER_CO_ASSIGN_OR_RETURN_IMPL(STROWGER_CONCAT(strowger_coaor_, __LINE__), lhs, expr)
