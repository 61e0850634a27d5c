"""The package type-checks at the strictness pyproject.toml's [tool.mypy] names."""
from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_type_checks():
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"),
                                str(ROOT / "kvmtrace")])
    assert status == 0, out + err
