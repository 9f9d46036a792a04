"""Pretraining's zero-shot classifier term: the class features it trains are the ones zero-shot scores with."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceprompt.backbones import Backbone, get_spec
from faceprompt.prompts import build_model
from faceprompt.pretraining import config as pconfig
from faceprompt.pretraining import data as pdata
from faceprompt.pretraining import loss as ploss
from faceprompt.pretraining import model as pmodel
from faceprompt.pretraining import prompt_loss as pl
from faceprompt.tasks import AGE_BINS, EMOTIONS


def _tiny():
    import open_clip

    cfg = pconfig.PretrainConfig(model="FP-FaceCLIP-Tiny", lr=5e-4, warmup_steps=1, batch_size=16,
                                 prompt_loss_weight=1.0, age_neighbour_weight=0.1)
    model = pmodel.create_model(cfg.model, seed=0)
    tokens = ploss.TokenCache(open_clip.get_tokenizer(cfg.model), model.text.context_length)
    return cfg, model, tokens


def test_the_class_features_are_the_zero_shot_methods_own():
    cfg, model, tokens = _tiny()
    model.eval()
    prompts = pl.ClassPrompts.build(tokens)
    with torch.no_grad():
        ours = pl.class_features(model.encode_text(prompts.tokens), prompts.layout)
        backbone = Backbone(get_spec(pmodel.backbone_name(cfg)), model, None, "in-training")
        backbone.tokenizer = tokens.tokenizer
        theirs = build_model("zero-shot", backbone).text.class_features()
    assert ours.keys() == theirs.keys() == set(pl.TASK_ORDER)
    for task in ours:
        torch.testing.assert_close(ours[task], theirs[task], atol=1e-5, rtol=1e-5)


def test_class_labels_bin_ages_and_keep_unlabelled_rows_out():
    labels = pl.class_labels(np.array([0, -1, 1]), np.array([25.0, np.nan, 71.0]), np.array([-1, 3, 6]))
    assert labels.tolist() == [[0, AGE_BINS.index("20-29"), -1], [-1, -1, 3], [1, AGE_BINS.index("70+"), 6]]


def test_age_targets_spread_to_the_adjacent_bins_only():
    target = pl.soft_targets(torch.tensor([0, 4]), 9, 0.1)
    assert torch.allclose(target.sum(1), torch.ones(2))
    assert target[0, 0] == pytest.approx(1 / 1.1) and target[0, 1] == pytest.approx(0.1 / 1.1)
    assert target[1, 3] == target[1, 5] == pytest.approx(0.1 / 1.2) and target[1, 4] == pytest.approx(1 / 1.2)
    assert (target[1, [0, 1, 2, 6, 7, 8]] == 0).all()
    assert torch.equal(pl.soft_targets(torch.tensor([2]), 7, 0.0), F.one_hot(torch.tensor([2]), 7).float())


def test_the_term_is_each_labelled_tasks_cross_entropy_averaged():
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(4, 8, generator=gen)
    features = {t: F.normalize(torch.randn(n, 8, generator=gen), dim=-1)
                for t, n in (("gender", 2), ("age", 9), ("emotion", len(EMOTIONS)))}
    labels = torch.tensor([[0, -1, -1], [1, -1, -1], [-1, -1, 2], [-1, -1, 5]])
    scale = torch.tensor(math.log(10.0))
    img = F.normalize(image, dim=-1)
    gender = F.cross_entropy(10 * img[:2] @ features["gender"].t(), labels[:2, 0])
    emotion = F.cross_entropy(10 * img[2:] @ features["emotion"].t(), labels[2:, 2])
    loss = pl.prompt_loss(image, features, scale, labels)
    assert loss.item() == pytest.approx(((gender + emotion) / 2).item(), rel=1e-5)
    unlabelled = pl.prompt_loss(image.requires_grad_(), features, scale, torch.full((4, 3), -1))
    assert unlabelled.item() == 0 and unlabelled.requires_grad


def test_steps_with_the_term_lower_the_zero_shot_cross_entropy():
    cfg, model, tokens = _tiny()
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=gen)
    labels = pdata.Labels(gender=np.arange(16) % 2, age=np.linspace(2, 80, 16), emotion=np.arange(16) % 7)
    inputs = ploss.prepare_step(images, labels, tokens, cfg, random.Random(0), gen, train=False)
    prompts = pl.ClassPrompts.build(tokens)
    optimizer = pmodel.make_optimizer(model, cfg)

    def zero_shot_term() -> float:
        with torch.no_grad():
            features = pl.class_features(model.encode_text(prompts.tokens), prompts.layout)
            return pl.prompt_loss(model.encode_image(inputs.images), features, model.logit_scale,
                                  inputs.class_labels).item()

    model.train()
    with torch.no_grad():
        contrastive = ploss.step_loss(model, inputs, cfg.loss).item()
        both = ploss.step_loss(model, inputs, cfg.loss, prompts, 2.0).item()
    assert both > contrastive  # the term adds to the contrastive loss, at its weight
    before = zero_shot_term()
    for _ in range(3):
        optimizer.zero_grad()
        ploss.step_loss(model, inputs, cfg.loss, prompts, cfg.prompt_loss_weight, cfg.age_neighbour_weight).backward()
        optimizer.step()
    assert zero_shot_term() < before


@pytest.mark.parametrize("field, value", [("prompt_loss_weight", -1.0), ("age_neighbour_weight", 0.7)])
def test_an_impossible_prompt_term_setting_names_its_field(field, value):
    with pytest.raises(ValueError, match=rf"pretrain config: {field}: {value}"):
        pconfig.PretrainConfig(**{field: value}).validate()
