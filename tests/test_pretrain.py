"""faceclip-tiny and `faceprompt pretrain`: the embedded model, captions from labels, the contrastive loop."""
from __future__ import annotations

import gzip
import io
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from faceprompt.pretraining import loop as fp
from faceprompt.backbones import PRETRAINED_DIR, get_spec, load_backbone
from faceprompt.engine.runtime import resolve_device
from faceprompt.pretraining import augment as paugment
from faceprompt.pretraining import captions
from faceprompt.pretraining import config as pconfig
from faceprompt.pretraining import data as pdata
from faceprompt.pretraining import loss as ploss
from faceprompt.pretraining import model as pmodel
from faceprompt.tasks import AGE, EMOTION, EMOTIONS, GENDER, GENDERS

REPO_ROOT = Path(__file__).resolve().parents[1]

EMBEDDED = PRETRAINED_DIR / "faceclip-tiny"
MAX_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def faceclip():
    return load_backbone("faceclip-tiny")


# --- the embedded model --------------------------------------------------------------------------

def test_embedded_model_is_registered_as_pe_core_eva():
    spec = get_spec("faceclip-tiny")
    assert spec.family == "pe-core" and spec.default_source == "embedded"
    assert (EMBEDDED / "open_clip_config.json").is_file()
    assert (EMBEDDED / "open_clip_model.safetensors").is_file()


def test_embedded_weights_fit_the_size_budget():
    from safetensors import safe_open

    assert (EMBEDDED / "open_clip_model.safetensors").stat().st_size <= MAX_BYTES
    with safe_open(str(EMBEDDED / "open_clip_model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}  # stored in half precision


def test_embedded_model_loads_offline_in_fp32_with_working_hooks(faceclip):
    assert faceclip.weights_id.startswith("local-dir:")
    assert faceclip.is_eva and faceclip.num_prefix_tokens == 1
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in faceclip.parameters())
    images = torch.randn(2, 3, faceclip.image_size, faceclip.image_size)
    with torch.no_grad():
        plain = faceclip.encode_image(images)
        zero = faceclip.encode_image(images, prompts=torch.zeros(0, faceclip.width))
        shallow = faceclip.encode_image(images, prompts=torch.randn(4, faceclip.width))
        deep = faceclip.encode_image(images, prompts=torch.randn(faceclip.depth, 4, faceclip.width), deep=True)
        tokens = faceclip.tokenize_with_context(["a photo of a woman."], 8)
        text = faceclip.encode_text(tokens, context=torch.randn(8, faceclip.text_width))
    assert torch.allclose(plain, zero, atol=1e-5)
    assert shallow.shape == deep.shape == plain.shape == (2, faceclip.embed_dim)
    assert not torch.allclose(plain, shallow)
    assert text.shape == (1, faceclip.embed_dim) and torch.isfinite(text).all()


def test_recipe_is_recorded_next_to_the_weights():
    recipe = pd.read_json(EMBEDDED / "recipe.json", typ="series")
    assert recipe["command"].startswith("faceprompt pretrain --config configs/pretrain_faceclip_tiny_heldout.yaml")
    with gzip.open(EMBEDDED / "splits.csv.gz", "rt") as f:
        splits = pd.read_csv(io.StringIO(f.read()), dtype=str)
    assert set(splits["split"]) == {"train", "val", "test"}
    # FER+ is the held-out target: none of its images or labels reached pretraining.
    assert set(splits["dataset"]) == {"utkface", "facial_expressions"}
    assert recipe["roles"]["adaptation_labels"] == ["ferplus:emotion"]
    assert "ferplus" not in recipe["roles"]["pretraining_labels"]
    assert set(recipe["test_zero_shot"]) == set(splits["dataset"])


# --- captions ------------------------------------------------------------------------------------

def _captions(gender: int, age: float, emotion: int, n: int = 400) -> list[captions.Caption]:
    rng = random.Random(0)
    return [captions.make_caption(gender, age, emotion, rng) for _ in range(n)]


def test_captions_only_assert_the_labels_given():
    woman_34 = _captions(GENDERS.index("female"), 34.0, -1)
    for cap in woman_34:
        assert cap.emotion == -1
        assert cap.gender in (-1, GENDERS.index("female"))
        assert cap.age_range is None or cap.age_range[0] <= 34 <= cap.age_range[1]
        assert " man" not in cap.text and "boy" not in cap.text
    texts = {c.text for c in woman_34}
    assert "a photo of a 34 year old woman." in texts
    assert any(c.gender < 0 and c.age_range is None for c in _captions(-1, math.nan, 3))  # emotion only


def test_captions_include_the_zero_shot_wording():
    texts = {c.text for c in _captions(GENDERS.index("female"), 34.0, -1)}
    assert set(GENDER.prompts()) & texts == {"a photo of a woman."}
    assert "a photo of a person in their thirties." in texts
    assert "a photo of a woman in her thirties." in texts  # combined
    happy = {c.text for c in _captions(GENDERS.index("male"), math.nan, EMOTIONS.index("happiness"))}
    assert {"a photo of a happy person.", "a photo of a happy man.", "a photo of a smiling man."} <= happy
    assert "a close-up photo of a happy face." in happy  # the emotion task's third template
    assert EMOTION.prompts()[EMOTIONS.index("happiness")] in happy
    assert AGE.prompts()[0] in {c.text for c in _captions(GENDERS.index("male"), 1.0, -1)}  # "a photo of a baby."


def test_unlabelled_image_cannot_be_captioned():
    with pytest.raises(ValueError, match="without any label"):
        captions.make_caption(-1, math.nan, -1, random.Random(0))


def test_targets_follow_labels_and_mask_unknowns():
    labels = pdata.Labels(gender=np.array([1, 0, 1, -1]), age=np.array([34.0, 35.0, math.nan, math.nan]),
                       emotion=np.array([-1, -1, 3, 3]))
    written = [captions.Caption("a photo of a woman.", gender=1),
               captions.Caption("a photo of a person in their thirties.", age_range=(30, 39)),
               captions.Caption("a photo of a happy person.", emotion=3)]
    targets, mask = captions.caption_targets(written, labels)
    assert targets.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]]


# --- the training loop ---------------------------------------------------------------------------

def _tiny_setup(loss: str):
    import open_clip

    cfg = pconfig.PretrainConfig(model="FP-FaceCLIP-Tiny", lr=5e-4, warmup_steps=1, batch_size=16, loss=loss)
    # SigLIP's loss comes with its learnable bias; CLIP's has none.
    model = pmodel.create_model(cfg.model, seed=0, **({"init_logit_bias": -10.0} if loss == "sigmoid" else {}))
    model.text.token_embedding.weight.requires_grad_(False)
    tokens = ploss.TokenCache(open_clip.get_tokenizer(cfg.model), model.text.context_length)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=gen)
    labels = pdata.Labels(gender=np.arange(16) % 2, age=np.linspace(2, 80, 16), emotion=np.full(16, -1))
    inputs = ploss.prepare_step(images, labels, tokens, cfg, random.Random(0), gen, train=False)
    return cfg, model, inputs


@pytest.mark.parametrize("loss", pconfig.LOSSES)
def test_two_steps_lower_the_contrastive_loss(loss):
    cfg, model, inputs = _tiny_setup(loss)
    optimizer = pmodel.make_optimizer(model, cfg)
    assert all(p is not model.text.token_embedding.weight for g in optimizer.param_groups for p in g["params"])
    model.train()
    with torch.no_grad():
        before = ploss.step_loss(model, inputs, loss).item()
    for _ in range(2):
        optimizer.zero_grad()
        ploss.step_loss(model, inputs, loss).backward()
        optimizer.step()
    with torch.no_grad():
        after = ploss.step_loss(model, inputs, loss).item()
    assert math.isfinite(before) and after < before


def test_an_image_size_the_model_does_not_take_fails_before_any_work():
    pmodel.check_image_size(pconfig.PretrainConfig(model="FP-FaceCLIP-Tiny"))  # the default matches
    with pytest.raises(ValueError, match=r"image_size: 48 px, but model FP-FaceCLIP-Tiny takes 64 px"):
        pmodel.check_image_size(pconfig.PretrainConfig(model="FP-FaceCLIP-Tiny", image_size=48))


def test_patch_drop_trains_on_fewer_tokens_and_leaves_inference_alone():
    _, model, inputs = _tiny_setup("sigmoid")
    model.eval()
    with torch.no_grad():
        reference = model.encode_image(inputs.images)
    pmodel.set_patch_drop(model, 0.5)
    model.train()
    loss = ploss.step_loss(model, inputs, "sigmoid")
    loss.backward()  # RoPE follows the kept tokens: no shape error
    assert math.isfinite(loss.item())
    pmodel.set_patch_drop(model, 0.0)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.encode_image(inputs.images), reference, atol=1e-6)


def test_short_text_matches_the_full_context():
    _, model, inputs = _tiny_setup("sigmoid")
    model.eval()
    used = int((inputs.tokens != 0).any(0).nonzero().max()) + 1
    assert used < inputs.tokens.shape[1]
    with torch.no_grad():
        full = model.encode_text(inputs.tokens)
        with pmodel.short_text(model, used):
            short = model.encode_text(inputs.tokens[:, :used])
    assert torch.allclose(full, short, atol=1e-5)
    assert model.text.attn_mask.shape[0] == model.text.context_length  # restored


def test_emotion_sampling_lifts_rare_classes():
    emotion = np.array([6] * 900 + [3] * 90 + [1] * 10 + [-1] * 50)
    labels = pdata.Labels(gender=np.zeros(len(emotion), int), age=np.full(len(emotion), np.nan), emotion=emotion)
    order = pdata.epoch_order(labels, 0.7, np.random.default_rng(0), emotion_samples=2000)
    drawn = emotion[order]
    assert (drawn == -1).sum() == 50  # images without an emotion label: each once
    assert (drawn == 1).mean() > 4 * (10 / 1050)  # the rare class is drawn far more often than found


def test_config_refuses_unknown_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 1\nbatch: 8\n")
    with pytest.raises(ValueError, match="unknown field"):
        pconfig.PretrainConfig.load(path)


def test_config_refuses_a_device_torch_does_not_know():
    with pytest.raises(ValueError, match="device: 'gpu0' is not a torch device"):
        pconfig.PretrainConfig.from_dict({"device": "gpu0"})


# --- the whole recipe on stand-in data -----------------------------------------------------------

SMALL_SPLITS = {
    "utkface": {"train": {"rows": 40, "gender": {"female": 20, "male": 20}, "age_bin": {"20-29": 25, "70+": 15}},
                "val": {"rows": 8, "gender": {"female": 4, "male": 4}, "age_bin": {"3-9": 8}},
                "test": {"rows": 8, "gender": {"female": 3, "male": 5}, "age_bin": {"30-39": 8}}},
    "facial_expressions": {"train": {"rows": 24, "gender": {"male": 20}, "emotion": {"happiness": 16, "fear": 8}},
                           "val": {"rows": 6, "emotion": {"neutral": 6}},
                           "test": {"rows": 6, "gender": {"female": 6}, "emotion": {"anger": 6}}},
}


def test_stand_in_data_has_the_recorded_label_counts():
    data = pdata.stand_in_data(SMALL_SPLITS, 64, seed=3)
    assert data.images.shape == (len(data.rows), 3, 64, 64) and data.images.dtype == torch.uint8
    assert pdata.split_counts(data.rows) == SMALL_SPLITS
    with pytest.raises(ValueError, match="utkface/train: 41 labels for 40 rows"):
        pdata.stand_in_data({"utkface": {"train": {"rows": 40, "gender": {"female": 41}}}}, 64)


def _small_config(tmp_path, **changes) -> pconfig.PretrainConfig:
    small = dict(out=str(tmp_path / "model"), work_dir=str(tmp_path / "work"), epochs=2, batch_size=16,
                 warmup_steps=2, emotion_samples=16, val_limit=4, threads=1)
    return pconfig.PretrainConfig(**{**small, **changes})


def test_the_recipe_runs_end_to_end_and_resumes_on_another_device_setting(tmp_path):
    data = pdata.stand_in_data(SMALL_SPLITS, 64)
    result = fp.pretrain(_small_config(tmp_path), progress=False, data=data)
    recipe = pd.read_json(result.out / "recipe.json", typ="series")
    assert result.device.startswith("cpu") and recipe["device"] == result.device
    assert [entry["epoch"] for entry in recipe["history"]] == [1, 2]
    assert pdata.split_counts(data.rows) == recipe["splits"]
    assert set(result.test) == {"utkface", "facial_expressions"}
    model = load_backbone("faceclip-tiny", weights=f"local-dir:{result.out}")
    assert model.embed_dim > 0
    # Where it runs may change between sessions; what it trains may not.
    again = fp.pretrain(_small_config(tmp_path, threads=2), resume=True, progress=False, data=data)
    assert again.seconds == pytest.approx(result.seconds)  # nothing left to train
    with pytest.raises(ValueError, match=r"keeps its recipe; changed: lr \(0.0005 -> 0.001\)"):
        fp.pretrain(_small_config(tmp_path, lr=1e-3), resume=True, progress=False, data=data)


def test_rows_and_images_must_pair_up(tmp_path):
    data = pdata.stand_in_data(SMALL_SPLITS, 64)
    with pytest.raises(ValueError, match="92 rows but 91 images"):
        fp.pretrain(_small_config(tmp_path), progress=False, data=pdata.PretrainData(data.rows, data.images[:-1]))


def test_pretrain_benchmark_times_the_recipe_and_extrapolates(tmp_path, capsys):
    import importlib.util
    import json

    import yaml

    spec = importlib.util.spec_from_file_location("bench_pretrain", REPO_ROOT / "benchmarks" / "bench_pretrain.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / "recipe.json").write_text(json.dumps({"splits": SMALL_SPLITS}))
    small = _small_config(tmp_path, epochs=4).to_dict()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in small.items()}))
    args = ["--config", str(tmp_path / "config.yaml"), "--recipe", str(tmp_path / "recipe.json"),
            "--json", str(tmp_path / "out.json")]
    assert bench.main(args + ["--epochs", "2"]) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["epochs"] == 2 and out["recipe_epochs"] == 4 and len(out["epoch_seconds"]) == 2
    masked, unmasked = out["epoch_seconds"]
    assert out["recipe_seconds_estimate"] == pytest.approx(3 * masked + unmasked)
    assert "(extrapolated)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(args + ["--epochs", "1"])  # only the unmasked epoch: nothing to extrapolate from


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_augmentation_draws_the_same_crops_on_a_gpu():
    images = torch.randint(0, 256, (8, 3, 64, 64), dtype=torch.uint8)
    on_cpu = paugment.augment(images, torch.Generator().manual_seed(0))
    on_gpu = paugment.augment(images.cuda(), torch.Generator().manual_seed(0))
    assert torch.allclose(on_cpu, on_gpu.cpu(), atol=1e-4)


def test_a_gpu_that_is_not_there_fails_before_any_work(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="sees no CUDA GPU; use device: cpu"):
        resolve_device("cuda")


# --- on the real held-out faces ------------------------------------------------------------------

@pytest.mark.shared_data
def test_zero_shot_gender_on_held_out_utkface_is_well_above_chance(shared_data, faceclip):
    from faceprompt.data.images import load_rgb
    from faceprompt.prompts import build_model

    with gzip.open(EMBEDDED / "splits.csv.gz", "rt") as f:
        splits = pd.read_csv(io.StringIO(f.read()), dtype=str)
    test = splits[(splits["dataset"] == "utkface") & (splits["split"] == "test")].sample(300, random_state=0)
    images = torch.stack([faceclip.preprocess(load_rgb(shared_data / "UTKFace" / k)) for k in test["key"]])
    truth = np.array([int(k.split("_")[1]) for k in test["key"]])  # UTKFace: 0 male, 1 female
    model = build_model("zero-shot", faceclip, tasks=("gender",)).eval()
    with torch.no_grad():
        pred = model(images).logits["gender"].argmax(1).numpy()
    assert (pred == truth).mean() >= 0.75


# --- nothing lost, nothing executed, every bad input a clear error -------------------------------

EVERY_AUGMENTATION = dict(color_p=0.5, color_strength=0.3, white_balance_p=0.5, white_balance_strength=0.2,
                          blur_p=0.5, jpeg_p=0.5, rotate_p=0.5, rotate_degrees=10.0, shift=0.05)


def _history(out: Path) -> list[dict]:
    """recipe.json's epochs minus wall-clock time (timings differ between runs; nothing else may)."""
    import json

    return [{k: v for k, v in e.items() if k != "seconds"}
            for e in json.loads((out / "recipe.json").read_text())["history"]]


def test_an_interrupted_pretraining_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from engine_helpers import interruption_message

    data = pdata.stand_in_data(SMALL_SPLITS, 64)
    # Patch dropping in every epoch but the last: its draws come from torch's global generator. Every
    # augmentation is on: their draws come from the epoch's generator.
    options = dict(epochs=3, val_limit=4, **EVERY_AUGMENTATION)
    whole = fp.pretrain(_small_config(tmp_path / "whole", **options), progress=False, data=data)
    real_loss, calls = fp.step_loss, {"n": 0}

    def loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # three steps an epoch: the second step of epoch 2
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(fp, "step_loss", loss)
    cfg = _small_config(tmp_path / "stopped", **options)
    message = interruption_message(lambda: fp.pretrain(cfg, progress=False, data=data, resume_hint="hint"))
    assert message == "pretraining interrupted after epoch 1 (its checkpoint is kept); resume with: hint"
    monkeypatch.setattr(fp, "step_loss", real_loss)
    resumed = fp.pretrain(cfg, resume=True, progress=False, data=data)
    assert _history(resumed.out) == _history(whole.out)
    a, b = (load_file(r.out / "open_clip_model.safetensors") for r in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _WritesAMarker:
    """Unpickling this writes a file: what a crafted checkpoint could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("name", ["last.pt", "checkpoint.safetensors"])
def test_a_pickle_checkpoint_is_never_unpickled(tmp_path, name):
    import pickle

    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_WritesAMarker(proof)))
    assert proof.is_file()  # the crafted payload is live: unpickling it runs code

    cfg = _small_config(tmp_path)
    marker = tmp_path / "marker"
    Path(cfg.work_dir).mkdir(parents=True)
    torch.save({"model": _WritesAMarker(marker), "epoch": 1}, Path(cfg.work_dir) / name)
    with pytest.raises(ValueError, match=r"(pickle checkpoint, which is never loaded|not a readable checkpoint)"):
        fp.pretrain(cfg, resume=True, progress=False, data=pdata.stand_in_data(SMALL_SPLITS, 64))
    assert not marker.exists()


def _write_config(tmp_path, text: str) -> Path:
    path = tmp_path / "pretrain.yaml"
    path.write_text(f"out: {tmp_path / 'model'}\nwork_dir: {tmp_path / 'work'}\n{text}")
    return path


def test_a_damaged_checkpoint_or_image_cache_is_one_line_naming_the_file(tmp_path, capsys):
    from faceprompt.cli import main as cli
    from faceprompt.pretraining.cache import ImageCacheError, build_image_cache

    data = pdata.stand_in_data(SMALL_SPLITS, 64)
    fp.pretrain(_small_config(tmp_path, epochs=1), progress=False, data=data)
    checkpoint = tmp_path / "work" / "checkpoint.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert cli(["pretrain", "--config", str(_write_config(tmp_path, "epochs: 1\n")), "--resume", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(checkpoint) in err and "not a readable checkpoint" in err and "delete" in err

    from PIL import Image

    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"face{i}.png"))
        Image.new("RGB", (70, 80), (i * 90, 20, 30)).save(paths[-1])
    cache = tmp_path / "images.safetensors"
    images = build_image_cache(paths, 64, cache, workers=1)
    assert images.shape == (2, 3, 64, 64) and torch.equal(build_image_cache(paths, 64, cache, workers=1), images)
    cache.write_bytes(b"\x00" * 40)
    with pytest.raises(ImageCacheError, match=rf"{cache}: not a readable image cache .* delete it and run again"):
        build_image_cache(paths, 64, cache, workers=1)


def test_config_values_are_typed_before_any_work(tmp_path, capsys):
    from faceprompt.cli import main as cli

    assert pconfig.PretrainConfig.load(_write_config(tmp_path, "lr: 5e-4\nmin_lr: 1e-5\n")).lr == 5e-4
    with pytest.raises(ValueError, match=r"field 'batch_size' must be an integer, got '8'"):
        pconfig.PretrainConfig.load(_write_config(tmp_path, 'batch_size: "8"\n'))
    for text, message in [('batch_size: "8"\n', "field 'batch_size' must be an integer"),
                          ("epochs: [1\n", "not valid YAML/JSON at line"),
                          ("patch_drop: 1.5\n", "patch_drop: 1.5 must be in [0, 1)")]:
        path = _write_config(tmp_path, text)
        assert cli(["pretrain", "--config", str(path), "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err and str(path) in err
    assert cli(["pretrain", "--config", str(_write_config(tmp_path, "")), "--set", "lr=fast", "--quiet"]) == 1
    assert "field 'lr' must be a number, got 'fast'" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()  # no image cache, no data read
    with pytest.raises(ValueError, match=r"field 'epochs' must be an integer, got '2'"):
        fp.pretrain(_small_config(tmp_path, epochs="2"), progress=False)  # built directly: typed all the same
    assert not (tmp_path / "work").exists()


def test_a_new_run_never_replaces_a_model_or_checkpoint_without_overwrite(tmp_path):
    data = pdata.stand_in_data(SMALL_SPLITS, 64)
    fp.pretrain(_small_config(tmp_path, epochs=1), progress=False, data=data)
    weights = tmp_path / "model" / "open_clip_model.safetensors"
    before = weights.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="already there: continue that run with --resume, replace it "
                                              "with --overwrite"):
        fp.pretrain(_small_config(tmp_path, epochs=1, seed=1), progress=False, data=data)
    assert weights.stat().st_mtime_ns == before
    fp.pretrain(_small_config(tmp_path, epochs=1, seed=1), progress=False, data=data, overwrite=True)
    assert weights.stat().st_mtime_ns != before


def test_adaptation_labels_never_reach_pretraining(tmp_path):
    row = {"path": "x.png", "gender": "", "age": "", "age_bin": "", "emotion": "fear"}
    assert pdata.withhold_adaptation_labels(row, "ferplus", ("ferplus:emotion",))["emotion"] == ""
    assert pdata.withhold_adaptation_labels(row, "facial_expressions", ("ferplus:emotion",))["emotion"] == "fear"
    aged = {"path": "y.png", "gender": "male", "age": "33", "age_bin": "30-39", "emotion": ""}
    kept = pdata.withhold_adaptation_labels(aged, "utkface", ("utkface:age",))
    assert (kept["age"], kept["age_bin"], kept["gender"]) == ("", "", "male")
    with pytest.raises(ValueError, match="adaptation_labels"):
        pconfig.PretrainConfig(adaptation_labels=("ferplus:mood",)).validate()
    data = pdata.stand_in_data(SMALL_SPLITS, 64)
    cfg = _small_config(tmp_path, epochs=1, adaptation_labels=("ferplus:emotion",))
    recipe = pd.read_json(fp.pretrain(cfg, progress=False, data=data).out / "recipe.json", typ="series")
    assert recipe["roles"]["adaptation_labels"] == ["ferplus:emotion"]
    assert "ferplus" not in recipe["roles"]["pretraining_labels"]


def test_age_balance_draws_rare_gender_age_groups_more_often():
    rows = pd.DataFrame({"gender": ["male"] * 900 + ["female"] * 100, "age": ["25"] * 900 + ["75"] * 100,
                         "emotion": [""] * 1000})
    labels = pdata.Labels.from_rows(rows)
    as_found = pdata.epoch_order(labels, 0.5, np.random.default_rng(0), None, age_balance=0.0)
    balanced = pdata.epoch_order(labels, 0.5, np.random.default_rng(0), None, age_balance=1.0)
    assert len(as_found) == len(balanced) == 1000
    assert (as_found >= 900).mean() == pytest.approx(0.1)
    assert 0.4 < (balanced >= 900).mean() < 0.6


def test_resume_with_nothing_to_resume_and_bad_overrides_say_so(tmp_path, capsys):
    from faceprompt.cli import main

    config = tmp_path / "p.yaml"
    config.write_text(f"out: {tmp_path / 'model'}\nwork_dir: {tmp_path / 'work'}\nepochs: 2\n")
    assert main(["pretrain", "--config", str(config), "--resume"]) != 0
    err = capsys.readouterr().err
    assert "nothing to resume in" in err and "run without --resume" in err and "delete" not in err
    assert main(["pretrain", "--config", str(config), "--set", "epochs=-1"]) != 0
    assert "--set" in capsys.readouterr().err
