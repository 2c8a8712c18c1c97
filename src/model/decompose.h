// Turning a model's decomposition answer into subtasks (the /decompose contract: upstream-
// inference-ide-executor.md §1.4). Accepts the JSON array in a fenced block with any tag, after a
// <think>…</think> preamble, with prose around it, or wrapped as {"subtasks": [...]}. Validates
// each item, normalises or replaces its language, keeps dependencies by index that point to an
// earlier kept item, caps the count, and falls back to one subtask (the whole prompt) when
// nothing usable is found — saying so in `fallback`/`fallback_reason`.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace edgecoder::model {

inline constexpr std::size_t kMaxSubtasks = 10;
inline constexpr int kFallbackTimeoutMs = 30'000;

struct DecomposeRequest {
  std::string task_id;
  std::string prompt;
  std::string snapshot_ref;
  std::string language = "python";  // "python" or "javascript"
};

struct Subtask {
  std::string task_id;
  std::string kind = "micro_loop";
  std::string input;
  std::string language;
  int timeout_ms = kFallbackTimeoutMs;
  std::string snapshot_ref;
  int index = 0;                // position in the answer (subtaskIndex)
  std::vector<int> depends_on;  // indexes of earlier subtasks, ascending
};

struct Decomposition {
  std::vector<Subtask> subtasks;  // never empty
  bool fallback = false;
  std::string fallback_reason;        // set with fallback
  std::vector<std::string> warnings;  // items dropped or corrected
};

// min(5000 + floor(length/50) * 1000, 60000) ms; length in UTF-16 code units, as upstream.
int subtask_timeout_ms(std::string_view input);

Decomposition parse_decomposition(std::string_view answer, const DecomposeRequest& request,
                                  std::size_t max_subtasks = kMaxSubtasks);
// One subtask with the whole prompt, flagged as a fallback for `reason`.
Decomposition fallback_decomposition(const DecomposeRequest& request, std::string reason);

// The response body: {"subtasks":[{taskId, kind, input, language, timeoutMs, snapshotRef,
// subtaskIndex, dependsOn?}], "fallback": bool, "fallbackReason"?, "warnings"?}.
nlohmann::json to_json(const Decomposition& decomposition);

}  // namespace edgecoder::model
