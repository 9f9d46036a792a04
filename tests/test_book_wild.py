"""The face-crop and demo chapters' numbers: read from the recorded CPU benchmarks' JSON and the demo's
constants (faceprompt.book.wild)."""
from __future__ import annotations

import pytest

from faceprompt.book._machinery import glue as G
from faceprompt.book import wild
from faceprompt.book._machinery import keycheck
from faceprompt.demo.pipeline import DEFAULT_FACE_PHOTO_SIDE, DEFAULT_MIN_SIZE, DEFAULT_UNCERTAIN_BELOW, MIN_SCORES
from faceprompt.locations import project_root

ROOT = project_root()
RESULTS = ROOT / wild.CPU_RESULTS_DIR


def test_landmark_table_quotes_every_row_of_the_json():
    table = wild.glue_landmarks(RESULTS)
    record = wild.read_record(RESULTS / wild.LANDMARKS_FILE)
    assert list(table.index) == list(record["results"])
    for folder, result in record["results"].items():
        n = result["images"]
        for model, cell in result["models"].items():
            assert table.loc[folder, f"{model}: found"] == f"{cell['found']}/{n} ({100 * cell['found'] / n:.1f}%)"
            assert table.loc[folder, f"{model}: ms per image"] == f"{cell['ms_per_image']:.1f}"
    assert G.GLUED["crop-landmarks-n"] == str(record["per_dataset"])
    assert record["command"] in G.GLUED["crop-landmarks-run"]


def test_the_recorded_landmarks_bear_out_the_chapter():
    """datasets.md says MTCNN finds five points on more faces than dlib in every folder."""
    for result in wild.read_record(RESULTS / wild.LANDMARKS_FILE)["results"].values():
        assert result["models"]["MTCNN"]["found"] >= result["models"]["dlib 5-point"]["found"]


def test_wild_table_quotes_every_dataset_of_both_runs():
    table = wild.glue_wild(RESULTS)
    records = wild.wild_records(RESULTS)
    assert len(table) == sum(len(r["results"]) for r in records.values())
    for crop, record in records.items():
        assert record["crop"] == crop
        for dataset, result in record["results"].items():
            row = table.loc[(dataset, crop)]
            assert row["n"] == result["images"] and row["fallbacks"] == result["crop_fallbacks"]
            assert row["detected"] == f"{100 * result['detection_rate']:.1f}%"
            assert row["img/s"] == f"{result['faces_per_s']:.1f}"
            for task, accuracy in result["accuracy"].items():
                crop_level = result["crop_level_accuracy"][task]
                assert row[task] == f"{100 * accuracy:.1f}% (crop {100 * crop_level:.1f}%)"
            assert row["score q1"] == f"{result['score_quantiles']['0.01']:.3f}"
    assert G.GLUED["wild-images"] == str(sum(r["images"] for r in records["box"]["results"].values()))


def test_gains_are_aligned_minus_box_per_dataset():
    def record(accuracy):
        return {"results": {"a": {"accuracy": {"gender": accuracy}}, "b": {"accuracy": {"emotion": 0.3}}}}

    records = {"box": record(0.70), "aligned": record(0.85)}
    assert wild.gains(records, "gender") == [pytest.approx(0.15)]
    assert wild.gains(records, "age") == []


def test_demo_settings_are_the_code_constants():
    settings = wild.glue_demo_settings()
    assert settings["demo-min-score"] == ", ".join(f"{d} {v:g}" for d, v in MIN_SCORES.items())
    assert "dlib 0.05" in settings["demo-min-score"] and "blazeface 0.5" in settings["demo-min-score"]
    assert float(settings["demo-min-size"]) == DEFAULT_MIN_SIZE
    assert float(settings["demo-uncertain-below"]) == DEFAULT_UNCERTAIN_BELOW
    assert int(settings["demo-face-photo-side"]) == DEFAULT_FACE_PHOTO_SIDE
    assert wild.uncertain_levels(0.5) == "gender 75%, age 56%, emotion 57%"
    assert wild.uncertain_levels(0.0) == "gender 50%, age 11%, emotion 14%"


def test_the_chapters_quote_only_declared_keys():
    uses = {u.key for u in keycheck.book_uses(ROOT / "book")}
    assert {"crop-landmarks-table", "wild-table", "demo-min-score", "wild-gain-gender"} <= uses
    assert keycheck.check(ROOT / "book", ROOT / "notebooks") == []


def test_release_table_sets_each_task_of_this_release_against_the_previous_one():
    previous = {"results": {"a": {"accuracy": {"gender": 0.70}}}}
    current = {"results": {"a": {"accuracy": {"gender": 0.80, "age": 0.4}, "crop_level_accuracy": {"gender": 0.85,
                                                                                                    "age": 0.5}},
                           "new": {"accuracy": {"emotion": 0.6}, "crop_level_accuracy": {"emotion": 0.6}}}}
    middle = {"results": {"a": {"accuracy": {"gender": 0.75, "age": 0.3}}}}
    table = wild.release_table({"first": previous, "second": middle}, current)
    assert list(table.index) == [("a", "gender"), ("a", "age"), ("new", "emotion")]
    assert list(table.columns[:3]) == ["first", "second", "this release"]
    assert table.loc[("a", "gender"), "first"] == "70.0%" and table.loc[("a", "gender"), "second"] == "75.0%"
    assert table.loc[("a", "age"), "first"] == "-" and table.loc[("new", "emotion"), "second"] == "-"
    assert table.loc[("a", "gender"), "detector - crop level"] == "-5.0 pp"
    assert table.loc[("new", "emotion"), "detector - crop level"] == "+0.0 pp"


def test_demo_timing_table_quotes_every_setting_of_the_json(tmp_path):
    from faceprompt.io import write_json_atomic

    def setting(frame_ms, changes):
        stages = {"detect": 80.0, "align": 30.0, "classify": 6.0, "draw": 4.0, "frame": frame_ms}
        return {"options": {}, "faces": 6, "median_ms": stages, "p90_ms": {**stages, "frame": frame_ms + 10},
                "label_changes": changes, "certain_label_changes": changes[:1], "labels": []}

    record = {"command": "benchmarks/bench_demo_cpu.py --json x", "date": "2026-12-03T15:00:00+00:00", "cpus": 2,
              "load_average": [0.5, 0.4, 0.3], "backbone": "faceclip-tiny", "detector": "dlib", "repeats": 20,
              "target_ms": 150.0, "settings": {"unoptimised": setting(160.25, []), "default": setting(120.0, ["a", "b"])},
              "within_target": ["default"], "start_up": {"import_torch_s": 1.5, "predict_ready_s": 2.4,
                                                         "predict_one_s": 2.9, "beyond_torch_s": 1.4,
                                                         "predict_one_thread_s": 2.8,
                                                         "beyond_torch_one_thread_s": 1.3}}
    write_json_atomic(tmp_path / wild.DEMO_CPU_FILE, record)
    table = wild.glue_demo_timings(tmp_path)
    assert list(table.index) == ["unoptimised", "default"]
    assert table.loc["unoptimised", "frame ms"] == "160.2" and table.loc["default", "frame ms, p90"] == "130.0"
    assert table.loc["unoptimised", "labels"] == "same" and table.loc["default", "labels"] == "2 face(s) differ"
    assert table.loc["default", "certain labels"] == "1 face(s) differ"
    assert G.GLUED["demo-cpu-default-ms"] == "120" and G.GLUED["demo-cpu-within"] == "“default”"
    assert G.GLUED["demo-cpu-target-ms"] == "150" and "bench_demo_cpu.py --json x" in G.GLUED["demo-cpu-run"]
    assert G.GLUED["demo-cpu-default-detect-ms"] == "110"  # detect 80 + align 30
    assert G.GLUED["demo-cpu-startup"] == ("in 2.90 s, 1.40 s more than importing torch alone (1.50 s); with "
                                           "--threads 1, 1.30 s more")


def _wild_record(detector: str, rate: float, accuracy: float, others: list, dropped: dict) -> dict:
    result = {"images": 300, "detection_rate": rate, "faces_per_s": 50.0, "accuracy": {"gender": accuracy},
              "other_box_scores": others, "dropped_boxes": dropped}
    return {"command": "bench", "date": "2026-12-07T12:00:00+00:00", "cpus": 2, "detector": detector,
            "results": {"utkface": result, "ferplus": {**result, "accuracy": {"emotion": accuracy - 0.3}}}}


def test_detector_and_photo_tables_quote_every_detector_and_photo(tmp_path):
    from faceprompt.io import write_json_atomic

    blaze, dlib = _wild_record("blazeface", 1.0, 0.84, [], {"not a face": 2}), _wild_record("dlib", 0.99, 0.857,
                                                                                            [0.3], {})
    write_json_atomic(tmp_path / wild.DETECTOR_FILES[0], blaze)
    write_json_atomic(tmp_path / wild.DETECTOR_FILES[1], dlib)
    photo = lambda faces, found, false: {"faces": faces, "labelled": found + false, "on_a_face": found,  # noqa: E731
                                         "false": false, "dropped": [], "detect_ms": 5.0 + found}
    photos = {"command": "photos", "date": "2026-12-07T12:00:00+00:00", "cpus": 2, "load_average": [0.1, 0.1, 0.1],
              "results": {"blazeface": {"group": photo(6, 6, 0), "cat": photo(0, 0, 0)},
                          "dlib": {"group": photo(6, 5, 0), "cat": photo(0, 0, 1)}}}
    write_json_atomic(tmp_path / wild.PHOTOS_FILE, photos)
    table = wild.glue_detectors(tmp_path)
    assert list(table.index) == [("utkface", "blazeface"), ("utkface", "dlib"), ("ferplus", "blazeface"),
                                 ("ferplus", "dlib")]
    assert table.loc[("utkface", "dlib"), "labelled"] == "99.0%" and table.loc[("utkface", "dlib"), "gender"] == "85.7%"
    assert table.loc[("utkface", "dlib"), "other boxes labelled"] == 1
    assert table.loc[("ferplus", "blazeface"), "dropped"] == 2 and table.loc[("ferplus", "blazeface"), "gender"] == ""
    photo_table = G.GLUED["wild-photos-table"]
    assert photo_table.loc["group", "dlib"] == "5" and photo_table.loc["cat", "dlib"] == "0 (1 false)"
    assert photo_table.loc["all photos", "blazeface"] == "6" and photo_table.loc["all photos", "faces"] == 6
    assert photo_table.loc["detection ms, median", "blazeface"] == "8.0"  # the median of 11.0 and 5.0
    assert G.GLUED["wild-photos-dlib"] == "5 of 6 faces, 1 false box"
    assert G.GLUED["wild-photos-blazeface"] == "6 of 6 faces, 0 false boxes"
