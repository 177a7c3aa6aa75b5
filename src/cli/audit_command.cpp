// strowger audit verify [RUN...|--all] [--anchors FILE] [--pubkey FILE] / audit export RUN /
// audit pubkey / audit anchor [RUN...|--all] (docs/design/audit.md).
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "audit/anchors.hpp"
#include "audit/verifier.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "ledger/chain.hpp"

namespace strowger::cli {
namespace {

std::string Short(std::string_view hash) {
    return std::string(hash.substr(0, 16)) + "\xE2\x80\xA6";
}

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
    std::vector<std::string> run_ids;
    bool all = false;
    std::string anchors;
    std::string pubkey;
    bool json = false;
};

// The leaves the batch log signed, by run.
using SignedLeaves = std::map<std::string, std::vector<ledger::CheckpointLeaf>, std::less<>>;

// Verifies one run as every read path does, plus what only an audit checks: the leaves the
// batch log signed for it (found even if its checkpoint rows were deleted) and its anchors.
// Prints one line; returns false if anything is wrong.
// Run ids and the store's messages are escaped: a tampered store could hold anything.
bool VerifyOne(Context& context, const std::string& run_id, const SignedLeaves& leaves,
               const std::vector<audit::Anchor>& anchors, int& store_errors) {
    auto line = [](std::string_view text) { return Shown(text, Newlines::kEscape); };
    auto verified = context.Await(context.engine().VerifyRun(run_id));
    if (!verified) {
        std::cout << line(run_id) << ": cannot read: " << line(verified.error().message()) << "\n";
        ++store_errors;
        return false;
    }
    std::optional<audit::Finding> finding = verified->finding;
    const auto& hashes = verified->hashes;
    auto hash_at = [&](int64_t seq) -> const std::string* {
        if (seq < 1 || seq > static_cast<int64_t>(hashes.size())) return nullptr;
        return &hashes[static_cast<size_t>(seq - 1)];
    };
    int64_t signed_leaves = 0;
    if (!finding) {
        if (auto it = leaves.find(run_id); it != leaves.end()) {
            for (const auto& leaf : it->second) {
                ++signed_leaves;
                const std::string* hash = hash_at(leaf.seq);
                if (hash == nullptr) {
                    finding =
                        audit::Finding{leaf.seq, "truncated",
                                       "the batch log signed seq " + std::to_string(leaf.seq) +
                                           "; the ledger ends at " + std::to_string(hashes.size())};
                    break;
                }
                if (*hash != leaf.head) {
                    finding = audit::Finding{leaf.seq, "checkpoint mismatch",
                                             "the batch log signed head " + Short(leaf.head) +
                                                 ", the ledger has " + Short(*hash)};
                    break;
                }
            }
        }
    }
    if (!finding) {
        for (const auto& anchor : anchors) {
            if (anchor.kind != audit::Anchor::Kind::kRun || anchor.run_id != run_id) continue;
            const std::string* hash = hash_at(anchor.seq);
            if (hash == nullptr) {
                finding =
                    audit::Finding{anchor.seq, "truncated before its anchored head",
                                   "anchored at seq " + std::to_string(anchor.seq) +
                                       " (anchors line " + std::to_string(anchor.line) +
                                       "); the ledger ends at " + std::to_string(hashes.size())};
                break;
            }
            if (*hash != anchor.hash) {
                finding = audit::Finding{anchor.seq, "rewritten before its anchored head",
                                         "anchored " + Short(anchor.hash) + " (anchors line " +
                                             std::to_string(anchor.line) + "), the ledger has " +
                                             Short(*hash)};
                break;
            }
        }
    }
    if (finding) {
        std::cout << line(run_id) << ": BROKEN " << line(finding->Describe()) << "\n";
        return false;
    }
    std::cout << line(run_id) << ": ok (" << verified->events << " events, " << signed_leaves
              << " signed checkpoints, head " << Short(verified->head.hash) << ")\n";
    return true;
}

int DoVerify(const VerifyFlags& flags, const GlobalFlags& global);

// `audit verify --json`: the text report's lines as one object (docs/formats/run_record_v1.md):
// {"format": "strowger.audit_verify.v1", "ok", "runs": [{"run_id", "ok", "detail"}],
//  "batch_log": {"ok", "detail"}, "summary"}.
int DoVerifyJson(VerifyFlags flags, const GlobalFlags& global) {
    flags.json = false;
    std::ostringstream captured;
    std::streambuf* original = std::cout.rdbuf(captured.rdbuf());
    int code = DoVerify(flags, global);
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
    if (!flags.anchors.empty()) {
        std::ifstream in(flags.anchors, std::ios::binary);
        if (!in) {
            PrintError(flags.anchors + ": cannot read");
            return ToInt(ExitCode::kUsage);
        }
        std::ostringstream text;
        text << in.rdbuf();
        auto parsed = audit::ParseAnchors(text.str(), flags.anchors);
        if (!parsed) {
            PrintError(parsed.error().message());
            return ToInt(ExitCode::kUsage);
        }
        anchors = std::move(*parsed);
    }
    KeyUse key_use;
    key_use.pubkey_file = flags.pubkey;
    auto context = Context::Open(flags.store, global.providers_file, key_use);
    if (!context) {
        return ReportError(context.error());
    }
    Context& ctx = **context;

    // The batch log: its own chain and signatures, and the leaves it signed, by run.
    SignedLeaves leaves;
    int64_t batches = 0;
    bool log_ok = true;
    auto log = ctx.Await(audit::VerifyBatchLog(ctx.store(), ctx.engine().checkpoint_verifier(),
                                               [&](const ledger::CheckpointBatch& b) {
                                                   for (const auto& leaf : b.leaves)
                                                       leaves[leaf.run_id].push_back(leaf);
                                               }));
    if (!log) {
        PrintError(log.error().message());
        return ToInt(ExitCode::kInternal);
    }
    batches = log->batches;
    if (log->finding) {
        std::cout << "checkpoint batch log: BROKEN "
                  << EscapeControl(log->finding->Describe("batch")) << "\n";
        log_ok = false;
    }
    for (const auto& anchor : anchors) {
        if (anchor.kind != audit::Anchor::Kind::kBatches) continue;
        auto found = ctx.Await(ctx.store().ReadCheckpointBatches(anchor.seq, 1));
        if (!found) {
            PrintError(found.error().message());
            return ToInt(ExitCode::kInternal);
        }
        if (found->empty() || found->front().batch_seq != anchor.seq) {
            std::cout << "checkpoint batch log: BROKEN at batch " << anchor.seq
                      << ": truncated before its anchored head (anchors line " << anchor.line
                      << ")\n";
            log_ok = false;
        } else if (ledger::BatchHash(found->front()) != anchor.hash) {
            std::cout << "checkpoint batch log: BROKEN at batch " << anchor.seq
                      << ": rewritten before its anchored head (anchors line " << anchor.line
                      << ")\n";
            log_ok = false;
        }
    }

    std::vector<std::string> ids = flags.run_ids;
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
        if (!VerifyOne(ctx, run_id, leaves, anchors, store_errors)) ++broken;
    }
    if (flags.all) {
        // Anchored or signed runs that are no longer in the store.
        std::set<std::string, std::less<>> present(ids.begin(), ids.end());
        for (const auto& anchor : anchors) {
            if (anchor.kind == audit::Anchor::Kind::kRun && !present.count(anchor.run_id)) {
                std::cout << Shown(anchor.run_id, Newlines::kEscape)
                          << ": BROKEN: missing (anchored at seq " << anchor.seq
                          << ", anchors line " << anchor.line << ")\n";
                ++broken;
            }
        }
        int64_t gone = 0;
        for (const auto& [run_id, unused] : leaves) gone += present.count(run_id) ? 0 : 1;
        std::cout << ids.size() << " runs verified, " << broken << " broken; " << batches
                  << " checkpoint batches"
                  << (gone > 0 ? ", signing " + std::to_string(gone) +
                                     " runs no longer in the store (pruned)"
                               : std::string())
                  << "\n";
    }
    if (store_errors > 0) return ToInt(ExitCode::kInternal);
    return broken == 0 && log_ok ? 0 : 1;
}

// The checkpoint lines of a run's export (docs/formats/checkpoint_v1.md).
Result<std::vector<std::string>> CheckpointLines(Context& context, const std::string& run_id) {
    auto rows = context.Await(context.store().ReadCheckpoints(run_id));
    if (!rows) return std::unexpected(rows.error());
    std::vector<std::string> lines;
    std::map<int64_t, ledger::CheckpointBatch> batches;
    for (const auto& row : *rows) {
        auto it = batches.find(row.batch_seq);
        if (it == batches.end()) {
            auto read = context.Await(context.store().ReadCheckpointBatches(row.batch_seq, 1));
            if (!read) return std::unexpected(read.error());
            if (read->empty() || read->front().batch_seq != row.batch_seq) {
                return DataLossError("run " + run_id + ": checkpoint batch " +
                                     std::to_string(row.batch_seq) + " is missing");
            }
            it = batches.emplace(row.batch_seq, std::move(read->front())).first;
        }
        const auto& batch = it->second;
        std::vector<ledger::Digest> hashes;
        hashes.reserve(batch.leaves.size());
        for (const auto& leaf : batch.leaves) hashes.push_back(ledger::LeafHash(leaf));
        if (row.leaf_index < 0 || row.leaf_index >= static_cast<int64_t>(hashes.size())) {
            return DataLossError("run " + run_id + ": checkpoint at seq " +
                                 std::to_string(row.seq) + " is not in batch " +
                                 std::to_string(row.batch_seq));
        }
        json::array path;
        for (const auto& step : ledger::MerklePath(hashes, static_cast<size_t>(row.leaf_index))) {
            std::string hex(64, '0');
            HexEncode(step.sibling.data(), step.sibling.size(), hex.data());
            path.push_back(json::array{step.sibling_on_left ? "L" : "R", json::string(hex)});
        }
        json::object b;
        b["batch_seq"] = batch.batch_seq;
        b["key_id"] = batch.key_id;
        b["leaves"] = static_cast<int64_t>(batch.leaves.size());
        b["prev_hash"] = batch.prev_hash;
        b["recovered"] = batch.recovered;
        b["root"] = batch.root;
        b["signature"] = batch.signature;
        b["signed_at"] = FormatRfc3339(batch.signed_at);
        json::object checkpoint;
        checkpoint["batch"] = std::move(b);
        checkpoint["head"] = row.head;
        checkpoint["index"] = row.leaf_index;
        checkpoint["path"] = std::move(path);
        checkpoint["run_id"] = run_id;
        checkpoint["seq"] = row.seq;
        json::object line;
        line["checkpoint"] = std::move(checkpoint);
        STROWGER_ASSIGN_OR_RETURN(auto text, CanonicalJson(line));
        lines.push_back(std::move(text));
    }
    return lines;
}

int DoExport(const std::string& store_flag, const std::string& run_id, const std::string& output,
             const std::string& definition_file, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto context = Context::Open(store_flag, global.providers_file);
    if (!context) {
        return ReportError(context.error());
    }
    store::EventQuery all;
    auto events = (*context)->Await((*context)->store().ReadEvents(run_id, all));
    if (!events) {
        PrintError(events.error().message());
        return ToInt(events.error().code() == ErrorCode::kNotFound ? ExitCode::kUsage
                                                                   : ExitCode::kInternal);
    }
    auto checkpoints = CheckpointLines(**context, run_id);
    if (!checkpoints) {
        PrintError(checkpoints.error().message());
        return ToInt(ExitCode::kInternal);
    }
    std::ofstream file;
    if (!output.empty() && output != "-") {
        file.open(output, std::ios::binary | std::ios::trunc);
        if (!file) {
            PrintError(output + ": cannot write");
            return ToInt(ExitCode::kUsage);
        }
    }
    std::ostream& out = file.is_open() ? file : std::cout;
    for (const auto& event : *events) out << event.encoded << "\n";
    for (const auto& line : *checkpoints) out << line << "\n";
    out.flush();
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
        std::ofstream def(definition_file, std::ios::binary | std::ios::trunc);
        def << *definition;
        if (!def) {
            PrintError(definition_file + ": cannot write");
            return ToInt(ExitCode::kUsage);
        }
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
        audit::Anchor anchor;
        anchor.kind = audit::Anchor::Kind::kRun;
        anchor.run_id = run_id;
        anchor.seq = verified->head.seq;
        anchor.hash = verified->head.hash;
        anchor.time = now;
        std::cout << audit::FormatAnchor(anchor) << "\n";
    }
    // The batch log's head, once the checkpoints queued here are stored.
    if (auto flushed = ctx.Await(ctx.engine().FlushCheckpoints()); !flushed) {
        PrintError(flushed.error().message());
        return ToInt(ExitCode::kInternal);
    }
    auto last = ctx.Await(ctx.store().LastCheckpointBatch());
    if (!last) {
        PrintError(last.error().message());
        return ToInt(ExitCode::kInternal);
    }
    if (last->has_value()) {
        audit::Anchor anchor;
        anchor.kind = audit::Anchor::Kind::kBatches;
        anchor.seq = (*last)->batch_seq;
        anchor.hash = ledger::BatchHash(**last);
        anchor.time = now;
        std::cout << audit::FormatAnchor(anchor) << "\n";
    }
    std::cout.flush();
    return refused == 0 ? 0 : 1;
}

}  // namespace

void AddAuditCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* audit = app.add_subcommand("audit", "Verify, anchor and export run ledgers");
    audit->require_subcommand(1);
    auto store = std::make_shared<std::string>();

    auto verify_flags = std::make_shared<VerifyFlags>();
    auto* verify = audit->add_subcommand(
        "verify",
        "Re-derive hash chains, check pinned definitions, statuses and signed checkpoints; "
        "report the first problem of each broken run");
    verify->add_option("--store", verify_flags->store, "Run store URL")->type_name("URL");
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
        exit_code = verify_flags->json ? DoVerifyJson(*verify_flags, global)
                                       : DoVerify(*verify_flags, global);
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
        exit_code = DoExport(*store, flags->run_id, flags->output, flags->definition, global);
    });

    auto* pubkey = audit->add_subcommand(
        "pubkey", "Print the public key the store's checkpoints are signed with (PEM)");
    pubkey->add_option("--store", *store, "Run store URL")->type_name("URL");
    pubkey->footer("Example:\n  strowger audit pubkey > ledger.pub");
    pubkey->callback([=, &global, &exit_code] { exit_code = DoPubkey(*store, global); });

    struct AnchorFlags {
        std::vector<std::string> run_ids;
        bool all = false;
    };
    auto anchor_flags = std::make_shared<AnchorFlags>();
    auto* anchor = audit->add_subcommand(
        "anchor",
        "Print the heads of runs (and of the checkpoint batch log) to keep outside the store");
    anchor->add_option("--store", *store, "Run store URL")->type_name("URL");
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
        exit_code = DoAnchor(*store, anchor_flags->run_ids, anchor_flags->all, global);
    });
}

}  // namespace strowger::cli
