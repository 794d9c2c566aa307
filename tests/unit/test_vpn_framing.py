"""framing.py: the TCP transport's 2-byte length framing, split at every byte boundary."""
import random

import pytest

from tomato_gevent.errors import BadPacket
from tomato_gevent.vpn.framing import FRAME_HEADER_SIZE, FrameSplitter, frame, frame_header, frame_iovecs
from tomato_gevent.vpn.keypair import MAX_DATAGRAM_SIZE
from tomato_gevent.vpn.messages import SMALLEST_MESSAGE

RND = random.Random(12)
DATAGRAMS = [RND.randbytes(n) for n in (40, 41, 100, 1452, 40, 9000, 65535, 77)]
STREAM = b"".join(frame(d) for d in DATAGRAMS)


def test_header_is_big_endian_length():
    assert frame_header(0x1234) == b"\x12\x34"
    assert frame(b"x" * 40) == b"\x00\x28" + b"x" * 40


def test_whole_stream_at_once():
    assert FrameSplitter().feed(STREAM) == DATAGRAMS


@pytest.mark.parametrize("cut", range(0, 300))
def test_split_at_every_byte_boundary_of_the_first_frames(cut):
    splitter = FrameSplitter()
    assert splitter.feed(STREAM[:cut]) + splitter.feed(STREAM[cut:]) == DATAGRAMS
    assert splitter.buffered == 0


def test_split_at_every_byte_boundary_one_byte_at_a_time():
    splitter = FrameSplitter()
    got = []
    for i in range(len(STREAM)):
        got += splitter.feed(STREAM[i:i + 1])
        assert got == DATAGRAMS[:len(got)]
    assert got == DATAGRAMS and splitter.buffered == 0


def test_random_chunks_through_a_small_buffer():
    # capacity just above one maximal frame: the incomplete frame moves to the front often
    splitter = FrameSplitter(capacity=FRAME_HEADER_SIZE + MAX_DATAGRAM_SIZE + 10)
    stream = STREAM * 5
    got, i, rnd = [], 0, random.Random(5)
    while i < len(stream):
        n = rnd.randrange(1, 70000)
        got += splitter.feed(stream[i:i + n])
        i += n
    assert got == DATAGRAMS * 5


def test_frames_are_views_into_the_buffer_not_copies():
    splitter = FrameSplitter()
    tail = splitter.free()
    tail[:len(STREAM)] = STREAM
    splitter.filled(len(STREAM))
    frames = list(splitter.frames())
    assert all(isinstance(f, memoryview) for f in frames)
    assert [bytes(f) for f in frames] == DATAGRAMS
    assert frames[0].obj is frames[1].obj


@pytest.mark.parametrize("length", [0, 1, SMALLEST_MESSAGE - 1])
def test_short_and_zero_lengths_refused(length):
    splitter = FrameSplitter()
    with pytest.raises(BadPacket, match="bad frame length"):
        splitter.feed(frame(DATAGRAMS[0]) + frame_header(length) + bytes(length))


def test_oversized_length_refused_before_the_body_arrives():
    splitter = FrameSplitter(max_size=1500)
    assert splitter.feed(frame(b"a" * 1500)) == [b"a" * 1500]
    with pytest.raises(BadPacket, match="bad frame length"):
        splitter.feed(frame_header(1501))       # no need to wait for 1501 bytes


def test_capacity_must_hold_a_frame():
    with pytest.raises(ValueError):
        FrameSplitter(capacity=1000, max_size=1500)


@pytest.mark.parametrize("size,segment", [(40, 40), (120, 40), (100, 60), (1452 * 3 + 41, 1452)])
def test_frame_iovecs_lay_out_a_batch(size, segment):
    batch = bytes(RND.randbytes(size))
    iovecs = frame_iovecs(memoryview(batch), size, segment)
    datagrams = [batch[i:i + segment] for i in range(0, size, segment)]
    assert b"".join(bytes(v) for v in iovecs) == b"".join(frame(d) for d in datagrams)
    assert FrameSplitter().feed(b"".join(bytes(v) for v in iovecs)) == datagrams
