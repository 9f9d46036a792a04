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
    assert swapped.method_options == {**cfg.method_options, "context_tokens": STAND_IN_CONTEXT_TOKENS,
                                      "task_context_tokens": STAND_IN_CONTEXT_TOKENS}
    assert swapped.age_ordinal_omega == cfg.age_ordinal_omega and swapped.protocol == "thesis"
    assert stand_in(load_config(ROOT / "configs/thesis/softsiglip2.yaml"), synthetic_manifest).backbone == "tiny-vit"


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
