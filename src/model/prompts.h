// Every prompt EdgeCoder sends to a model, in one place and versioned: plan, code, reflect and
// decompose. Changing a template's wording changes kPromptsVersion (reported by /model/status, so
// an answer can be traced to the prompt that produced it). parse_prompt() recognises our own
// templates again; the edgecoder-local stub uses it to answer them deterministically.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace edgecoder::model {

// Bump on every wording change of a template below.
inline constexpr std::string_view kPromptsVersion = "edgecoder-prompts/1";

// A short numbered plan; no code.
std::string plan_prompt(std::string_view task);
// Executable code in `language` ("python" or "javascript") implementing `plan`.
std::string code_prompt(std::string_view task, std::string_view plan, std::string_view language);
// Corrected code after `failed_code` failed with `error_output`.
std::string reflect_prompt(std::string_view task, std::string_view failed_code,
                           std::string_view error_output, std::string_view language);
// A JSON array of at most `max_subtasks` subtasks {input, language, dependsOn?}.
std::string decompose_prompt(std::string_view task, std::string_view language,
                             std::size_t max_subtasks);

enum class PromptKind { plan, code, reflect, decompose, other };

struct ParsedPrompt {
  PromptKind kind = PromptKind::other;
  std::string task;
  std::string language;  // code, reflect, decompose
  std::string code;      // reflect: the failed code
  std::string error;     // reflect: the error output
};

// Recognises a prompt built by the functions above (by its fixed opening and section headers).
ParsedPrompt parse_prompt(std::string_view prompt);

}  // namespace edgecoder::model
