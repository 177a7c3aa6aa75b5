// An incremental parser of `text/event-stream` bodies (Server-Sent Events, WHATWG HTML 9.2), as
// streamed by OpenAI-compatible servers and the Anthropic Messages API.
//
// Feed() takes the body in pieces split at any byte: inside a field name, inside a `data:` line,
// between the CR and LF of a CRLF, inside a UTF-8 sequence. Only complete lines are interpreted,
// so a payload handed to the handler is always whole. Rules:
//  * lines end with CRLF, LF or a lone CR; a UTF-8 byte order mark at the very start is skipped;
//  * a line starting with ':' is a comment (servers send them as keep-alives) and is ignored;
//  * `field: value` (one space after the colon is dropped) or `field` alone (empty value);
//    fields `event`, `data` and `id` are kept, others (`retry`, unknown ones) ignored;
//  * several `data` lines join with '\n';
//  * a blank line dispatches the event; an event without any `data` line is dropped, as
//    browsers do. The event name defaults to "message".
// An event or line larger than `max_event_bytes` fails the stream (a server that never sends a
// blank line must not make us buffer without bound).
//
// At the end of the body, a pending partial event is not dispatched (the stream was cut short):
// HasPartialEvent() tells the caller so it can report truncation.
//
// Thread-safety: a plain value; one parser per stream, used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace strowger::http {

struct SseEvent {
    std::string_view event;  // "message" unless an `event:` field named it
    std::string_view data;
    std::string_view id;  // the last `id:` seen in the stream, "" if none
};

class SseParser {
  public:
    // Called once per dispatched event; the views are valid during the call only. An error
    // stops the parse: Feed() returns it and the parser refuses further input.
    using Handler = std::function<Status(const SseEvent&)>;

    static constexpr size_t kDefaultMaxEventBytes = size_t{16} << 20;

    explicit SseParser(Handler handler, size_t max_event_bytes = kDefaultMaxEventBytes);

    // Parses `bytes`, calling the handler for every event they complete. Returns the handler's
    // error, or kInternal "event exceeds N bytes"; after an error every call returns it again.
    Status Feed(std::string_view bytes);

    // True if bytes were received that are not yet part of a dispatched or dropped event: a
    // partial line, or field lines not yet followed by a blank line.
    bool HasPartialEvent() const;

    // Events dispatched so far.
    int64_t events() const { return events_; }

  private:
    Status Line(std::string_view line);
    Status Dispatch();

    Handler handler_;
    size_t max_event_bytes_;
    std::string line_;  // a line whose end has not arrived yet
    std::string event_;
    std::string data_;
    std::string id_;
    bool has_data_ = false;
    bool has_fields_ = false;  // any non-comment line since the last blank line
    bool skip_lf_ = false;     // the previous piece ended with CR: a leading LF belongs to it
    bool at_start_ = true;     // the BOM check is pending
    int64_t events_ = 0;
    std::optional<Error> error_;
};

}  // namespace strowger::http
