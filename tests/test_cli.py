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
    done = run_cli("--data", str(banking_slice), "--epochs", "30", "--quiet", "--json", str(out), cache=tmp_path / "cache")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert set(results) == {"teacher", "student_ce", "student_kd", "settings", "timings_s"}
    for name in ("teacher", "student_ce", "student_kd"):
        assert {"test_accuracy", "params", "examples_per_s"} <= set(results[name])
        assert results[name]["examples_per_s"] > 0
    assert results["settings"]["num_labels"] == 6
    chance = 1 / 6
    assert results["teacher"]["test_accuracy"] > 0.8
    assert results["student_kd"]["test_accuracy"] > 3 * chance  # the KD student learned, from 240 examples
    assert results["student_kd"]["params"] < results["teacher"]["params"] / 5
    assert "student_kd" in done.stdout and "test acc" in done.stdout


def test_bad_arguments_get_clear_messages(tmp_path):
    done = run_cli("--temperature", "0", cache=tmp_path)
    assert done.returncode == 2 and "must be a finite number > 0" in done.stderr
    done = run_cli("--lam", "1.5", cache=tmp_path)
    assert done.returncode == 2 and "must be in [0, 1]" in done.stderr
    done = run_cli("--data", str(tmp_path / "missing"), cache=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stdout
