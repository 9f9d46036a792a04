"""The in-the-wild recipe: its augmentations, FER+ in the data mix, its model config and its scores."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from faceprompt.pretraining import augment as A
from faceprompt.pretraining import config as pconfig
from faceprompt.pretraining import data as pdata
from faceprompt.pretraining import scoring

REPO_ROOT = Path(__file__).resolve().parents[1]
WILD_CONFIG = REPO_ROOT / "configs/pretrain_faceclip_tiny_wild.yaml"


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _noise(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=_gen(seed))


def _only(**changes) -> A.Augmentation:
    """No geometric change at all (full crop, no flip, no gray) plus ``changes``."""
    return A.Augmentation(**{"crop_scale": (1.0, 1.0), "flip_p": 0.0, "grayscale_p": 0.0, **changes})


# --- each augmentation does what it says -----------------------------------------------------------

def test_no_change_reproduces_the_image_and_flip_mirrors_it():
    x = _noise()
    assert torch.allclose(A.augment(x, _gen(), _only()), A.normalize(x), atol=1e-5)
    assert torch.allclose(A.augment(x, _gen(), _only(flip_p=1.0)), A.normalize(x).flip(-1), atol=1e-5)


def test_grayscale_makes_the_channels_equal():
    out = A.augment(_noise(), _gen(), _only(grayscale_p=1.0))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])


def test_white_balance_is_one_gain_per_channel_within_its_strength():
    x = torch.rand(6, 3, 16, 16, generator=_gen()) * 0.5 + 0.2  # far from clipping
    out = A.white_balance(x, _gen(1), 1.0, 0.2)
    gains = out / x
    per_channel = gains.flatten(2)
    assert torch.allclose(per_channel, per_channel[..., :1].expand_as(per_channel), atol=1e-5)
    assert gains.min() >= 0.8 - 1e-5 and gains.max() <= 1.2 + 1e-5
    assert (per_channel[:, :, 0] - 1).abs().max() > 0.01


def test_color_jitter_changes_colour_but_leaves_a_gray_image_gray():
    gray = torch.rand(6, 1, 16, 16, generator=_gen()).expand(-1, 3, -1, -1) * 0.6 + 0.2
    out = A.color_jitter(gray, _gen(1), 1.0, 0.3)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)
    assert (out - gray).abs().max() > 0.02
    assert 0 <= out.min() and out.max() <= 1


def _roughness(x: torch.Tensor) -> float:
    return float((x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean())


def test_blur_smooths_and_keeps_a_flat_image_flat():
    x = torch.rand(4, 3, 24, 24, generator=_gen())
    out = A.blur(x, _gen(1), 1.0, (0.8, 1.2))
    assert _roughness(out) < 0.6 * _roughness(x)
    assert abs(float(out.mean() - x.mean())) < 0.01  # a normalised kernel keeps the brightness
    flat = torch.full((2, 3, 24, 24), 0.4)
    assert torch.allclose(A.blur(flat, _gen(1), 1.0, (0.8, 1.2)), flat, atol=1e-6)
    assert torch.equal(A.blur(x, _gen(1), 0.0, (0.8, 1.2)), x)


def test_jpeg_reencodes_at_the_drawn_quality():
    # A smooth image, as faces are (JPEG's chroma subsampling wipes out pixel noise at any quality).
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8, generator=_gen()), size=32, mode="bilinear")
    low = A.jpeg(x, _gen(1), 1.0, (10, 10))
    high = A.jpeg(x, _gen(1), 1.0, (95, 95))
    assert torch.equal(low * 255, (low * 255).round())  # decoded 8-bit pixels
    assert (low - x).abs().mean() > 2 * (high - x).abs().mean() > 0


def _rotation_degrees(theta: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.atan2(theta[:, 1, 0], theta[:, 1, 1]))


def test_rotation_scale_and_shift_stay_within_their_ranges():
    aug = A.Augmentation(crop_scale=(0.5, 1.0), rotate_p=1.0, rotate_degrees=10.0, shift=0.05)
    theta = A._affine(512, _gen(), aug)
    angles = _rotation_degrees(theta)
    assert angles.abs().max() <= 10 + 1e-4 and angles.abs().max() > 8
    side = torch.linalg.det(theta[:, :, :2]).abs().sqrt()  # crop side; rotation and flip keep areas
    assert side.min() >= math.sqrt(0.5) - 1e-5 and side.max() <= 1 + 1e-5
    assert (theta[:, :, 2].abs() <= (1 - side).unsqueeze(1) + 0.1 + 1e-5).all()
    assert (A._affine(64, _gen(), A.Augmentation())[:, 1, 0] == 0).all()  # no rotation unless asked


def test_a_seed_reproduces_the_batch_and_another_seed_does_not():
    aug = A.Augmentation.from_config(pconfig.PretrainConfig.load(WILD_CONFIG))
    x = _noise(16, 40)
    first, again, other = (A.augment(x, _gen(s), aug) for s in (3, 3, 4))
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_the_original_recipe_draws_exactly_as_before():
    """Steps left at probability 0 draw nothing: the old crops, flips and grays, from the same stream."""
    x = _noise(8)
    gen = _gen(5)
    out = A.augment(x, gen, A.Augmentation())
    reference = _gen(5)
    side = torch.sqrt(0.75 + 0.25 * torch.rand(8, generator=reference))
    torch.rand(8, 2, generator=reference)
    torch.rand(8, generator=reference)
    gray = torch.rand(8, generator=reference) < 0.2
    assert torch.equal(gen.get_state(), reference.get_state())
    assert torch.allclose(out[gray, 0], out[gray, 2]) and side.min() >= math.sqrt(0.75)


# --- the config, the data mix and the scores -------------------------------------------------------

def test_the_wild_config_loads_and_names_its_model_and_data():
    cfg = pconfig.PretrainConfig.load(WILD_CONFIG)
    assert "ferplus" in cfg.datasets and cfg.image_size == 80 and cfg.model == "FP-FaceCLIP-Wild"
    assert cfg.work_dir != pconfig.PretrainConfig.load(REPO_ROOT / "configs/pretrain_faceclip_tiny.yaml").work_dir
    for name in ("color_p", "white_balance_p", "blur_p", "jpeg_p", "rotate_p"):
        assert getattr(cfg, name) > 0


@pytest.mark.parametrize("field,value", [("jpeg_quality", (90, 30)), ("blur_p", 1.5), ("color_strength", 1.0),
                                         ("rotate_degrees", 90.0), ("blur_sigma", (0.0, 1.0))])
def test_impossible_augmentation_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        pconfig.PretrainConfig(**{field: value}).validate()


def test_emotion_scores_include_balanced_accuracy():
    y = np.array([0, 0, 0, 0, 1, 2])
    pred = np.array([0, 0, 0, 0, 0, 0])
    scores = scoring.task_metrics("emotion", y, pred)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["balanced_accuracy"] == pytest.approx(1 / 3)  # one of three classes recalled


def test_emotion_draws_are_balanced_across_both_expression_datasets():
    splits = {"facial_expressions": {"train": {"rows": 100, "emotion": {"neutral": 90, "disgust": 10}}},
              "ferplus": {"train": {"rows": 400, "emotion": {"neutral": 390, "disgust": 10}}}}
    data = pdata.stand_in_data(splits, 8)
    labels = pdata.Labels.from_rows(data.rows)
    order = pdata.epoch_order(labels, 1.0, np.random.default_rng(0), 4000)
    drawn = np.bincount(labels.emotion[order])
    disgust, neutral = (pdata.EMOTIONS.index(e) for e in ("disgust", "neutral"))
    assert 0.45 < drawn[disgust] / len(order) < 0.55  # 20 of 500 images, half of the draws
    assert set(data.rows.loc[order, "dataset"]) == {"facial_expressions", "ferplus"}
    assert drawn[neutral] > 0


@pytest.mark.shared_data
def test_ferplus_rows_keep_their_official_splits(shared_data, tmp_path):
    cfg = pconfig.PretrainConfig(datasets=("ferplus",), data_root=str(shared_data), limit=300,
                                 work_dir=str(tmp_path))
    rows = pdata.collect_rows(cfg)
    folder_split = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
    assert list(rows["split"]) == [folder_split[k.split("/")[0]] for k in rows["key"]]
    assert {"train", "val", "test"} <= set(rows["split"])
    assert (rows["emotion"] != "").all() and (rows["gender"] == "").all()


# --- the model config every prompt method must still hook into -------------------------------------

@pytest.mark.parametrize("method", ["vpt", "v2pt", "coop"])
def test_prompt_methods_apply_to_the_wild_model(method):
    from faceprompt.backbones import load_backbone
    from faceprompt.prompts import build_model
    from faceprompt.pretraining.model import backbone_name

    cfg = pconfig.PretrainConfig.load(WILD_CONFIG)
    backbone = load_backbone(backbone_name(cfg), weights="random")
    assert backbone.is_eva and backbone.image_size == 80
    model = build_model(method, backbone)
    images = torch.randn(2, 3, 80, 80)
    out = model(images)
    assert all(v.shape[0] == 2 and torch.isfinite(v).all() for v in out.logits.values())
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and not any(p.requires_grad for p in backbone.parameters())
    sum(v.sum() for v in out.logits.values()).backward()
    assert all(p.grad is not None for p in trainable)


def test_the_convolutional_stem_keeps_the_patch_grid_and_each_token_sees_only_its_patch_neighbourhood():
    from faceprompt.backbones import load_backbone
    from faceprompt.pretraining.model import backbone_name

    backbone = load_backbone(backbone_name(pconfig.PretrainConfig.load(WILD_CONFIG)), weights="random")
    assert backbone.patch_grid == (10, 10) and backbone.patch_size == (8, 8)
    images = torch.zeros(1, 3, 80, 80, requires_grad=True)
    import open_clip

    stem = open_clip.create_model(backbone.spec.model_name).visual.trunk.patch_embed
    tokens = stem(images)
    assert tokens.shape == (1, 100, 160)
    tokens[0, 0].sum().backward()  # the top-left token
    reached = images.grad[0].abs().sum(0).nonzero()
    # three 3x3 stride-2 convolutions: a receptive field of 15 px, starting at the image corner
    assert reached[:, 0].max() < 16 and reached[:, 1].max() < 16 and reached.min() == 0


def test_the_benchmark_scales_the_data_and_keeps_every_row_labelled():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_pretrain", REPO_ROOT / "benchmarks" / "bench_pretrain.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    splits = {"utkface": {"train": {"rows": 1000, "gender": {"female": 480, "male": 520},
                                    "age_bin": {"20-29": 333, "70+": 667}}},
              "ferplus": {"train": {"rows": 400, "emotion": {"neutral": 390, "disgust": 10}}}}
    small = bench.scaled_counts(splits, 0.05)
    assert small["utkface"]["train"]["gender"] == {"female": 24, "male": 26}
    assert small["ferplus"]["train"] == {"rows": 19, "emotion": {"neutral": 19}}
    data = pdata.stand_in_data(small, 8)
    labels = pdata.Labels.from_rows(data.rows)
    assert ((labels.gender >= 0) | ~np.isnan(labels.age) | (labels.emotion >= 0)).all()


def test_the_aligned_pretraining_crop_is_the_demos_crop(tmp_path):
    """Pretraining reads a face through faceprompt.align, so the model learns the framing the demo gives it."""
    pytest.importorskip("facenet_pytorch")
    import numpy as np
    from PIL import Image

    from faceprompt.align import face_crop
    from faceprompt.pretraining.cache import load_face
    from faceprompt.pretraining.config import PretrainConfig
    from faceprompt.pretraining.data import image_cache_path

    face_path = tmp_path / "face.jpg"
    from data_fixtures import face

    face(face_path, seed=3, size=120)
    expected = np.asarray(face_crop(Image.open(face_path).convert("RGB"), None, size=48, mode="aligned").image)
    assert np.array_equal(load_face(str(face_path), 48, "aligned").transpose(1, 2, 0), expected)
    assert not np.array_equal(load_face(str(face_path), 48, "center"), load_face(str(face_path), 48, "aligned"))
    centre, aligned = PretrainConfig(crop="center"), PretrainConfig(crop="aligned")
    assert image_cache_path(centre) != image_cache_path(aligned)  # one cache per crop
    with pytest.raises(ValueError, match="crop"):
        PretrainConfig.from_dict({"crop": "square"})
