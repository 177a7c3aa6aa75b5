#include "automation/schedule.hpp"

#include <gtest/gtest.h>

namespace strowger::automation {
namespace {

SystemTime T(std::string_view text) {
    auto parsed = ParseRfc3339(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed.value_or(SystemTime{});
}

std::string Next(const Schedule& s, std::string_view after) {
    auto next = s.NextAfter(T(after));
    return next ? FormatRfc3339(*next) : "none";
}

Schedule Cron(std::string_view expr, std::string_view tz = "") {
    auto s = Schedule::Cron(expr, tz);
    EXPECT_TRUE(s.has_value()) << expr << ": " << (s ? "" : s.error().message());
    return s.value_or(Schedule{});
}

std::string CronError(std::string_view expr, std::string_view tz = "") {
    auto s = Schedule::Cron(expr, tz);
    EXPECT_FALSE(s.has_value()) << expr;
    return s ? "" : s.error().message();
}

TEST(ScheduleTest, CronFieldsAndAliases) {
    EXPECT_EQ(Next(Cron("0 8 * * *"), "2026-12-07T07:59:59Z"), "2026-12-07T08:00:00.000000Z");
    EXPECT_EQ(Next(Cron("0 8 * * *"), "2026-12-07T08:00:00Z"), "2026-12-08T08:00:00.000000Z");
    EXPECT_EQ(Next(Cron("*/15 * * * *"), "2026-12-07T10:07:00Z"), "2026-12-07T10:15:00.000000Z");
    EXPECT_EQ(Next(Cron("0 9 * * mon-fri"), "2026-12-05T12:00:00Z"),  // a Saturday
              "2026-12-07T09:00:00.000000Z");
    EXPECT_EQ(Next(Cron("0 0 1 jan *"), "2026-06-01T00:00:00Z"), "2027-01-01T00:00:00.000000Z");
    EXPECT_EQ(Next(Cron("0 0 29 2 *"), "2026-03-01T00:00:00Z"), "2028-02-29T00:00:00.000000Z");
    // Day of month and day of week both restricted: either matches (cron(8)).
    EXPECT_EQ(Next(Cron("0 0 13 * 5"), "2026-12-07T00:00:00Z"), "2026-12-11T00:00:00.000000Z");
    // Sunday as 7.
    EXPECT_EQ(Next(Cron("0 0 * * 7"), "2026-12-07T00:00:00Z"), "2026-12-13T00:00:00.000000Z");
    EXPECT_EQ(Next(Cron("@hourly"), "2026-12-07T10:07:00Z"), "2026-12-07T11:00:00.000000Z");
    EXPECT_EQ(Next(Cron("@daily"), "2026-12-07T10:07:00Z"), "2026-12-08T00:00:00.000000Z");
    EXPECT_EQ(Next(Cron("@weekly"), "2026-12-07T10:07:00Z"), "2026-12-13T00:00:00.000000Z");
    EXPECT_EQ(Next(Cron("@monthly"), "2026-12-07T10:07:00Z"), "2027-01-01T00:00:00.000000Z");
    EXPECT_EQ(Next(Cron("@yearly"), "2026-12-07T10:07:00Z"), "2027-01-01T00:00:00.000000Z");
    EXPECT_EQ(Next(Cron("@annually"), "2026-12-07T10:07:00Z"), "2027-01-01T00:00:00.000000Z");
    EXPECT_EQ(Next(Cron("5-10/5 1,3 * * *"), "2026-12-07T01:06:00Z"),
              "2026-12-07T01:10:00.000000Z");
}

TEST(ScheduleTest, BadCronExpressionsSayWhatIsWrong) {
    EXPECT_EQ(CronError("0 8 * *"),
              "\"0 8 * *\" has 4 fields; a cron expression has 5 (minute hour day-of-month "
              "month day-of-week)");
    EXPECT_EQ(CronError("0 8 32 * *"), "field 3 (day of month): 32 is out of range 1-31");
    EXPECT_EQ(CronError("60 * * * *"), "field 1 (minute): 60 is out of range 0-59");
    EXPECT_EQ(CronError("0 x * * *"), "field 2 (hour): \"x\" is not a number");
    EXPECT_EQ(CronError("0 0 * foo *"), "field 4 (month): \"foo\" is not a number or a name");
    EXPECT_EQ(CronError("*/0 * * * *"), "field 1 (minute): step \"0\" must be 1-59");
    EXPECT_EQ(CronError("0 5-1 * * *"), "field 2 (hour): range \"5-1\" ends before it starts");
    EXPECT_EQ(CronError("0 0 30 2 *"), "\"0 0 30 2 *\" never matches a date");
    EXPECT_EQ(CronError("@reboot"),
              "unknown alias \"@reboot\" (known: @yearly, @annually, @monthly, @weekly, "
              "@daily, @midnight, @hourly)");
    EXPECT_EQ(CronError("0 8 * * *", "Mars/Olympus"),
              "unknown time zone \"Mars/Olympus\" (an IANA name such as Europe/Berlin)");
}

TEST(ScheduleTest, JsonShapesAndTheirErrors) {
    const SystemTime now = T("2026-12-07T10:00:00Z");
    auto parse = [&](std::string_view text) {
        return Schedule::FromJson(ParseJson(text).value(), now);
    };
    auto cron = parse(R"({"kind":"cron","expr":"0 8 * * *","tz":"Europe/Berlin"})");
    ASSERT_TRUE(cron.has_value());
    EXPECT_EQ(FormatRfc3339(*cron->NextAfter(now)), "2026-12-08T07:00:00.000000Z");
    EXPECT_EQ(JsonText(cron->ToJson()),
              R"({"kind":"cron","expr":"0 8 * * *","tz":"Europe/Berlin"})");
    auto every = parse(R"({"kind":"every","every_secs":3600})");
    ASSERT_TRUE(every.has_value());
    EXPECT_EQ(FormatRfc3339(*every->NextAfter(T("2026-12-07T10:30:00Z"), now)),
              "2026-12-07T11:00:00.000000Z");
    auto at = parse(R"({"kind":"at","at":"2026-12-24T18:00:00Z"})");
    ASSERT_TRUE(at.has_value());
    EXPECT_EQ(FormatRfc3339(*at->NextAfter(now)), "2026-12-24T18:00:00.000000Z");
    EXPECT_FALSE(at->NextAfter(T("2026-12-24T18:00:00Z")).has_value());

    EXPECT_EQ(parse(R"({"kind":"every","every_secs":30})").error().message(),
              "schedule.every_secs: every_secs must be 60 to 86400 (a minute to a day), not 30");
    EXPECT_EQ(parse(R"({"kind":"every","every_secs":86401})").error().message(),
              "schedule.every_secs: every_secs must be 60 to 86400 (a minute to a day), not "
              "86401");
    EXPECT_EQ(parse(R"({"kind":"at","at":"2026-12-01T00:00:00Z"})").error().message(),
              "schedule.at: at 2026-12-01T00:00:00.000000Z is in the past");
    EXPECT_EQ(parse(R"({"kind":"at","at":"2028-01-01T00:00:00Z"})").error().message(),
              "schedule.at: at 2028-01-01T00:00:00.000000Z is more than a year ahead");
    EXPECT_EQ(parse(R"({"kind":"cron","expr":"0 8 * * *","tz":"Nowhere/City"})").error().message(),
              "schedule.tz: unknown time zone \"Nowhere/City\" (an IANA name such as "
              "Europe/Berlin)");
    EXPECT_EQ(parse(R"({"kind":"cron","expr":"0 99 * * *"})").error().message(),
              "schedule.expr: field 2 (hour): 99 is out of range 0-23");
    EXPECT_EQ(parse(R"({"kind":"weekly"})").error().message(),
              "schedule.kind: expected \"cron\", \"every\" or \"at\", not \"weekly\"");
    EXPECT_EQ(parse(R"({"kind":"cron"})").error().message(),
              "schedule.expr: a cron schedule needs an expr string");
}

TEST(ScheduleTest, CliSpecs) {
    const SystemTime now = T("2026-12-07T10:00:00Z");
    auto every = Schedule::FromSpec("every 30m", "", now);
    ASSERT_TRUE(every.has_value());
    EXPECT_EQ(every->every_secs(), 1800);
    EXPECT_EQ(Schedule::FromSpec("every 2h", "", now)->every_secs(), 7200);
    EXPECT_EQ(Schedule::FromSpec("every 1d", "", now)->every_secs(), 86400);
    EXPECT_EQ(Schedule::FromSpec("every 10s", "", now).error().message(),
              "every_secs must be 60 to 86400 (a minute to a day), not 10");
    EXPECT_EQ(Schedule::FromSpec("every soon", "", now).error().message(),
              "\"soon\" is not a duration (e.g. 90s, 30m, 2h, 1d)");
    auto at = Schedule::FromSpec("at 2026-12-08T00:00:00Z", "", now);
    ASSERT_TRUE(at.has_value());
    EXPECT_EQ(at->kind(), Schedule::Kind::kAt);
    auto cron = Schedule::FromSpec("0 8 * * *", "America/New_York", now);
    ASSERT_TRUE(cron.has_value());
    EXPECT_EQ(cron->Describe(), "cron 0 8 * * * (America/New_York)");
}

// Fixed instants around the 2026 transitions: New York springs forward on 8 March (02:00 EST ->
// 03:00 EDT) and falls back on 1 November (02:00 EDT -> 01:00 EST); Berlin on 29 March (02:00
// CET -> 03:00 CEST) and 25 October (03:00 CEST -> 02:00 CET).
TEST(ScheduleTest, DstNewYork) {
    // 02:30 does not exist on 8 March: the fire is at the end of the gap (03:00 EDT), once.
    Schedule half_two = Cron("30 2 * * *", "America/New_York");
    EXPECT_EQ(Next(half_two, "2026-03-07T12:00:00Z"), "2026-03-08T07:00:00.000000Z");
    EXPECT_EQ(Next(half_two, "2026-03-08T07:00:00Z"), "2026-03-09T06:30:00.000000Z");
    EXPECT_EQ(Next(half_two, "2026-03-06T12:00:00Z"), "2026-03-07T07:30:00.000000Z");  // EST
    // Every 15 minutes through the gap: 01:45 EST, then 03:00 EDT (the gap's times collapse
    // into one fire at its end), then 03:15.
    Schedule quarter = Cron("*/15 * * * *", "America/New_York");
    EXPECT_EQ(Next(quarter, "2026-03-08T06:30:00Z"), "2026-03-08T06:45:00.000000Z");
    EXPECT_EQ(Next(quarter, "2026-03-08T06:45:00Z"), "2026-03-08T07:00:00.000000Z");
    EXPECT_EQ(Next(quarter, "2026-03-08T07:00:00Z"), "2026-03-08T07:15:00.000000Z");
    // 01:30 happens twice on 1 November: it fires at the first (EDT) only.
    Schedule half_one = Cron("30 1 * * *", "America/New_York");
    EXPECT_EQ(Next(half_one, "2026-10-31T12:00:00Z"), "2026-11-01T05:30:00.000000Z");
    EXPECT_EQ(Next(half_one, "2026-11-01T05:30:00Z"), "2026-11-02T06:30:00.000000Z");
    // Hourly across the repeated hour: 01:00 EDT, then 02:00 EST (01:00 EST is the same
    // wall-clock time, already fired).
    Schedule hourly = Cron("0 * * * *", "America/New_York");
    EXPECT_EQ(Next(hourly, "2026-11-01T04:30:00Z"), "2026-11-01T05:00:00.000000Z");
    EXPECT_EQ(Next(hourly, "2026-11-01T05:00:00Z"), "2026-11-01T07:00:00.000000Z");
    // Asked from inside the repeated hour (01:10 EST), the next is still 02:00 EST.
    EXPECT_EQ(Next(hourly, "2026-11-01T06:10:00Z"), "2026-11-01T07:00:00.000000Z");
    // 08:00 local keeps its wall-clock time across the change: 12:00Z in EDT, 13:00Z in EST.
    Schedule eight = Cron("0 8 * * *", "America/New_York");
    EXPECT_EQ(Next(eight, "2026-10-31T13:00:00Z"), "2026-11-01T13:00:00.000000Z");
    EXPECT_EQ(Next(eight, "2026-10-30T13:00:00Z"), "2026-10-31T12:00:00.000000Z");
}

TEST(ScheduleTest, DstBerlin) {
    Schedule half_two = Cron("30 2 * * *", "Europe/Berlin");
    // 29 March: 02:30 does not exist; the gap ends at 03:00 CEST = 01:00Z.
    EXPECT_EQ(Next(half_two, "2026-03-28T12:00:00Z"), "2026-03-29T01:00:00.000000Z");
    EXPECT_EQ(Next(half_two, "2026-03-29T01:00:00Z"), "2026-03-30T00:30:00.000000Z");
    // 25 October: 02:30 happens twice (CEST, then CET): the first only.
    EXPECT_EQ(Next(half_two, "2026-10-24T12:00:00Z"), "2026-10-25T00:30:00.000000Z");
    EXPECT_EQ(Next(half_two, "2026-10-25T00:30:00Z"), "2026-10-26T01:30:00.000000Z");
    // Every 30 minutes through the repeated hour: 02:00 and 02:30 CEST, then 03:00 CET.
    Schedule half_hourly = Cron("*/30 * * * *", "Europe/Berlin");
    EXPECT_EQ(Next(half_hourly, "2026-10-24T23:45:00Z"), "2026-10-25T00:00:00.000000Z");
    EXPECT_EQ(Next(half_hourly, "2026-10-25T00:00:00Z"), "2026-10-25T00:30:00.000000Z");
    EXPECT_EQ(Next(half_hourly, "2026-10-25T00:30:00Z"), "2026-10-25T02:00:00.000000Z");
}

TEST(ScheduleTest, EveryAndAtIgnoreDst) {
    const SystemTime anchor = T("2026-03-08T05:00:00Z");
    auto every = Schedule::Every(3600);
    ASSERT_TRUE(every.has_value());
    EXPECT_EQ(FormatRfc3339(*every->NextAfter(T("2026-03-08T06:00:00Z"), anchor)),
              "2026-03-08T07:00:00.000000Z");
    EXPECT_EQ(FormatRfc3339(*every->NextAfter(T("2026-03-08T04:00:00Z"), anchor)),
              "2026-03-08T06:00:00.000000Z");
}

}  // namespace
}  // namespace strowger::automation
