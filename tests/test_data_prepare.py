"""prepare_dataset end to end: crops, manifest, stored splits, resume, bad images, no-face policy, CLI."""
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from data_fixtures import (face, write_bad_images, write_ferplus, write_lagenda, write_lfw, write_rafdb,  # noqa: E402
                           write_utkface)

from faceprompt.cli import main  # noqa: E402
from faceprompt.data.manifest import read_manifest  # noqa: E402
from faceprompt.data.prepare import prepare_dataset  # noqa: E402

UTK = [f"{age}_{i % 2}_{i % 5}_2017011617452{i:04d}.jpg.chip.jpg" for i, age in enumerate(range(1, 90, 3))]


@pytest.fixture()
def utk(tmp_path):
    return write_utkface(tmp_path / "UTKFace", UTK)


def test_utkface_end_to_end(utk, tmp_path):
    out = tmp_path / "out"
    report = prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False)
    frame = read_manifest(report.manifest)
    assert report.rows == len(UTK) == len(frame) and not report.skipped and not report.detect
    assert set(frame.split) <= {"train", "val", "test"} and (frame.split == "train").sum() > len(UTK) / 2
    assert all(Image.open(p).size == (48, 48) for p in frame.path)
    raw = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert all(not Path(p).is_absolute() and p.startswith("crops/full_aligned_m0.25_s48/") for p in raw.path)
    assert report.counts["train"]["rows"]["all"] == (frame.split == "train").sum()
    assert json.loads((out / "prepare.json").read_text())["rows"] == len(UTK)
    assert "skipped: 0" in report.summary()


def test_crop_modes_are_kept_apart_and_fallbacks_counted(utk, tmp_path):
    """--crop box writes the plain crops under their own setting; an aligned crop with no landmarks (these
    drawn fixture faces have none MTCNN accepts) falls back to the box crop and is counted."""
    pytest.importorskip("facenet_pytorch")
    out = tmp_path / "out"
    aligned = prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False, limit=6)
    boxed = prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False, limit=6, crop="box")
    assert "aligned fallback" not in boxed.crops and boxed.crops["new"] == 6
    raw = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert all(p.startswith("crops/full_m0.25_s48/") for p in raw.path)
    logged = [json.loads(line) for line in (out / "crops" / "full_aligned_m0.25_s48" / "_log.jsonl").open()]
    assert aligned.crops["aligned fallback"] == sum(bool(e["fallback"]) for e in logged)
    assert all(e["crop"] == ("full" if e["fallback"] else "aligned") for e in logged)
    for entry in logged:
        a = Image.open(out / "crops" / "full_aligned_m0.25_s48" / entry["key"])
        b = Image.open(out / "crops" / "full_m0.25_s48" / entry["key"])
        assert (list(a.getdata()) == list(b.getdata())) == bool(entry["fallback"])
    with pytest.raises(ValueError, match="crop must be one of"):
        prepare_dataset("utkface", utk, out, crop="tilted")


def test_rerun_is_cached_and_interruption_resumes(utk, tmp_path):
    out = tmp_path / "out"
    first = prepare_dataset("utkface", utk, out, size=48, workers=2, progress=False)
    assert first.crops["new"] == len(UTK)
    again = prepare_dataset("utkface", utk, out, size=48, workers=2, progress=False)
    assert again.crops["cached"] == len(UTK) and "new" not in again.crops
    # Simulate an interruption: some crops never written, the log cut mid-line.
    crops = sorted((out / "crops" / "full_aligned_m0.25_s48").glob("*.jpg"))
    for path in crops[:4]:
        path.unlink()
    log = out / "crops" / "full_aligned_m0.25_s48" / "_log.jsonl"
    log.write_text(log.read_text()[:-20])
    resumed = prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False)
    assert resumed.crops["new"] == 5 and resumed.crops["cached"] == len(UTK) - 5  # 4 deleted + the cut line
    assert read_manifest(resumed.manifest).equals(read_manifest(first.manifest))


def test_split_is_stored_and_reused(utk, tmp_path):
    out = tmp_path / "out"
    subset = read_manifest(prepare_dataset("utkface", utk, out, limit=10, size=32, workers=1,
                                           progress=False).manifest)
    assert len(subset) == 10
    full = read_manifest(prepare_dataset("utkface", utk, out, seed=123, size=32, workers=1,
                                         progress=False).manifest)
    assert len(full) == len(UTK)
    merged = subset.merge(full, on="path", suffixes=("_subset", "_full"))
    assert len(merged) == 10 and (merged.split_subset == merged.split_full).all()  # stored split wins over seed
    stored = pd.read_csv(out / "splits.csv")
    assert len(stored) == len(UTK)
    resplit = read_manifest(prepare_dataset("utkface", utk, out, seed=123, resplit=True, size=32, workers=1,
                                            progress=False).manifest)
    assert not resplit.split.equals(full.split)


def test_only_the_asked_splits_are_cropped_and_every_image_keeps_its_split(utk, tmp_path):
    full = read_manifest(prepare_dataset("utkface", utk, tmp_path / "full", size=32, workers=1,
                                         progress=False).manifest)
    out = tmp_path / "part"
    report = prepare_dataset("utkface", utk, out, size=32, workers=1, progress=False, splits=("val", "test"))
    part = read_manifest(report.manifest)
    wanted = full[full.split.isin(["val", "test"])]
    assert 0 < len(part) == len(wanted) == report.rows < len(full) and not report.skipped
    assert sorted(Path(p).name for p in part.path) == sorted(Path(p).name for p in wanted.path)
    assert len(pd.read_csv(out / "splits.csv")) == len(UTK)  # the train rows are split too, for a later run
    assert not (out / "crops").exists() or len(list((out / "crops").rglob("*.jpg"))) + len(
        list((out / "crops").rglob("*.png"))) == len(part)
    with pytest.raises(ValueError, match="splits must name some of"):
        prepare_dataset("utkface", utk, tmp_path / "bad", splits=("holdout",))


def test_identity_disjoint_split_for_lfw(tmp_path):
    male = [f"Person_{p}_{i:04d}.jpg" for p in "ABCDEFGHIJ" for i in range(1, 4)]
    write_lfw(tmp_path / "lfw_root", male, [])
    report = prepare_dataset("lfw", tmp_path / "lfw_root", tmp_path / "out", detect=False, size=32, workers=1,
                             progress=False)
    frame = read_manifest(report.manifest)
    assert len(frame) == 30
    assert frame.groupby("identity").split.nunique().max() == 1  # every person in one split


def test_official_test_kept_and_rest_split_train_val(tmp_path):
    names = [f"train_{i:05d}.jpg" for i in range(1, 31)] + [f"test_{i:04d}.jpg" for i in range(1, 6)]
    write_rafdb(tmp_path, [f"{n} {1 + i % 7}" for i, n in enumerate(names)], names)
    report = prepare_dataset("rafdb", tmp_path / "basic", tmp_path / "out", size=32, workers=1, progress=False,
                             val_fraction=0.3)
    frame = read_manifest(report.manifest)
    assert not report.detect  # aligned faces: detection off by default
    is_test = frame.source.str.contains(":3[1-5]$")
    assert (frame.split[is_test] == "test").all()
    assert set(frame.split[~is_test]) == {"train", "val"}


def test_bad_images_are_counted_not_fatal(tmp_path):
    root = tmp_path / "UTKFace"
    bad = write_bad_images(tmp_path / "bad")
    for i, (case, path) in enumerate(sorted(bad.items())):
        root.mkdir(exist_ok=True)
        shutil.copy(path, root / f"{20 + i}_0_0_2017011617452{i:04d}.jpg.chip.{case}{path.suffix}")
    report = prepare_dataset("utkface", root, tmp_path / "out", size=32, workers=1, progress=False)
    skipped = {Path(s.file).name.split(".chip.")[1].split(".")[0]: s.reason for s in report.skipped}
    assert set(skipped) == {"corrupt", "truncated"}
    assert all("unreadable image" in r for r in skipped.values())
    assert report.rows == len(bad) - 2
    assert "2 x unreadable image" in report.summary()
    skipped_csv = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert len(skipped_csv) == 2 and skipped_csv.file.str.contains("corrupt").any()


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_no_face_policy(tmp_path, policy):
    root = tmp_path / "UTKFace"
    root.mkdir()
    Image.new("RGB", (120, 120), (90, 140, 200)).save(root / "30_0_0_20170116174525125.jpg.chip.jpg")
    face(root / "31_1_0_20170116174525126.jpg.chip.jpg", size=200)
    report = prepare_dataset("utkface", root, tmp_path / "out", detect=True, detector="haar", no_face=policy,
                             size=32, workers=1, progress=False)
    assert report.crops["no_face"] >= 1
    frame = read_manifest(report.manifest)
    blank = frame[frame.age == "30"]
    if policy == "keep":
        assert len(blank) == 1 and blank.source.iloc[0].endswith("no face detected: centre crop")
    else:
        assert blank.empty and any("no face detected" in s.reason for s in report.skipped)


def test_bad_options(utk, tmp_path):
    with pytest.raises(ValueError, match="no_face"):
        prepare_dataset("utkface", utk, tmp_path / "o", no_face="maybe")
    with pytest.raises(ValueError, match="margin"):
        prepare_dataset("utkface", utk, tmp_path / "o", margin=-1)
    with pytest.raises(ValueError, match="--root"):
        prepare_dataset("lfw", None, tmp_path / "o")


def test_cli_prepare_synthetic(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["prepare", "synthetic", "--out", str(out), "--n", "40", "--size", "64", "--quiet",
                 "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic: 40 rows" in printed and "train:" in printed and "skipped: 0" in printed
    frame = read_manifest(out / "manifest.csv")
    assert len(frame) == 40 and Image.open(frame.path[0]).size == (64, 64)


def test_cli_user_error_is_one_line(tmp_path, capsys):
    (tmp_path / "rafdb").mkdir()
    assert main(["prepare", "rafdb", "--root", str(tmp_path / "rafdb"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "no label file" in capsys.readouterr().err


# --- one writer per output folder ----------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def hold_lock(folder: Path):
    """Another process holding ``folder``'s lock until its stdin closes (as a running prepare would)."""
    import os
    import subprocess

    code = ("import sys; from faceprompt.lockfile import FolderLock; "
            "FolderLock(sys.argv[1], 'faceprompt prepare utkface').acquire(); print('held', flush=True); "
            "sys.stdin.read()")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_prepare_into_the_same_folder_is_refused_naming_the_first(utk, tmp_path, capsys):
    out = tmp_path / "out"
    holder = hold_lock(out)
    try:
        code = main(["prepare", "utkface", "--root", str(utk), "--out", str(out), "--workers", "1", "--quiet"])
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    _, err = capsys.readouterr()
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"pid {holder.pid}" in err and "faceprompt prepare utkface" in err and str(out) in err
    assert not (out / "manifest.csv").exists()  # the refused run wrote nothing
    # Once the first writer is gone, the folder is free again (and its lock file with it).
    assert main(["prepare", "utkface", "--root", str(utk), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert not (out / ".lock").exists()


def test_a_prepare_started_while_another_runs_is_refused_and_the_first_finishes_whole(utk, tmp_path, monkeypatch):
    import threading

    from faceprompt.data.adapters import get_adapter

    adapter = get_adapter("utkface")
    scan, first_scanning, second_done = adapter.scan, threading.Event(), threading.Event()

    def slow_first_scan(*args, **kwargs):
        if not first_scanning.is_set():  # the first run pauses mid-way until the second has had its go
            first_scanning.set()
            second_done.wait(timeout=20)
        return scan(*args, **kwargs)

    monkeypatch.setattr(adapter, "scan", slow_first_scan)
    out, results = tmp_path / "out", {}
    first = threading.Thread(target=lambda: results.setdefault(
        "first", prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False)))
    first.start()
    assert first_scanning.wait(timeout=20)
    try:
        results["second"] = prepare_dataset("utkface", utk, out, size=32, limit=5, workers=1, progress=False)
    except RuntimeError as err:  # the lock's refusal
        results["second"] = err
    finally:
        second_done.set()
        first.join(timeout=60)
    assert isinstance(results["second"], RuntimeError) and "is being written by pid" in str(results["second"])
    frame = read_manifest(out / "manifest.csv")
    assert len(frame) == results["first"].rows == len(UTK)
    assert {Image.open(p).size for p in frame.path} == {(48, 48)}  # labels and crops of the first run only


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(utk, tmp_path, caplog):
    import subprocess

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": "here", "started": 0.0,
                                           "command": "faceprompt prepare utkface"}))
    with caplog.at_level("WARNING", logger="faceprompt.lockfile"):
        report = prepare_dataset("utkface", utk, out, size=32, workers=1, progress=False)
    assert report.rows == len(UTK)
    assert any(f"pid {dead.pid}" in r.getMessage() and "no longer running" in r.getMessage() for r in caplog.records)


def test_out_naming_a_file_is_one_clear_line(utk, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code = main(["prepare", "utkface", "--root", str(utk), "--out", str(target), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "--out" in err and str(target) in err and "is a file" in err
    assert target.read_text() == "mine"


# --- python -m data_prep: every dataset of a profile found in a shared folder ---------------------------

def test_data_prep_prepares_what_the_shared_folder_holds(utk, tmp_path, capsys):
    from data_prep.__main__ import main as prepare_all

    profile = tmp_path / "profile.yaml"
    profile.write_text("parameters:\n  datasets:\n"
                       "    - {name: utkface, root: '{shared}/UTKFace', size: 32}\n"
                       "    - {name: rafdb, root: '{shared}/RAF-DB', size: 32}\n")
    out = tmp_path / "prepared"
    code = prepare_all(["--shared", str(utk.parent), "--profile", str(profile), "--out", str(out), "--workers", "1"])
    _, err = capsys.readouterr()
    assert code == 0 and "rafdb" in err and "left out" in err
    frame = read_manifest(out / "utkface" / "manifest.csv")
    assert len(frame) == len(UTK) and {Image.open(p).size for p in frame.path} == {(32, 32)}
    assert not (out / "rafdb").exists()
    assert prepare_all(["--shared", str(tmp_path / "empty"), "--profile", str(profile), "--out", str(out)]) == 1


def test_data_prep_reads_a_profile_as_the_book_does(utk, tmp_path):
    """The book's reader: a dataset named alone is an entry, {shared} is filled inside lists too."""
    from data_prep.__main__ import profile_datasets
    from faceprompt.book.datasets import DatasetSpec

    profile = tmp_path / "profile.yaml"
    profile.write_text("parameters:\n  datasets:\n    - synthetic\n"
                       "    - {name: utkface, root: '{shared}/UTKFace', splits: [val, '{shared}']}\n")
    shared = utk.parent
    assert profile_datasets(profile, shared) == [
        DatasetSpec("synthetic"), DatasetSpec("utkface", str(utk), {"splits": ["val", str(shared)]})]
    profile.write_text("parameters:\n  datasets: {name: utkface}\n")
    with pytest.raises(ValueError, match="parameters.datasets must be a list"):
        profile_datasets(profile, shared)


def test_ferplus_keeps_its_official_splits_through_prepare(tmp_path):
    box = '"(0, 0, 48, 48)"'
    votes = {"happiness": "0,9,0,0,0,0,0,0,1,0", "anger": "0,0,0,0,7,0,0,0,0,0", "neutral": "8,0,0,0,0,0,0,0,2,0"}
    lines = {split: [f"{split[:2].lower()}{i}.png,{box},{v}" for i, v in enumerate(votes.values())]
             for split in ("Train", "Valid", "Test")}
    root = write_ferplus(tmp_path / "FERPlus", lines)
    report = prepare_dataset("ferplus", root, tmp_path / "out", size=48, workers=1, progress=False)
    frame = read_manifest(report.manifest)
    assert not report.detect and len(frame) == 9
    assert frame.groupby("split").size().to_dict() == {"test": 3, "train": 3, "val": 3}
    assert sorted(frame["emotion"].unique()) == ["anger", "happiness", "neutral"]
    assert (frame["gender"].fillna("") == "").all() and (frame["age_bin"].fillna("") == "").all()


def test_lagenda_boxes_are_cropped_instead_of_detected(tmp_path):
    """Each annotated face is its own crop, cut from the CSV's box; the faces of one photo share a split."""
    lines = [f"lag_benchmark/p{i}.jpg,{20 + i},{'MF'[i % 2]},0,0,40,40,-1,-1,-1,-1" for i in range(12)]
    lines += [f"lag_benchmark/p{i}.jpg,{50 + i},F,40,0,80,40,-1,-1,-1,-1" for i in range(12)]
    root = write_lagenda(tmp_path / "LAGENDA", lines, size=80)
    red, blue = Image.new("RGB", (40, 40), (255, 0, 0)), Image.new("RGB", (40, 40), (0, 0, 255))
    for i in range(12):  # left half red, right half blue: a crop shows which box it came from
        photo = Image.new("RGB", (80, 40))
        photo.paste(red, (0, 0))
        photo.paste(blue, (40, 0))
        photo.save(root / "lag_benchmark" / f"p{i}.jpg", quality=100)
    report = prepare_dataset("lagenda", root, tmp_path / "out", size=32, margin=0, crop="box", workers=1,
                             progress=False)
    frame = read_manifest(report.manifest)
    assert not report.detect and report.rows == 24 and report.crops["box"] == 24 and not report.skipped
    assert frame.path.is_unique
    for row in frame.itertuples():
        pixel = Image.open(row.path).convert("RGB").getpixel((16, 16))
        left = int(row.age) < 50
        assert (pixel[0] > 200 and pixel[2] < 50) if left else (pixel[2] > 200 and pixel[0] < 50), row.path
    frame["photo"] = frame.path.map(lambda p: Path(p).name.split(".jpg")[0])
    assert (frame.groupby("photo").split.nunique() == 1).all()
    stored = pd.read_csv(tmp_path / "out" / "splits.csv", dtype=str)
    assert sorted(stored.key) == sorted(f"lag_benchmark/p{i}.jpg" for i in range(12))


def test_a_changed_source_image_is_cropped_again(utk, tmp_path):
    out = tmp_path / "out"
    prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False)
    changed = sorted(utk.iterdir())[0]
    crop = out / "crops" / "full_aligned_m0.25_s48" / changed.name
    assert crop.is_file()
    Image.new("RGB", (64, 64), (250, 10, 10)).save(changed, format="JPEG")
    again = prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False)
    assert again.crops["new"] == 1 and again.crops["cached"] == len(UTK) - 1
    assert Image.open(crop).getpixel((24, 24))[0] > 200  # the new content, not the old crop


def test_an_out_inside_the_dataset_folder_is_refused(utk, tmp_path):
    for out in (utk, utk / "prepared"):
        with pytest.raises(ValueError, match="inside the dataset folder"):
            prepare_dataset("utkface", utk, out, size=48, workers=1, progress=False)
    assert not (utk / "prepared").exists() and not (utk / "manifest.csv").exists()


def test_a_folder_whose_only_image_is_one_pixel_is_skipped_by_name(tmp_path):
    root = tmp_path / "UTKFace"
    root.mkdir()
    tiny = root / "25_0_0_20170101.jpg.chip.jpg"
    Image.new("RGB", (1, 1)).save(tiny)
    report = prepare_dataset("utkface", root, tmp_path / "out", size=48, workers=1, progress=False)
    assert report.rows == 0 and str(tiny) in report.skipped[0].file
    assert "too small to show a face" in report.skipped[0].reason


def test_prepare_never_replaces_another_dataset_or_a_manifest_it_did_not_write(utk, tmp_path):
    prepare_dataset("utkface", utk, tmp_path / "out", size=48, workers=1, progress=False)
    before = (tmp_path / "out" / "manifest.csv").read_text()
    with pytest.raises(ValueError, match="holds a prepared 'utkface' dataset"):
        prepare_dataset("synthetic", None, tmp_path / "out", n=12, size=32, workers=1, progress=False)
    assert (tmp_path / "out" / "manifest.csv").read_text() == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.csv").write_text("my precious notes\n")
    with pytest.raises(ValueError, match="no prepare wrote"):
        prepare_dataset("synthetic", None, mine, n=12, size=32, workers=1, progress=False)
    assert (mine / "manifest.csv").read_text() == "my precious notes\n"
    again = prepare_dataset("utkface", utk, tmp_path / "out", size=48, workers=1, progress=False)
    assert again.rows == len(UTK)  # the same dataset again is an update
