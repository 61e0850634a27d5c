"""The notebooks run top to bottom in a real Jupyter kernel (nbclient), from notebooks/."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
#: checks appended to a copy of each notebook (the notebook on disk stays as users see it)
CHECKS = {
    "01-load-a-trace.ipynb": "assert tr.meta.events == 162074\n"
                             "assert tr.df('kvm_entry')['irqs_off'].all() and (~exits['irqs_off']).all()\n"
                             "shown = window[~noise]\n"  # the bug-1 table keeps the Start/End that make it a bug
                             "assert {'Start', 'End'} <= {p.split()[0] for p in shown.loc[shown.event == 'rcu_dyntick', 'payload'].astype(str)}",
    "02-before-and-after.ipynb": "assert before.verdict['verdict'] == 'pre-fix' and after.verdict['verdict'] == 'fixed'\n"
                                 "assert c.verdicts['rcu_not_watching']['before'] == truth['rcu_not_watching']",
    "03-real-x86-tick-accounting.ipynb": "assert acct == 0 == charged and len(f) == 199 and (f.confidence == 'proven').all()\n"
                                         "assert c.verdicts['misaccounted_tick']['verdict'] == 'fixed'",
}


def test_every_notebook_has_checks():
    assert {nb.name for nb in NOTEBOOKS} == set(CHECKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    assert any(c.cell_type == "code" for c in nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS[path.name]))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    if path.name.startswith("02"):
        assert len(figures) >= 5  # every kvmtrace.plot figure rendered


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_kept_executed_so_they_render_where_code_is_browsed(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code)
    assert sum(1 for c in code if c.get("outputs")) >= len(code) // 2
