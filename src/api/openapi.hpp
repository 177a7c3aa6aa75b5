// The OpenAPI 3.1 document of the daemon, generated from the route table (every route, its
// parameters, request body and responses) and the component schemas of openapi.cpp, so what
// is documented is what is served. tests/integration/serve_api_test.cpp validates every
// route's real responses against it (scripts/validate_openapi.py, python3-jsonschema).
#pragma once

#include <string>

#include "api/router.hpp"

namespace strowger::api {

// The document as JSON text.
std::string OpenApiDocument(const Router& router);

}  // namespace strowger::api
