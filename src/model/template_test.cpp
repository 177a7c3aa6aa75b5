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
    // A dotted name is a name and a path of fields into its JSON value.
    EXPECT_EQ(t.segments()[0].text, "a");
    EXPECT_EQ(t.segments()[0].path, std::vector<std::string>{"b"});
    EXPECT_EQ(t.segments()[1].text, "c-d");
    EXPECT_FALSE(t.UsesInput());
}

TEST(TemplateTest, InputAndRunInputTakeFieldPaths) {
    auto t = Template::Parse("{{input}} {{input.a.b}} {{run.input}} {{run.input.x}} {{run.y}}");
    using Kind = Template::Segment::Kind;
    ASSERT_EQ(t.segments().size(), 9u);
    EXPECT_EQ(t.segments()[0].kind, Kind::kInput);
    EXPECT_TRUE(t.segments()[0].path.empty());
    EXPECT_EQ(t.segments()[2].kind, Kind::kInput);
    EXPECT_EQ(t.segments()[2].path, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(t.segments()[4].kind, Kind::kRunInput);
    EXPECT_TRUE(t.segments()[4].path.empty());
    EXPECT_EQ(t.segments()[6].kind, Kind::kRunInput);
    EXPECT_EQ(t.segments()[6].path, std::vector<std::string>{"x"});
    // run.y is not the run's input: a variable "run" with path ["y"].
    EXPECT_EQ(t.segments()[8].kind, Kind::kVariable);
}

}  // namespace
}  // namespace strowger::model
