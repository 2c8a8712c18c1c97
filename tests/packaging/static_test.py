#!/usr/bin/python3
"""Packaging files that can be checked without a Debian root (fast; no root needed).

  static_test.py --binary BUILD/src/app/edgecoder --source-dir REPO

- systemd unit: the directives the issue requires, and none that would break the sandbox.
- /etc/edgecoder/edgecoder.env: documents every setting `edgecoder config show` lists, parses
  with edgecoder itself, leaves the mode at all-in-one, shows how to join a mesh as an agent,
  and sets no secret.
- macOS: the LaunchDaemon plist parses with plistlib and names the documented label, config
  file, log file and KeepAlive; the pkg scripts pass `sh -n`.
- Docker: `docker-compose config` accepts docker-compose.yml (and refuses it without the
  password); services, ports (4304 on 127.0.0.1 only), dependencies and health checks; the
  Dockerfile is multi-stage with a non-root USER and a HEALTHCHECK, its build stage installs
  only packages from .ci/deps.txt, its runtime stage no build tools.
- The release workflow builds the .deb, the .pkg and the image, and signs SHA256SUMS.
"""

import argparse
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkgtest  # noqa: E402
from pkgtest import run  # noqa: E402

SECRET = re.compile(r"(_TOKEN|_API_KEY|^DATABASE_URL)$")


def unit_directives(text):
    """{(section, key): [values]} of a systemd unit."""
    section, out = None, {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def check_unit(c, src):
    with open(os.path.join(src, "packaging/systemd/edgecoder.service"), encoding="utf-8") as f:
        d = unit_directives(f.read())
    required = {
        "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30",
        "ExecStart": "/usr/bin/edgecoder", "Restart": "on-failure",
        "EnvironmentFile": "-/etc/edgecoder/edgecoder.env", "StateDirectory": "edgecoder",
        "StateDirectoryMode": "0700", "User": "edgecoder", "Delegate": "yes",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }
    for key, value in required.items():
        c.equal(d.get(("Service", key)), [value], f"unit: {key}={value}")
    c.check("EDGECODER_DATA_DIR=/var/lib/edgecoder" in d.get(("Service", "Environment"), []),
            "unit: Environment=EDGECODER_DATA_DIR=/var/lib/edgecoder")
    families = " ".join(d.get(("Service", "RestrictAddressFamilies"), [])).split()
    c.equal(sorted(families), sorted(["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"]),
            "unit: RestrictAddressFamilies includes AF_NETLINK")
    for key in ("RestrictNamespaces", "ProtectControlGroups", "PrivateUsers",
                "MemoryDenyWriteExecute", "DynamicUser"):
        c.check(("Service", key) not in d, f"unit: no {key} (the sandbox needs it off)")
    for key in ("StandardOutput", "StandardError"):
        c.check(d.get(("Service", key), ["journal"]) == ["journal"], f"unit: {key} to journald")
    c.equal(d.get(("Install", "WantedBy")), ["multi-user.target"], "unit: WantedBy")


def config_show(binary, env_file, home):
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "ASAN_OPTIONS": "detect_leaks=0"}
    return run([binary, "--env-file", env_file, "config", "show"], env=env, check=False)


def check_env_file(c, src, binary):
    path = os.path.join(src, "packaging/debian/edgecoder.env")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    home = tempfile.mkdtemp()
    try:
        empty = os.path.join(home, "empty.env")
        open(empty, "w", encoding="utf-8").close()
        listed = config_show(binary, empty, home)
        c.equal(listed.returncode, 0, "edgecoder config show runs")
        names = re.findall(r"^([A-Z][A-Z0-9_]*)=", listed.stdout, re.MULTILINE)
        c.check(len(names) >= 20, "config show lists the settings", listed.stdout)
        # NAME= or, for a secret, NAME_FILE= (commented out or not).
        assigned = re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)
        documented = set(assigned) | {n[:-len("_FILE")] for n in assigned if n.endswith("_FILE")}
        missing = [n for n in names if n not in documented]
        c.check(not missing, "env file documents every setting of `edgecoder config show`",
                "missing: " + " ".join(missing))
        active = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.MULTILINE))
        c.check(not [k for k in active if SECRET.search(k)], "env file sets no secret",
                " ".join(active))
        c.check(active.get("EDGE_RUNTIME_MODE", "all-in-one") == "all-in-one",
                "env file leaves the mode at all-in-one")
        c.check(re.search(r"^#EDGE_RUNTIME_MODE=agent$", text, re.MULTILINE) and
                re.search(r"^#COORDINATOR_URL=", text, re.MULTILINE),
                "env file shows how to join an existing mesh as an agent")
        # systemd's EnvironmentFile= and edgecoder's parser must read the same thing.
        bad = [l for l in text.splitlines()
               if l and not l.startswith("#") and not re.match(r"^[A-Z][A-Z0-9_]*=[^\s'\"]*$", l)]
        c.check(not bad, "env file lines are plain KEY=VALUE (no quotes, spaces, or inline #)",
                repr(bad))
        parsed = config_show(binary, path, home)
        c.check(parsed.returncode == 0 and
                re.search(r"^EDGE_RUNTIME_MODE=all-in-one\s", parsed.stdout, re.MULTILINE) and
                re.search(r"^EDGECODER_DATA_DIR=/var/lib/edgecoder\s+#\s*env", parsed.stdout,
                          re.MULTILINE),
                "edgecoder parses the env file (data dir from it, mode all-in-one)",
                parsed.stdout + parsed.stderr)
    finally:
        shutil.rmtree(home)


def check_macos(c, src):
    path = os.path.join(src, "packaging/macos/io.edgecoder.runtime.plist")
    with open(path, "rb") as f:
        plist = plistlib.load(f)
    c.equal(plist.get("Label"), "io.edgecoder.runtime", "plist: Label")
    argv = plist.get("ProgramArguments", [])
    c.check(argv and argv[0].endswith("/edgecoder"), "plist: runs the edgecoder binary", argv)
    c.check("--env-file" in argv and
            argv[argv.index("--env-file") + 1] == "/etc/edgecoder/edgecoder.env",
            "plist: config /etc/edgecoder/edgecoder.env", argv)
    c.equal(plist.get("StandardOutPath"), "/var/log/edgecoder/runtime.log", "plist: stdout log")
    c.equal(plist.get("StandardErrorPath"), "/var/log/edgecoder/runtime.log", "plist: stderr log")
    c.check(plist.get("KeepAlive") not in (None, False), "plist: KeepAlive")
    c.equal(plist.get("RunAtLoad"), True, "plist: RunAtLoad")
    c.check(plist.get("UserName") not in (None, "root"), "plist: runs as a dedicated user",
            plist.get("UserName"))
    for script in ("build-pkg.sh", "scripts/preinstall", "scripts/postinstall", "uninstall.sh"):
        p = os.path.join(src, "packaging/macos", script)
        c.check(os.path.exists(p) and os.access(p, os.X_OK), f"macos: {script} is executable")
        if os.path.exists(p):
            c.equal(run(["sh", "-n", p], check=False).returncode, 0, f"macos: {script}: sh -n")


def port_bindings(ports):
    """[(host_ip, published, target)] from docker-compose config's port entries."""
    out = []
    for p in ports or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip", ""), str(p.get("published")), str(p.get("target"))))
        else:
            parts = str(p).split("/")[0].split(":")
            if len(parts) == 3:
                out.append((parts[0], parts[1], parts[2]))
            elif len(parts) == 2:
                out.append(("", parts[0], parts[1]))
            else:
                out.append(("", "", parts[0]))
    return out


def check_compose(c, src):
    try:
        import yaml  # python3-yaml, a dependency of docker-compose
    except ImportError:
        c.check(False, "docker-compose", "python3-yaml is not installed")
        return
    if not shutil.which("docker-compose"):
        c.check(False, "docker-compose config", "docker-compose is not installed")
        return
    compose = os.path.join(src, "docker-compose.yml")
    example = os.path.join(src, ".env.example")
    c.check(os.path.exists(example), ".env.example exists")
    work = tempfile.mkdtemp()
    try:
        with open(example, encoding="utf-8") as f:
            filled = re.sub(r"^([A-Z_]+)=$", r"\1=test-value-\1", f.read(), flags=re.MULTILINE)
        env_file = os.path.join(work, "test.env")
        with open(env_file, "w", encoding="utf-8") as f:
            f.write(filled)
        clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work}
        proc = run(["docker-compose", "--env-file", env_file, "-f", compose, "config"],
                   env=clean_env, check=False)
        c.check(proc.returncode == 0, "docker-compose config accepts docker-compose.yml",
                proc.stderr)
        if proc.returncode != 0:
            return
        empty_env = os.path.join(work, "empty.env")
        open(empty_env, "w", encoding="utf-8").close()
        refused = run(["docker-compose", "--env-file", empty_env, "-f", compose, "config"],
                      env=clean_env, check=False)
        c.check(refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr,
                "docker-compose config refuses to run without POSTGRES_PASSWORD", refused.stderr)
        cfg = yaml.safe_load(proc.stdout)
    finally:
        shutil.rmtree(work)
    services = cfg.get("services", {})
    c.check({"postgres", "seed-node", "ide-provider"} <= set(services),
            "compose: postgres, seed-node and ide-provider", list(services))
    extra = set(services) - {"postgres", "seed-node", "ide-provider"}
    c.check(all(services[s].get("profiles") for s in extra),
            "compose: any other service is behind a profile", list(extra))
    pg = services.get("postgres", {})
    c.check(str(pg.get("image", "")).startswith("postgres:16"), "compose: postgres:16")
    c.equal(pg.get("environment", {}).get("POSTGRES_PASSWORD"), "test-value-POSTGRES_PASSWORD",
            "compose: postgres password from .env")
    c.check(pg.get("volumes"), "compose: postgres data on a volume")
    c.check(not pg.get("ports"), "compose: postgres not published on the host")
    seed = services.get("seed-node", {})
    senv = seed.get("environment", {})
    c.equal(senv.get("EDGE_RUNTIME_MODE"), "all-in-one", "compose: seed-node is all-in-one")
    c.check(str(senv.get("DATABASE_URL", "")).startswith("postgresql://") and
            "@postgres:5432/" in str(senv.get("DATABASE_URL", "")),
            "compose: seed-node DATABASE_URL points at postgres")
    for token in ("MESH_AUTH_TOKEN", "ADMIN_API_TOKEN", "INFERENCE_AUTH_TOKEN"):
        c.equal(senv.get(token), f"test-value-{token}", f"compose: seed-node {token} from .env")
    c.equal(seed.get("depends_on", {}).get("postgres", {}).get("condition"), "service_healthy",
            "compose: seed-node waits for a healthy postgres")
    ide = services.get("ide-provider", {})
    ienv = ide.get("environment", {})
    c.equal(ienv.get("EDGE_RUNTIME_MODE"), "ide-provider", "compose: ide-provider mode")
    c.equal(ienv.get("MESH_AUTH_TOKEN"), "test-value-MESH_AUTH_TOKEN",
            "compose: ide-provider mesh token from .env")
    c.equal(str(ienv.get("EDGECODER_TRUST_CONTAINER_NETWORK")), "1",
            "compose: ide-provider EDGECODER_TRUST_CONTAINER_NETWORK=1")
    c.equal(ide.get("depends_on", {}).get("seed-node", {}).get("condition"), "service_healthy",
            "compose: ide-provider waits for a healthy seed-node")
    c.equal(port_bindings(ide.get("ports")), [("127.0.0.1", "4304", "4304")],
            "compose: 4304 published on 127.0.0.1 only")
    for name, svc in services.items():
        for host_ip, published, target in port_bindings(svc.get("ports")):
            c.equal(host_ip, "127.0.0.1", f"compose: {name} publishes {target} on loopback")
        c.check(svc.get("healthcheck", {}).get("test"), f"compose: {name} has a health check")
        if "build" in svc:
            c.equal(svc["build"].get("dockerfile"), "packaging/docker/Dockerfile",
                    f"compose: {name} builds packaging/docker/Dockerfile")
    for name in ("seed-node", "ide-provider"):
        c.equal(services.get(name, {}).get("healthcheck", {}).get("test"),
                ["CMD", "/usr/local/bin/edgecoder-healthcheck"],
                f"compose: {name} health check uses the image's check")


def check_dockerfile(c, src):
    with open(os.path.join(src, "packaging/docker/Dockerfile"), encoding="utf-8") as f:
        stages = pkgtest.parse_dockerfile(f.read())
    c.check(len(stages) >= 2, "Dockerfile: multi-stage", len(stages))
    build, runtime = stages[0], stages[-1]
    c.check(build["from"] in ("debian:bookworm", "debian:12") and build["name"],
            "Dockerfile: build stage FROM debian:bookworm AS <name>", build["from"])
    c.equal(runtime["from"], "debian:bookworm-slim", "Dockerfile: runtime FROM debian:bookworm-slim")
    with open(os.path.join(src, ".ci/deps.txt"), encoding="utf-8") as f:
        ci_packages = set(f.read().split())
    build_pkgs = pkgtest.apt_packages(" && ".join(a for k, a in build["instructions"] if k == "RUN"))
    c.check(build_pkgs and set(build_pkgs) <= ci_packages,
            "Dockerfile: build stage installs packages from .ci/deps.txt",
            " ".join(sorted(set(build_pkgs) - ci_packages)))
    kinds = [k for k, _ in runtime["instructions"]]
    users = [a for k, a in runtime["instructions"] if k == "USER"]
    c.check(users and users[-1].split(":")[0] not in ("root", "0"),
            "Dockerfile: runtime stage ends with a non-root USER", users)
    if users:
        last_run = max((i for i, k in enumerate(kinds) if k == "RUN"), default=-1)
        c.check(kinds.index("USER") > last_run, "Dockerfile: USER comes after every RUN")
    c.check("HEALTHCHECK" in kinds, "Dockerfile: runtime stage has a HEALTHCHECK")
    health = " ".join(a for k, a in runtime["instructions"] if k == "HEALTHCHECK")
    c.check("CMD" in health and "edgecoder" in health, "Dockerfile: HEALTHCHECK runs a command",
            health)
    env = {}
    for k, a in runtime["instructions"]:
        if k == "ENV":
            env.update(pkgtest.env_assignments(a))
    c.equal(env.get("EDGECODER_BIND"), "0.0.0.0", "Dockerfile: EDGECODER_BIND=0.0.0.0")
    c.equal(env.get("EDGE_RUNTIME_MODE"), "all-in-one", "Dockerfile: default mode all-in-one")
    runtime_pkgs = pkgtest.apt_packages(" && ".join(a for k, a in runtime["instructions"]
                                                    if k == "RUN"))
    dev = [p for p in runtime_pkgs if p.endswith("-dev") or p in
           ("build-essential", "cmake", "ninja-build", "g++", "gcc", "clang-14")]
    c.check(runtime_pkgs and not dev, "Dockerfile: runtime stage installs no build tools", dev)
    c.check(any(k in ("COPY", "ADD") and "--from=" + (build["name"] or "") in a
                for k, a in runtime["instructions"]),
            "Dockerfile: runtime copies the binary from the build stage")
    entry = " ".join(a for k, a in runtime["instructions"] if k == "ENTRYPOINT")
    c.check("/usr/bin/edgecoder" in entry, "Dockerfile: ENTRYPOINT runs edgecoder", entry)
    ignore = os.path.join(src, ".dockerignore")
    c.check(os.path.exists(ignore) and "build" in open(ignore, encoding="utf-8").read().split(),
            ".dockerignore keeps build/ out of the context")
    hc = os.path.join(src, "packaging/docker/healthcheck.sh")
    c.check(os.access(hc, os.X_OK) and run(["sh", "-n", hc], check=False).returncode == 0,
            "docker healthcheck.sh is executable and parses")


def check_workflow(c, src):
    try:
        import yaml
    except ImportError:
        return
    path = os.path.join(src, ".github/workflows/release.yml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    wf = yaml.safe_load(text)
    on = wf.get(True) or wf.get("on") or {}  # YAML 1.1 reads a bare `on` key as True
    c.check("v*.*.*" in on.get("push", {}).get("tags", []), "release workflow: on v*.*.* tags")
    jobs = wf.get("jobs", {})
    runners = " ".join(str(j.get("runs-on", "")) for j in jobs.values())
    c.check("macos" in runners, "release workflow: a macOS runner builds the .pkg")
    for needle, what in (("--target package", "builds the .deb"), ("build-pkg.sh", "builds the .pkg"),
                         ("docker/build-push-action", "builds and pushes the image"),
                         ("SHA256SUMS", "writes SHA256SUMS"),
                         ("secrets.RELEASE_SIGNING_KEY", "signs with the secret key"),
                         ("release verify", "verifies its own signature")):
        c.check(needle in text, f"release workflow: {what}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()
    c = pkgtest.Checks("packaging_static")
    for name, fn in (("unit", lambda: check_unit(c, args.source_dir)),
                     ("env file", lambda: check_env_file(c, args.source_dir, args.binary)),
                     ("macos", lambda: check_macos(c, args.source_dir)),
                     ("compose", lambda: check_compose(c, args.source_dir)),
                     ("dockerfile", lambda: check_dockerfile(c, args.source_dir)),
                     ("workflow", lambda: check_workflow(c, args.source_dir))):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - one broken part must not hide the others
            c.check(False, f"{name}: no exception", repr(e))
    c.finish()


if __name__ == "__main__":
    main()
