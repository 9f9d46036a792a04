"""Training: configs, data, learning, exact resume, NaN handling, feature caching, the CLI."""
from __future__ import annotations

import json
import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine_helpers import (IMAGE_SIZE, blank_column, fit_then_crash, interruption_message,  # noqa: F401
                            quick_config, synthetic_manifest, without_timing)
from faceprompt.training import loop as train_module
from faceprompt.cli import main as cli
from faceprompt.data.dataset import DataSource, ManifestDataset, load_sources
from faceprompt.features import cached_features, compute_features, feature_cache_key
from faceprompt.training.losses import LossParts
from faceprompt.prompts.base import build_model
from faceprompt.training.loop import NonFiniteLossError, TrainConfig, fit, load_config, resume_config

REPO = Path(__file__).resolve().parents[1]


# --- config ----------------------------------------------------------------------------------------

def test_config_round_trips_through_json(synthetic_manifest, tmp_path):  # noqa: F811
    cfg = quick_config(synthetic_manifest, tmp_path, val=[{"manifest": str(synthetic_manifest), "splits": ["val"]}],
                       task_weights={"age": 2.0}, grad_clip=None)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize("name", ["train_synthetic_tiny.yaml", "train_gpu_pe_core_b16.yaml"])
def test_example_configs_load_and_validate(name):
    cfg = load_config(REPO / "configs" / name)
    cfg.validate()
    if "gpu" in name:  # the thesis defaults
        assert (cfg.lr, cfg.optimizer, cfg.weight_decay, cfg.min_lr) == (2e-3, "adamw", 0.0, 1e-6)
        assert (cfg.epochs, cfg.patience, cfg.batch_size, cfg.backbone) == (50, 7, 60, "pe-core-b16")
        assert cfg.method_options["tokens"] == 10 and cfg.method_options["context_tokens"] == 16


@pytest.mark.parametrize("change, field", [
    ({"method": "prompt-magic"}, "prompt-magic"),
    ({"backbone": "resnet-50"}, "resnet-50"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -1e-3}, "lr"),
    ({"epochs": 0}, "epochs"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"tasks": ["gender", "height"]}, "tasks"),
    ({"learning_rate": 1e-3}, "learning_rate"),
    ({"method_options": {"tokenz": 3}}, "method_options"),
    ({"train": ["/nowhere/manifest.csv"]}, "manifest"),
    ({"train": [{"manifest": "SYNTH", "datasets": ["fairface"]}]}, "datasets"),
    ({"train": [{"manifest": "SYNTH", "splits": ["holdout"]}]}, "splits"),
    ({"loss_logit_scale": 0}, "loss_logit_scale"),
    ({"loss_logit_scale": "sharp"}, "loss_logit_scale"),
    ({"monitor": "f1"}, "monitor"),
    ({"class_balance_tasks": ["emotion", "height"], "tasks": ["gender", "emotion"]}, "class_balance_tasks"),
    ({"class_balance_power": 0}, "class_balance_power"),
    ({"anchor_weight": -0.5}, "anchor_weight"),
])
def test_bad_configs_fail_before_any_work_naming_the_field(synthetic_manifest, tmp_path, change, field):  # noqa: F811
    if "train" in change:
        change = json.loads(json.dumps(change).replace("SYNTH", str(synthetic_manifest)))
    with pytest.raises((ValueError, FileNotFoundError), match=field):
        fit(quick_config(synthetic_manifest, tmp_path, **change), progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_task_without_labelled_samples_is_refused(synthetic_manifest, tmp_path):  # noqa: F811
    manifest = blank_column(synthetic_manifest, "emotion", tmp_path / "no_emotion.csv")
    with pytest.raises(ValueError, match=r"tasks: 'emotion' has no labelled samples"):
        fit(quick_config(manifest, tmp_path), progress=False)
    assert not (tmp_path / "runs").exists()


def test_an_image_too_small_for_a_face_is_refused_before_training(synthetic_manifest, tmp_path):  # noqa: F811
    from PIL import Image

    from faceprompt.data.manifest import read_manifest, write_manifest

    frame = read_manifest(synthetic_manifest)
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    frame.loc[frame.index[frame["split"] == "train"][3], "path"] = str(tiny)
    manifest = write_manifest(frame, tmp_path / "with_tiny.csv")
    with pytest.raises(ValueError, match=r"train: .*tiny\.png"):
        fit(quick_config(manifest, tmp_path), progress=False)
    assert not (tmp_path / "runs").exists()


# --- data ------------------------------------------------------------------------------------------

def test_dataset_returns_image_and_labels_with_missing_as_minus_one(synthetic_manifest, tiny_backbones):  # noqa: F811
    ds = ManifestDataset(synthetic_manifest, tiny_backbones["tiny-pe"].preprocess, ("gender", "emotion"))
    image, labels = ds[0]
    assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert set(labels) == {"gender", "emotion"} and labels["gender"].dtype == torch.long
    blank = ds.frame["emotion"] == ""
    assert blank.any(), "the fixture blanks some labels"
    assert (ds.labels[torch.tensor(blank.to_numpy()), 1] == -1).all()
    assert (ds.labels[torch.tensor(~blank.to_numpy()), 1] >= 0).all()


def test_sources_concatenate_and_select_splits(synthetic_manifest):  # noqa: F811
    train = load_sources([DataSource(str(synthetic_manifest), ("train",))])
    both = load_sources([DataSource(str(synthetic_manifest), ("train",)),
                         DataSource(str(synthetic_manifest), ("val", "test"))])
    assert set(train["split"]) == {"train"}
    assert len(both) == 96


def test_parts_of_a_split_are_disjoint_stable_and_keep_people_together(synthetic_manifest, tmp_path):  # noqa: F811
    from faceprompt.data.manifest import read_manifest, write_manifest

    frame = read_manifest(synthetic_manifest)
    frame["identity"] = [f"person{i // 3}" for i in range(len(frame))]  # three photos per person
    manifest = str(write_manifest(frame, tmp_path / "people.csv"))
    source = DataSource.parse({"manifest": manifest, "splits": ["train", "val"], "part": [0, 0.6]}, ("train",), "t")
    tune = load_sources([source])
    select = load_sources([DataSource(manifest, ("train", "val"), part=(0.6, 1.0))])
    whole = load_sources([DataSource(manifest, ("train", "val"))])
    assert len(tune) + len(select) == len(whole) and 0 < len(select) < len(whole)
    assert not set(tune["identity"]) & set(select["identity"])  # nobody in both
    assert load_sources([source]).equals(tune)  # the same rows every time
    assert DataSource.parse(source.to_dict(), ("train",), "t") == source
    assert source.overlaps(DataSource(manifest, ("val",), part=(0.5, 1)))
    assert not source.overlaps(DataSource(manifest, ("val",), part=(0.6, 1)))
    assert not source.overlaps(DataSource(manifest, ("test",)))
    with pytest.raises(ValueError, match=r"val\[0\].part: \[0.5, 0.2\] must be \[lo, hi\]"):
        DataSource(manifest, ("val",), part=(0.5, 0.2)).check("val[0]")


def test_validation_rows_may_not_overlap_the_training_rows(synthetic_manifest, tmp_path):  # noqa: F811
    tuned_on_val = dict(train=[{"manifest": str(synthetic_manifest), "splits": ["val"]}])
    with pytest.raises(ValueError, match=r"val\[0\] .* overlaps train\[0\]"):
        quick_config(synthetic_manifest, tmp_path, **tuned_on_val).validate()  # val: the val split by default
    halves = quick_config(synthetic_manifest, tmp_path,
                          train=[{"manifest": str(synthetic_manifest), "splits": ["val"], "part": [0, 0.5]}],
                          val=[{"manifest": str(synthetic_manifest), "splits": ["val"], "part": [0.5, 1]}])
    halves.validate()


# --- feature cache ---------------------------------------------------------------------------------

def test_feature_cache_reuses_and_keys_on_images_and_backbone(synthetic_manifest, tiny_backbones, tmp_path):  # noqa: F811
    pe, vit = tiny_backbones["tiny-pe"], tiny_backbones["tiny-vit"]
    ds = ManifestDataset(load_sources([DataSource(str(synthetic_manifest), ("val",))]), pe.preprocess)
    first = cached_features(pe, ds, tmp_path, progress=False)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    assert torch.equal(cached_features(pe, ds, tmp_path, progress=False), first)
    assert torch.allclose(first, compute_features(pe, ds, progress=False), atol=1e-6)
    key = feature_cache_key(ds.paths, pe)
    assert feature_cache_key(ds.paths, vit) != key
    assert feature_cache_key(ds.paths[1:], pe) != key
    assert feature_cache_key(ds.paths, pe, torch.bfloat16) != key
    touched = Path(ds.paths[0])
    touched.write_bytes(touched.read_bytes() + b"\0")  # new bytes, same path: a new key
    assert feature_cache_key(ds.paths, pe) != key


# --- learning, resume, NaN -------------------------------------------------------------------------

@pytest.mark.parametrize("method, options", [
    ("softcpt", {"context_tokens": 4, "task_context_tokens": 4}),
    ("vpt", {"tokens": 4}),
])
def test_training_lowers_the_loss(synthetic_manifest, tmp_path, method, options):  # noqa: F811
    result = fit(quick_config(synthetic_manifest, tmp_path, method=method, method_options=options, epochs=3,
                              lr=2e-2), progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "prompts.safetensors", "metrics.csv", "metrics.json", "checkpoint.safetensors"} <= files
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["method"] == method and config["train_config"]["epochs"] == 3


def test_loss_logit_scale_changes_the_loss_not_the_predictions(synthetic_manifest, tmp_path,  # noqa: F811
                                                                tiny_backbones):
    logits = {"gender": torch.tensor([[0.2, 0.5], [0.9, -0.1]])}
    sharper = train_module.rescale_logits(logits, 4.0)
    assert torch.equal(sharper["gender"].argmax(-1), logits["gender"].argmax(-1))
    assert torch.allclose(sharper["gender"], 4.0 * logits["gender"])
    model = build_model("coop", tiny_backbones["tiny-pe"])
    cfg = quick_config(synthetic_manifest, tmp_path, loss_logit_scale=50.0)
    assert train_module.loss_logit_factor(cfg, model) == pytest.approx(50.0 / float(model.backbone.logit_scale))
    assert train_module.loss_logit_factor(quick_config(synthetic_manifest, tmp_path), model) == 1.0

    default = fit(quick_config(synthetic_manifest, tmp_path, epochs=1, run_id="own"), progress=False)
    scaled = fit(quick_config(synthetic_manifest, tmp_path, epochs=1, run_id="scaled", loss_logit_scale=500.0),
                 progress=False)
    # Same data, same start: only the loss's scale differs, and so does what was learned.
    assert default.history[0]["train_loss"] != pytest.approx(scaled.history[0]["train_loss"])
    own = load_file(default.run_dir / "prompts.safetensors")
    sharp = load_file(scaled.run_dir / "prompts.safetensors")
    assert any(not torch.equal(own[k], sharp[k]) for k in own)
    saved = json.loads((scaled.run_dir / "config.json").read_text())
    assert saved["train_config"]["loss_logit_scale"] == 500.0


def _divergence_from_zero_shot(run_dir: Path, manifest: Path) -> float:
    """Mean KL(zero-shot || tuned) over every task on the test images of ``manifest``."""
    from faceprompt.checkpoint import load_prompts
    from faceprompt.training.losses import anchor_divergence

    tuned = load_prompts(run_dir).eval()
    zero_shot = build_model("zero-shot", tuned.backbone, tuned.tasks).eval()
    frame = load_sources([DataSource(str(manifest), ("test",))])
    images = torch.stack([ManifestDataset(frame, tuned.backbone.preprocess, tuned.task_names)[i][0]
                          for i in range(len(frame))])
    with torch.no_grad():
        return float(anchor_divergence(tuned(images).logits, zero_shot(images).logits))


@pytest.mark.parametrize("method, options", [("v2pt", {"tokens": 4}), ("softcpt", {})])
def test_the_zero_shot_anchor_keeps_predictions_nearer_zero_shot(synthetic_manifest, tmp_path,  # noqa: F811
                                                                  method, options):
    options = options or dict(quick_config(synthetic_manifest, tmp_path).method_options)
    runs = {weight: fit(quick_config(synthetic_manifest, tmp_path, method=method, method_options=options,
                                     epochs=2, lr=5e-2, anchor_weight=weight, run_id=f"anchor-{weight}"),
                        progress=False) for weight in (0.0, 20.0)}
    assert "train_aux_anchor" not in runs[0.0].history[0]
    assert all(row["train_aux_anchor"] > 0 for row in runs[20.0].history)
    free, anchored = (_divergence_from_zero_shot(runs[w].run_dir, synthetic_manifest) for w in (0.0, 20.0))
    assert anchored < free, (anchored, free)


def test_balance_can_be_limited_to_some_tasks(synthetic_manifest, tmp_path):  # noqa: F811
    labels = torch.tensor([[0, 0], [0, 1], [0, 1], [1, 1], [1, -1], [-1, 1]])  # (gender, emotion)
    sample = train_module.balanced_sample_weights(labels, columns=[1])
    assert sample[4] == 1.0  # no emotion label: drawn as often as without balancing
    emotion = sample[[0, 1, 2, 3, 5]]
    assert emotion.mean() == pytest.approx(1.0)  # the expression images keep their share of the draws...
    assert sample[0] == pytest.approx(4 * sample[1])  # ...and each emotion class gets half of it
    cfg = quick_config(synthetic_manifest, tmp_path, tasks=["gender", "emotion"], class_balance="weights",
                       class_balance_tasks="emotion", class_balance_power=0.5)
    weights = train_module._class_weights(cfg, labels, "cpu")
    assert set(weights) == {"emotion"}
    assert weights["emotion"][0] / weights["emotion"][1] == pytest.approx(2.0)  # (1 / 4) ** -0.5


def test_balanced_accuracy_can_pick_the_best_epoch(synthetic_manifest, tmp_path):  # noqa: F811
    result = fit(quick_config(synthetic_manifest, tmp_path, epochs=2, monitor="balanced_accuracy"), progress=False)
    for row in result.history:
        per_task = [row[f"val_balanced_accuracy_{t}"] for t in ("gender", "age", "emotion")]
        assert all(0.0 <= v <= 1.0 for v in per_task)
        assert row["val_mean_balanced_accuracy"] == pytest.approx(sum(per_task) / 3)
    best = max(result.history, key=lambda row: row["val_mean_balanced_accuracy"])
    assert result.best_metric == pytest.approx(best["val_mean_balanced_accuracy"])
    assert result.best_epoch == best["epoch"]


def test_resume_after_a_crash_ends_with_the_same_metrics(synthetic_manifest, tmp_path):  # noqa: F811
    # V2PT samples noise while training and the sampler draws class-balanced batches: both RNG paths resume.
    options = dict(method="v2pt", method_options={"tokens": 2, "latent": 4, "hidden": 16, "kl_weight": 0.1},
                   epochs=3, class_balance="sampler", warmup_epochs=1)
    whole = fit(quick_config(synthetic_manifest, tmp_path, run_id="whole", **options), progress=False)

    fit_then_crash(quick_config(synthetic_manifest, tmp_path, run_id="crashed", **options))
    assert json.loads((tmp_path / "runs" / "crashed" / "checkpoint.json").read_text())["epoch"] == 1
    resumed = fit(quick_config(synthetic_manifest, tmp_path, run_id="crashed", **options), resume=True,
                  progress=False)
    assert without_timing(resumed.history) == without_timing(whole.history)
    a = load_file(str(whole.run_dir / "prompts.safetensors"))
    b = load_file(str(resumed.run_dir / "prompts.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_new_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(synthetic_manifest, tmp_path):  # noqa: F811
    with pytest.raises(FileNotFoundError, match="run_id"):
        fit(quick_config(synthetic_manifest, tmp_path, run_id="never-ran"), resume=True, progress=False)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(synthetic_manifest, tmp_path,  # noqa: F811
                                                                          monkeypatch):
    real_loss = train_module.multitask_loss
    poisoned = {"on": False}

    def loss(*args, **kwargs):
        parts = real_loss(*args, **kwargs)
        return LossParts(parts.total * float("nan"), parts.terms) if poisoned["on"] else parts

    def poison_after_first_epoch(epoch, record):
        poisoned["on"] = True

    monkeypatch.setattr(train_module, "multitask_loss", loss)
    run_dir = tmp_path / "runs" / "run"
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2.*last good checkpoint.*epoch 1"):
        fit(quick_config(synthetic_manifest, tmp_path, epochs=3), progress=False,
            on_epoch_end=poison_after_first_epoch)
    tensors = load_file(run_dir / "checkpoint.safetensors")
    assert json.loads((run_dir / "checkpoint.json").read_text())["epoch"] == 1
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model."))
    assert len(json.loads((run_dir / "metrics.json").read_text())) == 1


def test_accelerate_runtime_trains_on_cpu(synthetic_manifest, tmp_path):  # noqa: F811
    result = fit(quick_config(synthetic_manifest, tmp_path, epochs=1, accelerate=True), progress=False)
    assert len(result.history) == 1 and result.history[0]["train_loss"] > 0


def test_cli_train_from_yaml_then_resume_finishes_the_run(synthetic_manifest, tmp_path):  # noqa: F811
    cfg = dataclasses.replace(quick_config(synthetic_manifest, tmp_path), epochs=1)
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps(cfg.to_dict()))
    assert cli(["train", "--config", str(config_file), "--quiet"]) == 0
    run_dir = tmp_path / "runs" / "run"
    assert cli(["train", "--resume", str(run_dir), "--set", "epochs=2", "--quiet"]) == 0
    assert [r["epoch"] for r in json.loads((run_dir / "metrics.json").read_text())] == [1, 2]
    assert cli(["train", "--config", str(config_file), "--set", "lr=0", "--quiet"]) == 1


# --- nothing lost, nothing executed, every bad input a clear error ---------------------------------

def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_resuming_a_copied_run_writes_only_into_the_copy(synthetic_manifest, tmp_path):  # noqa: F811
    import shutil

    fit(quick_config(synthetic_manifest, tmp_path, epochs=1), progress=False)
    original = tmp_path / "runs" / "run"
    before = _files(original)
    copy = tmp_path / "elsewhere" / "copied-run"
    shutil.copytree(original, copy)
    assert cli(["train", "--resume", str(copy), "--set", "epochs=2", "--quiet"]) == 0
    assert [r["epoch"] for r in json.loads((copy / "metrics.json").read_text())] == [1, 2]
    assert _files(original) == before  # the run it was copied from is untouched


def test_resume_refuses_a_changed_recipe_naming_the_fields(synthetic_manifest, tmp_path, capsys):  # noqa: F811
    cfg = quick_config(synthetic_manifest, tmp_path, epochs=1)
    fit(cfg, progress=False)
    run_dir = tmp_path / "runs" / "run"
    before = _files(run_dir)
    assert cli(["train", "--resume", str(run_dir), "--set", "lr=0.5", "batch_size=8", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "lr (0.01 -> 0.5)" in err and "batch_size (16 -> 8)" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match=r"keeps its recipe; changed: seed"):
        fit(cfg.replace(epochs=2, seed=1), resume=True, progress=False)
    assert _files(run_dir) == before
    # Where and how long it runs may change.
    fit(cfg.replace(epochs=2, device="cpu", num_workers=0), resume=True, progress=False)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(synthetic_manifest, tmp_path, capsys, damage):  # noqa: F811
    fit(quick_config(synthetic_manifest, tmp_path, epochs=1), progress=False)
    run_dir = tmp_path / "runs" / "run"
    checkpoint = run_dir / "checkpoint.safetensors"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:len(data) // 2] if damage == "truncate" else b"\x80\x04not a checkpoint")
    assert cli(["train", "--resume", str(run_dir), "--set", "epochs=2", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(checkpoint) in err and "not a readable checkpoint" in err and f"delete {run_dir}" in err


def test_a_method_option_of_the_wrong_type_is_named(synthetic_manifest, tmp_path, capsys):  # noqa: F811
    with pytest.raises(ValueError, match=r"method_options.tokens must be an integer, got 'abc'"):
        quick_config(synthetic_manifest, tmp_path, method="vpt", method_options={"tokens": "abc"})
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps(quick_config(synthetic_manifest, tmp_path, method="vpt",
                                                   method_options={"tokens": 2}).to_dict()))
    assert cli(["train", "--config", str(config_file), "--set", "method_options={tokens: abc}", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "method_options.tokens" in err
    assert not (tmp_path / "runs").exists()


def test_method_options_are_parsed_once_into_the_methods_typed_configs(tmp_path, monkeypatch, tiny_backbones):
    from faceprompt.prompts import MethodOptions
    from faceprompt.prompts.softcpt import SoftCPTConfig
    from faceprompt.prompts.vpt import VPTConfig

    cfg = TrainConfig.from_dict({"method": "softcpt+vpt", "train": [str(tmp_path / "m.csv")],
                                 "method_options": {"context_tokens": 4, "tokens": 3, "dropout": "1e-1"}})
    options = cfg.method_options
    assert isinstance(options.text, SoftCPTConfig) and options.text.context_tokens == 4
    assert isinstance(options.visual, VPTConfig) and (options.visual.tokens, options.visual.dropout) == (3, 0.1)
    # saved as given, each value typed: a saved run config reads as it was written
    assert cfg.to_dict()["method_options"] == {"context_tokens": 4, "tokens": 3, "dropout": 0.1}
    assert options == {"context_tokens": 4, "tokens": 3, "dropout": 0.1} and options["tokens"] == 3
    monkeypatch.setattr(MethodOptions, "parse", classmethod(lambda *a, **k: pytest.fail("options parsed again")))
    cfg.validate()
    model = build_model(cfg.method, tiny_backbones["tiny-pe"], cfg.tasks, cfg.method_options)
    assert model.text.cfg is options.text and model.visual.cfg is options.visual
    with pytest.raises(ValueError, match="parsed for method 'softcpt\\+vpt' can't build 'vpt'"):
        build_model("vpt", tiny_backbones["tiny-pe"], cfg.tasks, cfg.method_options)


def test_a_config_made_in_code_holds_parsed_options_of_its_own_method(tmp_path):
    cfg = TrainConfig.from_dict({"method": "softcpt", "train": [str(tmp_path / "m.csv")]})
    assert cfg.method_options.method == "softcpt" and cfg.method_options.text.context_tokens == 16
    swapped = dataclasses.replace(cfg, method="vpt", method_options={"tokens": 2})
    assert swapped.method_options.method == "vpt" and swapped.method_options.visual.tokens == 2
    assert TrainConfig(method="vpt").method_options.visual.tokens == 10


def test_a_bad_method_option_in_a_file_names_the_file_and_the_option(tmp_path):
    path = tmp_path / "train.yaml"
    for options, message in [("{tokens: abc}", "method_options.tokens must be an integer, got 'abc'"),
                             ("{tokens: 0}", "method_options: vpt.visual: field 'tokens' must be from 1"),
                             ("{tokenz: 3}", "method_options: method 'vpt': unknown option 'tokenz'")]:
        path.write_text(f"method: vpt\nmethod_options: {options}\ntrain: [m.csv]\n")
        with pytest.raises(ValueError, match=f"^config {path}: {message}"):
            load_config(path)


def test_ctrl_c_keeps_the_checkpoint_and_the_resumed_run_matches(synthetic_manifest, tmp_path,  # noqa: F811
                                                                 monkeypatch):
    options = dict(method="v2pt", method_options={"tokens": 2, "latent": 4, "hidden": 16, "kl_weight": 0.1},
                   epochs=3, class_balance="sampler")
    whole = fit(quick_config(synthetic_manifest, tmp_path, run_id="whole", **options), progress=False)
    real_loss = train_module.multitask_loss
    calls = {"epoch": 0, "steps": 0}

    def loss(*args, **kwargs):
        if calls["epoch"] == 1:
            calls["steps"] += 1
            if calls["steps"] == 2:  # the second step of epoch 2
                raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_module, "multitask_loss", loss)
    run_dir = tmp_path / "runs" / "stopped"
    message = interruption_message(lambda: fit(
        quick_config(synthetic_manifest, tmp_path, run_id="stopped", **options), progress=False,
        on_epoch_end=lambda epoch, record: calls.update(epoch=epoch)))
    assert message == (f"training interrupted after epoch 1 (its checkpoint is kept); "
                       f"resume with: faceprompt train --resume {run_dir}")
    monkeypatch.setattr(train_module, "multitask_loss", real_loss)
    assert json.loads((run_dir / "checkpoint.json").read_text())["epoch"] == 1
    resumed = fit(quick_config(synthetic_manifest, tmp_path, run_id="stopped", **options), resume=True,
                  progress=False)
    assert without_timing(resumed.history) == without_timing(whole.history)
    a, b = load_file(whole.run_dir / "prompts.safetensors"), load_file(run_dir / "prompts.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("change, message", [({"tasks": ["gender", "gender"]}, "names a task more than once"),
                                             ({"seed": 2 ** 70}, "seed: 1180591620717411303424 must be"),
                                             ({"seed": -1}, "seed: -1 must be")])
def test_repeated_tasks_and_seeds_out_of_torch_range_are_refused(synthetic_manifest, tmp_path, change, message):  # noqa: F811
    with pytest.raises(ValueError, match=message):
        fit(quick_config(synthetic_manifest, tmp_path, **change), progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_resume_that_lengthens_the_run_follows_the_new_schedule(synthetic_manifest, tmp_path):  # noqa: F811
    short = quick_config(synthetic_manifest, tmp_path, epochs=1, lr_schedule_unit="epoch", min_lr=1e-6)
    fit(short, progress=False)
    longer = TrainConfig.from_dict({**resume_config(short.run_path()).to_dict(), "epochs": 3})
    result = fit(longer, resume=True, progress=False)
    lrs = [record["lr"] for record in result.history]
    # Epoch 2 runs at the 3-epoch cosine's second rate, not at the 1-epoch schedule's floor.
    from faceprompt.engine.schedule import lr_at

    assert lrs[1] == pytest.approx(lr_at(1, 3, 0, short.lr, short.min_lr), rel=1e-6) and lrs[1] > 100 * short.min_lr
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["train_config"]["epochs"] == 3 and saved["epochs_run"] == 3


def test_without_validation_rows_the_epoch_is_chosen_on_training_loss_and_said(synthetic_manifest, tmp_path,  # noqa: F811
                                                                               caplog, capsys):
    from faceprompt.cli import main

    with caplog.at_level("WARNING"):
        result = fit(quick_config(synthetic_manifest, tmp_path, val=[]), progress=False)
    assert result.selected_by == "train_loss" and "no validation rows" in caplog.text
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["selected_by"] == "train_loss"


def test_training_warns_of_repeated_rows_and_rows_shared_with_validation(synthetic_manifest, tmp_path, caplog):  # noqa: F811
    import pandas as pd

    from faceprompt.data.manifest import read_manifest, write_manifest

    frame = read_manifest(synthetic_manifest)
    row = frame[frame.split == "train"].iloc[[0]]
    doubled = write_manifest(pd.concat([frame, row, row, row.assign(split="val")], ignore_index=True),
                             synthetic_manifest.parent / "doubled.csv")
    with caplog.at_level("WARNING"):
        fit(quick_config(doubled, tmp_path, epochs=1, max_train_samples=None), progress=False)
    assert "training rows: 1 image(s) listed more than once (3 rows" in caplog.text
    assert "1 image(s) also in the validation rows" in caplog.text


def test_the_age_gender_sampler_draws_rare_groups_as_often_as_common_ones(synthetic_manifest, tmp_path):  # noqa: F811
    from faceprompt.engine.seeding import EpochSampler
    from faceprompt.training.balance import age_gender_sample_weights

    # gender column 0, age column 1: 90 young men, 10 old women, 20 faces without an age
    labels = torch.tensor([[0, 3]] * 90 + [[1, 8]] * 10 + [[0, -1]] * 20)
    weights = age_gender_sample_weights(labels, 0, 1, power=1.0)
    assert torch.allclose(weights[100:], torch.ones(20))
    draws = torch.tensor(list(EpochSampler(len(labels), 0, weights)))
    young, old = (draws < 90).sum().item(), ((draws >= 90) & (draws < 100)).sum().item()
    assert 0.6 < old / young < 1.6  # as found: 1 to 9
    with pytest.raises(ValueError, match="age_gender_balance"):
        quick_config(synthetic_manifest, tmp_path, tasks=["emotion"], age_gender_balance=1.0).validate()
    fit(quick_config(synthetic_manifest, tmp_path, epochs=1, age_gender_balance=0.5), progress=False)


def test_a_task_without_validation_labels_is_named_in_a_warning(synthetic_manifest, tmp_path, caplog):  # noqa: F811
    from faceprompt.data.manifest import read_manifest, write_manifest

    frame = read_manifest(synthetic_manifest)
    frame.loc[frame.split == "val", "emotion"] = ""
    blanked = write_manifest(frame, synthetic_manifest.parent / "no_val_emotion.csv")
    with caplog.at_level("WARNING"):
        fit(quick_config(blanked, tmp_path, epochs=1), progress=False)
    assert "val: no row labelled for ['emotion']" in caplog.text and "['gender', 'age']" in caplog.text
