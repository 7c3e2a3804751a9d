"""kdlab.ensemble: the ensemble arithmetic against numpy, and a teacher panel built on the toy cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kdlab.ensemble as ensemble
from kdlab.ensemble import (PanelSettings, average_probabilities, layer_features, load_teacher_panel, neighbour_vote,
                            panel_key, student_as_teacher)
from kdlab.teacher import mean_pool

# The tiny BERT has 2 layers: the weak teacher reads layer 1, one MLP member, 3 neighbours, 2 copies per query.
SMALL = PanelSettings(weak_layer=1, mlp_members=1, neighbours=3, copies=2)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- average_probabilities


def test_average_probabilities_is_the_log_of_the_mean_softmax():
    rng = np.random.default_rng(0)
    members = [rng.normal(size=(6, 4)) * 3 for _ in range(3)]
    expected = np.log(np.mean([softmax(m) for m in members], axis=0))
    got = average_probabilities([torch.tensor(m, dtype=torch.float32) for m in members])
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    weights = [0.5, 0.3, 0.2]
    expected = np.log(sum(w * softmax(m) for w, m in zip(weights, members)))
    got = average_probabilities([torch.tensor(m, dtype=torch.float32) for m in members], weights)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_average_probabilities_is_not_the_mean_of_the_logits():
    # One member is very sure of class 0; two are fairly sure of class 1. Averaged logits follow the loud one,
    # averaged probabilities the majority: (1 + 0.047 + 0.047) / 3 = 0.365 for class 0.
    members = [torch.tensor([[20.0, 0.0]]), torch.tensor([[0.0, 3.0]]), torch.tensor([[0.0, 3.0]])]
    assert torch.stack(members).mean(0).argmax(1).item() == 0
    got = average_probabilities(members)
    assert got.argmax(1).item() == 1
    assert got.exp()[0, 0].item() == pytest.approx((1 + 2 / (1 + np.exp(3))) / 3, abs=1e-6)


@pytest.mark.parametrize("weights", [[0.5, 0.5, 0.0], [0.5], [1.5, -0.5], [0.3, 0.3]])
def test_average_probabilities_refuses_bad_weights(weights):
    members = [torch.zeros(2, 3), torch.ones(2, 3)]
    with pytest.raises(ValueError, match="weights must be 2 non-negative numbers summing to 1"):
        average_probabilities(members, weights)


def test_average_probabilities_refuses_an_empty_ensemble():
    with pytest.raises(ValueError, match="at least one member"):
        average_probabilities([])


# ---------------------------------------------------------------- neighbour_vote


def brute_force_vote(train, labels, queries, classes, k, sharpness, leave_self_out):
    """Cosine to every training row, the k best, softmax(sharpness·cos) weights summed per class, floor, log."""
    out = np.empty((len(queries), classes))
    for q, query in enumerate(queries):
        cosines = [float(np.dot(query, t) / (np.linalg.norm(query) * np.linalg.norm(t))) for t in train]
        candidates = [i for i in range(len(train)) if not (leave_self_out and i == q)]
        best = sorted(candidates, key=lambda i: -cosines[i])[:k]
        raw = np.array([sharpness * cosines[i] for i in best])
        weights = np.exp(raw - raw.max()) / np.exp(raw - raw.max()).sum()
        probabilities = np.zeros(classes)
        for i, w in zip(best, weights):
            probabilities[labels[i]] += w
        out[q] = np.log(np.maximum(probabilities, 1e-4))
    return out


@pytest.mark.parametrize("k, sharpness", [(1, 20.0), (4, 20.0), (5, 3.0)])
def test_neighbour_vote_matches_a_brute_force_loop(k, sharpness):
    rng = np.random.default_rng(k)
    train, queries = rng.normal(size=(25, 6)), rng.normal(size=(9, 6))
    labels = rng.integers(0, 4, size=25)
    got = neighbour_vote(torch.tensor(train), torch.tensor(labels), torch.tensor(queries), 4, k=k, sharpness=sharpness)
    np.testing.assert_allclose(got.numpy(), brute_force_vote(train, labels, queries, 4, k, sharpness, False), atol=1e-5)
    got = neighbour_vote(torch.tensor(train), torch.tensor(labels), torch.tensor(train), 4, k=k, sharpness=sharpness,
                         leave_self_out=True)
    np.testing.assert_allclose(got.numpy(), brute_force_vote(train, labels, train, 4, k, sharpness, True), atol=1e-5)


def test_leave_self_out_never_uses_the_querys_own_row():
    rng = np.random.default_rng(1)
    train = torch.tensor(rng.normal(size=(12, 5)))
    own = torch.arange(12)  # every row its own class: a vote that saw its own row would give its class weight
    kept = neighbour_vote(train, own, train, 12, k=3, leave_self_out=True)
    assert torch.allclose(kept.diagonal(), torch.full((12,), float(np.log(1e-4))))
    seen = neighbour_vote(train, own, train, 12, k=3)  # without it the nearest neighbour of a row is itself
    assert (seen.diagonal() > np.log(0.3)).all()


def test_neighbour_vote_refuses_more_neighbours_than_rows():
    train = torch.randn(5, 3)
    with pytest.raises(ValueError, match="k=5 neighbours but only 5 training vectors"):
        neighbour_vote(train, torch.zeros(5, dtype=torch.long), train, 2, k=5, leave_self_out=True)
    with pytest.raises(ValueError, match="k must be an integer ≥ 1"):
        neighbour_vote(train, torch.zeros(5, dtype=torch.long), train, 2, k=0)


# ---------------------------------------------------------------- layer_features


def test_layer_features_equal_mean_pooled_hidden_states(tiny_teacher, toy_cache):
    encoder, _ = tiny_teacher
    assert encoder.config.num_hidden_layers == 2  # SMALL's weak_layer=1 relies on it
    tokens = toy_cache.tokens["test"]
    got = layer_features(encoder, tokens, [1, 2], batch_size=7, progress=False)  # batches of unequal width
    with torch.no_grad():
        out = encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, output_hidden_states=True)
    torch.testing.assert_close(got[2], mean_pool(out.last_hidden_state, tokens.attention_mask), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[1], mean_pool(out.hidden_states[1], tokens.attention_mask), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[2], toy_cache.features["test"], atol=1e-4, rtol=1e-4)  # what the cache stored


# ---------------------------------------------------------------- PanelSettings


@pytest.mark.parametrize("change, message", [
    ({"copies": 0}, "copies must be an integer ≥ 1"),
    ({"probability": 0.0}, "probability must be > 0"),
    ({"probability": 1.5}, "probability must be a probability"),
    ({"weak_layer": 0}, "weak_layer must be an integer ≥ 1"),
    ({"mlp_members": -1}, "mlp_members must be an integer ≥ 0"),
    ({"neighbours": 0}, "neighbours must be an integer ≥ 1"),
    ({"vote_weight": 1.5}, "vote_weight must be a probability"),
    ({"seed": -1}, "seed must be an integer ≥ 0"),
    ({"copies": 2.5}, "copies must be an integer"),
])
def test_panel_settings_refuse_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        PanelSettings(**{**SMALL.__dict__, **change}).check()


def test_a_weak_layer_the_teacher_lacks_is_refused_before_the_encoder_runs(toy_cache, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(ensemble, "layer_features", lambda *a, **k: pytest.fail("the encoder ran before the check"))
    for layer in (2, 5):  # the tiny BERT has 2 layers: the weak head must read an earlier one
        with pytest.raises(ValueError, match=f"weak_layer must be between 1 and 1 for this 2-layer teacher, got {layer}"):
            load_teacher_panel(toy_cache, PanelSettings(weak_layer=layer, mlp_members=1, neighbours=3),
                               teacher=str(tiny_bert), root=tmp_path, progress=False)
    assert not list(tmp_path.glob("panel-*"))


# ---------------------------------------------------------------- the panel on the toy cache


@pytest.fixture(scope="module")
def panel_root(tmp_path_factory):
    return tmp_path_factory.mktemp("panel")


@pytest.fixture(scope="module")
def panel(toy_cache, tiny_bert, panel_root):
    return load_teacher_panel(toy_cache, SMALL, teacher=str(tiny_bert), root=panel_root, progress=False)


def test_the_panel_is_one_keyed_file_under_root_and_is_read_back(panel, toy_cache, tiny_bert, panel_root, monkeypatch):
    assert panel.path.parent == panel_root and panel.path.name == f"panel-{panel_key(toy_cache, SMALL)}.safetensors"
    assert [p.name for p in panel_root.iterdir()] == [panel.path.name]
    keys = {panel_key(toy_cache, s) for s in (SMALL, PanelSettings(weak_layer=1, mlp_members=1, neighbours=3, copies=3),
                                              PanelSettings(weak_layer=1, mlp_members=2, neighbours=3, copies=2),
                                              PanelSettings(weak_layer=1, mlp_members=1, neighbours=3, copies=2, seed=1))}
    assert len(keys) == 4
    monkeypatch.setattr(ensemble, "_build", lambda *a, **k: pytest.fail("rebuilt a valid panel"))
    again = load_teacher_panel(toy_cache, SMALL, teacher=str(tiny_bert), root=panel_root, progress=False)
    for name in ensemble.TEACHERS:
        for split in ensemble.SPLITS_SCORED:
            assert torch.equal(again.logits[name][split], panel.logits[name][split])
    assert torch.equal(again.augmented.input_ids, panel.augmented.input_ids)


def test_the_panel_teachers_line_up_with_the_cache(panel, toy_cache):
    for split in ("train", "dev", "test"):
        # `default` is the cached head on the recomputed last layer: the cache's own soft targets.
        torch.testing.assert_close(panel.logits["default"][split], toy_cache.logits[split], atol=1e-4, rtol=1e-4)
        for name in ensemble.TEACHERS:
            assert panel.logits[name][split].shape == (len(toy_cache.ids[split]), 3)
            assert torch.isfinite(panel.logits[name][split]).all()
        # The ensemble's logits are log-probabilities (the log of an average of probabilities).
        torch.testing.assert_close(panel.logits["ensemble"][split].exp().sum(1), torch.ones(len(toy_cache.ids[split])))
    labels = toy_cache.labels["test"]
    for name in ensemble.TEACHERS:
        hand = (panel.logits[name]["test"].argmax(1) == labels).float().mean().item()
        assert panel.accuracy(name) == pytest.approx(hand)
    assert panel.accuracy("default") == pytest.approx(toy_cache.accuracy("test"), abs=1 / 30 + 1e-9)


def test_transfer_without_augmentation_is_the_cache_with_that_teachers_logits(panel, toy_cache):
    for name in ensemble.TEACHERS:
        derived, labelled = panel.transfer(name, augmented=False)
        assert labelled.dtype == torch.bool and labelled.all() and len(labelled) == 90
        assert derived.tokens["train"] is toy_cache.tokens["train"]
        assert torch.equal(derived.ids["train"], toy_cache.ids["train"])
        for split in ("train", "dev", "test"):
            assert torch.equal(derived.logits[split], panel.logits[name][split])


@pytest.mark.parametrize("name", ["default", "ensemble"])
def test_transfer_with_augmentation_appends_unlabelled_garbled_copies(panel, toy_cache, name):
    derived, labelled = panel.transfer(name, augmented=True)
    real, copies = 90, SMALL.copies
    assert len(derived.ids["train"]) == real * (1 + copies) == len(labelled) == len(derived.tokens["train"])
    assert labelled[:real].all() and not labelled[real:].any()
    ids = derived.ids["train"]
    assert len(set(ids.tolist())) == len(ids) and not set(ids[real:].tolist()) & set(toy_cache.ids["train"].tolist())
    assert torch.equal(panel.source, torch.arange(real).repeat(copies))
    new = ids[real:]
    assert torch.equal(derived.logits_for("train", new), panel.logits[name]["augmented"])
    assert torch.equal(derived.logits_for("train", ids[:real]), panel.logits[name]["train"])
    assert torch.equal(derived.features_for("train", new), panel.augmented_features)
    assert torch.equal(derived.features_for("train", ids[:real]), toy_cache.features["train"])
    assert torch.equal(derived.labels["train"][real:], toy_cache.labels["train"][panel.source])
    for split in ("dev", "test"):  # only train grows
        assert torch.equal(derived.ids[split], toy_cache.ids[split])
        assert torch.equal(derived.logits[split], panel.logits[name][split])
    # The token rows: the real queries first, then each augmented query, padded to one width.
    tokens, width = derived.tokens["train"], derived.tokens["train"].input_ids.shape[1]
    for row in (0, real - 1, real, len(ids) - 1):
        source = toy_cache.tokens["train"] if row < real else panel.augmented
        r = row if row < real else row - real
        n = int(source.attention_mask[r].sum())
        assert int(tokens.attention_mask[row].sum()) == n and tokens.attention_mask[row, n:].eq(0).all()
        assert torch.equal(tokens.input_ids[row, :n], source.input_ids[r, :n]) and width >= n
    # Each augmented query is a garbled copy of its source: same [CLS]/[SEP], some other inner piece.
    for row in range(0, len(panel.source), 17):
        n = int(panel.augmented.attention_mask[row].sum())
        s = int(panel.source[row])
        m = int(toy_cache.tokens["train"].attention_mask[s].sum())
        got, original = panel.augmented.input_ids[row, :n].tolist(), toy_cache.tokens["train"].input_ids[s, :m].tolist()
        assert got[0] == original[0] and got[-1] == original[-1] and got != original


def test_the_augmented_features_are_the_encoders_last_layer_on_those_queries(panel, tiny_teacher):
    encoder, _ = tiny_teacher
    rows = torch.arange(0, len(panel.source), 11)
    tokens = panel.augmented.select(rows)
    with torch.no_grad():
        state = encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    torch.testing.assert_close(panel.augmented_features[rows], mean_pool(state, tokens.attention_mask), atol=1e-4, rtol=1e-4)


def test_an_unknown_teacher_is_refused_with_the_names(panel):
    with pytest.raises(ValueError, match="unknown teacher 'strong'; choose one of weak, default, ensemble"):
        panel.transfer("strong")
    with pytest.raises(ValueError, match="unknown teacher 'strong'"):
        panel.accuracy("strong")


def test_student_as_teacher_gives_the_students_own_logits(toy_cache, tiny_teacher):
    import kdlab

    student = kdlab.student_start("bag", toy_cache, tiny_teacher[1], seed=0)
    student.train()  # the logits must be the eval-mode ones whatever mode the student is in
    taught = student_as_teacher(toy_cache, student)
    student.eval()
    for split in ("train", "dev", "test"):
        tokens = toy_cache.tokens[split]
        with torch.no_grad():
            direct = student(tokens.input_ids, tokens.attention_mask)
        torch.testing.assert_close(taught.logits[split], direct, atol=1e-5, rtol=1e-4)
        assert torch.equal(taught.ids[split], toy_cache.ids[split])
    assert not torch.allclose(taught.logits["test"], toy_cache.logits["test"])


def test_a_panel_file_of_other_settings_under_this_key_is_rebuilt_with_a_message(panel, toy_cache, tiny_bert, tmp_path, capsys):
    import shutil

    other = PanelSettings(weak_layer=1, mlp_members=1, neighbours=3, copies=1)
    shutil.copy(panel.path, tmp_path / f"panel-{panel_key(toy_cache, other)}.safetensors")  # SMALL's file, other's name
    rebuilt = load_teacher_panel(toy_cache, other, teacher=str(tiny_bert), root=tmp_path, progress=False)
    assert "rebuilding the teacher panel" in capsys.readouterr().out
    assert len(rebuilt.source) == 90 and rebuilt.meta["settings"]["copies"] == 1
