#include "api/problem.hpp"

#include <boost/json.hpp>

namespace strowger::api {
namespace {

std::string Slug(int status) {
    std::string slug;
    for (char c : ReasonPhrase(status)) {
        if (c == ' ') {
            slug += '-';
        } else {
            slug += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
    }
    return slug;
}

}  // namespace

Response Problem(int status, std::string detail, std::vector<FieldError> errors,
                 std::string_view type) {
    json::object body;
    body["type"] = type.empty() ? "urn:strowger:problem:" + Slug(status) : std::string(type);
    body["title"] = std::string(ReasonPhrase(status));
    body["status"] = status;
    body["detail"] = std::move(detail);
    if (!errors.empty()) {
        json::array list;
        for (auto& e : errors) {
            json::object item;
            item["field"] = std::move(e.field);
            item["message"] = std::move(e.message);
            if (e.line > 0) {
                item["line"] = e.line;
                item["column"] = e.column;
            }
            list.push_back(std::move(item));
        }
        body["errors"] = std::move(list);
    }
    Response response;
    response.status = status;
    response.content_type = "application/problem+json";
    response.body = json::serialize(body);
    return response;
}

int StatusFor(ErrorCode code) {
    switch (code) {
        case ErrorCode::kOk:
            return 200;
        case ErrorCode::kInvalidArgument:
        case ErrorCode::kOutOfRange:
            return 400;
        case ErrorCode::kUnauthenticated:
            return 401;
        case ErrorCode::kPermissionDenied:
            return 403;
        case ErrorCode::kNotFound:
            return 404;
        case ErrorCode::kAlreadyExists:
        case ErrorCode::kFailedPrecondition:
        case ErrorCode::kAborted:
            return 409;
        case ErrorCode::kResourceExhausted:
            return 429;
        case ErrorCode::kCancelled:
        case ErrorCode::kUnavailable:
            return 503;
        case ErrorCode::kDeadlineExceeded:
            return 504;
        case ErrorCode::kUnimplemented:
            return 501;
        case ErrorCode::kUnknown:
        case ErrorCode::kInternal:
        case ErrorCode::kDataLoss:
            return 500;
    }
    return 500;
}

Response ProblemFor(const Error& error) {
    int status = StatusFor(error.code());
    std::string type;
    if (error.code() == ErrorCode::kDataLoss) type = "urn:strowger:problem:ledger-does-not-verify";
    return Problem(status, error.message(), {}, type);
}

Response FieldProblem(std::string field, std::string message) {
    std::string detail = field + ": " + message;
    return Problem(400, std::move(detail), {FieldError{std::move(field), std::move(message)}});
}

Response JsonResponse(int status, const json::value& body) {
    return RawJsonResponse(status, json::serialize(body));
}

Response RawJsonResponse(int status, std::string body) {
    Response response;
    response.status = status;
    response.body = std::move(body);
    return response;
}

}  // namespace strowger::api
