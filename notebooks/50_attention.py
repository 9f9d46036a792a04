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
# # Where the models look
#
# Two views of the same test faces, for each task:
#
# * **Integrated gradients** (captum): how much each pixel moves the logit of the predicted class,
#   integrated along the straight path from a black image to the face;
# * **attention of the pooling head**: both towers end in an attention-pool (MAP) head whose latent
#   query attends over every final token. Its weights on the patch tokens are a map of where the
#   image feature is read from; its weight on the visual prompt tokens says how much of the feature
#   comes from the prompts.
#
# Both are shown for the zero-shot model and for visual-prompt methods, on a PE-Core-shaped tower
# (cls token, 2-D RoPE) and a SigLIP2-shaped one (no cls token).

# %% tags=["parameters"]
work_dir = "work/notebooks"
figures_dir = "work/notebooks/figures"
datasets = [{"name": "synthetic", "n": 300, "size": 64}]
backbones = ["default", "tiny-vit"]   # one PE-Core-shaped, one SigLIP2-shaped tower
weights = None
device = "cpu"
threads = 1
methods = None       # None: zero-shot and every visual-prompt method (faceprompt.book.methods)
faces = 3            # test faces shown
ig_steps = 16        # integration steps
train_config = {"epochs": 1}   # TrainConfig fields of a short run, for a backbone without trained runs here
splits = {}          # where that run trains and stops: train_splits, val_splits, train_part, val_part (as 30_train)

# %%
import pandas as pd
import torch

from faceprompt import explain, viz
from faceprompt.book import attention
from faceprompt.book import datasets as data
from faceprompt.book._machinery import startup
from faceprompt.book._machinery.glue import glue, show
from faceprompt.book.methods import attention_methods

startup.setup(threads)
methods = attention_methods() if methods is None else methods
manifests = data.prepare_datasets(datasets, work_dir)
frame = data.manifest_frame(manifests)
paths = list(frame[frame.split == "test"]["path"][:faces])
backbones = [startup.resolve_backbone(b) for b in backbones]
backbones

# %%
summary_rows = []
for backbone in backbones:
    models = attention.attention_models(backbone, f"{work_dir}/runs", methods, manifests, work_dir, weights=weights,
                                        device=device, fields=train_config, splits=splits)
    tower = next(iter(models.values())).backbone
    images = explain.load_images(paths, tower)
    shown = explain.display_images(images, tower)
    size = images.shape[-1]
    for task in next(iter(models.values())).task_names:
        columns, maps = [], [[] for _ in paths]
        for name, model in models.items():
            attributions = explain.integrated_gradients(model, images, task, steps=ig_steps)
            pooling = explain.upsample(explain.method_attention(model, images, task).patches, size)
            columns += [f"{name}: IG", f"{name}: attention"]
            for i in range(len(paths)):
                maps[i] += [attributions[i], pooling[i]]
        titles = explain.predicted_labels(models[methods[-1]], images, task)
        fig = viz.overlay_grid(shown, maps, titles, columns)
        fig.suptitle(f"{backbone} ({tower.family}-shaped), {task}", y=1.02, fontsize=10)
        viz.savefig(fig, f"attention_{tower.family}_{task}", figures_dir)
    summary_rows += explain.attention_summary(models, images)

# %% [markdown]
# ## How much of the pooled feature comes from the prompts
# Mean attention weight of the pooling head on the visual prompt tokens and on the cls token, and the
# entropy of its attention over patches (log of the patch count = uniform).

# %%
summary = pd.DataFrame(summary_rows)
attention.glue_prompt_shares(summary)
glue("attention-table", show(summary), display=False)
show(summary)
