"""Saving and loading trained prompts: exact round trip, and refusal of checkpoints that do not fit."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from faceprompt.checkpoint import (CONFIG_FILE, FORMAT_VERSION, IDENTITY_FIELDS, PROMPTS_FILE, identity_metadata,
                                   load_prompts, save_prompts)
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


def write_prompts(run, tensors: dict, config: dict | None) -> None:
    """Rewrite a run's prompts file with the identity of ``config`` (None: no metadata, as old files)."""
    save_file(tensors, str(run / PROMPTS_FILE), metadata=None if config is None else identity_metadata(config))


@pytest.fixture
def saved_run(tiny_backbones, tmp_path):
    """A coop+vpt run saved on tiny-pe, and a helper to edit its config (and the identity in its prompts file,
    as a run trained that way would have it)."""
    model = build_model("coop+vpt", tiny_backbones["tiny-pe"], config={"context_tokens": 4, "tokens": 2})
    save_prompts(model, tmp_path)

    def edit(**changes):
        config = json.loads((tmp_path / CONFIG_FILE).read_text())
        config.update(changes)
        (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
        write_prompts(tmp_path, load_file(str(tmp_path / PROMPTS_FILE)), config)
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
    write_prompts(run, tensors, json.loads((run / CONFIG_FILE).read_text()))
    with pytest.raises(ValueError, match="text.context.age.*shape"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])


def test_load_refuses_missing_and_unexpected_tensors(saved_run, tiny_backbones):
    run, _ = saved_run
    tensors = load_file(str(run / PROMPTS_FILE))
    tensors["visual.extra"] = tensors.pop("visual.prompts")
    write_prompts(run, tensors, json.loads((run / CONFIG_FILE).read_text()))
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


def test_prompts_file_records_its_identity(saved_run):
    run, _ = saved_run
    config = json.loads((run / CONFIG_FILE).read_text())
    with safe_open(str(run / PROMPTS_FILE), "pt") as handle:
        metadata = handle.metadata()
    assert {k: json.loads(v) for k, v in metadata.items()} == {
        k: config[k] for k in ("format_version", *IDENTITY_FIELDS)}


@pytest.mark.parametrize("field, source, target", [
    ("backbone", ("tiny-vit", "vpt", {"tokens": 2}), ("tiny-pe", "vpt", {"tokens": 2})),
    ("method_config", ("tiny-pe", "coop", {"context_tokens": 4}),
     ("tiny-pe", "coop", {"context_tokens": 4, "suffix": "!"})),
])
def test_prompts_copied_from_another_run_are_refused(tiny_backbones, tmp_path, field, source, target):
    # The tensors' shapes fit the target run: only the recorded identity tells the runs apart.
    for folder, (name, method, options) in (("source", source), ("target", target)):
        save_prompts(build_model(method, tiny_backbones[name], config=options), tmp_path / folder)
    shutil.copy(tmp_path / "source" / PROMPTS_FILE, tmp_path / "target" / PROMPTS_FILE)
    with pytest.raises(ValueError, match=rf"target/prompts.safetensors: field '{field}' is .*config.json"):
        load_prompts(tmp_path / "target", backbone=tiny_backbones[target[0]])


def test_a_prompts_file_without_identity_loads_with_a_warning(saved_run, tiny_backbones):
    run, _ = saved_run
    write_prompts(run, load_file(str(run / PROMPTS_FILE)), None)
    with pytest.warns(UserWarning, match="prompts.safetensors: no identity metadata.*retrain"):
        model = load_prompts(run, backbone=tiny_backbones["tiny-pe"])
    assert model.method == "coop+vpt"


def truncated(path) -> bytes:
    return path.read_bytes()[:-7]


@pytest.mark.parametrize("corrupt", [lambda p: b"", lambda p: b"this is not a safetensors file", truncated],
                         ids=["empty", "text", "truncated"])
def test_a_corrupt_prompts_file_is_one_clear_error(saved_run, tiny_backbones, corrupt):
    run, _ = saved_run
    (run / PROMPTS_FILE).write_bytes(corrupt(run / PROMPTS_FILE))
    with pytest.raises(ValueError, match=r"prompts.safetensors: not a readable safetensors file .*retrain") as err:
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])
    assert "\n" not in str(err.value)


def test_a_prompts_file_can_be_named_instead_of_its_folder(saved_run, tiny_backbones):
    run, _ = saved_run
    model = load_prompts(run / PROMPTS_FILE, backbone=tiny_backbones["tiny-pe"])
    assert model.method == "coop+vpt"
    with pytest.raises(ValueError, match="expected a run folder"):
        load_prompts(run / CONFIG_FILE, backbone=tiny_backbones["tiny-pe"])
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        load_prompts(run / "absent", backbone=tiny_backbones["tiny-pe"])


@pytest.mark.parametrize("config", ['["method"]', '{"method": 3, "method_config": {}, "backbone": "tiny-pe", '
                                                  '"tasks": {}}'])
def test_a_config_of_the_wrong_shape_is_named(saved_run, tiny_backbones, config):
    run, _ = saved_run
    (run / CONFIG_FILE).write_text(config)
    with pytest.raises(ValueError, match=r"config.json: (expected a JSON object|field 'method' must be)"):
        load_prompts(run, backbone=tiny_backbones["tiny-pe"])


def test_a_run_trained_on_a_local_dir_loads_those_weights_without_being_told(tmp_path):
    from engine_helpers import quick_config
    from faceprompt.backbones import PRETRAINED_DIR
    from faceprompt.data.synthetic_faces import make_synthetic_dataset
    from faceprompt.evaluate import evaluate
    from faceprompt.training.loop import fit

    local = tmp_path / "my-faceclip"
    shutil.copytree(PRETRAINED_DIR / "faceclip-tiny", local)
    manifest = make_synthetic_dataset(tmp_path / "syn", n=48, size=80, seed=0)
    cfg = quick_config(manifest, tmp_path, backbone="faceclip-tiny", weights=f"local-dir:{local}", epochs=1,
                       method="vpt", method_options={"tokens": 2})
    run = fit(cfg, progress=False).run_dir
    model = load_prompts(run)
    assert model.backbone.weights_id.startswith("local-dir:my-faceclip")
    assert evaluate(run, progress=False, cache_dir=None).summary["weights"] == model.backbone.weights_id
