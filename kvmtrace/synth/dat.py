"""trace.dat writer for synthetic traces: version 6 (uncompressed) and 7 (zstd).

Layout per ``man 5 trace-cmd.dat.v6``: magic and version, endianness, long size
and page size; header_page and header_event; ftrace and event formats (the real
6.1 kernels' format files, ``formats/*.json``); kallsyms; printk strings;
saved cmdlines; CPU count; options; then ``flyrecord`` with one run of 4 KiB
ring-buffer pages per CPU. Version 7 (``man 5 trace-cmd.dat.v7``) puts the same
blocks in zstd-compressed sections found through options sections, and each
CPU's pages in compressed chunks. Symbols and printk strings are synthetic: each name
the model uses gets an address on first use, and the file lists them all.
Per-CPU pages go to temporary files while events stream in, so memory stays flat.
"""
from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from ..readers.tracedat.formats import EventFormat, parse_format
from .emit import Event
from .scenario import Scenario
from .sim import LOST

PAGE = 4096
PAGE_HEADER = 16            # u64 timestamp, u64 commit
MISSED_EVENTS, MISSED_STORED = 1 << 31, 1 << 30
TYPE_TIME_EXTEND = 30
SVM_EXITS = {"interrupt": 0x060, "cpuid": 0x072, "hlt": 0x078, "io": 0x07B, "msr": 0x07C, "npf": 0x400}
VMX_EXITS = {"EXTERNAL_INTERRUPT": 1, "CPUID": 10, "HLT": 12, "IO_INSTRUCTION": 30, "MSR_WRITE": 32, "EPT_VIOLATION": 48}
ARM64_RET = {"IRQ": 0, "SERROR": 1, "TRAP": 2}


class _Names:
    """Synthetic addresses for kernel symbols and printk strings, handed out on first use."""

    def __init__(self, base: int) -> None:
        self.stext = base + 0x10000
        self.syms: dict[str, int] = {"_text": base, "_stext": self.stext}
        self.next_sym = self.stext + 0x1000
        self.strings: dict[str, int] = {}
        self.next_str = base + 0x3C00000

    def symbol(self, text: str) -> int:
        """Address of ``sym+0xoff/0xsize`` (or a bare symbol)."""
        if text.startswith("0x"):
            return int(text, 16)
        name, _, rest = text.partition("+")
        off, _, size = rest.partition("/")
        if name not in self.syms:
            self.syms[name] = self.next_sym
            self.next_sym += (int(size, 16) if size else 0x100) + 0x40
        return self.syms[name] + (int(off, 16) if off else 0)

    def string(self, s: str) -> int:
        if s not in self.strings:
            self.strings[s] = self.next_str
            self.next_str += (len(s) + 8) // 8 * 8
        return self.strings[s]

    def kallsyms(self) -> bytes:
        # a closing symbol bounds the last function (tools resolve an address to the symbol below it)
        self.syms.setdefault("_etext", self.next_sym + 0x100)
        return "".join(f"{a:016x} {'T' if n.startswith('_') else 't'} {n}\n"
                       for n, a in sorted(self.syms.items(), key=lambda kv: kv[1])).encode()

    def printk(self) -> bytes:
        return "".join(f"0x{a:x} : \"{s}\"\n" for s, a in self.strings.items()).encode()


class _CpuPages:
    """One CPU's ring-buffer pages, written to a temporary file as they fill."""

    def __init__(self) -> None:
        self.fh: BinaryIO = tempfile.TemporaryFile()
        self.data = bytearray()
        self.page_ts = 0
        self.last_ts = 0
        self.flags = 0
        self.missed = 0
        self.pages = 0

    def _flush(self) -> None:
        if not self.data and not self.flags:
            return
        body = bytes(self.data)
        commit = len(body) | self.flags
        # the count of missed events is stored right after the data (MISSED_STORED)
        tail = struct.pack("<Q", self.missed) if self.flags & MISSED_STORED else b""
        page = struct.pack("<QQ", self.page_ts, commit) + body + tail
        self.fh.write(page + b"\0" * (PAGE - len(page)))
        self.pages += 1
        self.data = bytearray()
        self.flags = 0

    def lost(self, count: int) -> None:
        """``count`` events were lost before the next page (the per-page missed-events flag and count)."""
        self._flush()
        self.flags = MISSED_EVENTS | MISSED_STORED
        self.missed = count

    def add(self, ts: int, payload: bytes) -> None:
        rec_len = (len(payload) + 3) // 4 * 4
        need = 4 + rec_len + 8
        if self.data and len(self.data) + need > PAGE - PAGE_HEADER:
            self._flush()
        if not self.data:
            self.page_ts = ts
            self.last_ts = ts
        delta = ts - self.last_ts
        if delta >= 1 << 27:  # time extend: the upper bits of the delta in the next word
            self.data += struct.pack("<II", TYPE_TIME_EXTEND | ((delta & ((1 << 27) - 1)) << 5), delta >> 27)
            delta = 0
        self.data += struct.pack("<I", (rec_len // 4) | (delta << 5)) + payload + b"\0" * (rec_len - len(payload))
        self.last_ts = ts

    def finish(self) -> BinaryIO:
        self._flush()
        self.fh.seek(0)
        return self.fh


class DatWriter:
    """Stream events into a trace.dat v6 file readable by ``trace-cmd report``."""

    def __init__(self, path: str | Path, sc: Scenario, cpus: int, version: int = 6) -> None:
        self.path, self.sc, self.cpus, self.version = Path(path), sc, cpus, version
        spec = json.loads((Path(__file__).parent / "formats" / f"{sc.arch}-6.1.json").read_text())
        self.header_page, self.header_event = spec["header_page"], spec["header_event"]
        self.formats: dict[str, tuple[str, str, EventFormat]] = {}
        for name, v in spec["events"].items():
            text = v["format"]
            if name == "rcu_dyntick" and sc.rcu_event == "rcu_watching":
                name, text = "rcu_watching", text.replace("name: rcu_dyntick", "name: rcu_watching")
            fmt = parse_format(text, v["system"])
            if fmt is None:
                raise ValueError(f"{name}: a shipped format file without a name or ID")
            self.formats[name] = (v["system"], text, fmt)
        self.names = _Names(0xFFFFFFC008000000 if sc.arch == "arm64" else 0xFFFFFFFF81000000)
        self.pages = [_CpuPages() for _ in range(cpus)]
        self.comms: dict[int, str] = {}
        self._layouts: dict[str, tuple[struct.Struct, list[tuple[str, str, int]], int]] = {}

    def add(self, e: Event) -> None:
        if e.name == LOST:
            self.pages[e.cpu].lost(e.fields["count"])
            return
        if e.name not in self.formats:
            raise KeyError(f"no event format for {e.name} in the {self.sc.arch} format set")
        self.comms.setdefault(e.pid, e.comm if e.pid else "<idle>")
        self.pages[e.cpu].add(e.ts, self._record(e))

    # -- records -----------------------------------------------------------------------------------
    def _layout(self, name: str) -> tuple[struct.Struct, list[tuple[str, str, int]], int]:
        """A compiled record layout per event: one struct for the fixed part, in offset order."""
        if name not in self._layouts:
            _sys, _text, fmt = self.formats[name]
            size = max(f.offset + f.size for f in fmt.fields.values())
            spec, fields, pos = "<", [], 0
            for f in sorted(fmt.fields.values(), key=lambda f: f.offset):
                if f.offset > pos:
                    spec += f"{f.offset - pos}x"
                if f.data_loc:
                    spec += "I"
                    fields.append((f.name, "loc", 0))
                elif f.array_len or f.size not in (1, 2, 4, 8):
                    spec += f"{f.size}s"
                    fields.append((f.name, "bytes", 0))
                else:
                    spec += {1: "B", 2: "H", 4: "I", 8: "Q"}[f.size]
                    fields.append((f.name, "int", (1 << (8 * f.size)) - 1))  # two's complement for signed
                pos = f.offset + f.size
            spec += f"{size - pos}x" if size > pos else ""
            self._layouts[name] = (struct.Struct(spec), fields, fmt.id)
        return self._layouts[name]

    def _record(self, e: Event) -> bytes:
        st, fields, type_id = self._layout(e.name)
        vals = self._values(e)
        vals["common_type"] = type_id
        args: list[Any] = []
        dyn = b""
        for name, kind, mask in fields:
            v = vals.get(name, 0)
            if kind == "int":
                args.append(int(v) & mask)
            elif kind == "bytes":
                args.append(v.encode() if isinstance(v, str) else bytes(v))
            else:  # __data_loc: (length << 16) | offset of the string after the fixed part
                dyn = str(v).encode() + b"\0"
                args.append((len(dyn) << 16) | st.size)
        return st.pack(*args) + dyn

    def _values(self, e: Event) -> dict[str, Any]:
        f, n, sym, s = e.fields, e.name, self.names.symbol, self.names.string
        flags = (0x01 if e.irqs_off else 0) | (0x04 if e.need_resched else 0) | (0x08 if e.hardirq else 0) | (0x10 if e.softirq else 0)
        v: dict[str, Any] = {"common_flags": flags, "common_preempt_count": e.preempt & 0xF, "common_pid": e.pid}
        if n in ("irq_disable", "irq_enable"):
            v |= {"caller_offs": sym(f["caller"]) - self.names.stext, "parent_offs": sym(f["parent"]) - self.names.stext}
        elif n in ("rcu_dyntick", "rcu_watching"):
            v |= {"polarity": s(f["polarity"]), "oldnesting": f["oldnesting"], "newnesting": f["newnesting"],
                  "dynticks": f["counter"], "counter": f["counter"]}
        elif n == "rcu_utilization":
            v["s"] = s(f["s"])
        elif n == "kvm_entry":
            v |= {"vcpu_pc": f["vcpu_pc"], "vcpu_id": f["vcpu"], "rip": f["rip"]}
        elif n == "kvm_exit":
            if self.sc.arch == "arm64":
                v |= {"ret": ARM64_RET[f["ret"]], "esr_ec": f["esr_ec"], "vcpu_pc": f.get("vcpu_pc", 0x40000000)}
            else:
                vmx = f["reason"] in VMX_EXITS
                v |= {"exit_reason": (VMX_EXITS if vmx else SVM_EXITS)[f["reason"]], "guest_rip": f["rip"],
                      "isa": 1 if vmx else 2, "vcpu_id": f["vcpu"]}
        elif n in ("irq_handler_entry", "irq_handler_exit"):
            v |= {"irq": f["irq"], "name": f.get("name", ""), "ret": 1}
        elif n.startswith("softirq_"):
            v["vec"] = f["vec"]
        elif n.startswith("hrtimer_"):
            v |= {"hrtimer": f["hrtimer"], "now": f.get("now", 0), "expires": f.get("expires", 0),
                  "softexpires": f.get("softexpires", 0), "mode": 0,
                  "function": sym(f["function"]) if "function" in f else 0}
        elif n in ("ipi_entry", "ipi_exit"):
            v["reason"] = s(f["reason"])
        elif n == "tick_stop":
            v |= {"success": f["success"], "dependency": 0}
        elif n.endswith("_entry") or n.endswith("_exit"):
            v["vector"] = f["vector"]
        elif n == "sched_switch":
            state = {"R": 0, "S": 1, "D": 2, "I": 0x80}[f["prev_state"]]  # TASK_REPORT_IDLE
            v |= {"prev_comm": f["prev_comm"], "prev_pid": f["prev_pid"], "prev_prio": f["prev_prio"], "prev_state": state,
                  "next_comm": f["next_comm"], "next_pid": f["next_pid"], "next_prio": f["next_prio"]}
        return v

    # -- the file ------------------------------------------------------------------------------------
    def _meta(self) -> dict[int, bytes]:
        """The metadata blocks, by their v7 section id (v6 writes the same bytes inline)."""
        hdr = b""
        for label, text in (("header_page", self.header_page), ("header_event", self.header_event)):
            raw = text.encode()
            hdr += label.encode() + b"\0" + struct.pack("<Q", len(raw)) + raw
        systems: dict[str, list[bytes]] = {}
        for sys_, text, _fmt in self.formats.values():
            systems.setdefault(sys_, []).append(text.encode())
        fmts = struct.pack("<I", len(systems))
        for sys_, texts in systems.items():
            fmts += sys_.encode() + b"\0" + struct.pack("<I", len(texts)) + b"".join(struct.pack("<Q", len(t)) + t for t in texts)
        ks, pk = self.names.kallsyms(), self.names.printk()
        cmd = "".join(f"{p} {c}\n" for p, c in sorted(self.comms.items()) if p).encode()
        return {16: hdr, 17: struct.pack("<I", 0), 18: fmts, 19: struct.pack("<I", len(ks)) + ks,
                20: struct.pack("<I", len(pk)) + pk, 21: struct.pack("<Q", len(cmd)) + cmd}

    def close(self) -> None:
        files = [p.finish() for p in self.pages]
        try:
            with open(self.path, "wb") as out:
                if self.version == 7:
                    self._write_v7(out, files)
                else:
                    self._write_v6(out, files)
        finally:
            for fh in files:
                fh.close()

    def _uname(self) -> bytes:
        """The UNAME option trace-cmd records (``uname -s -n -r -m``): the release decides x86 tick accounting."""
        machine = "aarch64" if self.sc.arch == "arm64" else "x86_64"
        return f"Linux synth {self.sc.release} {machine}\0".encode()

    def _write_v6(self, out: BinaryIO, files: list[BinaryIO]) -> None:
        m = self._meta()
        out.write(b"\x17\x08\x44tracing6\0" + struct.pack("<BBI", 0, 8, PAGE))
        for sid in (16, 17, 18, 19, 20, 21):
            out.write(m[sid])
        out.write(struct.pack("<I", self.cpus))
        uname = self._uname()
        out.write(b"options  \0" + struct.pack("<HI", 5, len(uname)) + uname + struct.pack("<H", 0))
        out.write(b"flyrecord\0")
        data_at = (out.tell() + 16 * self.cpus + PAGE - 1) // PAGE * PAGE
        pos = data_at
        for p in self.pages:
            out.write(struct.pack("<QQ", pos, p.pages * PAGE))
            pos += p.pages * PAGE
        out.write(b"\0" * (data_at - out.tell()))
        for fh in files:
            while chunk := fh.read(1 << 20):
                out.write(chunk)

    def _write_v7(self, out: BinaryIO, files: list[BinaryIO]) -> None:
        """v7: zstd-compressed sections found through options, CPU data in compressed chunks."""
        zc = zstandard.ZstdCompressor(level=3)
        strings = bytearray()

        def sid_string(text: str) -> int:
            at = len(strings)
            strings.extend(text.encode() + b"\0")
            return at

        def section(sid: int, desc: str, body: bytes, compress: bool = True) -> int:
            at = out.tell()
            if compress:
                c = zc.compress(body)
                body = struct.pack("<II", len(c), len(body)) + c
            out.write(struct.pack("<HHIQ", sid, 1 if compress else 0, sid_string(desc), len(body)) + body)
            return at

        def options(opts: list[tuple[int, bytes]], nxt: int) -> bytes:
            return b"".join(struct.pack("<HI", o, len(d)) + d for o, d in opts) + struct.pack("<HIQ", 0, 8, nxt)

        ver = zstandard.__version__.encode()
        head = b"\x17\x08\x44tracing7\0" + struct.pack("<BBI", 0, 8, PAGE) + b"zstd\0" + ver + b"\0"
        out.write(head + struct.pack("<Q", 0))  # the options offset is patched below
        m = self._meta()
        names = {16: "headers", 17: "ftrace events", 18: "events format", 19: "kallsyms", 20: "printk", 21: "command lines"}
        where = {sid: section(sid, names[sid], m[sid]) for sid in (16, 17, 18, 19, 20, 21)}
        # first options section; its DONE points at the second one (written after the data)
        first = [(sid, struct.pack("<Q", where[sid])) for sid in (16, 17, 18, 19, 20)]
        first += [(4, b"[local] global counter uptime perf mono mono_raw boot tai\n\0"), (21, struct.pack("<Q", where[21])),
                  (8, struct.pack("<I", self.cpus)), (5, self._uname())]
        opts1_at = out.tell()
        body = options(first, 0)
        out.write(struct.pack("<HHIQ", 0, 0, sid_string("options"), len(body)) + body)
        # the buffer: its section header, then each CPU's pages as compressed chunks at page-aligned offsets
        buf_at = out.tell()
        out.write(struct.pack("<HHIQ", 3, 1, sid_string("buffer flyrecord "), 0))
        cpus = []
        for cpu, fh in enumerate(files):
            out.write(b"\0" * (-out.tell() % PAGE))
            start = out.tell()
            count = 0
            if fh.read(1):  # a CPU with pages: the chunk count, then each chunk as it is compressed
                fh.seek(0)
                out.write(struct.pack("<I", 0))
                while raw := fh.read(10 * PAGE):
                    c = zc.compress(raw)
                    out.write(struct.pack("<II", len(c), len(raw)) + c)
                    count += 1
                here = out.tell()
                out.seek(start)
                out.write(struct.pack("<I", count))
                out.seek(here)
            cpus.append((cpu, start, out.tell() - start))
        end = out.tell()
        out.seek(buf_at + 8)
        out.write(struct.pack("<Q", end - buf_at - 16))
        out.seek(end)
        opts2_at = out.tell()
        buf_opt = struct.pack("<Q", buf_at) + b"\0" + b"local\0" + struct.pack("<II", PAGE, len(cpus)) + \
            b"".join(struct.pack("<IQQ", c, o, s) for c, o, s in cpus)
        body = options([(3, buf_opt)], 0)
        out.write(struct.pack("<HHIQ", 0, 0, sid_string("options"), len(body)) + body)
        sid_string("strings")
        section(15, "strings", bytes(strings))
        # patch: the header's options offset and the first options section's DONE → second section
        out.seek(len(head))
        out.write(struct.pack("<Q", opts1_at))
        out.seek(opts1_at + 16 + len(options(first, 0)) - 8)
        out.write(struct.pack("<Q", opts2_at))
