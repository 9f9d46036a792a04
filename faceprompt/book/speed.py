"""The numbers of the speed chapter, from the JSON that ``faceprompt bench`` wrote (``benchmarks/results/``),
and what a method costs in this build: the parameters it adds on the thesis's backbones, and inference latency.

Recorded keys start with ``speed-``, this build's with ``params-``, ``pct-``, ``backbone-params-``,
``latency-`` and ``slowdown-``; :mod:`faceprompt.book._machinery.keys` lists them. Each recorded ``glue_*`` function
reads one result file, so a rerun of the benchmarks changes the chapter without touching its text.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from faceprompt.book._machinery.glue import count, glue, key, span
from faceprompt.book.methods import text_methods
from faceprompt.io import read_json

RESULTS_DIR = "benchmarks/results/h200-2026-11-27"
INFERENCE_FILES = {"PE-Core": "bench_pe_core_b16.json", "SigLIP2": "bench_siglip2_b16.json"}
EPOCH_CACHE_FILE = "epoch_cache_pe_core_b16.json"
LOOPED_VPT_TS = "vpt-ts:batched=false"  # VPT-TS with one pass per task
MIB_PER_GIB = 1024


def read_rows(path: str | Path) -> pd.DataFrame:
    """A result file of ``faceprompt bench`` (a JSON list of rows) as a table."""
    return pd.DataFrame(read_json(path))


def inference_frames(results_dir: str | Path = RESULTS_DIR) -> dict[str, pd.DataFrame]:
    """Tower label -> its inference rows (method, batch_size, median_ms, vs_zero_shot, peak_memory_mb ...)."""
    return {label: read_rows(Path(results_dir) / name) for label, name in INFERENCE_FILES.items()}


def inference_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Methods as rows (in the files' order), one column per tower and batch size, each cell
    'median ms (ratio to zero-shot)'; empty where a file lacks the method."""
    columns = {}
    for label, rows in frames.items():
        for batch, sub in rows.groupby("batch_size", sort=True):
            cells = sub.set_index("method")
            columns[f"{label}, batch {batch}"] = pd.Series(
                [f"{m:.1f} ({r:.2f})" for m, r in zip(cells["median_ms"], cells["vs_zero_shot"])], index=cells.index)
    order = list(dict.fromkeys(m for rows in frames.values() for m in rows["method"]))
    return pd.DataFrame(columns).reindex(order).fillna("").rename_axis("method")


def ratios(frame: pd.DataFrame, method: str, large: bool) -> list[float]:
    """``method``'s ratios to zero-shot at batch 1 (``large`` False) or at every larger batch size."""
    rows = frame[frame["method"] == method]
    rows = rows[rows["batch_size"] > 1] if large else rows[rows["batch_size"] == 1]
    return list(rows["vs_zero_shot"])


def glue_inference(results_dir: str | Path = RESULTS_DIR) -> pd.DataFrame:
    """Glue the GPU inference table (``speed-gpu-table``) and the sentences' numbers about it."""
    frames = inference_frames(results_dir)
    table = glue("speed-gpu-table", inference_table(frames), display=False)
    pe, siglip = frames["PE-Core"], frames["SigLIP2"]
    both = pd.concat(frames.values())
    glue("speed-gpu-repeats", str(int(both["repeats"].max())))
    glue("speed-gpu-batches", ", ".join(str(b) for b in sorted(both["batch_size"].unique())))
    text = both[both["method"].isin(text_methods())]["vs_zero_shot"]  # inference is zero-shot's
    glue("speed-gpu-text-within", f"{100 * (text - 1).abs().max():.1f}%")
    glue("speed-gpu-vpt-pe", span([100 * (r - 1) for r in ratios(pe, "vpt", True)], unit="%"))
    glue("speed-gpu-vpt-siglip", span(ratios(siglip, "vpt", True), "{:.2f}"))
    glue("speed-gpu-vpt-ts-b1", span([r for f in frames.values() for r in ratios(f, "vpt-ts", False)], "{:.2f}"))
    glue("speed-gpu-vpt-ts-looped-b1",
         span([r for f in frames.values() for r in ratios(f, LOOPED_VPT_TS, False)], "{:.1f}", "×"))
    glue("speed-gpu-vpt-ts-saving", span(batching_savings(both), unit="%"))
    glue("speed-gpu-v2pt-pe", span([100 * (r - 1) for r in ratios(pe, "v2pt", True)], unit="%"))
    largest = pe[pe["batch_size"] == pe["batch_size"].max()].set_index("method")["peak_memory_mb"]
    glue("speed-gpu-vpt-ts-memory", f"{largest['vpt-ts'] / MIB_PER_GIB:.1f} against "
                                    f"{largest['zero-shot'] / MIB_PER_GIB:.1f} GiB")
    return table


def batching_savings(rows: pd.DataFrame) -> list[float]:
    """Per tower and batch size above 1: how much less time (%) VPT-TS's one batched pass takes than a
    pass per task."""
    saved = []
    for (_, batch), sub in rows.groupby([rows["backbone"], "batch_size"]):
        ms = sub.set_index("method")["median_ms"]
        if batch > 1:
            saved.append(100 * (1 - ms["vpt-ts"] / ms[LOOPED_VPT_TS]))
    return saved


def epoch_cache_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The epoch-cache benchmark as the chapter prints it: seconds per epoch without and with the cache."""
    return pd.DataFrame({
        "batch size": rows["batch_size"], "epoch without cache (s)": rows["epoch_without_cache_s"].map("{:.2f}".format),
        "epoch on cached features (s)": rows["epoch_with_cache_s"].map("{:.2f}".format),
        "speed-up": rows["speedup"].map("{:.1f}×".format)}).set_index("batch size")


def glue_epoch_cache(results_dir: str | Path = RESULTS_DIR) -> pd.DataFrame:
    """Glue the GPU epoch-cache table (``speed-gpu-cache-table``), the cache build time and image count."""
    rows = read_rows(Path(results_dir) / EPOCH_CACHE_FILE)
    glue("speed-gpu-cache-build", f"{rows['cache_build_s'].iloc[0]:.2f} s")
    glue("speed-gpu-cache-images", str(int(rows["images"].iloc[0])))
    return glue("speed-gpu-cache-table", epoch_cache_table(rows), display=False)


# The GFLOPs counted both ways (CPU, batch 1: a count depends on shapes only), by tower label.
FLOPS_RESULTS_DIR = "benchmarks/results/cpu-2026-12-07-flops"
FLOPS_FILES = {"PE-Core B/16": "bench_pe_core_b16.json", "SigLIP2 B/16": "bench_siglip2_b16.json",
               "PE-Core L/14-336": "bench_pe_core_l14_336.json"}
THESIS_TOWER = "PE-Core L/14-336"  # the thesis's final backbone


def flops_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per tower and method: GFLOPs per image by ``FlopCounterMode`` and by the profiler, and their ratio."""
    rows = []
    for label, frame in frames.items():
        for _, r in frame.drop_duplicates("method").iterrows():
            rows.append({"tower": label, "method": r["method"],
                         "FlopCounterMode": f"{r['gflops_per_image']:.1f}",
                         "torch.profiler (the thesis's)": f"{r['gflops_per_image_profiler']:.1f}",
                         "profiler / FlopCounterMode": f"{r['gflops_per_image_profiler'] / r['gflops_per_image']:.1%}"})
    return pd.DataFrame(rows).set_index(["tower", "method"])


def glue_flops(results_dir: str | Path = FLOPS_RESULTS_DIR) -> pd.DataFrame:
    """Glue the table of GFLOPs counted both ways (``speed-flops-table``), how much lower the profiler's count is
    (``speed-flops-lower``) and the thesis's backbone's zero-shot counts."""
    frames = {label: read_rows(Path(results_dir) / name) for label, name in FLOPS_FILES.items()}
    both = pd.concat(frames.values())
    shares = 100 * both["gflops_per_image_profiler"] / both["gflops_per_image"]
    glue("speed-flops-lower", span(list(100 - shares), "{:.1f}", "%"))
    thesis = frames[THESIS_TOWER].set_index("method").loc["zero-shot"]
    glue("speed-flops-l14-counter", f"{thesis['gflops_per_image']:.1f}")
    glue("speed-flops-l14-profiler", f"{thesis['gflops_per_image_profiler']:.1f}")
    return glue("speed-flops-table", flops_table(frames), display=False)


# --- what a method costs in this build (40_evaluate) ---------------------------------------------------

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
