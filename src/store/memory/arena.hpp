// Memory for the in-memory store's events: carved in order from 2 MiB blocks mapped on their
// own, which the kernel may back with huge pages (one page fault per block instead of 512; a
// benchmark keeps millions of events here). A block is unmapped when every allocation in it
// has been freed.
//
// Not thread-safe: the store's mutex guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strowger::store {

class Arena {
  public:
    // Where an allocation is: its block and the offset in it (as small as a pointer, and
    // enough to free it without a search).
    struct Ref {
        uint32_t block = 0;
        uint32_t offset = 0;
    };
    static constexpr size_t kBlockSize = size_t{2} << 20;
    // Larger allocations get a block of their own.
    static constexpr size_t kLargest = kBlockSize / 4;

    Arena() = default;
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    ~Arena();

    // `size` bytes (1 to UINT32_MAX) at a multiple of `align` (a power of two up to a page),
    // their address at `*at`. Throws std::bad_alloc.
    Ref Allocate(size_t size, char** at, size_t align = 1);
    char* At(Ref ref) const { return blocks_[ref.block].base + ref.offset; }
    // Gives back the allocation of `size` bytes at `ref`.
    void Free(Ref ref, size_t size);

    // Bytes in live allocations, and in mapped blocks (tests).
    size_t live_bytes() const;
    size_t mapped_bytes() const;

  private:
    struct Block {
        char* base = nullptr;  // null: an unused entry
        size_t size = 0;
        size_t used = 0;  // carved so far
        size_t live = 0;  // allocated and not freed
    };
    uint32_t Map(size_t size);
    void Unmap(uint32_t index);

    std::vector<Block> blocks_;
    std::vector<uint32_t> unused_;   // entries of blocks_ to reuse
    uint32_t current_ = UINT32_MAX;  // the block small allocations are carved from
};

}  // namespace strowger::store
