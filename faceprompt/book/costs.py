"""What a method costs: the parameters it adds on the thesis's backbones, and inference latency."""
from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from faceprompt.book.glue import count, glue, key


def parameter_table(backbones: list[str], methods: list[str]) -> pd.DataFrame:
    """Added parameters per backbone and method, counted on the meta device (no weights needed);
    glued as ``params-<backbone>-<method>``, ``pct-<backbone>-<method>`` and ``backbone-params-<backbone>``."""
    from faceprompt.bench.parameters import method_parameter_table

    table = pd.DataFrame(method_parameter_table(backbones, methods))
    for _, r in table.iterrows():
        glue(key("params", r["backbone"], r["method"]), count(r["added"]))
        glue(key("pct", r["backbone"], r["method"]), f"{r['percent']:.4f}%")
    for backbone, sub in table.groupby("backbone"):
        glue(key("backbone-params", backbone), count(sub["backbone_params"].iloc[0]))
    return table


def latency_table(backbone: str, methods: list[str], batch_sizes: list[int], repeats: int = 5,
                  weights: str | None = None, device: str = "cpu", dtype: str = "fp32") -> pd.DataFrame:
    """Inference latency of every method against zero-shot (``faceprompt.bench``); :func:`glue_latency` glues it."""
    from faceprompt.bench.inference import bench_methods

    rows = bench_methods(backbone, [m for m in methods if m != "zero-shot"], list(batch_sizes), device=device,
                         weights=weights, dtype=dtype, repeats=repeats, warmup=1)
    return pd.DataFrame([asdict(r) for r in rows])


def glue_latency(table: pd.DataFrame, device: str) -> None:
    """Glue ``latency-<method>-b<batch>`` (ms per call), ``slowdown-<method>-b<batch>`` (x zero-shot),
    ``slowdown-<method>-max`` (at the largest batch size timed, ``latency-max-batch``) and ``latency-device``."""
    for _, r in table.iterrows():
        glue(key("latency", r["method"], f"b{r['batch_size']}"), f"{r['median_ms']:.1f} ms")
        glue(key("slowdown", r["method"], f"b{r['batch_size']}"), f"{r['vs_zero_shot']:.2f}x")
    if len(table):
        largest = table[table["batch_size"] == table["batch_size"].max()]
        for _, r in largest.iterrows():  # the same key whatever batch sizes a profile times
            glue(key("slowdown", r["method"], "max"), f"{r['vs_zero_shot']:.2f}x")
        glue("latency-max-batch", str(int(table["batch_size"].max())))
    glue("latency-device", str(table["device"].iloc[0]) if len(table) else device)
