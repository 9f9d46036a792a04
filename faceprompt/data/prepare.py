"""`faceprompt prepare DATASET --root PATH --out DIR`: a downloaded dataset -> face crops + one manifest.

    report = prepare_dataset("utkface", "~/data/UTKFace", "prepared/utkface", limit=500)
    print(report.summary())

Steps: the dataset's adapter (``faceprompt.data.adapters``) reads the labels in the published layout; ``--limit``
takes a seeded subset; rows without an official split get a seeded identity-disjoint one (stored in
``DIR/splits.csv`` and reused); every image is loaded robustly (``load_rgb``), the largest detected face
is cropped to a square of ``--size`` pixels by ``align.face_crop`` and cached under ``DIR/crops/<setting>/``:
``--crop aligned`` (default) maps five facial landmarks onto one template, as the published chips were made,
and falls back to the box crop where landmarks fail (counted as ``aligned fallback``); ``--crop box`` takes
the detection box plus ``--margin``. A row whose adapter gives the face ``box`` (a dataset annotating several
people per photo) is cropped around that box instead of a detected face (counted as ``box``); each such face is
its own crop, and the faces of one photo share one split.
Crops are written atomically and logged, so a re-run skips finished work and an interrupted run resumes.
An image where the detector finds no face is kept as a centred square crop by default (``--no-face
keep``, counted and noted in the row's ``source``) or dropped (``--no-face drop``, counted as a skip).
Nothing in one image stops the run: every skip is reported with its file and reason, and also written to
``DIR/skipped.csv``.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from faceprompt.align import CROP_MODES
from faceprompt.data.adapters import Skip, get_adapter, has_label
from faceprompt.data.manifest import SPLITS, TASK_COLUMNS, write_manifest
from faceprompt.data.splits import SPLIT_FILE, assign_splits, read_splits, write_splits
from faceprompt.detect import DEFAULT_DETECTOR
from faceprompt.io import atomic_path, refuse_link, write_json_atomic
from faceprompt.lockfile import FolderLock
from faceprompt.tasks import TASKS

NO_FACE_POLICIES = ("keep", "drop")
_LOG = "_log.jsonl"


@dataclass
class PrepareOptions:
    """Everything that shapes a prepared dataset (also stored in ``DIR/prepare.json``)."""

    detector: str = DEFAULT_DETECTOR
    detect: bool | None = None  # None: the adapter's DETECT_BY_DEFAULT
    margin: float = 0.25  # added on each side, as a fraction of the face box's larger side
    size: int = 224
    crop: str = "aligned"  # or "box"; see align.face_crop
    limit: int | None = None
    seed: int = 0
    workers: int = 2
    no_face: str = "keep"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    keep_official_splits: bool = True
    resplit: bool = False  # ignore DIR/splits.csv from earlier runs
    splits: tuple[str, ...] | None = None  # crop only these splits' images (every row is still split)
    split_limits: dict = field(default_factory=dict)  # split -> at most this many rows of it (a seeded subset)
    progress: bool = True
    adapter_options: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {self.crop!r}")
        if self.no_face not in NO_FACE_POLICIES:
            raise ValueError(f"no_face must be one of {NO_FACE_POLICIES}, got {self.no_face!r}")
        if not 16 <= self.size <= 2048:
            raise ValueError(f"size must be 16..2048 pixels, got {self.size}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"margin must be 0..2 (a fraction of the face size), got {self.margin}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.splits is not None and (not self.splits or set(self.splits) - set(SPLITS)):
            raise ValueError(f"splits must name some of {list(SPLITS)}, got {list(self.splits)}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 - self.val_fraction):
            raise ValueError(f"val_fraction {self.val_fraction} and test_fraction {self.test_fraction} must be "
                             f"fractions (0 to 1) that leave some rows for training")
        for split, n in dict(self.split_limits).items():
            if split not in SPLITS or not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError(f"split_limits: {split!r}: {n!r} must be a split of {list(SPLITS)} with a "
                                 f"whole number of rows >= 1")


@dataclass
class PrepareReport:
    """What a prepare run produced and everything it left out, with reasons."""

    dataset: str
    out: Path
    manifest: Path
    rows: int
    counts: dict[str, dict[str, dict[str, int]]]  # split -> column -> class -> count
    skipped: list[Skip]
    warnings: list[str]
    crops: Counter  # outcome -> count: face, no_face, full (detection off), box (given), cached, aligned fallback
    detect: bool
    seconds: float

    def skip_reasons(self) -> Counter:
        return Counter(_reason_kind(s.reason) for s in self.skipped)

    def summary(self, examples: int = 3) -> str:
        lines = [f"{self.dataset}: {self.rows} rows -> {self.manifest} ({self.seconds:.1f} s)"]
        crop_info = ", ".join(f"{k} {v}" for k, v in sorted(self.crops.items()))
        lines.append(f"  crops: {crop_info or 'none'} (detection {'on' if self.detect else 'off'})")
        for split in SPLITS:
            if split not in self.counts:
                continue
            columns = self.counts[split]
            parts = [f"{split}: {columns['rows']['all']} rows"]
            for column in ("gender", "age_bin", "emotion"):
                classes = columns.get(column, {})
                if classes:
                    parts.append(f"{column} " + " ".join(f"{c}={n}" for c, n in classes.items()))
            lines.append("  " + " | ".join(parts))
        lines.append(f"  skipped: {len(self.skipped)}")
        for kind, count in self.skip_reasons().most_common():
            first = [s for s in self.skipped if _reason_kind(s.reason) == kind][:examples]
            lines.append(f"    {count} x {kind}")
            lines.extend(f"      e.g. {s}" for s in first)
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """Group skip reasons: drop details in parentheses, quoted values and numbers so alike skips count together."""
    kind = reason.split(" (", 1)[0]
    kind = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", kind)
    return re.sub(r"\d+", "N", kind).strip()


# ----------------------------------------------------------------------------------------------- crops

@dataclass(frozen=True)
class CropJob:
    key: str
    src: str
    dst: str
    detect: bool
    detector: str
    margin: float
    size: int
    crop: str = "aligned"
    box: tuple[int, int, int, int] | None = None  # the dataset's face box: used instead of detection


_WORKER_DETECTOR = {}


def _detector(name: str):
    """One detector per process, built on first use (each worker process gets its own)."""
    if name not in _WORKER_DETECTOR:
        from faceprompt.detect import get_detector

        _WORKER_DETECTOR[name] = get_detector(name)
    return _WORKER_DETECTOR[name]


def _init_worker(detector: str | None = None) -> None:
    # Each process gets one core: OpenCV's and torch's own thread pools would fight the process pool.
    import cv2

    cv2.setNumThreads(1)
    if detector == "mtcnn" or "torch" in sys.modules:  # importing torch costs seconds: only when used
        import torch

        torch.set_num_threads(1)


def crop_one(job: CropJob) -> dict:
    """Load, detect, crop and save one image; never raises (the outcome says what happened)."""
    from faceprompt.data.images import check_face_size, load_rgb
    from faceprompt.align import face_crop
    from faceprompt.detect import pick_face

    try:
        image = load_rgb(job.src)
        check_face_size(image.size, job.src)
    except (OSError, ValueError) as err:  # ImageLoadError is a ValueError; FileNotFoundError an OSError
        return {"key": job.key, "status": "error", "reason": str(err)}
    face, status = None, "full"
    if job.box is not None:
        from faceprompt.detect import Detection

        face, status = Detection(tuple(map(float, job.box)), 1.0), "box"
    elif job.detect:
        import numpy as np

        try:
            face = pick_face(_detector(job.detector).detect(np.asarray(image)))
        except Exception as err:  # a backend failing on one odd image must not end the run
            return {"key": job.key, "status": "error", "reason": f"{job.src}: detector failed: {err}"}
        status = "no_face" if face is None else "face"
    try:
        crop = face_crop(image, face, job.size, job.crop, job.margin)
    except Exception as err:  # one odd image (say 1x1 pixel) must not end the run: it is skipped, named
        return {"key": job.key, "status": "error", "reason": f"{job.src}: cropping failed: {err}"}
    with atomic_path(job.dst) as tmp:
        crop.image.save(tmp, format="JPEG", quality=95)
    return {"key": job.key, "status": status, "score": None if face is None else face.score,
            "box": None if face is None else face.box, "crop": crop.mode, "fallback": crop.reason,
            "source": source_stamp(job.src)}


def source_stamp(path: str | os.PathLike) -> list[int] | None:
    """Size and modification time of a source image: a crop is reused only while its source is unchanged."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _read_log(path: Path) -> dict[str, dict]:
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut off by an interruption
            done[entry["key"]] = entry
    return done


def run_crops(jobs: list[CropJob], log_path: Path, workers: int, progress: bool,
              detector: str | None = None) -> dict[str, dict]:
    """Crop every job not already done; return key -> outcome for all jobs."""
    done = _read_log(log_path)
    outcomes = {}
    todo = []
    for job in jobs:
        entry = done.get(job.key)
        if entry and entry["status"] != "error" and Path(job.dst).is_file() \
                and entry.get("source") == source_stamp(job.src):
            outcomes[job.key] = {**entry, "cached": True}
        else:
            todo.append(job)
    if not todo:
        return outcomes
    log_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc="cropping", unit="img", disable=not progress, smoothing=0.1)
    with open(log_path, "a", encoding="utf-8") as log:
        if workers == 1 or len(todo) < 8:
            _init_worker(detector)
            results = map(crop_one, todo)
            pool = None
        else:
            context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = context.Pool(workers, initializer=_init_worker, initargs=(detector,))
            results = pool.imap_unordered(crop_one, todo, chunksize=8)
        try:
            for outcome in results:
                outcomes[outcome["key"]] = outcome
                if outcome["status"] != "error":  # errors are retried next time (the file may get fixed)
                    log.write(json.dumps(outcome) + "\n")
                    log.flush()
                bar.update()
        finally:
            bar.close()
            if pool is not None:
                pool.terminate()
                pool.join()
    return outcomes


# ---------------------------------------------------------------------------------------------- driver

def _crop_dir(out: Path, options: PrepareOptions, detect: bool) -> Path:
    aligned = "_aligned" if options.crop == "aligned" else ""
    setting = f"{options.detector if detect else 'full'}{aligned}_m{options.margin:g}_s{options.size}"
    return out / "crops" / setting  # a new setting never reuses crops made under another


def _crop_name(key: str) -> str:
    return key if key.lower().endswith(".jpg") else key + ".jpg"


def _relative_key(path: Path, root: Path) -> str:
    """The image's path inside the dataset folder: the stable key of crops, logs and stored splits."""
    try:
        return path.relative_to(root).as_posix()  # adapters build paths from root: no syscalls needed
    except ValueError:
        return path.resolve().relative_to(root.resolve()).as_posix()


def _face_key(image_key: str, box) -> str:
    """One face of a photo: the photo's key and the face box, so every face gets its own crop."""
    return f"{image_key}.face{'_'.join(str(int(v)) for v in box)}"


def _take_limit(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    if limit is None or limit >= len(rows):
        return rows
    import random

    picked = random.Random(seed).sample(range(len(rows)), limit)
    return [rows[i] for i in sorted(picked)]


def _counts(frame: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    task_of = {column: task for task, column in TASK_COLUMNS.items()}
    counts = {}
    for split, part in frame.groupby("split", sort=False):
        counts[split] = {"rows": {"all": len(part)}}
        for column in ("gender", "age_bin", "emotion"):
            found = part[column].value_counts()
            order = list(TASKS[task_of[column]].classes) + [""]
            counts[split][column] = {(c or "(missing)"): int(found[c]) for c in order if c in found}
    return {s: counts[s] for s in SPLITS if s in counts}


def prepare_dataset(name: str, root: str | os.PathLike | None, out: str | os.PathLike,
                    **options) -> PrepareReport:
    """Prepare one dataset; ``options`` are ``PrepareOptions`` fields, anything else goes to the adapter
    (``ages=`` for vggface2, ``lfw_lists=`` for facial_expressions, ``n=`` for synthetic).

    One run at a time per ``out``: a second one fails at once (FolderLockedError) naming the first.
    """
    start = time.perf_counter()
    known = set(PrepareOptions.__dataclass_fields__)
    opts = PrepareOptions(**{k: v for k, v in options.items() if k in known})
    opts.adapter_options.update({k: v for k, v in options.items() if k not in known})
    opts.validate()
    adapter = get_adapter(name)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file; give a folder (it is created if missing)")
    if root is None:
        if name != "synthetic":
            raise ValueError(f"{name}: --root (the downloaded dataset folder) is required")
        root = out / "source"
    root = Path(root).expanduser()
    if name != "synthetic" and not root.is_dir():  # before the lock creates --out: a typo leaves nothing behind
        raise FileNotFoundError(f"{name}: dataset folder {root} does not exist")
    if name != "synthetic" and (out.resolve() == root.resolve() or root.resolve() in out.resolve().parents):
        raise ValueError(f"--out {out}: inside the dataset folder --root {root}, where a second run would read "
                         f"its own crops as new images; choose an output folder outside it")
    for written in (out, out / "crops", out / "source"):  # a planted link would carry the writes elsewhere
        refuse_link(written)
    refuse_foreign_output(out, name)
    detect = adapter.DETECT_BY_DEFAULT if opts.detect is None else opts.detect
    if detect:
        from faceprompt.detect import get_detector

        get_detector(opts.detector)  # fail now, with the install hint, not once per image
    with FolderLock(out, f"faceprompt prepare {name}"):
        return _prepare_locked(name, adapter, root, out, opts, detect, start)


def refuse_foreign_output(out: Path, name: str) -> None:
    """``out`` may hold an earlier prepare of the same dataset (it is updated); a manifest of another dataset,
    or a ``manifest.csv`` no prepare wrote, is never replaced."""
    manifest, record = out / "manifest.csv", out / "prepare.json"
    if record.is_file():
        try:
            earlier = json.loads(record.read_text()).get("dataset")
        except (OSError, ValueError, AttributeError):
            earlier = None
        if earlier not in (None, name):
            raise ValueError(f"--out {out}: holds a prepared {earlier!r} dataset; preparing {name!r} there would "
                             f"replace its manifest: choose another folder")
    elif manifest.exists():
        raise ValueError(f"--out {out}: holds a manifest.csv that no prepare wrote (no prepare.json beside it); "
                         f"choose another folder or move that file")


def _labelled_rows(scan, root: Path, opts: PrepareOptions, skipped: list[Skip]) -> list[dict]:
    """The scanned rows with a label, keyed by their path in the dataset, subset by ``--limit``."""
    rows = []
    for row in scan.rows:
        if not has_label(row):
            skipped.append(Skip(row["path"], "no gender, age or emotion label"))
            continue
        row["image_key"] = _relative_key(Path(row["path"]), root)
        row["key"] = row["image_key"] if row.get("box") is None else _face_key(row["image_key"], row["box"])
        if not opts.keep_official_splits:
            row["split"] = ""
        rows.append(row)
    return _take_limit(sorted(rows, key=lambda r: r["key"]), opts.limit, opts.seed)


def _prepare_locked(name: str, adapter, root: Path, out: Path, opts: PrepareOptions, detect: bool,
                    start: float) -> PrepareReport:
    scan = adapter.scan(root, seed=opts.seed, **opts.adapter_options)
    skipped, warnings = list(scan.skipped), list(scan.warnings)
    rows = _labelled_rows(scan, root, opts, skipped)

    split_file = out / SPLIT_FILE
    stored = {} if opts.resplit else read_splits(split_file)
    # Keyed by the image: the faces of one photo land in one split.
    assign_splits(rows, opts.seed, opts.val_fraction, opts.test_fraction, stored, key="image_key")
    write_splits(split_file, rows, stored, key="image_key")
    if opts.splits is not None:  # split first, so the rows left out keep their split for a later run
        rows = [r for r in rows if r["split"] in opts.splits]
    for split, n in opts.split_limits.items():
        chosen = [r for r in rows if r["split"] == split]
        if len(chosen) > n:
            dropped = {r["key"] for r in chosen} - {r["key"] for r in _take_limit(chosen, n, opts.seed)}
            rows = [r for r in rows if r["key"] not in dropped]

    crop_dir = _crop_dir(out, opts, detect)
    jobs = [CropJob(r["key"], r["path"], str(crop_dir / _crop_name(r["key"])), detect, opts.detector,
                    opts.margin, opts.size, opts.crop, r.get("box")) for r in rows]
    # The landmark model is torch's MTCNN: workers then need torch pinned to one thread like that detector.
    uses_torch = "mtcnn" if opts.crop == "aligned" else (opts.detector if detect else None)
    outcomes = run_crops(jobs, crop_dir / _LOG, opts.workers, opts.progress, uses_torch)

    manifest_rows, crops = [], Counter()
    for row, job in zip(rows, jobs):
        outcome = outcomes[job.key]
        crops["cached" if outcome.get("cached") else "new"] += 1
        if outcome["status"] == "error":
            skipped.append(Skip(row["path"], outcome["reason"].replace(f"{row['path']}: ", "")))
            continue
        crops[outcome["status"]] += 1
        if outcome.get("fallback"):
            crops["aligned fallback"] += 1
        if outcome["status"] == "no_face":
            if opts.no_face == "drop":
                skipped.append(Skip(row["path"], "no face detected (--no-face drop)"))
                continue
            row["source"] += "; no face detected: centre crop"
        manifest_rows.append({**row, "path": Path(job.dst).relative_to(out).as_posix()})

    frame = pd.DataFrame(manifest_rows, columns=list(manifest_rows[0]) if manifest_rows else ["split"])
    manifest = write_manifest(frame.drop(columns=["key"], errors="ignore"), out / "manifest.csv")
    with atomic_path(out / "skipped.csv") as tmp:
        pd.DataFrame([asdict(s) for s in skipped], columns=["file", "reason", "line"]).to_csv(tmp, index=False)
    report = PrepareReport(
        dataset=name, out=out, manifest=manifest, rows=len(manifest_rows),
        counts=_counts(frame) if manifest_rows else {}, skipped=skipped, warnings=warnings, crops=crops,
        detect=detect, seconds=time.perf_counter() - start,
    )
    write_json_atomic(out / "prepare.json", {
        "dataset": name, "root": str(root), "detect": detect, "options": asdict(opts), "rows": report.rows,
        "counts": report.counts, "skipped": dict(report.skip_reasons()), "warnings": warnings,
    })
    return report

