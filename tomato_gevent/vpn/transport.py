"""The datagram transport interface: what the link needs from the network side.

A transport carries datagrams (messages.py, keypair.py) between the two hosts; the link
never looks inside it. udp.py is the first implementation (one datagram per UDP
datagram, GSO/GRO batching), tcp.py the second (length-prefixed frames on TCP
connections). A transport provides:

  fileno()          an fd that polls readable when receive() may find datagrams
                    (the scheduler waits on it, in the hub or in its own epoll)
  receiver(deliver) -> receive(): take in what arrived until the fd is drained
                    (returns True) or a batch limit is reached (returns False), and
                    call deliver(datagram, source, now_ms, now_mono) for each
                    datagram; deliver returns True when the datagram was authentic,
                    None for a handshake message taken in but not (yet) authentic
                    (an initiation), False when it was refused.
                    source is whatever send() accepts as destination.
  send(view, destination)
  reply(view, source)
                    a handshake message back to exactly where a message came from
                    (UDP: that address; TCP: that connection, trusted or not)
  reply_batch(view, size, segment, count, source)
                    count such messages, laid out as for send_batch (UDP: one GSO send)
  send_replies(replies)
                    [(source, message)] of one drain through reply/reply_batch (the
                    base class's; equal-size runs to one source batched)
  send_batch(view, size, segment, count, destination)
                    count sealed datagrams back to back in view[:size], each
                    segment bytes long except possibly the last. Never waits for
                    the peer (UDP waits for room in its socket buffer, TCP queues
                    and drops beyond a bound); errors are counted, never raised.
  max_batch_bytes, max_batch_count
                    the largest batch send_batch takes (the scheduler cuts there)
  describe(source)  the source/destination as text, for the log
  start(announce)   called once by the running link; announce() sends a keepalive (a
                    transport that opens a connection calls it, so the peer learns
                    the connection at once). close(): once, after the link stopped.
  sent              datagrams handed to the kernel so far.
  sent_bytes        their bytes (whole sealed datagrams), counted per send or batch.

Constructor arguments every transport takes (assembly.py passes them):
  drops             collections.Counter, reason -> count: refused datagrams and send
                    errors; the link's drop counter, given to the Link as well.
The TCP transport also takes keep_outgoing: () -> bool, the crossed-connection
tie-break (handshake.Handshake.keeps_outgoing, a rule both sides evaluate alike).
"""
import collections

from .throttle import LogThrottle


class DatagramTransport:
    """Base of the transports: the interface above (sent, drops) and the no-op start."""

    max_batch_bytes = 65000
    max_batch_count = 64

    def __init__(self, logger, drops=None):
        self.drops = collections.Counter() if drops is None else drops
        self.warn = LogThrottle(logger)      # warn(cause, msg, *args): repeating errors
        self.sent = 0
        self.sent_bytes = 0

    def fileno(self):
        raise NotImplementedError

    def receiver(self, deliver):
        raise NotImplementedError

    def send(self, view, destination):
        raise NotImplementedError

    def send_batch(self, view, size, segment, count, destination):
        raise NotImplementedError

    def reply(self, view, source):
        self.send(view, source)

    def reply_batch(self, view, size, segment, count, source):
        for offset in range(0, size, segment):
            self.reply(view[offset:offset + segment], source)

    def send_replies(self, replies):
        """Send [(destination, message)], what the refusals of one drain answered (under a
        flood of initiations: a cookie reply each), each run of equal size to one
        destination in one reply_batch (one GSO send over UDP)."""
        start = 0
        while start < len(replies):
            destination, first = replies[start]
            end = start + 1
            while (end < len(replies) and end - start < self.max_batch_count
                   and replies[end][0] == destination and len(replies[end][1]) == len(first)):
                end += 1
            if end - start == 1:
                self.reply(memoryview(first), destination)
            else:
                batch = b"".join(message for _, message in replies[start:end])
                self.reply_batch(memoryview(batch), len(batch), len(first), end - start, destination)
            start = end

    def describe(self, source):
        raise NotImplementedError

    def start(self, announce):
        """Called once from the running link (greenlets may be spawned here)."""

    def peer_moved(self, address):
        """The peer's fixed address is now address (datagrams carry their destination)."""

    def close(self):
        raise NotImplementedError

