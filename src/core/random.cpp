#include "core/random.hpp"

#include <mutex>
#include <random>

namespace strowger {
namespace {

// splitmix64: tiny, fast and good enough for jitter and ids.
class SplitMix final : public Random {
  public:
    explicit SplitMix(uint64_t seed) : state_(seed) {}
    uint64_t Next() override {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

  private:
    uint64_t state_;
};

class LockedRandom final : public Random {
  public:
    LockedRandom() : inner_(std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32)) {}
    uint64_t Next() override {
        std::lock_guard lock(mutex_);
        return inner_.Next();
    }

  private:
    std::mutex mutex_;
    SplitMix inner_;  // GUARDED_BY(mutex_)
};

}  // namespace

Random& Random::Real() {
    static LockedRandom random;
    return random;
}

std::unique_ptr<Random> Random::Seeded(uint64_t seed) {
    return std::make_unique<SplitMix>(seed);
}

}  // namespace strowger
