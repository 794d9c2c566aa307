"""Run in the router: read the tun flip0, flip one payload byte of every EVERY-th IPv4 TCP data
segment (at most LIMIT of them) without fixing its checksum, write every packet back.
Prints "flipping" when the device is up and "flipped N of M" on SIGTERM.

argv: EVERY LIMIT
"""
import os
import signal
import sys

import pytun
every, limit = int(sys.argv[1]), int(sys.argv[2])
tun = pytun.TunTapDevice(name="flip0", flags=pytun.IFF_TUN | pytun.IFF_NO_PI)
tun.up()
flipped = segments = 0
signal.signal(signal.SIGTERM, lambda *a: (print("flipped %d of %d" % (flipped, segments), flush=True), os._exit(0)))
print("flipping", flush=True)
while True:
    packet = bytearray(tun.read(65536))
    if packet[0] >> 4 == 4 and packet[9] == 6:
        ihl = (packet[0] & 15) * 4
        start = ihl + (packet[ihl + 12] >> 4) * 4
        if len(packet) - start > 0:
            segments += 1
            if segments % every == 0 and flipped < limit:
                packet[start + (len(packet) - start) // 2] ^= 0x55     # checksum left as it was
                flipped += 1
    tun.write(bytes(packet))
