#include "net/stream_parsers.h"

#include <charconv>
#include <utility>

namespace edgecoder::net {

namespace parsers_detail {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

core::Error line_too_long(std::size_t max_line_bytes) {
  return core::make_error(core::Errc::invalid_argument,
                          "stream line longer than " + std::to_string(max_line_bytes) + " bytes");
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

}  // namespace parsers_detail

core::Result<std::vector<std::string>> LineSplitter::feed(std::string_view bytes) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  if (last_was_cr_ && !bytes.empty()) {
    last_was_cr_ = false;
    if (bytes.front() == '\n') pos = 1;  // second half of a "\r\n" split across pieces
  }
  while (pos < bytes.size()) {
    const std::size_t end = bytes.find_first_of("\r\n", pos);
    const std::string_view segment =
        bytes.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (partial_.size() + segment.size() > max_line_bytes_) {
      return parsers_detail::line_too_long(max_line_bytes_);
    }
    partial_.append(segment);
    if (end == std::string_view::npos) break;
    lines.push_back(std::move(partial_));
    partial_.clear();
    pos = end + 1;
    if (bytes[end] == '\r') {
      if (pos == bytes.size()) {
        last_was_cr_ = true;  // the matching "\n" may start the next piece
      } else if (bytes[pos] == '\n') {
        ++pos;
      }
    }
  }
  return lines;
}

std::optional<std::string> LineSplitter::finish() {
  last_was_cr_ = false;
  if (partial_.empty()) return std::nullopt;
  std::string line = std::move(partial_);
  partial_.clear();
  return line;
}

core::Result<std::vector<SseEvent>> SseParser::feed(std::string_view bytes) {
  auto lines = lines_.feed(bytes);
  if (!lines) return lines.error();
  std::vector<SseEvent> events;
  for (std::string& owned : *lines) {
    std::string_view line = owned;
    // The BOM is removed from the first line rather than from the first bytes, so that a BOM
    // split across pieces is still recognised (it never contains a line break).
    if (first_bytes_) {
      first_bytes_ = false;
      if (line.starts_with(parsers_detail::kUtf8Bom)) line.remove_prefix(3);
    }
    if (line.empty()) {
      if (has_data_) {
        if (current_.event.empty()) current_.event = "message";
        current_.id = last_id_;
        events.push_back(std::move(current_));
      }
      // retry_ms set in a block without data is kept for the next dispatched event.
      std::optional<long> pending_retry =
          has_data_ ? std::nullopt : std::exchange(current_.retry_ms, std::nullopt);
      current_ = SseEvent{};
      current_.retry_ms = pending_retry;
      has_data_ = false;
      continue;
    }
    if (line.front() == ':') continue;  // comment (often a keep-alive)
    std::string_view field = line;
    std::string_view value;
    if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "event") {
      current_.event.assign(value);
    } else if (field == "data") {
      if (has_data_) current_.data.push_back('\n');
      current_.data.append(value);
      has_data_ = true;
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
    } else if (field == "retry") {
      long ms = 0;
      const bool digits_only =
          !value.empty() && value.find_first_not_of("0123456789") == std::string_view::npos;
      if (digits_only) {
        auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
        if (ec == std::errc{} && ptr == value.data() + value.size()) current_.retry_ms = ms;
      }
    }
    // Any other field name is ignored, per the spec.
  }
  return events;
}

core::Result<std::vector<std::string>> NdjsonParser::feed(std::string_view bytes) {
  auto lines = lines_.feed(bytes);
  if (!lines) return lines.error();
  std::vector<std::string> out;
  out.reserve(lines->size());
  for (std::string& line : *lines) {
    if (!parsers_detail::is_blank(line)) out.push_back(std::move(line));
  }
  return out;
}

std::optional<std::string> NdjsonParser::finish() {
  auto line = lines_.finish();
  if (!line || parsers_detail::is_blank(*line)) return std::nullopt;
  return line;
}

}  // namespace edgecoder::net
