"""Shared helpers for the packaging tests (tests/packaging/*_test.py).

- Checks: collects named checks, prints one line each and exits 0 / 1 / 77 (skipped).
- DebianRoot: a throwaway Debian 12 root (debootstrap --variant=minbase) in a temp directory,
  built from caches under /var/cache/edgecoder-test (override: EDGECODER_TEST_CACHE) so that
  re-runs take seconds: the debootstrap tarball (--make-tarball / --unpack-tarball), a prepared
  root file system, and the .debs apt downloaded. The mirror is the one this machine's apt uses
  (override: EDGECODER_TEST_DEBIAN_MIRROR, EDGECODER_TEST_SECURITY_MIRROR).
- parse_dockerfile: stages and instructions of a Dockerfile.

Run with /usr/bin/python3 (the standard library only, plus python3-yaml where noted).
"""

import contextlib
import fcntl
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
ROOTFS_MAX_AGE_S = 3 * 24 * 3600  # apt lists older than this are refreshed
TARBALL_MAX_AGE_S = 30 * 24 * 3600


class Checks:
    """Named checks; a failing check does not stop the others unless it raises."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = []
        self.skipped = []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {what}", flush=True)
        else:
            self.failed.append(what)
            print(f"FAIL {what}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def equal(self, actual, expected, what):
        return self.check(actual == expected, what, f"got {actual!r}, want {expected!r}")

    def skip(self, what, why):
        self.skipped.append(what)
        print(f"SKIP {what}: {why}", flush=True)

    def finish(self):
        print(f"{self.name}: {self.passed} passed, {len(self.failed)} failed"
              + (f", {len(self.skipped)} skipped" if self.skipped else ""), flush=True)
        if self.failed:
            for what in self.failed:
                print(f"  failed: {what}")
            sys.exit(1)
        sys.exit(SKIP if self.skipped else 0)


def run(cmd, check=True, **kw):
    """Runs a command, echoing it; returns CompletedProcess with text stdout/stderr."""
    print("+ " + (cmd if isinstance(cmd, str) else " ".join(shlex.quote(c) for c in cmd)),
          flush=True)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    started = time.monotonic()
    proc = subprocess.run(cmd, check=False, **kw)
    print(f"  ({time.monotonic() - started:.1f} s, exit {proc.returncode})", flush=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {cmd}\n"
                           f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing
# ---------------------------------------------------------------------------------------------

def parse_dockerfile(text):
    """Returns a list of stages: {"from": image, "name": alias, "instructions": [(KW, args)]}.

    Handles comments, line continuations and parser directives; args are the raw text."""
    logical = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        logical.append(current)
        current = ""
    if current:
        logical.append(current)
    stages = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = re.sub(r"\s+", " ", args.strip())
        if keyword == "FROM":
            m = re.match(r"(?:--platform=\S+ )?(\S+)(?: AS (\S+))?$", args, re.IGNORECASE)
            if not m:
                raise ValueError(f"cannot parse FROM {args}")
            stages.append({"from": m.group(1), "name": m.group(2), "instructions": []})
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"{keyword} before the first FROM")
        else:
            stages[-1]["instructions"].append((keyword, args))
    return stages


def apt_packages(run_args):
    """Package names an `apt-get install` in a RUN instruction installs."""
    packages = []
    for command in re.split(r"&&|;|\|\|", run_args):
        words = shlex.split(command)
        if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
            after = words[words.index("install") + 1:]
            packages += [w for w in after if not w.startswith("-")]
    return packages


def env_assignments(args):
    """KEY=VALUE pairs of an ENV instruction (both ENV forms)."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


# ---------------------------------------------------------------------------------------------
# Throwaway Debian root
# ---------------------------------------------------------------------------------------------

def cache_dir():
    path = os.environ.get("EDGECODER_TEST_CACHE", "/var/cache/edgecoder-test")
    os.makedirs(path, exist_ok=True)
    return path


def configured_mirrors():
    """(debian mirror, security mirror) from this machine's apt sources."""
    mirror = os.environ.get("EDGECODER_TEST_DEBIAN_MIRROR")
    security = os.environ.get("EDGECODER_TEST_SECURITY_MIRROR")
    entries = []  # (uri, suites)
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for para in re.split(r"\n\s*\n", text):
                fields = {}
                for line in para.splitlines():
                    if ":" in line and not line.startswith((" ", "#")):
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    entries.append((uri, fields.get("suites", "").split()))
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    entries.append((m.group(1), [m.group(2)]))
    for uri, suites in entries:
        if not mirror and SUITE in suites:
            mirror = uri
        if not security and f"{SUITE}-security" in suites:
            security = uri
    return (mirror or DEFAULT_MIRROR).rstrip("/"), (security or DEFAULT_SECURITY_MIRROR).rstrip("/")


def _mounts_under(path):
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point == path or mount_point.startswith(path + "/"):
                found.append(mount_point)
    return found


def _remove_tree(path):
    """Removes a chroot directory, refusing while anything is mounted under it."""
    for mount_point in sorted(_mounts_under(path), reverse=True):
        subprocess.run(["umount", "-l", mount_point], check=False)
    left = _mounts_under(path)
    if left:
        raise RuntimeError(f"refusing to delete {path}: still mounted: {left}")
    subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


def _sources_list(mirror, security):
    return (f"deb {mirror} {SUITE} main\n"
            f"deb {mirror} {SUITE}-updates main\n"
            f"deb {security} {SUITE}-security main\n")


def _chroot_env(extra=None):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root",
           # The packaging checks are not leak checks; LSan inside a chroot only adds noise.
           "ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"}
    env.update(extra or {})
    return env


def ensure_rootfs_cache():
    """Path of a tar of a prepared minbase root (apt lists fresh), building it when needed."""
    cache = cache_dir()
    tarball = os.path.join(cache, f"{SUITE}-minbase-debs.tgz")
    rootfs = os.path.join(cache, f"{SUITE}-minbase-rootfs-v2.tar")
    mirror, security = configured_mirrors()
    with open(os.path.join(cache, "lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        now = time.time()
        if os.path.exists(rootfs) and now - os.path.getmtime(rootfs) < ROOTFS_MAX_AGE_S:
            return rootfs
        work = tempfile.mkdtemp(prefix="edgecoder-debootstrap-", dir=cache)
        try:
            target = os.path.join(work, "root")
            if not os.path.exists(tarball) or now - os.path.getmtime(tarball) > TARBALL_MAX_AGE_S:
                run(["debootstrap", "--variant=minbase", f"--make-tarball={tarball}.tmp",
                     SUITE, os.path.join(work, "make"), mirror])
                os.replace(f"{tarball}.tmp", tarball)
            run(["debootstrap", "--variant=minbase", f"--unpack-tarball={tarball}", SUITE,
                 target, mirror])
            with open(os.path.join(target, "etc/apt/sources.list"), "w", encoding="utf-8") as f:
                f.write(_sources_list(mirror, security))
            shutil.copy("/etc/resolv.conf", os.path.join(target, "etc/resolv.conf"))
            run(["chroot", target, "apt-get", "update", "-q"], env=_chroot_env())
            # Every image has it, and its postinst (c_rehash of ~140 certificates) is the slowest
            # step of an install: do it once here rather than in every test.
            run(["chroot", target, "apt-get", "install", "-q", "-y", "--no-install-recommends",
                 "ca-certificates"], env=_chroot_env())
            run(["chroot", target, "apt-get", "clean"], env=_chroot_env())
            run(["tar", "-C", target, "--numeric-owner", "-cf", rootfs + ".tmp", "."])
            os.replace(rootfs + ".tmp", rootfs)
        finally:
            _remove_tree(work)
        return rootfs


class DebianRoot:
    """A throwaway Debian 12 root with /proc mounted. Use as a context manager."""

    def __init__(self, parent_dir):
        os.makedirs(parent_dir, exist_ok=True)
        # Roots left by a run that was killed (a ctest timeout), possibly with /proc mounted.
        for stale in glob.glob(os.path.join(parent_dir, "debian-root-*")):
            _remove_tree(stale)
        self.parent = tempfile.mkdtemp(prefix="debian-root-", dir=parent_dir)
        self.path = os.path.join(self.parent, "root")
        self.archives = os.path.join(cache_dir(), "archives")

    def __enter__(self):
        try:
            rootfs = ensure_rootfs_cache()
            os.makedirs(self.path)
            run(["tar", "-C", self.path, "--numeric-owner", "-xpf", rootfs])
            shutil.copy("/etc/resolv.conf", os.path.join(self.path, "etc/resolv.conf"))
            # A throwaway root needs no fsync per unpacked file; it costs a minute per install.
            with open(os.path.join(self.path, "etc/dpkg/dpkg.cfg.d/throwaway-root"), "w",
                      encoding="utf-8") as f:
                f.write("force-unsafe-io\n")
            run(["mount", "-t", "proc", "proc", os.path.join(self.path, "proc")])
        except BaseException:
            _remove_tree(self.parent)
            raise
        return self

    def __exit__(self, *exc):
        _remove_tree(self.parent)
        return False

    def file(self, path):
        return os.path.join(self.path, path.lstrip("/"))

    def read(self, path):
        with open(self.file(path), encoding="utf-8", errors="replace") as f:
            return f.read()

    def write(self, path, text, mode=0o644):
        full = self.file(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(full, mode)

    def sh(self, script, check=True, user=None, env=None, **kw):
        """Runs a shell script inside the root (as root, or as `user` = "uid:gid")."""
        cmd = ["chroot"]
        if user:
            cmd.append(f"--userspec={user}")
        cmd += [self.path, "/bin/sh", "-ec", script]
        return run(cmd, check=check, env=_chroot_env(env), **kw)

    @contextlib.contextmanager
    def apt_cache(self):
        """Shares downloaded .debs with later runs (hard links in, copies out)."""
        os.makedirs(self.archives, exist_ok=True)
        inside = self.file("/var/cache/apt/archives")
        os.makedirs(inside, exist_ok=True)
        for deb in glob.glob(os.path.join(self.archives, "*.deb")):
            target = os.path.join(inside, os.path.basename(deb))
            if not os.path.exists(target):
                try:
                    os.link(deb, target)
                except OSError:
                    shutil.copy(deb, target)
        try:
            yield
        finally:
            for deb in glob.glob(os.path.join(inside, "*.deb")):
                target = os.path.join(self.archives, os.path.basename(deb))
                if not os.path.exists(target):
                    shutil.copy(deb, target + ".tmp")
                    os.replace(target + ".tmp", target)

    def apt(self, args, check=True):
        """apt-get inside the root, reusing (and filling) the shared .deb cache."""
        with self.apt_cache():
            proc = self.sh("apt-get -q -y -o Dpkg::Use-Pty=0 " + args, check=False)
            if proc.returncode != 0:
                # The lists went stale (404) or were deleted (as an image build does): once more.
                self.sh("apt-get -q update")
                proc = self.sh("apt-get -q -y -o Dpkg::Use-Pty=0 " + args, check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"apt-get {args} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def missing_libraries(self, binary):
        """Shared libraries `binary` (a path inside the root) needs that are not installed."""
        proc = self.sh(f"ldd {shlex.quote(binary)}", check=False)
        return sorted(set(re.findall(r"^\s*(\S+) => not found", proc.stdout, re.MULTILINE)))

    @contextlib.contextmanager
    def process(self, argv, user=None, env=None):
        """Starts argv inside the root; stops it with SIGTERM (then SIGKILL) on exit."""
        cmd = ["chroot"] + ([f"--userspec={user}"] if user else []) + [self.path] + argv
        print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        log = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(cmd, env=_chroot_env(env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        holder = {"proc": proc, "log": log, "returncode": None}
        try:
            yield holder
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            holder["returncode"] = proc.returncode
            log.seek(0)
            holder["output"] = log.read()
            log.close()


def require_root(checks, what):
    if os.geteuid() != 0:
        checks.skip(what, "needs root (chroot, mount)")
        return False
    for tool in ("debootstrap", "chroot"):
        if not shutil.which(tool):
            checks.check(False, what, f"{tool} is not installed (see .ci/deps-packaging.txt)")
            return False
    return True


def http_get(url, timeout=2.0):
    """(status, body) of a plain HTTP GET, or (None, error)."""
    import urllib.request
    import urllib.error
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError) as e:
        return None, str(e)


def wait_for_health(url, deadline_s=30.0):
    end = time.time() + deadline_s
    status, body = None, ""
    while time.time() < end:
        status, body = http_get(url)
        if status == 200:
            try:
                return status, json.loads(body)
            except ValueError:
                return status, body
        time.sleep(0.2)
    return status, body
