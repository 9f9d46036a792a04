"""V2PT in the paper's form (learned domain prompts + VAE instance prompts, P tokens in all) and the additive form."""
from __future__ import annotations

import pytest
import torch

from faceprompt.prompts import added_parameters, build_model, method_configs
from test_prompts import images, perturb  # the generated prompts start at zero: perturb moves them

SPLIT = {"combine": "split", "tokens": 6, "instance_tokens": 2, "latent": 4, "hidden": 16}


@pytest.fixture(params=["tiny-vit", "tiny-pe"])
def backbone(request, tiny_backbones):
    return tiny_backbones[request.param]


@pytest.mark.parametrize("deep", [True, False])
def test_split_keeps_the_configured_token_count(backbone, deep):
    model = build_model("v2pt", backbone, config={**SPLIT, "deep": deep}).eval()
    x = images(backbone, 3)
    prompts, is_deep = model.visual.prompts_for(x, "gender")
    assert is_deep == deep
    assert prompts.shape[-2] == 6 and prompts.shape[0] == 3
    assert model.visual.prompts.shape[-2] == 4  # P - P_ins learned domain prompts
    tokens = backbone.image_tokens(x, prompts, deep)
    assert tokens.shape[1] == backbone.num_prefix_tokens + 6 + backbone.num_patches
    # The additive form keeps P learned tokens and adds the generated ones onto them: also P in all.
    additive = build_model("v2pt", backbone, config={"tokens": 6, "deep": deep}).eval()
    assert additive.visual.prompts_for(x, "gender")[0].shape[-2] == 6


def test_split_prompts_are_domain_then_instance(tiny_backbones):
    bb = tiny_backbones["tiny-pe"]
    model = build_model("v2pt", bb, config=SPLIT)
    perturb(model)
    model.eval()
    prompts, _ = model.visual.prompts_for(images(bb, 2), "age")  # [B, depth, P, W]
    domain, instance = prompts[:, :, :4], prompts[:, :, 4:]
    assert torch.equal(domain[0], domain[1])  # learned: the same for every image
    assert torch.equal(domain[0], model.visual.prompts.detach())
    assert not torch.allclose(instance[0], instance[1])  # generated: per image
    assert torch.equal(instance[:, 0], instance[:, 1])  # one generated set, inserted at every layer


@pytest.mark.parametrize("config", [SPLIT, {"latent": 4, "hidden": 16}], ids=["split", "add"])
def test_evaluation_is_the_posterior_mean_and_deterministic(backbone, config):
    model = build_model("v2pt", backbone, config=config)
    perturb(model)
    model.eval()
    x = images(backbone, 3)
    first, second = model(x), model(x)
    assert not first.aux
    for task in first.logits:
        assert torch.equal(first.logits[task], second.logits[task])
    with torch.no_grad():
        mu, _ = model.visual.posterior(x)
        expected = backbone.encode_image(x, model.visual.image_prompts(mu), deep=True)
        torch.testing.assert_close(model.visual(x)[0], expected)


@pytest.mark.parametrize("config", [SPLIT, {"latent": 4, "hidden": 16}], ids=["split", "add"])
def test_kl_is_positive_in_training_and_weighted(backbone, config):
    model = build_model("v2pt", backbone, config={**config, "kl_weight": 0.5})
    perturb(model)
    model.train()
    x = images(backbone, 3)
    kl = model(x).aux["kl"]
    assert float(kl.detach()) > 0
    mu, logvar = model.visual.posterior(x)
    analytic = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
    torch.testing.assert_close(kl, 0.5 * analytic)
    # Sampling: two training passes differ, unlike evaluation.
    a, b = model(x).logits["gender"], model(x).logits["gender"]
    assert not torch.equal(a, b)


def test_split_parameter_count(tiny_backbones):
    bb = tiny_backbones["tiny-vit"]  # width 64, depth 2
    model = build_model("v2pt", bb, config=SPLIT)
    w, d, p, g, h, z = 64, 2, 6, 2, 16, 4
    encoder = 2 * w + (w * h + h) + (h * 2 * z + 2 * z)
    decoder = (z * h + h) + (h * g * w + g * w)
    assert added_parameters(model) == (p - g) * w * d + encoder + decoder


@pytest.mark.parametrize("config", [{"combine": "concat"}, {"combine": "split", "instance_tokens": 10},
                                    {"combine": "split", "instance_tokens": 0}])
def test_bad_split_options_are_refused(config):
    with pytest.raises(ValueError, match="combine|instance_tokens"):
        method_configs("v2pt", config)
