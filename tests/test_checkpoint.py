"""Saving and loading trained prompts: exact round trip, and refusal of checkpoints that do not fit."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from faceprompt.checkpoint import CONFIG_FILE, FORMAT_VERSION, PROMPTS_FILE, load_prompts, save_prompts
from faceprompt.prompts import build_model, list_methods

METHODS = [*list_methods(), "softcpt+vpt", "coop+vpt-ts"]


def images(backbone, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, backbone.image_size, backbone.image_size)


def perturb(model) -> None:
    """Move every trained tensor away from its initial value, so that loading it back has to matter."""
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.05)


@pytest.mark.parametrize("method", METHODS)
def test_save_load_reproduces_logits(backbone, method, tmp_path):
    model = build_model(method, backbone)
    perturb(model)
    model.eval()
    x = images(backbone, 3)
    expected = model(x).logits
    save_prompts(model, tmp_path)
    saved = load_file(str(tmp_path / PROMPTS_FILE))
    assert set(saved) == set(model.named_trainable_parameters())  # only what trains is saved

    loaded = load_prompts(tmp_path, backbone=backbone)
    assert not loaded.training and loaded.method == method
    assert loaded.method_config() == model.method_config()
    got = loaded(x).logits
    for task in expected:
        assert torch.equal(got[task], expected[task])


def test_load_without_a_backbone_rebuilds_the_same_tower(tiny_backbones, tmp_path):
    bb = tiny_backbones["tiny-pe"]
    model = build_model("vpt", bb, config={"tokens": 2})
    perturb(model)
    model.eval()
    x = images(bb)
    save_prompts(model, tmp_path)
    loaded = load_prompts(tmp_path)
    torch.testing.assert_close(loaded(x).logits["emotion"], model(x).logits["emotion"], rtol=0, atol=1e-6)


@pytest.fixture
def saved_run(tiny_backbones, tmp_path):
    """A coop+vpt run saved on tiny-pe, and a helper to edit its config."""
    model = build_model("coop+vpt", tiny_backbones["tiny-pe"], config={"context_tokens": 4, "tokens": 2})
    save_prompts(model, tmp_path)

    def edit(**changes):
        config = json.loads((tmp_path / CONFIG_FILE).read_text())
        config.update(changes)
        (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
        return config

    return tmp_path, edit


def test_load_refuses_another_backbone(saved_run, tiny_backbones):
    run, _ = saved_run
    with pytest.raises(ValueError, match="backbone 'tiny-pe'.*not 'tiny-vit'"):
        load_prompts(run, backbone=tiny_backbones["tiny-vit"])


def test_load_refuses_other_weights(saved_run, tiny_backbones):
    run, edit = saved_run
    edit(weights="file:other.safetensors:0123456789ab")
    with pytest.raises(ValueError, match="weights 'file:other"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])
    assert load_prompts(run, backbone=tiny_backbones["tiny-pe"], allow_other_weights=True)


def test_load_refuses_another_task_set(saved_run, tiny_backbones):
    run, _ = saved_run
    with pytest.raises(ValueError, match="tasks"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"], tasks=["gender", "age"])
    with pytest.raises(ValueError, match="tasks"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"], tasks=["gender", "age", "emotion", "emotion"])
    # The same tasks in another order are the same set: the model keeps the order it was trained with.
    loaded = load_prompts(run, backbone=tiny_backbones["tiny-pe"], tasks=["emotion", "age", "gender"])
    assert loaded.task_names == ("gender", "age", "emotion")


def test_load_refuses_classes_that_changed(saved_run, tiny_backbones):
    run, edit = saved_run
    config = json.loads((run / CONFIG_FILE).read_text())
    edit(tasks={**config["tasks"], "emotion": [*config["tasks"]["emotion"], "contempt"]})
    with pytest.raises(ValueError, match="tasks"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])


def test_load_refuses_a_config_that_does_not_fit_the_tensors(saved_run, tiny_backbones):
    run, edit = saved_run
    config = json.loads((run / CONFIG_FILE).read_text())
    config["method_config"]["visual"]["tokens"] = 3
    edit(method_config=config["method_config"])
    with pytest.raises(ValueError, match="visual.prompts.*shape"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])


def test_load_refuses_an_edited_tensor(saved_run, tiny_backbones):
    run, _ = saved_run
    tensors = load_file(str(run / PROMPTS_FILE))
    tensors["text.context.age"] = torch.zeros(5, 64)
    save_file(tensors, str(run / PROMPTS_FILE))
    with pytest.raises(ValueError, match="text.context.age.*shape"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])


def test_load_refuses_missing_and_unexpected_tensors(saved_run, tiny_backbones):
    run, _ = saved_run
    tensors = load_file(str(run / PROMPTS_FILE))
    tensors["visual.extra"] = tensors.pop("visual.prompts")
    save_file(tensors, str(run / PROMPTS_FILE))
    with pytest.raises(ValueError, match="missing.*visual.prompts.*unexpected.*visual.extra"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])


def test_config_records_what_loading_checks(tiny_backbones, tmp_path):
    model = build_model("softcpt+vpt", tiny_backbones["tiny-vit"], tasks=("gender", "emotion"))
    save_prompts(model, tmp_path, extra={"note": "smoke"})
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert (config["method"], config["backbone"], config["weights"]) == ("softcpt+vpt", "tiny-vit", "random")
    assert list(config["tasks"]) == ["gender", "emotion"]
    assert config["method_config"] == json.loads(json.dumps(model.method_config()))
    assert config["note"] == "smoke"
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, PROMPTS_FILE]  # no temporary files left


def test_load_reports_a_missing_prompts_file(saved_run, tiny_backbones):
    run, _ = saved_run
    (run / PROMPTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=PROMPTS_FILE):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])


@pytest.mark.parametrize("field", ["method", "method_config", "backbone", "tasks"])
def test_load_names_a_missing_config_field(saved_run, tiny_backbones, field):
    run, _ = saved_run
    config = json.loads((run / CONFIG_FILE).read_text())
    del config[field]
    (run / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=field):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])
