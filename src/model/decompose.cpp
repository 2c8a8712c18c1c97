#include "model/decompose.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "model/extract.h"

namespace edgecoder::model {

namespace decompose_detail {

using nlohmann::json;

constexpr std::size_t kMaxCandidates = 64;  // bracket positions tried in a long answer

std::string_view decompose_trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

// Balanced [...] / {...} spans, in order of their opening bracket, skipping brackets inside JSON
// strings. Prose like "see [1]" yields spans that fail to parse; that is fine.
std::vector<std::string_view> decompose_bracket_spans(std::string_view text) {
  std::vector<std::string_view> spans;
  for (std::size_t start = 0; start < text.size() && spans.size() < kMaxCandidates; ++start) {
    if (text[start] != '[' && text[start] != '{') continue;
    std::vector<char> stack;
    bool in_string = false;
    bool escaped = false;
    for (std::size_t i = start; i < text.size(); ++i) {
      const char c = text[i];
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
        continue;
      }
      if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        stack.push_back(c == '[' ? ']' : '}');
      } else if (c == ']' || c == '}') {
        if (stack.empty() || stack.back() != c) break;
        stack.pop_back();
        if (stack.empty()) {
          spans.push_back(text.substr(start, i - start + 1));
          break;
        }
      }
    }
  }
  return spans;
}

// The subtask list inside a parsed answer: an array, {"subtasks": [...]} (or "tasks"), or — when
// `single_ok`, i.e. the object is the whole answer or a whole fenced block — one {"input": ...}
// object. (An object found by bracket scanning may be one element of a truncated array.)
std::optional<json> decompose_items(const json& value, bool single_ok) {
  if (value.is_array()) return value;
  if (!value.is_object()) return std::nullopt;
  for (const char* key : {"subtasks", "tasks", "steps"}) {
    if (auto it = value.find(key); it != value.end() && it->is_array()) return *it;
  }
  if (single_ok && value.contains("input")) return json::array({value});
  return std::nullopt;
}

std::string decompose_input_of(const json& item) {
  if (auto it = item.find("input"); it != item.end() && !it->is_null()) {
    if (it->is_string()) return std::string(decompose_trim(it->get<std::string>()));
    return it->dump();
  }
  for (const char* key : {"task", "description", "prompt"}) {
    if (auto it = item.find(key); it != item.end() && it->is_string()) {
      return std::string(decompose_trim(it->get<std::string>()));
    }
  }
  return {};
}

std::vector<int> decompose_raw_deps(const json& item) {
  std::vector<int> deps;
  for (const char* key : {"dependsOn", "depends_on"}) {
    auto it = item.find(key);
    if (it == item.end()) continue;
    const json list = it->is_array() ? *it : json::array({*it});
    for (const auto& d : list) {
      if (d.is_number_integer()) {
        deps.push_back(static_cast<int>(d.get<std::int64_t>()));
      } else if (d.is_string()) {
        const std::string s = d.get<std::string>();
        if (!s.empty() &&
            std::all_of(s.begin(), s.end(),
                        [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) &&
            s.size() < 6) {
          deps.push_back(std::stoi(s));
        }
      }
    }
    break;
  }
  return deps;
}

// Builds subtasks from a list of items; empty when none is usable.
Decomposition decompose_build(const json& items, const DecomposeRequest& request,
                              std::size_t max_subtasks) {
  Decomposition out;
  std::map<int, int> new_index;  // position in the answer -> index among kept subtasks
  std::vector<std::vector<int>> raw_deps;
  std::vector<int> original;
  std::size_t usable = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const json& item = items[i];
    const std::string where = "item " + std::to_string(i);
    if (!item.is_object()) {
      out.warnings.push_back(where + " is not an object; dropped");
      continue;
    }
    std::string input = decompose_input_of(item);
    if (input.empty()) {
      out.warnings.push_back(where + " has no input; dropped");
      continue;
    }
    ++usable;
    if (out.subtasks.size() >= max_subtasks) continue;
    Subtask s;
    s.task_id = request.task_id;
    s.snapshot_ref = request.snapshot_ref;
    s.language = request.language;
    if (auto lang = item.find("language"); lang != item.end() && !lang->is_null()) {
      const auto normal = lang->is_string() ? normalise_language(lang->get<std::string>())
                                            : std::optional<std::string>();
      if (normal) {
        s.language = *normal;
      } else {
        // The agents run Python and JavaScript only; the input still says what to do.
        std::string shown = lang->is_string() ? lang->get<std::string>() : lang->dump();
        if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
        out.warnings.push_back(where + ": unsupported language \"" + shown + "\"; using " +
                               request.language);
      }
    }
    s.timeout_ms = subtask_timeout_ms(input);
    s.input = std::move(input);
    s.index = static_cast<int>(out.subtasks.size());
    new_index[static_cast<int>(i)] = s.index;
    original.push_back(static_cast<int>(i));
    raw_deps.push_back(decompose_raw_deps(item));
    out.subtasks.push_back(std::move(s));
  }
  if (usable > max_subtasks) {
    out.warnings.push_back("the model proposed " + std::to_string(usable) +
                           " subtasks; kept the first " + std::to_string(max_subtasks));
  }
  for (std::size_t k = 0; k < out.subtasks.size(); ++k) {
    std::vector<int> deps;
    for (int d : raw_deps[k]) {
      auto it = new_index.find(d);
      // Only earlier kept items: a forward or self reference could make a cycle.
      if (d >= original[k] || it == new_index.end()) {
        out.warnings.push_back("subtask " + std::to_string(k) + ": dependency on item " +
                               std::to_string(d) + " dropped");
        continue;
      }
      deps.push_back(it->second);
    }
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    out.subtasks[k].depends_on = std::move(deps);
  }
  return out;
}

}  // namespace decompose_detail

int subtask_timeout_ms(std::string_view input) {
  std::size_t units = 0;
  for (unsigned char c : input) {
    if ((c & 0xC0) != 0x80) ++units;  // a code point starts here
    if (c >= 0xF0) ++units;           // outside the BMP: a surrogate pair in UTF-16
  }
  const std::size_t ms = 5000 + (units / 50) * 1000;
  return static_cast<int>(std::min<std::size_t>(ms, 60'000));
}

Decomposition fallback_decomposition(const DecomposeRequest& request, std::string reason) {
  Decomposition out;
  Subtask s;
  s.task_id = request.task_id;
  s.snapshot_ref = request.snapshot_ref;
  s.language = request.language;
  s.input = request.prompt;
  s.timeout_ms = kFallbackTimeoutMs;
  out.subtasks.push_back(std::move(s));
  out.fallback = true;
  out.fallback_reason = std::move(reason);
  return out;
}

Decomposition parse_decomposition(std::string_view answer, const DecomposeRequest& request,
                                  std::size_t max_subtasks) {
  using nlohmann::json;
  const std::string text(decompose_detail::decompose_trim(strip_think(answer)));
  if (text.empty()) return fallback_decomposition(request, "the model returned an empty answer");
  if (max_subtasks == 0) max_subtasks = 1;

  // Whole fenced blocks first, then the whole answer, then bracketed spans inside it.
  std::vector<std::pair<std::string, bool>> candidates;
  for (auto& block : fenced_blocks(text)) candidates.emplace_back(std::move(block.body), true);
  candidates.emplace_back(text, true);
  for (auto span : decompose_detail::decompose_bracket_spans(text)) {
    candidates.emplace_back(std::string(span), false);
  }

  bool saw_list = false;
  std::vector<std::string> warnings;
  for (const auto& [candidate, whole] : candidates) {
    const auto value = json::parse(candidate, nullptr, false);
    if (value.is_discarded()) continue;
    const auto items = decompose_detail::decompose_items(value, whole);
    if (!items || items->empty()) continue;
    saw_list = true;
    Decomposition built = decompose_detail::decompose_build(*items, request, max_subtasks);
    if (!built.subtasks.empty()) return built;
    if (warnings.empty()) warnings = std::move(built.warnings);
  }
  Decomposition out = fallback_decomposition(
      request, saw_list ? "the model's subtask list had no usable item"
                        : "the model's answer contains no JSON list of subtasks");
  out.warnings = std::move(warnings);
  return out;
}

nlohmann::json to_json(const Decomposition& decomposition) {
  using nlohmann::json;
  json subtasks = json::array();
  for (const auto& s : decomposition.subtasks) {
    json j = {{"taskId", s.task_id},       {"kind", s.kind},
              {"input", s.input},          {"language", s.language},
              {"timeoutMs", s.timeout_ms}, {"snapshotRef", s.snapshot_ref},
              {"subtaskIndex", s.index}};
    if (!s.depends_on.empty()) j["dependsOn"] = s.depends_on;
    subtasks.push_back(std::move(j));
  }
  json out = {{"subtasks", std::move(subtasks)}, {"fallback", decomposition.fallback}};
  if (decomposition.fallback) out["fallbackReason"] = decomposition.fallback_reason;
  if (!decomposition.warnings.empty()) out["warnings"] = decomposition.warnings;
  return out;
}

}  // namespace edgecoder::model
