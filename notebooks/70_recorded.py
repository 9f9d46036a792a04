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
# # Recorded measurements
#
# Numbers that no notebook of this build measures: the benchmarks of the thesis's backbones on one GPU
# (`benchmarks/results/`, written by `faceprompt bench --json`), faceclip-tiny's pretraining record
# (`recipe.json`, written by `faceprompt pretrain`), the shapes of the models, and the few measurements
# that kept no JSON (`book/_data/logged_measurements.json`, each with the command that printed it).
# It also reads the CPU benchmarks of the face crop and the demo, of the GFLOPs counted two ways and of the
# task balance's cached views (`benchmarks/results/cpu-*/`) and the demo's default settings from the code. This
# notebook glues every number {doc}`../speed`, {doc}`../faceclip_tiny`, the face-crop section of
# {doc}`../datasets`, {doc}`../demo` and the cached-views paragraph of {doc}`../protocol` quote.

# %% tags=["parameters"]
work_dir = "work/notebooks"    # unused: nothing is computed here (every notebook takes it)
threads = 1
results_dir = "benchmarks/results/h200-2026-11-27"
flops_results_dir = "benchmarks/results/cpu-2026-12-07-flops"  # GFLOPs counted both ways
feature_views = "benchmarks/results/cpu-2026-12-07-views/feature_views.json"  # bench_feature_views.py
recipe = "faceprompt/pretrained/faceclip-tiny/recipe.json"
pretrain_gpu = "benchmarks/results/h200-2026-11-27/pretrain_gpu.json"
releases_dir = "benchmarks/results/faceclip-tiny-releases"  # earlier releases' recipe.json
logged = "book/_data/logged_measurements.json"
cpu_results_dir = "benchmarks/results/cpu-2026-12-03"  # bench_landmarks.py
wild_results_dir = "benchmarks/results/cpu-2026-12-07-blazeface"  # bench_in_the_wild.py, bench_detector_photos.py, bench_demo_cpu.py --json
                                                        # of the shipped model (its tuned run)
earlier_wild_results = {"centre64": "benchmarks/results/cpu-2026-12-03",  # the same benchmark, earlier releases
                        "wild80": "benchmarks/results/cpu-2026-12-03-wild",
                        "wildpl": "benchmarks/results/cpu-2026-12-03-prompt-loss",
                        "this release, zero-shot": "benchmarks/results/cpu-2026-12-07-zero-shot"}
shapes = {"pe-core-b16": "PE-Core-B-16"}  # key label -> open_clip model (faceclip-tiny's: from its recipe)

# %%
from faceprompt.book import architecture, speed
from faceprompt.book import faceclip_tiny as pretraining
from faceprompt.book import logged as logged_numbers
from faceprompt.book import views, wild
from faceprompt.book._machinery import startup

startup.setup(threads)

# %% [markdown]
# ## Inference and training cost on one GPU

# %%
speed.glue_inference(results_dir)

# %%
speed.glue_epoch_cache(results_dir)

# %%
speed.glue_flops(flops_results_dir)

# %% [markdown]
# ## Cached views of the task balance's copies (the protocol chapter)

# %%
views.glue_views(feature_views)

# %% [markdown]
# ## faceclip-tiny's recipe and its zero-shot test scores

# %%
record = pretraining.read_json(recipe)
pretraining.glue_recipe(record)
pretraining.glue_captions()
pretraining.glue_wild_recipe(record)
pretraining.glue_zero_shot(record)
releases = {r: pretraining.read_json(f"{releases_dir}/{r}.json") for r in pretraining.RELEASES}
for release, earlier in releases.items():
    pretraining.glue_release(earlier, release)
pretraining.glue_targets(record, {r: releases[r] for r in pretraining.IN_THE_WILD_SINCE})
pretraining.glue_cache_time(record)  # this run built its own image cache (FER+ left out, a new set of crops)
pretraining.glue_pretrain_gpu(pretraining.read_json(pretrain_gpu), releases[pretraining.GPU_TIMED_RELEASE])

# %% [markdown]
# ## Model shapes (counted on the meta device)

# %%
architecture.glue_shapes({"faceclip-tiny": record["config"]["model"], **shapes})

# %% [markdown]
# ## Measurements without JSON

# %%
sorted(logged_numbers.glue_logged(logged))

# %% [markdown]
# ## The face crop and the demo on held-out photos (CPU)

# %%
wild.glue_landmarks(cpu_results_dir)

# %%
wild.glue_wild(wild_results_dir)
wild.glue_releases(earlier_wild_results, wild_results_dir)

# %%
wild.glue_detectors(wild_results_dir)

# %%
wild.glue_demo_timings(wild_results_dir)

# %%
wild.glue_demo_settings()
