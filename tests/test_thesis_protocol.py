"""The thesis's training choices, each pinned to its definition on a case small enough to compute by hand."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from engine_helpers import TEXT_OPTIONS, fit_then_crash, synthetic_manifest, without_timing  # noqa: F401
from faceprompt.training import loop as train_module
from faceprompt.data.manifest import TASK_COLUMNS
from faceprompt.engine.optim import optimizer_step
from faceprompt.engine.runtime import LocalRuntime, make_runtime
from faceprompt.engine.schedule import warmup_cosine
from faceprompt.engine.selection import judge_epoch
from faceprompt.evaluate import age_offset_table, confusion_tables
from faceprompt.training.losses import age_bin_distances, hou_penalty, multitask_loss, ordinal_penalty
from faceprompt.metrics import offset_counts
from faceprompt.training.balance import balanced_sample_weights
from faceprompt.training.task_weights import LossEMATaskWeights, data_task_weights
from faceprompt.tasks import AGE_BINS
from faceprompt.training.loop import TrainConfig, _balance_power, _balanced_tasks, _class_weights, fit

# Bin midpoints in years, "70+" closed at 90: (70 + 90) / 2 = 80. The largest distance is 80 - 1 = 79.
MIDPOINTS = [1, 6, 14.5, 24.5, 34.5, 44.5, 54.5, 64.5, 80]


def _softmax(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _eq16_by_hand(row, true_bin, omega, mu):
    probs = _softmax(row)
    return sum(p ** 2 * ((abs(MIDPOINTS[i] - MIDPOINTS[true_bin]) / 79) ** omega + mu) for i, p in enumerate(probs))


# --- the age loss ----------------------------------------------------------------------------------

def test_age_bin_distances_are_midpoint_gaps_over_the_largest():
    distances = age_bin_distances(AGE_BINS)
    assert distances[0, 8] == distances[8, 0] == 1.0
    assert torch.isclose(distances[0, 1], torch.tensor(5 / 79))
    assert torch.isclose(distances[7, 8], torch.tensor(15.5 / 79))
    assert torch.all(distances.diagonal() == 0)


def test_hou_penalty_on_three_samples_matches_eq16_by_hand():
    rows = [[0.0] * 9, [0.0] * 8 + [50.0], [2.0, 1.0, 0.5, 0, 0, 0, 0, 0, -1.0]]
    true_bins = [4, 0, 1]
    omega, mu = 2.0, -0.0025
    logits = torch.tensor(rows + [[9.0] * 9])  # a fourth, unlabelled sample must not count
    targets = torch.tensor(true_bins + [-1])
    got = hou_penalty(logits, targets, age_bin_distances(AGE_BINS), omega, mu)
    by_hand = sum(_eq16_by_hand(r, y, omega, mu) for r, y in zip(rows, true_bins)) / 3
    assert math.isclose(float(got), by_hand, rel_tol=1e-5)
    # all mass on 70+ for a baby: the largest distance, (1)^omega + mu
    assert math.isclose(_eq16_by_hand(rows[1], 0, omega, mu), 1 + mu, rel_tol=1e-6)


def test_the_hou_age_loss_is_ce_plus_weight_times_penalty_and_other_tasks_are_plain_ce():
    torch.manual_seed(0)
    logits = {"age": torch.randn(3, 9), "gender": torch.randn(3, 2)}
    targets = {"age": torch.tensor([4, 0, 1]), "gender": torch.tensor([0, -1, 1])}
    penalty = ordinal_penalty("hou", omega=3.0, mu=0.0)
    parts = multitask_loss(logits, targets, None, None, 30.0, None, penalty, "hou")
    ce_age = torch.nn.functional.cross_entropy(logits["age"], targets["age"])
    expected_penalty = sum(_eq16_by_hand(r, y, 3.0, 0.0) for r, y in zip(logits["age"].tolist(), [4, 0, 1])) / 3
    assert math.isclose(float(parts.terms["hou_age"]), expected_penalty, rel_tol=1e-5)
    assert torch.isclose(parts.per_task["age"], ce_age + 30.0 * parts.terms["hou_age"])
    assert torch.isclose(parts.total, parts.per_task["age"] + parts.per_task["gender"])
    assert "emd_age" not in parts.terms


# --- dynamic task weights --------------------------------------------------------------------------

def test_data_task_weights_are_inverse_label_shares_summing_to_the_task_count():
    labels = torch.tensor([[1, 0, -1], [2, 1, -1], [-1, 0, 3], [-1, -1, -1]])
    weights = data_task_weights(labels, ("age", "gender", "emotion"))
    # N / count = 4/2, 4/3, 4/1, scaled by 3 / (22/3) = 9/22
    assert weights == pytest.approx({"age": 9 / 11, "gender": 6 / 11, "emotion": 18 / 11})


def test_loss_ema_task_weights_over_three_steps():
    # The final train_multitask.py: w_t = 1 / ema_t (the data weight standing in before any loss),
    # divided by the mean of the three, so the weights sum to the number of tasks.
    data = {"age": 9 / 11, "gender": 6 / 11, "emotion": 18 / 11}  # labelled counts 2, 3, 1 of 4 rows
    tracker = LossEMATaskWeights(data, alpha=0.95)
    # 1 / data = 11/9, 11/6, 11/18, mean 11/9: the first epoch weighs tasks by their labelled counts 2:3:1
    assert tracker.weights() == pytest.approx({"age": 1.0, "gender": 1.5, "emotion": 0.5})
    tracker.update({"age": 2.0, "gender": 0.5, "emotion": 1.0})  # the first loss starts each average
    tracker.update({"age": 1.0, "gender": 0.5, "emotion": 0.0})  # no emotion label in this batch: loss 0
    tracker.update({"age": 1.0, "gender": 1.5, "emotion": 3.0})
    assert tracker.state() == pytest.approx({"age": 1.9025, "gender": 0.55, "emotion": 1.0525})
    raw = {"age": 1 / 1.9025, "gender": 1 / 0.55, "emotion": 1 / 1.0525}
    mean = sum(raw.values()) / 3
    assert tracker.weights() == pytest.approx({t: w / mean for t, w in raw.items()})
    assert sum(tracker.weights().values()) == pytest.approx(3.0)
    restored = LossEMATaskWeights(data, alpha=0.95)
    restored.load(tracker.state())
    assert restored.weights() == tracker.weights()


def test_the_older_scripts_task_weights_over_three_steps():
    # The script's older version (task_weighting: loss_ema_data): w_t = data_t / ema_t, summing to 1.
    data = {"age": 9 / 11, "gender": 6 / 11, "emotion": 18 / 11}
    tracker = LossEMATaskWeights(data, alpha=0.95, form="data_over_loss")
    assert tracker.weights() == pytest.approx({"age": 3 / 11, "gender": 2 / 11, "emotion": 6 / 11})
    tracker.update({"age": 2.0, "gender": 0.5, "emotion": 1.0})  # the first loss starts each average
    tracker.update({"age": 1.0, "gender": 0.5, "emotion": 0.0})  # no emotion label in this batch: loss 0
    tracker.update({"age": 1.0, "gender": 1.5, "emotion": 3.0})
    # age 0.95 * 1.95 + 0.05 = 1.9025; gender 0.95 * 0.5 + 0.05 * 1.5 = 0.55; emotion 0.95 * 0.95 + 0.15 = 1.0525
    assert tracker.state() == pytest.approx({"age": 1.9025, "gender": 0.55, "emotion": 1.0525})
    raw = {"age": (9 / 11) / 1.9025, "gender": (6 / 11) / 0.55, "emotion": (18 / 11) / 1.0525}
    assert tracker.weights() == pytest.approx({t: w / sum(raw.values()) for t, w in raw.items()})
    restored = LossEMATaskWeights(data, alpha=0.95, form="data_over_loss")
    restored.load(tracker.state())
    assert restored.weights() == tracker.weights()


@pytest.mark.parametrize("weighting, form", [("loss_ema", "inverse"), ("loss_ema_data", "data_over_loss")])
def test_task_weighting_selects_the_form(synthetic_manifest, weighting, form):  # noqa: F811
    cfg = TrainConfig.from_dict({"protocol": "thesis", "train": [str(synthetic_manifest)], "task_weighting": weighting})
    labels = torch.tensor([[1, 0, -1], [2, 1, -1], [-1, 0, 3], [-1, -1, -1]])
    assert train_module._loss_ema(cfg, labels).form == form


# --- the sampler -----------------------------------------------------------------------------------

def test_sampler_weights_average_inverse_class_frequency_over_a_samples_labelled_tasks():
    labels = torch.tensor([[0, 0], [0, -1], [1, 1], [-1, -1]])
    # task 0: counts {0: 2, 1: 1} -> 1/2, 1/2, 1 over its 3 samples, mean 2/3 -> 0.75, 0.75, 1.5
    # task 1: counts {0: 1, 1: 1} -> 1, 1; a sample with no label keeps weight 1
    weights = balanced_sample_weights(labels)
    assert weights.tolist() == pytest.approx([(0.75 + 1) / 2, 0.75, (1.5 + 1) / 2, 1.0])
    half = balanced_sample_weights(labels, [0, 1], [0.5, 1.0])
    r = 1 / math.sqrt(2)
    mean = (2 * r + 1) / 3
    assert half.tolist() == pytest.approx([(r / mean + 1) / 2, r / mean, (1 / mean + 1) / 2, 1.0])


def test_sampler_weights_equal_the_thesis_mean_of_n_over_k_count_over_labelled_tasks():
    # The thesis's sampler (build_weighted_sampler, combine "mean"): per task, class c weighs N_t / (K_t n_c)
    # (N_t rows labelled for the task, K_t classes present); a row's weight is the mean over its labelled tasks.
    labels = torch.tensor([[0, 0, -1], [0, 1, -1], [1, 0, -1], [-1, 0, 2], [-1, 1, 3], [-1, -1, 2]])
    age = {0: 3 / (2 * 2), 1: 3 / (2 * 1)}  # 3 labelled rows, classes 0 (2 rows) and 1 (1 row)
    gender = {0: 5 / (2 * 3), 1: 5 / (2 * 2)}
    emotion = {2: 3 / (2 * 2), 3: 3 / (2 * 1)}
    thesis = [(age[0] + gender[0]) / 2, (age[0] + gender[1]) / 2, (age[1] + gender[0]) / 2,
              (gender[0] + emotion[2]) / 2, (gender[1] + emotion[3]) / 2, emotion[2]]
    assert thesis == pytest.approx([0.7916667, 1.0, 1.1666667, 0.7916667, 1.375, 0.75])
    assert balanced_sample_weights(labels).tolist() == pytest.approx(thesis)


# --- which epoch is kept ---------------------------------------------------------------------------

@pytest.mark.parametrize("rule, improved, bad", [
    ("loss_or_accuracy", [True, True, False, True, False, False], [0, 0, 1, 0, 1, 2]),
    ("monitor", [True, False, False, True, False, False], [0, 1, 2, 0, 1, 2]),
])
def test_checkpoint_kept_when_val_loss_or_accuracy_improves(rule, improved, bad):
    history = [(0.50, 1.00), (0.48, 0.90), (0.49, 0.95), (0.55, 0.97), (0.52, 0.99), (0.53, 0.98)]
    state = SimpleNamespace(best_metric=-math.inf, best_loss=math.inf, best_epoch=0, bad_epochs=0)
    seen_improved, seen_bad = [], []
    for epoch, (accuracy, loss) in enumerate(history, start=1):
        seen_improved.append(judge_epoch(state, epoch, accuracy, loss, rule))
        seen_bad.append(state.bad_epochs)
    assert (seen_improved, seen_bad) == (improved, bad)
    assert (state.best_epoch, state.best_metric) == (4, 0.55)
    assert state.best_loss == (0.90 if rule == "loss_or_accuracy" else math.inf)


# --- precision ---------------------------------------------------------------------------------------

def test_fp16_is_refused_on_a_cpu_naming_the_alternatives():
    with pytest.raises(ValueError, match="fp16 needs a CUDA device.*bf16 or fp32"):
        make_runtime("cpu", "fp16", accelerate=False)


def _one_step(runtime, loss_scale: float = 1.0):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = warmup_cosine(optimizer, 10, 0, 0.1, 0.1)
    loss = model(torch.ones(3, 4)).square().mean() * loss_scale
    optimizer_step(loss, optimizer, scheduler, runtime, list(model.parameters()), 0.5)
    return model.weight.detach().clone()


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # the skipped step
def test_the_gradient_scaler_unscales_before_clipping_and_skips_an_overflowing_step():
    plain = _one_step(LocalRuntime(torch.device("cpu"), precision="fp32"))
    scaled_runtime = LocalRuntime(torch.device("cpu"), precision="fp16")
    assert scaled_runtime.scaler is not None and scaled_runtime.dtype == torch.float16
    assert torch.allclose(_one_step(scaled_runtime), plain, atol=1e-6)  # the scale cancels exactly
    torch.manual_seed(0)
    start = torch.nn.Linear(4, 2).weight.detach()
    assert torch.equal(_one_step(LocalRuntime(torch.device("cpu"), precision="fp16"), math.inf), start)


def test_protocol_thesis_fills_every_thesis_choice_and_each_stays_overridable(synthetic_manifest):  # noqa: F811
    # the final train_multitask.py with the multitask configs' values (PATIENCE 7, EMD_OMEGA 2.0, EMD_MU -0.0025)
    preset = TrainConfig.from_dict({"protocol": "thesis", "train": [str(synthetic_manifest)]})
    assert (preset.patience, preset.seed) == (7, 2025)
    cfg = TrainConfig.from_dict({"protocol": "thesis", "train": [str(synthetic_manifest)], "patience": 5})
    assert (cfg.age_ordinal, cfg.age_ordinal_weight, cfg.age_ordinal_omega, cfg.age_ordinal_mu) == \
        ("hou", 30.0, 2.0, -0.0025)
    assert (cfg.task_weighting, cfg.task_weight_ema, cfg.best_rule) == ("loss_ema", 0.95, "loss_or_accuracy")
    assert (cfg.class_balance, cfg.class_balance_power, cfg.class_balance_task_powers) == ("sampler", 1.0, {})
    assert (cfg.precision, cfg.grad_clip, cfg.batch_size, cfg.lr, cfg.min_lr, cfg.lr_schedule_unit) == \
        ("fp16", None, 60, 2e-3, 1e-6, "epoch")  # BATCH_SIZE 60: vpt_10_cn*.json at the head
    assert cfg.patience == 5  # set in the config: the preset does not replace it
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    default = TrainConfig.from_dict({"train": [str(synthetic_manifest)]})
    assert (default.age_ordinal, default.task_weighting, default.best_rule, default.precision) == \
        ("emd", "fixed", "monitor", "auto")
    assert (default.class_balance, default.lr_schedule_unit, default.seed) == ("none", "step", 0)


def test_the_thesis_preset_has_unit_class_weights_and_the_sampler(synthetic_manifest):  # noqa: F811
    # train_multitask.py: CrossEntropyLoss(weights=torch.ones(K)) for every task, and
    # build_weighted_sampler(training_set, class weights "default", combine="mean") for the draws
    cfg = TrainConfig.from_dict({"protocol": "thesis", "train": [str(synthetic_manifest)]})
    labels = torch.tensor([[0, 0, -1], [0, 1, -1], [1, 0, -1], [-1, 0, 2], [-1, 1, 3], [-1, -1, 2]])
    assert _class_weights(cfg, labels, torch.device("cpu")) is None
    columns = _balanced_tasks(cfg)
    assert columns == [0, 1, 2]
    weights = balanced_sample_weights(labels, columns, [_balance_power(cfg, cfg.tasks[j]) for j in columns])
    age = {0: 3 / (2 * 2), 1: 3 / (2 * 1)}  # N_t / (K_t n_c), as in the sampler test above
    gender = {0: 5 / (2 * 3), 1: 5 / (2 * 2)}
    emotion = {2: 3 / (2 * 2), 3: 3 / (2 * 1)}
    assert weights.tolist() == pytest.approx([(age[0] + gender[0]) / 2, (age[0] + gender[1]) / 2,
                                              (age[1] + gender[0]) / 2, (gender[0] + emotion[2]) / 2,
                                              (gender[1] + emotion[3]) / 2, emotion[2]])


def test_the_epoch_schedule_steps_as_the_thesiss_cosine_annealing():
    # train_multitask.py: CosineAnnealingLR(T_max=EPOCHS, eta_min=1e-6), scheduler.step() after every epoch.
    epochs, steps_per_epoch, lr = 5, 3, 2e-3
    ours = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = warmup_cosine(ours, epochs, 0, lr, 1e-6, steps_per_epoch=steps_per_epoch)
    theirs = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=epochs, eta_min=1e-6)
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):  # every step of the epoch trains at the epoch's rate
            assert ours.param_groups[0]["lr"] == pytest.approx(theirs.param_groups[0]["lr"], rel=1e-9)
            ours.step()
            scheduler.step()
        theirs.step()
        annealing.step()
    assert theirs.param_groups[0]["lr"] == pytest.approx(1e-6)  # after T_max epochs: the floor


@pytest.mark.parametrize("change, field", [
    ({"protocol": "paper"}, "protocol"),
    ({"task_weighting": "loss_ema", "task_weights": {"age": 2.0}}, "task_weights"),
    ({"age_ordinal": "l1"}, "age_ordinal"),
    ({"best_rule": "loss"}, "best_rule"),
    ({"class_balance_task_powers": {"height": 1.0}}, "class_balance_task_powers"),
    ({"task_weight_ema": 1.0}, "task_weight_ema"),
])
def test_bad_thesis_options_are_refused_by_field(synthetic_manifest, change, field):  # noqa: F811
    with pytest.raises(ValueError, match=field):
        TrainConfig.from_dict({"train": [str(synthetic_manifest)], **change})


def _thesis_run(manifest, root, **changes):
    base = dict(protocol="thesis", method="softcpt", method_options=dict(TEXT_OPTIONS), backbone="tiny-pe",
                train=[str(manifest)], epochs=2, batch_size=16, precision="fp32", run_dir=str(root / "runs"),
                run_id="thesis", cache_dir=str(root / "cache"), max_train_samples=48)
    return TrainConfig.from_dict({**base, **changes})


def test_a_thesis_run_logs_its_task_weights_and_resumes_exactly(synthetic_manifest, tmp_path,  # noqa: F811
                                                                monkeypatch):
    judged = []
    monkeypatch.setattr(train_module, "judge_epoch", lambda state, epoch, metric, loss, rule:
                        judged.append(loss) or judge_epoch(state, epoch, metric, loss, rule))
    whole = fit(_thesis_run(synthetic_manifest, tmp_path / "a"), progress=False)
    first, second = whole.history
    weights = [first[f"task_weight_{t}"] for t in ("gender", "age", "emotion")]
    assert sum(weights) == pytest.approx(3.0) and all(w > 0 for w in weights)  # mean 1
    assert sum(second[f"task_weight_{t}"] for t in ("gender", "age", "emotion")) == pytest.approx(3.0)
    assert second["task_weight_age"] != first["task_weight_age"]  # the averages moved during epoch 1
    # one rate per epoch, the cosine over the 2 epochs down to 1e-6: 2e-3, then half-way
    assert (first["lr"], second["lr"]) == (pytest.approx(2e-3), pytest.approx(1e-6 + (2e-3 - 1e-6) / 2))
    # the epoch is kept on the tasks' unweighted losses added, not on the weighted total
    assert judged == [first["val_task_loss"], second["val_task_loss"]]
    assert first["val_task_loss"] != pytest.approx(first["val_loss"])
    assert "train_hou_age" in first and "train_emd_age" not in first
    cfg = _thesis_run(synthetic_manifest, tmp_path / "b")
    fit_then_crash(cfg, after_epoch=1)
    resumed = fit(cfg, resume=True, progress=False)
    assert without_timing(resumed.history) == without_timing(whole.history)


# --- age error analysis and confusion tables ---------------------------------------------------------

def test_offset_counts_place_each_prediction_at_predicted_minus_true():
    counts = offset_counts(np.array([0, 0, 2, 2, 2]), np.array([0, 2, 2, 1, 0]), 3)
    # columns are offsets -2, -1, 0, 1, 2
    assert counts.tolist() == [[0, 0, 1, 0, 1], [0, 0, 0, 0, 0], [1, 1, 1, 0, 0]]


def test_age_offset_and_confusion_tables_from_predictions():
    frame = pd.DataFrame({"dataset": ["d"] * 4, TASK_COLUMNS["age"]: ["0-2", "70+", "20-29", ""]})
    probs = np.zeros((4, 9))
    probs[[0, 1, 2, 3], [1, 8, 3, 5]] = 1  # 0-2 read as 3-9 (+1); 70+ and 20-29 right; an unlabelled row
    table = age_offset_table(frame, {"age": probs})
    assert list(table.columns) == list(range(-8, 9)) and list(table.index) == list(AGE_BINS)
    assert table.loc["0-2", 1] == 1 and table.loc["70+", 0] == 1 and table.loc["20-29", 0] == 1
    assert int(table.to_numpy().sum()) == 3
    confusion = pd.DataFrame([{"dataset": "d", "task": "gender", "true": t, "predicted": p, "count": c}
                              for (t, p), c in {("male", "male"): 5, ("male", "female"): 1,
                                                ("female", "male"): 2, ("female", "female"): 7}.items()])
    wide = confusion_tables(confusion)[("d", "gender")]
    assert wide.loc["male", "female"] == 1 and wide.loc["female", "male"] == 2
    assert int(np.trace(wide.to_numpy())) == 12
