"""`make demo` (scripts/demo.sh) works end to end, leaves nothing behind, and collides with
nothing another run left: not a namespace named after its own pid (a run killed earlier, whose
pid came round again), not a demo-a/demo-b veth in the root namespace (a run in the middle of
its setup)."""
import re
import subprocess
import sys

from .nsutil import REPO


def _namespaces():
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines()}


def _links():
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout


def test_demo_runs_and_cleans_up_beside_leftovers():
    # The demo runs as `exec bash demo.sh` from a shell that first makes the leftovers: the
    # demo's pid is that shell's, so the old naming (tomato-demo-a-$$) meets its namespace.
    leftovers = ('echo "pid $$"; ip netns add "tomato-demo-a-$$" && echo "made ns a" && '
                 'ip netns add "tomato-demo-b-$$" && echo "made ns b" && '
                 'ip link add demo-a type veth peer name demo-b && echo "made veth" && exec bash "$0"')
    result = subprocess.run(["sh", "-c", leftovers, str(REPO / "scripts" / "demo.sh")],
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=180)
    out = result.stdout + result.stderr
    pid = re.search(r"pid (\d+)", out).group(1)
    made = set(re.findall(r"^made (ns a|ns b|veth)$", out, re.MULTILINE))
    theirs = {"tomato-demo-a-" + pid, "tomato-demo-b-" + pid}
    try:
        assert made == {"ns a", "ns b", "veth"}, out      # else another run had them: not ours to test with
        assert result.returncode == 0, out
        assert "3 packets transmitted, 3 received, 0% packet loss" in out
        assert "sender" in out and "receiver" in out                      # iperf3 through the tunnel
        assert "hello from a site on host A (served directly)" in out
        assert "hello from a site on host B (forwarded through B's proxy)" in out
        assert "HTTP 403" in out
        assert "Traceback" not in out
        # this run's namespaces (named after its temporary folder; other demos may run meanwhile)
        ours = set(re.findall(r"tomato-demo-[ab]-\w+", out)) - theirs
        assert len(ours) == 2, out
        assert not ours & _namespaces()
        assert theirs <= _namespaces() and " demo-a@demo-b:" in _links()   # the leftovers stay
    finally:                                               # remove only what this test made
        for ns, mark in zip(sorted(theirs), ("ns a", "ns b")):
            if mark in made:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if "veth" in made:
            subprocess.run(["ip", "link", "del", "demo-a"], capture_output=True)
