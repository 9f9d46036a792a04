"""Evaluation: a trained run (or zero-shot) on prepared manifests, as tidy tables.

For every dataset (the manifest's ``dataset`` column) and task, over the rows labelled for it:
accuracy, balanced accuracy, macro-F1, ECE, the confusion matrix, and for age the 1-off accuracy
and the mean absolute bin error. Where race labels exist (FairFace, UTKFace) accuracy per race group
and the largest gap between groups. Every row carries the method, backbone and added parameters,
so zero-shot and trained runs compare like for like. Tables go to ``<out>/eval/`` as CSV and JSON:

=================  =========================================================================
metrics            dataset, task, n, accuracy, balanced_accuracy, macro_f1, ece, [one_off...]
confusion          dataset, task, true, predicted, count (every cell, zeros included)
fairness           dataset, task, group, n, accuracy, gap (largest minus smallest group accuracy)
reliability        dataset, task, bin, confidence, accuracy, count (ECE's confidence bins)
summary.json       method, backbone, weights, added parameters, what was evaluated
confusion_<task>   a PNG per task: its confusion matrix over every dataset, each row normalised
age_offsets        age_offsets.csv and .png: per true age bin, predictions by bins off (the thesis's analysis)
=================  =========================================================================
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from faceprompt import metrics as M
from faceprompt.backbones import load_backbone
from faceprompt.checkpoint import CONFIG_FILE, load_prompts, read_run_config, run_paths, save_prompts
from faceprompt.data.dataset import DataSource, ManifestDataset, duplicate_warnings, load_sources
from faceprompt.data.images import check_face_files
from faceprompt.data.manifest import label_indices, read_manifest, with_age_binning
from faceprompt.engine.run_folder import run_files_in
from faceprompt.features import cached_features
from faceprompt.io import atomic_path, read_json, refuse_link, write_json_atomic
from faceprompt.lockfile import FolderLock
from faceprompt.prompts import PromptModel, added_parameters, build_model
from faceprompt.tasks import TASKS

EVAL_DIR = "eval"
ORDINAL_TASKS = ("age",)


@dataclass
class EvalResult:
    metrics: pd.DataFrame
    confusion: pd.DataFrame
    fairness: pd.DataFrame
    summary: dict
    out_dir: Path | None = None
    reliability: pd.DataFrame | None = None


# --- predictions ---------------------------------------------------------------------------------

@torch.no_grad()
def predict(model: PromptModel, frame: pd.DataFrame, batch_size: int = 64, cache_dir: str | os.PathLike | None = None,
            num_workers: int = 0, progress: bool = True) -> dict[str, np.ndarray]:
    """Class probabilities [N, C] per task for the manifest rows, in row order.

    A method with a frozen image path runs on (cached) image features: the same numbers, less time.
    """
    model.eval()
    tasks = model.task_names
    dataset = ManifestDataset(frame, model.backbone.preprocess, tasks)
    device = model.backbone.device
    if model.caches_image_features:
        feats = cached_features(model.backbone, dataset, cache_dir, batch_size, num_workers, progress=progress)
        batches = (feats[i:i + batch_size] for i in range(0, len(feats), batch_size))
        forward = model.forward_features
        total = -(-len(feats) // batch_size)
    else:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
        batches = (images for images, _ in loader)
        forward, total = model, len(loader)
    chunks: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    for inputs in tqdm(batches, total=total, desc="evaluate", leave=False, disable=not progress):
        out = forward(inputs.to(device))
        for task, logits in out.logits.items():
            chunks[task].append(logits.float().softmax(-1).cpu().numpy())
    return {t: np.concatenate(c) if c else np.zeros((0, TASKS[t].num_classes)) for t, c in chunks.items()}


# --- tables --------------------------------------------------------------------------------------

def _true_labels(frame: pd.DataFrame, task: str) -> np.ndarray:
    return np.asarray(label_indices(frame, task), dtype=np.int64)


def evaluation_tables(frame: pd.DataFrame, probs: dict[str, np.ndarray],
                      group_column: str = "race") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(metrics, confusion, fairness) per dataset and task from manifest rows and predicted probabilities."""
    metric_rows, confusion_rows, fairness_rows = [], [], []
    for dataset in sorted(frame["dataset"].unique()):
        rows = (frame["dataset"] == dataset).to_numpy()
        sub = frame[rows]
        for task, task_probs in probs.items():
            classes = TASKS[task].classes
            y_true = _true_labels(sub, task)
            p = task_probs[rows]
            report = M.classification_report(y_true, p, len(classes), ordinal=task in ORDINAL_TASKS)
            if report["n"] == 0:
                continue
            y, p = M.labelled(y_true, p)
            y_pred = p.argmax(axis=1)
            groups = M.group_accuracy(y, y_pred, M.labelled(y_true, sub[group_column].to_numpy(dtype=str))[1])
            gap = (max(a for _, a in groups.values()) - min(a for _, a in groups.values())) \
                if len(groups) >= 2 else float("nan")
            metric_rows.append({"dataset": dataset, "task": task, **report, "fairness_gap": gap})
            cm = M.confusion_matrix(y, y_pred, len(classes))
            confusion_rows += [{"dataset": dataset, "task": task, "true": classes[i], "predicted": classes[j],
                                "count": int(cm[i, j])} for i in range(len(classes)) for j in range(len(classes))]
            if len(groups) >= 2:
                fairness_rows += [{"dataset": dataset, "task": task, "group": g, "n": n, "accuracy": a, "gap": gap}
                                  for g, (n, a) in groups.items()]
    columns = ["dataset", "task", "group", "n", "accuracy", "gap"]
    return pd.DataFrame(metric_rows), pd.DataFrame(confusion_rows), pd.DataFrame(fairness_rows, columns=columns)


def with_concordance(metrics: pd.DataFrame, frame: pd.DataFrame, probs: dict[str, np.ndarray], model: PromptModel,
                     batch_size: int, cache_dir, num_workers: int, progress: bool) -> pd.DataFrame:
    """``metrics`` with a ``concordance`` column: per dataset and task, the share of its rows on which the
    model predicts what the zero-shot baseline with the thesis's sentences predicts (``metrics.concordance_index``,
    every row of the dataset, labelled or not)."""
    baseline = build_model("zero-shot", model.backbone, model.tasks, {"sentences": "thesis"})
    base = predict(baseline, frame, batch_size, cache_dir, num_workers, progress)
    values = []
    for _, row in metrics.iterrows():
        rows = (frame["dataset"] == row["dataset"]).to_numpy()
        values.append(M.concordance_index(base[row["task"]][rows].argmax(1), probs[row["task"]][rows].argmax(1)))
    return metrics.assign(concordance=values)


def reliability_table(frame: pd.DataFrame, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """ECE's confidence bins per dataset and task (:func:`faceprompt.metrics.reliability_bins`): what a
    reliability diagram draws, kept so the book need not predict again."""
    rows = []
    for dataset in sorted(frame["dataset"].unique()):
        in_dataset = (frame["dataset"] == dataset).to_numpy()
        for task, task_probs in probs.items():
            y, p = M.labelled(_true_labels(frame[in_dataset], task), task_probs[in_dataset])
            rows += [{"dataset": dataset, "task": task, **record} for record in M.reliability_bins(y_true=y, probs=p)]
    return pd.DataFrame(rows, columns=["dataset", "task", "bin", "confidence", "accuracy", "count"])


# --- analysis of the tables -----------------------------------------------------------------------

def confusion_tables(confusion: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """The long ``confusion`` table as one [true x predicted] count table per (dataset, task), class order kept."""
    out = {}
    for (dataset, task), cells in confusion.groupby(["dataset", "task"], sort=True):
        classes = list(TASKS[task].classes)
        table = cells.pivot(index="true", columns="predicted", values="count").reindex(index=classes, columns=classes)
        table.index.name, table.columns.name = "true", "predicted"
        out[(dataset, task)] = table.fillna(0).astype(int)
    return out


def age_offset_table(frame: pd.DataFrame, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Counts of (predicted bin - true bin) per true age bin over the age-labelled rows of ``frame``:
    rows are the bins, columns the offsets -(K-1) .. K-1 (0: correct)."""
    classes = TASKS["age"].classes
    y_true, p = M.labelled(_true_labels(frame, "age"), probs["age"])
    counts = M.offset_counts(y_true, p.argmax(axis=1) if len(y_true) else y_true, len(classes))
    offsets = range(-(len(classes) - 1), len(classes))
    return pd.DataFrame(counts, index=pd.Index(classes, name="true"), columns=pd.Index(list(offsets), name="offset"))


def write_tables(out_dir: Path, result: EvalResult) -> Path:
    """``out_dir/eval/{metrics,confusion,fairness,reliability}.{csv,json}`` and ``summary.json``, atomically;
    each table's first column names the run it describes."""
    folder = Path(out_dir) / EVAL_DIR
    refuse_link(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("metrics", "confusion", "fairness", "reliability"):
        table: pd.DataFrame | None = getattr(result, name)
        if table is None:
            continue
        if "run" not in table.columns:
            table = table.copy()
            table.insert(0, "run", result.summary.get("run"))
        with atomic_path(folder / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
        write_json_atomic(folder / f"{name}.json", table.replace({np.nan: None}).to_dict(orient="records"))
    write_json_atomic(folder / "summary.json", result.summary)
    return folder


def _save_png(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from faceprompt.viz import DPI

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def write_figures(folder: Path, confusion: pd.DataFrame, offsets: pd.DataFrame | None, method: str) -> list[Path]:
    """``confusion_<task>.png`` per task (every dataset's counts added, rows normalised) and, with age,
    ``age_offsets.png`` (and its table as CSV), atomically."""
    from faceprompt import viz

    written = []
    for task, cells in (confusion.groupby("task", sort=False) if len(confusion) else ()):
        classes = list(TASKS[task].classes)
        counts = cells.groupby(["true", "predicted"])["count"].sum()
        matrix = np.array([[counts.get((t, p), 0) for p in classes] for t in classes])
        fig = viz.confusion_heatmap(matrix, classes, f"{task}: {method} (n = {int(matrix.sum())})")
        written.append(_save_png(fig, folder / f"confusion_{task}.png"))
    if offsets is not None and offsets.to_numpy().sum() > 0:
        with atomic_path(folder / "age_offsets.csv") as tmp:
            offsets.to_csv(tmp)
        fig = viz.offset_heatmap(offsets, f"age: {method}, predicted bin minus true bin")
        written.append(_save_png(fig, folder / "age_offsets.png"))
    return written


# --- entry points --------------------------------------------------------------------------------

def _default_sources(run_dir: Path, splits: tuple[str, ...]) -> list[DataSource]:
    config_path = run_paths(run_dir)[0]
    config = read_run_config(config_path).get("train_config") or {}
    train = config.get("train") if isinstance(config, dict) else None
    manifests = []
    for i, source in enumerate(train if isinstance(train, list) else []):
        manifest = DataSource.parse(source, splits, f"{config_path}: train_config.train[{i}]").manifest
        if manifest not in manifests:
            manifests.append(manifest)
    if not manifests:
        raise ValueError(f"manifests: none given and {config_path} names no training manifests")
    return [DataSource(m, splits) for m in manifests]


def run_age_binning(run_dir: Path | None) -> str:
    """How the run binned ages in training (its ``age_binning``; "floor" for a run from before the option)."""
    if run_dir is None:
        return "floor"
    config = read_run_config(run_paths(run_dir)[0]).get("train_config")
    return str(config.get("age_binning", "floor")) if isinstance(config, dict) else "floor"


def _check_out_dir(out_dir: str | os.PathLike | None, run_dir: Path | None = None) -> None:
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"out_dir: {out_dir} exists and is not a folder")
    if out_dir is None or run_dir is None or Path(out_dir).resolve() == Path(run_dir).resolve():
        return
    found = run_files_in(Path(out_dir))
    if found:
        raise ValueError(f"out_dir: {out_dir} holds another run ({', '.join(found)}); its tables would be "
                         f"replaced by {run_dir}'s: choose a folder that is not a run")


def evaluate(run_dir: str | os.PathLike | None = None, *, model: PromptModel | None = None,
             manifests: list[str] | None = None, splits: tuple[str, ...] = ("test",),
             datasets: list[str] | None = None, out_dir: str | os.PathLike | None = None, batch_size: int = 64,
             device: str = "cpu", weights: str | None = None, cache_dir: str | os.PathLike | None = None,
             num_workers: int = 0, progress: bool = True, backbone: str | None = None,
             tasks: tuple[str, ...] | None = None, write_run: bool = False, compile: bool = False,
             concordance: bool = False, age_binning: str | None = None) -> EvalResult:
    """Evaluate a run folder (or an in-memory ``model``) on manifests; write tables to ``out_dir`` (default
    ``run_dir``). Without ``manifests`` a run is evaluated on the ``splits`` of its training manifests;
    ``datasets`` keeps only those values of the ``dataset`` column. ``backbone`` and ``tasks``, where given,
    must be the run's (a run is evaluated on what it was trained for; anything else is refused).
    Every image is checked (present, readable, big enough for a face) before the model loads.
    ``write_run``: once the data checks pass, save the model's prompts and config.json to ``out_dir`` too.
    ``compile``: the image path runs through ``torch.compile`` (worth it on large test sets).
    ``concordance``: add the thesis's concordance index per dataset and task (``with_concordance``).
    ``age_binning``: how a given age becomes its true bin (``tasks.AGE_BINNINGS``); None: as the run trained."""
    if model is None and run_dir is None:
        raise ValueError("run_dir: give a run folder or a model")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be 1 or more, got {batch_size}")
    if write_run and out_dir is None:
        raise ValueError("out_dir: needed to write the run")
    run_dir = None if run_dir is None else run_paths(run_dir)[0].parent  # a prompts file names its run folder
    _check_out_dir(out_dir, run_dir)
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    if manifests:
        sources = [DataSource(m, splits, tuple(datasets) if datasets else None) for m in manifests]
    elif run_dir is not None:
        sources = [DataSource(s.manifest, splits, tuple(datasets) if datasets else None)
                   for s in _default_sources(run_dir, splits)]
    else:
        raise ValueError("manifests: give at least one manifest to evaluate on")
    for i, source in enumerate(sources):
        source.check(f"manifests[{i}]")
    age_binning = age_binning or run_age_binning(run_dir)
    frame = with_age_binning(load_sources(sources, "manifests"), age_binning)  # fails before weights load
    if len(frame) == 0:
        raise ValueError(f"splits: no rows with split {list(splits)} in {[s.manifest for s in sources]}")
    check_face_files(list(frame["path"]), where=f"manifests {[s.manifest for s in sources]}")
    if "train" not in splits:
        trained = pd.concat([read_manifest(s.manifest) for s in sources], ignore_index=True)
        duplicate_warnings(frame, f"evaluated rows (splits {list(splits)})",
                           {"the train split": trained[trained["split"] == "train"]})
    if model is None:
        model = load_prompts(run_dir, backbone=backbone, weights=weights, device=device, tasks=tasks)
    if not any((_true_labels(frame, t) >= 0).any() for t in model.task_names):
        raise ValueError(f"manifests: no row of {[s.manifest for s in sources]} (splits {list(splits)}) has a label "
                         f"for the tasks {list(model.task_names)}: nothing to evaluate")
    if write_run:
        save_prompts(model, out_dir)
    if compile:
        model.backbone.compile_image_path()
    probs = predict(model, frame, batch_size, cache_dir, num_workers, progress)
    metrics, confusion, fairness = evaluation_tables(frame, probs)
    if concordance and len(metrics):
        metrics = with_concordance(metrics, frame, probs, model, batch_size, cache_dir, num_workers, progress)
    identity = {"method": model.method, "backbone": model.backbone.name, "added_parameters": added_parameters(model)}
    if len(metrics):
        for position, (key, value) in enumerate(identity.items()):
            metrics.insert(position, key, value)
    target = out_dir if out_dir is not None else run_dir
    named = run_dir if run_dir is not None else target
    summary = {"run": Path(named).name if named is not None else None, **identity,
               "weights": model.backbone.weights_id, "rows": len(frame),
               "manifests": [s.manifest for s in sources], "splits": list(splits), "age_binning": age_binning,
               "datasets": sorted(frame["dataset"].unique())}
    result = EvalResult(metrics, confusion, fairness, summary, None, reliability_table(frame, probs))
    if target is not None:
        refuse_link(Path(target) / EVAL_DIR)
        with FolderLock(Path(target) / EVAL_DIR, "faceprompt evaluate"):  # one writer: never two runs' tables mixed
            result.out_dir = write_tables(Path(target), result)
            write_figures(result.out_dir, confusion, age_offset_table(frame, probs) if "age" in probs else None,
                          model.method)
    return result


def _refuse_replacing_a_run(out_dir: Path) -> None:
    """Zero-shot writes its own config.json and prompts file: never over a trained run's."""
    config_path = out_dir / CONFIG_FILE
    if not config_path.exists():
        return
    try:
        config = read_json(config_path)
    except (ValueError, OSError):
        config = None
    method = config.get("method") if isinstance(config, dict) else None
    if method != "zero-shot":
        raise ValueError(f"out_dir: {out_dir} holds a run ({method or 'unreadable config.json'}); zero-shot "
                         f"evaluation would replace its files: choose another folder")


def evaluate_zero_shot(backbone: str, manifests: list[str], out_dir: str | os.PathLike, *,
                       weights: str | None = None, tasks: tuple[str, ...] | None = None, device: str = "cpu",
                       method_config: dict | None = None, **kwargs) -> EvalResult:
    """Zero-shot on the same footing as a trained run: ``out_dir`` becomes a run folder
    (config.json, an empty prompts file) and gets the same tables."""
    if not manifests:
        raise ValueError("manifests: zero-shot evaluation needs at least one manifest")
    _check_out_dir(out_dir)
    _refuse_replacing_a_run(Path(out_dir))
    tower = load_backbone(backbone, weights, device=device)
    model = build_model("zero-shot", tower, tasks, method_config)
    return evaluate(model=model, manifests=manifests, out_dir=out_dir, write_run=True, **kwargs)
