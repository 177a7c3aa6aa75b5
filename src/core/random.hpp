// Randomness behind an interface so tests are deterministic (jitter, ids).
//
// Thread-safety: Random::Real() is safe from any thread; other instances are not.
#pragma once

#include <cstdint>
#include <memory>

namespace strowger {

class Random {
  public:
    virtual ~Random() = default;
    virtual uint64_t Next() = 0;
    // Uniform in [0, 1).
    double NextDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

    // A process-wide generator seeded from the OS (thread-safe).
    static Random& Real();
    // A deterministic generator for tests.
    static std::unique_ptr<Random> Seeded(uint64_t seed);
};

}  // namespace strowger
