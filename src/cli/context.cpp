#include "cli/context.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>

#include <pwd.h>
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
                              providers::ProviderRegistry& registry, engine::EngineOptions& options,
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
        // Only the default store's directory is created: a store named by --store or
        // $STROWGER_STORE in a directory that does not exist is more likely a typo.
        const char* env = std::getenv("STROWGER_STORE");
        const auto parent = file.lexically_normal().parent_path();
        if ((!store_flag.empty() || (env != nullptr && *env != '\0')) &&
            file.lexically_normal().has_filename() && !std::filesystem::exists(parent, ec)) {
            return fail(FailedPreconditionError(
                            "directory " + parent.string() +
                            " does not exist (only the default store's directory is created; "
                            "create it first)")
                            .error());
        }
        options_.workspace_root = parent / "workspaces";
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

Result<std::string> ResolveRunId(Context& context, const std::string& text) {
    auto& store = context.store();
    if (text == "last") {
        store::RunFilter newest;
        newest.limit = 1;
        STROWGER_ASSIGN_OR_RETURN(auto page, context.Await(store.ListRuns(newest)));
        if (page.runs.empty()) return NotFoundError("there are no runs yet (`last` names none)");
        return page.runs.front().run_id;
    }
    if (auto exact = context.Await(store.GetRun(text)); exact) return text;
    // Ids sort by time: the newest runs below prefix + "\x7f" are the ones it starts.
    store::RunFilter below;
    below.limit = 2;
    below.before_run_id = text + "\x7f";
    STROWGER_ASSIGN_OR_RETURN(auto page, context.Await(store.ListRuns(below)));
    std::vector<std::string> matches;
    for (const auto& record : page.runs) {
        if (StartsWith(record.run_id, text)) matches.push_back(record.run_id);
    }
    if (text.empty() || matches.empty()) {
        return NotFoundError("no run " + CapForMessage(text));  // as the daemon says it
    }
    if (matches.size() > 1) {
        return InvalidArgumentError("run id prefix " + CapForMessage(text) +
                                    " is ambiguous: it starts " + matches[0] + ", " + matches[1] +
                                    " and maybe more; give more of the id");
    }
    return matches.front();
}

std::string DefaultActor() {
    const char* user = std::getenv("USER");
    if (user && *user) return user;
    // $USER unset (a service, a container, cron): the OS account.
    if (const passwd* account = getpwuid(geteuid()); account && account->pw_name) {
        return account->pw_name;
    }
    return "uid " + std::to_string(geteuid());
}

namespace {

// 'y', 'n' or 's' for a clear answer to the decision prompt (the letter or the word, any case);
// nullopt for anything else.
std::optional<char> ParseDecisionAnswer(std::string_view text) {
    std::string answer = AsciiLower(Trim(text));
    if (answer == "y" || answer == "yes") return 'y';
    if (answer == "n" || answer == "no") return 'n';
    if (answer == "s" || answer == "skip") return 's';
    return std::nullopt;
}

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
        // Only a clear answer decides: anything else ("maybe", "ok", "sure") asks again.
        std::optional<char> choice;
        while (!choice) {
            std::string answer;
            if (!std::getline(std::cin, answer)) return false;
            choice = ParseDecisionAnswer(answer);
            if (!choice) {
                std::cerr << "Please answer y (yes), n (no) or s (skip): " << std::flush;
            }
        }
        if (*choice == 's') return false;
        bool approve = *choice == 'y';
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

namespace {

// `run --stream`: the final step's text on stdout as the model writes it (escaped on a
// terminal). A step tried again streams again.
class StreamPrinter final : public engine::Observer {
  public:
    explicit StreamPrinter(std::string node) : node_(std::move(node)) {}
    bool WantsData() const override { return false; }
    bool WantsDeltas() const override { return true; }
    void OnDelta(std::string_view, std::string_view node, std::string_view text) override {
        if (node != node_ || text.empty()) return;
        std::cout << ForStdout(text) << std::flush;
        streamed_ = true;
        ends_with_newline_ = text.back() == '\n';
    }
    bool streamed() const { return streamed_; }
    bool ends_with_newline() const { return ends_with_newline_; }

  private:
    std::string node_;
    bool streamed_ = false;
    bool ends_with_newline_ = false;
};

}  // namespace

int ExecuteWithProgress(Context& context, Awaitable<Result<engine::RunOutcome>> start,
                        const std::string& progress_mode, bool json_output,
                        const std::string& stream_node) {
    auto& io = context.io();
    auto& engine = context.engine();
    std::optional<StreamPrinter> stream;
    if (!stream_node.empty() && !json_output) {
        stream.emplace(stream_node);
        engine.AddObserver(&*stream);
    }
    std::optional<ProgressDisplay> progress;
    bool live = StderrIsTerminal();
    if (progress_mode == "always" || (progress_mode == "auto" && live)) {
        progress.emplace(io.get_executor(),
                         live ? ProgressDisplay::Mode::kLive : ProgressDisplay::Mode::kLines);
        engine.AddObserver(&*progress);
    }
    std::optional<Result<engine::RunOutcome>> outcome;
    std::optional<Result<engine::Engine::LoadedRun>> loaded;
    bool terminated = false;  // a SIGTERM paused the run
    while (true) {
        // Ctrl-C cancels the run (in-flight model calls are aborted). SIGTERM (a service
        // manager stopping the machine) pauses it at its next step boundary, once in-flight
        // calls have answered: the run stays resumable. A second signal exits at once (the run
        // is left `running`, as after a crash: `runs resume` continues it).
        asio::signal_set signals(io, SIGINT, SIGTERM);
        int signal_count = 0;
        std::function<void()> arm = [&] {
            signals.async_wait([&](boost::system::error_code ec, int signal_number) {
                if (ec) return;
                if (++signal_count > 1) {
                    std::_Exit(ToInt(terminated ? ExitCode::kWaiting : ExitCode::kCancelled));
                }
                if (signal_number == SIGINT) {
                    engine.CancelAll("interrupted (SIGINT)");
                } else {
                    terminated = true;
                    engine.PauseAll("interrupted (SIGTERM)");
                }
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
            std::cout << json::serialize(RunRecord((*loaded)->plan.get(), (*loaded)->state))
                      << "\n";
        } else {
            json::object minimal;
            minimal["run_id"] = result.run_id;
            minimal["status"] = std::string(ledger::RunStatusName(result.status));
            std::cout << json::serialize(minimal) << "\n";
        }
    } else if (result.status == ledger::RunStatus::kCompleted && !result.existing) {
        if (stream && stream->streamed()) {
            // Already printed as it came.
            if (!stream->ends_with_newline()) std::cout << "\n";
        } else {
            // The workflow's output: its exact bytes for a pipe or a file (`run f.yaml >
            // out.txt`), escaped on a terminal.
            std::cout << ForStdout(result.output);
            if (result.output.empty() || result.output.back() != '\n') std::cout << "\n";
        }
    } else if (stream && stream->streamed()) {
        std::cout << "\n";  // the streamed text of a run that did not complete
    }
    std::cout.flush();
    if (result.error_code != ErrorCode::kOk && result.status != ledger::RunStatus::kFailed) {
        PrintError("run " + result.run_id + " stopped: " + result.error);
        return ToInt(ExitCode::kInternal);
    }
    switch (result.status) {
        case ledger::RunStatus::kFailed:
            PrintError("run " + result.run_id + " failed: " + result.error);
            PrintError("once the cause is fixed, `strowger runs retry " + result.run_id +
                       "` continues from the failed step");
            break;
        case ledger::RunStatus::kCancelled:
            PrintError("run " + result.run_id + " cancelled (`strowger runs retry " +
                       result.run_id + "` reopens it)");
            break;
        case ledger::RunStatus::kPaused:
            PrintError("run " + result.run_id +
                       (terminated ? " was interrupted (SIGTERM) and paused at a step boundary"
                                   : " is paused") +
                       "; continue it with `strowger runs resume " + result.run_id + "`");
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
