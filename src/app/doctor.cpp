#include "app/doctor.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/agent.h"
#include "core/log.h"
#include "ide/service.h"
#include "model/provider.h"
#include "net/client.h"
#include "sandbox/sandbox.h"
#include "store/cli.h"

namespace edgecoder::app {
namespace doctor_detail {

namespace asio = boost::asio;

struct Check {
  std::string name;
  enum class State { ok, failed, skipped } state = State::ok;
  std::string found;               // what was found
  std::string fix;                 // what to set or do, for a failure
  std::vector<std::string> notes;  // warnings that do not fail the check
};

void print_check(const Check& c) {
  const char* tag = c.state == Check::State::ok       ? "ok  "
                    : c.state == Check::State::failed ? "FAIL"
                                                      : "skip";
  std::printf("%s  %-12s %s\n", tag, c.name.c_str(), c.found.c_str());
  for (const auto& note : c.notes) std::printf("      %-12s note: %s\n", "", note.c_str());
  if (c.state == Check::State::failed && !c.fix.empty()) {
    std::printf("      %-12s fix:  %s\n", "", c.fix.c_str());
  }
  std::fflush(stdout);
}

Check failed(std::string name, std::string found, std::string fix) {
  Check c;
  c.name = std::move(name);
  c.state = Check::State::failed;
  c.found = std::move(found);
  c.fix = std::move(fix);
  return c;
}

Check skipped(std::string name, std::string why) {
  Check c;
  c.name = std::move(name);
  c.state = Check::State::skipped;
  c.found = std::move(why);
  return c;
}

bool mode_is(core::Mode mode, std::initializer_list<core::Mode> modes) {
  return std::find(modes.begin(), modes.end(), mode) != modes.end();
}

Check check_sandbox(const core::Config& config) {
  auto options = sandbox::options_from_settings(config.settings, config.data_dir);
  if (!options) {
    return failed("sandbox", options.error().detail, "correct the setting named above");
  }
  const sandbox::ProbeReport report = sandbox::probe(*options);
  Check c;
  c.name = "sandbox";
  c.found = "SANDBOX_MODE=" + std::string(sandbox::mode_name(report.mode));
  if (!report.ready) {
    c.state = Check::State::failed;
    c.found += ": " + report.problem;
    c.fix = report.fix;
    return c;
  }
  std::string languages;
  for (sandbox::Language l : report.languages) {
    languages += (languages.empty() ? "" : ", ") + std::string(sandbox::language_name(l));
  }
  c.found += " works; languages: " + (languages.empty() ? std::string("none") : languages);
  c.notes = report.warnings;
  const bool said = std::any_of(c.notes.begin(), c.notes.end(), [&](const std::string& w) {
    return w.find(report.cgroup) != std::string::npos;
  });
  if (!report.cgroup.empty() && !said) c.notes.push_back(report.cgroup);
  return c;
}

template <typename T>
asio::awaitable<void> doctor_store_result(asio::awaitable<T> task, std::optional<T>* out) {
  auto result = co_await std::move(task);
  out->emplace(std::move(result));
}

Check check_model(const core::Config& config) {
  auto provider_config = model::provider_config_from(config.settings);
  if (!provider_config) {
    return failed("model", provider_config.error().detail, "correct the setting named above");
  }
  const std::string kind(model::provider_kind_name(provider_config->kind));
  asio::io_context io;
  auto provider = model::make_provider(*provider_config, io.get_executor(), nullptr);
  if (!provider) return failed("model", provider.error().detail, "correct the provider settings");
  if (!(*provider)->is_llm()) {
    Check c;
    c.name = "model";
    c.found = kind + ": the built-in deterministic offline provider (for demos and tests)";
    c.notes.push_back(
        "answers are canned, not generated: set OLLAMA_HOST (or the OpenAI settings) for a real "
        "model");
    return c;
  }
  std::optional<core::Result<std::vector<model::ModelInfo>>> models;
  asio::co_spawn(io, doctor_store_result((*provider)->list_models(), &models), asio::detached);
  io.run();
  const std::string where = kind + " at " + provider_config->base_url;
  if (!models || !*models) {
    return failed("model", where + ": " + (models ? (*models).error().detail : "no answer"),
                  "start the model server there, or point the provider settings at it "
                  "(docs/inference.md)");
  }
  Check c;
  c.name = "model";
  std::string names;
  bool has_configured = provider_config->model.empty();
  for (const auto& m : **models) {
    names += (names.empty() ? "" : ", ") + m.name;
    if (m.name == provider_config->model) has_configured = true;
  }
  c.found = where + ": " + std::to_string((*models)->size()) + " model(s)" +
            (names.empty() ? std::string() : " (" + names + ")");
  if (!has_configured) {
    c.state = Check::State::failed;
    c.found += "; the configured model " + provider_config->model + " is not there";
    c.fix = kind == "ollama" ? "ollama pull " + provider_config->model
                             : "configure a model the server has";
  }
  return c;
}

// The coordinators the mode would use, as the agent or the IDE provider reads them: each must
// answer /health (an agent fails over between several).
Check check_coordinator(const core::Config& config) {
  std::vector<std::string> urls;
  if (config.mode == core::Mode::agent) {
    auto options = agent::agent_options_from(config);
    if (!options) {
      return failed("coordinator", options.error().detail, "correct the setting named above");
    }
    urls = options->coordinator_urls;
  } else {
    auto options = ide::ide_options_from(config);
    if (!options) {
      return failed("coordinator", options.error().detail, "correct the setting named above");
    }
    if (options->coordinator_url.empty()) {
      return skipped("coordinator", "COORDINATOR_URL is not set (the mesh route is off)");
    }
    urls = {options->coordinator_url};
  }
  Check c;
  c.name = "coordinator";
  for (const auto& url : urls) {
    net::ClientRequest request;
    request.url = url + "/health";
    net::ClientOptions options;
    options.connect_timeout = std::chrono::seconds(5);
    options.total_timeout = std::chrono::seconds(10);
    auto answer = net::fetch(request, options);
    std::string line = url;
    if (!answer) {
      line += ": " + answer.error().detail;
      c.state = Check::State::failed;
    } else if (answer->status != 200) {
      line += ": /health answered " + std::to_string(answer->status);
      c.state = Check::State::failed;
    } else {
      line += ": answers";
    }
    c.found += (c.found.empty() ? "" : "; ") + line;
  }
  if (c.state == Check::State::failed) {
    c.fix = "start the coordinator, or correct COORDINATOR_URL (reachable from this machine)";
  }
  return c;
}

}  // namespace doctor_detail

int run_doctor(const core::Config& config) {
  using namespace doctor_detail;
  using core::Mode;
  // The checks report what they find; routine log lines would only repeat it.
  if (!core::log::enabled(core::log::Level::debug)) core::log::set_level(core::log::Level::error);
  std::printf("edgecoder doctor: mode %s, data directory %s\n",
              std::string(core::mode_name(config.mode)).c_str(), config.data_dir.c_str());
  bool ok = true;
  auto report = [&](const Check& c) {
    print_check(c);
    if (c.state == Check::State::failed) ok = false;
  };
  if (mode_is(config.mode, {Mode::all_in_one, Mode::agent, Mode::ide_provider})) {
    report(check_sandbox(config));
  } else {
    report(skipped("sandbox", "not used in this mode"));
  }
  if (mode_is(config.mode, {Mode::all_in_one, Mode::inference, Mode::agent, Mode::ide_provider})) {
    report(check_model(config));
  } else {
    report(skipped("model", "not used in this mode"));
  }
  if (mode_is(config.mode, {Mode::agent, Mode::ide_provider})) {
    report(check_coordinator(config));
  } else {
    report(skipped("coordinator", "not used in this mode"));
  }
  if (mode_is(config.mode, {Mode::all_in_one, Mode::coordinator, Mode::control_plane})) {
    std::printf("....  store        `edgecoder db status`:\n");
    std::fflush(stdout);
    const int rc = store::run_db_verb({"status"}, config);
    Check c;
    c.name = "store";
    if (rc == 0) {
      c.found = "readable; its schema is listed above";
    } else {
      c.state = Check::State::failed;
      c.found = "cannot be read (see above)";
      c.fix = "check EDGECODER_DATA_DIR or DATABASE_URL, then `edgecoder db migrate`";
    }
    report(c);
  } else {
    report(skipped("store", "not used in this mode"));
  }
  std::printf("%s\n", ok ? "edgecoder doctor: nothing to fix"
                         : "edgecoder doctor: something to fix (see FAIL above)");
  return ok ? 0 : 1;
}

}  // namespace edgecoder::app
