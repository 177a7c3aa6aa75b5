#include "model/template.hpp"

namespace strowger::model {
namespace {

bool IsNameStart(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsNameChar(char c) {
    return IsNameStart(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

}  // namespace

Template Template::Parse(std::string_view text) {
    Template t;
    t.source_ = std::string(text);
    std::string literal;
    size_t i = 0;
    while (i < text.size()) {
        if (text.compare(i, 2, "{{") == 0) {
            size_t j = i + 2;
            while (j < text.size() && text[j] == ' ') ++j;
            size_t name_start = j;
            if (j < text.size() && IsNameStart(text[j])) {
                while (j < text.size() && IsNameChar(text[j])) ++j;
                size_t name_end = j;
                while (j < text.size() && text[j] == ' ') ++j;
                if (text.compare(j, 2, "}}") == 0) {
                    if (!literal.empty()) {
                        t.segments_.push_back(
                            {Segment::Kind::kLiteral, std::move(literal), {}, {}});
                        literal.clear();
                    }
                    std::string name(text.substr(name_start, name_end - name_start));
                    Segment segment;
                    segment.kind =
                        name == "input" ? Segment::Kind::kInput : Segment::Kind::kVariable;
                    segment.text = std::move(name);
                    segment.raw = std::string(text.substr(i, j + 2 - i));
                    t.segments_.push_back(std::move(segment));
                    i = j + 2;
                    continue;
                }
            }
        }
        literal += text[i];
        ++i;
    }
    if (!literal.empty()) {
        t.segments_.push_back({Segment::Kind::kLiteral, std::move(literal), {}, {}});
    }
    return t;
}

bool Template::UsesInput() const {
    for (const auto& segment : segments_) {
        if (segment.kind == Segment::Kind::kInput) return true;
    }
    return false;
}

}  // namespace strowger::model
