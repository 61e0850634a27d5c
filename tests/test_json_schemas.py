"""The --json documents of analyze, batch analyze and compare match the JSON Schemas shipped in the package."""
from __future__ import annotations

import json
from importlib.resources import files

import jsonschema
import pytest

import kvmtrace
from conftest import ARM64, SHARED, X86_SVM
from kvmtrace.analyzers import plain
from kvmtrace.batch import analyze_many
from kvmtrace.compare import compare
from kvmtrace.readers import trace_kind

REAL = sorted(p for p in SHARED.rglob("*") if p.is_file() and trace_kind(p) is None)


def schema(name: str) -> jsonschema.protocols.Validator:
    doc = json.loads((files("kvmtrace") / "schemas" / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(doc)
    cls.check_schema(doc)
    return cls(doc)


def test_every_shared_real_trace_is_read():
    assert len(REAL) >= 30 and any(p.suffix == ".dat" for p in REAL) and any(p.name.endswith(".xz") for p in REAL)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_analyze_json_of_every_real_trace_matches_its_schema(path):
    doc = json.loads(json.dumps(kvmtrace.analyze(path).to_json()))  # exactly what --json prints
    schema("analyze").validate(doc)


def test_batch_and_compare_json_match_their_schemas():
    paths = [str(p) for p in sorted(ARM64.glob("*.dat"))]
    t = analyze_many(paths, serial=True)
    schema("batch").validate(json.loads(json.dumps({"schema": 1, "traces": [plain(r) for r in t.to_dict(orient="records")],
                                                    "skipped": [{"path": "x.md", "why": "not a trace (by its name)"}]})))
    c = compare([str(ARM64 / "arm64-6.1-prefix-tick.dat")], [str(ARM64 / "arm64-6.1-fixed-tick.dat"),
                                                               str(X86_SVM / "x86-6.1-tick.dat")])
    schema("compare").validate(json.loads(json.dumps(c.to_json())))


def test_the_schemas_reject_what_they_should():
    bad = json.loads(json.dumps(kvmtrace.analyze(ARM64 / "arm64-6.1-prefix-tick.dat").to_json()))
    bad["findings"][0]["confidence"] = "likely"
    with pytest.raises(jsonschema.ValidationError):
        schema("analyze").validate(bad)
