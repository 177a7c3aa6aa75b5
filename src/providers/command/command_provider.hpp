// `command:` — an agent CLI as a model provider (SPEC §4).
//
// The model string is a shell command line: `command:claude -p`, `command:llm -m gpt-4o-mini`,
// `command:/opt/agents/my-agent --json`. Each Complete() runs `sh -c <command line>` in the
// bubblewrap sandbox and feeds it, on stdin, the prompt: the system messages (joined by blank
// lines), a blank line, then the last user message (or the last message of any role when there
// is no user message). The completion is the command's stdout, minus one trailing newline.
//
// The sandbox for a call:
//  * network granted (an agent CLI talks to its API);
//  * the workspace is a fresh temporary directory (the working directory and $HOME), removed
//    after the call: the CLI keeps no state between calls and sees nothing of the host beyond
//    the read-only system (tools/sandbox/sandbox.hpp);
//  * environment: PATH, HOME, LANG, STROWGER_RUN / STROWGER_NODE / STROWGER_AGENT /
//    STROWGER_ATTEMPT, plus each variable of the host whose name is listed in
//    CommandProviderOptions::pass_env (by default the usual API key, base URL and proxy
//    variables) or in $STROWGER_COMMAND_PASS_ENV (comma-separated), if set;
//  * read-only extra paths: CommandProviderOptions::read_only_paths and
//    $STROWGER_COMMAND_READ_ONLY_PATHS (colon-separated; missing ones are skipped), e.g. the
//    install directory of a CLI that lives outside /usr and /opt;
//  * limits: CommandProviderOptions::limits (generous by default: agent CLIs are large);
//    the wall time is the call's deadline.
//
// Results and errors:
//  * exit 0 -> Completion{content = stdout, finish_reason "stop", model = the command line,
//    usage estimated as ceil(bytes / 4) of the prompt and of the output};
//  * non-zero exit or killed -> kUnavailable "command: `<cmd>` exited with N: <stderr tail>"
//    (details.exit_code = N);
//  * deadline -> kDeadlineExceeded; cancellation -> kCancelled (the tree is killed either way);
//  * the sandbox itself failing -> its error (kFailedPrecondition without bwrap, ...).
// Tool specs in the request are ignored (the CLI has its own tools); a streaming sink gets the
// whole output at once.
//
// Relative paths in the command line are relative to the temporary workspace, not to the
// workflow file: use absolute paths (and list them in read_only_paths when outside /usr, /opt).
//
// Thread-safety: Complete() may be called concurrently.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "providers/provider.hpp"
#include "tools/sandbox/sandbox.hpp"

namespace strowger::providers {

struct CommandProviderOptions {
    std::vector<std::string> pass_env = {
        "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
        "GEMINI_API_KEY",    "HTTP_PROXY",         "HTTPS_PROXY",    "NO_PROXY",
        "http_proxy",        "https_proxy",        "no_proxy",       "SSL_CERT_FILE"};
    std::vector<std::filesystem::path> read_only_paths;
    tools::SandboxLimits limits = [] {
        tools::SandboxLimits l;
        l.cpu_seconds = 3600;
        l.memory_bytes = int64_t{16} << 30;
        l.max_processes = 256;
        l.max_open_files = 4096;
        l.max_file_size_bytes = int64_t{1} << 30;
        l.wall_timeout_ms = 0;  // the call's deadline
        l.max_output_bytes = int64_t{16} << 20;
        return l;
    }();
    // Parent of the per-call workspaces; "" = the system temp directory.
    std::filesystem::path temp_root;
};

class CommandProvider final : public Provider {
  public:
    CommandProvider(std::shared_ptr<tools::sandbox::Sandbox> sandbox,
                    CommandProviderOptions options);
    std::string_view name() const override { return "command"; }
    Awaitable<Result<Completion>> Complete(CompletionRequest request, Deadline deadline) override;

  private:
    std::shared_ptr<tools::sandbox::Sandbox> sandbox_;
    CommandProviderOptions options_;
};

// The text fed to the command for `messages` (see above).
std::string CommandPrompt(const std::vector<Message>& messages);

// Registers "command" in `registry`; one provider instance serves every command line.
void RegisterCommandProvider(ProviderRegistry& registry,
                             std::shared_ptr<tools::sandbox::Sandbox> sandbox,
                             CommandProviderOptions options = {});

}  // namespace strowger::providers
