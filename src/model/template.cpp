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
                        Segment segment;
                        segment.text = std::move(literal);
                        t.segments_.push_back(std::move(segment));
                        literal.clear();
                    }
                    std::string name(text.substr(name_start, name_end - name_start));
                    Segment segment;
                    // "a.b.c": the name "a" and the path ["b", "c"].
                    size_t dot = name.find('.');
                    if (dot != std::string::npos) {
                        size_t start = dot + 1;
                        while (start <= name.size()) {
                            size_t next = name.find('.', start);
                            if (next == std::string::npos) next = name.size();
                            segment.path.push_back(name.substr(start, next - start));
                            start = next + 1;
                        }
                        name.resize(dot);
                    }
                    if (name == "input") {
                        segment.kind = Segment::Kind::kInput;
                    } else if (name == "run" && !segment.path.empty() &&
                               segment.path.front() == "input") {
                        segment.kind = Segment::Kind::kRunInput;
                        segment.path.erase(segment.path.begin());
                    } else {
                        segment.kind = Segment::Kind::kVariable;
                    }
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
        Segment segment;
        segment.text = std::move(literal);
        t.segments_.push_back(std::move(segment));
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
