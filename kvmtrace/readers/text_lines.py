"""Split trace text lines into prefix fields, all lines of a block at once.

Two layouts cover every text format kvmtrace reads:

* ``bracket``: ``COMM-PID [(TGID)] [CPU] [FLAGS] TS: EVENT: PAYLOAD`` (trace-cmd
  report default/-t/-N, the kernel's trace/trace_pipe, and perf script, where
  spaces instead of ``-`` separate comm and tid and the event is ``sys:event``);
* ``latency``: ``COMM8-PID CPUFLAGS TS: EVENT: PAYLOAD`` (trace-cmd report -l).

The block is cut once into whitespace tokens (two aligned arrays of token
starts and ends). Each line is anchored on one token (``[CPU]``, or the
timestamp for ``latency``) and its other fields are the neighbouring tokens, so
padding costs nothing and numpy does a fixed number of passes per block. The
comm is everything left of the last ``-PID`` before the anchor, so names with
spaces, dashes and colons (``CPU 0/KVM``, ``kworker/u16:2-events``,
``memfd:sealed-91``) survive.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import textscan as ts


@dataclass
class LineFields:
    """Per-line positions and values for one block; ``ok`` marks event lines."""

    ok: np.ndarray
    lstart: np.ndarray
    end: np.ndarray
    comm: tuple[np.ndarray, np.ndarray]
    pid: np.ndarray
    tgid: np.ndarray
    tgid_known: np.ndarray
    cpu: np.ndarray
    ts_ns: np.ndarray
    ts_has_dot: np.ndarray
    ts_frac_digits: np.ndarray
    flags: tuple[np.ndarray, np.ndarray]
    system: tuple[np.ndarray, np.ndarray]
    event: tuple[np.ndarray, np.ndarray]
    payload: tuple[np.ndarray, np.ndarray]
    #: 0 normal, 1 function tracer line, 2 <stack trace>, 3 and 4 the kernel's text of a syscall's
    #: entry ``sys_NAME(ARG: VAL, ...)`` and exit ``sys_NAME -> 0xRET``: ``event`` spans NAME
    special_event: np.ndarray
    #: the line begins like an event line (its "[CPU]" anchor, or in the latency layout its
    #: timestamp, is there), even if it was cut before its event name
    anchored: np.ndarray


class _Tokens:
    """Whitespace tokens of a block: ``start[k]``/``end[k]`` (exclusive) of token k."""

    def __init__(self, buf: np.ndarray) -> None:
        self.buf = buf
        n = len(buf)
        sp = buf <= 32
        edge = np.empty(n, bool)  # byte i begins a token (a token at byte 0 too) or ends one
        if n:
            edge[0] = not sp[0]
            np.not_equal(sp[1:], sp[:-1], out=edge[1:])
        change = np.flatnonzero(edge)  # alternately a token's start and its end
        self.count = (len(change) + 1) // 2
        # sentinel tokens at the end so index k+1..k+3 lookups never fall off; a last token that
        # runs to the end of the block ends there too
        self.start = np.full(self.count + 4, n, np.int64)
        self.start[:self.count] = change[0::2]
        self.end = np.full(self.count + 4, n, np.int64)
        self.end[:len(change) // 2] = change[1::2]
        # the block between two zero bytes: a clipped gather reads 0 anywhere outside it
        self._padded = np.concatenate((np.zeros(1, np.uint8), buf, np.zeros(1, np.uint8)))

    def char(self, pos: np.ndarray) -> np.ndarray:
        """``buf[pos]``, 0 outside the block."""
        return self._padded.take(np.asarray(pos, np.int64) + 1, mode="clip")

    def first_at(self, marks: np.ndarray, k_lo: np.ndarray, k_hi: np.ndarray) -> np.ndarray:
        """Index of the first marked token in ``[k_lo, k_hi]`` per line, or -1."""
        j = np.searchsorted(marks, k_lo)
        k = np.where(j < len(marks), marks[np.minimum(j, max(len(marks) - 1, 0))] if len(marks) else -1, -1)
        return np.where((k >= 0) & (k <= k_hi), k, -1)


def parse_block(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, layout: str,
                perf: bool = False) -> LineFields:
    """Decode the prefix of every line in ``buf``; lines that do not fit get ``ok=False``."""
    n = len(starts)
    tk = _Tokens(buf)
    S, E, ch = tk.start, tk.end, tk.char
    k0 = np.searchsorted(S[:tk.count], starts)
    k_last = np.searchsorted(E[:tk.count], ends, side="right") - 1
    ok = (k0 < tk.count) & (k_last >= k0)
    k0 = np.minimum(k0, tk.count)
    lstart = S[k0]
    end = np.where(ok, E[np.maximum(k_last, 0)], lstart)
    ok &= end <= ends

    def is_ts(k: np.ndarray) -> np.ndarray:
        """Whether token ``k`` (the last one past the end) is a timestamp: a digit, ..., "<digit>:"."""
        k = np.minimum(k, max(tk.count - 1, 0))
        return (ch(E[k] - 1) == 58) & ts.is_digit(ch(E[k] - 2)) & ts.is_digit(ch(S[k])) & (tk.count > 0)

    tgid = np.zeros(n, dtype=np.int64)
    tgid_known = np.zeros(n, dtype=bool)
    if layout == "bracket":
        # "[CPU]" tokens: of those that open with "[" (few), the ones a digit follows and "]" ends
        bracket = np.flatnonzero(buf[S[:tk.count]] == 91)
        is_cpu = bracket[ts.is_digit(ch(S[bracket] + 1)) & (ch(E[bracket] - 1) == 93)]
        kb = tk.first_at(is_cpu, k0 + 1, k_last)
        ok &= kb > k0
        anchored = ok & (kb <= k0 + 3)  # a comm may hold spaces: "CPU 0/KVM-4242"
        kb = np.where(ok, kb, k0)
        number, digits = ts.read_uint(buf, S[kb] + 1, E[kb] - 1, most=8)
        cpu = np.where(ok, number, 0).astype(np.int64)
        ok &= digits
        flagged = ~is_ts(kb + 1)
        kt = np.where(flagged, kb + 2, kb + 1)
        kf = kb + 1
        flags_start = np.where(flagged, S[kf], S[kt])
        flags_end = np.where(flagged, E[kf], S[kt])
        # "(TGID)" left of "[CPU]": one token "(-------)"/"(1234)" or "(" and "1234)"
        kq = kb - 1
        has_tgid = ok & (ch(E[kq] - 1) == 41)
        alone = has_tgid & (ch(S[kq]) != 40)
        ko = np.where(alone, kq - 1, kq)
        has_tgid &= (ch(S[ko]) == 40) & (~alone | (E[ko] - S[ko] == 1))
        t_s = np.where(alone, S[kq], S[ko] + 1)
        t_e = E[kq] - 1
        tgid_known = has_tgid & (t_e > t_s)
        some = np.flatnonzero(tgid_known)
        tgid_known[some] = ts.digits_forward(buf, t_s[some], t_e[some], max_steps=12) == t_e[some]
        tgid = np.where(tgid_known, ts.parse_uint(buf, t_s, np.where(tgid_known, t_e, t_s)).astype(np.int64), 0)
        kp = np.where(has_tgid, ko - 1, kq)
    else:  # latency: COMM8-PID CPUFLAGS TS:
        kt = tk.first_at(np.flatnonzero(is_ts(np.arange(tk.count))), k0 + 2, k_last)
        ok &= kt > k0
        anchored = ok.copy()
        kt = np.where(ok, kt, k0 + 2)
        kc = kt - 1
        cpu_end = ts.digits_forward(buf, S[kc], E[kc], max_steps=8)
        ok &= cpu_end > S[kc]
        cpu = ts.parse_uint(buf, S[kc], np.where(ok, cpu_end, S[kc])).astype(np.int64)
        flags_start, flags_end = cpu_end, E[kc]
        kp = kt - 2
    ok &= (kt <= k_last) & (kp >= k0)
    kp = np.maximum(kp, 0)
    ok &= is_ts(kt)

    pid_end = E[kp]
    pid_start = ts.digits_backward(buf, pid_end - 1, S[kp], max_steps=12) + 1
    ok &= pid_end > pid_start
    if perf:
        ok &= (pid_start == S[kp]) & (kp > k0)
        comm_end = E[np.maximum(kp - 1, 0)]
    else:
        ok &= ch(pid_start - 1) == 45
        comm_end = pid_start - 1
    ok &= comm_end > lstart
    pid = ts.parse_uint(buf, pid_start, np.where(ok, pid_end, pid_start)).astype(np.int64)

    ts_ns, has_dot, flen, ts_good = ts.parse_timestamp(buf, S[kt], E[kt] - 1)
    ok &= ts_good

    ke = kt + 1
    ok &= ke <= k_last
    sample = np.zeros(n, bool)
    if perf:
        # a sample of a hardware or software event: "TS: PERIOD EVENT[:MODIFIERS]: IP SYM (DSO)"
        kn = np.minimum(ke + 1, max(len(S) - 1, 0))
        sample = ok & (ke + 1 <= k_last) & (ts.digits_forward(buf, S[ke], E[ke], max_steps=20) == E[ke]) & (ch(E[kn] - 1) == 58)
        period_at = S[ke]
        ke = np.where(sample, ke + 1, ke)
    es, ev_end = S[ke], E[ke]
    sys_s = es.copy()
    sys_e = es.copy()
    ee = ev_end - 1
    is_event = (ch(ee) == 58) & (ee > es)
    if perf:
        # "sys:event:" - the system ends at the token's first colon; a sample's event ends there
        colon1 = ts.scan(buf, es, ee, ~ts.lut(":"), max_steps=64)
        has_sys = is_event & (colon1 < ee) & (colon1 > es) & ~sample
        sys_e = np.where(has_sys, colon1, es)
        es = np.where(has_sys, colon1 + 1, es)
        ee = np.where(sample, colon1, ee)
    nxt = np.where(ke + 1 <= k_last, S[np.minimum(ke + 1, len(S) - 1)], end)
    special = np.zeros(n, dtype=np.int8)
    is_func = ok & ~is_event & (ch(nxt) == 60) & (ch(nxt + 1) == 45)
    is_stack = ok & ~is_event & (ch(es) == 60) & (ch(es + 1) == ord("s")) & (ch(es + 12) == 62)
    # syscalls' entry and exit as kernel/trace/trace_syscalls.c prints them (print_syscall_enter/exit)
    sys_word = ok & (not perf) & (ch(es) == ord("s")) & (ch(es + 1) == ord("y")) & (ch(es + 2) == ord("s")) & (ch(es + 3) == 95)
    paren = ev_end.copy()  # only a "sys_" token is walked to its "(" (a pass per byte it moves)
    paren[sys_word] = ts.scan(buf, es[sys_word], ev_end[sys_word], ~ts.lut("("), max_steps=64)
    is_enter = sys_word & (paren < ev_end) & (paren > es + 4)
    arrow = np.minimum(ke + 1, max(len(S) - 1, 0))
    is_exit = sys_word & ~is_enter & ~is_event & (ke + 2 <= k_last) & (E[arrow] - S[arrow] == 2) \
        & (ch(S[arrow]) == 45) & (ch(S[arrow] + 1) == 62)
    special[is_func] = 1
    special[is_stack] = 2
    special[is_enter] = 3
    special[is_exit] = 4
    ok &= is_event | is_func | is_stack | is_enter | is_exit
    ps = np.where(is_event, nxt, es)
    ps = np.where(is_stack, end, ps)
    ee = np.where(is_event, ee, es)
    # entry: NAME between "sys_" and "(", the arguments inside the parentheses; exit: the value after "->"
    if perf:  # a sample's payload keeps its period: "PERIOD EVENT: IP SYM (DSO)"
        ps = np.where(sample, period_at, ps)
    es = np.where(is_enter | is_exit, es + 4, es)
    ee = np.where(is_enter, paren, np.where(is_exit, ev_end, ee))
    ps = np.where(is_enter, paren + 1, np.where(is_exit, S[np.minimum(ke + 2, max(len(S) - 1, 0))], ps))
    payload_end = np.where(is_enter & (ch(end - 1) == 41), end - 1, end)
    return LineFields(
        ok=ok, lstart=lstart, end=end, comm=(lstart, comm_end), pid=pid, tgid=tgid,
        tgid_known=tgid_known, cpu=cpu, ts_ns=ts_ns, ts_has_dot=has_dot, ts_frac_digits=flen,
        flags=(flags_start, flags_end), system=(sys_s, sys_e), event=(es, ee),
        payload=(ps, payload_end), special_event=special, anchored=anchored | ok,
    )
