"""Who may use one SOCKS5 UDP association, and who may answer through it (pure; RFC 1928 7).

A client that sent UDP ASSOCIATE on a TCP connection gets a UDP port of ours. Datagrams
to that port are

* the client's, when they come from the control connection's IP address and from the
  port the request named (when it named 0, as most clients do, the first datagram's
  port from that address becomes the client's): they are unwrapped and sent on;
* an answer, when they come from an endpoint the client sent to: they are wrapped and
  sent to the client. Nobody else gets through, so the port is no relay for strangers
  towards the client, and no relay at all for anyone but the client;
* anything else: dropped.

At most MAX_REMOTES endpoints are remembered per association; the one the client sent
to least recently is forgotten first (its late answers are then dropped).

Pure: addresses are passed in (ipaddress objects and ports); no I/O.
"""
import collections

MAX_REMOTES = 256


class Association:
    def __init__(self, client_ip, client_port=0, max_remotes=MAX_REMOTES):
        self.client_ip = client_ip
        self.client_port = client_port or None      # None: the first datagram decides
        self.max_remotes = max_remotes
        self._remotes = collections.OrderedDict()   # (ip, port) -> None, least recent first

    @property
    def client_address(self):
        """(ip text, port) to send answers to; None before the client's port is known."""
        if self.client_port is None:
            return None
        return str(self.client_ip), self.client_port

    def is_client(self, ip, port):
        """True if a datagram from ip:port is the client's (and learn its port if unknown)."""
        if ip != self.client_ip:
            return False
        if self.client_port is None:
            if (ip, port) in self._remotes:
                return False
            self.client_port = port
            return True
        return port == self.client_port

    def sent_to(self, ip, port):
        """The client sent a datagram to ip:port: its answers may come back."""
        remote = (ip, port)
        if remote in self._remotes:
            self._remotes.move_to_end(remote)
            return
        self._remotes[remote] = None
        if len(self._remotes) > self.max_remotes:
            self._remotes.popitem(last=False)

    def answers(self, ip, port):
        """True if a datagram from ip:port is an answer for the client."""
        return (ip, port) in self._remotes and self.client_port is not None
