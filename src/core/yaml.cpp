#include "core/yaml.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <algorithm>
#include <cstdint>
#include <istream>
#include <limits>
#include <optional>
#include <streambuf>
#include <string_view>
#include <utility>
#include <vector>

namespace strowger {

namespace {

YamlError ErrorAt(const YAML::Mark& mark, std::string message) {
    YamlError error;
    if (mark.line >= 0) {
        error.line = mark.line + 1;
        error.column = mark.column + 1;
    }
    error.message = std::move(message);
    return error;
}

// A syntax error near a C-style comment is, most likely, a JSON file written with comments
// (which YAML reads as text): says so, naming the line of the comment.
std::string SyntaxError(std::string_view text, const YAML::Mark& mark, const std::string& what) {
    std::string message = "syntax error: " + what;
    if (mark.line < 0) return message;
    // The error's line and the one before it (a comment on its own line ends the key there).
    size_t start = 0;
    int line = 0;
    std::vector<std::pair<int, std::string_view>> lines;
    while (start <= text.size() && line <= mark.line) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        if (line + 1 >= mark.line) lines.emplace_back(line, text.substr(start, end - start));
        start = end + 1;
        ++line;
    }
    for (const auto& [number, content] : lines) {
        for (std::string_view opener : {"//", "/*"}) {
            size_t at = content.find(opener);
            if (at == std::string_view::npos) continue;
            // Outside a string: an even number of double quotes before it.
            if (std::count(content.begin(), content.begin() + static_cast<std::ptrdiff_t>(at),
                           '"') %
                    2 !=
                0) {
                continue;
            }
            return message + " (line " + std::to_string(number + 1) + " has \"" +
                   std::string(opener) +
                   "\": comments are not allowed in JSON; remove the comment, or write the file "
                   "as YAML and use # comments)";
        }
    }
    return message;
}

std::string TooDeep(const YamlLimits& limits) {
    return "nested deeper than " + std::to_string(limits.max_depth) + " levels";
}

std::string TooManyNodes(const YamlLimits& limits) {
    return "too many nodes once aliases are expanded (more than " +
           std::to_string(limits.max_nodes) + ")";
}

// Counts the nodes under `root` with aliases expanded, and checks the depth. Iterative: the
// depth is what it checks, so it must not be what it overflows on.
std::optional<YamlError> CheckBounds(const YAML::Node& root, const YamlLimits& limits) {
    struct Frame {
        YAML::Node node;
        int depth;
    };
    std::vector<Frame> stack;
    stack.push_back({root, 0});
    int64_t nodes = 0;
    int64_t scalar_bytes = 0;
    while (!stack.empty()) {
        Frame frame = std::move(stack.back());
        stack.pop_back();
        if (++nodes > limits.max_nodes) {
            return ErrorAt(frame.node.Mark(), TooManyNodes(limits));
        }
        if (frame.node.IsScalar()) {
            scalar_bytes += static_cast<int64_t>(frame.node.Scalar().size());
            if (scalar_bytes > limits.max_scalar_bytes) {
                return ErrorAt(frame.node.Mark(),
                               "too much text once aliases are expanded (more than " +
                                   std::to_string(limits.max_scalar_bytes) + " bytes)");
            }
        }
        if (!frame.node.IsMap() && !frame.node.IsSequence()) continue;
        if (frame.depth + 1 > limits.max_depth) {
            return ErrorAt(frame.node.Mark(), TooDeep(limits));
        }
        if (frame.node.IsMap()) {
            for (auto it = frame.node.begin(); it != frame.node.end(); ++it) {
                stack.push_back({it->first, frame.depth + 1});
                stack.push_back({it->second, frame.depth + 1});
            }
        } else {
            for (auto it = frame.node.begin(); it != frame.node.end(); ++it) {
                stack.push_back({*it, frame.depth + 1});
            }
        }
    }
    return std::nullopt;
}

}  // namespace

std::expected<YAML::Node, YamlError> ParseYaml(std::string_view text, const YamlLimits& limits) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(text));
    } catch (const YAML::DeepRecursion& e) {
        return std::unexpected(ErrorAt(e.mark, TooDeep(limits)));
    } catch (const YAML::Exception& e) {
        return std::unexpected(ErrorAt(e.mark, SyntaxError(text, e.mark, e.msg)));
    }
    if (auto error = CheckBounds(root, limits)) return std::unexpected(std::move(*error));
    return root;
}

// ---- YamlTree -------------------------------------------------------------------------------

YamlNode::YamlNode(const YamlTree* tree, uint32_t index) : tree_(tree), index_(index) {
    // An alias is the node it refers to: its kind, text, position and children.
    if (tree_ != nullptr && tree_->entries_[index_].kind == Kind::kAlias) {
        index_ = tree_->entries_[index_].begin;
    }
}

YamlNode::Kind YamlNode::kind() const {
    return tree_ == nullptr ? Kind::kUndefined : tree_->entries_[index_].kind;
}

std::string_view YamlNode::Scalar() const {
    if (!IsScalar()) return {};
    const auto& entry = tree_->entries_[index_];
    return std::string_view(tree_->text_).substr(entry.begin, entry.size);
}

std::string_view YamlNode::Tag() const {
    if (tree_ == nullptr) return {};
    return tree_->tags_[tree_->entries_[index_].tag];
}

int YamlNode::line() const {
    return tree_ == nullptr ? 0 : tree_->entries_[index_].line;
}

int YamlNode::column() const {
    return tree_ == nullptr ? 0 : tree_->entries_[index_].column;
}

size_t YamlNode::size() const {
    if (IsSequence()) return tree_->entries_[index_].size;
    if (IsMap()) return tree_->entries_[index_].size / 2;
    return 0;
}

YamlNode YamlNode::operator[](size_t i) const {
    return YamlNode(tree_, tree_->children_[tree_->entries_[index_].begin + i]);
}

YamlNode YamlNode::Key(size_t i) const {
    return YamlNode(tree_, tree_->children_[tree_->entries_[index_].begin + 2 * i]);
}

YamlNode YamlNode::Value(size_t i) const {
    return YamlNode(tree_, tree_->children_[tree_->entries_[index_].begin + 2 * i + 1]);
}

YamlNode YamlNode::Find(std::string_view key) const {
    for (size_t i = 0; i < size(); ++i) {
        YamlNode k = Key(i);
        if (k.IsScalar() && k.Scalar() == key) return Value(i);
    }
    return YamlNode();
}

// Builds a YamlTree from yaml-cpp's parser events. A container's children are collected on
// one stack (`pending_`) while it is open and copied to the tree's children when it closes,
// so each container's children sit side by side.
class YamlTreeBuilder final : public YAML::EventHandler {
  public:
    explicit YamlTreeBuilder(YamlTree& tree) : tree_(tree) { tree_.tags_.push_back("?"); }

    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}

    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        Add(YamlNode::Kind::kNull, mark, anchor, 0);
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        // yaml-cpp's parser has refused an alias to an anchor it has not seen.
        uint32_t target = anchor < anchors_.size() ? anchors_[anchor] : 0;
        uint32_t index = Add(YamlNode::Kind::kAlias, mark, YAML::NullAnchor, 0);
        tree_.entries_[index].begin = target;
    }
    void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  const std::string& value) override {
        uint32_t index = Add(YamlNode::Kind::kScalar, mark, anchor, TagIndex(tag));
        auto& entry = tree_.entries_[index];
        entry.begin = Checked(tree_.text_.size());
        entry.size = Checked(value.size());
        tree_.text_ += value;
        Checked(tree_.text_.size());
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                         YAML::EmitterStyle::value) override {
        Open(Add(YamlNode::Kind::kSequence, mark, anchor, TagIndex(tag)));
    }
    void OnSequenceEnd() override { Close(); }
    void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                    YAML::EmitterStyle::value) override {
        Open(Add(YamlNode::Kind::kMap, mark, anchor, TagIndex(tag)));
    }
    void OnMapEnd() override { Close(); }

    // After the document: an empty one is a null root without a position.
    void Finish() {
        if (tree_.entries_.empty()) tree_.entries_.push_back({});
    }

  private:
    struct OpenContainer {
        uint32_t entry;
        size_t first_child;  // in pending_
    };

    // Indexes and offsets are 32-bit: a document past 4 GiB is refused.
    static uint32_t Checked(size_t value) {
        if (value >= std::numeric_limits<uint32_t>::max()) {
            throw YAML::ParserException(YAML::Mark::null_mark(), "the document is too large");
        }
        return static_cast<uint32_t>(value);
    }

    uint16_t TagIndex(const std::string& tag) {
        for (size_t i = 0; i < tree_.tags_.size(); ++i) {
            if (tree_.tags_[i] == tag) return static_cast<uint16_t>(i);
        }
        if (tree_.tags_.size() > std::numeric_limits<uint16_t>::max()) {
            throw YAML::ParserException(YAML::Mark::null_mark(), "too many different tags");
        }
        tree_.tags_.push_back(tag);
        return static_cast<uint16_t>(tree_.tags_.size() - 1);
    }

    uint32_t Add(YamlNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor, uint16_t tag) {
        uint32_t index = Checked(tree_.entries_.size());
        YamlTree::Entry entry;
        entry.kind = kind;
        entry.tag = tag;
        if (mark.line >= 0) {
            entry.line = mark.line + 1;
            entry.column = mark.column + 1;
        }
        tree_.entries_.push_back(entry);
        if (anchor != YAML::NullAnchor) {
            if (anchors_.size() <= anchor) anchors_.resize(anchor + 1, 0);
            anchors_[anchor] = index;
        }
        if (!open_.empty()) pending_.push_back(index);
        return index;
    }

    void Open(uint32_t entry) { open_.push_back({entry, pending_.size()}); }

    void Close() {
        OpenContainer top = open_.back();
        open_.pop_back();
        auto& entry = tree_.entries_[top.entry];
        entry.begin = Checked(tree_.children_.size());
        entry.size = Checked(pending_.size() - top.first_child);
        tree_.children_.insert(tree_.children_.end(),
                               pending_.begin() + static_cast<std::ptrdiff_t>(top.first_child),
                               pending_.end());
        pending_.resize(top.first_child);
    }

    YamlTree& tree_;
    std::vector<uint32_t> anchors_;  // anchor id -> entry
    std::vector<OpenContainer> open_;
    std::vector<uint32_t> pending_;
};

namespace {

// A read-only std::streambuf over text that is not copied.
class ViewBuffer final : public std::streambuf {
  public:
    explicit ViewBuffer(std::string_view text) {
        char* begin = const_cast<char*>(text.data());
        setg(begin, begin, begin + text.size());
    }
};

// CheckBounds for a YamlTree.
std::optional<YamlError> CheckTreeBounds(const YamlNode& root, const YamlLimits& limits) {
    struct Frame {
        YamlNode node;
        int depth;
    };
    std::vector<Frame> stack;
    stack.push_back({root, 0});
    int64_t nodes = 0;
    while (!stack.empty()) {
        Frame frame = stack.back();
        stack.pop_back();
        YamlError error;
        error.line = frame.node.line();
        error.column = frame.node.column();
        if (++nodes > limits.max_nodes) {
            error.message = TooManyNodes(limits);
            return error;
        }
        if (!frame.node.IsMap() && !frame.node.IsSequence()) continue;
        if (frame.depth + 1 > limits.max_depth) {
            error.message = TooDeep(limits);
            return error;
        }
        if (frame.node.IsMap()) {
            for (size_t i = 0; i < frame.node.size(); ++i) {
                stack.push_back({frame.node.Key(i), frame.depth + 1});
                stack.push_back({frame.node.Value(i), frame.depth + 1});
            }
        } else {
            for (size_t i = 0; i < frame.node.size(); ++i) {
                stack.push_back({frame.node[i], frame.depth + 1});
            }
        }
    }
    return std::nullopt;
}

}  // namespace

std::expected<YamlTree, YamlError> ParseYamlTree(std::string_view text, const YamlLimits& limits) {
    YamlTree tree;
    try {
        ViewBuffer buffer(text);
        std::istream stream(&buffer);
        YAML::Parser parser(stream);
        YamlTreeBuilder builder(tree);
        parser.HandleNextDocument(builder);
        builder.Finish();
    } catch (const YAML::DeepRecursion& e) {
        return std::unexpected(ErrorAt(e.mark, TooDeep(limits)));
    } catch (const YAML::Exception& e) {
        return std::unexpected(ErrorAt(e.mark, SyntaxError(text, e.mark, e.msg)));
    }
    if (auto error = CheckTreeBounds(tree.root(), limits))
        return std::unexpected(std::move(*error));
    return tree;
}

}  // namespace strowger
