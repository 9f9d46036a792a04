"""A trained run ships into the package with relative paths, its test metrics and how it was chosen."""
from __future__ import annotations

import json

import pytest

from engine_helpers import quick_config, synthetic_manifest  # noqa: F401
from faceprompt.checkpoint import load_prompts
from faceprompt.evaluate import evaluate
from faceprompt.shipping import ship_run
from faceprompt.training.loop import fit


def test_a_shipped_run_loads_records_no_machine_paths_and_says_how_it_was_chosen(tmp_path, synthetic_manifest):  # noqa: F811
    run = fit(quick_config(synthetic_manifest, tmp_path, epochs=1), progress=False).run_dir
    with pytest.raises(FileNotFoundError, match="faceprompt evaluate"):
        ship_run(run, tmp_path / "shipped", "faceprompt train --config x.yaml", [], root=tmp_path)
    evaluate(run, progress=False, cache_dir=None)
    selection = [{"method": "softcpt", "val_metric": 0.6, "seeds": 3}]
    dest = ship_run(run, tmp_path / "pkg" / "shipped", "faceprompt train --config x.yaml", selection, root=tmp_path)
    config = json.loads((dest / "config.json").read_text())
    assert str(tmp_path) not in json.dumps(config)
    assert config["train_config"]["run_dir"] == "runs"
    recipe = json.loads((dest / "recipe.json").read_text())
    assert recipe == {"command": "faceprompt train --config x.yaml", "selected_by_validation": selection}
    assert json.loads((dest / "test_metrics.json").read_text())
    model = load_prompts(dest)
    assert model.method == "softcpt"
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "metrics.json", "prompts.safetensors",
                                                      "recipe.json", "test_metrics.json"]
