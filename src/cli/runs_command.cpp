// strowger runs list|show|events|resume|pause|cancel|retry|rerun|prune
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/json.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <set>
#include <thread>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "cli/remote.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "engine/run_view.hpp"
#include "ledger/event.hpp"

namespace strowger::cli {
namespace {

using ledger::RunStatus;

std::string ShortTime(SystemTime time) {
    if (time == SystemTime{}) return "-";
    std::string text = FormatRfc3339(time);
    return text.substr(0, 19) + "Z";  // to the second
}

// `text` and spaces to `width` columns (a code point is a column), and always at least two
// spaces: a wide value must not run into the next column.
// Opens the store or prints why not; null on failure.
std::unique_ptr<Context> OpenOrReport(const std::string& store, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto context = Context::Open(store, global.providers_file);
    if (!context) {
        PrintError(context.error().message());
        return nullptr;
    }
    return std::move(*context);
}

// --- list ----------------------------------------------------------------------------------

struct ListFlags {
    std::string store;
    std::vector<std::string> statuses;
    std::string workflow;
    int64_t limit = 20;
    std::string before;
    std::string since;  // "30m", "2h", "7d": only runs created since then
    bool json = false;
};

// "30m", "2h", "7d", "45s" as a duration; nullopt if it is not one.
std::optional<std::chrono::seconds> ParseSince(std::string_view text) {
    if (text.size() < 2) return std::nullopt;
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, value);
    if (ec != std::errc() || end != text.data() + text.size() - 1 || value < 0) return std::nullopt;
    switch (text.back()) {
        case 's':
            return std::chrono::seconds(value);
        case 'm':
            return std::chrono::seconds(value * 60);
        case 'h':
            return std::chrono::seconds(value * 3600);
        case 'd':
            return std::chrono::seconds(value * 86400);
        default:
            return std::nullopt;
    }
}

// What `runs list` shows of a run beyond its record, from its verified ledger (as the
// daemon's run record has it, for the --server form).
RunTotals TotalsOf(Context& context, const std::string& run_id) {
    auto loaded = context.Await(context.engine().LoadRun(run_id));
    if (!loaded) return {};
    return RunTotalsOf(engine::RunRecordJson(loaded->plan.get(), loaded->state));
}

int DoList(const ListFlags& flags, const GlobalFlags& global) {
    auto context = OpenOrReport(flags.store, global);
    if (!context) return ToInt(ExitCode::kInternal);
    store::RunFilter filter;
    for (const auto& name : flags.statuses) {
        bool ok = false;
        RunStatus status = ledger::RunStatusFromName(name, &ok);
        if (!ok) {
            PrintError("--status: unknown status \"" + CapForMessage(name) +
                       "\" (expected pending, running, paused, waiting, completed, failed, "
                       "cancelled, needs_reconciliation)");
            return ToInt(ExitCode::kUsage);
        }
        filter.statuses.push_back(status);
    }
    filter.workflow = flags.workflow;
    filter.limit = flags.limit;
    filter.before_run_id = flags.before;
    std::optional<SystemTime> since;
    if (!flags.since.empty()) {
        auto ago = ParseSince(flags.since);
        if (!ago) {
            PrintError("--since: expected a duration such as 30m, 2h or 7d, got \"" +
                       CapForMessage(flags.since) + "\"");
            return ToInt(ExitCode::kUsage);
        }
        since = std::chrono::system_clock::now() - *ago;
    }
    auto page = context->Await(context->store().ListRuns(filter));
    if (!page) return ReportError(page.error());
    if (since) {
        // Newest first: the runs created since then are a prefix of the page.
        std::erase_if(page->runs, [&](const auto& r) { return r.created_at < *since; });
        if (static_cast<int64_t>(page->runs.size()) < filter.limit) page->next_cursor.clear();
    }
    if (flags.json) {
        json::array runs;
        for (const auto& r : page->runs) {
            json::object o;
            o["run_id"] = r.run_id;
            o["workflow"] = r.workflow;
            o["status"] = std::string(ledger::RunStatusName(r.status));
            o["created_at"] = FormatRfc3339(r.created_at);
            o["updated_at"] = FormatRfc3339(r.updated_at);
            o["events"] = r.head.seq;
            AddTotals(o, TotalsOf(*context, r.run_id));
            runs.push_back(std::move(o));
        }
        json::object out;
        out["format"] = "strowger.runs_list.v1";
        out["runs"] = std::move(runs);
        out["next_cursor"] = page->next_cursor;
        std::cout << json::serialize(out) << "\n";
        return 0;
    }
    std::cout << RunsListHeader();
    for (const auto& r : page->runs) {
        std::cout << RunsListRow(r.run_id, std::string(ledger::RunStatusName(r.status)), r.workflow,
                                 ShortTime(r.created_at), TotalsOf(*context, r.run_id));
    }
    if (!page->next_cursor.empty()) {
        std::cerr << "(more: --before " << Shown(page->next_cursor, Newlines::kEscape) << ")\n";
    }
    return 0;
}

// --- show ----------------------------------------------------------------------------------

int DoShow(const std::string& store_flag, const std::string& run_arg, bool json_output,
           const GlobalFlags& global) {
    auto context = OpenOrReport(store_flag, global);
    if (!context) return ToInt(ExitCode::kInternal);
    auto resolved = ResolveRunId(*context, run_arg);
    if (!resolved) return ReportError(resolved.error());
    const std::string& run_id = *resolved;
    auto loaded = context->Await(context->engine().LoadRun(run_id));
    if (!loaded) return ReportError(loaded.error());
    const auto& plan = *loaded->plan;
    const auto& state = loaded->state;
    if (json_output) {
        json::object record = RunRecord(&plan, state);
        std::cout << json::serialize(record) << "\n";
        return 0;
    }
    // Everything that came from the workflow, the input or the models is escaped: this is a
    // report for a person (--json has the exact text).
    auto line = [](std::string_view text) { return Shown(text, Newlines::kEscape); };
    std::cout << "run:        " << line(state.run_id) << "\n"
              << "workflow:   " << line(state.workflow)
              << " (definition sha256:" << state.definition_sha256.substr(0, 12) << "…)\n"
              << "status:     " << ledger::RunStatusName(state.status) << "\n";
    if (!state.error().empty()) std::cout << "error:      " << Shown(state.error()) << "\n";
    if (!state.idempotency_key().empty())
        std::cout << "idempotency key: " << line(state.idempotency_key()) << "\n";
    if (!state.rerun_of().empty()) std::cout << "rerun of:   " << line(state.rerun_of()) << "\n";
    std::cout << "created:    " << ShortTime(state.created_at)
              << "   started: " << ShortTime(state.started_at)
              << "   ended: " << ShortTime(state.ended_at) << "\n"
              << "tokens:     " << state.tokens_in << " in, " << state.tokens_out
              << " out   cost: $" << ledger::FormatUsd(state.cost_nano_usd)
              << "   model calls: " << state.model_calls << "   events: " << state.head.seq << "\n"
              << "input:      " << line(Preview(state.input, 100)) << "\n\n";
    std::cout << Column("STEP", 24) << Column("STATE", 14) << Column("ATTEMPTS", 10)
              << Column("TOKENS", 14) << Column("TIME", 10) << "OUTPUT\n";
    for (size_t i = 0; i < plan.nodes.size(); ++i) {
        const auto& node = plan.nodes[i];
        const auto& ns = state.nodes[i];
        std::string tokens = ns.tokens_in || ns.tokens_out ? std::to_string(ns.tokens_in) + "/" +
                                                                 std::to_string(ns.tokens_out)
                                                           : "-";
        char time[32];
        std::snprintf(time, sizeof time, "%.2fs", static_cast<double>(ns.duration_ms) / 1000.0);
        std::string what = ns.status == ledger::NodeStatus::kCompleted ? Preview(ns.output, 60)
                           : !ns.error().empty()                       ? Preview(ns.error(), 60)
                           : !ns.skip_reason().empty()                 ? ns.skip_reason()
                                                                       : "";
        std::string label = std::string(ledger::NodeStatusName(ns.status));
        if (ns.iterations_done > 0) label += " ×" + std::to_string(ns.iterations_done);
        // A loop's iterations are not retries: its attempts are the tries of one iteration.
        const int64_t attempts = ns.AttemptsInIteration();
        std::cout << Column(line(node.id), 24) << Column(label, 14)
                  << Column(std::to_string(attempts), 10) << Column(tokens, 14)
                  << Column(ns.attempt ? time : "-", 10) << line(what) << "\n";
    }
    if (auto open = state.OpenTasks(); !open.empty()) {
        std::cout << "\nwaiting for a human decision (`strowger approve " << line(state.run_id)
                  << " TASK` or `strowger reject " << line(state.run_id)
                  << " TASK --reason ...`):\n";
        for (const auto* task : open) {
            std::cout << "  " << line(task->task_id) << "  " << line(task->title) << "\n";
            if (!task->tool.empty()) std::cout << "    tool:      " << line(task->tool) << "\n";
            if (!task->arguments.empty())
                std::cout << "    arguments: " << line(task->arguments) << "\n";
        }
    }
    if (state.status == RunStatus::kCompleted)
        std::cout << "\noutput:\n" << Shown(state.output) << "\n";
    return 0;
}

// --- events --------------------------------------------------------------------------------

struct EventsFlags {
    std::string store;
    std::string run_id;
    std::vector<std::string> types;
    int64_t after = 0;
    int64_t limit = 0;
    bool follow = false;
    bool json = false;
};

// Whether `type` is one `--type` asked for (an entry ending in '.' matches a prefix).
bool TypeWanted(const std::vector<std::string>& types, std::string_view type) {
    if (types.empty()) return true;
    for (const auto& t : types) {
        if (t == type || (EndsWith(t, ".") && StartsWith(type, t))) return true;
    }
    return false;
}

int DoEvents(EventsFlags flags, const GlobalFlags& global) {
    auto context = OpenOrReport(flags.store, global);
    if (!context) return ToInt(ExitCode::kInternal);
    auto resolved = ResolveRunId(*context, flags.run_id);
    if (!resolved) return ReportError(resolved.error());
    flags.run_id = *resolved;
    // What is printed is verified first (docs/design/audit.md): the ledger as it stands, then
    // each event --follow sees arrive, against the chain so far.
    auto verified = context->Await(context->engine().VerifyRun(flags.run_id));
    if (!verified) return ReportError(verified.error());
    if (verified->finding) {
        PrintError("run " + flags.run_id + ": ledger does not verify " +
                   verified->finding->Describe() +
                   "; nothing was shown (see `strowger audit verify " + flags.run_id + "`)");
        return ToInt(ExitCode::kInternal);
    }
    int64_t after = std::max<int64_t>(flags.after, 0);
    ledger::ChainHead head;
    if (after > 0) {
        after = std::min<int64_t>(after, static_cast<int64_t>(verified->hashes.size()));
        if (after > 0) head = {after, verified->hashes[static_cast<size_t>(after - 1)]};
    }
    int64_t printed = 0;
    while (true) {
        store::EventQuery query;
        query.after_seq = after;
        auto events = context->Await(context->store().ReadEvents(flags.run_id, query));
        if (!events) return ReportError(events.error());
        for (const auto& stored : *events) {
            ledger::Event event;
            if (auto issue = ledger::VerifyNext(head, flags.run_id, stored.encoded, &event)) {
                PrintError("run " + flags.run_id + ": ledger does not verify at seq " +
                           std::to_string(issue->seq) + ": " + issue->reason);
                return ToInt(ExitCode::kInternal);
            }
            after = stored.seq;
            if (!TypeWanted(flags.types, stored.type)) continue;
            ++printed;
            if (flags.json) {
                std::cout << stored.encoded << "\n";
            } else {
                // Names and summaries come from the workflow and the models: escaped, one line
                // per event (--json has the exact lines).
                // node#attempt; a node's event outside any attempt (a decision) has none.
                std::string where = event.node.empty() ? ""
                                    : event.attempt <= 0
                                        ? event.node
                                        : event.node + "#" + std::to_string(event.attempt);
                std::cout << Column(std::to_string(event.seq), 6)
                          << FormatRfc3339(event.time).substr(11, 15) << "  "
                          << Column(Shown(event.type_name, Newlines::kEscape), 26)
                          << Column(Shown(where, Newlines::kEscape), 22)
                          << Shown(EventSummary(event), Newlines::kEscape) << "\n";
            }
            if (flags.limit > 0 && printed >= flags.limit) break;
        }
        std::cout.flush();
        if (!flags.follow || (flags.limit > 0 && printed >= flags.limit)) return 0;
        // --follow: until the run has ended and every event has been printed. Polling is how
        // a process sees another process's commits to the shared store.
        auto record = context->Await(context->store().GetRun(flags.run_id));
        if (!record) return ReportError(record.error());
        if (ledger::IsTerminal(record->status) && record->head.seq <= after) return 0;
        if (events->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

// --- control -------------------------------------------------------------------------------

int DoControl(const std::string& store_flag, const std::string& run_arg,
              store::ControlAction action, const std::string& reason, const std::string& actor,
              const GlobalFlags& global) {
    auto context = OpenOrReport(store_flag, global);
    if (!context) return ToInt(ExitCode::kInternal);
    auto resolved = ResolveRunId(*context, run_arg);
    if (!resolved) return ReportError(resolved.error());
    const std::string& run_id = *resolved;
    const bool cancel = action == store::ControlAction::kCancel;
    auto result = context->Await(context->engine().Control(
        run_id, action,
        reason.empty() ? (cancel ? "cancelled by operator" : "paused by operator") : reason,
        actor.empty() ? DefaultActor() : actor));
    if (!result) return ReportError(result.error());
    if (*result == engine::Engine::ControlResult::kRequested) {
        std::cout << "run " << Shown(run_id, Newlines::kEscape) << ": "
                  << (cancel ? "cancel" : "pause")
                  << " requested; the process executing it applies it "
                  << (cancel ? "at once" : "at the next step boundary") << "\n";
    } else {
        std::cout << "run " << Shown(run_id, Newlines::kEscape) << ": "
                  << (cancel ? "cancelled" : "paused") << "\n";
    }
    return 0;
}

// --- resume --------------------------------------------------------------------------------

int DoResume(const std::string& store_flag, const std::string& run_id, bool all,
             const std::string& progress, bool json_output, const GlobalFlags& global) {
    auto context = OpenOrReport(store_flag, global);
    if (!context) return ToInt(ExitCode::kInternal);
    auto& engine = context->engine();
    if (!all) {
        auto resolved = ResolveRunId(*context, run_id);
        if (!resolved) return ReportError(resolved.error());
        return ExecuteWithProgress(*context,
                                   engine.ResumeRun(*resolved, "operator", DefaultActor()),
                                   progress, json_output);
    }
    // Stops a crash left unsigned are signed first (each after its ledger verifies).
    if (auto recovered = context->Await(engine.SignUnsignedStops()); !recovered) {
        return ReportError(recovered.error());
    } else if (*recovered > 0) {
        std::cerr << "strowger: signed the stops of " << *recovered
                  << " runs that a crash left unsigned\n";
    }
    // --all: every run that was executing or pending when its process stopped; paused runs
    // stay paused until resumed by name.
    std::vector<RunStatus> statuses = {RunStatus::kRunning, RunStatus::kPending};
    auto claimable =
        context->Await(context->store().FindClaimable(statuses, Clock::Real().Now(), 0));
    if (!claimable) return ReportError(claimable.error());
    // And waiting runs whose durable timer (a human task's timeout) is due.
    auto due = context->Await(context->store().FindDueRuns(Clock::Real().Now(), 0));
    if (!due) return ReportError(due.error());
    for (auto& record : *due) claimable->push_back(std::move(record));
    if (claimable->empty()) {
        std::cerr << "strowger: no interrupted runs to resume\n";
        return 0;
    }
    int64_t completed = 0, failed = 0, other = 0, elsewhere = 0, refused = 0;
    auto resume_all = [&]() -> Awaitable<Result<engine::RunOutcome>> {
        std::vector<std::string> ids;
        for (const auto& record : *claimable) ids.push_back(record.run_id);
        // All at once: the runs execute concurrently on this thread.
        int64_t pending = static_cast<int64_t>(ids.size());
        auto executor = co_await asio::this_coro::executor;
        asio::steady_timer done(executor);
        done.expires_at(asio::steady_timer::time_point::max());
        const std::string actor = DefaultActor();
        for (const auto& id : ids) {
            // Not awaited one by one: a resumed run holds only its own frames while it waits.
            engine.ResumeRun(id, "restart", actor, [&, id](Result<engine::RunOutcome> r) {
                if (!r) {
                    // Another process took it between the listing and our lease (another
                    // `resume --all`): not ours to report.
                    if (r.error().code() == ErrorCode::kAborted) {
                        ++elsewhere;
                    } else {
                        PrintError("run " + id + ": " + r.error().message());
                        ++refused;
                    }
                } else if (r->status == RunStatus::kCompleted) {
                    ++completed;
                } else if (r->status == RunStatus::kFailed) {
                    ++failed;
                } else {
                    ++other;
                }
                if (--pending == 0) done.cancel();
            });
        }
        co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
        engine::RunOutcome summary;
        summary.status = RunStatus::kCompleted;
        co_return summary;
    };
    context->Await(resume_all());
    const int64_t resumed = static_cast<int64_t>(claimable->size()) - elsewhere - refused;
    std::cout << "resumed " << resumed << " runs: " << completed << " completed, " << failed
              << " failed, " << other << " other";
    if (elsewhere > 0) std::cout << "; " << elsewhere << " taken by another process";
    if (refused > 0) std::cout << "; " << refused << " refused";
    std::cout << "\n";
    if (refused > 0) return ToInt(ExitCode::kInternal);
    return failed + other > 0 ? ToInt(ExitCode::kRunFailed) : 0;
}

}  // namespace

void AddRunsCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* runs = app.add_subcommand("runs", "Inspect and control runs in the store");
    runs->require_subcommand(1);
    runs->footer(
        "Examples:\n"
        "  strowger runs list --status failed\n"
        "  strowger runs show 01JD3M6K9Q3V8C6Y2W5T0R1N7H\n"
        "  strowger runs events 01JD3M6K9Q3V8C6Y2W5T0R1N7H --follow\n"
        "  strowger runs resume --all\n"
        "  strowger runs retry 01JD3M6K9Q3V8C6Y2W5T0R1N7H --step summary");
    auto store = std::make_shared<std::string>();
    auto server = std::make_shared<std::string>();
    auto add_store = [store, server](CLI::App* cmd) {
        cmd->add_option("--store", *store,
                        "Run store URL (default: $STROWGER_STORE or the default sqlite file)")
            ->type_name("URL");
        cmd->add_option("--server", *server, kServerHelp)->type_name("URL");
    };
    // The daemon to go through, "" for the store.
    auto remote = [store, server] { return RemoteServer(*server, *store); };

    auto list = std::make_shared<ListFlags>();
    auto* list_cmd = runs->add_subcommand("list", "List runs, newest first");
    add_store(list_cmd);
    list_cmd->add_option("--status", list->statuses, "Only runs with this status (repeatable)");
    list_cmd->add_option("--workflow", list->workflow, "Only runs of this workflow");
    list_cmd->add_option("--limit", list->limit, "At most this many runs")
        ->check(CLI::PositiveNumber);
    list_cmd->add_option("--before", list->before, "Cursor: only runs older than this run id");
    list_cmd->add_option("--since", list->since, "Only runs created in the last 30m, 2h, 7d ...")
        ->type_name("AGE");
    list_cmd->add_flag("--json", list->json, "JSON output (docs/formats/run_record_v1.md)");
    list_cmd->callback([list, store, remote, &global, &exit_code] {
        list->store = *store;
        if (auto daemon = remote(); !daemon.empty()) {
            exit_code = RemoteRunsList(daemon, list->statuses, list->workflow, list->limit,
                                       list->before, list->json);
            return;
        }
        exit_code = DoList(*list, global);
    });

    auto show_id = std::make_shared<std::string>();
    auto show_json = std::make_shared<bool>(false);
    auto* show_cmd =
        runs->add_subcommand("show", "Show a run: steps, states, attempts, tokens, output");
    add_store(show_cmd);
    show_cmd->add_option("run", *show_id, "Run id")->required();
    show_cmd->add_flag("--json", *show_json, "The run record as JSON");
    show_cmd->callback([=, &global, &exit_code] {
        if (auto daemon = remote(); !daemon.empty()) {
            exit_code = RemoteRunsShow(daemon, *show_id, *show_json);
            return;
        }
        exit_code = DoShow(*store, *show_id, *show_json, global);
    });

    auto events = std::make_shared<EventsFlags>();
    auto* events_cmd = runs->add_subcommand("events", "Print a run's ledger events");
    add_store(events_cmd);
    events_cmd->add_option("run", events->run_id, "Run id")->required();
    events_cmd->add_option("--type", events->types,
                           "Only this event type (repeatable; 'node.' matches a prefix)");
    events_cmd->add_option("--after", events->after, "Only events after this sequence number");
    events_cmd->add_option("--limit", events->limit, "At most this many events");
    events_cmd->add_flag("--follow,-f", events->follow,
                         "Keep printing new events until the run ends");
    events_cmd->add_flag("--json", events->json, "The canonical stored lines (JSON Lines)");
    events_cmd->callback([events, store, remote, &global, &exit_code] {
        events->store = *store;
        if (auto daemon = remote(); !daemon.empty()) {
            exit_code = RemoteRunsEvents(daemon, events->run_id, events->types, events->after,
                                         events->limit, events->follow, events->json);
            return;
        }
        exit_code = DoEvents(*events, global);
    });

    struct ControlFlags {
        std::string run_id, reason, actor;
    };
    for (auto action : {store::ControlAction::kPause, store::ControlAction::kCancel}) {
        bool cancel = action == store::ControlAction::kCancel;
        auto flags = std::make_shared<ControlFlags>();
        auto* cmd = runs->add_subcommand(
            cancel ? "cancel" : "pause",
            cancel ? "Cancel a run (aborts in-flight model calls; `runs retry` can reopen it)"
                   : "Pause a run at its next step boundary");
        add_store(cmd);
        cmd->add_option("run", flags->run_id, "Run id")->required();
        cmd->add_option("--reason", flags->reason, "Recorded in the ledger");
        cmd->add_option("--actor", flags->actor, "Who is asking (default: $USER)");
        cmd->callback([=, &global, &exit_code] {
            if (auto daemon = remote(); !daemon.empty()) {
                exit_code = RemoteControl(daemon, flags->run_id, cancel, flags->reason);
                return;
            }
            exit_code =
                DoControl(*store, flags->run_id, action, flags->reason, flags->actor, global);
        });
    }

    struct ResumeFlags {
        std::string run_id;
        bool all = false;
        std::string progress = "auto";
        bool json = false;
    };
    auto resume = std::make_shared<ResumeFlags>();
    auto* resume_cmd =
        runs->add_subcommand("resume", "Continue a paused or interrupted run in this process");
    add_store(resume_cmd);
    auto* resume_id = resume_cmd->add_option("run", resume->run_id, "Run id");
    auto* resume_all =
        resume_cmd->add_flag("--all", resume->all, "Every interrupted (running or pending) run");
    resume_id->excludes(resume_all);
    resume_cmd->add_option("--progress", resume->progress, "Live progress on stderr")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    resume_cmd->add_flag("--json", resume->json, "Print the run record as JSON");
    resume_cmd->callback([=, &global, &exit_code] {
        if (resume->run_id.empty() && !resume->all) {
            PrintError("runs resume: give a run id or --all");
            exit_code = ToInt(ExitCode::kUsage);
            return;
        }
        if (auto daemon = remote(); !daemon.empty()) {
            if (resume->all) {
                PrintError(
                    "runs resume --all: the daemon resumes every interrupted run itself "
                    "when it starts");
                exit_code = ToInt(ExitCode::kUsage);
                return;
            }
            exit_code = RemoteContinue(daemon, resume->run_id, "resume", "", resume->progress,
                                       resume->json);
            return;
        }
        exit_code =
            DoResume(*store, resume->run_id, resume->all, resume->progress, resume->json, global);
    });

    struct RetryFlags {
        std::string run_id, step, actor, progress = "auto";
        bool json = false;
    };
    auto retry = std::make_shared<RetryFlags>();
    auto* retry_cmd = runs->add_subcommand(
        "retry",
        "Run a finished run again from its failed step, or from --step and everything after it");
    add_store(retry_cmd);
    retry_cmd->add_option("run", retry->run_id, "Run id")->required();
    retry_cmd->add_option("--step,--node", retry->step,
                          "Run this step and every step after it again (in a graph: this node "
                          "and everything downstream of it)");
    retry_cmd->add_option("--actor", retry->actor, "Who is asking (default: $USER)");
    retry_cmd->add_option("--progress", retry->progress, "Live progress on stderr")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    retry_cmd->add_flag("--json", retry->json, "Print the run record as JSON");
    retry_cmd->callback([=, &global, &exit_code] {
        if (auto daemon = remote(); !daemon.empty()) {
            exit_code = RemoteContinue(daemon, retry->run_id, "retry", retry->step, retry->progress,
                                       retry->json);
            return;
        }
        auto context = OpenOrReport(*store, global);
        if (!context) {
            exit_code = ToInt(ExitCode::kInternal);
            return;
        }
        auto& engine = context->engine();
        auto resolved = ResolveRunId(*context, retry->run_id);
        if (!resolved) {
            exit_code = ReportError(resolved.error());
            return;
        }
        exit_code = ExecuteWithProgress(
            *context,
            engine.RetryRun(*resolved, retry->step,
                            retry->actor.empty() ? DefaultActor() : retry->actor),
            retry->progress, retry->json);
    });

    struct RerunFlags {
        std::string run_id, progress = "auto";
        bool json = false;
    };
    auto rerun = std::make_shared<RerunFlags>();
    auto* rerun_cmd =
        runs->add_subcommand("rerun", "Start a new run with the same input and pinned definition");
    add_store(rerun_cmd);
    rerun_cmd->add_option("run", rerun->run_id, "Run id")->required();
    rerun_cmd->add_option("--progress", rerun->progress, "Live progress on stderr")
        ->check(CLI::IsMember({"auto", "always", "never"}));
    rerun_cmd->add_flag("--json", rerun->json, "Print the run record as JSON");
    rerun_cmd->callback([=, &global, &exit_code] {
        if (auto daemon = remote(); !daemon.empty()) {
            exit_code =
                RemoteContinue(daemon, rerun->run_id, "rerun", "", rerun->progress, rerun->json);
            return;
        }
        auto context = OpenOrReport(*store, global);
        if (!context) {
            exit_code = ToInt(ExitCode::kInternal);
            return;
        }
        auto& engine = context->engine();
        auto resolved = ResolveRunId(*context, rerun->run_id);
        if (!resolved) {
            exit_code = ReportError(resolved.error());
            return;
        }
        exit_code =
            ExecuteWithProgress(*context, engine.RerunRun(*resolved), rerun->progress, rerun->json);
    });

    auto keep = std::make_shared<int64_t>(0);
    auto* prune_cmd = runs->add_subcommand(
        "prune",
        "Delete the oldest finished runs, keeping the newest N (never touches unfinished runs)");
    add_store(prune_cmd);
    prune_cmd->add_option("--keep", *keep, "Finished runs to keep")
        ->required()
        ->check(CLI::NonNegativeNumber);
    auto dry_run = std::make_shared<bool>(false);
    auto yes = std::make_shared<bool>(false);
    prune_cmd->add_flag("--dry-run", *dry_run, "Only say how many runs would be deleted");
    prune_cmd->add_flag("--yes,-y", *yes, "Do not ask on a terminal");
    prune_cmd->footer(
        "On a terminal, asks before deleting (--yes does not).\n\n"
        "Examples:\n"
        "  strowger runs prune --keep 1000 --dry-run\n"
        "  strowger runs prune --keep 1000 --yes");
    prune_cmd->callback([=, &global, &exit_code] {
        // The finished runs there are, and the deletion: through the daemon, or on the store.
        std::function<Result<int64_t>()> count;
        std::function<Result<int64_t>()> prune;
        std::shared_ptr<ApiClient> client;
        std::shared_ptr<Context> context;
        if (auto daemon = remote(); !daemon.empty()) {
            client = ConnectOrReport(daemon);
            if (!client) {
                exit_code = ToInt(ExitCode::kInternal);
                return;
            }
            auto call = [client, keep = *keep](bool dry, const char* field) -> Result<int64_t> {
                json::object body;
                body["keep"] = keep;
                body["dry_run"] = dry;
                auto reply = client->Checked("POST", "/api/runs/prune", json::serialize(body));
                if (!reply) return std::unexpected(reply.error());
                if (!reply->json.is_object()) return InternalError("not a JSON object");
                return JsonInt(reply->json.as_object(), field);
            };
            count = [call] { return call(true, "finished"); };
            prune = [call] { return call(false, "deleted"); };
        } else {
            context = OpenOrReport(*store, global);
            if (!context) {
                exit_code = ToInt(ExitCode::kInternal);
                return;
            }
            count = [context]() -> Result<int64_t> {
                store::RunFilter finished;
                finished.statuses = {RunStatus::kCompleted, RunStatus::kFailed,
                                     RunStatus::kCancelled};
                finished.limit = 1000;
                int64_t total = 0;
                do {
                    auto page = context->Await(context->store().ListRuns(finished));
                    if (!page) return std::unexpected(page.error());
                    total += static_cast<int64_t>(page->runs.size());
                    finished.before_run_id = page->next_cursor;
                } while (!finished.before_run_id.empty());
                return total;
            };
            prune = [context, keep = *keep] {
                return context->Await(context->store().PruneTerminalRuns(keep));
            };
        }
        auto counted = count();
        if (!counted) {
            exit_code = ReportError(counted.error());
            return;
        }
        const int64_t total = *counted;
        const int64_t doomed = std::max<int64_t>(0, total - *keep);
        if (*dry_run) {
            std::cout << "would delete " << doomed << " of " << total
                      << " finished runs (keeping the newest " << *keep << ")\n";
            exit_code = 0;
            return;
        }
        if (doomed > 0 && !*yes && isatty(STDIN_FILENO) == 1) {
            std::cerr << "Delete " << doomed << " of " << total
                      << " finished runs and their ledgers for good? [y/N] " << std::flush;
            std::string answer;
            std::getline(std::cin, answer);
            answer = AsciiLower(Trim(answer));
            if (answer != "y" && answer != "yes") {
                std::cerr << "nothing deleted\n";
                exit_code = 0;
                return;
            }
        }
        auto pruned = prune();
        if (!pruned) {
            exit_code = ReportError(pruned.error());
            return;
        }
        std::cout << "deleted " << *pruned << " finished runs\n";
        exit_code = 0;
    });
}

}  // namespace strowger::cli
