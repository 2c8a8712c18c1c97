#!/usr/bin/python3
"""The .deb: build it, lintian, systemd-analyze verify, and its whole life in a throwaway root.

  deb_test.py --binary BUILD/src/app/edgecoder --source-dir REPO --work-dir DIR --version X.Y.Z

1. packaging/debian/build-deb.sh builds EdgeCoder-X.Y.Z-linux-<arch>.deb and X.Y.Z+test1 (the
   upgrade); the contents, modes, control fields, conffiles and maintainer scripts are checked.
2. lintian reports no error and no warning; every override the package ships is justified by a
   comment line above it.
3. systemd-analyze verify accepts the packaged unit, with the packaged binary at ExecStart.
4. In a debootstrap'd Debian 12 root (needs root; SKIPPED otherwise): install, reinstall,
   upgrade with a locally modified conffile, remove and purge, checking the files, the system
   user, the conffile kept on upgrade, the enablement calls the maintainer scripts make (a fake
   systemctl and a policy-rc.d record them), and that purge deletes the data.
"""

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkgtest  # noqa: E402
from pkgtest import run  # noqa: E402

FAKE_SYSTEMCTL = """#!/bin/sh
# Test double for a running systemd: records the call; units count as enabled and inactive.
echo "systemctl $*" >>/var/log/fake-systemd-calls
case " $* " in
  *" is-enabled "*) echo enabled ;;
  *" is-active "*) exit 3 ;;
esac
exit 0
"""
POLICY_RC_D = """#!/bin/sh
# Test double: records what deb-systemd-invoke asks for and allows it.
echo "policy-rc.d $*" >>/var/log/fake-systemd-calls
exit 0
"""


def build_deb(source_dir, binary, version, out, compression="xz"):
    proc = run(["sh", os.path.join(source_dir, "packaging/debian/build-deb.sh"), "--binary",
                binary, "--version", version, "--out", out],
               env=dict(os.environ, DEB_COMPRESSION=compression))
    return proc.stdout.strip().splitlines()[-1]


def check_contents(c, deb, version, arch):
    c.equal(os.path.basename(deb), f"EdgeCoder-{version}-linux-{arch}.deb", "package file name")
    listing = run(["dpkg-deb", "--contents", deb]).stdout
    entries = {}
    for line in listing.splitlines():
        parts = line.split(None, 5)
        entries[parts[5].lstrip(".")] = (parts[0], parts[1])
    expected = {
        "/usr/bin/edgecoder": ("-rwxr-xr-x", "root/root"),
        "/lib/systemd/system/edgecoder.service": ("-rw-r--r--", "root/root"),
        "/etc/edgecoder/edgecoder.env": ("-rw-r--r--", "root/root"),
        "/usr/share/doc/edgecoder/copyright": ("-rw-r--r--", "root/root"),
        "/usr/share/doc/edgecoder/changelog.gz": ("-rw-r--r--", "root/root"),
        "/usr/share/man/man1/edgecoder.1.gz": ("-rw-r--r--", "root/root"),
    }
    for path, mode_owner in expected.items():
        c.equal(entries.get(path), mode_owner, f"package ships {path} {mode_owner[0]}")
    c.check(not any(p.startswith(("/usr/local", "/var/lib", "/home", "/opt")) for p in entries),
            "package ships nothing under /usr/local, /var/lib, /home or /opt")
    control = run(["dpkg-deb", "--field", deb]).stdout
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", control, re.MULTILINE))
    c.equal(fields.get("Package"), "edgecoder", "control: Package")
    c.equal(fields.get("Version"), version, "control: Version")
    c.equal(fields.get("Architecture"), arch, "control: Architecture")
    depends = fields.get("Depends", "")
    c.check("adduser" in depends and "libc6" in depends, "control: Depends has adduser and libc6",
            depends)
    ctl = tempfile.mkdtemp()
    try:
        run(["dpkg-deb", "--control", deb, ctl])
        with open(os.path.join(ctl, "conffiles"), encoding="utf-8") as f:
            c.equal(f.read(), "/etc/edgecoder/edgecoder.env\n", "conffiles lists the env file")
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(ctl, script)
            ok = os.path.exists(path) and os.stat(path).st_mode & stat.S_IXUSR
            c.check(ok, f"maintainer script {script} is present and executable")
            if ok:
                c.equal(run(["sh", "-n", path], check=False).returncode, 0, f"{script}: sh -n")
                with open(path, encoding="utf-8") as f:
                    c.check("set -e" in f.read(), f"{script} uses set -e")
    finally:
        shutil.rmtree(ctl)


def check_lintian(c, deb):
    if not shutil.which("lintian"):
        c.check(False, "lintian", "lintian is not installed (see .ci/deps-packaging.txt)")
        return
    proc = run(["lintian", "--fail-on", "error,warning", "--display-info", "--show-overrides",
                deb], check=False)
    print(proc.stdout + proc.stderr)
    tags = [l for l in proc.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    c.check(proc.returncode == 0 and not tags, "lintian: no errors and no warnings",
            "\n".join(tags))
    # Every override must be justified by a comment right above it.
    root = tempfile.mkdtemp()
    try:
        run(["dpkg-deb", "-x", deb, root])
        overrides = os.path.join(root, "usr/share/lintian/overrides/edgecoder")
        unjustified = []
        if os.path.exists(overrides):
            with open(overrides, encoding="utf-8") as f:
                previous = ""
                for line in f:
                    line = line.rstrip("\n")
                    if line and not line.startswith("#") and not previous.startswith("#"):
                        unjustified.append(line)
                    if line:
                        previous = line
        c.check(not unjustified, "every lintian override has a justifying comment",
                "; ".join(unjustified))
    finally:
        shutil.rmtree(root)


def check_systemd_verify(c, deb):
    """systemd-analyze verify on the packaged unit, in a root holding the package's files and
    this machine's systemd units (for the targets it refers to)."""
    if not shutil.which("systemd-analyze"):
        c.check(False, "systemd-analyze verify", "systemd is not installed")
        return
    root = tempfile.mkdtemp()
    try:
        run(["dpkg-deb", "-x", deb, root])
        units = os.path.join(root, "lib/systemd/system")
        for name in os.listdir("/lib/systemd/system"):
            src = os.path.join("/lib/systemd/system", name)
            dst = os.path.join(units, name)
            if not os.path.exists(dst) and (name.endswith(".target") or os.path.isdir(src)):
                if os.path.isdir(src) and not os.path.islink(src):
                    shutil.copytree(src, dst, symlinks=True)
                else:
                    shutil.copy(src, dst, follow_symlinks=False)
        proc = run(["systemd-analyze", "verify", "--man=no", f"--root={root}",
                    "edgecoder.service"], check=False)
        out = (proc.stdout + proc.stderr).strip()
        c.check(proc.returncode == 0 and not out, "systemd-analyze verify edgecoder.service",
                out or f"exit {proc.returncode}")
    finally:
        shutil.rmtree(root)


def calls(root):
    path = root.file("/var/log/fake-systemd-calls")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    os.unlink(path)
    return lines


def passwd_entry(root, name):
    proc = root.sh(f"getent passwd {name}", check=False)
    return proc.stdout.strip().split(":") if proc.returncode == 0 else None


def lifecycle(c, args, deb1, deb2, version1, version2):
    with pkgtest.DebianRoot(args.work_dir) as root:
        for deb in (deb1, deb2):
            shutil.copy(deb, root.file("/tmp/"))
        # No systemd at first (no systemctl, no /run/systemd/system): deb-systemd-helper
        # enables the unit itself and nothing may be started.
        root.write("/usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
        wants = "/etc/systemd/system/multi-user.target.wants/edgecoder.service"

        # Install into a root where systemd is not running (like a chroot or an image build).
        proc = root.apt(f"install --no-install-recommends /tmp/{os.path.basename(deb1)}")
        print(proc.stdout[-3000:])
        c.equal(root.sh("dpkg-query -W -f='${Status} ${Version}' edgecoder").stdout,
                f"install ok installed {version1}", "install: package installed")
        for path in ("/usr/bin/edgecoder", "/lib/systemd/system/edgecoder.service",
                     "/etc/edgecoder/edgecoder.env"):
            c.check(os.path.isfile(root.file(path)), f"install: {path} present")
        user = passwd_entry(root, "edgecoder")
        c.check(user is not None, "install: system user edgecoder created")
        if user:
            c.check(int(user[2]) < 1000, "install: edgecoder is a system uid", user[2])
            c.equal(user[5], "/var/lib/edgecoder", "install: home is the state directory")
            c.equal(user[6], "/usr/sbin/nologin", "install: no login shell")
        c.check(root.sh("getent group edgecoder", check=False).returncode == 0,
                "install: group edgecoder created")
        env_stat = root.sh("stat -c '%U:%G %a' /etc/edgecoder/edgecoder.env").stdout.strip()
        c.equal(env_stat, "root:edgecoder 640", "install: env file readable by the service only")
        state = root.sh("stat -c '%U:%G %a' /var/lib/edgecoder", check=False).stdout.strip()
        c.equal(state, "edgecoder:edgecoder 700", "install: /var/lib/edgecoder owned, 0700")
        c.equal(os.readlink(root.file(wants)) if os.path.islink(root.file(wants)) else None,
                "/lib/systemd/system/edgecoder.service", "install: service enabled (wants link)")
        c.equal(calls(root), [], "install: nothing started where systemd is not running")
        version = root.sh("edgecoder --version", check=False)
        c.equal(version.stdout.strip(), f"edgecoder {version1.split('+')[0]}",
                "install: edgecoder --version runs")
        shown = root.sh("edgecoder config show", check=False)
        c.check(shown.returncode == 0 and
                re.search(r"^EDGECODER_DATA_DIR=/var/lib/edgecoder\s+#\s*env.file", shown.stdout,
                          re.MULTILINE) and
                re.search(r"^EDGE_RUNTIME_MODE=all-in-one\s+#\s*default", shown.stdout,
                          re.MULTILINE),
                "install: edgecoder reads the packaged env file (mode left at all-in-one)",
                shown.stdout + shown.stderr)

        # Reinstalling runs postinst again: nothing changes, nothing fails.
        uid = user[2] if user else None
        root.sh(f"dpkg -i /tmp/{os.path.basename(deb1)}")
        c.equal((passwd_entry(root, "edgecoder") or [None] * 3)[2], uid,
                "reinstall: user kept (postinst idempotent)")
        calls(root)

        # From here on systemd "runs": /run/systemd/system exists and systemctl is a recorder.
        # Upgrade with a local edit to the conffile and node data in place.
        os.makedirs(root.file("/run/systemd/system"), exist_ok=True)
        root.write("/usr/bin/systemctl", FAKE_SYSTEMCTL, 0o755)
        with open(root.file("/etc/edgecoder/edgecoder.env"), "a", encoding="utf-8") as f:
            f.write("EDGECODER_LOG_LEVEL=debug\n")
        root.write("/var/lib/edgecoder/node-identity", "node data\n", 0o600)
        proc = root.sh(f"dpkg -i /tmp/{os.path.basename(deb2)}", check=False)
        print(proc.stdout + proc.stderr)
        c.equal(proc.returncode, 0, "upgrade: dpkg -i of the new version succeeds")
        c.equal(root.sh("dpkg-query -W -f='${Version}' edgecoder").stdout, version2,
                "upgrade: new version installed")
        c.check(root.read("/etc/edgecoder/edgecoder.env").endswith("EDGECODER_LOG_LEVEL=debug\n"),
                "upgrade: the modified conffile is kept")
        c.check(not any(os.path.exists(root.file("/etc/edgecoder/edgecoder.env" + s))
                        for s in (".dpkg-new", ".dpkg-dist", ".dpkg-old")),
                "upgrade: no .dpkg-* copies (conffile unchanged upstream, no prompt)")
        c.equal((passwd_entry(root, "edgecoder") or [None] * 3)[2], uid, "upgrade: same uid")
        upgrade_calls = calls(root)
        print("\n".join(upgrade_calls))
        c.check("systemctl --system daemon-reload" in upgrade_calls,
                "upgrade: systemd reloaded", upgrade_calls)
        c.check(any(re.match(r"policy-rc.d .*edgecoder.service.* restart", l) or
                    re.match(r"policy-rc.d edgecoder.service restart", l) for l in upgrade_calls)
                and any(re.match(r"systemctl .*restart .*edgecoder.service", l)
                        for l in upgrade_calls),
                "upgrade: service restarted via deb-systemd-invoke", upgrade_calls)
        c.check(not any(re.match(r"systemctl .*\bstop\b", l) for l in upgrade_calls),
                "upgrade: not stopped by prerm", upgrade_calls)

        # Remove: data and configuration stay.
        proc = root.apt("remove edgecoder")
        remove_calls = calls(root)
        print("\n".join(remove_calls))
        c.equal(root.sh("dpkg-query -W -f='${Status}' edgecoder").stdout,
                "deinstall ok config-files", "remove: package in config-files state")
        c.check(not os.path.exists(root.file("/usr/bin/edgecoder")), "remove: binary removed")
        c.check(not os.path.exists(root.file("/lib/systemd/system/edgecoder.service")),
                "remove: unit removed")
        c.check(root.read("/etc/edgecoder/edgecoder.env").endswith("EDGECODER_LOG_LEVEL=debug\n"),
                "remove: modified conffile kept")
        c.check(os.path.exists(root.file("/var/lib/edgecoder/node-identity")),
                "remove: node data kept")
        c.check(any(re.match(r"systemctl .*stop .*edgecoder.service", l) for l in remove_calls),
                "remove: service stopped by prerm", remove_calls)

        # Purge: data, configuration and enablement state go.
        root.sh("dpkg --purge edgecoder")
        calls(root)
        c.check(root.sh("dpkg-query -W edgecoder", check=False).returncode != 0 or
                "not-installed" in root.sh("dpkg-query -W -f='${Status}' edgecoder",
                                           check=False).stdout,
                "purge: package gone")
        c.check(not os.path.exists(root.file("/var/lib/edgecoder")), "purge: /var/lib/edgecoder deleted")
        c.check(not os.path.exists(root.file("/etc/edgecoder")), "purge: /etc/edgecoder deleted")
        leftovers = root.sh("find /etc/systemd /var/lib/systemd -name '*edgecoder*'",
                            check=False).stdout.split()
        c.equal(leftovers, [], "purge: no enablement links or deb-systemd-helper state left")
        c.check(root.sh("dpkg-statoverride --list /etc/edgecoder/edgecoder.env",
                        check=False).returncode != 0, "purge: statoverride removed")
        # The account stays (Debian practice: its uid is not recycled while files may remain).
        c.check(passwd_entry(root, "edgecoder") is not None, "purge: system user kept")

        # Installing again after purge reuses the account and starts the service.
        root.apt(f"install --no-install-recommends /tmp/{os.path.basename(deb1)}")
        again = calls(root)
        c.equal((passwd_entry(root, "edgecoder") or [None] * 3)[2], uid,
                "reinstall after purge: account reused")
        c.check(any(re.match(r"systemctl .*preset edgecoder.service", l) for l in again),
                "fresh install with systemd running: enabled (systemctl preset)", again)
        c.check(any(re.match(r"systemctl .*\bstart edgecoder.service", l) for l in again),
                "fresh install with systemd running: service started", again)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    c = pkgtest.Checks("packaging_deb")
    os.makedirs(args.work_dir, exist_ok=True)
    out = tempfile.mkdtemp(prefix="debs-", dir=args.work_dir)
    try:
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        version1, version2 = args.version, args.version + "+test1"
        deb1 = build_deb(args.source_dir, args.binary, version1, out)
        deb2 = build_deb(args.source_dir, args.binary, version2, out, "gzip")  # quicker
        c.check(run(["dpkg", "--compare-versions", version2, "gt", version1],
                    check=False).returncode == 0, "upgrade version sorts after the first")
        check_contents(c, deb1, version1, arch)
        check_lintian(c, deb1)
        check_systemd_verify(c, deb1)
        if pkgtest.require_root(c, "install/upgrade/remove/purge in a Debian root"):
            lifecycle(c, args, deb1, deb2, version1, version2)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
