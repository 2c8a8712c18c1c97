// Sandbox start-up overhead: the wall time of a bare exec (posix_spawn + waitpid of
// `python3 -c pass` and `node -e 0`, output to /dev/null, the sandbox's clean environment) against
// a whole sandboxed run of the same no-op program through the sandbox library (probe done
// beforehand; each run creates its memfds, seccomp copy, bubblewrap namespaces and mounts, drains
// the pipes and reaps everything). Runs are interleaved (bare python, sandboxed python, bare node,
// sandboxed node) so that machine noise hits both sides alike. Prints p50/p99 per case and the p50
// overhead.
//
//   sandbox_bench [--runs 200] [--warmup 5] [--modes bwrap,process]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/log.h"
#include "sandbox/sandbox.h"

namespace {

using edgecoder::sandbox::Language;
using edgecoder::sandbox::Mode;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One bare exec, stdio to /dev/null; returns milliseconds.
double bare_exec(const std::vector<std::string>& argv) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The environment a sandboxed program gets (without the run id): the caller's may hold
  // start-up work of its own (NODE_EXTRA_CA_CERTS makes node load a CA bundle).
  static const char* kEnv[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                               "HOME=/tmp",
                               "TMPDIR=/tmp",
                               "LANG=C.UTF-8",
                               "MALLOC_ARENA_MAX=2",
                               nullptr};
  const auto start = Clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, args[0], &actions, nullptr, args.data(), const_cast<char* const*>(kEnv)) !=
      0) {
    std::fprintf(stderr, "posix_spawn %s failed\n", args[0]);
    std::exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const double ms = ms_since(start);
  posix_spawn_file_actions_destroy(&actions);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s exited with status %d\n", args[0], status);
    std::exit(1);
  }
  return ms;
}

double sandboxed(const edgecoder::sandbox::Sandbox& sandbox, Language language) {
  edgecoder::sandbox::RunRequest request;
  request.language = language;
  request.code = language == Language::python ? "pass\n" : "0\n";
  const auto start = Clock::now();
  auto result = sandbox.run(request);
  const double ms = ms_since(start);
  if (!result || !result->ok()) {
    std::fprintf(
        stderr, "sandboxed run failed: %s\n",
        result ? (result->stderr_text + result->error).c_str() : result.error().detail.c_str());
    std::exit(1);
  }
  return ms;
}

struct Stats {
  double p50 = 0;
  double p99 = 0;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto at = [&v](double q) {
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
    return v[std::min(i, v.size() - 1)];
  };
  return {at(0.50), at(0.99)};
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 200;
  int warmup = 5;
  std::vector<Mode> modes = {Mode::bwrap};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--runs") {
      runs = std::atoi(value.c_str());
    } else if (flag == "--warmup") {
      warmup = std::atoi(value.c_str());
    } else if (flag == "--modes") {
      modes.clear();
      std::istringstream in(value);
      for (std::string m; std::getline(in, m, ',');) {
        auto mode = edgecoder::sandbox::parse_mode(m);
        if (!mode) {
          std::fprintf(stderr, "%s\n", mode.error().detail.c_str());
          return 2;
        }
        modes.push_back(*mode);
      }
    } else {
      std::fprintf(stderr, "usage: sandbox_bench [--runs N] [--warmup N] [--modes bwrap,...]\n");
      return 2;
    }
  }
  edgecoder::core::log::init(edgecoder::core::log::Level::error);

  for (Mode mode : modes) {
    edgecoder::sandbox::Options options;
    options.mode = mode;
    auto sandbox = edgecoder::sandbox::make_sandbox(options);
    if (!sandbox) {
      std::fprintf(stderr, "%s\n", sandbox.error().detail.c_str());
      return 1;
    }
    const std::vector<std::string> py = {options.python.string(), "-c", "pass"};
    const std::vector<std::string> js = {options.node.string(), "-e", "0"};
    for (int i = 0; i < warmup; ++i) {
      bare_exec(py);
      sandboxed(**sandbox, Language::python);
      bare_exec(js);
      sandboxed(**sandbox, Language::javascript);
    }
    std::map<std::string, std::vector<double>> samples;
    for (int i = 0; i < runs; ++i) {
      samples["python bare"].push_back(bare_exec(py));
      samples["python sandboxed"].push_back(sandboxed(**sandbox, Language::python));
      samples["node bare"].push_back(bare_exec(js));
      samples["node sandboxed"].push_back(sandboxed(**sandbox, Language::javascript));
    }
    std::printf("mode=%s runs=%d\n", std::string(edgecoder::sandbox::mode_name(mode)).c_str(),
                runs);
    for (const char* language : {"python", "node"}) {
      const Stats bare = stats(samples[std::string(language) + " bare"]);
      const Stats boxed = stats(samples[std::string(language) + " sandboxed"]);
      std::printf(
          "  %-6s bare p50 %7.2f ms p99 %7.2f ms | sandboxed p50 %7.2f ms p99 %7.2f ms | "
          "overhead p50 %6.2f ms\n",
          language, bare.p50, bare.p99, boxed.p50, boxed.p99, boxed.p50 - bare.p50);
    }
  }
  return 0;
}
