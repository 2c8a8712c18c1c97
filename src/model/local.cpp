// The edgecoder-local stub provider (see local.h for its rules).
#include "model/local.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/extract.h"
#include "model/prompts.h"
#include "model/provider.h"

namespace edgecoder::model {

namespace local_detail {

using nlohmann::json;

constexpr std::size_t kLocalEchoChars = 120;

std::string local_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view local_trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

bool local_has(std::string_view text, std::string_view word) {
  return text.find(word) != std::string_view::npos;
}

// A string literal both Python and JavaScript accept (JSON escaping, UTF-8 kept).
std::string local_quote(std::string_view s) { return json(std::string(s)).dump(); }

// The first `max` characters, not cutting a UTF-8 sequence.
std::string local_prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

// Integers in the text (at most 9 digits each, so they fit comfortably).
std::vector<long long> local_numbers(std::string_view text) {
  std::vector<long long> out;
  for (std::size_t i = 0; i < text.size();) {
    if (std::isdigit(static_cast<unsigned char>(text[i])) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])) != 0) ++j;
    // "Subtask 2 result: 88" in the coordinator's context block: the label's number is not data.
    const bool label = i >= 8 && text.substr(i - 8, 8) == "Subtask ";
    if (j - i <= 9 && !label) {
      long long v = std::stoll(std::string(text.substr(i, j - i)));
      if (i > 0 && text[i - 1] == '-') v = -v;
      out.push_back(v);
    }
    i = j;
  }
  return out;
}

std::optional<std::string> local_quoted(std::string_view text) {
  for (char q : {'"', '\''}) {
    const auto open = text.find(q);
    if (open == std::string_view::npos) continue;
    const auto close = text.find(q, open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      return std::string(text.substr(open + 1, close - open - 1));
    }
  }
  return std::nullopt;
}

bool local_code_like(std::string_view task) {
  const std::string_view t = local_trim(task);
  for (std::string_view marker : {"print(", "console.log("}) {
    if (local_has(t, marker)) return true;
  }
  for (std::string_view start :
       {"def ", "function ", "const ", "let ", "var ", "import ", "class ", "#!/"}) {
    if (t.starts_with(start)) return true;
  }
  if (!local_has(t, "\n")) return false;
  std::size_t pos = 0;
  while (pos < t.size()) {
    const auto nl = t.find('\n', pos);
    const std::string_view line =
        local_trim(t.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    if (!line.empty() &&
        (line.back() == ':' || line.back() == ';' || line.back() == '{' || line.back() == '}')) {
      return true;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return false;
}

std::string local_join(const std::vector<long long>& nums) {
  std::string out;
  for (std::size_t i = 0; i < nums.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(nums[i]);
  }
  return out;
}

// The program body for a recognised task kind, or nullopt.
std::optional<std::string> local_recognised(std::string_view task, bool js) {
  const std::string lower = local_lower(task);
  const auto nums = local_numbers(task);
  if (local_has(lower, "hello") && local_has(lower, "world")) {
    return js ? "console.log(\"Hello, world!\");" : "print(\"Hello, world!\")";
  }
  if (local_has(lower, "factorial") && !nums.empty()) {
    const long long n = std::clamp<long long>(nums.front(), 0, 500);
    const std::string ns = std::to_string(n);
    if (js) {
      return "let result = 1n;\nfor (let i = 2n; i <= " + ns +
             "n; i++) {\n  result *= i;\n}\nconsole.log(result.toString());";
    }
    return "result = 1\nfor i in range(2, " + ns + " + 1):\n    result *= i\nprint(result)";
  }
  if (local_has(lower, "fibonacci") && !nums.empty()) {
    const std::string ns = std::to_string(std::clamp<long long>(nums.front(), 0, 500));
    if (js) {
      return "const out = [];\nlet a = 0n, b = 1n;\nfor (let i = 0; i < " + ns +
             "; i++) {\n  out.push(a);\n  [a, b] = [b, a + b];\n}\nconsole.log(out.join(\", "
             "\"));";
    }
    return "out = []\na, b = 0, 1\nfor _ in range(" + ns +
           "):\n    out.append(a)\n    a, b = b, a + b\nprint(\", \".join(str(x) for x in out))";
  }
  if (local_has(lower, "prime") && !nums.empty()) {
    const std::string ns = std::to_string(std::clamp<long long>(nums.back(), 0, 100000));
    if (js) {
      return "const out = [];\nfor (let n = 2; n <= " + ns +
             "; n++) {\n  let prime = true;\n  for (let d = 2; d * d <= n; d++) {\n    if (n % d "
             "=== 0) { prime = false; break; }\n  }\n  if (prime) out.push(n);\n}\n"
             "console.log(out.join(\", \"));";
    }
    return "out = []\nfor n in range(2, " + ns +
           " + 1):\n    if all(n % d for d in range(2, int(n ** 0.5) + 1)):\n        "
           "out.append(n)\nprint(\", \".join(str(x) for x in out))";
  }
  if ((local_has(lower, "sum") || local_has(lower, "add") || local_has(lower, "total")) &&
      nums.size() >= 2) {
    // "from 1 to 100", "1..100", "1 through 100" (not "a program to add 2 and 5").
    bool range = false;
    if (nums.size() == 2) {
      const std::string a = std::to_string(nums[0]);
      const std::string b = std::to_string(nums[1]);
      range = local_has(lower, a + " to " + b) || local_has(lower, a + ".." + b) ||
              local_has(lower, a + " through " + b);
    }
    if (range) {
      const std::string a = std::to_string(nums[0]);
      const std::string b = std::to_string(nums[1]);
      if (js) {
        return "let total = 0;\nfor (let i = " + a + "; i <= " + b +
               "; i++) {\n  total += i;\n}\nconsole.log(total);";
      }
      return "print(sum(range(" + a + ", " + b + " + 1)))";
    }
    if (js) {
      return "const numbers = [" + local_join(nums) +
             "];\nconsole.log(numbers.reduce((a, b) => a + b, 0));";
    }
    return "numbers = [" + local_join(nums) + "]\nprint(sum(numbers))";
  }
  if ((local_has(lower, "multiply") || local_has(lower, "product")) && nums.size() >= 2) {
    if (js) {
      return "const numbers = [" + local_join(nums) +
             "];\nconsole.log(numbers.reduce((a, b) => a * b, 1));";
    }
    return "result = 1\nfor n in [" + local_join(nums) + "]:\n    result *= n\nprint(result)";
  }
  if (const auto text = local_quoted(task)) {
    const std::string q = local_quote(*text);
    if (local_has(lower, "reverse")) {
      return js ? "console.log(Array.from(" + q + ").reverse().join(\"\"));"
                : "print(" + q + "[::-1])";
    }
    if (local_has(lower, "uppercase") || local_has(lower, "upper case") ||
        local_has(lower, "upper-case")) {
      return js ? "console.log(" + q + ".toUpperCase());" : "print(" + q + ".upper())";
    }
  }
  return std::nullopt;
}

struct LocalStep {
  std::string text;
  std::string language;
  bool numbered = false;
  std::optional<std::vector<int>> after;  // 1-based step numbers from "(after 1, 3)"
};

// "1. x", "2) x" -> numbered; "- x", "* x", "• x" -> bullet.
std::optional<LocalStep> local_step_line(std::string_view line) {
  line = local_trim(line);
  LocalStep step;
  std::size_t i = 0;
  while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])) != 0) ++i;
  if (i > 0 && i < line.size() - 1 && (line[i] == '.' || line[i] == ')') && line[i + 1] == ' ') {
    step.numbered = true;
    line = local_trim(line.substr(i + 2));
  } else if (line.size() > 2 && (line[0] == '-' || line[0] == '*') && line[1] == ' ') {
    line = local_trim(line.substr(2));
  } else if (line.starts_with("\xE2\x80\xA2 ")) {
    line = local_trim(line.substr(4));
  } else {
    return std::nullopt;
  }
  if (line.empty()) return std::nullopt;
  const std::string lower = local_lower(line);
  for (std::string_view prefix : {"python:", "javascript:", "js:", "py:"}) {
    if (lower.starts_with(prefix)) {
      step.language = *normalise_language(prefix.substr(0, prefix.size() - 1));
      line = local_trim(line.substr(prefix.size()));
      break;
    }
  }
  if (line.ends_with(")")) {
    const auto open = local_lower(line).rfind("(after ");
    if (open != std::string::npos) {
      std::vector<int> after;
      for (long long n : local_numbers(line.substr(open))) after.push_back(static_cast<int>(n));
      step.after = std::move(after);
      line = local_trim(line.substr(0, open));
    }
  }
  step.text = std::string(line);
  return step;
}

std::vector<LocalStep> local_steps(std::string_view task) {
  std::vector<LocalStep> steps;
  std::size_t pos = 0;
  while (pos <= task.size()) {
    const auto nl = task.find('\n', pos);
    const auto line =
        task.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (auto step = local_step_line(line)) steps.push_back(std::move(*step));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (steps.size() >= 2) return steps;
  steps.clear();
  // One line: "A, then B, then C".
  const std::string lower = local_lower(task);
  std::vector<std::string> parts;
  std::size_t from = 0;
  for (;;) {
    auto at = lower.find(" then ", from);
    if (at == std::string::npos) {
      parts.emplace_back(task.substr(from));
      break;
    }
    std::size_t end = at;
    while (end > from && (task[end - 1] == ',' || task[end - 1] == ';')) --end;
    parts.emplace_back(task.substr(from, end - from));
    from = at + 6;
  }
  if (parts.size() < 2) return steps;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    std::string_view p = local_trim(parts[k]);
    if (k == 0 && local_lower(p).starts_with("first ")) p = local_trim(p.substr(6));
    while (!p.empty() && (p.back() == '.' || p.back() == ',')) p.remove_suffix(1);
    if (p.empty()) return {};
    LocalStep step;
    step.text = std::string(p);
    step.numbered = true;
    steps.push_back(std::move(step));
  }
  return steps;
}

// Splits text into streamable tokens: each word with the whitespace after it.
std::vector<std::string> local_tokens(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool space = std::isspace(static_cast<unsigned char>(text[i])) != 0;
    const bool next_is_word =
        i + 1 < text.size() && std::isspace(static_cast<unsigned char>(text[i + 1])) == 0;
    if (space && next_is_word) {
      out.emplace_back(text.substr(start, i + 1 - start));
      start = i + 1;
    }
  }
  if (start < text.size()) out.emplace_back(text.substr(start));
  return out;
}

class LocalTokenStream final : public TokenStream {
 public:
  explicit LocalTokenStream(std::string text) : tokens_(local_tokens(text)) {
    stats_.model = "edgecoder-local";
    stats_.done_reason = "stop";
    stats_.completion_tokens = static_cast<std::int64_t>(tokens_.size());
  }

  asio::awaitable<core::Result<std::optional<std::vector<std::string>>>> next() override {
    if (next_ >= tokens_.size()) co_return std::nullopt;
    std::vector<std::string> piece{std::move(tokens_[next_++])};
    co_return std::optional<std::vector<std::string>>(std::move(piece));
  }
  const StreamStats& stats() const override { return stats_; }

 private:
  std::vector<std::string> tokens_;
  std::size_t next_ = 0;
  StreamStats stats_;
};

class LocalProvider final : public Provider {
 public:
  explicit LocalProvider(ProviderConfig config) : config_(std::move(config)) {}

  ProviderKind kind() const override { return ProviderKind::edgecoder_local; }
  bool is_llm() const override { return false; }
  bool needs_server() const override { return false; }
  const ProviderConfig& config() const override { return config_; }

  asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> generate(
      GenerateRequest request) override {
    std::unique_ptr<TokenStream> out =
        std::make_unique<LocalTokenStream>(local_answer(request.prompt));
    co_return out;
  }

  asio::awaitable<core::Result<std::unique_ptr<TokenStream>>> chat(ChatRequest request) override {
    std::string last;
    for (const auto& m : request.messages) {
      if (m.role == "user") last = m.content;
    }
    std::unique_ptr<TokenStream> out = std::make_unique<LocalTokenStream>(local_chat_answer(last));
    co_return out;
  }

  asio::awaitable<core::Result<std::vector<ModelInfo>>> list_models() override {
    ModelInfo info;
    info.name = "edgecoder-local";
    info.family = "rules (not an LLM)";
    co_return std::vector<ModelInfo>{info};
  }

  asio::awaitable<core::Result<ModelInfo>> show_model(std::string name) override {
    if (name != "edgecoder-local") {
      co_return model_not_found("edgecoder-local has no model '" + name +
                                "'; it is a deterministic stub with one model, edgecoder-local");
    }
    ModelInfo info;
    info.name = name;
    info.family = "rules (not an LLM)";
    co_return info;
  }

  asio::awaitable<core::Result<std::string>> server_version() override {
    co_return std::string(kLocalLabel);
  }

  asio::awaitable<core::Result<std::unique_ptr<PullStream>>> pull(std::string name) override {
    co_return core::Error(core::Errc::invalid_argument, "model_pull_unsupported",
                          "edgecoder-local cannot download models ('" + name +
                              "'); set LOCAL_MODEL_PROVIDER=ollama-local");
  }

 private:
  const ProviderConfig config_;
};

}  // namespace local_detail

std::string local_code(std::string_view task, std::string_view language) {
  const bool js = normalise_language(language).value_or("python") == "javascript";
  const std::string_view trimmed = local_detail::local_trim(task);
  if (local_detail::local_code_like(trimmed)) return std::string(trimmed);
  const std::string header = std::string(js ? "// " : "# ") + std::string(kLocalLabel) + "\n";
  if (auto body = local_detail::local_recognised(trimmed, js)) return header + *body + "\n";
  const std::string q =
      local_detail::local_quote("edgecoder-local: " + local_detail::local_prefix(trimmed, 200));
  return header + (js ? "console.log(" + q + ");\n" : "print(" + q + ")\n");
}

std::string local_decompose(std::string_view task, std::string_view language) {
  using nlohmann::json;
  const std::string lang = normalise_language(language).value_or("python");
  const auto steps = local_detail::local_steps(task);
  json out = json::array();
  if (steps.size() < 2) {
    out.push_back({{"input", std::string(local_detail::local_trim(task))}, {"language", lang}});
    return out.dump();
  }
  for (std::size_t k = 0; k < steps.size(); ++k) {
    const auto& step = steps[k];
    json item = {{"input", step.text}, {"language", step.language.empty() ? lang : step.language}};
    std::vector<int> deps;
    if (step.after) {
      for (int n : *step.after) {
        if (n >= 1 && static_cast<std::size_t>(n) <= k) deps.push_back(n - 1);
      }
    } else if (step.numbered && k > 0) {
      deps.push_back(static_cast<int>(k) - 1);
    }
    if (!deps.empty()) item["dependsOn"] = deps;
    out.push_back(std::move(item));
  }
  return out.dump();
}

std::string local_answer(std::string_view prompt) {
  const ParsedPrompt parsed = parse_prompt(prompt);
  switch (parsed.kind) {
    case PromptKind::code:
    case PromptKind::reflect:
      return local_code(parsed.task, parsed.language);
    case PromptKind::plan:
      return "1. Parse the requirements.\n2. Write minimal valid code.\n3. Run it and report "
             "the result.\nTask: " +
             local_detail::local_prefix(local_detail::local_trim(parsed.task),
                                        local_detail::kLocalEchoChars);
    case PromptKind::decompose:
      return local_decompose(parsed.task, parsed.language);
    case PromptKind::other:
      break;
  }
  return "edgecoder-local: " + local_detail::local_prefix(local_detail::local_trim(prompt),
                                                          local_detail::kLocalEchoChars);
}

std::string local_chat_answer(std::string_view message) {
  if (parse_prompt(message).kind != PromptKind::other) return local_answer(message);
  const std::string lower = local_detail::local_lower(message);
  const std::string label = "[" + std::string(kLocalLabel) + "] ";
  bool wants_code = false;
  for (std::string_view w :
       {"code", "program", "script", "function", "write", "print", "calculate", "compute"}) {
    wants_code = wants_code || local_detail::local_has(lower, w);
  }
  if (wants_code) {
    const bool js = local_detail::local_has(lower, "javascript") ||
                    local_detail::local_has(lower, " js") || local_detail::local_has(lower, "node");
    const std::string lang = js ? "javascript" : "python";
    return label + "A program built from fixed rules, not by a model:\n\n```" + lang + "\n" +
           local_code(message, lang) + "```\n";
  }
  return label +
         "No language model is configured on this node (LOCAL_MODEL_PROVIDER=edgecoder-local), "
         "so answers come from fixed rules. Set LOCAL_MODEL_PROVIDER=ollama-local or openai for "
         "real answers. You wrote: \"" +
         local_detail::local_prefix(local_detail::local_trim(message), 200) + "\"";
}

namespace detail {
std::unique_ptr<Provider> make_local(ProviderConfig config) {
  return std::make_unique<local_detail::LocalProvider>(std::move(config));
}
}  // namespace detail

}  // namespace edgecoder::model
