#!/usr/bin/env python3
"""Open N TCP connections to HOST:PORT, print "connected N", hold them until killed.

With a fourth argument TARGET (host:port) each connection first opens a CONNECT tunnel
to TARGET through the proxy at HOST:PORT (and waits for its 200); otherwise it sends
nothing. Used by bench/proxy_bench.py (run inside the bench namespace) to measure a
proxy's memory with many idle clients or idle tunnels.
"""
import signal
import socket
import sys


def open_tunnel(sock, target):
    sock.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), target.encode()))
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(4096)
        if not data:
            raise SystemExit("proxy closed the connection instead of answering CONNECT")
        answer += data
    if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        raise SystemExit("CONNECT refused: %r" % answer.split(b"\r\n", 1)[0])


def main(host, port, count, target=None):
    conns = []
    for _ in range(count):
        conns.append(socket.create_connection((host, port), timeout=10))
        if target:
            open_tunnel(conns[-1], target)
    print("connected %d" % len(conns), flush=True)
    signal.pause()  # SIGTERM (the default action) ends the process and closes every socket


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
