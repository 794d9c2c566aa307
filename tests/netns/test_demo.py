"""`make demo` (scripts/demo.sh) works end to end and leaves nothing behind."""
import re
import subprocess
import sys

from .nsutil import REPO


def _namespaces():
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines()}


def test_demo_runs_and_cleans_up():
    result = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                            "PYTHON": sys.executable}, capture_output=True, text=True, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "3 packets transmitted, 3 received, 0% packet loss" in out
    assert "sender" in out and "receiver" in out                      # iperf3 through the tunnel
    assert "hello from a site on host A (served directly)" in out
    assert "hello from a site on host B (forwarded through B's proxy)" in out
    assert "HTTP 403" in out
    assert "Traceback" not in out
    # this run's namespaces (named after the script's pid; other demos may run meanwhile)
    ours = set(re.findall(r"tomato-demo-[ab]-\d+", out))
    assert len(ours) == 2, out
    assert not ours & _namespaces()
