#include "core/yaml.hpp"

#include <yaml-cpp/depthguard.h>

#include <optional>
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
            return ErrorAt(frame.node.Mark(),
                           "too many nodes once aliases are expanded (more than " +
                               std::to_string(limits.max_nodes) + ")");
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
            return ErrorAt(frame.node.Mark(),
                           "nested deeper than " + std::to_string(limits.max_depth) + " levels");
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
        return std::unexpected(
            ErrorAt(e.mark, "nested deeper than " + std::to_string(limits.max_depth) + " levels"));
    } catch (const YAML::Exception& e) {
        return std::unexpected(ErrorAt(e.mark, "syntax error: " + e.msg));
    }
    if (auto error = CheckBounds(root, limits)) return std::unexpected(std::move(*error));
    return root;
}

}  // namespace strowger
