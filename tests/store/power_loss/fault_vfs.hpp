// A fault-injecting SQLite VFS for the power-loss test (leveldb's fault_injection_test, for
// SQLite): test-only code, never linked into strowger.
//
// It wraps the platform's default VFS ("unix"). Every write to a main database file or a
// write-ahead log (-wal) is kept in this process's memory, in an overlay of byte ranges per
// file that reads, xFileSize and xTruncate see, and is written through to the real file only
// when SQLite syncs that file (xSync). A process killed with SIGKILL therefore leaves on disk
// exactly what had been synced: the power-loss model in which the OS page cache is not trusted.
// Other files (the -shm wal-index, temporary files) pass through; SQLite rebuilds the wal-index
// from the WAL when the first connection opens the database after a crash.
//
// Files opened through it have io_methods version 2, so SQLite never memory-maps them (xFetch
// is version 3): every read goes through xRead and sees the overlay.
//
// What it does not model (docs/design/store.md, "Power-loss test"): torn or partially written
// sectors, writes reordered or partly persisted within one sync (a kill during a sync leaves
// whatever prefix of the write-through reached the page cache), directory entries (a created
// or deleted file is durable at once), and lying disks.
//
// Thread-safety: the overlay of a file is shared by every handle of it in the process (the
// store's writer and readers) under one mutex.
#pragma once

#include <string>

namespace strowger::testing {

// Called after a main database file's overlay was written through and synced (in WAL mode:
// a checkpoint made durable), on the thread that synced it. Must be quick; may be null.
using SyncObserver = void (*)(const char* path);

// Registers the VFS as "strowger-fault"; as the process's default VFS if `make_default`
// (every sqlite3_open_v2 without a VFS name then uses it). Idempotent. Returns "" or why not.
std::string RegisterFaultVfs(bool make_default, SyncObserver on_database_synced = nullptr);

}  // namespace strowger::testing
