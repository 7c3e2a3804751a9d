"""`python -m kdlab distill-lm`: bad options stop in the first second with exit 2; a tiny run writes DESIGN.md's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lm_tiny import tiny_lm_teacher

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("options, words", [
    (["--arms", "kd"], "invalid choice: 'kd'"),
    (["--steps", "0"], "--steps: value must be an integer ≥ 1"),
    (["--seeds", "1", "1"], "seeds must be one or more different integers"),
    (["--seed", "-1"], "--seed: value must be an integer ≥ 0"),
    (["--temperature", "0"], "--temperature: temperature must be > 0"),
    (["--arms", "ce", "ce"], "arms must be one or more different arms"),
])
def test_bad_options_exit_2_with_one_error_line_before_any_work(options, words):
    result = subprocess.run([sys.executable, "-m", "kdlab", "distill-lm", *options, "--quiet"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and result.stdout == ""


def test_an_unwritable_json_path_is_refused_before_training(tmp_path, capsys):
    from kdlab.cli import main

    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(["distill-lm", "--json", str(folder), "--quiet"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_tiny_run_writes_the_json_of_the_contract(tmp_path, monkeypatch, capsys):
    import kdlab.lm_teacher
    from kdlab.cli import main

    teacher = tiny_lm_teacher(tmp_path / "lm-cache")
    monkeypatch.setattr(kdlab.lm_teacher, "load_lm_teacher", lambda progress=True: teacher)
    out = tmp_path / "results" / "lm.json"
    assert main(["distill-lm", "--arms", "ce", "forward_kl", "--seeds", "0", "1", "--steps", "2", "--batch-size", "4",
                 "--samples", "6", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "forward_kl" in printed and "mean ± std over seeds" in printed
    results = json.loads(out.read_text())
    assert set(results) == {"teacher", "arms", "settings", "timings_s"}
    assert set(results["arms"]) == {"ce", "forward_kl"}
    assert results["teacher"]["params"] == teacher.params and results["teacher"]["test_perplexity"] > 1
    for entry in results["arms"].values():
        assert entry["fraction_of_teacher"] == pytest.approx(entry["params"] / teacher.params) and entry["test_perplexity"] > 1
        assert entry["teacher_nll_of_samples"] > 0 and 0 <= entry["distinct_2"] <= 1
        assert len(entry["test_perplexity_per_seed"]) == 2 and entry["seeds"] == [0, 1]
        assert entry["test_perplexity_std"] > 0  # two seeds, two different students
    assert results["settings"]["steps"] == 2 and results["settings"]["seeds"] == [0, 1]
    assert results["timings_s"]["total"] > 0


def test_the_saved_benchmark_has_every_arm_three_seeds_and_a_student_a_tenth_the_size():
    from kdlab.lm_distill import ARMS
    from kdlab.results import read_benchmark_results

    saved = read_benchmark_results(REPO / "benchmarks" / "results" / "lm-distillation.json",
                                   measured_by="benchmarks/lm_distillation.py", command="python benchmarks/lm_distillation.py",
                                   required=("teacher", "arms", "settings", "timings_s"))
    arms = saved.meta["arms"]
    assert set(arms) == set(ARMS) and [row["model"] for row in saved.rows] == ["teacher", *ARMS]
    for entry in arms.values():
        assert len(entry["test_perplexity_per_seed"]) == 3 and entry["fraction_of_teacher"] <= 0.1
        # the mean is the mean of the seeds it lists
        assert entry["test_perplexity"] == pytest.approx(sum(entry["test_perplexity_per_seed"]) / 3)
