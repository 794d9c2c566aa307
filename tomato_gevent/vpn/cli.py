"""vpn command lines: the seed's flags kept exactly, plus password files/env, --addr, --mtu,
--keepalive, --up/--down, --control; and `vpn show` asking a running vpn for its status.

    vpn -la [HOST]:PORT -lp PASS (-pa HOST:PORT | -d) -pp PASS [-I IFACE] [-pvt SEC] [-avt SEC]
        [--transport udp|tcp] [-v]
    vpn show [-I IFACE | --control PATH] [--json]

Each side seals what it sends with its local password (-lp) and opens what it
receives with the peer's password (-pp); host B mirrors host A.
"""
import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import time

from ..cli_common import (OneLineParser, hostport_arg, number_arg, positive_float, program_name, read_secret, run_cli,
                          setup_logging)
from ..errors import ConfigError
from ..netutil import format_address, ip_literal
from .packet import OVERHEAD

log = logging.getLogger(__name__)

CREATED_DEVICE_MTU = 1500 - 40 - 8 - OVERHEAD   # README "MTU": fits any 1500-byte path, IPv4 or IPv6
MAX_DEVICE_MTU = 65535 - 40 - 8 - OVERHEAD      # a sealed full-size packet still fits one UDP datagram
RESOLVE_RETRY_SECONDS = 5.0                     # a -pa name that does not resolve at start
RERESOLVE_SILENT_SECONDS = 30.0                 # how often a silent peer's -pa name is resolved again


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


class PeerUnresolved(ConfigError):
    """The -pa host name does not resolve (at start: retried, not fatal)."""


_mtu = number_arg(int, lambda value: 68 <= value <= MAX_DEVICE_MTU, "MTU {value} out of range 68-%d" % MAX_DEVICE_MTU)
_seconds_or_zero = number_arg(float, lambda value: 0 <= value < float("inf"), "{text} must be 0 (off) or more seconds")


def build_parser():
    from .link import KEEPALIVE_SECONDS
    from .scheduler import WARM_AFTER_TRAFFIC_SECONDS

    p = OneLineParser(
        prog=program_name("vpn"), allow_abbrev=False,
        description="Point-to-point encrypted VPN over UDP (or TCP) between two tun devices (AES-256-GCM). "
                    "Each side encrypts what it sends with its local password and decrypts what it "
                    "receives with the peer's password.",
        epilog="example (host A; host B mirrors it with -lp pwd2 -pp pwd1): "
               "%(prog)s -la :5000 -lp pwd1 -pa 192.168.8.131:5000 -pp pwd2 -v. "
               "The running vpn's state: %(prog)s show [-I IFACE] [--json] (see %(prog)s show --help). "
               "Signals: SIGUSR1 logs the state in one line; SIGHUP re-resolves the -pa host name and logs it; "
               "SIGINT/SIGTERM stop.")
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
    p.add_argument("--addr", metavar="CIDR", type=_cidr, action="append", default=[],
                   help="add this address to the device, e.g. 10.0.1.1/30; may repeat (IPv4 and IPv6)")
    p.add_argument("--mtu", metavar="N", type=_mtu,
                   help="set the device MTU (default for a device vpn creates: %d, which fits any path with a "
                        "1500 MTU)" % CREATED_DEVICE_MTU)
    p.add_argument("--up", metavar="CMD",
                   help="shell command run once the device is configured, with dev, tun_mtu, ifconfig_local, "
                        "TOMATO_ADDRS... in its environment (OpenVPN's names); failing, it stops the start")
    p.add_argument("--down", metavar="CMD", help="shell command run at stop, before the device is restored or removed "
                                                "(same environment)")
    p.add_argument("--control", metavar="PATH",
                   help="control socket for vpn show (default /run/tomato/vpn-IFACE.sock)")
    p.add_argument("--keepalive", metavar="SEC", type=_seconds_or_zero, default=KEEPALIVE_SECONDS,
                   help="send an empty authenticated packet after SEC idle (0 = off, default %g)" % KEEPALIVE_SECONDS)
    p.add_argument("--keep-warm", metavar="SEC", type=_seconds_or_zero, default=WARM_AFTER_TRAFFIC_SECONDS,
                   help="after dense traffic (200 packet wake-ups a second), wait SEC in a 2 ms wake-up loop "
                        "that keeps the data path warm; steady light traffic (pings) is warmed once just "
                        "before each expected packet (0 = neither, default %g)"
                        % WARM_AFTER_TRAFFIC_SECONDS)
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp",
                   help="udp (default): one UDP datagram per packet; tcp: the same sealed datagrams, "
                        "length-prefixed, over TCP connections on the same port (for networks that block "
                        "or throttle UDP; both sides must use it)")
    p.add_argument("--http-proxy", metavar="HOST:PORT", type=hostport_arg,
                   help="with --transport tcp and -pa: reach the peer through this HTTP proxy (CONNECT)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="debug log: session changes, address updates, dropped datagrams")
    return p


def _resolve(host, port, family=0, error=ConfigError):
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise error("cannot resolve %s: %s" % (host, getattr(e, "strerror", e))) from None
    return infos[0][4]


def peer_for_socket(peer_addr, bind):
    """The peer's sockaddr as a socket bound to `bind` sends to it: IPv4 peers of a
    dual-stack IPv6 socket as ::ffff:a.b.c.d."""
    if len(bind) == len(peer_addr):
        return peer_addr
    if len(bind) == 4:
        return ("::ffff:" + peer_addr[0], peer_addr[1], 0, 0)
    raise ConfigError("local address %s is IPv4 but the peer %s is IPv6" % (bind[0], peer_addr[0]))


def resolve_endpoints(local, peer):
    """(bind sockaddr, peer sockaddr or None) with matching families.

    An empty local host binds IPv4 unless the peer is IPv6; `[::]:PORT` binds a
    dual-stack socket that also reaches IPv4 peers (as ::ffff:a.b.c.d).
    Raises PeerUnresolved if the peer's name does not resolve.
    """
    peer_addr = _resolve(peer[0], peer[1], error=PeerUnresolved) if peer is not None else None
    local_host, local_port = local
    if local_host:
        bind = _resolve(local_host, local_port)
    elif peer_addr is not None and len(peer_addr) == 4:
        bind = ("::", local_port, 0, 0)
    else:
        bind = ("0.0.0.0", local_port)
    return bind, peer_for_socket(peer_addr, bind) if peer_addr is not None else None


def resolve_endpoints_patiently(local, peer, stop_event):
    """resolve_endpoints, retrying every RESOLVE_RETRY_SECONDS while the peer's name does
    not resolve (no network yet at boot); None if a stop came first."""
    waiting_since = None
    while True:
        try:
            endpoints = resolve_endpoints(local, peer)
        except PeerUnresolved as e:
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning("%s; retrying every %g s", e, RESOLVE_RETRY_SECONDS)
            if stop_event.wait(RESOLVE_RETRY_SECONDS):
                return None
            continue
        if waiting_since is not None:
            log.info("%s resolved after %.0f s", peer[0], time.monotonic() - waiting_since)
        return endpoints


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


def build_link(args, peer_address, tun, transport, local_key, peer_key, stop_event=None, clock=None, random16=None,
               silent_after=None):
    """The Link with both directions built here: the send session (session ids from
    clock and randomness), the receiver (-pvt) and the peer endpoint (-pa/-d, -avt)."""
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
                stop_event=stop_event, silent_after=silent_after, peer_host=args.pa[0] if args.pa else None,
                keep_warm=args.keep_warm)


def open_transport(kind, bind, peer_address, offloads, http_proxy=None, connect_target=None):
    """The datagram transport of --transport, bound/listening on bind."""
    if kind == "tcp":
        from .tcp import TcpTransport, open_tcp_listener

        return TcpTransport(open_tcp_listener(bind), peer_address, http_proxy=http_proxy,
                            connect_target=connect_target)
    from .udp import UdpTransport, open_udp_socket

    return UdpTransport(open_udp_socket(bind), offloads=offloads)


def _run(args):
    import gevent
    from gevent.event import Event

    from .packet import derive_password_key
    from .tun import TunDevice

    local_password = read_secret(args.lp, args.local_password_file, "TOMATO_LOCAL_PASSWORD", "local password")
    peer_password = read_secret(args.pp, args.peer_password_file, "TOMATO_PEER_PASSWORD", "peer password")
    check_passwords(local_password, peer_password)
    if args.http_proxy is not None and (args.transport != "tcp" or args.pa is None):
        raise ConfigError("--http-proxy needs --transport tcp and -pa (the side that dials)")
    # Signals are caught from here on, so a stop during start-up still restores a
    # pre-created device (the Link sees the request as soon as it starts). SIGHUP and
    # SIGUSR1 must not kill the process either, even before there is a status to log.
    stop_requested = Event()
    link = peer_name = None

    def log_status(prefix):
        if link is not None:
            log.info("%s%s", prefix, link.stats())

    def on_hangup():
        if link is not None and peer_name is not None:
            peer_name.refresh(link)
        log_status("SIGHUP: ")

    handlers = [gevent.signal_handler(sig, stop_requested.set) for sig in (signal.SIGTERM, signal.SIGINT)]
    handlers.append(gevent.signal_handler(signal.SIGHUP, on_hangup))
    handlers.append(gevent.signal_handler(signal.SIGUSR1, log_status, "status: "))
    try:
        http_proxy = None
        if args.http_proxy is None:
            endpoints = resolve_endpoints_patiently(args.la, args.pa, stop_requested)
            if endpoints is None:
                return 0
            bind, peer_address = endpoints
        else:
            # The proxy resolves the peer's name (it may not resolve here): -pa stays as written.
            http_proxy = _resolve(*args.http_proxy)
            bind, _ = resolve_endpoints(args.la, None)
            peer_address = args.pa
        offloads = offloads_wanted(os.environ)
        local_key = derive_password_key(local_password)
        peer_key = derive_password_key(peer_password)
        transport = open_transport(args.transport, bind, peer_address, offloads, http_proxy, args.pa)
        try:
            with TunDevice(args.I, addrs=args.addr, mtu=args.mtu, vnet_hdr=offloads,
                           created_mtu=CREATED_DEVICE_MTU) as tun:
                link = build_link(args, peer_address, tun, transport, local_key, peer_key, stop_requested,
                                  silent_after=_silent_after_override())
                if args.pa is not None and http_proxy is None:
                    peer_name = PeerName(args.pa, bind)
                return _serve(args, link, peer_name, stop_requested, http_proxy)
        finally:
            transport.close()
    finally:
        for handler in handlers:
            handler.cancel()


def _serve(args, link, peer_name, stop_requested, http_proxy=None):
    """Run a built link on its configured device: --up, the control socket, the link
    until a stop, the stop line, --down."""
    import gevent

    from ..sdnotify import notify
    from .control import default_path
    from .hooks import HookFailed

    tun = link.tun
    if args.up:
        status = _hook("up", args.up, tun, stop_requested)
        if status is None:          # stopped while --up ran
            return 0
        if status != 0:
            raise HookFailed("--up command failed with exit status %d: not starting" % status)
    try:
        with _control_server(args.control or default_path(tun.name), link.status):
            peer_address = link.endpoint.address
            log.info("tunnel %s: listening on %s %s, peer %s%s%s", tun.name, args.transport.upper(),
                     format_address(link.transport.local_address()),
                     format_address(peer_address) if peer_address else "learned dynamically",
                     " via the HTTP proxy " + format_address(http_proxy) if http_proxy else "",
                     "" if tun.precreated else " (device created)")
            # Device up and socket bound: units ordered after this one (a proxy listening on
            # the tunnel address) may start now.
            notify("READY=1", "STATUS=%s: listening on %s %s" % (
                tun.name, args.transport.upper(), format_address(link.transport.local_address())))
            refresher = gevent.spawn(peer_name.refresh_while_silent, link) if peer_name else None
            try:
                link.serve_forever()
            finally:
                if refresher is not None:
                    refresher.kill()
                notify("STOPPING=1")
                log.info("stopped: %s", link.stats())
    finally:
        if args.down:
            status = _hook("down", args.down, tun, stop_requested)
            if status:
                log.warning("--down command failed with exit status %d", status)
    return 0


def _hook(script_type, command, tun, stop_requested):
    """Run --up/--down with the device's name, MTU and addresses in the environment."""
    from .hooks import hook_environment, run_hook
    from .tun import device_addresses

    env = hook_environment(script_type, tun.name, tun.current_mtu(), device_addresses(tun.name), base=os.environ)
    return run_hook("--" + script_type, command, env, stop_requested)


def _silent_after_override():
    """Seconds of silence before "peer silent" when $TOMATO_VPN_SILENT_AFTER is set: for
    the tests only (the real threshold, max(3 x keepalive, 60 s), is too long to wait for)."""
    value = os.environ.get("TOMATO_VPN_SILENT_AFTER")
    return float(value) if value else None


@contextlib.contextmanager
def _control_server(path, status):
    """The control socket while the link runs, or (with a warning) none: `vpn show`
    is a convenience the tunnel itself does not depend on."""
    from .control import ControlError, ControlServer

    try:
        server = ControlServer(path, status).start()
    except ControlError as e:
        log.warning("%s; vpn show will not reach this vpn", e)
        yield None
        return
    try:
        yield server
    finally:
        server.close()


class PeerName:
    """The -pa host, re-resolved on SIGHUP and while the peer is silent (dynamic DNS)."""

    def __init__(self, hostport, bind):
        self.host, self.port = hostport
        self.bind = bind            # the local sockaddr: decides how an IPv4 peer is written
        self.numeric = ip_literal(self.host) is not None       # a literal is never resolved again

    def refresh(self, link):
        """Resolve again; point the link at the new address if it moved."""
        if self.numeric:
            return
        try:
            fresh = peer_for_socket(_resolve(self.host, self.port, error=PeerUnresolved), self.bind)
        except ConfigError as e:
            log.warning("%s; keeping %s", e, _format_peer(link.endpoint.address))
            return
        if fresh != link.endpoint.address:
            log.info("peer %s now resolves to %s (was %s)", self.host, _format_peer(fresh),
                     _format_peer(link.endpoint.address))
            link.move_peer(fresh)

    def refresh_while_silent(self, link):
        import gevent

        if self.numeric:
            return
        while True:
            gevent.sleep(min(RERESOLVE_SILENT_SECONDS, link.watch.silent_after))
            if link.watch.silent:
                self.refresh(link)


def _format_peer(address):
    return format_address(address) if address is not None else "none"


def build_show_parser():
    p = OneLineParser(prog=program_name("vpn") + " show", allow_abbrev=False,
                      description="Show the state of a running vpn: peer, latest authenticated datagram, "
                                  "transfer, drops by reason, uptime. Asks it over its control socket.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-I", metavar="IFACE", type=_interface_name, default="tun0",
                       help="the vpn serving this tun device (default tun0)")
    where.add_argument("--control", metavar="PATH", help="the vpn serving this control socket (its --control)")
    p.add_argument("--json", action="store_true", help="machine-readable: the JSON object the vpn answers")
    return p


def show(argv):
    """`vpn show`: print a running vpn's status; exit 1 with one line if none answers."""
    import json

    from .control import ControlError, default_path, query
    from .status import format_status

    args = build_show_parser().parse_args(argv)
    path = args.control or default_path(args.I)
    try:
        status = query(path, what=None if args.control else args.I)
    except ControlError as e:
        print("%s: %s" % (program_name("vpn"), e), file=sys.stderr)
        return e.exit_status
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    try:
        text = format_status(status)
    except (KeyError, TypeError, ValueError):     # a vpn of another version: the JSON still works
        print("%s: %s answered a status this version cannot show; try --json" % (program_name("vpn"), path), file=sys.stderr)
        return 1
    print(text)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["show"]:        # a subcommand: the seed's command line always starts with a flag
        return show(argv[1:])
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli(lambda: _run(args), __name__)


if __name__ == "__main__":
    sys.exit(main())
