"""ICMP that is not an answer to bin/ping, sent on loopback while it runs (test_ping.py):
python icmp_injector.py IDENT SECONDS. Other identifiers, never-sent sequences, corrupted
and truncated packets, errors about other requests; prints "rounds N" at the end."""
import socket
import struct
import sys
import time

from icmp_packets import icmp

ident, seconds = int(sys.argv[1]), float(sys.argv[2])

def quoted_request(req_ident, seq):
    request = icmp(8, 0, (req_ident << 16) | seq, bytes(range(8)))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(request), 0, 0, 64, 1, 0,
                         socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
    return header + request

payload = bytes(i & 0xFF for i in range(56))
other = ident ^ 0x5A5A
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
deadline, rounds = time.monotonic() + seconds, 0
while time.monotonic() < deadline:
    for seq in range(1, 7):
        for packet in (
            icmp(0, 0, (other << 16) | seq, payload),               # someone else's replies
            icmp(0, 0, (ident << 16) | (seq + 4000), payload),      # our identifier, never-sent sequence
            icmp(0, 0, (ident << 16) | seq, payload, good=False),   # our request's reply, corrupted
            icmp(0, 0, (ident << 16) | seq)[:5],                    # truncated
            icmp(3, 1, 0, quoted_request(other, seq)),              # error about someone else's request
            icmp(3, 1, 0, quoted_request(ident, seq + 4000)),       # error about a request never sent
            icmp(3, 1, 0, quoted_request(ident, seq)[:24]),         # error with a cut-off quote
            icmp(13, 0, 0, bytes(12)),                              # timestamp request
        ):
            s.sendto(packet, ("127.0.0.1", 0))
    rounds += 1
    time.sleep(0.01)
print("rounds", rounds, flush=True)
