"""Forged "newer session" datagrams from the peer's own address (test_vpn_flood.py):
python flooder.py SRC SPORT DST DPORT RATE. Raw IPv4/UDP with checksum 0, RATE a second
spread over each millisecond; prints "flooding", then "sent N in S s" every half second."""
import random, socket, struct, sys, time
src, sport, dst, dport, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)      # we write the IP header
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
rng = random.Random(5)
ip_src, ip_dst = socket.inet_aton(src), socket.inet_aton(dst)
bodies = [rng.randbytes(rng.randrange(28, 300)) for _ in range(512)]
per_ms = rate // 1000
sent, start = 0, time.monotonic()
next_at = reported = start
print("flooding", flush=True)
while True:
    ahead_ms = int(time.time() * 1000) + 5000
    for _ in range(per_ms):
        payload = struct.pack(">Q", ahead_ms << 16 | rng.randrange(1 << 16)) + bodies[sent & 511]
        udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0)       # checksum 0: none
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0x4000, 64, 17, 0, ip_src, ip_dst)
        s.sendto(ip + udp + payload, (dst, 0))
        sent += 1
    next_at += 0.001
    delay = next_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if next_at - reported >= 0.5:
        reported = next_at
        print("sent %d in %.3f s" % (sent, time.monotonic() - start), flush=True)
