#include <signal.h>
#include <string.h>

#include <cstdlib>

#include "core/json.hpp"
#include "tools/builtin/arguments.hpp"
#include "tools/builtin/builtin_tools.hpp"

namespace strowger::tools::builtin {
namespace {

constexpr size_t kMaxCommandBytes = 64 << 10;

Result<sandbox::SandboxSpec> ShellSpec(const std::string& arguments, const ToolContext& context) {
    STROWGER_ASSIGN_OR_RETURN(auto args, Arguments::Parse("shell", arguments, {"command"}));
    STROWGER_ASSIGN_OR_RETURN(std::string command, args.RequiredString("command"));
    if (command.find_first_not_of(" \t\r\n") == std::string::npos) {
        return InvalidArgumentError("shell: \"command\" must not be empty");
    }
    if (command.size() > kMaxCommandBytes) {
        return InvalidArgumentError("shell: \"command\" is longer than " +
                                    std::to_string(kMaxCommandBytes) + " bytes");
    }
    if (context.workspace.empty())
        return FailedPreconditionError("shell: the call has no workspace");
    sandbox::SandboxSpec spec;
    spec.argv = {"sh", "-c", std::move(command)};
    spec.workspace = context.workspace;
    const char* lang = std::getenv("LANG");
    spec.env = {
        {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        {"HOME", context.workspace.string()},
        {"LANG", lang && *lang ? lang : "C.UTF-8"},
        {"STROWGER_IDEMPOTENCY_KEY", context.idempotency_key},
    };
    spec.network = context.grants.network;
    spec.limits = context.grants.sandbox;
    return spec;
}

std::string Section(std::string_view label, const std::string& data, bool truncated, int64_t cap) {
    std::string out(label);
    if (truncated) out += " (truncated to the first " + std::to_string(cap) + " bytes)";
    out += ":\n";
    if (data.empty()) return out + "(empty)\n";
    out += ToValidUtf8(data);
    if (out.back() != '\n') out += '\n';
    return out;
}

std::string SignalName(int signal) {
    const char* abbreviation = sigabbrev_np(signal);
    return abbreviation ? std::string("SIG") + abbreviation : "signal " + std::to_string(signal);
}

ToolResult FormatResult(const sandbox::SandboxResult& run, const SandboxLimits& limits) {
    ToolResult result;
    std::string& out = result.content;
    if (run.timed_out) {
        out += "timed out: the process tree was killed";
        if (limits.wall_timeout_ms > 0) {
            out += " (wall timeout " + std::to_string(limits.wall_timeout_ms) +
                   " ms or the "
                   "call's deadline)";
        }
        out += "\n";
    } else if (run.signal != 0) {
        out += "killed by " + SignalName(run.signal) + "\n";
    } else {
        out += "exit code: " + std::to_string(run.exit_code);
        // sh (and bwrap) report a child killed by signal N as 128 + N.
        if (run.exit_code > 128 && run.exit_code < 128 + 65) {
            out += " (killed by " + SignalName(run.exit_code - 128) + ")";
            if (run.exit_code - 128 == SIGXCPU) out += ": CPU time limit";
            if (run.exit_code - 128 == SIGXFSZ) out += ": file size limit";
        }
        out += "\n";
    }
    out += Section("stdout", run.stdout_data, run.stdout_truncated, limits.max_output_bytes);
    out += Section("stderr", run.stderr_data, run.stderr_truncated, limits.max_output_bytes);
    result.is_error = run.timed_out || run.signal != 0 || run.exit_code != 0;
    return result;
}

class ShellTool final : public Tool {
  public:
    explicit ShellTool(std::shared_ptr<sandbox::Sandbox> sandbox) : sandbox_(std::move(sandbox)) {
        spec_.name = "shell";
        spec_.description =
            "Run a shell command (sh -c) in a sandbox whose working directory is the workspace. "
            "Only the workspace is writable (/tmp is private and discarded); the network is "
            "off unless granted; CPU, memory, process, file-size, time and output limits "
            "apply. Returns the exit code, stdout and stderr.";
        spec_.parameters_schema =
            R"({"type":"object","properties":{"command":{"type":"string","description":)"
            R"("The command line, run with sh -c in the workspace"}},"required":["command"],)"
            R"("additionalProperties":false})";
    }

    const providers::ToolSpec& spec() const override { return spec_; }
    SafetyClass safety() const override { return SafetyClass::kDestructive; }

    Awaitable<Result<ToolResult>> Call(std::string arguments, ToolContext context) override {
        auto spec = ShellSpec(arguments, context);
        if (!spec) co_return std::unexpected(std::move(spec).error());
        auto run = co_await sandbox_->Run(std::move(*spec), context.deadline);
        if (!run) co_return std::unexpected(std::move(run).error());
        co_return FormatResult(*run, context.grants.sandbox);
    }

  private:
    std::shared_ptr<sandbox::Sandbox> sandbox_;
    providers::ToolSpec spec_;
};

}  // namespace

std::shared_ptr<Tool> MakeShellTool(std::shared_ptr<sandbox::Sandbox> sandbox) {
    return std::make_shared<ShellTool>(std::move(sandbox));
}

}  // namespace strowger::tools::builtin
