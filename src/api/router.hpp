// The route table: every endpoint of the daemon, with the role it needs and what the OpenAPI
// document says of it. One table serves requests and generates `GET /api/openapi.json`
// (openapi.hpp), so the document cannot drift from what is served.
//
// Dispatch: the path is matched against each route's pattern ("/api/runs/{id}/events"); no
// match is 404, a match with another method 405 (with Allow). Then authentication
// (docs/formats/api.md, "Tokens and roles"): a token in the query string is refused (400); a
// route above kPublic needs `Authorization: Bearer <token>` (401 without a valid one) of a
// role at least its own (403).
//
// Thread-safety: Dispatch may run concurrently on one executor; Add before serving.
#pragma once

#include <boost/json/value.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/http.hpp"
#include "core/asio.hpp"
#include "core/json.hpp"

namespace strowger::api {

// A parameter in the query string, a header or the path, as documented.
struct ParamDoc {
    std::string name;
    std::string in = "query";     // "query" | "path" | "header"
    std::string type = "string";  // JSON Schema type: "string" | "integer" | "boolean"
    std::string description;
    bool required = false;
};

struct ResponseDoc {
    int status = 200;
    std::string description;
    // A components/schemas name ("Run"), or "" for no body.
    std::string schema;
    std::string content_type = "application/json";
};

using Handler = std::function<Awaitable<Response>(Request)>;

struct Route {
    std::string method;
    std::string pattern;  // "/api/runs/{id}"; a {name} segment matches one path segment
    Role role = Role::kViewer;
    std::string operation_id;
    std::string summary;
    std::string tag;
    std::vector<ParamDoc> params;  // query and header parameters (path ones are derived)
    std::string request_schema;    // components/schemas name of the JSON body, "" = none
    bool request_required = false;
    std::vector<ResponseDoc> responses;  // problem responses for 400/401/403/404 are added
    Handler handler;
};

// A route's JSON request body, as documented: a components/schemas name and whether a request
// must send it.
struct RequestDoc {
    std::string schema;
    bool required = false;
};
inline RequestDoc Body(std::string schema) {
    return RequestDoc{std::move(schema), true};
}
inline RequestDoc OptionalBody(std::string schema) {
    return RequestDoc{std::move(schema), false};
}
inline ResponseDoc Ok(int status, std::string description, std::string schema,
                      std::string content_type = "application/json") {
    return ResponseDoc{status, std::move(description), std::move(schema), std::move(content_type)};
}

// Who a token is.
struct Identity {
    std::string name;
    Role role = Role::kPublic;
};

class Router {
  public:
    using Authenticate = std::function<std::optional<Identity>(std::string_view token)>;
    // Called after each request with the route's pattern ("" if none matched), the method and
    // the status, and the time taken.
    using Observe = std::function<void(const std::string& pattern, const std::string& method,
                                       int status, std::chrono::nanoseconds elapsed)>;

    explicit Router(Authenticate authenticate) : authenticate_(std::move(authenticate)) {}

    void Add(Route route);
    void SetObserver(Observe observe) { observe_ = std::move(observe); }
    const std::vector<Route>& routes() const { return routes_; }

    Awaitable<Response> Dispatch(Request request);

  private:
    struct Compiled {
        std::vector<std::string> segments;  // "{id}" for a parameter
    };
    // The route matching `method` and `path` (params filled), or null; `allowed` gets the
    // methods of routes whose pattern matches.
    const Route* Match(const std::string& method, const std::string& path,
                       std::map<std::string, std::string, std::less<>>& params,
                       std::vector<std::string>& allowed) const;
    Response Authorize(const Route& route, Request& request) const;

    Authenticate authenticate_;
    Observe observe_;
    std::vector<Route> routes_;
    std::vector<Compiled> compiled_;
};

// How a route file fills the router: one call per route, in the order of the table, with the
// tag (the OpenAPI group) the following routes share.
class RouteTable {
  public:
    RouteTable(Router& router, std::string tag) : router_(router), tag_(std::move(tag)) {}
    void SetTag(std::string tag) { tag_ = std::move(tag); }
    void Add(std::string method, std::string pattern, Role role, std::string operation_id,
             std::string summary, Handler handler, std::vector<ResponseDoc> responses,
             std::vector<ParamDoc> params = {}, RequestDoc request = {});

  private:
    Router& router_;
    std::string tag_;
};

// Splits "/a/b/c" into {"a", "b", "c"}.
std::vector<std::string_view> PathSegments(std::string_view path);

}  // namespace strowger::api
