#include "model/template.hpp"

#include <gtest/gtest.h>

#include <map>

namespace strowger::model {
namespace {

std::string Render(const std::string& text, const std::string& input,
                   const std::map<std::string, std::string>& vars) {
    return Template::Parse(text).Render(
        [&](const Template::Segment& s) -> std::optional<std::string_view> {
            if (s.kind == Template::Segment::Kind::kInput) return std::string_view(input);
            auto it = vars.find(s.text);
            if (it == vars.end()) return std::nullopt;
            return std::string_view(it->second);
        });
}

TEST(TemplateTest, SubstitutesInputAndVariables) {
    EXPECT_EQ(Render("A {{input}} B {{x}} C", "in", {{"x", "X"}}), "A in B X C");
}

TEST(TemplateTest, ValuesAreNeverRescanned) {
    EXPECT_EQ(Render("{{input}}|{{x}}", "{{x}}", {{"x", "{{input}}"}}), "{{x}}|{{input}}");
}

TEST(TemplateTest, UnknownAndMalformedPlaceholdersStayAsWritten) {
    EXPECT_EQ(Render("{{nope}} {{ x }} {{x y}} {{}} {{1a}} {x} {{x", "", {{"x", "X"}}),
              "{{nope}} X {{x y}} {{}} {{1a}} {x} {{x");
}

TEST(TemplateTest, NamesMayContainDotsAndDashes) {
    auto t = Template::Parse("{{a.b}}{{c-d}}{{_e}}");
    ASSERT_EQ(t.segments().size(), 3u);
    EXPECT_EQ(t.segments()[0].text, "a.b");
    EXPECT_EQ(t.segments()[1].text, "c-d");
    EXPECT_FALSE(t.UsesInput());
}

}  // namespace
}  // namespace strowger::model
