"""The start of the packet-writing programs icmp_injector.py and icmp_forger.py: an ICMP
message with its checksum (written out again rather than imported from the package, so
that these programs test the codec, not use it)."""
import struct


def checksum(data):
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp(kind, code, rest, body=b"", good=True):
    message = struct.pack("!BBHI", kind, code, 0, rest) + body
    value = checksum(message) if good else checksum(message) ^ 0x5555
    return message[:2] + struct.pack("!H", value) + message[4:]
