"""Unit tests of the primitives the layers share: what each promises, on small hand-made inputs."""
from __future__ import annotations

import pandas as pd

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
