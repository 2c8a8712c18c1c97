// Tests for src/model/decompose.cpp: the decomposition parser.
#include "model/decompose.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace edgecoder::model {
namespace {

DecomposeRequest request(std::string language = "python") {
  DecomposeRequest r;
  r.task_id = "t-1";
  r.prompt = "Build a CLI that adds numbers";
  r.snapshot_ref = "0123456789abcdef0123456789abcdef01234567";
  r.language = std::move(language);
  return r;
}

constexpr const char* kTwo =
    R"([{"input":"parse the arguments","language":"python"},)"
    R"({"input":"add them and print the sum","language":"python","dependsOn":[0]}])";

void expect_two(const Decomposition& d) {
  ASSERT_FALSE(d.fallback) << d.fallback_reason;
  ASSERT_EQ(d.subtasks.size(), 2U);
  EXPECT_EQ(d.subtasks[0].input, "parse the arguments");
  EXPECT_EQ(d.subtasks[1].input, "add them and print the sum");
  EXPECT_EQ(d.subtasks[0].index, 0);
  EXPECT_EQ(d.subtasks[1].index, 1);
  EXPECT_TRUE(d.subtasks[0].depends_on.empty());
  EXPECT_EQ(d.subtasks[1].depends_on, std::vector<int>{0});
  for (const auto& s : d.subtasks) {
    EXPECT_EQ(s.task_id, "t-1");
    EXPECT_EQ(s.kind, "micro_loop");
    EXPECT_EQ(s.snapshot_ref, "0123456789abcdef0123456789abcdef01234567");
  }
}

TEST(DecomposeTest, BareArray) { expect_two(parse_decomposition(kTwo, request())); }

TEST(DecomposeTest, FencedJsonWithAnyTag) {
  expect_two(parse_decomposition(std::string("```json\n") + kTwo + "\n```", request()));
  expect_two(parse_decomposition(std::string("```JSON\n") + kTwo + "\n```", request()));
  expect_two(parse_decomposition(std::string("```\n") + kTwo + "\n```", request()));
}

TEST(DecomposeTest, ThinkPreambleIsIgnored) {
  const std::string answer =
      "<think>Maybe [\"one\"]? No, two steps: [1, 2].</think>\n" + std::string(kTwo);
  expect_two(parse_decomposition(answer, request()));
}

TEST(DecomposeTest, ProseAroundTheArray) {
  const std::string answer = "Sure! Here are the subtasks [as requested]:\n\n" + std::string(kTwo) +
                             "\n\nLet me know if you need more [details].";
  expect_two(parse_decomposition(answer, request()));
}

TEST(DecomposeTest, WrappedObjectAndAlternativeKeys) {
  const std::string answer =
      R"({"subtasks":[{"task":"parse the arguments"},{"description":"add them and print the sum","depends_on":["0"]}]})";
  expect_two(parse_decomposition(answer, request()));
}

TEST(DecomposeTest, CapsTheCount) {
  nlohmann::json items = nlohmann::json::array();
  for (int i = 0; i < 14; ++i) items.push_back({{"input", "step " + std::to_string(i)}});
  const auto d = parse_decomposition(items.dump(), request(), 10);
  ASSERT_FALSE(d.fallback);
  ASSERT_EQ(d.subtasks.size(), 10U);
  EXPECT_EQ(d.subtasks.back().input, "step 9");
  ASSERT_FALSE(d.warnings.empty());
  EXPECT_NE(d.warnings.back().find("14"), std::string::npos);
}

TEST(DecomposeTest, InvalidLanguageBecomesTheRequestLanguage) {
  const auto d = parse_decomposition(
      R"([{"input":"a","language":"rust"},{"input":"b","language":"JS"},{"input":"c"}])",
      request("python"));
  ASSERT_EQ(d.subtasks.size(), 3U);
  EXPECT_EQ(d.subtasks[0].language, "python");
  EXPECT_EQ(d.subtasks[1].language, "javascript");
  EXPECT_EQ(d.subtasks[2].language, "python");
  ASSERT_EQ(d.warnings.size(), 1U);
  EXPECT_NE(d.warnings[0].find("rust"), std::string::npos);
}

TEST(DecomposeTest, EmptyAndNonsenseFallBack) {
  for (const std::string& answer :
       {std::string(""), std::string("   \n"), std::string("<think>hmm</think>"),
        std::string("I cannot help with that."), std::string("[]"), std::string("{\"a\":1}"),
        std::string("[1, 2, 3]"), std::string("[{\"input\": \"\"}]"),
        std::string("[{\"input\":\"cut off\"},{\"input\":")}) {
    const auto d = parse_decomposition(answer, request("javascript"));
    ASSERT_TRUE(d.fallback) << answer;
    EXPECT_FALSE(d.fallback_reason.empty());
    ASSERT_EQ(d.subtasks.size(), 1U);
    EXPECT_EQ(d.subtasks[0].input, "Build a CLI that adds numbers");
    EXPECT_EQ(d.subtasks[0].language, "javascript");
    EXPECT_EQ(d.subtasks[0].timeout_ms, 30'000);
  }
}

TEST(DecomposeTest, DependenciesPointOnlyBackwardsToKeptItems) {
  const auto d = parse_decomposition(
      R"([{"input":"a"},{"input":""},{"input":"c","dependsOn":[0,1,3,2]},{"input":"d","dependsOn":[0,2,2]}])",
      request());
  ASSERT_EQ(d.subtasks.size(), 3U);
  // Item 2 ("c"): 0 stays; 1 was dropped, 3 is a forward reference, 2 is itself.
  EXPECT_EQ(d.subtasks[1].depends_on, std::vector<int>{0});
  // Item 3 ("d"): items 0 and 2 are now subtasks 0 and 1; the repeat is kept once.
  EXPECT_EQ(d.subtasks[2].depends_on, (std::vector<int>{0, 1}));
  EXPECT_TRUE(d.subtasks[0].depends_on.empty());
}

TEST(DecomposeTest, TimeoutFormula) {
  EXPECT_EQ(subtask_timeout_ms(""), 5000);
  EXPECT_EQ(subtask_timeout_ms(std::string(49, 'x')), 5000);
  EXPECT_EQ(subtask_timeout_ms(std::string(300, 'x')), 11'000);
  EXPECT_EQ(subtask_timeout_ms(std::string(10'000, 'x')), 60'000);
  // UTF-16 units as upstream: 50 two-byte characters count 50, not 100.
  std::string accented;
  for (int i = 0; i < 50; ++i) accented += "\xC3\xA9";
  EXPECT_EQ(subtask_timeout_ms(accented), 6000);
}

TEST(DecomposeTest, JsonShape) {
  const auto d = parse_decomposition(kTwo, request());
  const auto j = to_json(d);
  ASSERT_EQ(j["subtasks"].size(), 2U);
  EXPECT_EQ(j["fallback"], false);
  EXPECT_FALSE(j.contains("fallbackReason"));
  const auto& s0 = j["subtasks"][0];
  EXPECT_EQ(s0["taskId"], "t-1");
  EXPECT_EQ(s0["kind"], "micro_loop");
  EXPECT_EQ(s0["timeoutMs"], 5000);
  EXPECT_EQ(s0["subtaskIndex"], 0);
  EXPECT_FALSE(s0.contains("dependsOn"));
  EXPECT_EQ(j["subtasks"][1]["dependsOn"], nlohmann::json::array({0}));
  const auto f = to_json(fallback_decomposition(request(), "why"));
  EXPECT_EQ(f["fallback"], true);
  EXPECT_EQ(f["fallbackReason"], "why");
}

}  // namespace
}  // namespace edgecoder::model
