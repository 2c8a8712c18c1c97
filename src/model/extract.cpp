#include "model/extract.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace edgecoder::model {

namespace extract_detail {

std::string extract_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view extract_trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

// A fence line: up to three spaces, then three or more ` or ~. Returns (char, length, info).
struct ExtractFence {
  char ch = 0;
  std::size_t length = 0;
  std::string_view info;
};

std::optional<ExtractFence> extract_fence(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size() && i < 3 && line[i] == ' ') ++i;
  if (i >= line.size() || (line[i] != '`' && line[i] != '~')) return std::nullopt;
  ExtractFence f;
  f.ch = line[i];
  while (i < line.size() && line[i] == f.ch) {
    ++i;
    ++f.length;
  }
  if (f.length < 3) return std::nullopt;
  f.info = extract_trim(line.substr(i));
  return f;
}

// Languages a model may tag code with that are not runnable as Python or JavaScript; used to
// rank untagged blocks above them.
bool extract_non_code_tag(std::string_view tag) {
  static constexpr std::array<std::string_view, 14> kTags = {
      "bash", "sh",  "shell", "console", "text",     "txt", "output",
      "json", "log", "diff",  "zsh",     "terminal", "cmd", "plaintext"};
  return std::find(kTags.begin(), kTags.end(), tag) != kTags.end();
}

}  // namespace extract_detail

std::string strip_think(std::string_view text) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const auto open = text.find("<think>", pos);
    if (open == std::string_view::npos) {
      out.append(text.substr(pos));
      break;
    }
    out.append(text.substr(pos, open - pos));
    const auto close = text.find("</think>", open);
    if (close == std::string_view::npos) break;
    pos = close + 8;
  }
  // A stray closing tag (the opening one was in the prompt or cut off) ends the reasoning too.
  if (const auto stray = out.find("</think>"); stray != std::string::npos) {
    out.erase(0, stray + 8);
  }
  return out;
}

std::vector<FencedBlock> fenced_blocks(std::string_view text) {
  std::vector<FencedBlock> blocks;
  std::optional<extract_detail::ExtractFence> open;
  FencedBlock current;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto nl = text.find('\n', pos);
    const std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    const std::string_view bare =
        !line.empty() && line.back() == '\r' ? line.substr(0, line.size() - 1) : line;
    const auto fence = extract_detail::extract_fence(bare);
    if (!open) {
      if (fence) {
        open = fence;
        current = FencedBlock{};
        const std::string_view info = fence->info;
        current.tag = extract_detail::extract_lower(info.substr(0, info.find_first_of(" \t{")));
      }
    } else if (fence && fence->ch == open->ch && fence->length >= open->length &&
               fence->info.empty()) {
      current.closed = true;
      blocks.push_back(std::move(current));
      open.reset();
    } else {
      current.body.append(bare);
      current.body.push_back('\n');
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (open) {
    current.closed = false;
    // A closing fence glued to the last code line ("print(1)```").
    std::string_view body = extract_detail::extract_trim(current.body);
    const std::string marker(open->length, open->ch);
    if (body.ends_with(marker)) body.remove_suffix(marker.size());
    current.body = std::string(body);
    blocks.push_back(std::move(current));
  }
  for (auto& b : blocks) {
    if (!b.body.empty() && b.body.back() == '\n') b.body.pop_back();
  }
  return blocks;
}

std::optional<std::string> normalise_language(std::string_view name) {
  const std::string n = extract_detail::extract_lower(extract_detail::extract_trim(name));
  if (n == "python" || n == "py" || n == "python3" || n == "py3") return "python";
  if (n == "javascript" || n == "js" || n == "node" || n == "nodejs" || n == "node.js" ||
      n == "mjs" || n == "cjs" || n == "jsx" || n == "ecmascript") {
    return "javascript";
  }
  return std::nullopt;
}

std::string extract_code(std::string_view reply, std::string_view language) {
  const std::string text = strip_think(reply);
  const auto blocks = fenced_blocks(text);
  if (blocks.empty()) return std::string(extract_detail::extract_trim(text));

  const auto wanted = normalise_language(language);
  auto pick = [&](auto&& predicate) {
    std::vector<const FencedBlock*> chosen;
    for (const auto& b : blocks) {
      if (predicate(b)) chosen.push_back(&b);
    }
    return chosen;
  };
  std::vector<const FencedBlock*> chosen = pick([&](const FencedBlock& b) {
    const auto lang = normalise_language(b.tag);
    return lang && (!wanted || *lang == *wanted);
  });
  if (chosen.empty()) chosen = pick([](const FencedBlock& b) { return b.tag.empty(); });
  if (chosen.empty()) {
    chosen = pick([&](const FencedBlock& b) {
      return !extract_detail::extract_non_code_tag(b.tag) && !normalise_language(b.tag);
    });
  }
  if (chosen.empty()) chosen.push_back(&blocks.front());

  std::string out;
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const std::string_view body = extract_detail::extract_trim(chosen[i]->body);
    if (body.empty()) continue;
    // Models often show a piece, then the whole program: keep a block once.
    bool contained = false;
    for (std::size_t j = 0; j < chosen.size() && !contained; ++j) {
      if (j == i) continue;
      const std::string_view other = extract_detail::extract_trim(chosen[j]->body);
      contained = other.size() > body.size() ? other.find(body) != std::string_view::npos
                                             : (other == body && j < i);
    }
    if (contained) continue;
    if (!out.empty()) out += "\n\n";
    out += body;
  }
  return out;
}

}  // namespace edgecoder::model
