// strowger audit verify [RUN...|--all] [--anchors FILE] [--pubkey FILE] / audit export RUN /
// audit pubkey / audit anchor [RUN...|--all] (docs/design/audit.md).
#include <boost/json.hpp>

#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "audit/anchors.hpp"
#include "audit/report.hpp"
#include "audit/verifier.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "cli/remote.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "ledger/chain.hpp"

namespace strowger::cli {
namespace {

// Every run id in the store, newest first.
Result<std::vector<std::string>> AllRunIds(Context& context) {
    std::vector<std::string> ids;
    store::RunFilter filter;
    filter.limit = 500;
    while (true) {
        auto page = context.Await(context.store().ListRuns(filter));
        if (!page) return std::unexpected(page.error());
        for (const auto& record : page->runs) ids.push_back(record.run_id);
        if (page->next_cursor.empty()) break;
        filter.before_run_id = page->next_cursor;
    }
    return ids;
}

struct VerifyFlags {
    std::string store;
    std::string server;
    std::vector<std::string> run_ids;
    bool all = false;
    std::string anchors;
    std::string pubkey;
    bool json = false;
};

// Verifies one run as every read path does, plus what only an audit checks (audit/report.hpp).
// Prints one line; returns false if anything is wrong.
// Run ids and the store's messages are escaped: a tampered store could hold anything.
bool VerifyOne(Context& context, const std::string& run_id, const audit::SignedLeaves& leaves,
               const std::vector<audit::Anchor>& anchors, int& store_errors) {
    auto line = [](std::string_view text) { return Shown(text, Newlines::kEscape); };
    auto verified = context.Await(context.engine().VerifyRun(run_id));
    if (!verified) {
        std::cout << line(run_id) << ": cannot read: " << line(verified.error().message()) << "\n";
        ++store_errors;
        return false;
    }
    int64_t signed_leaves = 0;
    std::optional<audit::Finding> finding = verified->finding;
    if (!finding) {
        finding =
            audit::CheckSignedAndAnchored(run_id, verified->hashes, leaves, anchors, signed_leaves);
    }
    if (finding) {
        std::cout << line(run_id) << ": BROKEN " << line(finding->Describe()) << "\n";
        return false;
    }
    std::cout << line(run_id) << ": ok (" << verified->events << " events, " << signed_leaves
              << " signed checkpoints, head " << audit::ShortHash(verified->head.hash) << ")\n";
    return true;
}

// The anchors file of --anchors, parsed (exit code on failure).
std::optional<int> ReadAnchors(const std::string& file, std::vector<audit::Anchor>& anchors,
                               std::string* text_out = nullptr) {
    if (file.empty()) return std::nullopt;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        PrintError(file + ": cannot read");
        return ToInt(ExitCode::kUsage);
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto parsed = audit::ParseAnchors(text.str(), file);
    if (!parsed) {
        PrintError(parsed.error().message());
        return ToInt(ExitCode::kUsage);
    }
    anchors = std::move(*parsed);
    if (text_out != nullptr) *text_out = text.str();
    return std::nullopt;
}

// `audit verify --json`: the text report's lines as one object (docs/formats/run_record_v1.md):
// {"format": "strowger.audit_verify.v1", "ok", "runs": [{"run_id", "ok", "detail"}],
//  "batch_log": {"ok", "detail"}, "summary"}.
// `verify` prints the text report (on the store or through a daemon); it is read back here.
int VerifyAsJson(const std::function<int()>& verify) {
    std::ostringstream captured;
    std::streambuf* original = std::cout.rdbuf(captured.rdbuf());
    int code = verify();
    std::cout.rdbuf(original);
    json::array runs;
    json::object batch_log;
    batch_log["ok"] = true;
    batch_log["detail"] = "";
    std::string summary;
    std::istringstream lines(captured.str());
    for (std::string text; std::getline(lines, text);) {
        auto colon = text.find(": ");
        if (colon == std::string::npos) {
            summary = text;
            continue;
        }
        std::string subject = text.substr(0, colon);
        std::string rest = text.substr(colon + 2);
        if (subject == "checkpoint batch log") {
            batch_log["ok"] = false;
            batch_log["detail"] = rest;
            continue;
        }
        if (subject.find(' ') != std::string::npos) {
            summary = text;
            continue;
        }
        json::object run;
        run["run_id"] = subject;
        run["ok"] = StartsWith(rest, "ok");
        run["detail"] = rest;
        runs.push_back(std::move(run));
    }
    json::object out;
    out["format"] = "strowger.audit_verify.v1";
    out["ok"] = code == 0;
    out["runs"] = std::move(runs);
    out["batch_log"] = std::move(batch_log);
    if (!summary.empty()) out["summary"] = summary;
    std::cout << json::serialize(out) << "\n";
    return code;
}

int DoVerify(const VerifyFlags& flags, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    std::vector<audit::Anchor> anchors;
    if (auto failed = ReadAnchors(flags.anchors, anchors)) return *failed;
    KeyUse key_use;
    key_use.pubkey_file = flags.pubkey;
    auto context = Context::Open(flags.store, global.providers_file, key_use);
    if (!context) {
        return ReportError(context.error());
    }
    Context& ctx = **context;

    auto log =
        ctx.Await(audit::AuditBatchLog(ctx.store(), ctx.engine().checkpoint_verifier(), anchors));
    if (!log) {
        PrintError(log.error().message());
        return ToInt(ExitCode::kInternal);
    }
    for (const auto& finding : log->findings) {
        std::cout << "checkpoint batch log: BROKEN " << EscapeControl(finding) << "\n";
    }

    std::vector<std::string> ids;
    for (const auto& text : flags.run_ids) {
        // A prefix or `last` names a run; a full id that names none is reported as unreadable.
        auto resolved = ResolveRunId(ctx, text);
        ids.push_back(resolved ? *resolved : text);
    }
    if (flags.all) {
        auto all = AllRunIds(ctx);
        if (!all) {
            PrintError(all.error().message());
            return ToInt(ExitCode::kInternal);
        }
        ids = std::move(*all);
    }
    int64_t broken = 0;
    int store_errors = 0;
    for (const auto& run_id : ids) {
        if (!VerifyOne(ctx, run_id, log->leaves, anchors, store_errors)) ++broken;
    }
    if (flags.all) {
        auto missing = audit::FindMissingRuns(ids, log->leaves, anchors);
        for (const auto& [run_id, what] : missing.anchored) {
            std::cout << Shown(run_id, Newlines::kEscape) << ": BROKEN: " << what << "\n";
            ++broken;
        }
        std::cout << ids.size() << " runs verified, " << broken << " broken; " << log->batches
                  << " checkpoint batches"
                  << (missing.pruned_signed > 0
                          ? ", signing " + std::to_string(missing.pruned_signed) +
                                " runs no longer in the store (pruned)"
                          : std::string())
                  << "\n";
    }
    if (store_errors > 0) return ToInt(ExitCode::kInternal);
    return broken == 0 && log->ok() ? 0 : 1;
}

int DoExport(const std::string& store_flag, const std::string& run_text, const std::string& output,
             const std::string& definition_file, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto context = Context::Open(store_flag, global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    auto resolved = ResolveRunId(**context, run_text);
    if (!resolved) return ReportError(resolved.error());
    const std::string& run_id = *resolved;
    store::EventQuery all;
    auto events = (*context)->Await((*context)->store().ReadEvents(run_id, all));
    if (!events) {
        PrintError(events.error().message());
        return ToInt(events.error().code() == ErrorCode::kNotFound ? ExitCode::kUsage
                                                                   : ExitCode::kInternal);
    }
    auto checkpoints = (*context)->Await(audit::CheckpointExportLines((*context)->store(), run_id));
    if (!checkpoints) {
        PrintError(checkpoints.error().message());
        return ToInt(ExitCode::kInternal);
    }
    std::string text;
    for (const auto& event : *events) text.append(event.encoded).push_back('\n');
    for (const auto& line : *checkpoints) text.append(line).push_back('\n');
    if (auto failed = WriteOutput(output, text)) return *failed;
    if (!definition_file.empty()) {
        auto record = (*context)->Await((*context)->store().GetRun(run_id));
        if (!record) {
            PrintError(record.error().message());
            return ToInt(ExitCode::kInternal);
        }
        auto definition =
            (*context)->Await((*context)->store().GetDefinition(record->definition_sha256));
        if (!definition) {
            PrintError(definition.error().message());
            return ToInt(ExitCode::kInternal);
        }
        if (auto failed = WriteOutput(definition_file, *definition)) return *failed;
    }
    return 0;
}

int DoPubkey(const std::string& store_flag, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto context = Context::Open(store_flag, global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    std::cout << (*context)->verifying_key()->Pem();
    return 0;
}

int DoAnchor(const std::string& store_flag, std::vector<std::string> run_ids, bool all,
             const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto context = Context::Open(store_flag, global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    Context& ctx = **context;
    if (all) {
        auto ids = AllRunIds(ctx);
        if (!ids) {
            PrintError(ids.error().message());
            return ToInt(ExitCode::kInternal);
        }
        run_ids = std::move(*ids);
    } else {
        for (auto& text : run_ids) {
            auto resolved = ResolveRunId(ctx, text);
            if (!resolved) return ReportError(resolved.error());
            text = std::move(*resolved);
        }
    }
    const SystemTime now = Clock::Real().Now();
    int refused = 0;
    for (const auto& run_id : run_ids) {
        // Only what verifies is anchored: an anchor vouches for the record as it is now.
        auto verified = ctx.Await(ctx.engine().VerifyRun(run_id));
        if (!verified) {
            PrintError("run " + run_id + ": " + verified.error().message());
            ++refused;
            continue;
        }
        if (verified->finding) {
            PrintError("run " + run_id + ": not anchored: ledger does not verify " +
                       verified->finding->Describe());
            ++refused;
            continue;
        }
        std::cout << audit::FormatAnchor(
                         audit::RunAnchor(run_id, verified->head.seq, verified->head.hash, now))
                  << "\n";
    }
    // The batch log's head, once the checkpoints queued here are stored.
    if (auto flushed = ctx.Await(ctx.engine().FlushCheckpoints()); !flushed) {
        PrintError(flushed.error().message());
        return ToInt(ExitCode::kInternal);
    }
    auto batches = ctx.Await(audit::BatchLogAnchor(ctx.store(), now));
    if (!batches) {
        PrintError(batches.error().message());
        return ToInt(ExitCode::kInternal);
    }
    if (*batches) std::cout << audit::FormatAnchor(**batches) << "\n";
    std::cout.flush();
    return refused == 0 ? 0 : 1;
}

}  // namespace

void AddAuditCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* audit = app.add_subcommand("audit", "Verify, anchor and export run ledgers");
    audit->require_subcommand(1);
    auto store = std::make_shared<std::string>();
    auto server = std::make_shared<std::string>();
    auto remote = [store, server] { return RemoteServer(*server, *store); };

    auto verify_flags = std::make_shared<VerifyFlags>();
    auto* verify = audit->add_subcommand(
        "verify",
        "Re-derive hash chains, check pinned definitions, statuses and signed checkpoints; "
        "report the first problem of each broken run");
    verify->add_option("--store", verify_flags->store, "Run store URL")->type_name("URL");
    verify->add_option("--server", verify_flags->server, kServerHelp)->type_name("URL");
    auto* id_option = verify->add_option("run", verify_flags->run_ids, "Run id(s)");
    auto* all_option = verify->add_flag("--all", verify_flags->all, "Every run in the store");
    verify->add_flag("--json", verify_flags->json,
                     "One JSON object: each run's result (docs/formats/run_record_v1.md)");
    id_option->excludes(all_option);
    verify
        ->add_option("--anchors", verify_flags->anchors,
                     "A file of `strowger audit anchor` lines: report any run rewritten or "
                     "truncated before its anchored head")
        ->type_name("FILE");
    verify
        ->add_option("--pubkey", verify_flags->pubkey,
                     "Verify signatures with this public key (PEM, from `strowger audit "
                     "pubkey`) instead of the store's key file")
        ->type_name("FILE");
    verify->footer(
        "Examples:\n"
        "  strowger audit verify --all\n"
        "  strowger audit verify 01JD3M6K9Q3V8C6Y2W5T0R1N7H --anchors anchors.log\n\n"
        "Exit codes: 0 everything verified, 1 something is broken, 5 store error.");
    verify->callback([=, &global, &exit_code] {
        if (verify_flags->run_ids.empty() && !verify_flags->all) {
            PrintError("audit verify: give a run id or --all");
            exit_code = ToInt(ExitCode::kUsage);
            return;
        }
        auto verify_here = [&]() -> int {
            if (auto url = RemoteServer(verify_flags->server, verify_flags->store); !url.empty()) {
                std::vector<audit::Anchor> unused;
                std::string anchors_text;
                if (auto failed = ReadAnchors(verify_flags->anchors, unused, &anchors_text)) {
                    return *failed;
                }
                return RemoteAuditVerify(url, verify_flags->run_ids, verify_flags->all,
                                         anchors_text);
            }
            return DoVerify(*verify_flags, global);
        };
        exit_code = verify_flags->json ? VerifyAsJson(verify_here) : verify_here();
    });

    struct ExportFlags {
        std::string run_id, output, definition;
    };
    auto flags = std::make_shared<ExportFlags>();
    auto* exporter = audit->add_subcommand("export",
                                           "Write a run's ledger and signed checkpoints as JSON "
                                           "Lines that verify without Strowger "
                                           "(scripts/verify_ledger.py)");
    exporter->add_option("--store", *store, "Run store URL")->type_name("URL");
    exporter->add_option("--server", *server, kServerHelp)->type_name("URL");
    exporter->add_option("run", flags->run_id, "Run id")->required();
    exporter->add_option("--output,-o", flags->output, "File to write (default: stdout)");
    exporter->add_option(
        "--definition", flags->definition,
        "Also write the pinned definition snapshot here (its SHA-256 is in run.created)");
    exporter->footer(
        "Example:\n"
        "  strowger audit export 01JD3M6K9Q3V8C6Y2W5T0R1N7H -o run.jsonl --definition "
        "run.definition.json\n"
        "  strowger audit pubkey > ledger.pub\n"
        "  python3 scripts/verify_ledger.py run.jsonl run.definition.json --pubkey ledger.pub");
    exporter->callback([=, &global, &exit_code] {
        if (auto url = remote(); !url.empty()) {
            exit_code = RemoteAuditExport(url, flags->run_id, flags->output, flags->definition);
            return;
        }
        exit_code = DoExport(*store, flags->run_id, flags->output, flags->definition, global);
    });

    auto* pubkey = audit->add_subcommand(
        "pubkey", "Print the public key the store's checkpoints are signed with (PEM)");
    pubkey->add_option("--store", *store, "Run store URL")->type_name("URL");
    pubkey->add_option("--server", *server, kServerHelp)->type_name("URL");
    pubkey->footer("Example:\n  strowger audit pubkey > ledger.pub");
    pubkey->callback([=, &global, &exit_code] {
        auto url = remote();
        exit_code = url.empty() ? DoPubkey(*store, global) : RemoteAuditPubkey(url);
    });

    struct AnchorFlags {
        std::vector<std::string> run_ids;
        bool all = false;
    };
    auto anchor_flags = std::make_shared<AnchorFlags>();
    auto* anchor = audit->add_subcommand(
        "anchor",
        "Print the heads of runs (and of the checkpoint batch log) to keep outside the store");
    anchor->add_option("--store", *store, "Run store URL")->type_name("URL");
    anchor->add_option("--server", *server, kServerHelp)->type_name("URL");
    auto* anchor_ids = anchor->add_option("run", anchor_flags->run_ids, "Run id(s)");
    auto* anchor_all = anchor->add_flag("--all", anchor_flags->all, "Every run in the store");
    anchor_ids->excludes(anchor_all);
    anchor->footer(
        "Example:\n"
        "  strowger audit anchor --all >> /mnt/elsewhere/anchors.log\n"
        "  strowger audit verify --all --anchors /mnt/elsewhere/anchors.log");
    anchor->callback([=, &global, &exit_code] {
        if (anchor_flags->run_ids.empty() && !anchor_flags->all) {
            PrintError("audit anchor: give a run id or --all");
            exit_code = ToInt(ExitCode::kUsage);
            return;
        }
        if (auto url = remote(); !url.empty()) {
            exit_code = RemoteAuditAnchor(url, anchor_flags->run_ids, anchor_flags->all);
            return;
        }
        exit_code = DoAnchor(*store, anchor_flags->run_ids, anchor_flags->all, global);
    });
}

}  // namespace strowger::cli
