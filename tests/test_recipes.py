"""kdlab.recipes: the named recipes, what `teach` hands the training loop, and `distill --recipe`."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch

import kdlab
import kdlab.recipes as recipes
from kdlab.ensemble import PanelSettings, load_teacher_panel
from kdlab.recipes import BEST, RECIPES, Recipe, recipe, teach

SMALL = PanelSettings(weak_layer=1, mlp_members=1, neighbours=3, copies=2)  # the tiny BERT has 2 layers
BEYOND = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "beyond.json"


@pytest.fixture(scope="module")
def panel(toy_cache, tiny_bert, tmp_path_factory):
    return load_teacher_panel(toy_cache, SMALL, teacher=str(tiny_bert), root=tmp_path_factory.mktemp("panel"), progress=False)


@pytest.fixture
def calls(monkeypatch):
    """Record every train_student call teach makes (student, cache, keyword arguments) instead of training."""
    made = []

    def fake(student, cache, **options):
        made.append((student, cache, options))
        return kdlab.History()

    monkeypatch.setattr(recipes, "train_student", fake)
    return made


def bag(cache, tiny_teacher, seed=0):
    return kdlab.student_start("bag", cache, tiny_teacher[1], seed=seed)


def test_every_recipe_name_resolves_and_best_is_one_of_them():
    for name, chosen in RECIPES.items():
        assert recipe(name) is chosen and isinstance(chosen, Recipe) and chosen.summary
        assert chosen.teacher in kdlab.ensemble.TEACHERS
        assert chosen.needs_panel == (chosen.teacher != "default" or chosen.augmented)
    assert RECIPES["best"] is RECIPES[BEST] and BEST != "best"
    assert RECIPES["default"] == Recipe(summary=RECIPES["default"].summary)  # every option off
    with pytest.raises(ValueError, match="unknown recipe 'nope'; choose one of") as refused:
        recipe("nope")
    assert all(name in str(refused.value) for name in RECIPES)


@pytest.mark.skipif(not BEYOND.exists(), reason="benchmarks/results/beyond.json not written yet")
def test_best_is_the_recipe_with_the_highest_mean_dev_accuracy_in_the_benchmark():
    rows = json.loads(BEYOND.read_text())["rows"]
    scores: dict[str, list[float]] = {}
    for row in rows:
        scores.setdefault(row["recipe"], []).append(row["dev_accuracy"])
    means = {name: sum(values) / len(values) for name, values in scores.items()}
    assert BEST in means, f"BEST={BEST!r} has no rows in {BEYOND.name}"
    assert means[BEST] == max(means.values()), sorted(means.items(), key=lambda item: -item[1])


def test_teach_refuses_what_it_cannot_do_before_training(toy_cache, tiny_teacher, panel, calls):
    student = bag(toy_cache, tiny_teacher)
    for name in ("ensemble", "augmented", "weak-teacher"):
        with pytest.raises(ValueError, match="needs the teacher panel: pass panel=kdlab.load_teacher_panel"):
            teach(student, toy_cache, RECIPES[name])
    with pytest.raises(ValueError, match=r"born-again recipe needs make_student\(seed\)"):
        teach(student, toy_cache, RECIPES["born-again"])
    for name in ("default", "augmented"):
        with pytest.raises(ValueError, match=r"labelled must have one flag per real train row \(90\), got \(89,\)"):
            teach(student, toy_cache, RECIPES[name], panel=panel, labelled=torch.ones(89, dtype=torch.bool))
    assert calls == []


def test_the_default_recipe_trains_on_the_cache_itself(toy_cache, tiny_teacher, calls):
    student = bag(toy_cache, tiny_teacher)
    teach(student, toy_cache, RECIPES["default"], seed=3, lam=0.7, epochs=2)
    [(trained, cache, options)] = calls
    assert trained is student and cache is toy_cache
    assert options["seed"] == 3 and options["lam"] == 0.7 and options["epochs"] == 2 and options["hidden_weight"] == 0.0
    assert options["labelled"].dtype == torch.bool and options["labelled"].all() and len(options["labelled"]) == 90


def test_the_augmented_recipe_gets_the_augmented_rows_unlabelled(toy_cache, tiny_teacher, panel, calls):
    labelled = torch.ones(90, dtype=torch.bool)
    labelled[::4] = False  # a few-label run: these real rows keep no label either
    teach(bag(toy_cache, tiny_teacher), toy_cache, RECIPES["augmented+features"], panel=panel, labelled=labelled)
    [(_, cache, options)] = calls
    assert len(cache.ids["train"]) == 270 and cache.tokens["train"].input_ids.shape[0] == 270
    flags = options["labelled"]
    assert flags.shape == (270,) and torch.equal(flags[:90], labelled) and not flags[90:].any()
    assert options["hidden_weight"] == 1.0
    assert torch.equal(cache.logits_for("train", cache.ids["train"][90:]), panel.logits["default"]["augmented"])


def test_a_teacher_recipe_without_augmentation_gets_that_teachers_logits(toy_cache, tiny_teacher, panel, calls):
    teach(bag(toy_cache, tiny_teacher), toy_cache, RECIPES["weak-teacher"], panel=panel)
    [(_, cache, options)] = calls
    assert len(cache.ids["train"]) == 90 and options["labelled"].all()
    for split in ("train", "dev", "test"):
        assert torch.equal(cache.logits[split], panel.logits["weak"][split])


def test_born_again_trains_a_first_student_and_teaches_the_second_with_its_logits(toy_cache, tiny_teacher, calls):
    seeds = []

    def make_student(seed):
        seeds.append(seed)
        return bag(toy_cache, tiny_teacher, seed=seed)

    second = bag(toy_cache, tiny_teacher, seed=5)
    teach(second, toy_cache, RECIPES["born-again"], seed=5, make_student=make_student)
    assert len(seeds) == 1 and seeds[0] != 5  # the first student starts from its own seed
    (first, first_cache, first_options), (trained, second_cache, second_options) = calls
    assert first is not second and trained is second
    assert first_cache is toy_cache and first_options["seed"] == seeds[0] and second_options["seed"] == 5
    first.eval()
    for split in ("train", "dev", "test"):
        tokens = toy_cache.tokens[split]
        with torch.no_grad():
            expected = first(tokens.input_ids, tokens.attention_mask)
        torch.testing.assert_close(second_cache.logits[split], expected, atol=1e-5, rtol=1e-4)
        assert torch.equal(second_cache.labels[split], toy_cache.labels[split])


def test_teach_really_trains_on_the_augmented_set(toy_cache, tiny_teacher, panel):
    """One real epoch of the richest recipe: the loop takes 270 rows, the projection, the ensemble's targets."""
    student = bag(toy_cache, tiny_teacher)
    before = [p.detach().clone() for p in student.parameters()]
    history = teach(student, toy_cache, RECIPES["ensemble+augmented+features"], panel=panel, epochs=1, progress=False)
    assert len(history.epochs) == 1 and 0 <= history.epochs[0]["dev_accuracy"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


# ---------------------------------------------------------------- distill --recipe


def test_an_unknown_recipe_is_an_argparse_error_listing_the_names(tmp_path, monkeypatch, capsys):
    from kdlab.cli import main

    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as stopped:
        main(["distill", "--recipe", "nope"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and all(name in err for name in RECIPES) and "Traceback" not in err
    assert not (tmp_path / "cache").exists()


def test_a_panel_recipe_with_a_fine_tuned_teacher_is_refused_before_the_teacher(toy_data, tiny_bert, tmp_path, monkeypatch, capsys):
    import kdlab.pipeline as pipeline
    from kdlab.cli import main

    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(pipeline, "load_splits", lambda *a, **k: pytest.fail("read the data before the check"))
    monkeypatch.setattr(pipeline, "load_teacher_cache", lambda *a, **k: pytest.fail("built the teacher before the check"))
    code = main(["distill", "--data", str(toy_data), "--teacher", str(tiny_bert), "--recipe", "ensemble",
                 "--teacher-finetune-epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: recipe 'ensemble'") and err.count("\n") == 1, err
    assert "--teacher-finetune-epochs 0" in err
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("teacher-*")), "the teacher ran"


def test_distill_with_the_augmented_recipe_writes_who_taught_the_student(toy_data, tiny_bert, tmp_path, monkeypatch):
    import kdlab.pipeline as pipeline
    from kdlab.cli import main

    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path / "cache"))
    # The default panel's weak head reads layer 3, which the 2-layer tiny BERT lacks: build the small panel instead.
    monkeypatch.setattr(pipeline, "load_teacher_panel", functools.partial(load_teacher_panel, settings=SMALL))
    out = tmp_path / "results.json"
    code = main(["distill", "--data", str(toy_data), "--teacher", str(tiny_bert), "--recipe", "augmented",
                 "--epochs", "1", "--quiet", "--json", str(out)])
    assert code == 0
    results = json.loads(out.read_text())
    assert results["settings"]["recipe"] == "augmented"
    taught_by = results["student_kd"]["taught_by"]
    assert taught_by["teacher"] == "default" and taught_by["augmented_queries"] == 2 * 90
    assert taught_by["test_accuracy"] == pytest.approx(results["teacher"]["test_accuracy"], abs=1 / 30 + 1e-9)
    assert "teacher_panel" in results["timings_s"] and list((tmp_path / "cache").glob("panel-*.safetensors"))
    assert "taught_by" not in results["student_ce"]
