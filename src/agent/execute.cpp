#include "agent/execute.h"

#include <algorithm>

#include "core/log.h"
#include "model/extract.h"
#include "model/prompts.h"

namespace edgecoder::agent {

namespace {

// One generation, whole. Parameters by value (coroutine).
boost::asio::awaitable<core::Result<std::string>> execute_generate(model::Provider* provider,
                                                                   std::string model,
                                                                   std::string prompt) {
  model::GenerateRequest gen;
  gen.model = std::move(model);
  gen.prompt = std::move(prompt);
  auto call = provider->generate(std::move(gen));
  auto stream = co_await std::move(call);
  if (!stream) co_return stream.error();
  auto collect = model::collect(std::move(*stream));
  auto text = co_await std::move(collect);
  if (!text) co_return text.error();
  co_return std::move(*text);
}

}  // namespace

boost::asio::awaitable<Execution> execute(model::Provider* provider, ExecuteOptions options,
                                          api::WireSubtask subtask, std::string language,
                                          std::string agent_id, RunCode run, Escalate escalate) {
  Execution out;
  std::vector<std::string> errors;  // one per failed iteration, for /escalate
  std::string code;                 // the last code the model gave
  RunOutcome last;
  for (int i = 0; i < options.max_iterations; ++i) {
    out.iterations = i + 1;
    std::string prompt;
    if (code.empty()) {
      // First iteration (or the model gave no code yet): plan, then code from the plan. A plan
      // the model cannot give is not fatal: the code prompt works without one.
      auto plan_call = execute_generate(provider, options.model, model::plan_prompt(subtask.input));
      auto plan = co_await std::move(plan_call);
      prompt = model::code_prompt(subtask.input, plan ? *plan : std::string(), language);
    } else {
      prompt = model::reflect_prompt(subtask.input, code, last.error, language);
    }
    auto gen_call = execute_generate(provider, options.model, std::move(prompt));
    auto text = co_await std::move(gen_call);
    if (!text) {
      last = RunOutcome{false, "", "model: " + text.error().detail};
      errors.push_back(last.error);
      continue;
    }
    std::string next = model::extract_code(*text, language);
    if (next.empty()) {
      last = RunOutcome{false, "", "model: the reply contained no code"};
      errors.push_back(last.error);
      continue;
    }
    code = std::move(next);
    auto run_call = run(code);
    last = co_await std::move(run_call);
    if (last.ok) break;
    errors.push_back(last.error);
    core::log::info(
        "agent", "iteration_failed",
        {{"subtask_id", subtask.id}, {"iteration", i + 1}, {"detail", last.error.substr(0, 200)}});
  }
  if (!last.ok && options.escalate && (language == "python" || language == "javascript")) {
    out.escalated = true;
    api::EscalateRequest ask;
    ask.task_id = subtask.task_id;
    ask.agent_id = agent_id;
    ask.task = subtask.input;
    ask.failed_code = code;
    ask.error_history = errors;
    ask.language = language;
    ask.iterations_attempted = std::max(1, out.iterations);
    auto esc_call = escalate(std::move(ask));
    auto improved = co_await std::move(esc_call);
    if (improved) {
      core::log::info("agent", "escalated", {{"subtask_id", subtask.id}});
      auto run_call = run(*improved);
      last = co_await std::move(run_call);
    } else {
      core::log::warn("agent", "escalation_failed",
                      {{"subtask_id", subtask.id}, {"detail", improved.error().detail}});
      if (!last.error.empty() && last.error.back() != '\n') last.error += '\n';
      last.error += "escalation: " + improved.error().detail;
    }
  }
  out.ok = last.ok;
  out.output = std::move(last.output);
  out.error = std::move(last.error);
  co_return out;
}

}  // namespace edgecoder::agent
