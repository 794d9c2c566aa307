"""Doubles shared by the VPN's unit tests (test_vpn_link*.py, test_vpn_tcp.py): a tun stand-in
and a running link without root, as proxy_doubles.py is for the proxy. The `sides` fixture that
starts Sides and stops them after the test is in conftest.py."""
import collections
import socket
import threading

import gevent
import pytest

from tomato_gevent.errors import TomatoError
from tomato_gevent.vpn.assembly import build_link, build_sessions, open_transport
from tomato_gevent.vpn.cli import build_parser
from tomato_gevent.vpn.status import build_status

KEY_A, KEY_B, KEY_WRONG = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32   # password keys (no scrypt)
LOOPBACK = ("127.0.0.1", 0)


class SocketTun:
    """A tun stand-in: the link reads and writes one end of a SOCK_SEQPACKET pair (one packet
    per read, as a tun), the test the other (`host`, blocking with a timeout)."""

    name = "sock0"
    vnet_hdr = False

    def __init__(self):
        self.host, self._device = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._device.setblocking(False)
        self.fd = self._device.fileno()
        self.host.settimeout(5)

    def current_mtu(self):
        return 1400

    def close(self):
        self.host.close()
        self._device.close()


class Side:
    """One running link: tun stand-in, UDP transport, Link assembled as the CLI assembles it.

    Each side runs in its own thread with its own gevent hub, as each runs in its own
    process in real life: the link's busy-path epoll_wait blocks its whole hub (see
    scheduler.py), so two links sharing one hub would only take turns."""

    def __init__(self, local_key, peer_key, peer=None, offloads=True, keepalive=25.0, tun=None, thread=True,
                 transport="udp", bind=LOOPBACK, hold=False, http_proxy=None):
        self.tun = tun or SocketTun()
        self.kind, self._bind = transport, bind
        argv = ["-la", ":5000", "-lp", "unused", "-pp", "unused", "--keepalive", str(keepalive)]
        argv += ["-pa", "127.0.0.1:1"] if peer else ["-d"]
        self._args, self._keys = build_parser().parse_args(argv), (local_key, peer_key)
        self._peer, self._offloads, self._http_proxy = peer, offloads, http_proxy
        self.error = None
        self._go = threading.Event()
        if not hold:
            self._go.set()
        if thread:
            self._ready = threading.Event()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
            assert self._ready.wait(5), "link did not start"

    def build(self):
        """Sessions, transport and Link, in the calling thread's hub."""
        sending, receiver = build_sessions(*self._keys, self._args.pvt)
        drops = collections.Counter()
        self.transport = open_transport(self.kind, self._bind, self._peer, self._offloads, receiver, drops,
                                        self._http_proxy, self._peer)
        self.link = build_link(self._args, self._peer, self.tun, self.transport, sending, receiver, drops)
        self.address = self.transport.local_address()
        self._hub = gevent.get_hub()

    def _run(self):
        self.build()
        self._ready.set()
        self._go.wait()
        try:
            self.link.serve_forever()
        except TomatoError as e:
            self.error = e
        finally:
            self.transport.close()
            gevent.get_hub().destroy(destroy_loop=True)

    def release(self):
        """Start a side made with hold=True (built, listening, not yet running)."""
        self._go.set()

    def stop(self):
        self._go.set()
        if self.tun is None:
            return
        self._hub.loop.run_callback_threadsafe(self.link.stop)
        self._thread.join(5)
        assert not self._thread.is_alive(), "link did not stop"
        self.tun.close()
        self.tun = None

    @property
    def running(self):
        return self._thread.is_alive()


def linked_pair(sides, offloads=True, b_peer_key=KEY_A, keepalive=25.0, transport="udp"):
    """B dynamic (learns A from A's first keepalive), A fixed on B's address."""
    b = sides(KEY_B, b_peer_key, offloads=offloads, keepalive=keepalive, transport=transport)
    a = sides(KEY_A, KEY_B, peer=b.address, offloads=offloads, keepalive=keepalive, transport=transport)
    return a, b


TRANSPORTS = pytest.mark.parametrize("transport", ["udp", "tcp"])


SESSION = (1_700_000_000_000 << 16) | 0xBEEF        # started at 1_700_000_000.000 s (peer's clock)


def status(**overrides):
    """A status as build_status makes it for a running link, with these fields changed."""
    values = dict(interface="tun0", listen_address="0.0.0.0:5000", peer_address="10.9.0.2:5000", peer_host=None,
                  dynamic=False, session_id=SESSION, last_received=95.0, started=0.0, now=100.0,
                  now_ms=1_700_000_042_000, rx_packets=12, rx_bytes=3456, tx_packets=15, tx_bytes=2_000_000,
                  drops=collections.Counter({"short datagram": 1, "authentication failed": 3}))
    values.update(overrides)
    return build_status(**values)
