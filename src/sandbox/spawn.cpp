#include "sandbox/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

namespace edgecoder::sandbox::detail {
namespace spawn_detail {

using core::Errc;
using core::make_error;
using Clock = std::chrono::steady_clock;

// The steps of child setup, reported through the report pipe when one fails.
enum Step : std::int32_t {
  kStepFds = 1,
  kStepCgroup,
  kStepGroups,
  kStepGid,
  kStepUid,
  kStepDeathSignal,
  kStepChdir,
  kStepNoNewPrivs,
  kStepRlimit,
  kStepSeccomp,
  kStepExec,
  kStepFork,
  kStepSupervisor,
};

const char* step_name(std::int32_t step) {
  switch (step) {
    case kStepFds:
      return "set up descriptors";
    case kStepCgroup:
      return "join the run's cgroup";
    case kStepGroups:
      return "drop supplementary groups";
    case kStepGid:
      return "switch to the sandbox gid";
    case kStepUid:
      return "switch to the sandbox uid";
    case kStepDeathSignal:
      return "set the parent-death signal";
    case kStepChdir:
      return "enter the work directory";
    case kStepNoNewPrivs:
      return "set no_new_privs";
    case kStepRlimit:
      return "set resource limits";
    case kStepSeccomp:
      return "load the seccomp filter";
    case kStepExec:
      return "execute";
    case kStepFork:
      return "fork the program";
    case kStepSupervisor:
      return "start the supervisor";
    default:
      return "set up the child";
  }
}

// One record on the report pipe; 32 bytes, so a write is atomic (< PIPE_BUF).
enum Kind : std::int32_t { kKindSetupFailed = 1, kKindStarted = 2, kKindStatus = 3 };
struct Report {
  std::int32_t kind = 0;
  std::int32_t step = 0;
  std::int32_t value = 0;  // errno, pid or wait status
  std::int32_t known = 0;  // kKindStatus: 1 when `value` is the program's wait status
  std::int64_t utime_us = 0;
  std::int64_t stime_us = 0;
};
static_assert(sizeof(Report) == 32);

constexpr int kMaxFds = 16;
constexpr int kMaxRlimits = 16;

// Everything the child needs, computed before fork so that the child only reads it.
struct Prepared {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  std::array<int, kMaxFds> fds{};  // sources for the child's 0, 1, 2, 3, ...
  int n_fds = 0;
  int report_fd = -1;
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  bool no_new_privs = true;
  std::array<int, kMaxRlimits> rl_resource{};
  std::array<rlimit, kMaxRlimits> rl_value{};
  int n_rlimits = 0;
  const char* cgroup_procs = nullptr;
  const char* chdir = "/";
  sock_fprog seccomp{};
  bool has_seccomp = false;
  bool supervise = false;
  pid_t parent_pid = 0;
};

// ---- child side: async-signal-safe only ---------------------------------------------------

void child_report(int fd, std::int32_t kind, std::int32_t step, std::int32_t value) {
  Report r;
  r.kind = kind;
  r.step = step;
  r.value = value;
  [[maybe_unused]] const ssize_t n = ::write(fd, &r, sizeof r);
}

[[noreturn]] void child_fail(int report_fd, std::int32_t step) {
  child_report(report_fd, kKindSetupFailed, step, errno);
  ::_exit(127);
}

// Handlers first, then the mask: a child sharing the caller's memory (start_shared) starts
// with every signal blocked and must never run one of the caller's handlers.
void child_reset_signals() {
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    ::sigaction(sig, &dfl, nullptr);  // SIGKILL/SIGSTOP and reserved ones fail: fine
  }
  sigset_t empty;
  ::sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
}

// Moves the prepared descriptors to 0..n-1 and the report pipe to n (close-on-exec), closes
// everything else. Returns the report descriptor's new number.
int child_setup_fds(const Prepared& p) {
  const int base = p.n_fds;
  std::array<int, kMaxFds> tmp{};
  for (int i = 0; i < p.n_fds; ++i) {
    tmp[i] = ::fcntl(p.fds[i], F_DUPFD_CLOEXEC, base + 1);
    if (tmp[i] < 0) child_fail(p.report_fd, kStepFds);
  }
  const int report_tmp = ::fcntl(p.report_fd, F_DUPFD_CLOEXEC, base + 1);
  if (report_tmp < 0) child_fail(p.report_fd, kStepFds);
  for (int i = 0; i < p.n_fds; ++i) {
    if (::dup2(tmp[i], i) < 0) child_fail(p.report_fd, kStepFds);
  }
  if (::dup3(report_tmp, base, O_CLOEXEC) < 0) child_fail(p.report_fd, kStepFds);
  if (::syscall(SYS_close_range, base + 1, ~0U, 0) != 0) {
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    const long top = nofile.rlim_cur == RLIM_INFINITY ? 65536 : static_cast<long>(nofile.rlim_cur);
    for (long fd = base + 1; fd < top; ++fd) ::close(static_cast<int>(fd));
  }
  return base;
}

void child_join_cgroup(const Prepared& p, int report_fd) {
  if (p.cgroup_procs == nullptr) return;
  const int fd = ::open(p.cgroup_procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) child_fail(report_fd, kStepCgroup);
  // "0" moves the writing process (cgroup v2).
  if (::write(fd, "0", 1) != 1) child_fail(report_fd, kStepCgroup);
  ::close(fd);
}

// Everything between the (possibly supervised) fork and execve of the program.
[[noreturn]] void child_exec_program(const Prepared& p, int report_fd, pid_t expected_parent) {
  ::setpgid(0, 0);  // its own process group, so the whole group can be killed at once
  if (!p.supervise) child_join_cgroup(p, report_fd);
  if (p.switch_user) {
    // Raw syscalls: glibc's wrappers would try to broadcast to threads that only existed in
    // the parent.
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) child_fail(report_fd, kStepGroups);
    if (::syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0) child_fail(report_fd, kStepGid);
    if (::syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) child_fail(report_fd, kStepUid);
  }
  // After the credential change, which clears it. Fires when the forking thread ends.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report_fd, kStepDeathSignal);
  if (::getppid() != expected_parent) ::_exit(127);  // the parent already died
  if (::chdir(p.chdir) != 0) child_fail(report_fd, kStepChdir);
  if (p.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    child_fail(report_fd, kStepNoNewPrivs);
  }
  for (int i = 0; i < p.n_rlimits; ++i) {
    if (::setrlimit(p.rl_resource[i], &p.rl_value[i]) != 0) {
      child_fail(report_fd, kStepRlimit);
    }
  }
  if (p.has_seccomp && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p.seccomp, 0, 0) != 0) {
    child_fail(report_fd, kStepSeccomp);
  }
  ::execve(p.path, p.argv, p.envp);
  child_fail(report_fd, kStepExec);
}

// Writes the decimal form of `v` at `out` and returns the end.
char* child_put_int(char* out, long v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 23);
  while (n > 0) *out++ = digits[--n];
  return out;
}

char* child_put_str(char* out, const char* s) {
  while (*s != '\0') *out++ = *s++;
  return out;
}

// SIGKILLs every child of the supervisor found by scanning /proc (for kernels without
// CONFIG_PROC_CHILDREN). Returns how many were signalled.
int child_kill_children_scan(pid_t self) {
  const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return 0;
  int killed = 0;
  alignas(8) char buf[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      // struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
      unsigned short reclen = 0;
      std::memcpy(&reclen, buf + off + 16, sizeof reclen);
      const char* name = buf + off + 19;
      off += reclen;
      long pid = 0;
      bool numeric = *name != '\0';
      for (const char* c = name; *c != '\0'; ++c) {
        if (*c < '0' || *c > '9') {
          numeric = false;
          break;
        }
        pid = pid * 10 + (*c - '0');
      }
      if (!numeric) continue;
      char path[64];
      char* end = child_put_str(path, "/proc/");
      end = child_put_int(end, pid);
      end = child_put_str(end, "/stat");
      *end = '\0';
      const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char stat[512];
      const ssize_t len = ::read(fd, stat, sizeof stat - 1);
      ::close(fd);
      if (len <= 0) continue;
      stat[len] = '\0';
      // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so use the last ')'.
      const char* paren = nullptr;
      for (ssize_t i = 0; i < len; ++i) {
        if (stat[i] == ')') paren = stat + i;
      }
      if (paren == nullptr || paren + 4 >= stat + len) continue;
      const char* q = paren + 4;  // ") S " then ppid
      long ppid = 0;
      while (*q >= '0' && *q <= '9') ppid = ppid * 10 + (*q++ - '0');
      if (ppid == self && ::kill(static_cast<pid_t>(pid), SIGKILL) == 0) ++killed;
    }
  }
  ::close(dir);
  return killed;
}

// SIGKILLs every child of the supervisor. Returns how many were signalled.
int child_kill_children(pid_t self) {
  char path[96];
  char* end = child_put_str(path, "/proc/");
  end = child_put_int(end, self);
  end = child_put_str(end, "/task/");
  end = child_put_int(end, self);
  end = child_put_str(end, "/children");
  *end = '\0';
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return child_kill_children_scan(self);
  int killed = 0;
  long cur = -1;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
      } else if (cur >= 0) {
        if (::kill(static_cast<pid_t>(cur), SIGKILL) == 0) ++killed;
        cur = -1;
      }
    }
  }
  if (cur >= 0 && ::kill(static_cast<pid_t>(cur), SIGKILL) == 0) ++killed;
  ::close(fd);
  return killed;
}

// Whether a child that execs at once may share its parent's memory until its execve
// (clone(CLONE_VM | CLONE_VFORK), as posix_spawn does): no page tables copied, no copy-on-write
// faults in the parent afterwards, which on virtual machines costs milliseconds per run. Not
// under AddressSanitizer, whose shadow memory the child would share.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kShareMemory = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kShareMemory = false;
#else
constexpr bool kShareMemory = true;
#endif
#else
constexpr bool kShareMemory = true;
#endif

// Starts entry(arg) in a child that shares this process's memory, with this thread suspended
// until the child has called execve or exited. The child runs on a stack of its own (one per
// calling thread, reused: only one child at a time can be on it, since the thread waits) with
// every signal blocked until it has reset the handlers. Returns the pid, -1 with errno on
// failure, or -2 when memory may not be shared or no stack could be had (then the caller forks).
// Async-signal-safe (the supervisor calls it).
pid_t start_shared(int (*entry)(void*), void* arg) {
  if (!kShareMemory) return -2;
  constexpr std::size_t kStack = 256 * 1024;
  thread_local void* stack = nullptr;
  if (stack == nullptr) {
    void* m = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return -2;
    stack = m;
  }
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid =
      ::clone(entry, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
  const int saved = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return pid;
}

// The supervised program's start (in the supervisor).
struct ProgramStart {
  const Prepared* p;
  int report_fd;
  pid_t supervisor;
};

int program_entry(void* arg) {
  const auto* start = static_cast<const ProgramStart*>(arg);
  child_reset_signals();
  child_exec_program(*start->p, start->report_fd, start->supervisor);
}

// The supervisor: a child subreaper between the caller and the program. Processes the program
// leaves behind are re-parented to it, so when the program ends, or the caller sends SIGTERM
// (timeout) or dies, it can kill them all, however they detached.
[[noreturn]] void child_supervise(const Prepared& p, int report_fd) {
  ::setsid();
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) child_fail(report_fd, kStepSupervisor);
  sigset_t waited;
  ::sigemptyset(&waited);
  ::sigaddset(&waited, SIGTERM);
  ::sigaddset(&waited, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &waited, nullptr);
  // SIGTERM when the caller's thread dies: clean up, like a timeout.
  if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) child_fail(report_fd, kStepDeathSignal);
  if (::getppid() != p.parent_pid) ::_exit(127);
  child_join_cgroup(p, report_fd);
  const pid_t self = ::getpid();
  // The supervisor is single-threaded: its program may share its memory until execve.
  ProgramStart start{&p, report_fd, self};
  pid_t program = start_shared(program_entry, &start);
  if (program == -2) {
    program = ::fork();
    if (program == 0) program_entry(&start);
  }
  if (program < 0) child_fail(report_fd, kStepFork);
  child_report(report_fd, kKindStarted, 0, program);

  int status = 0;
  bool known = false;
  for (bool stop = false; !stop;) {
    siginfo_t info;
    const int sig = ::sigwaitinfo(&waited, &info);
    if (sig == SIGTERM) stop = true;
    if (sig != SIGCHLD) continue;
    for (;;) {
      int st = 0;
      const pid_t w = ::waitpid(-1, &st, WNOHANG);
      if (w <= 0) break;
      if (w == program) {
        status = st;
        known = true;
        stop = true;
      }
    }
  }

  // Kill the program's group, then every process re-parented to us, until none is left.
  ::kill(-program, SIGKILL);
  for (int round = 0; round < 200000; ++round) {
    child_kill_children(self);
    bool reaped_any = false;
    bool none_left = false;
    for (;;) {
      int st = 0;
      const pid_t w = ::waitpid(-1, &st, WNOHANG);
      if (w > 0) {
        reaped_any = true;
        if (w == program && !known) {
          status = st;
          known = true;
        }
        continue;
      }
      none_left = w < 0 && errno == ECHILD;
      break;
    }
    if (none_left) break;
    if (!reaped_any) {
      const timespec pause{0, 500'000};  // killed processes still exiting
      ::nanosleep(&pause, nullptr);
    }
  }
  rusage usage{};
  ::getrusage(RUSAGE_CHILDREN, &usage);
  Report r;
  r.kind = kKindStatus;
  r.value = status;
  r.known = known ? 1 : 0;
  r.utime_us = usage.ru_utime.tv_sec * 1'000'000L + usage.ru_utime.tv_usec;
  r.stime_us = usage.ru_stime.tv_sec * 1'000'000L + usage.ru_stime.tv_usec;
  [[maybe_unused]] const ssize_t n = ::write(report_fd, &r, sizeof r);
  ::_exit(0);
}

[[noreturn]] void child_main(const Prepared& p) {
  child_reset_signals();
  const int report_fd = child_setup_fds(p);
  if (p.supervise) child_supervise(p, report_fd);
  child_exec_program(p, report_fd, p.parent_pid);
}

int child_entry(void* prepared) { child_main(*static_cast<const Prepared*>(prepared)); }

// ---- parent side ----------------------------------------------------------------------------

core::Error errno_error(const std::string& what) {
  return make_error(Errc::internal, what + ": " + std::strerror(errno));
}

// Reads what is available; false at EOF or error.
bool drain(int fd, Captured& into, std::size_t cap) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      const std::size_t room = into.text.size() < cap ? cap - into.text.size() : 0;
      const std::size_t keep = std::min(room, static_cast<std::size_t>(n));
      into.text.append(buf, keep);
      if (keep < static_cast<std::size_t>(n)) {
        into.truncated = true;
        into.dropped += static_cast<std::size_t>(n) - keep;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;
  }
}

bool drain_raw(int fd, std::string& into) {
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      if (into.size() < 64 * sizeof(Report)) into.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;
  }
}

// The host pid in bubblewrap's --info-fd output ({ "child-pid": N, ... }) once the number is
// complete, else 0.
pid_t gate_child_pid(const std::string& info, bool at_eof) {
  const auto key = info.find("\"child-pid\"");
  if (key == std::string::npos) return 0;
  std::size_t i = info.find(':', key);
  if (i == std::string::npos) return 0;
  ++i;
  while (i < info.size() && info[i] == ' ') ++i;
  long pid = 0;
  std::size_t digits = 0;
  for (; i < info.size() && info[i] >= '0' && info[i] <= '9' && digits < 10; ++i, ++digits) {
    pid = pid * 10 + (info[i] - '0');
  }
  if (digits == 0 || (i == info.size() && !at_eof)) return 0;
  return static_cast<pid_t>(pid);
}

// prlimit(2) on another process needs CAP_SYS_RESOURCE in its user namespace (which the owner
// of that namespace has) or the same real, effective and saved ids. Root without
// CAP_SYS_RESOURCE (a container's root, typically) uses the latter: this thread alone takes the
// target's ids as its real ids for the one call (raw syscalls change the calling thread's
// credentials only; its effective uid stays 0, so it keeps its capabilities) and restores them.
bool set_limit(pid_t pid, int resource, const rlimit& value,
               const std::optional<std::pair<uid_t, gid_t>>& ids) {
  const auto res = static_cast<__rlimit_resource>(resource);
  if (::prlimit(pid, res, &value, nullptr) == 0) return true;
  if (errno != EPERM || !ids || ::geteuid() != 0) return false;
  uid_t ruid = 0, euid = 0, suid = 0;
  gid_t rgid = 0, egid = 0, sgid = 0;
  if (::getresuid(&ruid, &euid, &suid) != 0 || ::getresgid(&rgid, &egid, &sgid) != 0) return false;
  const long keep = -1;
  // Only the real ids are compared (with the target's real, effective and saved ones).
  if (::syscall(SYS_setresgid, ids->second, keep, keep) != 0) return false;
  bool ok = ::syscall(SYS_setresuid, ids->first, keep, keep) == 0;
  ok = ok && ::prlimit(pid, res, &value, nullptr) == 0;
  const int saved_errno = errno;
  if (::syscall(SYS_setresuid, ruid, euid, suid) != 0 ||
      ::syscall(SYS_setresgid, rgid, egid, sgid) != 0) {
    std::abort();  // never go on with a thread whose identity is not its own
  }
  errno = saved_errno;
  return ok;
}

// Applies the gate's limits to `pid` and lets it go on. Failing to set a limit kills the child:
// it must not run without it.
bool gate_release(StartGate& gate, pid_t pid) {
  bool ok = pid > 0;
  for (const auto& [resource, limit] : gate.rlimits) {
    if (!ok) break;
    rlimit value{};
    value.rlim_cur = limit;
    value.rlim_max = limit;
    ok = set_limit(pid, resource, value, gate.ids);
  }
  if (ok) {
    const char go = 1;
    [[maybe_unused]] const ssize_t n = ::write(gate.release.get(), &go, 1);
  }
  // Only the release end is closed: bwrap goes on writing to the info pipe (and would die of
  // SIGPIPE if its read end were gone); what it writes fits in the pipe's buffer.
  gate.release.reset();
  return ok;
}

std::int64_t ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

}  // namespace spawn_detail

core::Result<Fd> make_memfd(const char* name, std::string_view content) {
  Fd fd(::memfd_create(name, MFD_CLOEXEC));
  if (!fd.valid()) return spawn_detail::errno_error("memfd_create");
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return spawn_detail::errno_error("write memfd");
    done += static_cast<std::size_t>(n);
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) return spawn_detail::errno_error("lseek memfd");
  return fd;
}

std::string random_id() {
  unsigned char bytes[8];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::string finish_captured(Captured captured, std::string_view stream, std::size_t cap) {
  std::string text = std::move(captured.text);
  if (!captured.truncated) return text;
  // Do not end on half a UTF-8 sequence: drop a lead byte whose continuation bytes were cut.
  std::size_t dropped_tail = 0;
  for (std::size_t back = 1; back <= 4 && back <= text.size(); ++back) {
    const auto c = static_cast<unsigned char>(text[text.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    std::size_t need = 1;
    if ((c & 0xE0) == 0xC0) need = 2;
    if ((c & 0xF0) == 0xE0) need = 3;
    if ((c & 0xF8) == 0xF0) need = 4;
    if (need > back) dropped_tail = back;
    break;
  }
  text.resize(text.size() - dropped_tail);
  text += "\n[edgecoder sandbox: " + std::string(stream) + " truncated after " +
          std::to_string(cap) + " bytes; " + std::to_string(captured.dropped + dropped_tail) +
          " more bytes discarded]\n";
  return text;
}

core::Result<Outcome> run_child(const ChildSpec& spec, const Control& control, StartGate* gate) {
  using namespace spawn_detail;
  if (spec.extra_fds.size() + 3 > static_cast<std::size_t>(kMaxFds) ||
      spec.rlimits.size() > static_cast<std::size_t>(kMaxRlimits) || spec.argv.empty()) {
    return make_error(Errc::internal, "run_child: too many descriptors or limits, or no argv");
  }
  int out_pipe[2];
  int err_pipe[2];
  int report_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);
  if (::pipe2(report_pipe, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd rep_r(report_pipe[0]), rep_w(report_pipe[1]);
  Fd devnull;
  int stdin_fd = spec.stdin_fd;
  if (stdin_fd < 0) {
    devnull = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!devnull.valid()) return errno_error("open /dev/null");
    stdin_fd = devnull.get();
  }

  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  Prepared p;
  p.path = spec.path.c_str();
  p.argv = argv.data();
  p.envp = envp.data();
  p.fds[0] = stdin_fd;
  p.fds[1] = out_w.get();
  p.fds[2] = err_w.get();
  p.n_fds = 3;
  for (int fd : spec.extra_fds) p.fds[p.n_fds++] = fd;
  p.report_fd = rep_w.get();
  if (spec.switch_user) {
    p.switch_user = true;
    p.uid = spec.switch_user->first;
    p.gid = spec.switch_user->second;
  }
  p.no_new_privs = spec.no_new_privs;
  for (const auto& [resource, limit] : spec.rlimits) {
    rlimit value{};
    value.rlim_cur = limit;
    value.rlim_max = resource == RLIMIT_CPU ? limit + 1 : limit;
    p.rl_resource[p.n_rlimits] = resource;
    p.rl_value[p.n_rlimits] = value;
    ++p.n_rlimits;
  }
  if (!spec.cgroup_procs.empty()) p.cgroup_procs = spec.cgroup_procs.c_str();
  p.chdir = spec.chdir.c_str();
  if (!spec.seccomp.empty()) {
    p.seccomp.len = static_cast<unsigned short>(spec.seccomp.size());
    p.seccomp.filter = const_cast<sock_filter*>(spec.seccomp.data());
    p.has_seccomp = true;
  }
  p.supervise = spec.supervise;
  p.parent_pid = ::getpid();

  const auto start = Clock::now();
  pid_t pid = -2;
  if (!spec.supervise) pid = start_shared(child_entry, &p);
  if (pid == -2) {
    pid = ::fork();
    if (pid == 0) child_main(p);
  }
  if (pid < 0) return errno_error("fork");

  out_w.reset();
  err_w.reset();
  rep_w.reset();
  for (int fd : {out_r.get(), err_r.get(), rep_r.get()}) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  bool gate_open = gate != nullptr && gate->info.valid();
  std::string gate_text;
  if (gate_open)
    ::fcntl(gate->info.get(), F_SETFL, ::fcntl(gate->info.get(), F_GETFL) | O_NONBLOCK);
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  Outcome outcome;
  std::string reports;
  const auto deadline = start + control.timeout;
  constexpr auto kSupervisorGrace = std::chrono::seconds(3);
  constexpr auto kPipeGrace = std::chrono::seconds(2);
  bool exited = false;
  bool out_open = true, err_open = true, rep_open = true;
  std::optional<Clock::time_point> kill_sent_at;
  std::optional<Clock::time_point> exit_seen_at;
  bool hard_killed = false;
  pid_t program_pid = -1;

  std::vector<Report> records;
  auto parse_reports = [&] {
    while (reports.size() >= sizeof(Report)) {
      Report r;
      std::memcpy(&r, reports.data(), sizeof r);
      reports.erase(0, sizeof r);
      if (r.kind == kKindStarted) program_pid = r.value;
      records.push_back(r);
    }
  };

  for (;;) {
    auto now = Clock::now();
    if (!exited && !outcome.timed_out && now >= deadline) {
      outcome.timed_out = true;
      if (control.on_timeout) control.on_timeout();
      if (spec.supervise) {
        ::kill(pid, SIGTERM);  // the supervisor kills the tree and reports
      } else {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
      }
      kill_sent_at = now = Clock::now();
    }
    if (spec.supervise && kill_sent_at && !exited && !hard_killed &&
        now >= *kill_sent_at + kSupervisorGrace) {
      parse_reports();
      ::kill(pid, SIGKILL);
      if (program_pid > 0) ::kill(-program_pid, SIGKILL);
      hard_killed = true;
    }
    if (exited && !out_open && !err_open && !rep_open) break;
    if (exited && exit_seen_at && now >= *exit_seen_at + kPipeGrace) {
      outcome.escaped_output = true;  // something outside our reach still holds the pipes
      break;
    }

    auto wait_until = Clock::time_point::max();
    if (!exited && !outcome.timed_out) wait_until = deadline;
    if (spec.supervise && kill_sent_at && !hard_killed) {
      wait_until = std::min(wait_until, *kill_sent_at + kSupervisorGrace);
    }
    if (exit_seen_at) wait_until = std::min(wait_until, *exit_seen_at + kPipeGrace);
    if (!pidfd.valid() && !exited)
      wait_until = std::min(wait_until, now + std::chrono::milliseconds(10));
    int timeout_ms = -1;
    if (wait_until != Clock::time_point::max()) {
      timeout_ms =
          static_cast<int>(std::clamp<std::int64_t>(ms_between(now, wait_until) + 1, 0, 60'000));
    }

    std::array<pollfd, 5> fds{};
    int n = 0;
    int out_i = -1, err_i = -1, rep_i = -1, pid_i = -1, gate_i = -1;
    if (gate_open) fds[gate_i = n++] = {gate->info.get(), POLLIN, 0};
    if (out_open) fds[out_i = n++] = {out_r.get(), POLLIN, 0};
    if (err_open) fds[err_i = n++] = {err_r.get(), POLLIN, 0};
    if (rep_open) fds[rep_i = n++] = {rep_r.get(), POLLIN, 0};
    if (pidfd.valid() && !exited) fds[pid_i = n++] = {pidfd.get(), POLLIN, 0};
    const int ready = ::poll(fds.data(), static_cast<nfds_t>(n), timeout_ms);
    if (ready < 0 && errno != EINTR) return errno_error("poll");
    if (ready <= 0 && pidfd.valid()) continue;

    if (gate_i >= 0 && fds[gate_i].revents != 0) {
      const bool more = drain_raw(gate->info.get(), gate_text);
      const pid_t child = gate_child_pid(gate_text, !more);
      if (child > 0 || !more) {
        gate_open = false;
        if (!gate_release(*gate, child)) {
          // Never let it run without its limits.
          outcome.setup_error = std::string("set the sandbox's resource limits: ") +
                                (child > 0 ? std::strerror(errno) : "no child pid announced");
          ::kill(-pid, SIGKILL);
          ::kill(pid, SIGKILL);
        }
      }
    }
    if (out_i >= 0 && fds[out_i].revents != 0) {
      out_open = drain(out_r.get(), outcome.out, control.max_output_bytes);
    }
    if (err_i >= 0 && fds[err_i].revents != 0) {
      err_open = drain(err_r.get(), outcome.err, control.max_output_bytes);
    }
    if (rep_i >= 0 && fds[rep_i].revents != 0) {
      rep_open = drain_raw(rep_r.get(), reports);
      parse_reports();
    }
    if (!exited && (pid_i < 0 || fds[pid_i].revents != 0)) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid) {
        exited = true;
        exit_seen_at = Clock::now();
        // Stragglers in its process group; the group id cannot be reused before the reap.
        if (!spec.supervise) ::kill(-pid, SIGKILL);
      }
    }
  }

  if (gate_open) gate->release.reset();  // the child ended before announcing itself
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  outcome.duration_ms = ms_between(start, Clock::now());
  if (out_open) drain(out_r.get(), outcome.out, control.max_output_bytes);
  if (err_open) drain(err_r.get(), outcome.err, control.max_output_bytes);
  if (rep_open) drain_raw(rep_r.get(), reports);
  parse_reports();

  // Reports: setup failures from the child (or the supervised program), the program's status.
  bool supervised_status = false;
  std::int64_t cpu_us = usage.ru_utime.tv_sec * 1'000'000L + usage.ru_utime.tv_usec +
                        usage.ru_stime.tv_sec * 1'000'000L + usage.ru_stime.tv_usec;
  for (const Report& r : records) {
    if (r.kind == kKindSetupFailed && outcome.setup_error.empty()) {
      outcome.setup_error = std::string(step_name(r.step)) + ": " + std::strerror(r.value);
    } else if (r.kind == kKindStatus) {
      if (r.known != 0) {
        outcome.wait_status = r.value;
        supervised_status = true;
      }
      cpu_us = r.utime_us + r.stime_us;
    }
  }
  if (!spec.supervise) {
    outcome.wait_status = status;
  } else if (!supervised_status && !outcome.timed_out) {
    // The supervisor died before reporting (killed); report what the kernel says about it.
    outcome.wait_status = status;
  }
  outcome.cpu_ms = cpu_us / 1000;
  return outcome;
}

}  // namespace edgecoder::sandbox::detail
