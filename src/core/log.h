// Logging: one key=value line per event on stderr (journald adds the time under systemd).
// Callers pass an event name and fields; values are quoted when needed. Never log a secret:
// pass tokens through redact() if they must be mentioned at all.
// Thread-safety: all functions may be called from any thread after init().
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/result.h"

namespace edgecoder::core::log {

enum class Level { trace, debug, info, warn, error, off };

Result<Level> parse_level(std::string_view name);
std::string_view level_name(Level level);

// Sets up the stderr sink. Safe to call more than once (the last level wins).
void init(Level level);
void set_level(Level level);
bool enabled(Level level);

// One key=value field. The value is formatted at construction.
struct Field {
  std::string_view key;
  std::string value;

  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  template <typename T,
            std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Field(std::string_view k, T v) : key(k), value(std::to_string(v)) {}
};

// Writes `level=<l> sub=<subsystem> event=<event> k=v ...`.
void write(Level level, std::string_view subsystem, std::string_view event,
           std::initializer_list<Field> fields = {});

inline void debug(std::string_view sub, std::string_view event,
                  std::initializer_list<Field> f = {}) {
  write(Level::debug, sub, event, f);
}
inline void info(std::string_view sub, std::string_view event,
                 std::initializer_list<Field> f = {}) {
  write(Level::info, sub, event, f);
}
inline void warn(std::string_view sub, std::string_view event,
                 std::initializer_list<Field> f = {}) {
  write(Level::warn, sub, event, f);
}
inline void error(std::string_view sub, std::string_view event,
                  std::initializer_list<Field> f = {}) {
  write(Level::error, sub, event, f);
}

// Formats one key=value line without writing it (used by write(); exposed for tests).
std::string format_line(Level level, std::string_view subsystem, std::string_view event,
                        std::initializer_list<Field> fields);

}  // namespace edgecoder::core::log
