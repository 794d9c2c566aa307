"""bin/vpn run as an administrator runs it: secrets kept from hooks, status per network
namespace, the dynamic mode's address and restart lines, MSS fixing through the tunnel."""
import json
import re
import sys
from pathlib import Path

from .nsutil import wait_for
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


# Captures the MSS option of the first TCP SYN (server: the client's SYN to PORT) or SYN-ACK
# (client: the server's answer from PORT) seen on IFACE, while being the server or client.
MSS_PROBE = r'''
import json, socket, struct, sys
role, iface, address, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
cap.bind((iface, 0))
cap.settimeout(20)

def mss_of(pkt):
    ihl = (pkt[0] & 15) * 4
    tcp = pkt[ihl:]
    end, i = (tcp[12] >> 4) * 4, 20
    while i < end and tcp[i] != 0:
        if tcp[i] == 1:
            i += 1
            continue
        if tcp[i] == 2:
            return struct.unpack_from(">H", tcp, i + 2)[0]
        i += tcp[i + 1]

def wait_for(flags, port_at):
    while True:
        pkt, where = cap.recvfrom(65536)
        if where[2] == socket.PACKET_OUTGOING or pkt[9] != 6:
            continue
        tcp = pkt[(pkt[0] & 15) * 4:]
        if tcp[13] & 0x12 == flags and struct.unpack_from(">H", tcp, port_at)[0] == port:
            return mss_of(pkt)

if role == "server":
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(1)
    print("listening", flush=True)
    mss = wait_for(0x02, 2)
    server.settimeout(20)
    server.accept()[0].close()
else:
    client = socket.create_connection((address, port), timeout=20)
    mss = wait_for(0x12, 0)
    client.close()
print(json.dumps({"mss": mss}), flush=True)
'''


def gateway_lab(lab):
    """C (a LAN host, MTU 1500) -- B == tunnel, MTU 1400 == A -- S (a server, MTU 1500):
    B and A route the two LANs through their tun0. Returns the four namespaces."""
    a, b, c, s = lab.netns(), lab.netns(), lab.netns(), lab.netns()
    lab.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
    lab.veth(a, "10.8.0.1/24", s, "10.8.0.2/24", name_a="veth1")
    lab.veth(b, "10.7.0.1/24", c, "10.7.0.2/24", name_a="veth1")
    lab.tun(a, "tun0", "10.0.1.1/30")
    lab.tun(b, "tun0", "10.0.1.2/30")
    for gateway, lan in ((a, "10.7.0.0/24"), (b, "10.8.0.0/24")):
        lab.sh(gateway, "sysctl -qw net.ipv4.ip_forward=1 && ip route add %s dev tun0" % lan)
    lab.sh(s, "ip route add default via 10.8.0.1")
    lab.sh(c, "ip route add default via 10.7.0.1")
    return a, b, c, s


def syn_mss_through_the_tunnel(lab, c, s, port):
    """(MSS of C's SYN as S receives it, MSS of S's SYN-ACK as C receives it)."""
    server = lab.spawn(s, [sys.executable, "-c", MSS_PROBE, "server", "veth0", "10.8.0.2", port])
    lab.wait_log(server, "listening")
    client = lab.run(c, [sys.executable, "-c", MSS_PROBE, "client", "veth0", "10.8.0.2", port], timeout=30)
    assert client.returncode == 0, client.stderr
    wait_for(lambda: server.poll() is not None, timeout=20, what="the server's capture")
    assert server.returncode == 0, server.output()
    return json.loads(server.output().splitlines()[-1])["mss"], json.loads(client.stdout)["mss"]


def test_mss_of_syns_crossing_the_tunnel_fits_it(lab):
    """Issue 24 item 6: C's SYN announces 1460 (its LAN's MTU 1500); through a 1400-byte
    tunnel the server would send 1448-byte segments that only fit with path-MTU discovery.
    By default both vpns lower the MSS of SYNs both ways to 1400 - 40; --mss-fix 0 leaves
    them alone; --mss-fix N sets the packet size the MSS is derived from."""
    a, b, c, s = gateway_lab(lab)
    for flag, expected in ((["--mss-fix", "0"], 1460), ([], 1360), (["--mss-fix", "1300"], 1260)):
        vpn_a = start_vpn(lab, a, "-la", ":%d" % PORT, "-lp", "pwd1", "-pa", "10.9.0.2:%d" % PORT, "-pp", "pwd2",
                          "--control", lab.tmpdir / "a", *flag)
        vpn_b = start_vpn(lab, b, "-la", ":%d" % PORT, "-lp", "pwd2", "-pa", "10.9.0.1:%d" % PORT, "-pp", "pwd1",
                          "--control", lab.tmpdir / "b", *flag)
        ping_eventually(lab, c, "10.8.0.2")
        assert syn_mss_through_the_tunnel(lab, c, s, 8080) == (expected, expected), flag
        assert_clean_stop(lab, vpn_a)
        assert_clean_stop(lab, vpn_b)
