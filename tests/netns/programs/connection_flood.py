"""RATE connections a second to ADDR:PORT, never a byte sent; the oldest 512 kept open, the
rest reset (SO_LINGER 0: no TIME_WAIT, ports are reused). Prints its rate once a second.

argv: ADDR PORT RATE
"""
import collections
import socket
import struct
import sys
import time

addr, port, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kept, made, failed = collections.deque(), 0, 0
start = reported = time.monotonic()
while True:
    now = time.monotonic()
    while made < (now - start) * rate:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.setblocking(False)
        failed += s.connect_ex((addr, port)) not in (0, 115)
        made += 1
        kept.append(s)
        if len(kept) > 512:
            kept.popleft().close()
    if now - reported >= 1:
        print("flooding: %d connections/s, %d failed" % (made / (now - start), failed), flush=True)
        reported = now
    time.sleep(0.001)
