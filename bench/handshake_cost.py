"""What one v3 handshake costs: CPU seconds per full exchange (both ends, one process) and the
group operations and Python calls behind it.

    .venv/bin/python bench/handshake_cost.py [ROUNDS]

Runs ROUNDS complete handshakes (initiation, response, confirmation) between two
vpn.handshake.Handshake objects and reports process CPU time per handshake, split into the
initiator's and the responder's share, plus a cProfile of one handshake: calls into libsodium
(hash to the group, scalar multiplications) and Python function calls in all. The CPU figure is
a rough one on a shared machine (process time, not wall time, but caches and frequency still
move it); the call counts do not move.
"""
import cProfile
import hashlib
import os
import pstats
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tomato_gevent.vpn.handshake import Handshake  # noqa: E402

A, B = ("10.9.0.1", 5000), ("10.9.0.2", 5000)


def pair(seed):
    rng = random.Random(seed)
    key1, key2 = (hashlib.sha256(b"bench %d" % i).digest() for i in (1, 2))
    a = Handshake(key1, key2, 10.0, rng.randbytes, peer_address=B)
    b = Handshake(key2, key1, 10.0, rng.randbytes, peer_address=A)
    return a, b


def one_handshake(a, b, now, wall_ms, clocks):
    t0 = time.process_time()
    (initiation,) = a.initiate(now, wall_ms)
    t1 = time.process_time()
    (response,) = b.receive(initiation.message, A, now, wall_ms)
    t2 = time.process_time()
    confirmation, _ = a.receive(response.message, B, now, wall_ms)
    t3 = time.process_time()
    b.receive(confirmation.message, A, now, wall_ms)
    t4 = time.process_time()
    clocks[0] += (t1 - t0) + (t3 - t2)          # initiator
    clocks[1] += (t2 - t1) + (t4 - t3)          # responder


def main(rounds):
    a, b = pair(1)
    wall_ms = int(time.time() * 1000)
    clocks = [0.0, 0.0]
    for i in range(rounds):
        one_handshake(a, b, 1000.0 + i, wall_ms + 1000 * i, clocks)
    initiator, responder = (c / rounds * 1e6 for c in clocks)
    print("handshakes: %d; CPU per handshake: %.0f us (initiator %.0f us, responder %.0f us)"
          % (rounds, initiator + responder, initiator, responder))
    a, b = pair(2)
    profile = cProfile.Profile()
    profile.enable()
    one_handshake(a, b, 1000.0, wall_ms, [0.0, 0.0])
    profile.disable()
    stats = pstats.Stats(profile)
    calls = {name: n for (_, _, name), (_, n, *_rest) in stats.stats.items()}
    total = sum(n for (_, n, *_rest) in stats.stats.values())
    print("one handshake: %d Python and C calls; libsodium: from_hash %d, scalarmult %d"
          % (total, calls.get("crypto_core_ristretto255_from_hash", 0), calls.get("crypto_scalarmult_ristretto255", 0)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
