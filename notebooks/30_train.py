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
# # Training one prompt method
#
# One method (`method`) is trained on the training split of the prepared datasets, with early stopping
# on the validation split (`train_splits`, `val_splits`; `train_part` and `val_part` keep disjoint hashed
# parts of them, so one split can serve both), and evaluated on the test split. `train_config` holds the
# run's TrainConfig fields in a run config's own words (`configs/train_*.yaml`); its `method_options` serve
# every method, each taking those its text and visual parts declare. The book's pipeline runs this notebook
# once per method with papermill; the same run from a shell:
#
# ```bash
# papermill notebooks/30_train.ipynb out.ipynb -p method vpt \
#     -y 'train_config: {epochs: 10, batch_size: 32, method_options: {tokens: 5}}'
# ```

# %% tags=["parameters"]
work_dir = "work/notebooks"
figures_dir = "work/notebooks/figures"
datasets = [{"name": "synthetic", "n": 300, "size": 64}]
method = "vpt"          # zero-shot is not trained: see 20_zero_shot
seed = 0                # training seed (initialisation, shuffling); seeds other than 0 get their own run folder
backbone = "default"
weights = None
device = "cpu"
threads = 1
# TrainConfig fields; method_options: context_tokens (CoOp, SoftCPT), tokens (VPT, VPT-TS, V2PT), init
# (where a learned context starts), deep, ...
train_config = {"epochs": 1, "batch_size": 32, "lr": 2e-3, "method_options": {"context_tokens": 8, "tokens": 5}}
train_splits = ["train"]
val_splits = ["val"]    # [] : no validation, all epochs run and the last is kept
train_part = None       # [lo, hi]: only the rows whose identity hash falls in it, e.g. [0, 0.6]
val_part = None         # e.g. [0.6, 1]: the rest of the same split, to choose the epoch on

# %%
import pandas as pd

from faceprompt import viz
from faceprompt.book import datasets as data
from faceprompt.book import runs
from faceprompt.book._machinery import startup
from faceprompt.book._machinery.glue import show
from faceprompt.book.methods import run_name

startup.setup(threads)
backbone = startup.resolve_backbone(backbone)
manifests = data.prepare_datasets(datasets, work_dir)
config = runs.train_config(
    method, backbone, manifests, f"{work_dir}/runs", train_config, weights=weights, device=device,
    cache_dir=f"{work_dir}/cache", seed=seed,
    train_splits=train_splits, val_splits=val_splits, train_part=train_part, val_part=val_part,
)
pd.Series(config.to_dict(), dtype=object).drop(["train", "val"])

# %%
fit, evaluation = runs.train_and_evaluate(config)
name = run_name(method, seed)
runs.glue_training(fit, evaluation.metrics, name)

# %% [markdown]
# ## Training curves

# %%
history = pd.DataFrame(fit.history)
fig = viz.training_curves(history, ("train_loss", "val_loss", "val_mean_accuracy"))
viz.savefig(fig, f"train_{name}", figures_dir);

# %% [markdown]
# ## Test accuracy

# %%
metrics = evaluation.metrics
show(metrics[["dataset", "task", "n", "accuracy", "balanced_accuracy", "macro_f1", "ece"]])
