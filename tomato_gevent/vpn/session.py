"""Where the peer is (pure: the clock is passed in).

PeerEndpoint: fixed (-pa), or in dynamic mode (-d) learned from what authenticated --
a completed handshake or an opened data datagram (handshake.py, keypair.py) -- and
forgotten after -avt seconds without one. The handshake sends its initiations there; the
data path sends to it.
"""


class PeerEndpoint:
    """The peer's UDP address: fixed, or learned from accepted packets and forgotten after avt."""

    def __init__(self, fixed=None, forget_after=60.0):
        self.dynamic = fixed is None
        self.address = fixed
        self.forget_after = forget_after
        self.last_seen = None

    def learn(self, address, now_mono):
        """Record an accepted packet's source; True if the address is new or changed."""
        if not self.dynamic:
            return False
        self.last_seen = now_mono
        if address != self.address:
            self.address = address
            return True
        return False

    def expire(self, now_mono):
        """Forget a learned address after forget_after seconds; True if it was just forgotten."""
        if self.dynamic and self.address is not None and now_mono - self.last_seen > self.forget_after:
            self.address = None
            return True
        return False


__all__ = ["PeerEndpoint"]
