"""The masked multitask loss: missing labels, agreement with hand-computed cross-entropy, the EMD term."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from faceprompt.training.losses import (anchor_divergence, inverse_frequency_weights, masked_cross_entropy,
                                        multitask_loss, squared_emd)


def test_missing_label_contributes_zero_loss_and_zero_gradient():
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([0, -1, 2, 1])
    loss = masked_cross_entropy(logits, targets)
    loss.backward()
    assert torch.all(logits.grad[1] == 0)
    assert torch.any(logits.grad[0] != 0)
    labelled = masked_cross_entropy(logits.detach()[[0, 2, 3]], targets[[0, 2, 3]])
    assert torch.allclose(loss.detach(), labelled)
    # Changing the unlabelled row's logits changes nothing.
    moved = logits.detach().clone()
    moved[1] += 100.0
    assert torch.allclose(masked_cross_entropy(moved, targets), loss.detach())


def test_masked_cross_entropy_equals_manual_formula():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -2.0, 0.0]])
    targets = torch.tensor([0, -1, 2])
    manual = -(math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)))
               + math.log(math.exp(0.0) / (math.exp(1.0) + math.exp(-2.0) + math.exp(0.0)))) / 2
    assert masked_cross_entropy(logits, targets).item() == pytest.approx(manual, rel=1e-6)


def test_class_weights_follow_the_weighted_mean_formula():
    logits = torch.randn(5, 2)
    targets = torch.tensor([0, 0, 0, 1, -1])
    weights = inverse_frequency_weights(targets, 2)
    assert torch.allclose(weights, torch.tensor([0.5, 1.5]))  # 1/3 : 1, mean 1
    nll = -F.log_softmax(logits, -1)[torch.arange(4), targets[:4]]
    w = weights[targets[:4]]
    assert masked_cross_entropy(logits, targets, weights).item() == pytest.approx(((w * nll).sum() / w.sum()).item(), rel=1e-6)


def test_class_weight_power_tempers_the_balance():
    targets = torch.tensor([0] * 16 + [1] * 4 + [2] * 1)
    half = inverse_frequency_weights(targets, 3, power=0.5)
    expected = torch.tensor([16.0, 4.0, 1.0]) ** -0.5
    assert torch.allclose(half, expected / expected.mean())
    full = inverse_frequency_weights(targets, 3)
    assert half[2] / half[0] == pytest.approx(4.0) and full[2] / full[0] == pytest.approx(16.0)


def test_no_labelled_sample_gives_zero_with_a_graph():
    logits = torch.randn(3, 9, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((3,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def _one_hot_logits(indices, bins=9):
    return F.one_hot(torch.tensor(indices), bins).float() * 60.0  # softmax is one-hot to float precision


def test_emd_is_zero_at_the_right_bin_and_equals_the_bin_distance_for_one_hot_predictions():
    targets = torch.tensor([4])
    assert squared_emd(_one_hot_logits([4]), targets).item() == pytest.approx(0.0, abs=1e-6)
    for predicted in range(9):
        # CDFs differ by exactly 1 on |k - t| bins: EMD^2 = |k - t|.
        value = squared_emd(_one_hot_logits([predicted]), targets).item()
        assert value == pytest.approx(abs(predicted - 4), abs=1e-5)


def test_emd_orders_mistakes_by_distance_unlike_cross_entropy():
    targets = torch.tensor([2])
    near, far = _one_hot_logits([3]) / 20, _one_hot_logits([8]) / 20  # same confidence in a wrong bin
    assert F.cross_entropy(near, targets).item() == pytest.approx(F.cross_entropy(far, targets).item())
    assert squared_emd(far, targets) > squared_emd(near, targets)


def test_emd_ignores_missing_labels():
    logits = torch.randn(3, 9)
    targets = torch.tensor([1, -1, 7])
    assert torch.allclose(squared_emd(logits, targets), squared_emd(logits[[0, 2]], targets[[0, 2]]))


def test_multitask_loss_weights_tasks_adds_the_ordinal_term_and_aux():
    torch.manual_seed(0)
    logits = {"gender": torch.randn(4, 2), "age": torch.randn(4, 9), "emotion": torch.randn(4, 7)}
    targets = {"gender": torch.tensor([0, 1, -1, 1]), "age": torch.tensor([3, -1, 8, 0]),
               "emotion": torch.tensor([-1, -1, -1, -1])}
    kl = torch.tensor(0.25)
    parts = multitask_loss(logits, targets, task_weights={"gender": 2.0}, age_ordinal_weight=0.5, aux={"kl": kl})
    ce = {t: masked_cross_entropy(logits[t], targets[t]) for t in logits}
    expected = 2.0 * ce["gender"] + ce["age"] + 0.5 * squared_emd(logits["age"], targets["age"]) + ce["emotion"] + kl
    assert torch.allclose(parts.total, expected)
    assert parts.terms["ce_emotion"].item() == 0.0
    assert set(parts.terms) == {"ce_gender", "ce_age", "emd_age", "ce_emotion", "aux_kl"}


def test_anchor_divergence_is_zero_at_the_anchor_and_the_mean_kl_over_tasks_otherwise():
    torch.manual_seed(0)
    anchor = {"gender": torch.randn(5, 2), "emotion": torch.randn(5, 7)}
    assert anchor_divergence(anchor, anchor).item() == pytest.approx(0.0, abs=1e-6)
    tuned = {"gender": torch.randn(5, 2), "emotion": anchor["emotion"] + 3.0 * torch.randn(5, 7)}
    by_hand = []
    for task in tuned:
        p, log_p, log_q = anchor[task].softmax(-1), anchor[task].log_softmax(-1), tuned[task].log_softmax(-1)
        by_hand.append((p * (log_p - log_q)).sum(-1).mean())  # per image, then over images
    assert anchor_divergence(tuned, anchor).item() == pytest.approx(float(sum(by_hand) / 2), rel=1e-5)
    # A shift of every logit by the same amount leaves the softmax, and so the divergence, unchanged.
    shifted = {task: value + 5.0 for task, value in anchor.items()}
    assert anchor_divergence(shifted, anchor).item() == pytest.approx(0.0, abs=1e-5)
