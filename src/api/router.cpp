#include "api/router.hpp"

#include <chrono>
#include <exception>

#include <spdlog/spdlog.h>

#include "api/problem.hpp"

namespace strowger::api {

std::vector<std::string_view> PathSegments(std::string_view path) {
    std::vector<std::string_view> segments;
    size_t start = 0;
    while (start < path.size()) {
        if (path[start] == '/') {
            ++start;
            continue;
        }
        size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        segments.push_back(path.substr(start, end - start));
        start = end;
    }
    return segments;
}

void Router::Add(Route route) {
    Compiled compiled;
    for (auto segment : PathSegments(route.pattern)) compiled.segments.emplace_back(segment);
    routes_.push_back(std::move(route));
    compiled_.push_back(std::move(compiled));
}

const Route* Router::Match(const std::string& method, const std::string& path,
                           std::map<std::string, std::string, std::less<>>& params,
                           std::vector<std::string>& allowed) const {
    // Segments decoded one by one: an encoded '/' (%2F) stays inside its segment (task ids
    // such as "deploy/1/1" are one path parameter).
    std::vector<std::string> segments;
    for (auto raw : PathSegments(path)) {
        auto decoded = PercentDecode(raw, false);
        if (!decoded) return nullptr;
        segments.push_back(std::move(*decoded));
    }
    const Route* found = nullptr;
    for (size_t r = 0; r < routes_.size(); ++r) {
        const auto& pattern = compiled_[r].segments;
        if (pattern.size() != segments.size()) continue;
        bool match = true;
        for (size_t i = 0; i < pattern.size() && match; ++i) {
            const auto& p = pattern[i];
            if (p.size() >= 2 && p.front() == '{' && p.back() == '}') {
                match = !segments[i].empty();
            } else {
                match = p == segments[i];
            }
        }
        if (!match) continue;
        allowed.push_back(routes_[r].method);
        if (found || routes_[r].method != method) continue;
        found = &routes_[r];
        params.clear();
        for (size_t i = 0; i < pattern.size(); ++i) {
            const auto& p = pattern[i];
            if (p.size() >= 2 && p.front() == '{') {
                params.emplace(p.substr(1, p.size() - 2), segments[i]);
            }
        }
    }
    return found;
}

Response Router::Authorize(const Route& route, Request& request) const {
    // A token in a URL ends up in logs, proxies and browser history: refused everywhere.
    for (const char* name : {"access_token", "token", "api_key", "apikey"}) {
        if (request.Query(name)) {
            return Problem(400,
                           std::string("a token in the query string (") + name +
                               ") is refused; send it as `Authorization: Bearer <token>`",
                           {FieldError{name, "tokens are not accepted in the URL"}},
                           "urn:strowger:problem:token-in-url");
        }
    }
    if (route.role == Role::kPublic) return Response{};
    std::string header = request.Header("authorization");
    std::string_view token;
    if (header.size() > 7 &&
        (header.compare(0, 7, "Bearer ") == 0 || header.compare(0, 7, "bearer ") == 0)) {
        token = std::string_view(header).substr(7);
    }
    if (token.empty()) {
        Response response = Problem(401, "this endpoint needs `Authorization: Bearer <token>`", {},
                                    "urn:strowger:problem:unauthenticated");
        response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"strowger\"");
        return response;
    }
    auto identity = authenticate_(token);
    if (!identity) {
        Response response = Problem(401, "the token is not valid (unknown or revoked)", {},
                                    "urn:strowger:problem:unauthenticated");
        response.headers.emplace_back("WWW-Authenticate",
                                      "Bearer realm=\"strowger\", error=\"invalid_token\"");
        return response;
    }
    if (static_cast<int>(identity->role) < static_cast<int>(route.role)) {
        return Problem(403,
                       "token " + identity->name + " has role " +
                           std::string(RoleName(identity->role)) + "; this needs " +
                           std::string(RoleName(route.role)),
                       {}, "urn:strowger:problem:forbidden");
    }
    request.actor = identity->name;
    request.role = identity->role;
    return Response{};
}

Awaitable<Response> Router::Dispatch(Request request) {
    const auto start = std::chrono::steady_clock::now();
    const std::string method = request.method;
    std::map<std::string, std::string, std::less<>> params;
    std::vector<std::string> allowed;
    const Route* route = Match(request.method, request.path, params, allowed);
    Response response;
    if (!route) {
        if (!PercentDecode(request.path, false)) {
            response = Problem(400, "the path has a bad percent-escape");
        } else if (allowed.empty()) {
            response = Problem(404, "no endpoint " + request.path);
        } else {
            std::string allow;
            for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
            response = Problem(405, request.method + " is not allowed on " + request.path +
                                        " (allowed: " + allow + ")");
            response.headers.emplace_back("Allow", allow);
        }
    } else {
        request.params = std::move(params);
        response = Authorize(*route, request);
        if (response.status == 200) {
            try {
                response = co_await route->handler(std::move(request));
            } catch (const std::exception& e) {
                // Handlers report failures as values; an exception is a bug in a dependency.
                spdlog::error("{} {}: handler threw: {}", route->method, route->pattern, e.what());
                response = Problem(500, "internal error");
            }
        }
    }
    if (observe_) {
        observe_(route ? route->pattern : std::string(), method, response.status,
                 std::chrono::steady_clock::now() - start);
    }
    co_return response;
}

void RouteTable::Add(std::string method, std::string pattern, Role role, std::string operation_id,
                     std::string summary, Handler handler, std::vector<ResponseDoc> responses,
                     std::vector<ParamDoc> params, RequestDoc request) {
    Route route;
    route.method = std::move(method);
    route.pattern = std::move(pattern);
    route.role = role;
    route.operation_id = std::move(operation_id);
    route.summary = std::move(summary);
    route.tag = tag_;
    route.handler = std::move(handler);
    route.responses = std::move(responses);
    route.params = std::move(params);
    route.request_schema = std::move(request.schema);
    route.request_required = request.required;
    router_.Add(std::move(route));
}

}  // namespace strowger::api
