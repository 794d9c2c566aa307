"""CPace (vpn/cpace.py) against the published test vectors of draft-irtf-cfrg-cpace (the CFRG's
repository, draft-irtf-cfrg-cpace.md, appendices "CPace function definitions" and "Test vector for
CPace using group ristretto255 and hash SHA-512"; the same values as its testvectors.json, G_Coffee25519)."""
import pytest

from tomato_gevent.vpn import cpace

h = bytes.fromhex

# Appendix: test vectors for ristretto255 + SHA-512.
PRS = b"Password"
CI = b"\x0bA_initiator\x0bB_responder"
SID = h("7e4b4791d6a8ef019b936c79fb7f2c57")
GENERATOR_STRING = h(
    "11435061636552697374726574746f3235350850617373776f726464"
    + "00" * 100
    + "180b415f696e69746961746f720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f2c57")
G = h("222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56")
YA_SCALAR = h("da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08")
ADA = b"ADa"
YA = h("d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157")
YB_SCALAR = h("d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d")
ADB = b"ADb"
YB = h("3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258")
K = h("80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f")
TRANSCRIPT_IR = h("20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b915703414461203ea7e0b19560d7c0"
                  "b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f725803414462")
ISK_IR = h("b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd2b38950a39dfd5d4a79164614c2984f7daa46"
           "0b588c1e80c3fa2068af7900447")
# "Test case for scalar_mult with valid inputs" and "Invalid inputs for scalar_mult_vfy".
S = h("7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05")
X = h("2c3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c")
S_X = h("7c13645fe790a468f62c39beb7388e541d8405d1ade69d1778c5fe3e7f6b600e")
INVALID_Y1 = h("2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c")
INVALID_Y2 = bytes(32)


@pytest.mark.parametrize("data, expected", [
    (b"", h("00")),
    (b"1234", h("0431323334")),
    (bytes(range(127)), h("7f") + bytes(range(127))),
    (bytes(range(128)), h("8001") + bytes(range(128))),
], ids=["empty", "1234", "127", "128"])
def test_prepend_len(data, expected):
    assert cpace.prepend_len(data) == expected


def test_lv_cat():
    assert cpace.lv_cat(b"1234", b"5", b"", b"678") == h("043132333401350003363738")


@pytest.mark.parametrize("ya, ada, yb, adb, expected", [
    (b"123", b"PartyA", b"234", b"PartyB", h("03313233065061727479410332333406506172747942")),
    (b"3456", b"PartyA", b"2345", b"PartyB", h("043334353606506172747941043233343506506172747942")),
])
def test_transcript_ir(ya, ada, yb, adb, expected):
    assert cpace.transcript_ir(ya, ada, yb, adb) == expected


def test_generator_string_and_generator():
    assert cpace.generator_string(cpace.DSI, PRS, CI, SID) == GENERATOR_STRING
    assert cpace.calculate_generator(PRS, CI, SID) == G


def test_shares_secret_point_and_isk():
    assert cpace.scalar_mult(YA_SCALAR, G) == YA
    assert cpace.scalar_mult(YB_SCALAR, G) == YB
    assert cpace.scalar_mult_vfy(YA_SCALAR, YB) == K
    assert cpace.scalar_mult_vfy(YB_SCALAR, YA) == K
    assert cpace.transcript_ir(YA, ADA, YB, ADB) == TRANSCRIPT_IR
    assert cpace.intermediate_session_key(SID, K, YA, ADA, YB, ADB) == ISK_IR
    assert cpace.derive_isk(YA_SCALAR, YB, SID, YA, ADA, YB, ADB) == ISK_IR
    assert cpace.derive_isk(YB_SCALAR, YA, SID, YA, ADA, YB, ADB) == ISK_IR


def test_scalar_mult_valid_input():
    assert cpace.scalar_mult_vfy(S, X) == S_X


@pytest.mark.parametrize("share", [INVALID_Y1, INVALID_Y2], ids=["not-a-point", "identity"])
def test_invalid_shares_give_the_identity_and_abort(share):
    assert cpace.scalar_mult_vfy(S, share) == cpace.IDENTITY
    with pytest.raises(cpace.CPaceError):
        cpace.derive_isk(S, share, SID, YA, ADA, share, ADB)


def test_confirmation_tags_bind_each_side_to_its_own_message():
    ta, tb = cpace.confirmation_tags(SID, ISK_IR, YA, ADA, YB, ADB)
    assert len(ta) == len(tb) == cpace.TAG_SIZE and ta != tb
    # The draft's construction, computed here from its definition.
    import hashlib
    import hmac
    mac_key = hashlib.sha512(b"CPaceMac" + SID + ISK_IR).digest()
    assert ta == hmac.new(mac_key, cpace.lv_cat(YA, ADA), "sha512").digest()[:16]
    assert tb == hmac.new(mac_key, cpace.lv_cat(YB, ADB), "sha512").digest()[:16]
    other_isk = cpace.intermediate_session_key(SID, S_X, YA, ADA, YB, ADB)
    assert cpace.confirmation_tags(SID, other_isk, YA, ADA, YB, ADB) != (ta, tb)


def test_sample_scalar_clears_the_bits_above_the_group_size():
    scalar = cpace.sample_scalar(lambda n: b"\xff" * n)
    assert len(scalar) == 32 and scalar[31] == 0x0F and scalar[:31] == b"\xff" * 31


def test_different_passwords_give_different_keys():
    """The PAKE's point: the same scalars with another PRS agree on nothing."""
    g_other = cpace.calculate_generator(b"Passwore", CI, SID)
    ya = cpace.scalar_mult(YA_SCALAR, G)
    yb = cpace.scalar_mult(YB_SCALAR, g_other)
    assert cpace.derive_isk(YA_SCALAR, yb, SID, ya, ADA, yb, ADB) != cpace.derive_isk(YB_SCALAR, ya, SID, ya, ADA,
                                                                                         yb, ADB)
