"""A TCP stream that is corrupted on its way into the tunnel, where the kernel really verifies.

    c (10.8.0.2) --veth-- r (router) --veth-- a (gateway: vpn A, tun0 10.0.1.1) ==tunnel== b (vpn B, 10.0.1.2)

r forwards what c sends through a tun (flip0) read by FLIPPER, a script that flips one
payload byte of every Nth TCP data segment and writes it back without fixing the
checksum (nftables payload rules would fix the checksum they touch; this kernel has
neither sch_netem nor act_pedit). Policy routing sends what arrives from c into flip0
and what comes back out of flip0 on to a. Checksum offloads are off on every veth on
the way (c's tx, r's rx/tx, a's rx), so the checksums on the wire are complete and no
device marks a segment verified: a corrupt segment reaches vpn A as it is, and only a
checksum check can keep it out of the data the server in b receives.
"""
import json
import sys

from tests.support import wait_for

FLIPPER = r'''
import os, select, signal, struct, sys
import pytun
every, limit = int(sys.argv[1]), int(sys.argv[2])
tun = pytun.TunTapDevice(name="flip0", flags=pytun.IFF_TUN | pytun.IFF_NO_PI)
tun.up()
flipped = segments = 0
signal.signal(signal.SIGTERM, lambda *a: (print("flipped %d of %d" % (flipped, segments), flush=True), os._exit(0)))
print("flipping", flush=True)
while True:
    packet = bytearray(tun.read(65536))
    if packet[0] >> 4 == 4 and packet[9] == 6:
        ihl = (packet[0] & 15) * 4
        start = ihl + (packet[ihl + 12] >> 4) * 4
        if len(packet) - start > 0:
            segments += 1
            if segments % every == 0 and flipped < limit:
                packet[start + (len(packet) - start) // 2] ^= 0x55     # checksum left as it was
                flipped += 1
    tun.write(bytes(packet))
'''

SERVER = r'''
import hashlib, json, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    data = c.recv(65536)
    if not data:
        break
    h.update(data); n += len(data)
c.sendall(b"x"); c.close()
print(json.dumps({"bytes": n, "sha256": h.hexdigest()}), flush=True)
'''

CLIENT = r'''
import hashlib, json, random, socket, sys
rnd = random.Random(11); n = int(sys.argv[3]); h = hashlib.sha256(); sent = 0
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
while sent < n:
    chunk = rnd.randbytes(min(65536, n - sent)); c.sendall(chunk); h.update(chunk); sent += len(chunk)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
print(json.dumps({"bytes": sent, "sha256": h.hexdigest()}), flush=True)
'''


def python(script, *args):
    return [sys.executable, "-c", script, *map(str, args)]


def build(lab, a, b):
    """Add c and r in front of the pair's a (gateway); returns (c, r)."""
    c, r = lab.netns(), lab.netns()
    lab.veth(c, "10.8.0.2/24", r, "10.8.0.1/24", name_b="vethc")
    lab.veth(r, "10.7.0.1/24", a, "10.7.0.2/24", name_a="vetha", name_b="vethr")
    lab.sh(c, "ip route add 10.0.1.0/30 via 10.8.0.1")
    lab.sh(r, "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
    lab.sh(r, "ip route add 10.0.1.0/30 via 10.7.0.2")
    lab.sh(a, "sysctl -qw net.ipv4.ip_forward=1")
    lab.sh(a, "ip route add 10.8.0.0/24 via 10.7.0.1")
    lab.sh(b, "ip route add 10.8.0.0/24 dev tun0")
    for ns, dev, what in ((c, "veth0", "tx off"), (r, "vethc", "rx off tx off"), (r, "vetha", "rx off tx off"),
                          (a, "vethr", "rx off")):
        lab.sh(ns, "ethtool -K %s %s >/dev/null 2>&1" % (dev, what))
    return c, r


def start_flipper(lab, r, every=25, limit=40):
    """FLIPPER on r's flip0, with what arrives from c routed through it."""
    flipper = lab.spawn(r, python(FLIPPER, every, limit))
    lab.wait_log(flipper, "flipping")
    lab.sh(r, "sysctl -qw net.ipv4.conf.flip0.rp_filter=0")
    lab.sh(r, "ip route add default dev flip0 table 100")
    lab.sh(r, "ip rule add iif vethc lookup 100")
    return flipper


def transfer(lab, client_ns, server_ns, address, port, nbytes):
    """(sent, received): length and sha256 of what the client sent and the server got."""
    server = lab.spawn(server_ns, python(SERVER, address, port))
    lab.wait_log(server, "listening")
    client = lab.run(client_ns, python(CLIENT, address, port, nbytes), timeout=120)
    assert client.returncode == 0, client.stderr
    wait_for(lambda: server.poll() is not None, timeout=20, what="the server to finish")
    return json.loads(client.stdout), json.loads(server.output().strip().splitlines()[-1])


def flipped(lab, flipper):
    """How many segments the flipper corrupted (it reports when stopped)."""
    lab.stop(flipper)
    words = flipper.output().split()
    return int(words[words.index("flipped") + 1])
