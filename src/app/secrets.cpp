#include "app/secrets.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "core/crypto.h"
#include "core/fs.h"
#include "core/log.h"

namespace edgecoder::app {

namespace {

struct RoleSetting {
  std::string_view role;
  std::string_view setting;
};

constexpr RoleSetting kRoles[] = {
    {"mesh", "MESH_AUTH_TOKEN"},           {"admin", "ADMIN_API_TOKEN"},
    {"inference", "INFERENCE_AUTH_TOKEN"}, {"portal", "PORTAL_SERVICE_TOKEN"},
    {"federation", "FEDERATION_TOKEN"},    {"ide", "IDE_PROVIDER_API_KEY"},
    {"metrics", "METRICS_TOKEN"},
};

std::filesystem::path secret_path(const core::Config& config, std::string_view name) {
  return config.data_dir / "secrets" / std::string(name);
}

std::string without_trailing_newlines(std::string value) {
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
    value.pop_back();
  }
  return value;
}

bool secret_is_set(const core::Config& config, std::string_view name) {
  auto value = config.settings.get(name);
  return value && !value->empty();
}

}  // namespace

std::optional<std::string_view> setting_for_role(std::string_view role) {
  for (const auto& r : kRoles) {
    if (r.role == role) {
      return r.setting;
    }
  }
  return std::nullopt;
}

std::string role_names() {
  std::string out;
  for (const auto& r : kRoles) {
    out += out.empty() ? "" : ", ";
    out += r.role;
  }
  return out;
}

core::Result<std::vector<std::string>> prepare_secrets(core::Config& config) {
  std::vector<std::string> missing;
  const auto required = core::required_secrets(config.mode);
  if (config.mode != core::Mode::all_in_one) {
    for (auto name : required) {
      if (!secret_is_set(config, name)) {
        missing.emplace_back(name);
      }
    }
    if (!missing.empty() && !config.insecure_dev) {
      std::string names;
      for (const auto& m : missing) {
        names += names.empty() ? m : ", " + m;
      }
      return core::make_error(
          core::Errc::invalid_argument,
          "mode " + std::string(core::mode_name(config.mode)) + " needs " + names +
              " (set it, or NAME_FILE, or a systemd credential); EDGECODER_INSECURE_DEV=1 runs "
              "without it for development only");
    }
    return missing;
  }

  // All-in-one: the node wires its own parts together with secrets it keeps in its data dir.
  if (auto dir = core::fs::ensure_private_dir(config.data_dir / "secrets"); !dir) {
    return dir.error();
  }
  auto names = required;
  if (core::runs_embedded_agent(config)) names.push_back(core::kSelfAgentTokenSetting);
  for (auto name : names) {
    if (secret_is_set(config, name)) {
      continue;  // the operator's value wins
    }
    const auto path = secret_path(config, name);
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      auto stored = core::fs::read_file(path);
      if (!stored) {
        return stored.error();
      }
      std::string value = without_trailing_newlines(*stored);
      if (!value.empty()) {
        config.settings.set_generated(std::string(name), std::move(value));
        continue;
      }
    }
    std::string token = core::crypto::random_hex(32);
    if (auto written = core::fs::write_private_file(path, token + "\n"); !written) {
      return written.error();
    }
    core::log::info("app", "secret_generated", {{"setting", name}, {"path", path.string()}});
    config.settings.set_generated(std::string(name), std::move(token));
  }
  return missing;
}

std::string effective_secret(const core::Config& config, std::string_view setting) {
  std::string value = config.settings.get_or(std::string(setting), "");
  if (value.empty()) {
    auto stored = core::fs::read_file(secret_path(config, setting));
    if (stored) value = without_trailing_newlines(*stored);
  }
  return value;
}

int token_show(const core::Config& config, std::string_view role) {
  auto setting = setting_for_role(role);
  if (!setting) {
    std::fprintf(stderr, "edgecoder: unknown role '%.*s'; roles: %s\n",
                 static_cast<int>(role.size()), role.data(), role_names().c_str());
    return 2;
  }
  struct stat st {};
  if (::stat(config.data_dir.c_str(), &st) != 0) {
    std::fprintf(stderr, "edgecoder: data directory %s does not exist; start the node once\n",
                 config.data_dir.c_str());
    return 1;
  }
  if (::geteuid() != 0 && ::geteuid() != st.st_uid) {
    std::fprintf(stderr, "edgecoder: only the owner of %s (or root) may read its tokens\n",
                 config.data_dir.c_str());
    return 1;
  }
  const std::string value = effective_secret(config, *setting);
  if (value.empty()) {
    std::fprintf(stderr,
                 "edgecoder: no %.*s yet: set it, or start the all-in-one node once to generate "
                 "it\n",
                 static_cast<int>(setting->size()), setting->data());
    return 1;
  }
  std::printf("%s\n", value.c_str());
  return 0;
}

}  // namespace edgecoder::app
