"""mss.py: the MSS option of TCP SYNs lowered to fit the tunnel, checksum updated
incrementally (RFC 1624) and checked here against a full recomputation."""
import struct

import pytest
from hypothesis import given, strategies as st

from tomato_gevent.vpn.mss import MIN_MSS, ceilings, ceilings_for, clamp_mss, may_be_syn, update_checksum

from .tcp_packets import (ACK, LINUX_SYN_OPTIONS, SYN, ipv4, ipv6, mss_option, mss_values, ones_complement_sum,
                          tcp_checksum_ok, tcp_segment)

MSS4, MSS6 = 1360, 1340             # ceilings(1400)

CHANGED = [
    ("ipv4 only MSS", ipv4(tcp_segment(mss_option(1460))), [MSS4]),
    ("ipv4 Linux SYN, MSS first", ipv4(tcp_segment(LINUX_SYN_OPTIONS)), [MSS4]),
    ("ipv4 MSS after timestamps", ipv4(tcp_segment(bytes.fromhex("0101080a0000000100000000") + mss_option(1460))),
     [MSS4]),
    ("ipv4 MSS at an odd offset", ipv4(tcp_segment(b"\x01" + mss_option(1460) + b"\x01\x01\x01")), [MSS4]),
    ("ipv4 SYN-ACK", ipv4(tcp_segment(mss_option(1460), flags=SYN | ACK)), [MSS4]),
    ("ipv4 with IP options", ipv4(tcp_segment(mss_option(8960)), ip_options=b"\x01\x01\x01\x00"), [MSS4]),
    ("ipv4 two MSS options", ipv4(tcp_segment(mss_option(1460) + mss_option(9000))), [MSS4, MSS4]),
    ("ipv4 SYN with payload", ipv4(tcp_segment(mss_option(1460), payload=b"fast open")), [MSS4]),
    ("ipv6 only MSS", ipv6(tcp_segment(mss_option(1440))), [MSS6]),
    ("ipv6 odd offset, odd payload", ipv6(tcp_segment(b"\x01" + mss_option(65535), payload=b"x")), [MSS6]),
]

UNCHANGED = [
    ("MSS below the ceiling: never raised", ipv4(tcp_segment(mss_option(1200))), [1200]),
    ("MSS at the ceiling", ipv4(tcp_segment(mss_option(MSS4))), [MSS4]),
    ("ipv6 below", ipv6(tcp_segment(mss_option(1220))), [1220]),
    ("no MSS option", ipv4(tcp_segment(bytes.fromhex("0402080a000000010000000001030307"))), []),
    ("no options", ipv4(tcp_segment()), []),
    ("not a SYN", ipv4(tcp_segment(mss_option(1460), flags=ACK)), [1460]),
    ("MSS option of length 3", ipv4(tcp_segment(b"\x02\x03\x05\xb4")), []),
    ("option after EOL", ipv4(tcp_segment(b"\x00" + mss_option(1460) + b"\0\0\0")), []),
    ("ipv6 extension header", ipv6(tcp_segment(mss_option(1440)), next_header=0), [1440]),
    ("ipv4 later fragment", ipv4(tcp_segment(mss_option(1460)), fragment=0x0010), [1460]),
    ("ipv4 total length too short", ipv4(tcp_segment(mss_option(1460)), total=30), [1460]),
    ("UDP", ipv4(tcp_segment(mss_option(1460)), protocol=17), [1460]),
]


@pytest.mark.parametrize("packet, expected", [case[1:] for case in CHANGED], ids=[case[0] for case in CHANGED])
def test_mss_is_lowered_and_the_checksum_still_verifies(packet, expected):
    assert tcp_checksum_ok(packet)
    before = bytes(packet)
    assert clamp_mss(packet, MSS4, MSS6) is True
    assert mss_values(packet) == expected
    assert tcp_checksum_ok(packet)
    changed = [i for i in range(len(packet)) if packet[i] != before[i]]
    assert len(changed) <= 4 * len(expected) + 2 and all(i >= 20 for i in changed)    # MSS and checksum only


@pytest.mark.parametrize("packet, expected", [case[1:] for case in UNCHANGED], ids=[case[0] for case in UNCHANGED])
def test_other_packets_are_left_alone(packet, expected):
    before = bytes(packet)
    assert clamp_mss(packet, MSS4, MSS6) is False
    assert bytes(packet) == before


def test_without_checksum_fix_only_the_value_changes():
    """A packet whose checksum field holds a partial sum (NEEDS_CSUM): the kernel completes it."""
    packet = ipv4(tcp_segment(mss_option(1460)))
    checksum = bytes(packet[36:38])
    assert clamp_mss(packet, MSS4, MSS6, fix_checksum=False)
    assert mss_values(packet) == [MSS4] and bytes(packet[36:38]) == checksum


def test_a_memoryview_slice_of_a_larger_buffer_is_clamped_in_place():
    """As the data path calls it: a view of the packet inside its read buffer."""
    packet = ipv4(tcp_segment(mss_option(1460)))
    buffer = bytearray(8) + packet + bytearray(100)
    assert clamp_mss(memoryview(buffer)[8:8 + len(packet)], MSS4, MSS6)
    assert mss_values(buffer[8:8 + len(packet)]) == [MSS4] and tcp_checksum_ok(buffer[8:8 + len(packet)])


@pytest.mark.parametrize("options", [
    b"\x02",                            # kind, no length
    b"\x02\x00\x05\xb4",                # length 0: would loop forever
    b"\x02\x01\x05\xb4",                # length 1
    b"\x08\x28\x00\x00",                # length past the header
    b"\x01\x01\x01\x02",                # MSS kind as the last byte
])
def test_malformed_options_never_crash_or_loop(options):
    packet = ipv4(tcp_segment(options))
    assert clamp_mss(packet, MSS4, MSS6) is False


@pytest.mark.parametrize("data_offset", [0, 4, 15])
def test_data_offset_outside_the_packet(data_offset):
    packet = ipv4(tcp_segment(mss_option(1460), data_offset=data_offset))
    assert clamp_mss(packet, MSS4, MSS6) is False


def test_every_truncation_is_refused():
    for whole in (ipv4(tcp_segment(LINUX_SYN_OPTIONS)), ipv6(tcp_segment(LINUX_SYN_OPTIONS))):
        for size in range(len(whole)):
            assert clamp_mss(bytearray(whole[:size]), MSS4, MSS6) is False


def test_checksum_update_at_the_edges():
    for checksum in (0x0000, 0x0001, 0xFFFE, 0xFFFF):
        for old, new in ((0x05B4, 0x0550), (0xFFFF, 0x0000), (0x0000, 0xFFFF), (0x1234, 0x1234)):
            data = bytearray(struct.pack(">HH", 0xBEEF, old))
            # a checksum field making the words verify: sum(words) + checksum == 0xFFFF
            field = ~ones_complement_sum(bytes(data)) & 0xFFFF
            struct.pack_into(">H", data, 2, new)
            assert ones_complement_sum(bytes(data) + struct.pack(">H", update_checksum(field, old, new))) == 0xFFFF
    assert update_checksum(0x1234, 0x0001, 0x0001) == 0x1234


@given(st.sampled_from([case[1] for case in CHANGED + UNCHANGED]),
       st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 80))
def test_mutated_and_cut_packets_never_crash_and_keep_a_valid_checksum_valid(packet, flips, cut):
    """Fuzz (bounded by the profile in tests/conftest.py): random bytes changed, the end cut.
    clamp_mss never raises; when it changes a packet, a checksum that verified still does."""
    packet = bytearray(packet)
    for position, value in flips:
        if position < len(packet):
            packet[position] = value
    if cut:
        del packet[-cut:]
    valid_before = len(packet) >= 40 and packet[0] >> 4 in (4, 6) and tcp_checksum_ok(packet)
    values_before = mss_values(packet) if valid_before else None
    changed = clamp_mss(packet, MSS4, MSS6)
    if changed and valid_before:
        assert tcp_checksum_ok(packet)
        assert all(after <= before for before, after in zip(values_before, mss_values(packet)))


@given(st.binary(max_size=120))
def test_random_bytes_never_crash(data):
    assert clamp_mss(bytearray(data), MSS4, MSS6) in (True, False)
    if data:
        assert may_be_syn(data) in (True, False)


def test_ceilings_follow_the_packet_size():
    assert ceilings(1400) == (MSS4, MSS6)
    assert ceilings(1500) == (1460, 1440)
    assert ceilings(68) == (MIN_MSS, MIN_MSS)


def test_mss_fix_setting():
    assert ceilings_for(None, lambda: 1400) == (MSS4, MSS6)         # default: the device MTU
    assert ceilings_for(0, lambda: 1400) is None                    # off
    assert ceilings_for(1300, lambda: 1400) == (1260, 1240)


@pytest.mark.parametrize("packet, maybe", [
    (ipv4(tcp_segment(mss_option(1460))), True),
    (ipv4(tcp_segment(mss_option(1460), flags=ACK)), False),        # the bulk of TCP traffic: one byte read
    (ipv6(tcp_segment(mss_option(1440))), True),
    (ipv6(tcp_segment(flags=ACK)), False),
    (ipv4(tcp_segment(mss_option(1460)), ip_options=b"\x01\x01\x01\x00"), True),
    (b"\x45" + bytes(10), False),                                    # too short to hold TCP flags
    (b"\x00" * 60, False),
])
def test_may_be_syn_is_a_cheap_prefilter(packet, maybe):
    assert may_be_syn(packet) is maybe
    if clamp_mss(bytearray(packet), MSS4, MSS6):
        assert maybe                                                # never False for a SYN it would change
