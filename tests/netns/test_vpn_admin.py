"""bin/vpn run as an administrator runs it: secrets kept from hooks, status per network
namespace, the dynamic mode's address and restart lines, MSS fixing through the tunnel."""
import re
from pathlib import Path

from .vpn_support import PORT, assert_clean_stop, ping_eventually, show_json, start_vpn

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


def test_dynamic_mode_logs_each_address_change_and_a_peer_restart(lab, pair):
    """Issue 24 item 8: B restarts twice within a minute on new ports; A (dynamic) tells
    each new session and each new address at the default level."""
    a, b = pair
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2", "--control", lab.tmpdir / "a")
    previous = None
    for port in (6001, 6002, 6003):
        vpn_b = start_vpn(lab, b, "-la", ":%d" % port, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1",
                          "--control", lab.tmpdir / "b")
        ping_eventually(lab, b, "10.0.1.1")
        line = "peer address is now 10.9.0.2:%d" % port
        lab.wait_log(vpn_a, line + ("" if previous is None else " (was 10.9.0.2:%d)" % previous))
        assert_clean_stop(lab, vpn_b)
        previous = port
    out = assert_clean_stop(lab, vpn_a)
    assert len(re.findall(r"INFO .*peer 10\.9\.0\.2:600[23] started a new session [0-9a-f]{16} \(was [0-9a-f]{16}\): "
                          r"it restarted", out)) == 2, out
