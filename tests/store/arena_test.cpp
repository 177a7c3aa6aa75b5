// The in-memory store's arena: allocations carved from blocks, blocks given back when empty.
#include "store/memory/arena.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace strowger::store {
namespace {

struct Allocation {
    Arena::Ref ref;
    size_t size = 0;
    char fill = 0;
};

Allocation Fill(Arena& arena, size_t size, char fill) {
    char* at = nullptr;
    Allocation allocation{arena.Allocate(size, &at), size, fill};
    EXPECT_EQ(at, arena.At(allocation.ref));
    std::memset(at, fill, size);
    return allocation;
}

bool Intact(const Arena& arena, const Allocation& allocation) {
    return std::string(arena.At(allocation.ref), allocation.size) ==
           std::string(allocation.size, allocation.fill);
}

TEST(ArenaTest, AllocationsKeepTheirBytesAcrossBlocks) {
    Arena arena;
    std::vector<Allocation> kept;
    // Over two blocks' worth of event-sized allocations.
    size_t total = 0;
    for (int i = 0; total < 2 * Arena::kBlockSize + 4096; ++i) {
        const size_t size = 100 + static_cast<size_t>(i % 300);
        kept.push_back(Fill(arena, size, static_cast<char>('a' + i % 26)));
        total += size;
    }
    for (const auto& allocation : kept) ASSERT_TRUE(Intact(arena, allocation));
    EXPECT_EQ(arena.live_bytes(), total);
    EXPECT_EQ(arena.mapped_bytes(), 3 * Arena::kBlockSize);
    // Nothing overlaps: each allocation still holds its own fill after all were written.
    for (auto& allocation : kept) arena.Free(allocation.ref, allocation.size);
    EXPECT_EQ(arena.live_bytes(), 0u);
    // Full blocks are unmapped once empty; the current one stays for the next allocations.
    EXPECT_EQ(arena.mapped_bytes(), Arena::kBlockSize);
}

TEST(ArenaTest, ABlockStaysWhileAnyOfItsAllocationsLives) {
    Arena arena;
    Allocation first = Fill(arena, 1000, 'x');
    // Fills the rest of the first block, so the next allocation opens a second one.
    std::vector<Allocation> rest;
    while (arena.mapped_bytes() == Arena::kBlockSize) {
        rest.push_back(Fill(arena, Arena::kLargest, 'y'));
    }
    Allocation in_second = rest.back();
    rest.pop_back();
    for (auto& allocation : rest) arena.Free(allocation.ref, allocation.size);
    EXPECT_EQ(arena.mapped_bytes(), 2 * Arena::kBlockSize);  // `first` lives
    EXPECT_TRUE(Intact(arena, first));
    arena.Free(first.ref, first.size);
    EXPECT_EQ(arena.mapped_bytes(), Arena::kBlockSize);
    EXPECT_TRUE(Intact(arena, in_second));
    // The current block, once empty, is carved again from its start.
    arena.Free(in_second.ref, in_second.size);
    Allocation again = Fill(arena, 10, 'z');
    EXPECT_EQ(again.ref.offset, 0u);
    EXPECT_EQ(arena.mapped_bytes(), Arena::kBlockSize);
}

TEST(ArenaTest, LargeAllocationsGetABlockOfTheirOwn) {
    Arena arena;
    Allocation small = Fill(arena, 64, 's');
    Allocation large = Fill(arena, 3 * Arena::kBlockSize + 5, 'L');
    EXPECT_NE(large.ref.block, small.ref.block);
    EXPECT_EQ(large.ref.offset, 0u);
    EXPECT_TRUE(Intact(arena, large));
    EXPECT_GE(arena.mapped_bytes(), 4 * Arena::kBlockSize);
    arena.Free(large.ref, large.size);
    EXPECT_EQ(arena.mapped_bytes(), Arena::kBlockSize);
    // Its entry is reused by the next block.
    Allocation next = Fill(arena, Arena::kLargest + 1, 'n');
    EXPECT_EQ(next.ref.block, large.ref.block);
    EXPECT_TRUE(Intact(arena, small));
}

}  // namespace
}  // namespace strowger::store
