"""Assembly of a link: every part built here and handed to the next through its constructor
(wireguard-go style: nothing is wired by setting attributes afterwards).

  build_sessions(local_key, peer_key, pvt)  (sending, receiver): our SendSession (session ids
                                  from the clock and randomness) and the Receiver that knows
                                  it (our own session id coming back is a reflection)
  open_transport(kind, bind, ...) the --transport, counting into the link's drop counter;
                                  TCP gets the crossed-connection tie-break of the sessions
  build_link(...)                 the Link over a tun, that transport and those sessions
In this order: the CLI opens the transport before the tun device, so a port in use stops
the start before a device is created. The tests build links the same way.
"""
import logging
import os

from .link import SYSTEM_CLOCK, Link
from .mss import ceilings_for
from .session import PeerEndpoint, Receiver, SendSession, new_sealer
from .tcp import TcpTransport, open_tcp_listener
from .udp import UdpTransport, open_udp_socket

log = logging.getLogger(__name__)


def offloads_wanted(environ):
    """False when TOMATO_VPN_OFFLOAD=0: one system call per packet everywhere (no GSO/GRO,
    no virtio header on the tun)."""
    return environ.get("TOMATO_VPN_OFFLOAD", "1") != "0"


def random16():
    """16 random bits: the low part of a session id."""
    return int.from_bytes(os.urandom(2), "big")


def build_sessions(local_key, peer_key, pvt_seconds, clock=SYSTEM_CLOCK, random16=random16):
    """(sending, receiver): the send session sealing with local_key and the receiver opening
    with peer_key under -pvt."""
    def new_session_sealer(after):
        if after is not None:
            log.info("counter exhausted, started a new session")
        return new_sealer(local_key, int(clock.wall() * 1000), random16(), after=after)

    sending = SendSession(new_session_sealer)
    return sending, Receiver(peer_key, pvt_seconds, sending)


def open_transport(kind, bind, peer_address, offloads, receiver, drops, http_proxy=None, connect_target=None,
                   proxy_authorization=None):
    """The datagram transport of --transport, bound/listening on bind, counting into drops
    (a collections.Counter, the Link's drop counter too)."""
    if kind == "tcp":
        return TcpTransport(open_tcp_listener(bind), peer_address, http_proxy=http_proxy,
                            connect_target=connect_target, keep_outgoing=receiver.keeps_outgoing, drops=drops,
                            proxy_authorization=proxy_authorization)
    return UdpTransport(open_udp_socket(bind), offloads=offloads, drops=drops)


def build_link(args, peer_address, tun, transport, sending, receiver, drops, stop_event=None, clock=SYSTEM_CLOCK,
               silent_after=None, versions=None):
    """The Link: the peer endpoint (-pa/-d, -avt), the MSS ceilings (--mss-fix, by default
    from the device's MTU) and the parts built above; versions: a versions.VersionProbe that
    names the peer's older protocol in the log."""
    endpoint = PeerEndpoint(fixed=peer_address, forget_after=args.avt)
    return Link(tun, transport, sending, receiver, endpoint, drops, keepalive=args.keepalive, clock=clock,
                stop_event=stop_event, silent_after=silent_after, peer_host=args.pa[0] if args.pa else None,
                keep_warm=args.keep_warm, mss=ceilings_for(args.mss_fix, tun.current_mtu), versions=versions)
