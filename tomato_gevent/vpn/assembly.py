"""Assembly of a link: every part built here and handed to the next through its constructor
(wireguard-go style: nothing is wired by setting attributes afterwards).

  build_handshake(local_key, peer_key, pvt, endpoint, ...)  the v3 handshake (handshake.py)
                                  of the two password keys, sending its initiations to the
                                  PeerEndpoint (-pa, or learned with -d, -avt); it holds the
                                  keypairs the data path seals and opens with
  open_transport(kind, bind, ...) the --transport, counting into the link's drop counter;
                                  TCP gets the crossed-connection tie-break of the handshake
  build_link(...)                 the Link over a tun, that transport and that handshake
In this order: the CLI opens the transport before the tun device, so a port in use stops
the start before a device is created. The tests build links the same way.
"""
import logging
import os

from .handshake import NEW_HANDSHAKE_AFTER_SECONDS, Handshake
from .keypair import REKEY_AFTER_SECONDS
from .link import SYSTEM_CLOCK, Link
from .mss import ceilings_for
from .session import PeerEndpoint
from .tcp import TcpTransport, open_tcp_listener
from .udp import UdpTransport, open_udp_socket

log = logging.getLogger(__name__)


def offloads_wanted(environ):
    """False when TOMATO_VPN_OFFLOAD=0: one system call per packet everywhere (no GSO/GRO,
    no virtio header on the tun)."""
    return environ.get("TOMATO_VPN_OFFLOAD", "1") != "0"


def build_endpoint(peer_address, avt_seconds):
    """Where the peer is: fixed (-pa), or learned (-d) and forgotten after -avt."""
    return PeerEndpoint(fixed=peer_address, forget_after=avt_seconds)


def build_handshake(local_key, peer_key, pvt_seconds, endpoint, keepalive, rekey_after=REKEY_AFTER_SECONDS,
                    random_bytes=os.urandom):
    """The handshake of the two password keys (keyschedule.derive_password_key). With
    keepalives on, a peer silent for keepalive + NEW_HANDSHAKE_AFTER gets a new handshake
    (a restarted dynamic peer cannot start one itself)."""
    silence = keepalive + NEW_HANDSHAKE_AFTER_SECONDS if keepalive else None
    return Handshake(local_key, peer_key, pvt_seconds, random_bytes, endpoint=endpoint, rekey_after=rekey_after,
                     silence_rehandshake=silence)


def open_transport(kind, bind, peer_address, offloads, handshake, drops, http_proxy=None, connect_target=None,
                   proxy_authorization=None):
    """The datagram transport of --transport, bound/listening on bind, counting into drops
    (a collections.Counter, the Link's drop counter too)."""
    if kind == "tcp":
        return TcpTransport(open_tcp_listener(bind), peer_address, http_proxy=http_proxy,
                            connect_target=connect_target, keep_outgoing=handshake.keeps_outgoing, drops=drops,
                            proxy_authorization=proxy_authorization)
    return UdpTransport(open_udp_socket(bind), offloads=offloads, drops=drops)


def build_link(args, tun, transport, handshake, drops, stop_event=None, clock=SYSTEM_CLOCK, silent_after=None):
    """The Link over the parts built above, with the MSS ceilings (--mss-fix, by default from
    the device's MTU)."""
    return Link(tun, transport, handshake, handshake.endpoint, drops, keepalive=args.keepalive, clock=clock,
                stop_event=stop_event, silent_after=silent_after, peer_host=args.pa[0] if args.pa else None,
                keep_warm=args.keep_warm, mss=ceilings_for(args.mss_fix, tun.current_mtu))
