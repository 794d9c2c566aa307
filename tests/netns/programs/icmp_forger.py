"""A host on the path that answers every echo request to TARGET at once from its own
address (test_ping.py): python icmp_forger.py PINGER TARGET ELSEWHERE. A reply for even
sequences, an ICMP error quoting the request as if sent to ELSEWHERE for odd ones."""
import socket
import struct
import sys

from icmp_packets import icmp

pinger, target, elsewhere = sys.argv[1:4]

sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
sniffer.bind(("veth0", 0))
sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
print("forging", flush=True)
while True:
    packet = sniffer.recv(65535)
    header_size = (packet[0] & 0x0F) * 4
    request = packet[header_size:]
    if packet[9] != 1 or packet[16:20] != socket.inet_aton(target) or request[0] != 8:
        continue
    ident, seq = struct.unpack_from("!HH", request, 4)
    if seq % 2:  # an ICMP error quoting the request, as if it had gone elsewhere
        quote = packet[:16] + socket.inet_aton(elsewhere) + packet[20:header_size] + request[:8]
        forged = icmp(3, 1, 0, quote)
    else:  # a reply with the request's identifier, sequence and payload
        forged = icmp(0, 0, (ident << 16) | seq, request[8:])
    sender.sendto(forged, (pinger, 0))
    print("forged", "error" if seq % 2 else "reply", seq, flush=True)
