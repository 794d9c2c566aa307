"""Sliding-window anti-replay filter (RFC 6479, as WireGuard's replay package).

Contract: ReplayWindow(limit).accept(counter) -> bool. True the first time a
counter is seen, if it is not older than WINDOW_SIZE behind the highest counter
seen and below the limit; False for a replay, a too-old counter, or counter >= limit.
The limit is the caller's (packet.REJECT_AFTER_MESSAGES in the tunnel): this
module depends on nothing, as wireguard-go's replay package.
A replay is an expected event on the hot path, so it is a bool, not an exception.

The window is a ring of RING_BLOCKS 64-bit blocks; moving forward clears only
the blocks that slide out, so accept() costs O(1) amortised, and a reordered
packet (arriving after higher counters) is still accepted once.
"""
BLOCK_BIT_LOG = 6                       # 64 bits per block
BLOCK_BITS = 1 << BLOCK_BIT_LOG
RING_BLOCKS = 1 << 7                    # power of two, so the ring index is a mask
WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS   # 8128 counters behind the newest
BLOCK_MASK = RING_BLOCKS - 1
BIT_MASK = BLOCK_BITS - 1


class ReplayWindow:
    """Per-session receive window. Not thread-safe (one greenlet owns it)."""

    __slots__ = ("last", "ring", "limit")

    def __init__(self, limit):
        self.limit = limit
        self.reset()

    def reset(self):
        self.last = 0
        self.ring = [0] * RING_BLOCKS

    def accept(self, counter):
        if counter >= self.limit:
            return False
        ring = self.ring
        index_block = counter >> BLOCK_BIT_LOG
        last = self.last
        if counter > last:
            current = last >> BLOCK_BIT_LOG
            diff = index_block - current
            if diff > RING_BLOCKS:
                diff = RING_BLOCKS          # clearing the whole ring is enough
            for i in range(current + 1, current + diff + 1):
                ring[i & BLOCK_MASK] = 0
            self.last = counter
        elif last - counter > WINDOW_SIZE:
            return False
        index_block &= BLOCK_MASK
        bit = 1 << (counter & BIT_MASK)
        old = ring[index_block]
        if old & bit:
            return False
        ring[index_block] = old | bit
        return True
