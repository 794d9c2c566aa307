"""The field section of an HTTP/1.x head (RFC 9110 5, RFC 9112 5.1), pure: no I/O.

    scan(block, bad) -> (special, fields)
        block    the field lines of one head, each ending in CRLF (http.py brings bare-LF
                 heads to this form first)
        special  {lower-case name: [values without OWS]} for the FRAMING_FIELDS present
        fields   the lines that go on, as bytes: every REGENERATED field (hop-by-hop, Host,
                 Content-Length, Expect) removed, the others byte for byte as received
    drop_named(fields, names) -> fields     also without the fields Connection names
    pairs(fields) -> ((name, value), ...)   the lines as (name as received, value without OWS)
    token_lists(special) -> {name: [tokens]}, content_length(special, bad) -> int | None

Strategy: one regexp validates the whole block and one finds its (name, value) pairs, both in
C; Python then only lower-cases each name. A head whose fields all go on is passed on as the
block itself; otherwise one more regexp cuts the regenerated lines out. Every regexp here is
linear in its input: a value is runs of visible characters separated by runs of blanks, so a
blank run is tried once (a lazy value before [ \\t]* backtracked over blank runs).

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

_REGENERATED_LINE = re.compile(
    rb"^(?:" + b"|".join(re.escape(name) for name in sorted(REGENERATED)) + rb"):[^\n]*\n",
    re.IGNORECASE | re.MULTILINE)


def scan(block, bad):
    """(special, fields) of a CRLF field block; raises bad(msg) for a malformed line."""
    if _BLOCK.fullmatch(block) is None:
        raise _line_error(block, bad)
    special = {}
    regenerated = False
    for name, value in _PAIRS.findall(block):
        lname = name.lower()
        if lname in REGENERATED:
            regenerated = True
            if lname in FRAMING_FIELDS:
                values = special.get(lname)
                if values is None:
                    special[lname] = [value]
                else:
                    values.append(value)
    return special, (_REGENERATED_LINE.sub(b"", block) if regenerated else block)


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
