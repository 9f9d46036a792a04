"""The thesis's own prompt variants (AngeloMolinario/Codice-Tesi), selected by options; and fp32 logits."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from faceprompt.backbones import load_backbone
from faceprompt.prompts import added_parameters, build_model, method_configs
from faceprompt.tasks import get_tasks
from test_prompts import images

BACKBONES = ["tiny-vit", "tiny-pe"]
# The thesis's SoftCPT: one n_ctx for the task context and the generated context (15, 20 or 25).
THESIS_SOFTCPT = {"context_tokens": 15, "task_context_tokens": 15, "task_context": "per_task",
                  "generator_bias": False, "generator_init": "normal", "normalize_task_features": False,
                  "wording": "thesis"}


@pytest.fixture(params=BACKBONES)
def backbone(request, tiny_backbones):
    return tiny_backbones[request.param]


# --- SoftCPT-CATS as the thesis builds it --------------------------------------------------------

def test_thesis_softcpt_adds_T_L_W_plus_E_M_W(backbone):
    """T tasks, L task-context tokens, W text width, E generator input (text feature) width,
    M generated context tokens; no bias anywhere."""
    model = build_model("softcpt", backbone, config=THESIS_SOFTCPT)
    t, l_, m = len(model.tasks), 15, 15
    w, e = backbone.text_width, backbone.embed_dim
    assert added_parameters(model) == t * l_ * w + e * m * w
    assert dict(model.named_trainable_parameters()).keys() == {"text.task_context", "text.generator.weight"}
    assert model.text.task_context.shape == (t, l_, w)
    assert model.text.generator.bias is None


def test_thesis_generator_is_a_normal_init_linear_map_of_raw_features(tiny_backbones):
    bb = tiny_backbones["tiny-pe"]
    model = build_model("softcpt", bb, config=THESIS_SOFTCPT)
    weight = model.text.generator.weight
    assert abs(float(weight.detach().std()) - 0.02) < 0.002
    with torch.no_grad():
        raw = model.text.task_features()
        assert not torch.allclose(raw.norm(dim=-1), torch.ones(len(model.tasks)), atol=1e-3)
        expected = (raw @ weight.T).view(len(model.tasks), 15, bb.text_width)
        torch.testing.assert_close(model.text.contexts(), expected)
    # The default keeps faceprompt's form: normalised features, a bias, the smaller init.
    default = build_model("softcpt", bb)
    assert default.text.generator.bias is not None
    assert float(default.text.generator.weight.detach().std()) < 0.02 / bb.embed_dim ** 0.5 * 1.2
    with torch.no_grad():
        torch.testing.assert_close(default.text.task_features().norm(dim=-1), torch.ones(3))


def test_per_task_context_is_each_tasks_own(tiny_backbones):
    """A loss on one task reaches only that task's context tokens."""
    bb = tiny_backbones["tiny-vit"]
    model = build_model("softcpt", bb, config=THESIS_SOFTCPT).train()
    out = model(images(bb, 2))
    F.cross_entropy(out.logits["gender"], torch.tensor([0, 1])).backward()
    grad = model.text.task_context.grad
    assert grad[0].abs().sum() > 0  # gender is the first task
    assert torch.equal(grad[1:], torch.zeros_like(grad[1:]))


def test_thesis_wording_uses_its_class_names_and_task_phrases(tiny_backbones):
    bb = tiny_backbones["tiny-pe"]
    model = build_model("softcpt", bb, config={**THESIS_SOFTCPT, "context_tokens": 4, "task_context_tokens": 4})
    emotion = model.tasks[2]
    tokens = model.text._class_tokens(emotion)
    happy = bb.tokenize_with_context(["happy."], 4)[0]
    assert torch.equal(tokens[emotion.classes.index("happiness")], happy)
    descriptions = bb.tokenize_with_context(["age estimation from face picture."], 4)[0]
    model.text.task_features()
    assert torch.equal(model.text._description_tokens[1], descriptions)


def test_thesis_options_are_refused_when_misspelt():
    for bad, field in [({"task_context": "per-task"}, "task_context"), ({"wording": "thesys"}, "wording"),
                       ({"generator_init": "xavier"}, "generator_init"),
                       ({"generator_bias": False, "init": "a photo of a"}, "init")]:
        with pytest.raises(ValueError, match=field):
            method_configs("softcpt", bad)


# --- CoOp with class-specific contexts -----------------------------------------------------------

def test_coop_class_specific_contexts_have_one_row_per_class(backbone):
    model = build_model("coop", backbone, config={"class_specific": True, "context_tokens": 5})
    for task in model.tasks:
        assert model.text.context[task.name].shape == (task.num_classes, 5, backbone.text_width)
    # Each class reads its own context: changing one class's changes only that class's features.
    with torch.no_grad():
        before = model.text.class_features()
        model.text.context["emotion"][3].add_(0.5)
        after = model.text.class_features()
    changed = (before["emotion"] - after["emotion"]).abs().sum(-1) > 1e-6
    assert changed.tolist() == [i == 3 for i in range(7)]
    assert torch.equal(before["age"], after["age"])


# --- zero-shot with the thesis's sentences -------------------------------------------------------

THESIS_SENTENCES = {
    "gender": ["a photo of a male person", "a photo of a female person"],
    "age": ["a photo of a person between 0 and 2 years old", "a photo of a person between 3 and 9 years old",
            "a photo of a person between 10 and 19 years old", "a photo of a person between 20 and 29 years old",
            "a photo of a person between 30 and 39 years old", "a photo of a person between 40 and 49 years old",
            "a photo of a person between 50 and 59 years old", "a photo of a person between 60 and 69 years old",
            "a photo of a person 70 years old or older"],
    "emotion": ["a photo of a surprised person", "a photo of a fearful person", "a photo of a disgusted person",
                "a photo of a happy person", "a photo of a sad person", "a photo of an angry person",
                "a photo of a neutral person"],
}


def test_zero_shot_thesis_sentences_are_one_exact_sentence_per_class(backbone):
    model = build_model("zero-shot", backbone, config={"sentences": "thesis"})
    features = model.text.class_features()
    for task in get_tasks():
        expected = backbone.encode_text(backbone.tokenize(THESIS_SENTENCES[task.name]), normalize=True)
        torch.testing.assert_close(features[task.name], expected)
    default = build_model("zero-shot", backbone).text.class_features()
    assert not torch.allclose(default["gender"], features["gender"])


def test_sentences_refuse_unknown_sets_and_templates():
    with pytest.raises(ValueError, match="sentences"):
        method_configs("zero-shot", {"sentences": "paper"})
    with pytest.raises(ValueError, match="exclude"):
        method_configs("zero-shot", {"sentences": "thesis", "templates": ["a {}."]})


# --- VPT: standard-normal prompts, a learned logit scale -----------------------------------------

def test_vpt_normal_init_is_standard_normal(tiny_backbones):
    bb = tiny_backbones["tiny-pe"]
    normal = build_model("vpt", bb, config={"prompt_init": "normal", "tokens": 10}).visual.prompts.detach()
    xavier = build_model("vpt", bb, config={"tokens": 10}).visual.prompts.detach()
    assert abs(float(normal.std()) - 1.0) < 0.1 and abs(float(normal.mean())) < 0.1
    assert float(xavier.abs().max()) < 0.2


def test_vpt_trainable_logit_scale_starts_at_the_towers_and_learns(backbone):
    fixed = build_model("vpt", backbone, config={"tokens": 3})
    learned = build_model("vpt", backbone, config={"tokens": 3, "train_logit_scale": True})
    learned.visual.prompts.data.copy_(fixed.visual.prompts)
    assert added_parameters(learned) == added_parameters(fixed) + 1
    x = images(backbone)
    a, b = fixed(x).logits, learned(x).logits
    for task in a:
        torch.testing.assert_close(a[task], b[task])
    sum(v.sum() for v in learned.train()(x).logits.values()).backward()
    assert learned.visual.log_scale.grad is not None and float(learned.visual.log_scale.grad.abs()) > 0
    with torch.no_grad():
        learned.visual.log_scale.add_(1.0)
    learned.eval()
    bias = backbone.logit_bias if backbone.logit_bias is not None else 0.0
    torch.testing.assert_close(learned(x).logits["gender"] - bias, (a["gender"] - bias) * torch.e)


# --- numerics ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["zero-shot", "vpt"])
def test_logits_are_fp32_under_bf16_autocast(backbone, method):
    model = build_model(method, backbone).eval()
    x = images(backbone, 3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features, _ = model.visual(x)
        text = model.class_features()
        logits = model.logits_from_features(features)
    assert features.dtype == torch.bfloat16  # autocast really ran the tower in bf16
    for task in model.task_names:
        assert logits[task].dtype == torch.float32
        img = F.normalize(features.float(), dim=-1)
        txt = F.normalize(text[task].float(), dim=-1)
        expected = backbone.logit_scale * img @ txt.T
        if backbone.logit_bias is not None:
            expected = expected + backbone.logit_bias
        torch.testing.assert_close(logits[task], expected, rtol=1e-5, atol=1e-4)


class _EndOfSequenceTokenizer:
    """A SigLIP2-like stand-in: no start token, an end-of-sequence id after the words, padding 0.

    Word ids come from open_clip's SimpleTokenizer so that they index the tiny tower's vocabulary;
    the special ids are listed on a wrapped tokenizer, as open_clip's HFTokenizer holds Gemma's."""

    class _Inner:
        eos_token_id = 49407
        all_special_ids = [0, 49407]

    def __init__(self, words):
        self.words = words
        self.tokenizer = self._Inner()

    def __call__(self, texts, context_length: int = 32) -> torch.Tensor:
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = (self.words.encode(text) + [self._Inner.eos_token_id])[:context_length]
            out[row, :len(ids)] = torch.tensor(ids)
        return out


@pytest.fixture
def siglip_like():
    """A fresh tiny tower (the session's towers keep their tokenizer) with the stand-in tokenizer."""
    bb = load_backbone("tiny-vit")
    words = bb.tokenizer
    bb.tokenizer = _EndOfSequenceTokenizer(words)
    assert bb.context_start == 0 and 49407 in bb.special_token_ids()
    return bb, words.encode("a photo of a")


@pytest.mark.parametrize("method", ["coop", "softcpt"])
def test_phrase_context_never_holds_the_end_of_sequence_token(siglip_like, method):
    bb, word_ids = siglip_like
    eos = bb.token_embeddings([49407])[0]
    model = build_model(method, bb, tasks=("gender",), config={"init": "a photo of a", "context_tokens": 6})
    if method == "coop":
        context = model.text.context["gender"].detach()
        torch.testing.assert_close(context[:4], bb.token_embeddings(word_ids))  # the words, left-aligned
    else:
        context = model.text.generator.bias.detach().view(6, -1)
        torch.testing.assert_close(context[2:], bb.token_embeddings(word_ids))  # ending next to the class
    assert not any(torch.allclose(row, eos) for row in context)


@pytest.mark.parametrize("method", ["softcpt+vpt", "zero-shot", "coop"])
def test_param_groups_split_what_trains_into_text_and_visual(tiny_backbones, method):
    model = build_model(method, tiny_backbones["tiny-pe"], config={"train_logit_scale": True}
                        if method == "softcpt+vpt" else None)
    groups = model.param_groups()
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(groups["text"]) == ids(model.text.parameters())
    assert ids(groups["visual"]) == ids(model.visual.parameters())
    assert ids(groups["text"]) | ids(groups["visual"]) == ids(model.trainable_parameters())
    assert sum(p.numel() for g in groups.values() for p in g) == added_parameters(model)


@pytest.mark.parametrize("method, config", [
    ("softcpt+vpt", {**THESIS_SOFTCPT, "context_tokens": 4, "task_context_tokens": 4, "prompt_init": "normal",
                     "train_logit_scale": True}),
    ("coop+v2pt", {"class_specific": True, "wording": "thesis", "combine": "split", "tokens": 4,
                   "instance_tokens": 2}),
], ids=["thesis-softcpt+vpt", "csc-coop+split-v2pt"])
def test_thesis_variants_save_and_load_to_the_same_logits(tiny_backbones, method, config, tmp_path):
    from faceprompt.checkpoint import load_prompts, save_prompts

    bb = tiny_backbones["tiny-vit"]
    model = build_model(method, bb, config=config)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    x = images(bb, 2)
    expected = model(x).logits
    save_prompts(model, tmp_path)
    loaded = load_prompts(tmp_path, backbone=bb)
    assert loaded.method_config() == model.method_config()
    for task, logits in loaded(x).logits.items():
        assert torch.equal(logits, expected[task])


# --- prompts longer than the text context: truncated as the thesis's tokenizer does -------------------

def test_truncate_cuts_an_overflowing_prompt_as_the_thesis_tokenizer_does(tiny_backbones):
    from faceprompt.prompts.coop import tokens_with_context

    bb = tiny_backbones["tiny-pe"]  # 32 text tokens and the CLIP tokenizer, as PE-Core
    with pytest.raises(ValueError, match="does not fit"):
        tokens_with_context(bb, ["10-19."], 25)
    with pytest.warns(UserWarning, match=r"1 of 2 prompts .* length 32 .*'10-19\.' lost 1"):
        tokens = tokens_with_context(bb, ["10-19.", "70+."], 25, truncate=True)
    # the thesis: "X" * n_ctx before the class name, tokens[:32] with the last set to the end token
    thesis = bb.tokenizer([" ".join(["X"] * 25) + " " + t for t in ("10-19.", "70+.")], context_length=32)
    assert torch.equal(tokens.cpu(), thesis)
    assert int(tokens[0, -1]) == bb.tokenizer.eot_token_id
    assert torch.equal(tokens[1], bb.tokenize_with_context(["70+."], 25)[0])  # what fits is unchanged


def test_truncated_coop_and_softcpt_train_and_leave_the_option_out_of_old_configs(tiny_backbones):
    bb = tiny_backbones["tiny-pe"]
    for method, options in (("coop", {"context_tokens": 25, "class_specific": True, "wording": "thesis"}),
                            ("softcpt", {**THESIS_SOFTCPT, "context_tokens": 25, "task_context_tokens": 25})):
        with pytest.raises(ValueError, match="does not fit"):
            build_model(method, bb, config=options).text.class_features()
        model = build_model(method, bb, config={**options, "truncate": True})
        with pytest.warns(UserWarning, match="truncated"):
            features = model.text.class_features()
        loss = sum(f.sum() for f in features.values())
        loss.backward()
        assert all(p.grad is not None for p in model.trainable_parameters())
        assert model.method_config()["text"]["truncate"] is True
        assert "truncate" not in build_model(method, bb, config=options).method_config()["text"]
