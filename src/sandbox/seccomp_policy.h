// Internal to the sandbox library: the seccomp filter every sandboxed program runs under,
// compiled with libseccomp into classic BPF. bwrap receives it as `--seccomp FD`; process mode
// loads it itself right before exec.
//
// The filter allows by default and denies, with EPERM, the system calls a program never needs
// and that widen the kernel attack surface or undo the sandbox: ptrace and cross-process memory
// access, every mount call, pivot_root/chroot, unshare/setns and clone with namespace flags,
// bpf, keyrings, perf_event_open, kernel modules, reboot/kexec, swap, userfaultfd, clock and
// quota changes, handle-based opens, terminal injection (TIOCSTI). clone3 and io_uring get
// ENOSYS so that libc and libuv fall back to what the filter can inspect. Socket families other
// than AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (packet, alg, vsock, ...) get EAFNOSUPPORT;
// with deny_inet (process mode, which has no network namespace) AF_INET, AF_INET6 and
// AF_NETLINK get EACCES too. System calls of a foreign ABI (i386, x32) kill the process.
// Thread-safety: stateless functions.
#pragma once

#include <linux/filter.h>

#include <span>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace edgecoder::sandbox::detail {

struct SeccompPolicy {
  bool deny_inet = false;  // also refuse AF_INET/AF_INET6/AF_NETLINK (no network namespace)
};

// The compiled filter for this architecture.
core::Result<std::vector<sock_filter>> build_seccomp_filter(const SeccompPolicy& policy);

// The system calls denied with EPERM (names; those unknown on this architecture are skipped).
std::span<const std::string_view> denied_syscalls();

}  // namespace edgecoder::sandbox::detail
