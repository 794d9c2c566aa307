"""The VPN protocol (v3) implemented from docs/protocol.md alone: no tomato_gevent code.

If this peer and a real bin/vpn understand each other, the page says enough to write another
implementation. Libraries only for the primitives the page names: pysodium (libsodium's
ristretto255), cryptography (HKDF-SHA-512, AES-256-GCM), hashlib (SHA-512, BLAKE2s, scrypt).
Used by tests/unit/test_protocol_doc.py (the page's test vectors) and, run as a program inside
a network namespace, by tests/netns/test_protocol_doc.py:

    python -m tests.protocol_from_docs udp|tcp VPN_HOST:PORT OWN_HOST:PORT OWN_PASSWORD VPN_PASSWORD

It plays the initiator towards a bin/vpn whose tunnel address is 10.0.1.1 (ours: 10.0.1.2):
a handshake, then ICMP echo requests into the tunnel; it prints one JSON line with what came
back once the echo reply arrived (exit 0), or after 20 s without it (exit 1).
"""
import hashlib
import hmac
import json
import os
import re
import select
import socket
import struct
import sys
import time
from pathlib import Path

import pysodium
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
INITIATION, RESPONSE, CONFIRMATION, DATA = 0x31, 0x32, 0x33, 0x30
LABEL = b"tomato-vpn v3"
MAC1_KEY = hashlib.blake2s(LABEL + b" mac1").digest()
DATA_HEADER = struct.Struct(">BB2xIQ")      # type, flags, reserved, receiver index, counter
CHECKSUM_PARTIAL = 0x01                     # flag bit 0
LENGTH = struct.Struct(">H")                # TCP framing


def derive_key(password):
    """Kp: scrypt of the password (UTF-8)."""
    return hashlib.scrypt(password.encode("utf-8"), salt=LABEL + b" password", n=2 ** 15, r=8, p=1,
                          maxmem=64 * 2 ** 20, dklen=32)


def prepend_len(data):
    length, out = len(data), b""
    while True:
        low, length = length & 0x7F, length >> 7
        out += bytes([low | 0x80 if length else low])
        if not length:
            return out + data


def lv_cat(*parts):
    return b"".join(prepend_len(p) for p in parts)


def mac(key, data):
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def generator(prs, sid):
    dsi = b"CPaceRistretto255"
    zpad = max(0, 128 - 1 - len(prepend_len(prs)) - len(prepend_len(dsi)))
    return pysodium.crypto_core_ristretto255_from_hash(hashlib.sha512(lv_cat(dsi, prs, bytes(zpad), LABEL, sid)).digest())


def initiation(index, timestamp_ms, sid, share):
    body = struct.pack(">B3xIQ", INITIATION, index, timestamp_ms) + sid + share
    body += mac(MAC1_KEY, body)
    return body + bytes(16)                 # mac2: no cookie


def handshake_keys(sid, k, ya, ada, yb, adb):
    """(ISK, Ta, Tb, key_i2r, key_r2i)."""
    isk = hashlib.sha512(lv_cat(b"CPaceRistretto255_ISK", sid, k) + lv_cat(ya, ada) + lv_cat(yb, adb)).digest()
    mac_key = hashlib.sha512(b"CPaceMac" + sid + isk).digest()
    ta = hmac.digest(mac_key, lv_cat(ya, ada), "sha512")[:16]
    tb = hmac.digest(mac_key, lv_cat(yb, adb), "sha512")[:16]
    keys = [HKDF(hashes.SHA512(), 32, LABEL, label).derive(isk)
            for label in (b"initiator to responder", b"responder to initiator")]
    return isk, ta, tb, keys[0], keys[1]


def confirmation(receiver, ta):
    return struct.pack(">B3xI", CONFIRMATION, receiver) + ta


def seal(key, receiver, counter, payload=b"", flags=0):
    header = DATA_HEADER.pack(DATA, flags, receiver, counter)
    return header + AESGCM(key).encrypt(header[4:], payload, header)


def open_data(key, datagram):
    """(receiver index, counter, flags, payload); raises ValueError or InvalidTag."""
    if not 32 <= len(datagram) <= 65535 or datagram[0] != DATA:
        raise ValueError("not a data datagram")
    _, flags, receiver, counter = DATA_HEADER.unpack_from(datagram)
    return receiver, counter, flags, AESGCM(key).decrypt(datagram[4:16], datagram[16:], datagram[:16])


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
    prs = lv_cat(derive_key(own_password), derive_key(vpn_password))      # we initiate: our -lp first
    if mode == "udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(own)
        send = lambda datagram: sock.sendto(datagram, vpn)                   # noqa: E731
    else:
        sock = socket.create_connection(vpn, timeout=10)
        send = lambda datagram: sock.sendall(frame(datagram))                 # noqa: E731
    seen = {"handshake": False, "keepalives": 0, "packets": 0, "counters": [], "echo_reply": False}
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

    index, sid = int.from_bytes(os.urandom(4), "big"), os.urandom(16)
    scalar = bytearray(os.urandom(32))
    scalar[31] &= 0x0F
    scalar = bytes(scalar)
    ya = pysodium.crypto_scalarmult_ristretto255(scalar, generator(prs, sid))
    message = initiation(index, int(time.time() * 1000), sid, ya)
    send(message)
    keys = None
    counter = 0
    deadline, next_request, seq = time.monotonic() + 20, 0.0, 0
    while time.monotonic() < deadline and not seen["echo_reply"]:
        if keys is not None and time.monotonic() >= next_request:
            seq += 1
            send(seal(keys["send"], keys["receiver"], counter, echo_request(seq)))
            counter += 1
            next_request = time.monotonic() + 0.5
        if not select.select([sock], [], [], 0.1)[0]:
            continue
        for datagram in datagrams():
            if datagram[0] == RESPONSE and keys is None and len(datagram) == 76:
                assert mac(MAC1_KEY, datagram[:60]) == datagram[60:], "response mac1"
                sender, receiver = struct.unpack_from(">II", datagram, 4)
                assert receiver == index
                yb, tb = datagram[12:44], datagram[44:60]
                k = pysodium.crypto_scalarmult_ristretto255(scalar, yb)
                _, ta, expected_tb, i2r, r2i = handshake_keys(sid, k, ya, message[:32], yb, datagram[:12])
                send(confirmation(sender, ta))
                assert hmac.compare_digest(tb, expected_tb), "the passwords do not match"
                keys = {"send": i2r, "open": r2i, "receiver": sender}
                seen["handshake"] = True
            elif datagram[0] == DATA and keys is not None:
                receiver, their_counter, flags, packet = open_data(keys["open"], datagram)
                assert receiver == index
                if flags & CHECKSUM_PARTIAL:
                    packet = complete_checksum(packet)
                seen["counters"].append(their_counter)
                seen["keepalives" if not packet else "packets"] += 1
                seen["echo_reply"] = seen["echo_reply"] or is_echo_reply(packet)
    print(json.dumps(seen))
    return 0 if seen["echo_reply"] else 1


if __name__ == "__main__":
    mode, vpn, own, own_password, vpn_password = sys.argv[1:6]
    sys.exit(run_peer(mode, address(vpn), address(own), own_password, vpn_password))
