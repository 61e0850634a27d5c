"""Event ``format`` files → field layouts, and the symbolic tables in their print formats."""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

_FIELD = re.compile(r"^\s*field:(?P<decl>.+?);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);(?:\s*signed:(?P<signed>\d+);)?", re.M)
_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->(\w+)[^,]*,")  # also `REC->exit_reason & 0xffff,`
_PAIR = re.compile(r'\{\s*([^,{}"]+?)\s*,\s*((?:"[^"]*"\s*)+)\}')
#: enum constants that print formats use by name (include/linux/hrtimer.h)
_CONSTANTS = {
    "HRTIMER_MODE_ABS": 0, "HRTIMER_MODE_REL": 1, "HRTIMER_MODE_PINNED": 2, "HRTIMER_MODE_SOFT": 4,
    "HRTIMER_MODE_HARD": 8, "HRTIMER_MODE_ABS_PINNED": 2, "HRTIMER_MODE_REL_PINNED": 3,
    "HRTIMER_MODE_ABS_SOFT": 4, "HRTIMER_MODE_REL_SOFT": 5, "HRTIMER_MODE_ABS_PINNED_SOFT": 6,
    "HRTIMER_MODE_REL_PINNED_SOFT": 7, "HRTIMER_MODE_ABS_HARD": 8, "HRTIMER_MODE_REL_HARD": 9,
    "HRTIMER_MODE_ABS_PINNED_HARD": 10, "HRTIMER_MODE_REL_PINNED_HARD": 11,
}


def _value(text: str) -> int | None:
    """Evaluate a print-format constant (``0x10``, ``(1 << 2)``, ``A | B``, enum names).

    Parsed with ``ast`` and evaluated over a whitelist of integer operators: the
    text comes from an untrusted file and is never executed.
    """
    try:
        tree = ast.parse(re.sub(r"(?<=[0-9a-fA-F])[uUlL]+\b", "", text.strip()), mode="eval")
        return _eval(tree.body)
    except (SyntaxError, ValueError, KeyError, TypeError, RecursionError):
        return None


_OPS = {ast.LShift: lambda a, b: a << b if 0 <= b < 128 else None, ast.RShift: lambda a, b: a >> b if 0 <= b < 128 else None,
        ast.BitOr: lambda a, b: a | b, ast.BitAnd: lambda a, b: a & b, ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b}


def _eval(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        out = _OPS[type(node.op)](_eval(node.left), _eval(node.right))
        if out is None:
            raise ValueError("shift out of range")
        return out
    raise ValueError(f"unsupported constant expression {ast.dump(node)[:40]}")


def constant(text: str) -> int | None:
    """Public face of the safe constant evaluator (used for ``prev_state``'s report mask)."""
    return _value(text)


@dataclass(frozen=True)
class Field:
    """One record field: C declaration, byte offset and size, signedness."""

    name: str
    decl: str
    offset: int
    size: int
    signed: bool
    array_len: int | None = None     # char comm[16] -> 16
    data_loc: bool = False           # __data_loc: u32 = (len << 16) | offset
    rel_loc: bool = False            # __rel_loc: offset relative to the field's end

    @property
    def flexible(self) -> bool:
        """``char buf[]`` of size 0 (some kernels' formats drop the ``[]``): the record's remaining bytes
        (ftrace's print)."""
        return self.size == 0 and "char" in self.decl and "*" not in self.decl and not (self.data_loc or self.rel_loc)

    @property
    def is_string(self) -> bool:
        return "char" in self.decl and (self.array_len is not None or self.data_loc or self.rel_loc or self.flexible)


@dataclass
class EventFormat:
    id: int
    name: str
    system: str
    fields: dict[str, Field] = field(default_factory=dict)
    print_fmt: str = ""
    #: why the format cannot be what the kernel wrote (``layout_problem``, ``_print_problem``):
    #: its records are damage and their fields are not decoded
    damaged: str | None = None

    def symbolic(self, fname: str) -> list[dict[int, str]]:
        """The ``__print_symbolic(REC->fname, ...)`` tables in the print format, in order."""
        out = []
        for m in _SYMBOLIC.finditer(self.print_fmt):
            if m.group(1) != fname:
                continue
            # find the end of this __print_symbolic( ... ) call
            depth, i = 1, self.print_fmt.index("(", m.start()) + 1
            while i < len(self.print_fmt) and depth:
                c = self.print_fmt[i]
                depth += c == "("
                depth -= c == ")"
                i += 1
            body = self.print_fmt[m.end(): i]
            table: dict[int, str] = {}
            for v, name in _PAIR.findall(body):
                name = "".join(re.findall(r'"([^"]*)"', name))
                val = _value(v)
                if val is not None:
                    table.setdefault(val, name)
            out.append(table)
        return out


def _field_name(decl: str) -> str:
    """``unsigned long vcpu_pc`` / ``char comm[16]`` / ``__data_loc char[] name`` → the name."""
    return re.split(r"[\s*]+", re.sub(r"\[\d*\]\s*$", "", decl.strip()))[-1]


_NAME = re.compile(r"^name:\s*(\S+)", re.M)
_ID = re.compile(r"^ID:\s*(\d+)", re.M)


def parse_format(text: str, system: str) -> EventFormat | None:
    """Parse one ``format`` file; None when it has no name/ID."""
    name = _NAME.search(text)
    ident = _ID.search(text)
    if not name or not ident:
        return None
    ev = EventFormat(int(ident.group(1)), name.group(1), system)
    for m in _FIELD.finditer(text):
        decl = m.group("decl").strip()
        data_loc = decl.startswith("__data_loc")
        rel_loc = decl.startswith("__rel_loc")
        arr = re.search(r"\[(\d*)\]\s*$", decl)
        fname = _field_name(decl)
        ev.fields[fname] = Field(
            name=fname, decl=decl, offset=int(m.group("off")), size=int(m.group("size")),
            signed=m.group("signed") == "1",
            array_len=int(arr.group(1)) if arr and arr.group(1) and not (data_loc or rel_loc) else None,
            data_loc=data_loc, rel_loc=rel_loc,
        )
    pf = re.search(r"^print fmt:\s*(.*)$", text, re.M | re.S)
    ev.print_fmt = pf.group(1).strip() if pf else ""
    ev.damaged = layout_problem(ev.fields) or _print_problem(ev)
    return ev


def _print_problem(ev: EventFormat) -> str | None:
    """A format the kernel wrote ends with its print fmt, which reads only its own fields: a cut
    section has none, a lost field line leaves a name no declaration holds (declarations are
    searched, not parsed names: ``char func[TRACE_FUNC_SIZE+1]`` declares ``func``)."""
    if not ev.print_fmt:
        return "no print fmt (a cut format)"
    declared = " ".join(f.decl for f in ev.fields.values())
    lost = sorted(n for n in set(re.findall(r"REC->(\w+)", ev.print_fmt)) if not re.search(rf"\b{n}\b", declared))
    return f"print fmt names fields the format lacks ({', '.join(lost[:3])})" if lost else None


#: no record field lies past this (a ring-buffer page)
MAX_RECORD = 1 << 16


def layout_problem(fields: dict[str, Field]) -> str | None:
    """What makes a format's field layout impossible, or None. The kernel lays fields out one after
    another without overlap, within a record, and common_type first at offset 0. (Declared types
    do not give sizes: syscall arguments declared ``int`` are stored as ``long``.)"""
    placed = sorted((f for f in fields.values() if f.size), key=lambda f: f.offset)
    for f in placed:
        if f.offset + f.size > MAX_RECORD:
            return f"field {f.name} at {f.offset}+{f.size} lies past any record"
        if (f.data_loc or f.rel_loc) and f.size != 4:
            return f"field {f.name} is a {f.size}-byte location, not 4"
        if f.array_len is None and not (f.data_loc or f.rel_loc) and "[" not in f.decl and f.size not in (1, 2, 4, 8):
            return f"field {f.name} is {f.size} bytes: no scalar is"
    for a, b in zip(placed, placed[1:]):
        if b.offset < a.offset + a.size:
            return f"fields {a.name} and {b.name} overlap"
    end = max((f.offset + f.size for f in placed), default=0)
    tail = next((f for f in fields.values() if not f.size and f.offset < end), None)
    if tail is not None:  # a field of no size is the record's open-ended tail: nothing follows it
        return f"field {tail.name} of no size at {tail.offset}, before other fields end at {end}"
    common = fields.get("common_type")
    if common is not None and common.offset != 0:
        return f"common_type at offset {common.offset}, not 0"
    return None


class FormatTable(Mapping):
    """Event id → EventFormat, each format file parsed on first use.

    A trace.dat carries the format of every event the kernel has (over 2,000), while a trace
    holds a few dozen of them: only their names and ids are read up front.
    """

    def __init__(self, texts: list[tuple[str, str]]) -> None:
        self._texts: dict[int, tuple[str, str]] = {}
        self.names: dict[int, tuple[str, str]] = {}  # id → (name, system)
        for system, text in texts:
            name = _NAME.search(text)
            ident = _ID.search(text)
            if name and ident and int(ident.group(1)) < 1 << 32:  # a record's id is 16 bits: larger is damage
                i = int(ident.group(1))
                self._texts[i] = (system, text)
                self.names[i] = (name.group(1), system)
        self._parsed: dict[int, EventFormat] = {}

    def __getitem__(self, ident: int) -> EventFormat:
        ev = self._parsed.get(ident)
        if ev is None:
            system, text = self._texts[ident]
            parsed = parse_format(text, system)
            if parsed is None:  # not reached: only texts with a name and an ID are kept
                raise KeyError(ident)
            ev = self._parsed[ident] = parsed
        return ev

    def __iter__(self) -> Iterator[int]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)


def header_page_layout(text: str) -> dict[str, tuple[int, int]]:
    """{field: (offset, size)} of the ring-buffer page header (timestamp, commit, data)."""
    out = {}
    for m in _FIELD.finditer(text):
        out[_field_name(m.group("decl"))] = (int(m.group("off")), int(m.group("size")))
    return out
