// Fuzzes the scripted provider's file (docs/formats/scripted_provider.md): any bytes through
// ScriptedProvider::LoadText, then a few calls matched against its rules (agents, steps,
// attempts, prompts with and without tool results), each answered at once or, when its rule
// waits (latency, hang), cancelled.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "providers/scripted/scripted_provider.hpp"

namespace {

using namespace strowger;
using providers::CompletionRequest;
using providers::Message;
using providers::Role;

class Sink : public providers::StreamSink {
  public:
    void OnDelta(std::string_view text) override { streamed_ += text.size(); }

  private:
    size_t streamed_ = 0;
};

CompletionRequest Request(std::string agent, std::string node, int64_t attempt,
                          std::string prompt) {
    CompletionRequest request;
    request.model = "fuzz.yaml";
    request.run_id = "run";
    request.agent = std::move(agent);
    request.node = std::move(node);
    request.attempt = attempt;
    request.messages.push_back(Message{Role::kSystem, "You are a careful reviewer.", {}, "", ""});
    request.messages.push_back(Message{Role::kUser, std::move(prompt), {}, "", ""});
    return request;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    asio::io_context io;
    auto provider = providers::ScriptedProvider::LoadText(text, "fuzz.yaml", io.get_executor());
    if (!provider) return 0;

    CompletionRequest requests[] = {
        Request("code-reviewer", "analyze", 1, "Analyze:\n\nint main() { return 0; }"),
        Request("writer", "summary", 2, "Summarize: security review of user_lookup.c"),
        Request("a", "b", 3, ""),
        Request("code-reviewer", "analyze", 1, "Analyze again"),
    };
    requests[3].messages.push_back(
        Message{Role::kAssistant, "", {{"call_1", "read_file", R"({"path":"a"})"}}, "", ""});
    requests[3].messages.push_back(Message{Role::kTool, "file text", {}, "call_1", "read_file"});
    Sink sink;
    requests[1].stream = &sink;

    for (auto& request : requests) {
        asio::cancellation_signal cancel;
        bool answered = false;
        std::optional<Result<providers::Completion>> now = (*provider)->Start(
            std::move(request), Deadline::Never(), io.get_executor(), cancel.slot(),
            [&answered](Result<providers::Completion>) { answered = true; });
        if (now) continue;
        // A rule that waits (latency or hang): cancelled rather than waited for.
        cancel.emit(asio::cancellation_type::terminal);
        io.restart();
        io.poll();
        if (!answered) __builtin_trap();  // a cancelled call must complete
    }
    return 0;
}
