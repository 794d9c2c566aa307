"""The chunked transfer coding (RFC 9112 7.1), pure: no I/O.

    payload piece --encode_chunk(piece)--> one chunk; LAST_CHUNK ends the body
    chunked bytes --ChunkedDecoder.feed(data)--> payload pieces; .done, .unused (bytes past
                  the end); chunk-size lines over MAX_CHUNK_LINE_BYTES and trailer sections
                  over MAX_TRAILER_BYTES are RemoteProtocolError(status_hint), as is bad syntax
"""
import re

from ..errors import RemoteProtocolError
from .http import MAX_HEAD_BYTES

MAX_CHUNK_LINE_BYTES = 4 * 1024     # one chunk-size line incl. extensions
MAX_TRAILER_BYTES = MAX_HEAD_BYTES  # trailer section of a chunked body (discarded)
LAST_CHUNK = b"0\r\n\r\n"

_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")


def encode_chunk(piece):
    """One chunk of the chunked coding; empty pieces are skipped (they would end the body)."""
    n = len(piece)
    if not n:
        return b""
    return b"%x\r\n%s\r\n" % (n, piece)


class ChunkedDecoder:
    """Incremental decoder of the chunked transfer coding (RFC 9112 7.1).

    feed(data) returns the payload pieces found in data (memoryview slices of it, so
    use them before the next recv into the same buffer); .done turns True after the
    last chunk and the trailer section, which is discarded; .unused then holds the
    bytes of data past the end (the next message on a persistent connection).
    Raises RemoteProtocolError(status_hint) on bad syntax or oversized lines.
    """

    _SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)

    def __init__(self, status_hint=400):
        self._state = self._SIZE
        self._remaining = 0
        self._line = bytearray()     # partial size / CRLF / trailer line
        self._trailer_bytes = 0
        self._status_hint = status_hint
        self.unused = b""

    @property
    def done(self):
        return self._state == self._DONE

    def _bad(self, msg):
        return RemoteProtocolError("bad chunked body: " + msg, self._status_hint)

    def _take_line(self, view, pos, limit):
        """Collect one line (at most `limit` bytes before CRLF) into self._line.

        Returns (line without CRLF, position after its LF), or (None, end of view) when
        the line continues in the next feed.
        """
        room = limit + 1 - len(self._line)          # + 1 for a CR
        window = bytes(view[pos:pos + room + 1])    # bounded copy: never the whole buffer
        end = window.find(b"\n")
        if end < 0:
            if len(window) > room:
                raise self._bad("line longer than %d bytes" % limit)
            self._line += window
            return None, len(view)
        self._line += window[:end]
        line = bytes(self._line)
        self._line.clear()
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > limit:
            raise self._bad("line longer than %d bytes" % limit)
        return line, pos + end + 1

    def feed(self, data):
        view = memoryview(data)
        n = len(view)
        pos = 0
        pieces = []
        while pos < n:
            state = self._state
            if state == self._DATA:
                take = min(self._remaining, n - pos)
                pieces.append(view[pos:pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = self._DATA_END
            elif state == self._SIZE:
                line, pos = self._take_line(view, pos, MAX_CHUNK_LINE_BYTES)
                if line is None:
                    break
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None:
                    raise self._bad("malformed chunk size line %r" % line[:40])
                self._remaining = int(match.group(1), 16)
                self._state = self._DATA if self._remaining else self._TRAILER
            elif state == self._DATA_END:
                line, pos = self._take_line(view, pos, 0)
                if line is None:
                    break
                if line:
                    raise self._bad("chunk data not followed by CRLF")
                self._state = self._SIZE
            elif state == self._TRAILER:
                line, pos = self._take_line(view, pos, MAX_TRAILER_BYTES)
                if line is None:
                    break
                self._trailer_bytes += len(line) + 2
                if self._trailer_bytes > MAX_TRAILER_BYTES:
                    raise self._bad("trailer section too large")
                if not line:
                    self._state = self._DONE
            else:  # _DONE
                break
        if self._state == self._DONE:
            self.unused = bytes(view[pos:])
        return pieces
