"""A corpus of broken traces, derived at test time from real files and the synthesizer's output.

Every mutation is deterministic (seeded) so a failure names an input that can be rebuilt.
"""
from __future__ import annotations

import gzip
import lzma
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import zstandard

PAGE = 4096


def _lines(path: Path, n: int) -> bytes:
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rb") as fh:
        return b"".join(line for _, line in zip(range(n), fh))


def text_mutations(name: str, data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Broken variants of a text trace."""
    lines = data.splitlines(keepends=True)
    for k, cut in enumerate(sorted(rng.sample(range(1, len(data)), 8))):
        yield f"{name}.trunc{k}", data[:cut]
    yield f"{name}.crlf", data.replace(b"\n", b"\r\n")
    wrapped = [ln[: len(ln) // 2] + b"\n" + ln[len(ln) // 2:] if i % 7 == 3 else ln for i, ln in enumerate(lines)]
    yield f"{name}.wrapped", b"".join(wrapped)
    noisy = bytearray(data)
    for p in rng.sample(range(len(noisy)), 200):
        noisy[p] = rng.choice([0x80, 0xC3, 0xFF, 0xFE, 0x9D])
    yield f"{name}.non-utf8", bytes(noisy)
    nul = bytearray(data)
    for p in rng.sample(range(len(nul)), 50):
        nul[p] = 0
    yield f"{name}.nul", bytes(nul)
    mid = len(lines) // 2
    yield f"{name}.10MB-line", b"".join(lines[:mid]) + b"x" * (10 << 20) + b"\n" + b"".join(lines[mid:])
    yield f"{name}.10MB-line-no-newline", b"".join(lines[:mid]) + b"A" * (10 << 20)
    shuffled = lines[:]
    rng.shuffle(shuffled)
    yield f"{name}.shuffled", b"".join(shuffled)
    yield f"{name}.dup-lines", b"".join(ln for ln in lines for _ in (0, 1))
    yield f"{name}.header-only", b"".join(ln for ln in lines if ln.startswith(b"#")) or b"# tracer: nop\n"
    yield f"{name}.gz-truncated", gzip.compress(data)[: len(data) // 20]
    yield f"{name}.xz-corrupt", _flip(lzma.compress(data), rng, 5, start=64)
    yield f"{name}.zst-truncated", zstandard.ZstdCompressor().compress(data)[:-100]
    yield f"{name}.bomb.gz", gzip.compress(b"\n" * (1 << 26))  # 64 MB of newlines from a tiny file


def mixed_text(parts: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """Formats interleaved: a file that is half one tool's text and half another's."""
    halves = [p.splitlines(keepends=True) for p in parts]
    out = []
    for a, b in zip(halves[0][:2000], halves[1][:2000]):
        out += [a, b]
    yield "mixed-interleaved", b"".join(out)
    yield "mixed-concatenated", b"".join(p[: len(p) // 2] for p in parts)


def _flip(data: bytes, rng: random.Random, n: int, start: int = 0, end: int | None = None) -> bytes:
    b = bytearray(data)
    end = len(b) if end is None else min(end, len(b))
    for p in rng.sample(range(start, max(end, start + 1)), min(n, max(end - start, 1))):
        b[p] ^= 1 << rng.randrange(8)
    return bytes(b)


def dat_mutations(name: str, data: bytes, rng: random.Random, few: bool = False) -> Iterator[tuple[str, bytes]]:
    """Broken variants of a trace.dat: truncations, bit flips, zeroed and moved pages, bad sizes.
    ``few``: a handful (truncations, header flips, huge sizes) for a big file."""
    n = len(data)
    cuts = sorted({10, 30, 100, 1000, n // 2, n - 1, *rng.sample(range(1, n), 14)})
    for cut in cuts[::5] if few else cuts:
        yield f"{name}.trunc{cut}", data[:cut]
    for k in range(2 if few else 10):
        yield f"{name}.flip-head{k}", _flip(data, rng, 3, 0, 2048)
    if few:
        yield f"{name}.huge-size", data[:16] + b"\xff" * 8 + data[24:]
        return
    for k in range(10):
        yield f"{name}.flip-body{k}", _flip(data, rng, 20, 2048)
    pages = max(n // PAGE, 1)
    for k in range(6):
        b = bytearray(data)
        p = rng.randrange(pages) * PAGE
        b[p: p + PAGE] = bytes(min(PAGE, n - p))
        yield f"{name}.zero-page{k}", bytes(b)
    b = bytearray(data)
    p, q = sorted(rng.sample(range(1, pages), 2)) if pages > 2 else (0, 0)
    b[p * PAGE:(p + 1) * PAGE], b[q * PAGE:(q + 1) * PAGE] = data[q * PAGE:(q + 1) * PAGE], data[p * PAGE:(p + 1) * PAGE]
    yield f"{name}.swapped-pages", bytes(b)
    half = n // 2
    yield f"{name}.duplicated-tail", data + data[half:]
    yield f"{name}.reordered-halves", data[:4096] + data[half:] + data[4096:half]
    version = data.index(b"tracing", 0, 32) + len(b"tracing") if b"tracing" in data[:32] else 10
    for v in (b"0", b"9", b"\xff"):
        b = bytearray(data)
        b[version] = v[0]
        yield f"{name}.version-{v.hex()}", bytes(b)
    for k in range(8):  # huge declared sizes: 4- and 8-byte fields in the headers set to all ones
        b = bytearray(data)
        at = rng.randrange(10, min(n - 8, 1 << 14))
        width = 8 if k % 2 else 4
        b[at: at + width] = b"\xff" * width
        yield f"{name}.huge-size{k}", bytes(b)
    big = bytearray(data)
    for at in range(12, min(n - 8, 400), 8):  # a run of plausible-looking 64-bit sizes
        big[at: at + 8] = struct.pack("<Q", 1 << 40)
    yield f"{name}.huge-sizes", bytes(big)


def build(out: Path, sources: dict[str, Path], synth_dir: Path) -> list[Path]:
    """Write the corpus into ``out``; return the files."""
    rng = random.Random(20261126)
    out.mkdir(parents=True, exist_ok=True)
    items: list[tuple[str, bytes]] = []
    texts = {k: _lines(p, 3000) for k, p in sources.items() if not p.name.endswith(".dat")}
    for name, data in texts.items():
        items += text_mutations(name, data, rng)
    items += mixed_text([texts["tracefs"], texts["perf"]])
    for name, p in sources.items():
        if p.name.endswith(".dat"):
            items += dat_mutations(name, p.read_bytes(), rng, few=p.stat().st_size > 4 << 20)
    for p in sorted(synth_dir.glob("*.dat")):
        items += dat_mutations(p.stem, p.read_bytes(), rng)
    items += [("empty", b""), ("one-byte", b"\n"), ("binary-noise", bytes(rng.randrange(256) for _ in range(50_000)))]
    files = []
    for name, data in items:
        f = out / name.replace("/", "_")
        f.write_bytes(data)
        files.append(f)
    return files
