"""Glue and the prose formats (faceprompt.book._machinery.glue), and reading glued values back
(faceprompt.book._machinery.executed)."""
from __future__ import annotations

import json

import pandas as pd

from faceprompt.book._machinery import executed
from faceprompt.book._machinery import glue as G


def test_glue_outside_a_kernel_keeps_the_value():
    assert G.glue("test-key", "61.2%") == "61.2%"
    assert G.GLUED["test-key"] == "61.2%"


def test_formats():
    assert G.percent(0.6123) == "61.2%" and G.percent(float("nan")) == "n/a" and G.percent(None) == "n/a"
    assert G.points(-0.031) == "-3.1 pp" and G.points(0.031) == "+3.1 pp"
    assert G.points(-0.0004) == "+0.0 pp" and G.points(-0.0006) == "-0.1 pp"
    assert G.count(16809984) == "16.81 M" and G.count(7680) == "7,680"
    assert G.key("acc", "softcpt+vpt", "synthetic", "age") == "acc-softcpt+vpt-synthetic-age"
    assert G.span([3.4, 3.6], unit="%") == "3–4%" and G.span([2.0, 2.01], "{:.1f}") == "2.0"


def notebook(values: dict[str, str]) -> dict:
    outputs = [{"output_type": "display_data", "metadata": {"scrapbook": {
        "name": k, "mime_prefix": "application/papermill.record/"}},
        "data": {"application/papermill.record/text/plain": repr(v)}} for k, v in values.items()]
    return {"cells": [{"cell_type": "code", "outputs": outputs, "source": ""}], "metadata": {}, "nbformat": 4}


def test_glued_values_are_read_back_and_two_builds_compared(tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    for folder, values in ((before, {"mean-vpt": "55.0%", "latency-vpt-b1": "1.0 ms", "gone": "x"}),
                           (after, {"mean-vpt": "55.0%", "latency-vpt-b1": "2.0 ms", "new": "y"})):
        folder.mkdir()
        (folder / "40_evaluate.ipynb").write_text(json.dumps(notebook(values)))
    assert executed.glued_values(before / "40_evaluate.ipynb")["mean-vpt"]["text/plain"] == "'55.0%'"
    result = executed.compare(executed.build_values(before), executed.build_values(after))
    assert result["compared"] == [("40_evaluate", "mean-vpt")] and result["differ"] == []
    assert result["timed"] == [("40_evaluate", "latency-vpt-b1")]
    assert result["only_before"] == [("40_evaluate", "gone")] and result["only_after"] == [("40_evaluate", "new")]
    (after / "40_evaluate.ipynb").write_text(json.dumps(notebook({"mean-vpt": "56.0%"})))
    assert executed.compare(executed.build_values(before), executed.build_values(after))["differ"] == [
        ("40_evaluate", "mean-vpt")]
    assert executed.main([str(before), str(after)]) == 1


def test_show_rounds():
    assert G.show(pd.DataFrame({"a": [0.12345]}))["a"].iloc[0] == 0.123
