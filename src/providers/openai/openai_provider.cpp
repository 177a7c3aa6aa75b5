#include "providers/openai/openai_provider.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <iomanip>
#include <locale>
#include <map>
#include <mutex>
#include <sstream>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "providers/http_completion.hpp"

namespace strowger::providers {
namespace {

std::string_view RoleName(Role role) {
    switch (role) {
        case Role::kSystem:
            return "system";
        case Role::kUser:
            return "user";
        case Role::kAssistant:
            return "assistant";
        case Role::kTool:
            return "tool";
    }
    return "user";
}

// The human-readable error a server put in its body: {"error": {"message": ...}},
// {"error": "..."} or {"message": ...}; else a preview of the body. Capped either way (a 5 MB
// body must not become a 5 MB error in the ledger and on the terminal).
std::string ErrorMessageFromBody(std::string_view body, std::string* code) {
    auto parsed = ParseJson(body);
    if (parsed && parsed->is_object()) {
        const json::object& object = parsed->as_object();
        if (const json::object* error = JsonObject(object, "error")) {
            if (code) *code = ServerText(JsonString(*error, "code"), 64);
            if (auto message = JsonString(*error, "message"); !message.empty()) {
                return ServerText(message);
            }
        }
        if (auto message = JsonString(object, "error"); !message.empty())
            return ServerText(message);
        if (auto message = JsonString(object, "message"); !message.empty()) {
            return ServerText(message);
        }
    }
    return BodyPreview(body);
}

// A parsed tool call id, or one made up from its position: some servers leave ids out, and the
// agent loop needs one to pair the call with its result.
std::string ToolCallId(std::string_view id, size_t position) {
    if (!id.empty()) return std::string(id);
    return "call_" + std::to_string(position + 1);
}

// Text of a message "content": a string, null, or (some servers) an array of text parts.
Result<std::string> ContentText(const json::value* content, std::string_view provider) {
    if (content == nullptr || content->is_null()) return std::string();
    if (content->is_string()) return std::string(content->as_string());
    if (content->is_array()) {
        std::string text;
        for (const auto& part : content->as_array()) {
            if (part.is_object()) text += JsonString(part.as_object(), "text");
        }
        return text;
    }
    return Malformed(provider, "message.content is neither a string nor null");
}

std::optional<int64_t> ParseDigits(std::string_view text) {
    text = Trim(text);
    if (text.empty()) return std::nullopt;
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || value < 0) return std::nullopt;
    // "1500.5" (retry-after-ms may carry a fraction): keep the integer part.
    if (end != text.data() + text.size() && *end != '.') return std::nullopt;
    return value;
}

}  // namespace

OpenAiConfig DefaultOpenAiConfig() {
    OpenAiConfig config;
    config.name = "openai";
    config.base_url = WithoutTrailingSlash(EnvOr("OPENAI_BASE_URL", "https://api.openai.com/v1"));
    config.api_key_env = "OPENAI_API_KEY";
    return config;
}

OpenAiConfig DefaultOllamaConfig() {
    OpenAiConfig config;
    config.name = "ollama";
    config.base_url = WithoutTrailingSlash(EnvOr("OLLAMA_BASE_URL", "http://localhost:11434/v1"));
    config.api_key_env = "";
    return config;
}

Result<std::string> ApiKeySource::Read() const {
    if (env_name_.empty()) return std::string();
    const char* key = std::getenv(env_name_.c_str());
    if (key == nullptr || *key == '\0') {
        return MakeError(ErrorCode::kUnauthenticated, env_name_ + " is not set");
    }
    std::string value(key);
    {
        std::lock_guard lock(mutex_);
        if (value == registered_) return value;
        registered_ = value;
    }
    RegisterSecret(value);
    return value;
}

OpenAiProvider::OpenAiProvider(OpenAiConfig config, std::shared_ptr<http::HttpClient> client)
    : config_(std::move(config)), client_(std::move(client)), key_(config_.api_key_env) {
    config_.base_url = WithoutTrailingSlash(std::move(config_.base_url));
    RegisterHeaderSecrets(config_.extra_headers);
    url_ = config_.base_url + "/chat/completions";
}

Result<std::string> BuildChatCompletionsBody(const CompletionRequest& request) {
    json::object body;
    body["model"] = request.model;
    json::array messages;
    for (const Message& message : request.messages) {
        json::object item;
        item["role"] = RoleName(message.role);
        if (message.role == Role::kAssistant && !message.tool_calls.empty()) {
            if (message.content.empty()) {
                item["content"] = nullptr;
            } else {
                item["content"] = message.content;
            }
            json::array tool_calls;
            for (const ToolCall& call : message.tool_calls) {
                json::object function;
                function["name"] = call.name;
                function["arguments"] = call.arguments.empty() ? "{}" : call.arguments;
                json::object entry;
                entry["id"] = call.id;
                entry["type"] = "function";
                entry["function"] = std::move(function);
                tool_calls.push_back(std::move(entry));
            }
            item["tool_calls"] = std::move(tool_calls);
        } else {
            item["content"] = message.content;
        }
        if (message.role == Role::kTool) item["tool_call_id"] = message.tool_call_id;
        messages.push_back(std::move(item));
    }
    body["messages"] = std::move(messages);
    if (request.stream != nullptr) {
        body["stream"] = true;
        json::object stream_options;
        stream_options["include_usage"] = true;
        body["stream_options"] = std::move(stream_options);
    }
    if (request.temperature) body["temperature"] = *request.temperature;
    if (request.max_output_tokens) body["max_tokens"] = *request.max_output_tokens;
    if (!request.tools.empty()) {
        json::array tools;
        for (const ToolSpec& tool : request.tools) {
            json::object function;
            function["name"] = tool.name;
            if (!tool.description.empty()) function["description"] = tool.description;
            if (Trim(tool.parameters_schema).empty()) {
                json::object empty_schema;
                empty_schema["type"] = "object";
                empty_schema["properties"] = json::object();
                function["parameters"] = std::move(empty_schema);
            } else {
                auto schema = ParseJson(tool.parameters_schema);
                if (!schema || !schema->is_object()) {
                    return InvalidArgumentError(
                        "tool '" + tool.name + "' has an invalid parameters schema: " +
                        (schema ? std::string("not a JSON object") : schema.error().message()));
                }
                function["parameters"] = std::move(*schema);
            }
            json::object entry;
            entry["type"] = "function";
            entry["function"] = std::move(function);
            tools.push_back(std::move(entry));
        }
        body["tools"] = std::move(tools);
    }
    return json::serialize(body);
}

Result<Completion> ParseChatCompletionsBody(std::string_view body, std::string_view provider) {
    auto parsed = ParseJson(body);
    if (!parsed) {
        return Malformed(provider, parsed.error().message() + " in " + BodyPreview(body));
    }
    if (!parsed->is_object()) return Malformed(provider, "not a JSON object");
    const json::object& root = parsed->as_object();
    const json::array* choices = JsonArray(root, "choices");
    if (choices == nullptr || choices->empty()) {
        std::string what = "no choices";
        if (root.contains("error")) what += " (error: " + ErrorMessageFromBody(body, nullptr) + ")";
        return Malformed(provider, what);
    }
    if (!choices->front().is_object()) return Malformed(provider, "choices[0] is not an object");
    const json::object& choice = choices->front().as_object();
    const json::object* message = JsonObject(choice, "message");
    if (message == nullptr) return Malformed(provider, "choices[0] has no message");

    Completion completion;
    STROWGER_ASSIGN_OR_RETURN(completion.content,
                              ContentText(message->if_contains("content"), provider));
    if (const json::value* calls = message->if_contains("tool_calls"); calls && !calls->is_null()) {
        if (!calls->is_array()) return Malformed(provider, "message.tool_calls is not an array");
        for (const auto& entry : calls->as_array()) {
            const json::object* function =
                entry.is_object() ? JsonObject(entry.as_object(), "function") : nullptr;
            if (function == nullptr || JsonString(*function, "name").empty()) {
                return Malformed(provider, "a tool call has no function name");
            }
            ToolCall call;
            call.id = ToolCallId(JsonString(entry.as_object(), "id"), completion.tool_calls.size());
            call.name = std::string(JsonString(*function, "name"));
            const json::value* arguments = function->if_contains("arguments");
            if (arguments == nullptr || arguments->is_null()) {
                call.arguments = "{}";
            } else if (arguments->is_string()) {
                call.arguments = std::string(arguments->as_string());
            } else {
                // Some servers send the arguments as an object rather than JSON text.
                call.arguments = json::serialize(*arguments);
            }
            completion.tool_calls.push_back(std::move(call));
        }
    }
    completion.finish_reason = std::string(JsonString(choice, "finish_reason"));
    if (completion.finish_reason.empty()) {
        completion.finish_reason = completion.tool_calls.empty() ? "stop" : "tool_calls";
    }
    STROWGER_ASSIGN_OR_RETURN(const json::object* usage,
                              UsageObject(root, provider, Delivery::kBody));
    if (usage) {
        STROWGER_ASSIGN_OR_RETURN(completion.usage.input_tokens,
                                  UsageCount(*usage, "prompt_tokens", provider, Delivery::kBody));
        STROWGER_ASSIGN_OR_RETURN(
            completion.usage.output_tokens,
            UsageCount(*usage, "completion_tokens", provider, Delivery::kBody));
    }
    completion.model = std::string(JsonString(root, "model"));
    return completion;
}

// Longer waits are clamped to this (about 35,000 years; it keeps the milliseconds in range).
constexpr int64_t kMaxRetryAfterSeconds = int64_t{1} << 40;

int64_t ParseRetryAfter(std::string_view value, std::chrono::system_clock::time_point now) {
    value = Trim(value);
    if (value.empty()) return -1;
    if (auto seconds = ParseDigits(value); seconds && value.find('.') == std::string_view::npos) {
        return std::min<int64_t>(*seconds, kMaxRetryAfterSeconds) * 1000;
    }
    // HTTP-date: IMF-fixdate, then the obsolete RFC 850 and asctime forms (RFC 9110 5.6.7).
    static constexpr const char* kFormats[] = {"%a, %d %b %Y %H:%M:%S", "%A, %d-%b-%y %H:%M:%S",
                                               "%a %b %d %H:%M:%S %Y"};
    for (const char* format : kFormats) {
        std::tm tm{};
        std::istringstream in{std::string(value)};
        in.imbue(std::locale::classic());
        in >> std::get_time(&tm, format);
        if (in.fail()) continue;
        time_t when = timegm(&tm);
        if (when == static_cast<time_t>(-1)) continue;
        // In whole seconds first: a date centuries ahead does not fit system_clock's
        // nanoseconds (from_time_t overflowed; found by http_response_fuzz).
        const int64_t now_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
        const int64_t delta_s = static_cast<int64_t>(when) - now_ms / 1000;
        if (delta_s >= kMaxRetryAfterSeconds) return kMaxRetryAfterSeconds * 1000;
        return std::max<int64_t>(0, delta_s * 1000 - now_ms % 1000);
    }
    return -1;
}

Error ErrorFromHttpResponse(const http::HttpResponse& response, std::string_view provider) {
    int status = response.status;
    std::string code_in_body;
    std::string message = std::string(provider) + ": HTTP " + std::to_string(status) + ": " +
                          ErrorMessageFromBody(response.body, &code_in_body);
    if (HaveSecrets()) message = Redact(message);
    ErrorDetails details;
    details.http_status = status;
    if (auto ms = ParseDigits(response.Header("retry-after-ms"))) {
        details.retry_after_ms = *ms;
    } else if (auto header = response.Header("retry-after"); !header.empty()) {
        details.retry_after_ms = ParseRetryAfter(header, std::chrono::system_clock::now());
    }
    ErrorCode code = ErrorCode::kFailedPrecondition;
    switch (status) {
        case 400:
        case 413:
        case 422:
            code = ErrorCode::kInvalidArgument;
            break;
        case 401:
            code = ErrorCode::kUnauthenticated;
            break;
        case 403:
            code = ErrorCode::kPermissionDenied;
            break;
        case 404:
            code = ErrorCode::kNotFound;
            break;
        case 408:
            code = ErrorCode::kDeadlineExceeded;
            break;
        case 409:
            code = ErrorCode::kAborted;
            break;
        case 429:
            // OpenAI answers 429 both for rate limits (wait and retry) and for a spent quota
            // (retrying cannot help).
            if (code_in_body == "insufficient_quota") {
                code = ErrorCode::kResourceExhausted;
                details.reason = "insufficient_quota";
            } else {
                code = ErrorCode::kUnavailable;
            }
            break;
        default:
            if (status >= 500) code = ErrorCode::kUnavailable;
            break;
    }
    return Error(code, std::move(message), std::move(details));
}

Awaitable<Result<Completion>> OpenAiProvider::Complete(CompletionRequest request,
                                                       Deadline deadline) {
    // Not a coroutine: the request becomes HTTP here and is gone before the call suspends.
    http::HttpRequest http_request;
    http_request.method = "POST";
    http_request.url = url_;
    http::Headers& headers = http_request.headers;
    if (!key_.env_name().empty()) {
        auto key = key_.Read();
        if (!key) return Ready(std::unexpected(std::move(key).error()));
        headers.emplace_back("Authorization", "Bearer " + *key);
    }
    auto body = BuildChatCompletionsBody(request);
    if (!body) return Ready(std::unexpected(body.error().WithPrefix(config_.name + ": ")));
    http_request.body = std::move(*body);
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Accept", request.stream ? "text/event-stream" : "application/json");
    if (!request.run_id.empty()) headers.emplace_back("X-Strowger-Run", request.run_id);
    if (!request.node.empty()) headers.emplace_back("X-Strowger-Node", request.node);
    headers.emplace_back("X-Strowger-Attempt", std::to_string(request.attempt));
    for (const auto& header : config_.extra_headers) headers.push_back(header);

    Deadline call_deadline = deadline.Min(Deadline::After(config_.timeout));
    if (request.stream) {
        return SendStreaming(std::move(http_request), std::move(request.model), request.stream,
                             call_deadline);
    }
    return Send(std::move(http_request), std::move(request.model), call_deadline);
}

namespace {}  // namespace

Awaitable<Result<Completion>> OpenAiProvider::Send(http::HttpRequest request, std::string model,
                                                   Deadline deadline) {
    auto exchange = client_->Send(std::move(request), deadline);
    Result<http::HttpResponse> response = co_await std::move(exchange);
    co_return CompletionFromExchange(std::move(response), std::move(model), config_.name,
                                     &ErrorFromHttpResponse, &ParseChatCompletionsBody);
}

Awaitable<Result<Completion>> OpenAiProvider::SendStreaming(http::HttpRequest request,
                                                            std::string model, StreamSink* sink,
                                                            Deadline deadline) {
    ChatCompletionStreamParser parser(config_.name, sink);
    http::HttpClient::BodyChunkHandler on_chunk = [&parser](std::string_view bytes) {
        return parser.Feed(bytes);
    };
    auto response =
        co_await client_->SendStreaming(std::move(request), deadline, std::move(on_chunk));
    co_return StreamedCompletionFromExchange(std::move(response), parser, std::move(model),
                                             config_.name, &ErrorFromHttpResponse);
}

// ---- Streaming --------------------------------------------------------------------------------

ChatCompletionStreamParser::ChatCompletionStreamParser(std::string_view provider, StreamSink* sink)
    : provider_(provider),
      sink_(sink),
      sse_([this](const http::SseEvent& event) { return OnEvent(event); }) {}

Status ChatCompletionStreamParser::Fail(Error error) {
    error_ = std::move(error);
    return std::unexpected(*error_);
}

Status ChatCompletionStreamParser::Feed(std::string_view bytes) {
    if (error_) return std::unexpected(*error_);
    if (format_ == Format::kUnknown) {
        // The first significant byte decides: '{' is a plain JSON completion from a server that
        // ignored `stream: true`; anything else is an event stream.
        size_t first = bytes.find_first_not_of(" \t\r\n");
        if (first == std::string_view::npos) return OkStatus();
        bytes.remove_prefix(first);
        format_ = bytes.front() == '{' ? Format::kJson : Format::kSse;
    }
    if (format_ == Format::kJson) {
        if (json_body_.size() + bytes.size() > http::SseParser::kDefaultMaxEventBytes) {
            return Fail(
                Error(ErrorCode::kResourceExhausted, provider_ + ": response body is too large"));
        }
        json_body_.append(bytes);
        return OkStatus();
    }
    if (done_) return OkStatus();  // anything after [DONE] is ignored
    Status status = sse_.Feed(bytes);
    if (!status && !error_) {
        // The SSE layer's own failure (an oversized event).
        return Fail(MalformedStream(provider_, status.error().message()));
    }
    return status;
}

Status ChatCompletionStreamParser::OnEvent(const http::SseEvent& event) {
    if (done_) return OkStatus();
    std::string_view data = Trim(event.data);
    if (data == "[DONE]") {
        done_ = true;
        return OkStatus();
    }
    auto parsed = ParseJson(data);
    if (!parsed) {
        return Fail(MalformedStream(provider_,
                                    parsed.error().message() + " in " + BodyPreview(event.data)));
    }
    if (!parsed->is_object()) {
        return Fail(
            MalformedStream(provider_, "a chunk is not a JSON object: " + BodyPreview(event.data)));
    }
    ++chunks_;
    return OnChunk(parsed->as_object());
}

Status ChatCompletionStreamParser::OnChunk(const json::object& chunk) {
    if (const json::value* error = chunk.if_contains("error"); error && !error->is_null()) {
        std::string message;
        if (error->is_object()) message = std::string(JsonString(error->as_object(), "message"));
        if (error->is_string()) message = std::string(error->as_string());
        message = message.empty() ? BodyPreview(json::serialize(*error)) : ServerText(message);
        ErrorDetails details;
        details.reason = "stream_error";
        return Fail(Error(ErrorCode::kUnavailable, provider_ + ": stream error: " + message,
                          std::move(details)));
    }
    if (model_.empty()) model_ = std::string(JsonString(chunk, "model"));
    auto usage = UsageObject(chunk, provider_, Delivery::kStream);
    if (!usage) return Fail(std::move(usage).error());
    if (*usage) {
        auto input = UsageCount(**usage, "prompt_tokens", provider_, Delivery::kStream);
        if (!input) return Fail(std::move(input).error());
        auto output = UsageCount(**usage, "completion_tokens", provider_, Delivery::kStream);
        if (!output) return Fail(std::move(output).error());
        usage_.input_tokens = *input;
        usage_.output_tokens = *output;
    }
    const json::value* choices = chunk.if_contains("choices");
    if (choices == nullptr || choices->is_null()) return OkStatus();
    if (!choices->is_array()) return Fail(MalformedStream(provider_, "choices is not an array"));
    for (const json::value& entry : choices->as_array()) {
        if (!entry.is_object()) {
            return Fail(MalformedStream(provider_, "a choice is not an object"));
        }
        const json::object& choice = entry.as_object();
        if (JsonInt(choice, "index", 0) != 0) continue;  // we ask for one choice
        if (auto reason = JsonString(choice, "finish_reason"); !reason.empty()) {
            finish_reason_ = std::string(reason);
        }
        const json::value* delta = choice.if_contains("delta");
        if (delta == nullptr || delta->is_null()) continue;
        if (!delta->is_object()) return Fail(MalformedStream(provider_, "delta is not an object"));
        const json::object& fields = delta->as_object();
        if (const json::value* content = fields.if_contains("content");
            content && content->is_string() && !content->as_string().empty()) {
            std::string_view text = content->as_string();
            content_.append(text);
            if (sink_) sink_->OnDelta(text);
        }
        if (const json::value* calls = fields.if_contains("tool_calls");
            calls && !calls->is_null()) {
            if (!calls->is_array()) {
                return Fail(MalformedStream(provider_, "delta.tool_calls is not an array"));
            }
            for (const json::value& call : calls->as_array()) {
                STROWGER_TRY(OnToolCallDelta(call));
            }
        }
    }
    return OkStatus();
}

Status ChatCompletionStreamParser::OnToolCallDelta(const json::value& delta) {
    if (!delta.is_object()) return Fail(MalformedStream(provider_, "a tool call is not an object"));
    const json::object& fields = delta.as_object();
    std::string_view id = JsonString(fields, "id");
    PartialToolCall* call = nullptr;
    if (const json::value* index = fields.if_contains("index"); index && index->is_int64()) {
        for (auto& existing : tool_calls_) {
            if (existing.index == index->as_int64()) call = &existing;
        }
        if (call == nullptr) {
            call = &tool_calls_.emplace_back();
            call->index = index->as_int64();
        }
    } else if (!tool_calls_.empty() && (id.empty() || id == tool_calls_.back().id)) {
        // No index (some servers): a delta without a new id continues the last call.
        call = &tool_calls_.back();
    } else {
        call = &tool_calls_.emplace_back();
        call->index = static_cast<int64_t>(tool_calls_.size()) - 1;
    }
    if (!id.empty()) call->id = std::string(id);
    const json::object* function = JsonObject(fields, "function");
    if (function == nullptr) return OkStatus();
    if (auto name = JsonString(*function, "name"); !name.empty() && call->name.empty()) {
        call->name = std::string(name);
    }
    if (const json::value* arguments = function->if_contains("arguments")) {
        if (arguments->is_string()) {
            call->arguments.append(arguments->as_string());
        } else if (!arguments->is_null()) {
            call->arguments = json::serialize(*arguments);
        }
    }
    return OkStatus();
}

Result<Completion> ChatCompletionStreamParser::Finish() {
    if (error_) return std::unexpected(*error_);
    if (format_ == Format::kJson) {
        auto completion = ParseChatCompletionsBody(json_body_, provider_);
        if (completion && sink_ && !completion->content.empty())
            sink_->OnDelta(completion->content);
        return completion;
    }
    if (format_ == Format::kUnknown) {
        error_ = MalformedStream(provider_, "empty body");
        return std::unexpected(*error_);
    }
    // Without [DONE], accept a stream that ended cleanly after its finish_reason (servers that
    // omit the terminator); anything else was cut short.
    if (!done_ && (finish_reason_.empty() || sse_.HasPartialEvent())) {
        error_ =
            MalformedStream(provider_, "truncated (the body ended before data: [DONE], after " +
                                           std::to_string(chunks_) + " chunks)");
        return std::unexpected(*error_);
    }
    if (chunks_ == 0) {
        error_ = MalformedStream(provider_, "no chunks before data: [DONE]");
        return std::unexpected(*error_);
    }
    Completion completion;
    completion.content = std::move(content_);
    std::stable_sort(tool_calls_.begin(), tool_calls_.end(),
                     [](const auto& a, const auto& b) { return a.index < b.index; });
    for (auto& partial : tool_calls_) {
        if (partial.name.empty()) {
            error_ = MalformedStream(provider_, "a tool call has no function name");
            return std::unexpected(*error_);
        }
        ToolCall call;
        call.id = ToolCallId(partial.id, completion.tool_calls.size());
        call.name = std::move(partial.name);
        call.arguments = partial.arguments.empty() ? "{}" : std::move(partial.arguments);
        completion.tool_calls.push_back(std::move(call));
    }
    completion.finish_reason = std::move(finish_reason_);
    if (completion.finish_reason.empty()) {
        completion.finish_reason = completion.tool_calls.empty() ? "stop" : "tool_calls";
    }
    completion.usage = usage_;
    completion.model = std::move(model_);
    return completion;
}

void RegisterOpenAiProviders(ProviderRegistry& registry, std::shared_ptr<http::HttpClient> client) {
    struct Instances {
        std::mutex mutex;
        std::map<std::string, std::shared_ptr<OpenAiProvider>> by_base_url;  // GUARDED_BY(mutex)
    };
    auto add = [&](std::string name, OpenAiConfig (*make_config)()) {
        auto instances = std::make_shared<Instances>();
        registry.Register(name,
                          [name, instances, client, make_config](
                              std::string_view model, std::string_view) -> Result<ResolvedModel> {
                              if (model.empty())
                                  return InvalidArgumentError(name + ": the model name is empty");
                              OpenAiConfig config = make_config();
                              STROWGER_TRY(http::ParseUrl(config.base_url + "/chat/completions"));
                              std::lock_guard lock(instances->mutex);
                              auto& instance = instances->by_base_url[config.base_url];
                              if (!instance)
                                  instance =
                                      std::make_shared<OpenAiProvider>(std::move(config), client);
                              ResolvedModel resolved;
                              resolved.provider = instance;
                              resolved.model = std::string(model);
                              return resolved;
                          });
    };
    add("openai", &DefaultOpenAiConfig);
    add("ollama", &DefaultOllamaConfig);
}

}  // namespace strowger::providers
