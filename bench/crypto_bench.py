"""Crypto benchmark: seal and open of one 1400-byte packet through the VPN's own API.

For each backend of tomato_gevent/vpn/packet.py (`cryptography`, pycryptodome)
it times the hot-path calls the link uses, Sealer.seal_into and the tunnel's
decoder Receiver.open_into (session.py: framing, AEAD, -pvt, replay window), on
preallocated buffers; each loop opens fresh counters with a fresh receiver, as a
session's packets arrive. The reference in the same row is the bare AES-256-GCM
call of the same library on the same sizes (what any VPN pays for the cipher), so
the ratio is the cost of tomato's framing around it. Best of several repeats, in
microseconds per packet.
"""
import time

from benchlib import LOWER, Figure, log

PAYLOAD_BYTES = 1400       # one full packet from a tun with MTU 1400
NOW_MS = 1_700_000_000_000  # the clock of the sealer and the receiver
PVT_SECONDS = 10.0


def _per_call_us(fn, iterations, repeats):
    """Best mean time of fn() over `repeats` loops of `iterations` calls, in microseconds."""
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        elapsed = (time.perf_counter() - t0) / iterations * 1e6
        best = elapsed if best is None else min(best, elapsed)
    return best


def _bare_calls(backend_name, key, plain, aad, nonce):
    """(encrypt, decrypt) closures doing only the library's AES-256-GCM on the same buffers."""
    if backend_name == "cryptography":
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        aead = AESGCM(key)
        sealed = bytearray(len(plain) + 16)
        aead.encrypt_into(nonce, plain, aad, sealed)
        out = bytearray(len(plain))
        return (lambda: aead.encrypt_into(nonce, plain, aad, sealed),
                lambda: aead.decrypt_into(nonce, sealed, aad, out))
    from Crypto.Cipher import AES
    plain_bytes = bytes(plain)

    def encrypt():
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=16)
        cipher.update(aad)
        return cipher.encrypt_and_digest(plain_bytes)

    ciphertext, tag = encrypt()

    def decrypt():
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=16)
        cipher.update(aad)
        return cipher.decrypt_and_verify(ciphertext, tag)
    return encrypt, decrypt


def measure(backend_name, quick=False):
    """{"seal_us", "open_us", "bare_encrypt_us", "bare_decrypt_us"} for one backend."""
    from tomato_gevent.vpn import packet, session

    backend = packet.BACKENDS[backend_name]
    key = bytes(range(packet.KEY_SIZE))
    session_id = packet.make_session_id(NOW_MS, 0x1234)
    sealer = packet.Sealer(key, session_id, backend=backend)
    plain = bytearray(packet.PAYLOAD_OFFSET + PAYLOAD_BYTES)
    plain[packet.PAYLOAD_OFFSET:] = bytes(i & 0xFF for i in range(PAYLOAD_BYTES))
    datagram = bytearray(len(plain) + packet.HEADER_SIZE + packet.TAG_SIZE)
    opened = bytearray(len(plain))
    slow = backend_name != "cryptography"
    iterations = (500 if slow else 5000) // (5 if quick else 1)
    repeats = 3 if quick else 7
    sealed = []
    for _ in range(iterations):         # counters 0 .. iterations - 1: each opens once per receiver
        sealed.append(bytes(datagram[:sealer.seal_into(datagram, plain, NOW_MS)]))
    receiver, position = None, iterations

    def seal():
        sealer.counter = 1      # keep the counter far from the limit; the cost does not depend on it
        sealer.seal_into(datagram, plain, NOW_MS)

    def open_():
        nonlocal receiver, position
        if position == iterations:      # a new loop: a receiver that has seen none of them
            receiver, position = session.Receiver(key, PVT_SECONDS, None, backend), 0
        receiver.open_into(sealed[position], opened, NOW_MS, 0.0)
        position += 1

    bare_encrypt, bare_decrypt = _bare_calls(backend_name, key, plain, bytes(packet.HEADER_SIZE), bytes(12))
    return {
        "seal_us": _per_call_us(seal, iterations, repeats),
        "open_us": _per_call_us(open_, iterations, repeats),
        "bare_encrypt_us": _per_call_us(bare_encrypt, iterations, repeats),
        "bare_decrypt_us": _per_call_us(bare_decrypt, iterations, repeats),
    }


def run(quick=False):
    figures = []
    try:
        from tomato_gevent.vpn import packet
        backends = list(packet.BACKENDS)
    except ImportError as exc:
        return [Figure("Crypto", "seal/open per packet", "µs", LOWER, tomato_na="n/a: %s" % exc,
                       reference_na="n/a")]
    for name in backends:
        result = measure(name, quick)
        log("crypto %-12s seal %.2f us (bare %.2f), open %.2f us (bare %.2f)", name, result["seal_us"],
            result["bare_encrypt_us"], result["open_us"], result["bare_decrypt_us"])
        for op, bare, label in (("seal", "bare_encrypt_us", "encrypt"), ("open", "bare_decrypt_us", "decrypt")):
            fig = Figure("Crypto", "%s, %d-byte packet, %s backend%s" % (
                op, PAYLOAD_BYTES, name, " (data path)" if packet.BACKENDS[name] is packet.DEFAULT_BACKEND else ""),
                "µs", LOWER, reference_name="bare AES-256-GCM %s" % label)
            fig.tomato, fig.reference = result[op + "_us"], result[bare]
            fig.note = "%.0f MB/s of payload" % (PAYLOAD_BYTES / result[op + "_us"])
            figures.append(fig)
    return figures
