"""The frozen backbone and its prompt hooks, on both tiny towers (SigLIP2-shaped and PE-Core-shaped)."""
from __future__ import annotations

import copy
import json
import time

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from faceprompt.backbones import (
    BACKBONES, WeightsNotFoundError, count_parameters_meta, hub_weights_cached, load_backbone,
)


def images(backbone, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, backbone.image_size, backbone.image_size)


def unit(x: torch.Tensor) -> torch.Tensor:
    # The random towers' raw features can be tiny (~1e-5 on the Eva tower): compare directions.
    return F.normalize(x, dim=-1)


def assert_differ(a: torch.Tensor, b: torch.Tensor) -> None:
    assert (unit(a) - unit(b)).abs().max() > 1e-4


def backbone_grads(backbone) -> list[str]:
    return [n for n, p in backbone.named_parameters() if p.grad is not None]


# --- prompts that add nothing reproduce the frozen tower ---------------------------------------------

@pytest.mark.parametrize("deep", [False, True])
def test_no_prompts_and_zero_length_prompts_reproduce_encode_image(backbone, deep):
    x = images(backbone)
    reference = backbone.model.encode_image(x)
    empty = torch.zeros(backbone.depth, 0, backbone.width) if deep else torch.zeros(0, backbone.width)
    assert torch.allclose(unit(backbone.encode_image(x)), unit(reference), atol=1e-5)
    assert torch.equal(backbone.encode_image(x, empty, deep=deep), backbone.encode_image(x))


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-pe", "faceclip-tiny"])
def test_zero_shot_takes_the_prompt_path_and_equals_open_clips_encode_image(name, tiny_backbones, monkeypatch):
    if name not in BACKBONES:
        pytest.skip(f"{name} is not embedded in this build")
    backbone = tiny_backbones.get(name) or load_backbone(name)
    x = images(backbone, 3)
    with torch.no_grad():
        reference = backbone.model.encode_image(x)
        calls = []
        fused = F.scaled_dot_product_attention
        monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or fused(*a, **k))
        ours = backbone.encode_image(x)
        assert len(calls) == backbone.depth + 1  # every block and the pooling head: the fused kernel
        tokens = backbone.image_tokens(x)
    assert (ours - reference).abs().max() <= 1e-5 * reference.abs().max()
    assert torch.allclose(unit(ours), unit(reference), atol=1e-5)
    assert all(backbone.attention_kernels().values()) and len(backbone.attention_kernels()) == backbone.depth + 1
    assert tokens.is_contiguous()


def test_prompt_path_never_falls_back_to_spelled_out_attention(monkeypatch):
    import timm.layers.config

    monkeypatch.setattr(timm.layers.config, "_USE_FUSED_ATTN", 0)
    backbone = load_backbone("tiny-vit")
    assert all(backbone.attention_kernels().values())


def test_encode_text_without_context_reproduces_model(backbone):
    tokens = backbone.tokenize(["a photo of a man.", "a face of a sad person."])
    # Causal towers run on the tokens up to the last end token: equal up to summation order.
    assert torch.allclose(backbone.encode_text(tokens), backbone.model.encode_text(tokens), atol=1e-6)


def test_text_is_trimmed_only_where_later_positions_cannot_matter(backbone):
    tokens = backbone.tokenize(["a photo of a man.", "a face of a very sad person."])
    extent = backbone.text_extent(tokens)
    causal = backbone.text_tower.attn_mask is not None
    if causal:  # PE-Core-shaped: causal mask, pooled at the end token
        assert extent == int(tokens.argmax(-1).max()) + 1 < tokens.shape[1]
        assert tokens[:, extent:].eq(0).all()
    else:  # SigLIP2-shaped: every position attends to every other, so nothing may be dropped
        assert extent is None
    full = backbone.text_tower.attn_mask
    backbone.encode_text(tokens)
    assert backbone.text_tower.attn_mask is full  # the tower's own mask is back


def test_trimmed_text_gives_the_context_the_same_gradient(tiny_backbones):
    backbone = tiny_backbones["tiny-pe"]  # the causal, trimmed text tower
    tokens = backbone.tokenize_with_context(["a photo of a man.", "a photo of a woman."], 4)
    context = (torch.randn(4, backbone.text_width) * 0.02).requires_grad_()
    backbone.encode_text(tokens, context).square().sum().backward()
    trimmed = context.grad.clone()
    context.grad = None
    backbone._encode_text(tokens, context, normalize=False).square().sum().backward()  # full length
    assert (trimmed - context.grad).norm() < 1e-5 * context.grad.norm()


def test_context_equal_to_placeholder_embedding_reproduces_plain_tokens(backbone):
    # Writing the placeholder's own embedding into the slots must change nothing: the context lands
    # exactly on the placeholder positions and nowhere else.
    tokens = backbone.tokenize_with_context(["a photo of a man."], 4)
    placeholder = tokens[0, backbone.context_start]
    context = backbone.text_tower.token_embedding.weight[placeholder].expand(4, -1).clone()
    assert torch.allclose(backbone.encode_text(tokens, context), backbone.model.encode_text(tokens), atol=1e-6)
    assert_differ(backbone.encode_text(tokens, torch.randn(4, backbone.text_width)),
                  backbone.model.encode_text(tokens))


# --- gradients -------------------------------------------------------------------------------------

@pytest.mark.parametrize("deep", [False, True])
def test_gradients_reach_visual_prompts_and_never_the_backbone(backbone, deep):
    shape = (backbone.depth, 3, backbone.width) if deep else (3, backbone.width)
    prompts = torch.randn(shape, requires_grad=True)
    backbone.encode_image(images(backbone), prompts, deep=deep).sum().backward()
    assert prompts.grad is not None and prompts.grad.abs().sum() > 0
    if deep:  # every layer's prompts take part
        assert all(prompts.grad[i].abs().sum() > 0 for i in range(backbone.depth))
    assert backbone_grads(backbone) == []


def test_gradients_reach_text_context_and_never_the_backbone(backbone):
    context = (torch.randn(4, backbone.text_width) * 0.02).requires_grad_()
    tokens = backbone.tokenize_with_context(["a photo of a man.", "a photo of a woman."], 4)
    backbone.encode_text(tokens, context).sum().backward()
    assert context.grad is not None and context.grad.abs().sum() > 0
    assert backbone_grads(backbone) == []


# --- where and how visual prompts act ----------------------------------------------------------------

def test_deep_prompts_after_the_first_layer_change_the_output(backbone):
    x = images(backbone)
    deep = torch.randn(backbone.depth, 3, backbone.width)
    other = deep.clone()
    other[1:] = torch.randn_like(other[1:])
    assert_differ(backbone.encode_image(x, deep, deep=True), backbone.encode_image(x, other, deep=True))
    assert_differ(backbone.encode_image(x, deep, deep=True), backbone.encode_image(x, deep[0], deep=False))


@pytest.mark.parametrize("deep", [False, True])
def test_per_image_prompts_equal_one_image_at_a_time(backbone, deep):
    x = images(backbone, 3)
    shape = (3, backbone.depth, 2, backbone.width) if deep else (3, 2, backbone.width)
    prompts = torch.randn(shape)
    batched = backbone.encode_image(x, prompts, deep=deep)
    looped = torch.cat([backbone.encode_image(x[i:i + 1], prompts[i], deep=deep) for i in range(3)])
    torch.testing.assert_close(unit(batched), unit(looped), rtol=0, atol=1e-5)
    assert_differ(batched[0], batched[1])  # different prompts (and images) really differ


def test_pooling_prompts_differs_from_dropping_them(backbone):
    x, prompts = images(backbone), torch.randn(3, backbone.width)
    assert_differ(backbone.encode_image(x, prompts, pool_prompts=True),
                  backbone.encode_image(x, prompts, pool_prompts=False))


def test_image_tokens_hold_prefix_prompts_and_patches(backbone):
    tokens = backbone.image_tokens(images(backbone), torch.randn(3, backbone.width))
    assert tokens.shape == (2, backbone.num_prefix_tokens + 3 + backbone.num_patches, backbone.width)


def test_prefix_tokens_match_the_tower_family(tiny_backbones):
    assert tiny_backbones["tiny-vit"].num_prefix_tokens == 0  # SigLIP2: no cls token
    assert tiny_backbones["tiny-pe"].num_prefix_tokens == 1  # PE-Core: cls token


def test_eva_prefix_count_is_restored_after_prompted_forward(tiny_backbones, monkeypatch):
    backbone = tiny_backbones["tiny-pe"]
    assert backbone.is_eva
    attns = [blk.attn for blk in backbone._trunk.blocks]
    before = [a.num_prefix_tokens for a in attns]
    backbone.encode_image(images(backbone), torch.randn(backbone.depth, 3, backbone.width), deep=True)
    assert [a.num_prefix_tokens for a in attns] == before

    def broken(*args, **kwargs):
        raise RuntimeError("block failed")

    monkeypatch.setattr(backbone._trunk.blocks[-1], "forward", broken)
    with pytest.raises(RuntimeError, match="block failed"):
        backbone.encode_image(images(backbone), torch.randn(3, backbone.width))
    assert [a.num_prefix_tokens for a in attns] == before


@pytest.mark.parametrize("bad, deep", [((3, 3, 64), True), ((5, 3, 64), False), ((3, 7), False)])
def test_badly_shaped_prompts_are_refused(backbone, bad, deep):
    with pytest.raises(ValueError, match="prompt"):
        backbone.encode_image(images(backbone), torch.randn(*bad), deep=deep)


# --- text placeholders -----------------------------------------------------------------------------

def test_context_starts_after_the_start_token(backbone):
    # Both tiny towers use open_clip's SimpleTokenizer, which has a start token (SigLIP2's Gemma has none).
    assert backbone.context_start == 1


def test_tokenize_with_context_places_placeholders_and_keeps_eot(backbone):
    text, n_ctx = "a photo of a man.", 5
    plain = backbone.tokenize([text])[0]
    tokens = backbone.tokenize_with_context([text], n_ctx)[0]
    start = backbone.context_start
    length = int((plain != 0).sum())
    assert torch.equal(tokens[:start], plain[:start])
    assert len(set(tokens[start:start + n_ctx].tolist())) == 1
    assert torch.equal(tokens[start + n_ctx:start + n_ctx + length - start], plain[start:length])
    # The end token moved with the text: arg-max pooling still finds it, n_ctx positions later.
    assert int(tokens.argmax()) == int(plain.argmax()) + n_ctx
    assert int(tokens.max()) == int(plain.max())


def test_tokenize_with_context_fits_exactly_then_refuses(backbone):
    n_ctx = 4
    words = backbone.context_length - 2 - n_ctx  # start + end tokens
    text = " ".join(["face"] * words)
    tokens = backbone.tokenize_with_context([text], n_ctx)[0]
    assert int(tokens[-1]) == int(backbone.tokenize([text])[0].max())  # the end token is the last slot
    with pytest.raises(ValueError, match="does not fit"):
        backbone.tokenize_with_context([text], n_ctx + 1)
    with pytest.raises(ValueError, match="does not fit"):
        backbone.tokenize_with_context(["ok.", text + " face"], n_ctx)


# --- logits ----------------------------------------------------------------------------------------

def test_logits_are_scaled_cosine_plus_bias_where_the_tower_has_one(backbone):
    img, txt = torch.randn(2, backbone.embed_dim), torch.randn(5, backbone.embed_dim)
    expected = backbone.model.logit_scale.exp() * unit(img) @ unit(txt).T
    if backbone.family == "siglip2":
        assert backbone.logit_bias is not None
        expected = expected + backbone.model.logit_bias
    else:
        assert backbone.logit_bias is None
    torch.testing.assert_close(backbone.logits(img, txt), expected)


# --- weight sources --------------------------------------------------------------------------------

def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(ValueError, match="tiny-pe"):
        load_backbone("no-such-backbone")


def test_random_weights_are_reproducible():
    # weights_id "random" must name one set of weights, or a run saved on a test tower loads onto another.
    a, b = load_backbone("tiny-pe", weights="random"), load_backbone("tiny-pe", weights="random")
    assert a.weights_id == b.weights_id == "random"
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_offline_missing_hub_weights_fail_at_once_with_instructions():
    if hub_weights_cached(BACKBONES["pe-core-b16"]):
        pytest.skip("pe-core-b16 weights are in this machine's HF cache")
    t0 = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as info:
        load_backbone("pe-core-b16")
    assert time.perf_counter() - t0 < 1.0
    message = str(info.value)
    assert "pe-core-b16" in message
    assert "tried" in message and "HF_HUB_OFFLINE" in message
    assert "weights='/path/to/" in message and "local-dir:" in message and "weights='random'" in message


def test_missing_weights_file_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="tiny-pe"):
        load_backbone("tiny-pe", weights=str(tmp_path / "absent.safetensors"))


def test_weights_file_round_trip(tiny_backbones, tmp_path):
    original = tiny_backbones["tiny-pe"]
    trained = copy.deepcopy(original.model)  # other weights than the random init: loading must matter
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "tiny-pe.safetensors"
    save_file({k: v.contiguous().clone() for k, v in trained.state_dict().items()}, str(path))

    loaded = load_backbone("tiny-pe", weights=str(path))
    assert loaded.weights_id.startswith("file:")
    x = images(loaded)
    assert torch.equal(loaded.encode_image(x), trained.encode_image(x))
    assert_differ(loaded.encode_image(x), original.encode_image(x))
    assert all(not p.requires_grad for p in loaded.parameters())


def test_local_dir_round_trip(tiny_backbones, tmp_path):
    import open_clip

    original = tiny_backbones["tiny-vit"]
    folder = tmp_path / "tower"
    folder.mkdir()
    cfg = {"model_cfg": open_clip.get_model_config(original.spec.model_name),
           "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous().clone() for k, v in original.model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    loaded = load_backbone("tiny-vit", weights=f"local-dir:{folder}")
    assert loaded.weights_id.startswith("local-dir:")
    x = images(loaded)
    assert torch.equal(loaded.encode_image(x), original.encode_image(x))


@pytest.mark.parametrize("make", ["missing", "no-config"])
def test_local_dir_without_a_config_is_a_weights_error(tmp_path, make):
    folder = tmp_path / "weights"
    if make == "no-config":
        folder.mkdir()
        (folder / "open_clip_model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsNotFoundError, match="open_clip_config.json"):
        load_backbone("tiny-pe", weights=f"local-dir:{folder}")


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-pe", "pe-core-b16", "siglip2-b16"])
def test_meta_counts_match_count_parameters_meta(name):
    meta = load_backbone(name, weights="meta")
    assert meta.device.type == "meta"
    counts = count_parameters_meta(name)
    assert meta.num_parameters() == counts
    assert counts["total"] == counts["vision"] + counts["text"] + sum(
        p.numel() for n, p in meta.model.named_parameters() if n.startswith("logit_"))


def test_meta_counts_equal_a_real_tower(tiny_backbones):
    for name, backbone in tiny_backbones.items():
        assert backbone.num_parameters() == count_parameters_meta(name)


# --- a real-size tower ----------------------------------------------------------------------------

@pytest.mark.slow
def test_pe_core_b16_random_prompted_forward():
    backbone = load_backbone("pe-core-b16", weights="random")
    assert (backbone.width, backbone.depth, backbone.num_prefix_tokens, backbone.image_size) == (768, 12, 1, 224)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        reference = backbone.model.encode_image(x)
        assert reference.shape == (1, backbone.embed_dim)
        assert torch.equal(backbone.encode_image(x, torch.zeros(0, backbone.width)), reference)
        shallow = backbone.encode_image(x, torch.randn(10, backbone.width))
        deep = backbone.encode_image(x, torch.randn(backbone.depth, 10, backbone.width), deep=True)
    assert shallow.shape == deep.shape == (1, backbone.embed_dim)
    assert_differ(shallow, reference)
    assert_differ(deep, shallow)


# --- what the backbone offers instead of its tower internals ------------------------------------------

def test_patch_grid_and_size_describe_the_image(backbone):
    rows, cols = backbone.patch_grid
    assert rows * cols == backbone.num_patches
    assert (rows * backbone.patch_size[0], cols * backbone.patch_size[1]) == (backbone.image_size,) * 2


def test_patch_embeddings_are_one_token_per_patch_without_gradient(backbone):
    x = images(backbone, 3).requires_grad_(True)
    patches = backbone.patch_embeddings(x)
    assert patches.shape == (3, backbone.num_patches, backbone.width) and not patches.requires_grad
    # Each token depends on its own patch only: changing the first patch leaves the others.
    y = x.detach().clone()
    y[:, :, :backbone.patch_size[0], :backbone.patch_size[1]] += 1.0
    changed = (backbone.patch_embeddings(y) - patches).abs().amax(dim=-1) > 1e-6
    assert changed[:, 0].all() and not changed[:, 1:].any()


@pytest.mark.parametrize("deep", [False, True])
def test_pool_attention_is_a_distribution_over_every_final_token(backbone, deep):
    prompts = torch.randn(backbone.depth, 3, backbone.width) if deep else torch.randn(3, backbone.width)
    tokens = backbone.image_tokens(images(backbone), prompts, deep=deep)
    weights = backbone.pool_attention(tokens)
    assert weights.shape == tokens.shape[:2] and (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    # The prompt tokens take part: stronger prompts shift the weights.
    louder = backbone.pool_attention(backbone.image_tokens(images(backbone), prompts * 10, deep=deep))
    assert not torch.allclose(weights, louder)


def test_registering_a_taken_backbone_name_is_refused():
    from faceprompt.backbones import BackboneSpec, list_backbones, register_backbone
    from faceprompt.registry import DuplicateNameError

    before = list_backbones()
    with pytest.raises(DuplicateNameError, match="backbone 'tiny-vit' is already registered"):
        register_backbone(BackboneSpec("tiny-vit", "FP-Tiny-Eva-RoPE", "pe-core"))
    assert list_backbones() == before and BACKBONES["tiny-vit"].model_name == "FP-Tiny-ViT-MAP"


def test_weights_file_of_another_model_or_truncated_is_refused_naming_it(tiny_backbones, tmp_path):
    from faceprompt.backbones import WeightsFileError

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(3)}, str(other))
    with pytest.raises(WeightsFileError, match=r"other\.safetensors.*'tiny-vit'.*no tensor"):
        load_backbone("tiny-vit", weights=str(other))
    good = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_backbones["tiny-vit"].model.state_dict().items()}, str(good))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(WeightsFileError, match=r"cut\.safetensors"):
        load_backbone("tiny-vit", weights=str(cut))


def test_pool_attention_equals_the_weights_of_the_towers_own_head(backbone, monkeypatch):
    """The weights come from the head's own q and k: record what its attention call receives."""
    calls = []
    attention = F.scaled_dot_product_attention

    def recording(q, k, v, *args, **kwargs):
        calls.append((q, k))
        return attention(q, k, v, *args, **kwargs)

    prompts = torch.randn(2, backbone.width)
    x = images(backbone)
    sequence = backbone.image_tokens(x, prompts)
    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    backbone.pool_tokens(sequence, tokens=2)
    assert calls, "the head did not use fused attention: nothing to compare with"
    q, k = calls[-1]  # the pooling head runs last
    expected = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1).mean(dim=(1, 2))
    torch.testing.assert_close(backbone.pool_attention(sequence), expected)


def test_the_embedded_model_is_registered_under_the_config_its_weights_were_written_with(tmp_path):
    import json

    from faceprompt.backbones import MODEL_CONFIG_DIR, embedded_model_name

    config = json.loads((MODEL_CONFIG_DIR / "FP-FaceCLIP-Wild.json").read_text())
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    assert embedded_model_name(tmp_path) == "FP-FaceCLIP-Wild"
    config["embed_dim"] += 1
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    with pytest.raises(ValueError, match="matches no config"):
        embedded_model_name(tmp_path)
