"""One answer in every format (metamorphic): the same buffer as trace.dat, as each ``trace-cmd
report`` rendering, as the kernel's own text, folded or mail-quoted, gives the same verdict and the
same proven findings per class, matched by evidence seq. The only difference allowed is a downgrade
that says why: a text does not record the kernel release, which x86 tick accounting needs."""
from __future__ import annotations

import functools
import lzma
from pathlib import Path

import pytest

import kvmtrace
from conftest import ARM64, SHARED, X86_SVM, reference, trace_cmd_report
from kvmtrace.model import timeline
from kvmtrace.synth import FORMATS, Scenario, synth
from test_synth import check_against_truth

KVM_DATS = sorted(ARM64.glob("*.dat")) + sorted(X86_SVM.glob("*.dat"))
RENDERINGS = {"plugins": (), "N": ("-N",), "l": ("-l",), "t": ("-t",), "Ntl": ("-N", "-t", "-l")}
#: every rendering of an arm64 and an x86 trace; two renderings (with and without plugins, flags and ns)
#: of the rest, to keep the suite within its time
EVERY_RENDERING = {"arm64-6.1-prefix-nohzfull.dat", "x86-6.1-prefixtick-tick.dat"}
CASES = [(d, r) for d in KVM_DATS for r in RENDERINGS if d.name in EVERY_RENDERING or r in ("plugins", "Ntl")]


@functools.lru_cache(maxsize=None)
def answer(path: str, release: str | None = None) -> dict:
    """What an analysis concludes, in comparable form."""
    a = kvmtrace.analyze(path, kernel_release=release)
    f = a.findings
    return {"verdict": a.verdict["verdict"], "classes": {k: c["verdict"] for k, c in a.verdict["classes"].items()},
            "runs": len(a.runs),
            "proven": {k: sorted(tuple(e) for e in f.loc[(f["kind"] == k) & (f["confidence"] == "proven"), "evidence_seq"])
                       for k in kvmtrace.analyzers.FINDING_KINDS},
            "inferred": {tuple(e): w for e, w in zip(f.loc[f["confidence"] == "inferred", "evidence_seq"],
                                                      f.loc[f["confidence"] == "inferred", "why"])}}


def same_or_downgraded(got: dict, want: dict) -> None:
    """``got`` (a text) says what ``want`` (the .dat) says, except where it knows less and says so."""
    assert got["runs"] == want["runs"]
    for kind, proven in want["proven"].items():
        lost = set(proven) - set(got["proven"][kind])
        assert set(got["proven"][kind]) <= set(proven), kind  # nothing proven that the .dat does not prove
        assert all(got["inferred"].get(e) for e in lost), kind  # each downgrade is inferred, with its reason
    for kind, verdict in want["classes"].items():
        assert got["classes"][kind] in (verdict, "unknown"), kind
    if got["classes"] == want["classes"]:
        assert got["verdict"] == want["verdict"]


def identical(got: dict, want: dict) -> None:
    assert (got["verdict"], got["classes"], got["runs"], got["proven"]) == \
        (want["verdict"], want["classes"], want["runs"], want["proven"])


def holds_for_the_real_kernel(name: str, got: dict) -> None:
    """The README facts: no proven finding on a fixed kernel; the reference counts of the pre-fix ones."""
    if "fixed" in name or name.startswith("x86"):  # x86 6.1: the reworked entry, release 6.1.192
        assert not any(got["proven"].values()), name
    if name.startswith("arm64"):
        ref = reference()[name.removesuffix(".dat").removesuffix(".v6").replace("arm64-6.1-", "")]
        assert got["runs"] == ref["runs"] and got["verdict"] == ref["verdict"]
        assert len(got["proven"]["apparent_irqsoff"]) == ref["bug2"] and len(got["proven"]["rcu_not_watching"]) == ref["bug1"]


@pytest.mark.parametrize("dat,rendering", CASES, ids=[f"{d.stem}-{r}" for d, r in CASES])
def test_trace_cmd_renderings_give_the_dat_answer(dat, rendering, tmp_path):
    text = tmp_path / f"{dat.stem}.{rendering}.txt"
    text.write_text(trace_cmd_report(str(dat), *RENDERINGS[rendering]))
    want, got = answer(str(dat)), answer(str(text))
    holds_for_the_real_kernel(dat.name, want)
    holds_for_the_real_kernel(dat.name, got)
    if dat.name.startswith("arm64"):  # arm64 shows every path in its events: nothing may differ
        identical(got, want)
    else:
        same_or_downgraded(got, want)
        # given the release the .dat records, the text gives the very same answer
        identical(answer(str(text), "6.1.192"), want)


@pytest.mark.parametrize("dat", KVM_DATS, ids=lambda d: d.stem)
def test_the_kernels_own_text_gives_the_dat_answer(dat):
    # the v6 conversion has no text of its own: the v7 file's text is the same buffer
    text = dat.with_name(dat.name.removesuffix(".dat").removesuffix(".v6") + ".tracefs.txt.xz")
    want, got = answer(str(dat)), answer(str(text))
    holds_for_the_real_kernel(dat.name, got)
    (identical if dat.name.startswith("arm64") else same_or_downgraded)(got, want)


def test_x86_prefixtick_with_the_old_release_is_the_same_in_every_format(tmp_path):
    """The bug-3 instances of the 5.9-5.12 placement, proven alike from the .dat and every text."""
    dat = X86_SVM / "x86-6.1-prefixtick-tick.dat"
    want = answer(str(dat), "5.10.40")
    assert len(want["proven"]["misaccounted_tick"]) == 199 and want["verdict"] == "pre-fix"
    for rendering in ("N", "Ntl"):
        text = tmp_path / f"{rendering}.txt"
        text.write_text(trace_cmd_report(str(dat), *RENDERINGS[rendering]))
        identical(answer(str(text), "5.10.40"), want)
    text = str(X86_SVM / "x86-6.1-prefixtick-tick.tracefs.txt.xz")
    identical(answer(text, "5.10.40"), want)
    identical(answer(text, "6.1.192"), answer(str(dat)))  # and with its own release: none
    # the kernel's text alone does not say the release: the same ticks, inferred, saying why
    unsure = answer(text)
    assert not unsure["proven"]["misaccounted_tick"] and unsure["classes"]["misaccounted_tick"] == "unknown"
    assert all("--kernel-release" in unsure["inferred"][e] for e in want["proven"]["misaccounted_tick"])


def test_without_a_flags_column_the_handlers_give_the_hardirq_context(tmp_path):
    """-N text has no flags: hardirq context is derived from the handler entry/exit events."""
    dat = ARM64 / "arm64-6.1-prefix-nohzfull.dat"
    plain = tmp_path / "N.txt"
    plain.write_text(trace_cmd_report(str(dat), "-N"))
    flagged, derived = timeline.build(kvmtrace.load(dat)), timeline.build(kvmtrace.load(plain))
    assert not kvmtrace.load(plain).events["hardirq"].notna().any()
    assert (flagged.seq == derived.seq).all() and flagged.hardirq.sum() > 3_000
    assert (flagged.hardirq == derived.hardirq).all()


def fold(text: str, width: int, at_spaces: bool = False) -> str:
    """``fold -w WIDTH`` (``-s``: break after the last space that fits, which stays on the piece)."""
    out = []
    for line in text.split("\n"):
        while len(line) > width:
            cut = width
            if at_spaces:
                space = line.rfind(" ", 0, width)
                cut = space + 1 if space >= 0 else width
            out.append(line[:cut])
            line = line[cut:]
        out.append(line)
    return "\n".join(out)


def quote(text: str) -> str:
    return "\n".join("> " + line for line in text.split("\n"))


DAMAGE = {"fold60": lambda t: fold(t, 60), "fold72": lambda t: fold(t, 72), "fold80": lambda t: fold(t, 80),
          "fold-s72": lambda t: fold(t, 72, True), "quoted": quote, "fold72-quoted": lambda t: quote(fold(t, 72)),
          "quoted-fold72": lambda t: fold(quote(t), 72)}
#: every kind of wrapping on the richest real trace, three on the fixed tick trace, one each on the others
WRAPPED = [("arm64-6.1-prefix-nohzfull", d) for d in DAMAGE] + \
    [("arm64-6.1-fixed-tick", d) for d in ("fold60", "fold-s72", "quoted-fold72")] + \
    [("arm64-6.1-prefix-tick", "fold-s72"), ("arm64-6.1-fixed-nohzfull", "fold60"),
     ("x86-6.1-tick", "fold72-quoted"), ("x86-6.1-prefixtick-tick", "fold80"), ("x86-6.1-nohzfull", "quoted-fold72")]


@functools.lru_cache(maxsize=None)
def loaded(path: str) -> kvmtrace.Trace:
    return kvmtrace.load(path)


@functools.lru_cache(maxsize=None)
def kernel_text(stem: str) -> str:
    path = (ARM64 if stem.startswith("arm64") else X86_SVM) / f"{stem}.tracefs.txt.xz"
    return lzma.decompress(path.read_bytes()).decode()


@pytest.mark.parametrize("stem,damage", WRAPPED, ids=[f"{s}-{d}" for s, d in WRAPPED])
def test_wrapped_and_quoted_text_gives_the_same_answer(stem, damage, tmp_path):
    original = kernel_text(stem)
    p = tmp_path / f"{stem}.{damage}.txt"
    p.write_text(DAMAGE[damage](original))
    src = (ARM64 if stem.startswith("arm64") else X86_SVM) / f"{stem}.tracefs.txt.xz"
    release = None if stem.startswith("arm64") else "5.10.40"
    identical(answer(str(p), release), answer(str(src), release))
    tr, orig = kvmtrace.load(p), loaded(str(src))
    assert tr.meta.events == orig.meta.events
    def reasons(t):  # quoting adds a "> " to the final empty line: one blank more
        return {k: v for k, v in t.meta.skipped.items() if k != "blank"}
    assert reasons(tr) == reasons(orig)  # the header stays comments, quoted or not
    if damage.startswith("fold"):
        assert tr.meta.kernel["rejoined_pieces"] > 0 and any("rejoined" in w for w in tr.meta.warnings)


def test_the_first_3000_lines_folded_at_72_keep_their_findings(tmp_path):
    """The case from the issue: the head of a pre-fix nohz_full trace pasted into mail."""
    head = "\n".join(kernel_text("arm64-6.1-prefix-nohzfull").split("\n")[:3000])
    plain, folded = tmp_path / "head.txt", tmp_path / "head.f72.txt"
    plain.write_text(head)
    folded.write_text(fold(head, 72))
    a, b = kvmtrace.analyze(plain), kvmtrace.analyze(folded)
    assert b.counts() == a.counts() and a.counts()["rcu_not_watching"]["proven"] == 11
    assert b.runs["reason"].tolist() == a.runs["reason"].tolist() and {"IRQ", "DABT_LOW"} <= set(a.runs["reason"])
    assert b.results["exits"].metrics["arch"] == "arm64"


def test_a_damaged_payload_is_counted_and_never_proven(tmp_path):
    """Lines cut inside the payload of the events a finding rests on: the finding is inferred, with
    its reason, and the damage is counted."""
    lines = kernel_text("arm64-6.1-prefix-nohzfull").split("\n")[:3000]
    cut = [i for i, x in enumerate(lines) if "irq_disable: caller=kvm_arch_vcpu_ioctl_run" in x][:3]
    for i in cut:
        lines[i] = lines[i][:lines[i].index("caller=") + 3]
    p = tmp_path / "cut.txt"
    p.write_text("\n".join(lines))
    a = kvmtrace.analyze(p)
    assert a.results["damage"].metrics["undecoded_payloads"] == {"irq_disable": 3}
    assert any(u["analysis"] == "damage" for u in a.undecidable)
    f = a.findings[a.findings["kind"] == "apparent_irqsoff"]
    hit = f[f["confidence"] == "inferred"]
    assert len(hit) >= 2 and (hit["why"].str.len() > 0).all()
    assert len(f) == 22  # every window still reported, the damaged ones as inferred


def test_unresolved_callers_never_make_a_fixed_kernel_buggy(tmp_path):
    """kptr_restrict or a missing kallsyms: every caller an address. Nothing may be proven."""
    import re
    text = re.sub(r"(caller|parent)=\S+", lambda m: m.group(1) + "=0xffff800008" + format(len(m.group(0)), "06x"),
                  kernel_text("arm64-6.1-fixed-tick"))
    p = tmp_path / "nosym.txt"
    p.write_text(text)
    a = kvmtrace.analyze(p)
    assert not (a.findings["confidence"] == "proven").any()
    assert a.verdict["verdict"] == "unknown"


#: arm64 before and after the rework at each kernel whose formats or paths differ, x86 with the
#: pre-5.13 tick placement and 6.1; CPU 1 nohz_full (bugs 1 and 2), CPU 2 tick-accounted (bug 3)
@pytest.mark.parametrize("loss", ["no-kallsyms", "zeroed-kallsyms", "no-printk"])
def test_lost_symbols_or_strings_never_make_a_fixed_kernel_buggy(loss, tmp_path, monkeypatch):
    """A trace.dat whose kallsyms is empty or zeroed (kptr_restrict) or whose printk strings are gone:
    callers and RCU words cannot be read; nothing is proven, and the trace says why."""
    import re
    from kvmtrace.synth import dat as datwriter
    meta = datwriter.DatWriter._meta

    def damaged(self):
        m = meta(self)
        if loss == "no-kallsyms":
            m[19] = b"\0\0\0\0"
        elif loss == "zeroed-kallsyms":
            m[19] = m[19][:4] + re.sub(rb"(?m)^[0-9a-f]+", lambda x: b"0" * len(x.group(0)), m[19][4:])
        else:
            m[20] = b"\0\0\0\0"
        return m
    monkeypatch.setattr(datwriter.DatWriter, "_meta", damaged)
    for kw in (dict(fixed=True, nohz_full=(1,), vcpu_cpus=(1, 2)), dict(arch="x86", fixed=True, nohz_full=())):
        r = synth(Scenario(duration_ns=40_000_000, **kw), tmp_path, name=f"{loss}-{len(kw)}", formats=("dat7",))
        a = kvmtrace.analyze(r["paths"]["dat7"])
        assert not (a.findings["confidence"] == "proven").any(), (loss, kw)
        assert a.verdict["verdict"] in ("fixed", "unknown")
        if loss == "no-printk":
            assert a.results["damage"].metrics["undecoded_payloads"].get("rcu_dyntick", 0) > 0
        else:
            assert a.verdict["verdict"] == "unknown" and "raw addresses" in a.verdict["classes"]["apparent_irqsoff"]["evidence"]


SYNTH = [dict(fixed=f, kernel=k, vcpu_cpus=(1, 2), nohz_full=(1,)) for k in ((5, 10), (5, 15), (5, 16), (5, 17), (6, 1), (6, 12))
         for f in (False, True)] + \
    [dict(arch="x86", fixed=False, kernel=(5, 10), vcpu_cpus=(1, 2), nohz_full=(1,)),
     dict(arch="x86", fixed=True, kernel=(6, 1), vcpu_cpus=(1, 2), nohz_full=(1,))]


@pytest.mark.parametrize("kw", SYNTH, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_every_synthesized_format_matches_the_ground_truth(kw, tmp_path):
    r = synth(Scenario(duration_ns=40_000_000, **kw), tmp_path, formats=tuple(FORMATS))
    g = r["ground_truth"]
    if not kw.get("fixed"):  # there was something to find
        assert g["counts"]["misaccounted_tick"] > 0 and (kw.get("arch") == "x86" or g["counts"]["rcu_not_watching"] > 0)
    for fmt, path in r["paths"].items():
        # a .dat records the release; texts are given it, as a user would with --kernel-release
        check_against_truth(kvmtrace.analyze(path, kernel_release=None if fmt.startswith("dat") else g["kernel_release"]), g)


def test_the_real_kvm_traces_are_all_here():
    assert len(KVM_DATS) == 9 and all(Path(d).exists() for d in KVM_DATS) and SHARED.exists()


@pytest.mark.parametrize("damage", ["fold-s72", "fold60", "quoted-fold72"])
def test_a_block_may_end_after_any_piece_of_a_wrapped_line(damage):
    """Blocks of wrapped text end wherever a block size falls: after the event line, after a full
    piece, or after a short middle piece (``fold -s`` before a long word). Cut after every line, the
    rejoined text is the text rejoined whole."""
    import numpy as np

    from kvmtrace.meta import TraceMeta
    from kvmtrace.readers import text as T
    from kvmtrace.readers.sniff import TRACEFS

    raw = DAMAGE[damage]("\n".join(kernel_text("arm64-6.1-prefix-tick").split("\n")[:1500])).encode() + b"\n"
    lines = raw.splitlines(keepends=True)
    head = b"".join(lines[:200])  # the first block decides the fold

    def rejoined(blocks: list[bytes]) -> bytes:
        meta = TraceMeta("wrapped.txt", "tracefs")
        pieces = ((np.frombuffer(b, np.uint8), False) for b in blocks)
        return b"".join(out.tobytes() for out, _ in T._unfolded(pieces, TRACEFS, meta))

    whole = rejoined([raw])
    assert whole.count(b"\n") < raw.count(b"\n") - 500  # the wrapping was undone
    assert rejoined([head, *lines[200:]]) == whole
