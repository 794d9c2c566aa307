#!/usr/bin/env python3
"""Instructions per segment of the checksum check before merging: coalesce.segment_checksums_ok
(one Python integer per segment) against one numpy pass over a batch of 64 segments, and what
importing numpy costs. Instruction counts from valgrind, which load does not move:

    for m in "base 0" "python 1280" "import-numpy 0" "numpy 1280"; do set -- $m
      valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$1 PYTHON bench/verify_cost.py $1 $2 >/dev/null 2>&1
      echo "$1 $(grep '^summary:' /tmp/cg.$1)"; done

PYTHON needs numpy for the last two (this project does not depend on it). Per segment:
(python - base) / 1280 and (numpy - import-numpy) / 1280; numpy's import: import-numpy - base.
Measured 2026-12-06 (Python 3.11, numpy 2.4): 45 000 vs 16 000 instructions per 1400-byte
segment; numpy's import 282 M instructions (the check of ~6 000 segments) and 13.7 MiB RSS.
"""
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "unit"))

from ip_packets import tcp_packet  # noqa: E402

mode, n = sys.argv[1], int(sys.argv[2])
segments = [tcp_packet(bytes((i * 7 + j) & 0xFF for j in range(1348)), 1000 + i * 1348) for i in range(64)]
if mode == "import-numpy":
    import numpy  # noqa: F401
elif mode == "python":
    from tomato_gevent.vpn.coalesce import segment_checksums_ok

    views = [memoryview(bytearray(s)) for s in segments]
    for _ in range(n // 64):
        for view in views:
            assert segment_checksums_ok(view, False)
elif mode == "numpy":
    import numpy as np

    batch = bytearray(b"".join(segments))       # a decrypted batch, back to back (equal sizes here)
    size = len(segments[0])
    pseudo = np.array([sum(struct.unpack_from(">4H", s, 12)) + 6 + size - 20 for s in segments], dtype=np.uint64)
    for _ in range(n // 64):
        words = np.frombuffer(batch, dtype=">u2").reshape(64, size // 2)
        tcp = words[:, 10:].sum(axis=1, dtype=np.uint64) + pseudo
        ip = words[:, :10].sum(axis=1, dtype=np.uint64)
        for _ in range(3):
            tcp, ip = (tcp & 0xFFFF) + (tcp >> 16), (ip & 0xFFFF) + (ip >> 16)
        assert ((tcp == 0xFFFF) & (ip == 0xFFFF)).all()
