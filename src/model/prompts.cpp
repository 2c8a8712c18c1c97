#include "model/prompts.h"

namespace edgecoder::model {

namespace prompts_detail {

// Opening sentences; parse_prompt() keys on them, so they are constants shared by both sides.
constexpr std::string_view kPlanOpening =
    "You are a coding assistant. Write a short step-by-step plan for the coding task below.";
constexpr std::string_view kCodeOpening =
    "You are a coding assistant. Write code that implements the plan for the coding task below.";
constexpr std::string_view kReflectOpening =
    "You are a coding assistant. The code below failed. Find the cause and write a corrected "
    "version.";
constexpr std::string_view kDecomposeOpening =
    "You are a task decomposition assistant. Split the coding task below into small, "
    "self-contained subtasks.";

constexpr std::string_view kLanguageHeader = "\nLanguage: ";
constexpr std::string_view kTaskHeader = "\n\nTask:\n";
constexpr std::string_view kPlanHeader = "\n\nPlan:\n";
constexpr std::string_view kFailedHeader = "\n\nFailed code:\n";
constexpr std::string_view kErrorHeader = "\n\nError output:\n";
constexpr std::string_view kCodeFooter = "\n\nOutput ONLY executable ";
constexpr std::string_view kReflectFooter = "\n\nOutput ONLY the corrected, executable ";
constexpr std::string_view kDecomposeFooter = "\n\nAnswer with a JSON array and nothing else.";

std::string_view prompts_line_after(std::string_view text, std::string_view header) {
  const auto at = text.find(header);
  if (at == std::string_view::npos) return {};
  std::string_view rest = text.substr(at + header.size());
  return rest.substr(0, rest.find('\n'));
}

// Everything after the first `open`.
std::string prompts_after(std::string_view text, std::string_view open) {
  const auto from = text.find(open);
  if (from == std::string_view::npos) return {};
  return std::string(text.substr(from + open.size()));
}

// The text between the first `open` and the last `close` after it (section bodies may contain
// blank lines; the closing header is fixed text the template always writes).
std::string prompts_between(std::string_view text, std::string_view open, std::string_view close) {
  const auto from = text.find(open);
  if (from == std::string_view::npos) return {};
  const auto start = from + open.size();
  const auto to = text.rfind(close);
  if (to == std::string_view::npos || to < start) return std::string(text.substr(start));
  return std::string(text.substr(start, to - start));
}

}  // namespace prompts_detail

std::string plan_prompt(std::string_view task) {
  std::string p(prompts_detail::kPlanOpening);
  p += "\nOutput only numbered steps: no code and no explanation.";
  p += prompts_detail::kTaskHeader;
  p += task;
  return p;
}

std::string code_prompt(std::string_view task, std::string_view plan, std::string_view language) {
  std::string p(prompts_detail::kCodeOpening);
  p += prompts_detail::kLanguageHeader;
  p += language;
  p += prompts_detail::kTaskHeader;
  p += task;
  p += prompts_detail::kPlanHeader;
  p += plan;
  p += prompts_detail::kCodeFooter;
  p += language;
  p += " code: no Markdown fences, no explanation, few comments. It must run as a standalone "
       "script and print its result.";
  return p;
}

std::string reflect_prompt(std::string_view task, std::string_view failed_code,
                           std::string_view error_output, std::string_view language) {
  std::string p(prompts_detail::kReflectOpening);
  p += prompts_detail::kLanguageHeader;
  p += language;
  p += prompts_detail::kTaskHeader;
  p += task;
  p += prompts_detail::kFailedHeader;
  p += failed_code;
  p += prompts_detail::kErrorHeader;
  p += error_output.empty() ? std::string_view("(no error output)") : error_output;
  p += prompts_detail::kReflectFooter;
  p += language;
  p += " code: no Markdown fences, no explanation.";
  return p;
}

std::string decompose_prompt(std::string_view task, std::string_view language,
                             std::size_t max_subtasks) {
  std::string p(prompts_detail::kDecomposeOpening);
  p += " Each subtask must be solvable by a separate agent with one short program; subtasks run "
       "in parallel unless one needs the output of another.";
  p += prompts_detail::kLanguageHeader;
  p += language;
  p += prompts_detail::kTaskHeader;
  p += task;
  p += prompts_detail::kDecomposeFooter;
  p += " At most " + std::to_string(max_subtasks) + " elements, each an object:\n";
  p += R"({"input": "<what this subtask must do, self-contained>", "language": "python" or )"
       R"("javascript", "dependsOn": [<0-based indexes of earlier subtasks whose output it )"
       R"(needs>]})";
  p += "\nLeave out \"dependsOn\" when a subtask needs no earlier result. Use one element when "
       "the task is already small. Prefer ";
  p += language;
  p += ".";
  return p;
}

ParsedPrompt parse_prompt(std::string_view prompt) {
  ParsedPrompt out;
  if (prompt.starts_with(prompts_detail::kPlanOpening)) {
    out.kind = PromptKind::plan;
    out.task = prompts_detail::prompts_after(prompt, prompts_detail::kTaskHeader);
    return out;
  }
  if (prompt.starts_with(prompts_detail::kCodeOpening)) {
    out.kind = PromptKind::code;
    out.language =
        std::string(prompts_detail::prompts_line_after(prompt, prompts_detail::kLanguageHeader));
    out.task = prompts_detail::prompts_between(prompt, prompts_detail::kTaskHeader,
                                               prompts_detail::kPlanHeader);
    return out;
  }
  if (prompt.starts_with(prompts_detail::kReflectOpening)) {
    out.kind = PromptKind::reflect;
    out.language =
        std::string(prompts_detail::prompts_line_after(prompt, prompts_detail::kLanguageHeader));
    out.task = prompts_detail::prompts_between(prompt, prompts_detail::kTaskHeader,
                                               prompts_detail::kFailedHeader);
    out.code = prompts_detail::prompts_between(prompt, prompts_detail::kFailedHeader,
                                               prompts_detail::kErrorHeader);
    out.error = prompts_detail::prompts_between(prompt, prompts_detail::kErrorHeader,
                                                prompts_detail::kReflectFooter);
    return out;
  }
  if (prompt.starts_with(prompts_detail::kDecomposeOpening)) {
    out.kind = PromptKind::decompose;
    out.language =
        std::string(prompts_detail::prompts_line_after(prompt, prompts_detail::kLanguageHeader));
    out.task = prompts_detail::prompts_between(prompt, prompts_detail::kTaskHeader,
                                               prompts_detail::kDecomposeFooter);
    return out;
  }
  return out;
}

}  // namespace edgecoder::model
