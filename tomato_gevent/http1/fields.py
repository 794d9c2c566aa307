"""The field section of an HTTP/1.x head (RFC 9110 5, RFC 9112 5.1), pure: no I/O.

    scan(block, bad, seen=None) -> (special, fields)
        block    the field lines of one head, each ending in CRLF (http.py brings bare-LF
                 heads to this form first)
        seen     None, or one connection's table of the lines it sent before (a dict)
        special  {lower-case name: [values without OWS]} for the FRAMING_FIELDS present
        fields   the lines that go on, as bytes: every REGENERATED field (hop-by-hop, Host,
                 Content-Length, Expect) removed, the others byte for byte as received
    drop_named(fields, names) -> fields     also without the fields Connection names
    pairs(fields) -> ((name, value), ...)   the lines as (name as received, value without OWS)
    token_lists(special) -> {name: [tokens]}, content_length(special, bad) -> int | None

Strategy: the grammar of a field line (token ":" then visible characters, SP and HTAB, CRLF)
is checked in bulk with bytes methods, in C at memory speed: one translate() keeps only the
bytes no value may hold, which must be exactly one CRLF per line (one count() says how many). Then each line is split
at its first colon and its name looked up in _NAMES, a bounded table of the names seen so far
(a name is validated as a token by a regexp once, when first seen, or every time once the
table is full), which says whether the field goes on or what the parser needs of it. A regexp
pass per block cost about 25 ns per byte, three passes per head (validate, split, cut the
regenerated lines): ~20 us for a 300-byte answer head, most of the proxy's parsing time.
The regexps (_BLOCK, _PAIRS) remain for pairs() and drop_named(), rare paths, and as the
grammar's statement; every regexp here is linear in its input (a value is runs of visible
characters separated by runs of blanks, so a blank run is tried once).

A connection repeats most of its field lines from one head to the next (Host, User-Agent,
Accept..., an origin's Server, Content-Type, Connection...): with `seen`, each line of a head
that passed the check is remembered with its kind (LINES_REMEMBERED lines at most, none longer
than LINE_BYTES_REMEMBERED), and a head made only of remembered lines is answered with a
split and one dict probe per line (a line in the table is valid by itself and holds no CR or
LF, so the block it came in needs no check). Lines of any other head take the whole check.
A table belongs to one connection (http.RequestReader's for requests, HttpSession's for the
answers it reads), so how fast a line is parsed never tells a client what another one sent.

Refuses, with bad(msg): a line that is not name ":" OWS value OWS (obs-fold named as such),
control characters other than HTAB in a value, bad or conflicting Content-Length.
"""
import re

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_VISIBLE = rb"[^\x00-\x20\x7f]"         # VCHAR and obs-text
_VALUE = _VISIBLE + rb"+(?:[ \t]+" + _VISIBLE + rb"+)*"
# Each line matches one way only: the blanks after ":" all belong to the leading OWS and the
# trailing OWS exists only after a value. (With an optional value between two [ \t]* a line
# of blanks matches in as many ways as it has blanks, and a bad line after n such lines made
# the engine try all their combinations: exponential in n.)
_BLOCK = re.compile(rb"(?:" + _TOKEN + rb":[ \t]*(?:" + _VALUE + rb"[ \t]*)?\r\n)*")
_PAIRS = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")?[ \t]*\r\n")

# Always hop-by-hop, whatever Connection says (RFC 9110 7.6.1, 11.7.1, 11.7.2; RFC 9112 7).
HOP_BY_HOP = frozenset({
    b"connection", b"proxy-connection", b"keep-alive", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-authorization", b"proxy-authenticate",
})
# Fields the proxy regenerates itself rather than copying.
REGENERATED = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
# Fields whose values the parser itself needs.
FRAMING_FIELDS = frozenset({b"connection", b"proxy-connection", b"transfer-encoding",
                            b"content-length", b"host", b"expect", b"proxy-authorization"})
_TOKEN_LIST_FIELDS = frozenset({b"transfer-encoding", b"connection", b"proxy-connection", b"expect"})
TOKEN_LIST_FIELDS = _TOKEN_LIST_FIELDS     # for the parsers: no token_lists call without one


# Every byte a field line may hold besides its CRLF: VCHAR, obs-text, SP, HTAB (RFC 9110 5.5).
_LINE_BYTES = bytes(range(0x21, 0x7f)) + bytes(range(0x80, 0x100)) + b" \t"
_CR_LF = b"\r\n"
_NAME = re.compile(_TOKEN)
_GOES_ON = b""                  # _NAMES value of a field passed on as received (falsy)
_NAMES = {}                     # name as received -> its lower-case form if REGENERATED, else _GOES_ON
NAMES_REMEMBERED = 1024         # at most this many names in _NAMES (each at most 64 bytes)
# A table of lines seen (scan's `seen`): at most this many lines of at most this many bytes,
# each mapped to _GOES_ON or (lower-case name, value without OWS, None unless FRAMING_FIELDS);
# emptied when a block's new lines would not fit.
# One per connection, never shared: how fast a line is parsed tells no client what another sent.
LINES_REMEMBERED = 32
LINE_BYTES_REMEMBERED = 128


def _kind_of(name):
    """_NAMES' answer for a name not in it (None: not a token), remembered while there is room."""
    if _NAME.fullmatch(name) is None:
        return None
    lname = name.lower()
    kind = lname if lname in REGENERATED else _GOES_ON
    if len(_NAMES) < NAMES_REMEMBERED and len(name) <= 64:
        _NAMES[name] = kind
    return kind


def scan(block, bad, seen=None):
    """(special, fields) of a CRLF field block; raises bad(msg) for a malformed line.

    seen: None, or a dict of the lines one connection sent before (new_table()): a block made
    only of lines in it costs a split and a dict probe per line; the others take the whole
    check and add their lines while there is room."""
    if not block:
        return {}, block
    if seen:
        lines = block.split(_CR_LF)
        if not lines.pop():                 # the block ends with CRLF
            kinds = list(map(seen.get, lines))
            if None not in kinds:
                return _known(block, lines, kinds)
    if (block.translate(None, _LINE_BYTES) != b"\r\n" * block.count(_CR_LF)
            or block[-2:] != _CR_LF):
        raise _line_error(block, bad)
    special = {}
    kept = []
    names = _NAMES
    lines = block.split(_CR_LF)
    lines.pop()                 # the empty piece after the last CRLF
    if seen is not None and len(seen) + len(lines) > LINES_REMEMBERED:
        # Full: start again with this block's lines. A line that changes with every answer
        # (Date, each second) would otherwise fill the table for good, and the connection's
        # repeated lines would all take the whole check again.
        seen.clear()
    for line in lines:
        name, colon, value = line.partition(b":")
        kind = names.get(name)
        if kind is None or not colon:
            kind = _kind_of(name) if colon else None
            if kind is None:
                raise _line_error(block, bad)
        if not kind:
            kept.append(line)
            if seen is not None and len(seen) < LINES_REMEMBERED and len(line) <= LINE_BYTES_REMEMBERED:
                seen[line] = _GOES_ON
            continue
        if kind in FRAMING_FIELDS:
            value = value.strip(b" \t")
            values = special.get(kind)
            if values is None:
                special[kind] = [value]
            else:
                values.append(value)
        else:
            value = None
        if seen is not None and len(seen) < LINES_REMEMBERED and len(line) <= LINE_BYTES_REMEMBERED:
            seen[line] = (kind, value)
    if len(kept) == len(lines):
        return special, block
    kept.append(b"")
    return special, b"\r\n".join(kept) if len(kept) > 1 else b""


def _known(block, lines, kinds):
    """scan's answer for a block of lines all in a table of lines seen, their kinds in `kinds`."""
    if kinds.count(_GOES_ON) == len(kinds):
        return {}, block
    special = {}
    kept = []
    for line, kind in zip(lines, kinds):
        if not kind:
            kept.append(line)
            continue
        name, value = kind
        if value is not None:
            values = special.get(name)
            if values is None:
                special[name] = [value]
            else:
                values.append(value)
    if not kept:
        return special, b""
    kept.append(b"")
    return special, b"\r\n".join(kept)


def _line_error(block, bad):
    """The error for the first malformed line of a block that did not validate."""
    line_ok = re.compile(_TOKEN + rb":[ \t]*(?:" + _VALUE + rb"[ \t]*)?").fullmatch
    for line in block.split(b"\r\n"):
        if line_ok(line) is None:
            if line[:1] in (b" ", b"\t"):
                return bad("obsolete line folding in header section")
            return bad("malformed header line %r" % line[:80])
    return bad("malformed header section")     # not reached: some line fails


def drop_named(fields, names):
    """fields without those whose lower-case name is in names (Connection's tokens)."""
    return b"".join(b"%s: %s\r\n" % pair for pair in _PAIRS.findall(fields)
                    if pair[0].lower() not in names)


def pairs(fields):
    """((name as received, value without OWS), ...) of field lines."""
    return tuple(_PAIRS.findall(fields))


def token_lists(special):
    """{field: its lower-case comma-separated tokens} for the token-list fields present
    (all fields of a name together)."""
    tokens = {}
    for name, values in special.items():
        if name in _TOKEN_LIST_FIELDS:
            if len(values) == 1 and values[0].find(b",") < 0:
                # One token ("Connection: keep-alive"), its OWS already gone (scan).
                tokens[name] = [values[0].lower()] if values[0] else []
                continue
            tokens[name] = [t.strip().lower() for value in values for t in value.split(b",") if t.strip()]
    return tokens


def content_length(special, bad):
    """None if absent; else the one value (identical duplicates allowed, RFC 9110 8.6)."""
    given = special.get(b"content-length")
    if given is None:
        return None
    if len(given) == 1 and given[0].isdigit() and len(given[0]) <= 18:     # the usual case
        return int(given[0])
    values = set()
    for value in given:
        for item in value.split(b","):
            item = item.strip()
            if not item.isdigit() or len(item) > 18:
                raise bad("invalid Content-Length %r" % value[:40])
            values.add(int(item))
    if len(values) > 1:
        raise bad("conflicting Content-Length values")
    return values.pop()
