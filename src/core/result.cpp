#include "core/result.hpp"

#include <array>

namespace strowger {
namespace {

constexpr std::array<std::string_view, 17> kNames = {
    "ok",
    "cancelled",
    "unknown",
    "invalid_argument",
    "deadline_exceeded",
    "not_found",
    "already_exists",
    "permission_denied",
    "resource_exhausted",
    "failed_precondition",
    "aborted",
    "out_of_range",
    "unimplemented",
    "internal",
    "unavailable",
    "data_loss",
    "unauthenticated",
};

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) {
    auto index = static_cast<size_t>(code);
    return index < kNames.size() ? kNames[index] : "unknown";
}

ErrorCode ErrorCodeFromName(std::string_view name) {
    for (size_t i = 0; i < kNames.size(); ++i) {
        if (kNames[i] == name) return static_cast<ErrorCode>(i);
    }
    return ErrorCode::kUnknown;
}

std::string Error::ToString() const {
    std::string out(ErrorCodeName(code_));
    out += ": ";
    out += message_;
    return out;
}

Error Error::WithPrefix(std::string_view prefix) const {
    Error copy = *this;
    copy.message_ = std::string(prefix) + message_;
    return copy;
}

bool IsRetryable(const Error& error) {
    switch (error.code()) {
        case ErrorCode::kUnavailable:
        case ErrorCode::kDeadlineExceeded:
        case ErrorCode::kAborted:
        case ErrorCode::kUnknown:
        case ErrorCode::kInternal:
            return true;
        default:
            return false;
    }
}

}  // namespace strowger
