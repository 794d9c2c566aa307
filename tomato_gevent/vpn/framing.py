"""Stream framing of the TCP transport (pure, no I/O).

On a TCP connection each datagram (a handshake message, messages.py, or a data
datagram, keypair.py, byte for byte as over UDP) is preceded by its length, 2 bytes
big-endian:

    +--------+----------------------------------------+--------+-----------
    | length | datagram (length bytes)                | length | ...
    |  (2)   | type, ...                              |  (2)   |
    +--------+----------------------------------------+--------+-----------

A length below SMALLEST_MESSAGE (no message is shorter: 0 included) or
above max_size is refused: BadPacket("bad frame length"), and the stream cannot be
resynchronised, so the caller closes the connection.

FrameSplitter keeps one receive buffer: the caller recv_into()s its free tail, then
frames() yields each complete datagram as a memoryview into the buffer (no copy per
frame); an incomplete frame at the end stays for the next receive (moved to the
front once, when the free tail runs short). frame_iovecs() lays headers and datagrams
out for one sendmsg of a whole batch.
"""
import struct

from ..errors import BadPacket
from .keypair import MAX_DATAGRAM_SIZE
from .messages import SMALLEST_MESSAGE

FRAME_HEADER_SIZE = 2
_LENGTH = struct.Struct(">H")


def frame_header(length):
    """The 2-byte header of a datagram of `length` bytes."""
    return _LENGTH.pack(length)


def frame(datagram):
    """Header + datagram as bytes (for tests; the transport sends frame_iovecs)."""
    return _LENGTH.pack(len(datagram)) + bytes(datagram)


def frame_iovecs(view, size, segment):
    """Buffers for one sendmsg of the datagrams laid out back to back in view[:size],
    each `segment` bytes except possibly the last: header, datagram, header, ..."""
    header = _LENGTH.pack(segment)
    iovecs = []
    append = iovecs.append
    full_end = size - size % segment
    for offset in range(0, full_end, segment):
        append(header)
        append(view[offset:offset + segment])
    if full_end < size:
        append(_LENGTH.pack(size - full_end))
        append(view[full_end:size])
    return iovecs


class FrameSplitter:
    """Receive buffer of one connection; splits it into datagrams without copying them."""

    def __init__(self, capacity=256 * 1024, min_size=SMALLEST_MESSAGE, max_size=MAX_DATAGRAM_SIZE):
        if capacity < FRAME_HEADER_SIZE + max_size:
            raise ValueError("capacity below one frame of max_size")
        self._buf = bytearray(capacity)
        self._view = memoryview(self._buf)
        self._min, self._max = min_size, max_size
        self._start = self._end = 0         # unconsumed bytes: _buf[_start:_end]

    @property
    def buffered(self):
        """Bytes received but not yet returned as frames (an incomplete frame)."""
        return self._end - self._start

    def free(self):
        """The writable tail to recv_into; never empty (room for at least one whole frame)."""
        if len(self._buf) - self._end < FRAME_HEADER_SIZE + self._max:
            # Move the incomplete frame to the front: at most one frame's bytes, once
            # per buffer's worth of data.
            pending = self._end - self._start
            self._buf[:pending] = bytes(self._view[self._start:self._end])    # may overlap: via a copy
            self._start, self._end = 0, pending
        return self._view[self._end:]

    def filled(self, n):
        """n bytes were written into free()."""
        self._end += n

    def feed(self, data):
        """Convenience (tests): copy data in as if received; returns the frames, as bytes."""
        out = []
        data = memoryview(data)
        while data:
            tail = self.free()
            n = min(len(tail), len(data))
            tail[:n] = data[:n]
            self.filled(n)
            data = data[n:]
            out.extend(bytes(f) for f in self.frames())
        return out

    def frames(self):
        """Yield each complete datagram as a memoryview (valid until the next free());
        BadPacket("bad frame length") for a length outside [min_size, max_size]."""
        view, start, end = self._view, self._start, self._end
        unpack_from, header_size = _LENGTH.unpack_from, FRAME_HEADER_SIZE
        min_size, max_size = self._min, self._max
        try:
            while end - start >= header_size:
                length = unpack_from(view, start)[0]
                if not min_size <= length <= max_size:
                    raise BadPacket("bad frame length")
                frame_end = start + header_size + length
                if frame_end > end:
                    break
                yield view[start + header_size:frame_end]
                start = frame_end
        finally:
            self._start = start
            if start == end:
                self._start = self._end = 0
