#include "sandbox/cli.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/log.h"
#include "sandbox/sandbox.h"

namespace edgecoder::sandbox {
namespace cli_detail {

constexpr int kUsage = 2;
constexpr int kUnavailable = 125;

void write_all(std::FILE* to, const std::string& text) {
  if (!text.empty()) std::fwrite(text.data(), 1, text.size(), to);
  std::fflush(to);
}

}  // namespace cli_detail

int run_sandbox_verb(const core::Config& config, const std::string& language,
                     const std::string& file) {
  using namespace cli_detail;
  if (language.empty() || file.empty()) {
    std::fprintf(
        stderr,
        "usage: edgecoder sandbox run --language python|javascript|shell FILE (- = stdin)\n");
    return kUsage;
  }
  auto lang = parse_language(language);
  if (!lang) {
    std::fprintf(stderr, "edgecoder sandbox run: %s\n", lang.error().detail.c_str());
    return kUsage;
  }
  std::string code;
  if (file == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    code = ss.str();
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "edgecoder sandbox run: cannot read '%s'\n", file.c_str());
      return kUsage;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    code = ss.str();
  }
  auto options = options_from_settings(config.settings, config.data_dir);
  if (!options) {
    std::fprintf(stderr, "edgecoder: %s\n", options.error().detail.c_str());
    return kUsage;
  }
  // The verb's own output is the program's; keep routine info lines off its stderr but keep
  // warnings (weak isolation) and whatever the operator asked for with --log-level debug.
  if (core::log::enabled(core::log::Level::info) && !core::log::enabled(core::log::Level::debug)) {
    core::log::set_level(core::log::Level::warn);
  }
  auto sandbox = make_sandbox(*options);
  if (!sandbox) {
    std::fprintf(stderr, "edgecoder: sandbox: %s\n", sandbox.error().detail.c_str());
    return kUnavailable;
  }
  RunRequest request;
  request.language = *lang;
  request.code = std::move(code);
  request.require_isolation = false;
  auto result = (*sandbox)->run(request);
  if (!result) {
    std::fprintf(stderr, "edgecoder: sandbox: %s\n", result.error().detail.c_str());
    return kUnavailable;
  }
  write_all(stdout, result->stdout_text);
  write_all(stderr, result->stderr_text);
  if (!result->error.empty()) {
    std::fprintf(stderr, "edgecoder: sandbox: %s\n", result->error.c_str());
  }
  return result->cli_exit_code();
}

}  // namespace edgecoder::sandbox
