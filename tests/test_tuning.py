"""Dev-set experiments: label masks, step matching and summaries by hand; every sweep end to end on the toy cache."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch

import kdlab.tuning as tuning
from kdlab.calibration import expected_calibration_error, mean_confidence
from kdlab.students import build_student
from kdlab.tuning import (
    BASELINE_PATIENCE, HONEST_KD, BenchmarkResults, benchmark_results, best_setting, calibration_by_temperature, capacity_curve, distilbert_comparison,
    labelled_mask, low_label_curve, matched_epochs, teacher_on_labelled, remedy_curves, summarize, sweep_temperature_lambda,
)

BAG = {"student_options": {"dim": 8, "hidden": 16}}
TINY_BERT = {"layers": 1, "hidden": 32, "heads": 2}


@pytest.fixture
def train_run_calls(monkeypatch):
    """Record the options every experiment hands to train_run (which still trains for real)."""
    calls = []
    real = tuning.train_run

    def spy(cache, tokenizer, **options):
        calls.append(options)
        return real(cache, tokenizer, **options)

    monkeypatch.setattr(tuning, "train_run", spy)
    return calls


# --- label budgets ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 4, 30, 50])
def test_labelled_mask_keeps_k_rows_of_every_class(toy_cache, k):
    mask = labelled_mask(toy_cache, k, seed=0)
    assert mask.dtype == torch.bool and mask.shape == (90,)
    per_class = torch.bincount(toy_cache.labels["train"][mask], minlength=3)
    assert per_class.tolist() == [min(k, 30)] * 3  # a class with fewer than K rows keeps all of them


def test_labelled_mask_is_deterministic_by_seed_and_all_rows_for_none(toy_cache):
    assert torch.equal(labelled_mask(toy_cache, 4, seed=3), labelled_mask(toy_cache, 4, seed=3))
    assert not torch.equal(labelled_mask(toy_cache, 4, seed=3), labelled_mask(toy_cache, 4, seed=4))
    assert labelled_mask(toy_cache, None).all() and len(labelled_mask(toy_cache, None)) == 90
    with pytest.raises(ValueError, match="labels_per_class"):
        labelled_mask(toy_cache, 0)


@pytest.mark.parametrize("epochs, rows, labelled, batch, cap, expected", [
    (15, 10_000, 770, 256, 200, 150),  # 15·40 = 600 steps; 4 steps per labelled epoch → 150 epochs
    (15, 10_000, 770, 256, 100, 100),  # ...capped
    (15, 10_000, 10_000, 256, 200, 15),  # all rows labelled: nothing to match
    (2, 90, 6, 16, 200, 12),  # 2·6 = 12 steps; the 6 labelled rows are one step per epoch
    (3, 100, 33, 32, 200, 6),  # 3·4 = 12 steps; 2 steps per labelled epoch
    (3, 100, 20, 32, 200, 12),  # 12 steps of one batch
    (5, 100, 50, 256, 200, 5),  # one batch either way
    (30, 10_000, 77, 256, 10, 30),  # a cap below the epochs asked for never shortens training
])
def test_matched_epochs_by_hand(epochs, rows, labelled, batch, cap, expected):
    assert matched_epochs(epochs, rows, labelled, batch, cap=cap) == expected


# --- summaries ----------------------------------------------------------------------------------------------------

FRAME = pd.DataFrame({
    "temperature": [1.0, 1.0, 4.0, 4.0, 4.0, 8.0],
    "lam": [0.5, 0.5, 0.5, 0.5, 1.0, 0.5],
    "seed": [0, 1, 0, 1, 0, 0],
    "dev_accuracy": [0.70, 0.80, 0.74, 0.76, 0.60, 0.75],
})


def test_summarize_by_hand():
    summary = summarize(FRAME, ["temperature", "lam"])
    assert list(summary.columns) == ["temperature", "lam", "mean", "std", "count"]
    assert summary[["temperature", "lam"]].values.tolist() == [[1.0, 0.5], [4.0, 0.5], [4.0, 1.0], [8.0, 0.5]]
    assert summary["mean"].tolist() == pytest.approx([0.75, 0.75, 0.60, 0.75])
    # sample standard deviation of two values a, b is |a − b| / √2; one seed gives 0, not NaN
    assert summary["std"].tolist() == pytest.approx([0.1 / 2**0.5, 0.02 / 2**0.5, 0.0, 0.0])
    assert summary["count"].tolist() == [2, 2, 1, 1]
    by_t = summarize(FRAME, ["temperature"], value="dev_accuracy")
    assert by_t["mean"].tolist() == pytest.approx([0.75, (0.74 + 0.76 + 0.60) / 3, 0.75])


def test_best_setting_takes_the_highest_mean_and_the_first_in_sort_order_on_ties():
    # (1, 0.5), (4, 0.5) and (8, 0.5) all average 0.75: the first in (temperature, lam) order wins
    best = best_setting(FRAME)
    assert best == pytest.approx({"temperature": 1.0, "lam": 0.5, "dev_accuracy": 0.75, "std": 0.1 / 2**0.5})
    # rows given in another order do not change the answer
    assert best_setting(FRAME.iloc[::-1]) == pytest.approx(best)
    clear = FRAME.assign(dev_accuracy=[0.70, 0.80, 0.90, 0.92, 0.60, 0.75])
    assert best_setting(clear) == pytest.approx({"temperature": 4.0, "lam": 0.5, "dev_accuracy": 0.91, "std": 0.02 / 2**0.5})
    assert best_setting(clear, by=("lam",))["lam"] == 0.5


# --- sweeps end to end on the toy cache -----------------------------------------------------------------------------

def test_sweep_temperature_lambda_has_one_row_per_setting_and_seed(toy_cache, tiny_teacher, train_run_calls):
    frame = sweep_temperature_lambda(toy_cache, tiny_teacher[1], [1.0, 4.0], [0.0, 1.0], seeds=(0, 1), progress=False,
                                     epochs=1, **BAG)
    assert list(frame.columns) == ["temperature", "lam", "seed", "dev_accuracy", "seconds"]
    assert len(frame) == 8
    assert sorted(zip(frame["temperature"], frame["lam"], frame["seed"])) == [
        (t, lam, s) for t in (1.0, 4.0) for lam in (0.0, 1.0) for s in (0, 1)]
    assert frame["dev_accuracy"].between(0, 1).all() and (frame["seconds"] > 0).all()
    assert [(c["temperature"], c["lam"], c["seed"]) for c in train_run_calls] == list(
        zip(frame["temperature"], frame["lam"], frame["seed"]))


@pytest.mark.parametrize("temperatures, lams, name", [
    ([], [0.5], "temperatures"), ([0.0], [0.5], "temperatures"), ([2.0, -1.0], [0.5], "temperatures"),
    ([2.0], [], "lams"), ([2.0], [1.5], "lams"), ([2.0], [-0.1, 0.5], "lams"),
])
def test_sweep_refuses_invalid_grids_before_training(toy_cache, tiny_teacher, train_run_calls, temperatures, lams, name):
    with pytest.raises(ValueError, match=name):
        sweep_temperature_lambda(toy_cache, tiny_teacher[1], temperatures, lams, progress=False)
    assert train_run_calls == []


def test_low_label_curve_matches_steps_for_the_ce_baseline(toy_cache, tiny_teacher, train_run_calls):
    frame = low_label_curve(toy_cache, tiny_teacher[1], [2, None], seeds=(0,), temperature=2.0, lam=0.5, progress=False,
                            epochs=2, batch_size=16, **BAG)
    assert list(frame.columns) == ["labels_per_class", "labelled", "method", "seed", "dev_accuracy", "seconds",
                                   "teacher_dev_accuracy"]
    assert frame[["labels_per_class", "labelled", "method"]].values.tolist() == [
        [2, 6, "CE only"], [2, 6, "KD"], [2, 6, HONEST_KD], ["all", 90, "CE only"], ["all", 90, "KD"]]
    assert frame["dev_accuracy"].between(0, 1).all()
    ce_few, kd_few, honest_few, ce_all, kd_all = train_run_calls
    # KD: 2 epochs of ⌈90/16⌉ = 6 steps = 12 steps; CE on the 6 labelled rows: 1 step per epoch → 12 epochs
    assert (ce_few["epochs"], ce_few["early_stopping"], ce_few["lam"]) == (12, BASELINE_PATIENCE, 1.0)
    assert (kd_few["epochs"], kd_few.get("early_stopping"), kd_few["lam"], kd_few["temperature"]) == (2, None, 0.5, 2.0)
    assert (honest_few["epochs"], honest_few.get("early_stopping"), honest_few["lam"]) == (2, None, 0.5)
    assert int(ce_few["labelled"].sum()) == 6 and torch.equal(ce_few["labelled"], kd_few["labelled"])
    assert torch.equal(ce_few["labelled"], labelled_mask(toy_cache, 2, 0))
    assert torch.equal(honest_few["labelled"], kd_few["labelled"])
    assert (ce_all["epochs"], ce_all.get("early_stopping")) == (2, None)  # every label: no matching needed
    assert kd_all["labelled"].all()
    # the cached teacher for CE and KD; the honest arm's teacher is refit on the 6 labelled rows only
    cached = toy_cache.accuracy("dev")
    assert frame.loc[frame["method"] != HONEST_KD, "teacher_dev_accuracy"].eq(cached).all()
    honest_teacher = teacher_on_labelled(toy_cache, labelled_mask(toy_cache, 2, 0), seed=0)
    assert frame.loc[frame["method"] == HONEST_KD, "teacher_dev_accuracy"].item() == honest_teacher.accuracy("dev")


def test_low_label_curve_refuses_an_unknown_method_before_training(toy_cache, tiny_teacher, train_run_calls):
    with pytest.raises(ValueError, match="unknown method.*CE only"):
        low_label_curve(toy_cache, tiny_teacher[1], [2], methods=("KD", "distil"), progress=False)
    assert train_run_calls == []


def test_teacher_on_labelled_refits_the_head_on_the_labelled_rows_only(toy_cache):
    labelled = labelled_mask(toy_cache, 2, 0)
    honest = teacher_on_labelled(toy_cache, labelled, seed=0)
    # its logits are its own linear head applied to the (unchanged) cached features, on every split
    for split in ("train", "dev", "test"):
        by_hand = toy_cache.features[split] @ honest.head["weight"].T + honest.head["bias"]
        assert torch.allclose(honest.logits[split], by_hand, atol=1e-5)
        assert torch.equal(honest.features[split], toy_cache.features[split])
    assert not torch.allclose(honest.logits["train"], toy_cache.logits["train"])
    assert honest.meta["teacher_head_labelled_rows"] == 6 and "teacher_head_labelled_rows" not in toy_cache.meta
    # the head saw only the labelled rows: scrambling every other row's features and labels changes nothing
    scrambled = dataclasses.replace(toy_cache, features={**toy_cache.features,
                                                         "train": toy_cache.features["train"].clone()},
                                    labels={**toy_cache.labels, "train": toy_cache.labels["train"].clone()})
    others = ~labelled
    scrambled.features["train"][others] = torch.randn(int(others.sum()), toy_cache.features["train"].shape[1])
    scrambled.labels["train"][others] = scrambled.labels["train"][others].flip(0)
    again = teacher_on_labelled(scrambled, labelled, seed=0)
    assert torch.equal(again.head["weight"], honest.head["weight"]) and torch.equal(again.head["bias"], honest.head["bias"])
    # while moving a labelled row does change it
    moved = dataclasses.replace(toy_cache, labels={**toy_cache.labels, "train": toy_cache.labels["train"].clone()})
    first = int(labelled.nonzero()[0])
    moved.labels["train"][first] = (moved.labels["train"][first] + 1) % len(toy_cache.label_names)
    assert not torch.equal(teacher_on_labelled(moved, labelled, seed=0).head["weight"], honest.head["weight"])


@pytest.mark.parametrize("labelled", [torch.zeros(90, dtype=torch.bool), torch.ones(5, dtype=torch.bool)])
def test_teacher_on_labelled_refuses_a_wrong_mask(toy_cache, labelled):
    with pytest.raises(ValueError, match="one flag per train row"):
        teacher_on_labelled(toy_cache, labelled)


def test_capacity_curve_rows_params_and_speed(toy_cache, tiny_teacher):
    encoder, tokenizer = tiny_teacher
    students = {"bag 8": ("bag", {"dim": 8}), "tiny-bert 1×32": ("tiny-bert", TINY_BERT),
                "truncated 1": ("truncated", {"keep_layers": 1})}
    frame = capacity_curve(toy_cache, tokenizer, students, seeds=(0,), teacher_encoder=encoder, progress=False,
                           train_options={kind: {"epochs": 1} for kind in ("bag", "tiny-bert", "truncated")})
    assert list(frame.columns) == ["student", "kind", "params", "method", "seed", "dev_accuracy", "seconds", "examples_per_s"]
    assert len(frame) == 6
    assert frame[["student", "method"]].values.tolist() == [[name, m] for name in students for m in ("CE only", "KD")]
    for name, (kind, options) in students.items():
        model = build_student(kind, tokenizer, 3, teacher_encoder=encoder, **options)
        expected = sum(p.numel() for p in model.parameters())
        assert (frame.loc[frame["student"] == name, "params"] == expected).all()
    assert frame["examples_per_s"].gt(0).all() and frame["dev_accuracy"].between(0, 1).all()


def test_remedy_curves_one_row_per_epoch_with_each_remedy_alone(toy_cache, tiny_teacher, train_run_calls):
    epochs = 2
    frame = remedy_curves(toy_cache, tiny_teacher[1], epochs=epochs, progress=False)
    assert list(frame.columns) == ["remedy", "method", "epoch", "train_accuracy", "dev_accuracy", "kept_epoch",
                                   "final_dev_accuracy"]
    assert len(frame) == len(tuning.REMEDIES) * 2 * epochs  # patience 3 cannot stop a 2-epoch run
    assert all(curve["epoch"].tolist() == [1, 2] for _, curve in frame.groupby(["remedy", "method"]))
    # the final accuracy is the kept epoch's with early stopping, the last epoch's otherwise
    for (remedy, _), curve in frame.groupby(["remedy", "method"]):
        kept = curve["kept_epoch"].iloc[0]
        expected_epoch = kept if remedy.startswith("early stopping") else epochs
        if not remedy.startswith("early stopping"):
            assert pd.isna(kept)
        final = curve.loc[curve["epoch"] == expected_epoch, "dev_accuracy"].item()
        assert curve["final_dev_accuracy"].eq(final).all()
    by_name = {}
    for call in train_run_calls:
        by_name.setdefault((call["weight_decay"], call["lr_decay"], call["student_options"]["dropout"],
                            call.get("early_stopping"), call.get("token_dropout")), []).append(call["lam"])
    # each remedy switched on alone against the no-remedy baseline, with λ = 1 (CE only) and λ = 0.5 (KD)
    assert by_name == {
        (0.0, False, 0.0, None, None): [1.0, 0.5], (0.0, False, 0.3, None, None): [1.0, 0.5],
        (0.1, False, 0.0, None, None): [1.0, 0.5], (0.0, False, 0.0, 3, None): [1.0, 0.5],
        (0.0, True, 0.0, None, None): [1.0, 0.5], (0.0, False, 0.0, None, 0.15): [1.0, 0.5],
    }


def test_remedy_curves_early_stopping_row_count_and_bag_only(toy_cache, tiny_teacher):
    frame = remedy_curves(toy_cache, tiny_teacher[1], remedies={"stop": {"early_stopping": 1}}, methods=("KD",),
                          epochs=8, progress=False)
    accuracies = frame["dev_accuracy"].tolist()
    best = max(accuracies)
    kept = frame["kept_epoch"].iloc[0]
    assert accuracies.index(best) + 1 == kept
    assert len(frame) == min(8, kept + 1)  # stopped one epoch after the last improvement (patience 1)
    assert frame["final_dev_accuracy"].eq(best).all()
    with pytest.raises(ValueError, match="bag"):
        remedy_curves(toy_cache, tiny_teacher[1], kind="tiny-bert", epochs=1, progress=False)


def test_calibration_by_temperature_rows_and_teacher_row(toy_cache, tiny_teacher, train_run_calls):
    frame = calibration_by_temperature(toy_cache, tiny_teacher[1], [2.0, 4.0], bins=5, progress=False, epochs=2, **BAG)
    assert list(frame.columns) == ["model", "temperature", "dev_accuracy", "ece", "mean_confidence", "agreement_with_teacher"]
    assert frame["model"].tolist() == ["teacher", "CE only", "KD", "KD"]
    assert pd.isna(frame["temperature"].iloc[0]) and pd.isna(frame["temperature"].iloc[1])
    assert frame["temperature"].iloc[2:].tolist() == [2.0, 4.0]
    teacher_logits, labels = toy_cache.logits["dev"], toy_cache.labels["dev"]
    teacher = frame.iloc[0]
    assert teacher["dev_accuracy"] == pytest.approx(toy_cache.accuracy("dev"))
    assert teacher["ece"] == pytest.approx(expected_calibration_error(teacher_logits, labels, bins=5))
    assert teacher["mean_confidence"] == pytest.approx(mean_confidence(teacher_logits))
    assert teacher["agreement_with_teacher"] == 1.0
    assert frame[["ece", "mean_confidence", "agreement_with_teacher", "dev_accuracy"]].iloc[1:].stack().between(0, 1).all()
    assert [(c["lam"], c["temperature"]) for c in train_run_calls] == [(1.0, 1.0), (0.5, 2.0), (0.5, 4.0)]
    with pytest.raises(ValueError, match="temperatures"):
        calibration_by_temperature(toy_cache, tiny_teacher[1], [0.0], progress=False)


def test_distilbert_comparison_four_students_same_steps(toy_cache, tiny_teacher, train_run_calls):
    encoder, tokenizer = tiny_teacher
    frame = distilbert_comparison(toy_cache, tokenizer, encoder, keep_layers=1, hidden_weight=1.0, progress=False)
    assert list(frame.columns) == ["start", "loss", "seed", "lr", "params", "dev_accuracy", "seconds", "dev_curve"]
    assert frame[["start", "loss"]].values.tolist() == [
        ["teacher layers", "logits only"], ["teacher layers", "logits + cosine"],
        ["random init", "logits only"], ["random init", "logits + cosine"]]
    # "same data, steps and seed for all four": equally long learning curves, though the kinds' defaults differ
    assert frame["dev_curve"].map(len).nunique() == 1
    assert len({(c["epochs"], c["batch_size"]) for c in train_run_calls}) == 1
    assert [c["hidden_weight"] for c in train_run_calls] == [0.0, 1.0, 0.0, 1.0]
    assert [c["kind"] for c in train_run_calls] == ["truncated", "truncated", "tiny-bert", "tiny-bert"]
    # the random-init student has the teacher's hidden size and heads and the kept number of layers
    random_init = train_run_calls[2]["student_options"]
    assert random_init == {"layers": 1, "hidden": encoder.config.hidden_size, "heads": encoder.config.num_attention_heads}
    frame = distilbert_comparison(toy_cache, tokenizer, encoder, keep_layers=1, seeds=(0, 1), progress=False, epochs=1,
                                  rows=torch.arange(30))
    assert len(frame) == 8 and frame["dev_curve"].map(len).eq(1).all()


# --- saved benchmark results --------------------------------------------------------------------------------------

def test_benchmark_results_reads_the_saved_json(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "BENCHMARK_RESULTS", tmp_path)
    saved = {"section": "sweep", "rows": [{"temperature": 4.0, "dev_accuracy": 0.9}], "machine": "laptop",
             "date": "2026-12-01", "seconds": 12.5, "settings": {"seeds": [0]}}
    (tmp_path / "sweep.json").write_text(json.dumps(saved))
    results = benchmark_results("sweep")
    assert isinstance(results, BenchmarkResults)
    assert results.rows == saved["rows"]
    assert results.meta == {key: value for key, value in saved.items() if key != "rows"}
    assert results.source == "measured by benchmarks/kd_quality.py --section sweep on laptop, 2026-12-01"
    # the same file elsewhere (kd_quality.py --out FOLDER): read from that folder
    other = tmp_path / "rerun"
    other.mkdir()
    (other / "sweep.json").write_text(json.dumps({**saved, "machine": "this machine"}))
    assert benchmark_results("sweep", folder=other).meta["machine"] == "this machine"


def test_benchmark_results_for_a_missing_section_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run `python benchmarks/kd_quality.py --section no-such-section`"):
        benchmark_results("no-such-section")
    with pytest.raises(FileNotFoundError, match=rf"--section sweep --out {tmp_path}`"):
        benchmark_results("sweep", folder=tmp_path)
    (tmp_path / "sweep.json").write_text(json.dumps({"rows": [], "machine": "laptop"}))
    with pytest.raises(ValueError, match=r"lacks \['date'\]: rerun `python benchmarks/kd_quality.py --section sweep"):
        benchmark_results("sweep", folder=tmp_path)


def test_every_saved_section_reads_with_rows_machine_and_date():
    for path in sorted(tuning.BENCHMARK_RESULTS.glob("*.json")):
        # deployment: its own reader; headline: named tables, no rows; lm-distillation: written by
        # benchmarks/lm_distillation.py in the `distill-lm` format of DESIGN.md (tests/test_cli_lm.py reads it)
        if path.stem in ("deployment", "headline", "lm-distillation"):
            continue
        results = benchmark_results(path.stem)
        assert results.rows and results.meta["section"] == path.stem and results.meta["seconds"] > 0, path.name
