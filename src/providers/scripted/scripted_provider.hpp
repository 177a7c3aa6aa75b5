// `scripted:` — a deterministic provider answering from a file (docs/formats/scripted_provider.md).
//
// Thread-safety: Complete() may be called concurrently; rule counters are mutex-protected.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "providers/provider.hpp"

namespace re2 {
class RE2;
}  // namespace re2

namespace YAML {
class Node;
}  // namespace YAML

namespace strowger::providers {

class ScriptedProvider final : public Provider {
  public:
    struct ScriptedToolCall {
        std::string name;
        std::string arguments;  // JSON text
    };

    struct Rule {
        // Conditions
        std::string agent;
        std::string step;
        std::string prompt_contains;
        // RE2 syntax, searched in the prompt (linear time: a pattern cannot stall the event
        // loop whatever the prompt). Shared: rules are copied while the file is read.
        std::shared_ptr<const re2::RE2> prompt_regex;
        std::string system_contains;
        int64_t attempt = 0;  // 0 = any
        int64_t times = -1;   // -1 = unlimited
        // Action
        std::vector<std::string> replies;  // one entry for `reply`
        bool cycle = false;
        std::string reply_template;
        bool has_template = false;
        std::optional<std::string> error;
        ErrorCode error_code = ErrorCode::kUnavailable;
        bool hang = false;
        std::optional<int64_t> latency_ms;
        std::optional<int64_t> input_tokens;
        std::optional<int64_t> output_tokens;
        std::string finish_reason = "stop";
        std::vector<ScriptedToolCall> tool_calls;
        int line = 0;
        // State
        int64_t used = 0;  // GUARDED_BY(ScriptedProvider::mutex_)
    };

    // Parses a scripted file (through ParseYaml: bounded nesting and alias expansion); errors
    // name the file, line, column and field. Latencies are timed on `executor`.
    static Result<std::shared_ptr<ScriptedProvider>> LoadFile(const std::string& path,
                                                              Executor executor);
    static Result<std::shared_ptr<ScriptedProvider>> LoadText(std::string_view text,
                                                              const std::string& file_name,
                                                              Executor executor);

    std::string_view name() const override { return "scripted"; }
    Awaitable<Result<Completion>> Complete(CompletionRequest request, Deadline deadline) override;
    // Without a coroutine: an answer with no latency is returned at once; a later one waits on
    // a timer that holds the call.
    std::optional<Result<Completion>> Start(CompletionRequest request, Deadline deadline,
                                            const Executor& executor,
                                            asio::cancellation_slot cancel,
                                            CompletionHandler done) override;

    // Total calls answered (for tests).
    int64_t calls() const;
    // Prices the file declares (`prices: {input_per_mtok, output_per_mtok}`), for cost tests.
    const Pricing& pricing() const { return pricing_; }

  private:
    // What a call gets: decided at once (under the lock), delivered after the latency.
    struct Answer {
        Result<Completion> result;
        int64_t latency_ms = 0;
        bool hang = false;
        bool Waits() const { return hang || latency_ms > 0; }
    };

    ScriptedProvider() = default;
    // LoadText's walk of the parsed file (it may throw YAML::Exception).
    static Result<std::shared_ptr<ScriptedProvider>> FromYaml(const YAML::Node& root,
                                                              const std::string& file,
                                                              Executor executor);
    Answer Decide(const CompletionRequest& request);
    // `executor` (the registry's, which outlives the call) makes the latency timer: asking the
    // coroutine for its own would keep a copy in the waiting frame.
    static Awaitable<Result<Completion>> Deliver(Answer answer, Deadline deadline,
                                                 StreamSink* stream, const Executor& executor);
    // Start's wait for a later answer, on a timer of type Timer.
    template <typename Timer>
    static void Wait(const typename Timer::executor_type& executor, Answer answer,
                     Deadline deadline, StreamSink* stream, asio::cancellation_slot cancel,
                     CompletionHandler done);
    // The latency timer's expiry for `answer`.
    template <typename Timer>
    static void Arm(Timer& timer, const Answer& answer, Deadline deadline);
    // What the call returns once its latency (if any) has passed or `ec` ended the wait.
    static Result<Completion> Finish(const boost::system::error_code& ec, Answer& answer,
                                     Deadline deadline, StreamSink* stream);

    std::string file_;
    Executor executor_;  // the registry's
    int64_t default_latency_ms_ = 0;
    Pricing pricing_;
    std::optional<std::string> default_reply_;
    mutable std::mutex mutex_;
    std::vector<Rule> rules_;  // GUARDED_BY(mutex_) for counters
    int64_t calls_ = 0;        // GUARDED_BY(mutex_)
};

// Registers "scripted" in `registry`; instances are shared per absolute file path.
void RegisterScriptedProvider(ProviderRegistry& registry);

}  // namespace strowger::providers
