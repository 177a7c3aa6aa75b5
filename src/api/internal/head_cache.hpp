// What the daemon derived from a run's verified ledger (a rendering, its open tasks), kept while
// the run's head does not move: a read that finds the stored head where the value was verified
// serves it without replaying the ledger again; any append moves the head and misses. Bounded,
// least recently used out first.
//
// Thread-safety: none; the daemon's one executor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>

#include "ledger/chain.hpp"

namespace strowger::api::internal {

template <typename Value>
class HeadCache {
  public:
    explicit HeadCache(size_t capacity) : capacity_(capacity) {}

    // The value verified at `head`, or null.
    const Value* Find(const std::string& run_id, const ledger::ChainHead& head) {
        auto it = entries_.find(run_id);
        if (it == entries_.end() || it->second.head.seq != head.seq ||
            it->second.head.hash != head.hash) {
            return nullptr;
        }
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return &it->second.value;
    }

    void Put(const std::string& run_id, const ledger::ChainHead& head, Value value) {
        auto [it, inserted] = entries_.try_emplace(run_id);
        if (inserted) {
            lru_.push_front(run_id);
            it->second.lru = lru_.begin();
        } else {
            lru_.splice(lru_.begin(), lru_, it->second.lru);
        }
        it->second.head = head;
        it->second.value = std::move(value);
        while (entries_.size() > capacity_) {
            entries_.erase(lru_.back());
            lru_.pop_back();
        }
    }

  private:
    struct Entry {
        ledger::ChainHead head;
        Value value;
        std::list<std::string>::iterator lru;
    };
    size_t capacity_;
    std::unordered_map<std::string, Entry> entries_;
    std::list<std::string> lru_;
};

}  // namespace strowger::api::internal
