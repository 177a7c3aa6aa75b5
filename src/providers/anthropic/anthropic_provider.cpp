#include "providers/anthropic/anthropic_provider.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "core/log.hpp"
#include "core/strings.hpp"
#include "providers/http_completion.hpp"

namespace strowger::providers {
namespace {

std::string FinishReason(std::string_view stop_reason, bool has_tool_calls) {
    if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
    if (stop_reason == "tool_use") return "tool_calls";
    if (stop_reason == "max_tokens") return "length";
    if (stop_reason.empty()) return has_tool_calls ? "tool_calls" : "stop";
    return std::string(stop_reason);
}

// Input tokens as billed: the uncached part plus cache writes and reads, each checked
// (UsageCount), and their sum too.
Result<int64_t> InputTokens(const json::object& usage, std::string_view provider,
                            Delivery delivery) {
    int64_t total = 0;
    for (std::string_view key :
         {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"}) {
        STROWGER_ASSIGN_OR_RETURN(int64_t count, UsageCount(usage, key, provider, delivery));
        total += count;  // three counts of at most kMaxTokensPerCall each
    }
    if (total > kMaxTokensPerCall) {
        std::string what = "usage reports " + std::to_string(total) +
                           " input tokens in all (input_tokens + cache_creation_input_tokens + "
                           "cache_read_input_tokens; expected at most " +
                           std::to_string(kMaxTokensPerCall) + ")";
        return std::unexpected(delivery == Delivery::kStream ? MalformedStream(provider, what)
                                                             : Malformed(provider, what).error());
    }
    return total;
}

// The error an `error` stream event (or error body) of type `type` stands for.
Error TypedError(std::string_view provider, std::string_view type, std::string_view message) {
    struct Mapping {
        std::string_view type;
        ErrorCode code;
        int http_status;
    };
    static constexpr Mapping kMappings[] = {
        {"overloaded_error", ErrorCode::kUnavailable, 529},
        {"rate_limit_error", ErrorCode::kUnavailable, 429},
        {"api_error", ErrorCode::kUnavailable, 500},
        {"timeout_error", ErrorCode::kUnavailable, 504},
        {"invalid_request_error", ErrorCode::kInvalidArgument, 400},
        {"request_too_large", ErrorCode::kInvalidArgument, 413},
        {"authentication_error", ErrorCode::kUnauthenticated, 401},
        {"permission_error", ErrorCode::kPermissionDenied, 403},
        {"not_found_error", ErrorCode::kNotFound, 404},
        {"billing_error", ErrorCode::kFailedPrecondition, 402},
    };
    ErrorDetails details;
    details.reason = "stream_error";
    ErrorCode code = ErrorCode::kUnavailable;
    for (const Mapping& mapping : kMappings) {
        if (mapping.type == type) {
            code = mapping.code;
            details.http_status = mapping.http_status;
        }
    }
    if (type == "overloaded_error") details.reason = "overloaded";
    std::string text = std::string(provider) + ": stream error: " + ServerText(type, 64);
    if (!message.empty()) text += ": " + ServerText(message);
    return Error(code, std::move(text), std::move(details));
}

json::object TextBlock(std::string_view text) {
    json::object block;
    block["type"] = "text";
    block["text"] = text;
    return block;
}

}  // namespace

AnthropicConfig DefaultAnthropicConfig() {
    AnthropicConfig config;
    config.base_url =
        WithoutTrailingSlash(EnvOr("ANTHROPIC_BASE_URL", "https://api.anthropic.com"));
    return config;
}

AnthropicProvider::AnthropicProvider(AnthropicConfig config,
                                     std::shared_ptr<http::HttpClient> client)
    : config_(std::move(config)), client_(std::move(client)), key_(config_.api_key_env) {
    config_.base_url = WithoutTrailingSlash(std::move(config_.base_url));
    RegisterHeaderSecrets(config_.extra_headers);
    url_ = config_.base_url + (EndsWith(config_.base_url, "/v1") ? "/messages" : "/v1/messages");
}

Result<std::string> BuildMessagesBody(const CompletionRequest& request,
                                      int64_t default_max_tokens) {
    struct Turn {
        std::string_view role;
        json::array blocks;
    };
    std::vector<Turn> turns;
    std::string system;
    auto add = [&turns](std::string_view role, json::object block) {
        if (turns.empty() || turns.back().role != role) turns.push_back(Turn{role, {}});
        turns.back().blocks.push_back(std::move(block));
    };
    for (const Message& message : request.messages) {
        switch (message.role) {
            case Role::kSystem:
                if (message.content.empty()) break;
                if (!system.empty()) system += "\n\n";
                system += message.content;
                break;
            case Role::kUser:
                // The API rejects empty text blocks.
                if (!message.content.empty()) add("user", TextBlock(message.content));
                break;
            case Role::kAssistant:
                if (!message.content.empty()) add("assistant", TextBlock(message.content));
                for (const ToolCall& call : message.tool_calls) {
                    json::object block;
                    block["type"] = "tool_use";
                    block["id"] = call.id;
                    block["name"] = call.name;
                    if (Trim(call.arguments).empty()) {
                        block["input"] = json::object();
                    } else {
                        auto input = ParseJson(call.arguments);
                        if (!input || !input->is_object()) {
                            return InvalidArgumentError("tool call '" + call.id +
                                                        "' has arguments that are not a JSON "
                                                        "object");
                        }
                        block["input"] = std::move(*input);
                    }
                    add("assistant", std::move(block));
                }
                break;
            case Role::kTool: {
                json::object block;
                block["type"] = "tool_result";
                block["tool_use_id"] = message.tool_call_id;
                if (!message.content.empty()) block["content"] = message.content;
                add("user", std::move(block));
                break;
            }
        }
    }
    json::object body;
    body["model"] = request.model;
    body["max_tokens"] = request.max_output_tokens.value_or(default_max_tokens);
    if (!system.empty()) body["system"] = system;
    json::array messages;
    for (Turn& turn : turns) {
        json::object item;
        item["role"] = turn.role;
        // A lone text block is sent as a plain string, the API's short form.
        if (turn.blocks.size() == 1 &&
            JsonString(turn.blocks.front().as_object(), "type") == "text") {
            item["content"] = turn.blocks.front().as_object().at("text");
        } else {
            item["content"] = std::move(turn.blocks);
        }
        messages.push_back(std::move(item));
    }
    body["messages"] = std::move(messages);
    if (request.temperature) body["temperature"] = *request.temperature;
    if (request.stream != nullptr) body["stream"] = true;
    if (!request.tools.empty()) {
        json::array tools;
        for (const ToolSpec& tool : request.tools) {
            json::object entry;
            entry["name"] = tool.name;
            if (!tool.description.empty()) entry["description"] = tool.description;
            if (Trim(tool.parameters_schema).empty()) {
                json::object empty_schema;
                empty_schema["type"] = "object";
                empty_schema["properties"] = json::object();
                entry["input_schema"] = std::move(empty_schema);
            } else {
                auto schema = ParseJson(tool.parameters_schema);
                if (!schema || !schema->is_object()) {
                    return InvalidArgumentError(
                        "tool '" + tool.name + "' has an invalid parameters schema: " +
                        (schema ? std::string("not a JSON object") : schema.error().message()));
                }
                entry["input_schema"] = std::move(*schema);
            }
            tools.push_back(std::move(entry));
        }
        body["tools"] = std::move(tools);
    }
    return json::serialize(body);
}

Result<Completion> ParseMessagesBody(std::string_view body, std::string_view provider) {
    auto parsed = ParseJson(body);
    if (!parsed) {
        return Malformed(provider, parsed.error().message() + " in " + BodyPreview(body));
    }
    if (!parsed->is_object()) return Malformed(provider, "not a JSON object");
    const json::object& root = parsed->as_object();
    const json::array* content = JsonArray(root, "content");
    if (content == nullptr) {
        std::string what = "no content";
        if (const json::object* error = JsonObject(root, "error")) {
            what += " (error: " + ServerText(JsonString(*error, "message")) + ")";
        }
        return Malformed(provider, what);
    }
    Completion completion;
    for (const json::value& entry : *content) {
        if (!entry.is_object()) return Malformed(provider, "a content block is not an object");
        const json::object& block = entry.as_object();
        std::string_view type = JsonString(block, "type");
        if (type == "text") {
            completion.content += JsonString(block, "text");
        } else if (type == "tool_use") {
            ToolCall call;
            call.id = std::string(JsonString(block, "id"));
            call.name = std::string(JsonString(block, "name"));
            if (call.id.empty() || call.name.empty()) {
                return Malformed(provider, "a tool_use block has no id or name");
            }
            const json::value* input = block.if_contains("input");
            call.arguments = input && !input->is_null() ? json::serialize(*input) : "{}";
            completion.tool_calls.push_back(std::move(call));
        }
        // Other blocks (thinking, server tools) carry nothing the agent loop uses.
    }
    completion.finish_reason =
        FinishReason(JsonString(root, "stop_reason"), !completion.tool_calls.empty());
    STROWGER_ASSIGN_OR_RETURN(const json::object* usage,
                              UsageObject(root, provider, Delivery::kBody));
    if (usage) {
        STROWGER_ASSIGN_OR_RETURN(completion.usage.input_tokens,
                                  InputTokens(*usage, provider, Delivery::kBody));
        STROWGER_ASSIGN_OR_RETURN(completion.usage.output_tokens,
                                  UsageCount(*usage, "output_tokens", provider, Delivery::kBody));
    }
    completion.model = std::string(JsonString(root, "model"));
    return completion;
}

Error AnthropicErrorFromHttpResponse(const http::HttpResponse& response,
                                     std::string_view provider) {
    Error error = ErrorFromHttpResponse(response, provider);
    if (response.status == 529) error.mutable_details().reason = "overloaded";
    return error;
}

Awaitable<Result<Completion>> AnthropicProvider::Complete(CompletionRequest request,
                                                          Deadline deadline) {
    // Not a coroutine: the request becomes HTTP here and is gone before the call suspends.
    http::HttpRequest http_request;
    http_request.method = "POST";
    http_request.url = url_;
    http::Headers& headers = http_request.headers;
    if (!key_.env_name().empty()) {
        auto key = key_.Read();
        if (!key) return Ready(std::unexpected(std::move(key).error()));
        headers.emplace_back("x-api-key", std::move(*key));
    }
    auto body = BuildMessagesBody(request, config_.default_max_tokens);
    if (!body) return Ready(std::unexpected(body.error().WithPrefix(config_.name + ": ")));
    http_request.body = std::move(*body);
    headers.emplace_back("anthropic-version", config_.api_version);
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

Awaitable<Result<Completion>> AnthropicProvider::Send(http::HttpRequest request, std::string model,
                                                      Deadline deadline) {
    auto exchange = client_->Send(std::move(request), deadline);
    Result<http::HttpResponse> response = co_await std::move(exchange);
    co_return CompletionFromExchange(std::move(response), std::move(model), config_.name,
                                     &AnthropicErrorFromHttpResponse, &ParseMessagesBody);
}

Awaitable<Result<Completion>> AnthropicProvider::SendStreaming(http::HttpRequest request,
                                                               std::string model, StreamSink* sink,
                                                               Deadline deadline) {
    MessagesStreamParser parser(config_.name, sink);
    http::HttpClient::BodyChunkHandler on_chunk = [&parser](std::string_view bytes) {
        return parser.Feed(bytes);
    };
    auto response =
        co_await client_->SendStreaming(std::move(request), deadline, std::move(on_chunk));
    co_return StreamedCompletionFromExchange(std::move(response), parser, std::move(model),
                                             config_.name, &AnthropicErrorFromHttpResponse);
}

// ---- Streaming --------------------------------------------------------------------------------

MessagesStreamParser::MessagesStreamParser(std::string_view provider, StreamSink* sink)
    : provider_(provider),
      sink_(sink),
      sse_([this](const http::SseEvent& event) { return OnEvent(event); }) {}

Status MessagesStreamParser::Fail(Error error) {
    error_ = std::move(error);
    return std::unexpected(*error_);
}

Status MessagesStreamParser::Feed(std::string_view bytes) {
    if (error_) return std::unexpected(*error_);
    if (done_) return OkStatus();
    Status status = sse_.Feed(bytes);
    if (!status && !error_) return Fail(MalformedStream(provider_, status.error().message()));
    return status;
}

MessagesStreamParser::Block* MessagesStreamParser::FindBlock(int64_t index) {
    for (Block& block : blocks_) {
        if (block.index == index) return &block;
    }
    return nullptr;
}

Status MessagesStreamParser::OnEvent(const http::SseEvent& event) {
    if (done_) return OkStatus();
    auto parsed = ParseJson(event.data);
    if (!parsed) {
        return Fail(MalformedStream(provider_,
                                    parsed.error().message() + " in " + BodyPreview(event.data)));
    }
    if (!parsed->is_object()) {
        return Fail(MalformedStream(provider_,
                                    "an event is not a JSON object: " + BodyPreview(event.data)));
    }
    const json::object& object = parsed->as_object();
    std::string_view type = JsonString(object, "type", event.event);
    if (type == "message_start") {
        const json::object* message = JsonObject(object, "message");
        if (message == nullptr)
            return Fail(MalformedStream(provider_, "message_start without message"));
        started_ = true;
        model_ = std::string(JsonString(*message, "model"));
        auto usage = UsageObject(*message, provider_, Delivery::kStream);
        if (!usage) return Fail(std::move(usage).error());
        if (*usage) {
            auto input = InputTokens(**usage, provider_, Delivery::kStream);
            if (!input) return Fail(std::move(input).error());
            auto output = UsageCount(**usage, "output_tokens", provider_, Delivery::kStream);
            if (!output) return Fail(std::move(output).error());
            usage_.input_tokens = *input;
            usage_.output_tokens = *output;
        }
    } else if (type == "content_block_start") {
        const json::object* start = JsonObject(object, "content_block");
        const json::value* index = object.if_contains("index");
        if (start == nullptr || index == nullptr || !index->is_int64()) {
            return Fail(MalformedStream(provider_, "content_block_start without index or block"));
        }
        if (FindBlock(index->as_int64())) {
            return Fail(MalformedStream(
                provider_,
                "content block " + std::to_string(index->as_int64()) + " started twice"));
        }
        Block& block = blocks_.emplace_back();
        block.index = index->as_int64();
        std::string_view block_type = JsonString(*start, "type");
        if (block_type == "tool_use") {
            block.tool_use = true;
            block.id = std::string(JsonString(*start, "id"));
            block.name = std::string(JsonString(*start, "name"));
            if (block.id.empty() || block.name.empty()) {
                return Fail(MalformedStream(provider_, "a tool_use block has no id or name"));
            }
            if (const json::value* input = start->if_contains("input");
                input && input->is_object() && !input->as_object().empty()) {
                block.start_input = json::serialize(*input);
            }
        } else if (block_type == "text") {
            if (auto text = JsonString(*start, "text"); !text.empty()) {
                block.text.append(text);
                if (sink_) sink_->OnDelta(text);
            }
        }
    } else if (type == "content_block_delta") {
        const json::value* index = object.if_contains("index");
        const json::object* delta = JsonObject(object, "delta");
        if (index == nullptr || !index->is_int64() || delta == nullptr) {
            return Fail(MalformedStream(provider_, "content_block_delta without index or delta"));
        }
        Block* block = FindBlock(index->as_int64());
        if (block == nullptr) {
            return Fail(MalformedStream(provider_, "a delta for content block " +
                                                       std::to_string(index->as_int64()) +
                                                       " before its start"));
        }
        std::string_view delta_type = JsonString(*delta, "type");
        if (delta_type == "text_delta") {
            std::string_view text = JsonString(*delta, "text");
            block->text.append(text);
            if (sink_ && !text.empty()) sink_->OnDelta(text);
        } else if (delta_type == "input_json_delta") {
            block->input_json.append(JsonString(*delta, "partial_json"));
        }
        // thinking_delta, signature_delta, citations: not part of our Completion.
    } else if (type == "content_block_stop") {
        if (const json::value* index = object.if_contains("index"); index && index->is_int64()) {
            if (Block* block = FindBlock(index->as_int64())) block->stopped = true;
        }
    } else if (type == "message_delta") {
        if (const json::object* delta = JsonObject(object, "delta")) {
            if (auto reason = JsonString(*delta, "stop_reason"); !reason.empty()) {
                stop_reason_ = std::string(reason);
            }
        }
        auto usage = UsageObject(object, provider_, Delivery::kStream);
        if (!usage) return Fail(std::move(usage).error());
        if (*usage) {
            // Cumulative counts; input tokens appear here only in newer API versions.
            auto output = UsageCount(**usage, "output_tokens", provider_, Delivery::kStream);
            if (!output) return Fail(std::move(output).error());
            if ((*usage)->contains("output_tokens")) usage_.output_tokens = *output;
            auto input = InputTokens(**usage, provider_, Delivery::kStream);
            if (!input) return Fail(std::move(input).error());
            if (*input > 0) usage_.input_tokens = *input;
        }
    } else if (type == "message_stop") {
        done_ = true;
    } else if (type == "error") {
        const json::object* error = JsonObject(object, "error");
        return Fail(TypedError(provider_, error ? JsonString(*error, "type") : "error",
                               error ? JsonString(*error, "message") : ""));
    }
    // ping and event types added later are ignored.
    return OkStatus();
}

Result<Completion> MessagesStreamParser::Finish() {
    if (error_) return std::unexpected(*error_);
    if (!done_) {
        error_ =
            MalformedStream(provider_, "truncated (the body ended before message_stop, after " +
                                           std::to_string(sse_.events()) + " events)");
        return std::unexpected(*error_);
    }
    std::stable_sort(blocks_.begin(), blocks_.end(),
                     [](const Block& a, const Block& b) { return a.index < b.index; });
    Completion completion;
    for (Block& block : blocks_) {
        if (!block.tool_use) {
            completion.content += block.text;
            continue;
        }
        ToolCall call;
        call.id = std::move(block.id);
        call.name = std::move(block.name);
        std::string arguments = !block.input_json.empty()    ? std::move(block.input_json)
                                : !block.start_input.empty() ? std::move(block.start_input)
                                                             : std::string("{}");
        auto input = ParseJson(arguments);
        if (!input || !input->is_object()) {
            error_ =
                MalformedStream(provider_, "the input of tool_use " + call.id +
                                               " is not a JSON object: " + BodyPreview(arguments));
            return std::unexpected(*error_);
        }
        call.arguments = std::move(arguments);
        completion.tool_calls.push_back(std::move(call));
    }
    completion.finish_reason = FinishReason(stop_reason_, !completion.tool_calls.empty());
    completion.usage = usage_;
    completion.model = std::move(model_);
    return completion;
}

void RegisterAnthropicProvider(ProviderRegistry& registry,
                               std::shared_ptr<http::HttpClient> client) {
    struct Instances {
        std::mutex mutex;
        std::map<std::string, std::shared_ptr<AnthropicProvider>> by_base_url;  // GUARDED_BY(mutex)
    };
    auto instances = std::make_shared<Instances>();
    registry.Register(
        "anthropic",
        [instances, client](std::string_view model, std::string_view) -> Result<ResolvedModel> {
            if (model.empty()) return InvalidArgumentError("anthropic: the model name is empty");
            AnthropicConfig config = DefaultAnthropicConfig();
            STROWGER_TRY(http::ParseUrl(config.base_url + "/v1/messages"));
            std::lock_guard lock(instances->mutex);
            auto& instance = instances->by_base_url[config.base_url];
            if (!instance)
                instance = std::make_shared<AnthropicProvider>(std::move(config), client);
            ResolvedModel resolved;
            resolved.provider = instance;
            resolved.model = std::string(model);
            return resolved;
        });
}

}  // namespace strowger::providers
