// Reading YAML (and JSON, which is YAML) that users wrote, within bounds.
//
// yaml-cpp shares the node of an anchor with every alias to it, so a small file of nested
// aliases ("billion laughs") expands to billions of nodes in whoever walks it; and nesting
// deep enough overflows the stack of a recursive walker. ParseYaml refuses both before any
// caller walks the tree: every YAML file Strowger reads goes through it (or through
// ParseYamlTree, its compact twin, below).
//
// Thread-safety: reentrant.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

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

// ---- A compact tree, for documents that may be large ------------------------------------
//
// A YAML::Node costs about 500 bytes (a 100,000-step workflow: 350 MB for a 7 MB file).
// ParseYamlTree reads the same document from yaml-cpp's parser events, within the same limits
// and with the same errors, into a tree of 20 bytes a node plus its text. Workflows and their
// pinned definitions are read this way.

class YamlTree;

// A node of a YamlTree: a view, cheap to copy, valid while the tree lives. An alias is the
// node it refers to (as in yaml-cpp), so walking a tree expands aliases; ParseYamlTree has
// bounded what that walk can meet.
class YamlNode {
  public:
    enum class Kind : uint8_t { kUndefined, kNull, kScalar, kSequence, kMap, kAlias };

    YamlNode() = default;  // undefined: what Find returns for a missing key

    Kind kind() const;
    bool IsDefined() const { return kind() != Kind::kUndefined; }
    bool IsNull() const { return kind() == Kind::kNull || kind() == Kind::kUndefined; }
    bool IsScalar() const { return kind() == Kind::kScalar; }
    bool IsSequence() const { return kind() == Kind::kSequence; }
    bool IsMap() const { return kind() == Kind::kMap; }

    // A scalar's text ("" for other nodes) and tag: "?" for a plain scalar, "!" for a quoted
    // one, else the explicit tag as yaml-cpp resolves it.
    std::string_view Scalar() const;
    std::string_view Tag() const;
    // 1-based; 0 when unknown (an undefined node, an empty document).
    int line() const;
    int column() const;

    // Elements of a sequence, pairs of a map; 0 for other nodes.
    size_t size() const;
    // The i-th element of a sequence (i < size()).
    YamlNode operator[](size_t i) const;
    // The key and value of a map's i-th pair (i < size()), in the order written; duplicate keys
    // are kept.
    YamlNode Key(size_t i) const;
    YamlNode Value(size_t i) const;
    // The value of the first pair whose key is the scalar `key`; undefined if there is none.
    YamlNode Find(std::string_view key) const;

  private:
    friend class YamlTree;
    YamlNode(const YamlTree* tree, uint32_t index);

    const YamlTree* tree_ = nullptr;
    uint32_t index_ = 0;
};

// Nodes point into their tree: do not move a tree while its nodes are in use.
class YamlTree {
  public:
    YamlNode root() const { return YamlNode(this, 0); }

  private:
    friend class YamlNode;
    friend class YamlTreeBuilder;

    struct Entry {
        YamlNode::Kind kind = YamlNode::Kind::kNull;
        uint16_t tag = 0;  // index into tags_
        int32_t line = 0;
        int32_t column = 0;
        // A scalar: its text in text_. A sequence or a map: its children in children_ (a map's
        // as key, value, key, value...). An alias: `begin` is the entry it refers to.
        uint32_t begin = 0;
        uint32_t size = 0;
    };
    std::vector<Entry> entries_;  // entries_[0] is the root
    std::vector<uint32_t> children_;
    std::string text_;
    std::vector<std::string> tags_;
};

// Parses one YAML document into a YamlTree: the errors and limits of ParseYaml.
std::expected<YamlTree, YamlError> ParseYamlTree(std::string_view text,
                                                 const YamlLimits& limits = {});

}  // namespace strowger
