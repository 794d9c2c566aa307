"""Hostile and idle connections to the TCP transport (test_vpn_tcp.py):
python tcp_junk.py ADDR PORT. Opens 20 idle connections, sends three kinds of garbage on
three more, prints how many of those the peer closed, and holds the idle ones open."""
import random, socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
idle = [socket.create_connection((addr, port), timeout=5) for _ in range(20)]
rnd = random.Random(9)
garbage = [
    b"\x00\x05" + rnd.randbytes(5),             # a length no datagram has
    b"\x00\x64" + rnd.randbytes(100),           # a frame that does not open
    b"\xff\xff" + rnd.randbytes(70000),         # over the untrusted byte budget
]
closed = 0
for data in garbage:
    s = socket.create_connection((addr, port), timeout=5)
    try:
        s.sendall(data)
        closed += s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        closed += 1
    except socket.timeout:
        pass
    s.close()
print("garbage connections closed by the peer:", closed, flush=True)
time.sleep(60)
