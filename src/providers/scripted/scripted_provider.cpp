#include "providers/scripted/scripted_provider.hpp"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/yaml.hpp"

namespace strowger::providers {
namespace {

// A scripted reply waits at most a day: a longer latency is a typo, and a timer of 2^63 ns
// cannot be armed.
constexpr int64_t kMaxLatencyMs = 86'400'000;

std::string Where(const std::string& file, const YAML::Node& node, const std::string& path) {
    auto mark = node.Mark();
    std::string out = file;
    if (mark.line >= 0)
        out += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    return out + ": " + path + ": ";
}

Result<int64_t> ReadInt(const std::string& file, const YAML::Node& node, const std::string& path,
                        int64_t max = INT64_MAX) {
    int64_t value = 0;
    const std::string& text = node.IsScalar() ? node.Scalar() : std::string();
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!node.IsScalar() || ec != std::errc() || end != text.data() + text.size() || value < 0 ||
        value > max) {
        std::string expected = max == INT64_MAX ? std::string("an integer >= 0")
                                                : "an integer from 0 to " + std::to_string(max);
        return InvalidArgumentError(Where(file, node, path) + "expected " + expected + ", got " +
                                    CapForMessage(text, 64));
    }
    return value;
}

// YAML mapping -> JSON text, for tool-call arguments written as YAML.
json::value YamlToJson(const YAML::Node& node) {
    if (node.IsMap()) {
        json::object o;
        for (auto it = node.begin(); it != node.end(); ++it)
            o[it->first.Scalar()] = YamlToJson(it->second);
        return o;
    }
    if (node.IsSequence()) {
        json::array a;
        for (const auto& item : node) a.push_back(YamlToJson(item));
        return a;
    }
    if (node.IsNull()) return nullptr;
    const std::string& s = node.Scalar();
    if (node.Tag() != "!") {
        int64_t i = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
        if (ec == std::errc() && end == s.data() + s.size()) return i;
        if (s == "true") return true;
        if (s == "false") return false;
    }
    return json::string(s);
}

int64_t EstimateTokens(size_t bytes) {
    return static_cast<int64_t>((bytes + 3) / 4);
}

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
    size_t pos = 0;
    while ((pos = text.find(from, pos)) != std::string::npos) {
        text.replace(pos, from.size(), to);
        pos += to.size();
    }
}

}  // namespace

Result<std::shared_ptr<ScriptedProvider>> ScriptedProvider::LoadFile(const std::string& path,
                                                                     Executor executor) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError(path + ": cannot read scripted provider file");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return LoadText(buffer.str(), path, std::move(executor));
}

Result<std::shared_ptr<ScriptedProvider>> ScriptedProvider::LoadText(std::string_view text,
                                                                     const std::string& file,
                                                                     Executor executor) {
    auto parsed = ParseYaml(text);
    if (!parsed) {
        const YamlError& error = parsed.error();
        std::string where = file;
        if (error.line > 0)
            where += ":" + std::to_string(error.line) + ":" + std::to_string(error.column);
        return InvalidArgumentError(where + ": " + error.message);
    }
    const YAML::Node root = std::move(*parsed);
    // yaml-cpp throws on a subscript of the wrong kind of node (`usage: 5` then
    // `usage["input_tokens"]`): such a file is an error like any other.
    try {
        return FromYaml(root, file, std::move(executor));
    } catch (const YAML::Exception& e) {
        std::string where = file;
        if (e.mark.line >= 0) {
            where +=
                ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
        }
        return InvalidArgumentError(where + ": " + e.msg);
    }
}

Result<std::shared_ptr<ScriptedProvider>> ScriptedProvider::FromYaml(const YAML::Node& root,
                                                                     const std::string& file,
                                                                     Executor executor) {
    std::shared_ptr<ScriptedProvider> provider(new ScriptedProvider());
    provider->executor_ = std::move(executor);
    provider->file_ = file;
    if (root.IsNull()) return provider;
    if (!root.IsMap()) return InvalidArgumentError(file + ": expected a mapping");
    for (auto it = root.begin(); it != root.end(); ++it) {
        const std::string key = it->first.Scalar();
        const YAML::Node value = it->second;  // a copy: `it->` yields a temporary proxy
        if (key == "latency_ms") {
            STROWGER_ASSIGN_OR_RETURN(provider->default_latency_ms_,
                                      ReadInt(file, value, key, kMaxLatencyMs));
        } else if (key == "prices") {
            // USD per million tokens, given as numbers: nano-USD per token = value * 1000.
            auto per_token = [&](const char* field) -> Result<int64_t> {
                const YAML::Node& v = value[field];
                if (!v) return 0;
                double dollars = 0;
                bool ok = true;
                try {
                    dollars = v.as<double>();
                } catch (const YAML::Exception&) {
                    ok = false;
                }
                // NaN fails both comparisons.
                if (!ok || !(dollars >= 0 && dollars <= kMaxUsdPerMillionTokens)) {
                    return InvalidArgumentError(
                        Where(file, v, std::string("prices.") + field) +
                        "expected a number from 0 to " +
                        std::to_string(static_cast<int64_t>(kMaxUsdPerMillionTokens)) + ", got " +
                        CapForMessage(v.IsScalar() ? v.Scalar() : std::string("a collection"), 64));
                }
                return static_cast<int64_t>(dollars * 1000.0 + 0.5);
            };
            STROWGER_ASSIGN_OR_RETURN(provider->pricing_.input_nano_usd_per_token,
                                      per_token("input_per_mtok"));
            STROWGER_ASSIGN_OR_RETURN(provider->pricing_.output_nano_usd_per_token,
                                      per_token("output_per_mtok"));
        } else if (key == "default") {
            provider->default_reply_ = value.IsScalar() ? value.Scalar() : std::string();
        } else if (key == "rules") {
            if (!value.IsSequence())
                return InvalidArgumentError(Where(file, value, key) + "expected a list");
            for (size_t i = 0; i < value.size(); ++i) {
                const YAML::Node& r = value[i];
                std::string path = "rules[" + std::to_string(i) + "]";
                if (!r.IsMap())
                    return InvalidArgumentError(Where(file, r, path) + "expected a mapping");
                Rule rule;
                rule.line = r.Mark().line + 1;
                int actions = 0;
                for (auto f = r.begin(); f != r.end(); ++f) {
                    const std::string field = f->first.Scalar();
                    const YAML::Node v = f->second;  // a copy, as above
                    std::string fp = path + "." + field;
                    if (field == "when") {
                        if (!v.IsMap())
                            return InvalidArgumentError(Where(file, v, fp) + "expected a mapping");
                        for (auto c = v.begin(); c != v.end(); ++c) {
                            const std::string cond = c->first.Scalar();
                            std::string s =
                                c->second.IsScalar() ? c->second.Scalar() : std::string();
                            if (cond == "agent") {
                                rule.agent = s;
                            } else if (cond == "step") {
                                rule.step = s;
                            } else if (cond == "prompt_contains") {
                                rule.prompt_contains = s;
                            } else if (cond == "system_contains") {
                                rule.system_contains = s;
                            } else if (cond == "attempt") {
                                STROWGER_ASSIGN_OR_RETURN(
                                    rule.attempt, ReadInt(file, c->second, fp + "." + cond));
                            } else if (cond == "prompt_regex") {
                                RE2::Options options;
                                options.set_log_errors(false);
                                auto re = std::make_shared<const RE2>(s, options);
                                if (!re->ok()) {
                                    return InvalidArgumentError(
                                        Where(file, c->second, fp + "." + cond) +
                                        "bad regular expression (RE2 syntax): " + re->error());
                                }
                                rule.prompt_regex = std::move(re);
                            } else {
                                return InvalidArgumentError(Where(file, c->first, fp + "." + cond) +
                                                            "unknown condition \"" + cond + "\"");
                            }
                        }
                    } else if (field == "times") {
                        STROWGER_ASSIGN_OR_RETURN(rule.times, ReadInt(file, v, fp));
                    } else if (field == "reply") {
                        rule.replies = {v.IsScalar() ? v.Scalar() : std::string()};
                        ++actions;
                    } else if (field == "replies") {
                        if (!v.IsSequence() || v.size() == 0) {
                            return InvalidArgumentError(Where(file, v, fp) +
                                                        "expected a non-empty list");
                        }
                        for (const auto& item : v) rule.replies.push_back(item.Scalar());
                        ++actions;
                    } else if (field == "cycle") {
                        rule.cycle = v.Scalar() == "true";
                    } else if (field == "reply_template") {
                        rule.reply_template = v.Scalar();
                        rule.has_template = true;
                        ++actions;
                    } else if (field == "error") {
                        rule.error = v.Scalar();
                        ++actions;
                    } else if (field == "error_code") {
                        rule.error_code = ErrorCodeFromName(v.Scalar());
                        if (rule.error_code == ErrorCode::kUnknown && v.Scalar() != "unknown") {
                            return InvalidArgumentError(
                                Where(file, v, fp) + "unknown error code \"" + v.Scalar() + "\"");
                        }
                    } else if (field == "hang") {
                        rule.hang = v.Scalar() == "true";
                        ++actions;
                    } else if (field == "latency_ms") {
                        STROWGER_ASSIGN_OR_RETURN(rule.latency_ms,
                                                  ReadInt(file, v, fp, kMaxLatencyMs));
                    } else if (field == "usage") {
                        // A provider's answer is held to kMaxTokensPerCall; so is the
                        // scripted one.
                        if (v["input_tokens"]) {
                            STROWGER_ASSIGN_OR_RETURN(
                                rule.input_tokens,
                                ReadInt(file, v["input_tokens"], fp + ".input_tokens",
                                        kMaxTokensPerCall));
                        }
                        if (v["output_tokens"]) {
                            STROWGER_ASSIGN_OR_RETURN(
                                rule.output_tokens,
                                ReadInt(file, v["output_tokens"], fp + ".output_tokens",
                                        kMaxTokensPerCall));
                        }
                    } else if (field == "finish_reason") {
                        rule.finish_reason = v.Scalar();
                    } else if (field == "tool_calls") {
                        if (!v.IsSequence())
                            return InvalidArgumentError(Where(file, v, fp) + "expected a list");
                        for (const auto& call : v) {
                            ScriptedToolCall tc;
                            tc.name = call["name"] ? call["name"].Scalar() : std::string();
                            if (tc.name.empty()) {
                                return InvalidArgumentError(Where(file, call, fp) +
                                                            "a tool call needs a name");
                            }
                            const YAML::Node& args = call["arguments"];
                            if (!args || args.IsNull()) {
                                tc.arguments = "{}";
                            } else if (args.IsScalar()) {
                                tc.arguments = args.Scalar();
                            } else {
                                tc.arguments = json::serialize(YamlToJson(args));
                            }
                            rule.tool_calls.push_back(std::move(tc));
                        }
                        if (rule.replies.empty()) ++actions;
                    } else {
                        std::string suggestion = ClosestMatch(
                            field, {"when", "times", "reply", "replies", "cycle", "reply_template",
                                    "error", "error_code", "hang", "latency_ms", "usage",
                                    "finish_reason", "tool_calls"});
                        return InvalidArgumentError(
                            Where(file, f->first, fp) + "unknown field \"" + field + "\"" +
                            (suggestion.empty() ? "" : " (did you mean \"" + suggestion + "\"?)"));
                    }
                }
                if (actions != 1) {
                    return InvalidArgumentError(Where(file, r, path) +
                                                "give exactly one of reply, replies, "
                                                "reply_template, error, hang, tool_calls");
                }
                provider->rules_.push_back(std::move(rule));
            }
        } else {
            return InvalidArgumentError(Where(file, it->first, key) + "unknown field \"" + key +
                                        "\" (expected latency_ms, default, prices, rules)");
        }
    }
    return provider;
}

int64_t ScriptedProvider::calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
}

namespace {

// ${history}: the messages before the last user or tool message, system prompts left out,
// as "role: content" joined with " | " (what a shared conversation carries).
std::string History(const std::vector<Message>& messages) {
    size_t last = messages.size();
    for (size_t i = messages.size(); i-- > 0;) {
        if (messages[i].role == Role::kUser || messages[i].role == Role::kTool) {
            last = i;
            break;
        }
    }
    std::string out;
    for (size_t i = 0; i < last; ++i) {
        const char* role = messages[i].role == Role::kUser        ? "user"
                           : messages[i].role == Role::kAssistant ? "assistant"
                           : messages[i].role == Role::kTool      ? "tool"
                                                                  : nullptr;
        if (role == nullptr) continue;
        if (!out.empty()) out += " | ";
        out += std::string(role) + ": " + messages[i].content;
    }
    return out.empty() ? "(none)" : out;
}

}  // namespace

ScriptedProvider::Answer ScriptedProvider::Decide(const CompletionRequest& request) {
    std::string_view prompt;
    std::string_view system;
    for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it) {
        if (prompt.empty() && (it->role == Role::kUser || it->role == Role::kTool))
            prompt = it->content;
    }
    for (const auto& m : request.messages) {
        if (m.role == Role::kSystem) system = m.content;
    }

    Completion completion;
    std::optional<Error> error;
    bool input_set = false;  // the matching rule gives the usage
    bool output_set = false;
    bool hang = false;
    int64_t latency_ms = default_latency_ms_;
    {
        std::lock_guard lock(mutex_);
        ++calls_;
        Rule* chosen = nullptr;
        for (auto& rule : rules_) {
            if (rule.times >= 0 && rule.used >= rule.times) continue;
            if (!rule.agent.empty() && rule.agent != request.agent) continue;
            if (!rule.step.empty() && rule.step != request.node) continue;
            if (rule.attempt > 0 && rule.attempt != request.attempt) continue;
            if (!rule.prompt_contains.empty() &&
                prompt.find(rule.prompt_contains) == std::string_view::npos)
                continue;
            if (!rule.system_contains.empty() &&
                system.find(rule.system_contains) == std::string_view::npos)
                continue;
            if (rule.prompt_regex &&
                !RE2::PartialMatch(re2::StringPiece(prompt.data(), prompt.size()),
                                   *rule.prompt_regex))
                continue;
            chosen = &rule;
            break;
        }
        if (chosen == nullptr) {
            if (!default_reply_) {
                return Answer{
                    MakeError(ErrorCode::kNotFound,
                              "scripted: no rule in " + file_ + " matches the call of step '" +
                                  request.node + "' (agent " + request.agent + ")"),
                    0, false};
            }
            completion.content = *default_reply_;
        } else {
            Rule& rule = *chosen;
            int64_t call = ++rule.used;
            if (rule.latency_ms) latency_ms = *rule.latency_ms;
            if (rule.error) {
                error = Error(rule.error_code, *rule.error);
            } else if (rule.hang) {
                hang = true;
            } else if (rule.has_template) {
                std::string text = rule.reply_template;
                if (text.find("${") != std::string::npos) {
                    ReplaceAll(text, "${prompt}", prompt);
                    ReplaceAll(text, "${agent}", request.agent);
                    ReplaceAll(text, "${step}", request.node);
                    ReplaceAll(text, "${call}", std::to_string(call));
                    ReplaceAll(text, "${attempt}", std::to_string(request.attempt));
                    if (text.find("${history}") != std::string::npos) {
                        ReplaceAll(text, "${history}", History(request.messages));
                    }
                }
                completion.content = std::move(text);
            } else if (!rule.replies.empty()) {
                size_t n = rule.replies.size();
                size_t index = static_cast<size_t>(call - 1);
                index = rule.cycle ? index % n : std::min(index, n - 1);
                completion.content = rule.replies[index];
            }
            for (size_t k = 0; k < rule.tool_calls.size(); ++k) {
                completion.tool_calls.push_back(
                    ToolCall{"call_" + std::to_string(call) + "_" + std::to_string(k + 1),
                             rule.tool_calls[k].name, rule.tool_calls[k].arguments});
            }
            completion.finish_reason =
                completion.tool_calls.empty() ? rule.finish_reason : "tool_calls";
            if (rule.input_tokens) completion.usage.input_tokens = *rule.input_tokens;
            if (rule.output_tokens) completion.usage.output_tokens = *rule.output_tokens;
            input_set = rule.input_tokens.has_value();
            output_set = rule.output_tokens.has_value();
        }
    }
    if (completion.finish_reason.empty()) completion.finish_reason = "stop";
    // Usage the rule does not give is estimated from the text (an explicit 0 stays 0).
    if (!input_set) {
        size_t bytes = 0;
        for (const auto& m : request.messages) bytes += m.content.size();
        completion.usage.input_tokens = EstimateTokens(bytes);
    }
    if (!output_set) {
        completion.usage.output_tokens = EstimateTokens(completion.content.size());
    }
    completion.model = request.model;
    if (error) return Answer{std::unexpected(std::move(*error)), latency_ms, hang};
    return Answer{std::move(completion), latency_ms, hang};
}

Awaitable<Result<Completion>> ScriptedProvider::Complete(CompletionRequest request,
                                                         Deadline deadline) {
    // Not a coroutine: the answer is decided now and the request dropped, so a waiting call
    // holds only the answer and a timer.
    return Deliver(Decide(request), deadline, request.stream, executor_);
}

std::optional<Result<Completion>> ScriptedProvider::Start(CompletionRequest request,
                                                          Deadline deadline,
                                                          const Executor& executor,
                                                          asio::cancellation_slot cancel,
                                                          CompletionHandler done) {
    Answer answer = Decide(request);
    if (!answer.Waits()) return Finish({}, answer, deadline, request.stream);
    // On an io_context's own executor (a single-threaded engine) the timer holds that
    // executor, a pointer, instead of a type-erased copy (≈ 130 B less per waiting call, with
    // the wait's work guards).
    if (const auto* io = executor.target<asio::io_context::executor_type>()) {
        Wait<asio::basic_waitable_timer<std::chrono::steady_clock,
                                        asio::wait_traits<std::chrono::steady_clock>,
                                        asio::io_context::executor_type>>(
            *io, std::move(answer), deadline, request.stream, cancel, std::move(done));
    } else {
        Wait<asio::steady_timer>(executor, std::move(answer), deadline, request.stream, cancel,
                                 std::move(done));
    }
    return std::nullopt;
}

template <typename Timer>
void ScriptedProvider::Wait(const typename Timer::executor_type& executor, Answer answer,
                            Deadline deadline, StreamSink* stream, asio::cancellation_slot cancel,
                            CompletionHandler done) {
    // The timer's handler owns the call: while the model "thinks", the call is the answer, the
    // timer and `done`.
    struct Pending {
        explicit Pending(const typename Timer::executor_type& executor) : timer(executor) {}
        Timer timer;
        Answer answer;
        Deadline deadline = Deadline::Never();
        StreamSink* stream = nullptr;
        asio::cancellation_slot cancel;
        CompletionHandler done;
    };
    auto pending = std::make_unique<Pending>(executor);
    Timer& timer = pending->timer;
    Arm(timer, answer, deadline);
    pending->answer = std::move(answer);
    pending->deadline = deadline;
    pending->stream = stream;
    pending->done = std::move(done);
    if (cancel.is_connected()) {
        pending->cancel = cancel;
        cancel.assign([&timer](asio::cancellation_type) { timer.cancel(); });
    }
    timer.async_wait([pending = std::move(pending)](const boost::system::error_code& ec) mutable {
        if (pending->cancel.is_connected()) pending->cancel.clear();
        Result<Completion> result = Finish(ec, pending->answer, pending->deadline, pending->stream);
        CompletionHandler then = std::move(pending->done);
        pending.reset();
        then(std::move(result));
    });
}

template <typename Timer>
void ScriptedProvider::Arm(Timer& timer, const Answer& answer, Deadline deadline) {
    if (answer.hang) {
        timer.expires_at(deadline.IsNever() ? Timer::time_point::max() : deadline.time());
    } else {
        timer.expires_after(std::chrono::milliseconds(answer.latency_ms));
    }
}

Result<Completion> ScriptedProvider::Finish(const boost::system::error_code& ec, Answer& answer,
                                            Deadline deadline, StreamSink* stream) {
    if (answer.Waits()) {
        if (ec == asio::error::operation_aborted) return CancelledError("scripted call cancelled");
        if (answer.hang || (!deadline.IsNever() && deadline.Expired())) {
            return DeadlineExceededError("scripted call passed its deadline");
        }
    }
    if (answer.result && stream && !answer.result->content.empty())
        stream->OnDelta(answer.result->content);
    return std::move(answer.result);
}

Awaitable<Result<Completion>> ScriptedProvider::Deliver(Answer answer, Deadline deadline,
                                                        StreamSink* stream,
                                                        const Executor& executor) {
    boost::system::error_code ec;
    if (answer.Waits()) {
        asio::steady_timer timer(executor);
        Arm(timer, answer, deadline);
        std::tie(ec) = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return Finish(ec, answer, deadline, stream);
}

void RegisterScriptedProvider(ProviderRegistry& registry) {
    auto instances = std::make_shared<std::map<std::string, std::shared_ptr<ScriptedProvider>>>();
    auto mutex = std::make_shared<std::mutex>();
    registry.Register(
        "scripted",
        [instances, mutex, executor = registry.executor()](
            std::string_view model, std::string_view base_dir) -> Result<ResolvedModel> {
            std::filesystem::path path(model);
            if (path.is_relative() && !base_dir.empty())
                path = std::filesystem::path(base_dir) / path;
            std::error_code ec;
            auto absolute = std::filesystem::weakly_canonical(path, ec);
            std::string key = ec ? path.string() : absolute.string();
            std::lock_guard lock(*mutex);
            auto it = instances->find(key);
            if (it == instances->end()) {
                auto loaded = ScriptedProvider::LoadFile(path.string(), executor);
                if (!loaded) return std::unexpected(loaded.error());
                it = instances->emplace(key, *loaded).first;
            }
            return ResolvedModel{it->second, "scripted", std::string(model), it->second->pricing()};
        });
}

}  // namespace strowger::providers
