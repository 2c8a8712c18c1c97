#include "core/log.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <array>
#include <cctype>
#include <memory>
#include <string>

namespace edgecoder::core::log {
namespace {

spdlog::level::level_enum log_to_spdlog(Level level) {
  switch (level) {
    case Level::trace:
      return spdlog::level::trace;
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warn:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

// The one process logger. Created on first use (so a write before init() still reaches stderr
// at level info) and never registered in spdlog's global registry, so nothing else can replace
// or drop it. The stderr sink is the mutex-protected (_mt) variant: lines never interleave.
spdlog::logger& log_logger() {
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto created = std::make_shared<spdlog::logger>("edgecoder", std::move(sink));
    // Only the message: journald (or the terminal) adds the time, and format_line adds the level.
    created->set_pattern("%v");
    created->set_level(spdlog::level::info);
    // Every line is flushed: a crash must not swallow the last lines before it.
    created->flush_on(spdlog::level::trace);
    return created;
  }();
  return *logger;
}

bool log_needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '"' || c == '=' || u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// Appends `value`, quoted and escaped when it would otherwise break key=value parsing or let a
// caller-controlled string forge extra fields or lines.
void log_append_value(std::string& out, std::string_view value) {
  if (!log_needs_quotes(value)) {
    out.append(value);
    return;
  }
  static constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  out.push_back('"');
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out.append("\\x");
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace

Result<Level> parse_level(std::string_view name) {
  std::string lower;
  lower.reserve(name.size());
  for (char c : name)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "trace") return Level::trace;
  if (lower == "debug") return Level::debug;
  if (lower == "info") return Level::info;
  if (lower == "warn" || lower == "warning") return Level::warn;
  if (lower == "error") return Level::error;
  if (lower == "off") return Level::off;
  return make_error(Errc::invalid_argument,
                    "unknown log level '" + std::string(name) +
                        "' (expected trace, debug, info, warn, error or off)");
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::off:
      return "off";
  }
  return "info";
}

void init(Level level) { set_level(level); }

void set_level(Level level) { log_logger().set_level(log_to_spdlog(level)); }

bool enabled(Level level) {
  return level != Level::off && log_logger().should_log(log_to_spdlog(level));
}

std::string format_line(Level level, std::string_view subsystem, std::string_view event,
                        std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(64 + fields.size() * 24);
  line.append("level=");
  line.append(level_name(level));
  line.append(" sub=");
  log_append_value(line, subsystem);
  line.append(" event=");
  log_append_value(line, event);
  for (const Field& field : fields) {
    line.push_back(' ');
    line.append(field.key);
    line.push_back('=');
    log_append_value(line, field.value);
  }
  return line;
}

void write(Level level, std::string_view subsystem, std::string_view event,
           std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  const std::string line = format_line(level, subsystem, event, fields);
  log_logger().log(log_to_spdlog(level), spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace edgecoder::core::log
