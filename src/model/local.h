// edgecoder-local: a deterministic offline stand-in for a model. It is NOT an LLM: it recognises
// EdgeCoder's own prompt templates (prompts.h) and answers them by rules, so that the whole
// pipeline (decompose -> code -> run -> reflect) can be shown and tested without a model server.
//
// Rules (docs/inference.md repeats them for users):
// - code / reflect prompts: runnable code in the requested language. A task that already is code
//   is returned unchanged; a few simple task kinds are recognised (hello world; sum/add,
//   multiply/product of the numbers in the task; sum from A to B; factorial of N; the first N
//   Fibonacci numbers; primes up to N; reversing or upper-casing a quoted string); anything else
//   prints a labelled line. Every program starts with a comment saying it came from the stub.
// - plan prompts: three fixed numbered steps.
// - decompose prompts: a task with two or more step lines becomes one subtask per step —
//   numbered lines ("1. ...", "2) ...") run in order (each depends on the previous one), bullet
//   lines ("- ...", "* ...") are independent; a step may start with "python:" or "javascript:"
//   (or "js:") to choose its language, and may end with "(after 1, 3)" (1-based step numbers) to
//   choose its dependencies. A one-line task "A, then B, then C" becomes a chain of three.
//   Anything else is one subtask. The answer is a JSON array, as a model would give.
// - anything else (chat): a labelled reply; code when the message asks for a program.
// Thread-safety: stateless; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace edgecoder::model {

inline constexpr std::string_view kLocalLabel =
    "edgecoder-local: deterministic offline stub, not an LLM";

// The stub's answer to a single prompt (what generate() streams).
std::string local_answer(std::string_view prompt);
// The stub's reply to a chat whose last user message is `message`.
std::string local_chat_answer(std::string_view message);
// Runnable code for `task` in `language` ("python" or "javascript").
std::string local_code(std::string_view task, std::string_view language);
// The JSON array for a decompose prompt's task.
std::string local_decompose(std::string_view task, std::string_view language);

}  // namespace edgecoder::model
