"""The numbers of the face-crop and demo chapters: the CPU benchmarks' JSON and the demo's settings.

``benchmarks/bench_landmarks.py --json``, ``benchmarks/bench_in_the_wild.py --json`` (one file per crop) and
``benchmarks/bench_demo_cpu.py --json`` write the files read here; the demo's thresholds come from
:mod:`faceprompt.demo.pipeline`'s constants, so the chapters quote what the code does. Keys start with
``crop-``, ``wild-`` or ``demo-``.
"""
from __future__ import annotations

import inspect
import math
import statistics
from pathlib import Path

import pandas as pd

from faceprompt.book._machinery.glue import glue, percent, points, span
from faceprompt.io import read_json

CPU_RESULTS_DIR = "benchmarks/results/cpu-2026-12-03"
LANDMARKS_FILE = "landmarks.json"
WILD_FILES = {"box": "in_the_wild_box.json", "aligned": "in_the_wild_aligned.json"}
DEMO_CPU_FILE = "demo_cpu.json"  # benchmarks/bench_demo_cpu.py --json
# bench_in_the_wild.py with the aligned crop: the demo's default detector, and dlib beside it
DETECTOR_FILES = ("in_the_wild_aligned.json", "in_the_wild_dlib.json")
PHOTOS_FILE = "detector_photos.json"  # benchmarks/bench_detector_photos.py --json
QUANTILES = {"0.01": "q1", "0.05": "q5", "0.5": "q50"}  # as the JSON spells them -> column
TASKS = ("gender", "age", "emotion")
Z95 = 1.96  # normal quantile of a two-sided 95% interval


def read_record(path: str | Path) -> dict:
    """One benchmark record (a JSON object with ``command``, ``date``, ``load_average``, ``results``)."""
    return read_json(path)


def run_line(record: dict) -> str:
    """'python COMMAND on DATE (load average A B C, N cores)'."""
    load = " ".join(f"{v:.1f}" for v in record["load_average"])
    return f"python {record['command']} on {record['date'][:10]} (load average {load}, {record['cpus']} cores)"


def landmark_table(record: dict) -> pd.DataFrame:
    """Folders as rows; per model the faces with five points found (of the sample) and ms per image."""
    rows = {}
    for folder, result in record["results"].items():
        n, cells = result["images"], {}
        for model, cell in result["models"].items():
            cells[f"{model}: found"] = f"{cell['found']}/{n} ({percent(cell['found'] / n)})"
            cells[f"{model}: ms per image"] = f"{cell['ms_per_image']:.1f}"
        rows[folder] = cells
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("images")


def glue_landmarks(results_dir: str | Path = CPU_RESULTS_DIR) -> pd.DataFrame:
    """Glue the landmark-model table (``crop-landmarks-table``), its sample and run, and MTCNN's time
    relative to dlib's."""
    record = read_record(Path(results_dir) / LANDMARKS_FILE)
    results = record["results"].values()
    glue("crop-landmarks-n", span([r["images"] for r in results]))
    glue("crop-landmarks-run", run_line(record))
    glue("crop-landmarks-cost", span([r["models"]["MTCNN"]["ms_per_image"] / r["models"]["dlib 5-point"]["ms_per_image"]
                                      for r in results], "{:.1f}", "×"))
    return glue("crop-landmarks-table", landmark_table(record), display=False)


def wild_records(results_dir: str | Path = CPU_RESULTS_DIR) -> dict[str, dict]:
    """Crop mode -> its in-the-wild record."""
    return {crop: read_record(Path(results_dir) / name) for crop, name in WILD_FILES.items()}


def wild_row(result: dict) -> dict:
    """One dataset of one run as the chapter prints it."""
    row = {"n": result["images"], "detected": percent(result["detection_rate"]),
           "taken whole": result.get("whole_image", 0), "fallbacks": result["crop_fallbacks"],
           "img/s": f"{result['faces_per_s']:.1f}"}
    for task in TASKS:
        if task in result["accuracy"]:
            row[task] = f"{percent(result['accuracy'][task])} (crop {percent(result['crop_level_accuracy'][task])})"
    for q, column in QUANTILES.items():
        row[f"score {column}"] = f"{result['score_quantiles'][q]:.3f}" if q in result["score_quantiles"] else ""
    return row


def wild_table(records: dict[str, dict]) -> pd.DataFrame:
    """Rows (dataset, crop); columns n, detection rate, fallbacks, speed, accuracy per task through the
    detector with the crop-level accuracy in brackets, and the quantiles of the surest detection's score."""
    datasets = dict.fromkeys(d for record in records.values() for d in record["results"])
    rows = {(dataset, crop): wild_row(record["results"][dataset])
            for dataset in datasets for crop, record in records.items() if dataset in record["results"]}
    table = pd.DataFrame.from_dict(rows, orient="index")
    columns = ["n", "detected", "taken whole", "fallbacks", "img/s", *(t for t in TASKS if t in table),
               *(f"score {c}" for c in QUANTILES.values())]
    return table[columns].fillna("").rename_axis(["dataset", "crop"])


def gains(records: dict[str, dict], task: str) -> list[float]:
    """Per dataset labelled for ``task``: aligned accuracy minus box accuracy (through the detector)."""
    box, aligned = records["box"]["results"], records["aligned"]["results"]
    return [aligned[d]["accuracy"][task] - box[d]["accuracy"][task]
            for d in box if d in aligned and task in box[d]["accuracy"]]


def glue_wild(results_dir: str | Path = CPU_RESULTS_DIR) -> pd.DataFrame:
    """Glue the in-the-wild table (``wild-table``), its sample, the aligned crop's gain per task, the 95%
    interval of one accuracy at that sample and the score quantiles the demo's threshold is set from."""
    records = wild_records(results_dir)
    results = [r for record in records.values() for r in record["results"].values()]
    sizes = [r["images"] for r in records["box"]["results"].values()]
    glue("wild-n", span(sizes))
    glue("wild-images", str(sum(sizes)))
    glue("wild-runs", "; ".join(run_line(r) for r in records.values()))
    glue("wild-detector", records["box"]["detector"])
    glue("wild-other-boxes", str(max(len(r["other_box_scores"]) for r in results)))
    glue("wild-interval", f"±{100 * Z95 * math.sqrt(0.25 / min(sizes)):.0f} pp")
    glue("wild-speed-box", span([r["faces_per_s"] for r in records["box"]["results"].values()], "{:.1f}"))
    glue("wild-speed-aligned", span([r["faces_per_s"] for r in records["aligned"]["results"].values()], "{:.1f}"))
    for task in TASKS:
        glue(f"wild-gain-{task}", " and ".join(dict.fromkeys(points(g) for g in gains(records, task))))
    box = records["box"]["results"]
    glue("wild-q1", ", ".join(f"{d} {r['score_quantiles']['0.01']:.3f}" for d, r in box.items() if r["score_quantiles"]))
    return glue("wild-table", wild_table(records), display=False)


def release_table(earlier: dict[str, dict], current: dict) -> pd.DataFrame:
    """Accuracy through the detector per dataset and task: each earlier release's run (a column each, by
    name) against this one's (all ``bench_in_the_wild.py`` records, same crop mode), with this one's crop
    level beside it."""
    rows = []
    for dataset, now in current["results"].items():
        for task in TASKS:
            if task not in now["accuracy"]:
                continue
            row = {"dataset": dataset, "task": task}
            for name, record in earlier.items():
                before = record["results"].get(dataset, {}).get("accuracy", {})
                row[name] = percent(before[task]) if task in before else "-"
            row["this release"] = percent(now["accuracy"][task])
            row["this release, crop level"] = percent(now["crop_level_accuracy"][task])
            row["detector - crop level"] = points(now["accuracy"][task] - now["crop_level_accuracy"][task])
            rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "task"])


def glue_releases(earlier_dirs: dict[str, str | Path], current_dir: str | Path, crop: str = "aligned") -> pd.DataFrame:
    """Glue ``wild-release-table`` (see ``release_table``) for the ``crop`` runs of the earlier releases'
    results folders (by release name) and this release's through the same detector
    (``wild-release-detector``)."""
    earlier = {name: read_record(Path(d) / WILD_FILES[crop]) for name, d in earlier_dirs.items()}
    detectors = {record["detector"] for record in earlier.values()}
    if len(detectors) != 1:
        raise ValueError(f"the earlier releases were recorded with different detectors: {sorted(detectors)}")
    # this release through the same detector as the earlier ones, so the table compares models only
    files = [Path(current_dir) / name for name in dict.fromkeys((WILD_FILES[crop], *DETECTOR_FILES))]
    current = [r for r in map(read_record, filter(Path.is_file, files))
               if r["crop"] == crop and r["detector"] in detectors]
    if not current:
        raise ValueError(f"{current_dir}: no {crop} record with detector {detectors.pop()}")
    glue("wild-release-detector", current[0]["detector"])
    return glue("wild-release-table", release_table(earlier, current[0]), display=False)


def detector_table(records: list[dict]) -> pd.DataFrame:
    """Rows (dataset, detector) of ``bench_in_the_wild.py`` runs that differ in their detector: faces
    labelled (a face found, or a face-sized photo taken whole: those counted apart), other boxes labelled in
    these single-face photos, boxes dropped, accuracy per task, speed."""
    rows = {}
    for record in records:
        for dataset, r in record["results"].items():
            row = {"labelled": percent(r["detection_rate"]), "taken whole": r.get("whole_image", 0),
                   "other boxes labelled": len(r["other_box_scores"]),
                   "dropped": sum(r.get("dropped_boxes", {}).values())}
            row.update({task: percent(r["accuracy"][task]) for task in TASKS if task in r["accuracy"]})
            rows[(dataset, record["detector"])] = {**row, "img/s": f"{r['faces_per_s']:.1f}"}
    table = pd.DataFrame.from_dict(rows, orient="index").fillna("").rename_axis(["dataset", "detector"])
    order = {d: i for i, d in enumerate(dict.fromkeys(d for d, _ in rows))}
    columns = [c for c in ("labelled", "taken whole", "other boxes labelled", "dropped", *TASKS, "img/s")
               if c in table]
    return table.sort_index(level=0, key=lambda index: index.map(order), sort_remaining=False)[columns]


def photos_table(record: dict) -> pd.DataFrame:
    """``bench_detector_photos.py``: a row per photo with its faces, a column per detector 'found (false)',
    and a last row of totals."""
    detectors = list(record["results"])
    photos = list(record["results"][detectors[0]])
    cell = lambda r: f"{r['on_a_face']}" + (f" ({r['false']} false)" if r["false"] else "")  # noqa: E731
    rows = {photo: {"faces": record["results"][detectors[0]][photo]["faces"],
                    **{d: cell(record["results"][d][photo]) for d in detectors}} for photo in photos}
    totals = {d: photo_totals(record, d) for d in detectors}
    rows["all photos"] = {"faces": totals[detectors[0]][1],
                          **{d: f"{found}" + (f" ({false} false)" if false else "") for d, (found, _, false)
                             in totals.items()}}
    if all("detect_ms" in r for d in detectors for r in record["results"][d].values()):
        median = {d: statistics.median(r["detect_ms"] for r in record["results"][d].values()) for d in detectors}
        rows["detection ms, median"] = {"faces": "", **{d: f"{ms:.1f}" for d, ms in median.items()}}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("photo")


def photo_totals(record: dict, detector: str) -> tuple[int, int, int]:
    """(faces found, faces there, false boxes) over every photo of ``detector``."""
    rows = record["results"][detector].values()
    return sum(r["on_a_face"] for r in rows), sum(r["faces"] for r in rows), sum(r["false"] for r in rows)


def glue_detectors(results_dir: str | Path) -> pd.DataFrame:
    """Glue the detector comparison: held-out photos per detector (``wild-detectors-table``), photos from
    outside the datasets (``wild-photos-table``), and per detector its totals there (``wild-photos-<name>``:
    'F of N faces, B false boxes')."""
    records = [read_record(Path(results_dir) / name) for name in DETECTOR_FILES]
    photos = read_record(Path(results_dir) / PHOTOS_FILE)
    glue("wild-photos-run", run_line(photos))
    for detector in photos["results"]:
        found, faces, false = photo_totals(photos, detector)
        glue(f"wild-photos-{detector}", f"{found} of {faces} faces, {false} false box{'es' if false != 1 else ''}")
    glue("wild-photos-table", photos_table(photos), display=False)
    return glue("wild-detectors-table", detector_table(records), display=False)


def demo_timing_table(record: dict) -> pd.DataFrame:
    """``bench_demo_cpu.py``'s settings as rows: the median ms of each stage and the frame's 90th percentile,
    and whether every face kept the reference setting's labels (all of them, and those it shows as certain)."""
    def verdict(changes: list) -> str:
        return "same" if not changes else f"{len(changes)} face(s) differ"

    rows = {}
    for name, setting in record["settings"].items():
        stages = {f"{stage} ms": f"{ms:.1f}" for stage, ms in setting["median_ms"].items()}
        rows[name] = {"faces": setting["faces"], **stages, "frame ms, p90": f"{setting['p90_ms']['frame']:.1f}",
                      "labels": verdict(setting["label_changes"]),
                      "certain labels": verdict(setting["certain_label_changes"])}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("setting")


def glue_demo_timings(results_dir: str | Path) -> pd.DataFrame:
    """Glue the demo's CPU timing table (``demo-cpu-table``, see ``demo_timing_table``), the run, backbone,
    detector and repeats, the default setting's frame time, the target and the settings within it."""
    record = read_record(Path(results_dir) / DEMO_CPU_FILE)
    glue("demo-cpu-run", run_line(record))
    glue("demo-cpu-backbone", record["backbone"])
    glue("demo-cpu-detector", record["detector"])
    glue("demo-cpu-repeats", str(record["repeats"]))
    glue("demo-cpu-default-ms", f"{record['settings']['default']['median_ms']['frame']:.0f}")
    glue("demo-cpu-target-ms", f"{record['target_ms']:g}")
    glue("demo-cpu-within", " and ".join(f"“{name}”" for name in record["within_target"]) or "none")
    default = record["settings"]["default"]["median_ms"]
    glue("demo-cpu-default-detect-ms", f"{default['detect'] + default['align']:.0f}")
    start = record["start_up"]
    if "predict_one_s" not in start:
        raise ValueError(f"{results_dir}: {DEMO_CPU_FILE} predates the timing of a whole 'faceprompt predict': "
                         "record it again with benchmarks/bench_demo_cpu.py --json")
    glue("demo-cpu-startup", f"in {start['predict_one_s']:.2f} s, {start['beyond_torch_s']:.2f} s more than importing "
         f"torch alone ({start['import_torch_s']:.2f} s); with --threads 1, "
         f"{start['beyond_torch_one_thread_s']:.2f} s more")
    return glue("demo-cpu-table", demo_timing_table(record), display=False)


def glue_demo_settings() -> dict:
    """Glue the demo's defaults from the code: the calibrated score thresholds, the smallest face, the uncertainty
    level (and the top probability it means per task), the box-crop margin, the default crop, the
    face-sized photo limit and the image size limit."""
    from faceprompt.demo.pipeline import (DEFAULT_FACE_PHOTO_SIDE, DEFAULT_MIN_SIZE, DEFAULT_UNCERTAIN_BELOW,
                                          MIN_SCORES, FacePipeline)
    from faceprompt.data.images import DEFAULT_MAX_PIXELS
    from faceprompt.predict import DEFAULT_CROP

    return {"demo-min-score": glue("demo-min-score", ", ".join(f"{d} {v:g}" for d, v in MIN_SCORES.items())),
            "demo-min-size": glue("demo-min-size", f"{DEFAULT_MIN_SIZE:g}"),
            "demo-uncertain-below": glue("demo-uncertain-below", f"{DEFAULT_UNCERTAIN_BELOW:g}"),
            "demo-margin": glue("demo-margin", f"{inspect.signature(FacePipeline).parameters['margin'].default:g}"),
            "demo-crop": glue("demo-crop", DEFAULT_CROP),
            "demo-face-photo-side": glue("demo-face-photo-side", f"{DEFAULT_FACE_PHOTO_SIDE}"),
            "demo-max-megapixels": glue("demo-max-megapixels", f"{DEFAULT_MAX_PIXELS / 1e6:g}"),
            "demo-uncertain-levels": glue("demo-uncertain-levels", uncertain_levels(DEFAULT_UNCERTAIN_BELOW))}


def uncertain_levels(threshold: float) -> str:
    """The top probability under which each task's label is marked uncertain at ``threshold`` of certainty:
    'gender 75%, age 56%, emotion 57%' (p = 1/K + threshold * (1 - 1/K) for K classes)."""
    from faceprompt.tasks import TASKS

    return ", ".join(f"{name} {100 * (1 / len(task.classes) + threshold * (1 - 1 / len(task.classes))):.0f}%"
                     for name, task in TASKS.items())
