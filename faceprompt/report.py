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

def run_name(method: str, seed: int | None = None) -> str:
    """The run folder name of a method ('softcpt+vpt' -> 'softcpt_vpt'); seeds other than 0 add
    '-seed<n>' ('vpt', 2 -> 'vpt-seed2'), so seed 0 keeps the plain name other notebooks look for."""
    name = method.replace("+", "_").replace(":", "_")
    return name if not seed else f"{name}-seed{int(seed)}"


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
                   extra: dict | None = None, context_init: str | None = None) -> dict:
    """Flat method options: ``context_tokens`` and ``context_init`` (its ``init``) for text methods that
    learn a context (CoOp, SoftCPT), ``tokens`` for visual prompts (VPT, VPT-TS, V2PT), plus ``extra``;
    a method ignores what it lacks."""
    from faceprompt.prompts import resolve_method

    preset = resolve_method(method)
    options = {}
    if preset.text in ("coop", "softcpt"):
        if context_tokens is not None:
            options["context_tokens"] = int(context_tokens)
        if context_init is not None:
            options["init"] = str(context_init)
    if visual_tokens is not None and preset.visual in ("vpt", "v2pt"):
        options["tokens"] = int(visual_tokens)
    return {**options, **dict(extra or {})}


def train_config(method: str, backbone: str, manifests: dict[str, str], runs_dir: str | os.PathLike,
                 train: dict | None = None, method_options: dict | None = None, weights: str | None = None,
                 device: str = "cpu", cache_dir: str | None = None, datasets: list[str] | None = None,
                 seed: int = 0, train_splits: list[str] | tuple[str, ...] = ("train",),
                 val_splits: list[str] | tuple[str, ...] | None = ("val",),
                 train_part: list[float] | None = None, val_part: list[float] | None = None):
    """A TrainConfig for one method on the prepared manifests, trained with ``seed`` into
    ``runs_dir/<run_name(method, seed)>``: on their ``train_splits``, early-stopping on their ``val_splits``
    (empty: no validation, every epoch runs and the last is kept). ``train_part`` and ``val_part``
    ([lo, hi]) keep a hashed part of those rows, so one split can serve both when the parts are disjoint."""
    from faceprompt.train import TrainConfig

    chosen = {name: m for name, m in manifests.items() if datasets is None or name in datasets}
    if not chosen:
        raise ValueError(f"datasets: none of {datasets} is prepared (prepared: {list(manifests)})")
    sources = [{"manifest": m, "splits": list(train_splits), "part": train_part} for m in chosen.values()]
    # None: the val split of the training manifests; []: no validation at all. Overlaps with the
    # training rows are refused by TrainConfig, naming both.
    val = None if val_splits is None else [{"manifest": m, "splits": list(val_splits), "part": val_part}
                                           for m in chosen.values()] if val_splits else []
    config = TrainConfig.from_dict({
        "method": method, "method_options": dict(method_options or {}), "backbone": backbone, "weights": weights,
        "train": sources, "val": val, "run_dir": str(runs_dir), "run_id": run_name(method, seed), "device": device,
        "cache_dir": cache_dir, "seed": int(seed), **dict(train or {}),
    })
    config.validate()
    return config


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
        if "seed" not in table.columns:
            config = path.parent.parent / "config.json"
            saved = json.loads(config.read_text()) if config.is_file() else {}
            seed = saved.get("seed", (saved.get("train_config") or {}).get("seed", 0))
            table.insert(1, "seed", int(seed))
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
    means = metrics.groupby(["method", "dataset", "task"], sort=False)[["accuracy", "ece"]].mean().reset_index()
    for _, r in means.iterrows():  # a method trained with several seeds: the mean over seeds
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


def _trained_on(run: Path, tower) -> bool:
    """Whether ``run`` holds prompts trained on this very backbone and weights."""
    if not (run / "prompts.safetensors").is_file():
        return False
    config = json.loads((run / "config.json").read_text())
    return config.get("backbone") == tower.name and config.get("weights") in (None, tower.weights_id)


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
        if not _trained_on(run, tower):
            run = Path(work_dir) / "attention" / backbone / run_name(method)
            if not _trained_on(run, tower):  # absent, or left from other weights (an updated model)
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


def glue_one_off(metrics: pd.DataFrame) -> pd.DataFrame:
    """Age scores per method and dataset (the mean over seeds where a method has several), with one-off
    accuracy glued as ``oneoff-<method>-<dataset>``."""
    columns = ["accuracy", "one_off_accuracy", "mean_abs_bin_error"]
    age = metrics[metrics.task == "age"].groupby(["method", "dataset"], sort=False)[columns].mean().reset_index()
    for _, row in age.iterrows():
        glue(key("oneoff", row["method"], row["dataset"]), percent(row["one_off_accuracy"]))
    return age


def chance_levels() -> dict[str, float]:
    """Accuracy of a uniform guess per task."""
    return {name: 1.0 / task.num_classes for name, task in TASKS.items()}


def show(table: pd.DataFrame, digits: int = 3):
    """A table rounded for display (a Styler where available, so notebooks render it as HTML)."""
    return table.round(digits)


# --- real data: where the numbers come from, and the held-out check -------------------------------------

def data_source(datasets: list) -> str:
    """One phrase on the run's data ('synthetic faces' or 'real faces: utkface, facial_expressions'),
    glued as ``data-source``."""
    names = [spec.name for spec in parse_datasets(datasets)]
    real = [n for n in names if n != "synthetic"]
    text = ("real faces: " + ", ".join(real) + (" and synthetic faces" if "synthetic" in names else "")
            if real else "synthetic faces")
    return glue("data-source", text)


def model_splits(backbone: str) -> pd.DataFrame | None:
    """The split of every image an embedded model was trained on (``splits.csv.gz`` next to its weights:
    dataset, key, split), or None for a backbone without a record."""
    path = Path(__file__).parent / "pretrained" / backbone / "splits.csv.gz"
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.is_file() else None


def held_out_check(manifests: dict[str, str], backbone: str) -> pd.DataFrame:
    """For each prepared dataset: its test rows, how many the backbone's recorded split also holds out,
    and how many it trained on (must be 0; raises otherwise). Datasets the backbone never saw are
    reported as such. Glued as ``heldout-summary``."""
    recorded = model_splits(backbone)
    rows = []
    for name, manifest in manifests.items():
        from faceprompt.data.splits import read_splits

        ours = read_splits(Path(manifest).parent / "splits.csv")
        test_keys = {k for k, s in ours.items() if s == "test"}
        frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        n_test = int((frame["split"] == "test").sum())
        row = {"dataset": name, "test rows": n_test, "model held out": np.nan, "model trained on": np.nan,
               "not in model record": np.nan}
        if recorded is not None and name in set(recorded["dataset"]):
            theirs = dict(zip(*recorded[recorded["dataset"] == name][["key", "split"]].values.T))
            tested = sorted(test_keys)
            row["model held out"] = sum(theirs.get(k) == "test" for k in tested)
            row["model trained on"] = sum(theirs.get(k) in ("train", "val") for k in tested)
            row["not in model record"] = sum(k not in theirs for k in tested)
        rows.append(row)
    table = pd.DataFrame(rows)
    checked = table.dropna(subset=["model trained on"])
    leaked = int(checked["model trained on"].sum()) if len(checked) else 0
    if leaked:
        raise ValueError(f"{leaked} test image(s) of {list(checked['dataset'])} were in {backbone}'s training "
                         f"or validation split: prepare with the seed and fractions the model recorded")
    if len(checked):
        text = (f"None of the test images of {', '.join(checked['dataset'])} was among {backbone}'s "
                f"pretraining images: the test split is the one the model held out.")
    else:
        text = f"{backbone} records no pretraining split for these datasets; nothing to check."
    glue("heldout-summary", text)
    return table


# --- several training seeds ----------------------------------------------------------------------------

TASK_SCORES = (("gender", "accuracy"), ("age", "accuracy"), ("emotion", "accuracy"), ("emotion", "macro_f1"))


def seed_table(metrics: pd.DataFrame, min_seeds: int = 2) -> pd.DataFrame:
    """Per method trained with at least ``min_seeds`` seeds, and for zero-shot: mean and spread (sample
    standard deviation over seeds; min and max too) of every (dataset, task, metric) of
    ``TASK_SCORES`` (accuracy of every task, and emotion's macro-F1), and the mean's change from zero-shot.

    Columns: method, seeds, dataset, task, metric, mean, std, min, max, zero_shot, delta.
    """
    if "seed" not in metrics.columns:
        metrics = metrics.assign(seed=0)
    seeds = metrics[metrics.method != "zero-shot"].groupby("method")["seed"].nunique()
    keep = ["zero-shot"] + [m for m, n in seeds.items() if n >= min_seeds]
    rows = []
    for (method, dataset, task), sub in metrics[metrics.method.isin(keep)].groupby(
            ["method", "dataset", "task"], sort=False):
        for t, metric in TASK_SCORES:
            if t != task or metric not in sub.columns:
                continue
            values = sub[metric].astype(float)
            rows.append({"method": method, "seeds": int(sub["seed"].nunique()) if method != "zero-shot" else 0,
                         "dataset": dataset, "task": task, "metric": metric, "mean": values.mean(),
                         "std": values.std(ddof=1) if len(values) > 1 else 0.0, "min": values.min(),
                         "max": values.max()})
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    base = table[table.method == "zero-shot"].set_index(["dataset", "task", "metric"])["mean"]
    table["zero_shot"] = [base.get((r.dataset, r.task, r.metric), np.nan) for r in table.itertuples()]
    table["delta"] = table["mean"] - table["zero_shot"]
    order = {m: i for i, m in enumerate(method_order(table["method"]))}
    return table.sort_values(["method", "dataset", "task", "metric"], kind="stable", ignore_index=True,
                             key=lambda s: s.map(order) if s.name == "method" else s)


def seed_verdicts(table: pd.DataFrame, need: int = 2) -> pd.DataFrame:
    """Whether each seeded method beats zero-shot on ``need`` of the three tasks. A task's score is its
    mean accuracy over the datasets labelling it (emotion: its accuracy); a task counts as improved when
    the method's seed mean is above zero-shot's.

    ``verdict_with_f1`` counts emotion only when its macro-F1 improves too (a method can gain accuracy
    by favouring the frequent classes).

    Columns: method, seeds, gender, age, emotion (change in accuracy), emotion_macro_f1 (change),
    improved (tasks), verdict, verdict_with_f1.
    """
    acc = table[(table.metric == "accuracy")]
    rows = []
    for method, sub in acc[acc.method != "zero-shot"].groupby("method", sort=False):
        deltas = sub.groupby("task")["delta"].mean()
        improved = [t for t in ("gender", "age", "emotion") if deltas.get(t, np.nan) > 0]
        f1 = table[(table.method == method) & (table.task == "emotion") & (table.metric == "macro_f1")]["delta"]
        f1 = f1.mean() if len(f1) else np.nan
        strict = [t for t in improved if t != "emotion" or f1 > 0]
        rows.append({"method": method, "seeds": int(sub["seeds"].max()),
                     **{t: deltas.get(t, np.nan) for t in ("gender", "age", "emotion")}, "emotion_macro_f1": f1,
                     "improved": ", ".join(improved) or "none",
                     "verdict": "yes" if len(improved) >= need else "no",
                     "verdict_with_f1": "yes" if len(strict) >= need else "no"})
    return pd.DataFrame(rows)


def seed_markdown(table: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    """The seed table as markdown: one row per method, one column per (dataset, task, metric), each cell
    'mean ± std' in percent (zero-shot: its single value), then the verdict."""
    cols = list(dict.fromkeys(zip(table["dataset"], table["task"], table["metric"])))
    header = ["method", "seeds"] + [f"{d} {t}" + (" (macro-F1)" if m == "macro_f1" else "") for d, t, m in cols]
    header += ["improves on zero-shot (>= 2 of 3 tasks)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    verdict = dict(zip(verdicts["method"], verdicts["improved"] + " -> " + verdicts["verdict"])) if len(verdicts) else {}
    for method, sub in table.groupby("method", sort=False):
        cells = []
        for d, t, m in cols:
            r = sub[(sub.dataset == d) & (sub.task == t) & (sub.metric == m)]
            if not len(r):
                cells.append("")
                continue
            r = r.iloc[0]
            cell = f"{100 * r['mean']:.1f}" if method == "zero-shot" else \
                f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f} ({100 * r['delta']:+.1f})"
            cells.append(cell)
        seeds = "" if method == "zero-shot" else str(int(sub["seeds"].max()))
        lines.append("| " + " | ".join([method, seeds] + cells + [verdict.get(method, "baseline")]) + " |")
    return "\n".join(lines) + "\n"


def glue_seed_results(metrics: pd.DataFrame, out_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed table and verdicts, written to ``out_dir/seed_table.csv``, ``seed_verdicts.csv`` and
    ``seed_table.md`` and glued (``eval-seed-table``, ``eval-seed-verdicts``, ``seed-<method>-verdict``,
    ``seed-count``, ``seed-methods``, ``seed-improving``)."""
    table = seed_table(metrics)
    verdicts = seed_verdicts(table) if len(table) else pd.DataFrame()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "seed_table.csv", index=False)
    verdicts.to_csv(out / "seed_verdicts.csv", index=False)
    text = seed_markdown(table, verdicts) if len(table) else "No method was trained with several seeds.\n"
    (out / "seed_table.md").write_text(text)
    wide = table.assign(cell=[percent(m) if s == 0 else f"{percent(m)} ± {100 * d:.1f}"
                              for m, d, s in zip(table["mean"], table["std"], table["seeds"])]) if len(table) else table
    if len(table):
        wide = wide.pivot_table(index="method", columns=["dataset", "task", "metric"], values="cell",
                                aggfunc="first", sort=False)
        wide = wide.reindex(method_order(wide.index))
    glue("eval-seed-table", wide, display=False)
    shown = verdicts.copy()
    for t in ("gender", "age", "emotion", "emotion_macro_f1"):
        if t in shown.columns:
            shown[t] = shown[t].map(points)
    glue("eval-seed-verdicts", shown, display=False)
    for _, r in verdicts.iterrows():
        glue(key("seed", r["method"], "verdict"), f"{r['verdict']} ({r['improved']})")
    seeded = verdicts["seeds"].max() if len(verdicts) else 0
    glue("seed-count", str(int(seeded)))
    glue("seed-methods", ", ".join(verdicts["method"]) if len(verdicts) else "none")
    glue("seed-improving", ", ".join(verdicts[verdicts.verdict == "yes"]["method"]) or "none"
         if len(verdicts) else "none")
    glue("seed-improving-f1", ", ".join(verdicts[verdicts.verdict_with_f1 == "yes"]["method"]) or "none"
         if len(verdicts) else "none")
    return table, verdicts
