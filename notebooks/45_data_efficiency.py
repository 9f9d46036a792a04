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
# # Data efficiency on the held-out target
#
# How many labelled faces per class a prompt method needs to beat zero-shot on the target task (`target`),
# the one whose labels the backbone never saw. Each point tunes one method on `k` faces per class of the
# target's training split (seeded draws, `seeds`), keeps the epoch that is best on its validation split,
# and is scored on the whole test split. Zero-shot learns nothing: a flat line.

# %% tags=["parameters"]
work_dir = "work/notebooks"
figures_dir = "work/notebooks/figures"
datasets = [{"name": "synthetic", "n": 300, "size": 64}]
target = {"dataset": "synthetic", "task": "emotion"}
backbone = "default"
weights = None
threads = 1
shots = [1, 4, 16, 0]   # faces per class; 0: every labelled training face
seeds = [0, 1]
# method -> its TrainConfig fields (as 30_train's train_config), optimizer steps to aim for and the most epochs
methods = {
    "coop": {"train_config": {"batch_size": 32, "lr": 0.002, "method_options": {"context_tokens": 4}},
             "steps": 60, "max_epochs": 30},
    "softcpt": {"train_config": {"batch_size": 32, "lr": 0.002, "method_options": {"context_tokens": 4}},
                "steps": 60, "max_epochs": 30},
    "vpt": {"train_config": {"batch_size": 32, "lr": 0.002, "method_options": {"tokens": 5}},
            "steps": 20, "max_epochs": 5},
}
val_limit = 200

# %%
from faceprompt import viz
from faceprompt.book import datasets as data
from faceprompt.book import few_shot, results
from faceprompt.book._machinery import startup

startup.setup(threads)
backbone = startup.resolve_backbone(backbone)
manifests = data.prepare_datasets(datasets, work_dir)
zero_shot = results.collect(f"{work_dir}/runs")["metrics"]
zero_shot = zero_shot[(zero_shot.method == "zero-shot") & (zero_shot.dataset == target["dataset"])
                      & (zero_shot.task == target["task"])]["accuracy"].iloc[0]
points = few_shot.data_efficiency(methods, shots, seeds, manifests[target["dataset"]], target["dataset"],
                                  target["task"], backbone, f"{work_dir}/few_shot", weights=weights,
                                  val_limit=val_limit)
table = few_shot.curve_table(points)
few_shot.glue_data_efficiency(table, zero_shot)
table

# %%
fig = viz.data_efficiency(table, zero_shot, f"{target['dataset']} {target['task']}")
viz.savefig(fig, "data_efficiency", figures_dir);
