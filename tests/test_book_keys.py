"""Every glue key a chapter quotes is declared once and produced by the notebook it names (static: no
notebook runs). Renaming a key on either side makes the check fail."""
from __future__ import annotations

import re
import shutil

import pytest

from faceprompt.book._machinery import keycheck
from faceprompt.book._machinery.keys import KEYS, PREFIXES, GlueKey, declared, prefix_module
from faceprompt.locations import project_root

ROOT = project_root()


def test_every_key_the_book_quotes_is_declared_and_produced():
    uses = keycheck.book_uses(ROOT / "book")
    assert len(uses) > 80  # the parser finds the roles and the directives
    assert any(u.key == "eval-methods-table" and u.notebook == "40_evaluate" for u in uses)
    assert keycheck.check(ROOT / "book", ROOT / "notebooks") == []


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns("_executed", "figures", "_build"))
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    return tmp_path


def test_renaming_a_key_in_a_chapter_fails(copy):
    chapter = copy / "book" / "results.md"
    chapter.write_text(chapter.read_text().replace("::mean-zero-shot:s", "::mean-zeroshot:s", 1))
    problems = keycheck.check(copy / "book", copy / "notebooks")
    assert len(problems) == 1 and "'mean-zeroshot' is not declared for 40_evaluate" in problems[0]


def test_renaming_a_key_glued_inline_by_a_notebook_fails(copy):
    notebook = copy / "notebooks" / "40_evaluate.py"
    notebook.write_text(notebook.read_text().replace('"eval-accuracy-table"', '"eval-accuracy"'))
    problems = keycheck.check(copy / "book", copy / "notebooks")
    assert problems and all("does not glue 'eval-accuracy-table'" in p for p in problems)


def test_a_notebook_that_stops_calling_the_producer_fails(copy):
    notebook = copy / "notebooks" / "70_recorded.py"
    notebook.write_text(notebook.read_text().replace("speed.glue_inference(results_dir)", "pass"))
    problems = keycheck.check(copy / "book", copy / "notebooks")
    assert problems and all("does not call speed.glue_inference" in p for p in problems)


def test_a_producer_that_glues_another_name_fails(copy):
    renamed = tuple(GlueKey("avg-{method}", k.notebook, k.producer) if k.pattern == "mean-{method}" else k
                    for k in KEYS)
    chapter = copy / "book" / "results.md"
    chapter.write_text(chapter.read_text().replace("::mean-", "::avg-"))
    problems = keycheck.check(copy / "book", copy / "notebooks", renamed)
    assert problems and all("results.glue_results does not glue 'avg-{method}'" in p for p in problems)


def test_a_key_quoted_from_the_wrong_notebook_fails(copy):
    chapter = copy / "book" / "results.md"
    chapter.write_text(chapter.read_text().replace("_executed/40_evaluate.ipynb::mean-zero-shot",
                                                   "_executed/20_zero_shot.ipynb::mean-zero-shot", 1))
    assert any("not declared for 20_zero_shot" in p for p in keycheck.check(copy / "book", copy / "notebooks"))


def test_every_declaration_is_produced_by_its_notebook():
    sources = {p.stem: p.read_text() for p in (ROOT / "notebooks").glob("[0-9]*.py")}
    for entry in KEYS:
        assert entry.notebook in sources, entry
        assert keycheck.produced(entry, sources[entry.notebook]) is None, entry


def test_patterns_expand_from_the_registries():
    assert declared("mean-softcpt+vpt") and declared("slowdown-vpt-ts-max") and not declared("mean-vtp")
    assert declared("train-acc-vpt-seed2-synthetic-age") and not declared("prompt-share-pe-core-vpt-mood")
    assert all(len(declared(k.pattern)) <= 1 for k in KEYS if "{" not in k.pattern)  # literal keys: one home


def test_references_are_parsed_with_their_notebook(tmp_path):
    chapter = tmp_path / "c.md"
    chapter.write_text("A {glue:text}`../_executed/30_train_vpt.ipynb::train-epochs-vpt:s` b {glue}`lonely`\n"
                       "```{glue} eval-ece-table\n:doc: _executed/40_evaluate.ipynb\n```\n")
    uses = [(u.notebook, u.key) for u in keycheck.chapter_uses(chapter)]
    assert uses == [("30_train_vpt", "train-epochs-vpt"), (None, "lonely"), ("40_evaluate", "eval-ece-table")]
    assert keycheck.notebook_of("30_train_vpt-seed1", ["30_train", "40_evaluate"]) == "30_train"
    assert re.search("names no executed notebook", "\n".join(keycheck.check(tmp_path, ROOT / "notebooks")))


# --- a key's prefix names the module that glues it -----------------------------------------------------

def test_every_produced_key_starts_with_a_prefix_of_its_module():
    assert keycheck.prefix_problems() == []
    assert prefix_module("ftiny-zs-utkface-age") == "faceclip_tiny" and prefix_module("crop-landmarks-n") == "wild"
    assert prefix_module("eval-seed-table") == "seeds" and prefix_module("eval-methods-table") == "results"
    assert prefix_module("speed-gpu-table") == "speed" and prefix_module("eval-backbone") is None


def test_a_key_glued_under_another_module_prefix_fails():
    moved = (*KEYS, GlueKey("ftiny-landmarks", "70_recorded", "wild.glue_landmarks"))
    problems = keycheck.prefix_problems(moved)
    assert problems == ["'ftiny-landmarks' (glued by wild.glue_landmarks) does not start with a key prefix of wild "
                        "(declared: crop-, wild-, demo-); it reads as faceclip_tiny's"]


def test_a_producing_module_without_its_prefix_fails():
    prefixes = {m: own for m, own in PREFIXES.items() if m != "faceclip_tiny"}
    problems = keycheck.prefix_problems(KEYS, prefixes)
    assert problems and all("of faceclip_tiny (declared: none)" in p for p in problems)


def test_a_prefix_declared_twice_or_never_used_fails():
    prefixes = {**PREFIXES, "wild": (*PREFIXES["wild"], "ftiny-", "unused-")}
    assert keycheck.prefix_problems(KEYS, prefixes) == [
        "key prefix 'ftiny-' is declared for both faceclip_tiny and wild",
        "key prefix 'unused-' of wild: no key glued by wild starts with it"]
