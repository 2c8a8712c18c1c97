// The sandbox library's parts on their own: settings, the seccomp filter loaded into a forked
// child, output capping, cgroup detection on a fake tree, the `none` and unavailable modes (no
// fallback), and the `edgecoder sandbox run` verb through the real binary.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.h"
#include "sandbox/cgroup.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox_test_support.h"
#include "sandbox/seccomp_policy.h"
#include "sandbox/spawn.h"
#include "support/child_process.h"

namespace edgecoder::sandbox {
namespace {

namespace stdfs = std::filesystem;
using edgecoder::testing::TempDir;
using testing::make_test_sandbox;
using testing::run_code;
using testing::test_options;

core::Settings settings_with(std::map<std::string, std::string> values) {
  core::LoadOptions load;
  load.default_env_file = "/nonexistent/edgecoder.env";
  load.command_line = std::move(values);
  auto s = core::Settings::load(load);
  EXPECT_TRUE(s) << s.error().detail;
  return *s;
}

TEST(SandboxOptions, DefaultsMatchTheDocumentedSettings) {
  auto o = options_from_settings(settings_with({}), "/var/lib/edgecoder");
  ASSERT_TRUE(o) << o.error().detail;
  const Options d;
  EXPECT_EQ(o->mode, Mode::bwrap);
  EXPECT_EQ(o->limits.wall_timeout, d.limits.wall_timeout);
  EXPECT_EQ(o->limits.memory_mb, d.limits.memory_mb);
  EXPECT_EQ(o->limits.max_output_bytes, d.limits.max_output_bytes);
  // Every struct default is the value the settings table documents.
  const std::map<std::string, std::string> expected = {
      {"SANDBOX_MODE", "bwrap"},
      {"SANDBOX_TIMEOUT_MS", std::to_string(d.limits.wall_timeout.count())},
      {"SANDBOX_CPU_SECONDS", std::to_string(d.limits.cpu_seconds)},
      {"SANDBOX_MEMORY_MB", std::to_string(d.limits.memory_mb)},
      {"SANDBOX_NODE_VM_RESERVE_MB", std::to_string(d.limits.node_vm_reserve_mb)},
      {"SANDBOX_MAX_PROCESSES", std::to_string(d.limits.max_processes)},
      {"SANDBOX_MAX_FILE_MB", std::to_string(d.limits.max_file_mb)},
      {"SANDBOX_WORK_DIR_MB", std::to_string(d.limits.work_dir_mb)},
      {"SANDBOX_MAX_OPEN_FILES", std::to_string(d.limits.max_open_files)},
      {"SANDBOX_MAX_OUTPUT_BYTES", std::to_string(d.limits.max_output_bytes)},
      {"SANDBOX_UID", std::to_string(d.uid)},
      {"SANDBOX_GID", std::to_string(d.gid)},
      {"SANDBOX_PYTHON", d.python.string()},
      {"SANDBOX_NODE", d.node.string()},
      {"SANDBOX_BWRAP", d.bwrap.string()},
      {"SANDBOX_CGROUP", d.cgroup},
      {"SANDBOX_DOCKER", d.docker},
      {"SANDBOX_DOCKER_PYTHON_IMAGE", d.docker_python_image},
      {"SANDBOX_DOCKER_NODE_IMAGE", d.docker_node_image},
      {"SANDBOX_DOCKER_CPUS", d.docker_cpus},
      {"SANDBOX_EXTRA_RO_BINDS", ""},
      {"SANDBOX_WORK_ROOT", ""},
  };
  for (const auto& [name, value] : expected) {
    const auto* spec = core::find_setting(name);
    ASSERT_NE(spec, nullptr) << name << " is not in known_settings()";
    EXPECT_EQ(spec->default_value, value) << name;
  }
  ASSERT_EQ(o->protected_paths.size(), 1u);
  EXPECT_EQ(o->protected_paths[0], "/var/lib/edgecoder");
}

TEST(SandboxOptions, ParsesValuesAndNamesTheBadSetting) {
  auto o = options_from_settings(settings_with({{"SANDBOX_MODE", "process"},
                                                {"SANDBOX_TIMEOUT_MS", "2500"},
                                                {"SANDBOX_MEMORY_MB", "256"},
                                                {"SANDBOX_EXTRA_RO_BINDS", "/opt/a:/opt/b"},
                                                {"SANDBOX_DOCKER_CPUS", "0.5"}}),
                                 {});
  ASSERT_TRUE(o) << o.error().detail;
  EXPECT_EQ(o->mode, Mode::process);
  EXPECT_EQ(o->limits.wall_timeout.count(), 2500);
  EXPECT_EQ(o->limits.memory_mb, 256u);
  EXPECT_EQ(o->extra_ro_binds, (std::vector<stdfs::path>{"/opt/a", "/opt/b"}));
  EXPECT_EQ(o->docker_cpus, "0.5");

  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"SANDBOX_MODE", "firejail"},
                                                        {"SANDBOX_TIMEOUT_MS", "soon"},
                                                        {"SANDBOX_MEMORY_MB", "1"},
                                                        {"SANDBOX_PYTHON", "python3"},
                                                        {"SANDBOX_CGROUP", "relative/dir"},
                                                        {"SANDBOX_DOCKER_CPUS", "many"},
                                                        {"SANDBOX_UID", "0"}}) {
    auto bad = options_from_settings(settings_with({{name, value}}), {});
    ASSERT_FALSE(bad) << name << "=" << value << " was accepted";
    EXPECT_NE(bad.error().detail.find(name), std::string::npos) << bad.error().detail;
  }
}

TEST(SandboxOptions, RefusesBindsThatWouldExposeSecrets) {
  TempDir data;
  for (const std::string& bind :
       {std::string("/"), std::string("/home"), std::string("/root/x"), std::string("/etc"),
        std::string("/var/lib"), data.path().string(), data.path().parent_path().string()}) {
    auto o = options_from_settings(settings_with({{"SANDBOX_EXTRA_RO_BINDS", bind}}), data.path());
    EXPECT_FALSE(o) << bind << " was accepted";
  }
  auto ok =
      options_from_settings(settings_with({{"SANDBOX_EXTRA_RO_BINDS", "/opt/node"}}), data.path());
  EXPECT_TRUE(ok) << ok.error().detail;
}

TEST(SandboxNames, ModesAndLanguagesRoundTrip) {
  for (Mode m : {Mode::bwrap, Mode::process, Mode::docker, Mode::none}) {
    auto parsed = parse_mode(mode_name(m));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_FALSE(parse_mode("vm"));
  EXPECT_EQ(*parse_language("python"), Language::python);
  EXPECT_EQ(*parse_language("js"), Language::javascript);
  EXPECT_EQ(*parse_language("javascript"), Language::javascript);
  EXPECT_EQ(*parse_language("shell"), Language::shell);
  EXPECT_EQ(*parse_language("sh"), Language::shell);
  for (Language l : {Language::python, Language::javascript, Language::shell}) {
    EXPECT_EQ(*parse_language(language_name(l)), l);
  }
  EXPECT_FALSE(parse_language("ruby"));
}

// Loads the filter in a forked child and reports, bit by bit, which expectation failed.
int run_filtered(const detail::SeccompPolicy& policy, int (*body)()) {
  auto filter = detail::build_seccomp_filter(policy);
  EXPECT_TRUE(filter) << filter.error().detail;
  if (!filter) return -1;
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(filter->size());
  prog.filter = filter->data();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(200);
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) ::_exit(201);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 300 + WTERMSIG(status);
}

bool fails_with(long rc, int err) { return rc == -1 && errno == err; }

// The index (from 1) of the first expectation that failed, or 0.
int first_failure(std::initializer_list<bool> passed) {
  int i = 1;
  for (bool ok : passed) {
    if (!ok) return i;
    ++i;
  }
  return 0;
}

TEST(SeccompFilter, DeniesDangerousCallsAndAllowsOrdinaryOnes) {
  const int failed = run_filtered({}, [] {
    // Each call is harmless should the filter let it through (the mount target does not exist;
    // a clone that succeeds exits at once).
    const bool ptrace = fails_with(::syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0), EPERM);
    const bool unshare = fails_with(::syscall(SYS_unshare, CLONE_NEWUSER), EPERM);
    const bool mount = fails_with(
        ::syscall(SYS_mount, "none", "/nonexistent-edgecoder-test", "tmpfs", 0, nullptr), EPERM);
    const bool keyctl = fails_with(::syscall(SYS_keyctl, 0, 0, 0, 0, 0), EPERM);
    const bool bpf = fails_with(::syscall(SYS_bpf, 0, nullptr, 0), EPERM);
    const bool clone3 = fails_with(::syscall(SYS_clone3, nullptr, 0), ENOSYS);
    const long cloned = ::syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
    if (cloned == 0) ::_exit(0);
    const bool clone_ns = fails_with(cloned, EPERM);
    const bool packet = fails_with(::socket(AF_PACKET, SOCK_RAW, 0), EAFNOSUPPORT);
    // Ordinary work still works: a TCP socket, a netlink socket (interface listing), fork.
    const bool tcp = ::socket(AF_INET, SOCK_STREAM, 0) >= 0;
    const bool netlink = ::socket(AF_NETLINK, SOCK_RAW, 0) >= 0;
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    const bool forked = child > 0 && ::waitpid(child, nullptr, 0) == child;
    return first_failure(
        {ptrace, unshare, mount, keyctl, bpf, clone3, clone_ns, packet, tcp, netlink, forked});
  });
  EXPECT_EQ(failed, 0) << "expectation number " << failed
                       << " failed inside the filter (ptrace, unshare, mount, keyctl, bpf, "
                          "clone3, clone ns, packet, tcp, netlink, fork)";
}

TEST(SeccompFilter, ProcessModeAlsoRefusesInternetSockets) {
  const int failed = run_filtered({.deny_inet = true}, [] {
    return first_failure({fails_with(::socket(AF_INET, SOCK_STREAM, 0), EACCES),
                          fails_with(::socket(AF_INET6, SOCK_DGRAM, 0), EACCES),
                          fails_with(::socket(AF_NETLINK, SOCK_RAW, 0), EACCES),
                          ::socket(AF_UNIX, SOCK_STREAM, 0) >= 0});
  });
  EXPECT_EQ(failed, 0);
  EXPECT_NE(detail::denied_syscalls().size(), 0u);
}

TEST(OutputCap, MarksTruncationAndKeepsUtf8Whole) {
  detail::Captured c;
  c.text = "ab\xc3";  // cut inside a two-byte sequence
  c.truncated = true;
  c.dropped = 10;
  const std::string out = detail::finish_captured(c, "stdout", 3);
  EXPECT_EQ(out.rfind("ab\n[edgecoder sandbox: stdout truncated after 3 bytes; 11 more", 0), 0u)
      << out;
  detail::Captured whole;
  whole.text = "fine";
  EXPECT_EQ(detail::finish_captured(whole, "stdout", 10), "fine");
}

// A fake cgroup tree: detection reads only these files.
struct FakeCgroup {
  TempDir dir;
  detail::CgroupSources sources;
  stdfs::path unit;

  explicit FakeCgroup(const std::string& controllers, bool with_v2 = true) {
    const stdfs::path root = dir.path() / "cg";
    unit = root / "system.slice" / "edgecoder.service";
    stdfs::create_directories(unit);
    std::ofstream(unit / "cgroup.controllers") << controllers << "\n";
    std::ofstream(unit / "cgroup.subtree_control") << "";
    std::ofstream(unit / "cgroup.procs") << ::getpid() << "\n";
    sources.mountinfo = dir.path() / "mountinfo";
    sources.proc_self_cgroup = dir.path() / "cgroup";
    std::ofstream(sources.mountinfo)
        << "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        << (with_v2 ? "40 30 0:37 / " + root.string() + " rw,relatime - cgroup2 cgroup2 rw\n"
                    : std::string("41 30 0:38 / /sys/fs/cgroup/memory rw - cgroup cgroup rw\n"));
    std::ofstream(sources.proc_self_cgroup)
        << (with_v2 ? "0::/system.slice/edgecoder.service\n" : "4:memory:/x\n");
  }
};

TEST(CgroupDetection, FindsTheDelegatedUnitCgroup) {
  FakeCgroup fake("cpu memory pids");
  const auto found = detail::detect_cgroup("auto", fake.sources);
  EXPECT_TRUE(found.available) << found.detail;
  EXPECT_EQ(found.dir, fake.unit);
  // Controllers get enabled for the per-run children.
  ASSERT_TRUE(detail::prepare_cgroup(found));
  std::ifstream in(fake.unit / "cgroup.subtree_control");
  std::string enabled((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(enabled, "+memory +pids");
}

TEST(CgroupDetection, SaysWhyNothingIsUsable) {
  FakeCgroup hybrid("hugetlb");
  auto found = detail::detect_cgroup("auto", hybrid.sources);
  EXPECT_FALSE(found.available);
  EXPECT_NE(found.detail.find("lacks the memory and pids controllers"), std::string::npos);

  FakeCgroup v1("", false);
  found = detail::detect_cgroup("auto", v1.sources);
  EXPECT_FALSE(found.available);
  EXPECT_NE(found.detail.find("no cgroup v2"), std::string::npos) << found.detail;

  FakeCgroup off("cpu memory pids");
  found = detail::detect_cgroup("off", off.sources);
  EXPECT_FALSE(found.available);
  found = detail::detect_cgroup("/elsewhere/cg", off.sources);
  EXPECT_FALSE(found.available);
  EXPECT_NE(found.detail.find("not inside a cgroup v2 mount"), std::string::npos);
}

TEST(SandboxModes, NoneRunsOnlyWhenIsolationIsNotRequired) {
  const auto report = probe(test_options(Mode::none));
  ASSERT_TRUE(report.ready) << report.problem;
  EXPECT_FALSE(report.isolated);
  EXPECT_FALSE(report.tenant_work_allowed);
  ASSERT_FALSE(report.warnings.empty());
  auto sandbox = make_sandbox(test_options(Mode::none), report);
  ASSERT_TRUE(sandbox);
  RunRequest tenant;
  tenant.code = "print('must not run')";
  auto refused = (*sandbox)->run(tenant);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, core::Errc::permission_denied);
  EXPECT_EQ(refused.error().wire(), "sandbox_required");
  RunRequest own = tenant;
  own.code = "print('ran')";
  own.require_isolation = false;
  auto ran = (*sandbox)->run(own);
  ASSERT_TRUE(ran) << ran.error().detail;
  EXPECT_EQ(ran->stdout_text, "ran\n");
}

TEST(SandboxModes, AnUnavailableModeIsReportedAndNeverReplaced) {
  Options broken = test_options(Mode::bwrap);
  broken.bwrap = "/nonexistent/bwrap";
  const auto report = probe(broken);
  EXPECT_FALSE(report.ready);
  EXPECT_FALSE(report.tenant_work_allowed);
  EXPECT_NE(report.problem.find("bubblewrap is not installed"), std::string::npos);
  EXPECT_NE(report.fix.find("SANDBOX_BWRAP"), std::string::npos);
  auto sandbox = make_sandbox(broken);
  ASSERT_FALSE(sandbox);
  EXPECT_EQ(sandbox.error().code, core::Errc::unavailable);
  EXPECT_EQ(sandbox.error().wire(), "sandbox_unavailable");
  EXPECT_NE(sandbox.error().detail.find("SANDBOX_MODE=bwrap cannot be set up"), std::string::npos);

  // bwrap that exists but cannot build a sandbox: the trial run finds out.
  Options failing = test_options(Mode::bwrap);
  failing.bwrap = "/bin/false";
  const auto trial = probe(failing);
  EXPECT_FALSE(trial.ready);
  EXPECT_NE(trial.problem.find("could not set up the sandbox"), std::string::npos) << trial.problem;
  EXPECT_FALSE(trial.fix.empty());
}

TEST(SandboxModes, ProcessModeWarnsThatIsolationIsWeak) {
  const auto report = probe(test_options(Mode::process));
  ASSERT_TRUE(report.ready) << report.problem;
  EXPECT_FALSE(report.isolated);
  EXPECT_TRUE(report.tenant_work_allowed);
  ASSERT_FALSE(report.warnings.empty());
  EXPECT_NE(report.warnings[0].find("WEAK isolation"), std::string::npos);
}

TEST(SandboxModes, BwrapProbeFindsBothLanguages) {
  const auto report = probe(test_options(Mode::bwrap));
  ASSERT_TRUE(report.ready) << report.problem << " / " << report.fix;
  EXPECT_TRUE(report.isolated);
  EXPECT_TRUE(report.tenant_work_allowed);
  EXPECT_EQ(report.languages, (std::vector<Language>{Language::python, Language::javascript}));
  EXPECT_FALSE(report.cgroup.empty());
}

TEST(SandboxModes, AMissingInterpreterLosesOnlyItsLanguage) {
  Options o = test_options(Mode::process);
  o.python = "/nonexistent/python3";
  const auto report = probe(o);
  ASSERT_TRUE(report.ready) << report.problem;
  EXPECT_EQ(report.languages, std::vector<Language>{Language::javascript});
  bool warned = false;
  for (const auto& w : report.warnings) warned = warned || w.find("SANDBOX_PYTHON") != w.npos;
  EXPECT_TRUE(warned);
  o.node = "/nonexistent/node";
  const auto neither = probe(o);
  EXPECT_FALSE(neither.ready);
  EXPECT_NE(neither.problem.find("no language runs"), std::string::npos) << neither.problem;
}

TEST(Spawn, AFailedExecIsASetupError) {
  for (bool supervise : {false, true}) {
    detail::ChildSpec spec;
    spec.path = "/nonexistent/program";
    spec.argv = {spec.path};
    spec.supervise = supervise;
    auto outcome = detail::run_child(spec, detail::Control{});
    ASSERT_TRUE(outcome) << outcome.error().detail;
    EXPECT_EQ(outcome->setup_error, "execute: No such file or directory") << supervise;
    EXPECT_FALSE(outcome->timed_out);
  }
}

// --- the verb, through the real binary ------------------------------------------------------

struct VerbRun {
  int code = -1;
  std::string out;
  std::string err;
};

VerbRun run_verb(const std::vector<std::string>& args,
                 std::map<std::string, std::string> env = {}) {
  TempDir out;
  const stdfs::path empty_env = out.path() / "empty.env";
  std::ofstream(empty_env) << "";
  edgecoder::testing::ChildOptions o;
  o.args = {"--env-file", empty_env.string()};
  o.args.insert(o.args.end(), args.begin(), args.end());
  o.env = std::move(env);
  o.env["EDGECODER_DATA_DIR"] = (out.path() / "data").string();
  o.env["ASAN_OPTIONS"] = "detect_leaks=0";
  o.output_dir = out.path();
  auto r = edgecoder::testing::run_to_end(EDGECODER_BINARY_PATH, o);
  return {r.code, r.out, r.err};
}

stdfs::path write_program(const TempDir& dir, const std::string& name, const std::string& code) {
  const auto path = dir.path() / name;
  std::ofstream(path) << code;
  return path;
}

TEST(SandboxVerb, RunsAFileAndReturnsItsExitCode) {
  TempDir dir;
  const auto py = write_program(dir, "p.py",
                                "import sys\nprint('out', 6 * 7)\nprint('err', file=sys.stderr)\n"
                                "sys.exit(7)\n");
  auto r = run_verb({"sandbox", "run", "--language", "python", py.string()});
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_EQ(r.out, "out 42\n");
  EXPECT_NE(r.err.find("err\n"), std::string::npos) << r.err;

  const auto js = write_program(dir, "p.js", "console.log([1,2,3].map(x => x * 2).join(','))\n");
  r = run_verb({"sandbox", "run", "-l", "javascript", js.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "2,4,6\n");
}

TEST(SandboxVerb, UsageErrorsExitWithTwo) {
  TempDir dir;
  const auto py = write_program(dir, "p.py", "print(1)\n");
  EXPECT_EQ(run_verb({"sandbox", "run", py.string()}).code, 2);
  EXPECT_EQ(run_verb({"sandbox", "run", "--language", "ruby", py.string()}).code, 2);
  EXPECT_EQ(run_verb({"sandbox", "run", "--language", "python"}).code, 2);
  EXPECT_EQ(run_verb({"sandbox", "run", "--language", "python", "/nonexistent.py"}).code, 2);
  EXPECT_EQ(run_verb({"sandbox", "run", "--bogus", "--language", "python", py.string()}).code, 2);
  EXPECT_EQ(
      run_verb({"sandbox", "run", "--language", "python", py.string()}, {{"SANDBOX_MODE", "vm"}})
          .code,
      2);
}

TEST(SandboxVerb, SaysWhyWhenTheSandboxCannotBeSetUp) {
  TempDir dir;
  const auto py = write_program(dir, "p.py", "print('should not run')\n");
  auto r = run_verb({"sandbox", "run", "--language", "python", py.string()},
                    {{"SANDBOX_BWRAP", "/nonexistent/bwrap"}});
  EXPECT_EQ(r.code, 125);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("SANDBOX_MODE=bwrap cannot be set up"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Fix:"), std::string::npos) << r.err;
}

TEST(SandboxVerb, TimeoutExitsWith124AndSaysSo) {
  TempDir dir;
  const auto py = write_program(dir, "p.py", "print('start', flush=True)\nwhile True: pass\n");
  auto r = run_verb({"sandbox", "run", "--language", "python", py.string()},
                    {{"SANDBOX_TIMEOUT_MS", "1500"}});
  EXPECT_EQ(r.code, 124) << r.err;
  EXPECT_EQ(r.out, "start\n");
  EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
}

TEST(SandboxVerb, ProcessModeWarnsLoudly) {
  TempDir dir;
  const auto py = write_program(dir, "p.py", "print('hi')\n");
  auto r = run_verb({"sandbox", "run", "--language", "python", py.string()},
                    {{"SANDBOX_MODE", "process"}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_NE(r.err.find("WEAK isolation"), std::string::npos) << r.err;
}

// A project directory the sandbox uid may write to (as root bwrap runs as Options::uid; the
// temp directory above it is made traversable).
stdfs::path make_project_dir(const TempDir& base, const Options& options) {
  const stdfs::path project = base.path() / "project";
  stdfs::create_directories(project);
  if (::geteuid() == 0) {
    ::chmod(base.path().c_str(), 0755);
    EXPECT_EQ(::chown(project.c_str(), options.uid, options.gid), 0);
  }
  return project;
}

TEST(ProjectDir, BwrapShellCommandWorksInTheProjectAndSeesNothingElse) {
  TempDir base;
  TempDir data;
  std::ofstream(data.path() / "agent-key") << "data-secret";
  Options options = test_options(Mode::bwrap);
  options.protected_paths = {data.path()};
  const stdfs::path project = make_project_dir(base, options);
  std::ofstream(project / "input.txt") << "hello from the host\n";
  auto sb = make_test_sandbox(options);
  ASSERT_TRUE(sb);
  RunRequest request;
  request.language = Language::shell;
  request.project_dir = project;
  request.code = "pwd; cat input.txt; echo made-inside > created.txt; ls /home 2>&1; ls " +
                 data.path().string() + " 2>&1; cat " + (data.path() / "agent-key").string() +
                 " 2>&1; echo to-stderr >&2; exit 3";
  auto r = sb->run(request);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->exit_code, 3) << r->stderr_text << r->error;
  EXPECT_FALSE(r->timed_out);
  EXPECT_NE(r->stdout_text.find("/project\nhello from the host\n"), std::string::npos)
      << r->stdout_text;
  EXPECT_EQ(r->stderr_text, "to-stderr\n");
  EXPECT_NE(r->stdout_text.find("/home': No such file or directory"), std::string::npos)
      << r->stdout_text;
  EXPECT_EQ(r->stdout_text.find("data-secret"), std::string::npos) << r->stdout_text;
  EXPECT_EQ(r->stdout_text.find("agent-key\n"), std::string::npos) << r->stdout_text;
  std::ifstream created(project / "created.txt");
  std::string line;
  ASSERT_TRUE(std::getline(created, line)) << "the file written in /project is not on the host";
  EXPECT_EQ(line, "made-inside");

  // The timeout of one request overrides the sandbox's; the whole tree is killed.
  RunRequest slow = request;
  slow.code = "sleep 30 & sleep 30; echo never";
  slow.wall_timeout = std::chrono::milliseconds(1000);
  auto t = sb->run(slow);
  ASSERT_TRUE(t) << t.error().detail;
  EXPECT_TRUE(t->timed_out);
  EXPECT_EQ(t->exit_code, 137);
  EXPECT_LT(t->duration_ms, 10'000);
  EXPECT_NE(t->error.find("1000 ms"), std::string::npos) << t->error;
}

TEST(ProjectDir, GitDirectoryIsReadOnlyInsideBwrap) {
  TempDir base;
  Options options = test_options(Mode::bwrap);
  const stdfs::path project = make_project_dir(base, options);
  stdfs::create_directories(project / ".git");
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown((project / ".git").c_str(), options.uid, options.gid), 0);
  }
  auto sb = make_test_sandbox(options);
  ASSERT_TRUE(sb);
  RunRequest request;
  request.language = Language::shell;
  request.project_dir = project;
  request.code = "echo x > .git/config && echo wrote-git; echo y > ok.txt && echo wrote-ok";
  auto r = sb->run(request);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->stdout_text, "wrote-ok\n") << r->stderr_text;
  EXPECT_NE(r->stderr_text.find("Read-only file system"), std::string::npos) << r->stderr_text;
  EXPECT_FALSE(stdfs::exists(project / ".git" / "config"));
}

TEST(ProjectDir, ProtectedAndSystemDirectoriesAreRefused) {
  TempDir data;
  stdfs::create_directories(data.path() / "inner");
  TempDir base;
  Options options = test_options(Mode::bwrap);
  options.protected_paths = {data.path()};
  auto sb = make_test_sandbox(options);
  ASSERT_TRUE(sb);
  const stdfs::path link = base.path() / "link-to-data";
  stdfs::create_directory_symlink(data.path(), link);
  for (const stdfs::path& dir :
       {data.path(), data.path() / "inner", data.path().parent_path(), stdfs::path("/"),
        stdfs::path("/etc"), stdfs::path("/home"), stdfs::path("/proc/self"), link}) {
    RunRequest request;
    request.language = Language::shell;
    request.code = "echo ran";
    request.project_dir = dir;
    auto r = sb->run(request);
    ASSERT_FALSE(r) << dir << " was accepted: " << r->stdout_text;
    EXPECT_EQ(r.error().code, core::Errc::permission_denied) << dir << ": " << r.error().detail;
  }
  RunRequest missing;
  missing.language = Language::shell;
  missing.code = "echo ran";
  missing.project_dir = base.path() / "does-not-exist";
  auto r = sb->run(missing);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::Errc::invalid_argument);
  // The other modes check the same way.
  auto none = make_test_sandbox(test_options(Mode::none));
  ASSERT_TRUE(none);
  RunRequest host;
  host.language = Language::shell;
  host.code = "echo ran";
  host.require_isolation = false;
  host.project_dir = "/etc";
  EXPECT_FALSE(none->run(host));
}

TEST(ProjectDir, ProcessModeAsRootSaysWhenTheProjectIsNotWritable) {
  if (::geteuid() != 0) GTEST_SKIP() << "only root switches to the sandbox uid";
  TempDir base;
  ::chmod(base.path().c_str(), 0755);  // readable, not writable, for the sandbox uid
  auto sb = make_test_sandbox(test_options(Mode::process));
  ASSERT_TRUE(sb);
  RunRequest request;
  request.language = Language::shell;
  request.code = "pwd; echo x > made.txt";
  request.project_dir = base.path();
  auto r = sb->run(request);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->stdout_text, stdfs::canonical(base.path()).string() + "\n");
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->error.find("cannot write to the project directory"), std::string::npos) << r->error;
  EXPECT_FALSE(stdfs::exists(base.path() / "made.txt"));
}

TEST(ProjectDir, NoneModeRunsTheCommandInTheProject) {
  TempDir base;
  std::ofstream(base.path() / "marker") << "m";
  auto none = make_test_sandbox(test_options(Mode::none));
  ASSERT_TRUE(none);
  RunRequest request;
  request.language = Language::shell;
  request.code = "cat marker; echo out > made.txt";
  request.require_isolation = false;
  request.project_dir = base.path();
  auto r = none->run(request);
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
  EXPECT_EQ(r->stdout_text, "m");
  EXPECT_TRUE(stdfs::exists(base.path() / "made.txt"));
}

}  // namespace
}  // namespace edgecoder::sandbox
