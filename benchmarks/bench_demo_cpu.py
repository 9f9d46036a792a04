"""Where the demo's time goes on one CPU thread: the 640x480 photo with 6 faces, stage by stage, per setting.

    HF_HUB_OFFLINE=1 python benchmarks/bench_demo_cpu.py [--repeats 20] [--json OUT] [--check-labels]

The photo pastes six UTKFace chips from the shared data onto a plain 640x480 canvas (``tests/demo_helpers``).
Every setting runs ``FacePipeline.annotate`` plus ``draw`` ``--repeats`` times after a warm-up, with
``torch.set_num_threads(1)``, round-robin (one frame of each setting per round, so a busy machine's drift hits
them alike). Settings:

* ``unoptimised``: dlib at full size, each face's landmarks searched by MTCNN's whole cascade, one face at a
  time (``--detector dlib --landmarks full-search``: the training crop). Its labels are the reference.
* ``default``: what ``faceprompt demo`` does without options (BlazeFace: box and landmarks in one pass).
* ``dlib``: ``--detector dlib`` (the faces' MTCNN searches batched, the pyramid's small-face scales skipped).
* ``dlib, box landmarks``: with ``--landmarks boxes`` (MTCNN's last stages on dlib's boxes, one batch).
* ``dlib, boxes, shrunk``: that with ``--detect-max-side 320``.

Per setting: median and 90th percentile of each stage (detect, align, classify, draw) and of the frame, and
whether every face got the reference's labels (faces matched by box overlap), all of them and those the
reference shows as certain (not marked ``?``). ``--check-labels`` exits 1 unless some setting within the 66 ms
target keeps every label.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import demo_helpers as h  # noqa: E402

from faceprompt.demo.pipeline import FacePipeline, draw  # noqa: E402
from faceprompt.io import write_json_atomic  # noqa: E402
from faceprompt.provenance import run_record  # noqa: E402

TARGET_MS = 66.0  # 15 frames a second
STAGES = ("detect", "align", "classify", "draw", "frame")
REFERENCE = "unoptimised"
SETTINGS = {
    REFERENCE: {"detector": "dlib", "landmarks": "full-search"},
    "default": {},
    "dlib": {"detector": "dlib"},
    "dlib, box landmarks": {"detector": "dlib", "landmarks": "boxes"},
    "dlib, boxes, shrunk": {"detector": "dlib", "landmarks": "boxes", "detect_max_side": 320},
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_frame(pipeline: FacePipeline, photo) -> tuple[dict[str, float], object]:
    start = time.perf_counter()
    result = pipeline.annotate(photo)
    canvas_start = time.perf_counter()
    draw(photo, result)
    end = time.perf_counter()
    times = {"detect": result.detect_ms, "align": result.align_ms, "classify": result.classify_ms,
             "draw": (end - canvas_start) * 1000, "frame": (end - start) * 1000}
    return times, result


def face_labels(result) -> list[tuple[tuple, dict[str, str]]]:
    return [(face.box, {task: p.label for task, p in face.predictions.items()}) for face in result.faces]


def overlap(a: tuple, b: tuple) -> float:
    """Intersection over union of two boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h_ = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h_
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def label_changes(reference, result, certain_only: bool = False) -> list[str]:
    """Faces whose labels differ from the reference's (or that have no counterpart), one line each.
    ``certain_only``: compare only the labels the reference shows as certain (not marked ``?``)."""
    changes = []
    ours = face_labels(result)
    for face, (box, labels) in zip(reference.faces, face_labels(reference)):
        match = max(ours, key=lambda other: overlap(box, other[0]), default=None)
        if match is None or overlap(box, match[0]) < 0.5:
            changes.append(f"face at {tuple(round(v) for v in box)}: not found")
            continue
        tasks = [t for t in labels if not (certain_only and t in face.uncertain)]
        diff = {t: f"{labels[t]} -> {match[1][t]}" for t in tasks if labels[t] != match[1][t]}
        if diff:
            changes.append(f"face at {tuple(round(v) for v in box)}: {diff}")
    if len(ours) > len(reference.faces):
        changes.append(f"{len(ours) - len(reference.faces)} extra face(s)")
    return changes


def measure(base: FacePipeline, photo, repeats: int) -> dict[str, dict]:
    from faceprompt.detect import get_detector

    detectors = {name: get_detector(name) for name in {o["detector"] for o in SETTINGS.values() if "detector" in o}}
    pipelines = {name: FacePipeline(detectors[o["detector"]] if "detector" in o else base.detector,
                                    base.classifier, landmarks=o.get("landmarks", base.landmarks),
                                    detect_max_side=o.get("detect_max_side"))
                 for name, o in SETTINGS.items()}
    results = {name: one_frame(p, photo)[1] for name, p in pipelines.items()}  # warm-up, and the labels
    times = {name: {stage: [] for stage in STAGES} for name in pipelines}
    for _ in range(repeats):
        for name, p in pipelines.items():
            for stage, ms in one_frame(p, photo)[0].items():
                times[name][stage].append(ms)
    report = {}
    for name, stages in times.items():
        report[name] = {
            "options": SETTINGS[name], "faces": len(results[name].faces),
            "median_ms": {s: round(statistics.median(v), 2) for s, v in stages.items()},
            "p90_ms": {s: round(percentile(v, 0.9), 2) for s, v in stages.items()},
            "label_changes": label_changes(results[REFERENCE], results[name]),
            # the labels the reference shows as certain (certainty >= the demo's uncertain_below)
            "certain_label_changes": label_changes(results[REFERENCE], results[name], certain_only=True),
            "labels": [labels for _, labels in face_labels(results[name])],
        }
    return report


def start_up_seconds(face, repeats: int = 3) -> dict[str, float]:
    """Median wall seconds of a fresh interpreter importing torch; importing the predict path and loading the
    default classifier; and the whole ``faceprompt predict one.jpg`` on ``face`` (its aligned crop, one
    forward, the JSON printed), with torch's threads and with ``--threads 1``."""
    import subprocess
    import tempfile

    def timed(*args: str) -> float:
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], check=True, capture_output=True)
            runs.append(time.perf_counter() - start)
        return round(statistics.median(runs), 3)

    torch_s = timed("-c", "import torch")
    ready_s = timed("-c", "import faceprompt.commands.predict; from faceprompt.predict import FaceClassifier; "
                          "FaceClassifier.load()")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "one.jpg"
        face.save(path)
        predict_s = timed("-m", "faceprompt", "predict", str(path))
        one_thread_s = timed("-m", "faceprompt", "predict", str(path), "--threads", "1")
    return {"import_torch_s": torch_s, "predict_ready_s": ready_s, "predict_one_s": predict_s,
            "beyond_torch_s": round(predict_s - torch_s, 3), "predict_one_thread_s": one_thread_s,
            "beyond_torch_one_thread_s": round(one_thread_s - torch_s, 3)}


def print_table(report: dict) -> None:
    print(f"{'setting':<18} {'faces':>5} | " + " | ".join(f"{s:>8}" for s in STAGES) + f" | labels vs {REFERENCE}")
    for name, row in report.items():
        cells = " | ".join(f"{row['median_ms'][s]:8.1f}" for s in STAGES)
        same = "same" if not row["label_changes"] else f"{len(row['label_changes'])} face(s) differ"
        certain = "same" if not row["certain_label_changes"] else f"{len(row['certain_label_changes'])} differ"
        print(f"{name:<18} {row['faces']:>5} | {cells} | {same} (certain ones: {certain})")
        for change in row["label_changes"]:
            print(f"{'':<18}   {change}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backbone", default=None, help="default: the package's default backbone")
    parser.add_argument("--detector", default=None, help="default: detect.demo_detector()")
    parser.add_argument("--json", default=None, help="write the report here (e.g. benchmarks/results/<dir>/demo.json)")
    parser.add_argument("--check-labels", action="store_true",
                        help=f"exit 1 unless a setting within {TARGET_MS:g} ms keeps every label")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if h.utkface_dir() is None:
        sys.exit(f"shared data not found: {h.shared_data_root() / 'UTKFace'} (set FACEPROMPT_SHARED_DATA)")
    pipeline = FacePipeline.load(args.backbone, detector=args.detector).warm_up()
    photo = h.paste_faces(h.detectable_faces(6))[0]
    print(f"backbone {pipeline.classifier.backbone.name}, detector {pipeline.detector.name}, 640x480 photo, "
          f"6 faces, 1 thread, median of {args.repeats} (ms)")
    report = measure(pipeline, photo, args.repeats)
    print_table(report)
    within = [name for name, row in report.items() if row["median_ms"]["frame"] <= TARGET_MS]
    kept = [name for name in within if not report[name]["label_changes"]]
    certain = [name for name in within if not report[name]["certain_label_changes"]]
    print(f"within {TARGET_MS:g} ms: {within or 'none'}; of those with all the {REFERENCE} labels: {kept or 'none'}; "
          f"with its certain labels: {certain or 'none'}")
    start_up = start_up_seconds(h.detectable_faces(1)[0])
    print(f"start-up: import torch {start_up['import_torch_s']} s; predict path ready {start_up['predict_ready_s']} s; "
          f"faceprompt predict one.jpg {start_up['predict_one_s']} s ({start_up['beyond_torch_s']} s beyond torch; "
          f"{start_up['beyond_torch_one_thread_s']} s with --threads 1)")
    if args.json:
        record = {**run_record(sys.argv), "backbone": pipeline.classifier.backbone.name,
                  "detector": pipeline.detector.name, "threads": 1, "repeats": args.repeats,
                  "target_ms": TARGET_MS, "start_up": start_up, "settings": report, "within_target": within, "within_target_same_labels": kept,
                  "within_target_same_certain_labels": certain}
        write_json_atomic(Path(args.json), record)
        print(f"wrote {args.json}")
    return 1 if args.check_labels and not kept else 0


if __name__ == "__main__":
    raise SystemExit(main())
