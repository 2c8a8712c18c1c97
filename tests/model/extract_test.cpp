// Tests for src/model/extract.cpp and src/model/prompts.cpp.
#include "model/extract.h"

#include <gtest/gtest.h>

#include "model/prompts.h"

namespace edgecoder::model {
namespace {

TEST(ExtractCodeTest, NoFenceGivesTheTrimmedText) {
  EXPECT_EQ(extract_code("  print(1)\n\n"), "print(1)");
  EXPECT_EQ(extract_code(""), "");
}

TEST(ExtractCodeTest, StripsFencesWithAnyTagAndCase) {
  EXPECT_EQ(extract_code("```python\nprint(1)\n```"), "print(1)");
  EXPECT_EQ(extract_code("```Python\nprint(1)\n```", "python"), "print(1)");
  EXPECT_EQ(extract_code("```py\nprint(1)\n```", "python"), "print(1)");
  EXPECT_EQ(extract_code("```\nprint(1)\n```", "python"), "print(1)");
  EXPECT_EQ(extract_code("```js\nconsole.log(1);\n```", "javascript"), "console.log(1);");
  EXPECT_EQ(extract_code("```JavaScript title=\"a.js\"\nconsole.log(1);\n```", "javascript"),
            "console.log(1);");
  EXPECT_EQ(extract_code("~~~python\nprint(2)\n~~~"), "print(2)");
  // A tag nobody lists (upstream left the fence markers in the code).
  EXPECT_EQ(extract_code("```rust-ish\nprint(3)\n```", "python"), "print(3)");
}

TEST(ExtractCodeTest, ProseAroundAndThinkBlocks) {
  const std::string reply =
      "<think>The user wants a loop.\n```python\nwrong()\n```\n</think>\n"
      "Here is the fix:\n\n```python\nfor i in range(3):\n    print(i)\n```\n"
      "This prints 0..2.";
  EXPECT_EQ(extract_code(reply, "python"), "for i in range(3):\n    print(i)");
}

TEST(ExtractCodeTest, PrefersTheRequestedLanguageOverOtherBlocks) {
  const std::string reply =
      "Run it with:\n```bash\npython3 main.py\n```\nCode:\n```python\nprint('hi')\n```";
  EXPECT_EQ(extract_code(reply, "python"), "print('hi')");
  const std::string mixed =
      "```python\nprint(1)\n```\nor in JS:\n```javascript\nconsole.log(1);\n```";
  EXPECT_EQ(extract_code(mixed, "javascript"), "console.log(1);");
  EXPECT_EQ(extract_code(mixed, "python"), "print(1)");
}

TEST(ExtractCodeTest, JoinsSeveralBlocksAndDropsRepeats) {
  const std::string reply =
      "First the function:\n```python\ndef f(x):\n    return x * 2\n```\n"
      "Then use it:\n```python\nprint(f(21))\n```";
  EXPECT_EQ(extract_code(reply, "python"), "def f(x):\n    return x * 2\n\nprint(f(21))");
  const std::string repeated =
      "```python\ndef f():\n    return 1\n```\nFull program:\n"
      "```python\ndef f():\n    return 1\n\nprint(f())\n```";
  EXPECT_EQ(extract_code(repeated, "python"), "def f():\n    return 1\n\nprint(f())");
}

TEST(ExtractCodeTest, UnclosedFenceRunsToTheEnd) {
  EXPECT_EQ(extract_code("```python\nprint(1)\nprint(2)"), "print(1)\nprint(2)");
  EXPECT_EQ(extract_code("```python\nprint(1)```"), "print(1)");
}

TEST(ExtractCodeTest, OnlyShellBlocksStillGivesTheFirstBlock) {
  EXPECT_EQ(extract_code("```bash\necho hi\n```", "python"), "echo hi");
}

TEST(StripThinkTest, RemovesReasoning) {
  EXPECT_EQ(strip_think("<think>a</think>b<think>c</think>d"), "bd");
  EXPECT_EQ(strip_think("answer"), "answer");
  EXPECT_EQ(strip_think("x<think>never closed"), "x");
  EXPECT_EQ(strip_think("leftover reasoning</think>answer"), "answer");
}

TEST(FencedBlocksTest, TagsBodiesAndClosing) {
  const auto blocks = fenced_blocks("a\n```json\n[1]\n```\nb\n````\n```\ninner\n```\n````\n");
  ASSERT_EQ(blocks.size(), 2U);
  EXPECT_EQ(blocks[0].tag, "json");
  EXPECT_EQ(blocks[0].body, "[1]");
  EXPECT_TRUE(blocks[0].closed);
  EXPECT_EQ(blocks[1].tag, "");
  EXPECT_EQ(blocks[1].body, "```\ninner\n```");  // a longer fence holds shorter ones
}

TEST(NormaliseLanguageTest, Aliases) {
  EXPECT_EQ(normalise_language("Python3"), "python");
  EXPECT_EQ(normalise_language(" js "), "javascript");
  EXPECT_EQ(normalise_language("Node"), "javascript");
  EXPECT_FALSE(normalise_language("rust"));
  EXPECT_FALSE(normalise_language(""));
}

TEST(PromptsTest, TemplatesCarryTheirInputs) {
  const std::string plan = plan_prompt("sum a list");
  EXPECT_NE(plan.find("plan"), std::string::npos);
  EXPECT_NE(plan.find("sum a list"), std::string::npos);
  const std::string code = code_prompt("sum a list", "1. add", "python");
  EXPECT_NE(code.find("python"), std::string::npos);
  EXPECT_NE(code.find("sum a list"), std::string::npos);
  EXPECT_NE(code.find("1. add"), std::string::npos);
  const std::string reflect = reflect_prompt("t", "print(x)", "NameError: x", "python");
  EXPECT_NE(reflect.find("print(x)"), std::string::npos);
  EXPECT_NE(reflect.find("NameError: x"), std::string::npos);
  const std::string decompose = decompose_prompt("build a CLI", "javascript", 10);
  EXPECT_NE(decompose.find("JSON"), std::string::npos);
  EXPECT_NE(decompose.find("build a CLI"), std::string::npos);
  EXPECT_NE(decompose.find("dependsOn"), std::string::npos);
  EXPECT_NE(decompose.find("At most 10"), std::string::npos);
  EXPECT_FALSE(kPromptsVersion.empty());
}

TEST(PromptsTest, ParsePromptRoundTrips) {
  const std::string task = "multi\n\nline task";
  auto p = parse_prompt(code_prompt(task, "1. x\n\n2. y", "javascript"));
  EXPECT_EQ(p.kind, PromptKind::code);
  EXPECT_EQ(p.task, task);
  EXPECT_EQ(p.language, "javascript");
  p = parse_prompt(reflect_prompt(task, "bad()", "Error: boom", "python"));
  EXPECT_EQ(p.kind, PromptKind::reflect);
  EXPECT_EQ(p.task, task);
  EXPECT_EQ(p.code, "bad()");
  EXPECT_EQ(p.error, "Error: boom");
  p = parse_prompt(decompose_prompt(task, "python", 10));
  EXPECT_EQ(p.kind, PromptKind::decompose);
  EXPECT_EQ(p.task, task);
  EXPECT_EQ(p.language, "python");
  p = parse_prompt(plan_prompt(task));
  EXPECT_EQ(p.kind, PromptKind::plan);
  EXPECT_EQ(p.task, task);
  EXPECT_EQ(parse_prompt("hello").kind, PromptKind::other);
}

}  // namespace
}  // namespace edgecoder::model
