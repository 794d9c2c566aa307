"""`make demo` (scripts/demo.sh) works end to end and leaves nothing behind."""
import subprocess
import sys

from .nsutil import REPO


def _demo_leftovers():
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line for line in namespaces.splitlines() if line.startswith("tomato-demo-")]


def test_demo_runs_and_cleans_up():
    before = _demo_leftovers()
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
    assert _demo_leftovers() == before
