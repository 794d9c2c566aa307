"""netutil.send_all: one send() when it takes everything, sendall for what a short send left."""
import socket
import threading

from tomato_gevent.netutil import send_all


class ShortSender:
    """send() takes at most `first` bytes once; sendall() records what it was given."""

    def __init__(self, first):
        self.first = first
        self.calls = []

    def send(self, data):
        taken = min(self.first, len(data))
        self.calls.append(("send", bytes(data[:taken])))
        return taken

    def sendall(self, data):
        self.calls.append(("sendall", bytes(data)))


def test_one_send_when_the_kernel_takes_it_all():
    sock = ShortSender(first=100)
    send_all(sock, b"abc")
    assert sock.calls == [("send", b"abc")]


def test_the_rest_of_a_short_send_goes_through_sendall():
    sock = ShortSender(first=2)
    send_all(sock, bytearray(b"abcdef"))
    assert sock.calls == [("send", b"ab"), ("sendall", b"cdef")]


def test_every_byte_arrives_through_a_real_socket_pair():
    a, b = socket.socketpair()
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 1024         # far more than the buffers hold
        received = bytearray()

        def read():
            while len(received) < len(data):
                chunk = b.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)
        reader = threading.Thread(target=read)
        reader.start()
        send_all(a, data)
        reader.join(10)
        assert bytes(received) == data
    finally:
        a.close()
        b.close()
