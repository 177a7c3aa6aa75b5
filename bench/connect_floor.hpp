// The CONNECT workload of strowger_bench (see connect_floor.cpp).
#pragma once

#include <cstdint>

namespace strowger::bench {

// Opens `connections` loopback connections with one message each; prints one JSON object.
int ConnectFloor(int64_t connections);

}  // namespace strowger::bench
