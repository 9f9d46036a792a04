"""Plots for the notebooks and the book, and the one helper that saves every figure.

Every plotting function takes tidy data (a DataFrame or arrays), draws on a new figure and returns it;
:func:`savefig` writes it as a PNG into the figures folder (``book/figures`` unless the caller or
``FACEPROMPT_FIGURES`` says otherwise), so chapters can include the file by name.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

DEFAULT_FIGURES_DIR = "book/figures"
DPI = 110


def figures_dir(folder: str | os.PathLike | None = None) -> Path:
    """The folder figures go to: ``folder``, else ``$FACEPROMPT_FIGURES``, else ``book/figures``."""
    return Path(folder or os.environ.get("FACEPROMPT_FIGURES") or DEFAULT_FIGURES_DIR)


def savefig(fig: plt.Figure, name: str, folder: str | os.PathLike | None = None, close: bool = False) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (the folder is created) and return the path.

    The figure stays open unless ``close``, so a notebook still displays it inline.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    path = figures_dir(folder) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    if close:
        plt.close(fig)
    return path


def _style() -> None:
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)


def label_distribution(counts: pd.DataFrame) -> plt.Figure:
    """Bar charts of class counts: one panel per task, bars per class, colour per dataset/split.

    ``counts`` has columns task, class, count and a hue column ``group`` (e.g. "synthetic/train").
    """
    _style()
    tasks = list(dict.fromkeys(counts["task"]))
    widths = [max(2, counts[counts.task == t]["class"].nunique()) for t in tasks]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3 + 0.55 * sum(widths), 3.4),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sub = counts[counts.task == task]
        sns.barplot(data=sub, x="class", y="count", hue="group", ax=ax, errorbar=None)
        ax.set_title(task)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45)
        if ax is not axes[0][-1]:
            legend = ax.get_legend()
            if legend is not None:
                legend.remove()
    fig.tight_layout()
    return fig


def accuracy_bars(table: pd.DataFrame, value: str = "accuracy", hue: str = "method",
                  chance: dict[str, float] | None = None) -> plt.Figure:
    """Accuracy per task (one panel per dataset), one bar per ``hue`` value; dashed line = chance."""
    _style()
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(1.5 + 4.2 * len(datasets), 3.6), squeeze=False,
                             sharey=True)
    for ax, dataset in zip(axes[0], datasets):
        sub = table[table.dataset == dataset]
        sns.barplot(data=sub, x="task", y=value, hue=hue, ax=ax, errorbar=None)
        if chance:
            for i, task in enumerate(dict.fromkeys(sub["task"])):
                if task in chance:
                    ax.hlines(chance[task], i - 0.45, i + 0.45, colors="k", linestyles="--", linewidth=1)
        ax.set_title(dataset)
        ax.set_ylim(0, 1)
        ax.set_xlabel("")
        if ax is not axes[0][-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    legend = axes[0][-1].get_legend()
    if legend is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def confusion_heatmap(matrix: np.ndarray, classes: list[str], title: str = "",
                      normalize: bool = True) -> plt.Figure:
    """A confusion matrix as a heatmap (rows: true class, columns: predicted), row-normalised by default."""
    _style()
    matrix = np.asarray(matrix, dtype=float)
    if normalize:
        matrix = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    size = 1.2 + 0.45 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    sns.heatmap(matrix, annot=len(classes) <= 9, fmt=".2f" if normalize else ".0f", cmap="Blues",
                xticklabels=classes, yticklabels=classes, vmin=0, vmax=1 if normalize else None, ax=ax,
                cbar=False, annot_kws={"size": 7})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def offset_heatmap(offsets: pd.DataFrame, title: str = "") -> plt.Figure:
    """Where the errors fall: per true class (rows), the share of its predictions each number of classes above
    or below it (columns, predicted minus true; 0 is correct), as ``evaluate.age_offset_table`` counts them."""
    _style()
    matrix = offsets.to_numpy(dtype=float)
    matrix = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * matrix.shape[1], 1.2 + 0.4 * matrix.shape[0]))
    sns.heatmap(matrix, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax,
                xticklabels=list(offsets.columns), yticklabels=list(offsets.index), annot_kws={"size": 6})
    ax.tick_params(axis="y", rotation=0)
    ax.set_xlabel("predicted - true")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def confusion_grid(confusion: pd.DataFrame, task: str, classes: list[str], by: str = "method",
                   max_panels: int = 8) -> plt.Figure:
    """Row-normalised confusion matrices of one task, one panel per value of ``by`` (e.g. per method)."""
    _style()
    sub = confusion[confusion.task == task]
    keys = list(dict.fromkeys(sub[by]))[:max_panels]
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        cells = sub[sub[by] == key].groupby(["true", "predicted"])["count"].sum()
        matrix = np.array([[cells.get((t, p), 0) for p in classes] for t in classes], dtype=float)
        matrix = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
        sns.heatmap(matrix, cmap="Blues", vmin=0, vmax=1, cbar=False, ax=ax, square=True,
                    xticklabels=classes, yticklabels=classes)
        ax.set_title(str(key), fontsize=9)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    fig.tight_layout()
    return fig


def reliability_diagram(curves: pd.DataFrame, title: str = "") -> plt.Figure:
    """Accuracy against confidence per method (``curves``: method, confidence, accuracy, count)."""
    _style()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="calibrated")
    for method, sub in curves.groupby("method", sort=False):
        ax.plot(sub["confidence"], sub["accuracy"], marker="o", markersize=3, label=str(method))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return _labelled(fig, ax, "confidence", "accuracy", title)


def data_efficiency(table: pd.DataFrame, zero_shot: float, title: str = "") -> plt.Figure:
    """Test accuracy against labelled faces per class (``table``: method, shots, accuracy, accuracy_sd, in
    the order the shots grow), one line per method with its seed sd as a band; zero-shot dashed."""
    _style()
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    for method, sub in table.groupby("method", sort=False):
        xs = np.arange(len(sub))
        sd = sub["accuracy_sd"].fillna(0).to_numpy()
        line, = ax.plot(xs, sub["accuracy"], marker="o", markersize=4, label=str(method))
        ax.fill_between(xs, sub["accuracy"] - sd, sub["accuracy"] + sd, color=line.get_color(), alpha=0.15)
        ax.set_xticks(xs, [str(s) for s in sub["shots"]])
    ax.axhline(zero_shot, color="k", linestyle="--", linewidth=1, label="zero-shot")
    return _labelled(fig, ax, "labelled faces per class", "test accuracy", title)


def _labelled(fig: plt.Figure, ax, xlabel: str, ylabel: str, title: str) -> plt.Figure:
    """Axis labels, title and a small frameless legend: the line plots' common finish."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def tradeoff_scatter(table: pd.DataFrame, x: str = "added", y: str = "mean_accuracy", label: str = "method",
                     logx: bool = True) -> plt.Figure:
    """One point per method: e.g. added parameters (log scale) against mean accuracy."""
    _style()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    xs = table[x].clip(lower=1) if logx else table[x]
    ax.scatter(xs, table[y], s=30)
    for xv, yv, name in zip(xs, table[y], table[label]):
        ax.annotate(str(name), (xv, yv), textcoords="offset points", xytext=(4, 3), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, metrics: tuple[str, ...] = ("train_loss", "val_mean_accuracy"),
                    hue: str | None = None) -> plt.Figure:
    """Per-epoch curves (one panel per metric), optionally one line per ``hue`` value (e.g. method)."""
    _style()
    metrics = tuple(m for m in metrics if m in history.columns)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(data=history, x="epoch", y=metric, hue=hue, marker="o", ax=ax)
        ax.set_title(metric.replace("_", " "))
        ax.set_ylabel("")
        if ax is not axes[0][-1] and ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def group_accuracy_bars(fairness: pd.DataFrame, task: str) -> plt.Figure:
    """Accuracy per demographic group for one task, one bar group per method."""
    _style()
    sub = fairness[fairness.task == task]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    sns.barplot(data=sub, x="group", y="accuracy", hue="method", ax=ax, errorbar=None)
    ax.set_ylim(0, 1)
    ax.set_title(f"{task}: accuracy per group")
    ax.tick_params(axis="x", rotation=30)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def no_data(message: str) -> plt.Figure:
    """A small figure that says why a plot is empty, so a chapter's figure always exists."""
    fig, ax = plt.subplots(figsize=(4, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11)
    return fig


def image_grid(images: list, titles: list[str] | None = None, cols: int = 6, size: float = 1.6) -> plt.Figure:
    """A grid of images (PIL images or HxWx3 arrays) with optional titles."""
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, (size + 0.35) * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        ax.imshow(np.asarray(image))
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def overlay_grid(images: list[np.ndarray], maps: list[list[np.ndarray]], row_titles: list[str],
                 col_titles: list[str], alpha: float = 0.55, cmap: str = "inferno") -> plt.Figure:
    """Heatmaps over images: one row per image, first column the image, then one column per map.

    ``images``: HxWx3 floats in [0, 1]; ``maps[i][j]``: an HxW map for image i and column j (any range;
    each is scaled to [0, 1] for display).
    """
    rows, cols = len(images), 1 + len(col_titles)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.95 * rows), squeeze=False)
    for i, image in enumerate(images):
        axes[i][0].imshow(image)
        axes[i][0].set_ylabel(row_titles[i], fontsize=7)
        for j, heat in enumerate(maps[i]):
            heat = np.asarray(heat, dtype=float)
            span = heat.max() - heat.min()
            heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
            axes[i][j + 1].imshow(image)
            axes[i][j + 1].imshow(heat, cmap=cmap, alpha=alpha)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title("face", fontsize=8)
    for j, title in enumerate(col_titles):
        axes[0][j + 1].set_title(title, fontsize=8)
    fig.tight_layout()
    return fig
