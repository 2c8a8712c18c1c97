// What the sandbox contains, shown with real Python and Node programs: correct programs run and
// their output comes back; network, secrets, writes outside /work, fork bombs, 4 GiB
// allocations, infinite loops, output floods, orphans, ptrace and mount are each contained with
// a clear error. Where it proves the test's own premise, a control run in `none` mode shows the
// same program succeeding without the sandbox. Runs as root and as an unprivileged user
// (scripts/test.sh); only the veth/netns test needs root, and only the cgroup test needs a
// delegated cgroup v2 hierarchy — each skips, saying why, only when that is truly absent.
#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox_test_support.h"
#include "support/child_process.h"

namespace edgecoder::sandbox {
namespace {

namespace stdfs = std::filesystem;
using edgecoder::testing::private_uid;
using edgecoder::testing::TempDir;
using testing::LoopbackListener;
using testing::make_test_sandbox;
using testing::processes_of_run;
using testing::run_code;
using testing::sandboxed_processes;
using testing::shell;
using testing::test_options;

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

std::string slurp(const stdfs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string random_suffix() {
  return std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

// Samples the sandboxed processes every few milliseconds while a run is going on: the largest
// number seen at once per run id, and the host credentials of each process seen.
class ProcessSampler {
 public:
  ProcessSampler() {
    thread_ = std::thread([this] {
      while (!stop_) {
        std::map<std::string, int> now;
        for (const auto& [pid, id] : sandboxed_processes()) {
          ++now[id];
          const std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
          std::lock_guard<std::mutex> lock(mu_);
          if (!status.empty()) statuses_.emplace_back(id, status);
        }
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [id, n] : now) peak_[id] = std::max(peak_[id], n);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  ~ProcessSampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int peak(const std::string& run_id) {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_.count(run_id) ? peak_[run_id] : 0;
  }
  // The /proc/<pid>/status texts seen of `run_id`'s processes (other tests may run sandboxes at
  // the same time, as other users).
  std::vector<std::string> statuses(const std::string& run_id) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [id, status] : statuses_) {
      if (id == run_id) out.push_back(status);
    }
    return out;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, int> peak_;
  std::vector<std::pair<std::string, std::string>> statuses_;  // (run id, status)
  std::thread thread_;
};

// The value of a "Key:\tvalue" line of /proc/<pid>/status.
std::string status_field(const std::string& status, const std::string& key) {
  std::istringstream in(status);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      auto v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return {};
}

class Bwrap : public ::testing::Test {
 protected:
  Options options_ = test_options(Mode::bwrap);
  std::unique_ptr<Sandbox> sandbox() { return make_test_sandbox(options_); }
};

TEST_F(Bwrap, RunsCorrectPythonAndJavaScript) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto py = run_code(*sb, Language::python,
                     "import json, math, os\n"
                     "print(json.dumps({'sqrt': math.isqrt(1764), 'cwd': os.getcwd(),"
                     " 'uid': os.getuid()}))\n");
  EXPECT_TRUE(py.ok()) << py.stderr_text << py.error;
  EXPECT_EQ(py.stdout_text, "{\"sqrt\": 42, \"cwd\": \"/work\", \"uid\": 65534}\n");
  EXPECT_EQ(py.error, "");
  EXPECT_FALSE(py.run_id.empty());

  auto js = run_code(*sb, Language::javascript,
                     "const big = Buffer.alloc(256 * 1024 * 1024, 1);\n"
                     "const fib = n => n < 2 ? n : fib(n - 1) + fib(n - 2);\n"
                     "console.log(JSON.stringify({fib: fib(20), big: big.length}));\n"
                     "console.error('to stderr');\n");
  EXPECT_TRUE(js.ok()) << js.stderr_text << js.error;
  EXPECT_EQ(js.stdout_text, "{\"fib\":6765,\"big\":268435456}\n");
  EXPECT_EQ(js.stderr_text, "to stderr\n");

  auto failing = run_code(*sb, Language::python, "raise SystemExit(3)\n");
  EXPECT_EQ(failing.exit_code, 3);
  EXPECT_FALSE(failing.ok());
}

TEST_F(Bwrap, ProgramRunsUnprivilegedWithoutCapabilitiesUnderSeccomp) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  ProcessSampler sampler;
  auto r = run_code(*sb, Language::python, "import time\nprint('up', flush=True)\ntime.sleep(2)\n");
  sampler.stop();
  EXPECT_TRUE(r.ok()) << r.stderr_text;
  const auto seen = sampler.statuses(r.run_id);
  ASSERT_FALSE(seen.empty()) << "the sampler never saw the sandboxed program";
  int programs = 0;
  for (const auto& status : seen) {
    // Every process of the run (bwrap's two included) is unprivileged on the host.
    std::istringstream uids(status_field(status, "Uid"));
    long real = -1, effective = -1;
    uids >> real >> effective;
    EXPECT_NE(real, 0) << status;
    EXPECT_NE(effective, 0) << status;
    if (::geteuid() == 0) {
      EXPECT_EQ(real, static_cast<long>(options_.uid));
    }
    EXPECT_EQ(status_field(status, "NoNewPrivs"), "1") << status;
    if (status_field(status, "Name") != "python3") continue;
    ++programs;
    EXPECT_EQ(status_field(status, "CapEff"), "0000000000000000") << status;
    EXPECT_EQ(status_field(status, "CapPrm"), "0000000000000000") << status;
    EXPECT_EQ(status_field(status, "Seccomp"), "2") << status;
  }
  EXPECT_GT(programs, 0) << "the sampler never saw the python3 process";
}

TEST_F(Bwrap, NetworkSeesOnlyLoopbackAndReachesNothing) {
  LoopbackListener listener;
  ASSERT_NE(listener.port(), 0);
  ASSERT_TRUE(testing::can_connect("127.0.0.1", listener.port())) << "control connection";
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  const std::string port = std::to_string(listener.port());
  auto py = run_code(
      *sb, Language::python,
      "import socket\n"
      "ifaces = sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:])\n"
      "print('ifaces', ','.join(ifaces))\n"
      "def attempt(name, fn):\n"
      "    try:\n"
      "        fn(); print(name, 'CONNECTED')\n"
      "    except OSError as e:\n"
      "        print(name, type(e).__name__, e.errno)\n"
      "attempt('host-loopback', lambda: socket.create_connection(('127.0.0.1', " +
          port +
          "), timeout=5))\n"
          "attempt('outside', lambda: socket.create_connection(('192.0.2.1', 80), timeout=5))\n"
          "attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
          ".sendto(b'x', ('8.8.8.8', 53)))\n"
          "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))\n"
          "socket.create_connection(('198.51.100.7', 443), timeout=5)\n");
  EXPECT_EQ(py.exit_code, 1);
  EXPECT_TRUE(contains(py.stdout_text, "ifaces lo\n")) << py.stdout_text;
  EXPECT_TRUE(contains(py.stdout_text, "host-loopback ConnectionRefusedError 111"))
      << py.stdout_text;
  EXPECT_TRUE(contains(py.stdout_text, "outside OSError 101")) << py.stdout_text;
  EXPECT_TRUE(contains(py.stdout_text, "udp OSError 101")) << py.stdout_text;
  EXPECT_TRUE(contains(py.stdout_text, "dns gaierror")) << py.stdout_text;
  EXPECT_FALSE(contains(py.stdout_text, "CONNECTED")) << py.stdout_text;
  EXPECT_TRUE(contains(py.stderr_text, "Network is unreachable")) << py.stderr_text;
  EXPECT_TRUE(contains(py.error, "network access blocked")) << py.error;

  auto js = run_code(*sb, Language::javascript,
                     "const net = require('net');\n"
                     "const os = require('os');\n"
                     "console.log('ifaces', Object.keys(os.networkInterfaces()).join(','));\n"
                     "const s = net.connect({host: '127.0.0.1', port: " +
                         port +
                         "});\n"
                         "s.on('connect', () => { console.log('CONNECTED'); process.exit(0); });\n"
                         "s.on('error', e => {\n"
                         "  console.log('host-loopback', e.code);\n"
                         "  net.connect({host: '192.0.2.1', port: 80}).on('error', e2 => {\n"
                         "    console.error(e2.message); process.exit(1); });\n"
                         "});\n");
  EXPECT_EQ(js.exit_code, 1) << js.stderr_text;
  EXPECT_TRUE(contains(js.stdout_text, "ifaces lo\n")) << js.stdout_text;
  EXPECT_TRUE(contains(js.stdout_text, "host-loopback ECONNREFUSED")) << js.stdout_text;
  EXPECT_TRUE(contains(js.stderr_text, "ENETUNREACH")) << js.stderr_text;
  EXPECT_TRUE(contains(js.error, "network access blocked")) << js.error;
  EXPECT_EQ(listener.accepted(), 1) << "only the test's own control connection may arrive";
}

// A listener in a network namespace of its own, reachable from the host over a veth pair: the
// host can connect, the sandbox cannot, and not one packet from the sandbox reaches the veth.
TEST_F(Bwrap, ListenerBehindAVethPairIsUnreachable) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "creating a network namespace and a veth pair needs root; this run is "
                    "unprivileged (the root run covers it)";
  }
  const std::string id = std::to_string(::getpid() % 100000);
  const std::string ns = "ecsb" + id, host_if = "ecvh" + id, peer_if = "ecvp" + id;
  const std::string net = "10.213." + std::to_string(::getpid() % 250) + ".";
  const std::string peer_ip = net + "2";
  struct Cleanup {
    std::string ns, host_if;
    ~Cleanup() {
      shell("ip netns pids " + ns + " | xargs -r kill -9");
      shell("ip netns del " + ns);
      shell("ip link del " + host_if);
    }
  } cleanup{ns, host_if};
  std::string out;
  for (const std::string& cmd :
       {"ip netns add " + ns, "ip link add " + host_if + " type veth peer name " + peer_if,
        "ip link set " + peer_if + " netns " + ns,
        "sh -c 'echo 1 > /proc/sys/net/ipv6/conf/" + host_if + "/disable_ipv6' || true",
        "ip netns exec " + ns + " sh -c 'echo 1 > /proc/sys/net/ipv6/conf/" + peer_if +
            "/disable_ipv6' || true",
        "ip addr add " + net + "1/30 dev " + host_if, "ip link set " + host_if + " up",
        "ip -n " + ns + " addr add " + peer_ip + "/30 dev " + peer_if,
        "ip -n " + ns + " link set " + peer_if + " up", "ip -n " + ns + " link set lo up"}) {
    ASSERT_EQ(shell(cmd, &out), 0) << cmd << ": " << out;
  }
  TempDir dir;
  const stdfs::path count_file = dir.path() / "accepted";
  edgecoder::testing::ChildOptions lo;
  lo.args = {"netns",
             "exec",
             ns,
             "/usr/bin/python3",
             "-c",
             "import socket, sys\n"
             "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             "s.bind((sys.argv[1], 5555)); s.listen(8)\n"
             "open(sys.argv[2], 'w').write('0')\n"
             "n = 0\n"
             "while True:\n"
             "    c, _ = s.accept(); n += 1; c.close(); open(sys.argv[2], 'w').write(str(n))\n",
             peer_ip,
             count_file.string()};
  lo.output_dir = dir.path();
  edgecoder::testing::ChildProcess listener("/usr/sbin/ip", lo);
  for (int i = 0; i < 500 && !stdfs::exists(count_file); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(stdfs::exists(count_file)) << listener.stderr_text();
  // Control: the host reaches it over the veth pair.
  ASSERT_TRUE(testing::can_connect(peer_ip, 5555));
  for (int i = 0; i < 250 && slurp(count_file) != "1"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(slurp(count_file), "1");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the control's FIN settle
  const std::string rx_cmd =
      "ip netns exec " + ns + " cat /sys/class/net/" + peer_if + "/statistics/rx_packets";
  std::string rx_before, rx_after;
  ASSERT_EQ(shell(rx_cmd, &rx_before), 0) << rx_before;

  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python,
                    "import socket\n"
                    "for addr in ('" +
                        peer_ip + "', '" + net +
                        "1'):\n"
                        "    try:\n"
                        "        socket.create_connection((addr, 5555), timeout=5)\n"
                        "        print(addr, 'CONNECTED')\n"
                        "    except OSError as e:\n"
                        "        print(addr, e.errno)\n"
                        "socket.create_connection(('" +
                        peer_ip + "', 5555), timeout=5)\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.stdout_text, peer_ip + " 101")) << r.stdout_text;
  EXPECT_FALSE(contains(r.stdout_text, "CONNECTED")) << r.stdout_text;
  EXPECT_TRUE(contains(r.error, "network access blocked")) << r.error;
  ASSERT_EQ(shell(rx_cmd, &rx_after), 0);
  EXPECT_EQ(rx_after, rx_before) << "packets reached the veth while the sandbox ran";
  EXPECT_EQ(slurp(count_file), "1") << "the sandbox's connection was accepted";
}

TEST_F(Bwrap, CannotReadShadowHomeOrDataDirectory) {
  const char* home = std::getenv("HOME");
  ASSERT_TRUE(home != nullptr && home[0] == '/') << "this test needs HOME set";
  const stdfs::path home_secret =
      stdfs::path(home) / (".edgecoder-sandbox-secret-" + random_suffix());
  {
    std::ofstream out(home_secret);
    out << "home-secret-" << random_suffix();
  }
  ASSERT_TRUE(stdfs::exists(home_secret)) << "cannot write to HOME=" << home;
  struct Remove {
    stdfs::path p;
    ~Remove() {
      std::error_code ec;
      stdfs::remove(p, ec);
    }
  } remove_home{home_secret};
  TempDir data;
  const stdfs::path data_secret = data.path() / "agent-key";
  std::ofstream(data_secret) << "data-secret-" << random_suffix();
  const std::string home_text = slurp(home_secret);
  const std::string data_text = slurp(data_secret);

  const std::string program =
      "import os\n"
      "for p in ['/etc/shadow', '" +
      home_secret.string() + "', '" + data_secret.string() + "', '/root', '/home', '" +
      data.path().string() +
      "']:\n"
      "    try:\n"
      "        print(p, 'LISTED' if os.path.isdir(p) else 'READ', "
      "os.listdir(p) if os.path.isdir(p) else open(p).read())\n"
      "    except OSError as e:\n"
      "        print(p, type(e).__name__)\n"
      "print('etc', sorted(os.listdir('/etc')))\n"
      "print('passwd', open('/etc/passwd').read().strip())\n"
      "open('" +
      data_secret.string() + "').read()\n";
  options_.protected_paths = {data.path()};
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python, program);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(contains(r.stdout_text, "READ")) << r.stdout_text;
  EXPECT_FALSE(contains(r.stdout_text, "LISTED")) << r.stdout_text;
  EXPECT_FALSE(contains(r.stdout_text + r.stderr_text, home_text));
  EXPECT_FALSE(contains(r.stdout_text + r.stderr_text, data_text));
  EXPECT_TRUE(contains(r.stdout_text, "/etc/shadow FileNotFoundError")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stderr_text, "No such file or directory")) << r.stderr_text;
  EXPECT_FALSE(contains(r.stdout_text, "'shadow'")) << r.stdout_text;
  EXPECT_FALSE(contains(r.stdout_text, "root:")) << "the host's passwd is visible";
  if (::geteuid() == 0) {
    const std::string shadow = slurp("/etc/shadow");
    ASSERT_FALSE(shadow.empty());
    EXPECT_FALSE(contains(r.stdout_text + r.stderr_text, shadow.substr(0, shadow.find('\n'))));
  }

  // Control: without a sandbox the same program reads both secrets.
  auto none = make_test_sandbox(test_options(Mode::none));
  ASSERT_TRUE(none);
  RunRequest req;
  req.code = program;
  req.require_isolation = false;
  auto control = none->run(req);
  ASSERT_TRUE(control);
  EXPECT_TRUE(contains(control->stdout_text, home_text)) << control->stdout_text;
  EXPECT_TRUE(contains(control->stdout_text, data_text)) << control->stdout_text;
}

TEST_F(Bwrap, CannotWriteOutsideTheWorkDirectory) {
  TempDir host;
  const std::string tag = random_suffix();
  const stdfs::path escaped = host.path() / "escaped";
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python,
                    "targets = ['/etc/edgecoder-" + tag + "', '/usr/edgecoder-" + tag +
                        "', '/edgecoder-" + tag + "', '/work/../edgecoder-" + tag +
                        "', '/proc/sys/kernel/hostname', '/dev/edgecoder-" + tag + "', '" +
                        escaped.string() + "', '/work/ok.txt', '/tmp/ok-" + tag +
                        "']\n"
                        "for t in targets:\n"
                        "    try:\n"
                        "        open(t, 'w').write('x'); print(t, 'WROTE')\n"
                        "    except OSError as e:\n"
                        "        print(t, type(e).__name__, e.strerror)\n"
                        "open('/usr/edgecoder-" +
                        tag + "', 'w')\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.stdout_text, "/work/ok.txt WROTE")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stdout_text, "/tmp/ok-" + tag + " WROTE")) << r.stdout_text;
  std::istringstream lines(r.stdout_text);
  int refused = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("/work/ok.txt", 0) == 0 || line.rfind("/tmp/ok-", 0) == 0) continue;
    EXPECT_FALSE(contains(line, "WROTE")) << line;
    ++refused;
  }
  EXPECT_EQ(refused, 7);
  EXPECT_TRUE(contains(r.stderr_text, "Read-only file system")) << r.stderr_text;
  EXPECT_TRUE(contains(r.error, "read-only file system")) << r.error;
  EXPECT_FALSE(stdfs::exists(escaped));
  EXPECT_FALSE(stdfs::exists("/tmp/ok-" + tag)) << "the sandbox's /tmp is the host's /tmp";
  EXPECT_FALSE(stdfs::exists("/edgecoder-" + tag));
  EXPECT_FALSE(stdfs::exists("/etc/edgecoder-" + tag));
}

constexpr const char* kPlainBomb = "import os\nwhile True:\n    os.fork()\n";
// Ignores refused forks, so it never ends by itself.
constexpr const char* kResilientBomb =
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";

TEST_F(Bwrap, ForkBombIsContained) {
  options_.limits.max_processes = 16;
  if (::geteuid() == 0) options_.uid = options_.gid = private_uid();
  options_.limits.wall_timeout = std::chrono::milliseconds(4000);
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  ProcessSampler sampler;
  // The first refused fork ends the program, and its end takes down the whole namespace.
  auto plain = run_code(*sb, Language::python, kPlainBomb);
  auto resilient = run_code(*sb, Language::python, kResilientBomb);
  sampler.stop();
  EXPECT_FALSE(plain.ok());
  EXPECT_TRUE(contains(plain.stderr_text, "Resource temporarily unavailable")) << plain.stderr_text;
  EXPECT_TRUE(contains(plain.error, "process limit of 16 reached")) << plain.error;
  EXPECT_TRUE(resilient.timed_out);
  EXPECT_TRUE(contains(resilient.error, "timed out")) << resilient.error;
  // The plain bomb lives a few milliseconds, too short for a 5 ms sampler to see its peak under
  // load; its "limit reached" error above proves it got there. The resilient one keeps the peak.
  EXPECT_GE(sampler.peak(resilient.run_id), 8)
      << "the bomb never got going (or the sampler cannot see it)";
  for (const auto* r : {&plain, &resilient}) {
    // The program's processes plus bwrap's own two.
    EXPECT_LE(sampler.peak(r->run_id), options_.limits.max_processes + 2);
    EXPECT_TRUE(processes_of_run(r->run_id).empty());
  }
}

// Each run's process budget is its own: a bomb under the same host uid does not make the
// forks of runs beside it fail.
TEST_F(Bwrap, AForkBombDoesNotStarveConcurrentRuns) {
  if (::geteuid() == 0) options_.uid = options_.gid = private_uid();
  Options bomb_options = options_;
  bomb_options.limits.max_processes = 64;
  bomb_options.limits.wall_timeout = std::chrono::milliseconds(6000);
  auto bomb_sb = make_test_sandbox(bomb_options);
  options_.limits.max_processes = 16;
  auto sb = sandbox();
  ASSERT_TRUE(bomb_sb && sb);
  ProcessSampler sampler;
  RunResult bomb;
  std::thread bomber([&] { bomb = run_code(*bomb_sb, Language::python, kResilientBomb); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // let it reach its limit
  for (int i = 0; i < 3; ++i) {
    auto r = run_code(*sb, Language::python,
                      "import os, time\npids = []\nfor _ in range(8):\n"
                      "    p = os.fork()\n"
                      "    if p == 0:\n"
                      "        time.sleep(0.2)\n"
                      "        os._exit(0)\n"
                      "    pids.append(p)\n"
                      "for p in pids: os.waitpid(p, 0)\nprint('forked 8')\n");
    EXPECT_EQ(r.stdout_text, "forked 8\n") << r.stderr_text << r.error;
    auto js = run_code(*sb, Language::javascript, "console.log('node starts')\n");
    EXPECT_EQ(js.stdout_text, "node starts\n") << js.stderr_text << js.error;
  }
  bomber.join();
  sampler.stop();
  EXPECT_TRUE(bomb.timed_out);
  EXPECT_GE(sampler.peak(bomb.run_id), 40) << "the bomb did not reach its limit";
  EXPECT_TRUE(processes_of_run(bomb.run_id).empty());
}

TEST_F(Bwrap, FourGibAllocationFailsInPython) {
  const std::string program = "x = bytes(4 << 30)\nprint('allocated', len(x))\n";
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python, program);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.stderr_text, "MemoryError")) << r.stderr_text;
  EXPECT_TRUE(contains(r.error, "memory limit of 512 MiB")) << r.error;
  EXPECT_EQ(r.stdout_text, "");
  // Control: the host itself grants the allocation.
  auto none = make_test_sandbox(test_options(Mode::none));
  ASSERT_TRUE(none);
  RunRequest req;
  req.code = program;
  req.require_isolation = false;
  auto control = none->run(req);
  ASSERT_TRUE(control);
  EXPECT_EQ(control->stdout_text, "allocated 4294967296\n") << control->stderr_text;
}

TEST_F(Bwrap, FourGibBufferOutsideTheV8HeapFailsInJavaScript) {
  const std::string program =
      "const b = Buffer.alloc(4 * 1024 ** 3);\nconsole.log('allocated', b.length);\n";
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::javascript, program);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.stderr_text, "Array buffer allocation failed")) << r.stderr_text;
  EXPECT_TRUE(contains(r.error, "memory limit")) << r.error;
  EXPECT_EQ(r.stdout_text, "");
  auto none = make_test_sandbox(test_options(Mode::none));
  ASSERT_TRUE(none);
  RunRequest req;
  req.language = Language::javascript;
  req.code = program;
  req.require_isolation = false;
  auto control = none->run(req);
  ASSERT_TRUE(control);
  EXPECT_EQ(control->stdout_text, "allocated 4294967296\n") << control->stderr_text;
}

TEST_F(Bwrap, InfiniteLoopIsKilledAtTheTimeout) {
  options_.limits.wall_timeout = std::chrono::milliseconds(2000);
  options_.limits.cpu_seconds = 600;
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  for (const auto& [language, code] :
       {std::pair{Language::python,
                  "import os\nos.fork()\nprint('loop', flush=True)\n"
                  "while True: pass\n"},
        std::pair{Language::javascript, "console.log('loop');\nfor (;;) {}\n"}}) {
    auto r = run_code(*sb, language, code);
    EXPECT_TRUE(r.timed_out) << language_name(language);
    EXPECT_EQ(r.signal, SIGKILL);
    EXPECT_EQ(r.cli_exit_code(), 124);
    EXPECT_GE(r.duration_ms, 2000);
    EXPECT_TRUE(contains(r.stdout_text, "loop\n"));
    EXPECT_TRUE(contains(r.error, "timed out: the whole process tree was killed")) << r.error;
    EXPECT_TRUE(processes_of_run(r.run_id).empty());
  }
}

TEST_F(Bwrap, CpuTimeLimitStopsASpinningProgram) {
  options_.limits.cpu_seconds = 1;
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python, "while True: pass\n");
  EXPECT_FALSE(r.timed_out);
  ASSERT_TRUE(r.signal.has_value());
  EXPECT_TRUE(*r.signal == SIGXCPU || *r.signal == SIGKILL) << *r.signal;
  EXPECT_TRUE(contains(r.error, "CPU time limit of 1 s")) << r.error;
}

TEST_F(Bwrap, HundredMibOfOutputIsCapped) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  const std::size_t cap = options_.limits.max_output_bytes;
  auto py = run_code(*sb, Language::python,
                     "import sys\nchunk = b'x' * (1 << 20)\n"
                     "for _ in range(100): sys.stdout.buffer.write(chunk)\n"
                     "print('done', file=sys.stderr)\n");
  EXPECT_TRUE(py.ok()) << py.error;
  EXPECT_TRUE(py.stdout_truncated);
  EXPECT_LE(py.stdout_text.size(), cap + 200);
  EXPECT_EQ(py.stdout_text.substr(0, cap), std::string(cap, 'x'));
  EXPECT_TRUE(contains(py.stdout_text, "[edgecoder sandbox: stdout truncated after")) << py.error;
  EXPECT_EQ(py.stderr_text, "done\n");
  EXPECT_TRUE(contains(py.error, "stdout truncated at 65536 bytes (104792064 bytes discarded)"))
      << py.error;

  auto js = run_code(*sb, Language::javascript,
                     "const chunk = 'y'.repeat(1 << 20);\n"
                     "for (let i = 0; i < 100; i++) process.stderr.write(chunk);\n");
  EXPECT_TRUE(js.ok()) << js.error;
  EXPECT_TRUE(js.stderr_truncated);
  EXPECT_LE(js.stderr_text.size(), cap + 200);
  EXPECT_TRUE(contains(js.error, "stderr truncated")) << js.error;
}

TEST_F(Bwrap, ChildThatOutlivesItsParentIsKilled) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  ProcessSampler sampler;
  auto py = run_code(*sb, Language::python,
                     "import os, time\n"
                     "pid = os.fork()\n"
                     "if pid == 0:\n"
                     "    os.setsid()\n"
                     "    if os.fork() == 0:\n"
                     "        for fd in (0, 1, 2): os.close(fd)\n"
                     "        time.sleep(600)\n"
                     "    os._exit(0)\n"
                     "os.waitpid(pid, 0)\n"
                     "time.sleep(1)\n"
                     "print('parent exits')\n");
  auto js = run_code(*sb, Language::javascript,
                     "const {spawn} = require('child_process');\n"
                     "spawn('sleep', ['600'], {detached: true, stdio: 'ignore'}).unref();\n"
                     "setTimeout(() => console.log('parent exits'), 1000);\n");
  sampler.stop();
  for (const auto* r : {&py, &js}) {
    EXPECT_TRUE(r->ok()) << r->stderr_text << r->error;
    EXPECT_FALSE(r->timed_out) << "the run waited for the orphan";
    EXPECT_EQ(r->stdout_text, "parent exits\n");
    // bwrap, its init, the parent and the orphan.
    EXPECT_GE(sampler.peak(r->run_id), 4) << "the orphan was never seen running";
    EXPECT_TRUE(processes_of_run(r->run_id).empty()) << "the orphan survived its run";
  }
}

TEST_F(Bwrap, PtraceIsDenied) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python,
                    "import ctypes, os\n"
                    "libc = ctypes.CDLL(None, use_errno=True)\n"
                    "for req, pid in ((0, 0), (16, 1), (16, os.getppid())):\n"  // TRACEME, ATTACH
                    "    rc = libc.ptrace(req, pid, 0, 0)\n"
                    "    print('ptrace', req, pid, rc, ctypes.get_errno())\n"
                    "libc.ptrace(0, 0, 0, 0)\n"
                    "raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.stdout_text, "ptrace 0 0 -1 1\n")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stdout_text, "ptrace 16 1 -1 1\n")) << r.stdout_text;
  EXPECT_TRUE(contains(r.stderr_text, "Operation not permitted")) << r.stderr_text;
  EXPECT_TRUE(contains(r.error, "operation not permitted")) << r.error;
}

TEST_F(Bwrap, MountAndNamespaceEscapesAreDenied) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python,
                    "import ctypes, os\n"
                    "libc = ctypes.CDLL(None, use_errno=True)\n"
                    "os.mkdir('/work/m')\n"
                    "def check(name, rc):\n"
                    "    print(name, rc, ctypes.get_errno())\n"
                    "check('unshare', libc.unshare(0x10000000 | 0x20000))\n"  // NEWUSER|NEWNS
                    "check('mount', libc.mount(b'none', b'/work/m', b'tmpfs', 0, None))\n"
                    "check('umount', libc.umount2(b'/usr', 2))\n"
                    "check('chroot', libc.chroot(b'/work'))\n"
                    "if libc.mount(b'/work', b'/usr', None, 4096, None) != 0:\n"  // MS_BIND
                    "    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n");
  EXPECT_EQ(r.exit_code, 1);
  for (const char* name : {"unshare", "mount", "umount", "chroot"}) {
    EXPECT_TRUE(contains(r.stdout_text, std::string(name) + " -1 1\n"))
        << name << ": " << r.stdout_text;
  }
  EXPECT_TRUE(contains(r.error, "operation not permitted")) << r.error;
}

TEST_F(Bwrap, KernelAttackSurfaceCallsAreDenied) {
  struct Call {
    const char* name;
    long nr;
    int err;
  };
  const std::vector<Call> calls = {
      {"keyctl", SYS_keyctl, EPERM},
      {"add_key", SYS_add_key, EPERM},
      {"request_key", SYS_request_key, EPERM},
      {"bpf", SYS_bpf, EPERM},
      {"perf_event_open", SYS_perf_event_open, EPERM},
      {"userfaultfd", SYS_userfaultfd, EPERM},
      {"init_module", SYS_init_module, EPERM},
      {"finit_module", SYS_finit_module, EPERM},
      {"delete_module", SYS_delete_module, EPERM},
      {"reboot", SYS_reboot, EPERM},
      {"kexec_load", SYS_kexec_load, EPERM},
      {"swapon", SYS_swapon, EPERM},
      {"swapoff", SYS_swapoff, EPERM},
      {"setns", SYS_setns, EPERM},
      {"pivot_root", SYS_pivot_root, EPERM},
      {"process_vm_readv", SYS_process_vm_readv, EPERM},
      {"open_by_handle_at", SYS_open_by_handle_at, EPERM},
      {"clone3", SYS_clone3, ENOSYS},
      {"io_uring_setup", SYS_io_uring_setup, ENOSYS},
  };
  std::string program =
      "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
      "libc.syscall.restype = ctypes.c_long\n";
  for (const auto& c : calls) {
    program += "print('" + std::string(c.name) + "', libc.syscall(" + std::to_string(c.nr) +
               ", 0, 0, 0, 0, 0), ctypes.get_errno())\n";
  }
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python, program);
  EXPECT_TRUE(r.ok()) << r.stderr_text;
  for (const auto& c : calls) {
    EXPECT_TRUE(
        contains(r.stdout_text, std::string(c.name) + " -1 " + std::to_string(c.err) + "\n"))
        << c.name << ": " << r.stdout_text;
  }
}

TEST_F(Bwrap, FileSizeAndWorkDirectoryAreLimited) {
  options_.limits.max_file_mb = 4;
  options_.limits.work_dir_mb = 16;
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto big = run_code(*sb, Language::python,
                      "with open('/work/big', 'wb') as f:\n"
                      "    for _ in range(8): f.write(b'z' * (1 << 20))\n");
  EXPECT_EQ(big.exit_code, 1);
  EXPECT_TRUE(contains(big.stderr_text, "File too large")) << big.stderr_text;
  EXPECT_TRUE(contains(big.error, "file size limit of 4 MiB")) << big.error;
  auto full = run_code(*sb, Language::python,
                       "for i in range(8):\n"
                       "    with open(f'/work/f{i}', 'wb') as f: f.write(b'z' * (3 << 20))\n");
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_TRUE(contains(full.stderr_text, "No space left on device")) << full.stderr_text;
  EXPECT_TRUE(contains(full.error, "work directory full")) << full.error;
}

TEST_F(Bwrap, ConcurrentRunsStayApart) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  std::vector<RunResult> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      results[i] = run_code(*sb, Language::python,
                            "import os\nopen('/work/me', 'w').write('" + std::to_string(i) +
                                "')\nimport time; time.sleep(0.5)\n"
                                "print(open('/work/me').read(), sorted(os.listdir('/work')))\n");
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(results[i].stdout_text, std::to_string(i) + " ['main.py', 'me']\n");
    ids.insert(results[i].run_id);
  }
  EXPECT_EQ(ids.size(), 4u);
}

TEST_F(Bwrap, StandardInputReachesTheProgram) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  RunRequest request;
  request.code = "import sys\ndata = sys.stdin.read()\nprint(len(data), data[-5:].upper())\n";
  request.input = std::string(200'000, 'a') + "end";
  auto py = sb->run(request);
  ASSERT_TRUE(py) << py.error().detail;
  EXPECT_EQ(py->stdout_text, "200003 AAEND\n") << py->stderr_text;
  request.language = Language::javascript;
  request.code =
      "let s = ''; process.stdin.on('data', d => s += d);\n"
      "process.stdin.on('end', () => console.log(s.length));\n";
  auto js = sb->run(request);
  ASSERT_TRUE(js) << js.error().detail;
  EXPECT_EQ(js->stdout_text, "200003\n") << js->stderr_text;
}

// cgroup v2: tmpfs pages are memory that RLIMIT_AS does not see; only the cgroup bounds them.
TEST_F(Bwrap, CgroupMemoryLimitStopsTmpfsFilling) {
  const auto found = detail::detect_cgroup("auto");
  if (!found.available) {
    GTEST_SKIP() << "no delegated cgroup v2 hierarchy with memory+pids here: " << found.detail;
  }
  options_.limits.memory_mb = 64;
  options_.limits.work_dir_mb = 512;
  options_.limits.max_file_mb = 512;
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  EXPECT_TRUE(contains(sb->report().cgroup, "cgroup v2")) << sb->report().cgroup;
  auto r = run_code(*sb, Language::python,
                    "with open('/work/fill', 'wb') as f:\n"
                    "    for _ in range(256): f.write(b'z' * (1 << 20))\n"
                    "print('wrote 256 MiB')\n");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error, "cgroup OOM kill")) << r.error << r.stderr_text;
  // The per-run cgroup is gone afterwards.
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(found.dir, ec)) {
    EXPECT_FALSE(contains(e.path().filename().string(), r.run_id)) << e.path();
  }
}

// --- process mode: weak, but the timeout, tree kill, limits and uid still hold --------------

class ProcessMode : public ::testing::Test {
 protected:
  Options options_ = test_options(Mode::process);
  std::unique_ptr<Sandbox> sandbox() { return make_test_sandbox(options_); }
};

TEST_F(ProcessMode, RunsProgramsAsTheSandboxUid) {
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto py = run_code(*sb, Language::python, "import os\nprint(os.getuid(), os.getgid())\n");
  EXPECT_TRUE(py.ok()) << py.stderr_text;
  const uid_t expected = ::geteuid() == 0 ? options_.uid : ::getuid();
  const gid_t expected_gid = ::geteuid() == 0 ? options_.gid : ::getgid();
  EXPECT_EQ(py.stdout_text, std::to_string(expected) + " " + std::to_string(expected_gid) + "\n");
  auto js = run_code(*sb, Language::javascript, "console.log(6 * 7)\n");
  EXPECT_EQ(js.stdout_text, "42\n") << js.stderr_text;
}

TEST_F(ProcessMode, NetworkSocketsAreRefused) {
  LoopbackListener listener;
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  auto r = run_code(*sb, Language::python,
                    "import socket\nsocket.create_connection(('127.0.0.1', " +
                        std::to_string(listener.port()) + "), timeout=5)\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.stderr_text, "Permission denied")) << r.stderr_text;
  EXPECT_EQ(listener.accepted(), 0);
}

TEST_F(ProcessMode, TimeoutAndOrphansKillTheWholeTree) {
  options_.limits.wall_timeout = std::chrono::milliseconds(2000);
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  ProcessSampler sampler;
  // Detached grandchildren in new sessions, then an endless loop.
  auto looping = run_code(*sb, Language::python,
                          "import os, time\n"
                          "for _ in range(3):\n"
                          "    if os.fork() == 0:\n"
                          "        os.setsid()\n"
                          "        if os.fork() == 0: time.sleep(600)\n"
                          "        os._exit(0)\n"
                          "while True: pass\n");
  options_.limits.wall_timeout = std::chrono::milliseconds(30'000);
  auto sb2 = sandbox();
  ASSERT_TRUE(sb2);
  auto orphaning = run_code(*sb2, Language::python,
                            "import os, time\n"
                            "if os.fork() == 0:\n"
                            "    os.setsid()\n"
                            "    if os.fork() == 0:\n"
                            "        for fd in (0, 1, 2): os.close(fd)\n"
                            "        time.sleep(600)\n"
                            "    os._exit(0)\n"
                            "time.sleep(1)\nprint('bye')\n");
  sampler.stop();
  EXPECT_TRUE(looping.timed_out);
  EXPECT_GE(sampler.peak(looping.run_id), 4);
  EXPECT_TRUE(processes_of_run(looping.run_id).empty());
  EXPECT_TRUE(orphaning.ok()) << orphaning.stderr_text;
  EXPECT_FALSE(orphaning.timed_out);
  EXPECT_GE(sampler.peak(orphaning.run_id), 2);
  EXPECT_TRUE(processes_of_run(orphaning.run_id).empty());
}

TEST_F(ProcessMode, ForkBombAndAllocationAreLimited) {
  options_.limits.max_processes = 16;
  options_.limits.wall_timeout = std::chrono::milliseconds(3000);
  auto sb = sandbox();
  ASSERT_TRUE(sb);
  ProcessSampler sampler;
  auto bomb = run_code(*sb, Language::python, kResilientBomb);
  sampler.stop();
  EXPECT_TRUE(bomb.timed_out);
  EXPECT_GE(sampler.peak(bomb.run_id), 8);
  EXPECT_LE(sampler.peak(bomb.run_id), options_.limits.max_processes);
  EXPECT_TRUE(processes_of_run(bomb.run_id).empty());
  auto mem = run_code(*sb, Language::python, "x = bytes(4 << 30)\n");
  EXPECT_TRUE(contains(mem.stderr_text, "MemoryError")) << mem.stderr_text;
}

}  // namespace
}  // namespace edgecoder::sandbox
