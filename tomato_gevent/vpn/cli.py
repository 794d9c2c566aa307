"""vpn command line: the seed's flags kept exactly, plus password files/env, --addr, --mtu, --keepalive.

    vpn -la [HOST]:PORT -lp PASS (-pa HOST:PORT | -d) -pp PASS [-I IFACE] [-pvt SEC] [-avt SEC]
        [--transport udp|tcp] [-v]

Each side seals what it sends with its local password (-lp) and opens what it
receives with the peer's password (-pp); host B mirrors host A.
"""
import argparse
import ipaddress
import logging
import signal
import socket
import sys

from ..cli_common import (OneLineParser, hostport_arg, number_arg, positive_float, program_name, read_secret, run_cli,
                          setup_logging)
from ..errors import ConfigError

log = logging.getLogger(__name__)

def _interface_name(text):
    if not 0 < len(text) <= 15 or "/" in text or text.strip() != text or text in (".", ".."):
        raise argparse.ArgumentTypeError("%r is not a valid interface name (1-15 characters)" % text)
    return text


def _cidr(text):
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an address with prefix, e.g. 10.0.1.1/30" % text) from None
    if "/" not in text:
        raise argparse.ArgumentTypeError("%r needs a prefix length, e.g. 10.0.1.1/30" % text)
    return interface


_mtu = number_arg(int, lambda value: 68 <= value <= 65535 - 40 - 8 - 40, "MTU {value} out of range 68-65447")
_seconds_or_zero = number_arg(float, lambda value: 0 <= value < float("inf"), "{text} must be 0 (off) or more seconds")


def build_parser():
    from .link import KEEPALIVE_SECONDS

    p = OneLineParser(
        prog=program_name("vpn"), allow_abbrev=False,
        description="Point-to-point encrypted VPN over UDP (or TCP) between two tun devices (AES-256-GCM). "
                    "Each side encrypts what it sends with its local password and decrypts what it "
                    "receives with the peer's password.",
        epilog="example (host A; host B mirrors it with -lp pwd2 -pp pwd1): "
               "%(prog)s -la :5000 -lp pwd1 -pa 192.168.8.131:5000 -pp pwd2 -v")
    p.add_argument("-la", metavar="[HOST]:PORT", type=hostport_arg, required=True,
                   help="local address to listen on (UDP, or TCP with --transport tcp), e.g. :5000 or [::]:5000")
    local_password = p.add_mutually_exclusive_group()
    local_password.add_argument("-lp", metavar="PASS", help="local password: seals what this side sends")
    local_password.add_argument("--local-password-file", metavar="PATH",
                   help="read the local password from the first line of PATH ($TOMATO_LOCAL_PASSWORD also works)")
    peer = p.add_mutually_exclusive_group(required=True)
    peer.add_argument("-pa", metavar="HOST:PORT", type=hostport_arg,
                      help="peer's address (UDP, or TCP with --transport tcp)")
    peer.add_argument("-d", action="store_true",
                      help="dynamic mode: learn the peer's address from its authenticated packets")
    peer_password = p.add_mutually_exclusive_group()
    peer_password.add_argument("-pp", metavar="PASS", help="peer password: opens what the peer sends")
    peer_password.add_argument("--peer-password-file", metavar="PATH",
                   help="read the peer password from the first line of PATH ($TOMATO_PEER_PASSWORD also works)")
    p.add_argument("-I", metavar="IFACE", type=_interface_name, default="tun0",
                   help="tun device; opened if it exists, created if absent (default tun0)")
    p.add_argument("-pvt", metavar="SEC", type=positive_float, default=10.0,
                   help="packet valid time: refuse packets whose timestamp is further than SEC from our "
                        "clock (default 10)")
    p.add_argument("-avt", metavar="SEC", type=positive_float, default=60.0,
                   help="address valid time (dynamic mode): forget the peer's address after SEC without an "
                        "authentic packet (default 60)")
    p.add_argument("--addr", metavar="CIDR", type=_cidr, help="add this address to the device, e.g. 10.0.1.1/30")
    p.add_argument("--mtu", metavar="N", type=_mtu, help="set the device MTU (1500-40-8-40 = 1412 fits any path "
                                                        "with a 1500 MTU)")
    p.add_argument("--keepalive", metavar="SEC", type=_seconds_or_zero, default=KEEPALIVE_SECONDS,
                   help="send an empty authenticated packet after SEC idle (0 = off, default %g)" % KEEPALIVE_SECONDS)
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp",
                   help="udp (default): one UDP datagram per packet; tcp: the same sealed datagrams, "
                        "length-prefixed, over TCP connections on the same port (for networks that block "
                        "or throttle UDP; both sides must use it)")
    p.add_argument("--http-proxy", metavar="HOST:PORT", type=hostport_arg,
                   help="with --transport tcp and -pa: reach the peer through this HTTP proxy (CONNECT)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="debug log: session changes, address updates, dropped datagrams")
    return p


def _resolve(host, port, family=0):
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError("cannot resolve %s: %s" % (host, getattr(e, "strerror", e))) from None
    return infos[0][4]


def resolve_endpoints(local, peer):
    """(bind sockaddr, peer sockaddr or None) with matching families.

    An empty local host binds IPv4 unless the peer is IPv6; `[::]:PORT` binds a
    dual-stack socket that also reaches IPv4 peers (as ::ffff:a.b.c.d).
    """
    peer_addr = _resolve(peer[0], peer[1]) if peer is not None else None
    local_host, local_port = local
    if local_host:
        bind = _resolve(local_host, local_port)
    elif peer_addr is not None and len(peer_addr) == 4:
        bind = ("::", local_port, 0, 0)
    else:
        bind = ("0.0.0.0", local_port)
    if peer_addr is not None and len(bind) != len(peer_addr):
        if len(bind) == 4:
            peer_addr = ("::ffff:" + peer_addr[0], peer_addr[1], 0, 0)
        else:
            raise ConfigError("local address %s is IPv4 but the peer %s is IPv6" % (bind[0], peer_addr[0]))
    return bind, peer_addr


def check_passwords(local_password, peer_password):
    """Refuse an empty password, and one password for both directions: nothing in a datagram
    says which way it travels, so with equal passwords a host opens its own datagrams
    reflected back at it as if the peer had sent them."""
    for password, what in ((local_password, "local"), (peer_password, "peer")):
        if not password:
            raise ConfigError("the %s password is empty" % what)
    if local_password == peer_password:
        raise ConfigError("the local and peer passwords are equal: each direction needs its own password")


def offloads_wanted(environ):
    """False when TOMATO_VPN_OFFLOAD=0: one system call per packet everywhere (no GSO/GRO,
    no virtio header on the tun)."""
    return environ.get("TOMATO_VPN_OFFLOAD", "1") != "0"


def build_link(args, peer_address, tun, transport, local_key, peer_key, stop_event=None, clock=None, random16=None):
    """The Link with both directions built here: the send session (session ids from
    clock and randomness), the receiver (-pvt) and the peer endpoint (-pa/-d, -avt)."""
    import os

    from .link import SYSTEM_CLOCK, Link, SendSession
    from .session import PeerEndpoint, Receiver, new_sealer

    clock = SYSTEM_CLOCK if clock is None else clock
    random16 = (lambda: int.from_bytes(os.urandom(2), "big")) if random16 is None else random16

    receiver = Receiver(peer_key, args.pvt)

    def new_session_sealer(after):
        sealer = new_sealer(local_key, int(clock.wall() * 1000), random16(), after=after)
        receiver.own_session_id = sealer.session_id     # refused on receive: a reflection of ours
        return sealer

    sending = SendSession(new_session_sealer)
    # Both sides know both session ids once a datagram has opened: a rule they evaluate alike.
    transport.keep_outgoing = lambda: sending.sealer.session_id > (receiver.session_id or 0)
    endpoint = PeerEndpoint(fixed=peer_address, forget_after=args.avt)
    return Link(tun, transport, sending, receiver, endpoint, keepalive=args.keepalive, clock=clock,
                stop_event=stop_event)


def open_transport(kind, bind, peer_address, offloads, http_proxy=None, connect_target=None):
    """The datagram transport of --transport, bound/listening on bind."""
    if kind == "tcp":
        from .tcp import TcpTransport, open_tcp_listener

        return TcpTransport(open_tcp_listener(bind), peer_address, http_proxy=http_proxy,
                            connect_target=connect_target)
    from .udp import UdpTransport, open_udp_socket

    return UdpTransport(open_udp_socket(bind), offloads=offloads)


def _run(args):
    import os

    import gevent
    from gevent.event import Event

    from ..netutil import format_address
    from ..sdnotify import notify
    from .packet import derive_password_key
    from .tun import TunDevice

    local_password = read_secret(args.lp, args.local_password_file, "TOMATO_LOCAL_PASSWORD", "local password")
    peer_password = read_secret(args.pp, args.peer_password_file, "TOMATO_PEER_PASSWORD", "peer password")
    check_passwords(local_password, peer_password)
    http_proxy = None
    if args.http_proxy is None:
        bind, peer_address = resolve_endpoints(args.la, args.pa)
    elif args.transport != "tcp" or args.pa is None:
        raise ConfigError("--http-proxy needs --transport tcp and -pa (the side that dials)")
    else:
        # The proxy resolves the peer's name (it may not resolve here): -pa stays as written.
        http_proxy = _resolve(*args.http_proxy)
        bind, _ = resolve_endpoints(args.la, None)
        peer_address = args.pa
    offloads = offloads_wanted(os.environ)
    # Signals are caught from here on, so a stop during start-up still restores a
    # pre-created device (the Link sees the request as soon as it starts).
    stop_requested = Event()
    stop_handlers = [gevent.signal_handler(sig, stop_requested.set) for sig in (signal.SIGTERM, signal.SIGINT)]
    try:
        local_key = derive_password_key(local_password)
        peer_key = derive_password_key(peer_password)
        transport = open_transport(args.transport, bind, peer_address, offloads, http_proxy, args.pa)
        try:
            with TunDevice(args.I, addr=args.addr, mtu=args.mtu, vnet_hdr=offloads) as tun:
                link = build_link(args, peer_address, tun, transport, local_key, peer_key, stop_requested)
                log.info("tunnel %s up: listening on %s %s, peer %s%s%s", tun.name, args.transport.upper(),
                         format_address(transport.local_address()),
                         format_address(peer_address) if peer_address else "learned dynamically",
                         " via the HTTP proxy " + format_address(http_proxy) if http_proxy else "",
                         "" if tun.precreated else " (device created)")
                # Device up and socket bound: units ordered after this one (a proxy listening on
                # the tunnel address) may start now.
                notify("READY=1", "STATUS=%s: listening on %s %s" % (
                    tun.name, args.transport.upper(), format_address(transport.local_address())))
                try:
                    link.serve_forever()
                finally:
                    notify("STOPPING=1")
                    log.info("stopped: %s", link.stats())
        finally:
            transport.close()
    finally:
        for handler in stop_handlers:
            handler.cancel()
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli(lambda: _run(args), __name__)


if __name__ == "__main__":
    sys.exit(main())
