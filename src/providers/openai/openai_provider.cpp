#include "providers/openai/openai_provider.hpp"

#include <boost/json.hpp>

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

namespace strowger::providers {
namespace {

constexpr size_t kPreviewBytes = 300;

std::string EnvOr(const char* name, std::string_view fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::string(value) : std::string(fallback);
}

std::string WithoutTrailingSlash(std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
}

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

std::string BodyPreview(std::string_view body) {
    if (body.empty()) return "(empty body)";
    return Preview(ToValidUtf8(body), kPreviewBytes);
}

// The human-readable error a server put in its body: {"error": {"message": ...}},
// {"error": "..."} or {"message": ...}; else a preview of the body.
std::string ErrorMessageFromBody(std::string_view body, std::string* code) {
    auto parsed = ParseJson(body);
    if (parsed && parsed->is_object()) {
        const json::object& object = parsed->as_object();
        if (const json::object* error = JsonObject(object, "error")) {
            if (code) *code = std::string(JsonString(*error, "code"));
            if (auto message = JsonString(*error, "message"); !message.empty()) {
                return std::string(message);
            }
        }
        if (auto message = JsonString(object, "error"); !message.empty())
            return std::string(message);
        if (auto message = JsonString(object, "message"); !message.empty()) {
            return std::string(message);
        }
    }
    return BodyPreview(body);
}

std::unexpected<Error> Malformed(std::string_view provider, std::string_view what) {
    return InternalError(std::string(provider) + ": malformed response body: " + std::string(what));
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

OpenAiProvider::OpenAiProvider(OpenAiConfig config, std::shared_ptr<http::HttpClient> client)
    : config_(std::move(config)), client_(std::move(client)) {
    config_.base_url = WithoutTrailingSlash(std::move(config_.base_url));
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
            call.id = std::string(JsonString(entry.as_object(), "id"));
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
    if (const json::object* usage = JsonObject(root, "usage")) {
        completion.usage.input_tokens = JsonInt(*usage, "prompt_tokens");
        completion.usage.output_tokens = JsonInt(*usage, "completion_tokens");
    }
    completion.model = std::string(JsonString(root, "model"));
    return completion;
}

int64_t ParseRetryAfter(std::string_view value, std::chrono::system_clock::time_point now) {
    value = Trim(value);
    if (value.empty()) return -1;
    if (auto seconds = ParseDigits(value); seconds && value.find('.') == std::string_view::npos) {
        return std::min<int64_t>(*seconds, int64_t{1} << 40) * 1000;
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
        auto delta = std::chrono::system_clock::from_time_t(when) - now;
        return std::max<int64_t>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(delta).count());
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
    http::HttpRequest http_request;
    http_request.method = "POST";
    http_request.url = config_.base_url + "/chat/completions";
    http::Headers& headers = http_request.headers;
    if (!config_.api_key_env.empty()) {
        const char* key = std::getenv(config_.api_key_env.c_str());
        if (key == nullptr || *key == '\0') {
            co_return MakeError(ErrorCode::kUnauthenticated, config_.api_key_env + " is not set");
        }
        RegisterSecret(key);
        headers.emplace_back("Authorization", std::string("Bearer ") + key);
    }
    auto body = BuildChatCompletionsBody(request);
    if (!body) co_return std::unexpected(body.error().WithPrefix(config_.name + ": "));
    http_request.body = std::move(*body);
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Accept", "application/json");
    if (!request.run_id.empty()) headers.emplace_back("X-Strowger-Run", request.run_id);
    if (!request.node.empty()) headers.emplace_back("X-Strowger-Node", request.node);
    headers.emplace_back("X-Strowger-Attempt", std::to_string(request.attempt));
    for (const auto& header : config_.extra_headers) headers.push_back(header);

    Deadline call_deadline = deadline.Min(Deadline::After(config_.timeout));
    auto response = co_await client_->Send(std::move(http_request), call_deadline);
    if (!response) {
        const Error& error = response.error();
        if (error.details().reason == "truncated_response") {
            co_return Malformed(config_.name, "truncated (" + error.message() + ")");
        }
        co_return std::unexpected(error.WithPrefix(config_.name + ": "));
    }
    if (response->status / 100 != 2) {
        co_return std::unexpected(ErrorFromHttpResponse(*response, config_.name));
    }
    auto completion = ParseChatCompletionsBody(response->body, config_.name);
    if (!completion) co_return std::unexpected(completion.error());
    if (completion->model.empty()) completion->model = request.model;
    if (request.stream && !completion->content.empty())
        request.stream->OnDelta(completion->content);
    co_return std::move(*completion);
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
