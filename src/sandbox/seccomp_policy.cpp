#include "sandbox/seccomp_policy.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>

namespace edgecoder::sandbox::detail {
namespace seccomp_detail {

using core::Errc;
using core::make_error;

constexpr auto kDenied = std::to_array<std::string_view>(
    {// Debugging and reading other processes' memory.
     "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
     // Mounts and changing the root.
     "mount", "umount", "umount2", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
     "fspick", "mount_setattr", "pivot_root", "chroot",
     // Namespaces (clone with namespace flags is handled separately).
     "unshare", "setns",
     // Kernel attack surface with no use in a program run.
     "bpf", "keyctl", "add_key", "request_key", "perf_event_open", "userfaultfd", "fanotify_init",
     "lookup_dcookie", "name_to_handle_at", "open_by_handle_at", "uselib", "ustat", "sysfs",
     "_sysctl", "nfsservctl", "vhangup", "syslog", "iopl", "ioperm", "move_pages", "migrate_pages",
     // Kernel modules, reboot, kexec, swap, accounting, quotas.
     "init_module", "finit_module", "delete_module", "create_module", "query_module",
     "get_kernel_syms", "reboot", "kexec_load", "kexec_file_load", "swapon", "swapoff", "acct",
     "quotactl", "quotactl_fd",
     // The clock and host identity.
     "settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
     "setdomainname"});

// Calls with ENOSYS: their arguments cannot be inspected by a classic BPF filter (clone3 takes
// its flags in memory; io_uring performs operations without further system calls).
constexpr auto kUnavailable = std::to_array<std::string_view>(
    {"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register"});

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

core::Error rule_error(std::string_view what, int rc) {
  return make_error(Errc::internal, "seccomp: cannot add rule for " + std::string(what) + ": " +
                                        std::strerror(-rc));
}

core::Result<void> deny(scmp_filter_ctx ctx, std::string_view name, int err) {
  const int nr = seccomp_syscall_resolve_name(std::string(name).c_str());
  if (nr == __NR_SCMP_ERROR) return {};  // not a call on this architecture
  const int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(static_cast<unsigned>(err)), nr, 0);
  if (rc != 0) return rule_error(name, rc);
  return {};
}

core::Result<void> deny_arg(scmp_filter_ctx ctx, std::string_view name, int err, unsigned arg,
                            scmp_compare op, scmp_datum_t a, scmp_datum_t b) {
  const int nr = seccomp_syscall_resolve_name(std::string(name).c_str());
  if (nr == __NR_SCMP_ERROR) return {};
  scmp_arg_cmp cmp{};
  cmp.arg = arg;
  cmp.op = op;
  cmp.datum_a = a;
  cmp.datum_b = b;
  const int rc =
      seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(static_cast<unsigned>(err)), nr, 1, &cmp);
  if (rc != 0) return rule_error(name, rc);
  return {};
}

}  // namespace seccomp_detail

std::span<const std::string_view> denied_syscalls() { return seccomp_detail::kDenied; }

core::Result<std::vector<sock_filter>> build_seccomp_filter(const SeccompPolicy& policy) {
  using namespace seccomp_detail;
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return make_error(Errc::internal, "seccomp_init failed");
  if (seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0) {
    return make_error(Errc::internal, "seccomp: cannot set the bad-architecture action");
  }
  for (std::string_view name : kDenied) {
    if (auto r = deny(ctx.get(), name, EPERM); !r) return r.error();
  }
  for (std::string_view name : kUnavailable) {
    if (auto r = deny(ctx.get(), name, ENOSYS); !r) return r.error();
  }
  // clone() with any namespace flag (x86-64 and most ABIs: flags are the first argument).
  for (scmp_datum_t flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS,
                            CLONE_NEWIPC, CLONE_NEWCGROUP}) {
    if (auto r = deny_arg(ctx.get(), "clone", EPERM, 0, SCMP_CMP_MASKED_EQ, flag, flag); !r) {
      return r.error();
    }
  }
  // Terminal input injection into a terminal shared with the caller.
  for (scmp_datum_t request : {TIOCSTI, TIOCLINUX}) {
    if (auto r = deny_arg(ctx.get(), "ioctl", EPERM, 1, SCMP_CMP_MASKED_EQ, 0xffffffffU, request);
        !r) {
      return r.error();
    }
  }
  // Socket families: AF_UNIX (1), AF_INET (2), AF_INET6 (10) and AF_NETLINK (16) only; netlink
  // because libc and libuv list interfaces through it (getifaddrs), and the sandbox holds no
  // capability that would let it change anything over it.
  for (scmp_datum_t family : {0, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15}) {
    if (auto r = deny_arg(ctx.get(), "socket", EAFNOSUPPORT, 0, SCMP_CMP_EQ, family, 0); !r) {
      return r.error();
    }
  }
  if (auto r = deny_arg(ctx.get(), "socket", EAFNOSUPPORT, 0, SCMP_CMP_GT, AF_NETLINK, 0); !r) {
    return r.error();
  }
  if (policy.deny_inet) {
    for (scmp_datum_t family : {AF_INET, AF_INET6, AF_NETLINK}) {
      if (auto r = deny_arg(ctx.get(), "socket", EACCES, 0, SCMP_CMP_EQ, family, 0); !r) {
        return r.error();
      }
    }
  }

  // libseccomp 2.5 exports only to a descriptor.
  const int fd = ::memfd_create("edgecoder-seccomp-export", MFD_CLOEXEC);
  if (fd < 0) return make_error(Errc::internal, "memfd_create: " + std::string(strerror(errno)));
  const int rc = seccomp_export_bpf(ctx.get(), fd);
  struct stat st {};
  if (rc != 0 || ::fstat(fd, &st) != 0 || st.st_size <= 0 ||
      st.st_size % static_cast<off_t>(sizeof(sock_filter)) != 0) {
    ::close(fd);
    return make_error(Errc::internal, "seccomp: cannot export the filter");
  }
  std::vector<sock_filter> program(static_cast<std::size_t>(st.st_size) / sizeof(sock_filter));
  const ssize_t n = ::pread(fd, program.data(), static_cast<std::size_t>(st.st_size), 0);
  ::close(fd);
  if (n != st.st_size) return make_error(Errc::internal, "seccomp: cannot read the filter back");
  return program;
}

}  // namespace edgecoder::sandbox::detail
