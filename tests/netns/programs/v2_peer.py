"""What an end of protocol v2 sends (test_vpn_handshake.py): python v2_peer.py PORT sends five v2
keepalives sealed with -lp pwd2 from 10.9.0.2:PORT to 10.9.0.1:PORT, 0.2 s apart, and prints "sent"."""
import socket, struct, sys, time
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
key = Scrypt(salt=b"tomato-vpn v2 password", length=32, n=2 ** 15, r=8, p=1).derive(b"pwd2")
session = int(time.time() * 1000) << 16 | 0xBEEF
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.9.0.2", int(sys.argv[1])))
for counter in range(5):              # what a v2 end sends: keepalives (header = nonce = aad)
    header = struct.pack(">QI", session, counter)
    body = AESGCM(key).encrypt(header, struct.pack(">Q", int(time.time() * 1000)), header)
    s.sendto(header + body, ("10.9.0.1", int(sys.argv[1])))
    time.sleep(0.2)
print("sent", flush=True)
