// Fuzzes the SSE parser (providers/http/sse.hpp) and the two streamed-completion parsers built on
// it (OpenAI's ChatCompletionStreamParser, Anthropic's MessagesStreamParser).
//
// The first byte picks how the rest, the body, is cut into pieces; the body is parsed whole and
// in those pieces, which must give the same result (the parsers take pieces split at any byte).
// For the SSE parser, a stream that fails over its size limit may fail at a different point
// when split (a long line is only measured while it is buffered): then the events before the
// failure must agree.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "providers/anthropic/anthropic_provider.hpp"
#include "providers/http/sse.hpp"
#include "providers/openai/openai_provider.hpp"

namespace {

using namespace strowger;

[[noreturn]] void Fail(const char* what) {
    std::fprintf(stderr, "sse_fuzz: %s\n", what);
    std::abort();
}

// Piece sizes: 1..16 bytes, cycling through a pattern drawn from `seed`.
std::vector<std::string_view> Split(std::string_view body, uint8_t seed) {
    std::vector<std::string_view> pieces;
    size_t sizes[4] = {size_t{1} + (seed & 3), size_t{1} + ((seed >> 2) & 15), 1,
                       size_t{1} + (seed >> 4)};
    for (size_t i = 0; !body.empty(); ++i) {
        size_t n = std::min(sizes[i % 4], body.size());
        pieces.push_back(body.substr(0, n));
        body.remove_prefix(n);
    }
    return pieces;
}

struct SseOutcome {
    std::vector<std::string> events;  // "event\x1f data\x1f id"
    bool ok = true;
    bool partial = false;
};

SseOutcome ParseSse(const std::vector<std::string_view>& pieces) {
    constexpr size_t kLimit = 512;  // small, so the fuzzer meets it
    SseOutcome outcome;
    http::SseParser parser(
        [&](const http::SseEvent& event) -> Status {
            outcome.events.push_back(std::string(event.event) + '\x1f' + std::string(event.data) +
                                     '\x1f' + std::string(event.id));
            // An event may fail the stream: "error" does, as a provider's handler would.
            if (event.event == "error") return InternalError("error event");
            return OkStatus();
        },
        kLimit);
    for (std::string_view piece : pieces) {
        if (!parser.Feed(piece)) {
            outcome.ok = false;
            break;
        }
    }
    outcome.partial = parser.HasPartialEvent();
    return outcome;
}

bool IsPrefix(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

std::string Describe(const Result<providers::Completion>& completion) {
    if (!completion) return "error: " + completion.error().ToString();
    std::string text = "content=" + completion->content + " finish=" + completion->finish_reason +
                       " model=" + completion->model +
                       " in=" + std::to_string(completion->usage.input_tokens) +
                       " out=" + std::to_string(completion->usage.output_tokens);
    for (const auto& call : completion->tool_calls) {
        text += " call(" + call.id + "," + call.name + "," + call.arguments + ")";
    }
    return text;
}

template <typename Parser>
std::string ParseCompletion(const std::vector<std::string_view>& pieces) {
    Parser parser;
    for (std::string_view piece : pieces) {
        if (!parser.Feed(piece)) break;
    }
    return Describe(parser.Finish());
}

template <typename Parser>
void CheckCompletion(std::string_view body, const std::vector<std::string_view>& pieces) {
    if (ParseCompletion<Parser>({body}) != ParseCompletion<Parser>(pieces)) {
        Fail("a streamed completion differs when its body arrives in pieces");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::vector<std::string_view> pieces = Split(body, data[0]);

    SseOutcome whole = ParseSse({body});
    SseOutcome split = ParseSse(pieces);
    if (whole.ok && split.ok) {
        if (whole.events != split.events) Fail("SSE events differ when the body is split");
        if (whole.partial != split.partial) Fail("SSE partial-event state differs when split");
    } else if (!IsPrefix(whole.events, split.events) && !IsPrefix(split.events, whole.events)) {
        Fail("SSE events before a failure differ when the body is split");
    }

    CheckCompletion<providers::ChatCompletionStreamParser>(body, pieces);
    CheckCompletion<providers::MessagesStreamParser>(body, pieces);
    return 0;
}
