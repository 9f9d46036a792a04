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
# parts of them, so one split can serve both), and evaluated on the test split. The book's pipeline runs this notebook once
# per method with papermill; the same run from a shell:
#
# ```bash
# papermill notebooks/30_train.ipynb out.ipynb -p method vpt -p epochs 10
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
epochs = 1
batch_size = 32
lr = 2e-3
context_tokens = 8      # text context length M (CoOp, SoftCPT)
context_init = None     # where contexts start: None (each method's default), "random" or a phrase
visual_tokens = 5       # visual prompt tokens P (VPT, VPT-TS, V2PT)
method_options = {}     # any other option of the method, e.g. {"deep": True}
train_options = {}      # any other TrainConfig field, e.g. {"optimizer": "sgd", "patience": 3}
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
options = runs.method_options(method, context_tokens, visual_tokens, method_options, context_init)
config = runs.train_config(
    method, backbone, manifests, f"{work_dir}/runs", weights=weights, device=device,
    cache_dir=f"{work_dir}/cache", method_options=options, seed=seed,
    train={"epochs": epochs, "batch_size": batch_size, "lr": lr, **train_options},
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
