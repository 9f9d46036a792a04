"""Numbers of the speed and faceclip-tiny chapters, read from the recorded JSON (faceprompt.book.speed,
faceclip_tiny, architecture, logged)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from faceprompt.book import architecture, faceclip_tiny, logged, speed, views
from faceprompt.book._machinery import glue as G
from faceprompt.locations import project_root

ROOT = project_root()
RESULTS = ROOT / speed.RESULTS_DIR
RECIPE = faceclip_tiny.read_json(ROOT / faceclip_tiny.RECIPE)


def test_gpu_inference_table_quotes_every_row_of_the_json():
    table = speed.glue_inference(RESULTS)
    frames = speed.inference_frames(RESULTS)
    pe = frames["PE-Core"]
    assert list(table.index) == list(dict.fromkeys(pe["method"]))
    assert len(table.columns) == sum(f["batch_size"].nunique() for f in frames.values())
    row = pe[(pe.method == "v2pt") & (pe.batch_size == 64)].iloc[0]
    assert table.loc["v2pt", "PE-Core, batch 64"] == f"{row.median_ms:.1f} ({row.vs_zero_shot:.2f})"
    both = pd.concat(frames.values())
    text = both[both.method.isin(["coop", "softcpt"])]["vs_zero_shot"]
    assert G.GLUED["speed-gpu-text-within"] == f"{100 * (text - 1).abs().max():.1f}%"


def test_batching_savings_compare_one_pass_with_a_pass_per_task():
    rows = pd.DataFrame([{"backbone": "b", "batch_size": s, "method": m, "median_ms": ms}
                         for s, m, ms in ((1, "vpt-ts", 1.0), (1, speed.LOOPED_VPT_TS, 3.0),
                                          (64, "vpt-ts", 9.0), (64, speed.LOOPED_VPT_TS, 10.0))])
    assert speed.batching_savings(rows) == [pytest.approx(10.0)]


def test_epoch_cache_table_matches_the_json():
    table = speed.glue_epoch_cache(RESULTS)
    rows = json.loads((RESULTS / speed.EPOCH_CACHE_FILE).read_text())
    assert list(table.index) == [r["batch_size"] for r in rows]
    assert list(table["speed-up"]) == [f"{r['speedup']:.1f}×" for r in rows]


def test_flops_table_quotes_both_counts_of_every_recorded_row():
    folder = ROOT / speed.FLOPS_RESULTS_DIR
    table = speed.glue_flops(folder)
    rows = json.loads((folder / speed.FLOPS_FILES[speed.THESIS_TOWER]).read_text())
    zero_shot = next(r for r in rows if r["method"] == "zero-shot")
    assert table.loc[(speed.THESIS_TOWER, "zero-shot"), "FlopCounterMode"] == f"{zero_shot['gflops_per_image']:.1f}"
    assert G.GLUED["speed-flops-l14-profiler"] == f"{zero_shot['gflops_per_image_profiler']:.1f}"
    assert len(table) == sum(len(json.loads((folder / f).read_text())) for f in speed.FLOPS_FILES.values())


def test_the_views_measurement_is_quoted_from_its_json_and_judged_by_its_spread():
    table = views.glue_views(ROOT / views.VIEWS_RESULT)
    record = json.loads((ROOT / views.VIEWS_RESULT).read_text())
    one = record["summary"]["1"]["ferplus/emotion/accuracy"]
    assert table.loc["FER+ emotion accuracy", "1 view"] == f"{100 * one['mean']:.1f} ± {100 * one['sd']:.1f}"
    assert G.GLUED["views-duplicates"] == f"{record['duplicates']:,}"
    assert views.verdict([0.01, 0.012, 0.011]).startswith("That is beyond")  # a steady gain
    assert views.verdict([0.05, -0.04, 0.0]).startswith("That is within")


def test_recipe_counts_steps_and_durations():
    steps = faceclip_tiny.steps_per_epoch(RECIPE)
    cfg = RECIPE["config"]
    emotion = int(faceclip_tiny.emotion_counts(RECIPE, ("train",)).sum())
    assert steps * cfg["batch_size"] <= faceclip_tiny.split_rows(RECIPE, "train") - emotion + cfg["emotion_samples"] \
        < (steps + 1) * cfg["batch_size"]
    durations = faceclip_tiny.epoch_durations(RECIPE)
    assert len(durations) == cfg["epochs"] and sum(durations) == pytest.approx(RECIPE["history"][-1]["seconds"])
    faceclip_tiny.glue_recipe(RECIPE)
    assert G.GLUED["ftiny-steps"] == str(steps) and G.GLUED["ftiny-epochs"] == str(cfg["epochs"])
    assert G.GLUED["ftiny-train-rows"] == f"{faceclip_tiny.split_rows(RECIPE, 'train'):,}"


def test_zero_shot_table_has_a_row_per_recorded_score():
    table = faceclip_tiny.glue_zero_shot(RECIPE)
    recorded = RECIPE["test_zero_shot"]
    assert len(table) == sum(len(tasks) for tasks in recorded.values())
    assert G.GLUED["ftiny-zs-utkface-age-oneoff"] == G.percent(recorded["utkface"]["age"]["one_off"])


def test_gpu_pretraining_time_per_step_is_that_of_the_release_it_timed():
    timing = faceclip_tiny.read_json(ROOT / faceclip_tiny.PRETRAIN_GPU)
    timed = faceclip_tiny.read_json(ROOT / faceclip_tiny.RELEASES_DIR / f"{faceclip_tiny.GPU_TIMED_RELEASE}.json")
    faceclip_tiny.glue_pretrain_gpu(timing, timed)
    steps = timing["epochs"] * faceclip_tiny.steps_per_epoch(timed)
    assert timing["epochs"] == timed["config"]["epochs"]
    assert G.GLUED["ftiny-gpu-step-ms"] == f"{1000 * timing['train_seconds'] / steps:.0f} ms"
    # stand-in data of the recorded size
    assert timing["rows"] == sum(faceclip_tiny.split_rows(timed, s) for s in ("train", "val", "test"))


def test_the_shape_counted_on_the_meta_device_is_the_recorded_model():
    shape = architecture.model_shape(RECIPE["config"]["model"])
    assert shape["parameters"] == RECIPE["parameters"]
    assert shape["image_size"] == RECIPE["config"]["image_size"]
    architecture.glue_shapes({"faceclip-tiny": RECIPE["config"]["model"]})
    glued = {k.removeprefix("arch-faceclip-tiny-") for k in G.GLUED if k.startswith("arch-faceclip-tiny-")}
    assert glued == set(architecture.SHAPE_FIELDS)
    assert architecture.patch_tokens(shape) == (shape["image_size"] // shape["patch_size"]) ** 2 + 1


def test_logged_entries_need_a_source(tmp_path):
    glued = logged.glue_logged(ROOT / logged.LOGGED)
    assert isinstance(glued["speed-cpu-table"], pd.DataFrame) and G.GLUED["speed-text-step-after"] == "10 s"
    bad = tmp_path / "logged.json"
    bad.write_text(json.dumps({"values": {"x": {"value": "1 s", "source": " "}}}))
    with pytest.raises(ValueError, match="values.x names no source"):
        logged.read_logged(bad)


def test_caption_numbers_come_from_the_caption_module():
    from faceprompt.pretraining.captions import AGE_TOLERANCE, TEMPLATES

    faceclip_tiny.glue_captions()
    assert G.GLUED["ftiny-templates"] == str(len(TEMPLATES))
    assert G.GLUED["ftiny-age-tolerance"] == str(AGE_TOLERANCE)


@pytest.mark.parametrize("release, expected", [
    ("48px", {"f1": "0.309", "emotion": "63.0%", "age": "43.9%", "oneoff": "76.5%", "fe-gender": "89.5%",
              "utk-gender": "87.8%"}),
    ("20ep", {"f1": "0.337", "emotion": "67.5%", "age": "45.2%", "oneoff": "80.1%", "fe-gender": "90.9%",
              "utk-gender": "87.7%", "epochs": "20", "draws": "8,000"}),
])
def test_earlier_releases_are_read_from_their_recipe_records(release, expected):
    """The numbers the chapter compares with come from each release's own recipe.json."""
    faceclip_tiny.glue_release(faceclip_tiny.read_json(ROOT / faceclip_tiny.RELEASES_DIR / f"{release}.json"), release)
    assert {field: G.GLUED[f"ftiny-{release}-{field}"] for field in expected} == expected


def _recipe(fe_train: dict, fer_train: dict, scores: dict, balance: float = 0.5) -> dict:
    empty = {"rows": 0}
    return {"config": {"emotion_balance": balance},
            "splits": {"utkface": {"train": {"rows": 5, "gender": {}}, "val": empty, "test": empty},
                       "facial_expressions": {"train": {"rows": 9, "emotion": fe_train}, "val": empty, "test": empty},
                       "ferplus": {"train": {"rows": 9, "emotion": fer_train}, "val": empty, "test": empty}},
            "test_zero_shot": scores}


def test_emotion_draws_pool_the_expression_datasets_and_balance_by_the_power():
    record = _recipe({"neutral": 8, "fear": 1}, {"neutral": 8}, {})
    assert faceclip_tiny.expression_datasets(record) == ["facial_expressions", "ferplus"]
    table = faceclip_tiny.emotion_draws(record)
    assert table.loc["neutral", "ferplus"] == 8 and table.loc["fear", "ferplus"] == 0
    assert table.loc["fear", "share of images"] == G.percent(1 / 17)
    assert table.loc["fear", "share of draws"] == G.percent(1 / (1 + 16 ** 0.5))  # class share ~ count ** 0.5


def test_augmentations_name_every_configured_one_and_only_those():
    from dataclasses import asdict

    from faceprompt.pretraining.config import PretrainConfig

    wild = asdict(PretrainConfig.load(ROOT / "configs/pretrain_faceclip_tiny_wild.yaml"))
    text = faceclip_tiny.augmentations(wild)
    for word in ("flip", "rotation", "shift", "colour jitter", "white balance", "grayscale", "blur", "JPEG"):
        assert word in text
    plain = asdict(PretrainConfig.load(ROOT / "configs/pretrain_faceclip_tiny.yaml"))
    assert "JPEG" not in faceclip_tiny.augmentations({**plain, "jpeg_p": 0.0})


def test_targets_are_reached_only_at_or_above_the_aim_and_the_previous_accuracy_is_one():
    previous = _recipe({}, {}, {"facial_expressions": {"emotion": {"accuracy": 0.70, "macro_f1": 0.30}}})
    now = _recipe({}, {}, {"ferplus": {"emotion": {"accuracy": 0.75, "balanced_accuracy": 0.60}},
                           "facial_expressions": {"emotion": {"accuracy": 0.69, "macro_f1": 0.46}}})
    middle = _recipe({}, {}, {"facial_expressions": {"emotion": {"accuracy": 0.80, "macro_f1": 0.35}}})
    table = faceclip_tiny.target_table(now, {"first": previous, "second": middle}, "first")
    table = table.set_index(["test split", "task", "metric"])
    assert table.loc[("ferplus", "emotion", "accuracy"), "reached"] == "yes"  # exactly the aim
    assert table.loc[("ferplus", "emotion", "balanced accuracy"), "reached"] == "no"
    assert table.loc[("utkface", "gender", "accuracy"), "reached"] == "-"  # not scored
    assert table.loc[("facial_expressions", "emotion", "macro f1"), "first"] == "0.300"
    assert table.loc[("facial_expressions", "emotion", "macro f1"), "second"] == "0.350"
    assert table.loc[("facial_expressions", "emotion", "accuracy"), "aim"] == ">= 70.0%"
    assert table.loc[("facial_expressions", "emotion", "accuracy"), "reached"] == "no"


def test_the_zero_shot_loss_term_is_described_from_the_config():
    assert faceclip_tiny.prompt_loss_words({}) == "none (the contrastive loss alone)"
    assert faceclip_tiny.prompt_loss_words({"prompt_loss_weight": 0.0, "age_neighbour_weight": 0.1}).startswith("none")
    words = faceclip_tiny.prompt_loss_words({"prompt_loss_weight": 1.0, "age_neighbour_weight": 0.1})
    assert words.startswith("weight 1;") and "adjacent age bin gets 0.1" in words
    assert faceclip_tiny.prompt_loss_words({"prompt_loss_weight": 0.5}) == "weight 0.5"
