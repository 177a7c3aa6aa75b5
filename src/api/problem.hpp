// Responses: JSON bodies and RFC 9457 problem details (application/problem+json), with the
// field path of each invalid field (docs/formats/api.md, "Errors").
//
// Thread-safety: free functions, reentrant.
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "api/http.hpp"
#include "core/json.hpp"
#include "core/result.hpp"

namespace strowger::api {

// One invalid field of a request: its path ("input", "steps[0].agent_name") and what is wrong.
struct FieldError {
    std::string field;
    std::string message;
    int64_t line = 0;  // in a submitted workflow file, when known
    int64_t column = 0;
};

// A problem response: {type, title, status, detail, errors?}. `type` defaults to one derived
// from the status ("urn:strowger:problem:not-found").
Response Problem(int status, std::string detail, std::vector<FieldError> errors = {},
                 std::string_view type = {});
// The HTTP status an error code maps to (kNotFound 404, kInvalidArgument 400, ...).
int StatusFor(ErrorCode code);
// A problem response for `error`.
Response ProblemFor(const Error& error);
// An invalid request field: 400 with one field error.
Response FieldProblem(std::string field, std::string message);

Response JsonResponse(int status, const json::value& body);
// `body` is already-encoded JSON.
Response RawJsonResponse(int status, std::string body);

}  // namespace strowger::api
