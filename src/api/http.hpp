// The daemon's view of HTTP: a request as the server read it, a response as a handler returns
// it. Plain values, no Beast: routes and handlers are compiled without it (server.cpp is the
// one translation unit of the API that includes Beast).
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/asio.hpp"

namespace strowger::api {

// Who may call an endpoint: each role includes the ones before it (docs/formats/api.md).
enum class Role : int {
    kPublic = 0,  // no token needed (/healthz, /readyz)
    kViewer = 1,
    kOperator = 2,  // start, pause, resume, cancel, retry, rerun
    kApprover = 3,  // decide human tasks
    kAdmin = 4,     // workflows, tokens, retention
};
std::string_view RoleName(Role role);
// kPublic for an unknown name; `ok` says whether it was known ("public" is not a token role).
Role RoleFromName(std::string_view name, bool* ok);

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Request {
    std::string method;  // "GET", "POST", ...
    std::string target;  // as received
    std::string path;    // as received (percent-encoded), without the query: the router
                         // splits it at '/' and decodes each segment
    Fields query;        // percent-decoded, in order
    Fields headers;      // names lower-cased, in order
    std::string body;
    std::string remote;  // "ip:port" of the peer
    // Set by the router: the path's {parameters}, and who called (the token's name and role).
    std::map<std::string, std::string, std::less<>> params;
    std::string actor;
    Role role = Role::kPublic;

    // The first header or query parameter named `name` ("" / nullopt if absent).
    std::string Header(std::string_view name) const;
    std::optional<std::string> Query(std::string_view name) const;
    const std::string& Param(std::string_view name) const;
};

// Writes a streamed response (text/event-stream) chunk by chunk.
class StreamWriter {
  public:
    virtual ~StreamWriter() = default;
    // Sends `data` as one chunk. False once the client has gone or the write failed.
    virtual Awaitable<bool> Write(std::string data) = 0;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    Fields headers;
    // If set, the body is streamed: the headers go out (chunked), then `stream` writes until it
    // returns. Its waits are cancelled (terminal cancellation on the coroutine) when the client
    // goes away or the server drains.
    std::function<Awaitable<void>(StreamWriter&)> stream;
};

// Percent-decodes `text` ('+' as a space when `plus_is_space`); nullopt for a bad escape.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);
// Splits a target into its path (as it is) and its decoded query; false for a bad escape in the
// query.
bool SplitTarget(std::string_view target, std::string& path, Fields& query);
// The standard reason phrase of a status ("Not Found").
std::string_view ReasonPhrase(int status);

}  // namespace strowger::api
