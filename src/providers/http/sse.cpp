#include "providers/http/sse.hpp"

#include <utility>

namespace strowger::http {

namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

}  // namespace

SseParser::SseParser(Handler handler, size_t max_event_bytes)
    : handler_(std::move(handler)), max_event_bytes_(max_event_bytes) {}

bool SseParser::HasPartialEvent() const {
    return !line_.empty() || has_fields_;
}

Status SseParser::Feed(std::string_view bytes) {
    if (error_) return std::unexpected(*error_);
    size_t pos = 0;
    if (skip_lf_ && !bytes.empty()) {
        if (bytes.front() == '\n') pos = 1;
        skip_lf_ = false;
    }
    while (pos < bytes.size()) {
        size_t end = bytes.find_first_of("\r\n", pos);
        if (end == std::string_view::npos) {
            line_.append(bytes.substr(pos));
            if (line_.size() + data_.size() > max_event_bytes_) {
                error_ = Error(ErrorCode::kInternal,
                               "an event exceeds " + std::to_string(max_event_bytes_) + " bytes");
                return std::unexpected(*error_);
            }
            break;
        }
        // Whole lines are parsed straight from `bytes`; only a line split across pieces is copied.
        std::string_view line = bytes.substr(pos, end - pos);
        if (!line_.empty()) {
            line_.append(line);
            line = line_;
        }
        Status status = Line(line);
        line_.clear();
        if (!status) {
            error_ = status.error();
            return status;
        }
        pos = end + 1;
        if (bytes[end] == '\r') {
            if (pos == bytes.size()) {
                skip_lf_ = true;
            } else if (bytes[pos] == '\n') {
                ++pos;
            }
        }
    }
    return OkStatus();
}

Status SseParser::Line(std::string_view line) {
    if (at_start_) {
        at_start_ = false;
        if (line.starts_with(kByteOrderMark)) line.remove_prefix(kByteOrderMark.size());
    }
    if (line.empty()) return Dispatch();
    if (line.front() == ':') return OkStatus();
    has_fields_ = true;
    size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
        if (has_data_) data_.push_back('\n');
        data_.append(value);
        has_data_ = true;
        if (data_.size() > max_event_bytes_) {
            return InternalError("an event exceeds " + std::to_string(max_event_bytes_) + " bytes");
        }
    } else if (field == "event") {
        event_.assign(value);
    } else if (field == "id") {
        if (value.find('\0') == std::string_view::npos) id_.assign(value);
    }
    return OkStatus();
}

Status SseParser::Dispatch() {
    has_fields_ = false;
    if (!has_data_) {
        event_.clear();
        return OkStatus();
    }
    SseEvent event;
    event.event = event_.empty() ? std::string_view("message") : std::string_view(event_);
    event.data = data_;
    event.id = id_;
    ++events_;
    Status status = handler_(event);
    data_.clear();
    event_.clear();
    has_data_ = false;
    return status;
}

}  // namespace strowger::http
