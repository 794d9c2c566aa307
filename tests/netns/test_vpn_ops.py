"""End-to-end operations of bin/vpn: `vpn show`, signals, the default-level diagnostics,
restarts after SIGKILL, --addr/--mtu/--up/--down, host names, missing privileges.

Every vpn gets its own --control socket in the lab's temp dir, except where the test is
about the default path (then the interface has a name unique to this test run), so that
parallel runs never ask each other's vpn.
"""
import glob
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tomato_gevent.vpn.packet import OVERHEAD
from tests.netns.nsutil import wait_for
from tests.netns.vpn_support import PORT, assert_clean_stop, ping, ping_eventually, show_json, start_vpn

CONTRACT_KEYS = {"interface", "peer_address", "last_received_seconds_ago", "rx_packets", "rx_bytes",
                 "tx_packets", "tx_bytes", "drops", "uptime_seconds"}
ECHO_BYTES = 84 + OVERHEAD      # a default ping's IP packet + the tunnel's overhead
SAFE_MTU = 1500 - 40 - 8 - OVERHEAD     # docs/operations.md#mtu: what a device vpn creates gets
QUICK_SILENCE = Path(__file__).with_name("vpn_quick_silence.py")


def clock_shifted(offset):
    """Environment that runs a program with its wall clock shifted by offset (libfaketime,
    preloaded directly: the faketime wrapper would stand between the test and the pid)."""
    libraries = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    assert libraries, "libfaketime missing (apt package faketime, in the Makefile's TEST_APT)"
    return {"LD_PRELOAD": libraries[0], "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def control(lab, name):
    return str(lab.tmpdir / ("%s.sock" % name))


def test_show_follows_real_traffic_and_signals_log_it(lab):
    a, b = lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    lab.tun(a, "tun0", "10.0.1.1/30")
    ctl_a = control(lab, "a")
    vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2",
                      "--control", ctl_a)
    lonely = show_json(lab, a, "--control", ctl_a)
    assert CONTRACT_KEYS <= set(lonely)
    assert (lonely["interface"], lonely["peer_address"], lonely["dynamic"]) == ("tun0", "10.9.0.2:%d" % PORT, False)
    assert lonely["last_received_seconds_ago"] is None and lonely["peer_session"] is None
    assert lonely["rx_packets"] == lonely["rx_bytes"] == 0
    assert "tunnel tun0 up" not in vpn_a.output()       # "up" means: the peer was heard

    # B: a device vpn creates (no --mtu: the safe MTU for a 1500 path) and the default control path.
    iface_b = "tmo%d" % (os.getpid() % 10 ** 6)
    vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1",
                      "-I", iface_b, "--addr", "10.0.1.2/30")
    assert "mtu %d " % SAFE_MTU in lab.sh(b, "ip link show dev %s" % iface_b).stdout
    ping_eventually(lab, a, "10.0.1.2")
    lab.wait_log(vpn_a, "tunnel tun0 up: first authenticated datagram from 10.9.0.2:%d" % PORT)

    before = show_json(lab, a, "--control", ctl_a)
    assert ping(lab, a, "10.0.1.2", count=5)
    after = show_json(lab, a, "--control", ctl_a)
    for direction in ("rx", "tx"):
        assert after[direction + "_packets"] >= before[direction + "_packets"] + 5
        assert after[direction + "_bytes"] >= before[direction + "_bytes"] + 5 * ECHO_BYTES
    assert 0 <= after["last_received_seconds_ago"] < 5 and re.fullmatch("[0-9a-f]{16}", after["peer_session"])
    assert after["uptime_seconds"] >= before["uptime_seconds"] and after["drops"] == {}
    human = lab.run(a, lab.tool("vpn", "show", "--control", ctl_a)).stdout
    assert human.startswith("interface: tun0\n") and "  peer: 10.9.0.2:%d\n" % PORT in human
    assert re.search(r"\n  transfer: [0-9.]+ (B|KiB) received \(\d+ packets\), [0-9.]+ (B|KiB) sent \(\d+ packets\)\n",
                     human), human

    shown_b = show_json(lab, b, "-I", iface_b)
    assert (shown_b["interface"], shown_b["peer_address"]) == (iface_b, "10.9.0.1:%d" % PORT)
    assert shown_b["rx_packets"] >= 5

    # SIGUSR1 and SIGHUP log the status in one line; neither stops the vpn.
    vpn_a.send_signal(signal.SIGUSR1)
    lab.wait_log(vpn_a, "status: tun0: peer 10.9.0.2:%d, last datagram" % PORT)
    vpn_a.send_signal(signal.SIGHUP)
    lab.wait_log(vpn_a, "SIGHUP: tun0: peer")
    assert vpn_a.poll() is None and ping(lab, a, "10.0.1.2")

    # The stop line has the bytes; the socket goes away; show then says so in one line, exit 1.
    out_b = assert_clean_stop(lab, vpn_b)
    assert re.search(r"stopped: %s: .*received \d+ packets \(\d+ bytes\), sent \d+ packets \(\d+ bytes\)" % iface_b,
                     out_b)
    gone = lab.run(b, lab.tool("vpn", "show", "-I", iface_b))
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.strip().splitlines() == [
        "vpn: no vpn running for %s: nothing listens on @tomato/vpn-%s in this network namespace" % (iface_b, iface_b)]
    assert_clean_stop(lab, vpn_a)
    assert not os.path.exists(ctl_a)


def test_wrong_password_and_clock_skew_are_diagnosed_without_v(lab, pair):
    a, b = pair
    common = ("-la", ":%d" % PORT, "--keepalive", "1")
    vpn_a = start_vpn(lab, a, *common, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2",
                      "--control", control(lab, "a"))
    ctl_b = control(lab, "b")
    vpn_b = start_vpn(lab, b, *common, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "not-pwd1",
                      "--control", ctl_b)
    hint = "datagrams from 10.9.0.1:%d fail authentication: check the passwords, that -pp here matches -lp there" % PORT
    lab.wait_log(vpn_b, hint)
    wait_for(lambda: show_json(lab, b, "--control", ctl_b)["drops"].get("authentication failed", 0) >= 3,
             what="three authentication failures")
    assert vpn_b.output().count("fail authentication") == 1     # one line per cause per minute
    assert "tunnel tun0 up" not in vpn_b.output() and "DEBUG" not in vpn_b.output()
    assert_clean_stop(lab, vpn_b, secrets=("pwd1", "pwd2", "not-pwd1"))
    assert_clean_stop(lab, vpn_a)

    # Both again with the right passwords, but B's clock 30 s behind: both sides say so.
    # (A restarts too: it would refuse B's older-looking session before any crypto.)
    vpn_a = start_vpn(lab, a, *common, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2",
                      "--control", control(lab, "a"))
    vpn_b = lab.spawn(b, lab.tool("vpn", *common, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1",
                                  "--control", ctl_b), env=clock_shifted("-30s"))
    lab.wait_log(vpn_a, "datagrams from 10.9.0.2:%d refused: peer clock differs by -30 s; -pvt is 10 s" % PORT)
    # B sees A's session id start in its future: by how much depends on A's age (~30 s minus it).
    lab.wait_log(vpn_b, "datagrams from 10.9.0.1:%d refused: peer clock differs by +" % PORT)
    ahead = int(re.search(r"peer clock differs by \+(\d+) s; -pvt is 10 s", vpn_b.output()).group(1))
    assert 20 <= ahead <= 31
    wait_for(lambda: show_json(lab, a, "--control", control(lab, "a"))["drops"].get("timestamp outside -pvt", 0)
             >= 3, what="three refused timestamps")
    assert vpn_a.output().count("peer clock differs") == 1
    assert not ping(lab, a, "10.0.1.2")
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


def test_peer_name_retried_at_boot_silent_peer_re_resolved_and_back(lab, pair):
    """The peer's name: unknown at start (retried, not fatal), moved while the peer is
    silent (re-resolved), moved again and SIGHUP (re-resolved at once). The silence
    threshold is shortened to 2 s (vpn_quick_silence.py: cli.main's silent_after)."""
    a, b = pair
    lab.hosts(a, "")

    def quick_silence_vpn(*args):
        return [sys.executable, str(QUICK_SILENCE), "2", *args]

    ctl_a = control(lab, "a")
    vpn_a = lab.spawn(a, quick_silence_vpn("-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "peerhost.test:%d" % PORT,
                                           "-pp", "pwd2", "--keepalive", "1", "--control", ctl_a))
    lab.wait_log(vpn_a, "cannot resolve peerhost.test")
    assert "retrying every" in vpn_a.output() and vpn_a.poll() is None
    lab.hosts(a, "10.9.0.2 peerhost.test\n")
    lab.wait_log(vpn_a, "tunnel tun0: listening on")
    vpn_b = lab.spawn(b, quick_silence_vpn("-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT,
                                           "-pp", "pwd1", "--keepalive", "1", "--control", control(lab, "b")))
    lab.wait_log(vpn_b, "tunnel ")
    lab.wait_log(vpn_a, "tunnel tun0 up")
    ping_eventually(lab, a, "10.0.1.2")

    # B freezes; meanwhile its name moves to B's second address.
    lab.sh(b, "ip addr add 10.9.0.3/24 dev veth0")
    vpn_b.send_signal(signal.SIGSTOP)
    lab.wait_log(vpn_a, "peer silent since")
    lab.hosts(a, "10.9.0.3 peerhost.test\n")
    lab.wait_log(vpn_a, "peer peerhost.test now resolves to 10.9.0.3:%d (was 10.9.0.2:%d)" % (PORT, PORT))
    vpn_b.send_signal(signal.SIGCONT)
    lab.wait_log(vpn_a, "peer 10.9.0.2:%d back after" % PORT)
    ping_eventually(lab, a, "10.0.1.2")
    shown = show_json(lab, a, "--control", ctl_a)
    assert (shown["peer_address"], shown["peer_host"]) == ("10.9.0.3:%d" % PORT, "peerhost.test")

    lab.hosts(a, "10.9.0.2 peerhost.test\n")
    vpn_a.send_signal(signal.SIGHUP)
    lab.wait_log(vpn_a, "now resolves to 10.9.0.2:%d (was 10.9.0.3:%d)" % (PORT, PORT))
    lab.wait_log(vpn_a, "SIGHUP: tun0: peer 10.9.0.2:%d (peerhost.test)" % PORT)
    assert_clean_stop(lab, vpn_a)
    assert_clean_stop(lab, vpn_b)


HOOK = ('env | grep -E "^(script_type|dev|tun_mtu|ifconfig_local|ifconfig_netmask|ifconfig_ipv6_local|'
        'ifconfig_ipv6_netbits|TOMATO_ADDRS)=" > %s')


def read_env(path):
    return dict(line.split("=", 1) for line in Path(path).read_text().splitlines())


def test_restart_after_sigkill_two_addresses_and_up_down_hooks(lab):
    a = lab.netns(ipv6=True)
    lab.sh(a, "ip tuntap add dev tun0 mode tun")            # pre-created, down, no address
    up_env, down_env = lab.tmpdir / "up.env", lab.tmpdir / "down.env"
    argv = ("-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2", "--addr", "10.0.1.1/30", "--addr", "fd01::1/64",
            "--mtu", "1300", "--up", HOOK % up_env, "--down", HOOK % down_env, "--control", control(lab, "a"))
    first = start_vpn(lab, a, *argv)
    assert read_env(up_env) == {"script_type": "up", "dev": "tun0", "tun_mtu": "1300", "ifconfig_local": "10.0.1.1",
                                "ifconfig_netmask": "255.255.255.252", "ifconfig_ipv6_local": "fd01::1",
                                "ifconfig_ipv6_netbits": "64", "TOMATO_ADDRS": "10.0.1.1/30 fd01::1/64"}
    shown = lab.sh(a, "ip addr show dev tun0").stdout
    assert "inet 10.0.1.1/30" in shown and "inet6 fd01::1/64" in shown and "mtu 1300" in shown
    assert lab.stop(first, sig=signal.SIGKILL) == -signal.SIGKILL

    # The same command starts again on what the killed one left behind, and stops cleanly.
    up_env.unlink()
    second = start_vpn(lab, a, *argv)
    assert "tun0 already has 10.0.1.1/30" in second.output() and read_env(up_env)["dev"] == "tun0"
    assert "vpn show will not reach" not in second.output()         # the killed one's socket was replaced
    assert show_json(lab, a, "--control", control(lab, "a"))["interface"] == "tun0"
    shown = lab.sh(a, "ip addr show dev tun0").stdout
    assert shown.count("10.0.1.1/30") == 1 and shown.count("fd01::1/64") == 1 and "mtu 1300" in shown
    assert_clean_stop(lab, second)
    assert read_env(down_env)["script_type"] == "down" and read_env(down_env)["TOMATO_ADDRS"] == "10.0.1.1/30 fd01::1/64"
    assert "vnet_hdr off" in lab.sh(a, "ip -d link show dev tun0").stdout

    # A failing --up stops the start with its status logged; the device it created is gone.
    failed = lab.run(a, lab.tool("vpn", "-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2", "-I", "tmtup0",
                                 "--up", "exit 3", "--down", "touch %s" % (lab.tmpdir / "no-down"),
                                 "--control", control(lab, "up")), timeout=30)
    assert failed.returncode == 1 and "--up command failed with exit status 3" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr and not (lab.tmpdir / "no-down").exists()
    assert lab.sh(a, "ip link show dev tmtup0", check=False).returncode != 0


def test_without_privileges_one_line(lab):
    """A tun owned by another user, and root without CAP_NET_ADMIN: one line, exit 1."""
    a = lab.netns()
    lab.sh(a, "ip tuntap add dev tun0 mode tun user 65534")
    result = lab.run(a, ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin",
                         *lab.tool("vpn", "-la", ":%d" % PORT, "-lp", "pwd1", "-d", "-pp", "pwd2",
                                   "--control", control(lab, "a"))], timeout=30)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "cannot open tun device tun0" in lines[0] and "CAP_NET_ADMIN" in lines[0]


def epoll_waits_while_pinging(lab, procs, ns, address, count=10, interval=0.2, after=0.0):
    """epoll_wait calls of each process while `ns` pings `address` `count` times and `after`
    seconds after the last (strace -c)."""
    tracers = [subprocess.Popen(["strace", "-c", "-f", "-e", "trace=epoll_wait", "-p", str(proc.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for proc in procs]
    try:
        done = lab.run(ns, ["ping", "-n", "-q", "-c", count, "-W", 1, "-i", interval, address])
        assert done.returncode == 0, done.stdout
        time.sleep(after)               # the window measured, not a wait for anything
    finally:
        for tracer in tracers:
            tracer.send_signal(signal.SIGINT)
    counts = []
    for tracer in tracers:
        summary = tracer.communicate(timeout=10)[1]
        match = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?epoll_wait$", summary, re.M)
        counts.append(int(match.group(1)) if match else 0)
    return counts


def test_keep_warm_only_under_dense_traffic(lab, pair):
    # Light traffic (pings 0.2 s apart) wakes the default for the packets and a few waits
    # around each (warmth.py: linger, the predicted next ping), not every 2 ms as the keep-warm
    # loop used to (~1 000 waits for these 10 pings); dense traffic does turn the warm loop
    # on, and --keep-warm 0 never does.
    a, b = pair
    cold = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2",
                     "--keep-warm", "0", "--control", control(lab, "a"))
    warm = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1",
                     "--control", control(lab, "b"))
    ping_eventually(lab, b, "10.0.1.1")
    cold_waits, warm_waits = epoll_waits_while_pinging(lab, [cold, warm], b, "10.0.1.1")
    assert warm_waits < 10 * 12, (cold_waits, warm_waits)
    cold_waits, warm_waits = epoll_waits_while_pinging(lab, [cold, warm], b, "10.0.1.1", count=300,
                                                       interval=0.002, after=1.0)
    assert warm_waits > cold_waits + 200, (cold_waits, warm_waits)   # ~500 a second after the pings
    for proc in (cold, warm):
        assert_clean_stop(lab, proc)
