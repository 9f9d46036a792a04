"""Runs of one method: the zero-shot baseline, the template comparison, a training run and its evaluation."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from faceprompt.book._machinery.glue import glue, key, percent, points, show
from faceprompt.book.methods import run_name
from faceprompt.tasks import TASKS

RUN_FILES = ("config.json", "metrics.json", "eval")  # what a training run writes into its folder


def zero_shot(backbone: str, manifests: dict[str, str], runs_dir: str | os.PathLike, weights: str | None = None,
              device: str = "cpu", cache_dir: str | None = None, splits: tuple[str, ...] = ("test",)):
    """Evaluate the zero-shot baseline into ``runs_dir/zero-shot``; returns the EvalResult."""
    from faceprompt.evaluate import evaluate_zero_shot

    return evaluate_zero_shot(backbone, list(manifests.values()), Path(runs_dir) / "zero-shot", weights=weights,
                              device=device, cache_dir=cache_dir, splits=splits, progress=False)


def glue_zero_shot_scores(metrics: pd.DataFrame) -> None:
    """Glue zero-shot's test accuracy per dataset and task as ``zs-<dataset>-<task>``."""
    for _, row in metrics.iterrows():
        glue(key("zs", row["dataset"], row["task"]), percent(row["accuracy"]))


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


def glue_template_comparison(templates: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (dataset, task) and prompts; glues the table (``zs-template-table``) and the mean
    gain of the ensemble over one template alone (``zs-ensemble-gain``). Returns the table."""
    table = templates.pivot_table(index=["dataset", "task"], columns="prompts", values="accuracy", sort=False)
    gain = (table["ensemble"] - table.drop(columns="ensemble").mean(axis=1)).mean()
    glue("zs-ensemble-gain", points(gain))
    glue("zs-template-table", show(table), display=False)
    return table


def train_config(method: str, backbone: str, manifests: dict[str, str], runs_dir: str | os.PathLike,
                 fields: dict | None = None, weights: str | None = None, device: str = "cpu",
                 cache_dir: str | None = None, datasets: list[str] | None = None, seed: int = 0,
                 train_splits: list[str] | tuple[str, ...] = ("train",),
                 val_splits: list[str] | tuple[str, ...] | None = ("val",),
                 train_part: list[float] | None = None, val_part: list[float] | None = None):
    """A TrainConfig for one method on the prepared manifests, trained with ``seed`` into
    ``runs_dir/<run_name(method, seed)>``: on their ``train_splits``, early-stopping on their ``val_splits``
    (empty: no validation, every epoch runs and the last is kept). ``train_part`` and ``val_part``
    ([lo, hi]) keep a hashed part of those rows, so one split can serve both when the parts are disjoint.

    ``fields``: TrainConfig fields in a run config's words (a profile's ``train_config``), laid over these.
    Its ``method_options`` may serve several methods: this one takes those its parts declare
    (:func:`~faceprompt.prompts.base.declared_options`); an option no method declares is refused."""
    from faceprompt.training.loop import TrainConfig

    chosen = {name: m for name, m in manifests.items() if datasets is None or name in datasets}
    if not chosen:
        raise ValueError(f"datasets: none of {datasets} is prepared (prepared: {list(manifests)})")
    sources = [{"manifest": m, "splits": list(train_splits), "part": train_part} for m in chosen.values()]
    # None: the val split of the training manifests; []: no validation at all. Overlaps with the
    # training rows are refused by TrainConfig, naming both.
    val = None if val_splits is None else [{"manifest": m, "splits": list(val_splits), "part": val_part}
                                           for m in chosen.values()] if val_splits else []
    fields = dict(fields or {})
    config = TrainConfig.from_dict({
        "method": method, "backbone": backbone, "weights": weights, "train": sources, "val": val,
        "run_dir": str(runs_dir), "run_id": run_name(method, seed), "device": device, "cache_dir": cache_dir,
        "seed": int(seed), **fields, "method_options": method_options(method, fields.get("method_options")),
    }, where="train_config")
    config.validate()
    return config


def method_options(method: str, shared: dict | None) -> dict:
    """The options among ``shared`` that ``method``'s parts declare; one that no method declares is refused
    (a misspelt option would otherwise reach no method, silently)."""
    from faceprompt.prompts import declared_options, list_methods, resolve_method

    shared = dict(shared or {})
    known = set().union(*(resolve_method(m).option_names for m in list_methods()))
    unknown = sorted(set(shared) - known)
    if unknown:
        raise ValueError(f"train_config: method_options {unknown} are options of no method; "
                         f"known: {sorted(known)}")
    return declared_options(method, shared)


def clear_run(run_dir: str | os.PathLike) -> bool:
    """Remove an earlier run folder so a new run starts clean. Only an empty folder or one holding a
    run's files (``RUN_FILES``) is removed; anything else is refused. Returns whether one was removed."""
    from faceprompt.lockfile import LOCK_NAME
    from faceprompt.training.loop import CHECKPOINT_FILE

    run_dir = Path(run_dir)
    if not run_dir.exists():
        return False
    names = {p.name for p in run_dir.iterdir()} - {LOCK_NAME}
    if names and not names & {*RUN_FILES, CHECKPOINT_FILE}:
        raise FileExistsError(f"{run_dir} holds no run (none of {sorted(RUN_FILES)}): not removing it")
    shutil.rmtree(run_dir)
    return True


def train_and_evaluate(config, fresh: bool = True, progress: bool = False, splits: tuple[str, ...] = ("test",)):
    """Train a method (replacing an earlier run of the same name when ``fresh``) and evaluate it on the
    ``splits`` of its training manifests. Returns (FitResult, EvalResult)."""
    from faceprompt.evaluate import evaluate
    from faceprompt.training.loop import fit

    if fresh:
        clear_run(config.run_path())
    result = fit(config, progress=progress)
    evaluation = evaluate(result.run_dir, splits=splits, device=config.device if config.device != "auto" else "cpu",
                          cache_dir=config.cache_dir, progress=False)
    return result, evaluation


def glue_training(fit, metrics: pd.DataFrame, name: str) -> None:
    """Glue a run's epochs (``train-epochs-<run>``), best epoch, why it stopped and its test accuracies
    (``train-acc-<run>-<dataset>-<task>``)."""
    glue(key("train-epochs", name), str(len(fit.history)))
    glue(key("train-best-epoch", name), str(fit.best_epoch))
    glue(key("train-stopped", name), fit.stopped)
    for _, row in metrics.iterrows():
        glue(key("train-acc", name, row["dataset"], row["task"]), percent(row["accuracy"]))
