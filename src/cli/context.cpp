#include "cli/context.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>

#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "audit/key.hpp"
#include "cli/progress.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/run_view.hpp"
#include "providers/builtin.hpp"
#include "providers/command/command_provider.hpp"
#include "providers/config/providers_config.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "tools/builtin/builtin_tools.hpp"
#include "tools/sandbox/sandbox.hpp"

namespace strowger::cli {

namespace {

// A cap from the environment: unset or empty = none (0); else a whole number >= 0.
Result<int64_t> LimitFromEnv(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return 0;
    std::string_view text(value);
    int64_t parsed = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec != std::errc() || end != text.data() + text.size() || parsed < 0) {
        return InvalidArgumentError(std::string(name) + ": expected a whole number >= 0 (0 = no " +
                                    "limit), got \"" + CapForMessage(text) + "\"");
    }
    return parsed;
}

}  // namespace

Status SetUpProvidersAndTools(Executor executor, const std::string& providers_flag,
                              providers::ProviderRegistry& registry,
                              engine::EngineOptions& options,
                              std::shared_ptr<automation::MemoryService>* memory) {
    auto config = providers::LoadProvidersConfig(providers_flag);
    if (!config) return std::unexpected(std::move(config).error());
    // The CLI's io_context is run by this thread only: its HTTP clients need no strands.
    http::HttpClientOptions http_options;
    http_options.single_threaded_executor = true;
    if (auto model_client = http::HttpClient::Create(executor, http_options)) {
        providers::RegisterBuiltinProviders(registry, *config, *model_client);
    } else {
        providers::RegisterBuiltinProviders(registry, *config);
    }

    options.tools = std::make_shared<tools::ToolRegistry>();
    std::shared_ptr<tools::sandbox::Sandbox> sandbox;
    if (auto created = tools::sandbox::CreateBubblewrapSandbox(executor)) {
        sandbox = *created;
        providers::RegisterCommandProvider(registry, sandbox);
    } else {
        std::string why = "no sandbox: " + created.error().message();
        options.unavailable_tools["shell"] = why;
        registry.Register(
            "command",
            [why](std::string_view, std::string_view) -> Result<providers::ResolvedModel> {
                return FailedPreconditionError("command: cannot run agent CLIs here (" + why + ")");
            });
    }
    std::shared_ptr<http::HttpClient> client;
    if (auto created = http::HttpClient::Create(executor, http_options)) {
        client = *created;
    } else {
        options.unavailable_tools["http_request"] = created.error().message();
    }
    tools::RegisterBuiltinTools(*options.tools, std::move(sandbox), std::move(client));
    auto service = std::make_shared<automation::MemoryService>();
    automation::RegisterMemoryTools(*options.tools, service);
    if (memory) *memory = std::move(service);
    return OkStatus();
}

bool SetUpProvidersOrReport(Executor executor, const std::string& providers_flag,
                            providers::ProviderRegistry& registry) {
    engine::EngineOptions unused;
    auto set_up = SetUpProvidersAndTools(std::move(executor), providers_flag, registry, unused);
    if (!set_up) PrintError(set_up.error().message());
    return set_up.has_value();
}

Result<std::unique_ptr<Context>> Context::WithoutStore(const std::string& providers_flag) {
    std::unique_ptr<Context> context(new Context());
    context->registry_ = std::make_unique<providers::ProviderRegistry>(context->io_.get_executor());
    engine::EngineOptions& options = context->options_;
    options.single_threaded_executor = true;  // io_ is run by this thread only
    STROWGER_ASSIGN_OR_RETURN(options.max_concurrent_runs,
                              LimitFromEnv("STROWGER_MAX_CONCURRENT_RUNS"));
    STROWGER_ASSIGN_OR_RETURN(options.max_concurrent_nodes,
                              LimitFromEnv("STROWGER_MAX_CONCURRENT_NODES"));
    STROWGER_TRY(SetUpProvidersAndTools(context->io_.get_executor(), providers_flag,
                                        *context->registry_, options, &context->memory_));
    return context;
}

Status Context::OpenStore(const std::string& store_flag, const KeyUse& key_use) {
    std::string url = StoreUrl(store_flag);
    auto fail = [&](const Error& error) {
        return std::unexpected(error.WithPrefix("cannot open store " + url + ": "));
    };
    // Worked out before the store is opened, which creates its file: an error here must leave
    // nothing behind. (A bare file name has an empty parent: the working directory.)
    if (StartsWith(url, "sqlite:")) {
        auto parsed = store::ParseSqliteUrl(url);
        if (!parsed) return fail(parsed.error());
        std::error_code ec;
        auto file = std::filesystem::absolute(parsed->path, ec);
        if (ec) return fail(InvalidArgumentError(parsed->path + ": " + ec.message()).error());
        options_.workspace_root = file.lexically_normal().parent_path() / "workspaces";
    }
    auto store = store::OpenStoreBlocking(url);
    if (!store) return fail(store.error());
    store_ = *store;
    store_url_ = url;
    if (memory_) memory_->Attach(store_);
    if (!key_use.pubkey_file.empty()) {
        auto key = VerifyingKey::ReadFileBlocking(key_use.pubkey_file);
        if (!key) return std::unexpected(key.error().WithPrefix("--pubkey: "));
        verifying_key_ = std::make_shared<const VerifyingKey>(std::move(*key));
        options_.ledger_key = verifying_key_;
    } else {
        STROWGER_ASSIGN_OR_RETURN(signing_key_, audit::LoadLedgerKeyBlocking(url));
        verifying_key_ = std::make_shared<const VerifyingKey>(signing_key_->verifying_key());
        options_.signer = audit::CheckpointSigner::Create(io_.get_executor(), store_, signing_key_);
    }
    engine_ = std::make_unique<engine::Engine>(io_.get_executor(), store_, *registry_, options_);
    return OkStatus();
}

Result<std::unique_ptr<Context>> Context::Open(const std::string& store_flag,
                                               const std::string& providers_flag,
                                               const KeyUse& key_use) {
    STROWGER_ASSIGN_OR_RETURN(auto context, WithoutStore(providers_flag));
    STROWGER_TRY(context->OpenStore(store_flag, key_use));
    return context;
}

Context::~Context() {
    // Only when something waits: running io_ again resumes whatever a command left queued,
    // and ExecuteWithProgress (which leaves handlers of its own behind) flushes itself.
    if (!engine_ || !engine_->CheckpointsPending()) return;
    auto flushed = Await(engine_->FlushCheckpoints());
    if (!flushed) {
        PrintError("cannot store signed checkpoints: " + flushed.error().message() +
                   " (`strowger runs resume --all` signs them later)");
    }
}

std::string DefaultActor() {
    const char* user = std::getenv("USER");
    return user && *user ? user : "unknown";
}

namespace {

// Asks on the terminal for a decision on each open task of a waiting run; records them.
// Returns false if the user declined to decide (the run stays waiting).
bool PromptForDecisions(Context& context, const std::string& run_id) {
    auto& engine = context.engine();
    auto loaded = context.Await(engine.LoadRun(run_id));
    if (!loaded) {
        PrintError(loaded.error().message());
        return false;
    }
    auto open = loaded->state.OpenTasks();
    for (const auto* task : open) {
        // What a model asked for, on the user's terminal: escaped.
        std::cerr << "\n── human task " << Shown(task->task_id) << " ──\n"
                  << Shown(task->title) << "\n";
        if (!task->tool.empty()) std::cerr << "  tool:      " << Shown(task->tool) << "\n";
        if (!task->arguments.empty()) {
            std::cerr << "  arguments: " << Shown(task->arguments) << "\n";
        }
        std::cerr << (task->kind == "reconciliation"
                          ? "Run the step again? [y]es / [n]o (fail it) / [s]kip: "
                          : "Allow this call? [y]es / [n]o / [s]kip (decide later): ")
                  << std::flush;
        std::string answer;
        if (!std::getline(std::cin, answer)) return false;
        answer = std::string(Trim(answer));
        if (answer.empty() || answer[0] == 's' || answer[0] == 'S') return false;
        bool approve = answer[0] == 'y' || answer[0] == 'Y';
        std::cerr << "comment (optional): " << std::flush;
        std::string comment;
        std::getline(std::cin, comment);
        auto decided = context.Await(engine.Decide(
            run_id, task->task_id, approve ? "approve" : "reject", DefaultActor(), comment, ""));
        if (!decided) {
            PrintError(decided.error().message());
            return false;
        }
    }
    return true;
}

}  // namespace

int ExecuteWithProgress(Context& context, Awaitable<Result<engine::RunOutcome>> start,
                        const std::string& progress_mode, bool json_output) {
    auto& io = context.io();
    auto& engine = context.engine();
    std::optional<ProgressDisplay> progress;
    bool live = StderrIsTerminal();
    if (progress_mode == "always" || (progress_mode == "auto" && live)) {
        progress.emplace(io.get_executor(),
                         live ? ProgressDisplay::Mode::kLive : ProgressDisplay::Mode::kLines);
        engine.AddObserver(&*progress);
    }
    std::optional<Result<engine::RunOutcome>> outcome;
    std::optional<Result<engine::Engine::LoadedRun>> loaded;
    while (true) {
        // Ctrl-C / SIGTERM cancel the run (in-flight model calls are aborted); a second signal
        // exits at once.
        asio::signal_set signals(io, SIGINT, SIGTERM);
        int signal_count = 0;
        std::function<void()> arm = [&] {
            signals.async_wait([&](boost::system::error_code ec, int signal_number) {
                if (ec) return;
                if (++signal_count > 1) std::_Exit(ToInt(ExitCode::kCancelled));
                engine.CancelAll(signal_number == SIGINT ? "interrupted (SIGINT)"
                                                         : "terminated (SIGTERM)");
                arm();
            });
        };
        arm();
        // Pause/cancel requests from other processes, and lease renewal, while it executes.
        asio::cancellation_signal stop_supervising;
        asio::co_spawn(io, engine.Supervise(std::chrono::milliseconds(200)),
                       asio::bind_cancellation_slot(stop_supervising.slot(), asio::detached));
        // A named coroutine object: it must outlive io.run() (a temporary lambda coroutine
        // would dangle).
        auto execute = [&]() -> Awaitable<void> {
            auto result = co_await std::move(start);
            if (progress) progress->Suspend();  // its redraw timer would keep io.run() going
            // The run's stop is signed before anything reads it back (or another process does).
            if (auto flushed = co_await engine.FlushCheckpoints(); !flushed) {
                PrintError("cannot store signed checkpoints: " + flushed.error().message());
            }
            if (result && json_output) loaded = co_await engine.LoadRun(result->run_id);
            outcome = std::move(result);
            signals.cancel();
            stop_supervising.emit(asio::cancellation_type::terminal);
            // Return now: the MCP servers' read loops would keep io.run() going for ever
            // (what is still queued runs at the next io.run(), or is dropped at exit).
            io.stop();
        };
        asio::co_spawn(io, execute(), asio::detached);
        io.restart();
        io.run();
        // A run that stops for a human decision on a terminal: ask now, then go on.
        if (outcome && *outcome &&
            ((*outcome)->status == ledger::RunStatus::kWaiting ||
             (*outcome)->status == ledger::RunStatus::kNeedsReconciliation) &&
            isatty(STDIN_FILENO) == 1 && StderrIsTerminal()) {
            std::string run_id = (*outcome)->run_id;
            if (PromptForDecisions(context, run_id)) {
                start = engine.ResumeRun(run_id, "decided", DefaultActor());
                outcome.reset();
                loaded.reset();
                continue;
            }
        }
        break;
    }
    if (progress) progress->Stop();

    if (!outcome) {
        PrintError("run did not finish");
        return ToInt(ExitCode::kInternal);
    }
    if (!*outcome) {
        PrintError((*outcome).error().message());
        ErrorCode code = (*outcome).error().code();
        return ToInt(code == ErrorCode::kFailedPrecondition || code == ErrorCode::kNotFound ||
                             code == ErrorCode::kInvalidArgument || code == ErrorCode::kAborted
                         ? ExitCode::kUsage
                         : ExitCode::kInternal);
    }
    const engine::RunOutcome& result = **outcome;
    if (result.existing) {
        PrintError("idempotency key already used by run " + result.run_id + " (" +
                   std::string(ledger::RunStatusName(result.status)) + "); not started again");
    }
    if (json_output) {
        if (loaded && *loaded) {
            std::cout << json::serialize(
                             engine::RunRecordJson((*loaded)->plan.get(), (*loaded)->state))
                      << "\n";
        } else {
            json::object minimal;
            minimal["run_id"] = result.run_id;
            minimal["status"] = std::string(ledger::RunStatusName(result.status));
            std::cout << json::serialize(minimal) << "\n";
        }
    } else if (result.status == ledger::RunStatus::kCompleted && !result.existing) {
        // The workflow's output: its exact bytes for a pipe or a file (`run f.yaml > out.txt`),
        // escaped on a terminal.
        std::cout << ForStdout(result.output);
        if (result.output.empty() || result.output.back() != '\n') std::cout << "\n";
    }
    std::cout.flush();
    if (result.error_code != ErrorCode::kOk && result.status != ledger::RunStatus::kFailed) {
        PrintError("run " + result.run_id + " stopped: " + result.error);
        return ToInt(ExitCode::kInternal);
    }
    switch (result.status) {
        case ledger::RunStatus::kFailed:
            PrintError("run " + result.run_id + " failed: " + result.error);
            break;
        case ledger::RunStatus::kCancelled:
            PrintError("run " + result.run_id + " cancelled");
            break;
        case ledger::RunStatus::kPaused:
            PrintError("run " + result.run_id +
                       " is paused; continue it with `strowger runs resume " + result.run_id + "`");
            break;
        case ledger::RunStatus::kWaiting:
        case ledger::RunStatus::kNeedsReconciliation:
            PrintError("run " + result.run_id + " waits for a human decision: `strowger approve " +
                       result.run_id + "` or `strowger reject " + result.run_id +
                       " --reason ...` (see `strowger runs show " + result.run_id + "`)");
            break;
        default:
            break;
    }
    return ToInt(ExitCodeFor(result.status));
}

}  // namespace strowger::cli
