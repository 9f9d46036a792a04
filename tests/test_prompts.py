"""Prompt methods on both tiny towers: what trains, how many parameters, caching, and that they learn."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from faceprompt.prompts import added_parameters, build_model, list_methods, resolve_method

METHODS = [*list_methods(), "softcpt+vpt", "coop+vpt-ts"]
TRAINABLE = [m for m in METHODS if m != "zero-shot"]


def images(backbone, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, backbone.image_size, backbone.image_size)


def backbone_grads(backbone) -> list[str]:
    return [n for n, p in backbone.named_parameters() if p.grad is not None]


def masked_loss(output, labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy per task over the labelled samples (label -1 = missing), plus auxiliary losses."""
    loss = sum(F.cross_entropy(output.logits[t], y, ignore_index=-1) for t, y in labels.items())
    return loss + sum(output.aux.values(), torch.zeros(()))


def random_labels(model, n: int, missing: float = 0.25, skew: float = 0.0) -> dict[str, torch.Tensor]:
    """Random labels per task; ``skew``: share of samples moved to class 0; ``missing``: share unlabelled."""
    labels = {}
    for task in model.tasks:
        y = torch.randint(task.num_classes, (n,))
        y[torch.rand(n) < skew] = 0
        y[torch.rand(n) < missing] = -1
        y[0] = 0  # at least one labelled sample per task
        labels[task.name] = y
    return labels


def perturb(model) -> None:
    """Move every trained tensor away from its initial value, so that loading it back has to matter."""
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.05)


def expected_added(model) -> int:
    """The added-parameter formula of each component, from its config and the backbone's widths."""
    bb, tasks = model.backbone, model.tasks
    text, visual = model.text.cfg, model.visual.cfg
    wt, e, w = bb.text_width, bb.embed_dim, bb.width
    n = 0
    if model.text.kind == "coop":
        m = text.context_tokens
        n += sum(t.num_classes for t in tasks) * m * wt if text.class_specific else len(tasks) * m * wt
    elif model.text.kind == "softcpt":
        m, l_ = text.context_tokens, text.task_context_tokens
        n += l_ * wt * (len(tasks) if text.task_context == "per_task" else 1)
        bias = m * wt if text.generator_bias else 0
        if text.generator == "linear":
            n += e * m * wt + bias
        else:
            n += e * text.hidden + text.hidden + text.hidden * m * wt + bias
    if model.visual.kind == "vpt":
        per_set = visual.tokens * w * (bb.depth if visual.deep else 1)
        n += per_set * (len(tasks) if visual.task_specific else 1) + int(visual.train_logit_scale)
    elif model.visual.kind == "v2pt":
        p, h, z = visual.tokens, visual.hidden, visual.latent
        g = visual.instance_tokens if visual.combine == "split" else p  # generated tokens
        n += (p - g if visual.combine == "split" else p) * w * (bb.depth if visual.deep else 1)  # learned
        n += 2 * w + (w * h + h) + (h * 2 * z + 2 * z)  # encoder: LayerNorm, Linear, Linear -> (mu, logvar)
        n += (z * h + h) + (h * g * w + g * w)  # decoder
    return n


# --- shapes and composition --------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_logits_per_task(backbone, method):
    model = build_model(method, backbone).eval()
    out = model(images(backbone, 3))
    assert set(out.logits) == {"gender", "age", "emotion"}
    for task in model.tasks:
        assert out.logits[task.name].shape == (3, task.num_classes)
        assert torch.isfinite(out.logits[task.name]).all()


def test_combined_methods_take_text_from_the_left_and_visual_from_the_right():
    preset = resolve_method("coop+vpt-ts")
    assert (preset.text, preset.visual, preset.visual_defaults) == ("coop", "vpt", {"task_specific": True})
    with pytest.raises(ValueError, match="unknown method"):
        resolve_method("coop+nothing")
    with pytest.raises(ValueError, match="unknown method"):
        resolve_method("prefix-tuning")


@pytest.mark.parametrize("method", ["zero-shot", "coop", "softcpt"])
def test_text_only_methods_can_use_cached_image_features(backbone, method):
    model = build_model(method, backbone).eval()
    x = images(backbone)
    assert model.caches_image_features
    from_features = model.forward_features(backbone.encode_image(x)).logits
    for task, logits in model(x).logits.items():
        assert torch.equal(from_features[task], logits)


@pytest.mark.parametrize("method", ["vpt", "v2pt", "softcpt+vpt"])
def test_visual_methods_refuse_cached_features(backbone, method):
    model = build_model(method, backbone)
    assert not model.caches_image_features
    with pytest.raises(RuntimeError, match="needs images"):
        model.forward_features(torch.randn(2, backbone.embed_dim))


def test_coop_initialised_from_a_phrase_equals_that_template(backbone):
    # "X X X X man." with X = the embeddings of "a photo of a" is exactly "a photo of a man.".
    coop = build_model("coop", backbone, config={"init": "a photo of a", "context_tokens": 4}).eval()
    zero = build_model("zero-shot", backbone, config={"templates": ["a photo of a {}."], "ensemble": False}).eval()
    coop_features, zero_features = coop.class_features(), zero.class_features()
    for task in zero_features:
        torch.testing.assert_close(coop_features[task], zero_features[task], rtol=0, atol=1e-6)


def test_softcpt_initialised_from_a_phrase_starts_near_that_template(backbone):
    # The generator's bias holds the phrase; its small weights are all that moves the start off the template.
    zero = build_model("zero-shot", backbone, config={"templates": ["a photo of a {}."], "ensemble": False}).eval()
    zero_features = zero.class_features()
    softcpt = build_model("softcpt", backbone, config={"init": "a photo of a", "context_tokens": 4}).eval()
    for task, features in softcpt.class_features().items():
        assert F.cosine_similarity(features, zero_features[task]).min() > 0.99
    with torch.no_grad():
        softcpt.text.generator.weight.zero_()
    softcpt.clear_cache()
    for task, features in softcpt.class_features().items():
        torch.testing.assert_close(features, zero_features[task], rtol=0, atol=1e-6)
    # Longer contexts put the padding first: the phrase still ends next to the class words.
    longer = build_model("softcpt", backbone, config={"init": "a photo of a", "context_tokens": 6})
    contexts = longer.text.generator.bias.view(6, -1)
    torch.testing.assert_close(contexts[2:], softcpt.text.generator.bias.view(4, -1))
    assert contexts[:2].abs().max() < 0.2


# --- what trains ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_only_the_method_parameters_get_gradients(backbone, method):
    model = build_model(method, backbone).train()
    trainable = model.named_trainable_parameters()
    assert all(name.startswith(("text.", "visual.")) for name in trainable)
    assert not any(p.requires_grad for p in backbone.parameters())
    if method == "zero-shot":
        assert trainable == {}
        return
    x = images(backbone, 4)
    masked_loss(model(x), random_labels(model, 4)).backward()
    assert backbone_grads(backbone) == []
    missing = [n for n, p in trainable.items() if p.grad is None]
    assert missing == []
    assert any(p.grad.abs().sum() > 0 for p in trainable.values())


@pytest.mark.parametrize("method", TRAINABLE)
def test_one_optimiser_step_changes_prompts_and_leaves_the_backbone(backbone, method):
    model = build_model(method, backbone).train()
    before_backbone = {k: v.clone() for k, v in backbone.state_dict().items()}
    before_prompts = {n: p.detach().clone() for n, p in model.named_trainable_parameters().items()}
    optimiser = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2, weight_decay=0.0)
    x = images(backbone, 4)
    masked_loss(model(x), random_labels(model, 4)).backward()
    optimiser.step()

    after_backbone = backbone.state_dict()
    assert before_backbone.keys() == after_backbone.keys()
    changed_backbone = [k for k, v in before_backbone.items() if not torch.equal(v, after_backbone[k])]
    assert changed_backbone == []
    params = model.named_trainable_parameters()
    changed = [n for n, p in params.items() if not torch.equal(p.detach(), before_prompts[n])]
    # With weight decay 0 a parameter moves exactly when it has a non-zero gradient.
    assert changed == [n for n, p in params.items() if p.grad.abs().sum() > 0]
    assert changed
    main = {"text.context", "text.task_context", "visual.prompts"}
    assert any(n.startswith(tuple(main)) for n in changed)


def small_config(method: str) -> dict:
    preset, config = resolve_method(method), {}
    if preset.text in ("coop", "softcpt"):
        config["context_tokens"] = 4
    if preset.text == "softcpt":
        config["task_context_tokens"] = 4
    if preset.visual in ("vpt", "v2pt"):
        config["tokens"] = 4
    return config


@pytest.mark.parametrize("method", TRAINABLE)
def test_training_lowers_the_loss(backbone, method):
    # Random towers give nearly parallel template text features (cos > 0.99 on tiny-vit), which caps what
    # visual prompts alone can do: the labels lean towards class 0 so that the problem stays learnable.
    torch.manual_seed(1)
    model = build_model(method, backbone, config=small_config(method))
    x = images(backbone, 16)
    labels = random_labels(model, 16, skew=0.5)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(masked_loss(model(x), labels))

    initial = eval_loss()
    model.train()
    optimiser = torch.optim.AdamW(model.trainable_parameters(), lr=5e-2, weight_decay=0.0)
    for _ in range(30):
        optimiser.zero_grad()
        masked_loss(model(x), labels).backward()
        optimiser.step()
    final = eval_loss()
    # The evaluation loss is deterministic: 0.25 nats (summed over three tasks) is far above noise.
    assert final < initial - 0.25, (initial, final)


# --- how many parameters ---------------------------------------------------------------------------

VARIANTS = [(m, None) for m in METHODS] + [
    ("coop", {"class_specific": True, "context_tokens": 4}),
    ("coop", {"init": "a photo of a", "context_tokens": 6}),
    ("softcpt", {"init": "a photo of a", "context_tokens": 6}),
    ("softcpt", {"generator": "mlp", "hidden": 32, "task_context_tokens": 0}),
    ("softcpt", {"task_context": "per_task", "generator_bias": False, "task_context_tokens": 3}),
    ("softcpt", {"generator": "mlp", "hidden": 16, "generator_bias": False, "task_context": "per_task"}),
    ("vpt", {"deep": True, "tokens": 3}),
    ("vpt", {"prompt_init": "normal", "train_logit_scale": True}),
    ("vpt-ts", {"deep": True, "tokens": 5}),
    ("v2pt", {"deep": False, "latent": 4, "hidden": 8}),
    ("v2pt", {"combine": "split", "tokens": 6, "instance_tokens": 2, "hidden": 8}),
    ("softcpt+vpt", {"deep": True, "context_tokens": 8}),
]


@pytest.mark.parametrize("method, config", VARIANTS, ids=[f"{m}-{c}" if c else m for m, c in VARIANTS])
def test_added_parameters_match_the_formula(backbone, method, config):
    model = build_model(method, backbone, config=config)
    assert added_parameters(model) == expected_added(model)
    if method == "zero-shot":
        assert added_parameters(model) == 0


def test_formula_values_on_one_tower(tiny_backbones):
    # Widths 64 everywhere, depth 2, tasks with 2 + 9 + 7 classes.
    bb = tiny_backbones["tiny-pe"]
    count = lambda method, **cfg: added_parameters(build_model(method, bb, config=cfg or None))  # noqa: E731
    assert count("coop", context_tokens=4) == 3 * 4 * 64
    assert count("coop", context_tokens=4, class_specific=True) == 18 * 4 * 64
    assert count("softcpt", context_tokens=4, task_context_tokens=2) == 2 * 64 + 64 * 4 * 64 + 4 * 64
    assert count("vpt", tokens=5) == 5 * 64
    assert count("vpt", tokens=5, deep=True) == 5 * 64 * 2
    assert count("vpt-ts", tokens=5, deep=True) == 3 * 5 * 64 * 2


def test_subset_of_tasks_sizes_task_specific_parts(tiny_backbones):
    bb = tiny_backbones["tiny-vit"]
    model = build_model("coop+vpt-ts", bb, tasks=("gender",), config={"context_tokens": 4, "tokens": 2})
    assert added_parameters(model) == 4 * 64 + 2 * 64
    assert set(model(images(bb)).logits) == {"gender"}


# --- VPT-TS and V2PT specifics ---------------------------------------------------------------------

@pytest.mark.parametrize("deep", [False, True])
def test_vpt_ts_batched_equals_looped(backbone, deep):
    batched = build_model("vpt-ts", backbone, config={"deep": deep, "tokens": 3}).eval()
    looped = build_model("vpt-ts", backbone, config={"deep": deep, "tokens": 3, "batched": False}).eval()
    looped.load_state_dict(batched.state_dict())
    x = images(backbone, 3)
    a, b = batched(x).logits, looped(x).logits
    for task in a:
        torch.testing.assert_close(a[task], b[task], rtol=0, atol=1e-5)
    # Task-specific sets really differ from each other: the tasks do not share one pass.
    features = batched.visual(x)[0]
    assert not torch.allclose(F.normalize(features["gender"], dim=-1), F.normalize(features["age"], dim=-1))


def test_v2pt_kl_in_training_only_and_deterministic_evaluation(backbone):
    model = build_model("v2pt", backbone).train()
    x = images(backbone, 3)
    out = model(x)
    assert "kl" in out.aux and float(out.aux["kl"].detach()) > 0
    model.eval()
    first, second = model(x), model(x)
    assert "kl" not in first.aux
    for task in first.logits:
        assert torch.equal(first.logits[task], second.logits[task])


def test_v2pt_generated_prompts_depend_on_the_image(tiny_backbones):
    bb = tiny_backbones["tiny-pe"]
    model = build_model("v2pt", bb, config={"deep": False})
    perturb(model)  # the decoder starts at zero: make it generate something
    model.eval()
    x = images(bb, 2)
    mu, _ = model.visual.posterior(x)
    generated = model.visual.decoder(mu)
    assert not torch.allclose(generated[0], generated[1])


# --- cached class text features ----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["zero-shot", "coop", "softcpt+vpt"])
def test_class_text_features_are_cached_in_eval_and_recomputed_in_training(backbone, method, monkeypatch):
    model = build_model(method, backbone)
    calls = []
    original = backbone.encode_text

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(backbone, "encode_text", counting)
    x = images(backbone)
    model.eval()
    first = model(x).logits
    per_pass = len(calls)
    assert per_pass > 0
    second = model(x).logits
    assert len(calls) == per_pass  # the second eval forward never runs the text encoder
    for task in first:
        assert torch.equal(first[task], second[task])

    model.train()
    model(x)
    assert len(calls) == 2 * per_pass  # .train() drops the cache
    model(x)
    text_trains = any(p.requires_grad for p in model.text.parameters())
    # A trained text prompt is recomputed at every training forward; frozen templates are reused.
    assert len(calls) == (3 if text_trains else 2) * per_pass
    seen = len(calls)
    model.eval()
    model(x)
    model(x)
    assert len(calls) == seen + per_pass  # recomputed once after training, then cached again


def test_cache_follows_trained_context(tiny_backbones):
    bb = tiny_backbones["tiny-pe"]
    model = build_model("coop", bb, config={"context_tokens": 4}).eval()
    x = images(bb)
    before = model(x).logits["age"]
    model.train()
    perturb(model)
    model.eval()
    assert not torch.allclose(model(x).logits["age"], before)


# --- config validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("method, config, field", [
    ("vpt", {"tokens": 0}, "tokens"),
    ("vpt", {"dropout": 1.5}, "dropout"),
    ("vpt-ts", {"prompt_depth": 3}, "prompt_depth"),
    ("coop", {"context_tokens": 0}, "context_tokens"),
    ("coop", {"visual": {"tokens": 2}}, "tokens"),
    ("softcpt", {"generator": "rnn"}, "generator"),
    ("softcpt", {"context_tokens": 0}, "context_tokens"),
    ("v2pt", {"kl_weight": -1.0}, "kl_weight"),
    ("v2pt", {"latent": 0}, "latent"),
    ("zero-shot", {"templates": ["no slot"]}, "templates"),
    ("vpt", {"visual": {"bogus": True}}, "bogus"),
])
def test_config_errors_name_the_field(tiny_backbones, method, config, field):
    with pytest.raises(ValueError, match=field):
        build_model(method, tiny_backbones["tiny-vit"], config=config)


def test_flat_and_nested_configs_agree(tiny_backbones):
    bb = tiny_backbones["tiny-vit"]
    flat = build_model("softcpt+vpt", bb, config={"tokens": 3, "context_tokens": 5})
    nested = build_model("softcpt+vpt", bb, config={"visual": {"tokens": 3}, "text": {"context_tokens": 5}})
    assert flat.method_config() == nested.method_config()
    assert flat.visual.cfg.tokens == 3 and flat.text.cfg.context_tokens == 5


# --- a visual prompt exposes its own prompts; attention maps need no per-method code ------------------

@pytest.mark.parametrize("method", ["vpt", "vpt-ts", "v2pt", "coop+vpt-ts"])
@pytest.mark.parametrize("deep", [False, True])
def test_prompts_for_reproduce_each_tasks_image_features(backbone, method, deep):
    model = build_model(method, backbone, config={"deep": deep, "tokens": 2})
    perturb(model)
    model.eval()
    x = images(backbone, 3)
    with torch.no_grad():
        features = model.visual(x)[0]
        for task in model.task_names:
            prompts, is_deep = model.visual.prompts_for(x, task)
            assert is_deep == deep
            expected = features[task] if isinstance(features, dict) else features
            torch.testing.assert_close(backbone.encode_image(x, prompts, deep=deep), expected, rtol=0, atol=1e-5)


def test_methods_without_visual_prompts_give_none_and_refuse_unknown_tasks(tiny_backbones):
    model = build_model("coop", tiny_backbones["tiny-vit"])
    assert model.visual.prompts_for(images(tiny_backbones["tiny-vit"]), "age") == (None, False)
    with pytest.raises(ValueError, match="unknown task 'race'"):
        build_model("vpt", tiny_backbones["tiny-vit"]).visual.prompts_for(images(tiny_backbones["tiny-vit"]), "race")


@pytest.mark.parametrize("method", ["zero-shot", "vpt", "vpt-ts", "v2pt"])
def test_method_attention_splits_into_prefix_prompts_and_patch_grid(backbone, method):
    from faceprompt.explain import method_attention

    model = build_model(method, backbone, config={"tokens": 2} if method != "zero-shot" else None)
    att = method_attention(model, images(backbone, 2), "emotion")
    assert att.patches.shape == (2, *backbone.patch_grid)
    assert att.prompts.shape == (2, 0 if method == "zero-shot" else 2)
    assert att.prefix.shape == (2, backbone.num_prefix_tokens)
    total = att.patches.flatten(1).sum(-1) + att.prompts.sum(-1) + att.prefix.sum(-1)
    torch.testing.assert_close(total, torch.ones(2))


def test_vpt_ts_attention_differs_per_task(tiny_backbones):
    from faceprompt.explain import method_attention

    bb = tiny_backbones["tiny-pe"]
    model = build_model("vpt-ts", bb, config={"tokens": 2})
    perturb(model)
    x = images(bb)
    assert not torch.allclose(method_attention(model, x, "gender").prompts, method_attention(model, x, "age").prompts)


# --- registries refuse a second entry under a taken name -------------------------------------------

def test_registering_a_taken_method_name_is_refused():
    from faceprompt.prompts import MethodPreset, register_method
    from faceprompt.registry import DuplicateNameError

    before = list_methods()
    with pytest.raises(DuplicateNameError, match="method 'vpt' is already registered"):
        register_method(MethodPreset("vpt", "coop", "none"))
    assert list_methods() == before and resolve_method("vpt").text == "templates"
    with pytest.raises(ValueError, match="'\\+' joins"):
        register_method(MethodPreset("a+b", "coop", "none"))


@pytest.mark.parametrize("which, kind", [("text", "coop"), ("visual", "vpt")])
def test_registering_a_taken_prompt_kind_is_refused(which, kind):
    from faceprompt.prompts import base
    from faceprompt.registry import DuplicateNameError

    register = base.register_text_prompt if which == "text" else base.register_visual_prompt
    registry = base.TEXT_PROMPTS if which == "text" else base.VISUAL_PROMPTS
    original = registry[kind]

    class Impostor(base.TextPrompt if which == "text" else base.VisualPrompt):
        pass

    with pytest.raises(DuplicateNameError, match=f"{which} prompt kind '{kind}' is already registered"):
        register(kind)(Impostor)
    assert registry[kind] is original and original.kind == kind


def test_method_lists_come_from_the_registry():
    from faceprompt.prompts import METHODS, list_text_prompts, list_visual_prompts

    assert list_methods() == list(METHODS)
    assert {p.text for p in METHODS.values()} <= set(list_text_prompts())
    assert {p.visual for p in METHODS.values()} <= set(list_visual_prompts())


# --- faceprompt params: one override syntax ------------------------------------------------------------

def params_cli(capsys, *argv: str):
    import json

    from faceprompt.cli import main

    code = main(["params", "--backbone", "tiny-vit", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "--json" in argv else out), err


def test_params_set_values_are_yaml_and_reach_the_methods(capsys, tiny_backbones):
    code, rows, _ = params_cli(capsys, "--method", "vpt", "coop", "--set", "tokens=3", "deep=yes",
                               "init=a photo of a", "--json")
    assert code == 0
    bb = tiny_backbones["tiny-vit"]
    expected = {"vpt": build_model("vpt", bb, config={"tokens": 3, "deep": True}),
                "coop": build_model("coop", bb, config={"init": "a photo of a"})}
    assert {r["method"]: r["added"] for r in rows} == {m: added_parameters(x) for m, x in expected.items()}
    # The former --option spelling still works and means the same.
    assert params_cli(capsys, "--method", "vpt", "--option", "tokens=3", "--option", "deep=true", "--json")[1][0] \
        == rows[0]


@pytest.mark.parametrize("item, names", [
    ("tokens=abc", ["--set", "tokens", "integer", "'abc'"]),
    ("deep=maybe", ["--set", "deep", "true or false"]),
    ("tokenz=3", ["--set", "tokenz"]),
    ("tokens", ["--set", "KEY=VALUE"]),
])
def test_params_bad_set_is_one_clear_line(capsys, item, names):
    code, out, err = params_cli(capsys, "--method", "vpt", "--set", item)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err and out == ""
    for name in names:
        assert name in err, (name, err)
