"""Unit tests of the primitives the layers share: what each promises, on small hand-made inputs."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from kvmtrace.schema import concat


def test_concat_unites_categories_by_value_not_by_code():
    """Parts whose categories are the same set in another order (equal dtypes, for pandas) or other
    sets, and a part with no values at all, concatenate to the values they hold."""
    a = pd.DataFrame({"x": pd.Categorical(["b", "a", "b"], categories=["a", "b"]), "n": [1, 2, 3]})
    b = pd.DataFrame({"x": pd.Categorical(["a", "b"], categories=["b", "a"]), "n": [4, 5]})
    c = pd.DataFrame({"x": pd.Categorical(["c", None]), "n": [6, 7]})
    d = pd.DataFrame({"x": [None], "n": [8]})
    out = concat([a, b, None, c, d])
    assert out["x"].tolist()[:6] == ["b", "a", "b", "a", "b", "c"] and out["x"].isna().tolist()[6:] == [True, True]
    assert isinstance(out["x"].dtype, pd.CategoricalDtype) and list(out["x"].cat.categories) == ["a", "b", "c"]
    assert out["n"].tolist() == list(range(1, 9)) and list(out.columns) == ["x", "n"]
    same = concat([a, a])
    assert same["x"].dtype == a["x"].dtype and same["x"].tolist() == ["b", "a", "b"] * 2
    other = concat([a, pd.DataFrame({"x": pd.Categorical(["c"]), "m": [0.5]})])  # another layout: every column
    assert list(other.columns) == ["x", "n", "m"] and other["x"].tolist() == ["b", "a", "b", "c"]
    assert isinstance(other["x"].dtype, pd.CategoricalDtype) and other["n"].isna().tolist() == [False] * 3 + [True]


def test_finding_labels_refuse_values_outside_their_categories():
    """A confidence or kind outside the fixed categories would become NA without a word."""
    import numpy as np
    import pytest

    from kvmtrace.analyzers.base import CONFIDENCE, labels

    assert labels(np.array(["inferred", "proven"]), 2, CONFIDENCE).tolist() == ["inferred", "proven"]
    with pytest.raises(ValueError, match="certain"):
        labels(np.array(["proven", "certain"]), 2, CONFIDENCE)


def test_every_error_kvmtrace_explains_is_one_kvmtrace_error():
    """One base to catch, the old bases kept (a missing event is still a KeyError), and one
    unquoted line."""
    import pytest

    import kvmtrace
    from kvmtrace.compare import compare
    from kvmtrace.errors import OutputError, TraceFormatError
    from conftest import ARM64

    assert issubclass(TraceFormatError, kvmtrace.KvmtraceError) and issubclass(OutputError, kvmtrace.KvmtraceError)
    tr = kvmtrace.load(ARM64 / "arm64-6.1-fixed-tick.dat")
    with pytest.raises(KeyError) as got:
        tr.df("sched_no_such_event")
    assert isinstance(got.value, kvmtrace.KvmtraceError)
    assert str(got.value).startswith("arm64-6.1-fixed-tick.dat: no 'sched_no_such_event' events")
    with pytest.raises(ValueError) as bad:
        compare([], [])
    assert isinstance(bad.value, kvmtrace.KvmtraceError) and "at least one trace" in str(bad.value)


# --- the model's primitives, on hand-made timelines ------------------------------------------

def timeline(events: list[tuple[int, str]], pid: int = 100, entry_path: set[int] = frozenset()):
    """A Timeline of (cpu, class name) events in (cpu, seq) order; ``entry_path``: positions the
    guest-entry code emitted."""
    import numpy as np

    from kvmtrace.model.timeline import Cls, Coded, Timeline
    from kvmtrace.seqindex import SeqIndex

    n = len(events)
    cpu = np.array([c for c, _ in events], np.int32)
    cls = np.array([int(Cls[name]) for _, name in events], np.int8)
    seq = np.arange(n, dtype=np.int64)
    zero = np.zeros(n, bool)
    path = zero.copy()
    path[list(entry_path)] = True
    return Timeline(ts=seq * 1000, seq=seq, cpu=cpu, pid=np.full(n, pid, np.int32), cls=cls, hardirq=zero, irqs_off=zero,
                    flags_known=False, nmi=zero, entry_path=path, caller=Coded(np.full(n, -1), []),
                    comm=Coded(np.zeros(n, np.int32), ["CPU 0/KVM"]), rcu_event=None, rcu_pos=np.zeros(0, np.int64),
                    rcu_counter=np.zeros(0, np.int64),
                    rcu_change=np.zeros(n, np.int8), pos_by_seq=SeqIndex(seq, np.arange(n)), row=np.arange(n),
                    damaged=zero)


def test_alternating_pairs_each_open_with_the_next_event_of_the_pair_on_its_cpu():
    from kvmtrace.model.timeline import Cls, alternating

    tl = timeline([(0, "ENTRY"), (0, "OTHER"), (0, "EXIT"), (0, "ENTRY"), (0, "ENTRY"), (0, "EXIT"), (0, "ENTRY"),
                   (1, "EXIT"), (1, "ENTRY"), (1, "EXIT")])
    p = alternating(tl, Cls.ENTRY, Cls.EXIT)
    assert p.open_pos.tolist() == [0, 4, 8] and p.close_pos.tolist() == [2, 5, 9]
    # an entry left open at CPU 0's end is not paired with CPU 1's first exit
    assert 6 not in p.open_pos.tolist() and 7 not in p.close_pos.tolist()
    tl.pid[5] = 200  # another task's exit closes nothing with same_pid
    q = alternating(tl, Cls.ENTRY, Cls.EXIT, same_pid=True)
    assert q.open_pos.tolist() == [0, 8] and q.close_pos.tolist() == [2, 9]


def test_containing_finds_the_interval_on_the_positions_cpu_only():
    import numpy as np

    from kvmtrace.model.timeline import containing

    tl = timeline([(0, "OTHER")] * 6 + [(1, "OTHER")] * 4)
    starts, ends = np.array([0, 3, 6]), np.array([2, 5, 9])
    got = containing(tl, starts, ends, np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    assert got.tolist() == [-1, 0, -1, -1, 1, -1, -1, 2, 2, -1]  # the start itself is not inside; the end neither
    assert containing(tl, starts, ends, np.array([2, 9]), include_end=True).tolist() == [0, 2]
    assert containing(tl, starts[:1], np.array([8]), np.array([7])).tolist() == [-1]  # [0, 8) spans CPUs: not on CPU 1
    assert containing(tl, np.zeros(0, np.int64), np.zeros(0, np.int64), np.array([1])).tolist() == [-1]


def test_the_guest_return_is_the_first_host_event_after_the_entry_path_and_its_brackets():
    import numpy as np

    from kvmtrace.model.runs import _guest_return

    # kvm_entry, the reworked entry's irq_enable in RCU brackets, the EQS entry, then the guest; the
    # first host event after it is the return
    tl = timeline([(0, "ENTRY"), (0, "RCU_OPEN"), (0, "IRQ_ON"), (0, "RCU_CLOSE"), (0, "RCU_STOP"), (0, "RCU_START"),
                   (0, "IRQ_OFF"), (0, "EXIT")], entry_path={2, 4})
    assert _guest_return(tl, np.array([0]), np.array([7])).tolist() == [5]
    # no entry-path events: the first event after kvm_entry
    plain = timeline([(0, "ENTRY"), (0, "HANDLER"), (0, "EXIT")])
    assert _guest_return(plain, np.array([0]), np.array([2])).tolist() == [1]
    # nothing between entry and exit: the exit
    empty = timeline([(0, "ENTRY"), (0, "EXIT")])
    assert _guest_return(empty, np.array([0]), np.array([1])).tolist() == [1]


def test_seq_index_maps_seq_numbers_dense_or_sparse_and_gives_minus_one_elsewhere():
    import numpy as np

    from kvmtrace.seqindex import SeqIndex

    dense = SeqIndex(np.array([10, 11, 13]), np.array([0, 1, 2]))
    assert dense.dense is not None and dense[np.array([13, 10, 12, 9, 99])].tolist() == [2, 0, -1, -1, -1]
    sparse = SeqIndex(np.array([5, 10**9, 3 * 10**9]), np.array([7, 8, 9]))
    assert sparse.dense is None and sparse[np.array([3 * 10**9, 5, 6, 4 * 10**9])].tolist() == [9, 7, -1, -1]
    assert SeqIndex(np.zeros(0, np.int64), np.zeros(0, np.int64))[np.array([1])].tolist() == [-1]
    # positions of consecutive seq numbers need no array; any other order or a gap gets one
    rows = SeqIndex(np.arange(100, 105))
    assert rows.identity and rows[np.array([104, 100, 99, 105])].tolist() == [4, 0, -1, -1]
    for seq in ([3, 2, 4], [0, 1, 3], [1, 1, 2]):
        got = SeqIndex(np.array(seq))
        assert not got.identity and got[np.array(seq)].tolist() == [max(i for i, s in enumerate(seq) if s == x)
                                                                      for x in seq]
    assert SeqIndex(np.zeros(0, np.int64))[np.array([1])].tolist() == [-1]


@pytest.mark.parametrize("per_matrix", [1 << 20, 7])
def test_digit_windows_answer_every_scan_as_the_byte_by_byte_scan_does(per_matrix, monkeypatch):
    """``digits_forward``/``digits_backward`` replace the byte-at-a-time ``scan`` in the text parser
    and the field conversions: the same stop position forward and backward, for decimal and hex
    digits, at block edges, past limits and at the step bound, whole or a few windows at a time;
    ``parse_uint`` gives what Python's ``int`` does, modulo 2**64, and ``read_uint`` also says which
    ranges are digits of its base and no longer than its bound."""
    import numpy as np

    from kvmtrace.readers import textscan as ts

    monkeypatch.setattr(ts, "_WINDOWS", per_matrix)
    rng = np.random.default_rng(7)
    alphabet = np.frombuffer(b"0123456789 -:.a[]FfGx`@", np.uint8)
    for _ in range(500):
        n = int(rng.integers(1, 160))
        buf = rng.choice(alphabet, n).astype(np.uint8)
        pos, lim, steps = rng.integers(-2, n + 2, 40), rng.integers(-2, n + 2, 40), int(rng.integers(1, 30))
        forward, limit = np.clip(pos, 0, None), np.minimum(lim, n)
        assert (ts.digits_forward(buf, forward, limit, steps) == ts.scan(buf, forward, limit, ts.DIGIT, 1, steps)).all()
        hexed = ts.digits_forward(buf, forward, limit, steps, member=ts.is_hex)
        assert (hexed == ts.scan(buf, forward, limit, ts.HEX, 1, steps)).all()
        back, low = np.minimum(pos, n - 1), np.clip(lim, 0, None)
        assert (ts.digits_backward(buf, back, low, steps) == ts.scan(buf, back, low, ts.DIGIT, -1, steps)).all()
        start = np.sort(rng.integers(0, n, 20))
        end = np.minimum(ts.digits_forward(buf, start, np.full(20, n), 30), n)
        text = buf.tobytes()
        assert ts.parse_uint(buf, start, end).tolist() == [int(text[a:b] or b"0") % 2**64 for a, b in zip(start, end)]
        lo, hi = np.sort(rng.integers(0, n + 1, (2, 30)), axis=0)  # any range: digits or not
        for base, most, form in ((10, 12, rb"[0-9]+"), (16, 9, rb"[0-9a-fA-F]+")):
            value, valid = ts.read_uint(buf, lo, hi, base, most)
            ok = [bool(re.fullmatch(form, text[a:b])) and b - a <= most for a, b in zip(lo, hi)]
            assert valid.tolist() == ok
            assert value.tolist() == [int(text[a:b], base) % 2**64 if k else 0 for a, b, k in zip(lo, hi, ok)]
    empty = np.zeros(0, np.uint8)
    assert ts.digits_forward(empty, np.array([0]), np.array([0]), 5).tolist() == [0]
    assert ts.parse_uint(empty, np.zeros(0, np.int64), np.zeros(0, np.int64)).tolist() == []


def test_timestamps_read_as_a_byte_matrix_equal_the_digit_walks():
    """``parse_timestamp`` reads a block's common widths as byte-matrix rows and walks the rest: the
    same value, dot, fraction digits and validity as walking every token, for blocks of one width,
    mixed widths, bare counters, and tokens damaged anywhere (a second dot, a letter, no digits on a
    side, a dot that moved); values past 2**64 wrap alike."""
    import numpy as np

    from kvmtrace.readers import textscan as ts

    rng = np.random.default_rng(11)
    for trial in range(300):
        sec_digits = int(rng.integers(1, 22))
        frac_digits = int(rng.integers(0, 12))
        n = int(rng.integers(1, 600))
        tokens = []
        for _ in range(n):
            sd = sec_digits if rng.random() < 0.9 else int(rng.integers(1, 26))
            fd = frac_digits if rng.random() < 0.9 else int(rng.integers(0, 34))
            tok = bytearray(rng.choice(np.frombuffer(b"0123456789", np.uint8), sd).tobytes())
            if fd:
                tok += b"." + rng.choice(np.frombuffer(b"0123456789", np.uint8), fd).tobytes()
            if rng.random() < 0.05 and tok:  # damage: a byte replaced by one a timestamp never holds
                tok[int(rng.integers(0, len(tok)))] = int(rng.choice(np.frombuffer(b".a:-x ", np.uint8)))
            tokens.append(bytes(tok))
        text = b" ".join(tokens)
        buf = np.frombuffer(text, np.uint8)
        lengths = np.array([len(t) for t in tokens], np.int64)
        start = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
        end = start + lengths
        got = ts.parse_timestamp(buf, start, end)
        want = ts._walked_timestamps(buf, start, end)
        for g, w, what in zip(got, want, ("ns", "has_dot", "flen", "valid")):
            assert np.array_equal(g, w), (trial, what)
        for tok, ns, dot, ok in zip(tokens, got[0], got[1], got[3]):  # and what Python reads
            assert bool(ok) == bool(re.fullmatch(rb"[0-9]{1,24}(\.[0-9]{1,32})?", tok)), tok
            if not ok:
                continue
            if dot:
                sec, frac = tok.split(b".")
                assert int(ns) % 2**64 == (int(sec) * 10**9 + int(frac[:9].ljust(9, b"0"))) % 2**64
            else:
                assert int(ns) % 2**64 == int(tok) % 2**64


def test_damage_on_an_unknown_cpu_does_not_undo_damage_on_the_findings_cpu():
    """downgrade: each group of damage adds to what the others found (a garbled line's unknown CPU
    is checked after CPU 1's own damage, and must not clear it)."""
    import pandas as pd

    from kvmtrace.analyzers.damage import downgrade
    from kvmtrace.analyzers.base import findings_frame
    from kvmtrace.analyzers.states import Confidence

    f = findings_frame("misaccounted_tick", np.array([Confidence.PROVEN] * 2, dtype=object), pd.Series([1, 1]),
                       pd.Series([32, 32]), pd.array(["vcpu0", "vcpu0"]), pd.Series([0, 0]), pd.Series([9, 9]),
                       np.array([[104, 109, 112, 126], [300, 301, 302, 303]]), ["a", "b"], ["", ""])
    damaged = pd.DataFrame({"seq": [118, 51], "cpu": pd.array([1, None], dtype="Int32"), "event": ["x", "y"]})
    got = downgrade(f, damaged)
    assert got["confidence"].astype(str).tolist() == ["inferred", "proven"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789abcdefABCDEFxT_ \t\r\n", max_size=400))
def test_kallsyms_lines_are_found_as_the_kernel_format_reads(text):
    """The array scan of kallsyms finds exactly the lines ``ADDRESS TYPE NAME`` (a hex address of
    at most 16 significant digits, a one-character type, a name) that a line-by-line reading finds."""
    import re

    from kvmtrace.readers.tracedat.symbols import _lines

    raw = text.encode()
    want = []
    for line in raw.split(b"\n"):
        m = re.match(rb"([0-9a-fA-F]+)[ \t\r\v\f]+([^ \t\r\v\f])[ \t\r\v\f]+([^ \t\r\v\f]+)", line)
        if m and len(m.group(1)) <= 64 and len(m.group(1).lstrip(b"0")) <= 16:
            want.append((int(m.group(1), 16), m.group(3)))
    addr, first, last = _lines(np.frombuffer(raw, np.uint8))
    assert [(int(a), raw[f:t]) for a, f, t in zip(addr, first, last)] == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["entry", "exit", "other"])), max_size=60))
def test_hardirq_context_without_flags_is_the_handler_depth_per_cpu(events):
    """Without a flags column, an event is in hardirq context from a handler's entry to its exit on
    its CPU (nested ones included, an exit with no entry before it on the CPU counts from 0)."""
    from kvmtrace.model.timeline import Cls, _hardirq

    events = sorted(events, key=lambda e: e[0])  # the timeline is in CPU order
    cpu = np.array([c for c, _ in events], np.int32)
    cls = np.array([Cls.HANDLER if k == "entry" else Cls.OTHER for _, k in events], np.int8)
    leave = np.array([k == "exit" for _, k in events], bool)
    ev = pd.DataFrame({"cpu": cpu, "hardirq": pd.array([None] * len(events), dtype="boolean")})
    want, depth, last = [], 0, None
    for c, k in events:
        depth = 0 if c != last else depth  # each CPU from 0
        raw = depth + (k == "entry") - (k == "exit")
        depth, last = raw, c
        want.append(max(raw, 0) > 0 or k == "exit")
    assert _hardirq(ev, np.arange(len(events)), cls, leave).tolist() == want


def test_finding_texts_from_categoricals_equal_those_from_their_strings():
    """``labels`` and ``text`` read a categorical by its codes (a big trace has ~10^5 findings over a
    few texts): the same categories, in the same order, and the same rows as from the strings,
    NA as "?"."""
    import numpy as np
    import pandas as pd

    from kvmtrace.analyzers.base import labels, text

    rng = np.random.default_rng(1)
    for _ in range(300):
        cats = list(dict.fromkeys(rng.choice(["a", "b", "?", "c d"], int(rng.integers(1, 5)))))
        c = pd.Categorical.from_codes(rng.integers(-1, len(cats), int(rng.integers(0, 30))), cats)
        strings = np.array(["?" if pd.isna(v) else v for v in c], dtype=object)
        by_codes, by_strings = labels(c, len(c)), labels(strings, len(c))
        assert list(by_codes.categories) == list(by_strings.categories)
        assert by_codes.codes.tolist() == by_strings.codes.tolist()
        assert list(text("x ", c, "!")) == [f"x {v}!" for v in strings]
        assert labels("one", len(c)).tolist() == labels(np.array(["one"] * len(c), dtype=object), len(c)).tolist()


def test_the_counter_step_mode_is_np_unique_s():
    """``rcu._mode`` counts small deltas by bincount: the same value ``np.unique``'s counts pick,
    ties to the smallest, with large deltas (a wrapped or damaged counter) more common or not."""
    import numpy as np

    from kvmtrace.model.rcu import _mode

    rng = np.random.default_rng(5)
    for _ in range(400):
        pool = rng.choice([0, 1, 2, 4, 8, 4095, 4096, 5000, 2**31 + 3], int(rng.integers(1, 6)))
        d = rng.choice(pool, int(rng.integers(1, 40))).astype(np.int64)
        vals, counts = np.unique(d, return_counts=True)
        assert _mode(d) == int(vals[np.argmax(counts)])


def test_integer_fields_read_from_bytes_as_python_reads_them():
    """``to_int64``/``to_uint64_hex`` read text fields byte by byte, no regular expressions: every
    string gives what Python's ``int`` gives for the decimal (within 64 bits) or 0x-hex forms, NA
    for anything else: signs, prefixes, surrounding spaces, 19- and 20-digit edges, nulls."""
    import random
    import re

    import pandas as pd
    import pyarrow as pa

    from kvmtrace.fields.convert import to_int64, to_uint64_hex

    def want_int(s: str | None, allow_hex: bool) -> int | None:
        t = None if s is None else s.strip()
        if t is not None and re.fullmatch(r"-?[0-9]{1,19}", t) and -(1 << 63) <= int(t) < 1 << 63:
            return int(t)
        if allow_hex and t is not None and re.fullmatch(r"0[xX][0-9a-fA-F]{1,16}", t):
            v = int(t, 16)
            return v - (1 << 64) if v >= 1 << 63 else v
        return None

    def want_hex(s: str | None) -> int | None:
        t = None if s is None else s.strip()
        m = t is not None and re.fullmatch(r"(?:0[xX])?([0-9a-fA-F]+)", t)
        return int(m.group(1), 16) if m and len(m.group(1)) <= 16 else None

    rng = random.Random(3)
    cases: list[str | None] = ["", "0", "0x", "-", "-0", "007", "-9223372036854775808", "9223372036854775808",
                               "0xffffffffffffffff", "0x10000000000000000", " 12 ", "0x0x1", "00x1", None, "\u00a012"]
    for _ in range(3000):
        cases.append("".join(rng.choice("0123456789abcdefX- \t+g\u00a0") for _ in range(rng.randint(0, 22))) if rng.random() < .5
                     else rng.choice(["", "-", "0x", " "]) + "".join(rng.choice("0123456789abcdef") for _ in range(rng.randint(0, 21))))
    arr = pa.array(cases, pa.large_string())
    for allow_hex in (True, False):
        got = pd.Series(to_int64(arr, allow_hex)).astype(object).where(lambda x: x.notna(), None).tolist()
        assert got == [want_int(c, allow_hex) for c in cases]
    got = pd.Series(to_uint64_hex(arr)).astype(object).where(lambda x: x.notna(), None).tolist()
    assert got == [want_hex(c) for c in cases]


def _patterns_reference(name, payload, columns):
    """What the spec's patterns alone decode (the reference the split layout must agree with):
    the typed columns and the unparsed-row count."""
    from kvmtrace.fields import decode
    from kvmtrace.fields.specs import SPECS

    spec = SPECS[name]
    raw, hit = decode._by_patterns(spec, payload, columns)
    out = {}
    for col, arr in raw.items():
        if col in columns and arr.null_count != len(arr):
            out.update(decode._column(arr, spec.types.get(col, "cat"), col, columns))
    return out, int(len(payload) - hit.sum())


_WORDS = ["Start", "End", "++=", "--=", "Startirq", "0x1f", "0X2A", "12", "-3", "", "\t7", "8\t", "\r9", "é", "\u00a05",
          "1\x00", "x" * 9, "0x", "-0x", "0xg", "99999999999999999999", "-9223372036854775808", "a+0x1/0x2",
          "b+0x9/0x10", "f" * 17]


_WORD = ["Start", "End", "Startirq", "++=", "é", "x" * 9, "a+0x1/0x2", "do_idle+0x1c/0x40", "\x7f"]
_SIGNED_HEX = ["0", "1", "-3", "0x1f", "-0x10", "ffffffff", "4000000000000002", "DEAD"]
#: per column, tokens its pattern accepts
_VALID = {"polarity": _WORD, "caller": _WORD, "parent": _WORD, "oldnesting": _SIGNED_HEX, "newnesting": _SIGNED_HEX,
          "counter": ["12", "0", "0x1f", "0xABC", "9223372036854775807", "18446744073709551615"]}


@settings(max_examples=400, deadline=None)
@given(st.data(), st.sampled_from([("rcu_dyntick", ("polarity", "counter")), ("rcu_dyntick", ("oldnesting",)),
                                   ("irq_disable", ("caller", "parent")), ("irq_disable", ("caller",))]))
def test_split_tokens_decode_as_the_patterns_do(data, case):
    """Payloads split on spaces decode their tokens where they lie in the buffer (numbers read from
    the bytes, short words packed into keys): the same typed values, NA, category order and
    unparsed rows as the patterns give, for tabs, NULs, non-ASCII, empty, long and malformed tokens
    alike, in a column asked for or not."""
    import pyarrow as pa

    from kvmtrace.fields import decode
    from kvmtrace.fields.specs import SPECS

    name, columns = case
    split = SPECS[name].split
    token = st.sampled_from(_WORDS)

    clean = data.draw(st.booleans())  # only what each kind allows, or now and then anything

    def of(column):
        valid = st.sampled_from(_VALID[column])
        return valid if clean else st.one_of(valid, valid, valid, token)

    def prefixed(prefix, column):
        full = of(column).map(lambda w: prefix + w)
        return full if clean or not prefix else st.one_of(of(column), full)

    row = st.tuples(*[prefixed(prefix, column) for column, prefix in split]).map(" ".join)
    if not clean:  # a tab where a space belongs: as many blanks, not the layout
        row = st.one_of(row, row, row.map(lambda r: r.replace(" ", "\t", 1)))
    rows = data.draw(st.lists(st.one_of(row, st.lists(token, max_size=5).map(" ".join)) if data.draw(st.booleans())
                              else row, min_size=1, max_size=30))
    payload = pa.array(rows, pa.large_string())
    want, unparsed = _patterns_reference(name, payload, columns)
    got, got_unparsed = decode.decode_payload(name, payload, columns)
    event("split layout" if decode._by_split(SPECS[name], payload, columns) is not None else "patterns")
    assert got_unparsed == unparsed
    assert list(got.columns) == list(want)
    for col, values in want.items():
        mine = got[col].array
        if isinstance(values, pd.Categorical):
            assert list(mine.categories) == list(values.categories), col
        assert pd.Series(mine).astype(object).tolist() == pd.Series(values).astype(object).tolist(), col


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 70_000), max_size=60), st.lists(st.integers(-5, 70_000), max_size=8),
       st.sampled_from([np.int32, np.uint64, np.int64]), st.booleans())
def test_event_ids_are_picked_as_isin_picks_them(ids, wanted, dtype, huge):
    """The lookup table that picks records by event id answers as np.isin, for 16-bit ids, ids no
    format has, and (through np.isin itself) a damaged id too large for a table."""
    from kvmtrace.readers.tracedat.records import of_ids

    type_id = np.asarray(ids + ([2**40] if huge else []), dtype if not huge or dtype != np.int32 else np.int64)
    assert of_ids(type_id, wanted).tolist() == np.isin(type_id, wanted).tolist()
    assert of_ids(type_id, np.asarray(wanted, np.int64)).tolist() == np.isin(type_id, wanted).tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 3, 7, 8, 63, 200, 40_000]) | st.integers(-2, 70_000), max_size=80),
       st.integers(1, 12))
def test_rows_by_cpu_are_a_stable_sort_of_their_cpu_numbers(cpus, few):
    """The timeline's rows by CPU (one pass per CPU for a few, a radix sort for many, a plain sort
    for numbers outside 16 bits) are np.argsort's stable order, whichever way they are found."""
    from kvmtrace.model.timeline import by_cpu

    cpu = np.asarray(cpus, np.int32)
    got = by_cpu(cpu, few)
    assert got.dtype == np.int32 and got.tolist() == np.argsort(cpu, kind="stable").tolist()


def test_rows_by_cpu_of_more_events_than_one_slice_keep_each_cpus_order():
    from kvmtrace.model.timeline import by_cpu

    cpu = np.random.default_rng(7).integers(0, 3, (1 << 20) * 2 + 12345).astype(np.int32)
    assert np.array_equal(by_cpu(cpu), np.argsort(cpu, kind="stable"))


def _decoded_everything(path, columns=None):
    """Every event type of a text trace, decoded by ``Trace.df`` (all fields, or ``columns``) and by
    ``Trace.fields`` (the columns the model reads): frames and unparsed counts."""
    import kvmtrace
    from kvmtrace.model.timeline import READS

    tr = kvmtrace.load(path)
    out = {}
    for name in tr.event_names():
        d = tr.df(name)
        out[name] = (d, d.attrs["unparsed"])
        if name in READS:
            out[(name, "fields")] = (tr.fields(name, list(READS[name])), 0)
    return out


def _mixed_payloads(tmp_path):
    """Kernel text whose rcu payloads change layout part way (no counter, then one: another kernel's
    column absent from the first rows) and whose irq_disable rows break the split layout now and then."""
    lines = ["# tracer: nop"]
    for k in range(40):
        ts = f"{100 + k}.{k:06d}"
        rcu = "Start 0 1" if k < 15 else f"End 1 0 {0x1000 + 2 * k:#x}" if k % 3 else "Startirq 0 1 oops"
        lines.append(f"          <idle>-0       [001] d.h1. {ts}: rcu_dyntick: {rcu}")
        caller = "caller=do_idle+0x1c/0x40 parent=cpu_startup_entry+0x24/0x30" if k % 7 else "caller=0xffff0001 parent=x y"
        lines.append(f"          <idle>-0       [001] d.h1. {ts}: irq_disable: {caller}")
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("which", ["arm64", "x86", "mixed", "arm64.dat", "x86.dat"])
def test_payloads_decode_alike_a_slice_at_a_time(which, tmp_path, monkeypatch):
    """Field decoding goes a slice of rows at a time (their temporaries reused, not mapped afresh):
    in slices of 7 rows every event of a real trace, text or trace.dat records, and a trace whose
    layout changes between slices, decodes to the same columns, values, NA and category order as
    in one piece."""
    from conftest import ARM64, X86_SVM
    from kvmtrace import fields
    from kvmtrace.fields import binary, decode

    path = {"arm64": ARM64 / "arm64-6.1-prefix-tick.tracefs.txt.xz", "x86": X86_SVM / "x86-6.1-tick.tracefs.txt.xz",
            "arm64.dat": ARM64 / "arm64-6.1-prefix-tick.dat", "x86.dat": X86_SVM / "x86-6.1-tick.dat",
            "mixed": None}[which] or _mixed_payloads(tmp_path)
    if which.endswith(".dat"):  # a column only some records show, as kvm_exit's reason_flags: in some slices only
        plain = binary.ADAPTERS["irq_disable"]

        def late(r):
            far = r.rows > 20_000
            return {**plain(r), **({"late": binary._cat("yes" if f else None for f in far)} if far.any() else {})}
        monkeypatch.setitem(binary.ADAPTERS, "irq_disable", late)
    whole = _decoded_everything(path)
    if which.endswith(".dat"):
        assert whole["irq_disable"][0]["late"].notna().sum() > 0 and whole["irq_disable"][0]["late"].isna().sum() > 0
    for module in (decode, fields, binary):  # real traces: slices of a few thousand, each event cut many times
        monkeypatch.setattr(module, "SLICE_ROWS", 7 if which == "mixed" else 1021)
    sliced = _decoded_everything(path)
    assert sliced.keys() == whole.keys()
    assert len(whole) > (2 if which == "mixed" else 8)
    for key, (frame, unparsed) in whole.items():
        pd.testing.assert_frame_equal(sliced[key][0], frame, check_categorical=True, obj=str(key))
        assert sliced[key][1] == unparsed, key
    if which == "mixed":
        rcu = whole["rcu_dyntick"][0]
        assert rcu["counter"].isna().sum() == 15 + 9 and whole["rcu_dyntick"][1] == 9  # "oops" rows unparsed
        assert list(rcu["polarity"].cat.categories)[:2] == ["Start", "End"]
