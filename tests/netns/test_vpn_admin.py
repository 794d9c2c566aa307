"""bin/vpn run as an administrator runs it: secrets kept from hooks, status per network
namespace, the dynamic mode's address and restart lines, MSS fixing through the tunnel."""
from pathlib import Path

from .vpn_support import PORT, assert_clean_stop, start_vpn

LOCAL, PEER = "local-secret-x7", "peer-secret-y8"


def test_hooks_and_proc_environ_never_see_the_passwords(lab):
    """The systemd unit passes the passwords in the environment: an --up hook that prints
    its environment and the vpn's /proc/PID/environ finds neither."""
    a = lab.netns()
    out = lab.tmpdir / "up.txt"
    hook = "env > %s; echo === >> %s; tr '\\0' '\\n' < /proc/$PPID/environ >> %s" % (out, out, out)
    vpn = start_vpn(lab, a, "-la", ":%d" % PORT, "-d", "--addr", "10.0.1.1/30", "--up", hook,
                    "--control", lab.tmpdir / "a.sock",
                    env={"TOMATO_LOCAL_PASSWORD": LOCAL, "TOMATO_PEER_PASSWORD": PEER, "TOMATO_TEST_MARKER": "kept"})
    seen = Path(out).read_text()
    assert "dev=tun0" in seen and seen.count("TOMATO_TEST_MARKER=kept") == 2      # the hook and the vpn's block
    assert LOCAL not in seen and PEER not in seen and "PASSWORD" not in seen
    environ = Path("/proc/%d/environ" % vpn.pid).read_bytes()
    assert LOCAL.encode() not in environ and PEER.encode() not in environ
    assert_clean_stop(lab, vpn, secrets=(LOCAL, PEER))
