// Incremental parsers for streamed bodies: lines (NDJSON) and Server-Sent Events. They accept
// bytes in pieces of any size — a line or an event may be split across reads at any position,
// including inside a "\r\n" pair — and emit complete items.
// Thread-safety: one parser per stream; not shared.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace edgecoder::net {

// Splits on "\n", "\r\n" or "\r". A line longer than max_line_bytes is an error.
class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line_bytes = 16 * 1024 * 1024)
      : max_line_bytes_(max_line_bytes) {}
  core::Result<std::vector<std::string>> feed(std::string_view bytes);
  // The unterminated last line, if any, at the end of the stream.
  std::optional<std::string> finish();

 private:
  std::size_t max_line_bytes_;
  std::string partial_;
  bool last_was_cr_ = false;  // a "\r" ended the previous piece; a leading "\n" is its pair
};

struct SseEvent {
  std::string event;  // "message" when the stream did not name it
  std::string data;   // data lines joined with "\n"
  std::string id;
  std::optional<long> retry_ms;
};

// The WHATWG event-stream rules: comments (":") ignored, "data" lines joined, an event is
// dispatched on a blank line, a leading space after the colon is dropped, a BOM is dropped.
class SseParser {
 public:
  core::Result<std::vector<SseEvent>> feed(std::string_view bytes);
  // An event left without its terminating blank line is discarded, per the spec.
  std::string last_event_id() const { return last_id_; }

 private:
  LineSplitter lines_;
  SseEvent current_;
  bool has_data_ = false;
  bool first_bytes_ = true;
  std::string last_id_;
};

// NDJSON: one JSON value per non-empty line. Each line is returned as text; the caller parses
// (nlohmann::json::parse(line, nullptr, false)).
class NdjsonParser {
 public:
  core::Result<std::vector<std::string>> feed(std::string_view bytes);
  std::optional<std::string> finish();

 private:
  LineSplitter lines_;
};

}  // namespace edgecoder::net
