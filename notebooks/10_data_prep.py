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
# # Data preparation
#
# Every dataset of the run becomes face crops and one manifest (`faceprompt prepare`), here with the
# run's parameters. The default draws synthetic faces, so the notebook runs offline; a profile with
# real data points `root` at a downloaded dataset (see the chapter on datasets).

# %% tags=["parameters"]
work_dir = "work/notebooks"            # manifests, runs and caches of this run
figures_dir = "work/notebooks/figures"  # the book's run writes into book/figures
datasets = [{"name": "synthetic", "n": 300, "size": 64}]
backbone = "default"   # its recorded pretraining split (if any) is checked against this run's test split
target = {"dataset": "synthetic", "task": "emotion"}  # labels the backbone's pretraining must not have read
threads = 1
workers = 2

# %%
from faceprompt import viz
from faceprompt.book import datasets as data
from faceprompt.book import leakage
from faceprompt.book._machinery import startup
from faceprompt.book._machinery.glue import GLUED

startup.setup(threads)
manifests = data.prepare_datasets(datasets, work_dir, workers=workers)
frame = data.manifest_frame(manifests)
manifests

# %% [markdown]
# ## Splits
# Rows per dataset and split, and how many of them carry each task's label (a missing label is
# masked out of the loss and of the metrics).

# %%
splits = data.glue_data_summary(frame, datasets)
splits

# %% [markdown]
# ## Held out from the backbone's pretraining
# A backbone pretrained here (faceclip-tiny) records the split of every image it saw; no test image of
# this run may be among its training or validation images.

# %%
heldout = leakage.held_out_check(manifests, startup.resolve_backbone(backbone))
print(GLUED["heldout-summary"])
heldout

# %% [markdown]
# ## Labels left for prompt tuning
# The target's labels must never have reached the backbone's pretraining (its recipe's roles), so that
# prompt tuning adapts it to something new.

# %%
print(leakage.adaptation_check(startup.resolve_backbone(backbone), target))

# %% [markdown]
# ## Label distributions
# Class counts per task, dataset and split.

# %%
counts = data.label_counts(frame)
fig = viz.label_distribution(counts)
viz.savefig(fig, "label_distribution", figures_dir);

# %% [markdown]
# ## Some test faces

# %%
images, titles = data.sample_faces(frame, n=12)
fig = viz.image_grid(images, titles, cols=6)
viz.savefig(fig, "sample_faces", figures_dir);
