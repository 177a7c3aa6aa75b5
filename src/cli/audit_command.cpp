// strowger audit verify [RUN|--all] / strowger audit export RUN
#include <fstream>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/context.hpp"
#include "ledger/chain.hpp"

namespace strowger::cli {
namespace {

// Verifies one run's chain against the head the store recorded; prints one line.
// Run ids and the store's messages are escaped: a tampered store could hold anything.
bool VerifyOne(Context& context, const std::string& run_id) {
    auto line = [](std::string_view text) { return Shown(text, Newlines::kEscape); };
    auto record = context.Await(context.store().GetRun(run_id));
    if (!record) {
        std::cout << line(run_id) << ": cannot read: " << line(record.error().message()) << "\n";
        return false;
    }
    store::EventQuery all;
    auto events = context.Await(context.store().ReadEvents(run_id, all));
    if (!events) {
        std::cout << line(run_id) << ": cannot read events: " << line(events.error().message())
                  << "\n";
        return false;
    }
    std::vector<std::string> lines;
    lines.reserve(events->size());
    for (auto& event : *events) lines.push_back(std::move(event.encoded));
    auto report = ledger::VerifyChain(run_id, lines, record->head);
    if (report.ok()) {
        std::cout << line(run_id) << ": ok (" << report.events << " events, head "
                  << report.head.hash.substr(0, 16) << "…)\n";
        return true;
    }
    std::cout << line(run_id) << ": BROKEN at seq " << report.issue->seq << ": "
              << line(report.issue->reason);
    if (!report.issue->detail.empty()) std::cout << " (" << line(report.issue->detail) << ")";
    std::cout << "\n";
    return false;
}

int DoVerify(const std::string& store_flag, const std::string& run_id, bool all,
             const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto context = Context::Open(store_flag);
    if (!context) {
        PrintError(context.error().message());
        return ToInt(ExitCode::kInternal);
    }
    if (!all) return VerifyOne(**context, run_id) ? 0 : 1;
    int64_t total = 0, broken = 0;
    store::RunFilter filter;
    filter.limit = 500;
    while (true) {
        auto page = (*context)->Await((*context)->store().ListRuns(filter));
        if (!page) {
            PrintError(page.error().message());
            return ToInt(ExitCode::kInternal);
        }
        for (const auto& record : page->runs) {
            ++total;
            if (!VerifyOne(**context, record.run_id)) ++broken;
        }
        if (page->next_cursor.empty()) break;
        filter.before_run_id = page->next_cursor;
    }
    std::cout << total << " runs verified, " << broken << " broken\n";
    return broken == 0 ? 0 : 1;
}

int DoExport(const std::string& store_flag, const std::string& run_id, const std::string& output,
             const std::string& definition_file, const GlobalFlags& global) {
    SetUpProcess(global.log_level);
    auto context = Context::Open(store_flag);
    if (!context) {
        PrintError(context.error().message());
        return ToInt(ExitCode::kInternal);
    }
    store::EventQuery all;
    auto events = (*context)->Await((*context)->store().ReadEvents(run_id, all));
    if (!events) {
        PrintError(events.error().message());
        return ToInt(events.error().code() == ErrorCode::kNotFound ? ExitCode::kUsage
                                                                   : ExitCode::kInternal);
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

}  // namespace

void AddAuditCommand(CLI::App& app, const GlobalFlags& global, int& exit_code) {
    auto* audit = app.add_subcommand("audit", "Verify and export run ledgers");
    audit->require_subcommand(1);
    auto store = std::make_shared<std::string>();

    auto verify_id = std::make_shared<std::string>();
    auto verify_all = std::make_shared<bool>(false);
    auto* verify = audit->add_subcommand(
        "verify", "Re-derive hash chains; report the first bad sequence number of each broken run");
    verify->add_option("--store", *store, "Run store URL")->type_name("URL");
    auto* id_option = verify->add_option("run", *verify_id, "Run id");
    auto* all_option = verify->add_flag("--all", *verify_all, "Every run in the store");
    id_option->excludes(all_option);
    verify->footer("Exit codes: 0 every chain verified, 1 a chain is broken, 5 store error.");
    verify->callback([=, &global, &exit_code] {
        if (verify_id->empty() && !*verify_all) {
            PrintError("audit verify: give a run id or --all");
            exit_code = ToInt(ExitCode::kUsage);
            return;
        }
        exit_code = DoVerify(*store, *verify_id, *verify_all, global);
    });

    struct ExportFlags {
        std::string run_id, output, definition;
    };
    auto flags = std::make_shared<ExportFlags>();
    auto* exporter = audit->add_subcommand("export",
                                           "Write a run's ledger as JSON Lines that verify without "
                                           "Strowger (scripts/verify_ledger.py)");
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
        "  python3 scripts/verify_ledger.py run.jsonl run.definition.json");
    exporter->callback([=, &global, &exit_code] {
        exit_code = DoExport(*store, flags->run_id, flags->output, flags->definition, global);
    });
}

}  // namespace strowger::cli
