"""The thesis's task-balanced training set (duplicates of an under-represented task, only they augmented) and
its second-stage learning rates (the text part at a fraction of the image prompts' rate), on hand-built cases."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from torchvision import transforms as T

from engine_helpers import TEXT_OPTIONS, quick_config, synthetic_manifest  # noqa: F401
from faceprompt.backbones import load_backbone
from faceprompt.data.dataset import ManifestDataset
from faceprompt.data.images import load_rgb
from faceprompt.data.manifest import read_manifest
from faceprompt.training.balance import (DrawnViewFeatures, DuplicateViews, TaskBalancedDataset, balanced_features,
                                         duplicate_rows, duplicates_needed, thesis_augmentation)
from faceprompt.engine.optim import make_optimizer, part_groups
from faceprompt.prompts import build_model
from faceprompt.training.loop import TrainConfig, fit

TASKS = ("gender", "age", "emotion")


def test_duplicates_needed_is_the_thesis_formula_rounded_down():
    # (f N - c) / (1 - f): 2 of 10 rows to a half -> (5 - 2) / 0.5 = 6, and 8 of 16 is a half
    assert duplicates_needed(2, 10, 0.5) == 6
    # 6 of 100 to a third: (33 - 6) / 0.67 = 40.29 -> 40
    assert duplicates_needed(6, 100, 0.33) == 40
    assert duplicates_needed(5, 10, 0.5) == 0 and duplicates_needed(6, 10, 0.5) == 0
    assert duplicates_needed(0, 10, 0.5) == 0  # nothing to copy


def _ten_rows(manifest) -> ManifestDataset:
    """Ten faces, all labelled for gender and age, only the first two for emotion."""
    frame = read_manifest(manifest).head(10).copy()
    frame["gender"], frame["age_bin"] = "male", "20-29"
    frame["emotion"] = ["happiness", "sadness"] + [""] * 8
    return ManifestDataset(frame, T.ToTensor(), TASKS)


def test_duplicate_rows_raise_emotion_to_its_share_from_its_labelled_rows_only(synthetic_manifest):  # noqa: F811
    base = _ten_rows(synthetic_manifest)
    rows = duplicate_rows(base.labels, TASKS, {"emotion": 0.5}, seed=0)
    assert len(rows) == 6 and set(rows.tolist()) <= {0, 1}
    assert torch.equal(rows, duplicate_rows(base.labels, TASKS, {"emotion": 0.5}, seed=0))  # seeded
    balanced = TaskBalancedDataset(base, DuplicateViews(base, rows, T.RandomHorizontalFlip(p=1.0)))
    assert len(balanced) == 16
    assert [balanced.is_duplicate(i) for i in range(16)] == [False] * 10 + [True] * 6
    assert balanced.labelled_counts() == {"gender": 16, "age": 16, "emotion": 8}
    assert (balanced.labels[10:, 2] >= 0).all()


def test_originals_come_back_unaugmented_and_duplicates_augmented(synthetic_manifest):  # noqa: F811
    base = _ten_rows(synthetic_manifest)
    rows = duplicate_rows(base.labels, TASKS, {"emotion": 0.5}, seed=0)
    balanced = TaskBalancedDataset(base, DuplicateViews(base, rows, T.RandomHorizontalFlip(p=1.0)))
    for i in range(10):
        image, labels = balanced[i]
        assert torch.equal(image, T.ToTensor()(load_rgb(base.paths[i])))
        assert int(labels["emotion"]) == int(base.labels[i, 2])
    for k in range(6):
        image, labels = balanced[10 + k]
        original = T.ToTensor()(load_rgb(base.paths[int(rows[k])]))
        assert torch.equal(image, original.flip(-1)) and not torch.equal(image, original)
        assert int(labels["emotion"]) == int(base.labels[rows[k], 2])


def test_a_seeded_view_is_the_same_at_every_load(synthetic_manifest):  # noqa: F811
    base = _ten_rows(synthetic_manifest)
    views = DuplicateViews(base, torch.tensor([0, 0, 1]), thesis_augmentation(), seed=7)
    assert torch.equal(views[0][0], views[0][0]) and torch.equal(views[2][0], views[2][0])


def test_the_thesis_augmentation_is_flip_jitter_and_blur():
    flip, jitter, blur = thesis_augmentation().transforms
    assert isinstance(flip, T.RandomHorizontalFlip) and flip.p == 0.5
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == ((0.85, 1.15), (0.85, 1.15), (0.95, 1.05))
    assert jitter.hue is None
    assert blur.p == 0.5 and blur.transforms[0].kernel_size == (3, 3) and blur.transforms[0].sigma == (0.1, 0.8)


def test_the_thesis_protocol_balances_emotion_only_in_a_run_of_several_tasks(synthetic_manifest):  # noqa: F811
    thesis = lambda **kw: TrainConfig.from_dict({"protocol": "thesis", "train": [str(synthetic_manifest)], **kw})  # noqa: E731
    assert thesis().task_balance == {"emotion": 0.33} and thesis().task_balance_augment == "thesis"
    assert thesis(tasks=["emotion"], class_balance_task_powers={}).task_balance == {}
    assert thesis(tasks=["age", "gender"]).task_balance == {}
    assert thesis(task_balance={}).task_balance == {}
    assert TrainConfig.from_dict({"train": [str(synthetic_manifest)]}).task_balance == {}
    for bad in ({"emotion": 1.0}, {"height": 0.3}, {"emotion": True}):
        with pytest.raises(ValueError, match="task_balance"):
            TrainConfig.from_dict({"train": [str(synthetic_manifest)], "task_balance": bad})


def test_the_thesis_augmentation_squashes_to_the_models_size_before_blurring(synthetic_manifest):  # noqa: F811
    # get_augmentation_transform: T.Resize((image_size, image_size)) first, then flip, jitter and blur
    resize, *rest = thesis_augmentation(64).transforms
    assert isinstance(resize, T.Resize) and resize.size == (64, 64) and len(rest) == 3
    crop = load_rgb(read_manifest(synthetic_manifest)["path"].iloc[0]).resize((100, 120))
    assert thesis_augmentation(64)(crop).size == (64, 64)


# --- duplicates on cached features: several views, one an epoch ---------------------------------------

def _views_config(tmp_path, views):
    return SimpleNamespace(task_balance_augment="thesis", feature_views=views, seed=3, cache_dir=str(tmp_path),
                           batch_size=8, num_workers=0)


def test_cached_duplicates_get_k_views_of_which_view_0_is_the_single_view(synthetic_manifest, tmp_path):  # noqa: F811
    tower = load_backbone("tiny-pe")
    base = ManifestDataset(read_manifest(synthetic_manifest).head(10), tower.preprocess, TASKS)
    rows = torch.tensor([0, 1, 1, 4])
    features = torch.zeros(10, tower.embed_dim)
    single = balanced_features(_views_config(tmp_path, 1), base, features, rows, tower, torch.float32, False)
    drawn = balanced_features(_views_config(tmp_path, 3), base, features, rows, tower, torch.float32, False)
    assert isinstance(drawn, DrawnViewFeatures) and drawn.views.shape == (3, 4, tower.embed_dim)
    assert torch.equal(drawn.views[0], single.features[10:])  # K=1 is view 0: the behaviour before K existed
    assert not torch.allclose(drawn.views[1], drawn.views[0])  # the other views are other augmentations
    assert torch.equal(drawn.labels, single.labels) and len(drawn) == len(single) == 14
    seen = []
    for epoch in range(1, 9):
        drawn.set_epoch(epoch)
        picked = torch.stack([drawn[10 + k][0] for k in range(4)])
        assert torch.equal(picked, drawn.views[drawn.drawn, torch.arange(4)])
        assert torch.equal(drawn[0][0], features[0])  # the originals never change
        seen.append(drawn.drawn.clone())
    assert len({tuple(s.tolist()) for s in seen}) > 1 and set(torch.cat(seen).tolist()) == {0, 1, 2}
    drawn.set_epoch(5)
    assert torch.equal(drawn.drawn, seen[4])  # fixed by (seed, epoch): a resumed run draws the same


@pytest.mark.parametrize("method, options", [("softcpt", TEXT_OPTIONS), ("vpt", {"tokens": 2})])
def test_a_run_with_task_balance_trains(synthetic_manifest, tmp_path, method, options):  # noqa: F811
    cfg = quick_config(synthetic_manifest, tmp_path, method=method, method_options=options, epochs=1,
                       max_train_samples=24, task_balance={"emotion": 0.95})
    assert fit(cfg, progress=False).stopped == "completed"
    if method == "softcpt":  # features of the train rows, the val rows, and the duplicates' seeded views
        assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3


# --- the second stage's learning rates --------------------------------------------------------------

def _model(method="softcpt+vpt", **options):
    config = {"context_tokens": 4, "task_context_tokens": 4, **({"tokens": 2} if "vpt" in method else {}), **options}
    return build_model(method, load_backbone("tiny-pe"), TASKS, config)


def test_text_part_and_logit_scale_train_at_a_tenth_of_the_visual_rate():
    model = _model(train_logit_scale=True)
    visual, text = part_groups(model, 2e-3, 0.1)
    scale = model.visual.logit_log_scale()
    assert visual["lr"] == 2e-3 and text["lr"] == pytest.approx(2e-4)
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(text["params"]) == ids(model.text.parameters()) | {id(scale)}
    assert ids(visual["params"]) == ids(model.visual.parameters()) - {id(scale)}
    optimizer = make_optimizer("adamw", part_groups(model, 2e-3, 0.1), 2e-3)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-3, pytest.approx(2e-4)]
    assert part_groups(model, 2e-3, 1.0) == model.trainable_parameters()


def test_a_frozen_text_part_does_not_change_over_a_step():
    model = _model()
    optimizer = make_optimizer("adamw", part_groups(model, 1e-1, 0.0), 1e-1)
    assert len(optimizer.param_groups) == 1
    text_before = {n: p.detach().clone() for n, p in model.text.named_parameters()}
    visual_before = {n: p.detach().clone() for n, p in model.visual.named_parameters()}
    logits = model(torch.rand(2, 3, 64, 64)).logits
    sum(v.square().mean() for v in logits.values()).backward()
    optimizer.step()
    assert all(torch.equal(p, text_before[n]) for n, p in model.text.named_parameters())
    assert any(not torch.equal(p, visual_before[n]) for n, p in model.visual.named_parameters())
    with pytest.raises(ValueError, match="text_lr_scale"):
        part_groups(_model("softcpt"), 1e-1, 0.0)


def test_text_lr_scale_is_checked_and_a_run_with_it_trains(synthetic_manifest, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="text_lr_scale"):
        TrainConfig.from_dict({"train": [str(synthetic_manifest)], "text_lr_scale": -1})
    cfg = quick_config(synthetic_manifest, tmp_path, method="softcpt+vpt", epochs=1, max_train_samples=16,
                       method_options={**TEXT_OPTIONS, "tokens": 2}, text_lr_scale=0.1)
    result = fit(dataclasses.replace(cfg, lr=1e-2), progress=False)
    assert result.stopped == "completed" and result.history[0]["lr"] == pytest.approx(1e-2, rel=0.5)


def test_a_run_drawing_cached_views_resumes_exactly(synthetic_manifest, tmp_path, monkeypatch):  # noqa: F811
    from engine_helpers import fit_then_crash, without_timing

    def config(root):
        return quick_config(synthetic_manifest, root, epochs=3, max_train_samples=24, task_balance={"emotion": 0.95},
                            feature_views=3)
    epochs, draw = [], DrawnViewFeatures.set_epoch
    monkeypatch.setattr(DrawnViewFeatures, "set_epoch", lambda self, e: epochs.append(e) or draw(self, e))
    whole = fit(config(tmp_path / "a"), progress=False)
    assert epochs == [1, 2, 3]  # the training set draws its views at every epoch
    fit_then_crash(config(tmp_path / "b"), after_epoch=1)
    resumed = fit(config(tmp_path / "b"), resume=True, progress=False)
    assert without_timing(resumed.history) == without_timing(whole.history)
    with pytest.raises(ValueError, match="feature_views"):
        quick_config(synthetic_manifest, tmp_path, feature_views=0).validate()
