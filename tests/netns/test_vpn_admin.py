"""bin/vpn run as an administrator runs it: secrets kept from hooks, status per network
namespace, the dynamic mode's address and restart lines, MSS fixing through the tunnel."""
from pathlib import Path

from .vpn_support import PORT, assert_clean_stop, show_json, start_vpn

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


def test_two_vpns_for_tun0_in_two_namespaces_each_show_their_own(lab):
    """Issue 24 item 5: with the default control socket, `vpn show` in one namespace printed
    the other's tunnel (one file under /run for both). Now each namespace has its own
    abstract socket; show says which process answered, and takes its options before "show"."""
    one, two = lab.netns(), lab.netns()
    vpns = {}
    for ns, port in ((one, 5001), (two, 5002)):
        vpns[ns] = start_vpn(lab, ns, "-la", ":%d" % port, "-lp", "pwd1", "-d", "-pp", "pwd2", "--addr", "10.0.1.1/30")
    for ns, port in ((one, 5001), (two, 5002)):
        shown = show_json(lab, ns)
        assert (shown["interface"], shown["listen_address"], shown["pid"]) == ("tun0", "0.0.0.0:%d" % port,
                                                                               vpns[ns].pid)
    for ns in (one, two):
        pid = vpns[ns].pid
        assert show_json(lab, ns, "--control", "@tomato/vpn-tun0")["pid"] == pid
        reordered = lab.run(ns, lab.tool("vpn", "--control", "@tomato/vpn-tun0", "show"))
        assert reordered.returncode == 0 and "\n  process id: %d\n" % pid in reordered.stdout + "\n", reordered.stderr
    for proc in vpns.values():
        assert "vpn show will not reach" not in assert_clean_stop(lab, proc)

