"""What the notebooks call: prepare the book's datasets, run zero-shot and training, collect results.

The notebooks hold a parameters cell and calls into this module, so every step can be rerun from
Python or papermill with other parameters. Numbers reach the book's prose through :func:`glue`
(MyST-NB's ``glue`` when running in a kernel, a plain dict otherwise).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceprompt.tasks import TASKS

ROOT_MARKERS = ("pyproject.toml", "_config.yml")
GLUED: dict[str, Any] = {}  # everything glued in this process (also outside a kernel)


# --- where we are ------------------------------------------------------------------------------------

def project_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding the project files."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / marker).is_file() for marker in ROOT_MARKERS):
            return folder
    raise FileNotFoundError(f"no project root (a folder with {', '.join(ROOT_MARKERS)}) at or above {here}")


def setup(threads: int | None = 1, root: bool = True, quiet: bool = True) -> Path:
    """Notebook start-up: work from the project root, cap torch's threads, keep logs short.

    One thread per notebook kernel is the fast choice on a small shared CPU (several kernels run at
    once, and tiny towers gain nothing from more); ``threads=None`` leaves torch's default.
    """
    import logging
    import warnings

    import torch

    path = project_root() if root else Path.cwd()
    os.chdir(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if threads:
        torch.set_num_threads(int(threads))
    if quiet:
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        logging.getLogger("faceprompt").setLevel(logging.WARNING)
    return path


def resolve_backbone(name: str | None) -> str:
    """``None`` or ``"default"`` -> the package default (the embedded face model when present)."""
    from faceprompt.predict import default_backbone

    return default_backbone() if name in (None, "", "default") else name


# --- glue ----------------------------------------------------------------------------------------------

def glue(name: str, value: Any, display: bool = False) -> Any:
    """Store ``value`` under ``name`` for the book (MyST-NB glue in a kernel) and return it."""
    GLUED[name] = value
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            from myst_nb import glue as nb_glue

            nb_glue(name, value, display=display)
    except ImportError:  # no IPython / MyST-NB: plain Python use
        pass
    return value


def percent(value: float, digits: int = 1) -> str:
    """0.6123 -> '61.2%'; NaN -> 'n/a'."""
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


def points(value: float, digits: int = 1) -> str:
    """A difference of two accuracies in percentage points, signed: 0.031 -> '+3.1 pp'."""
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:+.{digits}f} pp"


def count(value: float) -> str:
    """12345 -> '12,345'; 16809984 -> '16.81 M'."""
    value = int(value)
    return f"{value / 1e6:.2f} M" if value >= 1_000_000 else f"{value:,}"


def key(*parts: Any) -> str:
    """A glue key from parts: ('acc', 'softcpt+vpt', 'synthetic', 'age') -> 'acc-softcpt+vpt-synthetic-age'."""
    return "-".join(str(p) for p in parts)


# --- datasets ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a book profile: a ``faceprompt prepare`` call.

    ``root`` is the downloaded dataset (None for synthetic); ``options`` go to ``prepare_dataset``
    (``n``, ``limit``, ``size``, ``detect``, ``lfw_lists`` ...).
    """

    name: str
    root: str | None = None
    options: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | dict) -> "DatasetSpec":
        if isinstance(value, str):
            return cls(value)
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError(f"datasets: expected a name or {{name, root, ...options}}, got {value!r}")
        value = dict(value)
        return cls(value.pop("name"), value.pop("root", None), value)


def parse_datasets(values: list) -> list[DatasetSpec]:
    return [DatasetSpec.parse(v) for v in values]


def prepare_datasets(datasets: list, work_dir: str | os.PathLike, workers: int = 2,
                     progress: bool = False) -> dict[str, str]:
    """Prepare every dataset into ``work_dir/data/<name>``; returns name -> manifest path.

    A dataset whose options did not change since the last call is not touched again.
    """
    from faceprompt.prepare import prepare_dataset

    manifests = {}
    for spec in parse_datasets(datasets):
        out = Path(work_dir) / "data" / spec.name
        manifest = out / "manifest.csv"
        stamp = out / "book_prepare.json"
        wanted = {"name": spec.name, "root": spec.root, "options": spec.options}
        if not (manifest.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted):
            root = None if spec.root is None else str(Path(spec.root).expanduser())
            options = {"workers": workers, "progress": progress, **spec.options}
            prepare_dataset(spec.name, root, out, **options)
            stamp.write_text(json.dumps(wanted))
        manifests[spec.name] = str(manifest)
    return manifests


def manifest_frame(manifests: dict[str, str]) -> pd.DataFrame:
    """All rows of the prepared manifests (image paths absolute)."""
    from faceprompt.data.manifest import read_manifest

    return pd.concat([read_manifest(m) for m in manifests.values()], ignore_index=True)


def label_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy class counts: task, class, group (dataset/split), count; classes in task order, zeros kept."""
    from faceprompt.data.manifest import TASK_COLUMNS

    rows = []
    for (dataset, split), sub in frame.groupby(["dataset", "split"], sort=False):
        for task, column in TASK_COLUMNS.items():
            values = sub[column].fillna("").astype(str)
            if not (values != "").any():
                continue
            counts = values.value_counts()
            rows += [{"task": task, "class": c, "group": f"{dataset}/{split}", "dataset": dataset, "split": split,
                      "count": int(counts.get(c, 0))} for c in TASKS[task].classes]
    return pd.DataFrame(rows)


def split_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows per dataset and split, and how many carry each task's label."""
    from faceprompt.data.manifest import TASK_COLUMNS

    rows = []
    for (dataset, split), sub in frame.groupby(["dataset", "split"]):
        row = {"dataset": dataset, "split": split, "rows": len(sub)}
        for task, column in TASK_COLUMNS.items():
            row[f"{task} labelled"] = int((sub[column].fillna("") != "").sum())
        rows.append(row)
    order = {"train": 0, "val": 1, "test": 2}
    table = pd.DataFrame(rows)
    return table.sort_values(["dataset", "split"], key=lambda s: s.map(order) if s.name == "split" else s,
                             ignore_index=True)


def sample_faces(frame: pd.DataFrame, n: int = 12, seed: int = 0) -> tuple[list, list[str]]:
    """``n`` test faces (PIL) with a short label string each, for a picture of the data."""
    from faceprompt.data.images import load_rgb

    pool = frame[frame["split"] == "test"]
    pool = pool if len(pool) else frame
    picked = pool.sample(min(n, len(pool)), random_state=seed)
    images, titles = [], []
    for _, row in picked.iterrows():
        images.append(load_rgb(row["path"]))
        titles.append(" ".join(v for v in (row["gender"], row["age_bin"], row["emotion"]) if v))
    return images, titles


# --- runs: zero-shot and training -------------------------------------------------------------------

def run_name(method: str) -> str:
    """The run folder name of a method ('softcpt+vpt' -> 'softcpt_vpt')."""
    return method.replace("+", "_").replace(":", "_")


def zero_shot(backbone: str, manifests: dict[str, str], runs_dir: str | os.PathLike, weights: str | None = None,
              device: str = "cpu", cache_dir: str | None = None, splits: tuple[str, ...] = ("test",)):
    """Evaluate the zero-shot baseline into ``runs_dir/zero-shot``; returns the EvalResult."""
    from faceprompt.evaluate import evaluate_zero_shot

    return evaluate_zero_shot(backbone, list(manifests.values()), Path(runs_dir) / "zero-shot", weights=weights,
                              device=device, cache_dir=cache_dir, splits=splits, progress=False)


def template_comparison(backbone: str, manifests: dict[str, str], weights: str | None = None,
                        device: str = "cpu", cache_dir: str | None = None,
                        splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """Zero-shot accuracy per dataset and task with the template ensemble and with each template alone.

    Columns: dataset, task, prompts ('ensemble' or 'template k'), template, accuracy.
    """
    from faceprompt.backbones import load_backbone
    from faceprompt.data.dataset import DataSource, load_sources
    from faceprompt.evaluate import evaluation_tables, predict
    from faceprompt.prompts import build_model
    from faceprompt.tasks import get_tasks, with_templates

    tower = load_backbone(backbone, weights, device=device)
    frame = load_sources([DataSource(m, splits) for m in manifests.values()])
    tasks = get_tasks()
    n_templates = min(len(t.templates) for t in tasks)
    variants = [("ensemble", tasks)] + [
        (f"template {k + 1}", tuple(with_templates(t, (t.templates[k],)) for t in tasks)) for k in range(n_templates)]
    rows = []
    for label, variant in variants:
        model = build_model("zero-shot", tower, variant)
        metrics, _, _ = evaluation_tables(frame, predict(model, frame, cache_dir=cache_dir, progress=False))
        for _, r in metrics.iterrows():
            task = TASKS[r["task"]]
            template = "mean of all" if label == "ensemble" else next(
                v.templates[0] for v in variant if v.name == task.name)
            rows.append({"dataset": r["dataset"], "task": r["task"], "prompts": label, "template": template,
                         "accuracy": r["accuracy"]})
    return pd.DataFrame(rows)


def method_options(method: str, context_tokens: int | None = None, visual_tokens: int | None = None,
                   extra: dict | None = None) -> dict:
    """Flat method options: ``context_tokens`` for text methods that learn a context (CoOp, SoftCPT),
    ``tokens`` for visual prompts (VPT, VPT-TS, V2PT), plus ``extra``; a method ignores what it lacks."""
    from faceprompt.prompts import resolve_method

    preset = resolve_method(method)
    options = {}
    if context_tokens is not None and preset.text in ("coop", "softcpt"):
        options["context_tokens"] = int(context_tokens)
    if visual_tokens is not None and preset.visual in ("vpt", "v2pt"):
        options["tokens"] = int(visual_tokens)
    return {**options, **dict(extra or {})}


def train_config(method: str, backbone: str, manifests: dict[str, str], runs_dir: str | os.PathLike,
                 train: dict | None = None, method_options: dict | None = None, weights: str | None = None,
                 device: str = "cpu", cache_dir: str | None = None, datasets: list[str] | None = None):
    """A TrainConfig for one method on the prepared manifests (train split; val split for early stopping)."""
    from faceprompt.train import TrainConfig

    sources = [{"manifest": m, "splits": ["train"]} for name, m in manifests.items()
               if datasets is None or name in datasets]
    if not sources:
        raise ValueError(f"datasets: none of {datasets} is prepared (prepared: {list(manifests)})")
    return TrainConfig.from_dict({
        "method": method, "method_options": dict(method_options or {}), "backbone": backbone, "weights": weights,
        "train": sources, "run_dir": str(runs_dir), "run_id": run_name(method), "device": device,
        "cache_dir": cache_dir, **dict(train or {}),
    })


def train_and_evaluate(config, fresh: bool = True, progress: bool = False, splits: tuple[str, ...] = ("test",)):
    """Train a method (replacing an earlier run of the same name when ``fresh``) and evaluate it on the
    ``splits`` of its training manifests. Returns (FitResult, EvalResult)."""
    from faceprompt.evaluate import evaluate
    from faceprompt.train import fit

    run_dir = config.run_path()
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    result = fit(config, progress=progress)
    evaluation = evaluate(result.run_dir, splits=splits, device=config.device if config.device != "auto" else "cpu",
                          cache_dir=config.cache_dir, progress=False)
    return result, evaluation


def history_frame(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """Per-epoch metrics of every trained run under ``runs_dir`` (column ``method``)."""
    frames = []
    for path in sorted(Path(runs_dir).glob("*/metrics.json")):
        config = json.loads((path.parent / "config.json").read_text())
        history = pd.DataFrame(json.loads(path.read_text()))
        history.insert(0, "method", config.get("method", path.parent.name))
        frames.append(history)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- collecting results -------------------------------------------------------------------------------

def _read_tables(runs_dir: str | os.PathLike, name: str) -> pd.DataFrame:
    frames = []
    for path in sorted(Path(runs_dir).glob(f"*/eval/{name}.csv")):
        table = pd.read_csv(path)
        if "method" not in table.columns:
            summary = json.loads((path.parent / "summary.json").read_text())
            table.insert(0, "method", summary["method"])
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def method_order(methods) -> list[str]:
    """Zero-shot first, then text, visual and combined methods in the book's order."""
    preferred = ["zero-shot", "coop", "softcpt", "vpt", "vpt-ts", "v2pt", "softcpt+vpt"]
    methods = list(dict.fromkeys(methods))
    return [m for m in preferred if m in methods] + sorted(m for m in methods if m not in preferred)


def collect(runs_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Every evaluated run's tables: {'metrics', 'confusion', 'fairness'} with a ``method`` column,
    rows ordered by :func:`method_order`."""
    out = {}
    for name in ("metrics", "confusion", "fairness"):
        table = _read_tables(runs_dir, name)
        if len(table):
            order = {m: i for i, m in enumerate(method_order(table["method"]))}
            table = table.sort_values("method", key=lambda s: s.map(order), kind="stable", ignore_index=True)
        out[name] = table
    return out


def accuracy_table(metrics: pd.DataFrame, value: str = "accuracy") -> pd.DataFrame:
    """Methods as rows, (dataset, task) as columns, plus the mean over all columns."""
    table = metrics.pivot_table(index="method", columns=["dataset", "task"], values=value, sort=False)
    table = table.reindex(method_order(table.index))
    table[("mean", "")] = table.mean(axis=1)
    return table


def versus_zero_shot(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean accuracy over dataset/task pairs, its change from zero-shot, added parameters."""
    mean = metrics.groupby("method", sort=False)["accuracy"].mean()
    added = metrics.groupby("method", sort=False)["added_parameters"].first()
    base = mean.get("zero-shot", np.nan)
    table = pd.DataFrame({"mean_accuracy": mean, "vs_zero_shot": mean - base, "added": added})
    return table.reindex(method_order(table.index)).reset_index().rename(columns={"index": "method"})


def glue_results(metrics: pd.DataFrame) -> pd.DataFrame:
    """Glue every accuracy (``acc-<method>-<dataset>-<task>``), each method's mean (``mean-<method>``) and
    its change from zero-shot (``delta-<method>``); returns the per-method summary."""
    for _, r in metrics.iterrows():
        glue(key("acc", r["method"], r["dataset"], r["task"]), percent(r["accuracy"]))
        glue(key("ece", r["method"], r["dataset"], r["task"]), f"{r['ece']:.3f}")
    summary = versus_zero_shot(metrics)
    for _, r in summary.iterrows():
        glue(key("mean", r["method"]), percent(r["mean_accuracy"]))
        glue(key("delta", r["method"]), points(r["vs_zero_shot"]))
        glue(key("added", r["method"]), count(r["added"]))
    best = summary[summary.method != "zero-shot"].sort_values("mean_accuracy", ascending=False)
    if len(best):
        glue("best-method", best.iloc[0]["method"])
        glue("best-mean", percent(best.iloc[0]["mean_accuracy"]))
        glue("best-delta", points(best.iloc[0]["vs_zero_shot"]))
    glue("n-methods", str(len(summary)))
    return summary


def parameter_table(backbones: list[str], methods: list[str]) -> pd.DataFrame:
    """Added parameters per backbone and method, counted on the meta device (no weights needed);
    every count is glued as ``params-<backbone>-<method>`` and ``pct-<backbone>-<method>``."""
    from faceprompt.commands.params import method_parameter_table

    table = pd.DataFrame(method_parameter_table(backbones, methods))
    for _, r in table.iterrows():
        glue(key("params", r["backbone"], r["method"]), count(r["added"]))
        glue(key("pct", r["backbone"], r["method"]), f"{r['percent']:.4f}%")
    for backbone, sub in table.groupby("backbone"):
        glue(key("backbone-params", backbone), count(sub["backbone_params"].iloc[0]))
    return table


def latency_table(backbone: str, methods: list[str], batch_sizes: list[int], repeats: int = 5,
                  weights: str | None = None, device: str = "cpu", dtype: str = "fp32") -> pd.DataFrame:
    """Inference latency of every method against zero-shot (faceprompt.bench); glues
    ``latency-<method>-b<batch>`` (ms per batch), ``slowdown-<method>-b<batch>`` (x zero-shot) and
    ``slowdown-<method>-max`` (at the largest batch size timed, ``latency-max-batch``)."""
    from dataclasses import asdict

    from faceprompt.bench import bench_methods

    rows = bench_methods(backbone, [m for m in methods if m != "zero-shot"], list(batch_sizes), device=device,
                         weights=weights, dtype=dtype, repeats=repeats, warmup=1)
    table = pd.DataFrame([asdict(r) for r in rows])
    for _, r in table.iterrows():
        glue(key("latency", r["method"], f"b{r['batch_size']}"), f"{r['median_ms']:.1f} ms")
        glue(key("slowdown", r["method"], f"b{r['batch_size']}"), f"{r['vs_zero_shot']:.2f}x")
    if len(table):
        largest = table[table["batch_size"] == table["batch_size"].max()]
        for _, r in largest.iterrows():  # the same key whatever batch sizes a profile times
            glue(key("slowdown", r["method"], "max"), f"{r['vs_zero_shot']:.2f}x")
        glue("latency-max-batch", str(int(table["batch_size"].max())))
    glue("latency-device", str(table["device"].iloc[0]) if len(table) else device)
    return table


def fairness_summary(fairness: pd.DataFrame) -> str:
    """One sentence on the largest accuracy gap between groups, glued as ``fairness-summary``."""
    if fairness is None or not len(fairness):
        text = ("No evaluated dataset in this run carries group labels (race), so no fairness gap is "
                "measured; UTKFace and FairFace have them.")
    else:
        worst = fairness.sort_values("gap", ascending=False).iloc[0]
        text = (f"The largest gap between groups is {percent(worst['gap'])} ({worst['method']}, "
                f"{worst['dataset']} {worst['task']}).")
    return glue("fairness-summary", text)


def reliability_curves(runs_dir: str | os.PathLike, manifests: dict[str, str], task: str, bins: int = 10,
                       device: str = "cpu", cache_dir: str | None = None,
                       splits: tuple[str, ...] = ("test",)) -> pd.DataFrame:
    """Accuracy against confidence per method for one task on the test rows (equal-width bins)."""
    from faceprompt.checkpoint import load_prompts
    from faceprompt.data.dataset import DataSource, ManifestDataset, load_sources
    from faceprompt.evaluate import predict

    frame = load_sources([DataSource(m, splits) for m in manifests.values()])
    labels = ManifestDataset(frame, None, (task,)).labels[:, 0].numpy()
    keep = labels >= 0
    rows = []
    for run in sorted(Path(runs_dir).glob("*/prompts.safetensors")):
        model = load_prompts(run.parent, device=device)
        if task not in model.task_names:
            continue
        probs = predict(model, frame, cache_dir=cache_dir, progress=False)[task][keep]
        y = labels[keep]
        confidence, correct = probs.max(1), probs.argmax(1) == y
        which = np.clip((confidence * bins).astype(int), 0, bins - 1)
        for b in range(bins):
            sel = which == b
            if sel.any():
                rows.append({"method": model.method, "confidence": float(confidence[sel].mean()),
                             "accuracy": float(correct[sel].mean()), "count": int(sel.sum())})
    table = pd.DataFrame(rows)
    if len(table):
        order = {m: i for i, m in enumerate(method_order(table["method"]))}
        table = table.sort_values(["method", "confidence"], key=lambda s: s.map(order) if s.name == "method" else s,
                                  ignore_index=True)
    return table


def attention_models(backbone: str, runs_dir: str | os.PathLike, methods: list[str], manifests: dict[str, str],
                     work_dir: str | os.PathLike, weights: str | None = None, device: str = "cpu",
                     epochs: int = 1, train: dict | None = None) -> dict:
    """Models to look inside: each method's trained run on ``backbone`` from ``runs_dir`` when there is
    one, else a short training run into ``work_dir/attention/<backbone>`` (zero-shot needs none)."""
    from faceprompt.backbones import load_backbone
    from faceprompt.checkpoint import load_prompts
    from faceprompt.prompts import build_model

    tower = load_backbone(backbone, weights, device=device)
    models = {}
    for method in methods:
        if method == "zero-shot":
            models[method] = build_model("zero-shot", tower).eval()
            continue
        run = Path(runs_dir) / run_name(method)
        if not (run / "prompts.safetensors").is_file() or json.loads(
                (run / "config.json").read_text()).get("backbone") != backbone:
            run = Path(work_dir) / "attention" / backbone / run_name(method)
            if not (run / "prompts.safetensors").is_file():
                config = train_config(method, backbone, manifests, run.parent, weights=weights, device=device,
                                      train={"epochs": epochs, "batch_size": 32, **dict(train or {})})
                train_and_evaluate(config)
        models[method] = load_prompts(run, backbone=tower)
    return models


def example_photo(frame: pd.DataFrame, n: int = 6, face_size: int = 160, seed: int = 0):
    """A 'group photo' (PIL) of ``n`` test faces on a grey canvas, for showing the demo without an upload."""
    from PIL import Image

    from faceprompt.data.images import load_rgb

    pool = frame[frame["split"] == "test"]
    pool = pool if len(pool) else frame
    paths = list(pool.sample(min(n, len(pool)), random_state=seed)["path"])
    cols = min(3, len(paths))
    rows = -(-len(paths) // cols)
    gap = face_size // 4
    canvas = Image.new("RGB", (cols * (face_size + gap) + gap, rows * (face_size + gap) + gap), (200, 200, 200))
    for i, path in enumerate(paths):
        face = load_rgb(path).resize((face_size, face_size))
        canvas.paste(face, (gap + (i % cols) * (face_size + gap), gap + (i // cols) * (face_size + gap)))
    return canvas


def demo_example(app, photo):
    """Run ``photo`` through the demo app as if uploaded; returns the annotated image (or the photo)."""
    import io

    from faceprompt.demo.pipeline import draw

    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    result = app.process("example.png", buffer.getvalue())
    return photo if result is None else draw(photo, result)


def chance_levels() -> dict[str, float]:
    """Accuracy of a uniform guess per task."""
    return {name: 1.0 / task.num_classes for name, task in TASKS.items()}


def show(table: pd.DataFrame, digits: int = 3):
    """A table rounded for display (a Styler where available, so notebooks render it as HTML)."""
    return table.round(digits)
