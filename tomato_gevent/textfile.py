"""The user's text files: UTF-8, or one ConfigError line naming the file and the place.

  read_text(path, what)          the text of a rule file or a data list: anything open()
                                 reads (a pipe from the shell's <(...) too), no size limit
  decode_text(data, path, what)  bytes already read: cli_common.read_private_file reads
                                 secrets itself (regular files only, bounded) and decodes here
`what` names the kind of file in the messages: "cannot read rule file PATH: No such file
or directory", "rule file PATH is not UTF-8 text (line 3, byte offset 41)" (the line and the
offset from the start of the file of the first byte that is not UTF-8). A leading byte
order mark (Windows editors write one) is not part of the text. Newlines are left as they
are: callers split the lines.
"""
import codecs

from .errors import ConfigError


def decode_text(data, path, what):
    """data (bytes read from path) as str; ConfigError when it is not UTF-8."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = start + e.start
        raise ConfigError("%s file %s is not UTF-8 text (line %d, byte offset %d)"
                          % (what, path, data.count(b"\n", 0, offset) + 1, offset)) from None


def read_text(path, what):
    """The UTF-8 text of the file at path; ConfigError when it cannot be read or decoded."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError("cannot read %s file %s: %s" % (what, path, e.strerror or e)) from None
    return decode_text(data, path, what)


__all__ = ["decode_text", "read_text"]
