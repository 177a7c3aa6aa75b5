#include "store/power_loss/fault_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>

namespace strowger::testing {
namespace {

// What this process wrote to one file since its last sync. The logical content is: the real
// file's bytes below `base_limit`, zeros up to `size`, and `ranges` on top.
struct FileState {
    std::mutex mutex;
    std::string path;
    bool main_db = false;
    int64_t size = 0;                       // logical size (what xFileSize says)
    int64_t base_limit = 0;                 // real bytes below this are still part of the content
    std::map<int64_t, std::string> ranges;  // offset -> bytes; never overlapping

    // Lays `data` over [offset, offset + n).
    void Write(int64_t offset, const char* data, int64_t n) {
        const int64_t end = offset + n;
        size = std::max(size, end);
        auto it = ranges.lower_bound(offset);
        if (it != ranges.end() && it->first == offset &&
            static_cast<int64_t>(it->second.size()) >= n) {
            std::memcpy(it->second.data(), data, static_cast<size_t>(n));  // rewrite in place
            return;
        }
        if (it != ranges.begin()) {
            auto prev = std::prev(it);
            const int64_t prev_end = prev->first + static_cast<int64_t>(prev->second.size());
            if (prev_end > offset) {
                if (prev_end >= end) {  // inside an earlier write
                    std::memcpy(prev->second.data() + (offset - prev->first), data,
                                static_cast<size_t>(n));
                    return;
                }
                prev->second.resize(static_cast<size_t>(offset - prev->first));
            }
        }
        while (it != ranges.end() && it->first < end) {
            const int64_t it_end = it->first + static_cast<int64_t>(it->second.size());
            if (it_end <= end) {
                it = ranges.erase(it);
                continue;
            }
            std::string tail = it->second.substr(static_cast<size_t>(end - it->first));
            ranges.erase(it);
            ranges.emplace(end, std::move(tail));
            break;
        }
        ranges.emplace(offset, std::string(data, static_cast<size_t>(n)));
    }

    void Truncate(int64_t new_size) {
        size = new_size;
        base_limit = std::min(base_limit, new_size);
        auto it = ranges.lower_bound(new_size);
        ranges.erase(it, ranges.end());
        if (!ranges.empty()) {
            auto last = std::prev(ranges.end());
            const int64_t last_end = last->first + static_cast<int64_t>(last->second.size());
            if (last_end > new_size)
                last->second.resize(static_cast<size_t>(new_size - last->first));
        }
    }
};

// The overlays of the files open (or written and not deleted) in this process, by path.
std::mutex g_files_mutex;
std::map<std::string, std::shared_ptr<FileState>>& Files() {
    static auto* files = new std::map<std::string, std::shared_ptr<FileState>>;
    return *files;
}

sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_vfs{};
SyncObserver g_on_database_synced = nullptr;

struct FaultFile {
    sqlite3_file base;
    sqlite3_file* real;
    std::shared_ptr<FileState> state;  // null: pass-through
};

constexpr size_t kRealOffset = (sizeof(FaultFile) + 15) & ~static_cast<size_t>(15);

FaultFile* Self(sqlite3_file* file) {
    return reinterpret_cast<FaultFile*>(file);
}
sqlite3_file* Real(sqlite3_file* file) {
    return Self(file)->real;
}

int RealFileSize(sqlite3_file* real, int64_t* size) {
    sqlite3_int64 n = 0;
    int rc = real->pMethods->xFileSize(real, &n);
    *size = n;
    return rc;
}

// --- io methods ---------------------------------------------------------------------------

int Close(sqlite3_file* file) {
    FaultFile* self = Self(file);
    int rc = self->real->pMethods != nullptr ? self->real->pMethods->xClose(self->real) : SQLITE_OK;
    self->state.~shared_ptr<FileState>();
    return rc;
}

int Read(sqlite3_file* file, void* buffer, int amount, sqlite3_int64 offset) {
    FaultFile* self = Self(file);
    if (!self->state) return self->real->pMethods->xRead(self->real, buffer, amount, offset);
    FileState& state = *self->state;
    std::lock_guard lock(state.mutex);
    auto* out = static_cast<char*>(buffer);
    std::memset(out, 0, static_cast<size_t>(amount));
    const int64_t end = offset + amount;
    const int64_t available = std::max<int64_t>(0, std::min(end, state.size) - offset);
    // The synced bytes that are still part of the file.
    const int64_t base_end = std::min<int64_t>(offset + available, state.base_limit);
    if (base_end > offset) {
        int rc = self->real->pMethods->xRead(self->real, out, static_cast<int>(base_end - offset),
                                             offset);
        if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) return rc;
    }
    // The unsynced writes on top.
    auto it = state.ranges.upper_bound(offset);
    if (it != state.ranges.begin()) --it;
    for (; it != state.ranges.end() && it->first < end; ++it) {
        const int64_t from = std::max<int64_t>(offset, it->first);
        const int64_t to =
            std::min<int64_t>(end, it->first + static_cast<int64_t>(it->second.size()));
        if (from >= to) continue;
        std::memcpy(out + (from - offset), it->second.data() + (from - it->first),
                    static_cast<size_t>(to - from));
    }
    return available < amount ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

int Write(sqlite3_file* file, const void* buffer, int amount, sqlite3_int64 offset) {
    FaultFile* self = Self(file);
    if (!self->state) return self->real->pMethods->xWrite(self->real, buffer, amount, offset);
    std::lock_guard lock(self->state->mutex);
    self->state->Write(offset, static_cast<const char*>(buffer), amount);
    return SQLITE_OK;
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
    FaultFile* self = Self(file);
    if (!self->state) return self->real->pMethods->xTruncate(self->real, size);
    std::lock_guard lock(self->state->mutex);
    self->state->Truncate(size);
    return SQLITE_OK;
}

// Writes the overlay through to the real file, then syncs it: only now is it durable.
int Sync(sqlite3_file* file, int flags) {
    FaultFile* self = Self(file);
    sqlite3_file* real = self->real;
    if (!self->state) return real->pMethods->xSync(real, flags);
    FileState& state = *self->state;
    std::lock_guard lock(state.mutex);
    int64_t real_size = 0;
    int rc = RealFileSize(real, &real_size);
    if (rc != SQLITE_OK) return rc;
    if (state.base_limit < real_size) {
        rc = real->pMethods->xTruncate(real, state.base_limit);
        if (rc != SQLITE_OK) return rc;
    }
    for (const auto& [at, bytes] : state.ranges) {
        rc = real->pMethods->xWrite(real, bytes.data(), static_cast<int>(bytes.size()), at);
        if (rc != SQLITE_OK) return rc;
    }
    rc = RealFileSize(real, &real_size);
    if (rc != SQLITE_OK) return rc;
    if (real_size != state.size) {
        rc = real->pMethods->xTruncate(real, state.size);
        if (rc != SQLITE_OK) return rc;
    }
    state.ranges.clear();
    state.base_limit = state.size;
    rc = real->pMethods->xSync(real, flags);
    if (rc == SQLITE_OK && state.main_db && g_on_database_synced != nullptr) {
        g_on_database_synced(state.path.c_str());
    }
    return rc;
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
    FaultFile* self = Self(file);
    if (!self->state) return self->real->pMethods->xFileSize(self->real, size);
    std::lock_guard lock(self->state->mutex);
    *size = self->state->size;
    return SQLITE_OK;
}

int Lock(sqlite3_file* file, int level) {
    return Real(file)->pMethods->xLock(Real(file), level);
}
int Unlock(sqlite3_file* file, int level) {
    return Real(file)->pMethods->xUnlock(Real(file), level);
}
int CheckReservedLock(sqlite3_file* file, int* out) {
    return Real(file)->pMethods->xCheckReservedLock(Real(file), out);
}

int FileControl(sqlite3_file* file, int op, void* arg) {
    FaultFile* self = Self(file);
    // A size hint would make the real file grow (fallocate) behind the overlay; mmap is off.
    if (self->state && (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_MMAP_SIZE)) {
        return op == SQLITE_FCNTL_SIZE_HINT ? SQLITE_OK : SQLITE_NOTFOUND;
    }
    return self->real->pMethods->xFileControl(self->real, op, arg);
}

int SectorSize(sqlite3_file* file) {
    return Real(file)->pMethods->xSectorSize(Real(file));
}
int DeviceCharacteristics(sqlite3_file* file) {
    // No batch-atomic writes: those would bypass the model.
    return Real(file)->pMethods->xDeviceCharacteristics(Real(file)) & ~SQLITE_IOCAP_BATCH_ATOMIC;
}

int ShmMap(sqlite3_file* file, int page, int page_size, int extend, void volatile** out) {
    return Real(file)->pMethods->xShmMap(Real(file), page, page_size, extend, out);
}
int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
    return Real(file)->pMethods->xShmLock(Real(file), offset, n, flags);
}
void ShmBarrier(sqlite3_file* file) {
    Real(file)->pMethods->xShmBarrier(Real(file));
}
int ShmUnmap(sqlite3_file* file, int delete_flag) {
    return Real(file)->pMethods->xShmUnmap(Real(file), delete_flag);
}

// Version 2: the shared-memory methods WAL needs, no xFetch/xUnfetch (no memory mapping).
const sqlite3_io_methods kMethods = {
    2,
    Close,
    Read,
    Write,
    Truncate,
    Sync,
    FileSize,
    Lock,
    Unlock,
    CheckReservedLock,
    FileControl,
    SectorSize,
    DeviceCharacteristics,
    ShmMap,
    ShmLock,
    ShmBarrier,
    ShmUnmap,
    nullptr,
    nullptr,
};

// --- vfs methods ----------------------------------------------------------------------------

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    auto* self = reinterpret_cast<FaultFile*>(file);
    self->base.pMethods = nullptr;
    self->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
    self->real->pMethods = nullptr;
    new (&self->state) std::shared_ptr<FileState>();
    int rc = g_real->xOpen(g_real, name, self->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (self->real->pMethods != nullptr) self->real->pMethods->xClose(self->real);
        self->state.~shared_ptr<FileState>();
        return rc;
    }
    const bool tracked = name != nullptr && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
    if (tracked) {
        std::lock_guard lock(g_files_mutex);
        auto& slot = Files()[name];
        if (!slot) {
            slot = std::make_shared<FileState>();
            int64_t size = 0;
            rc = RealFileSize(self->real, &size);
            if (rc != SQLITE_OK) {
                Files().erase(name);
                self->real->pMethods->xClose(self->real);
                self->state.~shared_ptr<FileState>();
                return rc;
            }
            slot->size = size;
            slot->base_limit = size;
            slot->path = name;
            slot->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
        }
        self->state = slot;
    }
    self->base.pMethods = &kMethods;
    return SQLITE_OK;
}

int Delete(sqlite3_vfs*, const char* name, int sync_dir) {
    {
        std::lock_guard lock(g_files_mutex);
        Files().erase(name);
    }
    return g_real->xDelete(g_real, name, sync_dir);
}

int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
    return g_real->xAccess(g_real, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
    return g_real->xFullPathname(g_real, name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) {
    return g_real->xDlOpen(g_real, name);
}
void DlError(sqlite3_vfs*, int n, char* out) {
    g_real->xDlError(g_real, n, out);
}
void (*DlSym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
    return g_real->xDlSym(g_real, handle, symbol);
}
void DlClose(sqlite3_vfs*, void* handle) {
    g_real->xDlClose(g_real, handle);
}
int Randomness(sqlite3_vfs*, int n, char* out) {
    return g_real->xRandomness(g_real, n, out);
}
int SleepFor(sqlite3_vfs*, int micros) {
    return g_real->xSleep(g_real, micros);
}
int CurrentTime(sqlite3_vfs*, double* out) {
    return g_real->xCurrentTime(g_real, out);
}
int GetLastError(sqlite3_vfs*, int n, char* out) {
    return g_real->xGetLastError != nullptr ? g_real->xGetLastError(g_real, n, out) : 0;
}
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
    return g_real->xCurrentTimeInt64(g_real, out);
}

}  // namespace

std::string RegisterFaultVfs(bool make_default, SyncObserver on_database_synced) {
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    g_on_database_synced = on_database_synced;
    if (g_real == nullptr) {
        if (sqlite3_initialize() != SQLITE_OK) return "sqlite3_initialize failed";
        sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
        if (real == nullptr) return "no default SQLite VFS";
        if (real->iVersion < 2 || real->xCurrentTimeInt64 == nullptr) {
            return std::string("the default VFS ") + real->zName + " is too old";
        }
        g_real = real;
        g_vfs.iVersion = 2;
        g_vfs.szOsFile = static_cast<int>(kRealOffset) + real->szOsFile;
        g_vfs.mxPathname = real->mxPathname;
        g_vfs.zName = "strowger-fault";
        g_vfs.xOpen = Open;
        g_vfs.xDelete = Delete;
        g_vfs.xAccess = Access;
        g_vfs.xFullPathname = FullPathname;
        g_vfs.xDlOpen = DlOpen;
        g_vfs.xDlError = DlError;
        g_vfs.xDlSym = DlSym;
        g_vfs.xDlClose = DlClose;
        g_vfs.xRandomness = Randomness;
        g_vfs.xSleep = SleepFor;
        g_vfs.xCurrentTime = CurrentTime;
        g_vfs.xGetLastError = GetLastError;
        g_vfs.xCurrentTimeInt64 = CurrentTimeInt64;
    }
    int rc = sqlite3_vfs_register(&g_vfs, make_default ? 1 : 0);
    if (rc != SQLITE_OK) return std::string("sqlite3_vfs_register: ") + sqlite3_errstr(rc);
    return "";
}

}  // namespace strowger::testing
