// Model providers: the interface every model backend implements.
//
// A provider turns a conversation (messages, optional tools) into one assistant message:
// text, or tool calls for the agent loop to execute. It does not retry on its own (the step's
// error_mode decides; errors carry http_status and retry_after_ms for that); it never throws;
// it honours `deadline` and asio cancellation (a cancelled call returns kCancelled promptly
// and leaves nothing running).
//
// Thread-safety: a Provider may be called concurrently from the engine's executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/cancellation_signal.hpp>

#include "core/asio.hpp"
#include "core/checked_math.hpp"
#include "core/deadline.hpp"
#include "core/result.hpp"

namespace strowger::providers {

enum class Role { kSystem, kUser, kAssistant, kTool };

struct ToolCall {
    std::string id;
    std::string name;
    std::string arguments;  // JSON text, as the model produced it
};

struct Message {
    Role role = Role::kUser;
    std::string content;
    std::vector<ToolCall> tool_calls;  // assistant messages
    std::string tool_call_id;          // tool messages
    std::string name;                  // tool messages: the tool's name
};

struct ToolSpec {
    std::string name;
    std::string description;
    std::string parameters_schema;  // JSON Schema text
};

// Receives streamed text as it arrives (live progress); the final text is in the Completion.
// Calls are sequential and in order, all before Complete() delivers its result; they may run on
// an I/O thread of the HTTP client and must not block.
class StreamSink {
  public:
    virtual ~StreamSink() = default;
    virtual void OnDelta(std::string_view text) = 0;
    // The text delivered so far is void: the call is being retried and will stream again from
    // the start (providers/limits retries a call that failed mid-stream).
    virtual void OnReset() {}
};

// Told of each failed try of a call that the provider layer tries again (429, 5xx, a dropped
// connection): the engine records them in the ledger (llm.retried). Called on the calling
// coroutine's thread, before the wait for the next try.
class RetryListener {
  public:
    virtual ~RetryListener() = default;
    virtual void OnRetry(const Error& error, int64_t failed_try,
                         std::chrono::milliseconds delay) = 0;
};

struct CompletionRequest {
    std::string model;  // without the "provider:" prefix
    std::vector<Message> messages;
    std::vector<ToolSpec> tools;
    std::optional<double> temperature;
    std::optional<int64_t> max_output_tokens;
    // Who is asking, for scripted matching, logs and idempotency keys.
    std::string run_id;
    std::string node;
    std::string agent;
    int64_t attempt = 1;
    int64_t turn = 1;
    StreamSink* stream = nullptr;      // may be null
    RetryListener* retries = nullptr;  // may be null
};

struct Usage {
    int64_t input_tokens = 0;
    int64_t output_tokens = 0;
};

// The most tokens one call may report on either side. A provider that reports more (or a
// negative count, or one that is not an integer) is broken or hostile: its answer is a protocol
// error (kInternal, a malformed answer: the provider layer does not retry it; the step's
// error_mode decides), never a count that budgets and prices would be computed from.
inline constexpr int64_t kMaxTokensPerCall = 1'000'000'000;

// OK if both counts of `usage` are in 0..kMaxTokensPerCall; else the protocol error
// "<provider>: usage reports <field> = <value> (...)". Providers check the counts they parse
// with the fields' own names; the engine checks every completion with this, whatever its
// provider.
Status CheckUsage(std::string_view provider, const Usage& usage);

struct Completion {
    std::string content;
    std::vector<ToolCall> tool_calls;
    Usage usage;
    std::string finish_reason;  // "stop", "tool_calls", "length", ...
    std::string model;          // as reported by the provider
};

// Gets the result of a call started with Provider::Start.
using CompletionHandler = std::move_only_function<void(Result<Completion>)>;

class Provider {
  public:
    virtual ~Provider() = default;
    // "openai", "scripted", ...
    virtual std::string_view name() const = 0;
    virtual Awaitable<Result<Completion>> Complete(CompletionRequest request,
                                                   Deadline deadline) = 0;

    // The callback form of Complete, for a caller that holds no coroutine while the model
    // thinks. Returns the result when it is known at once (`done` is then dropped uncalled).
    // Otherwise returns nullopt and calls `done` once, later (never inside Start), on
    // `executor`. Emitting on `cancel` (may be unconnected) cancels the call: `done` then gets
    // kCancelled; once `done` is called, do not emit on it, and bind it again only from a
    // later handler (the default's spawn still holds it while `done` runs). The default
    // spawns Complete on `executor`.
    virtual std::optional<Result<Completion>> Start(CompletionRequest request, Deadline deadline,
                                                    const Executor& executor,
                                                    asio::cancellation_slot cancel,
                                                    CompletionHandler done);

    // What the provider needs from the environment before a call can succeed (an API key
    // variable): an error naming it, checked before a run is created. OK by default.
    virtual Status CheckEnvironment() const { return OkStatus(); }
};

// Price of a model, for cost accounting (USD per million tokens, as nano-USD per token).
struct Pricing {
    int64_t input_nano_usd_per_token = 0;
    int64_t output_nano_usd_per_token = 0;
    // Saturates at INT64_MAX nano-USD (≈ $9.2 billion) rather than overflowing.
    int64_t CostNanoUsd(const Usage& usage) const {
        return SaturatingAdd(SaturatingMul(usage.input_tokens, input_nano_usd_per_token),
                             SaturatingMul(usage.output_tokens, output_nano_usd_per_token));
    }
};

// The most a price may be, in USD per million tokens (far above any model's list price): a
// providers file or scripted file with more is refused. With kMaxTokensPerCall, one call's
// cost stays below 2 * 10^18 nano-USD.
inline constexpr double kMaxUsdPerMillionTokens = 1'000'000;

// A provider instance plus the model name to pass it.
struct ResolvedModel {
    std::shared_ptr<Provider> provider;
    std::string provider_name;
    std::string model;
    Pricing pricing;
};

// Creates providers from "provider:model" strings and caches them, so agents that share a
// provider share its connections, counters and limits.
//
// Thread-safety: Resolve is thread-safe.
class ProviderRegistry {
  public:
    // Builds a provider for `model` ("gpt-4o-mini", a scripted file path...). `base_dir`
    // resolves relative paths. Returns the instance and the model name to send.
    using Factory =
        std::function<Result<ResolvedModel>(std::string_view model, std::string_view base_dir)>;

    explicit ProviderRegistry(Executor executor) : executor_(std::move(executor)) {}

    void Register(std::string provider_name, Factory factory);
    std::vector<std::string> Names() const;

    // Resolves "provider:model". Cached per (provider, model, base_dir).
    Result<ResolvedModel> Resolve(std::string_view spec, std::string_view base_dir);

    const Executor& executor() const { return executor_; }

  private:
    Executor executor_;
    std::mutex mutex_;
    std::map<std::string, Factory> factories_;    // GUARDED_BY(mutex_)
    std::map<std::string, ResolvedModel> cache_;  // GUARDED_BY(mutex_)
};

}  // namespace strowger::providers
