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
# # Comparing the methods
#
# Every evaluated run of this work folder (zero-shot and each trained method) on the same test split:
# accuracy per task and dataset, the change from zero-shot, the parameters each method adds (on the
# thesis's real backbones too), inference latency, the age confusion, calibration and fairness gaps.

# %% tags=["parameters"]
work_dir = "work/notebooks"
figures_dir = "work/notebooks/figures"
datasets = [{"name": "synthetic", "n": 300, "size": 64}]
backbone = "default"
weights = None
device = "cpu"
threads = 1
methods = None         # None: every method of the book (faceprompt.book.methods.book_methods)
param_backbones = ["siglip2-b16", "pe-core-b16", "pe-core-l14-336"]  # counted on the meta device
bench_backbone = "default"      # latency is measured on this backbone
bench_weights = None
bench_batch_sizes = [1, 16]
bench_repeats = 3
target = {"dataset": "synthetic", "task": "emotion"}  # the labels the backbone never saw (see 45_data_efficiency)

# %%
from faceprompt import viz
from faceprompt.book import calibration, results, seeds, speed, target as held_out
from faceprompt.book import datasets as data
from faceprompt.book._machinery import startup
from faceprompt.book._machinery.glue import count, glue, show
from faceprompt.book.methods import book_methods, method_order
from faceprompt.tasks import TASKS

startup.setup(threads)
backbone = glue("eval-backbone", startup.resolve_backbone(backbone))
methods = book_methods() if methods is None else methods
manifests = data.prepare_datasets(datasets, work_dir)
runs_dir, cache_dir = f"{work_dir}/runs", f"{work_dir}/cache"
tables = results.collect(runs_dir)
metrics = tables["metrics"]
sorted(metrics["method"].unique())

# %% [markdown]
# ## The held-out target
# The dataset and task whose labels the backbone's pretraining never read: zero-shot against every
# method (seed mean ± sd), the gain, whether it exceeds twice the seed spread, and each method's worst
# change from zero-shot on the other datasets and tasks. The method the validation split selects is the
# one a user would ship (the test split decides nothing).

# %%
target_scores = held_out.glue_target(metrics, target["dataset"], target["task"], runs_dir)
show(target_scores)

# %% [markdown]
# ## Accuracy per task and dataset

# %%
accuracy = results.with_macro_f1(results.accuracy_table(metrics), metrics)
glue("eval-accuracy-table", show(accuracy), display=False)
show(accuracy)

# %%
fig = viz.accuracy_bars(metrics, chance=results.chance_levels())
viz.savefig(fig, "accuracy_by_method", figures_dir);

# %% [markdown]
# ## Against zero-shot, and what each method adds

# %%
summary = results.glue_results(metrics)
glue("eval-summary-table", show(summary), display=False)
show(summary)

# %%
fig = viz.tradeoff_scatter(summary, x="added", y="mean_accuracy")
viz.savefig(fig, "accuracy_vs_parameters", figures_dir);

# %% [markdown]
# ## Across training seeds
# Methods trained with several seeds: mean and spread (standard deviation over seeds) of each test
# score, its change from zero-shot, and whether the method beats zero-shot on at least two of the three
# tasks (gender: mean accuracy over the datasets that label it). Also written to the work folder as
# `seed_table.csv`, `seed_verdicts.csv` and `seed_table.md`.

# %%
seed_scores, verdicts = seeds.glue_seed_results(metrics, work_dir)
print(open(f"{work_dir}/seed_table.md").read())
verdicts

# %% [markdown]
# ## Added parameters on the real backbones
# Counted on PyTorch's meta device: shapes only, no weights and no memory, so these counts hold
# for the thesis's backbones even on a laptop.

# %%
params = speed.parameter_table(param_backbones, methods)
params_wide = params.pivot_table(index="method", columns="backbone", values="added", sort=False)
params_wide = params_wide.reindex(method_order(params_wide.index))[param_backbones]
glue("eval-params-table", params_wide.map(count), display=False)
params_wide.map(count)

# %% [markdown]
# ## Inference latency
# Median time of one inference call per batch size, each method timed round-robin with zero-shot
# on the same backbone and device (text methods use their cached class features).

# %%
bench_name = glue("bench-backbone", startup.resolve_backbone(bench_backbone))
latency = speed.latency_table(bench_name, methods, bench_batch_sizes, repeats=bench_repeats,
                              weights=bench_weights, device=device)
speed.glue_latency(latency, device)
latency_wide = latency.pivot_table(index="method", columns="batch_size", values=["median_ms", "vs_zero_shot"],
                                   sort=False).reindex(method_order(latency["method"]))
glue("eval-latency-table", show(latency_wide, 2), display=False)
show(latency_wide, 2)

# %% [markdown]
# ## Age: which bins are confused

# %%
confusion = tables["confusion"]
age_confusion = confusion[confusion.task == "age"]
first = age_confusion["dataset"].iloc[0] if len(age_confusion) else None  # the first dataset with age labels
age_rows = age_confusion[age_confusion.dataset == first]
fig = viz.confusion_grid(age_rows, "age", list(TASKS["age"].classes)) if len(age_rows) else viz.no_data("no age labels")
viz.savefig(fig, "age_confusion", figures_dir)
glue("age-confusion-dataset", str(first))
age_metrics = results.glue_one_off(metrics)
show(age_metrics)

# %% [markdown]
# ## Calibration
# Expected calibration error per task, and a reliability diagram for emotion: how often the
# top class is right against how confident the model is (each method's seed-0 run, its test
# datasets pooled, on the bins ECE is computed on).

# %%
ece = metrics.pivot_table(index="method", columns=["dataset", "task"], values="ece", sort=False)
glue("eval-ece-table", show(ece.reindex(method_order(ece.index))), display=False)
curves = calibration.reliability_curves(runs_dir, "emotion")
fig = viz.reliability_diagram(curves, "emotion")
viz.savefig(fig, "reliability_emotion", figures_dir);

# %% [markdown]
# ## Fairness
# Accuracy per demographic group where a dataset labels one (race in UTKFace and FairFace).

# %%
fairness = tables["fairness"]
print(results.fairness_summary(fairness))
if len(fairness):
    for task in fairness["task"].unique():
        fig = viz.group_accuracy_bars(fairness, task)
        viz.savefig(fig, f"fairness_{task}", figures_dir)
    gaps = fairness.pivot_table(index="method", columns=["dataset", "task"], values="gap", sort=False)
    glue("eval-fairness-table", show(gaps), display=False)
