// Reading YAML (and JSON, which is YAML) that users wrote, within bounds.
//
// yaml-cpp shares the node of an anchor with every alias to it, so a small file of nested
// aliases ("billion laughs") expands to billions of nodes in whoever walks it; and nesting
// deep enough overflows the stack of a recursive walker. ParseYaml refuses both before any
// caller walks the tree: every YAML file Strowger reads goes through it.
//
// Thread-safety: reentrant.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace strowger {

struct YamlLimits {
    // Mappings and sequences inside each other.
    int max_depth = 64;
    // Nodes counted as a walker would meet them: every alias expanded.
    int64_t max_nodes = 1'000'000;
    // Bytes of scalars (keys and values) counted the same way: a few aliases of one long
    // string are as large, once walked, as a billion laughs.
    int64_t max_scalar_bytes = int64_t{64} << 20;
};

struct YamlError {
    int line = 0;  // 1-based; 0 when the error has no position
    int column = 0;
    std::string message;  // without the position
};

// Parses one YAML document. A syntax error, nesting past max_depth, or more than max_nodes
// nodes or max_scalar_bytes of scalars once aliases are expanded is an error with the position
// where it was found.
std::expected<YAML::Node, YamlError> ParseYaml(std::string_view text,
                                               const YamlLimits& limits = {});

}  // namespace strowger
