"""Where an HTTP/1.x head ends, the careful way (pure, no I/O): leading blank lines skipped,
bare LF line ends accepted and brought to CRLF (RFC 9112 2.2), MAX_HEAD_BYTES enforced.
http.py's parsers come here when the usual head (CRLF throughout, seen whole at the first
look: http._open_usual) is not what they got, and RequestReader skips blank lines with it.

    split_head(buf, start, status_hint_too_big, what) -> (first line, CRLF field block, length) | None
    find_head_end(buf, start, first) -> index past the blank line | -1
    skip_blank_lines(buf) -> offset of the first byte after leading CRLF / LF
"""
import re

from ..errors import RemoteProtocolError

# -- implementation limits ------------------------------------------------------
MAX_HEAD_BYTES = 64 * 1024          # request/response head incl. the blank line (431 above it)

CR_LF = (b"\r", b"\n")
_BLANK_LINES = re.compile(rb"(?:\r?\n)*")


def find_head_end(buf, start, first):
    """Index just past the blank line ending a head that starts at `first`, or -1.

    `start` is how far an earlier call searched. Accepts bare LF (RFC 9112 2.2).
    """
    start = max(start - 3, first)
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start, crlf + 2 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf + 2
    if crlf >= 0:
        return crlf + 3
    return -1


def skip_blank_lines(buf):
    """Offset of the first byte after leading CRLF / LF (RFC 9112 2.2 robustness)."""
    if buf[:1] not in CR_LF:       # the usual case: no regex
        return 0
    return _BLANK_LINES.match(buf).end()


def split_head(buf, start, status_hint_too_big, what):
    """(first line, field block with CRLF line ends, head length) or None; enforces
    MAX_HEAD_BYTES. A head with bare LF line ends (RFC 9112 2.2) is brought to CRLF."""
    if not start and buf[:1] not in CR_LF:
        # The usual case: a head seen whole at the first look, CRLF throughout.
        end = buf.find(b"\r\n\r\n")
        if 0 < end <= MAX_HEAD_BYTES - 4:
            head = bytes(buf[:end + 2])
            if head.count(b"\n") == head.count(b"\r\n"):
                line_end = head.find(b"\r\n")
                return head[:line_end], head[line_end + 2:], end + 4
    skip = skip_blank_lines(buf)
    if skip == len(buf):
        if skip > MAX_HEAD_BYTES:
            raise RemoteProtocolError("%s head larger than %d bytes" % (what, MAX_HEAD_BYTES),
                                      status_hint_too_big)
        return None
    end = find_head_end(buf, start, skip)
    if end > MAX_HEAD_BYTES or (end < 0 and len(buf) > MAX_HEAD_BYTES):
        raise RemoteProtocolError("%s head larger than %d bytes" % (what, MAX_HEAD_BYTES),
                                  status_hint_too_big)
    if end < 0:
        return None
    head = bytes(buf[skip:end])
    line_end = head.find(b"\n")
    if head.count(b"\n") == head.count(b"\r\n"):      # CRLF throughout: the usual case
        return head[:line_end - 1], head[line_end + 1:-2], end
    # The last two elements are the blank line's remains; strip CR of every line.
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")[:-2]]
    return lines[0], b"".join([line + b"\r\n" for line in lines[1:]]), end
