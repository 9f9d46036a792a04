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
# # The demo
#
# Upload a photo: every face is found by a detector, cropped, and labelled with gender, age bin and
# emotion by the chosen backbone and prompts (zero-shot, or any trained run in the work folder).
# The widget needs a running kernel (Jupyter, or `faceprompt demo --serve` through Voila); in the
# static book the example below shows what it draws.

# %% tags=["parameters"]
work_dir = "work/notebooks"
figures_dir = "work/notebooks/figures"
datasets = [{"name": "synthetic", "n": 300, "size": 64}]
backbone = "default"
device = "cpu"
threads = 1
example_faces = 6    # test faces pasted into the example photo
crop_examples = 4    # photos shown with their box and aligned crops
photo_side = 480     # longest side of the photos from outside the datasets

# %%
from faceprompt import viz
from faceprompt.book import datasets as data
from faceprompt.book import demo, photos
from faceprompt.book._machinery import startup
from faceprompt.book._machinery.glue import glue
from faceprompt.demo.app import build_app

startup.setup(threads)
backbone = startup.resolve_backbone(backbone)
manifests = data.prepare_datasets(datasets, work_dir)
app = build_app(backbone=backbone, runs_dir=f"{work_dir}/runs", device=device)
app

# %% [markdown]
# ## An example
# A photo made of test faces, run through the same path as an upload.

# %%
photo = demo.example_photo(data.manifest_frame(manifests), example_faces)
drawn = demo.demo_example(app, photo)
glue("demo-status", app.message)
fig = viz.image_grid([drawn], [app.message], cols=1, size=6)
viz.savefig(fig, "demo_example", figures_dir);

# %% [markdown]
# ## Box crop and aligned crop
# Each photo's largest face as the detection box plus margin, and aligned by five landmarks onto the
# face template (`faceprompt.align`), the crop that training, evaluation and the demo share.

# %%
crops, crop_titles = demo.crop_comparison(demo.crop_example_paths(data.manifest_frame(manifests), crop_examples))
fig = viz.image_grid(crops, crop_titles, cols=3, size=2.0)
viz.savefig(fig, "crop_comparison", figures_dir);

# %% [markdown]
# ## Photos from outside the datasets
# matplotlib's sample portrait as shipped and under the conditions real photos bring, each through the
# demo's own path (detect, align, classify, draw), with the aligned crops the classifier saw.

# %%
outside = photos.condition_photos(photo_side)
panels, panel_titles, cols, face_rows = photos.annotated_with_crops(app.pipeline(), outside)
glue("demo-photos-count", len(outside))
glue("demo-photos-table", photos.face_table(face_rows), display=False)
glue("demo-photos-right", photos.agreement(face_rows))
if panels:
    fig = viz.image_grid(panels, panel_titles, cols=cols, size=2.4)
    viz.savefig(fig, "demo_photos", figures_dir);
photos.face_table(face_rows)

# %% [markdown]
# ## Tuned and zero-shot, side by side
# The app answers with the tuned run shipped with the embedded model; here the same photos through the same
# detector and crop with the bare model's hand-written prompts (`--zero-shot`), to see what tuning changed.

# %%
tuned = app.pipeline()
bare = demo.zero_shot_pipeline(tuned)
glue("demo-tuned-prompts", tuned.classifier.describe()["prompts"])
_, _, _, bare_rows = photos.annotated_with_crops(bare, outside)
glue("demo-photos-zero-shot-right", photos.agreement(bare_rows))
both = demo.side_by_side(face_rows, bare_rows)
glue("demo-side-by-side", both, display=False)
both

# %% [markdown]
# The same classifier on this build's test faces of every age bin, per gender (tuned, then zero-shot):
# whether the portrait's errors are this model's habit.

# %%
frame = data.manifest_frame(manifests)
older = demo.older_faces_table(tuned.classifier, frame)
glue("demo-older-table", older, display=False)
ages = demo.age_gender_comparison(tuned.classifier, bare.classifier, frame)
glue("demo-age-gender-table", ages, display=False)
ages
