"""Small network helpers shared by every tool: one copy each."""
import functools
import ipaddress
import struct


def format_address(address):
    """(host, port, ...) -> 'host:port', IPv6 hosts in brackets ('[::1]:5000')."""
    host, port = address[0], address[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


@functools.lru_cache(maxsize=1024)
def ip_literal(text):
    """The ipaddress object for an IP literal (brackets and an IPv6 zone allowed), else None.

    Cached: the same few client and destination addresses come back on every connection
    (and every ping reply), and ipaddress parses in Python (microseconds); its objects are
    immutable, so sharing them is safe."""
    text = text.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def internet_checksum(data):
    """RFC 1071: one's complement of the one's complement sum of 16-bit words.

    Data that carries a correct checksum sums to 0 here.
    """
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def send_all(sock, data):
    """sock.sendall(data), in one send() when the kernel takes it all, as it almost always
    does: gevent's sendall costs six Python calls per call (a getsockopt among them) even
    then. A short send falls back to sendall for the rest, with its waits and timeout."""
    sent = sock.send(data)
    if sent != len(data):
        sock.sendall(memoryview(data)[sent:])
