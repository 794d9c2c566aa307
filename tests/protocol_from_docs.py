"""The VPN protocol implemented from docs/protocol.md alone: no tomato_gevent code.

If this peer and a real bin/vpn understand each other, the page says enough to write another
implementation. Used by tests/unit/test_protocol_doc.py (the page's test vectors) and, run as
a program inside a network namespace, by tests/netns/test_protocol_doc.py:

    python -m tests.protocol_from_docs udp|tcp VPN_HOST:PORT OWN_HOST:PORT OWN_PASSWORD VPN_PASSWORD

It plays the peer of a bin/vpn whose tunnel address is 10.0.1.1 (ours: 10.0.1.2): sends a
keepalive and ICMP echo requests into the tunnel, and prints one JSON line with what came
back once the echo reply arrived (exit 0), or after 20 s without it (exit 1).
"""
import hashlib
import json
import os
import re
import select
import socket
import struct
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
HEADER = struct.Struct(">QI")           # session id (8), counter (4): nonce and associated data
PREFIX = struct.Struct(">QB")           # timestamp (8), flags (1): the plaintext before the packet
CHECKSUM_PARTIAL = 0x01                 # flag bit 0
TAG_SIZE = 16
OVERHEAD = HEADER.size + PREFIX.size + TAG_SIZE
LENGTH = struct.Struct(">H")            # TCP framing


def derive_key(password):
    return hashlib.scrypt(password.encode("utf-8"), salt=b"tomato-vpn v3 password", n=2 ** 15, r=8, p=1,
                          maxmem=64 * 2 ** 20, dklen=32)


def session_id(start_ms, random16):
    return start_ms << 16 | random16


def seal(key, session, counter, timestamp_ms, packet=b"", flags=0):
    header = HEADER.pack(session, counter)
    return header + AESGCM(key).encrypt(header, PREFIX.pack(timestamp_ms, flags) + packet, header)


def open_datagram(key, datagram):
    """(session id, counter, timestamp_ms, flags, packet); raises ValueError or InvalidTag."""
    if not OVERHEAD <= len(datagram) <= 65535:
        raise ValueError("bad size %d" % len(datagram))
    header = datagram[:HEADER.size]
    plain = AESGCM(key).decrypt(header, datagram[HEADER.size:], header)
    session, counter = HEADER.unpack(header)
    timestamp_ms, flags = PREFIX.unpack_from(plain)
    return session, counter, timestamp_ms, flags, plain[PREFIX.size:]


def complete_checksum(packet):
    """A packet received with flag bit 0: its TCP/UDP checksum completed as the page says."""
    packet = bytearray(packet)
    start = (packet[0] & 15) * 4 if packet[0] >> 4 == 4 else 40
    protocol = packet[9] if packet[0] >> 4 == 4 else packet[6]
    at = start + (16 if protocol == 6 else 6)
    value = checksum(bytes(packet[start:]))
    packet[at:at + 2] = struct.pack("!H", value or (0xFFFF if protocol == 17 else 0))
    return bytes(packet)


def frame(datagram):
    return LENGTH.pack(len(datagram)) + datagram


def vectors(text=None):
    """The page's test vectors: {name: value} from the text block under "Test vectors"."""
    text = DOC.read_text() if text is None else text
    block = re.search(r"^## Test vectors\n.*?```text\n(.*?)```", text, re.MULTILINE | re.DOTALL).group(1)
    return dict(re.match(r"(.+?)\s*=\s*(\S+)$", line).groups() for line in block.splitlines() if line.strip())


# -- the peer program -----------------------------------------------------------------
OURS, THEIRS = "10.0.1.2", "10.0.1.1"
ECHO_ID = 0x7a7a


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def echo_request(seq):
    icmp = struct.pack("!BBHHH", 8, 0, 0, ECHO_ID, seq) + b"from the docs"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0,
                     socket.inet_aton(OURS), socket.inet_aton(THEIRS))
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + icmp


def is_echo_reply(packet):
    return (len(packet) >= 28 and packet[0] >> 4 == 4 and packet[9] == 1 and packet[20] == 0
            and socket.inet_ntoa(packet[12:16]) == THEIRS and socket.inet_ntoa(packet[16:20]) == OURS
            and struct.unpack("!H", packet[24:26])[0] == ECHO_ID)


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def run_peer(mode, vpn, own, own_password, vpn_password):
    seal_key, open_key = derive_key(own_password), derive_key(vpn_password)
    now_ms = lambda: int(time.time() * 1000)                                  # noqa: E731
    session = session_id(now_ms(), int.from_bytes(os.urandom(2), "big"))
    counter = 0
    if mode == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(own)
        send = lambda datagram: sock.sendto(datagram, vpn)                   # noqa: E731
    else:
        sock = socket.create_connection(vpn, timeout=10)
        send = lambda datagram: sock.sendall(frame(datagram))                 # noqa: E731
    seen = {"keepalives": 0, "packets": 0, "sessions": [], "counters": [], "echo_reply": False}
    stream = b""

    def datagrams():
        nonlocal stream
        if mode == "udp":
            yield sock.recv(65536)
            return
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("vpn closed the connection")
        stream += data
        while len(stream) >= LENGTH.size and len(stream) >= LENGTH.size + LENGTH.unpack_from(stream)[0]:
            size = LENGTH.unpack_from(stream)[0]
            yield stream[LENGTH.size:LENGTH.size + size]
            stream = stream[LENGTH.size + size:]

    send(seal(seal_key, session, counter, now_ms()))                        # a keepalive first
    counter += 1
    deadline, next_request, seq = time.monotonic() + 20, 0.0, 0
    while time.monotonic() < deadline and not seen["echo_reply"]:
        if time.monotonic() >= next_request:
            seq += 1
            send(seal(seal_key, session, counter, now_ms(), echo_request(seq)))
            counter += 1
            next_request = time.monotonic() + 0.5
        if not select.select([sock], [], [], 0.1)[0]:
            continue
        for datagram in datagrams():
            their_session, their_counter, timestamp_ms, flags, packet = open_datagram(open_key, datagram)
            if flags & CHECKSUM_PARTIAL:
                packet = complete_checksum(packet)
            assert abs(timestamp_ms - now_ms()) < 10000, "timestamp outside 10 s"
            if their_session not in seen["sessions"]:
                seen["sessions"].append(their_session)
            seen["counters"].append(their_counter)
            seen["keepalives" if not packet else "packets"] += 1
            seen["echo_reply"] = seen["echo_reply"] or is_echo_reply(packet)
    print(json.dumps(seen))
    return 0 if seen["echo_reply"] else 1


if __name__ == "__main__":
    mode, vpn, own, own_password, vpn_password = sys.argv[1:6]
    sys.exit(run_peer(mode, address(vpn), address(own), own_password, vpn_password))
