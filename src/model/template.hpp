// Prompt templates: `{{input}}` and `{{name}}` placeholders, substituted in a single pass.
//
// A template is parsed once (at compile time) into literal text and placeholders. Rendering
// appends each segment in order; a value inserted for a placeholder is never scanned again, so
// a model output containing "{{other}}" stays literal text. A placeholder with no value
// renders as written (LibreFang leaves unknown variables untouched).
//
// Placeholder syntax: "{{" optional spaces, a name of [A-Za-z0-9_.-] starting with a letter or
// '_', optional spaces, "}}". Anything else is literal.
//
// Thread-safety: immutable after Parse.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strowger::model {

// The nodes whose output_var sets a variable and that a placeholder may read, latest first: a
// view of the tail of one list shared by every placeholder of the variable. (Copies would hold
// n²/2 entries where each of n steps sets and reads one variable, as a refinement loop does.)
class SourceList {
  public:
    SourceList() = default;
    // all[offset], all[offset + 1], ...; `all` is never changed afterwards.
    SourceList(std::shared_ptr<const std::vector<int>> all, size_t offset)
        : all_(std::move(all)), offset_(offset) {}

    const int* begin() const { return all_ ? all_->data() + offset_ : nullptr; }
    const int* end() const { return all_ ? all_->data() + all_->size() : nullptr; }
    size_t size() const { return static_cast<size_t>(end() - begin()); }
    bool empty() const { return size() == 0; }
    int operator[](size_t i) const { return begin()[i]; }
    std::vector<int> ToVector() const { return std::vector<int>(begin(), end()); }

  private:
    std::shared_ptr<const std::vector<int>> all_;
    size_t offset_ = 0;
};

class Template {
  public:
    struct Segment {
        // kInput: {{input}}, {{input.a.b}} — the node's input (a field of it, parsed as JSON).
        // kVariable: {{name}} — what Compile resolves it to: a variable (`sources`), or
        // kNode / kRunInput / kExtra after resolution.
        // kRunInput: {{run.input}}, {{run.input.a}}, or a declared input {{amount}} (path
        // ["amount"]). kNode: {{node_id}}, {{node_id.output}}, {{node_id.a.b}}: a node's
        // output (`node`). kExtra: a name the renderer supplies ({{item}}, {{index}},
        // {{event}}).
        enum class Kind { kLiteral, kInput, kVariable, kRunInput, kNode, kExtra };
        Kind kind = Kind::kLiteral;
        std::string text;  // literal text, or the name before the first '.'
        std::string raw;   // the placeholder as written, rendered when there is no value
        // For variables: earlier nodes whose output_var sets it, latest first (filled by
        // Compile).
        SourceList sources;
        // The fields after the name ("{{plan.tasks}}": ["tasks"]): a field of a JSON value.
        std::vector<std::string> path;
        int node = -1;  // kNode
    };

    Template() = default;
    static Template Parse(std::string_view text);

    const std::vector<Segment>& segments() const { return segments_; }
    std::vector<Segment>& mutable_segments() { return segments_; }
    const std::string& source() const { return source_; }
    bool UsesInput() const;

    // Renders the template. `lookup(segment)` returns the value of a placeholder segment
    // (kInput or kVariable), or std::nullopt to leave it as written.
    template <typename Lookup>
    std::string Render(Lookup&& lookup) const {
        std::string out;
        out.reserve(source_.size() + 64);
        for (const auto& segment : segments_) {
            if (segment.kind == Segment::Kind::kLiteral) {
                out += segment.text;
            } else if (std::optional<std::string_view> value = lookup(segment)) {
                out += *value;
            } else {
                out += segment.raw;
            }
        }
        return out;
    }

  private:
    std::string source_;
    std::vector<Segment> segments_;
};

}  // namespace strowger::model
