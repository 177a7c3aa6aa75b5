// strowger_store_layout_bench: what a durable step costs SQLite under candidate on-disk
// layouts of the ledger (issue 17, docs/design/store.md "Layouts measured"). Not the store:
// raw SQLite statements shaped like the store's writer, so the layouts compare on their own.
//
//   strowger_store_layout_bench PATH [--runs 100] [--steps 100] [--synchronous full|normal]
//
// The load is W1's: `--runs` runs in flight, each step two appends of two events (node.started
// + llm.request, then llm.response + node.completed; canonical lines of W1's sizes), one
// append per run per transaction (group commit: every run has one append waiting), every
// transaction committed with the given `synchronous` (full: one fsync of the WAL each).
// Per layout it prints steps/s and the CPU time per step of this single thread; the file is
// made anew for each layout.
//
// Layouts:
//   today        one `events` row per event (append-ordered rowid, (run_id, seq) index), the
//                run's row read for its head and updated per append, a savepoint per append
//   append_rows  one row per append holding its lines, indexed by (run_id, first_seq); the
//                run's head read and updated per append
//   batch_rows   one row per transaction holding every line; a (run_id, first_seq) -> batch
//                index row per append; the run's head read and updated per append
//   batch_only   one row per transaction, one index row per append, no per-append run row
//                update (heads kept by the writer, written at stops and recovered from the
//                log at start-up)
//   log_floor    one row per transaction and nothing else: the floor for SQLite as a log
#include <sqlite3.h>

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace {

struct Options {
    std::string path;
    int runs = 100;
    int steps = 100;
    std::string synchronous = "full";
};

[[noreturn]] void Die(sqlite3* db, const char* what) {
    std::fprintf(stderr, "%s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    std::exit(1);
}

void Exec(sqlite3* db, const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
        std::fprintf(stderr, "%s: %s\n", sql.c_str(), error ? error : "");
        std::exit(1);
    }
}

sqlite3_stmt* Prepare(sqlite3* db, const char* sql) {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement, nullptr) !=
        SQLITE_OK) {
        Die(db, sql);
    }
    return statement;
}

void Run(sqlite3* db, sqlite3_stmt* statement) {
    int rc = sqlite3_step(statement);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) Die(db, sqlite3_sql(statement));
    sqlite3_reset(statement);
}

void BindText(sqlite3_stmt* statement, int index, const std::string& text) {
    sqlite3_bind_text(statement, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

double CpuSeconds() {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// A canonical ledger line of about W1's size for event `seq` of `run_id`.
std::string Line(const std::string& run_id, int64_t seq, int size) {
    std::string line = R"({"data":{"content":")";
    while (static_cast<int>(line.size()) < size - 160) line += "step output text ";
    line += R"("},"hash":"3f2a9b1c3f2a9b1c3f2a9b1c3f2a9b1c3f2a9b1c3f2a9b1c3f2a9b1c3f2a9b1c",)";
    line += R"("node":"s3","prev_hash":"9b1c","run_id":")" + run_id + R"(","seq":)" +
            std::to_string(seq) + R"(,"type":"llm.response"})";
    return line;
}

constexpr const char* kRunsTable = R"sql(
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY NOT NULL, workflow TEXT NOT NULL, status TEXT NOT NULL,
    definition_sha256 TEXT NOT NULL, idempotency_key TEXT, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, head_seq INTEGER NOT NULL, head_hash TEXT NOT NULL,
    owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0,
    checkpoint_seq INTEGER NOT NULL DEFAULT 0, wake_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE UNIQUE INDEX runs_by_idempotency_key ON runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_status ON runs (status, run_id);
CREATE INDEX runs_by_workflow ON runs (workflow, run_id);
CREATE INDEX runs_by_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_unsigned ON runs (run_id) WHERE checkpoint_seq < head_seq;
CREATE INDEX runs_by_wake_at ON runs (wake_at) WHERE wake_at > 0;
)sql";

struct Layout {
    const char* name;
    const char* schema;
    bool per_event_rows = false;  // today
    bool savepoints = false;
    bool append_rows = false;
    bool batch_row = false;
    bool index_rows = false;
    bool run_rows = true;  // the run's head read and updated per append
};

const Layout kLayouts[] = {
    {"today",
     "CREATE TABLE events (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, seq INTEGER NOT NULL, "
     "type TEXT NOT NULL, node TEXT NOT NULL, line TEXT NOT NULL);"
     "CREATE UNIQUE INDEX events_by_run ON events (run_id, seq);",
     true, true, false, false, false, true},
    {"append_rows",
     "CREATE TABLE chunks (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, first_seq INTEGER NOT "
     "NULL, last_seq INTEGER NOT NULL, lines TEXT NOT NULL);"
     "CREATE UNIQUE INDEX chunks_by_run ON chunks (run_id, first_seq);",
     false, false, true, false, false, true},
    {"batch_rows",
     "CREATE TABLE batches (id INTEGER PRIMARY KEY, lines BLOB NOT NULL);"
     "CREATE TABLE chunk_index (run_id TEXT NOT NULL, first_seq INTEGER NOT NULL, batch INTEGER "
     "NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (run_id, "
     "first_seq)) WITHOUT ROWID;",
     false, false, false, true, true, true},
    {"batch_only",
     "CREATE TABLE batches (id INTEGER PRIMARY KEY, lines BLOB NOT NULL);"
     "CREATE TABLE chunk_index (run_id TEXT NOT NULL, first_seq INTEGER NOT NULL, batch INTEGER "
     "NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, PRIMARY KEY (run_id, "
     "first_seq)) WITHOUT ROWID;",
     false, false, false, true, true, false},
    {"log_floor", "CREATE TABLE batches (id INTEGER PRIMARY KEY, lines BLOB NOT NULL);", false,
     false, false, true, false, false},
};

void Measure(const Options& options, const Layout& layout) {
    for (const char* suffix : {"", "-wal", "-shm"}) {
        std::filesystem::remove(options.path + suffix);
    }
    sqlite3* db = nullptr;
    if (sqlite3_open(options.path.c_str(), &db) != SQLITE_OK) Die(db, "open");
    Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=" + options.synchronous + ";");
    Exec(db, kRunsTable);
    Exec(db, layout.schema);

    std::vector<std::string> run_ids;
    Exec(db, "BEGIN");
    sqlite3_stmt* create = Prepare(
        db,
        "INSERT INTO runs (run_id, workflow, status, definition_sha256, created_at, updated_at, "
        "head_seq, head_hash) VALUES (?, 'w1', 'running', 'sha', 1, 1, 2, 'h')");
    for (int r = 0; r < options.runs; ++r) {
        char id[32];
        std::snprintf(id, sizeof id, "01JD3M6K9Q3V8C6Y2W5T%06d", r);
        run_ids.emplace_back(id);
        BindText(create, 1, run_ids.back());
        Run(db, create);
    }
    Exec(db, "COMMIT");

    sqlite3_stmt* head = Prepare(db, "SELECT head_seq FROM runs WHERE run_id = ?");
    sqlite3_stmt* update =
        Prepare(db,
                "UPDATE runs SET status = ?, head_seq = ?, head_hash = ?, updated_at = ? WHERE "
                "run_id = ?");
    sqlite3_stmt* savepoint = Prepare(db, "SAVEPOINT request");
    sqlite3_stmt* release = Prepare(db, "RELEASE request");
    sqlite3_stmt* event = nullptr;
    sqlite3_stmt* chunk = nullptr;
    sqlite3_stmt* batch = nullptr;
    sqlite3_stmt* index = nullptr;
    if (layout.per_event_rows) {
        event = Prepare(db,
                        "INSERT INTO events (run_id, seq, type, node, line) VALUES (?, ?, "
                        "'llm.response', 's3', ?)");
    }
    if (layout.append_rows) {
        chunk = Prepare(
            db, "INSERT INTO chunks (run_id, first_seq, last_seq, lines) VALUES (?, ?, ?, ?)");
    }
    if (layout.batch_row) batch = Prepare(db, "INSERT INTO batches (lines) VALUES (?)");
    if (layout.index_rows) {
        index = Prepare(db,
                        "INSERT INTO chunk_index (run_id, first_seq, batch, offset, length) "
                        "VALUES (?, ?, ?, ?, ?)");
    }
    sqlite3_stmt* begin = Prepare(db, "BEGIN IMMEDIATE");
    sqlite3_stmt* commit = Prepare(db, "COMMIT");

    std::vector<int64_t> seq(run_ids.size(), 2);
    const std::string status = "running";
    const std::string hash(64, 'a');
    std::string lines;
    int64_t batch_id = 0;
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = CpuSeconds();
    for (int a = 0; a < options.steps * 2; ++a) {  // two appends per step
        Run(db, begin);
        lines.clear();
        ++batch_id;
        for (size_t r = 0; r < run_ids.size(); ++r) {
            const std::string& run_id = run_ids[r];
            const int64_t first = seq[r] + 1;
            std::string first_line = Line(run_id, first, 200);
            std::string second_line = Line(run_id, first + 1, 400);
            if (layout.savepoints) Run(db, savepoint);
            if (layout.run_rows) {
                BindText(head, 1, run_id);
                if (sqlite3_step(head) != SQLITE_ROW) Die(db, "head");
                sqlite3_reset(head);
            }
            if (event != nullptr) {
                for (int e = 0; e < 2; ++e) {
                    BindText(event, 1, run_id);
                    sqlite3_bind_int64(event, 2, first + e);
                    BindText(event, 3, e == 0 ? first_line : second_line);
                    Run(db, event);
                }
            }
            std::string both = first_line + "\n" + second_line + "\n";
            if (chunk != nullptr) {
                BindText(chunk, 1, run_id);
                sqlite3_bind_int64(chunk, 2, first);
                sqlite3_bind_int64(chunk, 3, first + 1);
                BindText(chunk, 4, both);
                Run(db, chunk);
            }
            if (index != nullptr) {
                BindText(index, 1, run_id);
                sqlite3_bind_int64(index, 2, first);
                sqlite3_bind_int64(index, 3, batch_id);
                sqlite3_bind_int64(index, 4, static_cast<int64_t>(lines.size()));
                sqlite3_bind_int64(index, 5, static_cast<int64_t>(both.size()));
                Run(db, index);
            }
            if (batch != nullptr) lines += both;
            if (layout.run_rows) {
                BindText(update, 1, status);
                sqlite3_bind_int64(update, 2, first + 1);
                BindText(update, 3, hash);
                sqlite3_bind_int64(update, 4, first);
                BindText(update, 5, run_id);
                Run(db, update);
            }
            if (layout.savepoints) Run(db, release);
            seq[r] = first + 1;
        }
        if (batch != nullptr) {
            sqlite3_bind_blob(batch, 1, lines.data(), static_cast<int>(lines.size()),
                              SQLITE_STATIC);
            Run(db, batch);
        }
        Run(db, commit);
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu = CpuSeconds() - cpu_start;
    const double steps = static_cast<double>(options.steps) * options.runs;
    std::printf(
        "{\"layout\":\"%s\",\"synchronous\":\"%s\",\"runs\":%d,\"steps\":%.0f,\"wall_s\":%.3f,"
        "\"steps_per_s\":%.0f,\"cpu_us_per_step\":%.2f,\"file_bytes\":%jd}\n",
        layout.name, options.synchronous.c_str(), options.runs, steps, wall, steps / wall,
        cpu / steps * 1e6,
        static_cast<intmax_t>(std::filesystem::file_size(options.path) +
                              (std::filesystem::exists(options.path + "-wal")
                                   ? std::filesystem::file_size(options.path + "-wal")
                                   : 0)));
    std::fflush(stdout);
    for (sqlite3_stmt* statement :
         {head, update, savepoint, release, event, chunk, batch, index, begin, commit, create}) {
        sqlite3_finalize(statement);
    }
    sqlite3_close(db);
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: strowger_store_layout_bench PATH [--runs N] [--steps N] "
                     "[--synchronous full|normal]\n");
        return 2;
    }
    options.path = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--runs") {
            options.runs = std::atoi(argv[i + 1]);
        } else if (flag == "--steps") {
            options.steps = std::atoi(argv[i + 1]);
        } else if (flag == "--synchronous") {
            options.synchronous = argv[i + 1];
        } else {
            std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
            return 2;
        }
    }
    if (options.runs < 1 || options.steps < 1 ||
        (options.synchronous != "full" && options.synchronous != "normal")) {
        std::fprintf(stderr, "--runs and --steps are at least 1; --synchronous full|normal\n");
        return 2;
    }
    for (const Layout& layout : kLayouts) Measure(options, layout);
    return 0;
}
