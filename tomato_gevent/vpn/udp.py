"""The UDP transport: one sealed datagram per UDP datagram, with Linux's GSO/GRO batching.

  send_batch   one sendmsg with UDP_SEGMENT (GSO) for a run of equal-size datagrams
               laid out back to back, else one sendto each; a kernel that refuses
               GSO is remembered and not asked again
  receiver     recvmsg_into with UDP_GRO (the kernel hands over several datagrams at
               once, split by the gso_size control message) or recvfrom_into, until
               EAGAIN, DRAIN_BATCH receives or DRAIN_DATAGRAMS datagrams
Each datagram on the wire is exactly one sealed packet: offloads change the number
of system calls, not the protocol. They are used when the caller wants them and the
kernel accepts them (probed at start), with a plain sendto/recvfrom fallback.
The socket is the C type (_socket): the gevent wrapper would add a Python layer per
packet; waiting for room to send goes through a libev io watcher of the hub.
"""
import _socket
import errno
import logging
import struct
import time

from gevent import get_hub

from ..netutil import format_address
from .keypair import MAX_DATAGRAM_SIZE
from .sockets import open_bound_socket
from .transport import DatagramTransport

log = logging.getLogger(__name__)

SOCKET_BUFFER_BYTES = 4 * 1024 * 1024   # absorbs bursts; rmem_max/wmem_max permitting
DRAIN_BATCH = 64                        # receives per drain before yielding to the other direction
# Datagrams per drain: what the tun answers to the packets written (TCP ACKs, SACKs after a
# loss) waits until the drain ends, and 64 GRO receives could hold ~2 900 datagrams, several
# ms of work; under loss TCP's throughput falls with the round-trip time that adds.
DRAIN_DATAGRAMS = 128

# Linux UDP offloads (include/uapi/linux/udp.h); Python's socket module lacks the names.
SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
GSO_MAX_SEGMENTS = 64                   # kernel's UDP_MAX_SEGMENTS (older kernels)
GSO_MAX_BYTES = 65000                   # one GSO send stays below the 64 KiB IP datagram limit
GRO_BUFFER_BYTES = 65536 * 2            # a coalesced receive is at most 64 KiB
_GRO_CMSG_SPACE = _socket.CMSG_SPACE(4)
_GSO_SIZE = struct.Struct("=H")
_GRO_SIZE = struct.Struct("=i")
_GSO_FATAL_ERRNOS = (errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP)   # the device/kernel cannot: stop using it

_WRITE = 2                              # libev io watcher event


def open_udp_socket(address):
    """Bound non-blocking UDP socket for a sockaddr tuple (IPv4 or IPv6, dual-stack for v6)."""
    buffers = [(_socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES, False)
               for option in (_socket.SO_SNDBUF, _socket.SO_RCVBUF)]
    return open_bound_socket(address, _socket.SOCK_DGRAM, "bind UDP", buffers)


def enable_offloads(sock):
    """(gso, gro): which UDP offloads this kernel accepts on sock (GRO is switched on here)."""
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
        gso = True
    except OSError:
        gso = False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        gro = True
    except OSError:
        gro = False
    return gso, gro


class UdpTransport(DatagramTransport):
    """A bound UDP socket as the link's datagram transport (see transport.py)."""

    name = "udp"
    max_batch_bytes = GSO_MAX_BYTES
    max_batch_count = GSO_MAX_SEGMENTS

    def __init__(self, sock, offloads=True, drops=None):
        super().__init__(log, drops)
        self.sock = sock
        self.gso, self.gro = enable_offloads(sock) if offloads else (False, False)
        self._writable = get_hub().loop.io(sock.fileno(), _WRITE)

    def fileno(self):
        return self.sock.fileno()

    def local_address(self):
        return self.sock.getsockname()

    def describe(self, address):
        return format_address(address)

    def start(self, announce):
        log.debug("UDP offloads: GSO %s, GRO %s", "on" if self.gso else "off", "on" if self.gro else "off")

    def close(self):
        self._writable.close()
        self.sock.close()

    # -- send ------------------------------------------------------------------------
    def _send_error(self, e, address, count=1):
        self.drops["send error"] += count
        self.warn(("send", e.errno), "cannot send to %s: %s", format_address(address), e.strerror)

    def send(self, view, address):
        """sendto, waiting while the socket buffer is full; errors counted, never fatal."""
        while True:
            try:
                self.sock.sendto(view, address)
                self.sent += 1
                self.sent_bytes += len(view)
                return
            except BlockingIOError:
                get_hub().wait(self._writable)
            except OSError as e:
                self._send_error(e, address)
                return

    def send_batch(self, view, size, segment, count, address):
        """Send count sealed datagrams laid out back to back in view[:size], all segment
        bytes long except possibly the last: one GSO sendmsg, else one sendto each."""
        if count > 1 and self.gso:
            while True:
                try:
                    self.sock.sendmsg([view[:size]], [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(segment))], 0, address)
                    self.sent += count
                    self.sent_bytes += size
                    return
                except BlockingIOError:
                    get_hub().wait(self._writable)
                except OSError as e:
                    if e.errno in _GSO_FATAL_ERRNOS:
                        self.gso = False
                        log.info("UDP segmentation offload refused (%s): one datagram per send from now on",
                                 e.strerror)
                    elif e.errno != errno.EINVAL:    # EINVAL: e.g. segment above the path MTU; retry plainly
                        self._send_error(e, address, count)
                        return
                    break
        for offset in range(0, size, segment):
            self.send(view[offset:min(offset + segment, size)], address)

    def reply_batch(self, view, size, segment, count, source):
        self.send_batch(view, size, segment, count, source)

    # -- receive ---------------------------------------------------------------------
    def receiver(self, deliver, wall=time.time, mono=time.monotonic):
        """receive(): recv until EAGAIN, DRAIN_BATCH receives or DRAIN_DATAGRAMS datagrams,
        deliver() each datagram (a GRO receive holds several); True when the socket was drained."""
        buf = bytearray(GRO_BUFFER_BYTES)
        view = memoryview(buf)
        bufs = [view]
        sock, drops, gro = self.sock, self.drops, self.gro
        debug = log.isEnabledFor(logging.DEBUG)

        def receive():
            delivered = 0
            for _ in range(DRAIN_BATCH):
                try:
                    if gro:
                        total, ancdata, flags, address = sock.recvmsg_into(bufs, _GRO_CMSG_SPACE)
                        if flags & _socket.MSG_TRUNC:
                            drops["truncated"] += 1
                            continue
                        segment = total
                        for level, kind, data in ancdata:
                            if level == SOL_UDP and kind == UDP_GRO:
                                segment = _GRO_SIZE.unpack(data)[0]
                    else:
                        total, address = sock.recvfrom_into(buf, MAX_DATAGRAM_SIZE + 1)
                        segment = total
                except BlockingIOError:
                    return True
                except OSError as e:    # e.g. ECONNREFUSED reported from an earlier send
                    drops["receive error"] += 1
                    if debug:
                        log.debug("receive error: %s", e.strerror)
                    continue
                now_mono = mono()
                now_ms = int(wall() * 1000)
                if segment <= 0:
                    segment = total or 1
                received = view[:total]
                for offset in range(0, total or 1, segment):
                    deliver(received[offset:offset + segment], address, now_ms, now_mono)  # last may be shorter
                delivered += total // segment + 1
                if delivered >= DRAIN_DATAGRAMS:
                    return False
            return False

        return receive
