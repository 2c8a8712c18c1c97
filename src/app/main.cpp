// edgecoder: one executable for every runtime mode and verb. Parses the command line and the
// configuration, then either runs a verb (which never starts a server) or runs the node.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "app/doctor.h"
#include "app/node.h"
#include "app/release_verify.h"
#include "app/secrets.h"
#include "app/task_cli.h"
#include "core/config.h"
#include "core/log.h"
#include "sandbox/cli.h"
#include "store/cli.h"

extern char** environ;

namespace {

using edgecoder::core::Config;

std::vector<std::pair<std::string, std::string>> process_environment() {
  std::vector<std::pair<std::string, std::string>> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos) {
      out.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
    }
  }
  return out;
}

int config_show(const Config& config) {
  std::printf("# effective configuration (secrets redacted)\n");
  if (auto file = config.settings.env_file_used()) {
    std::printf("# env file: %s\n", file->c_str());
  }
  for (const auto& [name, value] : config.settings.redacted()) {
    std::printf("%s=%s  # %.*s\n", name.c_str(), value.c_str(),
                static_cast<int>(edgecoder::core::source_name(config.settings.source(name)).size()),
                edgecoder::core::source_name(config.settings.source(name)).data());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{
      "EdgeCoder: self-hosted AI coding mesh. Runs the mode in EDGE_RUNTIME_MODE "
      "(default all-in-one) unless a verb is given."};
  cli.set_version_flag("--version", std::string("edgecoder ") + EDGECODER_VERSION);
  std::string mode, log_level, env_file, data_dir;
  std::vector<std::string> sets;
  cli.add_option("--mode", mode, "runtime mode (overrides EDGE_RUNTIME_MODE)");
  cli.add_option("--log-level", log_level, "trace|debug|info|warn|error|off");
  cli.add_option("--env-file", env_file, "env file (default /etc/edgecoder/edgecoder.env)");
  cli.add_option("--data-dir", data_dir, "data directory (overrides EDGECODER_DATA_DIR)");
  cli.add_option("--set", sets, "KEY=VALUE setting (repeatable; highest precedence)");

  auto* config_cmd = cli.add_subcommand("config", "inspect the configuration");
  auto* config_show_cmd = config_cmd->add_subcommand("show", "print the effective configuration");
  config_cmd->require_subcommand(1);

  auto* token_cmd = cli.add_subcommand("token", "node tokens");
  auto* token_show_cmd = token_cmd->add_subcommand("show", "print a role's token");
  std::string role;
  token_show_cmd->add_option("role", role, "role: " + edgecoder::app::role_names())->required();
  token_cmd->require_subcommand(1);

  auto* db_cmd =
      cli.add_subcommand("db", std::string("the store: ") + edgecoder::store::db_verb_usage());
  db_cmd->prefix_command();  // everything after `db` goes to the store's verb parser

  auto* release_cmd = cli.add_subcommand("release", "release artefacts");
  auto* release_verify_cmd =
      release_cmd->add_subcommand("verify", "verify a signed SHA256SUMS manifest");
  edgecoder::app::ReleaseVerifyOptions verify;
  std::string verify_key;
  bool verify_require_all = false;
  bool verify_no_files = false;
  release_verify_cmd->add_option("manifest", verify.manifest, "SHA256SUMS")->required();
  release_verify_cmd->add_option("signature", verify.signature, "SHA256SUMS.sig")->required();
  release_verify_cmd->add_option("--key", verify_key, "public key file (default: release key)");
  release_verify_cmd->add_flag("--require-all", verify_require_all, "every listed file must exist");
  release_verify_cmd->add_flag("--no-files", verify_no_files, "check only the signature");
  release_cmd->require_subcommand(1);

  auto* doctor_cmd = cli.add_subcommand(
      "doctor",
      "check the sandbox, the model server, the coordinator and the store this mode uses, and "
      "say what to fix (exit 1 when something must be fixed)");

  auto* sandbox_cmd = cli.add_subcommand("sandbox", "the code sandbox (SANDBOX_MODE)");
  auto* sandbox_run_cmd = sandbox_cmd->add_subcommand(
      "run",
      "run one file in the configured sandbox and exit with its exit code (2 usage, 124 timed "
      "out, 125 sandbox unavailable)");
  std::string sandbox_language, sandbox_file;
  sandbox_run_cmd->add_option("--language,-l", sandbox_language, "python|javascript");
  sandbox_run_cmd->add_option("file", sandbox_file, "the program (- = standard input)");
  sandbox_cmd->require_subcommand(1);

  auto* task_cmd =
      cli.add_subcommand("task", "tasks on the coordinator (COORDINATOR_URL or this node)");
  edgecoder::app::TaskVerb task_verb;
  auto* task_submit_cmd = task_cmd->add_subcommand(
      "submit",
      "submit a prompt, show its progress and print the assembled result (Ctrl-C detaches; exit 0 "
      "completed, 1 failed or refused, 130 detached)");
  task_submit_cmd->add_option("prompt", task_verb.prompt, "what to build")->required();
  task_submit_cmd->add_option("--language,-l", task_verb.language, "python|javascript");
  auto* task_show_cmd = task_cmd->add_subcommand("show", "a task's state, subtasks and output");
  task_show_cmd->add_option("id", task_verb.task_id, "task id")->required();
  task_show_cmd->add_flag("--json", task_verb.json, "print the coordinator's JSON");
  auto* task_cancel_cmd = task_cmd->add_subcommand("cancel", "cancel a task");
  task_cancel_cmd->add_option("id", task_verb.task_id, "task id")->required();
  task_cmd->require_subcommand(1);

  auto* status_cmd = cli.add_subcommand("status", "the coordinator's queue and agents");
  bool status_json = false;
  status_cmd->add_flag("--json", status_json, "print the coordinator's JSON");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = cli.exit(e);
    // The sandbox and task verbs document 2 as their usage code.
    return code != 0 && (sandbox_cmd->parsed() || task_cmd->parsed()) ? 2 : code;
  }

  if (release_verify_cmd->parsed()) {
    // Before the configuration: a broken env file must not block verifying a download.
    if (!verify_key.empty()) {
      verify.key_file = verify_key;
    }
    verify.require_all_files = verify_require_all;
    verify.check_files = !verify_no_files;
    return edgecoder::app::release_verify(verify);
  }

  edgecoder::core::LoadOptions load;
  load.environment = process_environment();
  if (!env_file.empty()) {
    load.env_file = env_file;
  }
  if (!mode.empty()) {
    load.command_line["EDGE_RUNTIME_MODE"] = mode;
  }
  if (!log_level.empty()) {
    load.command_line["EDGECODER_LOG_LEVEL"] = log_level;
  }
  if (!data_dir.empty()) {
    load.command_line["EDGECODER_DATA_DIR"] = data_dir;
  }
  for (const auto& kv : sets) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "edgecoder: --set expects KEY=VALUE, got '%s'\n", kv.c_str());
      return 2;
    }
    load.command_line[kv.substr(0, eq)] = kv.substr(eq + 1);
  }

  auto settings = edgecoder::core::Settings::load(load);
  if (!settings) {
    std::fprintf(stderr, "edgecoder: %s\n", settings.error().detail.c_str());
    return 2;
  }
  auto config = edgecoder::core::parse_config(std::move(*settings));
  if (!config) {
    std::fprintf(stderr, "edgecoder: %s\n", config.error().detail.c_str());
    return 2;
  }
  auto level = edgecoder::core::log::parse_level(config->log_level);
  edgecoder::core::log::init(level ? *level : edgecoder::core::log::Level::info);

  if (config_show_cmd->parsed()) {
    return config_show(*config);
  }
  if (db_cmd->parsed()) {
    return edgecoder::store::run_db_verb(db_cmd->remaining(), *config);
  }
  if (doctor_cmd->parsed()) {
    return edgecoder::app::run_doctor(*config);
  }
  if (sandbox_run_cmd->parsed()) {
    return edgecoder::sandbox::run_sandbox_verb(*config, sandbox_language, sandbox_file);
  }
  if (task_submit_cmd->parsed()) {
    return edgecoder::app::task_submit(*config, task_verb);
  }
  if (task_show_cmd->parsed()) {
    return edgecoder::app::task_show(*config, task_verb);
  }
  if (task_cancel_cmd->parsed()) {
    return edgecoder::app::task_cancel(*config, task_verb);
  }
  if (status_cmd->parsed()) {
    return edgecoder::app::status_show(*config, status_json);
  }
  if (token_show_cmd->parsed()) {
    return edgecoder::app::token_show(*config, role);
  }
  return edgecoder::app::run_node(std::move(*config));
}
