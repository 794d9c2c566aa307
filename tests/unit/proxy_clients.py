"""Small blocking clients for the proxy's operations tests (test_proxy_ops.py and the like):
raw HTTP over one connection, a SOCKS5 handshake, a UDP association. Shared helpers live
here because no test module imports another."""
from gevent import socket

from tomato_gevent.http1 import chunked, http
from tomato_gevent.proxy import socks5

from .proxy_doubles import DEADLINE_SECONDS


def connect(port, host="127.0.0.1"):
    sock = socket.create_connection((host, port))
    sock.settimeout(DEADLINE_SECONDS)
    return sock


class HttpClient:
    """One client connection to the proxy on port; response() reads the next answer (head and
    body, by its framing) with the proxy's own parser."""

    def __init__(self, port):
        self.sock = connect(port)
        self.buf = bytearray()

    def send(self, data):
        self.sock.sendall(data)

    def response(self, method="GET"):
        """(ResponseHead, body) of the next answer; None if the proxy closed first."""
        while True:
            resp = http.parse_response_head(self.buf, method)
            if resp is not None:
                del self.buf[:resp.length]
                break
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        if resp.framing is http.Framing.LENGTH:
            while len(self.buf) < resp.content_length:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("closed inside a body")
                self.buf += data
            body = bytes(self.buf[:resp.content_length])
            del self.buf[:resp.content_length]
        elif resp.framing is http.Framing.CHUNKED:
            decoder = chunked.ChunkedDecoder()
            body, data = b"", bytes(self.buf)
            self.buf.clear()
            while True:
                body += b"".join(bytes(p) for p in decoder.feed(data))
                if decoder.done:
                    self.buf += decoder.unused
                    break
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("closed inside a chunked body")
        elif resp.framing is http.Framing.UNTIL_CLOSE:
            body = bytes(self.buf) + self.read_until_close()
            self.buf.clear()
        else:
            body = b""
        return resp, body

    def read_until_close(self):
        out = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return out
            out += data

    def closed(self):
        """True once the proxy closed the connection (nothing more was sent)."""
        return self.sock.recv(1) == b""

    def close(self):
        self.sock.close()


def get(host, port, path=b"/", extra=b""):
    return b"GET http://%s:%d%s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
        host.encode(), port, path, host.encode(), extra)


class SocksClient:
    def __init__(self, port):
        self.sock = connect(port)
        self.buf = bytearray()

    def _read(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def method(self, offer=b"\x00"):
        """The method the proxy chose, None if it closed."""
        self.sock.sendall(bytes((5, len(offer))) + offer)
        choice = self._read(2)
        return None if choice is None else choice[1]

    def login(self, user, password):
        """True if the proxy accepted user/password (RFC 1929), None if it closed first."""
        self.sock.sendall(socks5.render_credentials(user, password))
        reply = self._read(2)
        return None if reply is None else reply[1] == socks5.AUTH_SUCCESS

    def request(self, host, port, command=socks5.CMD_CONNECT):
        """The proxy's Reply (code, host, port), None if it closed first."""
        self.sock.sendall(socks5.render_request(command, host, port))
        while True:
            reply = socks5.parse_reply(self.buf)
            if reply is not None:
                del self.buf[:reply.length]
                return reply
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def closed(self):
        return self.sock.recv(1) == b""

    def close(self):
        self.sock.close()
