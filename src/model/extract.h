// Getting code and JSON out of model replies. Models wrap answers in Markdown fences with any tag
// (or none, or a capitalised one), split code over several blocks, put prose around it, and
// reasoning models prepend <think>…</think>. These functions undo all of that.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace edgecoder::model {

// Removes <think>…</think> blocks. An unclosed <think> drops the rest of the text (the answer
// never came).
std::string strip_think(std::string_view text);

struct FencedBlock {
  std::string tag;   // the info string's first word, lower-cased ("python", "", "json", ...)
  std::string body;  // without the fence lines
  bool closed = true;
};
// Markdown fenced blocks (``` or ~~~, three or more, up to three spaces of indent), in order.
// An unclosed last fence runs to the end of the text.
std::vector<FencedBlock> fenced_blocks(std::string_view text);

// "python" or "javascript" for a language name or alias (py, python3, js, node, ...), any case.
std::optional<std::string> normalise_language(std::string_view name);

// The code in a reply, for `language` ("python", "javascript"; empty = either):
// 1. <think> blocks are dropped;
// 2. with fenced blocks, the blocks tagged with the language are used, else the untagged ones,
//    else the ones tagged with another code language, else the first block; several chosen
//    blocks are joined in order (a block repeated inside another is kept once);
// 3. without fences, the whole reply, trimmed.
std::string extract_code(std::string_view reply, std::string_view language = {});

}  // namespace edgecoder::model
