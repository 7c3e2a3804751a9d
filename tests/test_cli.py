"""`python -m kdlab distill` end to end on a small slice of Banking77 with the real teacher."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from kdlab.data import DEFAULT_DATA_DIR

INTENTS = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed", "cash_withdrawal_charge", "pin_blocked"]


@pytest.fixture
def banking_slice(tmp_path):
    """Six intents of Banking77 (a folder shaped like any user's data, with fewer classes)."""
    for split, per_class in (("train", 40), ("dev", 10), ("test", 20)):
        frame = pd.read_csv(DEFAULT_DATA_DIR / f"{split}.tsv", sep="\t")
        frame = frame[frame.label.isin(INTENTS)].groupby("label").head(per_class)
        frame.to_csv(tmp_path / f"{split}.csv", index=False)
    return tmp_path


def run_cli(*args, cache):
    env = {"HF_HUB_OFFLINE": "1", "KDLAB_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "kdlab", "distill", *args], capture_output=True, text=True, env=env, timeout=600)


def test_distill_on_any_folder_writes_the_documented_json(banking_slice, tmp_path):
    out = tmp_path / "results.json"
    done = run_cli("--data", str(banking_slice), "--epochs", "30", "--seeds", "0", "1", "--quiet", "--json", str(out),
                   cache=tmp_path / "cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "%|" not in done.stderr and "it/s" not in done.stderr  # --quiet: no progress bars
    results = json.loads(out.read_text())
    assert set(results) == {"teacher", "student_ce", "student_kd", "settings", "timings_s"}
    for name in ("teacher", "student_ce", "student_kd"):
        assert {"test_accuracy", "params", "examples_per_s"} <= set(results[name])
        assert results[name]["examples_per_s"] > 0
    for name in ("student_ce", "student_kd"):  # the mean over seeds, with its spread and every seed beside it
        entry = results[name]
        assert entry["seeds"] == [0, 1] and len(entry["test_accuracies"]) == 2
        assert entry["test_accuracy"] == pytest.approx(sum(entry["test_accuracies"]) / 2)
        a, b = entry["test_accuracies"]
        assert entry["test_accuracy_std"] == pytest.approx(abs(a - b) / 2**0.5)  # sample std of two values
    assert results["settings"]["teacher_seed"] == 0 and results["settings"]["seeds"] == [0, 1]
    assert " ± " in done.stdout
    assert results["settings"]["num_labels"] == 6
    chance = 1 / 6
    assert results["teacher"]["test_accuracy"] > 0.8
    assert results["student_kd"]["test_accuracy"] > 3 * chance  # the KD student learned, from 240 examples
    assert results["student_kd"]["params"] < results["teacher"]["params"] / 5
    assert "student_kd" in done.stdout and "test acc" in done.stdout


@pytest.mark.parametrize("args, message", [
    (("--temperature", "0"), "must be > 0 and ≤ 1000"),
    (("--temperature", "1e30"), "must be > 0 and ≤ 1000"),
    (("--temperature", "abc"), "expected a number in (0, 1000], e.g. 4, got 'abc'"),
    (("--temperature", "nan"), "temperature must be a finite number"),
    (("--lam", "1.5"), "must be in [0, 1]"),
    (("--epochs", "2.5"), "expected a whole number ≥ 1"),
    (("--teacher-finetune-epochs", "-1"), "must be an integer ≥ 0"),
    (("--seed", "1", "--seeds", "0", "1"), "not allowed with argument"),
])
def test_bad_arguments_get_clear_messages_on_stderr(tmp_path, monkeypatch, capsys, args, message):
    from kdlab.cli import main

    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as stopped:  # argparse's own exit, status 2
        main(["distill", *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "cache").exists()


def test_problems_found_before_any_work_are_one_error_line_on_stderr(tmp_path, banking_slice, monkeypatch, capsys):
    from kdlab.cli import main

    cache = tmp_path / "cache"
    monkeypatch.setenv("KDLAB_CACHE", str(cache))
    cases = [
        (("--data", str(tmp_path / "missing")), "does not exist"),
        (("--json", str(tmp_path)), "is a folder; give a file name"),
        (("--json", str(banking_slice / "train.csv" / "out.json")), "is a file, so no folder can be made there"),
        (("--data", str(banking_slice), "--labels-per-class", "1000"), "keeps every label (the largest class has 40"),
    ]
    for args, message in cases:
        assert main(["distill", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert not cache.exists() or not list(cache.glob("teacher-*")), "the teacher ran before the error"
    for bad_cache in ("", str(banking_slice / "train.csv")):  # KDLAB_CACHE empty, or a file
        monkeypatch.setenv("KDLAB_CACHE", bad_cache)
        assert main(["distill"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "KDLAB_CACHE" in err, err


def test_the_table_shows_mean_and_spread_over_seeds():
    from kdlab.cli import format_results

    entry = {"params": 10, "examples_per_s": 5.0, "test_accuracy": 0.8, "test_accuracy_std": 0.01, "test_accuracies": [0.79, 0.81]}
    results = {"teacher": {"params": 100, "examples_per_s": None, "test_accuracy": 0.9}, "student_ce": entry,
               "student_kd": entry, "settings": {"seeds": [0, 1]}, "timings_s": {"total": 1.0}}
    table = format_results(results)
    assert "80.00 ± 1.00%" in table and "90.00%" in table and "mean ± std over seeds" in table
