"""Ftrace text inside other files: Android's systrace HTML, its JavaScript string form, ``atrace -z``.

- systrace writes one ``<script class="trace-data" type="application/text">`` section per tracing
  agent into an HTML page; the kernel's text is the section that is not JSON.
- older systrace wrote that text as a JavaScript string: every line ends ``\\n\\`` (an escaped
  newline, then a line continuation), often after ``var linuxPerfData = "\\``;
- ``atrace -z`` prints ``TRACE:`` and then the text compressed with zlib.

Each is read as a stream, so memory follows one block, never the page or the decompressed text.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Iterator

#: what a systrace page's data sections begin and end with
SECTION = b'<script class="trace-data" type="application/text">'
SECTION_END = b"</script>"
#: an escaped newline and a line continuation: the JavaScript string form's line end
JS_LINE_END = b"\\n\\\n"
ATRACE = (b"TRACE:\n", b"TRACE:\r\n")
_CLOSING = re.compile(rb'(?m)^[ \t]*";[ \t]*\r?\n?')


def kind(head: bytes) -> str | None:
    """"systrace-html", "atrace-zlib" or "javascript" when ``head`` starts one of the wrappers."""
    start = head.lstrip()[:64].lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "systrace-html"
    for mark in ATRACE:
        if head.startswith(mark) and head[len(mark): len(mark) + 1] == b"\x78":  # a zlib header
            return "atrace-zlib"
    if JS_LINE_END in head[:8192]:
        return "javascript"
    return None


def unwrapped(blocks: Iterator[bytes], wrapper: str) -> Iterator[bytes]:
    """The ftrace text inside ``blocks`` (the file's bytes) wrapped as ``wrapper``. zlib's output
    comes in pieces of at most 16 MiB, so the caller's bound on the total stops a bomb early."""
    if wrapper == "atrace-zlib":
        yield from _javascript(_inflated(blocks))
    elif wrapper == "systrace-html":
        yield from _javascript(_sections(blocks))
    else:
        yield from _javascript(blocks)


def _inflated(blocks: Iterator[bytes]) -> Iterator[bytes]:
    d = zlib.decompressobj()
    first = True
    for block in blocks:
        if first:
            block = block.split(b"\n", 1)[1]  # after "TRACE:"
            first = False
        while block:
            out = d.decompress(block, 16 << 20)
            block = d.unconsumed_tail
            if out:
                yield out
        if d.eof:
            return
    rest = d.flush()
    if rest:
        yield rest


def _sections(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The text of each trace-data section that is not JSON, in order."""
    carry = b""
    inside = False
    decided = False  # inside: whether this section's first bytes were looked at
    keep = False
    for block in blocks:
        data = carry + block
        carry = b""
        while data:
            if not inside:
                at = data.find(SECTION)
                if at < 0:
                    carry = data[-len(SECTION):]
                    break
                line_end = data.find(b"\n", at)
                if line_end < 0:
                    carry = data[at:]
                    break
                data = data[line_end + 1:]
                inside, decided = True, False
                continue
            if not decided:
                lead = data.lstrip()
                if not lead and len(data) < 4096:
                    carry = data
                    break
                keep = not lead[:1] in (b"{", b"[")  # JSON: another agent's data
                decided = True
            end = data.find(SECTION_END)
            if end < 0:
                cut = max(len(data) - len(SECTION_END), 0)  # the end tag may straddle the next block
                if keep and cut:
                    yield data[:cut]
                carry = data[cut:]
                break
            if keep:
                yield data[:end]
            data = data[end + len(SECTION_END):]
            inside = False
    # a section cut before its end tag: what it held is still text
    if inside and keep and carry:
        yield carry


def _javascript(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Text whose lines end ``\\n\\`` (a JavaScript string) as plain lines; other text unchanged."""
    carry = b""
    js: bool | None = None
    opened = False  # the string's "var ... = \"\\" line looked for
    for block in blocks:
        data = carry + block
        if js is None:
            if len(data) < 8192:
                carry = data  # too little to tell yet
                continue
            js = JS_LINE_END in data[:8192]
        if not js:
            carry = b""
            yield data
            continue
        hold = next((k for k in range(len(JS_LINE_END) - 1, 0, -1) if data.endswith(JS_LINE_END[:k])), 0)
        data, carry = (data[:-hold], data[-hold:]) if hold else (data, b"")
        yield _unescape(data, not opened)
        opened = True
    if carry:
        yield _unescape(carry, not opened) if js or (js is None and JS_LINE_END in carry) else carry


def _unescape(data: bytes, first: bool) -> bytes:
    """One piece of the JavaScript string: escaped line ends, quotes and backslashes as text; the
    ``var ... = "\\`` opening (in the ``first`` piece) and the closing ``";`` lines dropped."""
    out = data.replace(JS_LINE_END, b"\n").replace(b'\\"', b'"').replace(b"\\'", b"'")
    if first and b'= "\\\n' in out[:4096]:
        out = out.split(b'= "\\\n', 1)[1]
    return _CLOSING.sub(b"", out)
