"""textfile: reading the user's text files as UTF-8, refused in one line naming the file and
the place; the rule files, dlmerge's data lists and the secret files all go through it."""
import os

import pytest

from tomato_gevent.cli_common import read_private_file
from tomato_gevent.dlmerge.cli import read_data_dir
from tomato_gevent.errors import ConfigError
from tomato_gevent.rules import Action, load_rule_files
from tomato_gevent.textfile import decode_text, read_text

BOM = b"\xef\xbb\xbf"


def test_text_with_its_newlines_and_without_a_byte_order_mark(tmp_path):
    path = tmp_path / "rules.txt"
    path.write_bytes(BOM + "direct\tcafé.example\r\nblock\tx\n".encode())
    assert read_text(str(path), "rule") == "direct\tcafé.example\r\nblock\tx\n"
    path.write_bytes(b"")
    assert read_text(str(path), "rule") == ""


@pytest.mark.parametrize("data, line, offset", [
    (b"caf\xe9\n", 1, 3),                               # latin-1
    (b"ok\nok\n\xff", 3, 6),                            # the line of the bad byte, the offset in the file
    (BOM + b"ok\nab\xc3(", 2, 8),                       # a broken sequence; the offset counts the BOM
    (b"ok\n\xe2\x82", 2, 3),                            # cut in the middle of a character
])
def test_invalid_utf8_names_path_line_and_offset(tmp_path, data, line, offset):
    path = tmp_path / "latin1.txt"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        read_text(str(path), "rule")
    assert str(info.value) == "rule file %s is not UTF-8 text (line %d, byte offset %d)" % (path, line, offset)
    data[:offset].decode("utf-8-sig")                  # everything before the offset is text


def test_the_offset_counts_from_the_start_of_a_large_file(tmp_path):
    """Reading in text mode decoded 8 KiB at a time, and a bad byte at 17000 was 'byte 0'."""
    path = tmp_path / "big.txt"
    path.write_bytes(b"direct\tx.example\n" * 1000 + b"\xe9")
    with pytest.raises(ConfigError, match=r"\(line 1001, byte offset 17000\)$"):
        load_rule_files([str(path)])


def test_missing_file(tmp_path):
    path = tmp_path / "missing.txt"
    with pytest.raises(ConfigError) as info:
        read_text(str(path), "rule")
    assert str(info.value) == "cannot read rule file %s: No such file or directory" % path


def test_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        read_text(str(tmp_path), "list")
    assert str(info.value) == "cannot read list file %s: Is a directory" % tmp_path


def test_a_pipe_is_read_like_a_file():
    """`proxy -r <(grep ...)` hands over /dev/fd/N: rule files are not limited to regular files."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"direct\tx.example\n")
        os.close(write_end)
        write_end = None
        assert read_text("/proc/self/fd/%d" % read_end, "rule") == "direct\tx.example\n"
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)


def test_decode_text_alone():
    assert decode_text(BOM + b"pw", "secret", "password") == "pw"
    assert decode_text(b"a" + BOM, "secret", "password") == "a\ufeff"        # only a leading mark is dropped
    with pytest.raises(ConfigError, match=r"^password file secret is not UTF-8 text \(line 1, byte offset 1\)$"):
        decode_text(b"p\x80", "secret", "password")


def test_rule_files_end_lines_as_open_did(tmp_path):
    """\n, \r\n and a lone \r end a rule line (universal newlines); other Unicode line
    separators are characters of the line (here: of a comment)."""
    path = tmp_path / "rules.txt"
    path.write_bytes(b"block\ta.example\rdirect\tb.example\r\n# x\xc2\x85direct\tc.example\nforward\td.example")
    rules = load_rule_files([str(path)])
    assert [rules.lookup(h) for h in ("a.example", "b.example", "c.example", "d.example")] == [
        Action.BLOCK, Action.DIRECT, None, Action.FORWARD]


def test_every_reader_of_text_files_says_it_alike(tmp_path):
    (tmp_path / "data").mkdir()
    bad = tmp_path / "data" / "bad"
    bad.write_bytes(b"# a list\ncaf\xe9.example\n")
    bad.chmod(0o600)
    expected = "file %s is not UTF-8 text (line 2, byte offset 12)" % bad
    for read, what in ((lambda: load_rule_files([str(bad)]), "rule"),
                       (lambda: read_data_dir(str(tmp_path / "data")), "list"),
                       (lambda: read_private_file(str(bad), "auth", 4096), "auth")):
        with pytest.raises(ConfigError) as info:
            read()
        assert str(info.value) == "%s %s" % (what, expected)
