"""Every glue key the book uses, declared once: its pattern, the notebook that glues it and the function
that does (``None``: the notebook glues it itself, by its literal name).

A pattern's ``{placeholder}`` stands for any value of a list derived from the registries
(``PLACEHOLDERS``): ``mean-{method}`` is ``mean-zero-shot``, ``mean-coop``, ... for every method of
:func:`faceprompt.book.methods.book_methods`. :mod:`faceprompt.book._machinery.keycheck` checks, without running
anything, that every key a chapter quotes matches a pattern here, that the notebook it names calls the
producing function and that the function's source glues that key.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _methods() -> list[str]:
    from faceprompt.book.methods import book_methods

    return book_methods()


def _runs() -> list[str]:
    from faceprompt.book.methods import run_name, trained_methods

    return [run_name(m) for m in trained_methods()]


def _datasets() -> list[str]:
    from faceprompt.data.adapters import ADAPTERS  # the dataset layouts `faceprompt prepare` reads

    return list(ADAPTERS)


def _tasks() -> list[str]:
    from faceprompt.tasks import TASKS

    return list(TASKS)


def _emotions() -> list[str]:
    from faceprompt.tasks import TASKS

    return list(TASKS["emotion"].classes)


def _backbones() -> list[str]:
    from faceprompt.backbones import BACKBONES

    return list(BACKBONES)


def _families() -> list[str]:
    from faceprompt.backbones import BACKBONES

    return sorted({spec.family for spec in BACKBONES.values()})


def _shape_fields() -> list[str]:
    from faceprompt.book.architecture import SHAPE_FIELDS

    return list(SHAPE_FIELDS)


def _releases() -> list[str]:
    from faceprompt.book.faceclip_tiny import RELEASES

    return list(RELEASES)


def _logged() -> list[str]:
    from faceprompt.book.logged import LOGGED, read_logged
    from faceprompt.locations import project_root

    data = read_logged(project_root() / LOGGED)
    return [*data.get("values", {}), *data.get("tables", {})]


def _detectors() -> list[str]:
    from faceprompt.detect import DETECTORS

    return list(DETECTORS)


# placeholder -> the values it stands for (a run name may carry a seed suffix: see RUN_SUFFIX)
PLACEHOLDERS: dict[str, Callable[[], list[str]]] = {
    "method": _methods, "run": _runs, "dataset": _datasets, "task": _tasks, "emotion": _emotions,
    "backbone": _backbones, "family": _families, "field": _shape_fields, "logged": _logged,
    "release": _releases, "detector": _detectors,
}
RUN_SUFFIX = r"(-seed\d+)?"
BATCH = r"(b\d+|max)"  # {batch}: a batch size timed, or the largest one


@dataclass(frozen=True)
class GlueKey:
    """A key or a family of keys: ``pattern`` (placeholders in braces), the ``notebook`` that glues it and
    the ``producer`` function (``module.function`` under ``faceprompt.book``; None: glued inline)."""

    pattern: str
    notebook: str
    producer: str | None = None

    def matches(self, key: str) -> bool:
        return pattern_regex(self.pattern).fullmatch(key) is not None

    @property
    def stem(self) -> str:
        """The literal start of the pattern, as the producer's source spells it."""
        return self.pattern.split("{")[0].rstrip("-")


@functools.lru_cache(maxsize=None)
def pattern_regex(pattern: str) -> re.Pattern:
    """``pattern`` as a regular expression: literal text, and each placeholder as an alternation of its values
    (cached: the registries are complete once the package is imported)."""
    parts, last = [], 0
    for match in PLACEHOLDER.finditer(pattern):
        parts.append(re.escape(pattern[last:match.start()]))
        name = match.group(1)
        if name == "batch":
            parts.append(BATCH)
        else:
            values = sorted(PLACEHOLDERS[name](), key=len, reverse=True)
            parts.append("(" + "|".join(map(re.escape, values)) + ")" + (RUN_SUFFIX if name == "run" else ""))
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts))


def _family(notebook: str, producer: str | None, *patterns: str) -> list[GlueKey]:
    return [GlueKey(p, notebook, producer) for p in patterns]


KEYS: tuple[GlueKey, ...] = tuple(
    _family("10_data_prep", "datasets.glue_data_summary", "data-rows", "data-datasets", "data-source",
            "data-splits-table")
    + _family("10_data_prep", "leakage.held_out_check", "heldout-summary")
    + _family("10_data_prep", "leakage.adaptation_check", "adaptation-summary")
    + _family("20_zero_shot", None, "zs-backbone")
    + _family("20_zero_shot", "runs.glue_zero_shot_scores", "zs-{dataset}-{task}")
    + _family("20_zero_shot", "runs.glue_template_comparison", "zs-ensemble-gain", "zs-template-table")
    + _family("30_train", "runs.glue_training", "train-epochs-{run}", "train-best-epoch-{run}",
              "train-stopped-{run}", "train-acc-{run}-{dataset}-{task}")
    + _family("40_evaluate", None, "eval-backbone", "eval-accuracy-table", "eval-summary-table",
              "eval-params-table", "bench-backbone", "eval-latency-table", "age-confusion-dataset",
              "eval-ece-table", "eval-fairness-table")
    + _family("40_evaluate", "results.glue_results", "acc-{method}-{dataset}-{task}", "ece-{method}-{dataset}-{task}",
              "mean-{method}", "delta-{method}", "added-{method}", "best-method", "best-mean", "best-delta",
              "n-methods", "eval-methods-table")
    + _family("40_evaluate", "seeds.glue_seed_results", "eval-seed-table", "eval-seed-verdicts",
              "seed-{method}-verdict", "seed-count", "seed-methods", "seed-improving", "seed-improving-f1")
    + _family("40_evaluate", "speed.parameter_table", "params-{backbone}-{method}", "pct-{backbone}-{method}",
              "backbone-params-{backbone}")
    + _family("40_evaluate", "speed.glue_latency", "latency-{method}-{batch}", "slowdown-{method}-{batch}",
              "latency-max-batch", "latency-device")
    + _family("40_evaluate", "results.glue_one_off", "oneoff-{method}-{dataset}")
    + _family("40_evaluate", "results.fairness_summary", "fairness-summary")
    + _family("40_evaluate", "target.glue_target", "target-dataset", "target-task", "target-zero-shot",
              "target-zero-shot-balanced", "target-best-method", "target-best", "target-best-gain",
              "target-best-balanced-gain", "target-over-2sd", "target-worst-elsewhere", "target-selected",
              "target-selection-table",
              "target-table")
    + _family("45_data_efficiency", "few_shot.glue_data_efficiency", "few-shot-table", "few-shot-zero-shot",
              "few-shot-beats-{method}")
    + _family("50_attention", "attention.glue_prompt_shares", "prompt-share-{family}-{method}-{task}")
    + _family("50_attention", None, "attention-table")
    + _family("60_demo", None, "demo-status", "demo-photos-count", "demo-photos-table", "demo-photos-right",
              "demo-older-table", "demo-tuned-prompts", "demo-photos-zero-shot-right", "demo-side-by-side",
              "demo-age-gender-table")
    + _family("70_recorded", "speed.glue_inference", "speed-gpu-table", "speed-gpu-repeats",
              "speed-gpu-batches", "speed-gpu-text-within", "speed-gpu-vpt-pe", "speed-gpu-vpt-siglip",
              "speed-gpu-vpt-ts-b1", "speed-gpu-vpt-ts-looped-b1", "speed-gpu-vpt-ts-saving", "speed-gpu-v2pt-pe",
              "speed-gpu-vpt-ts-memory")
    + _family("70_recorded", "speed.glue_epoch_cache", "speed-gpu-cache-build", "speed-gpu-cache-images",
              "speed-gpu-cache-table")
    + _family("70_recorded", "views.glue_views", "views-table", "views-most", "views-seeds", "views-epochs",
              "views-train-rows", "views-emotion-rows", "views-duplicates", "views-per-face", "views-emotion-change",
              "views-verdict")
    + _family("70_recorded", "speed.glue_flops", "speed-flops-table", "speed-flops-lower",
              "speed-flops-l14-counter", "speed-flops-l14-profiler")
    + _family("70_recorded", "faceclip_tiny.glue_recipe", "ftiny-train-rows", "ftiny-all-rows", "ftiny-image-size",
              "ftiny-seed", "ftiny-parameters", "ftiny-weights-mb", "ftiny-split-percent", "ftiny-crop-scale",
              "ftiny-grayscale-p", "ftiny-emotion-samples", "ftiny-emotion-share", "ftiny-emotion-balance",
              "ftiny-age-balance", "ftiny-epochs", "ftiny-steps", "ftiny-batch", "ftiny-optimiser", "ftiny-patch-drop", "ftiny-threads",
              "ftiny-torch", "ftiny-train-seconds", "ftiny-total-seconds", "ftiny-minutes", "ftiny-epoch-seconds",
              "ftiny-last-epoch-seconds")
    + _family("70_recorded", "faceclip_tiny.glue_captions", "ftiny-templates", "ftiny-age-tolerance")
    + _family("70_recorded", "faceclip_tiny.glue_cache_time", "ftiny-cache-minutes")
    + _family("70_recorded", "faceclip_tiny.glue_wild_recipe", "ftiny-datasets", "ftiny-crop", "ftiny-augmentations",
              "ftiny-model", "ftiny-prompt-loss", "ftiny-expression-train",
              "ftiny-emotion-table")
    + _family("70_recorded", "faceclip_tiny.glue_targets", "ftiny-targets-reached", "ftiny-targets-table")
    + _family("70_recorded", "faceclip_tiny.glue_zero_shot", "ftiny-zs-{dataset}-{task}",
              "ftiny-zs-{dataset}-{task}-n", "ftiny-zs-{dataset}-{task}-oneoff", "ftiny-zs-{dataset}-{task}-f1",
              "ftiny-zero-shot-table")
    + _family("70_recorded", "faceclip_tiny.glue_pretrain_gpu", "ftiny-gpu-device", "ftiny-gpu-minutes",
              "ftiny-gpu-seconds", "ftiny-gpu-epoch-seconds", "ftiny-gpu-rows", "ftiny-gpu-step-ms")
    + _family("70_recorded", "architecture.glue_shapes", "arch-{backbone}-{field}", "arch-table")
    + _family("70_recorded", "faceclip_tiny.glue_release", *(f"ftiny-{{release}}-{field}" for field in (
        "f1", "emotion", "fe-gender", "age", "oneoff", "utk-gender", "epochs", "draws")))
    + _family("70_recorded", "logged.glue_logged", "{logged}")
    + _family("70_recorded", "wild.glue_landmarks", "crop-landmarks-table", "crop-landmarks-n", "crop-landmarks-run",
              "crop-landmarks-cost")
    + _family("70_recorded", "wild.glue_wild", "wild-table", "wild-n", "wild-images", "wild-runs", "wild-detector",
              "wild-other-boxes", "wild-interval", "wild-speed-box", "wild-speed-aligned", "wild-gain-{task}",
              "wild-q1")
    + _family("70_recorded", "wild.glue_releases", "wild-release-table", "wild-release-detector")
    + _family("70_recorded", "wild.glue_detectors", "wild-detectors-table", "wild-photos-table", "wild-photos-run",
              "wild-photos-{detector}")
    + _family("70_recorded", "wild.glue_demo_timings", "demo-cpu-table", "demo-cpu-run", "demo-cpu-backbone",
              "demo-cpu-detector", "demo-cpu-repeats", "demo-cpu-default-ms", "demo-cpu-target-ms", "demo-cpu-within",
              "demo-cpu-default-detect-ms", "demo-cpu-startup")
    + _family("70_recorded", "wild.glue_demo_settings", "demo-min-score", "demo-min-size", "demo-uncertain-below",
              "demo-margin", "demo-crop", "demo-face-photo-side", "demo-max-megapixels",
              "demo-uncertain-levels")
)


# Each producing module's key prefixes: a key glued by a function of ``faceprompt/book/<module>.py`` starts
# with a prefix of that module, and with no longer prefix of another, so the key a chapter quotes names the
# module that computes it. Keys a notebook glues itself, and keys named by data (``{logged}``), are free.
PREFIXES: dict[str, tuple[str, ...]] = {
    "datasets": ("data-",),
    "leakage": ("heldout-", "adaptation-"),
    "runs": ("zs-", "train-"),
    "results": ("acc-", "ece-", "mean-", "delta-", "added-", "best-", "n-methods", "eval-methods-", "oneoff-",
                "fairness-"),
    "seeds": ("seed-", "eval-seed-"),
    "speed": ("speed-", "params-", "pct-", "backbone-params-", "latency-", "slowdown-"),
    "target": ("target-",),
    "few_shot": ("few-shot-",),
    "attention": ("prompt-share-",),
    "faceclip_tiny": ("ftiny-",),
    "architecture": ("arch-",),
    "wild": ("crop-", "wild-", "demo-"),
    "views": ("views-",),
}


def prefix_module(key: str, prefixes: dict[str, tuple[str, ...]] = PREFIXES) -> str | None:
    """The module whose longest declared prefix starts ``key``, the first declared on a tie (None: no prefix does)."""
    matches = [(p, module) for module, own in prefixes.items() for p in own if key.startswith(p)]
    return max(matches, key=lambda match: len(match[0]))[1] if matches else None


def declared(key: str, notebook: str | None = None, keys: tuple[GlueKey, ...] = KEYS) -> list[GlueKey]:
    """The declarations matching ``key`` (of ``notebook`` only, when given)."""
    return [k for k in keys if (notebook is None or k.notebook == notebook) and k.matches(key)]
