"""Helpers for the proxy's namespace tests (no tests here), runnable as a script.

    python proxy_support.py origin --port 8080 --name B           # HTTP origin server
    python proxy_support.py raw HOST PORT FILE                    # send FILE, half-close,
                                                                  # print the answer
    python proxy_support.py drain PORT                            # TCP: read until EOF, answer
                                                                  # "sha256 length", close
    python proxy_support.py exchanges HOST PORT PAUSE FILE...     # one request per FILE on one
                                                                  # connection, PAUSE s apart
    python proxy_support.py stall HOST PORT TEXT [SEC]            # send a partial head, wait
                                                                  # (or trickle a byte per SEC)
    python proxy_support.py hold HOST PORT N                      # open N idle connections, wait
    python proxy_support.py udp-echo PORT                         # UDP: answer b"echo:" + datagram
    python proxy_support.py socks-udp PROXYPORT HOST PORT MSG...  # SOCKS5 UDP ASSOCIATE client:
                                                                  # print each answer (or "-")

The origin answers, with HTTP/1.1 keep-alive:
    GET /blob/N      N deterministic bytes (payload(N)), Content-Length
    GET /chunked/N   the same bytes, Transfer-Encoding: chunked
    GET /close/N     the same bytes, no length, connection closed after
    GET /whoami      the --name it was started with
    GET /headers     the request head as received
    GET /status/N    an empty answer with status N
    POST|PUT /echo   "sha256 length" of the request body (Content-Length or chunked)
and prints "CONN <peer>" for every connection it accepts.
"""
import hashlib
import os
import random
import shutil
import socket
import sys
import time
from pathlib import Path

SUPPORT = Path(__file__).resolve()
NETNS_ETC = Path("/etc/netns")


def payload(n):
    return random.Random(n).randbytes(n)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class NetnsEtc:
    """/etc/netns/NS/{hosts,resolv.conf}: `ip netns exec` mounts them over /etc for
    every process started afterwards. resolv.conf points at 127.0.0.1 (no server), so
    unknown names fail fast and no DNS query leaves the namespace."""

    def __init__(self, ns, hosts):
        self.dir = NETNS_ETC / ns
        self.dir.mkdir(parents=True, exist_ok=False)
        (self.dir / "hosts").write_text("127.0.0.1 localhost\n" + hosts)
        (self.dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# -- origin server -----------------------------------------------------------------------
def run_origin(argv):
    import argparse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--name", default="origin")
    parser.add_argument("--idle-close", type=float, default=None,
                        help="close idle keep-alive connections after SEC, without notice")
    args = parser.parse_args(argv)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = args.idle_close

        def log_message(self, *a):
            pass

        def setup(self):
            super().setup()
            print("CONN %s:%d" % self.client_address[:2], flush=True)

        def _send(self, status, body, extra=()):
            self.send_response(status)
            for name, value in extra:
                self.send_header(name, value)
            if status not in (204, 304) and not (100 <= status < 200):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                body = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(body)
                    body += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def do_GET(self):
            parts = self.path.split("/")
            kind = parts[1] if len(parts) > 1 else ""
            if kind == "blob":
                self._send(200, payload(int(parts[2])), [("Content-Type", "application/octet-stream")])
            elif kind == "chunked":
                data = payload(int(parts[2]))
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if self.command != "HEAD":
                    for i in range(0, len(data), 7000):
                        piece = data[i:i + 7000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\nX-Trailer: dropped\r\n\r\n")
            elif kind == "close":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload(int(parts[2])))
                self.close_connection = True
            elif kind == "whoami":
                self._send(200, args.name.encode() + b"\n")
            elif kind == "headers":
                head = "%s\r\n%s" % (self.requestline, self.headers)
                self._send(200, head.encode("latin-1"))
            elif kind == "status":
                self._send(int(parts[2]), b"")
            else:
                self._send(404, b"not found\n")

        do_HEAD = do_GET

        def do_POST(self):
            body = self._read_body()
            self._send(200, ("%s %d\n" % (sha256(body), len(body))).encode())

        do_PUT = do_POST

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512
        address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET

    server = Server((args.bind, args.port), Handler)
    print("READY", flush=True)
    server.serve_forever()


# -- raw clients ----------------------------------------------------------------------------
def run_raw(argv):
    """Send bytes, half-close, print everything received until close (max 10 s)."""
    host, port, data = argv[0], int(argv[1]), Path(argv[2]).read_bytes()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    sys.stdout.buffer.write(bytes(received))


def read_response(sock, buf):
    """One response with Content-Length from sock (buf holds leftovers); (head, body)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed before a response head")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    buf[:] = rest
    while len(buf) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed inside a response body")
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return head, body


def run_exchanges(argv):
    """Send each file's request on one connection, PAUSE s apart; print status lines and bodies."""
    host, port, pause, paths = argv[0], int(argv[1]), float(argv[2]), argv[3:]
    with socket.create_connection((host, port), timeout=10) as sock:
        buf = bytearray()
        for i, path in enumerate(paths):
            if i:
                time.sleep(pause)
            sock.sendall(Path(path).read_bytes())
            head, body = read_response(sock, buf)
            print("%s | %s" % (head.split(b"\r\n")[0].decode(), body.decode("latin-1").strip()), flush=True)


def run_stall(argv):
    """Send a partial request head, then wait until the proxy closes; print how long it took.

    With a 4th argument SEC, keep trickling one more byte of a header every SEC seconds."""
    host, port, text = argv[0], int(argv[1]), argv[2].encode()
    trickle = float(argv[3]) if len(argv) > 3 else None
    with socket.create_connection((host, port), timeout=120) as sock:
        sock.sendall(text)
        print("STALLING", flush=True)
        started = time.monotonic()
        if trickle is not None:
            sock.settimeout(trickle)
        while True:
            try:
                data = sock.recv(65536)
                break
            except socket.timeout:
                try:
                    sock.sendall(b"x")
                except OSError:
                    data = b""
                    break
            except ConnectionResetError:
                data = b""
                break
        print("CLOSED after %.1fs with %d bytes" % (time.monotonic() - started, len(data)), flush=True)


def run_drain(argv):
    """A TCP server that answers only after the client finished sending (half-close)."""
    import threading

    listener = socket.create_server(("127.0.0.1", int(argv[0])))

    def serve(conn):
        with conn:
            data = bytearray()
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            conn.sendall(("%s %d\n" % (sha256(bytes(data)), len(data))).encode())

    print("READY", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def run_hold(argv):
    """Open N connections (without sending anything) and keep them until killed."""
    host, port, count = argv[0], int(argv[1]), int(argv[2])
    held = [socket.create_connection((host, port), timeout=10) for _ in range(count)]
    print("HOLDING %d" % len(held), flush=True)
    while True:
        time.sleep(60)


# -- UDP -------------------------------------------------------------------------------------
def run_udp_echo(argv):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", int(argv[0])))
        print("READY", flush=True)
        while True:
            data, address = sock.recvfrom(65535)
            sock.sendto(b"echo:" + data, address)


def run_socks_udp(argv):
    """UDP ASSOCIATE at the proxy on 127.0.0.1:PROXYPORT, then each MSG to HOST:PORT through it;
    prints "HOST:PORT ANSWER" per answer, "-" where none came within 2 s."""
    proxy_port, host, port, messages = int(argv[0]), argv[1], int(argv[2]), argv[3:]
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as control, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        control.sendall(b"\x05\x01\x00" + b"\x05\x03\x00\x01" + bytes(6))    # no auth; 0.0.0.0:0
        reply = b""
        while len(reply) < 12:
            chunk = control.recv(100)
            if not chunk:
                raise SystemExit("proxy closed: %r" % reply)
            reply += chunk
        assert reply[:4] == b"\x05\x00\x05\x00" and reply[5] == 1, reply
        relay = (socket.inet_ntoa(reply[6:10]), int.from_bytes(reply[10:12], "big"))
        name = host.encode()
        header = b"\x00\x00\x00\x03" + bytes((len(name),)) + name + port.to_bytes(2, "big")
        udp.settimeout(2)
        for message in messages:
            udp.sendto(header + message.encode(), relay)
            try:
                data = udp.recv(65535)
            except socket.timeout:
                print("-", flush=True)
                continue
            assert data[:4] == b"\x00\x00\x00\x01", data
            print("%s:%d %s" % (socket.inet_ntoa(data[4:8]), int.from_bytes(data[8:10], "big"),
                                data[10:].decode()), flush=True)


if __name__ == "__main__":
    commands = {"origin": run_origin, "raw": run_raw, "stall": run_stall, "hold": run_hold,
                "exchanges": run_exchanges, "drain": run_drain, "udp-echo": run_udp_echo,
                "socks-udp": run_socks_udp}
    commands[sys.argv[1]](sys.argv[2:])
    os._exit(0)
