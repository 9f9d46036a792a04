"""Notebook start-up (faceprompt.book._machinery.startup): the project root, threads, narrowly quieted warnings."""
from __future__ import annotations

import os
import warnings

import torch

from faceprompt.book._machinery import startup
from faceprompt.locations import project_root


def test_setup_moves_to_the_project_root_and_sets_threads(tmp_path, monkeypatch):
    root = project_root()
    monkeypatch.chdir(root / "notebooks")
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            assert startup.setup(threads=1) == root and os.getcwd() == str(root)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_only_third_party_warnings_are_quieted():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        startup.quiet_library_warnings()
        for module in ("timm.layers", "open_clip.factory", "faceprompt.training.loop", "timmy"):
            warnings.warn_explicit("notice", UserWarning, "x.py", 1, module=module)
        warnings.warn_explicit("old", DeprecationWarning, "x.py", 2, module="torch.nn")
    assert sorted(str(w.message) + " " + w.filename for w in seen) == ["notice x.py", "notice x.py", "old x.py"]


def test_default_backbone_is_resolved():
    from faceprompt.predict import default_backbone

    assert startup.resolve_backbone("default") == startup.resolve_backbone(None) == default_backbone()
    assert startup.resolve_backbone("tiny-vit") == "tiny-vit"
