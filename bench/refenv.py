"""The reference proxies that come from PyPI (proxy.py, pproxy), in the bench's own venv.

    refenv.ensure() -> Path of the venv's bin/ (made on first use), or Unavailable(reason)

bench/out/ref-venv is made with `python3 -m venv` and pip by bench/run.py's proxy
section, never in the project's .venv: the project does not depend on them, and their
dependencies cannot change what the tests see. Versions are pinned so that runs compare.
"""
import json
import subprocess
import sys

from benchlib import REPO, Unavailable, log

REF_VENV = REPO / "bench" / "out" / "ref-venv"
PACKAGES = {"proxy.py": "2.4.10", "pproxy": "2.7.9"}     # distribution name -> version
PIP_TIMEOUT_SECONDS = 600


def installed(venv=REF_VENV):
    """{distribution: version} of PACKAGES present in venv (empty if there is no venv)."""
    python = venv / "bin" / "python"
    if not python.exists():
        return {}
    code = ("import json, importlib.metadata as m\n"
            "out = {}\n"
            "for name in %r:\n"
            "    try: out[name] = m.version(name)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))\n" % (list(PACKAGES),))
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return {}
    return json.loads(done.stdout)


def ensure(venv=REF_VENV):
    """The venv's bin/ with PACKAGES at their pinned versions, installing what is missing."""
    wanted = {name: version for name, version in PACKAGES.items() if installed(venv).get(name) != version}
    if not wanted:
        return venv / "bin"
    try:
        if not (venv / "bin" / "python").exists():
            log("bench venv: creating %s", venv)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True,
                           timeout=PIP_TIMEOUT_SECONDS)
        specs = ["%s==%s" % item for item in wanted.items()]
        log("bench venv: pip install %s", " ".join(specs))
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *specs],
                              capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable("cannot make the bench venv %s: %s" % (venv, exc)) from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable("pip install %s failed: %s" % (" ".join(specs), tail))
    return venv / "bin"
