#include "model/inputs.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace strowger::model {
namespace {

std::vector<InputSpec> Declared() {
    InputSpec amount{"amount", "number", true, std::nullopt, "order value in EUR"};
    InputSpec customer{"customer", "string", false, boost::json::value("anonymous"), ""};
    InputSpec flags{"flags", "object", false, std::nullopt, ""};
    InputSpec urgent{"urgent", "boolean", false, boost::json::value(false), ""};
    return {amount, customer, flags, urgent};
}

TEST(InputsTest, WithoutDeclaredInputsTheTextIsTheInput) {
    auto applied = ApplyInputs({}, GivenInput{"plain text", false, {}});
    ASSERT_TRUE(applied.ok()) << applied.Message();
    EXPECT_EQ(applied.input, "plain text");
    auto set = ApplyInputs({}, GivenInput{"", false, {"a=1"}});
    ASSERT_FALSE(set.ok());
    EXPECT_NE(set.Message().find("declares no inputs"), std::string::npos);
}

TEST(InputsTest, JsonObjectSetsAndDefaultsMakeOneObjectWithSortedKeys) {
    auto applied = ApplyInputs(Declared(), GivenInput{R"({"urgent": true, "amount": 12})",
                                                      true,
                                                      {"amount=120000.5", "flags={\"a\":[1]}"}});
    ASSERT_TRUE(applied.ok()) << applied.Message();
    EXPECT_EQ(applied.input,
              R"({"amount":120000.5,"customer":"anonymous","flags":{"a":[1]},"urgent":true})");
}

TEST(InputsTest, SetValuesAreReadByTheirType) {
    auto applied =
        ApplyInputs(Declared(), GivenInput{"", false, {"amount=7", "customer=42", "urgent=true"}});
    ASSERT_TRUE(applied.ok()) << applied.Message();
    EXPECT_EQ(applied.input, R"({"amount":7,"customer":"42","urgent":true})");
}

TEST(InputsTest, EveryProblemIsReportedNamingItsInput) {
    auto applied = ApplyInputs(
        Declared(), GivenInput{R"({"custmer": "x", "flags": [1]})", true, {"urgent=maybe", "x"}});
    ASSERT_FALSE(applied.ok());
    std::string message = applied.Message();
    EXPECT_NE(message.find("no input named \"custmer\" (did you mean \"customer\"?)"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("input \"flags\" must be an object, got an array"), std::string::npos)
        << message;
    EXPECT_NE(message.find("--set: input \"urgent\" must be a boolean, got \"maybe\""),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("--set \"x\": expected name=value"), std::string::npos) << message;
    EXPECT_NE(message.find("input \"amount\" (number) is required: order value in EUR"),
              std::string::npos)
        << message;
    ASSERT_EQ(applied.problems.size(), 5u);
    EXPECT_EQ(applied.problems[0].input, "custmer");
    EXPECT_EQ(applied.problems[1].input, "flags");
}

TEST(InputsTest, TextFillsTheOnlyInputByItsType) {
    std::vector<InputSpec> one = {InputSpec{"count", "number", true, std::nullopt, ""}};
    auto ok = ApplyInputs(one, GivenInput{"3", false, {}});
    ASSERT_TRUE(ok.ok()) << ok.Message();
    EXPECT_EQ(ok.input, R"({"count":3})");
    auto bad = ApplyInputs(one, GivenInput{"three", false, {}});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.problems[0].input, "count");
    std::vector<InputSpec> text = {InputSpec{"topic", "string", false, std::nullopt, ""}};
    auto topic = ApplyInputs(text, GivenInput{"quantum batteries", false, {}});
    ASSERT_TRUE(topic.ok());
    EXPECT_EQ(topic.input, R"({"topic":"quantum batteries"})");
    auto several = ApplyInputs(Declared(), GivenInput{"just text", false, {}});
    ASSERT_FALSE(several.ok());
    EXPECT_NE(several.Message().find("give them as a JSON object"), std::string::npos);
}

TEST(InputsTest, NoValueAndNoDefaultLeavesAnOptionalInputOut) {
    auto applied = ApplyInputs(Declared(), GivenInput{"", false, {"amount=1"}});
    ASSERT_TRUE(applied.ok()) << applied.Message();
    EXPECT_EQ(applied.input, R"({"amount":1,"customer":"anonymous","urgent":false})");
}

}  // namespace
}  // namespace strowger::model
