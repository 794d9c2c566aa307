"""vpn command lines: the seed's flags kept exactly, plus password files/env, --addr, --mtu,
--keepalive, --up/--down, --control; and `vpn show` asking a running vpn for its status.

    vpn -la [HOST]:PORT -lp PASS (-pa HOST:PORT | -d) -pp PASS [-I IFACE] [-pvt SEC] [-avt SEC]
        [--transport udp|tcp] [-v]
    vpn show [-I IFACE | --control PATH] [--json]

The two passwords (this side's -lp is the peer's -pp) key a handshake (CPace) that gives
fresh keys, one per direction, every two minutes; host B mirrors host A.
"""
import argparse
import collections
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys

import gevent
from gevent.event import Event

from ..cli_common import (OneLineParser, hostport_arg, number_arg, positive_float, print_output, program_name,
                          read_secret, run_cli, setup_logging)
from ..errors import ConfigError
from ..http1 import upstream_auth
from ..netutil import format_address
from ..sdnotify import notify
from .assembly import build_endpoint, build_handshake, build_link, offloads_wanted, open_transport
from .control import ControlError, ControlServer, default_path, query
from .endpoints import PeerResolver, resolve_endpoints, resolve_endpoints_patiently, sockaddr
from .hooks import HookFailed, hook_environment, run_hook
from .link import KEEPALIVE_SECONDS
from .keypair import OVERHEAD, REKEY_AFTER_SECONDS
from .keyschedule import derive_password_key
from .mss import MIN_MSS_FIX
from .scheduler import WARM_AFTER_TRAFFIC_SECONDS
from .status import format_status
from .tun import TunDevice, device_addresses

log = logging.getLogger(__name__)

CREATED_DEVICE_MTU = 1500 - 40 - 8 - OVERHEAD   # docs/operations.md#mtu: fits any 1500-byte path, IPv4 or IPv6
MAX_DEVICE_MTU = 65535 - 40 - 8 - OVERHEAD      # a sealed full-size packet still fits one UDP datagram


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


_mtu = number_arg(int, lambda value: 68 <= value <= MAX_DEVICE_MTU, "MTU {value} out of range 68-%d" % MAX_DEVICE_MTU)
_seconds_or_zero = number_arg(float, lambda value: 0 <= value < float("inf"), "{text} must be 0 (off) or more seconds")
_mss_fix = number_arg(int, lambda value: value == 0 or MIN_MSS_FIX <= value <= 65535,
                      "{text} must be 0 (off) or a packet size %d-65535" % MIN_MSS_FIX)


def build_parser():
    p = OneLineParser(
        prog=program_name("vpn"), allow_abbrev=False,
        description="Point-to-point encrypted VPN over UDP (or TCP) between two tun devices (AES-256-GCM). "
                    "Both passwords (this side's -lp is the peer's -pp) key a handshake that gives fresh "
                    "keys, one per direction, every two minutes.",
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
                   help="control socket for vpn show: a file, or @NAME for an abstract socket (default "
                        "@tomato/vpn-IFACE, an abstract socket of this network namespace)")
    p.add_argument("--keepalive", metavar="SEC", type=_seconds_or_zero, default=KEEPALIVE_SECONDS,
                   help="send an empty authenticated packet after SEC idle (0 = off, default %g)" % KEEPALIVE_SECONDS)
    p.add_argument("--keep-warm", metavar="SEC", type=_seconds_or_zero, default=WARM_AFTER_TRAFFIC_SECONDS,
                   help="after dense traffic (200 packet wake-ups a second), wait SEC in a 2 ms wake-up loop "
                        "that keeps the data path warm; steady light traffic (pings) is warmed once just "
                        "before each expected packet (0 = neither, default %g)"
                        % WARM_AFTER_TRAFFIC_SECONDS)
    p.add_argument("--mss-fix", metavar="BYTES", type=_mss_fix,
                   help="lower the MSS option of TCP SYNs crossing the tunnel, both ways, so that segments fit "
                        "BYTES-byte packets (MSS BYTES-40 for IPv4, BYTES-60 for IPv6), as OpenVPN's mssfix; "
                        "default: the device MTU; 0 = off")
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp",
                   help="udp (default): one UDP datagram per packet; tcp: the same sealed datagrams, "
                        "length-prefixed, over TCP connections on the same port (for networks that block "
                        "or throttle UDP; both sides must use it)")
    p.add_argument("--http-proxy", metavar="[USER:PASSWORD@]HOST:PORT", type=_http_proxy_arg,
                   help="with --transport tcp and -pa: reach the peer through this HTTP proxy (CONNECT; "
                        "with credentials, sent as Proxy-Authorization: Basic)")
    p.add_argument("--http-proxy-auth-file", metavar="FILE",
                   help="the --http-proxy's credentials, 'user:password' on the first line (instead of "
                        "in --http-proxy, which ps shows)")
    # For the tests only (several rekeys within a test run): not in --help.
    p.add_argument("--rekey-after", metavar="SEC", type=positive_float, default=REKEY_AFTER_SECONDS,
                   help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="debug log: session changes, address updates, dropped datagrams")
    return p


def _http_proxy_arg(text):
    try:
        userinfo, hostport = upstream_auth.split_userinfo(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return hostport_arg(hostport) + (userinfo,)


def check_passwords(local_password, peer_password):
    """Refuse an empty password, and one password for both directions: nothing in a datagram
    says which way it travels, so with equal passwords a host opens its own datagrams
    reflected back at it as if the peer had sent them."""
    for password, what in ((local_password, "local"), (peer_password, "peer")):
        if not password:
            raise ConfigError("the %s password is empty" % what)
    if local_password == peer_password:
        raise ConfigError("the local and peer passwords are equal: each direction needs its own password")


def _run(args, silent_after=None):
    local_password = read_secret(args.lp, args.local_password_file, "TOMATO_LOCAL_PASSWORD", "local password")
    peer_password = read_secret(args.pp, args.peer_password_file, "TOMATO_PEER_PASSWORD", "peer password")
    check_passwords(local_password, peer_password)
    args.http_proxy, proxy_authorization = upstream_auth.authorization(
        args.http_proxy, args.http_proxy_auth_file, "--http-proxy", "--http-proxy-auth-file",
        "HTTP proxy credentials")
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
            http_proxy = sockaddr(*args.http_proxy)
            bind, _ = resolve_endpoints(args.la, None)
            peer_address = args.pa
        offloads = offloads_wanted(os.environ)
        handshake = build_handshake(derive_password_key(local_password), derive_password_key(peer_password),
                                    args.pvt, build_endpoint(peer_address, args.avt), args.keepalive,
                                    rekey_after=args.rekey_after)
        drops = collections.Counter()
        transport = open_transport(args.transport, bind, peer_address, offloads, handshake, drops, http_proxy,
                                   args.pa, proxy_authorization)
        try:
            with TunDevice(args.I, addrs=args.addr, mtu=args.mtu, vnet_hdr=offloads, tso=offloads,
                           created_mtu=CREATED_DEVICE_MTU) as tun:
                link = build_link(args, tun, transport, handshake, drops, stop_requested, silent_after=silent_after)
                if args.pa is not None and http_proxy is None:
                    peer_name = PeerResolver(args.pa, bind)
                return _serve(args, link, peer_name, stop_requested, http_proxy)
        finally:
            transport.close()
    finally:
        for handler in handlers:
            handler.cancel()


def _serve(args, link, peer_name, stop_requested, http_proxy=None):
    """Run a built link on its configured device: --up, the control socket, the link
    until a stop, the stop line, --down."""
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
    env = hook_environment(script_type, tun.name, tun.current_mtu(), device_addresses(tun.name), base=os.environ)
    return run_hook("--" + script_type, command, env, stop_requested)


@contextlib.contextmanager
def _control_server(path, status):
    """The control socket while the link runs, or (with a warning) none: `vpn show`
    is a convenience the tunnel itself does not depend on."""
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


def build_show_parser():
    p = OneLineParser(prog=program_name("vpn") + " show", allow_abbrev=False,
                      description="Show the state of a running vpn: peer, latest authenticated datagram, "
                                  "transfer, drops by reason, uptime. Asks it over its control socket.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-I", metavar="IFACE", type=_interface_name, default="tun0",
                       help="the vpn serving this tun device (default tun0)")
    where.add_argument("--control", metavar="PATH", help="the vpn serving this control socket (its --control; "
                                                         "the default, @tomato/vpn-IFACE, is per network namespace)")
    p.add_argument("--json", action="store_true", help="machine-readable: the JSON object the vpn answers")
    return p


def show(argv):
    """`vpn show`: print a running vpn's status; exit 1 with one line if none answers."""
    args = build_show_parser().parse_args(argv)
    path = args.control or default_path(args.I)
    try:
        status = query(path, what=None if args.control else args.I)
    except ControlError as e:
        print("%s: %s" % (program_name("vpn"), e), file=sys.stderr)
        return e.exit_status
    if args.json:
        return print_output(json.dumps(status, indent=2))
    try:
        text = format_status(status)
    except (KeyError, TypeError, ValueError):     # a vpn of another version: the JSON still works
        print("%s: %s answered a status this version cannot show; try --json" % (program_name("vpn"), path), file=sys.stderr)
        return 1
    return print_output(text)


def show_arguments(argv):
    """show's arguments when argv asks for `vpn show`: "show" first (the seed's command line
    always starts with a flag), or after show's own options (`vpn --control PATH show`)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "show":
            return argv[:i] + argv[i + 1:]
        if word in ("-I", "--control"):
            i += 2
        elif word == "--json" or word.startswith("--control=") or (word.startswith("-I") and len(word) > 2):
            i += 1
        else:
            return None
    return None


def main(argv=None, silent_after=None):
    """silent_after: seconds without an authenticated datagram before the peer counts as
    silent (default peerwatch.silence_threshold(--keepalive), at least 60 s): a program that
    runs the vpn may shorten it (the netns tests, tests/netns/vpn_quick_silence.py)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    show_argv = show_arguments(argv)
    if show_argv is not None:
        return show(show_argv)
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli(lambda: _run(args, silent_after), __name__)


if __name__ == "__main__":
    sys.exit(main())
