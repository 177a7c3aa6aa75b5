#include "store/memory/arena.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <new>

namespace strowger::store {
namespace {

size_t PageSize() {
    static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return page;
}

// `size` bytes mapped at a multiple of `align` (a power of two, at least a page), so that a
// huge page can back them; null if the kernel refuses.
char* MapAligned(size_t size, size_t align) {
    const size_t span = size + align - PageSize();
    void* mapped = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return nullptr;
    auto* start = static_cast<char*>(mapped);
    const auto address = reinterpret_cast<uintptr_t>(start);
    char* base = start + ((align - address % align) % align);
    if (base > start) munmap(start, static_cast<size_t>(base - start));
    char* end = start + span;
    if (end > base + size) munmap(base + size, static_cast<size_t>(end - (base + size)));
    return base;
}

}  // namespace

Arena::~Arena() {
    for (const Block& block : blocks_) {
        if (block.base != nullptr) munmap(block.base, block.size);
    }
}

uint32_t Arena::Map(size_t size) {
    const size_t page = PageSize();
    size = (size + page - 1) / page * page;
    const bool whole = size == kBlockSize;
    char* base = whole ? MapAligned(size, kBlockSize) : MapAligned(size, page);
    if (base == nullptr) throw std::bad_alloc();
        // A hint: where transparent huge pages are on "madvise", this block gets them.
#ifdef MADV_HUGEPAGE
    if (whole) madvise(base, size, MADV_HUGEPAGE);
#endif
    uint32_t index;
    if (!unused_.empty()) {
        index = unused_.back();
        unused_.pop_back();
    } else {
        index = static_cast<uint32_t>(blocks_.size());
        blocks_.emplace_back();
    }
    blocks_[index] = Block{base, size, 0, 0};
    return index;
}

void Arena::Unmap(uint32_t index) {
    Block& block = blocks_[index];
    munmap(block.base, block.size);
    block = Block{};
    unused_.push_back(index);
}

Arena::Ref Arena::Allocate(size_t size, char** at, size_t align) {
    uint32_t index;
    if (size > kLargest) {
        index = Map(size);  // page-aligned
    } else {
        if (current_ != UINT32_MAX) {
            Block& block = blocks_[current_];
            block.used = std::min(block.size, (block.used + align - 1) & ~(align - 1));
        }
        if (current_ == UINT32_MAX || blocks_[current_].size - blocks_[current_].used < size) {
            // The full block stays until its last allocation is freed.
            const uint32_t full = current_;
            current_ = Map(kBlockSize);
            if (full != UINT32_MAX && blocks_[full].live == 0) Unmap(full);
        }
        index = current_;
    }
    Block& block = blocks_[index];
    const Ref ref{index, static_cast<uint32_t>(block.used)};
    block.used += size;
    block.live += size;
    *at = block.base + ref.offset;
    return ref;
}

void Arena::Free(Ref ref, size_t size) {
    Block& block = blocks_[ref.block];
    block.live -= size;
    if (block.live > 0) return;
    if (ref.block == current_) {
        block.used = 0;  // carve it again from the start
    } else {
        Unmap(ref.block);
    }
}

size_t Arena::live_bytes() const {
    size_t total = 0;
    for (const Block& block : blocks_) total += block.live;
    return total;
}

size_t Arena::mapped_bytes() const {
    size_t total = 0;
    for (const Block& block : blocks_) total += block.size;
    return total;
}

}  // namespace strowger::store
