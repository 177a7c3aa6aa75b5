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

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strowger::model {

class Template {
  public:
    struct Segment {
        enum class Kind { kLiteral, kInput, kVariable };
        Kind kind = Kind::kLiteral;
        std::string text;  // literal text, or the variable name
        std::string raw;   // the placeholder as written, rendered when there is no value
        // For variables: nodes whose output_var sets it, latest first (filled by Compile).
        std::vector<int> sources;
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
