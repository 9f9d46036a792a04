# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Zero-shot baseline
#
# The frozen backbone classifies each face by comparing its image feature with the text features of
# one prompt per class ("a photo of a woman.", "a face of a person in their thirties.", ...). Nothing
# trains. This is the baseline every prompt method is measured against.

# %% tags=["parameters"]
work_dir = "work/notebooks"
figures_dir = "work/notebooks/figures"
datasets = [{"name": "synthetic", "n": 300, "size": 64}]
backbone = "default"   # the embedded face model when the package ships it, else a random test tower
weights = None         # None: the backbone's default source; or a file, "local-dir:...", "random"
device = "cpu"
threads = 1

# %%
from faceprompt import viz
from faceprompt.book import datasets as data
from faceprompt.book import results, runs
from faceprompt.book._machinery import startup
from faceprompt.book._machinery.glue import glue, show

startup.setup(threads)
backbone = glue("zs-backbone", startup.resolve_backbone(backbone))
manifests = data.prepare_datasets(datasets, work_dir)
runs_dir, cache_dir = f"{work_dir}/runs", f"{work_dir}/cache"

# %% [markdown]
# ## Accuracy on every prepared dataset (test split)

# %%
result = runs.zero_shot(backbone, manifests, runs_dir, weights=weights, device=device, cache_dir=cache_dir)
metrics = result.metrics
runs.glue_zero_shot_scores(metrics)
show(metrics[["dataset", "task", "n", "accuracy", "balanced_accuracy", "macro_f1", "ece"]])

# %%
fig = viz.accuracy_bars(metrics.assign(method="zero-shot"), chance=results.chance_levels())
viz.savefig(fig, "zero_shot_accuracy", figures_dir);

# %% [markdown]
# ## Prompt templates: ensemble or one template?
# Each task has three templates. The ensemble averages the normalised text features of all three
# per class; the other rows use one template alone.

# %%
templates = runs.template_comparison(backbone, manifests, weights=weights, device=device, cache_dir=cache_dir)
table = runs.glue_template_comparison(templates)
show(table)

# %%
fig = viz.accuracy_bars(templates, hue="prompts", chance=results.chance_levels())
viz.savefig(fig, "zero_shot_templates", figures_dir);

# %%
templates[templates.prompts != "ensemble"].drop_duplicates(["task", "prompts"])[["task", "prompts", "template"]]
