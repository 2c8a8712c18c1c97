#include "core/log.h"

#include <gtest/gtest.h>

#include <string>

namespace edgecoder::core::log {
namespace {

TEST(LogTest, FormatLineBasicFields) {
  EXPECT_EQ(format_line(Level::info, "net", "listening", {{"port", 4301}, {"tls", false}}),
            "level=info sub=net event=listening port=4301 tls=false");
  EXPECT_EQ(format_line(Level::warn, "core", "start", {}), "level=warn sub=core event=start");
  EXPECT_EQ(format_line(Level::error, "a", "b", {{"ratio", 0.5}, {"n", -3L}, {"s", "x"}}),
            "level=error sub=a event=b ratio=0.500000 n=-3 s=x");
}

TEST(LogTest, FormatLineQuotesAndEscapes) {
  const std::string s = "std::string";
  EXPECT_EQ(format_line(Level::debug, "x", "y",
                        {{"space", "a b"},
                         {"quote", "say \"hi\""},
                         {"eq", "k=v"},
                         {"empty", ""},
                         {"null", static_cast<const char*>(nullptr)},
                         {"nl", "line1\nline2"},
                         {"cr_tab", "a\rb\tc"},
                         {"backslash_quoted", "a b\\c"},
                         {"backslash_plain", "a\\b"},
                         {"ctrl", std::string_view("a\x01z", 3)},
                         {"del", "a\x7f"},
                         {"utf8", "h\xc3\xa9llo"},
                         {"str", s}}),
            "level=debug sub=x event=y space=\"a b\" quote=\"say \\\"hi\\\"\" eq=\"k=v\" "
            "empty=\"\" null=\"\" nl=\"line1\\nline2\" cr_tab=\"a\\rb\\tc\" "
            "backslash_quoted=\"a b\\\\c\" backslash_plain=a\\b ctrl=\"a\\x01z\" "
            "del=\"a\\x7f\" utf8=h\xc3\xa9llo str=std::string");
}

TEST(LogTest, FormatLineCannotForgeFieldsOrLines) {
  // A hostile value must stay one field on one line.
  const std::string line =
      format_line(Level::info, "api", "request", {{"path", "/x level=error\nlevel=info fake=1"}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line, "level=info sub=api event=request path=\"/x level=error\\nlevel=info fake=1\"");
  // Subsystem and event are escaped as well.
  EXPECT_EQ(format_line(Level::info, "a b", "c\nd", {}), "level=info sub=\"a b\" event=\"c\\nd\"");
}

TEST(LogTest, ParseLevel) {
  EXPECT_EQ(parse_level("trace").value(), Level::trace);
  EXPECT_EQ(parse_level("DEBUG").value(), Level::debug);
  EXPECT_EQ(parse_level("Info").value(), Level::info);
  EXPECT_EQ(parse_level("warn").value(), Level::warn);
  EXPECT_EQ(parse_level("WARNING").value(), Level::warn);
  EXPECT_EQ(parse_level("error").value(), Level::error);
  EXPECT_EQ(parse_level("off").value(), Level::off);
  for (const char* bad : {"", "verbose", "err", "info "}) {
    auto r = parse_level(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().detail.find(std::string("'") + bad + "'"), std::string::npos)
        << r.error().detail;
  }
}

TEST(LogTest, LevelNamesRoundTrip) {
  for (Level l : {Level::trace, Level::debug, Level::info, Level::warn, Level::error, Level::off}) {
    EXPECT_EQ(parse_level(level_name(l)).value(), l);
  }
}

TEST(LogTest, WriteGoesToStderrFilteredByLevel) {
  init(Level::info);
  EXPECT_TRUE(enabled(Level::info));
  EXPECT_TRUE(enabled(Level::error));
  EXPECT_FALSE(enabled(Level::debug));
  EXPECT_FALSE(enabled(Level::off));

  ::testing::internal::CaptureStderr();
  info("test", "visible", {{"k", "v w"}});
  debug("test", "hidden");
  error("test", "bad", {{"code", 7}});
  std::string captured = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(captured,
            "level=info sub=test event=visible k=\"v w\"\n"
            "level=error sub=test event=bad code=7\n");

  set_level(Level::trace);
  EXPECT_TRUE(enabled(Level::trace));
  ::testing::internal::CaptureStderr();
  debug("test", "now-visible");
  captured = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(captured, "level=debug sub=test event=now-visible\n");

  init(Level::off);
  EXPECT_FALSE(enabled(Level::error));
  ::testing::internal::CaptureStderr();
  error("test", "silenced");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  init(Level::info);
}

}  // namespace
}  // namespace edgecoder::core::log
