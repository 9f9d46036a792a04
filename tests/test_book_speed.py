"""Added parameters and latency glue (faceprompt.book.speed; the recorded speed numbers: test_book_recorded.py)."""
from __future__ import annotations

import pandas as pd

from faceprompt.book import speed
from faceprompt.book._machinery import glue as G


def test_latency_glue_keys_the_largest_batch_as_max():
    table = pd.DataFrame([{"method": m, "batch_size": b, "median_ms": ms, "vs_zero_shot": r, "device": "cpu"}
                          for m, b, ms, r in (("zero-shot", 1, 2.0, 1.0), ("vpt", 1, 3.0, 1.5),
                                              ("zero-shot", 32, 20.0, 1.0), ("vpt", 32, 22.0, 1.1))])
    speed.glue_latency(table, "cuda")
    assert G.GLUED["latency-vpt-b1"] == "3.0 ms" and G.GLUED["slowdown-vpt-b32"] == "1.10x"
    assert G.GLUED["slowdown-vpt-max"] == "1.10x" and G.GLUED["latency-max-batch"] == "32"
    assert G.GLUED["latency-device"] == "cpu"
    speed.glue_latency(table.iloc[:0], "cuda")
    assert G.GLUED["latency-device"] == "cuda"


def test_parameter_table_counts_on_the_meta_device():
    table = speed.parameter_table(["tiny-pe"], ["zero-shot", "vpt"])
    added = dict(zip(table["method"], table["added"]))
    assert added["zero-shot"] == 0 and added["vpt"] > 0
    assert G.GLUED["params-tiny-pe-zero-shot"] == "0"
    assert G.GLUED["backbone-params-tiny-pe"] == G.count(table["backbone_params"].iloc[0])
