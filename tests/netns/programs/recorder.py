"""Record every UDP payload to or from a port on an interface, both directions, until SIGTERM.

    python recorder.py IFACE PORT OUTFILE   (test_vpn_handshake.py)

One line per datagram, hex, in the order seen (AF_PACKET with ETH_P_ALL sees both
directions, before any checksum check, as a sniffer on the wire would). Prints "recording" when it listens and
"recorded N" when it stops.
"""
import signal
import socket
import struct
import sys


def main(iface, port, outfile):
    # ETH_P_ALL: a socket bound to ETH_P_IP sees only what arrives, not what the host sends.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0003))
    sock.bind((iface, 0))
    sock.settimeout(0.2)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    got = []
    print("recording", flush=True)
    while not stop:
        try:
            packet, address = sock.recvfrom(65536)
        except socket.timeout:
            continue
        if address[1] != 0x0800 or packet[9] != 17:        # IPv4, UDP
            continue
        ihl = (packet[0] & 15) * 4
        source_port, destination_port = struct.unpack_from("!HH", packet, ihl)
        if port in (source_port, destination_port):
            got.append(packet[ihl + 8:].hex())
    with open(outfile, "w") as f:
        f.write("\n".join(got))
    print("recorded", len(got), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
