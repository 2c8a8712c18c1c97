// Tests for src/model/local.cpp: the edgecoder-local stub. Generated programs are really run
// with /usr/bin/python3 and /usr/bin/node (skipped when the interpreter is missing).
#include "model/local.h"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "model/decompose.h"
#include "model/prompts.h"
#include "model/provider.h"
#include "model/run_coro.h"
#include "support/child_process.h"

namespace edgecoder::model {
namespace {

struct Case {
  std::string task;
  std::string output;  // expected stdout, trimmed
};

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      {"Print hello world", "Hello, world!"},
      {"Sum of the numbers from 1 to 100", "5050"},
      {"Add 3 and 4", "7"},
      {"Compute the factorial of 10", "3628800"},
      {"Print the first 10 Fibonacci numbers", "0, 1, 1, 2, 3, 5, 8, 13, 21, 34"},
      {"List the primes up to 20", "2, 3, 5, 7, 11, 13, 17, 19"},
      {"Reverse the string 'abc'", "cba"},
      {"Multiply 6 and 7", "42"},
      {"Convert \"hi there\" to uppercase", "HI THERE"},
      {"Do something nobody planned for", "edgecoder-local: Do something nobody planned for"},
      // The coordinator's context block: the numbers come from the results, not the labels.
      {"[Context from previous subtasks]\nSubtask 1 result: 0, 1, 1, 2, 3, 5, 8, 13, 21, 34\n\n"
       "[Your task]\nSum them",
       "88"},
  };
  return kCases;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void run_all(const std::string& interpreter, const std::string& language) {
  if (!std::filesystem::exists(interpreter)) GTEST_SKIP() << interpreter << " is not installed";
  for (const auto& c : cases()) {
    const std::string code = local_code(c.task, language);
    EXPECT_NE(code.find("not an LLM"), std::string::npos) << code;
    const auto result = testing::run_shell(interpreter + " -", code);
    EXPECT_EQ(result.code, 0) << c.task << "\n" << code << "\n" << result.out;
    EXPECT_EQ(trimmed(result.out), c.output) << c.task << "\n" << code;
  }
}

TEST(LocalCodeTest, PythonProgramsRunAndPrintTheAnswer) { run_all("/usr/bin/python3", "python"); }

TEST(LocalCodeTest, JavaScriptProgramsRunAndPrintTheAnswer) {
  run_all("/usr/bin/node", "javascript");
}

TEST(LocalCodeTest, CodeLikeTasksPassThrough) {
  EXPECT_EQ(local_code("print(2 + 2)", "python"), "print(2 + 2)");
  EXPECT_EQ(local_code("def f():\n    return 1\nprint(f())", "python"),
            "def f():\n    return 1\nprint(f())");
  // Prose with "for" or "if" is not code.
  EXPECT_NE(local_code("Print hello world for me if you can", "python"),
            "Print hello world for me if you can");
}

TEST(LocalAnswerTest, AnswersOurOwnPrompts) {
  EXPECT_EQ(local_answer(code_prompt("Add 3 and 4", "1. add", "javascript")),
            local_code("Add 3 and 4", "javascript"));
  EXPECT_EQ(local_answer(reflect_prompt("Add 3 and 4", "print(x)", "NameError", "python")),
            local_code("Add 3 and 4", "python"));
  const std::string plan = local_answer(plan_prompt("Add 3 and 4"));
  EXPECT_NE(plan.find("1. "), std::string::npos);
  EXPECT_NE(plan.find("3. "), std::string::npos);
  EXPECT_NE(plan.find("Task: Add 3 and 4"), std::string::npos);
  EXPECT_EQ(local_answer("what is this?"), "edgecoder-local: what is this?");
}

Decomposition decompose(const std::string& task, const std::string& language = "python") {
  DecomposeRequest r;
  r.task_id = "t";
  r.prompt = task;
  r.snapshot_ref = "s";
  r.language = language;
  // Through the whole path a model answer takes: prompt -> stub -> parser.
  return parse_decomposition(local_answer(decompose_prompt(task, language, kMaxSubtasks)), r);
}

TEST(LocalDecomposeTest, NumberedStepsBecomeAChain) {
  const auto d = decompose(
      "Build a report:\n1. Generate the first 10 Fibonacci numbers\n2. Sum them\n"
      "3) javascript: Print the sum as JSON");
  ASSERT_FALSE(d.fallback) << d.fallback_reason;
  ASSERT_EQ(d.subtasks.size(), 3U);
  EXPECT_EQ(d.subtasks[0].input, "Generate the first 10 Fibonacci numbers");
  EXPECT_TRUE(d.subtasks[0].depends_on.empty());
  EXPECT_EQ(d.subtasks[1].depends_on, std::vector<int>{0});
  EXPECT_EQ(d.subtasks[2].depends_on, std::vector<int>{1});
  EXPECT_EQ(d.subtasks[0].language, "python");
  EXPECT_EQ(d.subtasks[2].language, "javascript");
  EXPECT_EQ(d.subtasks[2].input, "Print the sum as JSON");
}

TEST(LocalDecomposeTest, BulletsAreIndependentAndAfterJoins) {
  const auto d = decompose(
      "- Add 3 and 4\n- Multiply 6 and 7\n- Sum of the numbers from 1 to 10 (after 1, 2)");
  ASSERT_EQ(d.subtasks.size(), 3U);
  EXPECT_TRUE(d.subtasks[0].depends_on.empty());
  EXPECT_TRUE(d.subtasks[1].depends_on.empty());
  EXPECT_EQ(d.subtasks[2].depends_on, (std::vector<int>{0, 1}));
  EXPECT_EQ(d.subtasks[2].input, "Sum of the numbers from 1 to 10");
}

TEST(LocalDecomposeTest, ThenChainsAndSingleTasks) {
  const auto chain =
      decompose("First add 3 and 4, then multiply 6 and 7, then print hello world", "javascript");
  ASSERT_EQ(chain.subtasks.size(), 3U);
  EXPECT_EQ(chain.subtasks[0].input, "add 3 and 4");
  EXPECT_EQ(chain.subtasks[2].input, "print hello world");
  EXPECT_EQ(chain.subtasks[2].depends_on, std::vector<int>{1});
  EXPECT_EQ(chain.subtasks[1].language, "javascript");

  const auto single = decompose("Print hello world");
  ASSERT_FALSE(single.fallback);
  ASSERT_EQ(single.subtasks.size(), 1U);
  EXPECT_EQ(single.subtasks[0].input, "Print hello world");
}

asio::awaitable<std::string> generate_text(Provider* p, std::string prompt) {
  GenerateRequest r;
  r.prompt = std::move(prompt);
  auto open = p->generate(std::move(r));
  auto stream = co_await std::move(open);
  if (!stream) co_return "error: " + stream.error().detail;
  auto read = collect(std::move(*stream));
  auto text = co_await std::move(read);
  co_return text ? *text : "error: " + text.error().detail;
}

TEST(LocalProviderTest, IsLabelledAndStreamsTheAnswer) {
  asio::io_context io;
  ProviderConfig config;
  auto p = make_provider(config, io.get_executor());
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE((*p)->is_llm());
  EXPECT_FALSE((*p)->needs_server());
  EXPECT_EQ(provider_kind_name((*p)->kind()), "edgecoder-local");
  auto version = testing::run_coro(io, (*p)->server_version());
  ASSERT_TRUE(version.has_value());
  EXPECT_NE(version->find("not an LLM"), std::string::npos);
  const std::string prompt = code_prompt("Add 3 and 4", "", "python");
  EXPECT_EQ(testing::run_coro(io, generate_text(p->get(), prompt)),
            local_code("Add 3 and 4", "python"));
  auto pulled = testing::run_coro(io, (*p)->pull("x"));
  EXPECT_FALSE(pulled.has_value());
}

TEST(LocalChatTest, RepliesAreLabelled) {
  const std::string plain = local_chat_answer("how are you?");
  EXPECT_NE(plain.find("not an LLM"), std::string::npos);
  const std::string code = local_chat_answer("write a javascript program to add 2 and 5");
  EXPECT_NE(code.find("```javascript"), std::string::npos) << code;
  EXPECT_NE(code.find("reduce"), std::string::npos) << code;
}

}  // namespace
}  // namespace edgecoder::model
