"""The numbers of the faceclip-tiny chapter: its recipe (``recipe.json``, written by ``faceprompt pretrain``),
its model config and the GPU timing of the recipe (``benchmarks/bench_pretrain.py``'s JSON).

Keys start with ``ftiny-``; :mod:`faceprompt.book._machinery.keys` lists them.
"""
from __future__ import annotations

import pandas as pd

from faceprompt.book._machinery.glue import count, glue, percent, span
from faceprompt.io import read_json  # noqa: F401  (the notebook reads records through this module)

MODEL = "faceclip-tiny"
RECIPE = f"faceprompt/pretrained/{MODEL}/recipe.json"
PRETRAIN_GPU = "benchmarks/results/h200-2026-11-27/pretrain_gpu.json"
SECONDS_PER_MINUTE = 60
BYTES_PER_MB = 1e6


def split_rows(recipe: dict, split: str) -> int:
    """Rows of ``split`` over every dataset the recipe records."""
    return sum(int(d[split]["rows"]) for d in recipe["splits"].values())


def expression_datasets(recipe: dict) -> list[str]:
    """The recipe's datasets with emotion labels (their images share one balanced pool)."""
    return [name for name, splits in recipe["splits"].items() if "emotion" in splits["train"]]


def emotion_counts(recipe: dict, splits=("train", "val", "test"), datasets: list[str] | None = None) -> pd.Series:
    """Emotion labels summed over ``splits`` and ``datasets`` (default: every dataset with emotion labels)."""
    counts = [pd.Series(recipe["splits"][d][s]["emotion"], dtype=float)
              for d in (datasets or expression_datasets(recipe)) for s in splits]
    return pd.concat(counts, axis=1).fillna(0).sum(axis=1).astype(int)


def steps_per_epoch(recipe: dict) -> int:
    """Every train image without an emotion label once, plus ``emotion_samples`` draws, in full batches."""
    cfg = recipe["config"]
    plain = split_rows(recipe, "train") - int(emotion_counts(recipe, ("train",)).sum())
    return (plain + int(cfg["emotion_samples"])) // int(cfg["batch_size"])


def glue_recipe(recipe: dict) -> None:
    """Glue the recipe's settings, data counts and time (``ftiny-*``)."""
    cfg = recipe["config"]
    glue("ftiny-train-rows", f"{split_rows(recipe, 'train'):,}")
    glue("ftiny-all-rows", f"{sum(split_rows(recipe, s) for s in ('train', 'val', 'test')):,}")
    glue("ftiny-image-size", str(cfg["image_size"]))
    glue("ftiny-seed", str(cfg["seed"]))
    glue("ftiny-parameters", count(recipe["parameters"]))
    glue("ftiny-weights-mb", f"{recipe['weights_bytes'] / BYTES_PER_MB:.1f} MB")
    glue("ftiny-split-percent", "/".join(f"{round(100 * f)}" for f in (
        1 - cfg["val_fraction"] - cfg["test_fraction"], cfg["val_fraction"], cfg["test_fraction"])))
    glue("ftiny-crop-scale", f"{100 * cfg['crop_scale'][0]:.0f}-{100 * cfg['crop_scale'][1]:.0f} %")
    glue("ftiny-grayscale-p", f"{cfg['grayscale_p']:g}")
    glue("ftiny-emotion-samples", f"{cfg['emotion_samples']:,}")
    glue("ftiny-emotion-share", percent(cfg["emotion_samples"] / (steps_per_epoch(recipe) * cfg["batch_size"]), 0))
    glue("ftiny-emotion-balance", f"{cfg['emotion_balance']:g}")
    glue("ftiny-age-balance", f"{cfg.get('age_balance', 0.0):g}")
    glue("ftiny-epochs", str(cfg["epochs"]))
    glue("ftiny-steps", str(steps_per_epoch(recipe)))
    glue("ftiny-batch", str(cfg["batch_size"]))
    glue("ftiny-optimiser", f"lr {cfg['lr']:g}, weight decay {cfg['weight_decay']:g}, {cfg['warmup_steps']} "
                            f"warm-up steps, cosine to {cfg['min_lr']:g}")
    glue("ftiny-patch-drop", percent(cfg["patch_drop"], 0))
    glue("ftiny-threads", str(recipe["threads"]))
    glue("ftiny-torch", recipe["torch"])
    glue("ftiny-train-seconds", f"{recipe['train_seconds']:,.0f} s")
    glue("ftiny-total-seconds", f"{recipe['total_seconds']:,.0f} s")
    glue("ftiny-minutes", f"{recipe['total_seconds'] / SECONDS_PER_MINUTE:.0f} minutes")
    seconds = epoch_durations(recipe)
    glue("ftiny-epoch-seconds", span(seconds[:-cfg["unmasked_epochs"]], unit=" s"))
    glue("ftiny-last-epoch-seconds", span(seconds[-cfg["unmasked_epochs"]:], unit=" s"))


def glue_cache_time(builder: dict) -> None:
    """Glue ``ftiny-cache-minutes``: the time outside the epochs of the run that built the image cache this
    recipe reads (``builder``, an earlier release with the same crop, size and datasets): almost all of it
    is the cache, the rest loading rows and the held-out scoring."""
    glue("ftiny-cache-minutes", f"{(builder['total_seconds'] - builder['train_seconds']) / SECONDS_PER_MINUTE:.0f} minutes")


def augmentations(cfg: dict) -> str:
    """The recipe's augmentations as prose, read from its config (the fields ``PretrainConfig`` names)."""
    parts = [f"random resized crop of {100 * cfg['crop_scale'][0]:.0f}-{100 * cfg['crop_scale'][1]:.0f} % of the area"]
    if cfg.get("flip_p"):
        parts.append(f"horizontal flip (p = {cfg['flip_p']:g})")
    if cfg.get("rotate_p"):
        parts.append(f"rotation up to ±{cfg['rotate_degrees']:g}° (p = {cfg['rotate_p']:g})")
    if cfg.get("shift"):
        parts.append(f"shift up to {100 * cfg['shift']:.0f} % of the side")
    if cfg.get("color_p"):
        parts.append(f"colour jitter of strength {cfg['color_strength']:g} (p = {cfg['color_p']:g})")
    if cfg.get("white_balance_p"):
        parts.append(f"white balance: one gain per channel within ±{cfg['white_balance_strength']:g} "
                     f"(p = {cfg['white_balance_p']:g})")
    parts.append(f"grayscale (p = {cfg['grayscale_p']:g})")
    if cfg.get("blur_p"):
        parts.append(f"Gaussian blur of sigma {cfg['blur_sigma'][0]:g}-{cfg['blur_sigma'][1]:g} (p = {cfg['blur_p']:g})")
    if cfg.get("jpeg_p"):
        parts.append(f"JPEG at quality {cfg['jpeg_quality'][0]}-{cfg['jpeg_quality'][1]} (p = {cfg['jpeg_p']:g})")
    return "; ".join(parts)


def prompt_loss_words(cfg: dict) -> str:
    """The zero-shot classifier's loss term of the recipe, in words (``PretrainConfig.prompt_loss_weight``)."""
    weight = cfg.get("prompt_loss_weight", 0.0)
    if not weight:
        return "none (the contrastive loss alone)"
    words = f"weight {weight:g}"
    if cfg.get("age_neighbour_weight"):
        words += f"; each adjacent age bin gets {cfg['age_neighbour_weight']:g} of the age target before normalising"
    return words


def emotion_draws(recipe: dict) -> pd.DataFrame:
    """Per emotion: train images of each expression dataset, the class's share of them, and its share of an
    epoch's draws (an image is drawn with p ~ count(class) ** -emotion_balance)."""
    datasets = expression_datasets(recipe)
    table = pd.DataFrame({d: emotion_counts(recipe, ("train",), [d]) for d in datasets}).fillna(0).astype(int)
    total = table.sum(axis=1)
    draws = total.astype(float) ** (1 - recipe["config"]["emotion_balance"])
    table["share of images"] = (total / total.sum()).map(percent)
    table["share of draws"] = (draws / draws.sum()).map(percent)
    return table.rename_axis("emotion")


def glue_wild_recipe(recipe: dict) -> pd.DataFrame:
    """Glue what the in-the-wild recipe adds: datasets, crop, augmentations and the draw table."""
    cfg = recipe["config"]
    glue("ftiny-datasets", ", ".join(recipe["splits"]))
    glue("ftiny-crop", cfg.get("crop", "center"))
    glue("ftiny-augmentations", augmentations(cfg))
    glue("ftiny-model", cfg["model"])
    glue("ftiny-prompt-loss", prompt_loss_words(cfg))
    glue("ftiny-expression-train", f"{int(emotion_counts(recipe, ('train',)).sum()):,}")
    return glue("ftiny-emotion-table", emotion_draws(recipe), display=False)


# The in-the-wild retraining's aims on the held-out test splits: (dataset, task, metric, at least), set
# against the release that was shipped before it (AIM_RELEASE).
WILD_TARGETS = (("ferplus", "emotion", "accuracy", 0.75), ("ferplus", "emotion", "balanced_accuracy", 0.65),
                ("utkface", "gender", "accuracy", 0.91), ("utkface", "age", "accuracy", 0.50),
                ("utkface", "age", "one_off", 0.88), ("facial_expressions", "emotion", "macro_f1", 0.45))
AIM_RELEASE = "centre64"


def target_table(recipe: dict, earlier: dict[str, dict], aim_release: str) -> pd.DataFrame:
    """Each aim against the recipe's zero-shot test score, with every earlier release's (a column each, by
    name) where it has one; facial_expressions' emotion accuracy is aimed at no lower than ``aim_release``'s,
    the release the aims were set against."""
    base = earlier[aim_release]["test_zero_shot"]["facial_expressions"]["emotion"]["accuracy"]
    targets = [*WILD_TARGETS, ("facial_expressions", "emotion", "accuracy", base)]
    rows = []
    for dataset, task, metric, aim in targets:
        show = (lambda v: f"{v:.3f}") if metric == "macro_f1" else percent
        row = {"test split": dataset, "task": task, "metric": metric.replace("_", " "), "aim": f">= {show(aim)}"}
        for name, release in earlier.items():
            before = release["test_zero_shot"].get(dataset, {}).get(task, {}).get(metric)
            row[name] = "-" if before is None else show(before)
        now = recipe["test_zero_shot"].get(dataset, {}).get(task, {}).get(metric)
        row["this release"] = "-" if now is None else show(now)
        row["reached"] = "-" if now is None else ("yes" if now >= aim - 1e-12 else "no")
        rows.append(row)
    return pd.DataFrame(rows)


def glue_targets(recipe: dict, earlier: dict[str, dict], aim_release: str = AIM_RELEASE) -> pd.DataFrame:
    table = target_table(recipe, earlier, aim_release)
    glue("ftiny-targets-reached", f"{(table['reached'] == 'yes').sum()} of {len(table)}")
    return glue("ftiny-targets-table", table.set_index(["test split", "task", "metric"]), display=False)


def epoch_durations(recipe: dict) -> list[float]:
    """Seconds per epoch (the history records the time elapsed at the end of each)."""
    elapsed = [0.0] + [h["seconds"] for h in recipe["history"]]
    return [b - a for a, b in zip(elapsed, elapsed[1:])]


def glue_captions() -> None:
    """Glue how many caption templates pretraining draws from and how close an exact age must be."""
    from faceprompt.pretraining.captions import AGE_TOLERANCE, TEMPLATES

    glue("ftiny-templates", str(len(TEMPLATES)))
    glue("ftiny-age-tolerance", str(AGE_TOLERANCE))


def zero_shot_table(recipe: dict) -> pd.DataFrame:
    """The recipe's zero-shot test numbers: test split, task, n, accuracy, and one-off or macro-F1."""
    rows = []
    for dataset, tasks in recipe["test_zero_shot"].items():
        for task, scores in tasks.items():
            other = (f"1-off {percent(scores['one_off'])}" if "one_off" in scores else
                     f"macro-F1 {scores['macro_f1']:.3f}" if "macro_f1" in scores else "")
            rows.append({"test split": dataset, "task": task, "n": int(scores["n"]),
                         "accuracy": percent(scores["accuracy"]), "other": other})
    return pd.DataFrame(rows).set_index(["test split", "task"])


def glue_zero_shot(recipe: dict) -> pd.DataFrame:
    """Glue each zero-shot test score (``ftiny-zs-<dataset>-<task>``, ``...-oneoff``, ``...-f1``) and the table."""
    for dataset, tasks in recipe["test_zero_shot"].items():
        for task, scores in tasks.items():
            glue(f"ftiny-zs-{dataset}-{task}", percent(scores["accuracy"]))
            glue(f"ftiny-zs-{dataset}-{task}-n", str(scores["n"]))
            if "one_off" in scores:
                glue(f"ftiny-zs-{dataset}-{task}-oneoff", percent(scores["one_off"]))
            if "macro_f1" in scores:
                glue(f"ftiny-zs-{dataset}-{task}-f1", f"{scores['macro_f1']:.3f}")
    return glue("ftiny-zero-shot-table", zero_shot_table(recipe), display=False)


RELEASES_DIR = "benchmarks/results/faceclip-tiny-releases"
RELEASES = ("48px", "20ep", "centre64", "wild80", "wildpl")  # earlier releases whose recipe.json the book shows
PREVIOUS = "wildpl"  # the release before this one
GPU_TIMED_RELEASE = "centre64"  # the release whose recipe PRETRAIN_GPU timed
IN_THE_WILD_SINCE = ("centre64", "wild80", "wildpl")  # the release the in-the-wild aims were set against, and after


def glue_release(recipe: dict, release: str) -> None:
    """Glue an earlier release's recipe and zero-shot test scores as ``ftiny-<release>-*``."""
    scores = recipe["test_zero_shot"]
    expressions, utk = scores["facial_expressions"], scores["utkface"]
    glue(f"ftiny-{release}-f1", f"{expressions['emotion']['macro_f1']:.3f}")
    glue(f"ftiny-{release}-emotion", percent(expressions["emotion"]["accuracy"]))
    glue(f"ftiny-{release}-fe-gender", percent(expressions["gender"]["accuracy"]))
    glue(f"ftiny-{release}-age", percent(utk["age"]["accuracy"]))
    glue(f"ftiny-{release}-oneoff", percent(utk["age"]["one_off"]))
    glue(f"ftiny-{release}-utk-gender", percent(utk["gender"]["accuracy"]))
    glue(f"ftiny-{release}-epochs", str(recipe["config"]["epochs"]))
    glue(f"ftiny-{release}-draws", f"{recipe['config']['emotion_samples']:,}")


def glue_pretrain_gpu(timing: dict, recipe: dict) -> None:
    """Glue the GPU timing of the whole recipe on stand-in data (``ftiny-gpu-*``)."""
    seconds = timing["epoch_seconds"]
    glue("ftiny-gpu-device", timing["device"])
    glue("ftiny-gpu-minutes", f"{timing['train_seconds'] / SECONDS_PER_MINUTE:.1f} minutes")
    glue("ftiny-gpu-seconds", f"{timing['train_seconds']:.0f} s")
    glue("ftiny-gpu-epoch-seconds", span(seconds, "{:.1f}", " s"))
    glue("ftiny-gpu-rows", f"{timing['rows']:,}")
    steps = timing["epochs"] * steps_per_epoch(recipe)
    glue("ftiny-gpu-step-ms", f"{1000 * timing['train_seconds'] / steps:.0f} ms")
