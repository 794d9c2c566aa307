#!/usr/bin/env python3
"""The least a Python tunnel does per packet, as a stand-in for bin/vpn in bench/ping_ab.py:
how low a ping round trip can go in CPython on this machine, next to OpenVPN in the same run.

    .venv/bin/python bench/ping_floor.py make DIR       # DIR/epoll/bin/vpn and DIR/gevent/bin/vpn
    .venv/bin/python bench/ping_ab.py --rounds 4 --count 30 . DIR/epoll DIR/gevent

Each made "checkout" is a bin/vpn that takes the seed's command line (-la :PORT -lp PW -pa
HOST:PORT -pp PW -I DEV) and relays between the tun and one UDP socket, one packet per
wakeup: read -> AES-256-GCM seal (cryptography, a 12-byte counter nonce sent in front) ->
sendto; recvfrom -> open -> write. No handshake (the key is a hash of both passwords), no
replay window, no offloads, no keep-warm: nothing a real tunnel may leave out is added, so
its round trip is a floor for any CPython tunnel built on the same calls, not a design.
  epoll   waits in select.epoll directly (no event loop at all)
  gevent  waits in the gevent hub (an io watcher per fd and a greenlet), as a gevent program does
Not a test of tomato and not used by make bench: it answers "can a CPython tunnel reach
OpenVPN's round trip here at all" (issue 19's RTT targets).
"""
import sys
from pathlib import Path

RELAY = r'''#!/usr/bin/env python3
import fcntl, hashlib, os, select, socket, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MODE = %(mode)r
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
port = int(args["-la"].rpartition(":")[2])
host, _, peer_port = args["-pa"].rpartition(":")
peer = (host, int(peer_port))
key = hashlib.sha256("\0".join(sorted((args["-lp"], args["-pp"]))).encode()).digest()
aead = AESGCM(key)
tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", args["-I"].encode(), 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("", port))
sock.setblocking(False)
counter = 0
side = 1 if args["-lp"] < args["-pp"] else 2       # the two ends' nonces never collide


def from_tun():
    global counter
    try:
        packet = os.read(tun, 2048)
    except BlockingIOError:
        return
    counter += 1
    nonce = struct.pack("!IQ", side, counter)
    sock.sendto(nonce + aead.encrypt(nonce, packet, None), peer)


def from_net():
    try:
        datagram = sock.recv(2048)
    except BlockingIOError:
        return
    try:
        packet = aead.decrypt(datagram[:12], datagram[12:], None)
    except Exception:
        return
    os.write(tun, packet)


if MODE == "epoll":
    epoll = select.epoll()
    epoll.register(tun, select.EPOLLIN)
    epoll.register(sock.fileno(), select.EPOLLIN)
    tun_fd, net_fd = tun, sock.fileno()
    while True:
        for fd, _ in epoll.poll():
            if fd == tun_fd:
                from_tun()
            else:
                from_net()
else:
    import gevent
    from gevent.hub import get_hub
    loop = get_hub().loop
    watchers = [loop.io(tun, 1), loop.io(sock.fileno(), 1)]
    watchers[0].start(from_tun)
    watchers[1].start(from_net)
    gevent.wait()
'''


def make(directory):
    for mode in ("epoll", "gevent"):
        script = Path(directory) / mode / "bin" / "vpn"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(RELAY % {"mode": mode})
        script.chmod(0o755)
        print(script)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "make":
        sys.exit(__doc__.strip().splitlines()[2].strip())
    make(sys.argv[2])
