#!/usr/bin/env python3
"""Open N TCP connections to HOST:PORT, send nothing, print "connected N", hold them until killed.

Used by bench/proxy_bench.py (run inside the bench namespace) to measure a
proxy's memory with many idle clients.
"""
import signal
import socket
import sys


def main(host, port, count):
    conns = []
    for _ in range(count):
        conns.append(socket.create_connection((host, port), timeout=10))
    print("connected %d" % len(conns), flush=True)
    signal.pause()  # SIGTERM (the default action) ends the process and closes every socket


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
