#!/usr/bin/python3
"""The Docker image's runtime stage, replayed without Docker.

  docker_runtime_test.py --binary BUILD/src/app/edgecoder --source-dir REPO --work-dir DIR

No Docker engine runs on the build machines, so this replays the final stage of
packaging/docker/Dockerfile in a throwaway Debian 12 root (debootstrap, see pkgtest.py): its RUN
steps (which install the runtime packages and create the user), its COPY steps (the build
stage's binary is this build's binary), ENV, USER and WORKDIR. Then it checks that the binary
finds every shared library it needs among the packages the stage installs, starts the
entrypoint as the stage's USER on free loopback ports, gets /health, runs the stage's
HEALTHCHECK command inside the root, and stops the node with SIGTERM.

A sanitizer build (EDGECODER_SANITIZE) needs libasan/libubsan, which the image never ships:
those alone are added, and reported.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkgtest  # noqa: E402

SANITIZER_PACKAGES = {"libasan.so.8": "libasan8", "libubsan.so.1": "libubsan1",
                      "liblsan.so.0": "liblsan0", "libtsan.so.2": "libtsan2"}


def exec_form(args):
    """The argv of an exec-form (JSON) instruction; None for the shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def replay_runtime_stage(c, root, stage, binary, source_dir):
    """Applies the stage to the root; returns (env, user, entrypoint+cmd, healthcheck argv)."""
    env, user, entrypoint, cmd, health = {}, None, [], [], None
    workdir = "/"
    for keyword, args in stage["instructions"]:
        if keyword == "ENV":
            env.update(pkgtest.env_assignments(args))
        elif keyword == "ARG":
            name, _, value = args.partition("=")
            env.setdefault(name, value)
        elif keyword == "RUN":
            script = args if exec_form(args) is None else shlex.join(exec_form(args))
            # The cached root's package lists are at most a few days old (pkgtest refreshes
            # them); fetching them again would only cost time.
            script = re.sub(r"\bapt-get update\b", "true", script)
            run_env = {k: v for k, v in env.items()}
            root.sh(f"cd {shlex.quote(workdir)}\n{script}",
                    user=f"{user}" if user else None, env=run_env)
        elif keyword == "COPY" or keyword == "ADD":
            words = shlex.split(args)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            *sources, dest = paths
            from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            for src in sources:
                if from_stage:
                    if os.path.basename(src) != "edgecoder":
                        raise RuntimeError(f"cannot replay COPY --from={from_stage} {src}")
                    origin = binary
                else:
                    origin = os.path.join(source_dir, src)
                target = root.file(dest if not dest.endswith("/") else
                                   os.path.join(dest, os.path.basename(src)))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(origin, target)
                chown = next((f.split("=", 1)[1] for f in flags if f.startswith("--chown=")), None)
                if chown:
                    root.sh(f"chown {shlex.quote(chown)} {shlex.quote(dest)}")
        elif keyword == "USER":
            user = args
        elif keyword == "WORKDIR":
            workdir = args
            root.sh(f"mkdir -p {shlex.quote(workdir)}")
        elif keyword == "ENTRYPOINT":
            entrypoint = exec_form(args) or ["/bin/sh", "-c", args]
        elif keyword == "CMD":
            cmd = exec_form(args) or ["/bin/sh", "-c", args]
        elif keyword == "HEALTHCHECK":
            m = re.search(r"\bCMD (.*)$", args)
            if m:
                health = exec_form(m.group(1)) or ["/bin/sh", "-c", m.group(1)]
    c.check(True, f"runtime stage replayed ({len(stage['instructions'])} instructions)")
    return env, user, workdir, entrypoint + cmd, health


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args()
    c = pkgtest.Checks("packaging_docker_runtime")
    with open(os.path.join(args.source_dir, "packaging/docker/Dockerfile"), encoding="utf-8") as f:
        stages = pkgtest.parse_dockerfile(f.read())
    runtime = stages[-1]
    if not pkgtest.require_root(c, "runtime stage in a Debian root"):
        c.finish()
    with pkgtest.DebianRoot(args.work_dir) as root:
        with root.apt_cache():
            env, user, workdir, argv, health = replay_runtime_stage(c, root, runtime,
                                                                    args.binary, args.source_dir)
        installed = pkgtest.apt_packages(" && ".join(a for k, a in runtime["instructions"]
                                                     if k == "RUN"))
        print("runtime packages:", " ".join(installed))

        missing = root.missing_libraries("/usr/bin/edgecoder")
        sanitizer = [lib for lib in missing if lib in SANITIZER_PACKAGES]
        others = [lib for lib in missing if lib not in SANITIZER_PACKAGES]
        c.check(not others, "the runtime stage installs every shared library the binary needs",
                "missing: " + " ".join(others))
        if sanitizer:
            print("sanitizer build: adding " + " ".join(SANITIZER_PACKAGES[l] for l in sanitizer)
                  + " (not part of the image)")
            root.apt("install --no-install-recommends "
                     + " ".join(SANITIZER_PACKAGES[l] for l in sanitizer))
        if others:
            c.finish()

        ports = {name: pkgtest.free_port() for name in
                 ("COORDINATOR_PORT", "INFERENCE_PORT", "CONTROL_PLANE_PORT")}
        # The image listens on 0.0.0.0 (its ENV); here the root shares the host's network, so
        # the test keeps it on loopback.
        run_env = dict(env, EDGECODER_BIND="127.0.0.1", **{k: str(v) for k, v in ports.items()})
        c.equal(env.get("EDGECODER_BIND"), "0.0.0.0", "image ENV: EDGECODER_BIND=0.0.0.0")
        c.equal(env.get("EDGE_RUNTIME_MODE"), "all-in-one", "image ENV: mode all-in-one")
        name = (user or "root").split(":")[0]
        uid = name if name.isdigit() else root.sh(f"id -u {shlex.quote(name)}",
                                                  check=False).stdout.strip()
        c.check(uid not in ("", "0"), "entrypoint runs as a non-root user", user)
        argv = ["/bin/sh", "-c", f"cd {shlex.quote(workdir)} && exec " + shlex.join(argv)]
        url = f"http://127.0.0.1:{ports['COORDINATOR_PORT']}/health"
        with root.process(argv, user=user, env=run_env) as node:
            status, body = pkgtest.wait_for_health(url, deadline_s=60)
            c.check(status == 200 and isinstance(body, dict) and body.get("ok") is True,
                    f"GET /health from the node in the root -> 200 ok:true", f"{status} {body}")
            if health:
                proc = root.sh(shlex.join(health), check=False, user=user, env=run_env)
                c.equal(proc.returncode, 0, "the image's HEALTHCHECK command succeeds")
                # And fails when nothing listens there.
                proc = root.sh(shlex.join(health), check=False, user=user,
                               env=dict(run_env, COORDINATOR_PORT=str(pkgtest.free_port())))
                c.check(proc.returncode != 0, "the HEALTHCHECK command fails with no listener")
            else:
                c.check(False, "the runtime stage has a HEALTHCHECK")
            data_dir = env.get("EDGECODER_DATA_DIR", "/var/lib/edgecoder")
            secrets = root.sh(f"stat -c '%u %a' {shlex.quote(data_dir)}", check=False).stdout
            c.check(secrets.split() and secrets.split()[0] == uid,
                    "the data directory belongs to the image's user", secrets)
            proc = node["proc"]
            os.kill(proc.pid, 15)  # to the entrypoint (tini) only, which forwards it once
            try:
                proc.wait(timeout=30)
            except Exception:  # noqa: BLE001 - reported below
                pass
        print(node.get("output", "")[-4000:])
        c.equal(node["returncode"], 0, "SIGTERM stops the node cleanly (exit 0)")

        # The image can run what agents generate, in both languages, through the sandbox verb
        # (process mode: bubblewrap's user namespaces are not available inside this chroot).
        for language, program in (("python", "print(6*7)"), ("javascript", "console.log(6*7)")):
            proc = root.sh(f"printf %s {shlex.quote(program)} | edgecoder sandbox run "
                           f"--language {language} -", check=False, user=user,
                           env=dict(run_env, SANDBOX_MODE="process", SANDBOX_CGROUP="off"))
            c.check(proc.returncode == 0 and proc.stdout.strip() == "42",
                    f"the image runs generated {language} in its sandbox",
                    f"{proc.returncode} {proc.stdout[-300:]} {proc.stderr[-600:]}")
        proc = root.sh("git --version", check=False, user=user, env=run_env)
        c.check(proc.returncode == 0, "the image has git for the IDE provider's tools", proc.stderr)
    c.finish()


if __name__ == "__main__":
    main()
