"""configs/thesis: every file a TrainConfig naming the thesis config it mirrors, and every one runs for an
epoch through ``stand_in`` on a tiny tower; ``init_from`` starts the second stage from the first's tensors."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from faceprompt.backbones import load_backbone
from faceprompt.cli import main
from faceprompt.prompts import build_model
from faceprompt.training.loop import fit
from faceprompt.training.config import STAND_IN_CONTEXT_TOKENS, STAND_INS, TrainConfig, load_config, stand_in
from faceprompt.training.warm_start import load_text_part
from engine_helpers import quick_config, synthetic_manifest  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "thesis").rglob("*.yaml"))
HEADER = re.compile(r"^# Mirrors the thesis repository's config/(\S+\.json)")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT / "configs" / "thesis"))


def test_there_are_thesis_configs():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_loads_and_names_the_thesis_config_it_mirrors(path):
    cfg = load_config(path)
    assert cfg.protocol == "thesis"
    match = HEADER.match(path.read_text().splitlines()[0])
    assert match, f"{path}: first line must name the thesis config"
    assert Path(match.group(1)).with_suffix(".yaml").as_posix() == Path(_name(path)).as_posix()


LAGENDA = "data/thesis/lagenda/manifest.csv"


def test_lagenda_trains_where_the_thesis_trains_on_it():
    """FairFace and Lagenda for age (and with the other sets for gender, and in the multitask runs that list it)."""
    expected = {f"softpe_{n}.yaml" for n in (15, 20, 25)} | {f"vpt_10_cn{n}.yaml" for n in (15, 20, 25)}
    for path in CONFIGS:
        name = _name(path)
        manifests = [s.manifest for s in load_config(path).train]
        wanted = name in expected or name.startswith(("coop/age/", "coop/gender/"))
        assert (LAGENDA in manifests) == wanted, name
        if name.startswith("coop/age/"):
            assert manifests == ["data/thesis/fairface/manifest.csv", LAGENDA], name
        assert "Not mirrored: the Lagenda data" not in path.read_text(), name


def test_multitask_runs_balance_emotion_and_second_stages_slow_the_text_part():
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.task_balance == ({"emotion": 0.33} if len(cfg.tasks) > 1 else {}), _name(path)
        frozen = _name(path) == "coop/PE_vpt.yaml"  # VPT against a CoOp run's saved text features
        assert cfg.text_lr_scale == (0.0 if frozen else 0.1 if cfg.init_from is not None else 1.0), _name(path)


def _ordered(paths):
    """First stages before the runs that start from them."""
    return sorted(paths, key=lambda p: load_config(p).init_from is not None)


def test_every_thesis_config_runs_an_epoch_on_its_stand_in(synthetic_manifest, tmp_path):  # noqa: F811
    runs = tmp_path / "runs"
    for path in _ordered(CONFIGS):
        cfg = stand_in(load_config(path), synthetic_manifest, runs)
        cfg = dataclasses.replace(cfg, cache_dir=str(tmp_path / "cache"), max_train_samples=16, batch_size=16)
        assert cfg.backbone in STAND_INS.values() and cfg.epochs == 1
        result = fit(cfg, progress=False)
        assert result.stopped == "completed", path
        assert (result.run_dir / "prompts.safetensors").is_file(), path


def test_stand_in_swaps_the_tower_by_family_and_moves_init_from(synthetic_manifest, tmp_path):  # noqa: F811
    cfg = load_config(ROOT / "configs/thesis/vpt_10_cn15.yaml")
    swapped = stand_in(cfg, synthetic_manifest, tmp_path)
    assert swapped.backbone == "tiny-pe" and swapped.train[0].manifest == str(synthetic_manifest)
    assert swapped.init_from == str(tmp_path / "softpe_15")
    # tiny-pe reads PE-Core's 32 text tokens: the context lengths stay as the config has them
    assert swapped.method_options == cfg.method_options
    assert swapped.age_ordinal_omega == cfg.age_ordinal_omega and swapped.protocol == "thesis"
    siglip = load_config(ROOT / "configs/thesis/softsiglip2.yaml")
    swapped = stand_in(siglip, synthetic_manifest)
    assert swapped.backbone == "tiny-vit"  # 32 tokens against SigLIP2's 64: capped
    assert swapped.method_options == {**siglip.method_options, "context_tokens": STAND_IN_CONTEXT_TOKENS,
                                      "task_context_tokens": STAND_IN_CONTEXT_TOKENS}


def test_train_command_stand_in_runs_a_thesis_config(synthetic_manifest, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    config = ROOT / "configs/thesis/coop/emotion/PE_coop_15.yaml"
    assert main(["train", "--config", str(config), "--stand-in", str(synthetic_manifest), "--quiet",
                 "--set", "max_train_samples=16"]) == 0
    stored = json.loads((tmp_path / "runs/thesis/coop-emotion-15/config.json").read_text())
    assert stored["backbone"] == "tiny-pe" and stored["train_config"]["epochs"] == 1
    assert "completed after epoch 1" in capsys.readouterr().out


def _first_stage(manifest, root, **overrides) -> TrainConfig:
    return quick_config(manifest, root, epochs=1, run_id="stage1", **overrides)


def test_init_from_loads_the_earlier_runs_text_tensors(synthetic_manifest, tmp_path):  # noqa: F811
    first = fit(_first_stage(synthetic_manifest, tmp_path), progress=False)
    saved = load_file(str(first.run_dir / "prompts.safetensors"))
    second = quick_config(synthetic_manifest, tmp_path, method="softcpt+vpt", run_id="stage2", epochs=1,
                          method_options={"context_tokens": 4, "task_context_tokens": 4, "tokens": 2},
                          init_from=str(first.run_dir))
    model = build_model(second.method, load_backbone(second.backbone), second.tasks, second.method_options)
    loaded = load_text_part(model, first.run_dir)
    assert set(loaded) == {n for n in saved if n.startswith("text.")} and loaded
    params = model.named_trainable_parameters()
    for name, tensor in saved.items():
        assert torch.equal(params[name].detach(), tensor), name
    assert fit(second, progress=False).stopped == "completed"


@pytest.mark.parametrize("change", [
    {"backbone": "tiny-vit"},
    {"method_options": {"context_tokens": 5, "task_context_tokens": 4, "tokens": 2}},
    {"method": "coop+vpt", "method_options": {"context_tokens": 4, "tokens": 2}},
])
def test_init_from_refuses_a_run_of_another_backbone_or_text_prompt(synthetic_manifest, tmp_path, change):  # noqa: F811
    first = fit(_first_stage(synthetic_manifest, tmp_path), progress=False)
    options = {"method": "softcpt+vpt", "method_options": {"context_tokens": 4, "task_context_tokens": 4, "tokens": 2},
               **change}
    second = quick_config(synthetic_manifest, tmp_path, run_id="stage2", init_from=str(first.run_dir), **options)
    with pytest.raises(ValueError, match=r"^init_from: "):
        fit(second, progress=False)
    assert not (tmp_path / "runs" / "stage2" / "prompts.safetensors").exists()


# The head's CoOp files (config/coop/<task>/PE_*_<n>.json), all run by coop_train.py.
HEAD_COOP = [p for p in CONFIGS if re.fullmatch(r"coop/(age|gender|emotion)/PE_(coop_|vpt_10_cn)\d+\.yaml", _name(p))]


def test_head_coop_configs_are_class_specific_with_cosine_and_square_root_weights():
    """coop_train.py builds CoopModel (ClassPromptLearner: a context per class), steps
    CosineAnnealingLR(T_max=EPOCHS, eta_min=1e-6) once per epoch and weighs the loss by
    count ** -0.5 ('normalized_inverse_sqrt') whatever the task."""
    assert len(HEAD_COOP) == 18
    for path in HEAD_COOP:
        cfg = load_config(path)
        assert cfg.method_options["class_specific"] is True, _name(path)
        assert (cfg.min_lr, cfg.lr_schedule_unit, cfg.warmup_epochs) == (1e-6, "epoch", 0.0), _name(path)
        assert (cfg.class_balance, cfg.class_balance_power, cfg.class_balance_task_powers) == \
            ("weights", 0.5, {}), _name(path)
        assert cfg.best_rule == "loss_or_accuracy", _name(path)


def test_head_coop_class_weights_are_inverse_square_roots_for_age(synthetic_manifest):  # noqa: F811
    from faceprompt.training.loop import _class_weights

    cfg = load_config(ROOT / "configs/thesis/coop/age/PE_coop_15.yaml")
    labels = torch.tensor([[0]] * 4 + [[1]] * 1 + [[8]] * 16 + [[-1]] * 3)
    weights = _class_weights(cfg, labels, torch.device("cpu"))["age"]
    # the loss is a weighted mean, so only the ratios count: 4 ** -0.5 : 1 : 16 ** -0.5
    assert float(weights[0] / weights[1]) == pytest.approx(0.5)
    assert float(weights[8] / weights[1]) == pytest.approx(0.25)


@pytest.fixture(scope="module")
def real_length_towers(tmp_path_factory):
    """{family: a random tiny tower whose text reads as many tokens as the real one's}: tiny-pe for
    PE-Core (32, both), and the SigLIP2-shaped tower at 64 (the CLIP tokenizer stands in for Gemma's)."""
    import open_clip

    from faceprompt.backbones import BACKBONES, BackboneSpec, MODEL_CONFIG_DIR, register_backbone

    config = json.loads((MODEL_CONFIG_DIR / "FP-Tiny-ViT-MAP.json").read_text())
    config["text_cfg"]["context_length"] = 64
    path = tmp_path_factory.mktemp("towers") / "FP-Tiny-ViT-MAP-64.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    register_backbone(BackboneSpec("tiny-vit-64", "FP-Tiny-ViT-MAP-64", "siglip2"))
    try:
        yield {"pe-core": load_backbone("tiny-pe"), "siglip2": load_backbone("tiny-vit-64")}
    finally:
        BACKBONES.remove("tiny-vit-64")


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_every_config_builds_its_prompts_at_its_own_context_length(path, real_length_towers):
    """No cap: what overflows the real tower's text context overflows here, and only a config that says
    ``truncate: true`` (the thesis's tokenizer cut such prompts) gets past it, with a warning."""
    from faceprompt.backbones import get_spec
    from faceprompt.training.config import _text_context_length

    cfg = load_config(path)
    tower = real_length_towers[get_spec(cfg.backbone).family]
    assert tower.context_length == _text_context_length(cfg.backbone)
    model = build_model(cfg.method, tower, cfg.tasks, cfg.method_options)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = model.text.class_features()
    cut = [w for w in caught if "truncated" in str(w.message)]
    assert bool(cut) == bool(cfg.method_options.get("truncate")), _name(path)
    assert set(features) == set(cfg.tasks)


def test_the_25_token_pe_core_configs_are_the_ones_that_truncate():
    truncating = sorted(_name(p) for p in CONFIGS if load_config(p).method_options.get("truncate"))
    assert truncating == ["coop/age/PE_coop_25.yaml", "coop/age/PE_vpt_10_cn25.yaml", "softpe_25.yaml",
                          "vpt_10_cn25.yaml"]


def test_each_head_config_has_its_thesis_files_batch_size():
    """BATCH_SIZE at 4b18297: softpe_* 256, vpt_10_cn* 60, coop/<task>/PE_coop_* 256, PE_vpt_10_cn* 64."""
    expected = {r"softpe_\d+": 256, r"vpt_10_cn\d+": 60, r"coop/\w+/PE_coop_\d+": 256,
                r"coop/\w+/PE_vpt_10_cn\d+": 64}
    seen = 0
    for path in CONFIGS:
        for pattern, batch in expected.items():
            if re.fullmatch(pattern + r"\.yaml", _name(path)):
                assert load_config(path).batch_size == batch, _name(path)
                seen += 1
    assert seen == 24


def test_first_lines_name_the_commit_and_the_readme_lists_every_config():
    readme = (ROOT / "configs/thesis/README.md").read_text()
    for path in CONFIGS:
        first = path.read_text().splitlines()[0]
        assert re.search(r"at the head commit 4b18297|as of commit [0-9a-f]{7}\b.*the head 4b18297 no longer has it",
                         first), _name(path)
        assert f"| `{_name(path)}` |" in readme, _name(path)
