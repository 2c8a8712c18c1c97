// Configuration: every setting EdgeCoder knows, where its value came from, and the typed view
// the foundation needs. Precedence (lowest first): built-in defaults < env file (--env-file, else
// /etc/edgecoder/edgecoder.env when readable) < process environment < command line. A secret
// NAME may instead come from a file named by NAME_FILE, or from $CREDENTIALS_DIRECTORY/NAME
// (systemd credentials). Values are validated once at start; errors name the setting.
// Thread-safety: immutable after load; safe to read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace edgecoder::core {

struct SettingSpec {
  std::string_view name;
  std::string_view default_value;
  std::string_view help;
  bool secret = false;
};

// Every setting EdgeCoder reads, in documentation order. Later services append theirs here so
// that `config show` and the packaged env file stay complete.
std::span<const SettingSpec> known_settings();
const SettingSpec* find_setting(std::string_view name);

enum class Source {
  default_value,
  env_file,
  environment,
  command_line,
  secret_file,
  credential,
  generated
};
std::string_view source_name(Source source);

struct LoadOptions {
  // --env-file; when unset, /etc/edgecoder/edgecoder.env is read if it is readable.
  std::optional<std::filesystem::path> env_file;
  std::filesystem::path default_env_file = "/etc/edgecoder/edgecoder.env";
  // KEY=VALUE pairs from the environment (main passes `environ`).
  std::vector<std::pair<std::string, std::string>> environment;
  // Settings given on the command line (--mode, --log-level, --set KEY=VALUE).
  std::map<std::string, std::string> command_line;
};

// Parses `KEY=VALUE` lines (comments with #, optional `export `, single or double quotes).
// Errors carry the line number.
Result<std::vector<std::pair<std::string, std::string>>> parse_env_file(std::string_view text);

class Settings {
 public:
  static Result<Settings> load(const LoadOptions& options);

  // The resolved value (secrets read from their files). Unknown names are allowed (so a newer
  // service can read a setting before it is listed) but known_settings() is the documentation.
  std::optional<std::string> get(std::string_view name) const;
  std::string get_or(std::string_view name, std::string_view fallback) const;
  Source source(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }

  // Typed getters; an invalid value is an error naming the setting.
  Result<std::int64_t> get_int(std::string_view name, std::int64_t min, std::int64_t max) const;
  Result<bool> get_bool(std::string_view name) const;

  // Sets a value after load (generated secrets); records Source::generated.
  void set_generated(std::string name, std::string value);

  // Every known setting plus any other set value, with secrets shown as "<redacted>" (or
  // "<unset>"). Used by `config show`.
  std::vector<std::pair<std::string, std::string>> redacted() const;
  std::optional<std::filesystem::path> env_file_used() const { return env_file_used_; }

 private:
  struct Value {
    std::string value;
    Source source = Source::default_value;
  };
  std::map<std::string, Value, std::less<>> values_;
  std::optional<std::filesystem::path> env_file_used_;
};

enum class Mode {
  all_in_one,
  coordinator,
  inference,
  control_plane,
  ide_provider,
  portal,
  anchor_proxy,
  agent
};
// Accepts the canonical names and the `worker` alias.
std::optional<Mode> parse_mode(std::string_view name);
std::string_view mode_name(Mode mode);
std::string valid_mode_names();  // "all-in-one, coordinator, ..." for error messages

// The services that have an HTTP listener.
enum class Service { coordinator, inference, control_plane, ide_provider, portal, anchor_proxy };
std::string_view service_name(Service service);
std::vector<Service> services_for(Mode mode);

struct HttpLimits {
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds header_timeout{10'000};  // whole request head must arrive in this
  std::chrono::milliseconds body_timeout{60'000};    // whole request body must arrive in this
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive connection with no request
  std::size_t max_connections = 1024;                // per listener
};

// The typed foundation configuration, validated once at start.
struct Config {
  Mode mode = Mode::all_in_one;
  std::string bind_address = "127.0.0.1";
  std::map<Service, std::uint16_t> ports;
  std::filesystem::path data_dir;
  std::string log_level = "info";
  bool insecure_dev = false;
  std::optional<std::filesystem::path> tls_cert_file;
  std::optional<std::filesystem::path> tls_key_file;
  HttpLimits limits;
  int threads = 0;  // event-loop threads; 0 = min(hardware threads, 4)
  std::chrono::milliseconds drain_timeout{10'000};
  Settings settings;  // raw settings, for service-specific configuration
};

Result<Config> parse_config(Settings settings);

// The secrets a mode needs from its operator; an all-in-one node generates these itself.
std::vector<std::string_view> required_secrets(Mode mode);

// All-in-one: the registration token the node generates for its embedded agent (kept with its
// other secrets); the coordinator in the same node accepts it, so the node's own agent is
// approved without AUTO_APPROVE_AGENTS and is served in either network mode.
inline constexpr std::string_view kSelfAgentTokenSetting = "EDGECODER_SELF_AGENT_TOKEN";
// All-in-one without DISABLE_SELF_AGENT.
bool runs_embedded_agent(const Config& config);

}  // namespace edgecoder::core
