"""The notebooks run top to bottom (their code cells, in order, from notebooks/)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(nb, monkeypatch):
    monkeypatch.chdir(nb.parent)
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    assert cells
    env: dict = {}
    for c in cells:
        src = "".join(c["source"])
        exec(compile(src, f"{nb.name}", "exec"), env)  # our own notebook's code, not trace content
    entry_d, exit_on = eval("tr.df('kvm_entry')['irqs_off'].all(), (~exits['irqs_off']).all()", env)
    assert entry_d and exit_on
    assert env["tr"].meta.events == 162074
