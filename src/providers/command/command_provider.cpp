#include "providers/command/command_provider.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <utility>

#include "core/json.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"
#include "tools/sandbox/blocking.hpp"

namespace strowger::providers {
namespace {

namespace fs = std::filesystem;

constexpr size_t kStderrTailBytes = 2000;

int64_t EstimateTokens(size_t bytes) {
    return static_cast<int64_t>((bytes + 3) / 4);
}

// A per-call temporary directory, removed (blocking) if the call ends without removing it.
class TempWorkspace {
  public:
    TempWorkspace() = default;
    explicit TempWorkspace(fs::path path) : path_(std::move(path)) {}
    TempWorkspace(TempWorkspace&& other) noexcept : path_(std::exchange(other.path_, {})) {}
    TempWorkspace& operator=(TempWorkspace&& other) noexcept {
        if (this != &other) {
            Remove();
            path_ = std::exchange(other.path_, {});
        }
        return *this;
    }
    ~TempWorkspace() { Remove(); }
    const fs::path& path() const { return path_; }
    fs::path Release() { return std::exchange(path_, {}); }

  private:
    void Remove() {
        std::error_code ec;
        if (!path_.empty()) fs::remove_all(path_, ec);
    }

    fs::path path_;
};

struct PreparedCall {
    tools::sandbox::SandboxSpec spec;
    TempWorkspace workspace;
    std::string command;
    size_t prompt_bytes = 0;
    StreamSink* stream = nullptr;
};

Result<TempWorkspace> MakeTempWorkspace(const fs::path& root) {
    std::error_code ec;
    fs::path parent = root.empty() ? fs::temp_directory_path(ec) : root;
    if (ec) parent = "/tmp";
    std::string pattern = (parent / "strowger-command-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
        return InternalError("command: cannot create a workspace under " + parent.string() + ": " +
                             std::strerror(errno));
    }
    return TempWorkspace(fs::path(pattern));
}

Result<PreparedCall> Prepare(const CompletionRequest& request,
                             const CommandProviderOptions& options) {
    std::string command(Trim(request.model));
    if (command.empty()) {
        return InvalidArgumentError(
            "command: the model must be a command line, e.g. \"command:claude -p\"");
    }
    PreparedCall call;
    STROWGER_ASSIGN_OR_RETURN(call.workspace, MakeTempWorkspace(options.temp_root));
    auto& spec = call.spec;
    spec.argv = {"sh", "-c", command};
    spec.stdin_data = CommandPrompt(request.messages);
    spec.workspace = call.workspace.path();
    spec.network = true;
    spec.limits = options.limits;
    const char* path = std::getenv("PATH");
    const char* lang = std::getenv("LANG");
    spec.env = {
        {"PATH", path && *path ? path : "/usr/local/bin:/usr/bin:/bin"},
        {"HOME", call.workspace.path().string()},
        {"LANG", lang && *lang ? lang : "C.UTF-8"},
        {"STROWGER_RUN", request.run_id},
        {"STROWGER_NODE", request.node},
        {"STROWGER_AGENT", request.agent},
        {"STROWGER_ATTEMPT", std::to_string(request.attempt)},
    };
    std::vector<std::string> pass = options.pass_env;
    if (const char* extra = std::getenv("STROWGER_COMMAND_PASS_ENV")) {
        for (auto& name : Split(extra, ',')) pass.emplace_back(Trim(name));
    }
    for (const auto& name : pass) {
        if (name.empty()) continue;
        if (const char* value = std::getenv(name.c_str())) spec.env[name] = value;
    }
    spec.read_only_paths = options.read_only_paths;
    if (const char* extra = std::getenv("STROWGER_COMMAND_READ_ONLY_PATHS")) {
        for (auto& item : Split(extra, ':')) {
            std::error_code ec;
            if (!item.empty() && fs::path(item).is_absolute() && fs::exists(item, ec)) {
                spec.read_only_paths.emplace_back(item);
            }
        }
    }
    call.command = std::move(command);
    call.prompt_bytes = spec.stdin_data.size();
    call.stream = request.stream;
    return call;
}

Result<Completion> ToCompletion(tools::sandbox::SandboxResult run, const std::string& command,
                                size_t prompt_bytes, StreamSink* stream) {
    if (run.timed_out) {
        return DeadlineExceededError("command: `" + command +
                                     "` passed the call's deadline; its process tree was killed");
    }
    if (run.exit_code != 0) {
        // Redacted before it is cut: a key the cut fell inside would no longer be found.
        std::string all = HaveSecrets() ? Redact(run.stderr_data) : std::move(run.stderr_data);
        std::string tail =
            all.size() > kStderrTailBytes ? all.substr(all.size() - kStderrTailBytes) : all;
        while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
        std::string how = run.signal != 0 ? "was killed by signal " + std::to_string(run.signal)
                                          : "exited with " + std::to_string(run.exit_code);
        ErrorDetails details;
        details.exit_code = run.exit_code;
        details.reason = "command_failed";
        return MakeError(ErrorCode::kUnavailable,
                         "command: `" + command + "` " + how +
                             (tail.empty() ? std::string() : ": " + ToValidUtf8(tail)),
                         std::move(details));
    }
    Completion completion;
    completion.content = ToValidUtf8(run.stdout_data);
    if (!completion.content.empty() && completion.content.back() == '\n') {
        completion.content.pop_back();
    }
    completion.finish_reason = run.stdout_truncated ? "length" : "stop";
    completion.model = command;
    completion.usage.input_tokens = EstimateTokens(prompt_bytes);
    completion.usage.output_tokens = EstimateTokens(run.stdout_data.size());
    if (stream && !completion.content.empty()) stream->OnDelta(completion.content);
    return completion;
}

Awaitable<Result<Completion>> RunCommand(std::shared_ptr<tools::sandbox::Sandbox> sandbox,
                                         PreparedCall call, Deadline deadline) {
    auto run = co_await sandbox->Run(std::move(call.spec), deadline);
    // The workspace may hold whatever the CLI wrote: remove it off the I/O thread. (The
    // closure is a named local: GCC 12 frees a prvalue argument inside co_await twice.)
    auto remove = [path = call.workspace.Release()] {
        std::error_code ec;
        fs::remove_all(path, ec);
        return 0;
    };
    co_await tools::sandbox::RunBlocking(std::move(remove));
    if (!run) co_return std::unexpected(std::move(run).error());
    co_return ToCompletion(std::move(*run), call.command, call.prompt_bytes, call.stream);
}

Awaitable<Result<Completion>> Failed(Error error) {
    co_return std::unexpected(std::move(error));
}

}  // namespace

std::string CommandPrompt(const std::vector<Message>& messages) {
    std::string system;
    for (const auto& message : messages) {
        if (message.role != Role::kSystem || message.content.empty()) continue;
        if (!system.empty()) system += "\n\n";
        system += message.content;
    }
    const Message* last = nullptr;
    for (auto it = messages.rbegin(); it != messages.rend() && !last; ++it) {
        if (it->role == Role::kUser) last = &*it;
    }
    if (!last && !messages.empty()) last = &messages.back();
    std::string prompt = system;
    if (last && last->role != Role::kSystem) {
        if (!prompt.empty()) prompt += "\n\n";
        prompt += last->content;
    }
    return prompt;
}

CommandProvider::CommandProvider(std::shared_ptr<tools::sandbox::Sandbox> sandbox,
                                 CommandProviderOptions options)
    : sandbox_(std::move(sandbox)), options_(std::move(options)) {}

Awaitable<Result<Completion>> CommandProvider::Complete(CompletionRequest request,
                                                        Deadline deadline) {
    // Not a coroutine: the request is turned into a sandbox spec now and not kept.
    auto call = Prepare(request, options_);
    if (!call) return Failed(std::move(call).error());
    return RunCommand(sandbox_, std::move(*call), deadline);
}

void RegisterCommandProvider(ProviderRegistry& registry,
                             std::shared_ptr<tools::sandbox::Sandbox> sandbox,
                             CommandProviderOptions options) {
    auto provider = std::make_shared<CommandProvider>(std::move(sandbox), std::move(options));
    registry.Register(
        "command", [provider](std::string_view model, std::string_view) -> Result<ResolvedModel> {
            if (Trim(model).empty()) {
                return InvalidArgumentError(
                    "command: the model must be a command line, e.g. "
                    "\"command:claude -p\"");
            }
            return ResolvedModel{provider, "command", std::string(model), Pricing{}};
        });
}

}  // namespace strowger::providers
